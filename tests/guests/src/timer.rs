//! The generic timer's virtual counter.

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

/// CNTFRQ_EL0: the counter's frequency in Hz.
pub fn cntfrq() -> u64 {
    let f: u64;
    // SAFETY: reads a register, no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack, preserves_flags)) };
    f
}
