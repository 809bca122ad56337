//! List registers: which interrupts a vCPU is shown on entry (`flush`), and
//! what the guest did with them, read back on exit (`fold`). The EL2 code
//! only copies the values in and out of `ICH_LR<n>_EL2`.
//!
//! Level-sensitive interrupts ask for a maintenance interrupt on EOI, so
//! the line is looked at again once the guest is done with one; edge and
//! software-pended interrupts move their pending state into the list
//! register and take it back if the guest has not acknowledged it.

use super::dist::{Dist, CTLR_ENABLE_G0, CTLR_ENABLE_G1, IROUTER_IRM};
use super::irq::Irq;
use super::redist::Redist;

/// Most list registers the architecture allows.
pub const MAX_LRS: usize = 16;
/// ICH_LR.State pending.
pub const LR_PENDING: u64 = 1 << 62;
/// ICH_LR.State active.
pub const LR_ACTIVE: u64 = 1 << 63;
/// ICH_LR.HW: a physical interrupt is linked.
pub const LR_HW: u64 = 1 << 61;
/// ICH_LR.Group: group 1.
pub const LR_GROUP1: u64 = 1 << 60;
/// ICH_LR.EOI (with HW clear): a maintenance interrupt when the guest EOIs it.
pub const LR_EOI: u64 = 1 << 41;

/// What to load into the list registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// The values, `n` of them used.
    pub lrs: [u64; MAX_LRS],
    /// How many.
    pub n: usize,
    /// More interrupts were waiting than fit: ask for a maintenance
    /// interrupt when the list registers drain (ICH_HCR_EL2.UIE).
    pub overflow: bool,
}

/// The vCPU's view: its redistributor, the distributor, and whether SPIs
/// routed "to any PE" (IRM) land on it.
pub struct View<'a> {
    /// The distributor.
    pub dist: &'a mut Dist,
    /// This vCPU's redistributor.
    pub redist: &'a mut Redist,
    /// Receives IRM-routed SPIs (one vCPU of the VM does).
    pub irm_target: bool,
}

/// MPIDR affinity (Aff3 in [39:32], Aff2.Aff1.Aff0 in [23:0]).
fn affinity(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

impl View<'_> {
    fn spi_is_ours(&self, irq: &Irq) -> bool {
        if irq.route & IROUTER_IRM != 0 {
            self.irm_target
        } else {
            affinity(irq.route) == affinity(self.redist.mpidr)
        }
    }

    fn group_enabled(&self, irq: &Irq) -> bool {
        let bit = if irq.group1 { CTLR_ENABLE_G1 } else { CTLR_ENABLE_G0 };
        self.dist.enables & bit != 0
    }

    /// Whether interrupt `intid` is for this vCPU and could be signalled now
    /// (what [`View::flush`] lists as pending).
    fn signalable(&self, intid: u32) -> Option<Irq> {
        let irq = *self.irq(intid)?;
        let ours = intid < 32 || self.spi_is_ours(&irq);
        (ours && irq.deliverable() && self.group_enabled(&irq) && !self.redist.asleep).then_some(irq)
    }

    /// Whether anything could be signalled to this vCPU (a WFI ends).
    pub fn has_pending(&self) -> bool {
        (0..super::NR_IRQS).any(|i| self.signalable(i).is_some())
    }

    /// Chooses up to `nr_lrs` interrupts for the list registers: active ones
    /// first (the guest must be able to deactivate them), then pending ones
    /// by priority, then by INTID.
    pub fn flush(&mut self, nr_lrs: usize) -> Flushed {
        let nr_lrs = nr_lrs.min(MAX_LRS);
        // (active first, priority, intid)
        let mut cand: [(bool, u8, u32); super::NR_IRQS as usize] = [(false, 0, 0); super::NR_IRQS as usize];
        let mut m = 0;
        for intid in 0..super::NR_IRQS {
            let active = match self.irq(intid) {
                Some(q) if q.active && (intid < 32 || self.spi_is_ours(q)) => Some(*q),
                _ => None,
            };
            if let Some(irq) = active.or_else(|| self.signalable(intid)) {
                cand[m] = (!irq.active, irq.priority, intid);
                m += 1;
            }
        }
        let cand = &mut cand[..m];
        cand.sort_unstable();
        let mut out = Flushed { overflow: m > nr_lrs, ..Default::default() };
        for &(_, _, intid) in cand.iter().take(nr_lrs) {
            let Some(irq) = self.irq_mut(intid) else { continue };
            let mut lr = intid as u64 | (irq.priority as u64) << 48;
            if irq.group1 {
                lr |= LR_GROUP1;
            }
            if irq.active {
                lr |= LR_ACTIVE;
            }
            if irq.deliverable() || (irq.active && irq.pending_latch) {
                lr |= LR_PENDING;
                if irq.edge {
                    // The list register holds the pending state now.
                    irq.pending_latch = false;
                }
            }
            if !irq.edge {
                // A level-sensitive one is looked at again when the guest is
                // done with it (deactivation), listed pending or active.
                lr |= LR_EOI;
            }
            // While listed, our copy is not active: the LR says.
            irq.active = false;
            out.lrs[out.n] = lr;
            out.n += 1;
        }
        out
    }

    /// Takes back the state of the list registers the guest ran with.
    /// Level-sensitive SPIs in `resampled` (irqfds with a resample eventfd)
    /// that the guest completed (their list register went invalid) have
    /// their line lowered; they are returned, bit n for INTID 32 + n.
    pub fn fold(&mut self, lrs: &[u64], resampled: u128) -> u128 {
        let mut done = 0;
        for &lr in lrs {
            let intid = (lr & 0xffff_ffff) as u32;
            let Some(irq) = self.irq_mut(intid) else { continue };
            irq.active = lr & LR_ACTIVE != 0;
            let pending = lr & LR_PENDING != 0;
            if irq.edge {
                if pending {
                    // Not acknowledged yet: pending again in our state.
                    irq.pending_latch = true;
                }
            } else if !pending {
                // Acknowledged: a latched (ISPENDR, irqfd) pending state is
                // consumed; one still listed pending keeps it.
                irq.pending_latch = false;
                let bit = intid.checked_sub(super::SPI_BASE).map_or(0, |n| 1u128 << n);
                if !irq.active && resampled & bit != 0 {
                    irq.line = false;
                    done |= bit;
                }
            }
        }
        done
    }

    fn irq(&self, intid: u32) -> Option<&Irq> {
        match intid {
            0..=31 => self.redist.private.get(intid as usize),
            _ => self.dist.spi(intid as usize),
        }
    }

    fn irq_mut(&mut self, intid: u32) -> Option<&mut Irq> {
        match intid {
            0..=31 => self.redist.private.get_mut(intid as usize),
            _ => self.dist.spi_mut(intid as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Dist, Redist) {
        let mut d = Dist { enables: CTLR_ENABLE_G1, ..Default::default() };
        let mut r = Redist::new(0, 0x8000_0000, true);
        r.asleep = false;
        for q in r.private.iter_mut().chain(d.spis.iter_mut()) {
            q.group1 = true;
            q.enabled = true;
            q.priority = 0xa0;
        }
        (d, r)
    }

    #[test]
    fn an_sgi_moves_into_a_list_register_and_back() {
        let (mut d, mut r) = setup();
        r.private[3].pending_latch = true;
        let mut v = View { dist: &mut d, redist: &mut r, irm_target: true };
        let f = v.flush(4);
        assert_eq!(f.n, 1);
        assert_eq!(f.lrs[0], 3 | LR_PENDING | LR_GROUP1 | 0xa0 << 48);
        assert!(!v.redist.private[3].pending_latch, "the LR holds it");
        // The guest did not get to it: pending again.
        v.fold(&f.lrs[..1], 0);
        assert!(v.redist.private[3].pending_latch);
        // The guest acknowledged it: active, not pending.
        let f = v.flush(4);
        v.fold(&[f.lrs[0] & !LR_PENDING | LR_ACTIVE], 0);
        assert!(v.redist.private[3].active && !v.redist.private[3].pending());
        // Active ones stay listed until deactivated.
        let f = v.flush(4);
        assert_eq!(f.lrs[0] & (LR_ACTIVE | LR_PENDING), LR_ACTIVE);
        v.fold(&[f.lrs[0] & !LR_ACTIVE], 0);
        assert!(!v.redist.private[3].active);
        assert_eq!(v.flush(4).n, 0);
    }

    #[test]
    fn a_level_interrupt_asks_for_eoi_and_follows_its_line() {
        let (mut d, mut r) = setup();
        r.private[27].line = true; // the virtual timer's PPI, level
        let mut v = View { dist: &mut d, redist: &mut r, irm_target: true };
        let f = v.flush(4);
        assert_eq!(f.lrs[0] & (LR_PENDING | LR_EOI), LR_PENDING | LR_EOI);
        v.fold(&[f.lrs[0] & !LR_PENDING], 0); // acknowledged and EOIed
        assert!(v.redist.private[27].pending(), "the line is still high");
        v.redist.private[27].set_line(false);
        assert_eq!(v.flush(4).n, 0);
    }

    #[test]
    fn a_latched_level_interrupt_waits_for_its_acknowledgement() {
        let (mut d, mut r) = setup();
        d.spi_mut(40).unwrap().pending_latch = true; // level, latched (an irqfd edge)
        let mut v = View { dist: &mut d, redist: &mut r, irm_target: true };
        let f = v.flush(4);
        assert_eq!(f.lrs[0] & (LR_PENDING | LR_EOI), LR_PENDING | LR_EOI);
        v.fold(&f.lrs[..1], 0); // an exit before the guest took it
        assert!(v.dist.spi(40).unwrap().pending(), "not lost");
        let f = v.flush(4);
        v.fold(&[f.lrs[0] & !LR_PENDING | LR_ACTIVE], 0); // acknowledged
        assert!(!v.dist.spi(40).unwrap().pending_latch, "consumed");
        // Listed again as active, still asking for the EOI maintenance.
        let f = v.flush(4);
        assert_eq!(f.lrs[0] & (LR_ACTIVE | LR_PENDING | LR_EOI), LR_ACTIVE | LR_EOI);
    }

    #[test]
    fn a_completed_resampled_spi_is_lowered_and_reported() {
        let (mut d, mut r) = setup();
        d.spi_mut(41).unwrap().set_line(true);
        d.spi_mut(42).unwrap().set_line(true);
        let watch = 1u128 << 9; // INTID 41 only
        let mut v = View { dist: &mut d, redist: &mut r, irm_target: true };
        let f = v.flush(4);
        assert_eq!(f.n, 2);
        // Acknowledged, not yet EOIed: nothing done.
        let acked: Vec<u64> = f.lrs[..2].iter().map(|l| l & !LR_PENDING | LR_ACTIVE).collect();
        assert_eq!(v.fold(&acked, watch), 0);
        // Deactivated: 41 is lowered and reported, 42 (no resampler) stays high.
        let f = v.flush(4);
        let done: Vec<u64> = f.lrs[..2].iter().map(|l| l & !(LR_PENDING | LR_ACTIVE)).collect();
        assert_eq!(v.fold(&done, watch), watch);
        assert!(!v.dist.spi(41).unwrap().line && v.dist.spi(42).unwrap().line);
        let f = v.flush(4);
        assert_eq!((f.n, f.lrs[0] & 0xffff), (1, 42));
    }

    #[test]
    fn priority_order_overflow_and_routing() {
        let (mut d, mut r) = setup();
        for (intid, prio) in [(33usize, 0x80u8), (34, 0x10), (35, 0x40)] {
            let q = d.spi_mut(intid).unwrap();
            q.priority = prio;
            q.pending_latch = true;
        }
        d.spi_mut(34).unwrap().route = 0x0000_0001; // another vCPU (Aff0 = 1)
        d.spi_mut(35).unwrap().route = IROUTER_IRM;
        r.private[1].pending_latch = true;
        let mut v = View { dist: &mut d, redist: &mut r, irm_target: true };
        let f = v.flush(2);
        let ids: Vec<u64> = f.lrs[..f.n].iter().map(|l| l & 0xffff).collect();
        assert_eq!(ids, vec![35, 33], "by priority; 34 belongs to another vCPU");
        assert!(f.overflow, "SGI 1 did not fit");
    }

    #[test]
    fn nothing_when_disabled_asleep_or_group_off() {
        let (mut d, mut r) = setup();
        r.private[5].pending_latch = true;
        r.private[6].pending_latch = true;
        r.private[6].enabled = false;
        d.enables = 0;
        let mut v = View { dist: &mut d, redist: &mut r, irm_target: true };
        assert_eq!(v.flush(4).n, 0, "group 1 disabled");
        v.dist.enables = CTLR_ENABLE_G1;
        v.redist.asleep = true;
        assert_eq!(v.flush(4).n, 0, "redistributor asleep");
        v.redist.asleep = false;
        let f = v.flush(4);
        assert_eq!((f.n, f.lrs[0] & 0xffff), (1, 5), "the disabled one stays out");
    }
}
