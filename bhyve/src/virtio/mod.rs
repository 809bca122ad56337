//! virtio devices, written against a transport (virtio 1.2, split rings).
//!
//! ```text
//!  vCPU thread                        I/O thread (one per active device)
//!  ───────────                        ──────────────────────────────────
//!  MMIO exit ─▶ MmioTransport          Worker: epoll on the queues' notify
//!   registers, feature pages,           eventfds ─▶ QueueWork::process
//!   status, queue setup                 (blk, rng, ...) ─▶ used ring
//!   QueueNotify ─▶ notify eventfd ──▶   ─▶ Interrupt: status bit + eventfd
//!   (or the kernel's ioeventfd)                 │
//!                                                ▼
//!                       Wiring: the kernel's irqfd, or the IRQ pump thread
//!                       that pulses the transport's SPI
//! ```
//!
//! A device model implements [`VirtioDevice`]: its type, its features, its
//! configuration space, and what to do when the driver has set it up
//! ([`VirtioDevice::activate`], with the queues, guest memory and an
//! [`Interrupt`]) or resets it. It knows nothing of the transport: the MMIO
//! transport ([`mmio::MmioTransport`]) owns the registers, and a PCI one can
//! own them later for the same devices. Devices do their work on an I/O
//! thread ([`worker::Worker`]), never on a vCPU thread.
//!
//! Guest rings are walked by `virtio-queue` over `vm-memory`; every chain is
//! checked whole before a device looks at it ([`chain`]). A driver that
//! writes garbage gets its device marked `DEVICE_NEEDS_RESET`; the device
//! stops until the driver resets it.

pub mod blk;
pub mod chain;
pub mod console;
pub mod interrupt;
pub mod mmio;
pub mod net;
pub mod p9;
pub mod rng;
#[cfg(test)]
pub mod testring;
pub mod wiring;
pub mod worker;

pub use interrupt::Interrupt;

use std::sync::Arc;
use vmm_sys_util::eventfd::EventFd;
use vmmapi::GuestMemory;

/// `VIRTIO_F_VERSION_1`: the device is virtio 1.x (bit 32).
pub const F_VERSION_1: u64 = 1 << virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
/// `VIRTIO_RING_F_EVENT_IDX`: notification suppression with the rings'
/// event indexes, both ways (bit 29).
pub const F_EVENT_IDX: u64 = 1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

/// A virtqueue the driver has set up, handed to the device at activation.
pub struct ActiveQueue {
    /// The ring, checked and ready.
    pub queue: virtio_queue::Queue,
    /// Signalled when the driver notifies the queue (a QueueNotify write,
    /// or the kernel's ioeventfd for it).
    pub notify: EventFd,
}

/// What a device gets when the driver sets `DRIVER_OK`.
pub struct Activation {
    /// Guest memory, where the rings and buffers are.
    pub mem: GuestMemory,
    /// The queues the driver made ready, by index; `None` for the others.
    pub queues: Vec<Option<ActiveQueue>>,
    /// The device's interrupt.
    pub interrupt: Arc<Interrupt>,
    /// The features the driver accepted.
    pub features: u64,
}

/// Why a device could not start.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// A queue the device needs was not made ready.
    #[error("queue {0} was not set up")]
    MissingQueue(usize),
    /// The I/O thread could not be started.
    #[error("cannot start the device's I/O thread: {0}")]
    Thread(std::io::Error),
    /// What the device works on failed it: it could not be opened again,
    /// or it refused the driver's settings.
    #[error("the device's backend failed: {0}")]
    Backend(std::io::Error),
}

/// A virtio device model, apart from its transport.
pub trait VirtioDevice: Send {
    /// Its virtio device ID (2 block, 4 entropy, ...).
    fn device_type(&self) -> u32;
    /// The largest size of each of its queues (powers of two).
    fn queue_max_sizes(&self) -> &[u16];
    /// Its device-specific features. The transport adds `VERSION_1` and
    /// `RING_EVENT_IDX`, which every device here has.
    fn features(&self) -> u64;
    /// Reads its configuration space at `offset` (little-endian fields);
    /// bytes past its end read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// A driver's write to its configuration space (ignored where the
    /// device has nothing writable).
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// The driver is ready: start working on the queues.
    fn activate(&mut self, a: Activation) -> Result<(), ActivateError>;
    /// The driver resets the device: stop working (return once the I/O
    /// thread has stopped touching guest memory) and forget the queues.
    fn reset(&mut self);
}

/// Reads `data.len()` bytes of `config` at `offset`; zero past its end.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, d) in data.iter_mut().enumerate() {
        *d = usize::try_from(offset).ok().and_then(|o| config.get(o.checked_add(i)?)).copied().unwrap_or(0);
    }
}
