//! MMIO accesses, one function per instruction, so a test knows exactly
//! which load or store the hypervisor has to decode.
//!
//! Each is a single inline-asm instruction with plain `[Xn]` addressing:
//! the compiler could otherwise pick a form without a valid syndrome
//! (writeback, pairs) that a hypervisor cannot emulate. No `nomem`: every
//! access is also a compiler barrier, keeping device accesses in order.

use core::arch::asm;

macro_rules! loads {
    ($($(#[$doc:meta])* fn $name:ident = $insn:literal;)*) => {$(
        $(#[$doc])*
        ///
        /// Returns the whole 64-bit destination register.
        ///
        /// # Safety
        /// `addr` must be a naturally aligned device register (or an address
        /// outside anything the program uses) that is safe to read.
        #[inline(always)]
        pub unsafe fn $name(addr: usize) -> u64 {
            let v: u64;
            // SAFETY: the caller vouches for `addr`.
            unsafe {
                asm!(concat!($insn, ", [{a}]"), a = in(reg) addr, v = out(reg) v,
                     options(nostack, preserves_flags))
            };
            v
        }
    )*};
}

macro_rules! stores {
    ($($(#[$doc:meta])* fn $name:ident = $insn:literal;)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        /// `addr` must be a naturally aligned device register (or an address
        /// outside anything the program uses) that is safe to write.
        #[inline(always)]
        pub unsafe fn $name(addr: usize, v: u64) {
            // SAFETY: the caller vouches for `addr`.
            unsafe {
                asm!(concat!($insn, ", [{a}]"), a = in(reg) addr, v = in(reg) v,
                     options(nostack, preserves_flags))
            };
        }
    )*};
}

loads! {
    /// `ldrb wN`: 8 bits, zero-extended.
    fn ldrb = "ldrb {v:w}";
    /// `ldrh wN`: 16 bits, zero-extended.
    fn ldrh = "ldrh {v:w}";
    /// `ldr wN`: 32 bits, zero-extended.
    fn ldr_w = "ldr {v:w}";
    /// `ldr xN`: 64 bits.
    fn ldr_x = "ldr {v:x}";
    /// `ldrsb xN`: 8 bits, sign-extended to 64.
    fn ldrsb_x = "ldrsb {v:x}";
    /// `ldrsh xN`: 16 bits, sign-extended to 64.
    fn ldrsh_x = "ldrsh {v:x}";
    /// `ldrsw xN`: 32 bits, sign-extended to 64.
    fn ldrsw_x = "ldrsw {v:x}";
    /// `ldrsb wN`: 8 bits, sign-extended to 32; writing wN zeroes bits 63:32.
    fn ldrsb_w = "ldrsb {v:w}";
    /// `ldrsh wN`: 16 bits, sign-extended to 32; writing wN zeroes bits 63:32.
    fn ldrsh_w = "ldrsh {v:w}";
}

stores! {
    /// `strb wN`: the low 8 bits of `v`.
    fn strb = "strb {v:w}";
    /// `strh wN`: the low 16 bits of `v`.
    fn strh = "strh {v:w}";
    /// `str wN`: the low 32 bits of `v`.
    fn str_w = "str {v:w}";
    /// `str xN`: all of `v`.
    fn str_x = "str {v:x}";
}
