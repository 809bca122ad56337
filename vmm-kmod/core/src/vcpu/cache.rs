//! Data cache maintenance by set/way (DC ISW, DC CSW, DC CISW).
//!
//! A set/way operation names a line by its place in the cache of the CPU
//! that runs it, not by address. Passed through, it would work on whichever
//! host CPU the vCPU happens to be on, touch the host's lines, and leave the
//! other CPUs' caches alone. What a guest means by a loop over every set and
//! way is "make memory and caches agree", almost always just before or after
//! turning its caches on or off (firmware, boot loaders, bare-metal
//! programs; Linux never uses them). So, as KVM does:
//!
//! - the first set/way operation of a sequence cleans and invalidates all
//!   of the guest's memory to the point of coherency, and starts trapping
//!   the guest's writes to its virtual memory controls (HCR_EL2.TVM);
//! - the rest of the sequence costs a trap each and nothing more;
//! - while TVM is set, a write to SCTLR_EL1 that turns the caches (M and C)
//!   on or off cleans everything again (lines the guest could not see while
//!   its caches were off must not shadow memory once they are on, and dirty
//!   lines must reach memory before it goes uncached); once the caches are
//!   on, the sequence is over and TVM is cleared.
//!
//! All pure logic over the context, tested here; the clean itself is the
//! VM's (`Env::clean_guest_memory`).

use super::context::{Context, Sys};
use super::exits::{sysreg_done, Encoding, Env, Outcome};
use super::stats::{Stat, Stats};

/// HCR_EL2.TSW: trap data cache maintenance by set/way.
pub const HCR_TSW: u64 = 1 << 22;
/// HCR_EL2.TVM: trap writes to the EL1 virtual memory controls.
pub const HCR_TVM: u64 = 1 << 26;

/// DC ISW, DC CSW, DC CISW (op0 1, op1 0, CRn 7, CRm 6/10/14, op2 2). The
/// MTE tag variants (op2 4 and 6) are not here: guests are shown no MTE.
fn is_set_way(e: Encoding) -> bool {
    matches!(e, (1, 0, 7, 6 | 10 | 14, 2))
}

/// The register a write trapped by HCR_EL2.TVM goes to.
fn vm_control(e: Encoding) -> Option<Sys> {
    Some(match e {
        (3, 0, 1, 0, 0) => Sys::Sctlr,
        (3, 0, 2, 0, 0) => Sys::Ttbr0,
        (3, 0, 2, 0, 1) => Sys::Ttbr1,
        (3, 0, 2, 0, 2) => Sys::Tcr,
        (3, 0, 5, 1, 0) => Sys::Afsr0,
        (3, 0, 5, 1, 1) => Sys::Afsr1,
        (3, 0, 5, 2, 0) => Sys::Esr,
        (3, 0, 6, 0, 0) => Sys::Far,
        (3, 0, 10, 2, 0) => Sys::Mair,
        (3, 0, 10, 3, 0) => Sys::Amair,
        (3, 0, 13, 0, 1) => Sys::Contextidr,
        _ => return None,
    })
}

/// Whether SCTLR_EL1 has the stage 1 MMU (M) and data caches (C) on.
fn caches_on(sctlr: u64) -> bool {
    sctlr & 0b101 == 0b101
}

/// Handles a trapped set/way operation or virtual memory control write;
/// `None` if the access is neither.
pub fn sysreg(
    ctx: &mut Context,
    env: &mut impl Env,
    stats: &Stats,
    e: Encoding,
    rt: u32,
    read: bool,
) -> Option<Outcome> {
    if is_set_way(e) && !read {
        stats.inc(Stat::SetWay);
        if ctx.el2.hcr & HCR_TVM == 0 {
            env.clean_guest_memory();
            stats.inc(Stat::MemoryClean);
            ctx.el2.hcr |= HCR_TVM;
        }
    } else if let Some(r) = vm_control(e) {
        // TVM traps writes only; a read would come from TRVM, which we do
        // not set, but is answered all the same.
        if read {
            ctx.set_reg(rt, ctx.sys(r));
        } else {
            let was_on = caches_on(ctx.sys(Sys::Sctlr));
            ctx.set_sys(r, ctx.reg(rt));
            if r == Sys::Sctlr {
                let on = caches_on(ctx.sys(Sys::Sctlr));
                if on != was_on {
                    env.clean_guest_memory();
                    stats.inc(Stat::MemoryClean);
                }
                if on {
                    ctx.el2.hcr &= !HCR_TVM;
                }
            }
        }
    } else {
        return None;
    }
    Some(sysreg_done(ctx, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts cleans; nothing else of the VM is asked for.
    #[derive(Default)]
    struct Cleans(usize);

    impl Env for Cleans {
        fn is_ram(&self, _: u64) -> bool {
            unreachable!()
        }
        fn is_read_only(&self, _: u64) -> bool {
            unreachable!()
        }
        fn fault_in(&mut self, _: u64) -> bool {
            unreachable!()
        }
        fn kernel_mmio(&mut self, _: u64, _: u8, _: bool, _: u64) -> Option<u64> {
            unreachable!()
        }
        fn ioeventfd(&mut self, _: u64, _: u8, _: u64) -> bool {
            unreachable!()
        }
        fn send_sgi(&mut self, _: u64) {
            unreachable!()
        }
        fn counter(&self) -> u64 {
            unreachable!()
        }
        fn id_reg(&self, _: u32, _: u32) -> u64 {
            unreachable!()
        }
        fn clean_guest_memory(&mut self) {
            self.0 += 1;
        }
    }

    const DC_CISW: Encoding = (1, 0, 7, 14, 2);
    const SCTLR: Encoding = (3, 0, 1, 0, 0);
    const TTBR0: Encoding = (3, 0, 2, 0, 0);

    fn write(ctx: &mut Context, env: &mut Cleans, stats: &Stats, e: Encoding, value: u64) -> Option<Outcome> {
        ctx.set_reg(2, value);
        sysreg(ctx, env, stats, e, 2, false)
    }

    #[test]
    fn a_set_way_sequence_cleans_once_then_toggles_clean_again() {
        let mut ctx = Context::zeroed();
        ctx.el2.hcr = crate::vcpu::GUEST_HCR;
        ctx.set_sys(Sys::Sctlr, crate::vcpu::RESET_SCTLR);
        let (mut env, stats) = (Cleans::default(), Stats::new());
        assert_ne!(ctx.el2.hcr & HCR_TSW, 0, "guests run with set/way trapped");
        // A whole-cache loop with caches off: one clean, then trapping of the controls.
        for _ in 0..1000 {
            assert_eq!(write(&mut ctx, &mut env, &stats, DC_CISW, 0x42), Some(Outcome::Resume));
        }
        assert_eq!(env.0, 1);
        assert_eq!(stats.get(Stat::SetWay as usize), 1000);
        assert_ne!(ctx.el2.hcr & HCR_TVM, 0);
        assert_eq!(ctx.pc, 4000, "each stepped over");
        // Writes to the controls land in the context; no clean without a toggle.
        write(&mut ctx, &mut env, &stats, TTBR0, 0x4008_0000);
        assert_eq!(ctx.sys(Sys::Ttbr0), 0x4008_0000);
        write(&mut ctx, &mut env, &stats, SCTLR, crate::vcpu::RESET_SCTLR | 1 << 12);
        assert_eq!(env.0, 1, "I-cache on alone is no toggle");
        // Reads (not trapped by TVM, but answered) see the context.
        assert_eq!(sysreg(&mut ctx, &mut env, &stats, TTBR0, 7, true), Some(Outcome::Resume));
        assert_eq!(ctx.reg(7), 0x4008_0000);
        // MMU and caches on: clean again, the sequence is over.
        write(&mut ctx, &mut env, &stats, SCTLR, crate::vcpu::RESET_SCTLR | 0b101);
        assert_eq!(env.0, 2);
        assert_eq!(ctx.sys(Sys::Sctlr) & 0b101, 0b101);
        assert_eq!(ctx.el2.hcr & HCR_TVM, 0);
        // The next set/way operation starts a new sequence.
        write(&mut ctx, &mut env, &stats, DC_CISW, 0);
        assert_eq!(env.0, 3);
        // Caches off while trapping: a toggle, cleaned; TVM stays.
        write(&mut ctx, &mut env, &stats, SCTLR, crate::vcpu::RESET_SCTLR);
        assert_eq!(env.0, 4);
        assert_ne!(ctx.el2.hcr & HCR_TVM, 0);
        assert_eq!(stats.get(Stat::MemoryClean as usize), 4);
    }

    #[test]
    fn other_instructions_are_not_ours() {
        let mut ctx = Context::zeroed();
        let (mut env, stats) = (Cleans::default(), Stats::new());
        // DC CIGSW (an MTE tag variant), DC ZVA-like encodings, VBAR_EL1: not handled here.
        for e in [(1, 0, 7, 14, 4), (1, 3, 7, 4, 1), (3, 0, 12, 0, 0), (1, 0, 7, 6, 1)] {
            assert_eq!(write(&mut ctx, &mut env, &stats, e, 0), None, "{e:?}");
        }
        assert_eq!((env.0, ctx.pc), (0, 0));
    }
}
