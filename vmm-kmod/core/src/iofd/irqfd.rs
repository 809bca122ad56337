//! Irqfds: eventfds whose writes raise an SPI, without a `VM_RUN` round
//! trip or an ioctl.
//!
//! A write wakes the eventfd's waiters with its lock held and interrupts
//! off, so the hook's callback cannot take the vGIC's mutex. It only sets
//! the SPI's bit in an atomic mask ([`super::IoFds`]) and kicks the vCPUs;
//! whichever takes the vGIC next (a vCPU before entering the guest or
//! deciding whether to sleep in WFI) moves the bits into the vGIC. No work
//! item is needed, so nothing is left queued when a registration or the VM
//! goes, and a write before the vGIC exists simply waits in the mask.
//!
//! The table itself changes only in ioctls, under a mutex.

use crate::errno::{Errno, EEXIST, EINVAL, ENOENT, ENOSPC};
use crate::kernel::{Eventfd, IrqfdHook};
use crate::vgic::{NR_IRQS, SPI_BASE};
use core::ffi::c_void;
use vmm_uapi::{VmIrqfd, VM_IRQFD_F_DEASSIGN, VM_IRQFD_F_RESAMPLE, VM_MAX_IRQFDS};

/// A set of SPIs, bit n for INTID 32 + n.
pub type SpiMask = u128;

/// The bit of SPI `intid` (checked by [`Request::check`]).
pub fn spi_bit(intid: u32) -> SpiMask {
    1 << (intid - SPI_BASE)
}

/// A checked `VM_IRQFD` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The eventfd's descriptor.
    pub fd: i32,
    /// The SPI.
    pub spi: u32,
    /// Remove instead of add.
    pub deassign: bool,
    /// With resampling: its descriptor.
    pub resamplefd: Option<i32>,
}

impl Request {
    /// Known flags and an SPI the vGIC has (`EINVAL` otherwise). The SPI
    /// range is fixed, so this holds before `VM_ATTACH_VGIC` too. With
    /// DEASSIGN the resample fields are ignored.
    pub fn check(r: &VmIrqfd) -> Result<Request, Errno> {
        if r.flags & !(VM_IRQFD_F_DEASSIGN | VM_IRQFD_F_RESAMPLE) != 0 || !(SPI_BASE..NR_IRQS).contains(&r.irq) {
            return Err(EINVAL);
        }
        let deassign = r.flags & VM_IRQFD_F_DEASSIGN != 0;
        let resample = !deassign && r.flags & VM_IRQFD_F_RESAMPLE != 0;
        Ok(Request { fd: r.fd, spi: r.irq, deassign, resamplefd: resample.then_some(r.resamplefd) })
    }
}

/// One registration: the hook on the eventfd (raw, owned), that eventfd
/// (the hook's reference), the SPI, the resample eventfd (owned) or none,
/// and the VM's open file it came through.
#[derive(Clone, Copy)]
struct Slot {
    hook: *mut c_void,
    efd: Eventfd,
    spi: u32,
    resample: Eventfd,
    owner: usize,
}

/// A VM's irqfds. All-zero bytes are an empty table (allocated zeroed).
pub struct Irqfds {
    n: usize,
    slots: [Slot; VM_MAX_IRQFDS],
}

// SAFETY: the raw hooks are owned by the table and usable from any thread.
unsafe impl Send for Irqfds {}

impl Irqfds {
    /// How many registrations there are (closed ones not yet reaped included).
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Adds a registration for the VM at `vm` (`fire`'s target). Closed
    /// eventfds are reaped first. `EEXIST` if the eventfd already raises
    /// an interrupt of this VM, `ENOSPC` when full; `EBADF`/`EINVAL` for
    /// descriptors that are not eventfds. Nothing is kept on error.
    pub fn assign(&mut self, vm: *const c_void, r: &Request, owner: usize) -> Result<(), Errno> {
        self.reap();
        let resample = match r.resamplefd {
            Some(fd) => Eventfd::get(fd)?,
            None => Eventfd::NONE,
        };
        let made = IrqfdHook::new(r.fd, vm, r.spi, r.resamplefd.is_some()).and_then(|(hook, efd)| {
            if self.slots[..self.n].iter().any(|s| s.efd.addr() == efd.addr()) {
                return Err(EEXIST);
            }
            if self.n == VM_MAX_IRQFDS {
                return Err(ENOSPC);
            }
            Ok((hook, efd))
        });
        let (hook, efd) = match made {
            Ok(m) => m,
            Err(e) => {
                // SAFETY: our reference, not stored anywhere.
                unsafe { resample.put() };
                return Err(e);
            }
        };
        hook.arm();
        self.slots[self.n] = Slot { hook: hook.into_raw(), efd, spi: r.spi, resample, owner };
        self.n += 1;
        Ok(())
    }

    /// Removes the registration of the eventfd of `r.fd` for `r.spi`
    /// (`ENOENT` if none; `EBADF`/`EINVAL` for a bad descriptor).
    pub fn deassign(&mut self, r: &Request) -> Result<(), Errno> {
        let efd = Eventfd::get(r.fd)?;
        let at = self.slots[..self.n].iter().position(|s| s.efd.addr() == efd.addr() && s.spi == r.spi);
        // SAFETY: the reference just taken, only used for the comparison.
        unsafe { efd.put() };
        self.remove(at.ok_or(ENOENT)?);
        self.reap();
        Ok(())
    }

    /// Frees the registrations whose eventfd was closed.
    pub fn reap(&mut self) {
        let mut i = 0;
        while i < self.n {
            // SAFETY: a live hook owned by the table.
            if unsafe { IrqfdHook::borrow_raw(self.slots[i].hook) }.is_dead() {
                self.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Frees the registrations made through the open file `owner` (it is
    /// being closed).
    pub fn release(&mut self, owner: usize) {
        let mut i = 0;
        while i < self.n {
            if self.slots[i].owner == owner {
                self.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Frees every registration.
    pub fn clear(&mut self) {
        while self.n > 0 {
            self.remove(self.n - 1);
        }
    }

    fn remove(&mut self, i: usize) {
        let s = self.slots[i];
        self.slots.copy_within(i + 1..self.n, i);
        self.n -= 1;
        self.slots[self.n] =
            Slot { hook: core::ptr::null_mut(), efd: Eventfd::NONE, spi: 0, resample: Eventfd::NONE, owner: 0 };
        // SAFETY: the table's hook, now off the table: unhooked and freed
        // (after this no callback runs or will run for it).
        drop(unsafe { IrqfdHook::from_raw(s.hook) });
        // SAFETY: the table's reference, now off the table.
        unsafe { s.resample.put() };
    }

    /// The SPIs that have a resampling registration.
    pub fn resampled(&self) -> SpiMask {
        self.slots[..self.n].iter().filter(|s| !s.resample.is_none()).fold(0, |m, s| m | spi_bit(s.spi))
    }

    /// Signals the resample eventfds of the SPIs in `done`.
    pub fn notify_resample(&self, done: SpiMask) {
        for s in self.slots[..self.n].iter().filter(|s| done & spi_bit(s.spi) != 0) {
            s.resample.signal();
        }
    }
}
