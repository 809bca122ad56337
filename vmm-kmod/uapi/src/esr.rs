//! Decoding of the Exception Syndrome Register (`ESR_ELx`): the exception
//! class, and the data-abort syndrome the kernel emulates from. Pure logic,
//! shared by the module (to decide) and bhyve (to report in words).

/// Exception classes (`ESR_ELx.EC`, bits [31:26]) that matter here.
pub mod ec {
    /// Unknown reason (also: an undefined instruction).
    pub const UNKNOWN: u8 = 0x00;
    /// WFI or WFE.
    pub const WFX: u8 = 0x01;
    /// FP/SIMD access trapped by CPTR/CPACR.
    pub const FP_ASIMD: u8 = 0x07;
    /// Pointer authentication instruction or key register trapped.
    pub const PAC: u8 = 0x09;
    /// Illegal execution state.
    pub const ILLEGAL: u8 = 0x0e;
    /// SVC from AArch64.
    pub const SVC64: u8 = 0x15;
    /// HVC from AArch64.
    pub const HVC64: u8 = 0x16;
    /// SMC from AArch64.
    pub const SMC64: u8 = 0x17;
    /// MSR, MRS or system instruction trapped.
    pub const SYS64: u8 = 0x18;
    /// SVE access trapped.
    pub const SVE: u8 = 0x19;
    /// Instruction abort from a lower EL.
    pub const IABT_LOW: u8 = 0x20;
    /// Instruction abort at the same EL.
    pub const IABT_CUR: u8 = 0x21;
    /// PC alignment fault.
    pub const PC_ALIGN: u8 = 0x22;
    /// Data abort from a lower EL.
    pub const DABT_LOW: u8 = 0x24;
    /// Data abort at the same EL.
    pub const DABT_CUR: u8 = 0x25;
    /// SP alignment fault.
    pub const SP_ALIGN: u8 = 0x26;
    /// SError interrupt.
    pub const SERROR: u8 = 0x2f;
    /// Breakpoint from a lower EL.
    pub const BREAKPT_LOW: u8 = 0x30;
    /// Software step from a lower EL.
    pub const SOFTSTP_LOW: u8 = 0x32;
    /// Watchpoint from a lower EL.
    pub const WATCHPT_LOW: u8 = 0x34;
    /// BRK instruction.
    pub const BRK64: u8 = 0x3c;
}

/// An ESR value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Esr(pub u64);

impl Esr {
    /// The exception class.
    pub fn ec(self) -> u8 {
        ((self.0 >> 26) & 0x3f) as u8
    }

    /// The instruction length bit: 32-bit instruction.
    pub fn il(self) -> bool {
        self.0 & (1 << 25) != 0
    }

    /// The length in bytes of the instruction that trapped: 4, or 2 for a
    /// 16-bit T32 instruction (IL clear), which only AArch32 EL0 runs.
    pub fn insn_len(self) -> u64 {
        if self.il() {
            4
        } else {
            2
        }
    }

    /// Whether a trapped AArch32 instruction passed its condition check,
    /// from ESR.CV and COND (bits 24, 23:20) and the NZCV flags of `pstate`.
    /// Instructions without a valid condition (CV clear, or AArch64) pass.
    pub fn condition_passed(self, pstate: u64) -> bool {
        if self.0 & (1 << 24) == 0 {
            return true;
        }
        let cond = (self.0 >> 20) & 0xf;
        let (n, z, c, v) = ((pstate >> 31) & 1, (pstate >> 30) & 1, (pstate >> 29) & 1, (pstate >> 28) & 1);
        let base = match cond >> 1 {
            0 => z == 1,
            1 => c == 1,
            2 => n == 1,
            3 => v == 1,
            4 => c == 1 && z == 0,
            5 => n == v,
            6 => n == v && z == 0,
            _ => true,
        };
        // Odd conditions are the negations, except 0b1111 (always).
        if cond & 1 == 1 && cond != 0xf {
            !base
        } else {
            base
        }
    }

    /// The instruction-specific syndrome, bits [24:0].
    pub fn iss(self) -> u32 {
        (self.0 & 0x1ff_ffff) as u32
    }

    /// The exception class in words.
    pub fn class_name(self) -> &'static str {
        match self.ec() {
            ec::UNKNOWN => "unknown reason (undefined instruction)",
            ec::WFX => "WFI/WFE",
            ec::FP_ASIMD => "FP/SIMD access trap",
            ec::PAC => "pointer authentication trap",
            ec::ILLEGAL => "illegal execution state",
            ec::SVC64 => "SVC",
            ec::HVC64 => "HVC",
            ec::SMC64 => "SMC",
            ec::SYS64 => "system register access trap",
            ec::SVE => "SVE access trap",
            ec::IABT_LOW => "instruction abort from the guest",
            ec::IABT_CUR => "instruction abort",
            ec::PC_ALIGN => "PC alignment fault",
            ec::DABT_LOW => "data abort from the guest",
            ec::DABT_CUR => "data abort",
            ec::SP_ALIGN => "SP alignment fault",
            ec::SERROR => "SError",
            ec::BREAKPT_LOW => "breakpoint",
            ec::SOFTSTP_LOW => "software step",
            ec::WATCHPT_LOW => "watchpoint",
            ec::BRK64 => "BRK instruction",
            _ => "other exception class",
        }
    }

    /// For an abort: the fault status code (`DFSC`/`IFSC`, bits [5:0]).
    pub fn fsc(self) -> u8 {
        (self.0 & 0x3f) as u8
    }

    /// For an abort: whether the fault is a translation fault (any level).
    pub fn is_translation_fault(self) -> bool {
        self.fsc() & 0x3c == 0x04
    }

    /// For an abort: the fault status in words.
    pub fn fsc_name(self) -> &'static str {
        match self.fsc() & 0x3c {
            0x00 => "address size fault",
            0x04 => "translation fault",
            0x08 => "access flag fault",
            0x0c => "permission fault",
            _ => match self.fsc() {
                0x10 => "synchronous external abort",
                0x21 => "alignment fault",
                0x30 => "TLB conflict abort",
                _ => "other fault",
            },
        }
    }

    /// For a data abort: the decoded access, if the syndrome is valid.
    pub fn data_abort(self) -> Option<DataAbort> {
        if self.ec() != ec::DABT_LOW && self.ec() != ec::DABT_CUR {
            return None;
        }
        let iss = self.iss();
        if iss & (1 << 24) == 0 {
            return None; // ISV=0: no instruction syndrome
        }
        Some(DataAbort {
            size: 1 << ((iss >> 22) & 3),
            sign_extend: iss & (1 << 21) != 0,
            reg: (iss >> 16) & 0x1f,
            sf: iss & (1 << 15) != 0,
            acquire_release: iss & (1 << 14) != 0,
            write: iss & (1 << 6) != 0,
        })
    }

    /// For an abort: a stage-2 fault on a stage-1 table walk (S1PTW).
    pub fn s1ptw(self) -> bool {
        self.iss() & (1 << 7) != 0
    }

    /// For a data abort: the access was a write (WnR; also set for cache
    /// maintenance and address translation instructions).
    pub fn wnr(self) -> bool {
        self.iss() & (1 << 6) != 0
    }

    /// For a data abort: a cache maintenance or address translation instruction (CM).
    pub fn cache_maintenance(self) -> bool {
        self.iss() & (1 << 8) != 0
    }
}

/// A data access decoded from a valid data-abort syndrome (ISV=1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbort {
    /// Bytes accessed: 1, 2, 4 or 8.
    pub size: u8,
    /// The loaded value is sign-extended (SSE).
    pub sign_extend: bool,
    /// The register transferred (SRT); 31 is the zero register.
    pub reg: u32,
    /// The register is 64-bit (SF).
    pub sf: bool,
    /// Load-acquire or store-release (AR).
    pub acquire_release: bool,
    /// A write (WnR).
    pub write: bool,
}

impl DataAbort {
    /// The register value a read of `data` leaves, as the hardware would:
    /// truncated to the access size, sign-extended if asked, and limited to
    /// 32 bits for a W register.
    pub fn read_value(&self, data: u64) -> u64 {
        let bits = self.size as u32 * 8;
        let mut v = if bits >= 64 { data } else { data & ((1u64 << bits) - 1) };
        if self.sign_extend && bits < 64 {
            let shift = 64 - bits;
            v = (((v << shift) as i64) >> shift) as u64;
        }
        if !self.sf {
            v &= 0xffff_ffff;
        }
        v
    }

    /// The value a write of register value `reg_value` puts on the bus.
    pub fn write_value(&self, reg_value: u64) -> u64 {
        let bits = self.size as u32 * 8;
        if bits >= 64 {
            reg_value
        } else {
            reg_value & ((1u64 << bits) - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aarch32_lengths_and_conditions() {
        // A32 "wfeeq" (CV set, COND 0b0000): IL set; T32 16-bit "wfe": IL clear.
        let wfeeq = Esr((ec::WFX as u64) << 26 | 1 << 25 | 1 << 24 | 1);
        assert_eq!(wfeeq.insn_len(), 4);
        assert_eq!(Esr((ec::WFX as u64) << 26 | 1).insn_len(), 2);
        let z = 1 << 30;
        assert!(wfeeq.condition_passed(z) && !wfeeq.condition_passed(0));
        let with = |cond: u64| Esr(wfeeq.0 & !(0xf << 20) | cond << 20);
        assert!(with(0b0001).condition_passed(0), "NE with Z clear");
        let (n, v) = (1u64 << 31, 1u64 << 28);
        assert!(with(0b1010).condition_passed(n | v) && !with(0b1010).condition_passed(n), "GE: N == V");
        assert!(with(0b1101).condition_passed(z) && !with(0b1101).condition_passed(0), "LE: Z or N != V");
        assert!(with(0b1110).condition_passed(0) && with(0b1111).condition_passed(0), "always");
        // No valid condition (CV clear), as from AArch64: passes.
        assert!(Esr(wfeeq.0 & !(1 << 24)).condition_passed(0));
    }

    // Real syndromes, as the hardware reports them for these instructions.
    const LDRB_W0: u64 = 0x9300_0006; // ldrb w0, [x1]; ISV, SAS=0, SRT=0, translation L2
    const LDRSH_X19: u64 = 0x9373_8007; // ldrsh x19, ...: SAS=1, SSE, SRT=19, SF
    const STR_X2: u64 = 0x93c2_8046; // str x2, ...: SAS=3, SRT=2, SF, WnR
    const LDP: u64 = 0x9200_0006; // ldp: ISV=0

    #[test]
    fn decodes_classes() {
        assert_eq!(Esr(0x5a00_0000).ec(), ec::HVC64);
        assert_eq!(Esr(0x5a00_0000).class_name(), "HVC");
        assert_eq!(Esr(LDRB_W0).ec(), ec::DABT_LOW);
        assert!(Esr(LDRB_W0).il());
        assert!(Esr(LDRB_W0).is_translation_fault());
        assert_eq!(Esr(LDRB_W0).fsc_name(), "translation fault");
        assert_eq!(Esr(0x0200_0000).class_name(), "unknown reason (undefined instruction)");
    }

    #[test]
    fn decodes_data_aborts() {
        let a = Esr(LDRB_W0).data_abort().unwrap();
        assert_eq!((a.size, a.sign_extend, a.reg, a.sf, a.write), (1, false, 0, false, false));
        let a = Esr(LDRSH_X19).data_abort().unwrap();
        assert_eq!((a.size, a.sign_extend, a.reg, a.sf, a.write), (2, true, 19, true, false));
        let a = Esr(STR_X2).data_abort().unwrap();
        assert_eq!((a.size, a.reg, a.sf, a.write), (8, 2, true, true));
        assert_eq!(Esr(LDP).data_abort(), None, "ISV=0 is never decoded");
        assert_eq!(Esr(0x5a00_0000).data_abort(), None);
    }

    #[test]
    fn extends_reads_like_the_hardware() {
        let pat = 0xF0E1_D2C3_B4A5_9687u64;
        let da =
            |size, sign_extend, sf| DataAbort { size, sign_extend, reg: 0, sf, acquire_release: false, write: false };
        assert_eq!(da(1, false, false).read_value(pat), 0x87);
        assert_eq!(da(2, false, false).read_value(pat), 0x9687);
        assert_eq!(da(4, false, false).read_value(pat), 0xB4A5_9687);
        assert_eq!(da(8, false, true).read_value(pat), pat);
        assert_eq!(da(1, true, true).read_value(pat), 0xFFFF_FFFF_FFFF_FF87); // ldrsb x
        assert_eq!(da(2, true, true).read_value(pat), 0xFFFF_FFFF_FFFF_9687); // ldrsh x
        assert_eq!(da(4, true, true).read_value(pat), 0xFFFF_FFFF_B4A5_9687); // ldrsw
        assert_eq!(da(1, true, false).read_value(pat), 0xFFFF_FF87); // ldrsb w
        assert_eq!(da(2, true, false).read_value(pat), 0xFFFF_9687); // ldrsh w
        assert_eq!(da(1, false, false).read_value(0x1_0000_0000), 0);
        assert_eq!(da(2, false, false).write_value(0x1234_5678), 0x5678);
    }
}
