//! A test double of the kernel services, for `cargo test` on the build machine.
//! Records what the core asked for, per test thread.

use super::Level;
use crate::errno::Errno;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Device nodes that exist: (slot, name).
    pub static NODES: RefCell<Vec<(usize, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
    /// The minor number of each node that exists: (slot, minor).
    pub static MINORS: RefCell<Vec<(usize, u32)>> = const { RefCell::new(Vec::new()) };
    /// Module references held.
    pub static MODULE_REFS: RefCell<i64> = const { RefCell::new(0) };
    /// Lines logged.
    pub static LOG: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    /// When set, the next node creation fails with this errno.
    pub static FAIL_NODE: RefCell<Option<Errno>> = const { RefCell::new(None) };
}

static CTL_LOCK: AtomicBool = AtomicBool::new(false);

pub(super) fn log(level: Level, msg: &str) {
    LOG.with(|l| l.borrow_mut().push((level, msg.to_string())));
}

pub(super) fn kzalloc(size: usize, align: usize) -> *mut u8 {
    let layout = std::alloc::Layout::from_size_align(size.max(1), align).expect("layout");
    // SAFETY: the layout has a non-zero size.
    unsafe { std::alloc::alloc_zeroed(layout) }
}

/// # Safety
/// `p` came from [`kzalloc`]. The double leaks instead of tracking layouts.
pub(super) unsafe fn kfree(_p: *mut u8) {}

pub(super) fn alloc_page() -> *mut u8 {
    kzalloc(4096, 4096)
}

/// # Safety
/// `p` came from [`alloc_page`].
pub(super) unsafe fn free_page(_p: *mut u8) {}

pub(super) fn virt_to_phys(p: *const u8) -> u64 {
    p as u64
}

pub(super) fn phys_to_virt(pa: u64) -> *mut u8 {
    pa as *mut u8
}

pub(super) fn alloc_pages(order: u32) -> *mut u8 {
    kzalloc(4096 << order, 4096 << order)
}

/// # Safety
/// `p` came from [`alloc_pages`].
pub(super) unsafe fn free_pages(_p: *mut u8, _order: u32) {}

pub(super) fn ctl_lock() {
    while CTL_LOCK.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::thread::yield_now();
    }
}

pub(super) fn ctl_unlock() {
    CTL_LOCK.store(false, Ordering::Release);
}

pub(super) fn vm_node_create(slot: usize, minor: u32, name: &[u8]) -> Result<(), Errno> {
    if let Some(e) = FAIL_NODE.with(|f| f.borrow_mut().take()) {
        return Err(e);
    }
    NODES.with(|n| {
        let mut n = n.borrow_mut();
        assert!(!n.iter().any(|(s, _)| *s == slot), "slot {slot} has a node already");
        n.push((slot, name.to_vec()));
    });
    MINORS.with(|m| m.borrow_mut().push((slot, minor)));
    Ok(())
}

pub(super) fn vm_node_destroy(slot: usize) {
    NODES.with(|n| n.borrow_mut().retain(|(s, _)| *s != slot));
    MINORS.with(|m| m.borrow_mut().retain(|(s, _)| *s != slot));
}

pub(super) fn module_get() {
    MODULE_REFS.with(|r| *r.borrow_mut() += 1);
}

pub(super) fn module_put() {
    MODULE_REFS.with(|r| *r.borrow_mut() -= 1);
}

pub(super) fn counters() -> (u64, u64, u64) {
    (0, 0, 0)
}

pub(super) fn online_cpus(mask: &mut [u64]) {
    mask.fill(0);
    mask[0] = 0b11;
}

pub(super) fn ping_cpus(mask: &mut [u64]) {
    mask.fill(0);
    mask[0] = 0b11;
}

pub(super) fn log_ratelimited(level: Level, msg: &str) {
    log(level, msg);
}

/// The double's mutex: a spin flag on the heap.
pub(super) fn mutex_create() -> *mut core::ffi::c_void {
    Box::into_raw(Box::new(AtomicBool::new(false))) as *mut core::ffi::c_void
}

/// # Safety
/// `m` came from [`mutex_create`].
pub(super) unsafe fn mutex_destroy(m: *mut core::ffi::c_void) {
    // SAFETY: from Box::into_raw above.
    drop(unsafe { Box::from_raw(m as *mut AtomicBool) });
}

/// # Safety
/// `m` came from [`mutex_create`].
pub(super) unsafe fn mutex_lock(m: *mut core::ffi::c_void) {
    // SAFETY: live, from mutex_create.
    let f = unsafe { &*(m as *const AtomicBool) };
    while f.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::thread::yield_now();
    }
}

/// # Safety
/// `m` came from [`mutex_create`] and is held.
pub(super) unsafe fn mutex_unlock(m: *mut core::ffi::c_void) {
    // SAFETY: live, from mutex_create.
    unsafe { &*(m as *const AtomicBool) }.store(false, Ordering::Release);
}

pub(super) fn alloc_guest_page() -> *mut u8 {
    alloc_page()
}

pub(super) fn sanitised_id_reg(crm: u32, op2: u32) -> u64 {
    crate::arch::id_reg(crm, op2)
}

/// # Safety
/// `p` came from [`alloc_guest_page`].
pub(super) unsafe fn put_page(_p: *mut u8) {}

pub(super) fn totalram_bytes() -> u64 {
    1 << 30
}

pub(super) fn signal_pending() -> bool {
    false
}

pub(super) fn cond_resched() {}

pub(super) fn guest_enter() -> u32 {
    0
}

pub(super) fn guest_exit() {}

pub(super) fn kick_cpu(_cpu: u32) {}

pub(super) fn copy_from_user(dst: &mut [u8], src: u64) -> bool {
    // The double's "user" addresses are ordinary pointers.
    // SAFETY: tests pass valid buffers of at least dst.len() bytes.
    unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
    true
}

pub(super) fn copy_to_user(dst: u64, src: &[u8]) -> bool {
    // SAFETY: as above.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
    true
}

/// The double's waiter: a flag on the heap; waits never block.
pub(super) fn waiter_create() -> *mut core::ffi::c_void {
    Box::into_raw(Box::new(AtomicBool::new(false))) as *mut core::ffi::c_void
}

/// # Safety
/// `w` came from [`waiter_create`].
pub(super) unsafe fn waiter_destroy(w: *mut core::ffi::c_void) {
    // SAFETY: from Box::into_raw above.
    drop(unsafe { Box::from_raw(w as *mut AtomicBool) });
}

pub(super) fn waiter_arm(_w: *mut core::ffi::c_void, _ns: u64) {}

pub(super) fn waiter_disarm(_w: *mut core::ffi::c_void) {}

pub(super) fn waiter_clear(w: *mut core::ffi::c_void) {
    // SAFETY: live, from waiter_create.
    unsafe { &*(w as *const AtomicBool) }.store(false, Ordering::Release);
}

pub(super) fn waiter_wait(_w: *mut core::ffi::c_void) -> i32 {
    0
}

pub(super) fn waiter_wake(w: *mut core::ffi::c_void) {
    // SAFETY: live, from waiter_create.
    unsafe { &*(w as *const AtomicBool) }.store(true, Ordering::Release);
}
