//! Exits that stop the vCPU, in words: what the guest did, where, and the raw
//! syndrome for whoever debugs it.

use vmm_uapi::esr::{ec, Esr};
use vmm_uapi::{exitcode, hyp_reason, HypExit};

/// The guest physical address of a stage-2 fault: HPFAR_EL2.FIPA holds its
/// page (IPA bits 51:12 in bits 47:4), FAR_EL2 the offset in the page.
pub fn fault_ipa(h: &HypExit) -> u64 {
    ((h.hpfar_el2 & 0x0000_ffff_ffff_fff0) << 8) | (h.far_el2 & 0xfff)
}

fn is_abort(esr: Esr) -> bool {
    matches!(esr.ec(), ec::IABT_LOW | ec::IABT_CUR | ec::DABT_LOW | ec::DABT_CUR)
}

/// `data abort from the guest (translation fault)`, or the class alone when
/// the exception is not an abort.
fn class_and_fault(esr: Esr) -> String {
    if is_abort(esr) {
        format!("{} ({})", esr.class_name(), esr.fsc_name())
    } else {
        esr.class_name().to_string()
    }
}

/// One line for a `HYP` exit of vCPU `vcpu` at `pc`.
pub fn describe(vcpu: i32, pc: u64, h: &HypExit) -> String {
    let esr = Esr(h.esr_el2);
    let ipa = fault_ipa(h);
    let what = match h.exception_nr {
        hyp_reason::DABT_NO_SYNDROME => format!("{} without a valid syndrome at {ipa:#010x}", class_and_fault(esr)),
        hyp_reason::IABT_OUTSIDE_MEMORY => {
            format!("{}: instruction fetch outside guest memory at {ipa:#010x}", class_and_fault(esr))
        }
        hyp_reason::S1PTW_OUTSIDE_MEMORY => {
            format!("{}: the guest's page-table walk reached {ipa:#010x}, outside guest memory", class_and_fault(esr))
        }
        hyp_reason::SERROR => "SError (asynchronous external abort) from the guest".to_string(),
        hyp_reason::NO_MEMORY => format!("the host could not allocate guest memory at {ipa:#010x}"),
        hyp_reason::SYNC => {
            format!("{} (exception class {:#04x}) that nothing handles", class_and_fault(esr), esr.ec())
        }
        n => format!("{} (unknown reason {n})", class_and_fault(esr)),
    };
    format!(
        "vCPU {vcpu} stopped: {what}, pc {pc:#010x} (ESR {:#010x}, FAR {:#x}, HPFAR {:#x})",
        h.esr_el2, h.far_el2, h.hpfar_el2
    )
}

/// The name of an exit code, for exits bhyve does not handle.
pub fn exit_code_name(code: u32) -> &'static str {
    match code {
        exitcode::BOGUS => "BOGUS",
        exitcode::INST_EMUL => "INST_EMUL",
        exitcode::REG_EMUL => "REG_EMUL: a trapped system register access",
        exitcode::HVC => "HVC",
        exitcode::SUSPENDED => "SUSPENDED",
        exitcode::HYP => "HYP",
        exitcode::WFI => "WFI: waiting for an interrupt",
        exitcode::PAGING => "PAGING: a stage-2 fault",
        exitcode::SMCCC => "SMCCC",
        exitcode::DEBUG => "DEBUG: a debug exception",
        exitcode::BRK => "BRK: a breakpoint instruction",
        exitcode::SS => "SS: a software step",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_abort_without_syndrome() {
        let h = HypExit {
            exception_nr: hyp_reason::DABT_NO_SYNDROME,
            esr_el2: 0x9200_0006,
            far_el2: 0x0b00_0000,
            hpfar_el2: 0x0b00_0000 >> 8,
        };
        assert_eq!(fault_ipa(&h), 0x0b00_0000);
        assert_eq!(
            describe(0, 0x4000_0010, &h),
            "vCPU 0 stopped: data abort from the guest (translation fault) without a valid syndrome \
             at 0x0b000000, pc 0x40000010 (ESR 0x92000006, FAR 0xb000000, HPFAR 0xb0000)"
        );
    }

    #[test]
    fn ipa_takes_the_page_from_hpfar_and_the_offset_from_far() {
        let h = HypExit { exception_nr: 0, esr_el2: 0, far_el2: 0xffff_0000_1234_5678, hpfar_el2: 0x0876_5430 };
        assert_eq!(fault_ipa(&h), 0x8_7654_3678);
        let ns = HypExit { hpfar_el2: 1 << 63 | 0x10, ..h };
        assert_eq!(fault_ipa(&ns), 0x1678, "the NS bit is not address");
    }

    #[test]
    fn other_reasons_in_words() {
        let h =
            |nr, esr| HypExit { exception_nr: nr, esr_el2: esr, far_el2: 0x1_0000_0000, hpfar_el2: 0x1_0000_0000 >> 8 };
        let d = describe(0, 0x4000_0000, &h(hyp_reason::IABT_OUTSIDE_MEMORY, 0x8200_0006));
        assert!(
            d.starts_with(
                "vCPU 0 stopped: instruction abort from the guest (translation fault): \
                 instruction fetch outside guest memory at 0x100000000, pc 0x40000000"
            ),
            "{d}"
        );
        let d = describe(1, 0x4000_0000, &h(hyp_reason::S1PTW_OUTSIDE_MEMORY, 0x9200_0086));
        assert!(d.contains("page-table walk reached 0x100000000"), "{d}");
        let d = describe(0, 0, &h(hyp_reason::SERROR, 0xbe00_0000));
        assert!(d.starts_with("vCPU 0 stopped: SError"), "{d}");
        let d = describe(0, 0, &h(hyp_reason::NO_MEMORY, 0x9200_0006));
        assert!(d.contains("could not allocate guest memory at 0x100000000"), "{d}");
        let d = describe(0, 0x4000_0004, &h(hyp_reason::SYNC, 0x5e00_0000));
        assert!(d.starts_with("vCPU 0 stopped: SMC (exception class 0x17) that nothing handles"), "{d}");
        let d = describe(0, 0, &h(hyp_reason::SYNC, 0x0200_0000));
        assert!(d.contains("unknown reason (undefined instruction)"), "{d}");
        let d = describe(0, 0, &h(99, 0x5e00_0000));
        assert!(d.contains("SMC (unknown reason 99)"), "{d}");
    }

    #[test]
    fn exit_code_names() {
        assert!(exit_code_name(exitcode::WFI).starts_with("WFI"));
        assert_eq!(exit_code_name(1000), "unknown");
    }
}
