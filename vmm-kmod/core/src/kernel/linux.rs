//! The C shim's services (`vmm-kmod/shim/vmm_shim.c`), wrapped safely.

use super::Level;
use crate::errno::Errno;

extern "C" {
    fn vmm_shim_log(level: u32, msg: *const u8, len: usize);
    fn vmm_shim_kzalloc(size: usize) -> *mut u8;
    fn vmm_shim_kfree(p: *mut u8);
    fn vmm_shim_alloc_page() -> *mut u8;
    fn vmm_shim_free_page(p: *mut u8);
    fn vmm_shim_alloc_pages(order: u32) -> *mut u8;
    fn vmm_shim_free_pages(p: *mut u8, order: u32);
    fn vmm_shim_virt_to_phys(p: *const u8) -> u64;
    fn vmm_shim_phys_to_virt(pa: u64) -> *mut u8;
    fn vmm_shim_ctl_lock();
    fn vmm_shim_ctl_unlock();
    fn vmm_shim_vm_node_create(slot: u32, minor: u32, name: *const u8, len: usize) -> i32;
    fn vmm_shim_vm_node_destroy(slot: u32);
    fn vmm_shim_module_get();
    fn vmm_shim_module_put();
    fn vmm_shim_online_cpus(mask: *mut u64, words: usize);
    fn vmm_shim_ping_cpus(mask: *mut u64, words: usize);
    fn vmm_shim_log_ratelimited(level: u32, msg: *const u8, len: usize);
    fn vmm_shim_mutex_create() -> *mut c_void;
    fn vmm_shim_mutex_destroy(m: *mut c_void);
    fn vmm_shim_mutex_lock(m: *mut c_void);
    fn vmm_shim_mutex_unlock(m: *mut c_void);
    fn vmm_shim_alloc_guest_page(ahead: bool) -> *mut u8;
    fn vmm_shim_sanitised_id_reg(crm: u32, op2: u32) -> u64;
    fn vmm_shim_put_page(p: *mut u8);
    fn vmm_shim_alloc_guest_block() -> *mut u8;
    fn vmm_shim_put_block(p: *mut u8);
    fn vmm_shim_counters(objects: *mut u64, pages: *mut u64, guest_pages: *mut u64);
    fn vmm_shim_kvm_on() -> bool;
    fn vmm_shim_totalram_bytes() -> u64;
    fn vmm_shim_signal_pending() -> bool;
    fn vmm_shim_cond_resched();
    fn vmm_shim_guest_enter(fp: bool) -> u32;
    fn vmm_shim_guest_exit(fp: bool);
    fn vmm_shim_kick_cpu(cpu: u32);
    fn vmm_shim_copy_from_user(dst: *mut u8, src: u64, len: usize) -> i32;
    fn vmm_shim_copy_to_user(dst: u64, src: *const u8, len: usize) -> i32;
    fn vmm_shim_waiter_create() -> *mut c_void;
    fn vmm_shim_waiter_destroy(w: *mut c_void);
    fn vmm_shim_waiter_arm(w: *mut c_void, ns: u64);
    fn vmm_shim_waiter_queued(w: *mut c_void) -> bool;
    fn vmm_shim_waiter_woken(w: *mut c_void) -> bool;
    fn vmm_shim_poll_should_stop() -> bool;
    fn vmm_shim_halt_poll_ns() -> u32;
    fn vmm_shim_waiter_disarm(w: *mut c_void);
    fn vmm_shim_waiter_wait(w: *mut c_void) -> i32;
    fn vmm_shim_waiter_clear(w: *mut c_void);
    fn vmm_shim_waiter_wake(w: *mut c_void);
}

pub(super) fn waiter_create() -> *mut c_void {
    // SAFETY: allocation and initialisation.
    unsafe { vmm_shim_waiter_create() }
}

/// # Safety
/// `w` came from [`waiter_create`] and is not used afterwards.
pub(super) unsafe fn waiter_destroy(w: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_waiter_destroy(w) }
}

pub(super) fn waiter_arm(w: *mut c_void, ns: u64) {
    // SAFETY: `w` is a live waiter (Waiter owns it).
    unsafe { vmm_shim_waiter_arm(w, ns) }
}

pub(super) fn waiter_woken(w: *mut c_void) -> bool {
    // SAFETY: `w` is a live waiter (Waiter owns it).
    unsafe { vmm_shim_waiter_woken(w) }
}

pub(super) fn poll_should_stop() -> bool {
    // SAFETY: reads the current task's and CPU's state.
    unsafe { vmm_shim_poll_should_stop() }
}

pub(super) fn halt_poll_ns() -> u64 {
    // SAFETY: reads a module parameter.
    unsafe { vmm_shim_halt_poll_ns() as u64 }
}

pub(super) fn waiter_queued(w: *mut c_void) -> bool {
    // SAFETY: `w` is a live waiter (Waiter owns it).
    unsafe { vmm_shim_waiter_queued(w) }
}

pub(super) fn waiter_disarm(w: *mut c_void) {
    // SAFETY: as above.
    unsafe { vmm_shim_waiter_disarm(w) }
}

pub(super) fn waiter_clear(w: *mut c_void) {
    // SAFETY: `w` is a live waiter.
    unsafe { vmm_shim_waiter_clear(w) }
}

pub(super) fn waiter_wait(w: *mut c_void) -> i32 {
    // SAFETY: as above; may sleep, callers are in process context.
    unsafe { vmm_shim_waiter_wait(w) }
}

pub(super) fn waiter_wake(w: *mut c_void) {
    // SAFETY: as above; callable from any context.
    unsafe { vmm_shim_waiter_wake(w) }
}

use core::ffi::c_void;

pub(super) fn log_ratelimited(level: Level, msg: &str) {
    // SAFETY: the shim prints exactly `len` bytes from `msg`.
    unsafe { vmm_shim_log_ratelimited(level as u32, msg.as_ptr(), msg.len()) }
}

/// A new kernel mutex, or null.
pub(super) fn mutex_create() -> *mut c_void {
    // SAFETY: allocation and mutex_init.
    unsafe { vmm_shim_mutex_create() }
}

/// # Safety
/// `m` came from [`mutex_create`], is unlocked and not used afterwards.
pub(super) unsafe fn mutex_destroy(m: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_mutex_destroy(m) }
}

/// # Safety
/// `m` came from [`mutex_create`] and is live.
pub(super) unsafe fn mutex_lock(m: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_mutex_lock(m) }
}

/// # Safety
/// `m` is live and held by this thread.
pub(super) unsafe fn mutex_unlock(m: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_mutex_unlock(m) }
}

/// A zeroed page for a guest (accounted to the caller, never the OOM
/// killer's reason), or null. `ahead`: not needed yet (the test-only fault
/// injection passes it by).
pub(super) fn alloc_guest_page(ahead: bool) -> *mut u8 {
    // SAFETY: plain allocation.
    unsafe { vmm_shim_alloc_guest_page(ahead) }
}

/// A zeroed, 2 MiB-aligned chunk of 512 guest pages, split into pages of
/// their own, or null (none free without reclaim, or the `s2_blocks`
/// parameter is off). Never failed by the test-only fault injection.
pub(super) fn alloc_guest_block() -> *mut u8 {
    // SAFETY: plain allocation.
    unsafe { vmm_shim_alloc_guest_block() }
}

/// # Safety
/// `p` came from [`alloc_guest_block`]; this drops that reference to each
/// of its 512 pages.
pub(super) unsafe fn put_block(p: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_put_block(p) }
}

/// The kernel's system-wide value of ID register S3_0_C0_C`crm`_`op2`.
pub(super) fn sanitised_id_reg(crm: u32, op2: u32) -> u64 {
    // SAFETY: reads the kernel's feature table; the callers pass only
    // registers it tracks (an unknown one would only warn and read 0).
    unsafe { vmm_shim_sanitised_id_reg(crm, op2) }
}

/// # Safety
/// `p` came from [`alloc_guest_page`]; this drops that reference.
pub(super) unsafe fn put_page(p: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_put_page(p) }
}

pub(super) fn kvm_on() -> bool {
    // SAFETY: registers and removes a probe device; no other effect.
    unsafe { vmm_shim_kvm_on() }
}

pub(super) fn counters() -> (u64, u64, u64) {
    let (mut o, mut p, mut g) = (0, 0, 0);
    // SAFETY: the shim writes the three counters through valid pointers.
    unsafe { vmm_shim_counters(&mut o, &mut p, &mut g) };
    (o, p, g)
}

pub(super) fn totalram_bytes() -> u64 {
    // SAFETY: reads a counter.
    unsafe { vmm_shim_totalram_bytes() }
}

pub(super) fn signal_pending() -> bool {
    // SAFETY: reads the current task's flags.
    unsafe { vmm_shim_signal_pending() }
}

pub(super) fn cond_resched() {
    // SAFETY: may sleep; callers are in process context without locks held.
    unsafe { vmm_shim_cond_resched() }
}

/// Prepares this CPU to enter a guest: with `fp`, the current task's
/// FP/SIMD state is saved by the kernel (so the guest may use the
/// registers); then interrupts are masked. Returns the CPU number.
pub(super) fn guest_enter(fp: bool) -> u32 {
    // SAFETY: paired with guest_exit (same `fp`) by the caller, in process context.
    unsafe { vmm_shim_guest_enter(fp) }
}

/// Undoes [`guest_enter`]: a pending host interrupt is taken now.
pub(super) fn guest_exit(fp: bool) {
    // SAFETY: paired with guest_enter.
    unsafe { vmm_shim_guest_exit(fp) }
}

pub(super) fn kick_cpu(cpu: u32) {
    // SAFETY: an IPI with an empty handler.
    unsafe { vmm_shim_kick_cpu(cpu) }
}

pub(super) fn copy_from_user(dst: &mut [u8], src: u64) -> bool {
    // SAFETY: dst is a valid kernel buffer; the shim checks the user range.
    unsafe { vmm_shim_copy_from_user(dst.as_mut_ptr(), src, dst.len()) == 0 }
}

pub(super) fn copy_to_user(dst: u64, src: &[u8]) -> bool {
    // SAFETY: src is a valid kernel buffer; the shim checks the user range.
    unsafe { vmm_shim_copy_to_user(dst, src.as_ptr(), src.len()) == 0 }
}

pub(super) fn log(level: Level, msg: &str) {
    // SAFETY: the shim prints exactly `len` bytes from `msg` ("%.*s").
    unsafe { vmm_shim_log(level as u32, msg.as_ptr(), msg.len()) }
}

/// Zeroed kernel memory of `size` bytes aligned to at least `align`, or null.
pub(super) fn kzalloc(size: usize, align: usize) -> *mut u8 {
    // kmalloc aligns every object to ARCH_KMALLOC_MINALIGN (>= 8) and a
    // power-of-two sized object to its size; round up so `align` holds.
    let size = if align > 8 { size.max(align).next_power_of_two() } else { size.max(1) };
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

/// `1 << order` zeroed, contiguous, naturally aligned pages, or null.
pub(super) fn alloc_pages(order: u32) -> *mut u8 {
    // SAFETY: plain allocation.
    unsafe { vmm_shim_alloc_pages(order) }
}

/// # Safety
/// `p` came from [`alloc_pages`] with `order`, and is not used afterwards.
pub(super) unsafe fn free_pages(p: *mut u8, order: u32) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_free_pages(p, order) }
}

/// Linear-map address of a physical address of RAM.
pub(super) fn phys_to_virt(pa: u64) -> *mut u8 {
    // SAFETY: __va only computes.
    unsafe { vmm_shim_phys_to_virt(pa) }
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

pub(super) fn vm_node_create(slot: usize, minor: u32, name: &[u8]) -> Result<(), Errno> {
    let slot = u32::try_from(slot).map_err(|_| crate::errno::EINVAL)?;
    // SAFETY: the shim copies `len` bytes of `name` before returning.
    let r = unsafe { vmm_shim_vm_node_create(slot, minor, name.as_ptr(), name.len()) };
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

extern "C" {
    fn vmm_shim_kick_cpu_atomic(cpu: u32);
    fn vmm_shim_rwlock_create() -> *mut c_void;
    fn vmm_shim_rwlock_destroy(l: *mut c_void);
    fn vmm_shim_rwlock_read_lock(l: *mut c_void);
    fn vmm_shim_rwlock_read_unlock(l: *mut c_void);
    fn vmm_shim_rwlock_write_lock(l: *mut c_void);
    fn vmm_shim_rwlock_write_unlock(l: *mut c_void);
    fn vmm_shim_eventfd_get(fd: i32, ctx: *mut *mut c_void) -> i32;
    fn vmm_shim_eventfd_signal(ctx: *mut c_void);
    fn vmm_shim_eventfd_put(ctx: *mut c_void);
    fn vmm_shim_irqfd_new(
        fd: i32,
        vm: *const c_void,
        spi: u32,
        level: bool,
        hook: *mut *mut c_void,
        ctx: *mut *mut c_void,
    ) -> i32;
    fn vmm_shim_irqfd_arm(hook: *mut c_void);
    fn vmm_shim_irqfd_dead(hook: *mut c_void) -> bool;
    fn vmm_shim_irqfd_free(hook: *mut c_void);
}

pub(super) fn kick_cpu_atomic(cpu: u32) {
    // SAFETY: an asynchronous IPI with an empty handler; safe in any context.
    unsafe { vmm_shim_kick_cpu_atomic(cpu) }
}

/// A new `rwlock_t`, or null.
pub(super) fn rwlock_create() -> *mut c_void {
    // SAFETY: allocation and rwlock_init.
    unsafe { vmm_shim_rwlock_create() }
}

/// # Safety
/// `l` came from [`rwlock_create`], is not held and not used afterwards.
pub(super) unsafe fn rwlock_destroy(l: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_rwlock_destroy(l) }
}

/// # Safety
/// `l` came from [`rwlock_create`] and is live.
pub(super) unsafe fn rwlock_read_lock(l: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_rwlock_read_lock(l) }
}

/// # Safety
/// `l` is live and held for reading by this thread.
pub(super) unsafe fn rwlock_read_unlock(l: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_rwlock_read_unlock(l) }
}

/// # Safety
/// `l` came from [`rwlock_create`] and is live.
pub(super) unsafe fn rwlock_write_lock(l: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_rwlock_write_lock(l) }
}

/// # Safety
/// `l` is live and held for writing by this thread.
pub(super) unsafe fn rwlock_write_unlock(l: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_rwlock_write_unlock(l) }
}

fn result(r: i32) -> Result<(), Errno> {
    if r < 0 {
        Err(Errno(-r))
    } else {
        Ok(())
    }
}

pub(super) fn eventfd_get(fd: i32) -> Result<*mut c_void, Errno> {
    let mut ctx = core::ptr::null_mut();
    // SAFETY: the shim looks `fd` up in the caller's table and writes `ctx` only.
    result(unsafe { vmm_shim_eventfd_get(fd, &mut ctx) })?;
    Ok(ctx)
}

/// # Safety
/// `ctx` is a live reference from [`eventfd_get`].
pub(super) unsafe fn eventfd_signal(ctx: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_eventfd_signal(ctx) }
}

/// # Safety
/// `ctx` is a live reference from [`eventfd_get`], not used afterwards.
pub(super) unsafe fn eventfd_put(ctx: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_eventfd_put(ctx) }
}

pub(super) fn irqfd_new(
    fd: i32,
    vm: *const c_void,
    spi: u32,
    level: bool,
) -> Result<(*mut c_void, *mut c_void), Errno> {
    let (mut hook, mut ctx) = (core::ptr::null_mut(), core::ptr::null_mut());
    // SAFETY: the shim looks `fd` up and writes the two pointers only; `vm`
    // is only stored (the caller keeps it valid while the hook is armed).
    result(unsafe { vmm_shim_irqfd_new(fd, vm, spi, level, &mut hook, &mut ctx) })?;
    Ok((hook, ctx))
}

/// # Safety
/// `hook` came from [`irqfd_new`], is live and not yet armed.
pub(super) unsafe fn irqfd_arm(hook: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_irqfd_arm(hook) }
}

/// # Safety
/// `hook` came from [`irqfd_new`] and is live.
pub(super) unsafe fn irqfd_dead(hook: *mut c_void) -> bool {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_irqfd_dead(hook) }
}

/// # Safety
/// `hook` came from [`irqfd_new`], is live and not used afterwards.
pub(super) unsafe fn irqfd_free(hook: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { vmm_shim_irqfd_free(hook) }
}
