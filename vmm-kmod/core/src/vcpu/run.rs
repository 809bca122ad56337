//! `VM_RUN`: the loop that enters the guest, handles exits in the kernel
//! where it can, and returns to userspace with the rest.

use super::exits::{self, Outcome};
use super::{Vcpu, VcpuGuard};
use crate::errno::{Errno, EINTR, EINVAL, EIO};
use crate::kernel;
use crate::vcpu::timer::{ns_to_ticks, ticks_to_ns};
use crate::vm::Vm;
use core::sync::atomic::{fence, Ordering};
use vmm_uapi::{VmRun, VM_RUN_F_MMIO_DATA};

/// Runs `vcpu` of `vm` until an exit for userspace, a suspend, or a signal
/// (`EINTR`). `req` carries the completion of the last exit in and the new
/// exit out.
pub fn run(vm: &Vm, vcpu: &Vcpu, req: &mut VmRun) -> Result<(), Errno> {
    if req.flags & !VM_RUN_F_MMIO_DATA != 0 {
        return Err(EINVAL);
    }
    let mut g = vcpu.try_lock()?;
    if !g.active {
        return Err(EINVAL);
    }
    let data = (req.flags & VM_RUN_F_MMIO_DATA != 0).then_some(req.mmio_data);
    let st = &mut *g;
    exits::complete(&mut st.ctx, &mut st.pending, data);
    // Back from userspace: the host task's FP state is live again; the
    // guest's stays saved until it next uses FP.
    st.fp_used = false;
    req.exit = Default::default();
    let mut env = vm.env(vcpu.id);
    loop {
        if let Some(how) = vm.suspended() {
            req.exit.pc = g.ctx.pc;
            req.exit.set_suspended(how);
            return Ok(());
        }
        if kernel::signal_pending() {
            return Err(EINTR);
        }
        kernel::cond_resched();
        if !enter(vm, &mut g) {
            // The VM was suspended between the check and the entry: loop.
            continue;
        }
        if g.ctx.exit.kind == u64::MAX {
            return Err(EIO);
        }
        let st = &mut *g;
        vcpu.stats.add(super::stats::Stat::El2Hvc, core::mem::take(&mut st.ctx.exit.el2_hvcs));
        match exits::handle(&mut st.ctx, &mut env, &vcpu.stats, &mut req.exit, &mut st.pending) {
            Outcome::Resume => {}
            Outcome::FpFirstUse => st.fp_used = true,
            Outcome::Yield => kernel::cond_resched(),
            Outcome::Wfi => wait_for_interrupt(vm, &mut g)?,
            Outcome::ToUser => {
                vcpu.stats.inc(super::stats::Stat::ToUser);
                return Ok(());
            }
        }
    }
}

/// WFI: sleeps until the vCPU has an interrupt to take, its timer is due,
/// something kicks it (a new interrupt, a suspend), or a signal arrives.
fn wait_for_interrupt(vm: &Vm, g: &mut VcpuGuard<'_>) -> Result<(), Errno> {
    let id = g.vcpu().id;
    g.vcpu().waiter.clear();
    let now = crate::arch::counter();
    if vm.suspended().is_some() || vm.has_interrupt(id, &g.ctx, now) {
        return Ok(());
    }
    let freq = crate::arch::counter_freq();
    let deadline = vm.next_timer(&g.ctx, now);
    // A deadline that close is waited for on the CPU: sleeping and being
    // woken by the hrtimer costs more than the wait (two context switches,
    // the timer's interrupt). Only for the vCPU's own timer: spinning for
    // a wake from another vCPU would keep a CPU from the host, and from
    // that other vCPU where they share one.
    let spin = ns_to_ticks(kernel::halt_poll_ns(), freq);
    if deadline.is_some_and(|d| d - now <= spin) && poll(g, deadline) {
        return Ok(());
    }
    if let Some(d) = deadline {
        g.vcpu().waiter.arm(ticks_to_ns(d.saturating_sub(crate::arch::counter()), freq));
    }
    let r = g.vcpu().waiter.wait();
    g.vcpu().waiter.disarm();
    g.armed = NOT_ARMED;
    // A guest that was idle a while may not need FP when it wakes: trap it
    // again. One that wakes quickly (an interrupt-driven loop) likely goes
    // on using it, and keeps it switched.
    if crate::arch::counter().wrapping_sub(now) > crate::arch::counter_freq() / FP_IDLE_DIVISOR {
        g.fp_used = false;
    }
    r
}

/// Spins until the timer `deadline` or a wake (a kick: new interrupts, a
/// suspend), as long as nothing else wants the CPU. Returns whether it
/// ended on one of them.
fn poll(g: &VcpuGuard<'_>, deadline: Option<u64>) -> bool {
    loop {
        if g.vcpu().waiter.woken() {
            return true;
        }
        let t = crate::arch::counter();
        if deadline.is_some_and(|d| t >= d) {
            return true;
        }
        if kernel::poll_should_stop() {
            return false;
        }
        core::hint::spin_loop();
    }
}

/// [`VcpuState::armed`](super::VcpuState::armed) when the waiter's timer was
/// cancelled.
pub const NOT_ARMED: (u64, i32) = (0, -1);

/// A WFI sleep longer than a second divided by this (1 ms) ends the
/// guest's FP use (see `VcpuState::fp_used`).
const FP_IDLE_DIVISOR: u64 = 1000;

/// One entry into the guest, with the host's FP state saved and interrupts
/// masked around it. Returns false if the VM got suspended just before.
fn enter(vm: &Vm, g: &mut VcpuGuard<'_>) -> bool {
    let id = g.vcpu().id;
    let now = crate::arch::counter();
    let st = &mut **g;
    let listed = vm.vgic_flush(id, &mut st.ctx, now, &mut st.quiet);
    let deadline = vm.next_timer(&g.ctx, now);
    // FP/SIMD: switched (and the host task's state saved by the kernel)
    // only once the guest has used it; until then it traps.
    let fp = g.fp_used;
    g.ctx.el2.cptr = super::guest_cptr(crate::hyp::HYP.mode(), fp);
    if fp {
        g.ctx.el2.flags |= super::context::EL2_FLAG_FP;
    }
    let cpu = kernel::guest_enter(fp);
    // The guest's next timer deadline wakes this CPU (and so exits the
    // guest) even if the guest is busy when it comes. Set already for the
    // same deadline on this CPU and not fired: left alone (most exits).
    if let Some(d) = deadline {
        if g.armed != (d, cpu as i32) || !g.vcpu().waiter.queued() {
            g.vcpu().waiter.arm(ticks_to_ns(d - now, crate::arch::counter_freq()));
            g.armed = (d, cpu as i32);
        }
    }
    g.vcpu().running_on.store(cpu as i32, Ordering::SeqCst);
    // Pairs with the fence in Vm::kick: either it sees us running and
    // interrupts this CPU, or we see here its suspend flag or the mark it
    // put on this vCPU's vGIC state after our flush.
    fence(Ordering::SeqCst);
    if vm.suspended().is_some() || vm.vgic_marked(id) {
        g.vcpu().running_on.store(-1, Ordering::SeqCst);
        kernel::guest_exit(fp);
        vm.vgic_fold(id, &g.ctx, listed);
        return false;
    }
    if super::debug::active(&g.ctx) {
        g.ctx.el2.flags |= super::context::EL2_FLAG_DEBUG;
    }
    if g.last_cpu != cpu as i32 {
        g.ctx.el2.flags |= super::context::EL2_FLAG_FLUSH_TLB;
        g.last_cpu = cpu as i32;
    }
    let ok = crate::arch::run_guest(&mut g.ctx, cpu);
    g.ctx.el2.flags &= super::context::EL2_FLAG_HCRX;
    g.vcpu().running_on.store(-1, Ordering::SeqCst);
    kernel::guest_exit(fp);
    g.listed = listed;
    vm.vgic_fold(id, &g.ctx, listed);
    if !ok {
        // EL2 is not ours on this CPU: report it rather than loop.
        g.ctx.exit.kind = u64::MAX;
    }
    true
}
