//! The virtual GICv3: interrupt state as plain data ([`irq`]), the
//! distributor and redistributor registers as tables of descriptors
//! ([`dist`], [`redist`], over [`regs`]). Pure logic, tested on the build
//! machine; delivery through the list registers and their EL2 save/restore
//! build on it.
//!
//! The GIC shown to guests has a single security state (`GICD_CTLR.DS` = 1)
//! with affinity routing always on (`ARE`), group 1 for everything a
//! non-secure OS uses, [`NR_SPIS`] shared interrupts, and no LPIs or ITS.

pub mod dist;
pub mod irq;
pub mod lr;
pub mod redist;
pub mod regs;

/// Shared peripheral interrupts per VM (INTIDs 32 ..= 32 + NR_SPIS - 1).
pub const NR_SPIS: usize = 128;
/// Private interrupts per vCPU: SGIs 0..16 and PPIs 16..32.
pub const NR_PRIVATE: usize = 32;
/// First SPI.
pub const SPI_BASE: u32 = 32;
/// One past the last interrupt ID in use.
pub const NR_IRQS: u32 = SPI_BASE + NR_SPIS as u32;

/// GICD_IIDR / GICR_IIDR: implementer Arm (0x43b), product 0, revision 0,
/// variant 1 (what we are, not a copy of any one implementation).
pub const IIDR: u32 = 0x0100_043b;
/// PIDR2: architecture revision GICv3.
pub const PIDR2_GICV3: u32 = 0x3 << 4;

use crate::errno::{Errno, EINVAL};
use dist::Dist;
use lr::View;
use redist::{Redist, REDIST_SIZE};
use vmm_uapi::{VmVgicDescr, VM_MAXCPU};

/// ICC_SGI1R_EL1 fields.
mod sgir {
    pub const TARGET_LIST: u64 = 0xffff;
    pub const AFF1_SHIFT: u32 = 16;
    pub const INTID_SHIFT: u32 = 24;
    pub const AFF2_SHIFT: u32 = 32;
    pub const IRM: u64 = 1 << 40;
    pub const RS_SHIFT: u32 = 44;
    pub const AFF3_SHIFT: u32 = 48;
}

/// A VM's virtual GICv3.
pub struct Vgic {
    dist_base: u64,
    redist_base: u64,
    nr_redists: usize,
    /// The distributor.
    pub dist: Dist,
    /// One redistributor per vCPU that has one.
    pub redists: [Redist; VM_MAXCPU],
    /// A bit per vCPU that a change may show something new: an entry whose
    /// bit is clear (and that had nothing listed) skips the scan. Taken by
    /// the VM, which publishes the bits outside the lock (`Vm::vgic_lock`).
    dirty: u64,
}

impl Vgic {
    /// Checks a layout: the frames must be 64 KiB aligned, of the right
    /// sizes, below `ipa_limit`, apart from each other and from guest
    /// memory (`overlaps_ram`). Returns the number of redistributors.
    pub fn check(d: &VmVgicDescr, ipa_limit: u64, overlaps_ram: impl Fn(u64, u64) -> bool) -> Result<usize, Errno> {
        const ALIGN: u64 = 0x1_0000;
        let nr = (d.redist_size / REDIST_SIZE) as usize;
        let dist_end = d.dist_start.checked_add(d.dist_size).ok_or(EINVAL)?;
        let redist_end = d.redist_start.checked_add(d.redist_size).ok_or(EINVAL)?;
        let ok = d.dist_size == vmm_uapi::VGIC_DIST_SIZE
            && d.dist_start.is_multiple_of(ALIGN)
            && d.redist_start.is_multiple_of(ALIGN)
            && d.redist_size.is_multiple_of(REDIST_SIZE)
            && (1..=VM_MAXCPU).contains(&nr)
            && dist_end <= ipa_limit
            && redist_end <= ipa_limit
            && (dist_end <= d.redist_start || redist_end <= d.dist_start)
            && !overlaps_ram(d.dist_start, d.dist_size)
            && !overlaps_ram(d.redist_start, d.redist_size);
        if !ok {
            return Err(EINVAL);
        }
        Ok(nr)
    }

    /// Resets `self` in place to a GICv3 at the (checked) addresses of `d`
    /// with `nr` redistributors, for vCPUs whose MPIDR is `mpidr_of(n)`.
    /// In place: the structure is too large for a kernel stack.
    pub fn init(&mut self, d: &VmVgicDescr, nr: usize, mpidr_of: impl Fn(usize) -> u64) {
        self.dist_base = d.dist_start;
        self.redist_base = d.redist_start;
        self.nr_redists = nr.min(VM_MAXCPU);
        self.dirty = u64::MAX;
        self.dist.enables = 0;
        self.dist.spis = [Default::default(); NR_SPIS];
        for (i, r) in self.redists.iter_mut().enumerate() {
            *r = Redist::new(i as u32, mpidr_of(i), i + 1 == nr);
        }
    }

    /// Emulates an access if `ipa` is in one of our frames: `Some(value)`
    /// (the value read, or 0 for a write), `None` if it is not ours.
    pub fn mmio(&mut self, ipa: u64, size: u8, write: bool, data: u64) -> Option<u64> {
        if ipa.wrapping_sub(self.dist_base) < vmm_uapi::VGIC_DIST_SIZE {
            let off = ipa - self.dist_base;
            if write {
                // The distributor's state is every vCPU's.
                self.dirty = u64::MAX;
                self.dist.write(off, size, data);
                return Some(0);
            }
            return Some(self.dist.read(off, size));
        }
        let off = ipa.wrapping_sub(self.redist_base);
        let n = (off / REDIST_SIZE) as usize;
        let r = self.redists.get_mut(n).filter(|_| off < self.nr_redists as u64 * REDIST_SIZE)?;
        if write {
            r.write(off % REDIST_SIZE, size, data);
            self.dirty |= 1 << n;
            Some(0)
        } else {
            Some(r.read(off % REDIST_SIZE, size))
        }
    }

    /// Number of redistributors (vCPUs the GIC serves).
    pub fn nr_redists(&self) -> usize {
        self.nr_redists
    }

    /// The view of vCPU `vcpu` for list-register work; IRM-routed SPIs go
    /// to vCPU 0. Reading it changes nothing another vCPU sees (what it
    /// moves is this vCPU's); whoever changes this vCPU's state with it
    /// (a fold) marks it ([`Vgic::mark`]).
    pub fn view(&mut self, vcpu: usize) -> Option<View<'_>> {
        if vcpu >= self.nr_redists {
            return None;
        }
        Some(View { dist: &mut self.dist, redist: &mut self.redists[vcpu], irm_target: vcpu == 0 })
    }

    /// Whether vCPU `vcpu` has an interrupt it could take (to end a WFI).
    pub fn has_deliverable(&mut self, vcpu: usize) -> bool {
        self.view(vcpu).is_some_and(|v| v.has_pending())
    }

    /// A guest's write of `value` to ICC_SGI1R_EL1 on vCPU `from`: pends
    /// the SGI on the vCPUs it names. Returns them as a bit mask.
    pub fn send_sgi(&mut self, from: usize, value: u64) -> u64 {
        let intid = ((value >> sgir::INTID_SHIFT) & 0xf) as usize;
        let mut targets = 0u64;
        if value & sgir::IRM != 0 {
            targets = ((1u64 << self.nr_redists) - 1) & !(1 << from);
        } else {
            let aff3 = (value >> sgir::AFF3_SHIFT) & 0xff;
            let aff2 = (value >> sgir::AFF2_SHIFT) & 0xff;
            let aff1 = (value >> sgir::AFF1_SHIFT) & 0xff;
            let rs = (value >> sgir::RS_SHIFT) & 0xf;
            for bit in (0..16).filter(|b| value & sgir::TARGET_LIST & (1 << b) != 0) {
                let aff = aff3 << 32 | aff2 << 16 | aff1 << 8 | (rs * 16 + bit);
                if let Some(n) = (0..self.nr_redists).find(|&n| self.redists[n].mpidr & 0xff_00ff_ffff == aff) {
                    targets |= 1 << n;
                }
            }
        }
        for n in (0..self.nr_redists).filter(|n| targets & (1 << n) != 0) {
            self.redists[n].private[intid].pending_latch = true;
        }
        self.dirty |= targets;
        targets
    }

    /// Sets the line of SPI `intid` (userspace devices).
    pub fn set_spi_line(&mut self, intid: u32, level: bool) -> Result<(), Errno> {
        self.dist.spi_mut(intid as usize).ok_or(EINVAL)?.set_line(level);
        // Routed to one vCPU or to any: shown to whichever looks.
        self.dirty = u64::MAX;
        Ok(())
    }

    /// Latches SPI `intid` pending, as an edge on its line would whatever
    /// its configured trigger (an irqfd without resampling).
    pub fn pulse_spi(&mut self, intid: u32) {
        if let Some(q) = self.dist.spi_mut(intid as usize) {
            q.pending_latch = true;
            self.dirty = u64::MAX;
        }
    }

    /// Whether `[addr, addr + len)` meets the distributor's or the
    /// redistributors' frames.
    pub fn overlaps(&self, addr: u64, len: u64) -> bool {
        let meets = |base: u64, size: u64| addr < base.saturating_add(size) && base < addr.saturating_add(len);
        meets(self.dist_base, vmm_uapi::VGIC_DIST_SIZE) || meets(self.redist_base, self.nr_redists as u64 * REDIST_SIZE)
    }

    /// Sets the line of vCPU `vcpu`'s PPI `intid` (its timers).
    pub fn set_ppi_line(&mut self, vcpu: usize, intid: u32, level: bool) {
        if let Some(q) = self.redists.get_mut(vcpu).and_then(|r| r.private.get_mut(intid as usize)) {
            if vcpu < self.nr_redists && q.line != level {
                q.set_line(level);
                self.dirty |= 1 << vcpu;
            }
        }
    }

    /// Marks vCPU `vcpu`'s state changed.
    pub fn mark(&mut self, vcpu: usize) {
        self.dirty |= 1 << (vcpu % 64);
    }

    /// The vCPUs changes may show something new since the last call.
    pub fn take_dirty(&mut self) -> u64 {
        core::mem::take(&mut self.dirty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descr(n: u64) -> VmVgicDescr {
        VmVgicDescr {
            dist_start: vmm_uapi::VGIC_DIST_BASE,
            dist_size: vmm_uapi::VGIC_DIST_SIZE,
            redist_start: vmm_uapi::VGIC_REDIST_BASE,
            redist_size: n * REDIST_SIZE,
        }
    }

    fn gic(n: u64) -> crate::kernel::KBox<Vgic> {
        let ram = |a: u64, l: u64| a < 0x8000_0000 && a + l > 0x4000_0000;
        let nr = Vgic::check(&descr(n), 1 << 40, ram).unwrap();
        // SAFETY: all-zero bytes are a valid Vgic (plain integers and bools).
        let mut g = unsafe { crate::kernel::KBox::<Vgic>::try_new_zeroed() }.unwrap();
        g.init(&descr(n), nr, crate::vcpu::mpidr_of);
        g
    }

    #[test]
    fn layouts_are_checked() {
        let ram = |a: u64, l: u64| a < 0x8000_0000 && a + l > 0x4000_0000;
        assert_eq!(Vgic::check(&descr(4), 1 << 40, ram), Ok(4));
        assert_eq!(Vgic::check(&descr(0), 1 << 40, ram), Err(EINVAL));
        assert_eq!(Vgic::check(&descr(33), 1 << 40, ram), Err(EINVAL));
        let mut d = descr(2);
        d.dist_start = 0x4000_0000;
        assert_eq!(Vgic::check(&d, 1 << 40, ram), Err(EINVAL), "over RAM");
        let mut d = descr(2);
        d.redist_start = d.dist_start;
        assert_eq!(Vgic::check(&d, 1 << 40, ram), Err(EINVAL), "frames overlap");
        let mut d = descr(2);
        d.dist_size = 0x2000;
        assert_eq!(Vgic::check(&d, 1 << 40, ram), Err(EINVAL));
        let mut d = descr(2);
        d.redist_start += 0x1000;
        assert_eq!(Vgic::check(&d, 1 << 40, ram), Err(EINVAL), "unaligned");
        let mut d = descr(2);
        d.redist_start = u64::MAX - 0x1_0000;
        assert_eq!(Vgic::check(&d, 1 << 40, ram), Err(EINVAL), "wraps");
    }

    #[test]
    fn frames_are_found_by_address() {
        let mut g = gic(2);
        assert_eq!(g.mmio(0x0800_ffe8, 4, false, 0), Some(0x30));
        // The second redistributor's TYPER: vCPU 1, Last.
        let typer = g.mmio(0x080a_0000 + REDIST_SIZE + 8, 8, false, 0).unwrap();
        assert_eq!((typer >> 32, (typer >> 8) & 0xffff, typer & 0x10), (1, 1, 0x10));
        assert_eq!(g.mmio(0x080a_0000 + 2 * REDIST_SIZE, 4, false, 0), None, "no third one");
        assert_eq!(g.mmio(0x0900_0000, 4, false, 0), None, "the UART is not ours");
        g.mmio(0x0800_0104, 4, true, 1);
        assert!(g.dist.spi(32).unwrap().enabled);
    }

    #[test]
    fn sgis_reach_their_targets() {
        let mut g = gic(4);
        // SGI 5 to Aff0 = 1 and 3.
        assert_eq!(g.send_sgi(0, 5 << 24 | 0b1010), 0b1010);
        assert!(g.redists[1].private[5].pending() && g.redists[3].private[5].pending());
        assert!(!g.redists[2].private[5].pending());
        // Broadcast to all but the sender.
        assert_eq!(g.send_sgi(2, 7 << 24 | sgir::IRM), 0b1011);
        // A target that does not exist is ignored.
        assert_eq!(g.send_sgi(0, 1 << 24 | 1 << 9), 0);
    }

    #[test]
    fn deliverable_is_a_question_not_an_action() {
        let mut g = gic(1);
        g.dist.enables = dist::CTLR_ENABLE_G1;
        g.redists[0].asleep = false;
        g.redists[0].private[1].enabled = true;
        g.redists[0].private[1].group1 = true;
        assert!(!g.has_deliverable(0));
        g.send_sgi(0, 1 << 24 | 1);
        assert!(g.has_deliverable(0));
        assert!(g.redists[0].private[1].pending_latch, "still pending afterwards");
        g.set_spi_line(40, true).unwrap();
        assert_eq!(g.set_spi_line(7, true), Err(EINVAL), "not an SPI");
    }
}
