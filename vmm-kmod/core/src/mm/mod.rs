//! Translation tables: the EL2 identity map and the stage-2 tables of VMs.
//!
//! Both are built by pure code over a [`TableAlloc`] (a source of zeroed,
//! physically addressed table pages), so they are tested on the build
//! machine with a heap-backed allocator; in the module the pages come from
//! the kernel's linear map.

pub mod el2map;
pub mod stage2;

/// Size of a translation granule and of a page (4 KiB).
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// Descriptor address bits [47:12].
pub const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
/// Descriptor: valid.
pub const DESC_VALID: u64 = 1 << 0;
/// Descriptor: table (levels 0-2) or page (level 3), with `DESC_VALID`.
pub const DESC_TABLE: u64 = 1 << 1;
/// Access flag.
pub const DESC_AF: u64 = 1 << 10;

/// A zeroed table page for a translation table.
pub trait TableAlloc {
    /// Allocates `1 << order` contiguous, naturally aligned, zeroed pages;
    /// returns their kernel address and physical address.
    fn alloc(&mut self, order: u32) -> Option<(*mut u64, u64)>;
    /// Frees what [`TableAlloc::alloc`] returned.
    fn free(&mut self, va: *mut u64, order: u32);
    /// The kernel address of a table page given its physical address.
    fn phys_to_virt(&self, pa: u64) -> *mut u64;
}

/// Bits of the address space translated by one entry at `level` (4 KiB granule).
pub const fn level_shift(level: u32) -> u32 {
    PAGE_SHIFT + 9 * (3 - level)
}

/// Index of `addr` in a table at `level`.
pub const fn level_index(addr: u64, level: u32) -> usize {
    ((addr >> level_shift(level)) & 0x1ff) as usize
}

#[cfg(test)]
pub(crate) mod testalloc {
    //! A heap-backed table allocator whose "physical" addresses are the
    //! heap addresses, counting what is live.
    use super::TableAlloc;
    use std::alloc::{alloc_zeroed, dealloc, Layout};

    #[derive(Default)]
    pub struct HeapAlloc {
        pub live: usize,
        pub fail_after: Option<usize>,
    }

    impl TableAlloc for HeapAlloc {
        fn alloc(&mut self, order: u32) -> Option<(*mut u64, u64)> {
            if let Some(n) = self.fail_after.as_mut() {
                if *n == 0 {
                    return None;
                }
                *n -= 1;
            }
            let size = 4096usize << order;
            let layout = Layout::from_size_align(size, size).ok()?;
            // SAFETY: non-zero size.
            let p = unsafe { alloc_zeroed(layout) } as *mut u64;
            self.live += 1 << order;
            Some((p, p as u64))
        }
        fn free(&mut self, va: *mut u64, order: u32) {
            let size = 4096usize << order;
            // SAFETY: allocated above with this layout.
            unsafe { dealloc(va as *mut u8, Layout::from_size_align(size, size).unwrap()) };
            self.live -= 1 << order;
        }
        fn phys_to_virt(&self, pa: u64) -> *mut u64 {
            pa as *mut u64
        }
    }
}
