//! A device's interrupt, as the transport shows it: the InterruptStatus
//! bits (used buffer, configuration change), the `DEVICE_NEEDS_RESET`
//! condition, the configuration generation, and an eventfd written on every
//! signal. Who turns the eventfd into the SPI is the [`super::wiring`]'s
//! business (the kernel's irqfd, or bhyve's IRQ pump).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use virtio_bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use vmm_sys_util::eventfd::EventFd;

/// A device's interrupt state, shared by the transport (vCPU threads) and
/// the device (its I/O thread).
pub struct Interrupt {
    status: AtomicU32,
    needs_reset: AtomicBool,
    generation: AtomicU32,
    evt: EventFd,
}

impl Interrupt {
    /// A quiet interrupt with a fresh eventfd.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            status: AtomicU32::new(0),
            needs_reset: AtomicBool::new(false),
            generation: AtomicU32::new(0),
            evt: EventFd::new(libc::EFD_NONBLOCK)?,
        })
    }

    fn signal(&self, bit: u32) {
        self.status.fetch_or(bit, Ordering::SeqCst);
        // Only fails when the counter would overflow: it is then pending anyway.
        let _ = self.evt.write(1);
    }

    /// The device put buffers in a used ring.
    pub fn signal_used_queue(&self) {
        self.signal(VIRTIO_MMIO_INT_VRING);
    }

    /// The device's configuration changed: a new generation, then the
    /// interrupt.
    pub fn signal_config_change(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.signal(VIRTIO_MMIO_INT_CONFIG);
    }

    /// The driver broke the device's rules: `DEVICE_NEEDS_RESET` until a
    /// reset, announced as a configuration change (virtio 1.2, 2.1.2).
    pub fn device_broken(&self) {
        self.needs_reset.store(true, Ordering::SeqCst);
        self.signal_config_change();
    }

    /// Whether the device needs a reset.
    pub fn needs_reset(&self) -> bool {
        self.needs_reset.load(Ordering::SeqCst)
    }

    /// InterruptStatus.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// InterruptACK: the driver handled these bits.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// ConfigGeneration.
    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Device reset: no bits, no broken state, no signal left in the eventfd
    /// (the generation carries on: a driver may compare across a reset).
    pub fn reset(&self) {
        self.status.store(0, Ordering::SeqCst);
        self.needs_reset.store(false, Ordering::SeqCst);
        let _ = self.evt.read();
    }

    /// The eventfd written on every signal.
    pub fn eventfd(&self) -> &EventFd {
        &self.evt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_ack_and_reset() {
        let i = Interrupt::new().unwrap();
        assert_eq!((i.status(), i.generation(), i.needs_reset()), (0, 0, false));
        i.signal_used_queue();
        assert_eq!(i.status(), 1);
        i.signal_config_change();
        assert_eq!((i.status(), i.generation()), (3, 1));
        assert_eq!(i.eventfd().read().unwrap(), 2, "one eventfd write per signal");
        i.ack(1);
        assert_eq!(i.status(), 2);
        i.device_broken();
        assert!(i.needs_reset());
        assert_eq!((i.status(), i.generation()), (2, 2));
        i.reset();
        assert_eq!((i.status(), i.needs_reset(), i.generation()), (0, false, 2));
        assert!(i.eventfd().read().is_err(), "nothing pending after a reset");
    }
}
