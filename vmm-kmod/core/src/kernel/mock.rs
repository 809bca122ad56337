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

pub(super) fn kvm_on() -> bool {
    false
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

pub(super) fn alloc_guest_page(_ahead: bool) -> *mut u8 {
    alloc_page()
}

pub(super) fn sanitised_id_reg(crm: u32, op2: u32) -> u64 {
    crate::arch::id_reg(crm, op2)
}

/// # Safety
/// `p` came from [`alloc_guest_page`].
pub(super) unsafe fn put_page(_p: *mut u8) {}

/// The double gives no chunks: guests of unit tests use pages.
pub(super) fn alloc_guest_block() -> *mut u8 {
    core::ptr::null_mut()
}

/// # Safety
/// `p` came from [`alloc_guest_block`].
pub(super) unsafe fn put_block(_p: *mut u8) {}

pub(super) fn totalram_bytes() -> u64 {
    1 << 30
}

pub(super) fn signal_pending() -> bool {
    false
}

pub(super) fn cond_resched() {}

pub(super) fn guest_enter(_fp: bool) -> u32 {
    0
}

pub(super) fn guest_exit(_fp: bool) {}

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

pub(super) fn waiter_woken(w: *mut core::ffi::c_void) -> bool {
    // SAFETY: live, from waiter_create.
    unsafe { &*(w as *const AtomicBool) }.load(Ordering::SeqCst)
}

pub(super) fn poll_should_stop() -> bool {
    true
}

pub(super) fn halt_poll_ns() -> u64 {
    0
}

pub(super) fn waiter_queued(_w: *mut core::ffi::c_void) -> bool {
    false
}

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

// ---- kicks, reader-writer locks and eventfds ----

thread_local! {
    /// CPUs kicked from atomic context, in order.
    pub static ATOMIC_KICKS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// The double's file table: descriptor to eventfd (`None`: open, but
    /// some other kind of file).
    static FDS: RefCell<Vec<(i32, Option<std::rc::Rc<MockEventfd>>)>> = const { RefCell::new(Vec::new()) };
    /// References on eventfd contexts held by the core (gets minus puts).
    pub static EVENTFD_REFS: RefCell<i64> = const { RefCell::new(0) };
    /// Irqfd hooks that exist (new minus free).
    pub static HOOKS: RefCell<i64> = const { RefCell::new(0) };
}

pub(super) fn kick_cpu_atomic(cpu: u32) {
    ATOMIC_KICKS.with(|k| k.borrow_mut().push(cpu));
}

/// The double's rwlock: a counter, -1 while written; tests never contend.
pub(super) fn rwlock_create() -> *mut core::ffi::c_void {
    Box::into_raw(Box::new(std::sync::atomic::AtomicI64::new(0))) as *mut core::ffi::c_void
}

/// # Safety
/// `l` came from [`rwlock_create`].
pub(super) unsafe fn rwlock_destroy(l: *mut core::ffi::c_void) {
    // SAFETY: from Box::into_raw above.
    let b = unsafe { Box::from_raw(l as *mut std::sync::atomic::AtomicI64) };
    assert_eq!(b.load(Ordering::Relaxed), 0, "rwlock destroyed while held");
}

fn rw(l: *mut core::ffi::c_void) -> &'static std::sync::atomic::AtomicI64 {
    // SAFETY: live, from rwlock_create (callers' contract).
    unsafe { &*(l as *const std::sync::atomic::AtomicI64) }
}

/// # Safety
/// `l` came from [`rwlock_create`].
pub(super) unsafe fn rwlock_read_lock(l: *mut core::ffi::c_void) {
    assert!(rw(l).fetch_add(1, Ordering::Acquire) >= 0, "read lock while written");
}

/// # Safety
/// `l` is held for reading.
pub(super) unsafe fn rwlock_read_unlock(l: *mut core::ffi::c_void) {
    rw(l).fetch_sub(1, Ordering::Release);
}

/// # Safety
/// `l` came from [`rwlock_create`].
pub(super) unsafe fn rwlock_write_lock(l: *mut core::ffi::c_void) {
    assert!(rw(l).compare_exchange(0, -1, Ordering::Acquire, Ordering::Relaxed).is_ok(), "write lock while held");
}

/// # Safety
/// `l` is held for writing.
pub(super) unsafe fn rwlock_write_unlock(l: *mut core::ffi::c_void) {
    rw(l).store(0, Ordering::Release);
}

/// A double's eventfd: its counter and the hooks watching it.
pub struct MockEventfd {
    count: std::cell::Cell<u64>,
    hooks: RefCell<Vec<*mut MockHook>>,
}

/// A double's irqfd hook.
pub struct MockHook {
    efd: std::rc::Rc<MockEventfd>,
    ctx: *mut core::ffi::c_void,
    vm: *const core::ffi::c_void,
    spi: u32,
    level: bool,
    dead: bool,
}

/// Opens a new eventfd in the double's file table; returns its descriptor.
pub fn open_eventfd() -> i32 {
    open(Some(std::rc::Rc::new(MockEventfd { count: 0.into(), hooks: RefCell::new(vec![]) })))
}

/// Opens a file that is not an eventfd; returns its descriptor.
pub fn open_other() -> i32 {
    open(None)
}

fn open(f: Option<std::rc::Rc<MockEventfd>>) -> i32 {
    FDS.with(|t| {
        let mut t = t.borrow_mut();
        let fd = 3 + t.iter().map(|(fd, _)| fd - 2).max().unwrap_or(0);
        t.push((fd, f));
        fd
    })
}

fn lookup(fd: i32) -> Option<Option<std::rc::Rc<MockEventfd>>> {
    FDS.with(|t| t.borrow().iter().find(|(f, _)| *f == fd).map(|(_, e)| e.clone()))
}

/// Writes 1 to eventfd `fd`, as userspace would: watching hooks fire (and
/// take the count, as the irqfd callback does).
pub fn write_eventfd(fd: i32) {
    let e = lookup(fd).flatten().expect("not an open eventfd");
    e.count.set(e.count.get() + 1);
    let hooks = e.hooks.borrow().clone();
    for h in hooks {
        // SAFETY: hooks on the list are live (free takes them off).
        let h = unsafe { &*h };
        e.count.set(0);
        crate::vm::irqfd_fire_raw(h.vm, h.spi, h.level);
    }
}

/// Reads (and clears) eventfd `fd`'s counter, as `read(2)` would.
pub fn read_eventfd(fd: i32) -> u64 {
    let e = lookup(fd).flatten().expect("not an open eventfd");
    e.count.replace(0)
}

/// Closes `fd`; hooks on an eventfd see `POLLHUP` and stop watching.
pub fn close_fd(fd: i32) {
    let e = FDS.with(|t| {
        let mut t = t.borrow_mut();
        let i = t.iter().position(|(f, _)| *f == fd).expect("not open");
        t.remove(i).1
    });
    if let Some(e) = e {
        for h in e.hooks.borrow_mut().drain(..) {
            // SAFETY: live, as above.
            unsafe { (*h).dead = true };
        }
    }
}

pub(super) fn eventfd_get(fd: i32) -> Result<*mut core::ffi::c_void, Errno> {
    match lookup(fd) {
        None => Err(Errno(9)),
        Some(None) => Err(crate::errno::EINVAL),
        Some(Some(e)) => {
            EVENTFD_REFS.with(|r| *r.borrow_mut() += 1);
            Ok(std::rc::Rc::into_raw(e) as *mut core::ffi::c_void)
        }
    }
}

/// # Safety
/// `ctx` is a reference from [`eventfd_get`].
pub(super) unsafe fn eventfd_signal(ctx: *mut core::ffi::c_void) {
    // SAFETY: a live Rc (the reference keeps it).
    let e = unsafe { &*(ctx as *const MockEventfd) };
    e.count.set(e.count.get() + 1);
}

/// # Safety
/// `ctx` is a reference from [`eventfd_get`], not used afterwards.
pub(super) unsafe fn eventfd_put(ctx: *mut core::ffi::c_void) {
    EVENTFD_REFS.with(|r| *r.borrow_mut() -= 1);
    // SAFETY: from Rc::into_raw in eventfd_get.
    drop(unsafe { std::rc::Rc::from_raw(ctx as *const MockEventfd) });
}

pub(super) fn irqfd_new(
    fd: i32,
    vm: *const core::ffi::c_void,
    spi: u32,
    level: bool,
) -> Result<(*mut core::ffi::c_void, *mut core::ffi::c_void), Errno> {
    let ctx = eventfd_get(fd)?;
    let efd = lookup(fd).flatten().expect("just looked up");
    let h = Box::into_raw(Box::new(MockHook { efd, ctx, vm, spi, level, dead: false }));
    HOOKS.with(|n| *n.borrow_mut() += 1);
    Ok((h as *mut core::ffi::c_void, ctx))
}

/// # Safety
/// `hook` came from [`irqfd_new`] and is not armed.
pub(super) unsafe fn irqfd_arm(hook: *mut core::ffi::c_void) {
    // SAFETY: live hook.
    let h = unsafe { &*(hook as *mut MockHook) };
    h.efd.hooks.borrow_mut().push(hook as *mut MockHook);
    if h.efd.count.get() != 0 {
        crate::vm::irqfd_fire_raw(h.vm, h.spi, h.level);
    }
}

/// # Safety
/// `hook` came from [`irqfd_new`].
pub(super) unsafe fn irqfd_dead(hook: *mut core::ffi::c_void) -> bool {
    // SAFETY: live hook.
    unsafe { (*(hook as *mut MockHook)).dead }
}

/// # Safety
/// `hook` came from [`irqfd_new`] and is not used afterwards.
pub(super) unsafe fn irqfd_free(hook: *mut core::ffi::c_void) {
    // SAFETY: from Box::into_raw in irqfd_new.
    let h = unsafe { Box::from_raw(hook as *mut MockHook) };
    h.efd.hooks.borrow_mut().retain(|&p| p != hook as *mut MockHook);
    let ctx = h.ctx;
    drop(h);
    // SAFETY: the hook's own reference, taken in irqfd_new.
    unsafe { eventfd_put(ctx) };
    HOOKS.with(|n| *n.borrow_mut() -= 1);
}
