//! Interrupts and I/O fast paths in the C API: the vGIC, SPI lines, MSIs,
//! ioeventfds and irqfds.

use super::{call, ctx_ref, ok, vm_paddr_t, vmctx, VM_IOEVENTFD_F_DATAMATCH};
use nix::errno::Errno;
use std::ffi::c_int;
use vmm_uapi::{VmVgicDescr, VM_IOEVENTFD_F_DEASSIGN};

/// Gives the VM a GICv3: the distributor's frame at `dist_start` (64 KiB)
/// and the redistributors' at `redist_start` (128 KiB per vCPU), as QEMU
/// `virt` has them at `VGIC_DIST_BASE` and `VGIC_REDIST_BASE`. errno:
/// `EEXIST` (it has one), `EINVAL` (misaligned, wrong sizes, overlapping
/// memory, each other or an ioeventfd).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_attach_vgic(
    ctx: *mut vmctx,
    dist_start: u64,
    dist_size: usize,
    redist_start: u64,
    redist_size: usize,
) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        let d = VmVgicDescr { dist_start, dist_size: dist_size as u64, redist_start, redist_size: redist_size as u64 };
        ok(ctx.vm.attach_vgic_at(&d)).map(|()| 0)
    })
}

/// Raises the line of SPI `irq` (INTID 32 and up) until `vm_deassert_irq`.
/// errno: `EINVAL` (not an SPI), `ENODEV` (no vGIC).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_assert_irq(ctx: *mut vmctx, irq: u32) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        ok(unsafe { ctx_ref(ctx) }?.vm.set_irq_line(irq, true)).map(|()| 0)
    })
}

/// Lowers the line of SPI `irq`.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_deassert_irq(ctx: *mut vmctx, irq: u32) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        ok(unsafe { ctx_ref(ctx) }?.vm.set_irq_line(irq, false)).map(|()| 0)
    })
}

/// Not supported: -1 with `ENOTSUP`. The vGIC has no MSI frame (no ITS,
/// no GICv2m) and there is no PCI bus, so no guest device can send one;
/// devices signal SPIs (`vm_assert_irq`, irqfds).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_raise_msi(
    ctx: *mut vmctx,
    addr: u64,
    msg: u64,
    bus: c_int,
    slot: c_int,
    func: c_int,
) -> c_int {
    let _ = (addr, msg, bus, slot, func);
    call(-1, || {
        // SAFETY: the caller's contract.
        unsafe { ctx_ref(ctx) }?;
        Err(Errno::ENOTSUP)
    })
}

fn ioeventfd(ctx: *mut vmctx, gpa: vm_paddr_t, len: u32, flags: u32, datamatch: u64, fd: c_int, op: u32) -> c_int {
    call(-1, || {
        // SAFETY: the callers' contract (`vm_add_ioeventfd`).
        let ctx = unsafe { ctx_ref(ctx) }?;
        if flags & !VM_IOEVENTFD_F_DATAMATCH != 0 {
            return Err(Errno::EINVAL);
        }
        let dm = (flags & VM_IOEVENTFD_F_DATAMATCH != 0).then_some(datamatch);
        ok(ctx.vm.ioeventfd(gpa, len, dm, fd, op)).map(|()| 0)
    })
}

/// Completes guest writes of `len` bytes (1, 2, 4 or 8; 0 any size) to
/// `gpa` in the kernel by signalling the eventfd `fd`: `vm_run` does not
/// return for them. With `VM_IOEVENTFD_F_DATAMATCH` in `flags`, only
/// writes of the value `datamatch`. errno: `EINVAL` (a bad size or flag,
/// `gpa` in RAM or the vGIC, `fd` not an eventfd), `EBADF` (`fd` not
/// open), `EEXIST` (a registration there could take the same write),
/// `ENOSPC` (`VM_MAX_IOEVENTFDS`).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_add_ioeventfd(
    ctx: *mut vmctx,
    gpa: vm_paddr_t,
    len: u32,
    flags: u32,
    datamatch: u64,
    fd: c_int,
) -> c_int {
    ioeventfd(ctx, gpa, len, flags, datamatch, fd, 0)
}

/// Removes what `vm_add_ioeventfd` added with the same arguments
/// (`ENOENT` if nothing was).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_remove_ioeventfd(
    ctx: *mut vmctx,
    gpa: vm_paddr_t,
    len: u32,
    flags: u32,
    datamatch: u64,
    fd: c_int,
) -> c_int {
    ioeventfd(ctx, gpa, len, flags, datamatch, fd, VM_IOEVENTFD_F_DEASSIGN)
}

/// Makes each write to the eventfd `fd` raise SPI `irq`, without an
/// ioctl: as an edge when `resamplefd` is -1; else as a level the kernel
/// lowers when the guest has completed the interrupt, then signalling the
/// eventfd `resamplefd`. errno: `EINVAL` (not an SPI, not eventfds),
/// `EBADF`, `EEXIST` (`fd` already raises an interrupt of this VM),
/// `ENOSPC` (`VM_MAX_IRQFDS`).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_add_irqfd(ctx: *mut vmctx, irq: u32, fd: c_int, resamplefd: c_int) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        let ctx = unsafe { ctx_ref(ctx) }?;
        let resample = (resamplefd != -1).then_some(resamplefd);
        ok(ctx.vm.irqfd_add(irq, fd, resample)).map(|()| 0)
    })
}

/// Removes the irqfd of `fd` for SPI `irq` (`ENOENT` if there is none).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_remove_irqfd(ctx: *mut vmctx, irq: u32, fd: c_int) -> c_int {
    call(-1, || {
        // SAFETY: the caller's contract.
        ok(unsafe { ctx_ref(ctx) }?.vm.irqfd_remove(irq, fd)).map(|()| 0)
    })
}
