//! The C shim's services (`vmm-kmod/shim/vmm_shim.c`), wrapped safely.

use super::Level;
use crate::errno::Errno;

extern "C" {
    fn vmm_shim_log(level: u32, msg: *const u8, len: usize);
    fn vmm_shim_kzalloc(size: usize) -> *mut u8;
    fn vmm_shim_kfree(p: *mut u8);
    fn vmm_shim_alloc_page() -> *mut u8;
    fn vmm_shim_free_page(p: *mut u8);
    fn vmm_shim_virt_to_phys(p: *const u8) -> u64;
    fn vmm_shim_ctl_lock();
    fn vmm_shim_ctl_unlock();
    fn vmm_shim_vm_node_create(slot: u32, name: *const u8, len: usize) -> i32;
    fn vmm_shim_vm_node_destroy(slot: u32);
    fn vmm_shim_module_get();
    fn vmm_shim_module_put();
    fn vmm_shim_online_cpus(mask: *mut u64, words: usize);
    fn vmm_shim_ping_cpus(mask: *mut u64, words: usize);
}

pub(super) fn log(level: Level, msg: &str) {
    // SAFETY: the shim prints exactly `len` bytes from `msg` ("%.*s").
    unsafe { vmm_shim_log(level as u32, msg.as_ptr(), msg.len()) }
}

/// Zeroed kernel memory of `size` bytes aligned to at least `align`, or null.
pub(super) fn kzalloc(size: usize, align: usize) -> *mut u8 {
    // kmalloc aligns every object to ARCH_KMALLOC_MINALIGN (>= 8) and a
    // power-of-two sized object to its size; round up so `align` holds.
    let size = if align > 8 {
        size.max(align).next_power_of_two()
    } else {
        size.max(1)
    };
    // SAFETY: plain allocation; a null result is handled by the caller.
    unsafe { vmm_shim_kzalloc(size) }
}

/// Frees what [`kzalloc`] returned.
///
/// # Safety
/// `p` came from [`kzalloc`] and is not used afterwards.
pub(super) unsafe fn kfree(p: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_kfree(p) }
}

/// One zeroed page of the kernel's linear map, or null.
pub(super) fn alloc_page() -> *mut u8 {
    // SAFETY: plain allocation.
    unsafe { vmm_shim_alloc_page() }
}

/// # Safety
/// `p` came from [`alloc_page`] and is not used afterwards.
pub(super) unsafe fn free_page(p: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_free_page(p) }
}

/// Physical address of a linear-map address.
pub(super) fn virt_to_phys(p: *const u8) -> u64 {
    // SAFETY: virt_to_phys only computes; pages passed here are linear-map pages.
    unsafe { vmm_shim_virt_to_phys(p) }
}

pub(super) fn ctl_lock() {
    // SAFETY: takes a static kernel mutex; callers pair it with ctl_unlock.
    unsafe { vmm_shim_ctl_lock() }
}

pub(super) fn ctl_unlock() {
    // SAFETY: only called by KMutexGuard's drop, which holds the lock.
    unsafe { vmm_shim_ctl_unlock() }
}

pub(super) fn vm_node_create(slot: usize, name: &[u8]) -> Result<(), Errno> {
    let slot = u32::try_from(slot).map_err(|_| crate::errno::EINVAL)?;
    // SAFETY: the shim copies `len` bytes of `name` before returning.
    let r = unsafe { vmm_shim_vm_node_create(slot, name.as_ptr(), name.len()) };
    if r < 0 {
        Err(Errno(-r))
    } else {
        Ok(())
    }
}

pub(super) fn vm_node_destroy(slot: usize) {
    if let Ok(slot) = u32::try_from(slot) {
        // SAFETY: destroying a slot without a node is a no-op in the shim.
        unsafe { vmm_shim_vm_node_destroy(slot) }
    }
}

pub(super) fn module_get() {
    // SAFETY: __module_get on our own module, which is live while we run.
    unsafe { vmm_shim_module_get() }
}

pub(super) fn module_put() {
    // SAFETY: balances an earlier module_get.
    unsafe { vmm_shim_module_put() }
}

pub(super) fn online_cpus(mask: &mut [u64]) {
    // SAFETY: the shim writes at most `words` words.
    unsafe { vmm_shim_online_cpus(mask.as_mut_ptr(), mask.len()) }
}

pub(super) fn ping_cpus(mask: &mut [u64]) {
    // SAFETY: the shim writes at most `words` words.
    unsafe { vmm_shim_ping_cpus(mask.as_mut_ptr(), mask.len()) }
}
