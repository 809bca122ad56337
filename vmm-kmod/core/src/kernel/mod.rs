//! Kernel services the core uses: logging, memory, the control lock, VM
//! device nodes and the module's reference count.
//!
//! On the target they are the C shim's wrappers of Linux services
//! ([`linux`]); in `cargo test` on the build machine a double ([`mock`])
//! stands in, so the logic above it runs unchanged.

#[cfg(not(target_os = "none"))]
pub mod mock;
#[cfg(not(target_os = "none"))]
use mock as sys;

#[cfg(target_os = "none")]
pub mod linux;
#[cfg(target_os = "none")]
use linux as sys;

mod eventfd;
mod guest_pages;
mod kbox;
mod klock;
mod mutex;
mod page;
mod rwlock;
mod tables;
mod waiter;

pub use eventfd::{Eventfd, IrqfdHook};
pub use guest_pages::{clean_to_poc, KernelGuestPages};
pub use kbox::KBox;
pub use klock::{KLock, KLockGuard};
pub use mutex::{KMutex, KMutexGuard};
pub use page::{Page, PAGE_SIZE};
pub use rwlock::{KReadGuard, KRwLock, KWriteGuard};
pub use tables::KernelTables;
pub use waiter::Waiter;

use crate::errno::Errno;

/// Kernel log levels used by the module (printk's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Level {
    /// `KERN_ERR`: a refusal or a failure the user must see.
    Err = 3,
    /// `KERN_WARNING`.
    Warning = 4,
    /// `KERN_INFO`: normal events.
    Info = 6,
}

/// Writes one line to the kernel log, prefixed `vmm: `.
pub fn log(level: Level, msg: &str) {
    sys::log(level, msg);
}

/// Writes one line to the kernel log, at most a few per second.
pub fn log_ratelimited(level: Level, msg: &str) {
    sys::log_ratelimited(level, msg);
}

/// Physical address of a linear-map (kmalloc or page) address.
pub fn virt_to_phys(p: *const u8) -> u64 {
    sys::virt_to_phys(p)
}

/// The kernel's system-wide value of the AArch64 ID register
/// S3_0_C0_C`crm`_`op2`: the same on every CPU (the lowest common
/// denominator on a big.LITTLE host) and with the host's command-line
/// overrides. Only for the registers `vcpu::idregs` allows, which every
/// supported kernel tracks.
pub fn sanitised_id_reg(crm: u32, op2: u32) -> u64 {
    sys::sanitised_id_reg(crm, op2)
}

/// The host's RAM in bytes.
pub fn totalram_bytes() -> u64 {
    sys::totalram_bytes()
}

/// Whether a thread spinning for a wake should stop: another task wants
/// this CPU, or a signal is pending.
pub fn poll_should_stop() -> bool {
    sys::poll_should_stop()
}

/// The `halt_poll_ns` module parameter (see `vcpu::run`).
pub fn halt_poll_ns() -> u64 {
    sys::halt_poll_ns()
}

/// Whether the current task has a signal to handle.
pub fn signal_pending() -> bool {
    sys::signal_pending()
}

/// Gives the CPU to another task if one should run.
pub fn cond_resched() {
    sys::cond_resched()
}

/// Prepares this CPU to enter a guest (FP/SIMD state saved, interrupts
/// masked); returns the CPU number.
pub fn guest_enter(fp: bool) -> u32 {
    sys::guest_enter(fp)
}

/// Undoes [`guest_enter`] (with the same `fp`).
pub fn guest_exit(fp: bool) {
    sys::guest_exit(fp)
}

/// Interrupts CPU `cpu`, so a guest running there exits.
pub fn kick_cpu(cpu: u32) {
    sys::kick_cpu(cpu)
}

/// Like [`kick_cpu`], from any context, interrupts off and spinlocks held
/// included (an eventfd's wake-up callback): an interrupt is on its way to
/// `cpu` when this returns, or one already queued there is still to come.
pub fn kick_cpu_atomic(cpu: u32) {
    sys::kick_cpu_atomic(cpu)
}

/// Copies from a user address; false if it is not readable.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> bool {
    sys::copy_from_user(dst, src)
}

/// Copies to a user address; false if it is not writable.
pub fn copy_to_user(dst: u64, src: &[u8]) -> bool {
    sys::copy_to_user(dst, src)
}

/// Creates `/dev/vmm/NAME`, minor number `minor`, for the VM in registry slot `slot`.
pub fn vm_node_create(slot: usize, minor: u32, name: &[u8]) -> Result<(), Errno> {
    sys::vm_node_create(slot, minor, name)
}

/// Removes the device node of registry slot `slot`.
pub fn vm_node_destroy(slot: usize) {
    sys::vm_node_destroy(slot)
}

/// Takes a reference on the module: it cannot be unloaded while a VM exists.
pub fn module_get() {
    sys::module_get()
}

/// Drops a reference taken by [`module_get`].
pub fn module_put() {
    sys::module_put()
}

/// Whether KVM is initialised (it registered `/dev/kvm`): under VHE it then
/// owns the CPU's virtualization state.
pub fn kvm_on() -> bool {
    sys::kvm_on()
}

/// What the module holds now: (kernel objects, pages, guest pages).
pub fn counters() -> (u64, u64, u64) {
    sys::counters()
}

/// Fills `mask` with the online CPUs.
pub fn online_cpus(mask: &mut [u64]) {
    sys::online_cpus(mask)
}

/// Runs [`crate::hyp::ping_this_cpu`] on every online CPU and sets the bits of
/// those whose EL2 answered.
pub fn ping_cpus(mask: &mut [u64]) {
    sys::ping_cpus(mask)
}

/// Like [`klog!`], rate limited.
#[macro_export]
macro_rules! klog_ratelimited {
    ($level:ident, $($arg:tt)*) => {{
        let mut line = $crate::kernel::LineBuf::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        $crate::kernel::log_ratelimited($crate::kernel::Level::$level, line.as_str());
    }};
}

/// Formats a log line into a stack buffer (no allocation) and logs it.
#[macro_export]
macro_rules! klog {
    ($level:ident, $($arg:tt)*) => {{
        let mut line = $crate::kernel::LineBuf::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        $crate::kernel::log($crate::kernel::Level::$level, line.as_str());
    }};
}

/// A fixed buffer for one log line; what does not fit is cut.
pub struct LineBuf {
    buf: [u8; 200],
    len: usize,
}

impl LineBuf {
    /// An empty line.
    pub const fn new() -> Self {
        Self { buf: [0; 200], len: 0 }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 sequences are ever appended (see write_str).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<log line not UTF-8>")
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn line_buffer_cuts_at_char_boundary() {
        let mut l = LineBuf::new();
        for _ in 0..100 {
            let _ = write!(l, "é");
        }
        assert_eq!(l.as_str().len(), 200);
        let mut l = LineBuf::new();
        let _ = write!(l, "{}x", "a".repeat(199));
        let _ = write!(l, "é");
        assert_eq!(l.as_str().len(), 200);
        assert!(l.as_str().ends_with('x'));
    }
}
