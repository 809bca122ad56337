//! A kernel mutex of its own guarding one value (one per VM: its memory).

use super::sys;
use crate::errno::{Errno, ENOMEM};
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ops::{Deref, DerefMut};

/// A value guarded by its own kernel mutex.
pub struct KLock<T> {
    raw: *mut c_void,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` only through a guard, which holds the mutex.
unsafe impl<T: Send> Sync for KLock<T> {}
// SAFETY: the mutex and the value can move between threads.
unsafe impl<T: Send> Send for KLock<T> {}

impl<T> KLock<T> {
    /// Wraps `value` with a new mutex.
    pub fn new(value: T) -> Result<Self, Errno> {
        let raw = sys::mutex_create();
        if raw.is_null() {
            return Err(ENOMEM);
        }
        Ok(Self { raw, data: UnsafeCell::new(value) })
    }

    /// Like [`KLock::new`], but a failure gives `value` back.
    pub fn try_new_or_return(value: T) -> Result<Self, T> {
        let raw = sys::mutex_create();
        if raw.is_null() {
            return Err(value);
        }
        Ok(Self { raw, data: UnsafeCell::new(value) })
    }

    /// Takes the mutex (may sleep).
    pub fn lock(&self) -> KLockGuard<'_, T> {
        // SAFETY: `raw` is live for as long as self.
        unsafe { sys::mutex_lock(self.raw) };
        KLockGuard { l: self }
    }

    /// The value, with no lock needed: we own the only reference.
    pub fn into_inner(self) -> T {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again; the mutex is unlocked
        // (no guard can outlive the borrow of self) and freed here.
        unsafe {
            sys::mutex_destroy(me.raw);
            core::ptr::read(me.data.get())
        }
    }
}

impl<T> Drop for KLock<T> {
    fn drop(&mut self) {
        // SAFETY: no guard is alive (guards borrow self); the mutex is ours.
        unsafe { sys::mutex_destroy(self.raw) }
    }
}

/// Access while the mutex is held.
pub struct KLockGuard<'a, T> {
    l: &'a KLock<T>,
}

impl<T> Deref for KLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the mutex.
        unsafe { &*self.l.data.get() }
    }
}

impl<T> DerefMut for KLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the mutex and is borrowed mutably.
        unsafe { &mut *self.l.data.get() }
    }
}

impl<T> Drop for KLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: we hold the mutex.
        unsafe { sys::mutex_unlock(self.l.raw) }
    }
}
