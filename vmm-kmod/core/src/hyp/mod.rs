//! Taking EL2 from Linux's hyp stub, per CPU, and giving it back; or, on a
//! VHE host, using the EL2 the kernel itself runs at.
//!
//! A Linux arm64 kernel booted at EL2 runs either at EL1 (nVHE: it then
//! leaves a tiny "hyp stub" vector table at EL2 that answers a few `hvc #0`
//! calls) or at EL2 itself (VHE, HCR_EL2.E2H set: Armv8.1 and later CPUs
//! by default). Under VHE there is nothing to take: the kernel calls the
//! world switch directly, which puts the module's vectors in around each
//! guest run ([`HostMode::Vhe`]). Without VHE the module:
//!
//! 1. checks the CPU: the kernel runs at EL1 and EL2 must exist;
//! 2. asks EL2 who it is: our own code answers [`VMM_HC_PING`] with
//!    [`EL2_MAGIC`], the stub answers any unknown call with [`HVC_STUB_ERR`];
//!    anything else means another hypervisor holds EL2;
//! 3. runs a probe at EL2 through the stub's `HVC_SOFT_RESTART` (the stub's
//!    vector address is not exported to modules, so the probe records it, and
//!    sets up `TPIDR_EL2` and the EL2 stack on the way);
//! 4. installs its vectors with `HVC_SET_VECTORS` and checks that they answer.
//!
//! Giving EL2 back is `HVC_RESET_VECTORS`, which our vectors answer by
//! restoring the stub's. All of it is logic over the [`El2`] trait, so it is
//! tested on the build machine against a simulated EL2 (see `tests.rs`).

mod state;
#[cfg(test)]
mod tests;

pub use state::{HypState, HYP};

/// Stub call: set `VBAR_EL2` to `x1`.
pub const HVC_SET_VECTORS: u64 = 0;
/// Stub call: branch at EL2 to `x1` with `x0..x2` = caller's `x2..x4`.
pub const HVC_SOFT_RESTART: u64 = 1;
/// Stub call: restore the stub's own vectors.
pub const HVC_RESET_VECTORS: u64 = 2;
/// The stub's answer to a call it does not know.
pub const HVC_STUB_ERR: u64 = 0xbadca11;
/// Our call: answer who we are.
pub const VMM_HC_PING: u64 = 0x564d_4d00;
/// Our call: turn the EL2 MMU on (x1 = TTBR0_EL2, x2 = TCR_EL2, x3 = MAIR_EL2).
pub const VMM_HC_MMU_ON: u64 = 0x564d_4d01;
/// Our call: run a guest (x1 = PA of its context) until it exits.
pub const VMM_HC_RUN: u64 = 0x564d_4d02;
/// Our call: invalidate a VMID's TLB entries on all CPUs (x1 = its VTTBR).
pub const VMM_HC_TLBI_VMID: u64 = 0x564d_4d03;
/// Our call: read ICH_VTR_EL2 (0 without GICv3 system registers).
pub const VMM_HC_GIC_VTR: u64 = 0x564d_4d04;
/// Our EL2 code's answer to [`VMM_HC_PING`] ("VMM_EL2!").
pub const EL2_MAGIC: u64 = 0x564d_4d5f_454c_3221;
/// The probe's answer ("VMM_PROB").
pub const PROBE_MAGIC: u64 = 0x564d_4d5f_5052_4f42;

/// Offset in a CPU's hyp page where the probe stores the stub's `VBAR_EL2`.
pub const HYP_PAGE_STUB_VBAR: usize = 0;

/// What the take-over needs from the hardware. The aarch64 implementation is
/// in [`crate::arch`]; tests use a simulated EL2.
pub trait El2 {
    /// `CurrentEL.EL` of the calling code (1 for an nVHE kernel).
    fn current_el(&self) -> u8;
    /// Whether `ID_AA64PFR0_EL1.EL2` says EL2 is implemented.
    fn el2_implemented(&self) -> bool;
    /// `hvc #0` with `x0..x3` = `args`; returns `x0..x3`.
    fn hvc(&self, args: [u64; 4]) -> [u64; 4];
    /// Cleans and invalidates `[va, va + len)` to the point of coherency:
    /// EL2 runs with its MMU off, so it reads and writes memory uncached.
    fn dcache_clean_inval_poc(&self, va: *const u8, len: usize);
    /// The ID register S3_0_C0_C`crm`_`op2` of this CPU.
    fn id_reg(&self, crm: u32, op2: u32) -> u64;
}

/// How the host kernel uses EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMode {
    /// The kernel runs at EL1; the module takes EL2 from the hyp stub and
    /// enters guests with `hvc`.
    Nvhe,
    /// The kernel runs at EL2 (VHE); the module calls the world switch.
    Vhe,
}

/// Why the module cannot take EL2 on a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No EL2 (not implemented, or not given to the kernel).
    NoEl2,
    /// The kernel runs at EL2 (VHE) and KVM is on: it owns the CPU's
    /// virtualization state.
    KvmOn,
    /// The kernel runs at an unexpected EL.
    UnexpectedEl(u8),
    /// Something other than the hyp stub answers at EL2.
    NotStub(u64),
    /// The probe did not come back through the stub.
    ProbeFailed(u64),
    /// Our vectors did not answer after installation.
    VectorsSilent(u64),
    /// The CPU has EL1 state that only fine-grained traps keep from a
    /// guest, and that the world switch does not switch yet.
    UnswitchedState(&'static str),
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Refusal::NoEl2 => write!(
                f,
                "no EL2 on this CPU (virtualization extensions absent or not given to the kernel); \
                 vmm needs a host kernel booted at EL2"
            ),
            Refusal::KvmOn => write!(
                f,
                "KVM is on and owns the CPU's virtualization (the kernel runs at EL2, VHE); \
                 boot the host with kvm-arm.mode=none"
            ),
            Refusal::UnexpectedEl(el) => write!(f, "the kernel runs at EL{el}, expected EL1 or EL2"),
            Refusal::NotStub(x0) => write!(
                f,
                "EL2 is held by another hypervisor (the hyp stub does not answer: got {x0:#x}); \
                 boot the host with kvm-arm.mode=none"
            ),
            Refusal::ProbeFailed(x0) => {
                write!(f, "the hyp stub did not run the EL2 probe (got {x0:#x})")
            }
            Refusal::VectorsSilent(x0) => {
                write!(f, "EL2 vectors did not answer after installation (got {x0:#x})")
            }
            Refusal::UnswitchedState(feature) => write!(
                f,
                "this CPU has {feature}, whose EL1 registers a guest could write and the world switch \
                 does not switch yet"
            ),
        }
    }
}

/// The addresses one CPU's take-over uses.
#[derive(Clone, Copy, Debug)]
pub struct CpuHyp {
    /// Kernel address of the CPU's hyp page (data at the bottom, EL2 stack
    /// growing down from the top).
    pub page_va: *mut u8,
    /// Its physical address.
    pub page_pa: u64,
    /// Physical address of the EL2 code (the vector table is at its start).
    pub code_pa: u64,
    /// Offset of the probe entry in the EL2 code.
    pub probe_offset: u64,
    /// The EL2 identity map to turn on.
    pub mmu: MmuConfig,
}

/// The EL2 translation regime: TTBR0_EL2, TCR_EL2, MAIR_EL2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuConfig {
    /// TTBR0_EL2.
    pub ttbr0: u64,
    /// TCR_EL2.
    pub tcr: u64,
    /// MAIR_EL2.
    pub mair: u64,
}

const PAGE: u64 = crate::kernel::PAGE_SIZE as u64;

/// Checks that this CPU can be used at all, and how (done once, before any
/// `hvc`: without EL2, `hvc` is an undefined instruction; under VHE it
/// would call the kernel's own vectors). `kvm_on` says whether KVM is
/// initialised (only asked under VHE: without it the stub check finds KVM).
pub fn check_cpu(hw: &impl El2, kvm_on: impl FnOnce() -> bool) -> Result<HostMode, Refusal> {
    let mode = match hw.current_el() {
        1 => HostMode::Nvhe,
        2 => HostMode::Vhe,
        el => return Err(Refusal::UnexpectedEl(el)),
    };
    if mode == HostMode::Nvhe && !hw.el2_implemented() {
        return Err(Refusal::NoEl2);
    }
    if let Some(feature) = unswitched_feature(hw.id_reg(7, 3), hw.id_reg(4, 1)) {
        return Err(Refusal::UnswitchedState(feature));
    }
    if mode == HostMode::Vhe && kvm_on() {
        return Err(Refusal::KvmOn);
    }
    Ok(mode)
}

/// A feature whose EL1 registers a guest could reach: with FEAT_HCX, the
/// registers of TCR2, SCTLR2, GCS and FPMR trap (HCRX_EL2 is 0 while a
/// guest runs), but those of S1PIE, S1POE, AIE and THE trap only through
/// the fine-grained traps, which the host leaves open. From
/// ID_AA64MMFR3_EL1 and ID_AA64PFR1_EL1.
pub fn unswitched_feature(mmfr3: u64, pfr1: u64) -> Option<&'static str> {
    let field = |v: u64, shift: u32| (v >> shift) & 0xf != 0;
    if field(mmfr3, 8) {
        Some("FEAT_S1PIE (PIR_EL1, PIRE0_EL1)")
    } else if field(mmfr3, 16) {
        Some("FEAT_S1POE (POR_EL1, POR_EL0)")
    } else if field(mmfr3, 24) {
        Some("FEAT_AIE (MAIR2_EL1, AMAIR2_EL1)")
    } else if field(pfr1, 48) {
        Some("FEAT_THE (RCWMASK_EL1, RCWSMASK_EL1)")
    } else {
        None
    }
}

/// Who answers at EL2 now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Our vectors, at the expected address.
    Us,
    /// Linux's hyp stub.
    Stub,
    /// Something else; its answer.
    Other(u64),
}

/// Asks EL2 who it is.
pub fn owner(hw: &impl El2, cpu: &CpuHyp) -> Owner {
    match hw.hvc([VMM_HC_PING, 0, 0, 0]) {
        [EL2_MAGIC, _, vbar, tpidr] if vbar == cpu.code_pa && tpidr == cpu.page_pa => Owner::Us,
        [HVC_STUB_ERR, ..] => Owner::Stub,
        [x0, ..] => Owner::Other(x0),
    }
}

/// Takes EL2 on the calling CPU. Idempotent: a CPU already ours is left
/// alone. Under VHE there is nothing to take.
pub fn install(hw: &impl El2, cpu: &CpuHyp, mode: HostMode) -> Result<(), Refusal> {
    if mode == HostMode::Vhe {
        return match hw.current_el() {
            2 => Ok(()),
            el => Err(Refusal::UnexpectedEl(el)),
        };
    }
    check_cpu(hw, || false)?;
    match owner(hw, cpu) {
        Owner::Us => return Ok(()),
        Owner::Stub => {}
        Owner::Other(x0) => return Err(Refusal::NotStub(x0)),
    }
    // The probe writes the page with the EL2 MMU off: no dirty line of ours
    // may overwrite that, and we must not read a stale line afterwards.
    hw.dcache_clean_inval_poc(cpu.page_va, PAGE as usize);
    let r = hw.hvc([HVC_SOFT_RESTART, cpu.code_pa + cpu.probe_offset, cpu.page_pa, cpu.page_pa + PAGE]);
    hw.dcache_clean_inval_poc(cpu.page_va, PAGE as usize);
    if r[0] != PROBE_MAGIC {
        return Err(Refusal::ProbeFailed(r[0]));
    }
    hw.hvc([HVC_SET_VECTORS, cpu.code_pa, 0, 0]);
    if owner(hw, cpu) == Owner::Us {
        hw.hvc([VMM_HC_MMU_ON, cpu.mmu.ttbr0, cpu.mmu.tcr, cpu.mmu.mair]);
    }
    match owner(hw, cpu) {
        Owner::Us => Ok(()),
        other => {
            // Whatever answered, put the stub back if our vectors are in.
            hw.hvc([HVC_RESET_VECTORS, 0, 0, 0]);
            Err(Refusal::VectorsSilent(match other {
                Owner::Other(x) => x,
                _ => HVC_STUB_ERR,
            }))
        }
    }
}

/// Gives EL2 back to the stub on the calling CPU. Returns whether the stub
/// answers afterwards (a CPU we did not hold is left alone). Under VHE
/// there is nothing to give back.
pub fn uninstall(hw: &impl El2, cpu: &CpuHyp, mode: HostMode) -> bool {
    if mode == HostMode::Vhe {
        return true;
    }
    if owner(hw, cpu) == Owner::Us {
        hw.hvc([HVC_RESET_VECTORS, 0, 0, 0]);
    }
    owner(hw, cpu) == Owner::Stub
}
