//! A virtual machine: its name and life cycle, its memory (stage 2), its
//! vCPUs, and its VMID.
//!
//! A VM is owned by the registry until destroyed, and by every open file of
//! its device node: destroying it removes the name and the node at once,
//! stops running vCPUs, and frees the VM (memory included) when the last
//! file is closed.

use crate::errno::{Errno, EEXIST, EINVAL, ENODEV, ENOMEM, ENOSPC};
use crate::iofd::IoFds;
use crate::kernel::{self, KBox, KLock, KernelGuestPages, KernelTables};
use crate::memory::{Toucher, VmMemory};
use crate::mm::stage2::Geometry;
use crate::vcpu::context::Context;
use crate::vcpu::exits::Env;
use crate::vcpu::timer::{ticks_to_ns, Timer, PTIMER_PPI, VTIMER_PPI};
use crate::vcpu::Vcpu;
use crate::vgic::Vgic;
use crate::vmid::VMIDS;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(test)]
mod tests;

use vmm_uapi::{SuspendHow, VmIoeventfd, VmIrqfd, VmVgicDescr, VM_MAXCPU, VM_NAME_BUF};

/// ICH_HCR_EL2.En: the virtual CPU interface is on.
const ICH_HCR_EN: u64 = 1 << 0;
/// ICH_HCR_EL2.UIE: a maintenance interrupt when the list registers drain.
const ICH_HCR_UIE: u64 = 1 << 1;

/// A VM's state.
pub struct Vm {
    refs: AtomicUsize,
    destroyed: AtomicBool,
    suspended: AtomicU32,
    name: [u8; VM_NAME_BUF],
    name_len: usize,
    vmid: u16,
    vttbr: u64,
    vtcr: u64,
    cntvoff: u64,
    midr: u64,
    id_regs: IdRegs,
    mem: KLock<VmMemory>,
    vcpus: [AtomicPtr<Vcpu>; VM_MAXCPU],
    active: AtomicU64,
    vgic: KLock<Option<KBox<Vgic>>>,
    /// A bit per vCPU that the vGIC changed in a way it may have to see
    /// (published by [`VgicGuard`] before the lock is released, or set by
    /// an irqfd firing): an entry whose bit is clear and that had nothing
    /// to show last time does not take the lock.
    vgic_dirty: AtomicU64,
    nr_lrs: usize,
    iofds: IoFds,
}

impl Vm {
    /// The VM's name.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// The VM's VMID.
    pub fn vmid(&self) -> u16 {
        self.vmid
    }

    /// The size of its guest physical address space in bits.
    pub fn ipa_bits(&self) -> u32 {
        64 - (self.vtcr & 0x3f) as u32
    }

    /// Whether the VM was destroyed (files still open on it get `ENXIO`).
    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::Acquire)
    }

    /// Marks the VM destroyed and stops its vCPUs.
    pub fn mark_destroyed(&self) {
        self.destroyed.store(true, Ordering::Release);
        self.suspend(SuspendHow::Destroy);
    }

    /// How the VM was suspended, if it was.
    pub fn suspended(&self) -> Option<SuspendHow> {
        match SuspendHow::from_u32(self.suspended.load(Ordering::Acquire)) {
            None | Some(SuspendHow::None) => None,
            how => how,
        }
    }

    /// Suspends the VM (the first reason stays) and makes running vCPUs exit.
    pub fn suspend(&self, how: SuspendHow) -> bool {
        let first = self
            .suspended
            .compare_exchange(SuspendHow::None as u32, how as u32, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.kick_all();
        first
    }

    fn kick_all(&self) {
        self.kick(u64::MAX);
    }

    /// Makes the vCPUs in `mask` notice a change (new interrupts, suspend).
    pub fn kick(&self, mask: u64) {
        // Pairs with the fence in vcpu::run::enter.
        core::sync::atomic::fence(Ordering::SeqCst);
        for (_, slot) in self.vcpus.iter().enumerate().filter(|(n, _)| mask & (1 << n) != 0) {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: vCPUs live as long as the VM.
                unsafe { &*p }.kick();
            }
        }
    }

    /// Like [`Vm::kick`], from any context (an irqfd's callback).
    pub fn kick_atomic(&self, mask: u64) {
        core::sync::atomic::fence(Ordering::SeqCst);
        for (_, slot) in self.vcpus.iter().enumerate().filter(|(n, _)| mask & (1 << n) != 0) {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: vCPUs live as long as the VM.
                unsafe { &*p }.kick_atomic();
            }
        }
    }

    /// `VM_IOEVENTFD`: the range must lie in the address space, outside
    /// guest RAM and the vGIC's frames (if attached; attaching later checks
    /// the other way round).
    /// `owner` is the VM's open file it comes through: closing that file
    /// removes the registration.
    pub fn ioeventfd(&self, r: &VmIoeventfd, owner: usize) -> Result<(), Errno> {
        // Held throughout, as attach_vgic holds it while checking the
        // ioeventfds: the two cannot pass each other's checks.
        let vgic = self.vgic_lock();
        let limit = self.mem.lock().stage2().geometry().ipa_limit();
        let reserved =
            |a: u64, l: u64| self.mem.lock().overlaps(a, l) || vgic.as_ref().is_some_and(|g| g.overlaps(a, l));
        self.iofds.ioeventfd(r, owner, limit, reserved)
    }

    /// `VM_IRQFD` through the VM's open file `owner`. An SPI that loses its
    /// last resampling irqfd has its line lowered (nobody would lower it
    /// otherwise).
    pub fn irqfd(&self, r: &VmIrqfd, owner: usize) -> Result<(), Errno> {
        let lowered = self.iofds.irqfd(self as *const Vm as *const core::ffi::c_void, r, owner)?;
        self.lower_spis(lowered);
        Ok(())
    }

    /// The VM's open file `owner` is being closed: the ioeventfds and irqfds
    /// registered through it go (the process that made them is done with them).
    pub fn release_owner(&self, owner: usize) {
        let lowered = self.iofds.release(owner);
        self.lower_spis(lowered);
    }

    /// Lowers the lines of the SPIs in `lowered` (bit n: INTID 32 + n).
    fn lower_spis(&self, lowered: crate::iofd::irqfd::SpiMask) {
        if lowered != 0 {
            if let Some(g) = self.vgic_lock().as_mut() {
                for n in (0..128).filter(|n| lowered & (1 << n) != 0) {
                    let _ = g.set_spi_line(crate::vgic::SPI_BASE + n, false);
                }
            }
        }
    }

    /// An irqfd of this VM fired (interrupts off, a spinlock held): noted
    /// for the vGIC, every vCPU kicked (the SPI's routing is behind the
    /// vGIC's mutex; the ones it is not for find nothing new and go back).
    pub fn irqfd_fire(&self, spi: u32, level: bool) {
        self.iofds.fire(spi, level);
        // Whichever vCPU enters next takes it in (see vgic_flush).
        self.vgic_dirty.fetch_or(u64::MAX, Ordering::SeqCst);
        self.kick_atomic(u64::MAX);
    }

    /// Moves the SPIs irqfds fired into the vGIC (its lock held). On every
    /// entry: with nothing fired it costs a few loads.
    fn take_irqfds(&self, vgic: &mut Vgic) {
        let (edges, levels) = self.iofds.take_fired();
        let mut todo = edges | levels;
        while todo != 0 {
            let n = todo.trailing_zeros();
            todo &= todo - 1;
            let intid = crate::vgic::SPI_BASE + n;
            if edges & (1 << n) != 0 {
                vgic.pulse_spi(intid);
            }
            if levels & (1 << n) != 0 {
                let _ = vgic.set_spi_line(intid, true);
            }
        }
    }

    /// Runs `f` on the vGIC as a vCPU about to enter would find it (irqfds
    /// taken in), for tests.
    #[cfg(test)]
    pub fn with_vgic<R>(&self, f: impl FnOnce(&mut Vgic) -> R) -> Option<R> {
        let mut g = self.vgic_lock();
        let vgic = g.as_mut()?;
        self.take_irqfds(vgic);
        Some(f(vgic))
    }

    /// `VM_ATTACH_VGIC`: a GICv3 at the given addresses, once.
    pub fn attach_vgic(&self, d: &VmVgicDescr) -> Result<(), Errno> {
        if self.nr_lrs == 0 {
            return Err(ENODEV);
        }
        let mut slot = self.vgic_lock();
        if slot.is_some() {
            return Err(EEXIST);
        }
        let nr = {
            let mem = self.mem.lock();
            let limit = mem.stage2().geometry().ipa_limit();
            Vgic::check(d, limit, |a, l| mem.overlaps(a, l) || self.iofds.ioevent_overlaps(a, l))?
        };
        // SAFETY: all-zero bytes are a valid Vgic (integers and bools).
        let mut g = unsafe { KBox::<Vgic>::try_new_zeroed() }?;
        g.init(d, nr, crate::vcpu::mpidr_of);
        *slot = Some(g);
        Ok(())
    }

    /// `VM_ASSERT_IRQ` / `VM_DEASSERT_IRQ`: an SPI's line.
    pub fn set_irq_line(&self, intid: u32, level: bool) -> Result<(), Errno> {
        let mut g = self.vgic_lock();
        g.as_mut().ok_or(ENODEV)?.set_spi_line(intid, level)?;
        drop(g);
        if level {
            self.kick(u64::MAX);
        }
        Ok(())
    }

    /// Before entering vCPU `id`: its timers' lines (at physical count
    /// `count`) into the vGIC, then the interrupts it should see into its
    /// list registers. While the vCPU had nothing to see at its last entry
    /// (`quiet`), nothing marked it since and its timers' lines stand as
    /// they were, the lock and the scan are skipped: the common case of
    /// exits that do not touch interrupts. Returns how many list registers
    /// were filled.
    pub fn vgic_flush(&self, id: usize, ctx: &mut Context, count: u64, q: &mut Quiet) -> usize {
        let lines = self.timer_line_pair(ctx, count);
        let bit = 1u64 << (id % 64);
        if q.quiet && q.lines == lines && self.vgic_dirty.load(Ordering::SeqCst) & bit == 0 {
            ctx.vgic.nr_lrs = self.nr_lrs as u64;
            ctx.vgic.hcr = ICH_HCR_EN;
            ctx.vgic.lrs = [0; 16];
            return 0;
        }
        q.quiet = false;
        let mut g = self.vgic_lock();
        let Some(vgic) = g.as_mut().filter(|v| id < v.nr_redists()) else {
            ctx.vgic.nr_lrs = 0;
            return 0;
        };
        vgic.set_ppi_line(id, VTIMER_PPI, lines.0);
        vgic.set_ppi_line(id, PTIMER_PPI, lines.1);
        self.take_irqfds(vgic);
        // What is below is built from the state as it stands under the
        // lock: this vCPU's own mark is consumed; changes after the lock is
        // released mark it again.
        let others = vgic.take_dirty() & !bit;
        if others != 0 {
            self.vgic_dirty.fetch_or(others, Ordering::SeqCst);
        }
        self.vgic_dirty.fetch_and(!bit, Ordering::SeqCst);
        ctx.vgic.nr_lrs = self.nr_lrs as u64;
        ctx.vgic.hcr = ICH_HCR_EN;
        let Some(mut view) = vgic.view(id) else { return 0 };
        let f = view.flush(self.nr_lrs);
        ctx.vgic.lrs = [0; 16];
        ctx.vgic.lrs[..f.n].copy_from_slice(&f.lrs[..f.n]);
        if f.overflow {
            ctx.vgic.hcr |= ICH_HCR_UIE;
        }
        *q = Quiet { quiet: f.n == 0, lines };
        f.n
    }

    /// Whether something marked vCPU `id` since its last flush (checked
    /// after it announced it is running: see `vcpu::run::enter`).
    pub fn vgic_marked(&self, id: usize) -> bool {
        self.vgic_dirty.load(Ordering::SeqCst) & (1 << (id % 64)) != 0
    }

    /// The vGIC, locked; the vCPUs its changes concern are published
    /// when the guard goes.
    fn vgic_lock(&self) -> VgicGuard<'_> {
        VgicGuard { g: self.vgic.lock(), dirty: &self.vgic_dirty }
    }

    /// After vCPU `id` exits: what the guest did with the `listed`
    /// interrupts it was shown.
    pub fn vgic_fold(&self, id: usize, ctx: &Context, listed: usize) {
        if ctx.vgic.nr_lrs == 0 || listed == 0 {
            return;
        }
        let mut g = self.vgic_lock();
        let done = match g.as_mut() {
            Some(v) => {
                // What the guest did with them may let others through.
                v.mark(id);
                v.view(id).map_or(0, |mut view| view.fold(&ctx.vgic.lrs[..listed.min(16)], self.iofds.resampled()))
            }
            None => 0,
        };
        drop(g);
        if done != 0 {
            self.iofds.notify_resample(done);
        }
    }

    /// The lines of a vCPU's (virtual, physical) timers at physical count `count`.
    fn timer_line_pair(&self, ctx: &Context, count: u64) -> (bool, bool) {
        let vtimer = Timer { ctl: ctx.timer[0], cval: ctx.timer[1] };
        let ptimer = Timer { ctl: ctx.ptimer[0], cval: ctx.ptimer[1] };
        (vtimer.line(count.wrapping_sub(self.cntvoff)), ptimer.line(count))
    }

    /// Sets vCPU `id`'s timer PPIs as its timers stand at physical count `count`.
    fn timer_lines(&self, vgic: &mut Vgic, id: usize, ctx: &Context, count: u64) {
        let (v, p) = self.timer_line_pair(ctx, count);
        vgic.set_ppi_line(id, VTIMER_PPI, v);
        vgic.set_ppi_line(id, PTIMER_PPI, p);
    }

    /// Whether vCPU `id`, in WFI, has an interrupt to take, its timers
    /// judged at physical count `count`.
    pub fn has_interrupt(&self, id: usize, ctx: &Context, count: u64) -> bool {
        let mut g = self.vgic_lock();
        let Some(vgic) = g.as_mut() else { return false };
        self.timer_lines(vgic, id, ctx, count);
        self.take_irqfds(vgic);
        vgic.has_deliverable(id)
    }

    /// Nanoseconds from physical count `now` until the nearest deadline of
    /// the vCPU's timers that is still to come. A timer already due raises
    /// its interrupt through the list registers; waking the host for it
    /// again would only interrupt the guest that is about to handle it.
    /// Judge "due" with the same `now` the lines were computed with, or a
    /// deadline falling in between would be neither.
    pub fn next_timer_ns(&self, ctx: &Context, now: u64) -> Option<u64> {
        let deadline = self.next_timer(ctx, now)?;
        Some(ticks_to_ns(deadline - now, crate::arch::counter_freq()))
    }

    /// The physical count of the nearest deadline of the vCPU's timers
    /// that is still to come at `now` (see [`Vm::next_timer_ns`]).
    pub fn next_timer(&self, ctx: &Context, now: u64) -> Option<u64> {
        let vtimer = Timer { ctl: ctx.timer[0], cval: ctx.timer[1] };
        let ptimer = Timer { ctl: ctx.ptimer[0], cval: ctx.ptimer[1] };
        // Both in the physical count: the virtual one is offset by CNTVOFF.
        let v = vtimer.deadline().map(|c| c.wrapping_add(self.cntvoff)).filter(|&d| d > now);
        let p = ptimer.deadline().filter(|&d| d > now);
        match (v, p) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// vCPU `id`, created on first use.
    pub fn vcpu(&self, id: i32) -> Result<&Vcpu, Errno> {
        let id = usize::try_from(id).map_err(|_| EINVAL)?;
        let slot = self.vcpus.get(id).ok_or(EINVAL)?;
        let p = slot.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: vCPUs live as long as the VM.
            return Ok(unsafe { &*p });
        }
        let new = KBox::into_raw(KBox::try_new(Vcpu::new(id, self.vttbr, self.vtcr, self.cntvoff, self.midr)?)?);
        match slot.compare_exchange(null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: just published; lives as long as the VM.
            Ok(_) => Ok(unsafe { &*new }),
            Err(other) => {
                // SAFETY: `new` was never shared.
                drop(unsafe { KBox::from_raw(new) });
                // SAFETY: as above.
                Ok(unsafe { &*other })
            }
        }
    }

    /// `VM_REINIT`: ready for a new boot. Every vCPU is held while the VM is
    /// reset, so none can run meanwhile (`EBUSY` if one is running).
    pub fn reinit(&self) -> Result<(), Errno> {
        let mut held: [Option<crate::vcpu::VcpuGuard<'_>>; VM_MAXCPU] = [const { None }; VM_MAXCPU];
        for (slot, h) in self.vcpus.iter().zip(held.iter_mut()) {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: vCPUs live as long as the VM.
                *h = Some(unsafe { &*p }.try_lock()?);
            }
        }
        for g in held.iter_mut().flatten() {
            g.reset();
            g.active = false;
        }
        // The next bhyve attaches a GIC sized for its own vCPU count, and
        // registers its devices' eventfds again.
        *self.vgic_lock() = None;
        self.iofds.clear();
        self.active.store(0, Ordering::Release);
        self.suspended.store(SuspendHow::None as u32, Ordering::Release);
        Ok(())
    }

    /// `VM_ACTIVATE_CPU`: reset state, active.
    pub fn activate(&self, id: i32) -> Result<(), Errno> {
        let vcpu = self.vcpu(id)?;
        vcpu.try_lock()?.reset();
        self.active.fetch_or(1 << vcpu.id, Ordering::AcqRel);
        Ok(())
    }

    /// The mask of active vCPUs.
    pub fn active_mask(&self) -> u64 {
        self.active.load(Ordering::Acquire)
    }

    /// The memory, locked.
    pub fn memory(&self) -> kernel::KLockGuard<'_, VmMemory> {
        self.mem.lock()
    }

    /// The VM as the exit handler of vCPU `id` sees it.
    pub fn env(&self, id: usize) -> VcpuEnv<'_> {
        VcpuEnv { vm: self, id }
    }

    /// The most memory the host could give a VM.
    pub fn host_limit() -> u64 {
        kernel::totalram_bytes()
    }

    /// `VM_MUNMAP_MEMSEG`: the mapping goes from stage 2, and every CPU's
    /// TLB entries of the VM with it, before this returns (under the memory
    /// lock, so that no fault maps a page of it again meanwhile).
    pub fn munmap_memseg(&self, u: &vmm_uapi::VmMunmap) -> Result<(), Errno> {
        let mut mem = self.mem.lock();
        if mem.munmap_memseg(&mut KernelTables, u)? {
            crate::arch::tlbi_vmid(self.vttbr);
        }
        Ok(())
    }

    /// The pages from `gpa` on for userspace (an `mmap` fault), their PAs
    /// in `out`: how many (at least one), see [`VmMemory::touch_run`].
    pub fn user_pages(&self, gpa: u64, out: &mut [u64]) -> Result<usize, Errno> {
        self.mem.lock().touch_run(&mut KernelTables, &mut KernelGuestPages, gpa, out)
    }
}

/// What a vCPU's last list-register flush found, for the next one's
/// shortcut (see [`Vm::vgic_flush`]).
#[derive(Clone, Copy, Default)]
pub struct Quiet {
    /// Nothing was listed.
    pub quiet: bool,
    /// The (virtual, physical) timer lines it was judged with.
    pub lines: (bool, bool),
}

/// The locked vGIC (see [`Vm::vgic_lock`]).
struct VgicGuard<'a> {
    g: kernel::KLockGuard<'a, Option<KBox<Vgic>>>,
    dirty: &'a AtomicU64,
}

impl core::ops::Deref for VgicGuard<'_> {
    type Target = Option<KBox<Vgic>>;
    fn deref(&self) -> &Self::Target {
        &self.g
    }
}

impl core::ops::DerefMut for VgicGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.g
    }
}

impl Drop for VgicGuard<'_> {
    fn drop(&mut self) {
        // Before the lock goes (fields drop after this): a vCPU that takes
        // the lock next sees its mark no later than the state it stands for.
        if let Some(d) = self.g.as_mut().map(|v| v.take_dirty()).filter(|&d| d != 0) {
            self.dirty.fetch_or(d, Ordering::SeqCst);
        }
    }
}

/// The VM as the exit handler of one vCPU sees it.
pub struct VcpuEnv<'a> {
    vm: &'a Vm,
    id: usize,
}

impl Env for VcpuEnv<'_> {
    fn ioeventfd(&mut self, ipa: u64, size: u8, value: u64) -> bool {
        self.vm.iofds.guest_write(ipa, size, value)
    }

    fn is_ram(&self, ipa: u64) -> bool {
        self.vm.mem.lock().is_ram(ipa)
    }

    fn is_read_only(&self, ipa: u64) -> bool {
        self.vm.mem.lock().is_read_only(ipa)
    }

    fn fault_in(&mut self, ipa: u64) -> bool {
        self.vm.mem.lock().touch(&mut KernelTables, &mut KernelGuestPages, ipa, Toucher::Guest).is_ok()
    }

    fn kernel_mmio(&mut self, ipa: u64, size: u8, write: bool, data: u64) -> Option<u64> {
        let v = self.vm.vgic_lock().as_mut()?.mmio(ipa, size, write, data);
        // A write may have made interrupts pending or enabled for others.
        if write && v.is_some() {
            self.vm.kick(!(1 << self.id));
        }
        v
    }

    fn send_sgi(&mut self, value: u64) {
        let targets = self.vm.vgic_lock().as_mut().map_or(0, |g| g.send_sgi(self.id, value));
        self.vm.kick(targets & !(1 << self.id));
    }

    fn counter(&self) -> u64 {
        crate::arch::counter()
    }

    fn id_reg(&self, crm: u32, op2: u32) -> u64 {
        self.vm.id_regs.get(crm, op2)
    }

    fn clean_guest_memory(&mut self) {
        let mem = self.vm.mem.lock();
        let mut n = 0u32;
        mem.for_each_mapped(&mut KernelTables, |pa| {
            kernel::clean_to_poc(pa);
            n += 1;
            // Half a GiB is 131,072 pages: let others run now and then.
            if n.is_multiple_of(512) {
                kernel::cond_resched();
            }
        });
    }
}

/// List registers per CPU, asked of EL2 once (0: no GICv3 for guests).
fn gic_list_registers() -> usize {
    static LRS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(usize::MAX);
    let n = LRS.load(Ordering::Relaxed);
    if n != usize::MAX {
        return n;
    }
    let n = crate::arch::gic_list_registers().min(16);
    LRS.store(n, Ordering::Relaxed);
    n
}

/// The guest's view of the ID registers S3_0_C0_C1..7_0..7, fixed when the
/// VM is made: every vCPU sees the same values on any host CPU, and a
/// trapped read is a load (the kernel's sanitised values are behind a
/// table search).
pub struct IdRegs([u64; 7 * 8]);

impl IdRegs {
    /// The host's registers as the guest sees them: the kernel's
    /// system-wide values where it has them; AArch32's from this CPU.
    fn new() -> Self {
        let mut regs = [0; 7 * 8];
        for (i, r) in regs.iter_mut().enumerate() {
            let (crm, op2) = (i as u32 / 8 + 1, i as u32 % 8);
            let host = if crate::vcpu::idregs::is_allowed(crm, op2) {
                kernel::sanitised_id_reg(crm, op2)
            } else {
                crate::arch::id_reg(crm, op2)
            };
            *r = crate::vcpu::idregs::sanitise(crm, op2, host);
        }
        Self(regs)
    }

    /// S3_0_C0_C`crm`_`op2` (0 outside CRm 1..=7).
    pub fn get(&self, crm: u32, op2: u32) -> u64 {
        let i = (crm as usize).wrapping_sub(1) * 8 + (op2 as usize & 7);
        if (1..=7).contains(&crm) {
            self.0[i]
        } else {
            0
        }
    }
}

/// A counted reference to a [`Vm`].
pub struct VmRef(NonNull<Vm>);

// SAFETY: Vm's shared state is atomics, locks and immutable data.
unsafe impl Send for VmRef {}
// SAFETY: as above.
unsafe impl Sync for VmRef {}

impl VmRef {
    /// A new VM called `name` (already validated), with one reference: a
    /// VMID, empty stage-2 tables, a counter starting near zero.
    pub fn new(name: &[u8]) -> Result<Self, Errno> {
        let mut buf = [0u8; VM_NAME_BUF];
        let len = name.len().min(VM_NAME_BUF - 1);
        buf[..len].copy_from_slice(&name[..len]);
        let parange = crate::arch::parange();
        let geo = Geometry::new(Geometry::parange_bits(parange));
        let vmid = VMIDS.alloc().ok_or(ENOSPC)?;
        // A failure from here on gives back the VMID and the tables made so far.
        let undo = |mem: Option<VmMemory>| {
            if let Some(m) = mem {
                m.destroy(&mut KernelTables, &mut KernelGuestPages);
            }
            VMIDS.free(vmid);
        };
        let vgic = KLock::new(None).inspect_err(|_| undo(None))?;
        let iofds = IoFds::new().inspect_err(|_| undo(None))?;
        let mem = VmMemory::new(&mut KernelTables, geo).inspect_err(|_| undo(None))?;
        let mem = KLock::try_new_or_return(mem).map_err(|m| {
            undo(Some(m));
            ENOMEM
        })?;
        let vttbr = mem.lock().stage2().vttbr(vmid);
        let vm = KBox::try_new_or_return(Vm {
            refs: AtomicUsize::new(1),
            destroyed: AtomicBool::new(false),
            suspended: AtomicU32::new(SuspendHow::None as u32),
            name: buf,
            name_len: len,
            vmid,
            vttbr,
            vtcr: geo.vtcr(parange),
            cntvoff: crate::arch::counter(),
            midr: crate::arch::midr(),
            id_regs: IdRegs::new(),
            mem,
            vcpus: [const { AtomicPtr::new(null_mut()) }; VM_MAXCPU],
            active: AtomicU64::new(0),
            vgic,
            vgic_dirty: AtomicU64::new(0),
            nr_lrs: gic_list_registers(),
            iofds,
        })
        .map_err(|vm| {
            undo(Some(vm.mem.into_inner()));
            ENOMEM
        })?;
        // SAFETY: into_raw never returns null.
        Ok(VmRef(unsafe { NonNull::new_unchecked(KBox::into_raw(vm)) }))
    }

    /// Gives up this reference as a pointer (a file's private data).
    pub fn into_raw(self) -> *mut Vm {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    /// Takes back a reference given up with [`VmRef::into_raw`].
    ///
    /// # Safety
    /// `p` came from `into_raw` and that reference is not used again.
    pub unsafe fn from_raw(p: *mut Vm) -> Self {
        // SAFETY: into_raw never yields null.
        VmRef(unsafe { NonNull::new_unchecked(p) })
    }

    /// Borrows a reference held as a raw pointer, without taking it back.
    ///
    /// # Safety
    /// `p` came from [`VmRef::into_raw`] and that reference outlives `'a`.
    pub unsafe fn borrow_raw<'a>(p: *mut Vm) -> &'a Vm {
        // SAFETY: the caller's contract keeps the VM alive.
        unsafe { &*p }
    }

    /// Number of references (for tests and diagnostics).
    pub fn refs(&self) -> usize {
        self.refs.load(Ordering::Acquire)
    }
}

impl Clone for VmRef {
    fn clone(&self) -> Self {
        self.refs.fetch_add(1, Ordering::Relaxed);
        VmRef(self.0)
    }
}

impl core::ops::Deref for VmRef {
    type Target = Vm;
    fn deref(&self) -> &Vm {
        // SAFETY: we hold a reference, so the VM is alive.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for VmRef {
    fn drop(&mut self) {
        if self.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        core::sync::atomic::fence(Ordering::Acquire);
        // Irqfd callbacks hold the VM's address: unhook them while it is
        // still where they point (the VM moves out of its box below).
        // SAFETY: that was the last reference; nothing else uses the VM.
        unsafe { self.0.as_ref() }.iofds.clear();
        // SAFETY: that was the last reference; the box came from VmRef::new.
        let vm = KBox::into_inner(unsafe { KBox::from_raw(self.0.as_ptr()) });
        // No vCPU can run: running needs a reference. Free the vCPUs, drop
        // the VMID's TLB entries everywhere, then give the pages back.
        for slot in &vm.vcpus {
            let p = slot.swap(null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: created by Vm::vcpu with KBox::into_raw, unused now.
                drop(unsafe { KBox::from_raw(p) });
            }
        }
        crate::arch::tlbi_vmid(vm.vttbr);
        let Vm { mem, vmid, vgic, .. } = vm;
        drop(vgic);
        mem.into_inner().destroy(&mut KernelTables, &mut KernelGuestPages);
        VMIDS.free(vmid);
    }
}

/// An irqfd's callback: the VM at `vm` fired SPI `spi`.
pub fn irqfd_fire_raw(vm: *const core::ffi::c_void, spi: u32, level: bool) {
    if !vm.is_null() {
        // SAFETY: hooks are unhooked (IoFds::clear) before their VM is freed
        // or moved, and no callback runs after that returns.
        unsafe { &*(vm as *const Vm) }.irqfd_fire(spi, level);
    }
}
