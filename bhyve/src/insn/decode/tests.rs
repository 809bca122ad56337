//! Encodings from the GNU assembler (`aarch64-linux-gnu-as`, disassembled
//! with `objdump -d`): each decodes to what objdump prints, and its
//! accesses to what the architecture says.

use super::*;

/// (encoding, objdump's text) of everything decoded.
const DECODED: &[(u32, &str)] = &[
    (0xa9400440, "ldp x0, x1, [x2]"),
    (0xa9c10440, "ldp x0, x1, [x2, #16]!"),
    (0xa8ff0440, "ldp x0, x1, [x2], #-16"),
    (0xa9be13e3, "stp x3, x4, [sp, #-32]!"),
    (0x290110a3, "stp w3, w4, [x5, #8]"),
    (0x28c09d06, "ldp w6, w7, [x8], #4"),
    (0x697f2969, "ldpsw x9, x10, [x11, #-8]"),
    (0xa8440861, "ldnp x1, x2, [x3, #64]"),
    (0x28000861, "stnp w1, w2, [x3]"),
    (0xf8408c20, "ldr x0, [x1, #8]!"),
    (0xb8404420, "ldr w0, [x1], #4"),
    (0xf8100c62, "str x2, [x3, #-256]!"),
    (0x380014a4, "strb w4, [x5], #1"),
    (0x38401ce6, "ldrb w6, [x7, #1]!"),
    (0x78402528, "ldrh w8, [x9], #2"),
    (0x781fed6a, "strh w10, [x11, #-2]!"),
    (0x388015ac, "ldrsb x12, [x13], #1"),
    (0x38c01dac, "ldrsb w12, [x13, #1]!"),
    (0x789fe5ee, "ldrsh x14, [x15], #-2"),
    (0x78c02dee, "ldrsh w14, [x15, #2]!"),
    (0xb8804630, "ldrsw x16, [x17], #4"),
    (0xf947fe72, "ldr x18, [x19, #4088]"),
    (0xb85fd2b4, "ldur w20, [x21, #-3]"),
    (0xf8787af6, "ldr x22, [x23, x24, lsl #3]"),
    (0xb83bdb59, "str w25, [x26, w27, sxtw #2]"),
    (0x38626820, "ldrb w0, [x1, x2]"),
    (0xf8408883, "ldtr x3, [x4, #8]"),
    (0xa9017c1f, "stp xzr, xzr, [x0, #16]"),
];

#[test]
fn decodes_what_the_assembler_wrote() {
    for &(insn, text) in DECODED {
        match decode(insn) {
            Ok(ls) => assert_eq!(ls.to_string(), text, "{insn:#010x}"),
            Err(why) => panic!("{insn:#010x} ({text}): {why}"),
        }
    }
}

#[test]
fn names_what_it_does_not_emulate() {
    for (insn, why) in [
        (0xc85f7c20, Unsupported::Exclusive),     // ldxr x0, [x1]
        (0xc8dffc20, Unsupported::Exclusive),     // ldar x0, [x1]
        (0x3cc10c20, Unsupported::SimdFp),        // ldr q0, [x1, #16]!
        (0xad400440, Unsupported::SimdFp),        // ldp q0, q1, [x2]
        (0x4c407020, Unsupported::SimdStructure), // ld1 {v0.16b}, [x1]
        (0xf8200041, Unsupported::Atomic),        // ldadd x0, x1, [x2]
        (0x58000120, Unsupported::Literal),       // ldr x0, label
        (0xf9800000, Unsupported::Prefetch),      // prfm pldl1keep, [x0]
        (0xb8404400, Unsupported::Unpredictable), // ldr w0, [x0], #4
        (0xa9400020, Unsupported::Unpredictable), // ldp x0, x0, [x1]
        (0xa8c10400, Unsupported::Unpredictable), // ldp x0, x1, [x0], #16
        (0xa9810400, Unsupported::Unpredictable), // stp x0, x1, [x0, #16]!
        (0xf8200420, Unsupported::PointerAuth),   // ldraa x0, [x1]
        (0x69000440, Unsupported::MemoryTag),     // stgp x0, x1, [x2]
        (0xd503201f, Unsupported::NotLoadStore),  // nop
        (0xd9200c20, Unsupported::MemoryTag),     // stg x0, [x1, #0]!
        (0xb8c00400, Unsupported::Unallocated),   // size 10 opc 11 post-index
    ] {
        assert_eq!(decode(insn), Err(why), "{insn:#010x}");
    }
    assert_eq!(Unsupported::Exclusive.to_string(), "a load/store exclusive or ordered (acquire/release)");
}

#[test]
fn addresses_and_writeback() {
    let ls = |insn| decode(insn).unwrap();
    // ldp x0, x1, [x2, #16]!: both at base + 16, which is written back.
    let p = ls(0xa9c10440);
    assert_eq!(p.address(0x1000, 0), (0x1010, Some(0x1010)));
    assert_eq!(p.transfers().collect::<Vec<_>>(), [(0, 0), (1, 8)]);
    // ldp x0, x1, [x2], #-16: at the base, base - 16 written back.
    assert_eq!(ls(0xa8ff0440).address(0x1000, 0), (0x1000, Some(0x0ff0)));
    // stp w3, w4, [x5, #8]: no writeback, 4-byte elements.
    let p = ls(0x290110a3);
    assert_eq!((p.address(0x1000, 0), p.size), ((0x1008, None), 4));
    assert_eq!(p.transfers().collect::<Vec<_>>(), [(3, 0), (4, 4)]);
    // str w25, [x26, w27, sxtw #2] with w27 = -1: base - 4.
    assert_eq!(ls(0xb83bdb59).address(0x1000, 0xffff_ffff), (0x0ffc, None));
    // ldr x22, [x23, x24, lsl #3]
    assert_eq!(ls(0xf8787af6).address(0x1000, 2), (0x1010, None));
    // ldr x18, [x19, #4088]: scaled unsigned offset.
    assert_eq!(ls(0xf947fe72).address(0, 0), (4088, None));
    // A post-index off the top of the address space wraps, as the hardware does.
    assert_eq!(ls(0xf8408c20).address(u64::MAX - 7, 0), (0, Some(0)));
}

#[test]
fn loaded_values_are_extended_as_the_register_wants() {
    let ls = |insn| decode(insn).unwrap();
    assert_eq!(ls(0x388015ac).load_value(0x87), 0xffff_ffff_ffff_ff87, "ldrsb x");
    assert_eq!(ls(0x38c01dac).load_value(0x87), 0x0000_0000_ffff_ff87, "ldrsb w");
    assert_eq!(ls(0x789fe5ee).load_value(0x9687), 0xffff_ffff_ffff_9687, "ldrsh x");
    assert_eq!(ls(0xb8804630).load_value(0xb4a5_9687), 0xffff_ffff_b4a5_9687, "ldrsw");
    assert_eq!(ls(0x697f2969).load_value(0x8000_0000), 0xffff_ffff_8000_0000, "ldpsw");
    assert_eq!(ls(0x38401ce6).load_value(0x1_ff), 0xff, "ldrb");
    assert_eq!(ls(0xb8404420).load_value(0xdead_beef), 0xdead_beef, "ldr w");
    assert_eq!(ls(0xa9400440).load_value(u64::MAX), u64::MAX, "ldp x");
    assert_eq!(ls(0x380014a4).store_value(0x1234), 0x34, "strb");
    assert_eq!(ls(0x781fed6a).store_value(0x1_2345), 0x2345, "strh");
    assert_eq!(ls(0x290110a3).store_value(0x1_0000_0002), 2, "stp w");
    assert_eq!(ls(0xa9be13e3).store_value(u64::MAX), u64::MAX, "stp x");
}
