//! What the guest sees in the ID registers (op0 3, op1 0, CRn 0, CRm 1..7:
//! the space HCR_EL2.TID3 traps): the host CPU's values, filtered so that a
//! guest never finds and uses something that would trap, misbehave, or
//! reach state the world switch does not switch.
//!
//! The AArch64 registers go through an allow-list, as KVM's do: only the
//! fields named here pass (some capped at a version we support), every
//! other field, and every register not named, reads as zero ("not
//! implemented"). A CPU newer than this list therefore shows the guest
//! nothing it does not know. The AArch32 registers (for 32-bit programs at
//! EL0) pass, less what we hide in their AArch64 twins. Pure: the hardware
//! value comes from the caller.

/// What one 4-bit field of an ID register shows the guest, beyond the
/// fields it keeps as they are.
#[derive(Clone, Copy)]
enum Rule {
    /// The host's value, at most this (an unsigned field).
    Max(u64),
    /// This value, whatever the host has.
    Fixed(u64),
}

use Rule::{Fixed, Max};

/// An AArch64 ID register S3_0_C0_C`crm`_`op2`: the fields it shows as the
/// host has them (a mask), and those it shows otherwise, by lowest bit.
struct Allowed {
    crm: u32,
    op2: u32,
    keep: u64,
    rules: &'static [(u32, Rule)],
}

/// The mask of the 4-bit fields at these lowest bits.
const fn fields(shifts: &[u32]) -> u64 {
    let mut mask = 0;
    let mut i = 0;
    while i < shifts.len() {
        mask |= 0xf << shifts[i];
        i += 1;
    }
    mask
}

const ALLOWED: [Allowed; 9] = [
    // ID_AA64PFR0_EL1: EL0, EL1, EL3, FP, AdvSIMD, GIC (the vGICv3), RAS up to
    // v1 (its error records read as zero), DIT, CSV2, CSV3. Not: EL2 (no
    // nested virtualisation), SVE, SEL2, MPAM, AMU, RME.
    Allowed { crm: 4, op2: 0, keep: fields(&[0, 4, 12, 16, 20, 24, 48, 56, 60]), rules: &[(28, Max(1))] },
    // ID_AA64PFR1_EL1: BT, SSBS, CSV2_frac. Not: MTE, RAS_frac, MPAM_frac,
    // SME, RNDR_trap, NMI, GCS, THE, DF2, PFAR.
    Allowed { crm: 4, op2: 1, keep: fields(&[0, 4, 32]), rules: &[] },
    // ID_AA64DFR0_EL1: DebugVer up to v8.4, BRPs, WRPs, CTX_CMPs (the
    // guest's own breakpoints, see `debug`); DoubleLock not implemented
    // (OSDLR_EL1 reads as zero). Not: trace, PMU, SPE, BRBE.
    Allowed { crm: 5, op2: 0, keep: fields(&[12, 20, 28]), rules: &[(0, Max(9)), (36, Fixed(0xf))] },
    // ID_AA64ISAR0_EL1: every instruction set field but TME.
    Allowed { crm: 6, op2: 0, keep: fields(&[4, 8, 12, 16, 20, 28, 32, 36, 40, 44, 48, 52, 56, 60]), rules: &[] },
    // ID_AA64ISAR1_EL1: DPB, JSCVT, FCMA, LRCPC, FRINTTS, SB, SPECRES, BF16,
    // DGH, I8MM, XS. Not: pointer authentication (APA, API, GPA, GPI: its
    // keys are not switched, HCR_EL2.API/APK stay clear), LS64.
    Allowed { crm: 6, op2: 1, keep: fields(&[0, 12, 16, 20, 32, 36, 40, 44, 48, 52, 56]), rules: &[] },
    // ID_AA64ISAR2_EL1: RPRES, BC, CLRBHB, PRFMSLC, RPRFM, CSSC, LUT. Not:
    // WFxT, pointer authentication (GPA3, APA3, PAC_frac), MOPS, 128-bit
    // system registers, ATS1A.
    Allowed { crm: 6, op2: 2, keep: fields(&[4, 20, 28, 40, 48, 52, 56]), rules: &[] },
    // ID_AA64MMFR0_EL1: PARange up to 48 bits (the most stage 2 gives),
    // ASIDBits, BigEnd, SNSMem, BigEndEL0, the stage 1 granules, ExS, ECV up
    // to the self-synchronising counter reads. Not: the stage 2 granule
    // fields, FGT.
    Allowed { crm: 7, op2: 0, keep: fields(&[4, 8, 12, 16, 20, 24, 28, 44]), rules: &[(0, Max(5)), (60, Max(1))] },
    // ID_AA64MMFR1_EL1: HAFDBS up to dirty state, HPDS, PAN, SpecSEI, ETS,
    // AFP, nTLBPA, TIDCP1, CMOW, ECBHB. Not: VMIDBits, VH, LO (LORegions
    // trap), XNX, TWED, HCX.
    Allowed { crm: 7, op2: 1, keep: fields(&[12, 20, 24, 36, 44, 48, 52, 56, 60]), rules: &[(0, Max(2))] },
    // ID_AA64MMFR2_EL1: CnP, UAO, LSM, IESB, VARange, CCIDX, ST, AT, IDS, TTL,
    // BBM, E0PD. Not: NV, FWB, EVT.
    Allowed { crm: 7, op2: 2, keep: fields(&[0, 4, 8, 12, 16, 20, 28, 32, 36, 48, 52, 60]), rules: &[] },
];

/// AArch32 fields hidden as in their AArch64 twins: ID_PFR0_EL1.AMU (23:20),
/// ID_DFR0_EL1 trace (15:12, 23:20) and PerfMon (27:24); ID_DFR1_EL1 (MTPMU)
/// reads as zero.
const AARCH32_HIDDEN: [(u32, u32, u64); 3] =
    [(1, 0, 0xf << 20), (1, 2, 0xf << 12 | 0xf << 20 | 0xf << 24), (3, 5, u64::MAX)];

/// Whether an access (op0, op1, CRn, CRm) is in the ID register space.
pub fn is_id_space(op0: u32, op1: u32, crn: u32, crm: u32) -> bool {
    op0 == 3 && op1 == 0 && crn == 0 && (1..=7).contains(&crm)
}

/// Whether S3_0_C0_C`crm`_`op2` is an AArch64 ID register the guest sees
/// something of (the others read as zero, or are AArch32's).
pub fn is_allowed(crm: u32, op2: u32) -> bool {
    ALLOWED.iter().any(|r| (r.crm, r.op2) == (crm, op2))
}

/// The value the guest reads for S3_0_C0_C`crm`_`op2`, given the host's.
pub fn sanitise(crm: u32, op2: u32, hw: u64) -> u64 {
    if crm <= 3 {
        let hidden = AARCH32_HIDDEN.iter().find(|h| (h.0, h.1) == (crm, op2)).map_or(0, |h| h.2);
        return hw & !hidden;
    }
    let Some(reg) = ALLOWED.iter().find(|r| (r.crm, r.op2) == (crm, op2)) else {
        return 0;
    };
    reg.rules.iter().fold(hw & reg.keep, |v, &(shift, rule)| {
        let shown = match rule {
            Max(m) => ((hw >> shift) & 0xf).min(m),
            Fixed(f) => f,
        };
        v | shown << shift
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cortex_a57_as_qemu_models_it() {
        // ID_AA64PFR0_EL1 0x1000_0000_0000_2222 would be EL0-EL3 AArch64+32
        // and a GIC; QEMU's A57: EL2 and EL3 implemented, GIC sysregs.
        assert_eq!(sanitise(4, 0, 0x0100_2222), 0x0100_2022, "EL2 hidden, the GIC field kept");
        // ID_AA64DFR0_EL1 0x10305106: PMUv3 (PMUVer 1) hidden, debug v8 and 6
        // BRPs kept, DoubleLock shown as not implemented.
        assert_eq!(sanitise(5, 0, 0x1030_5106), 0xf0_1030_5006);
    }

    #[test]
    fn features_we_do_not_virtualise_are_gone() {
        let all = u64::MAX;
        let pfr0 = sanitise(4, 0, all);
        assert_eq!((pfr0 >> 32) & 0xf, 0, "SVE");
        assert_eq!((pfr0 >> 44) & 0xf, 0, "AMU");
        assert_eq!((pfr0 >> 24) & 0xf, 0xf, "GIC kept");
        let pfr1 = sanitise(4, 1, all);
        assert_eq!(((pfr1 >> 8) & 0xf, (pfr1 >> 24) & 0xf), (0, 0), "MTE, SME");
        let dfr0 = sanitise(5, 0, all);
        assert_eq!(((dfr0 >> 8) & 0xf, (dfr0 >> 32) & 0xf), (0, 0), "PMU, SPE");
        assert_eq!(dfr0 & 0xf, 9, "debug version capped at v8.4");
        let isar1 = sanitise(6, 1, all);
        assert_eq!(isar1 & 0xf000_0ff0, 0, "pointer authentication");
        assert_eq!(isar1 & 0xf, 0xf, "DPB kept");
        assert_eq!(sanitise(6, 2, all) & 0xff00, 0);
        assert_eq!(sanitise(4, 4, all), 0, "ZFR0");
        assert_eq!(sanitise(4, 5, all), 0, "SMFR0");
        assert_eq!(sanitise(7, 0, 0x1122), 0x1122, "MMFR0 as is");
        assert_eq!(sanitise(1, 0, 0x131), 0x131, "AArch32 ID_PFR0 as is");
        assert_eq!(sanitise(1, 2, u64::MAX) & 0x0fff_f000, 0x000f_0000, "ID_DFR0: only MMapDbg of these");
        // Newer than this list: hidden.
        assert_eq!(pfr0 & 0x00f0_00f0_0000_0f00, 0, "EL2, SEL2, RME");
        assert_eq!((pfr0 >> 28) & 0xf, 1, "RAS capped at v1");
        let mmfr1 = sanitise(7, 1, all);
        assert_eq!(((mmfr1 >> 16) & 0xf, (mmfr1 >> 40) & 0xf, mmfr1 & 0xf), (0, 0, 2), "LO, HCX, HAFDBS");
        assert_eq!(sanitise(7, 0, all) & 0xf, 5, "PARange 48 bits");
        for (crm, op2) in [(4, 2), (5, 1), (5, 4), (5, 5), (6, 3), (7, 3), (7, 4), (4, 7)] {
            assert_eq!(sanitise(crm, op2, all), 0, "S3_0_C0_C{crm}_{op2}: unknown, zero");
        }
    }

    #[test]
    fn the_space() {
        assert!(is_id_space(3, 0, 0, 1) && is_id_space(3, 0, 0, 7));
        assert!(!is_id_space(3, 0, 0, 0), "MIDR, MPIDR, REVIDR: not TID3's");
        assert!(!is_id_space(3, 1, 0, 4) && !is_id_space(3, 0, 1, 4) && !is_id_space(2, 0, 0, 4));
    }
}
