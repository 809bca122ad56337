//! Decoding of the A64 loads and stores that a data abort without an
//! instruction syndrome (ESR ISV=0) leaves to bhyve: those with base
//! register writeback (pre- and post-index) and the load/store pairs, for
//! which the hardware cannot describe the access in one syndrome. Pure
//! logic over the 32-bit encoding, tested with encodings from the GNU
//! assembler.
//!
//! Decoded: the general-purpose register loads and stores of 1, 2, 4 and 8
//! bytes (`LDR`/`STR`, `LDRB`/`LDRH`, `LDRSB`/`LDRSH`/`LDRSW`, `STRB`/`STRH`)
//! with unsigned, unscaled, unprivileged, register, pre- and post-index
//! addressing, and the pairs `LDP`/`STP` (32 and 64 bits), `LDPSW`,
//! `LDNP`/`STNP` with offset, pre- and post-index addressing. Everything
//! else is named ([`Unsupported`]) so that bhyve can say what the guest did.

use std::fmt;

/// How the address is formed from the base register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// `[Xn, off]`: the base is not written back.
    Offset,
    /// `[Xn, off]!`: the address is base + off, written back.
    Pre,
    /// `[Xn], off`: the address is the base; base + off is written back.
    Post,
}

/// How an index register is extended before it is shifted and added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegExtend {
    /// The low 32 bits, zero-extended (`uxtw`).
    Uxtw,
    /// All 64 bits (`lsl`, or `uxtx`).
    Lsl,
    /// The low 32 bits, sign-extended (`sxtw`).
    Sxtw,
    /// All 64 bits (`sxtx`).
    Sxtx,
}

/// What is added to the base register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offset {
    /// A constant (already scaled).
    Imm(i64),
    /// Register `rm` (never SP), extended, shifted left by `shift`.
    Reg {
        /// The index register (31 is XZR).
        rm: u32,
        /// Its extension.
        extend: RegExtend,
        /// Left shift: 0 or log2 of the access size.
        shift: u32,
    },
}

/// A decoded load or store of general-purpose registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadStore {
    /// The mnemonic (`ldp`, `strb`, `ldursw`...).
    pub mnemonic: &'static str,
    /// A load (else a store).
    pub load: bool,
    /// Bytes of each access: 1, 2, 4 or 8.
    pub size: u8,
    /// Loads: the value is sign-extended.
    pub signed: bool,
    /// The register is an X register (64 bits); else a W register, whose
    /// upper half a load clears.
    pub wide: bool,
    /// The first register transferred (31 is the zero register).
    pub rt: u32,
    /// The second, for a pair.
    pub rt2: Option<u32>,
    /// The base register (31 is SP).
    pub rn: u32,
    /// What is added to the base.
    pub offset: Offset,
    /// How the base is used and written back.
    pub index: Index,
}

/// Why an instruction is not emulated: what it is, in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// Not in the load/store encoding group at all.
    NotLoadStore,
    /// A load/store exclusive or ordered (`LDXR`, `LDAR`, `STLR`...).
    Exclusive,
    /// An atomic memory operation (`LDADD`, `SWP`, `CAS`...).
    Atomic,
    /// A load or store of SIMD&FP registers.
    SimdFp,
    /// A SIMD structure load or store (`LD1`...).
    SimdStructure,
    /// A PC-relative literal load.
    Literal,
    /// A prefetch (`PRFM`).
    Prefetch,
    /// A memory tagging instruction (`STG`, `STGP`, `LDG`...).
    MemoryTag,
    /// A load with pointer authentication (`LDRAA`, `LDRAB`).
    PointerAuth,
    /// An ordered load/store with an unscaled offset, or a memory copy/set
    /// (`LDAPUR`, `STLUR`, `CPY*`, `SET*`).
    Ordered,
    /// An encoding the architecture leaves unallocated.
    Unallocated,
    /// Writeback into a register the instruction also transfers, or a pair
    /// loaded into one register: CONSTRAINED UNPREDICTABLE.
    Unpredictable,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unsupported::NotLoadStore => "not a load or store",
            Unsupported::Exclusive => "a load/store exclusive or ordered (acquire/release)",
            Unsupported::Atomic => "an atomic memory operation",
            Unsupported::SimdFp => "a load/store of SIMD&FP registers",
            Unsupported::SimdStructure => "a SIMD structure load/store",
            Unsupported::Literal => "a PC-relative literal load",
            Unsupported::Prefetch => "a prefetch",
            Unsupported::MemoryTag => "a memory tagging load/store",
            Unsupported::PointerAuth => "a pointer-authenticated load",
            Unsupported::Ordered => "an ordered load/store or a memory copy/set",
            Unsupported::Unallocated => "an unallocated encoding",
            Unsupported::Unpredictable => {
                "a load/store whose writeback or pair overlaps its own registers (constrained unpredictable)"
            }
        })
    }
}

/// Bits `hi..=lo` of `insn`.
fn bits(insn: u32, hi: u32, lo: u32) -> u32 {
    (insn >> lo) & ((1 << (hi - lo + 1)) - 1)
}

/// Sign-extends the low `width` bits of `v`.
fn sext(v: u32, width: u32) -> i64 {
    let shift = 64 - width;
    ((v as i64) << shift) >> shift
}

/// Decodes `insn`.
pub fn decode(insn: u32) -> Result<LoadStore, Unsupported> {
    // Loads and stores: op0 (bits 28:25) = x1x0.
    if bits(insn, 27, 27) != 1 || bits(insn, 25, 25) != 0 {
        return Err(Unsupported::NotLoadStore);
    }
    let simd = bits(insn, 26, 26) == 1;
    let op2 = bits(insn, 24, 23);
    match bits(insn, 29, 28) {
        0b00 if simd => Err(Unsupported::SimdStructure),
        0b00 => Err(Unsupported::Exclusive),
        0b01 if op2 & 2 == 0 => Err(Unsupported::Literal),
        0b01 if bits(insn, 31, 24) == 0xd9 => Err(Unsupported::MemoryTag),
        0b01 => Err(Unsupported::Ordered),
        0b10 if simd => Err(Unsupported::SimdFp),
        0b10 => pair(insn, op2),
        _ if simd => Err(Unsupported::SimdFp),
        _ if op2 & 2 != 0 => single(insn, Form::Unsigned),
        _ if bits(insn, 21, 21) == 0 => match bits(insn, 11, 10) {
            0b00 => single(insn, Form::Unscaled),
            0b01 => single(insn, Form::Post),
            0b10 => single(insn, Form::Unprivileged),
            _ => single(insn, Form::Pre),
        },
        _ => match bits(insn, 11, 10) {
            0b00 => Err(Unsupported::Atomic),
            0b10 => single(insn, Form::Register),
            _ => Err(Unsupported::PointerAuth),
        },
    }
}

/// The addressing forms of single-register loads and stores.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Unsigned,
    Unscaled,
    Post,
    Unprivileged,
    Pre,
    Register,
}

fn single(insn: u32, form: Form) -> Result<LoadStore, Unsupported> {
    let size = bits(insn, 31, 30);
    let opc = bits(insn, 23, 22);
    // (load, signed, wide) by size and opc.
    let (load, signed, wide) = match (size, opc) {
        (_, 0) => (false, false, size == 3),
        (_, 1) => (true, false, size == 3),
        (3, 2) if matches!(form, Form::Unsigned | Form::Unscaled | Form::Register) => {
            return Err(Unsupported::Prefetch)
        }
        (0..=2, 2) => (true, true, true),
        (0 | 1, 3) => (true, true, false),
        _ => return Err(Unsupported::Unallocated),
    };
    let rt = bits(insn, 4, 0);
    let rn = bits(insn, 9, 5);
    let imm9 = sext(bits(insn, 20, 12), 9);
    let (offset, index) = match form {
        Form::Unsigned => (Offset::Imm((bits(insn, 21, 10) as i64) << size), Index::Offset),
        Form::Unscaled | Form::Unprivileged => (Offset::Imm(imm9), Index::Offset),
        Form::Post => (Offset::Imm(imm9), Index::Post),
        Form::Pre => (Offset::Imm(imm9), Index::Pre),
        Form::Register => {
            let extend = match bits(insn, 15, 13) {
                0b010 => RegExtend::Uxtw,
                0b011 => RegExtend::Lsl,
                0b110 => RegExtend::Sxtw,
                0b111 => RegExtend::Sxtx,
                _ => return Err(Unsupported::Unallocated),
            };
            let shift = if bits(insn, 12, 12) == 1 { size } else { 0 };
            (Offset::Reg { rm: bits(insn, 20, 16), extend, shift }, Index::Offset)
        }
    };
    if index != Index::Offset && rn == rt && rn != 31 {
        return Err(Unsupported::Unpredictable);
    }
    Ok(LoadStore {
        mnemonic: mnemonic(form, load, size, signed),
        load,
        size: 1 << size,
        signed,
        wide,
        rt,
        rt2: None,
        rn,
        offset,
        index,
    })
}

fn pair(insn: u32, op2: u32) -> Result<LoadStore, Unsupported> {
    let opc = bits(insn, 31, 30);
    let load = bits(insn, 22, 22) == 1;
    let no_allocate = op2 == 0b00;
    let (size, signed, wide) = match opc {
        0b00 => (4u8, false, false),
        0b10 => (8, false, true),
        0b01 if no_allocate => return Err(Unsupported::Unallocated),
        0b01 if load => (4, true, true),
        0b01 => return Err(Unsupported::MemoryTag),
        _ => return Err(Unsupported::Unallocated),
    };
    let index = match op2 {
        0b01 => Index::Post,
        0b11 => Index::Pre,
        _ => Index::Offset,
    };
    let (rt, rt2, rn) = (bits(insn, 4, 0), bits(insn, 14, 10), bits(insn, 9, 5));
    if load && rt == rt2 {
        return Err(Unsupported::Unpredictable);
    }
    if index != Index::Offset && rn != 31 && (rn == rt || rn == rt2) {
        return Err(Unsupported::Unpredictable);
    }
    let mnemonic = match (no_allocate, load, signed) {
        (true, true, _) => "ldnp",
        (true, false, _) => "stnp",
        (false, true, true) => "ldpsw",
        (false, true, false) => "ldp",
        (false, false, _) => "stp",
    };
    Ok(LoadStore {
        mnemonic,
        load,
        size,
        signed,
        wide,
        rt,
        rt2: Some(rt2),
        rn,
        offset: Offset::Imm(sext(bits(insn, 21, 15), 7) * size as i64),
        index,
    })
}

/// The mnemonic of a single-register load or store.
fn mnemonic(form: Form, load: bool, size: u32, signed: bool) -> &'static str {
    // Columns: byte, halfword, word or doubleword, then the signed loads.
    const LOADS: [[&str; 6]; 3] = [
        ["ldrb", "ldrh", "ldr", "ldrsb", "ldrsh", "ldrsw"],
        ["ldurb", "ldurh", "ldur", "ldursb", "ldursh", "ldursw"],
        ["ldtrb", "ldtrh", "ldtr", "ldtrsb", "ldtrsh", "ldtrsw"],
    ];
    const STORES: [[&str; 3]; 3] = [["strb", "strh", "str"], ["sturb", "sturh", "stur"], ["sttrb", "sttrh", "sttr"]];
    let row = match form {
        Form::Unscaled => 1,
        Form::Unprivileged => 2,
        _ => 0,
    };
    let col = match (size, signed) {
        (0, false) => 0,
        (1, false) => 1,
        (_, false) => 2,
        (0, true) => 3,
        (1, true) => 4,
        _ => 5,
    };
    if load {
        LOADS[row][col]
    } else {
        STORES[row][col.min(2)]
    }
}

impl RegExtend {
    fn apply(self, v: u64) -> u64 {
        match self {
            RegExtend::Uxtw => v & 0xffff_ffff,
            RegExtend::Sxtw => v as u32 as i32 as i64 as u64,
            RegExtend::Lsl | RegExtend::Sxtx => v,
        }
    }
}

impl LoadStore {
    /// The address of the first access, given the base register's value
    /// and the index register's (for register offsets), and the base's new
    /// value if it is written back.
    pub fn address(&self, base: u64, index_reg: u64) -> (u64, Option<u64>) {
        let off = match self.offset {
            Offset::Imm(i) => i as u64,
            Offset::Reg { extend, shift, .. } => extend.apply(index_reg) << shift,
        };
        let moved = base.wrapping_add(off);
        match self.index {
            Index::Offset => (moved, None),
            Index::Pre => (moved, Some(moved)),
            Index::Post => (base, Some(moved)),
        }
    }

    /// The registers transferred, in order, with their accesses' offsets
    /// from the first address.
    pub fn transfers(&self) -> impl Iterator<Item = (u32, u64)> {
        let second = self.rt2.map(|r| (r, self.size as u64));
        std::iter::once((self.rt, 0)).chain(second)
    }

    /// A loaded value of [`LoadStore::size`] bytes as the register holds it.
    pub fn load_value(&self, raw: u64) -> u64 {
        let width = 8 * self.size as u32;
        let v = if width == 64 {
            raw
        } else if self.signed {
            (((raw << (64 - width)) as i64) >> (64 - width)) as u64
        } else {
            raw & ((1 << width) - 1)
        };
        if self.wide {
            v
        } else {
            v & 0xffff_ffff
        }
    }

    /// The bytes a store writes from a register holding `reg` (the zero
    /// register reads as 0: pass 0 for register 31).
    pub fn store_value(&self, reg: u64) -> u64 {
        if self.size == 8 {
            reg
        } else {
            reg & ((1 << (8 * self.size as u32)) - 1)
        }
    }
}

fn reg_name(n: u32, wide: bool, sp: bool) -> String {
    match (n, wide, sp) {
        (31, _, true) => "sp".into(),
        (31, true, false) => "xzr".into(),
        (31, false, false) => "wzr".into(),
        (n, true, _) => format!("x{n}"),
        (n, false, _) => format!("w{n}"),
    }
}

/// The instruction as a disassembler would write it (`ldp x0, x1, [x2, #16]!`).
impl fmt::Display for LoadStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A store's source is named by its size (a W register below 8 bytes,
        // except for pairs, whose opc says); a load's by its destination.
        let wide = self.wide || (!self.load && self.size == 8);
        write!(f, "{} {}", self.mnemonic, reg_name(self.rt, wide, false))?;
        if let Some(rt2) = self.rt2 {
            write!(f, ", {}", reg_name(rt2, wide, false))?;
        }
        let base = reg_name(self.rn, true, true);
        match (self.offset, self.index) {
            (Offset::Imm(0), Index::Offset) => write!(f, ", [{base}]"),
            (Offset::Imm(i), Index::Offset) => write!(f, ", [{base}, #{i}]"),
            (Offset::Imm(i), Index::Pre) => write!(f, ", [{base}, #{i}]!"),
            (Offset::Imm(i), Index::Post) => write!(f, ", [{base}], #{i}"),
            (Offset::Reg { rm, extend, shift }, _) => {
                let (name, ext) = match extend {
                    RegExtend::Uxtw => (reg_name(rm, false, false), "uxtw"),
                    RegExtend::Sxtw => (reg_name(rm, false, false), "sxtw"),
                    RegExtend::Lsl => (reg_name(rm, true, false), "lsl"),
                    RegExtend::Sxtx => (reg_name(rm, true, false), "sxtx"),
                };
                match (extend, shift) {
                    (RegExtend::Lsl, 0) => write!(f, ", [{base}, {name}]"),
                    (_, 0) => write!(f, ", [{base}, {name}, {ext}]"),
                    _ => write!(f, ", [{base}, {name}, {ext} #{shift}]"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
