//! Guest memory in the C API: segments, their guest-physical mappings,
//! and this process's view of them.

use super::{call, ctx_ref, ok, vm_ooffset_t, vm_paddr_t, vmctx, VM_SYSMEM};
use nix::errno::Errno;
use std::ffi::{c_char, c_int, c_void, CStr};
use vm_memory::{GuestAddress, GuestMemoryBackend as _, GuestMemoryRegion as _};
use vmm_uapi::{VmMemmap, VM_PROT_ALL, VM_SYSMEM_BASE};

/// Gives the VM `len` bytes of system memory at `VM_SYSMEM_BASE` and, with
/// `VM_MMAP_ALL`, maps it into this process (`vm_map_gpa`); `VM_MMAP_NONE`
/// maps nothing. Memory set up before (by this or another process, e.g.
/// bhyveload) with the same size is reused; another size is `EINVAL`.
/// Pages are allocated when first touched. errno: `EINVAL` (`len` zero or
/// not a multiple of 4 KiB, another size, `VM_MMAP_SPARSE` or an unknown
/// style), `ENOMEM` (more than the host has).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_setup_memory(ctx: *mut vmctx, len: usize, style: c_int) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        let map = match style {
            0 => false,
            1 => true,
            _ => return Err(Errno::EINVAL),
        };
        let len = len as u64;
        ok(ctx.vm.alloc_memseg(VM_SYSMEM, len, ""))?;
        let m = VmMemmap { gpa: VM_SYSMEM_BASE, segid: VM_SYSMEM, pad: 0, segoff: 0, len, prot: VM_PROT_ALL, flags: 0 };
        ok(ctx.vm.mmap_memmap(&m))?;
        if map && ctx.mem.get().is_none() {
            // Two threads racing here both map; one mapping is kept.
            let _ = ctx.mem.set(ok(ctx.vm.map_memory())?);
        }
        Ok(0)
    })
}

/// This process's address of guest physical `[gaddr, gaddr + len)`, or
/// NULL if that range is not all in the memory `vm_setup_memory` mapped
/// (device addresses, for instance). Valid until `vm_close`.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_map_gpa(ctx: *mut vmctx, gaddr: vm_paddr_t, len: usize) -> *mut c_void {
    call(std::ptr::null_mut(), || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        let mem = ctx.mem.get().ok_or(Errno::EFAULT)?;
        if !mem.check_range(GuestAddress(gaddr), len.max(1)) {
            return Err(Errno::EFAULT);
        }
        mem.get_host_address(GuestAddress(gaddr)).map(|p| p.cast()).map_err(|_| Errno::EFAULT)
    })
}

/// The guest physical address of `addr`, a pointer into what `vm_map_gpa`
/// returns, or `(vm_paddr_t)-1`.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_rev_map_gpa(ctx: *mut vmctx, addr: *mut c_void) -> vm_paddr_t {
    call(u64::MAX, || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        let mem = ctx.mem.get().ok_or(Errno::EFAULT)?;
        let a = addr as usize;
        for r in mem.iter() {
            let base = r.as_ptr() as usize;
            if a >= base && a - base < r.len() as usize {
                return Ok(r.start_addr().0 + (a - base) as u64);
            }
        }
        Err(Errno::EFAULT)
    })
}

/// Makes memory segment `segid` (0 to `VM_MAX_MEMSEGS - 1`) of `len`
/// bytes named `name` (NULL or "" for none). A segment that exists with
/// that length and name is kept; one that differs is `EINVAL`; a name
/// longer than `VM_MAX_SUFFIXLEN` is `ENAMETOOLONG`. (FreeBSD keeps this
/// call private; `vm_setup_memory` uses it for `VM_SYSMEM`.)
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open; `name` is null
/// or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vm_alloc_memseg(ctx: *mut vmctx, segid: c_int, len: usize, name: *const c_char) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        let name = if name.is_null() {
            ""
        } else {
            // SAFETY: the caller's contract.
            unsafe { CStr::from_ptr(name) }.to_str().map_err(|_| Errno::EINVAL)?
        };
        ok(ctx.vm.alloc_memseg(segid, len as u64, name)).map(|()| 0)
    })
}

/// Length of segment `segid` in `*lenp` (0 if it does not exist) and its
/// name in `name` (`namesiz` bytes; `ENAMETOOLONG` if too small).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open; `lenp` is null
/// or writable; `name` is null or has `namesiz` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn vm_get_memseg(
    ctx: *mut vmctx,
    segid: c_int,
    lenp: *mut usize,
    name: *mut c_char,
    namesiz: usize,
) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        // SAFETY: the caller's contract.
        let lenp = unsafe { lenp.as_mut() }.ok_or(Errno::EINVAL)?;
        let (len, segname) = ok(ctx.vm.get_memseg(segid))?;
        *lenp = usize::try_from(len).map_err(|_| Errno::EOVERFLOW)?;
        if name.is_null() && namesiz != 0 {
            return Err(Errno::EINVAL);
        }
        if name.is_null() || namesiz <= segname.len() {
            // No room (a nameless segment needs none when no buffer is given).
            return if segname.is_empty() && name.is_null() { Ok(0) } else { Err(Errno::ENAMETOOLONG) };
        }
        // SAFETY: the caller's contract: `namesiz` bytes, more than the name.
        let out = unsafe { std::slice::from_raw_parts_mut(name.cast::<u8>(), segname.len() + 1) };
        out[..segname.len()].copy_from_slice(segname.as_bytes());
        out[segname.len()] = 0;
        Ok(0)
    })
}

/// Maps segment `segid` at guest physical `[gpa, gpa + len)` with `prot`
/// (`VM_PROT_*`). The kernel maps a segment once, whole: `segoff` 0 and
/// `len` its length, page-aligned, or `EINVAL`. The same mapping made
/// before is kept; another one at `gpa` is `EEXIST`.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_mmap_memseg(
    ctx: *mut vmctx,
    gpa: vm_paddr_t,
    segid: c_int,
    segoff: vm_ooffset_t,
    len: usize,
    prot: c_int,
) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        let segoff = u64::try_from(segoff).map_err(|_| Errno::EINVAL)?;
        let m = VmMemmap { gpa, segid, pad: 0, segoff, len: len as u64, prot, flags: 0 };
        ok(ctx.vm.mmap_memmap(&m)).map(|()| 0)
    })
}

/// The mapping with the lowest address that ends above `*gpa`: its
/// address, segment, offset, length, protection and flags in the out
/// arguments; -1 with `ENOENT` when there is none.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open; every pointer
/// is writable (`gpa` is also read).
#[no_mangle]
pub unsafe extern "C" fn vm_mmap_getnext(
    ctx: *mut vmctx,
    gpa: *mut vm_paddr_t,
    segid: *mut c_int,
    segoff: *mut vm_ooffset_t,
    len: *mut usize,
    prot: *mut c_int,
    flags: *mut c_int,
) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        let ptrs_ok = !(gpa.is_null()
            || segid.is_null()
            || segoff.is_null()
            || len.is_null()
            || prot.is_null()
            || flags.is_null());
        if !ptrs_ok {
            return Err(Errno::EINVAL);
        }
        // SAFETY: the caller's contract; checked non-null above.
        let m = ok(ctx.vm.mmap_getnext(unsafe { *gpa }))?.ok_or(Errno::ENOENT)?;
        // SAFETY: as above.
        unsafe {
            *gpa = m.gpa;
            *segid = m.segid;
            *segoff = m.segoff as vm_ooffset_t;
            *len = m.len as usize;
            *prot = m.prot;
            *flags = m.flags;
        }
        Ok(0)
    })
}
