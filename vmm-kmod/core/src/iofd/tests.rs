//! Registration rules and the paths from a guest write or an eventfd write
//! to the vGIC, on a whole VM over the kernel double.

use crate::errno::{Errno, EEXIST, EINVAL, ENOENT, ENOSPC};
use crate::kernel::mock::{
    close_fd, open_eventfd, open_other, read_eventfd, write_eventfd, ATOMIC_KICKS, EVENTFD_REFS, HOOKS,
};
use crate::vcpu::context::Context;
use crate::vcpu::exits::Env;
use crate::vgic::lr::{LR_ACTIVE, LR_PENDING};
use crate::vgic::{dist, Vgic};
use crate::vm::VmRef;
use vmm_uapi::*;

const EBADF: Errno = Errno(9);
const NOTIFY: u64 = 0x0a00_0050;
/// The open file the registrations come through (a token).
const OWNER: usize = 0x1111;

fn vm() -> VmRef {
    let vm = VmRef::new(b"t").unwrap();
    let seg = VmMemseg { segid: 0, pad: 0, len: 0x10_0000, name: [0; VM_MAX_SUFFIXLEN] };
    vm.memory().alloc_memseg(&seg, 1 << 30).unwrap();
    let map = VmMemmap { gpa: VM_SYSMEM_BASE, segid: 0, len: 0x10_0000, prot: VM_PROT_ALL, ..Default::default() };
    vm.memory().mmap_memseg(&map).unwrap();
    vm
}

fn attach(vm: &VmRef) {
    vm.attach_vgic(&VmVgicDescr {
        dist_start: VGIC_DIST_BASE,
        dist_size: VGIC_DIST_SIZE,
        redist_start: VGIC_REDIST_BASE,
        redist_size: VGIC_REDIST_SIZE,
    })
    .unwrap();
    // The guest's side: group 1 on, SPIs 40..=42 enabled, to vCPU 0, awake.
    vm.with_vgic(|g: &mut Vgic| {
        g.dist.enables = dist::CTLR_ENABLE_G1;
        g.redists[0].asleep = false;
        for intid in 40..=42 {
            let q = g.dist.spi_mut(intid).unwrap();
            (q.enabled, q.group1, q.route) = (true, true, 0);
        }
        g.dist.spi_mut(40).unwrap().edge = true;
    });
}

fn io(gpa: u64, len: u32, datamatch: Option<u64>, fd: i32, deassign: bool) -> VmIoeventfd {
    let mut flags = if deassign { VM_IOEVENTFD_F_DEASSIGN } else { 0 };
    if datamatch.is_some() {
        flags |= VM_IOEVENTFD_F_DATAMATCH;
    }
    VmIoeventfd { gpa, datamatch: datamatch.unwrap_or(0), len, fd, flags, pad: 0 }
}

fn irq(fd: i32, irq: u32, resamplefd: Option<i32>, deassign: bool) -> VmIrqfd {
    let mut flags = if deassign { VM_IRQFD_F_DEASSIGN } else { 0 };
    if resamplefd.is_some() {
        flags |= VM_IRQFD_F_RESAMPLE;
    }
    VmIrqfd { fd, irq, flags, resamplefd: resamplefd.unwrap_or(-1) }
}

fn refs() -> (i64, i64) {
    (EVENTFD_REFS.with(|r| *r.borrow()), HOOKS.with(|r| *r.borrow()))
}

#[test]
fn ioeventfd_errnos_and_lifetime() {
    let vm = vm();
    let (efd, other) = (open_eventfd(), open_other());
    vm.ioeventfd(&io(NOTIFY, 4, Some(1), efd, false), OWNER).unwrap();
    assert_eq!(vm.ioeventfd(&io(NOTIFY, 4, Some(1), efd, false), OWNER), Err(EEXIST));
    assert_eq!(vm.ioeventfd(&io(NOTIFY, 4, Some(2), 99, false), OWNER), Err(EBADF), "not open");
    assert_eq!(vm.ioeventfd(&io(NOTIFY, 4, Some(2), other, false), OWNER), Err(EINVAL), "not an eventfd");
    assert_eq!(vm.ioeventfd(&io(NOTIFY, 3, None, efd, false), OWNER), Err(EINVAL), "bad len");
    assert_eq!(vm.ioeventfd(&io(NOTIFY, 0, Some(2), efd, false), OWNER), Err(EINVAL), "any size with a value");
    assert_eq!(vm.ioeventfd(&io(VM_SYSMEM_BASE + 0x100, 4, None, efd, false), OWNER), Err(EINVAL), "RAM");
    assert_eq!(vm.ioeventfd(&io(NOTIFY, 4, Some(2), efd, true), OWNER), Err(ENOENT), "never registered");
    assert_eq!(refs(), (1, 0), "only the table's reference is left");
    // The exit path: the matching write is taken and signalled, others not.
    let mut env = vm.env(0);
    assert!(env.ioeventfd(NOTIFY, 4, 0xabcd_0000_0000_0001));
    assert!(!env.ioeventfd(NOTIFY, 4, 2) && !env.ioeventfd(NOTIFY, 2, 1));
    assert_eq!(read_eventfd(efd), 1);
    // Closing the eventfd leaves the registration safe to hit.
    close_fd(efd);
    assert!(env.ioeventfd(NOTIFY, 4, 1));
    let efd = open_eventfd();
    vm.ioeventfd(&io(NOTIFY, 0, None, efd, false), OWNER).unwrap_err();
    vm.ioeventfd(&io(NOTIFY + 4, 0, None, efd, false), OWNER).unwrap();
    vm.ioeventfd(&io(NOTIFY + 4, 0, None, efd, true), OWNER).unwrap();
    assert!(!env.ioeventfd(NOTIFY + 4, 1, 0));
    // The limit; then VM_REINIT lets every reference go.
    for i in 1..VM_MAX_IOEVENTFDS as u64 {
        vm.ioeventfd(&io(0x0c00_0000 + 8 * i, 8, None, efd, false), OWNER).unwrap();
    }
    assert_eq!(vm.ioeventfd(&io(0x0d00_0000, 8, None, efd, false), OWNER), Err(ENOSPC));
    assert_eq!(refs().0, VM_MAX_IOEVENTFDS as i64);
    vm.reinit().unwrap();
    assert_eq!(refs(), (0, 0));
    assert!(!env.ioeventfd(0x0c00_0008, 8, 0));
}

#[test]
fn ioeventfds_and_the_vgic_frames_exclude_each_other() {
    let vm = vm();
    let efd = open_eventfd();
    vm.ioeventfd(&io(VGIC_REDIST_BASE + 0x100, 4, None, efd, false), OWNER).unwrap();
    let d = VmVgicDescr {
        dist_start: VGIC_DIST_BASE,
        dist_size: VGIC_DIST_SIZE,
        redist_start: VGIC_REDIST_BASE,
        redist_size: VGIC_REDIST_SIZE,
    };
    assert_eq!(vm.attach_vgic(&d), Err(EINVAL), "an ioeventfd in its frames");
    vm.ioeventfd(&io(VGIC_REDIST_BASE + 0x100, 4, None, efd, true), OWNER).unwrap();
    attach(&vm);
    assert_eq!(vm.ioeventfd(&io(VGIC_DIST_BASE + 0x100, 4, None, efd, false), OWNER), Err(EINVAL));
    drop(vm);
    assert_eq!(refs(), (0, 0));
}

#[test]
fn an_edge_irqfd_latches_its_spi_even_before_the_vgic() {
    let vm = vm();
    vm.vcpu(0).unwrap();
    let efd = open_eventfd();
    vm.irqfd(&irq(efd, 40, None, false), OWNER).unwrap();
    write_eventfd(efd);
    assert_eq!(read_eventfd(efd), 0, "the callback took the count");
    attach(&vm);
    assert_eq!(vm.with_vgic(|g| g.has_deliverable(0)), Some(true), "kept until the vGIC came");
    // The guest takes it; a second write latches it again (an edge each).
    vm.with_vgic(|g| g.dist.spi_mut(40).unwrap().pending_latch = false);
    write_eventfd(efd);
    write_eventfd(efd);
    assert_eq!(vm.with_vgic(|g| g.dist.spi(40).unwrap().pending()), Some(true));
    // A vCPU running somewhere gets an interrupt, from atomic context.
    vm.vcpu(0).unwrap().running_on.store(1, core::sync::atomic::Ordering::SeqCst);
    ATOMIC_KICKS.with(|k| k.borrow_mut().clear());
    write_eventfd(efd);
    assert_eq!(ATOMIC_KICKS.with(|k| k.borrow().clone()), vec![1]);
    vm.vcpu(0).unwrap().running_on.store(-1, core::sync::atomic::Ordering::SeqCst);
    drop(vm);
    assert_eq!(refs(), (0, 0), "hooks and references gone with the VM");
}

#[test]
fn irqfd_errnos_and_closing() {
    let vm = vm();
    let (a, b, other) = (open_eventfd(), open_eventfd(), open_other());
    vm.irqfd(&irq(a, 40, None, false), OWNER).unwrap();
    assert_eq!(vm.irqfd(&irq(a, 41, None, false), OWNER), Err(EEXIST), "the same eventfd twice");
    assert_eq!(vm.irqfd(&irq(b, 31, None, false), OWNER), Err(EINVAL), "a PPI");
    assert_eq!(vm.irqfd(&irq(b, 160, None, false), OWNER), Err(EINVAL), "no such SPI");
    assert_eq!(vm.irqfd(&VmIrqfd { flags: 4, ..irq(b, 40, None, false) }, OWNER), Err(EINVAL), "unknown flag");
    assert_eq!(vm.irqfd(&irq(99, 40, None, false), OWNER), Err(EBADF));
    assert_eq!(vm.irqfd(&irq(other, 40, None, false), OWNER), Err(EINVAL));
    assert_eq!(vm.irqfd(&irq(b, 40, Some(99), false), OWNER), Err(EBADF), "bad resample fd");
    assert_eq!(vm.irqfd(&irq(b, 40, None, true), OWNER), Err(ENOENT), "never registered");
    assert_eq!(vm.irqfd(&irq(a, 41, None, true), OWNER), Err(ENOENT), "another SPI");
    assert_eq!(refs(), (1, 1), "nothing kept from the failures");
    // Closed: it stops firing, and the next VM_IRQFD reaps it.
    close_fd(a);
    assert_eq!(refs(), (1, 1));
    vm.irqfd(&irq(b, 40, None, false), OWNER).unwrap();
    assert_eq!(refs(), (1, 1), "a's hook reaped, b's made");
    vm.irqfd(&irq(b, 40, None, true), OWNER).unwrap();
    assert_eq!(refs(), (0, 0));
    // The limit.
    let fds: Vec<i32> = (0..=VM_MAX_IRQFDS).map(|_| open_eventfd()).collect();
    for &fd in &fds[..VM_MAX_IRQFDS] {
        vm.irqfd(&irq(fd, 41, None, false), OWNER).unwrap();
    }
    assert_eq!(vm.irqfd(&irq(fds[VM_MAX_IRQFDS], 41, None, false), OWNER), Err(ENOSPC));
    vm.reinit().unwrap();
    assert_eq!(refs(), (0, 0));
}

/// One entry and exit of vCPU 0 in which the guest does `guest` to the
/// list registers; returns what was listed (INTIDs).
fn run_once(vm: &VmRef, guest: impl Fn(u64) -> u64) -> Vec<u64> {
    let mut ctx = Context::zeroed();
    let mut quiet = Default::default();
    let n = vm.vgic_flush(0, &mut ctx, 0, &mut quiet);
    let listed = ctx.vgic.lrs[..n].iter().map(|l| l & 0xffff).collect();
    for lr in &mut ctx.vgic.lrs[..n] {
        *lr = guest(*lr);
    }
    vm.vgic_fold(0, &ctx, n);
    listed
}

#[test]
fn a_resampling_irqfd_is_a_level_lowered_when_the_guest_is_done() {
    let vm = vm();
    vm.vcpu(0).unwrap();
    attach(&vm);
    let (efd, rfd) = (open_eventfd(), open_eventfd());
    vm.irqfd(&irq(efd, 41, Some(rfd), false), OWNER).unwrap();
    write_eventfd(efd);
    assert_eq!(vm.with_vgic(|g| g.dist.spi(41).unwrap().line), Some(true));
    // The guest acknowledges it (active): nothing yet.
    assert_eq!(run_once(&vm, |lr| lr & !LR_PENDING | LR_ACTIVE), vec![41]);
    assert_eq!(read_eventfd(rfd), 0);
    // It deactivates it: the line goes down, the resample eventfd fires.
    assert_eq!(run_once(&vm, |lr| lr & !(LR_PENDING | LR_ACTIVE)), vec![41]);
    assert_eq!(read_eventfd(rfd), 1);
    assert_eq!(run_once(&vm, |lr| lr), Vec::<u64>::new(), "nothing left to show");
    // Asserted again; deassigning the irqfd lowers the line it left up.
    write_eventfd(efd);
    assert_eq!(run_once(&vm, |lr| lr), vec![41], "not taken: still pending");
    vm.irqfd(&irq(efd, 41, None, true), OWNER).unwrap();
    assert_eq!(vm.with_vgic(|g| g.dist.spi(41).unwrap().pending()), Some(false));
    assert_eq!(read_eventfd(rfd), 0);
    // A write that raced with the deassign raises nothing.
    vm.irqfd_fire(41, true);
    assert_eq!(vm.with_vgic(|g| g.dist.spi(41).unwrap().line), Some(false));
    drop(vm);
    assert_eq!(refs(), (0, 0));
}

/// Closing the VM's open file a process registered through (its exit,
/// even by SIGKILL) removes its ioeventfds and irqfds, and only those: the
/// next process can register the same addresses and SPIs.
#[test]
fn a_closed_file_takes_its_registrations_with_it() {
    let vm = vm();
    vm.vcpu(0).unwrap();
    attach(&vm);
    let (mine, theirs, edge, lvl, rfd) =
        (open_eventfd(), open_eventfd(), open_eventfd(), open_eventfd(), open_eventfd());
    vm.ioeventfd(&io(NOTIFY, 4, Some(0), mine, false), OWNER).unwrap();
    vm.ioeventfd(&io(NOTIFY + 0x200, 4, Some(0), theirs, false), 0x2222).unwrap();
    vm.irqfd(&irq(edge, 40, None, false), OWNER).unwrap();
    vm.irqfd(&irq(lvl, 41, Some(rfd), false), OWNER).unwrap();
    write_eventfd(lvl);
    assert_eq!(vm.with_vgic(|g| g.dist.spi(41).unwrap().line), Some(true));
    vm.release_owner(OWNER);
    assert!(!vm.env(0).ioeventfd(NOTIFY, 4, 0), "the closed file's ioeventfd is gone");
    assert!(vm.env(0).ioeventfd(NOTIFY + 0x200, 4, 0), "another file's stays");
    assert_eq!(vm.with_vgic(|g| g.dist.spi(41).unwrap().line), Some(false), "its resampled line was lowered");
    // The same registrations can be made again (a new bhyve on the VM).
    let again = open_eventfd();
    vm.ioeventfd(&io(NOTIFY, 4, Some(0), again, false), 0x3333).unwrap();
    vm.irqfd(&irq(edge, 40, None, false), 0x3333).unwrap();
    drop(vm);
    for fd in [mine, theirs, edge, lvl, rfd, again] {
        close_fd(fd);
    }
    assert_eq!(refs(), (0, 0));
}
