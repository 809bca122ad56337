//! VMIDs: one per live VM, 1..=255 (8-bit VMIDs; 0 is the host's). A VMID
//! is reused only after its TLB entries were invalidated, which the VM's
//! teardown does before giving it back.

use core::sync::atomic::{AtomicU64, Ordering};

/// Largest VMID.
pub const MAX_VMID: u16 = 255;

/// A bitmap of VMIDs in use.
pub struct VmidAllocator([AtomicU64; 4]);

impl VmidAllocator {
    /// None in use (but the host's 0).
    pub const fn new() -> Self {
        Self([AtomicU64::new(1), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)])
    }

    /// A free VMID, if any.
    pub fn alloc(&self) -> Option<u16> {
        for (w, word) in self.0.iter().enumerate() {
            let mut cur = word.load(Ordering::Relaxed);
            while cur != u64::MAX {
                let bit = (!cur).trailing_zeros() as u64;
                match word.compare_exchange(cur, cur | 1 << bit, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => return Some((w as u64 * 64 + bit) as u16),
                    Err(now) => cur = now,
                }
            }
        }
        None
    }

    /// Gives `vmid` back (after its TLB entries are gone).
    pub fn free(&self, vmid: u16) {
        if vmid != 0 && vmid <= MAX_VMID {
            self.0[vmid as usize / 64].fetch_and(!(1 << (vmid % 64)), Ordering::AcqRel);
        }
    }
}

impl Default for VmidAllocator {
    fn default() -> Self {
        Self::new()
    }
}

/// The module's VMIDs.
pub static VMIDS: VmidAllocator = VmidAllocator::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_1_to_255_and_reuses() {
        let a = VmidAllocator::new();
        let ids: Vec<u16> = (0..255).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(ids[0], 1);
        assert_eq!(ids[254], 255);
        assert_eq!(a.alloc(), None);
        a.free(7);
        assert_eq!(a.alloc(), Some(7));
        a.free(0);
        assert_eq!(a.alloc(), None, "the host's VMID is never given out");
    }
}
