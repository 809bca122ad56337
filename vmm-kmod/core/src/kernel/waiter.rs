//! Where a vCPU thread sleeps in WFI: a wait queue with a wake flag and a
//! high-resolution timer that sets the flag at the guest's next timer
//! deadline. Anyone may wake it (a new interrupt, a suspend). The sleeper
//! clears the flag, checks whether it has reason to sleep, then waits: a
//! wake that comes between the check and the wait is not lost.

use super::sys;
use crate::errno::{Errno, EINTR, ENOMEM};
use core::ffi::c_void;

/// A vCPU's waiter.
pub struct Waiter(*mut c_void);

// SAFETY: the C object is made for use from any thread and interrupt context.
unsafe impl Send for Waiter {}
// SAFETY: as above.
unsafe impl Sync for Waiter {}

impl Waiter {
    /// A new waiter.
    pub fn new() -> Result<Self, Errno> {
        let p = sys::waiter_create();
        if p.is_null() {
            Err(ENOMEM)
        } else {
            Ok(Self(p))
        }
    }

    /// Sets its timer to wake it `ns` nanoseconds from now, on this CPU.
    pub fn arm(&self, ns: u64) {
        sys::waiter_arm(self.0, ns)
    }

    /// Whether a wake came since [`Waiter::clear`].
    pub fn woken(&self) -> bool {
        sys::waiter_woken(self.0)
    }

    /// Whether its timer is set and has not fired.
    pub fn queued(&self) -> bool {
        sys::waiter_queued(self.0)
    }

    /// Cancels the timer.
    pub fn disarm(&self) {
        sys::waiter_disarm(self.0)
    }

    /// Forgets earlier wakes: call before checking whether to sleep.
    pub fn clear(&self) {
        sys::waiter_clear(self.0)
    }

    /// Sleeps until woken (returns at once if a wake came since
    /// [`Waiter::clear`]); `EINTR` when a signal is pending.
    pub fn wait(&self) -> Result<(), Errno> {
        if sys::waiter_wait(self.0) == 0 {
            Ok(())
        } else {
            Err(EINTR)
        }
    }

    /// Wakes it (from any context).
    pub fn wake(&self) {
        sys::waiter_wake(self.0)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // SAFETY: our own object, not used again; the shim cancels the timer.
        unsafe { sys::waiter_destroy(self.0) }
    }
}
