//! [`Shared`]: a value that interrupt handlers and other CPUs read and
//! write, through volatile accesses.

use core::cell::UnsafeCell;

/// A `Copy` value in memory, read and written only with volatile accesses,
/// so the compiler neither caches it nor drops a store that an interrupt
/// handler or another CPU is waiting for.
///
/// Not atomic (with the MMU off there are no atomics): give each value one
/// writer at a time, e.g. a handler counts and `main` reads. Other CPUs see
/// the accesses in program order (all memory is Device memory).
pub struct Shared<T>(UnsafeCell<T>);

// SAFETY: every access is a single volatile load or store of a `Copy`
// value; the one-writer rule above keeps updates from being lost.
unsafe impl<T: Copy + Send> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    /// A value, for a `static`.
    pub const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }

    /// Reads the value.
    pub fn get(&self) -> T {
        // SAFETY: the pointer comes from the cell, valid and aligned.
        unsafe { self.0.get().read_volatile() }
    }

    /// Writes the value.
    pub fn set(&self, v: T) {
        // SAFETY: as in `get`.
        unsafe { self.0.get().write_volatile(v) }
    }
}

impl Shared<u64> {
    /// Adds one (a read and a write: for a counter with one writer).
    pub fn increment(&self) {
        self.set(self.get() + 1)
    }
}
