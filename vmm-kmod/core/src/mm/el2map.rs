//! The EL2 stage-1 identity map: every range of host RAM mapped at its own
//! physical address as Normal write-back memory, so the world switch reads
//! and writes the same cached data the kernel does (no cache maintenance),
//! and device memory is never mapped at all (no speculative reads of it).

use super::{level_index, level_shift, TableAlloc, ADDR_MASK, DESC_AF, DESC_TABLE, DESC_VALID, PAGE_SIZE};

/// MAIR_EL2: attribute 0 Normal write-back read/write-allocate, 1 Device-nGnRnE.
pub const MAIR_EL2: u64 = 0xff;
const ATTR_NORMAL: u64 = 0 << 2;
/// AP[2:1] = 0b01: read/write at EL2 (AP[1] is RES1 in the EL2 regime).
const AP_RW_EL2: u64 = 1 << 6;
/// Inner shareable.
const SH_INNER: u64 = 3 << 8;
const LEAF_ATTRS: u64 = ATTR_NORMAL | AP_RW_EL2 | SH_INNER | DESC_AF;

/// An EL2 identity map under construction.
pub struct El2Map {
    root_va: *mut u64,
    root_pa: u64,
    pa_bits: u32,
    start_level: u32,
}

/// Why a map could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No memory for a table.
    NoMemory,
    /// A range is not page aligned or lies beyond the PA size.
    BadRange,
}

impl El2Map {
    /// An empty map for a `pa_bits`-bit physical address space (32 to 48).
    pub fn new(alloc: &mut impl TableAlloc, pa_bits: u32) -> Result<Self, MapError> {
        let pa_bits = pa_bits.clamp(32, 48);
        let (root_va, root_pa) = alloc.alloc(0).ok_or(MapError::NoMemory)?;
        // Stage 1, 4 KiB granule: T0SZ 16..=24 starts at level 0, 25..=33 at level 1.
        let start_level = if 64 - pa_bits <= 24 { 0 } else { 1 };
        Ok(Self { root_va, root_pa, pa_bits, start_level })
    }

    /// TTBR0_EL2.
    pub fn ttbr0(&self) -> u64 {
        self.root_pa
    }

    /// TCR_EL2: T0SZ, walks inner/outer write-back cacheable and inner
    /// shareable, 4 KiB granule, PS from `parange` (ID_AA64MMFR0_EL1.PARange), RES1 bits.
    pub fn tcr(&self, parange: u64) -> u64 {
        (64 - self.pa_bits as u64) | 1 << 8 | 1 << 10 | 3 << 12 | (parange & 7) << 16 | 1 << 23 | 1 << 31
    }

    /// Maps `[start, end)` (page aligned) at its own address, with the
    /// largest blocks alignment allows.
    pub fn map_identity(&mut self, alloc: &mut impl TableAlloc, start: u64, end: u64) -> Result<(), MapError> {
        if !start.is_multiple_of(PAGE_SIZE)
            || !end.is_multiple_of(PAGE_SIZE)
            || end < start
            || end > 1u64 << self.pa_bits
        {
            return Err(MapError::BadRange);
        }
        let mut addr = start;
        while addr < end {
            // Level 1 (1 GiB) and level 2 (2 MiB) blocks where they fit, else pages.
            let level = [1u32, 2]
                .into_iter()
                .find(|&l| {
                    l >= self.start_level.max(1)
                        && addr.is_multiple_of(1 << level_shift(l))
                        && end - addr >= 1 << level_shift(l)
                })
                .unwrap_or(3);
            self.set_leaf(alloc, addr, level)?;
            addr += 1 << level_shift(level);
        }
        Ok(())
    }

    fn set_leaf(&mut self, alloc: &mut impl TableAlloc, addr: u64, level: u32) -> Result<(), MapError> {
        let mut table = self.root_va;
        for l in self.start_level..level {
            // SAFETY: `table` is a live, 512-entry table page of this map.
            let entry = unsafe { &mut *table.add(level_index(addr, l)) };
            if *entry & DESC_VALID == 0 {
                let (va, pa) = alloc.alloc(0).ok_or(MapError::NoMemory)?;
                *entry = pa | DESC_TABLE | DESC_VALID;
                table = va;
            } else if *entry & DESC_TABLE == 0 {
                return Ok(()); // already covered by a larger block
            } else {
                table = alloc.phys_to_virt(*entry & ADDR_MASK);
            }
        }
        let kind = if level == 3 { DESC_TABLE | DESC_VALID } else { DESC_VALID };
        // SAFETY: as above.
        unsafe { *table.add(level_index(addr, level)) = (addr & ADDR_MASK) | LEAF_ATTRS | kind };
        Ok(())
    }

    /// Looks `addr` up as the MMU would: the output address, if mapped.
    pub fn translate(&self, alloc: &impl TableAlloc, addr: u64) -> Option<u64> {
        let mut table = self.root_va;
        for level in self.start_level..=3 {
            // SAFETY: live table page of this map.
            let e = unsafe { *table.add(level_index(addr, level)) };
            if e & DESC_VALID == 0 {
                return None;
            }
            if level == 3 || e & DESC_TABLE == 0 {
                let mask = (1u64 << level_shift(level)) - 1;
                return Some((e & ADDR_MASK & !mask) | (addr & mask));
            }
            table = alloc.phys_to_virt(e & ADDR_MASK);
        }
        None
    }

    /// Frees every table page.
    pub fn free(self, alloc: &mut impl TableAlloc) {
        free_table(alloc, self.root_va, self.start_level);
    }
}

fn free_table(alloc: &mut impl TableAlloc, table: *mut u64, level: u32) {
    if level < 3 {
        for i in 0..512 {
            // SAFETY: live table page.
            let e = unsafe { *table.add(i) };
            if e & (DESC_VALID | DESC_TABLE) == DESC_VALID | DESC_TABLE {
                free_table(alloc, alloc.phys_to_virt(e & ADDR_MASK), level + 1);
            }
        }
    }
    alloc.free(table, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::testalloc::HeapAlloc;

    #[test]
    fn maps_ram_with_large_blocks_and_nothing_else() {
        let mut a = HeapAlloc::default();
        let mut m = El2Map::new(&mut a, 44).unwrap();
        // QEMU virt: 1 GiB at 0x4000_0000; plus an odd 12 KiB range.
        m.map_identity(&mut a, 0x4000_0000, 0x8000_0000).unwrap();
        m.map_identity(&mut a, 0x1_0020_1000, 0x1_0020_4000).unwrap();
        assert_eq!(m.translate(&a, 0x4000_0000), Some(0x4000_0000));
        assert_eq!(m.translate(&a, 0x7fff_fff8), Some(0x7fff_fff8));
        assert_eq!(m.translate(&a, 0x1_0020_3ff8), Some(0x1_0020_3ff8));
        assert_eq!(m.translate(&a, 0x0900_0000), None, "device memory is not mapped");
        assert_eq!(m.translate(&a, 0x8000_0000), None);
        assert_eq!(m.translate(&a, 0x1_0020_0ff8), None);
        // The 1 GiB block needs the L0 root and an L1 table; the small range
        // shares that L1 table (same 512 GiB) and adds one L2 and one L3.
        assert_eq!(a.live, 4);
        let tcr = m.tcr(4);
        assert_eq!(tcr & 0x3f, 20);
        assert_eq!((tcr >> 16) & 7, 4);
        m.free(&mut a);
        assert_eq!(a.live, 0);
    }

    #[test]
    fn small_pa_sizes_start_at_level_1() {
        let mut a = HeapAlloc::default();
        let mut m = El2Map::new(&mut a, 36).unwrap();
        m.map_identity(&mut a, 0x8000_0000, 0x8060_0000).unwrap();
        assert_eq!(m.translate(&a, 0x805f_f000), Some(0x805f_f000));
        assert_eq!(a.live, 2, "L1 root and one L2 table of 2 MiB blocks");
        assert_eq!(m.map_identity(&mut a, 0, 1 << 37), Err(MapError::BadRange));
        assert_eq!(m.map_identity(&mut a, 1, 4096), Err(MapError::BadRange));
        m.free(&mut a);
    }

    #[test]
    fn running_out_of_memory_is_an_error() {
        let mut a = HeapAlloc { fail_after: Some(1), ..Default::default() };
        let mut m = El2Map::new(&mut a, 40).unwrap();
        assert_eq!(m.map_identity(&mut a, 0x4000_0000, 0x4000_1000), Err(MapError::NoMemory));
        m.free(&mut a);
        assert_eq!(a.live, 0);
    }
}
