//! The generic timers a guest sees: the EL1 virtual timer runs on the
//! hardware (its registers are switched with the guest); the EL1 physical
//! timer is the host's, so the guest's accesses to it trap and are
//! emulated here. Both raise a level-sensitive PPI while their condition
//! holds; the kernel computes that line at each exit and entry, and wakes
//! a blocked vCPU at the nearest deadline.

/// CNTx_CTL.ENABLE.
pub const CTL_ENABLE: u64 = 1 << 0;
/// CNTx_CTL.IMASK.
pub const CTL_IMASK: u64 = 1 << 1;
/// CNTx_CTL.ISTATUS (read-only).
pub const CTL_ISTATUS: u64 = 1 << 2;
/// The virtual timer's PPI.
pub const VTIMER_PPI: u32 = 27;
/// The EL1 physical timer's PPI.
pub const PTIMER_PPI: u32 = 30;

/// A timer's registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timer {
    /// CTL (ENABLE, IMASK; ISTATUS is computed).
    pub ctl: u64,
    /// CVAL, in the timer's count.
    pub cval: u64,
}

impl Timer {
    /// Whether the condition holds at `count` (ISTATUS).
    pub fn fired(&self, count: u64) -> bool {
        self.ctl & CTL_ENABLE != 0 && count >= self.cval
    }

    /// The interrupt line: fired and not masked.
    pub fn line(&self, count: u64) -> bool {
        self.fired(count) && self.ctl & CTL_IMASK == 0
    }

    /// When the line will rise, in the timer's count, if it is armed.
    pub fn deadline(&self) -> Option<u64> {
        (self.ctl & (CTL_ENABLE | CTL_IMASK) == CTL_ENABLE).then_some(self.cval)
    }

    /// CTL as the guest reads it.
    pub fn read_ctl(&self, count: u64) -> u64 {
        (self.ctl & (CTL_ENABLE | CTL_IMASK)) | if self.fired(count) { CTL_ISTATUS } else { 0 }
    }

    /// CTL written by the guest (ISTATUS is read-only).
    pub fn write_ctl(&mut self, v: u64) {
        self.ctl = v & (CTL_ENABLE | CTL_IMASK);
    }

    /// TVAL as the guest reads it: the signed 32-bit distance to CVAL.
    pub fn read_tval(&self, count: u64) -> u64 {
        self.cval.wrapping_sub(count) as u32 as u64
    }

    /// TVAL written: CVAL = count + the sign-extended 32-bit value.
    pub fn write_tval(&mut self, v: u64, count: u64) {
        self.cval = count.wrapping_add(v as u32 as i32 as i64 as u64);
    }
}

/// Converts nanoseconds to counter ticks at `freq` Hz (rounded down).
pub fn ns_to_ticks(ns: u64, freq: u64) -> u64 {
    ((ns as u128 * freq as u128) / 1_000_000_000).min(u64::MAX as u128) as u64
}

/// Converts a distance in counter ticks to nanoseconds at `freq` Hz.
pub fn ticks_to_ns(ticks: u64, freq: u64) -> u64 {
    if freq == 0 {
        return 0;
    }
    ((ticks as u128 * 1_000_000_000) / freq as u128).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_line_and_deadline() {
        let mut t = Timer::default();
        assert!(!t.fired(100) && t.deadline().is_none());
        t.cval = 1000;
        t.write_ctl(CTL_ENABLE | CTL_ISTATUS);
        assert_eq!(t.ctl, CTL_ENABLE, "ISTATUS is read-only");
        assert!(!t.fired(999) && t.fired(1000) && t.line(1000));
        assert_eq!(t.read_ctl(1000), CTL_ENABLE | CTL_ISTATUS);
        assert_eq!(t.deadline(), Some(1000));
        t.write_ctl(CTL_ENABLE | CTL_IMASK);
        assert!(t.fired(1000) && !t.line(1000), "masked");
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn tval_is_signed_32_bit() {
        let mut t = Timer::default();
        t.write_tval(62_500, 1_000_000);
        assert_eq!(t.cval, 1_062_500);
        assert_eq!(t.read_tval(1_000_000), 62_500);
        t.write_tval(0xffff_ff00, 1_000_000);
        assert_eq!(t.cval, 1_000_000 - 256, "a negative TVAL is in the past");
        assert_eq!(t.read_tval(1_000_000), 0xffff_ff00);
        assert_eq!(ticks_to_ns(62_500, 62_500_000), 1_000_000);
        assert_eq!(ticks_to_ns(1, 0), 0);
    }
}
