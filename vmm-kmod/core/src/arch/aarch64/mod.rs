//! AArch64: the [`El2`] port, cache maintenance, and the EL2 code blob.

use crate::hyp::{El2, HostMode, HYP, VMM_HC_GIC_VTR, VMM_HC_RUN, VMM_HC_TLBI_VMID};
use crate::vcpu::context::{off, Context, EXIT_FIQ, EXIT_IRQ, EXIT_SERROR, EXIT_SYNC};
use aarch64_cpu::registers::{CurrentEL, Readable, ID_AA64MMFR0_EL1, ID_AA64PFR0_EL1, MIDR_EL1};
use core::arch::{asm, global_asm};

// The EL2 code: vectors, stub-compatible calls, our calls, the world switch
// and the probe. It is position independent and copied into a page of its
// own at load time. Offsets come from the Rust layout of the context.
global_asm!(
    include_str!("el2.S"),
    hyp_stub_vbar = const off::HYP_STUB_VBAR,
    hyp_guest = const off::HYP_GUEST,
    hyp_host = const off::HYP_HOST,
    hyp_vhe_sp = const off::HYP_VHE_SP,
    hyp_vhe_tpidr = const off::HYP_VHE_TPIDR,
    hyp_vhe_vbar = const off::HYP_VHE_VBAR,
    hyp_vhe_daif = const off::HYP_VHE_DAIF,
    ctx_pc = const off::PC,
    ctx_sys = const off::SYS,
    ctx_timer = const off::TIMER,
    ctx_el2 = const off::EL2,
    ctx_exit = const off::EXIT,
    ctx_fp = const off::FP,
    ctx_vgic = const off::VGIC,
    ctx_debug = const off::DEBUG,
    dbg_bvr = const off::DBG_BVR,
    dbg_bcr = const off::DBG_BCR,
    dbg_wvr = const off::DBG_WVR,
    dbg_wcr = const off::DBG_WCR,
    vgic_lrs = const off::VGIC_LRS,
    fp_fpcr = const off::FP_FPCR,
    el2_hcr = const off::EL2_HCR,
    el2_vttbr = const off::EL2_VTTBR,
    el2_vtcr = const off::EL2_VTCR,
    el2_vmpidr = const off::EL2_VMPIDR,
    el2_vpidr = const off::EL2_VPIDR,
    el2_cntvoff = const off::EL2_CNTVOFF,
    el2_cptr = const off::EL2_CPTR,
    el2_mdcr = const off::EL2_MDCR,
    el2_cnthctl = const off::EL2_CNTHCTL,
    el2_flags = const off::EL2_FLAGS,
    el2_hcrx = const off::EL2_HCRX,
    exit_kind = const off::EXIT_KIND,
    exit_esr = const off::EXIT_ESR,
    exit_hpfar = const off::EXIT_HPFAR,
    ctx_exit_el2_hvcs = const off::EXIT_EL2_HVCS,
    exit_sync = const EXIT_SYNC,
    exit_irq = const EXIT_IRQ,
    exit_fiq = const EXIT_FIQ,
    exit_serror = const EXIT_SERROR,
);

extern "C" {
    static vmm_el2_start: u8;
    static vmm_el2_probe: u8;
    static vmm_el2_end: u8;
    /// VHE: runs the guest whose context is at `guest` until an exit, with
    /// `hyp_page` as this CPU's hyp page (el2.S). Returns 0.
    fn vmm_vhe_run(guest: *mut Context, hyp_page: *mut u8) -> u64;
    /// VHE: invalidates the TLB entries of a VMID on every CPU.
    fn vmm_vhe_tlbi_vmid(vttbr: u64);
    /// VHE: ICH_VTR_EL2, or 0.
    fn vmm_vhe_gic_vtr() -> u64;
}

/// The EL2 code as bytes, and the probe's offset in it.
pub fn el2_blob() -> (&'static [u8], usize) {
    // SAFETY: the three symbols delimit one contiguous, immutable section
    // emitted by el2.S, with start <= probe < end.
    unsafe {
        let start = &raw const vmm_el2_start;
        let end = &raw const vmm_el2_end;
        let probe = &raw const vmm_el2_probe;
        let len = end as usize - start as usize;
        (core::slice::from_raw_parts(start, len), probe as usize - start as usize)
    }
}

/// The running CPU.
pub struct Hw;

impl El2 for Hw {
    fn current_el(&self) -> u8 {
        CurrentEL.read(CurrentEL::EL) as u8
    }

    fn el2_implemented(&self) -> bool {
        // ID_AA64PFR0_EL1.EL2, bits [11:8]: 0 means not implemented.
        (ID_AA64PFR0_EL1.get() >> 8) & 0xf != 0
    }

    fn hvc(&self, a: [u64; 4]) -> [u64; 4] {
        let mut r = a;
        // SAFETY: only called after check_cpu (EL2 exists, kernel at EL1).
        // The stub and our vectors use x0-x9 at most; x0-x17 are declared
        // clobbered like any call, and EL2 returns with the stack untouched.
        unsafe {
            asm!("hvc #0",
                inlateout("x0") r[0], inlateout("x1") r[1],
                inlateout("x2") r[2], inlateout("x3") r[3],
                lateout("x4") _, lateout("x5") _, lateout("x6") _, lateout("x7") _,
                lateout("x8") _, lateout("x9") _, lateout("x10") _, lateout("x11") _,
                lateout("x12") _, lateout("x13") _, lateout("x14") _, lateout("x15") _,
                lateout("x16") _, lateout("x17") _,
                options(nostack));
        }
        r
    }

    fn id_reg(&self, crm: u32, op2: u32) -> u64 {
        id_reg(crm, op2)
    }

    fn dcache_clean_inval_poc(&self, va: *const u8, len: usize) {
        dcache_clean_inval_poc(va, len)
    }
}

/// Cleans and invalidates `[va, va + len)` to the point of coherency.
pub fn dcache_clean_inval_poc(va: *const u8, len: usize) {
    let ctr: u64;
    // SAFETY: CTR_EL0 is readable at EL1 and has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    // CTR_EL0.DminLine, bits [19:16]: log2 of the smallest D-cache line in words.
    let line = 4usize << ((ctr >> 16) & 0xf);
    let mut a = va as usize & !(line - 1);
    let end = va as usize + len;
    while a < end {
        // SAFETY: cache maintenance by VA on mapped kernel memory has no
        // effect on program state.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Makes code written through the data side visible to instruction fetch at
/// any EL with its MMU off: clean to PoC, then invalidate all I-caches.
pub fn publish_code(va: *const u8, len: usize) {
    dcache_clean_inval_poc(va, len);
    // SAFETY: invalidating instruction caches only costs refills.
    unsafe { asm!("ic ialluis", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Cleans a page to the point of coherency and drops its lines from the
/// instruction cache, so a guest with its MMU (and caches) off sees it.
pub fn publish_page(va: *const u8) {
    dcache_clean_inval_poc(va, 4096);
    let ctr: u64;
    // SAFETY: CTR_EL0 is readable at EL1 and has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let line = 4usize << (ctr & 0xf);
    let mut a = va as usize;
    while a < va as usize + 4096 {
        // SAFETY: invalidating instruction cache lines of mapped memory.
        unsafe { asm!("ic ivau, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    // SAFETY: barriers.
    unsafe { asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Enters the guest whose context is `ctx` on host CPU `cpu` (the calling
/// one) until it exits: through VMM_HC_RUN without VHE (see el2.S), by a
/// call with it. The caller masks interrupts and owns the context while it
/// runs. False if EL2 is not ours on this CPU.
pub fn run_guest(ctx: &mut Context, cpu: u32) -> bool {
    match HYP.mode() {
        HostMode::Nvhe => {
            let pa = crate::kernel::virt_to_phys(ctx as *const Context as *const u8);
            Hw.hvc([VMM_HC_RUN, pa, 0, 0])[0] == 0
        }
        HostMode::Vhe => match HYP.page_va(cpu as usize) {
            // SAFETY: the kernel runs at EL2 (VHE), interrupts are masked,
            // `ctx` is exclusively ours for the call and `page` is this
            // CPU's hyp page, used by nothing else meanwhile; vmm_vhe_run
            // preserves the callee-saved registers and the kernel's EL2
            // state (el2.S).
            Some(page) => unsafe { vmm_vhe_run(ctx, page) == 0 },
            None => false,
        },
    }
}

/// Invalidates a VMID's TLB entries on every CPU.
pub fn tlbi_vmid(vttbr: u64) {
    match HYP.mode() {
        HostMode::Nvhe => {
            Hw.hvc([VMM_HC_TLBI_VMID, vttbr, 0, 0]);
        }
        // SAFETY: at EL2 (VHE); the call masks exceptions and restores
        // VTTBR_EL2 and HCR_EL2.
        HostMode::Vhe => unsafe { vmm_vhe_tlbi_vmid(vttbr) },
    }
}

/// MIDR_EL1.
pub fn midr() -> u64 {
    MIDR_EL1.get()
}

/// CNTVCT_EL0 (the host's CNTVOFF_EL2 is 0, so this is the physical count).
pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effects.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// ID_AA64MMFR0_EL1.PARange.
pub fn parange() -> u64 {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange)
}

/// ICH_VTR_EL2, read at EL2, or 0 when the CPU has no GICv3 system
/// register interface (ID_AA64PFR0_EL1.GIC) or EL2 does not use it.
pub fn gic_vtr() -> u64 {
    if (ID_AA64PFR0_EL1.get() >> 24) & 0xf == 0 {
        return 0;
    }
    match HYP.mode() {
        HostMode::Nvhe => Hw.hvc([VMM_HC_GIC_VTR, 0, 0, 0])[0],
        // SAFETY: at EL2 (VHE), reading two system registers.
        HostMode::Vhe => unsafe { vmm_vhe_gic_vtr() },
    }
}

/// CNTFRQ_EL0.
pub fn counter_freq() -> u64 {
    let v: u64;
    // SAFETY: reading the counter frequency has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The ID register S3_0_C0_C`crm`_`op2` (`crm` 1..=7: the space HCR_EL2.TID3
/// traps for guests), read at EL1; 0 for any other `crm`. Unallocated
/// encodings in this space read as zero on every Armv8 CPU.
pub fn id_reg(crm: u32, op2: u32) -> u64 {
    macro_rules! read {
        ($($crm:literal: $($op2:literal)*;)*) => {
            match (crm, op2) {
                $($(($crm, $op2) => {
                    let v: u64;
                    // SAFETY: reading an ID register has no side effects;
                    // the whole space is readable (RAZ where unallocated) at EL1.
                    unsafe {
                        asm!(
                            concat!("mrs {}, s3_0_c0_c", stringify!($crm), "_", stringify!($op2)),
                            out(reg) v,
                            options(nomem, nostack, preserves_flags)
                        )
                    };
                    v
                })*)*
                _ => 0,
            }
        };
    }
    read! {
        1: 0 1 2 3 4 5 6 7;
        2: 0 1 2 3 4 5 6 7;
        3: 0 1 2 3 4 5 6 7;
        4: 0 1 2 3 4 5 6 7;
        5: 0 1 2 3 4 5 6 7;
        6: 0 1 2 3 4 5 6 7;
        7: 0 1 2 3 4 5 6 7;
    }
}
