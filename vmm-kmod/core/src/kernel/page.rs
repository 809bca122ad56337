//! Whole pages of the kernel's linear map, which have a physical address (EL2
//! runs on physical addresses).

use super::sys;
use crate::errno::{Errno, ENOMEM};

/// Size of a page (the module requires 4 KiB pages).
pub const PAGE_SIZE: usize = 4096;

/// One zeroed, owned page.
pub struct Page {
    va: *mut u8,
}

// SAFETY: the page is plain memory owned by this value.
unsafe impl Send for Page {}
// SAFETY: shared access only reads addresses.
unsafe impl Sync for Page {}

impl Page {
    /// Allocates a zeroed page.
    pub fn alloc() -> Result<Self, Errno> {
        let va = sys::alloc_page();
        if va.is_null() {
            Err(ENOMEM)
        } else {
            Ok(Self { va })
        }
    }

    /// Its kernel virtual address.
    pub fn va(&self) -> *mut u8 {
        self.va
    }

    /// Its physical address.
    pub fn pa(&self) -> u64 {
        sys::virt_to_phys(self.va)
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: we own the page and nothing refers to it any more.
        unsafe { sys::free_page(self.va) }
    }
}

impl Page {
    /// Takes back a page whose ownership was given up with `mem::forget`.
    ///
    /// # Safety
    /// `va` came from [`Page::alloc`] and nobody else owns it now.
    pub unsafe fn from_raw(va: *mut u8) -> Self {
        Self { va }
    }
}
