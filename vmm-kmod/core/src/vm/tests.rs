//! The entry shortcut of the vGIC flush: a vCPU that had nothing to see
//! skips the lock only while nothing that concerns it changed.

use super::{Quiet, VmRef};
use crate::kernel::mock::{open_eventfd, write_eventfd};
use crate::vcpu::context::Context;
use crate::vcpu::exits::Env;
use crate::vcpu::timer::VTIMER_PPI;
use crate::vgic::{dist, Vgic};
use vmm_uapi::*;

/// A VM with two vCPUs and a GIC whose guest side is set up: group 1 on,
/// SPI 40 enabled to vCPU 0, SGI 1 and the virtual timer's PPI enabled on
/// both, both redistributors awake.
fn vm() -> VmRef {
    let vm = VmRef::new(b"q").unwrap();
    let seg = VmMemseg { segid: 0, pad: 0, len: 0x10_0000, name: [0; VM_MAX_SUFFIXLEN] };
    vm.memory().alloc_memseg(&seg, 1 << 30).unwrap();
    let map = VmMemmap { gpa: VM_SYSMEM_BASE, segid: 0, len: 0x10_0000, prot: VM_PROT_ALL, ..Default::default() };
    vm.memory().mmap_memseg(&map).unwrap();
    vm.vcpu(0).unwrap();
    vm.vcpu(1).unwrap();
    vm.attach_vgic(&VmVgicDescr {
        dist_start: VGIC_DIST_BASE,
        dist_size: VGIC_DIST_SIZE,
        redist_start: VGIC_REDIST_BASE,
        redist_size: 2 * VGIC_REDIST_SIZE,
    })
    .unwrap();
    vm.with_vgic(|g: &mut Vgic| {
        g.dist.enables = dist::CTLR_ENABLE_G1;
        for r in &mut g.redists[..2] {
            r.asleep = false;
            for intid in [1, VTIMER_PPI as usize] {
                (r.private[intid].enabled, r.private[intid].group1) = (true, true);
            }
        }
        let q = g.dist.spi_mut(40).unwrap();
        (q.enabled, q.group1, q.route) = (true, true, 0);
    })
    .unwrap();
    vm
}

/// What vCPU `id` would be shown on entry now (INTIDs), the guest leaving
/// them pending; `q` carries its shortcut state from entry to entry.
fn enter(vm: &VmRef, id: usize, ctx: &mut Context, q: &mut Quiet) -> Vec<u64> {
    let n = vm.vgic_flush(id, ctx, 0, q);
    let listed = ctx.vgic.lrs[..n].iter().map(|l| l & 0xffff).collect();
    vm.vgic_fold(id, ctx, n);
    listed
}

/// Enters vCPU `id` until it has nothing to see, as a guest that does not
/// take what it is shown would not; returns its shortcut state.
fn settle(vm: &VmRef, id: usize, ctx: &mut Context) -> Quiet {
    let mut q = Quiet::default();
    assert!(enter(vm, id, ctx, &mut q).is_empty());
    assert!(q.quiet, "quiet");
    assert!(!vm.vgic_marked(id), "nothing to see: the next entry may skip the lock");
    q
}

#[test]
fn an_spi_raised_after_a_quiet_entry_is_shown_at_the_next() {
    let vm = vm();
    let mut ctx = Context::zeroed();
    let mut q = settle(&vm, 0, &mut ctx);
    vm.set_irq_line(40, true).unwrap();
    assert!(vm.vgic_marked(0), "an entry racing with the change must not go in");
    assert_eq!(enter(&vm, 0, &mut ctx, &mut q), vec![40]);
}

#[test]
fn another_vcpus_flush_does_not_take_this_ones_mark() {
    let vm = vm();
    let (mut c0, mut c1) = (Context::zeroed(), Context::zeroed());
    let mut q0 = settle(&vm, 0, &mut c0);
    let mut q1 = settle(&vm, 1, &mut c1);
    vm.set_irq_line(40, true).unwrap();
    assert!(enter(&vm, 1, &mut c1, &mut q1).is_empty(), "routed to vCPU 0");
    assert!(vm.vgic_marked(0));
    assert_eq!(enter(&vm, 0, &mut c0, &mut q0), vec![40]);
}

#[test]
fn an_sgi_marks_only_the_vcpus_it_names() {
    let vm = vm();
    let (mut c0, mut c1) = (Context::zeroed(), Context::zeroed());
    let mut q0 = settle(&vm, 0, &mut c0);
    let mut q1 = settle(&vm, 1, &mut c1);
    // ICC_SGI1R_EL1 from vCPU 1: SGI 1 to Aff0 0 (target list bit 0).
    vm.env(1).send_sgi(1 << 24 | 1);
    assert!(vm.vgic_marked(0));
    assert!(!vm.vgic_marked(1), "the sender keeps its shortcut");
    assert!(enter(&vm, 1, &mut c1, &mut q1).is_empty());
    assert_eq!(enter(&vm, 0, &mut c0, &mut q0), vec![1]);
}

#[test]
fn a_timer_that_falls_due_is_shown_without_any_mark() {
    let vm = vm();
    let mut ctx = Context::zeroed();
    let mut q = settle(&vm, 0, &mut ctx);
    // The guest enabled its virtual timer with a deadline that has passed
    // (the counter registers are the guest's: nothing traps, nothing marks).
    ctx.timer = [1, 0];
    assert!(!vm.vgic_marked(0));
    assert_eq!(enter(&vm, 0, &mut ctx, &mut q), vec![VTIMER_PPI as u64]);
}

#[test]
fn a_fired_irqfd_ends_every_shortcut() {
    let vm = vm();
    let mut ctx = Context::zeroed();
    let mut q = settle(&vm, 0, &mut ctx);
    let efd = open_eventfd();
    vm.irqfd(&VmIrqfd { fd: efd, irq: 40, flags: 0, resamplefd: -1 }, 0x1111).unwrap();
    write_eventfd(efd);
    assert!(vm.vgic_marked(0) && vm.vgic_marked(1));
    assert_eq!(enter(&vm, 0, &mut ctx, &mut q), vec![40]);
}

#[test]
fn a_distributor_write_by_one_vcpu_marks_the_others() {
    let vm = vm();
    let (mut c0, mut c1) = (Context::zeroed(), Context::zeroed());
    let mut q0 = settle(&vm, 0, &mut c0);
    let _ = settle(&vm, 1, &mut c1);
    vm.set_irq_line(40, true).unwrap();
    assert_eq!(enter(&vm, 0, &mut c0, &mut q0), vec![40]);
    // GICD_ICENABLER1 from vCPU 1: SPI 40 off; vCPU 0 must stop listing it.
    vm.env(1).kernel_mmio(VGIC_DIST_BASE + 0x184, 4, true, 1 << 8);
    assert!(vm.vgic_marked(0));
    assert!(enter(&vm, 0, &mut c0, &mut q0).is_empty());
}
