//! What the guest sees in the ID registers (op0 3, op1 0, CRn 0, CRm 1..7:
//! the space HCR_EL2.TID3 traps): the host CPU's values with every feature
//! we do not virtualise taken out, so that a guest never finds and uses
//! something that would trap or misbehave. Unallocated encodings in the
//! space read as zero, as the architecture says. Pure: the hardware value
//! comes from the caller.

/// A 4-bit ID field at bit `shift`.
#[derive(Clone, Copy)]
struct Field(u32);

impl Field {
    const fn mask(self) -> u64 {
        0xf << self.0
    }
}

/// Fields set to zero ("not implemented") in one register.
struct Hidden {
    crm: u32,
    op2: u32,
    fields: &'static [Field],
}

/// ID_AA64PFR0_EL1: EL2 (no nested virtualisation: 11:8), SVE (35:32),
/// MPAM (43:40), AMU (47:44), RME (55:52).
const PFR0: Hidden = Hidden { crm: 4, op2: 0, fields: &[Field(8), Field(32), Field(40), Field(44), Field(52)] };
/// ID_AA64PFR1_EL1: MTE (11:8), RAS_frac kept, MPAM_frac (19:16), SME
/// (27:24), NMI (39:36), MTE_frac (43:40), GCS (47:44).
const PFR1: Hidden =
    Hidden { crm: 4, op2: 1, fields: &[Field(8), Field(16), Field(24), Field(36), Field(40), Field(44)] };
/// ID_AA64DFR0_EL1: TraceVer (7:4), PMUVer (11:8), PMSVer (35:32),
/// TraceFilt (43:40), TraceBuffer (47:44), BRBE (55:52). The debug version
/// and the breakpoint counts stay: the registers read as zero and ignore
/// writes (see exits.rs), which a debugger can detect but a kernel
/// resetting them at boot never notices.
const DFR0: Hidden =
    Hidden { crm: 5, op2: 0, fields: &[Field(4), Field(8), Field(32), Field(40), Field(44), Field(52)] };
/// ID_AA64ISAR1_EL1: pointer authentication (APA 7:4, API 11:8, GPA 27:24,
/// GPI 31:28): its keys are not switched, so it is disabled (HCR_EL2.API/APK
/// clear) and must not be advertised.
const ISAR1: Hidden = Hidden { crm: 6, op2: 1, fields: &[Field(4), Field(8), Field(24), Field(28)] };
/// ID_AA64ISAR2_EL1: GPA3 (11:8), APA3 (15:12), as above.
const ISAR2: Hidden = Hidden { crm: 6, op2: 2, fields: &[Field(8), Field(12)] };

const HIDDEN: [Hidden; 5] = [PFR0, PFR1, DFR0, ISAR1, ISAR2];

/// ID_AA64ZFR0_EL1 (SVE) and ID_AA64SMFR0_EL1 (SME): read as zero.
const ZERO: [(u32, u32); 2] = [(4, 4), (4, 5)];

/// Whether an access (op0, op1, CRn, CRm) is in the ID register space.
pub fn is_id_space(op0: u32, op1: u32, crn: u32, crm: u32) -> bool {
    op0 == 3 && op1 == 0 && crn == 0 && (1..=7).contains(&crm)
}

/// The value the guest reads for S3_0_C0_C`crm`_`op2`, given the host's.
pub fn sanitise(crm: u32, op2: u32, hw: u64) -> u64 {
    if ZERO.contains(&(crm, op2)) {
        return 0;
    }
    match HIDDEN.iter().find(|h| h.crm == crm && h.op2 == op2) {
        Some(h) => hw & !h.fields.iter().fold(0, |m, f| m | f.mask()),
        None => hw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cortex_a57_as_qemu_models_it() {
        // ID_AA64PFR0_EL1 0x1000_0000_0000_2222 would be EL0-EL3 AArch64+32
        // and a GIC; QEMU's A57: EL2 and EL3 implemented, GIC sysregs.
        assert_eq!(sanitise(4, 0, 0x0100_2222), 0x0100_2022, "EL2 hidden, the GIC field kept");
        // ID_AA64DFR0_EL1 0x10305106: PMUv3 (PMUVer 1) hidden, debug v8 and 6 BRPs kept.
        assert_eq!(sanitise(5, 0, 0x1030_5106), 0x1030_5006);
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
        assert_eq!(dfr0 & 0xf, 0xf, "debug version kept");
        let isar1 = sanitise(6, 1, all);
        assert_eq!(isar1 & 0xf000_0ff0, 0, "pointer authentication");
        assert_eq!(isar1 & 0xf, 0xf, "DPB kept");
        assert_eq!(sanitise(6, 2, all) & 0xff00, 0);
        assert_eq!(sanitise(4, 4, all), 0, "ZFR0");
        assert_eq!(sanitise(4, 5, all), 0, "SMFR0");
        assert_eq!(sanitise(7, 0, 0x1122), 0x1122, "MMFR0 as is");
        assert_eq!(sanitise(1, 0, 0x131), 0x131, "AArch32 ID_PFR0 as is");
    }

    #[test]
    fn the_space() {
        assert!(is_id_space(3, 0, 0, 1) && is_id_space(3, 0, 0, 7));
        assert!(!is_id_space(3, 0, 0, 0), "MIDR, MPIDR, REVIDR: not TID3's");
        assert!(!is_id_space(3, 1, 0, 4) && !is_id_space(3, 0, 1, 4) && !is_id_space(2, 0, 0, 4));
    }
}
