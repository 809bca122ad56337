//! Tables built in a map, walked as the MMU would.

use super::*;
use std::collections::HashMap;

const VALID: u64 = 1;
const TABLE: u64 = 3;
const PAGE: u64 = 3 | 1 << 10;
const BLOCK: u64 = 1 | 1 << 10;

/// Guest memory holding only table entries.
#[derive(Default)]
struct Tables(HashMap<u64, u64>);

impl Tables {
    fn set(&mut self, table: u64, index: u64, desc: u64) {
        self.0.insert(table + index * 8, desc);
    }
    fn walk(&self, r: &Regime, va: u64, data: bool) -> Result<u64, WalkError> {
        // Entries never written read as 0 (invalid) inside "RAM", as memory does.
        translate(r, va, data, |a| (0x4000_0000..0x8000_0000).contains(&a).then(|| *self.0.get(&a).unwrap_or(&0)))
    }
}

/// 4 KiB granule, 39-bit halves (three levels from level 1).
fn four_k() -> (Tables, Regime) {
    let mut t = Tables::default();
    let (l1, l2, l3) = (0x4001_0000, 0x4001_1000, 0x4001_2000);
    t.set(l1, 0, BLOCK); // 1 GiB at 0: the devices
    t.set(l1, 1, l2 | TABLE);
    t.set(l2, 0, l3 | TABLE);
    t.set(l3, 5, 0x4123_4000 | PAGE);
    t.set(l2, 1, 0x8000_0000 | BLOCK); // 2 MiB
    let (u1, u2, u3) = (0x4002_0000, 0x4002_1000, 0x4002_2000);
    t.set(u1, 0, u2 | TABLE);
    t.set(u2, 0, u3 | TABLE);
    t.set(u3, 1, 0x0900_0000 | PAGE);
    let tcr = 25 | 25 << 16 | 2 << 30;
    (t, Regime { sctlr: 1, tcr, ttbr0: l1 | 1 << 48, ttbr1: u1 })
}

#[test]
fn the_mmu_off_is_flat() {
    let (t, r) = four_k();
    assert_eq!(t.walk(&Regime { sctlr: 0, ..r }, 0x0900_0000, true), Ok(0x0900_0000));
}

#[test]
fn pages_and_blocks_with_a_4k_granule() {
    let (t, r) = four_k();
    assert_eq!(t.walk(&r, 0x4000_5678, false), Ok(0x4123_4678), "page; the ASID is not address");
    assert_eq!(t.walk(&r, 0x4020_1234, true), Ok(0x8000_1234), "2 MiB block");
    assert_eq!(t.walk(&r, 0x0900_0004, true), Ok(0x0900_0004), "1 GiB block");
    assert_eq!(t.walk(&r, 0xffff_ff80_0000_1010, true), Ok(0x0900_0010), "through TTBR1");
}

#[test]
fn top_byte_ignore_is_for_data_only() {
    let (t, mut r) = four_k();
    let tagged = 0x5600_0000_0900_0000;
    assert_eq!(t.walk(&r, tagged, true), Err(WalkError::OutOfRange { va: tagged }));
    r.tcr |= 1 << 37; // TBI0
    assert_eq!(t.walk(&r, tagged, true), Ok(0x0900_0000));
    assert_eq!(t.walk(&r, tagged, false), Err(WalkError::OutOfRange { va: tagged }), "not for fetches");
}

#[test]
fn what_does_not_translate_says_why() {
    let (t, mut r) = four_k();
    assert_eq!(t.walk(&r, 0x0000_0080_0000_0000, true), Err(WalkError::OutOfRange { va: 0x80_0000_0000 }));
    let e = t.walk(&r, 0x4000_6000, true).unwrap_err();
    assert_eq!(e, WalkError::NotMapped { level: 3, addr: 0x4001_2030, desc: 0 });
    assert_eq!(e.to_string(), "its level 3 table entry at 0x40012030 (0x0) maps nothing");
    r.ttbr0 = 0x1000;
    assert_eq!(t.walk(&r, 0x10, true), Err(WalkError::Unreadable { level: 1, addr: 0x1000 }));
    r.tcr |= 1 << 7; // EPD0
    assert_eq!(t.walk(&r, 0x10, true), Err(WalkError::Disabled { n: 0 }));
    r.tcr = 25 | 3 << 14; // TG0 = 0b11: reserved
    assert_eq!(t.walk(&r, 0x10, true), Err(WalkError::BadGranule { n: 0 }));
}

#[test]
fn a_block_where_the_granule_has_none_is_invalid() {
    // 4 KiB granule, 48-bit: four levels from level 0, where blocks do not exist.
    let mut t = Tables::default();
    t.set(0x4001_0000, 0, BLOCK);
    let r = Regime { sctlr: 1, tcr: 16, ttbr0: 0x4001_0000, ttbr1: 0 };
    assert!(matches!(t.walk(&r, 0x1000, true), Err(WalkError::NotMapped { level: 0, .. })));
    // A level-3 entry with bit 1 clear is reserved.
    let (mut t, r) = four_k();
    t.set(0x4001_2000, 6, 0x4123_5000 | VALID);
    assert!(matches!(t.walk(&r, 0x4000_6000, true), Err(WalkError::NotMapped { level: 3, .. })));
}

#[test]
fn sixty_four_k_and_sixteen_k_granules() {
    // 64 KiB, 42-bit: levels 2 and 3.
    let mut t = Tables::default();
    let (l2, l3) = (0x4001_0000, 0x4002_0000);
    t.set(l2, 2, l3 | TABLE);
    t.set(l3, 3, 0x4567_0000 | PAGE);
    let r = Regime { sctlr: 1, tcr: 22 | 1 << 14, ttbr0: l2, ttbr1: 0 };
    assert_eq!(t.walk(&r, 0x4003_abcd, true), Ok(0x4567_abcd));
    // 16 KiB, 47-bit: levels 1 (2048 entries) to 3.
    let mut t = Tables::default();
    let (l1, l2, l3) = (0x4001_0000, 0x4001_4000, 0x4001_8000);
    t.set(l1, 0, l2 | TABLE);
    t.set(l2, 2, l3 | TABLE); // 32 MiB per level-2 entry
    t.set(l3, 1, 0x5000_4000 | PAGE);
    t.set(l2, 3, 0x7e00_0000 | BLOCK);
    let r = Regime { sctlr: 1, tcr: 17 | 2 << 14, ttbr0: l1, ttbr1: 0 };
    assert_eq!(t.walk(&r, 0x0400_4321, true), Ok(0x5000_4321));
    assert_eq!(t.walk(&r, 0x0600_0008, true), Ok(0x7e00_0008), "32 MiB block");
}
