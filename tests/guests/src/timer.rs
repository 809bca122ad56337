//! The generic timer: counters, the EL1 virtual and physical timers, and
//! waits measured on the virtual counter.

use core::arch::asm;

/// CNTVCT_EL0. The `isb` keeps the read from being taken early, before the
/// instructions it is meant to time.
#[inline(always)]
pub fn cntvct() -> u64 {
    let t: u64;
    // SAFETY: reads the counter, no side effects.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack, preserves_flags)) };
    t
}

/// CNTPCT_EL0, the physical counter, read as [`cntvct`].
#[inline(always)]
pub fn cntpct() -> u64 {
    let t: u64;
    // SAFETY: reads the counter, no side effects.
    unsafe { asm!("isb", "mrs {}, cntpct_el0", out(reg) t, options(nomem, nostack, preserves_flags)) };
    t
}

/// CNTFRQ_EL0: the counter's frequency in Hz.
pub fn cntfrq() -> u64 {
    let f: u64;
    // SAFETY: reads a register, no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack, preserves_flags)) };
    f
}

/// Counter ticks in `ms` milliseconds.
pub fn ms_to_ticks(ms: u64) -> u64 {
    cntfrq() * ms / 1000
}

/// Calls `done` until it returns true or `ms` milliseconds have passed on
/// the virtual counter; returns its last answer. Interrupts are taken
/// meanwhile if unmasked.
pub fn poll_for(ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let end = cntvct() + ms_to_ticks(ms);
    while cntvct() < end {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    done()
}

/// Busy-waits `ms` milliseconds (taking interrupts if unmasked).
pub fn delay_ms(ms: u64) {
    poll_for(ms, || false);
}

/// One of the EL1 timers. Each fires, level-sensitive, on its PPI while
/// enabled and its counter is at or past its compare value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Timer {
    /// CNTV_*_EL0, comparing against CNTVCT_EL0; PPI 27.
    Virtual,
    /// CNTP_*_EL0, comparing against CNTPCT_EL0; PPI 30.
    Physical,
}

/// CNTx_CTL_EL0.ENABLE, with IMASK (bit 1) clear: the timer signals.
const CTL_ENABLE: u64 = 1;

impl Timer {
    /// Its interrupt.
    pub fn intid(self) -> u32 {
        match self {
            Timer::Virtual => 27,
            Timer::Physical => 30,
        }
    }

    /// "virtual" or "physical".
    pub fn name(self) -> &'static str {
        match self {
            Timer::Virtual => "virtual",
            Timer::Physical => "physical",
        }
    }

    /// The counter it compares against.
    pub fn count(self) -> u64 {
        match self {
            Timer::Virtual => cntvct(),
            Timer::Physical => cntpct(),
        }
    }

    /// Sets the compare value: it fires once [`count`](Self::count) reaches
    /// `cval`, and stops signalling when `cval` moves past the count.
    pub fn set_cval(self, cval: u64) {
        // SAFETY: writes this timer's compare value; the `isb` makes the
        // new value take effect before what follows.
        unsafe {
            match self {
                Timer::Virtual => asm!("msr cntv_cval_el0, {}", "isb", in(reg) cval, options(nomem, nostack)),
                Timer::Physical => asm!("msr cntp_cval_el0, {}", "isb", in(reg) cval, options(nomem, nostack)),
            }
        }
    }

    /// Enables the timer (unmasked) or disables it.
    pub fn set_enabled(self, on: bool) {
        let ctl = if on { CTL_ENABLE } else { 0 };
        // SAFETY: writes this timer's control register.
        unsafe {
            match self {
                Timer::Virtual => asm!("msr cntv_ctl_el0, {}", "isb", in(reg) ctl, options(nomem, nostack)),
                Timer::Physical => asm!("msr cntp_ctl_el0, {}", "isb", in(reg) ctl, options(nomem, nostack)),
            }
        }
    }
}
