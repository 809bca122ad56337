//! A virtual machine: its name and life cycle, its memory (stage 2), its
//! vCPUs, and its VMID.
//!
//! A VM is owned by the registry until destroyed, and by every open file of
//! its device node: destroying it removes the name and the node at once,
//! stops running vCPUs, and frees the VM (memory included) when the last
//! file is closed.

use crate::errno::{Errno, EINVAL, ENOMEM, ENOSPC};
use crate::kernel::{self, KBox, KLock, KernelGuestPages, KernelTables};
use crate::memory::{Toucher, VmMemory};
use crate::mm::stage2::Geometry;
use crate::vcpu::exits::GuestMemory;
use crate::vcpu::Vcpu;
use crate::vmid::VMIDS;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use vmm_uapi::{SuspendHow, VM_MAXCPU, VM_NAME_BUF};

/// A VM's state.
pub struct Vm {
    refs: AtomicUsize,
    destroyed: AtomicBool,
    suspended: AtomicU32,
    name: [u8; VM_NAME_BUF],
    name_len: usize,
    vmid: u16,
    vttbr: u64,
    vtcr: u64,
    cntvoff: u64,
    midr: u64,
    mem: KLock<VmMemory>,
    vcpus: [AtomicPtr<Vcpu>; VM_MAXCPU],
    active: AtomicU64,
}

impl Vm {
    /// The VM's name.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// The VM's VMID.
    pub fn vmid(&self) -> u16 {
        self.vmid
    }

    /// The size of its guest physical address space in bits.
    pub fn ipa_bits(&self) -> u32 {
        64 - (self.vtcr & 0x3f) as u32
    }

    /// Whether the VM was destroyed (files still open on it get `ENXIO`).
    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::Acquire)
    }

    /// Marks the VM destroyed and stops its vCPUs.
    pub fn mark_destroyed(&self) {
        self.destroyed.store(true, Ordering::Release);
        self.suspend(SuspendHow::Destroy);
    }

    /// How the VM was suspended, if it was.
    pub fn suspended(&self) -> Option<SuspendHow> {
        match SuspendHow::from_u32(self.suspended.load(Ordering::Acquire)) {
            None | Some(SuspendHow::None) => None,
            how => how,
        }
    }

    /// Suspends the VM (the first reason stays) and makes running vCPUs exit.
    pub fn suspend(&self, how: SuspendHow) -> bool {
        let first = self
            .suspended
            .compare_exchange(SuspendHow::None as u32, how as u32, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.kick_all();
        first
    }

    fn kick_all(&self) {
        // Pairs with the fence in vcpu::run::enter.
        core::sync::atomic::fence(Ordering::SeqCst);
        for slot in &self.vcpus {
            let p = slot.load(Ordering::Acquire);
            if p.is_null() {
                continue;
            }
            // SAFETY: vCPUs live as long as the VM.
            let cpu = unsafe { &*p }.running_on.load(Ordering::SeqCst);
            if cpu >= 0 {
                kernel::kick_cpu(cpu as u32);
            }
        }
    }

    /// vCPU `id`, created on first use.
    pub fn vcpu(&self, id: i32) -> Result<&Vcpu, Errno> {
        let id = usize::try_from(id).map_err(|_| EINVAL)?;
        let slot = self.vcpus.get(id).ok_or(EINVAL)?;
        let p = slot.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: vCPUs live as long as the VM.
            return Ok(unsafe { &*p });
        }
        let new = KBox::into_raw(KBox::try_new(Vcpu::new(id, self.vttbr, self.vtcr, self.cntvoff, self.midr))?);
        match slot.compare_exchange(null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: just published; lives as long as the VM.
            Ok(_) => Ok(unsafe { &*new }),
            Err(other) => {
                // SAFETY: `new` was never shared.
                drop(unsafe { KBox::from_raw(new) });
                // SAFETY: as above.
                Ok(unsafe { &*other })
            }
        }
    }

    /// `VM_REINIT`: ready for a new boot. Every vCPU is held while the VM is
    /// reset, so none can run meanwhile (`EBUSY` if one is running).
    pub fn reinit(&self) -> Result<(), Errno> {
        let mut held: [Option<crate::vcpu::VcpuGuard<'_>>; VM_MAXCPU] = [const { None }; VM_MAXCPU];
        for (slot, h) in self.vcpus.iter().zip(held.iter_mut()) {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: vCPUs live as long as the VM.
                *h = Some(unsafe { &*p }.try_lock()?);
            }
        }
        for g in held.iter_mut().flatten() {
            g.reset();
            g.active = false;
        }
        self.active.store(0, Ordering::Release);
        self.suspended.store(SuspendHow::None as u32, Ordering::Release);
        Ok(())
    }

    /// `VM_ACTIVATE_CPU`: reset state, active.
    pub fn activate(&self, id: i32) -> Result<(), Errno> {
        let vcpu = self.vcpu(id)?;
        vcpu.try_lock()?.reset();
        self.active.fetch_or(1 << vcpu.id, Ordering::AcqRel);
        Ok(())
    }

    /// The mask of active vCPUs.
    pub fn active_mask(&self) -> u64 {
        self.active.load(Ordering::Acquire)
    }

    /// The memory, locked.
    pub fn memory(&self) -> kernel::KLockGuard<'_, VmMemory> {
        self.mem.lock()
    }

    /// Guest memory as the exit handler sees it.
    pub fn guest_memory(&self) -> VmGuestMemory<'_> {
        VmGuestMemory(self)
    }

    /// The most memory the host could give a VM.
    pub fn host_limit() -> u64 {
        kernel::totalram_bytes()
    }

    /// The page at `gpa` for userspace (`mmap` fault): its PA.
    pub fn user_page(&self, gpa: u64) -> Result<u64, Errno> {
        self.mem.lock().touch(&mut KernelTables, &mut KernelGuestPages, gpa, Toucher::User)
    }
}

/// The VM's memory as [`GuestMemory`] for the exit handler.
pub struct VmGuestMemory<'a>(&'a Vm);

impl GuestMemory for VmGuestMemory<'_> {
    fn is_ram(&self, ipa: u64) -> bool {
        self.0.mem.lock().is_ram(ipa)
    }

    fn fault_in(&mut self, ipa: u64) -> bool {
        self.0.mem.lock().touch(&mut KernelTables, &mut KernelGuestPages, ipa, Toucher::Guest).is_ok()
    }
}

/// A counted reference to a [`Vm`].
pub struct VmRef(NonNull<Vm>);

// SAFETY: Vm's shared state is atomics, locks and immutable data.
unsafe impl Send for VmRef {}
// SAFETY: as above.
unsafe impl Sync for VmRef {}

impl VmRef {
    /// A new VM called `name` (already validated), with one reference: a
    /// VMID, empty stage-2 tables, a counter starting near zero.
    pub fn new(name: &[u8]) -> Result<Self, Errno> {
        let mut buf = [0u8; VM_NAME_BUF];
        let len = name.len().min(VM_NAME_BUF - 1);
        buf[..len].copy_from_slice(&name[..len]);
        let parange = crate::arch::parange();
        let geo = Geometry::new(Geometry::parange_bits(parange));
        let vmid = VMIDS.alloc().ok_or(ENOSPC)?;
        let mem = match VmMemory::new(&mut KernelTables, geo).and_then(KLock::new) {
            Ok(m) => m,
            Err(e) => {
                VMIDS.free(vmid);
                return Err(e);
            }
        };
        let vttbr = mem.lock().stage2().vttbr(vmid);
        let vm = KBox::try_new(Vm {
            refs: AtomicUsize::new(1),
            destroyed: AtomicBool::new(false),
            suspended: AtomicU32::new(SuspendHow::None as u32),
            name: buf,
            name_len: len,
            vmid,
            vttbr,
            vtcr: geo.vtcr(parange),
            cntvoff: crate::arch::counter(),
            midr: crate::arch::midr(),
            mem,
            vcpus: [const { AtomicPtr::new(null_mut()) }; VM_MAXCPU],
            active: AtomicU64::new(0),
        })
        .map_err(|_| ENOMEM)?;
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
        if self.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        core::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: that was the last reference; the box came from VmRef::new.
        let vm = KBox::into_inner(unsafe { KBox::from_raw(self.0.as_ptr()) });
        // No vCPU can run: running needs a reference. Free the vCPUs, drop
        // the VMID's TLB entries everywhere, then give the pages back.
        for slot in &vm.vcpus {
            let p = slot.swap(null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: created by Vm::vcpu with KBox::into_raw, unused now.
                drop(unsafe { KBox::from_raw(p) });
            }
        }
        crate::arch::tlbi_vmid(vm.vttbr);
        let Vm { mem, vmid, .. } = vm;
        mem.into_inner().destroy(&mut KernelTables, &mut KernelGuestPages);
        VMIDS.free(vmid);
    }
}
