//! The guest's self-hosted debug: MDSCR_EL1, the OS lock, and the hardware
//! breakpoints and watchpoints, so that a debugger inside the guest (gdb's
//! `hbreak`, `watch` and `stepi`, kgdb, perf's breakpoint events) works.
//!
//! Every debug register access traps (MDCR_EL2.TDA, TDOSA, TDRA) and is
//! answered here from the vCPU's copy, so EL2 never has to read the guest's
//! values back. What reaches the hardware:
//! - MDSCR_EL1 is switched with the other EL1 registers on every entry and
//!   exit; the guest's single step (SS) therefore works on its own;
//! - the breakpoint and watchpoint registers are switched only while the
//!   guest has debug exceptions on (MDSCR_EL1.MDE or KDE): EL2 saves the
//!   host's, loads the guest's, and puts the host's back at exit. Otherwise
//!   the host's stay loaded, and cannot fire in the guest since its MDE and
//!   KDE are clear.
//!
//! The guest's values are filtered: breakpoints and watchpoints cannot be
//! set to match at EL2 or in the Secure state (HMC, SSC), and MDSCR_EL1
//! keeps only what a self-hosted debugger uses. The OS lock is emulated
//! (locked at reset, as on hardware; Linux unlocks it at boot); while it is
//! locked the hardware sees MDSCR_EL1 without SS, KDE and MDE.
//!
//! The Debug Communication Channel, the OS double lock, the claim tags and
//! the debug ROM read as zero and ignore writes: there is no external
//! debugger.

use super::context::{Context, DebugRegs, Sys};
use super::exits::{inject_undef, sysreg_done, Encoding, Outcome};
use super::stats::{Stat, Stats};

/// MDSCR_EL1.SS: software step.
pub const MDSCR_SS: u64 = 1 << 0;
/// MDSCR_EL1.TDCC: EL0 access to the DCC traps.
const MDSCR_TDCC: u64 = 1 << 12;
/// MDSCR_EL1.KDE: debug exceptions at EL1.
pub const MDSCR_KDE: u64 = 1 << 13;
/// MDSCR_EL1.MDE: breakpoint and watchpoint exceptions.
pub const MDSCR_MDE: u64 = 1 << 15;
/// What a guest may set in MDSCR_EL1.
const MDSCR_GUEST: u64 = MDSCR_SS | MDSCR_TDCC | MDSCR_KDE | MDSCR_MDE;

/// DBGBCR<n>_EL1 fields a guest may set: E, PMC, BAS, LBN, BT (not HMC, SSC).
const BCR_GUEST: u64 = 1 | 3 << 1 | 0xf << 5 | 0xf << 16 | 0xf << 20;
/// DBGWCR<n>_EL1 fields a guest may set: E, PAC, LSC, BAS, LBN, WT, MASK (not HMC, SSC).
const WCR_GUEST: u64 = 1 | 3 << 1 | 3 << 3 | 0xff << 5 | 0xf << 16 | 1 << 20 | 0x1f << 24;
/// DBGBVR<n>_EL1 and DBGWVR<n>_EL1: the address bits (and a context ID
/// or VMID for context breakpoints, in the low 32 bits); bits 1:0 are RES0.
const VR_GUEST: u64 = !3;

/// OSLSR_EL1.OSLM: the OS lock is implemented (0b10, bits 3 and 0).
const OSLSR_OSLM: u64 = 1 << 3;
/// OSLSR_EL1.OSLK.
const OSLSR_OSLK: u64 = 1 << 1;

/// Sets up a new vCPU's debug state: as many breakpoints and watchpoints
/// as `dfr0` (the hosts' ID_AA64DFR0_EL1) says, then [`reset`].
pub fn init(ctx: &mut Context, dfr0: u64) {
    ctx.debug.nbrp = ((dfr0 >> 12) & 0xf) + 1;
    ctx.debug.nwrp = ((dfr0 >> 20) & 0xf) + 1;
    reset(ctx);
}

/// The guest's debug state at reset: no breakpoints, MDSCR_EL1 clear, the
/// OS lock locked. The counts stay.
pub fn reset(ctx: &mut Context) {
    let (nbrp, nwrp) = (ctx.debug.nbrp, ctx.debug.nwrp);
    ctx.debug = DebugRegs { nbrp, nwrp, os_lock: 1, ..Default::default() };
    ctx.set_sys(Sys::Mdscr, 0);
}

/// Whether EL2 must load the guest's breakpoints and watchpoints for this entry.
pub fn active(ctx: &Context) -> bool {
    ctx.sys(Sys::Mdscr) & (MDSCR_MDE | MDSCR_KDE) != 0
}

/// Sets the guest's MDSCR_EL1 (from a trapped write or from userspace).
pub fn set_mdscr(ctx: &mut Context, value: u64) {
    ctx.debug.mdscr = value & MDSCR_GUEST;
    update(ctx);
}

/// What the hardware gets: the guest's MDSCR_EL1, with debug exceptions
/// off while its OS lock is locked.
fn update(ctx: &mut Context) {
    let mut hw = ctx.debug.mdscr;
    if ctx.debug.os_lock != 0 {
        hw &= !(MDSCR_SS | MDSCR_KDE | MDSCR_MDE);
    }
    ctx.set_sys(Sys::Mdscr, hw);
}

/// A breakpoint of a type that matches EL2 state (VMID or CONTEXTIDR_EL2:
/// BT 0b0110 and up) is disabled: the guest has no EL2, and the host's must
/// not be compared against.
fn breakpoint_type_checked(bcr: u64) -> u64 {
    if (bcr >> 20) & 0xf >= 0b0110 {
        bcr & !1
    } else {
        bcr
    }
}

/// The debug register an encoding names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    Bvr(usize),
    Bcr(usize),
    Wvr(usize),
    Wcr(usize),
    Mdscr,
    Oslar,
    Oslsr,
    /// Read as zero, writes ignored.
    Zero,
}

fn decode((op0, op1, crn, crm, op2): Encoding) -> Option<Reg> {
    let n = crm as usize;
    Some(match (op0, op1, crn, op2) {
        (2, 0, 0, 4) => Reg::Bvr(n),
        (2, 0, 0, 5) => Reg::Bcr(n),
        (2, 0, 0, 6) => Reg::Wvr(n),
        (2, 0, 0, 7) => Reg::Wcr(n),
        (2, 0, 0, 2) if crm == 2 => Reg::Mdscr,
        (2, 0, 1, 4) if crm == 0 => Reg::Oslar,
        (2, 0, 1, 4) if crm == 1 => Reg::Oslsr,
        // MDCCINT_EL1, OSDTRRX/TX_EL1, OSECCR_EL1 (CRn 0); MDRAR_EL1,
        // OSDLR_EL1, DBGPRCR_EL1 (CRn 1); DBGCLAIMSET/CLR_EL1,
        // DBGAUTHSTATUS_EL1 (CRn 7); the DCC at EL0 (op1 3).
        (2, 0, 0, 0) if crm == 2 => Reg::Zero,
        (2, 0, 0, 2) if matches!(crm, 0 | 3 | 6) => Reg::Zero,
        (2, 0, 1, 0) if crm == 0 => Reg::Zero,
        (2, 0, 1, 4) if matches!(crm, 3 | 4) => Reg::Zero,
        (2, 0, 7, 6) if matches!(crm, 8 | 9 | 14) => Reg::Zero,
        (2, 3, 0, 0) if matches!(crm, 1 | 4 | 5) => Reg::Zero,
        _ => return None,
    })
}

/// Handles a trapped debug register access; `None` if it is not one (the
/// caller then injects an UNDEF and logs it). A breakpoint or watchpoint
/// register beyond the CPU's count is undefined, as on the hardware.
pub fn sysreg(ctx: &mut Context, stats: &Stats, e: Encoding, rt: u32, read: bool) -> Option<Outcome> {
    let reg = decode(e)?;
    let value = ctx.reg(rt);
    let (nbrp, nwrp) = (ctx.debug.nbrp as usize, ctx.debug.nwrp as usize);
    let slot = match reg {
        Reg::Bvr(n) if n < nbrp => Some((&mut ctx.debug.bvr[n], VR_GUEST)),
        Reg::Bcr(n) if n < nbrp => Some((&mut ctx.debug.bcr[n], BCR_GUEST)),
        Reg::Wvr(n) if n < nwrp => Some((&mut ctx.debug.wvr[n], VR_GUEST)),
        Reg::Wcr(n) if n < nwrp => Some((&mut ctx.debug.wcr[n], WCR_GUEST)),
        Reg::Bvr(_) | Reg::Bcr(_) | Reg::Wvr(_) | Reg::Wcr(_) => {
            // Not implemented on this CPU: undefined, as on the hardware.
            inject_undef(ctx);
            stats.inc(Stat::Undef);
            return Some(Outcome::Resume);
        }
        _ => None,
    };
    let result = match (slot, reg) {
        (Some((r, mask)), _) => {
            if !read {
                *r = value & mask;
                if matches!(reg, Reg::Bcr(_)) {
                    *r = breakpoint_type_checked(*r);
                }
            }
            *r
        }
        (None, Reg::Mdscr) => {
            if !read {
                set_mdscr(ctx, value);
            }
            ctx.debug.mdscr
        }
        (None, Reg::Oslar) => {
            // Write-only: OSLK is bit 0 of the value written.
            if !read {
                ctx.debug.os_lock = value & 1;
                update(ctx);
            }
            0
        }
        (None, Reg::Oslsr) => OSLSR_OSLM | if ctx.debug.os_lock != 0 { OSLSR_OSLK } else { 0 },
        (None, _) => 0,
    };
    if read {
        ctx.set_reg(rt, result);
    }
    Some(sysreg_done(ctx, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's Cortex-A57: 6 breakpoints, 4 watchpoints.
    const DFR0: u64 = 0x1030_5106;

    fn vcpu() -> (Context, Stats) {
        let mut ctx = Context::zeroed();
        init(&mut ctx, DFR0);
        (ctx, Stats::new())
    }

    fn write(ctx: &mut Context, stats: &Stats, e: Encoding, v: u64) -> Option<Outcome> {
        ctx.set_reg(4, v);
        sysreg(ctx, stats, e, 4, false)
    }

    fn read(ctx: &mut Context, stats: &Stats, e: Encoding) -> u64 {
        ctx.set_reg(5, 0xdead);
        assert_eq!(sysreg(ctx, stats, e, 5, true), Some(Outcome::Resume), "{e:?}");
        ctx.reg(5)
    }

    const MDSCR: Encoding = (2, 0, 0, 2, 2);
    const OSLAR: Encoding = (2, 0, 1, 0, 4);
    const OSLSR: Encoding = (2, 0, 1, 1, 4);

    #[test]
    fn breakpoints_and_watchpoints_keep_what_the_guest_may_set() {
        let (mut c, s) = vcpu();
        assert_eq!((c.debug.nbrp, c.debug.nwrp), (6, 4));
        // DBGBVR5/DBGBCR5 (the last breakpoint), DBGWVR3/DBGWCR3.
        write(&mut c, &s, (2, 0, 0, 5, 4), 0xffff_0000_1234_5677);
        assert_eq!(read(&mut c, &s, (2, 0, 0, 5, 4)), 0xffff_0000_1234_5674, "bits 1:0 RES0");
        // E, PMC=EL1, BAS, plus HMC (bit 13) and SSC (bits 15:14), which are dropped.
        write(&mut c, &s, (2, 0, 0, 5, 5), 0x1e3 | 0b111 << 13);
        assert_eq!(read(&mut c, &s, (2, 0, 0, 5, 5)), 0x1e3);
        write(&mut c, &s, (2, 0, 0, 3, 6), 0x4000_1000);
        write(&mut c, &s, (2, 0, 0, 3, 7), 0x1ff7 | 1 << 13);
        assert_eq!((c.debug.wvr[3], c.debug.wcr[3]), (0x4000_1000, 0x1ff7));
        // A VMID match breakpoint (BT 0b1000) is kept but disabled.
        write(&mut c, &s, (2, 0, 0, 0, 5), 0x8001e7);
        assert_eq!(c.debug.bcr[0], 0x8001e6);
        assert_eq!(c.pc, 28, "every access (five writes, two reads) stepped over");
    }

    #[test]
    fn registers_the_cpu_lacks_are_undefined() {
        let (mut c, s) = vcpu();
        c.set_sys(Sys::Vbar, 0x8000);
        c.pstate = 0x3c5;
        // DBGBCR6 (6 breakpoints: 0..5) and DBGWVR4 (4 watchpoints).
        for e in [(2, 0, 0, 6, 5), (2, 0, 0, 4, 6)] {
            c.pc = 0x100;
            assert_eq!(write(&mut c, &s, e, 1), Some(Outcome::Resume));
            assert_eq!(c.pc, 0x8200, "{e:?}: the guest's vector");
        }
        assert_eq!(s.get(Stat::Undef as usize), 2);
        assert_eq!(c.debug.bcr, [0; 16]);
        // Not a debug register: not ours.
        assert_eq!(write(&mut c, &s, (3, 0, 1, 0, 0), 1), None);
        assert_eq!(write(&mut c, &s, (2, 0, 7, 0, 0), 1), None);
    }

    #[test]
    fn the_os_lock_holds_debug_exceptions_back() {
        let (mut c, s) = vcpu();
        assert_eq!(read(&mut c, &s, OSLSR), 0b1010, "locked at reset");
        write(&mut c, &s, MDSCR, MDSCR_MDE | MDSCR_KDE | MDSCR_SS | 1 << 14 | 1 << 30);
        assert_eq!(read(&mut c, &s, MDSCR), MDSCR_MDE | MDSCR_KDE | MDSCR_SS, "HDE, RXfull dropped");
        assert_eq!(c.sys(Sys::Mdscr), 0, "hardware: nothing while locked");
        assert!(!active(&c));
        write(&mut c, &s, OSLAR, 0);
        assert_eq!(read(&mut c, &s, OSLSR), 0b1000);
        assert_eq!(c.sys(Sys::Mdscr), MDSCR_MDE | MDSCR_KDE | MDSCR_SS);
        assert!(active(&c));
        assert_eq!(read(&mut c, &s, OSLAR), 0);
        // The rest of the debug space: zero, writes ignored.
        for e in [(2, 0, 1, 3, 4), (2, 0, 7, 8, 6), (2, 3, 0, 5, 0), (2, 0, 1, 0, 0)] {
            write(&mut c, &s, e, 0xff);
            assert_eq!(read(&mut c, &s, e), 0, "{e:?}");
        }
        write(&mut c, &s, MDSCR, MDSCR_SS);
        assert!(!active(&c), "stepping alone needs no breakpoint registers");
    }
}
