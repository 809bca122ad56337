//! A heap box on kernel memory whose allocation failure is an errno, never a
//! panic (the `alloc` crate's boxes abort on failure).

use super::sys;
use crate::errno::{Errno, ENOMEM};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// An owned `T` in kernel memory.
pub struct KBox<T> {
    ptr: NonNull<T>,
}

// SAFETY: KBox owns its T exclusively, like Box.
unsafe impl<T: Send> Send for KBox<T> {}
// SAFETY: shared access only hands out &T.
unsafe impl<T: Sync> Sync for KBox<T> {}

impl<T> KBox<T> {
    /// Moves `value` into fresh kernel memory.
    pub fn try_new(value: T) -> Result<Self, Errno> {
        let size = core::mem::size_of::<T>();
        let align = core::mem::align_of::<T>();
        let p = sys::kzalloc(size, align) as *mut T;
        let ptr = NonNull::new(p).ok_or(ENOMEM)?;
        // SAFETY: fresh, suitably sized and aligned memory.
        unsafe { ptr.as_ptr().write(value) };
        Ok(Self { ptr })
    }

    /// Like [`KBox::try_new`], but a failure gives `value` back, so that the
    /// caller can undo what it holds (its constructor is not enough).
    pub fn try_new_or_return(value: T) -> Result<Self, T> {
        let p = sys::kzalloc(core::mem::size_of::<T>(), core::mem::align_of::<T>()) as *mut T;
        match NonNull::new(p) {
            Some(ptr) => {
                // SAFETY: fresh, suitably sized and aligned memory.
                unsafe { ptr.as_ptr().write(value) };
                Ok(Self { ptr })
            }
            None => Err(value),
        }
    }

    /// A `T` whose bytes are all zero, in fresh kernel memory, without
    /// building it on the stack first (for large structures).
    ///
    /// # Safety
    /// All-zero bytes must be a valid `T`.
    pub unsafe fn try_new_zeroed() -> Result<Self, Errno> {
        let p = sys::kzalloc(core::mem::size_of::<T>(), core::mem::align_of::<T>()) as *mut T;
        Ok(Self { ptr: NonNull::new(p).ok_or(ENOMEM)? })
    }

    /// Gives up ownership; [`KBox::from_raw`] takes it back.
    pub fn into_raw(b: Self) -> *mut T {
        let p = b.ptr.as_ptr();
        core::mem::forget(b);
        p
    }

    /// Moves the value out and frees the memory.
    pub fn into_inner(b: Self) -> T {
        let p = b.ptr.as_ptr();
        core::mem::forget(b);
        // SAFETY: we own the value and the memory: the value is read out
        // once, and the memory freed without dropping the value again.
        unsafe {
            let v = p.read();
            sys::kfree(p as *mut u8);
            v
        }
    }

    /// Takes back ownership of a pointer from [`KBox::into_raw`].
    ///
    /// # Safety
    /// `p` came from `into_raw` and is owned by nobody else now.
    pub unsafe fn from_raw(p: *mut T) -> Self {
        // SAFETY: into_raw never yields null.
        let ptr = unsafe { NonNull::new_unchecked(p) };
        Self { ptr }
    }
}

impl<T> Deref for KBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the pointer is valid and owned while self lives.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for KBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and &mut self is exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for KBox<T> {
    fn drop(&mut self) {
        // SAFETY: we own the value and the memory; neither is used again.
        unsafe {
            core::ptr::drop_in_place(self.ptr.as_ptr());
            sys::kfree(self.ptr.as_ptr() as *mut u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_values() {
        let mut b = KBox::try_new([7u64; 64]).unwrap();
        b[3] = 9;
        assert_eq!(b[3], 9);
        let p = KBox::into_raw(b);
        // SAFETY: p came from into_raw just above.
        let b = unsafe { KBox::from_raw(p) };
        assert_eq!(b[0], 7);
    }
}
