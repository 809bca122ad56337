//! Eventfds taken from userspace file descriptors: signalled by the module
//! (ioeventfds, resample notices) or watched by it (irqfds).
//!
//! A reference on an eventfd's context keeps its memory (not its file)
//! alive: userspace may close the descriptor at any time and signalling the
//! context stays safe until the reference is put.

use super::sys;
use crate::errno::Errno;
use core::ffi::c_void;

/// A counted reference on an eventfd context, taken with [`Eventfd::get`]
/// and given back with [`Eventfd::put`]. Plain data (`Copy`), so tables of
/// them can be zeroed and searched; who holds one must put it exactly once.
/// The null value is "none".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eventfd(*mut c_void);

// SAFETY: an eventfd context may be signalled and put from any thread.
unsafe impl Send for Eventfd {}
// SAFETY: as above.
unsafe impl Sync for Eventfd {}

impl Eventfd {
    /// No eventfd.
    pub const NONE: Eventfd = Eventfd(core::ptr::null_mut());

    /// A reference on the eventfd of descriptor `fd` of the calling process:
    /// `EBADF` if `fd` is not open, `EINVAL` if it is not an eventfd.
    pub fn get(fd: i32) -> Result<Eventfd, Errno> {
        sys::eventfd_get(fd).map(Eventfd)
    }

    /// Whether this is [`Eventfd::NONE`].
    pub fn is_none(self) -> bool {
        self.0.is_null()
    }

    /// Adds one to its counter, waking its readers. From process context
    /// or with spinlocks held; never from its own wake-up callback.
    pub fn signal(self) {
        if !self.is_none() {
            // SAFETY: a live reference (the holder has not put it).
            unsafe { sys::eventfd_signal(self.0) }
        }
    }

    /// Gives the reference back.
    ///
    /// # Safety
    /// The holder's reference, not used again by it.
    pub unsafe fn put(self) {
        if !self.is_none() {
            // SAFETY: the caller's contract.
            unsafe { sys::eventfd_put(self.0) }
        }
    }

    /// A stand-in at address `addr` for tests that only compare eventfds;
    /// signalling or putting it is not allowed.
    #[cfg(test)]
    pub fn fake(addr: usize) -> Eventfd {
        Eventfd(addr as *mut c_void)
    }

    /// The context's address, to tell two eventfds apart.
    pub fn addr(self) -> usize {
        self.0 as usize
    }
}

/// The module's watch on an irqfd's eventfd: a wait-queue entry whose
/// callback (interrupt context, the eventfd's lock held) calls
/// [`crate::vm::Vm::irqfd_fire`], and notes when the eventfd is closed.
/// Made with [`IrqfdHook::new`], watching after [`IrqfdHook::arm`],
/// undone by dropping it.
#[derive(Debug, PartialEq, Eq)]
pub struct IrqfdHook(*mut c_void);

// SAFETY: the C object is used from any thread; its callback's state is atomic.
unsafe impl Send for IrqfdHook {}
// SAFETY: as above.
unsafe impl Sync for IrqfdHook {}

impl IrqfdHook {
    /// A hook on the eventfd of descriptor `fd`, not yet watching, for
    /// SPI `spi` of the VM at `vm` (`level`: resample semantics). Returns it
    /// and its eventfd (owned by the hook, for comparisons only).
    pub fn new(fd: i32, vm: *const c_void, spi: u32, level: bool) -> Result<(IrqfdHook, Eventfd), Errno> {
        sys::irqfd_new(fd, vm, spi, level).map(|(h, e)| (IrqfdHook(h), Eventfd(e)))
    }

    /// Starts watching: from now on each write to the eventfd fires; if it
    /// was written before, it fires once now.
    pub fn arm(&self) {
        // SAFETY: our live hook, armed once (arm is only called after new).
        unsafe { sys::irqfd_arm(self.0) }
    }

    /// Gives up ownership as a pointer (to keep in a table of plain data).
    pub fn into_raw(self) -> *mut c_void {
        let p = self.0;
        core::mem::forget(self);
        p
    }

    /// Takes back a hook given up with [`IrqfdHook::into_raw`].
    ///
    /// # Safety
    /// `p` came from `into_raw` and is taken back once.
    pub unsafe fn from_raw(p: *mut c_void) -> IrqfdHook {
        IrqfdHook(p)
    }

    /// Looks at a hook given up with [`IrqfdHook::into_raw`] without taking
    /// it back.
    ///
    /// # Safety
    /// `p` came from `into_raw` and has not been taken back.
    pub unsafe fn borrow_raw(p: *mut c_void) -> core::mem::ManuallyDrop<IrqfdHook> {
        core::mem::ManuallyDrop::new(IrqfdHook(p))
    }

    /// Whether the eventfd was closed (its callback saw `POLLHUP` and
    /// stopped watching).
    pub fn is_dead(&self) -> bool {
        // SAFETY: our live hook.
        unsafe { sys::irqfd_dead(self.0) }
    }
}

impl Drop for IrqfdHook {
    /// Stops watching (once this returns no callback runs or will run) and
    /// frees the hook with its eventfd reference.
    fn drop(&mut self) {
        // SAFETY: our hook, dropped exactly once, never used again.
        unsafe { sys::irqfd_free(self.0) }
    }
}
