//! Translation-table pages from the kernel (or the test double).

use super::sys;
use crate::mm::TableAlloc;

/// Table pages from the kernel's page allocator (linear map, so EL2's
/// identity map and the stage-2 walker reach them by physical address).
#[derive(Default)]
pub struct KernelTables;

impl TableAlloc for KernelTables {
    fn alloc(&mut self, order: u32) -> Option<(*mut u64, u64)> {
        let va = sys::alloc_pages(order);
        if va.is_null() {
            None
        } else {
            Some((va as *mut u64, sys::virt_to_phys(va)))
        }
    }

    fn free(&mut self, va: *mut u64, order: u32) {
        // SAFETY: TableAlloc's contract: `va` came from alloc with this order.
        unsafe { sys::free_pages(va as *mut u8, order) }
    }

    fn phys_to_virt(&self, pa: u64) -> *mut u64 {
        sys::phys_to_virt(pa) as *mut u64
    }
}
