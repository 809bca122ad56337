//! Guest RAM pages from the kernel's page allocator.

use super::sys;
use crate::memory::GuestPages;

/// Pages for guests: zeroed, accounted to the process, and never a reason
/// for the OOM killer (an allocation fails instead, and the VM stops).
#[derive(Default)]
pub struct KernelGuestPages;

impl GuestPages for KernelGuestPages {
    fn alloc(&mut self) -> Option<u64> {
        let va = sys::alloc_guest_page(false);
        (!va.is_null()).then(|| sys::virt_to_phys(va))
    }

    fn alloc_ahead(&mut self) -> Option<u64> {
        let va = sys::alloc_guest_page(true);
        (!va.is_null()).then(|| sys::virt_to_phys(va))
    }

    fn alloc_block(&mut self) -> Option<u64> {
        let va = sys::alloc_guest_block();
        (!va.is_null()).then(|| sys::virt_to_phys(va))
    }

    fn put(&mut self, pa: u64) {
        // SAFETY: `pa` is a page alloc() returned, or a page of a chunk
        // alloc_block() returned (split into pages of their own); this drops
        // the VM's reference (a userspace mapping may still hold its own).
        unsafe { sys::put_page(sys::phys_to_virt(pa)) }
    }

    fn put_block(&mut self, pa: u64) {
        // SAFETY: `pa` is a chunk alloc_block() returned; this drops the VM's
        // reference to each of its pages.
        unsafe { sys::put_block(sys::phys_to_virt(pa)) }
    }

    fn make_coherent(&mut self, pa: u64, len: u64) {
        #[cfg(target_arch = "aarch64")]
        {
            let va = sys::phys_to_virt(pa);
            if len <= crate::mm::PAGE_SIZE {
                crate::arch::aarch64::publish_page(va);
            } else {
                // A block: one invalidation of all I-caches rather than
                // 32,768 lines by address.
                crate::arch::aarch64::publish_code(va, len as usize);
            }
        }
        #[cfg(not(target_arch = "aarch64"))]
        let _ = (pa, len);
    }
}

/// Cleans and invalidates the data cache lines of the guest page at `pa`
/// to the point of coherency.
pub fn clean_to_poc(pa: u64) {
    #[cfg(target_arch = "aarch64")]
    crate::arch::aarch64::dcache_clean_inval_poc(sys::phys_to_virt(pa), crate::mm::PAGE_SIZE as usize);
    #[cfg(not(target_arch = "aarch64"))]
    let _ = pa;
}
