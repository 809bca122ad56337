//! Stage-2 translation: guest physical (IPA) to host physical, per VM.
//!
//! 4 KiB granule; the IPA size comes from the host's PARange. As KVM does,
//! the start level is chosen so that at most 16 tables are concatenated at
//! the root, which keeps walks one level shorter where the architecture
//! allows. Guest RAM is mapped on first touch, a 2 MiB block at a time
//! where the host gave a contiguous chunk (a level-2 block descriptor), a
//! 4 KiB page at a time otherwise. A page or block that userspace touched
//! first (through `mmap`) is kept in an *invalid* descriptor marked
//! [`SW_ALLOCATED`], so the guest's first access still traps and the kernel
//! can make the memory coherent before the guest sees it.

use super::{level_index, level_shift, TableAlloc, ADDR_MASK, DESC_AF, DESC_TABLE, DESC_VALID};

/// Stage-2 MemAttr[3:0] = 0b1111: Normal, outer and inner write-back.
const MEMATTR_NORMAL_WB: u64 = 0xf << 2;
/// S2AP = 0b01: read only.
const S2AP_RO: u64 = 1 << 6;
/// S2AP = 0b11: read and write.
const S2AP_RW: u64 = 3 << 6;
/// Inner shareable.
const SH_INNER: u64 = 3 << 8;
/// XN[1:0] = 0b10: not executable at EL1 or EL0.
const S2_XN: u64 = 2 << 53;
/// A valid level-3 page descriptor's attributes for guest RAM.
pub const S2_PAGE_RAM: u64 = DESC_VALID | DESC_TABLE | MEMATTR_NORMAL_WB | S2AP_RW | SH_INNER | DESC_AF;

/// A valid level-3 page descriptor's attributes for a mapping the guest
/// may write (`write`) and execute (`exec`) or not. Reads are always
/// allowed: a mapping without them is refused before it gets here.
pub const fn s2_page(write: bool, exec: bool) -> u64 {
    let ap = if write { S2AP_RW } else { S2AP_RO };
    let xn = if exec { 0 } else { S2_XN };
    DESC_VALID | DESC_TABLE | MEMATTR_NORMAL_WB | ap | SH_INNER | DESC_AF | xn
}
/// A valid level-2 block descriptor's attributes for a mapping the guest
/// may write (`write`) and execute (`exec`) or not: as [`s2_page`], with
/// bit 1 clear (a block, not a table).
pub const fn s2_block(write: bool, exec: bool) -> u64 {
    s2_page(write, exec) & !DESC_TABLE
}
/// Software bit of an invalid descriptor: a page (level 3) or a 2 MiB block
/// (level 2) is allocated at its address but not yet made visible to the
/// guest.
pub const SW_ALLOCATED: u64 = 1 << 55;
/// What a level-2 block maps: 2 MiB.
pub const BLOCK_SIZE: u64 = 1 << 21;
/// The level of a block descriptor.
const BLOCK_LEVEL: u32 = 2;

/// The shape of a VM's stage-2 tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// IPA size in bits.
    pub ipa_bits: u32,
    /// Level of the root table (0, 1 or 2).
    pub start_level: u32,
    /// log2 of the number of concatenated root tables (0..=4).
    pub root_order: u32,
}

impl Geometry {
    /// The PA size in bits of an `ID_AA64MMFR0_EL1.PARange` value (52 is capped at 48).
    pub fn parange_bits(parange: u64) -> u32 {
        match parange & 0xf {
            0 => 32,
            1 => 36,
            2 => 40,
            3 => 42,
            4 => 44,
            _ => 48,
        }
    }

    /// The geometry for an IPA of `ipa_bits` (32 to 48).
    pub fn new(ipa_bits: u32) -> Self {
        let ipa_bits = ipa_bits.clamp(32, 48);
        // Levels for a walk of (ipa_bits - 4) bits: up to 16 concatenated root tables.
        let levels = (ipa_bits - 4 - 4) / 9;
        let start_level = 4 - levels;
        let entries_log2 = ipa_bits - level_shift(start_level);
        let root_order = entries_log2.saturating_sub(9);
        Self { ipa_bits, start_level, root_order }
    }

    /// VTCR_EL2 for this geometry: T0SZ, SL0, cacheable inner-shareable
    /// walks, 4 KiB granule, PS from `parange`, 8-bit VMIDs, RES1 bit 31.
    pub fn vtcr(&self, parange: u64) -> u64 {
        let sl0 = match self.start_level {
            0 => 2,
            1 => 1,
            _ => 0,
        };
        (64 - self.ipa_bits as u64) | sl0 << 6 | 1 << 8 | 1 << 10 | 3 << 12 | (parange & 7) << 16 | 1 << 31
    }

    /// One past the highest IPA.
    pub fn ipa_limit(&self) -> u64 {
        1u64 << self.ipa_bits
    }
}

/// What a level-3 descriptor, or a level-2 descriptor that is not a
/// table, holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// Nothing.
    Empty,
    /// A page (block) at this PA, not yet visible to the guest.
    Allocated(u64),
    /// A page (block) at this PA, mapped for the guest.
    Mapped(u64),
}

/// Whether a level 0-2 descriptor points to a next-level table.
pub const fn is_table(d: u64) -> bool {
    d & (DESC_VALID | DESC_TABLE) == DESC_VALID | DESC_TABLE
}

impl Leaf {
    /// Decodes a level-3 descriptor, or a level-2 one that is not a table.
    pub fn from_desc(d: u64) -> Leaf {
        if d & DESC_VALID != 0 {
            Leaf::Mapped(d & ADDR_MASK)
        } else if d & SW_ALLOCATED != 0 {
            Leaf::Allocated(d & ADDR_MASK)
        } else {
            Leaf::Empty
        }
    }

    /// The page's PA, if any.
    pub fn pa(self) -> Option<u64> {
        match self {
            Leaf::Empty => None,
            Leaf::Allocated(pa) | Leaf::Mapped(pa) => Some(pa),
        }
    }
}

/// Out of memory for a table page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoMemory;

/// A VM's stage-2 tables.
pub struct Stage2 {
    root_va: *mut u64,
    root_pa: u64,
    geo: Geometry,
}

// SAFETY: the tables are plain memory owned by this value; callers
// serialise modifications (the VM's memory lock).
unsafe impl Send for Stage2 {}
// SAFETY: as above.
unsafe impl Sync for Stage2 {}

impl Stage2 {
    /// Empty tables of the given geometry.
    pub fn new(alloc: &mut impl TableAlloc, geo: Geometry) -> Result<Self, NoMemory> {
        let (root_va, root_pa) = alloc.alloc(geo.root_order).ok_or(NoMemory)?;
        Ok(Self { root_va, root_pa, geo })
    }

    /// The geometry.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// VTTBR_EL2 for these tables and `vmid`.
    pub fn vttbr(&self, vmid: u16) -> u64 {
        self.root_pa | (vmid as u64) << 48
    }

    fn root_entry(&self, ipa: u64) -> *mut u64 {
        // The root may be several concatenated tables: index by all the bits it covers.
        let idx = (ipa >> level_shift(self.geo.start_level)) as usize;
        // SAFETY: ipa < ipa_limit (checked by callers), so idx is within the
        // (512 << root_order) root entries.
        unsafe { self.root_va.add(idx) }
    }

    /// The level-3 descriptor for `ipa`, creating the tables on the way if
    /// `create`. `Ok(None)`: no table and not asked to create one, or a
    /// block holds `ipa`.
    pub fn leaf_entry(
        &mut self,
        alloc: &mut impl TableAlloc,
        ipa: u64,
        create: bool,
    ) -> Result<Option<*mut u64>, NoMemory> {
        self.entry_at(alloc, ipa, 3, create)
    }

    /// The level-2 descriptor for `ipa` (a table, a block or nothing),
    /// creating the tables above it if `create`. `Ok(None)`: no table and
    /// not asked to create one.
    pub fn block_entry(
        &mut self,
        alloc: &mut impl TableAlloc,
        ipa: u64,
        create: bool,
    ) -> Result<Option<*mut u64>, NoMemory> {
        self.entry_at(alloc, ipa, BLOCK_LEVEL, create)
    }

    /// The descriptor at `level` for `ipa`. A descriptor above `level` that
    /// is not a table (a block, mapped or only allocated) ends the walk
    /// with `Ok(None)`: a table made over it would lose the block.
    fn entry_at(
        &mut self,
        alloc: &mut impl TableAlloc,
        ipa: u64,
        level: u32,
        create: bool,
    ) -> Result<Option<*mut u64>, NoMemory> {
        if ipa >= self.geo.ipa_limit() {
            return Ok(None);
        }
        let mut entry = self.root_entry(ipa);
        for l in self.geo.start_level..level {
            // SAFETY: `entry` points into a live table of ours.
            let d = unsafe { *entry };
            let table = if is_table(d) {
                alloc.phys_to_virt(d & ADDR_MASK)
            } else if create && Leaf::from_desc(d) == Leaf::Empty {
                let (va, pa) = alloc.alloc(0).ok_or(NoMemory)?;
                // SAFETY: as above.
                unsafe { *entry = pa | DESC_TABLE | DESC_VALID };
                va
            } else {
                return Ok(None);
            };
            // SAFETY: `table` is a live 512-entry table page.
            entry = unsafe { table.add(level_index(ipa, l + 1)) };
        }
        Ok(Some(entry))
    }

    /// What is at `ipa`: for a block, its page at `ipa`.
    pub fn lookup(&mut self, alloc: &mut impl TableAlloc, ipa: u64) -> Leaf {
        let Ok(Some(e)) = self.block_entry(alloc, ipa, false) else { return Leaf::Empty };
        // SAFETY: a live descriptor of ours.
        let d = unsafe { *e };
        if !is_table(d) {
            let off = ipa & (BLOCK_SIZE - 1) & !(super::PAGE_SIZE - 1);
            return match Leaf::from_desc(d) {
                Leaf::Empty => Leaf::Empty,
                Leaf::Allocated(pa) => Leaf::Allocated(pa + off),
                Leaf::Mapped(pa) => Leaf::Mapped(pa + off),
            };
        }
        match self.leaf_entry(alloc, ipa, false) {
            // SAFETY: a live descriptor of ours.
            Ok(Some(e)) => Leaf::from_desc(unsafe { *e }),
            _ => Leaf::Empty,
        }
    }

    /// Calls `f` with each descriptor that holds memory in `[start, end)`:
    /// level 3 for pages, level 2 for blocks (a block visited as a whole
    /// when `ipa` falls in it), in IPA order; `f` may change them. Missing
    /// tables are skipped, none are made.
    pub fn for_each_desc_in(&mut self, alloc: &mut impl TableAlloc, start: u64, end: u64, mut f: impl FnMut(&mut u64)) {
        let end = end.min(self.geo.ipa_limit());
        let mut ipa = start & !(super::PAGE_SIZE - 1);
        while ipa < end {
            let next_block = (ipa | (BLOCK_SIZE - 1)) + 1;
            let l2 = match self.block_entry(alloc, ipa, false) {
                Ok(Some(e)) => e,
                _ => {
                    ipa = next_block;
                    continue;
                }
            };
            // SAFETY: a live descriptor of ours; callers hold the memory lock.
            let d = unsafe { &mut *l2 };
            if !is_table(*d) {
                if Leaf::from_desc(*d) != Leaf::Empty {
                    f(d);
                }
                ipa = next_block;
                continue;
            }
            while ipa < end.min(next_block) {
                if let Ok(Some(e)) = self.leaf_entry(alloc, ipa, false) {
                    // SAFETY: as above.
                    f(unsafe { &mut *e });
                }
                ipa += super::PAGE_SIZE;
            }
        }
    }

    /// Calls `f` with every page or block held (allocated or mapped) and its
    /// size in bytes, in IPA order. The tables are not changed.
    pub fn for_each_leaf(&self, alloc: &mut impl TableAlloc, mut f: impl FnMut(Leaf, u64)) {
        self.walk(alloc, &mut f, false);
    }

    /// Calls `f` with the PA and size of every page or block held (allocated
    /// or mapped), then frees all tables. The caller must invalidate the
    /// VMID's TLB entries.
    pub fn destroy(self, alloc: &mut impl TableAlloc, mut f: impl FnMut(u64, u64)) {
        self.walk(
            alloc,
            &mut |leaf: Leaf, size| {
                if let Some(pa) = leaf.pa() {
                    f(pa, size)
                }
            },
            true,
        );
        alloc.free(self.root_va, self.geo.root_order);
    }

    /// Visits every leaf of the tables; with `free`, frees each table below
    /// the root once visited.
    fn walk(&self, alloc: &mut impl TableAlloc, f: &mut impl FnMut(Leaf, u64), free: bool) {
        let n = 512usize << self.geo.root_order;
        for i in 0..n {
            // SAFETY: within the root.
            let d = unsafe { *self.root_va.add(i) };
            visit(alloc, d, self.geo.start_level, f, free);
        }
    }
}

/// Visits descriptor `d` of a table at `level`: a page or a block is
/// reported, a table walked.
fn visit(alloc: &mut impl TableAlloc, d: u64, level: u32, f: &mut impl FnMut(Leaf, u64), free: bool) {
    if level < 3 && is_table(d) {
        walk_table(alloc, alloc.phys_to_virt(d & ADDR_MASK), level + 1, f, free);
    } else if level >= BLOCK_LEVEL {
        let leaf = Leaf::from_desc(d);
        if leaf != Leaf::Empty {
            f(leaf, 1 << level_shift(level));
        }
    }
}

fn walk_table(alloc: &mut impl TableAlloc, table: *mut u64, level: u32, f: &mut impl FnMut(Leaf, u64), free: bool) {
    for i in 0..512 {
        // SAFETY: a live table page of ours.
        let d = unsafe { *table.add(i) };
        visit(alloc, d, level, f, free);
    }
    if free {
        alloc.free(table, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::testalloc::HeapAlloc;

    #[test]
    fn geometry_follows_the_architecture() {
        // (ipa bits, start level, concatenated root tables as log2)
        for (bits, level, order) in [(32, 2, 2), (36, 1, 0), (40, 1, 1), (42, 1, 3), (44, 0, 0), (48, 0, 0)] {
            let g = Geometry::new(bits);
            assert_eq!((g.start_level, g.root_order), (level, order), "{bits}-bit IPA");
        }
        assert_eq!(Geometry::parange_bits(2), 40);
        assert_eq!(Geometry::parange_bits(6), 48);
        let v = Geometry::new(40).vtcr(2);
        assert_eq!(v & 0x3f, 24, "T0SZ");
        assert_eq!((v >> 6) & 3, 1, "SL0 = level 1");
        assert_eq!((v >> 16) & 7, 2, "PS");
        assert_eq!(Geometry::new(44).vtcr(4) >> 6 & 3, 2, "SL0 = level 0");
    }

    #[test]
    fn leaves_are_created_found_and_freed() {
        for bits in [32, 40, 44] {
            let mut a = HeapAlloc::default();
            let mut s2 = Stage2::new(&mut a, Geometry::new(bits)).unwrap();
            let ipa = 0x4000_3000;
            assert_eq!(s2.lookup(&mut a, ipa), Leaf::Empty);
            let e = s2.leaf_entry(&mut a, ipa, true).unwrap().unwrap();
            // SAFETY: a live descriptor.
            unsafe { *e = 0x1234_5000 | S2_PAGE_RAM };
            assert_eq!(s2.lookup(&mut a, ipa), Leaf::Mapped(0x1234_5000));
            let e = s2.leaf_entry(&mut a, ipa + 0x1000, true).unwrap().unwrap();
            // SAFETY: as above.
            unsafe { *e = 0x5555_5000 | SW_ALLOCATED };
            assert_eq!(s2.lookup(&mut a, ipa + 0x1000), Leaf::Allocated(0x5555_5000));
            assert_eq!(s2.lookup(&mut a, ipa + 0x2000), Leaf::Empty);
            // The top of the IPA space works; beyond it is never mapped.
            let top = (1u64 << bits) - 0x1000;
            assert!(s2.leaf_entry(&mut a, top, true).unwrap().is_some());
            assert!(s2.leaf_entry(&mut a, 1u64 << bits, true).unwrap().is_none());
            let mut leaves = vec![];
            s2.for_each_leaf(&mut a, |l, size| leaves.push((l, size)));
            // In IPA order; the empty descriptor at the top is not a page.
            assert_eq!(leaves, [(Leaf::Mapped(0x1234_5000), 4096), (Leaf::Allocated(0x5555_5000), 4096)]);
            let mut pages = vec![];
            s2.destroy(&mut a, |pa, _| pages.push(pa));
            pages.sort();
            assert_eq!(pages, vec![0x1234_5000, 0x5555_5000]);
            assert_eq!(a.live, 0, "{bits}-bit: every table freed");
        }
    }

    #[test]
    fn page_attributes_follow_the_protection() {
        assert_eq!(s2_page(true, true), S2_PAGE_RAM);
        let ro = s2_page(false, true);
        assert_eq!((ro >> 6) & 3, 0b01, "S2AP read-only");
        assert_eq!((ro >> 53) & 3, 0, "executable");
        let rw_xn = s2_page(true, false);
        assert_eq!(((rw_xn >> 6) & 3, (rw_xn >> 53) & 3), (0b11, 0b10));
        assert_eq!(Leaf::from_desc(0x8000_1000 | ro), Leaf::Mapped(0x8000_1000), "XN is not address");
    }

    #[test]
    fn a_range_visit_skips_missing_tables() {
        let mut a = HeapAlloc::default();
        let mut s2 = Stage2::new(&mut a, Geometry::new(40)).unwrap();
        for ipa in [0x0400_0000u64, 0x0400_1000, 0x0420_0000] {
            let e = s2.leaf_entry(&mut a, ipa, true).unwrap().unwrap();
            // SAFETY: a live descriptor.
            unsafe { *e = (ipa + 0x1_0000_0000) | S2_PAGE_RAM };
        }
        let tables = a.live;
        let mut seen = vec![];
        s2.for_each_desc_in(&mut a, 0x0400_0000, 0x0800_0000, |d| {
            if let Leaf::Mapped(pa) = Leaf::from_desc(*d) {
                seen.push(pa);
                *d = pa | SW_ALLOCATED;
            }
        });
        assert_eq!(seen, [0x1_0400_0000, 0x1_0400_1000, 0x1_0420_0000]);
        assert_eq!(a.live, tables, "no table made");
        assert_eq!(s2.lookup(&mut a, 0x0400_1000), Leaf::Allocated(0x1_0400_1000));
        s2.destroy(&mut a, |_, _| {});
    }

    #[test]
    fn blocks_live_at_level_2_and_no_table_is_made_over_them() {
        // 32 bits: the root is a level-2 table, its entries blocks themselves.
        for bits in [32, 40, 48] {
            let mut a = HeapAlloc::default();
            let mut s2 = Stage2::new(&mut a, Geometry::new(bits)).unwrap();
            let (b1, b2) = (0x4020_0000u64, 0x4060_0000u64);
            let e = s2.block_entry(&mut a, b1, true).unwrap().unwrap();
            // SAFETY: a live descriptor.
            unsafe { *e = 0x8000_0000 | s2_block(true, false) };
            let e = s2.block_entry(&mut a, b2, true).unwrap().unwrap();
            // SAFETY: as above.
            unsafe { *e = 0x8020_0000 | SW_ALLOCATED };
            let tables = a.live;
            assert_eq!(s2.lookup(&mut a, b1 + 0x3456), Leaf::Mapped(0x8000_3000), "{bits}: a block's page");
            assert_eq!(s2.lookup(&mut a, b2 + BLOCK_SIZE - 1), Leaf::Allocated(0x8020_0000 + BLOCK_SIZE - 4096));
            assert_eq!(s2.leaf_entry(&mut a, b1 + 0x1000, true), Ok(None), "a block is not a table");
            assert_eq!(s2.leaf_entry(&mut a, b2, true), Ok(None));
            assert_eq!(a.live, tables, "nothing made over the blocks");
            // Pages next to them, in a table of their own.
            let e = s2.leaf_entry(&mut a, b1 + BLOCK_SIZE, true).unwrap().unwrap();
            // SAFETY: as above.
            unsafe { *e = 0x9000_0000 | S2_PAGE_RAM };
            let mut held = vec![];
            s2.for_each_leaf(&mut a, |l, size| held.push((l, size)));
            assert_eq!(
                held,
                [
                    (Leaf::Mapped(0x8000_0000), BLOCK_SIZE),
                    (Leaf::Mapped(0x9000_0000), 4096),
                    (Leaf::Allocated(0x8020_0000), BLOCK_SIZE)
                ]
            );
            // A range visit sees each block once, and the pages by page.
            let mut seen = vec![];
            s2.for_each_desc_in(&mut a, b1 + 0x1000, b2 + BLOCK_SIZE, |d| {
                if let Leaf::Mapped(pa) = Leaf::from_desc(*d) {
                    seen.push(pa);
                    *d = pa | SW_ALLOCATED;
                }
            });
            assert_eq!(seen, [0x8000_0000, 0x9000_0000]);
            assert_eq!(s2.lookup(&mut a, b1), Leaf::Allocated(0x8000_0000), "the block unmapped whole");
            let mut freed = vec![];
            s2.destroy(&mut a, |pa, size| freed.push((pa, size)));
            assert_eq!(freed, [(0x8000_0000, BLOCK_SIZE), (0x9000_0000, 4096), (0x8020_0000, BLOCK_SIZE)]);
            assert_eq!(a.live, 0, "{bits}: every table freed");
        }
        let blk = s2_block(false, true);
        assert_eq!(blk & 3, 0b01, "a block descriptor");
        assert_eq!((blk >> 6) & 3, 0b01, "read-only");
        assert!(!is_table(blk) && is_table(S2_PAGE_RAM));
    }

    #[test]
    fn vttbr_carries_the_vmid() {
        let mut a = HeapAlloc::default();
        let s2 = Stage2::new(&mut a, Geometry::new(40)).unwrap();
        let v = s2.vttbr(7);
        assert_eq!(v >> 48, 7);
        assert_eq!(v & 0x1fff, 0, "8 KiB aligned root for 2 concatenated tables");
        s2.destroy(&mut a, |_, _| {});
    }

    #[test]
    fn table_allocation_failure_is_reported() {
        let mut a = HeapAlloc { fail_after: Some(1), ..Default::default() };
        let mut s2 = Stage2::new(&mut a, Geometry::new(40)).unwrap();
        assert_eq!(s2.leaf_entry(&mut a, 0x4000_0000, true), Err(NoMemory));
        s2.destroy(&mut a, |_, _| {});
        assert_eq!(a.live, 0);
    }
}
