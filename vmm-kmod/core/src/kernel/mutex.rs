//! The module's control lock (a kernel mutex in the shim) guarding one value.
//!
//! There is one such lock: it serialises VM creation, destruction and lookup,
//! which may sleep (device nodes are created under it).

use super::sys;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

/// A value guarded by the control lock.
pub struct KMutex<T> {
    data: UnsafeCell<T>,
}

// SAFETY: all access to `data` goes through a guard, which holds the lock.
unsafe impl<T: Send> Sync for KMutex<T> {}

impl<T> KMutex<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self { data: UnsafeCell::new(value) }
    }

    /// Takes the control lock (may sleep).
    pub fn lock(&self) -> KMutexGuard<'_, T> {
        sys::ctl_lock();
        KMutexGuard { m: self }
    }
}

/// Access to the value while the lock is held.
pub struct KMutexGuard<'a, T> {
    m: &'a KMutex<T>,
}

impl<T> Deref for KMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no &mut exists elsewhere.
        unsafe { &*self.m.data.get() }
    }
}

impl<T> DerefMut for KMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock and is borrowed mutably.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T> Drop for KMutexGuard<'_, T> {
    fn drop(&mut self) {
        sys::ctl_unlock();
    }
}
