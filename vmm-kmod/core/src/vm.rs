//! A virtual machine. For now it has a name and a life cycle; memory and
//! vCPUs come with guest execution.
//!
//! A VM is owned by the registry until destroyed, and by every open file of
//! its device node: destroying it removes the name and the node at once, and
//! frees the object when the last file is closed.

use crate::errno::Errno;
use crate::kernel::KBox;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use vmm_uapi::VM_NAME_BUF;

/// A VM's state.
pub struct Vm {
    refs: AtomicUsize,
    destroyed: AtomicBool,
    name: [u8; VM_NAME_BUF],
    name_len: usize,
}

impl Vm {
    /// The VM's name.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// Whether the VM was destroyed (files still open on it get `ENXIO`).
    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::Acquire)
    }

    /// Marks the VM destroyed.
    pub fn mark_destroyed(&self) {
        self.destroyed.store(true, Ordering::Release);
    }
}

/// A counted reference to a [`Vm`].
pub struct VmRef(NonNull<Vm>);

// SAFETY: Vm's shared state is atomics and immutable data.
unsafe impl Send for VmRef {}
// SAFETY: as above.
unsafe impl Sync for VmRef {}

impl VmRef {
    /// A new VM called `name` (already validated), with one reference.
    pub fn new(name: &[u8]) -> Result<Self, Errno> {
        let mut buf = [0u8; VM_NAME_BUF];
        let len = name.len().min(VM_NAME_BUF - 1);
        buf[..len].copy_from_slice(&name[..len]);
        let vm = KBox::try_new(Vm {
            refs: AtomicUsize::new(1),
            destroyed: AtomicBool::new(false),
            name: buf,
            name_len: len,
        })?;
        // SAFETY: into_raw never returns null.
        Ok(VmRef(unsafe { NonNull::new_unchecked(KBox::into_raw(vm)) }))
    }

    /// Gives up this reference as a pointer (a file's private data).
    pub fn into_raw(self) -> *mut Vm {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    /// Takes back a reference given up with [`VmRef::into_raw`].
    ///
    /// # Safety
    /// `p` came from `into_raw` and that reference is not used again.
    pub unsafe fn from_raw(p: *mut Vm) -> Self {
        // SAFETY: into_raw never yields null.
        VmRef(unsafe { NonNull::new_unchecked(p) })
    }

    /// Borrows a reference held as a raw pointer, without taking it back.
    ///
    /// # Safety
    /// `p` came from [`VmRef::into_raw`] and that reference outlives `'a`.
    pub unsafe fn borrow_raw<'a>(p: *mut Vm) -> &'a Vm {
        // SAFETY: the caller's contract keeps the VM alive.
        unsafe { &*p }
    }

    /// Number of references (for tests and diagnostics).
    pub fn refs(&self) -> usize {
        self.refs.load(Ordering::Acquire)
    }
}

impl Clone for VmRef {
    fn clone(&self) -> Self {
        self.refs.fetch_add(1, Ordering::Relaxed);
        VmRef(self.0)
    }
}

impl core::ops::Deref for VmRef {
    type Target = Vm;
    fn deref(&self) -> &Vm {
        // SAFETY: we hold a reference, so the VM is alive.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for VmRef {
    fn drop(&mut self) {
        if self.refs.fetch_sub(1, Ordering::Release) == 1 {
            core::sync::atomic::fence(Ordering::Acquire);
            // SAFETY: that was the last reference; the box came from VmRef::new.
            drop(unsafe { KBox::from_raw(self.0.as_ptr()) });
        }
    }
}
