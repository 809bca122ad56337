//! A value behind a kernel reader-writer spinlock: many readers at once,
//! none of them sleeping, for tables looked up on a vCPU's exit path (the
//! ioeventfds) and changed rarely by ioctls.

use super::sys;
use crate::errno::{Errno, ENOMEM};
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ops::{Deref, DerefMut};

/// A value guarded by its own `rwlock_t`. Neither guard may be held across
/// anything that sleeps (the lock spins, with preemption off).
pub struct KRwLock<T> {
    raw: *mut c_void,
    data: UnsafeCell<T>,
}

// SAFETY: shared access only through a read guard (the lock held shared),
// exclusive access only through a write guard (held exclusively).
unsafe impl<T: Send + Sync> Sync for KRwLock<T> {}
// SAFETY: the lock and the value can move between threads.
unsafe impl<T: Send> Send for KRwLock<T> {}

impl<T> KRwLock<T> {
    /// Wraps `value` with a new lock.
    pub fn new(value: T) -> Result<Self, Errno> {
        let raw = sys::rwlock_create();
        if raw.is_null() {
            return Err(ENOMEM);
        }
        Ok(Self { raw, data: UnsafeCell::new(value) })
    }

    /// Shared access; spins while a writer holds it.
    pub fn read(&self) -> KReadGuard<'_, T> {
        // SAFETY: `raw` is live for as long as self.
        unsafe { sys::rwlock_read_lock(self.raw) };
        KReadGuard { l: self }
    }

    /// Exclusive access; spins while anyone holds it.
    pub fn write(&self) -> KWriteGuard<'_, T> {
        // SAFETY: as above.
        unsafe { sys::rwlock_write_lock(self.raw) };
        KWriteGuard { l: self }
    }

    /// The value, exclusively borrowed: no lock needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T> Drop for KRwLock<T> {
    fn drop(&mut self) {
        // SAFETY: no guard is alive (guards borrow self); the lock is ours.
        unsafe { sys::rwlock_destroy(self.raw) }
    }
}

/// Shared access while the lock is held for reading.
pub struct KReadGuard<'a, T> {
    l: &'a KRwLock<T>,
}

impl<T> Deref for KReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: readers only; no writer can hold the lock meanwhile.
        unsafe { &*self.l.data.get() }
    }
}

impl<T> Drop for KReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard holds the lock for reading.
        unsafe { sys::rwlock_read_unlock(self.l.raw) }
    }
}

/// Exclusive access while the lock is held for writing.
pub struct KWriteGuard<'a, T> {
    l: &'a KRwLock<T>,
}

impl<T> Deref for KWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &*self.l.data.get() }
    }
}

impl<T> DerefMut for KWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, borrowed mutably.
        unsafe { &mut *self.l.data.get() }
    }
}

impl<T> Drop for KWriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard holds the lock for writing.
        unsafe { sys::rwlock_write_unlock(self.l.raw) }
    }
}
