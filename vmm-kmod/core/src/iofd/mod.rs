//! The I/O fast paths of a VM: [`ioeventfd`] (guest writes completed by an
//! eventfd) and [`irqfd`] (eventfds that raise SPIs), and the state they
//! share with the vGIC and the exit path ([`IoFds`]).
//!
//! Registrations live until removed, until the open file of the VM they were
//! made through is closed (the process that made them exited, even by
//! `kill -9`: a new `bhyve` on the VM finds none of its predecessor's),
//! `VM_REINIT`, or the VM's end (an irqfd also until its eventfd is closed:
//! reaped at the next `VM_IRQFD`).

pub mod ioeventfd;
pub mod irqfd;
#[cfg(test)]
mod tests;

use crate::errno::Errno;
use crate::kernel::{Eventfd, KBox, KLock, KRwLock};
use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use ioeventfd::{Ioeventfds, Request as IoRequest};
use irqfd::{spi_bit, Irqfds, Request as IrqRequest, SpiMask};
use vmm_uapi::{VmIoeventfd, VmIrqfd};

/// An atomic set of SPIs.
struct AtomicSpis([AtomicU64; 2]);

impl AtomicSpis {
    const fn new() -> Self {
        Self([AtomicU64::new(0), AtomicU64::new(0)])
    }

    fn set(&self, m: SpiMask) {
        self.0[0].fetch_or(m as u64, Ordering::AcqRel);
        self.0[1].fetch_or((m >> 64) as u64, Ordering::AcqRel);
    }

    fn store(&self, m: SpiMask) {
        self.0[0].store(m as u64, Ordering::Release);
        self.0[1].store((m >> 64) as u64, Ordering::Release);
    }

    fn load(&self) -> SpiMask {
        self.0[0].load(Ordering::Acquire) as u128 | (self.0[1].load(Ordering::Acquire) as u128) << 64
    }

    /// Takes the set, leaving it empty (a plain load when it is empty, so
    /// the common case writes nothing).
    fn take(&self) -> SpiMask {
        let mut m = 0;
        for (i, w) in self.0.iter().enumerate() {
            if w.load(Ordering::Relaxed) != 0 {
                m |= (w.swap(0, Ordering::AcqRel) as u128) << (64 * i);
            }
        }
        m
    }
}

/// A VM's ioeventfds and irqfds.
pub struct IoFds {
    /// Looked up by vCPUs on MMIO writes (read side), changed by ioctls.
    ioevents: KRwLock<Option<KBox<Ioeventfds>>>,
    /// How many ioeventfds there are: with none the exit path takes no lock.
    nr_ioevents: AtomicUsize,
    irqfds: KLock<Option<KBox<Irqfds>>>,
    /// SPIs whose irqfd fired as an edge, not yet moved into the vGIC.
    edges: AtomicSpis,
    /// SPIs whose resampling irqfd fired (line to raise), likewise.
    levels: AtomicSpis,
    /// SPIs that have a resampling irqfd.
    resampled: AtomicSpis,
}

impl IoFds {
    /// None registered.
    pub fn new() -> Result<Self, Errno> {
        Ok(Self {
            ioevents: KRwLock::new(None)?,
            nr_ioevents: AtomicUsize::new(0),
            irqfds: KLock::new(None)?,
            edges: AtomicSpis::new(),
            levels: AtomicSpis::new(),
            resampled: AtomicSpis::new(),
        })
    }

    /// `VM_IOEVENTFD` through the VM's open file `owner`, with the VM's
    /// address-space size and what it reserves (guest RAM, the vGIC's frames).
    pub fn ioeventfd(
        &self,
        r: &VmIoeventfd,
        owner: usize,
        ipa_limit: u64,
        reserved: impl Fn(u64, u64) -> bool,
    ) -> Result<(), Errno> {
        let req = IoRequest::check(r, ipa_limit, reserved)?;
        let efd = Eventfd::get(req.fd)?;
        let mut spare = None;
        if !req.deassign && self.ioevents.read().is_none() {
            // Allocated here, where sleeping is allowed, not under the lock.
            // SAFETY: all-zero bytes are an empty table (see the type).
            spare = Some(unsafe { KBox::<Ioeventfds>::try_new_zeroed() }.inspect_err(|_| {
                // SAFETY: our reference, stored nowhere.
                unsafe { efd.put() }
            })?);
        }
        let mut t = self.ioevents.write();
        if t.is_none() {
            *t = spare.take();
        }
        let r = match t.as_mut() {
            None => Err(crate::errno::ENOENT),
            Some(t) if req.deassign => t.remove(req.key, efd),
            Some(t) => t.insert(req.key, efd, owner).map(|()| Eventfd::NONE),
        };
        self.nr_ioevents.store(t.as_ref().map_or(0, |t| t.len()), Ordering::Release);
        drop(t);
        drop(spare);
        match r {
            // Removed: its reference and ours; added: the table keeps ours.
            Ok(old) => {
                if req.deassign {
                    // SAFETY: references no table holds any more.
                    unsafe {
                        old.put();
                        efd.put();
                    }
                }
                Ok(())
            }
            Err(e) => {
                // SAFETY: ours, not stored.
                unsafe { efd.put() };
                Err(e)
            }
        }
    }

    /// The exit path: a guest write of `size` bytes of `value` to `gpa`.
    /// Signals its ioeventfd and returns true if one matches. Never sleeps.
    pub fn guest_write(&self, gpa: u64, size: u8, value: u64) -> bool {
        if self.nr_ioevents.load(Ordering::Acquire) == 0 {
            return false;
        }
        let t = self.ioevents.read();
        // Signalled under the read lock: a deassign cannot put it meanwhile.
        match t.as_ref().and_then(|t| t.lookup(gpa, size, value)) {
            Some(efd) => {
                efd.signal();
                true
            }
            None => false,
        }
    }

    /// Whether an ioeventfd's bytes meet `[addr, addr + len)`.
    pub fn ioevent_overlaps(&self, addr: u64, len: u64) -> bool {
        self.ioevents.read().as_ref().is_some_and(|t| t.overlaps(addr, len))
    }

    /// `VM_IRQFD` for the VM at `vm`, through its open file `owner`. Returns
    /// the SPIs that lost their last resampling irqfd, whose lines the
    /// caller lowers.
    pub fn irqfd(&self, vm: *const c_void, r: &VmIrqfd, owner: usize) -> Result<SpiMask, Errno> {
        let req = IrqRequest::check(r)?;
        let mut t = self.irqfds.lock();
        let table = match t.as_mut() {
            Some(table) => table,
            // SAFETY: all-zero bytes are an empty table (see the type).
            None => t.insert(unsafe { KBox::<Irqfds>::try_new_zeroed() }?),
        };
        let before = table.resampled();
        let r = if req.deassign { table.deassign(&req) } else { table.assign(vm, &req, owner) };
        let after = table.resampled();
        self.resampled.store(after);
        r.map(|()| before & !after)
    }

    /// An irqfd's eventfd was written (its hook's callback: interrupts off,
    /// a spinlock held). Only atomics; the caller kicks the vCPUs.
    pub fn fire(&self, spi: u32, level: bool) {
        if !(crate::vgic::SPI_BASE..crate::vgic::NR_IRQS).contains(&spi) {
            return;
        }
        if level {
            self.levels.set(spi_bit(spi));
        } else {
            self.edges.set(spi_bit(spi));
        }
    }

    /// The SPIs fired since the last call: (edges to latch, lines to raise).
    /// Lines only of SPIs that still have a resampling irqfd, so a deassign
    /// racing with a write never leaves a line up that nobody lowers.
    pub fn take_fired(&self) -> (SpiMask, SpiMask) {
        let levels = self.levels.take();
        (self.edges.take(), if levels == 0 { 0 } else { levels & self.resampled.load() })
    }

    /// The SPIs that have a resampling irqfd.
    pub fn resampled(&self) -> SpiMask {
        self.resampled.load()
    }

    /// The guest completed the resampled SPIs in `done`: their resample
    /// eventfds are signalled (the lines were lowered by the vGIC).
    pub fn notify_resample(&self, done: SpiMask) {
        if let Some(t) = self.irqfds.lock().as_ref() {
            t.notify_resample(done);
        }
    }

    /// Drops the registrations made through the open file `owner`, which is
    /// being closed. Returns the SPIs that lost their last resampling irqfd,
    /// whose lines the caller lowers.
    pub fn release(&self, owner: usize) -> SpiMask {
        let mut lowered = 0;
        if let Some(t) = self.irqfds.lock().as_mut() {
            let before = t.resampled();
            t.release(owner);
            let after = t.resampled();
            self.resampled.store(after);
            lowered = before & !after;
        }
        if let Some(t) = self.ioevents.write().as_mut() {
            // SAFETY: references the table gives up.
            t.drain_owner(owner, |e| unsafe { e.put() });
            self.nr_ioevents.store(t.len(), Ordering::Release);
        }
        lowered
    }

    /// Drops every registration (`VM_REINIT`, the VM's end) and what they
    /// fired. After this no irqfd callback runs or will run for the VM.
    pub fn clear(&self) {
        if let Some(t) = self.irqfds.lock().as_mut() {
            t.clear();
        }
        self.resampled.store(0);
        self.edges.store(0);
        self.levels.store(0);
        if let Some(t) = self.ioevents.write().as_mut() {
            // Putting a context never sleeps (a kfree at most), so it is
            // done under the lock.
            // SAFETY: references the table gives up.
            t.drain(|e| unsafe { e.put() });
        }
        self.nr_ioevents.store(0, Ordering::Release);
    }
}
