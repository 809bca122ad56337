//! The C API: `include/vmmapi.h` is generated from this module by cbindgen
//! (`scripts/capi-header`), and the library is built as `libvmmapi.a` and
//! `libvmmapi.so.0`. Names and signatures are FreeBSD libvmmapi's (the
//! `struct vcpu *` generation, FreeBSD 14 and later) where FreeBSD has the
//! call; libvmmapi(3) lists where this one differs.
//!
//! Failures return -1 (or NULL) and set `errno`, as FreeBSD's do. No call
//! lets a panic cross into C: every body runs under `catch_unwind`, and a
//! panic (a bug) becomes -1 with `EIO`.

#![allow(non_camel_case_types)]

mod cpu;
mod irq;
mod memory;
mod types;

pub use cpu::*;
pub use irq::*;
pub use memory::*;
pub use types::*;

use crate::{GuestMemory, Vm};
use nix::errno::Errno;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// An open VM, opaque to C (`vm_open` to `vm_close`/`vm_destroy`).
pub struct vmctx {
    pub(crate) vm: Vm,
    cname: CString,
    /// Guest memory mapped into this process by `vm_setup_memory`.
    pub(crate) mem: OnceLock<GuestMemory>,
}

pub(crate) fn set_errno(e: Errno) {
    Errno::set_raw(e as i32);
}

/// Runs `f`, turning its error into `fail` with `errno`, and a panic into
/// `fail` with `EIO`.
pub(crate) fn call<T>(fail: T, f: impl FnOnce() -> Result<T, Errno>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_errno(e);
            fail
        }
        Err(_) => {
            set_errno(Errno::EIO);
            fail
        }
    }
}

/// The errno of a Rust API error.
pub(crate) fn ok<T>(r: crate::Result<T>) -> Result<T, Errno> {
    r.map_err(|e| e.errno())
}

/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
pub(crate) unsafe fn ctx_ref<'a>(ctx: *const vmctx) -> Result<&'a vmctx, Errno> {
    // SAFETY: the caller's contract.
    unsafe { ctx.as_ref() }.ok_or(Errno::EINVAL)
}

/// # Safety
/// `s` is null or a NUL-terminated string.
pub(crate) unsafe fn str_arg<'a>(s: *const c_char) -> Result<&'a str, Errno> {
    if s.is_null() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(s) }.to_str().map_err(|_| Errno::EINVAL)
}

/// Creates the VM `name`: 0, or -1 with errno (`EINVAL` a bad name,
/// `EEXIST` it exists, `ENOSPC` the module's `max_vms` reached, `EACCES`
/// not root, `ENOENT` no module).
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vm_create(name: *const c_char) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let name = unsafe { str_arg(name) }?;
        ok(Vm::create(name)).map(|()| 0)
    })
}

/// Opens the existing VM `name`: a handle, or NULL with errno (`ENOENT`
/// no such VM, `EACCES` not root).
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vm_open(name: *const c_char) -> *mut vmctx {
    call(std::ptr::null_mut(), || {
        // SAFETY: the caller's contract.
        let name = unsafe { str_arg(name) }.map_err(|_| Errno::ENOENT)?;
        let vm = ok(Vm::open(name))?;
        // Vm::open refused names with a NUL.
        let cname = CString::new(name).map_err(|_| Errno::ENOENT)?;
        Ok(Box::into_raw(Box::new(vmctx { vm, cname, mem: OnceLock::new() })))
    })
}

/// Closes the handle (and unmaps what `vm_setup_memory` mapped); the VM
/// lives on in the kernel. Close its `vcpu` handles first.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vm_close(ctx: *mut vmctx) {
    call((), || {
        if !ctx.is_null() {
            // SAFETY: the caller's contract: ours, from Box::into_raw.
            drop(unsafe { Box::from_raw(ctx) });
        }
        Ok(())
    })
}

/// Destroys the VM and closes the handle. On failure errno is set; the
/// handle is closed either way.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vm_destroy(ctx: *mut vmctx) {
    call((), || {
        if ctx.is_null() {
            return Err(Errno::EINVAL);
        }
        // SAFETY: the caller's contract: ours, from Box::into_raw.
        let ctx = unsafe { Box::from_raw(ctx) };
        let vmctx { vm, .. } = *ctx;
        ok(vm.destroy())
    })
}

/// The VM's name, valid until `vm_close` or `vm_destroy` (NULL for NULL).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_get_name(ctx: *mut vmctx) -> *const c_char {
    call(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        Ok(unsafe { ctx_ref(ctx) }?.cname.as_ptr())
    })
}

/// The file descriptor of `/dev/vmm/NAME` (owned by the handle).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_get_device_fd(ctx: *mut vmctx) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        Ok(unsafe { ctx_ref(ctx) }?.vm.fd())
    })
}

/// Parses a memory size as this bhyve's `-m` does (`expand_number(3)`:
/// bytes, or a K, M, G or T suffix; unlike FreeBSD's, a plain number is
/// always bytes) into `*memsize`: 0, or -1 with `EINVAL` (also for zero or
/// a size that is not a multiple of 4 KiB).
///
/// # Safety
/// `opt` is null or a NUL-terminated string; `memsize` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn vm_parse_memsize(opt: *const c_char, memsize: *mut usize) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let opt = unsafe { str_arg(opt) }?;
        let n = crate::size::parse_mem_size(opt).map_err(|_| Errno::EINVAL)?;
        let n = usize::try_from(n).map_err(|_| Errno::EINVAL)?;
        // SAFETY: the caller's contract.
        *unsafe { memsize.as_mut() }.ok_or(Errno::EINVAL)? = n;
        Ok(0)
    })
}

/// Makes the VM ready for a new boot: no longer suspended, no vCPU
/// active, no vGIC, ioeventfds and irqfds dropped, memory kept. `EBUSY`
/// while a vCPU runs.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_reinit(ctx: *mut vmctx) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        ok(unsafe { ctx_ref(ctx) }?.vm.reinit()).map(|()| 0)
    })
}

/// Suspends the VM: every vCPU's `vm_run` returns `VM_EXITCODE_SUSPENDED`
/// with `how` (`VM_SUSPEND_RESET`, `_POWEROFF` or `_HALT`; others
/// `EINVAL`), now and until `vm_reinit`.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_suspend(ctx: *mut vmctx, how: c_int) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        let how = u32::try_from(how).ok().and_then(vmm_uapi::SuspendHow::from_u32).ok_or(Errno::EINVAL)?;
        ok(ctx.vm.suspend(how)).map(|()| 0)
    })
}

fn cpus(ctx: *mut vmctx, out: *mut cpuset_t, get: fn(&Vm) -> crate::Result<u64>) -> c_int {
    call(-1, || {
        // SAFETY: `vm_active_cpus`' contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        // SAFETY: as above.
        let out = unsafe { out.as_mut() }.ok_or(Errno::EINVAL)?;
        let mask = ok(get(&ctx.vm))?;
        *out = cpuset_t { __bits: [mask, 0, 0, 0] };
        Ok(0)
    })
}

/// The activated vCPUs.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open; `cpus` is null
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn vm_active_cpus(ctx: *mut vmctx, cpus: *mut cpuset_t) -> c_int {
    self::cpus(ctx, cpus, Vm::active_cpus)
}

/// The suspended vCPUs: always none (see `vm_suspend_cpu`).
///
/// # Safety
/// As `vm_active_cpus`.
#[no_mangle]
pub unsafe extern "C" fn vm_suspended_cpus(ctx: *mut vmctx, cpus: *mut cpuset_t) -> c_int {
    self::cpus(ctx, cpus, Vm::suspended_cpus)
}

/// The names of the VMs that exist, sorted: the first `max` go to
/// `names` (NUL-terminated); returns how many VMs there are (which may be
/// more than `max`), or -1 with errno (`ENOENT` no module).
///
/// # Safety
/// `names` is null (then `max` must be 0) or has room for `max` names.
#[no_mangle]
pub unsafe extern "C" fn vm_list(names: *mut [c_char; VM_NAMEBUF_SIZE], max: c_int) -> c_int {
    call(-1, || {
        let max = usize::try_from(max).map_err(|_| Errno::EINVAL)?;
        if max > 0 && names.is_null() {
            return Err(Errno::EINVAL);
        }
        let all = ok(crate::list())?;
        for (i, name) in all.iter().take(max).enumerate() {
            // SAFETY: the caller's contract: row i < max exists.
            let row = unsafe { &mut *names.add(i) };
            *row = [0; VM_NAMEBUF_SIZE];
            for (d, &s) in row.iter_mut().zip(name.as_bytes().iter().take(VM_NAMEBUF_SIZE - 1)) {
                *d = s as c_char;
            }
        }
        c_int::try_from(all.len()).map_err(|_| Errno::EOVERFLOW)
    })
}

/// Which host CPUs the module holds EL2 on (`bhyvectl --get-hyp-status`).
///
/// # Safety
/// `st` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn vm_get_hyp_status(st: *mut vmm_hyp_status) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let st = unsafe { st.as_mut() }.ok_or(Errno::EINVAL)?;
        *st = vmm_hyp_status::from(&ok(crate::hyp_status())?);
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_do_not_cross() {
        set_errno(Errno::UnknownErrno);
        let r = call(-1, || -> Result<c_int, Errno> { panic!("a bug") });
        assert_eq!((r, Errno::last()), (-1, Errno::EIO));
        assert_eq!(call(-1, || Err(Errno::ENOTSUP)), -1);
        assert_eq!(Errno::last(), Errno::ENOTSUP);
        assert_eq!(call(-1, || Ok(7)), 7);
    }

    #[test]
    fn bad_arguments_are_errnos() {
        // SAFETY: null pointers are within every call's contract.
        unsafe {
            assert_eq!(vm_create(std::ptr::null()), -1);
            assert_eq!(Errno::last(), Errno::EINVAL);
            assert!(vm_open(std::ptr::null()).is_null());
            assert_eq!(Errno::last(), Errno::ENOENT);
            assert_eq!(vm_get_device_fd(std::ptr::null_mut()), -1);
            assert_eq!(Errno::last(), Errno::EINVAL);
            assert!(vm_get_name(std::ptr::null_mut()).is_null());
            assert_eq!(vm_suspend(std::ptr::null_mut(), 2), -1);
            assert_eq!(vm_reinit(std::ptr::null_mut()), -1);
            vm_close(std::ptr::null_mut());
            let mut n = 0usize;
            assert_eq!(vm_parse_memsize(c"512M".as_ptr(), &mut n), 0);
            assert_eq!(n, 512 << 20);
            assert_eq!(vm_parse_memsize(c"12X".as_ptr(), &mut n), -1);
            assert_eq!(Errno::last(), Errno::EINVAL);
            assert_eq!(vm_parse_memsize(c"1G".as_ptr(), std::ptr::null_mut()), -1);
            assert_eq!(vm_list(std::ptr::null_mut(), -1), -1);
            assert_eq!(Errno::last(), Errno::EINVAL);
            assert_eq!(vm_list(std::ptr::null_mut(), 1), -1);
            assert_eq!(Errno::last(), Errno::EINVAL);
        }
    }
}
