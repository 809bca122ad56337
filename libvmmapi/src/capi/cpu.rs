//! vCPUs in the C API: handles, registers, running, exceptions,
//! capabilities and counters.

use super::types::{self, vm_exit, VM_MAXCPU, VM_RUN_F_MMIO_DATA};
use super::{call, ctx_ref, ok, vmctx};
use crate::{Capability, Vcpu};
use nix::errno::Errno;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_uint, CString};
use vmm_uapi::VmReg;

/// A vCPU of an open VM, opaque to C (`vm_vcpu_open` to `vm_vcpu_close`).
pub struct vcpu {
    ctx: *const vmctx,
    id: c_int,
}

impl vcpu {
    fn get(&self) -> Vcpu<'_> {
        // SAFETY: `vm_vcpu_open`'s contract: the VM handle outlives this one.
        unsafe { &*self.ctx }.vm.vcpu(self.id)
    }
}

/// # Safety
/// `v` is null or came from `vm_vcpu_open` and is still open.
unsafe fn vcpu_ref<'a>(v: *const vcpu) -> Result<&'a vcpu, Errno> {
    // SAFETY: the caller's contract.
    unsafe { v.as_ref() }.ok_or(Errno::EINVAL)
}

/// A handle on vCPU `vcpuid` (0 to `VM_MAXCPU - 1`, else NULL with
/// `EINVAL`). It must be closed before `ctx` is.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_vcpu_open(ctx: *mut vmctx, vcpuid: c_int) -> *mut vcpu {
    call(std::ptr::null_mut(), || {
        // SAFETY: the caller's contract.
        unsafe { ctx_ref(ctx) }?;
        if !(0..VM_MAXCPU).contains(&vcpuid) {
            return Err(Errno::EINVAL);
        }
        Ok(Box::into_raw(Box::new(vcpu { ctx, id: vcpuid })))
    })
}

/// Closes a vCPU handle (the vCPU itself is untouched).
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vm_vcpu_close(vcpu: *mut vcpu) {
    call((), || {
        if !vcpu.is_null() {
            // SAFETY: the caller's contract: ours, from Box::into_raw.
            drop(unsafe { Box::from_raw(vcpu) });
        }
        Ok(())
    })
}

/// The vCPU's number (-1 with `EINVAL` for NULL).
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vcpu_id(vcpu: *mut vcpu) -> c_int {
    // SAFETY: the caller's contract.
    call(-1, || Ok(unsafe { vcpu_ref(vcpu) }?.id))
}

/// Sets register `reg` (a `vm_reg_name`). errno: `EINVAL` (no such
/// register, a PSTATE that is not AArch64 EL0 or EL1, a vCPU never
/// activated), `EBUSY` (it is running).
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_set_register(vcpu: *mut vcpu, reg: c_int, val: u64) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let v = unsafe { vcpu_ref(vcpu) }?;
        ok(v.get().set_register(VmReg(reg), val)).map(|()| 0)
    })
}

/// Reads register `reg` into `*retval` (errno as `vm_set_register`).
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open; `retval`
/// is null or writable.
#[no_mangle]
pub unsafe extern "C" fn vm_get_register(vcpu: *mut vcpu, reg: c_int, retval: *mut u64) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let v = unsafe { vcpu_ref(vcpu) }?;
        // SAFETY: the caller's contract.
        let out = unsafe { retval.as_mut() }.ok_or(Errno::EINVAL)?;
        *out = ok(v.get().get_register(VmReg(reg)))?;
        Ok(0)
    })
}

/// The register numbers of a `*_register_set` call.
///
/// # Safety
/// `regnums` is null (then `count` is 0) or has `count` readable ints.
unsafe fn reg_list(count: c_uint, regnums: *const c_int) -> Result<Vec<VmReg>, Errno> {
    if count == 0 {
        return Ok(vec![]);
    }
    if regnums.is_null() || count as usize > VmReg::COUNT {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the caller's contract.
    let nums = unsafe { std::slice::from_raw_parts(regnums, count as usize) };
    Ok(nums.iter().map(|&n| VmReg(n)).collect())
}

/// Sets `count` registers at once: `regnums[i]` to `regvals[i]`, in
/// order; on an error the ones before it are set.
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open; the
/// arrays are null (with `count` 0) or hold `count` elements.
#[no_mangle]
pub unsafe extern "C" fn vm_set_register_set(
    vcpu: *mut vcpu,
    count: c_uint,
    regnums: *const c_int,
    regvals: *mut u64,
) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let v = unsafe { vcpu_ref(vcpu) }?;
        // SAFETY: the caller's contract.
        let regs = unsafe { reg_list(count, regnums) }?;
        if count > 0 && regvals.is_null() {
            return Err(Errno::EINVAL);
        }
        let vals: &[u64] = if count == 0 {
            &[]
        } else {
            // SAFETY: the caller's contract.
            unsafe { std::slice::from_raw_parts(regvals, count as usize) }
        };
        let set: Vec<(VmReg, u64)> = regs.into_iter().zip(vals.iter().copied()).collect();
        ok(v.get().set_registers(&set)).map(|()| 0)
    })
}

/// Reads `count` registers at once into `regvals`.
///
/// # Safety
/// As `vm_set_register_set`, with `regvals` writable.
#[no_mangle]
pub unsafe extern "C" fn vm_get_register_set(
    vcpu: *mut vcpu,
    count: c_uint,
    regnums: *const c_int,
    regvals: *mut u64,
) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let v = unsafe { vcpu_ref(vcpu) }?;
        // SAFETY: the caller's contract.
        let regs = unsafe { reg_list(count, regnums) }?;
        if count == 0 {
            return ok(v.get().get_registers(&[])).map(|_| 0);
        }
        if regvals.is_null() {
            return Err(Errno::EINVAL);
        }
        let vals = ok(v.get().get_registers(&regs))?;
        // SAFETY: the caller's contract: `count` writable values.
        unsafe { std::slice::from_raw_parts_mut(regvals, count as usize) }.copy_from_slice(&vals);
        Ok(0)
    })
}

/// Activates the vCPU: it gets the reset state of the Linux arm64 boot
/// protocol (EL1h, interrupts masked, MMU and caches off, registers zero).
/// Activating it again resets it.
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_activate_cpu(vcpu: *mut vcpu) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        ok(unsafe { vcpu_ref(vcpu) }?.get().activate()).map(|()| 0)
    })
}

/// Not supported: -1 with `ENOTSUP`. The kernel has no per-vCPU suspend
/// (FreeBSD uses it for its debugger); `vm_suspend` stops the whole VM.
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_suspend_cpu(vcpu: *mut vcpu) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        unsafe { vcpu_ref(vcpu) }?;
        Err(Errno::ENOTSUP)
    })
}

/// Not supported: -1 with `ENOTSUP` (no vCPU is ever suspended alone).
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_resume_cpu(vcpu: *mut vcpu) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        unsafe { vcpu_ref(vcpu) }?;
        Err(Errno::ENOTSUP)
    })
}

/// Runs the vCPU until an exit for userspace, written to
/// `*vmrun->vm_exit`. After a `VM_EXITCODE_INST_EMUL` read, set
/// `VM_RUN_F_MMIO_DATA` and `mmio_data` for this call. errno: `EINTR` (a
/// signal; run again), `EBUSY` (another thread runs it), `EINVAL` (not
/// activated, unknown flags), `ENXIO` (the VM was destroyed), `EFAULT`
/// (`vm_exit` NULL).
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open; `vmrun`
/// is null or a valid `struct vm_run` whose `vm_exit` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn vm_run(vcpu: *mut vcpu, vmrun: *mut types::vm_run) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let v = unsafe { vcpu_ref(vcpu) }?;
        // SAFETY: the caller's contract.
        let r = unsafe { vmrun.as_mut() }.ok_or(Errno::EFAULT)?;
        if r.vm_exit.is_null() {
            return Err(Errno::EFAULT);
        }
        if r.flags & !VM_RUN_F_MMIO_DATA != 0 {
            return Err(Errno::EINVAL);
        }
        r.cpuid = v.id;
        let data = (r.flags & VM_RUN_F_MMIO_DATA != 0).then_some(r.mmio_data);
        let exit = ok(v.get().run(data))?;
        // SAFETY: the caller's contract; checked non-null above.
        unsafe { r.vm_exit.write(vm_exit::from_abi(&exit.raw)) };
        Ok(0)
    })
}

/// Makes the guest take a synchronous exception to EL1 with syndrome
/// `esr` (ESR_EL1) and fault address `far` (FAR_EL1) before its next
/// instruction, as the CPU would (ELR_EL1, SPSR_EL1, the vector for its
/// current EL). Done through the registers, so it drops an MMIO emulation
/// in flight: after a `VM_EXITCODE_INST_EMUL` exit the exception returns
/// to that instruction (a data abort reports it so). `EBUSY` if running.
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_inject_exception(vcpu: *mut vcpu, esr: u64, far: u64) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        ok(unsafe { vcpu_ref(vcpu) }?.get().inject_exception(esr, far)).map(|()| 0)
    })
}

/// The value of capability `cap` (a `vm_cap_type`) in `*retval`. The
/// kernel's behaviour is fixed; the values describe it (see
/// `enum vm_cap_type`). `ENOENT` for an unknown capability.
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open; `retval`
/// is null or writable.
#[no_mangle]
pub unsafe extern "C" fn vm_get_capability(vcpu: *mut vcpu, cap: c_int, retval: *mut c_int) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let v = unsafe { vcpu_ref(vcpu) }?;
        let cap = Capability::from_i32(cap).ok_or(Errno::ENOENT)?;
        // SAFETY: the caller's contract.
        let out = unsafe { retval.as_mut() }.ok_or(Errno::EINVAL)?;
        *out = ok(v.get().capability(cap))?;
        Ok(0)
    })
}

/// Sets capability `cap`: to the value it has (zero or not), 0; to any
/// other, -1 with `ENOTSUP`; `ENOENT` for an unknown capability.
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_set_capability(vcpu: *mut vcpu, cap: c_int, val: c_int) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let v = unsafe { vcpu_ref(vcpu) }?;
        let cap = Capability::from_i32(cap).ok_or(Errno::ENOENT)?;
        ok(v.get().set_capability(cap, val)).map(|()| 0)
    })
}

thread_local! {
    /// What `vm_get_stats` returned last on this thread.
    static STATS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// What `vm_get_stat_desc` returned last on this thread.
    static DESC: RefCell<CString> = RefCell::new(CString::default());
}

/// The vCPU's counters: a pointer to `*ret_entries` values (names from
/// `vm_get_stat_desc`), valid until the next call on this thread; the
/// time they were read in `*ret_tv`. NULL with errno on failure.
/// `ret_tv` and `ret_entries` may be NULL.
///
/// # Safety
/// `vcpu` is null or came from `vm_vcpu_open` and is still open; the
/// others are null or writable.
#[no_mangle]
pub unsafe extern "C" fn vm_get_stats(
    vcpu: *mut vcpu,
    ret_tv: *mut libc::timeval,
    ret_entries: *mut c_int,
) -> *mut u64 {
    call(std::ptr::null_mut(), || {
        // SAFETY: the caller's contract.
        let v = unsafe { vcpu_ref(vcpu) }?;
        // SAFETY: as above.
        let vm = &unsafe { &*v.ctx }.vm;
        let values = ok(vm.stat_values(v.id))?;
        let n = c_int::try_from(values.len()).map_err(|_| Errno::EOVERFLOW)?;
        // SAFETY: the caller's contract.
        if let Some(tv) = unsafe { ret_tv.as_mut() } {
            // SAFETY: gettimeofday writes the timeval; no timezone.
            Errno::result(unsafe { libc::gettimeofday(tv, std::ptr::null_mut()) })?;
        }
        // SAFETY: the caller's contract.
        if let Some(out) = unsafe { ret_entries.as_mut() } {
            *out = n;
        }
        Ok(STATS.with(|s| {
            let mut s = s.borrow_mut();
            *s = values;
            s.as_mut_ptr()
        }))
    })
}

/// The name of counter `index`, valid until the next call on this
/// thread; NULL with `EINVAL` past the last counter.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_get_stat_desc(ctx: *mut vmctx, index: c_int) -> *const c_char {
    call(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        let name = ok(ctx.vm.stat_desc(index))?;
        let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
        Ok(DESC.with(|d| {
            let mut d = d.borrow_mut();
            *d = name;
            d.as_ptr()
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_handles_are_einval() {
        // SAFETY: null pointers are within every call's contract.
        unsafe {
            assert!(vm_vcpu_open(std::ptr::null_mut(), 0).is_null());
            assert_eq!(Errno::last(), Errno::EINVAL);
            assert_eq!(vcpu_id(std::ptr::null_mut()), -1);
            assert_eq!(vm_run(std::ptr::null_mut(), std::ptr::null_mut()), -1);
            assert_eq!(Errno::last(), Errno::EINVAL);
            assert_eq!(vm_suspend_cpu(std::ptr::null_mut()), -1);
            assert_eq!(Errno::last(), Errno::EINVAL);
            assert!(vm_get_stats(std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut()).is_null());
            vm_vcpu_close(std::ptr::null_mut());
        }
    }

    #[test]
    fn register_lists() {
        // SAFETY: a null list with count 0, and a real one.
        unsafe {
            assert_eq!(reg_list(0, std::ptr::null()), Ok(vec![]));
            assert_eq!(reg_list(1, std::ptr::null()), Err(Errno::EINVAL));
            let nums = [32, 0];
            assert_eq!(reg_list(2, nums.as_ptr()), Ok(vec![VmReg::PC, VmReg::x(0)]));
            assert_eq!(reg_list(VmReg::COUNT as c_uint + 1, nums.as_ptr()), Err(Errno::EINVAL));
        }
    }
}
