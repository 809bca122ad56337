//! The register context the world switch saves and restores: one layout for
//! a guest vCPU and for the host's state on each CPU. The EL2 assembly gets
//! every offset from here (`const` operands of `global_asm!`), so the two
//! cannot drift apart.

use core::mem::{offset_of, size_of};

/// EL1/EL0 system registers switched between host and guest, in the order
/// the assembly saves them (pairs for `stp`/`ldp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Sys {
    /// SCTLR_EL1.
    Sctlr = 0,
    /// CPACR_EL1.
    Cpacr,
    /// TTBR0_EL1.
    Ttbr0,
    /// TTBR1_EL1.
    Ttbr1,
    /// TCR_EL1.
    Tcr,
    /// MAIR_EL1.
    Mair,
    /// AMAIR_EL1.
    Amair,
    /// VBAR_EL1.
    Vbar,
    /// CONTEXTIDR_EL1.
    Contextidr,
    /// TPIDR_EL1.
    TpidrEl1,
    /// TPIDR_EL0.
    TpidrEl0,
    /// TPIDRRO_EL0.
    TpidrroEl0,
    /// SP_EL0.
    SpEl0,
    /// SP_EL1.
    SpEl1,
    /// ELR_EL1.
    Elr,
    /// SPSR_EL1.
    Spsr,
    /// ESR_EL1.
    Esr,
    /// FAR_EL1.
    Far,
    /// AFSR0_EL1.
    Afsr0,
    /// AFSR1_EL1.
    Afsr1,
    /// PAR_EL1.
    Par,
    /// CNTKCTL_EL1.
    Cntkctl,
    /// CSSELR_EL1.
    Csselr,
    /// MDSCR_EL1 (for a guest: what the hardware gets, see `vcpu::debug`).
    Mdscr,
}

/// Number of [`Sys`] registers.
pub const SYS_COUNT: usize = 24;

/// FP/SIMD state.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpRegs {
    /// V0..V31.
    pub v: [u128; 32],
    /// FPCR.
    pub fpcr: u64,
    /// FPSR.
    pub fpsr: u64,
}

/// EL2 registers of a context. For a guest: what to load on entry. For the
/// host: what to restore on exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct El2Regs {
    /// HCR_EL2.
    pub hcr: u64,
    /// VTTBR_EL2 (guest only).
    pub vttbr: u64,
    /// VTCR_EL2 (guest only).
    pub vtcr: u64,
    /// VMPIDR_EL2: the MPIDR EL1 reads.
    pub vmpidr: u64,
    /// VPIDR_EL2: the MIDR EL1 reads.
    pub vpidr: u64,
    /// CNTVOFF_EL2.
    pub cntvoff: u64,
    /// CPTR_EL2.
    pub cptr: u64,
    /// MDCR_EL2 (guest: the trap bits to add to the host's HPMN).
    pub mdcr: u64,
    /// CNTHCTL_EL2 (host only).
    pub cnthctl: u64,
    /// Guest: bit 0 asks for a local TLB flush of the VMID on entry.
    pub flags: u64,
    /// HCRX_EL2 (with [`EL2_FLAG_HCRX`]): for a guest 0, every feature it
    /// controls trapped or off; for the host, its value kept meanwhile.
    pub hcrx: u64,
    /// Keeps the size a multiple of 16.
    pub pad: u64,
}

/// [`El2Regs::flags`]: flush this CPU's TLB entries of the VMID before entry
/// (the vCPU last ran on another CPU).
pub const EL2_FLAG_FLUSH_TLB: u64 = 1;
/// [`El2Regs::flags`]: load the guest's breakpoints and watchpoints for this
/// entry (keeping the host's in the host context until the exit).
pub const EL2_FLAG_DEBUG: u64 = 2;
/// [`El2Regs::flags`]: the CPUs have HCRX_EL2 (FEAT_HCX): switch it. Set
/// when the vCPU is made and kept; the other flags are for one entry.
pub const EL2_FLAG_HCRX: u64 = 4;
/// [`El2Regs::flags`]: switch the FP/SIMD registers for this entry (the
/// guest uses them; without it CPTR_EL2 traps them and EL2 leaves the
/// host's in place).
pub const EL2_FLAG_FP: u64 = 8;

/// What EL2 recorded about a guest exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitRegs {
    /// One of the `EXIT_*` kinds.
    pub kind: u64,
    /// ESR_EL2.
    pub esr: u64,
    /// FAR_EL2.
    pub far: u64,
    /// HPFAR_EL2.
    pub hpfar: u64,
    /// Hypercalls EL2 answered itself since the kernel last took the count.
    pub el2_hvcs: u64,
    /// Keeps the size a multiple of 16.
    pub pad: u64,
}

/// The guest's GICv3 virtual CPU interface state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VgicRegs {
    /// How many list registers EL2 loads and saves (all the CPU has); 0:
    /// the VM has no vGIC, EL2 leaves the GIC registers alone.
    pub nr_lrs: u64,
    /// ICH_HCR_EL2 while the guest runs (En, and UIE when more interrupts
    /// wait than fit).
    pub hcr: u64,
    /// ICH_VMCR_EL2 (the guest's PMR, BPR, group enables).
    pub vmcr: u64,
    /// ICH_AP0R0_EL2.
    pub ap0r: u64,
    /// ICH_AP1R0_EL2.
    pub ap1r: u64,
    /// Keeps `lrs` 16-byte aligned.
    pub pad: u64,
    /// ICH_LR0..15_EL2.
    pub lrs: [u64; 16],
}

/// Breakpoint and watchpoint registers. For a guest: its values (EL2 loads
/// them while its debug exceptions are on). For the host: where EL2 keeps
/// the host's meanwhile.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugRegs {
    /// How many breakpoints EL2 switches (the CPU's, 1..=16; guest only).
    pub nbrp: u64,
    /// How many watchpoints EL2 switches (the CPU's, 1..=16; guest only).
    pub nwrp: u64,
    /// DBGBVR<n>_EL1.
    pub bvr: [u64; 16],
    /// DBGBCR<n>_EL1.
    pub bcr: [u64; 16],
    /// DBGWVR<n>_EL1.
    pub wvr: [u64; 16],
    /// DBGWCR<n>_EL1.
    pub wcr: [u64; 16],
    /// MDSCR_EL1 as the guest sees it (guest only; EL2 never reads it).
    pub mdscr: u64,
    /// The guest's OS lock, OSLSR_EL1.OSLK (guest only).
    pub os_lock: u64,
}

/// A synchronous exception from the guest.
pub const EXIT_SYNC: u64 = 0;
/// A physical IRQ arrived while the guest ran.
pub const EXIT_IRQ: u64 = 1;
/// A physical FIQ arrived.
pub const EXIT_FIQ: u64 = 2;
/// An SError from the guest.
pub const EXIT_SERROR: u64 = 3;

/// A register context.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// x0..x30.
    pub x: [u64; 31],
    /// Keeps what follows 16-byte aligned.
    pub pad: u64,
    /// PC (ELR_EL2).
    pub pc: u64,
    /// PSTATE (SPSR_EL2).
    pub pstate: u64,
    /// EL1/EL0 system registers, indexed by [`Sys`].
    pub sys: [u64; SYS_COUNT],
    /// CNTV_CTL_EL0, CNTV_CVAL_EL0 (guest only).
    pub timer: [u64; 2],
    /// EL2 registers.
    pub el2: El2Regs,
    /// The last exit (guest only).
    pub exit: ExitRegs,
    /// The virtual GIC CPU interface (guest only).
    pub vgic: VgicRegs,
    /// FP/SIMD registers (guest only: the host's are saved by the kernel).
    pub fp: FpRegs,
    /// The emulated EL1 physical timer: CTL, CVAL (guest only; EL2 never
    /// touches it).
    pub ptimer: [u64; 2],
    /// Breakpoints and watchpoints.
    pub debug: DebugRegs,
}

impl Context {
    /// All zero.
    pub const fn zeroed() -> Self {
        Self {
            x: [0; 31],
            pad: 0,
            pc: 0,
            pstate: 0,
            sys: [0; SYS_COUNT],
            timer: [0; 2],
            el2: El2Regs {
                hcr: 0,
                vttbr: 0,
                vtcr: 0,
                vmpidr: 0,
                vpidr: 0,
                cntvoff: 0,
                cptr: 0,
                mdcr: 0,
                cnthctl: 0,
                flags: 0,
                hcrx: 0,
                pad: 0,
            },
            exit: ExitRegs { kind: 0, esr: 0, far: 0, hpfar: 0, el2_hvcs: 0, pad: 0 },
            vgic: VgicRegs { nr_lrs: 0, hcr: 0, vmcr: 0, ap0r: 0, ap1r: 0, pad: 0, lrs: [0; 16] },
            fp: FpRegs { v: [0; 32], fpcr: 0, fpsr: 0 },
            ptimer: [0; 2],
            debug: DebugRegs {
                nbrp: 0,
                nwrp: 0,
                bvr: [0; 16],
                bcr: [0; 16],
                wvr: [0; 16],
                wcr: [0; 16],
                mdscr: 0,
                os_lock: 0,
            },
        }
    }

    /// A system register.
    pub fn sys(&self, r: Sys) -> u64 {
        self.sys[r as usize]
    }

    /// Sets a system register.
    pub fn set_sys(&mut self, r: Sys, v: u64) {
        self.sys[r as usize] = v;
    }

    /// Steps the PC over an instruction the hypervisor completed for the
    /// guest (`len` bytes), as the hardware would have: PSTATE.SS is cleared,
    /// so a guest single-stepping it takes its step exception right after,
    /// not one instruction later.
    pub fn skip(&mut self, len: u64) {
        const PSTATE_SS: u64 = 1 << 21;
        self.pc += len;
        self.pstate &= !PSTATE_SS;
    }

    /// General register `n` as an instruction sees it: 31 is the zero register.
    pub fn reg(&self, n: u32) -> u64 {
        if n < 31 {
            self.x[n as usize]
        } else {
            0
        }
    }

    /// Writes general register `n`; writes to 31 (the zero register) vanish.
    pub fn set_reg(&mut self, n: u32, v: u64) {
        if n < 31 {
            self.x[n as usize] = v;
        }
    }
}

/// Offsets the EL2 assembly uses.
pub mod off {
    use super::*;

    /// x0.
    pub const X: usize = offset_of!(Context, x);
    /// PC, then PSTATE.
    pub const PC: usize = offset_of!(Context, pc);
    /// The system registers.
    pub const SYS: usize = offset_of!(Context, sys);
    /// CNTV_CTL, CNTV_CVAL.
    pub const TIMER: usize = offset_of!(Context, timer);
    /// The EL2 registers.
    pub const EL2: usize = offset_of!(Context, el2);
    /// The exit record.
    pub const EXIT: usize = offset_of!(Context, exit);
    /// The FP registers.
    pub const FP: usize = offset_of!(Context, fp);
    /// The vGIC registers: nr_lrs, hcr, vmcr, ap0r, ap1r, pad, lrs.
    pub const VGIC: usize = offset_of!(Context, vgic);
    /// From [`VGIC`]: the list registers.
    pub const VGIC_LRS: usize = offset_of!(VgicRegs, lrs);
    /// The debug registers: nbrp, nwrp, then the arrays.
    pub const DEBUG: usize = offset_of!(Context, debug);
    /// From [`DEBUG`].
    pub const DBG_BVR: usize = offset_of!(DebugRegs, bvr);
    /// From [`DEBUG`].
    pub const DBG_BCR: usize = offset_of!(DebugRegs, bcr);
    /// From [`DEBUG`].
    pub const DBG_WVR: usize = offset_of!(DebugRegs, wvr);
    /// From [`DEBUG`].
    pub const DBG_WCR: usize = offset_of!(DebugRegs, wcr);
    /// FPCR, then FPSR, from [`FP`].
    pub const FP_FPCR: usize = offset_of!(FpRegs, fpcr);
    /// In [`El2Regs`].
    pub const EL2_HCR: usize = offset_of!(El2Regs, hcr);
    /// In [`El2Regs`].
    pub const EL2_VTTBR: usize = offset_of!(El2Regs, vttbr);
    /// In [`El2Regs`].
    pub const EL2_VTCR: usize = offset_of!(El2Regs, vtcr);
    /// In [`El2Regs`].
    pub const EL2_VMPIDR: usize = offset_of!(El2Regs, vmpidr);
    /// In [`El2Regs`].
    pub const EL2_VPIDR: usize = offset_of!(El2Regs, vpidr);
    /// In [`El2Regs`].
    pub const EL2_CNTVOFF: usize = offset_of!(El2Regs, cntvoff);
    /// In [`El2Regs`].
    pub const EL2_CPTR: usize = offset_of!(El2Regs, cptr);
    /// In [`El2Regs`].
    pub const EL2_MDCR: usize = offset_of!(El2Regs, mdcr);
    /// In [`El2Regs`].
    pub const EL2_CNTHCTL: usize = offset_of!(El2Regs, cnthctl);
    /// In [`El2Regs`].
    pub const EL2_FLAGS: usize = offset_of!(El2Regs, flags);
    /// In [`El2Regs`].
    pub const EL2_HCRX: usize = offset_of!(El2Regs, hcrx);
    /// In [`ExitRegs`]: kind, then ESR, FAR, HPFAR.
    pub const EXIT_KIND: usize = offset_of!(ExitRegs, kind);
    /// In [`ExitRegs`].
    pub const EXIT_ESR: usize = offset_of!(ExitRegs, esr);
    /// In [`ExitRegs`].
    pub const EXIT_HPFAR: usize = offset_of!(ExitRegs, hpfar);
    /// In [`ExitRegs`], from the context's start.
    pub const EXIT_EL2_HVCS: usize = EXIT + offset_of!(ExitRegs, el2_hvcs);

    /// Per-CPU hyp page: the stub's VBAR_EL2 (written by the probe).
    pub const HYP_STUB_VBAR: usize = 0;
    /// Per-CPU hyp page: address of the running guest's context (PA without
    /// VHE, the kernel's address with it).
    pub const HYP_GUEST: usize = 8;
    /// Per-CPU hyp page, VHE: the kernel's stack pointer while a guest runs.
    pub const HYP_VHE_SP: usize = 16;
    /// Per-CPU hyp page, VHE: the kernel's TPIDR_EL2 (its per-CPU offset),
    /// which holds the hyp page's address while a guest runs.
    pub const HYP_VHE_TPIDR: usize = 24;
    /// Per-CPU hyp page, VHE: the kernel's VBAR_EL2 while a guest runs.
    pub const HYP_VHE_VBAR: usize = 32;
    /// Per-CPU hyp page, VHE: the caller's DAIF.
    pub const HYP_VHE_DAIF: usize = 40;
    /// Per-CPU hyp page: the host context.
    pub const HYP_HOST: usize = 64;
    /// Per-CPU hyp page: size, the EL2 stack grows down from here.
    pub const HYP_PAGE_END: usize = 4096;

    // The assembly's immediate offsets: stp/ldp of x registers reach 504
    // bytes, so the GPRs, PC/PSTATE and system registers must lie below that.
    const _: () = assert!(X == 0 && PC == 256 && SYS == 272);
    const _: () = assert!(SYS + SYS_COUNT * 8 <= 504);
    const _: () = assert!(TIMER.is_multiple_of(16) && FP.is_multiple_of(16));
    const _: () = assert!(EXIT_ESR == EXIT_KIND + 8 && EXIT_HPFAR == EXIT_ESR + 16);
    const _: () = assert!(FP_FPCR == 512);
    const _: () = assert!(VGIC_LRS == 48 && VGIC.is_multiple_of(16));
    // nbrp and nwrp are loaded as a pair; `add` immediates reach 4095.
    const _: () = assert!(DBG_BVR == 16 && DEBUG.is_multiple_of(8) && DEBUG + DBG_WCR < 4096);
    // The host context and a 256-byte EL2 stack fit the hyp page.
    const _: () = assert!(HYP_HOST + size_of::<Context>() + 256 <= HYP_PAGE_END);
    const _: () = assert!(HYP_VHE_DAIF + 8 <= HYP_HOST);
    const _: () = assert!(size_of::<Context>().is_multiple_of(16));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_register_reads_zero_and_ignores_writes() {
        let mut c = Context::zeroed();
        c.set_reg(31, 5);
        assert_eq!(c.reg(31), 0);
        c.set_reg(30, 7);
        assert_eq!(c.reg(30), 7);
        c.set_sys(Sys::Mdscr, 9);
        assert_eq!(c.sys[SYS_COUNT - 1], 9);
    }
}
