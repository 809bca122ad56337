//! virtio-net (network card, ID 1): a receive and a transmit queue on a tap
//! (bhyve's `virtio-net,TAP[,mac=xx:xx:xx:xx:xx:xx]`).
//!
//! Every packet carries a virtio-net header both ways, the tap's own
//! (`IFF_VNET_HDR`), so the offloads pass through: the guest's partial
//! checksums and large segments go to the tap as they are, and the tap's
//! reach the guest as far as the driver accepted them (`TUNSETOFFLOAD`
//! with the guest's `GUEST_*` features). Transmit writes each chain with
//! one `writev`. Receive reads a packet and spreads it over as many buffers
//! as it needs (`VIRTIO_NET_F_MRG_RXBUF`, `num_buffers` in its header);
//! with no room in the receive queue the packet is held and the tap is not
//! read until the driver adds buffers: nothing is dropped for want of room.
//! A packet larger than the driver's one buffer (without merged buffers) is
//! dropped and counted, as a card drops a frame it cannot hold.

pub mod tap;

use super::chain::{slices, write_to, Chain, QueueError};
use super::worker::{next_chain, ring_error, Io, QueueWork, Worker};
use super::{read_config_bytes, ActivateError, Activation, VirtioDevice, F_VERSION_1};
use std::mem::offset_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tap::NetBackend;
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::*;
use virtio_queue::QueueT;
use vmm_sys_util::epoll::EventSet;
use vmmapi::GuestMemory;

/// Entries in each queue.
pub const QUEUE_SIZE: u16 = 256;
/// The receive queue.
pub const RX: usize = 0;
/// The transmit queue.
pub const TX: usize = 1;
/// The largest packet a tap gives with every offload on, and its header.
pub const MAX_PACKET: usize = 65562;

const TAP_TOKEN: u32 = 0;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses `xx:xx:xx:xx:xx:xx`: a unicast address (multicast and
    /// broadcast cannot be a card's, nor all zeroes).
    pub fn parse(s: &str) -> Result<Mac, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || format!("'{s}' is not a MAC address (xx:xx:xx:xx:xx:xx)");
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut m = [0u8; 6];
        for (d, p) in m.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *d = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if m[0] & 1 != 0 {
            return Err(format!("{s} is a multicast address, not a card's"));
        }
        if m == [0; 6] {
            return Err(format!("{s} is not a card's address"));
        }
        Ok(Mac(m))
    }

    /// The address of the card in `slot` of VM `vm`: the same on every
    /// run, locally administered (bit 1 of the first byte) and unicast.
    pub fn derived(vm: &str, slot: u32) -> Mac {
        // FNV-1a, 64 bits: stable across builds and hosts.
        let h = vm
            .bytes()
            .chain([0])
            .chain(slot.to_le_bytes())
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3));
        let b = h.to_be_bytes();
        Mac([(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]])
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

const fn bit(b: u32) -> u64 {
    1 << b
}

/// The device features for a backend taking `offloads` (`TUN_F_*`): what
/// the guest may send (always: the tap takes partial checksums and large
/// segments), what it may receive (as far as the tap gives them), merged
/// receive buffers, the MAC and the link status.
pub fn features_for(offloads: u32) -> u64 {
    let mut f = bit(VIRTIO_NET_F_CSUM)
        | bit(VIRTIO_NET_F_HOST_TSO4)
        | bit(VIRTIO_NET_F_HOST_TSO6)
        | bit(VIRTIO_NET_F_HOST_ECN)
        | bit(VIRTIO_NET_F_HOST_UFO)
        | bit(VIRTIO_NET_F_MRG_RXBUF)
        | bit(VIRTIO_NET_F_MAC)
        | bit(VIRTIO_NET_F_STATUS);
    if offloads & libc::TUN_F_CSUM != 0 {
        f |= bit(VIRTIO_NET_F_GUEST_CSUM);
        for (tun, guest) in [
            (libc::TUN_F_TSO4, VIRTIO_NET_F_GUEST_TSO4),
            (libc::TUN_F_TSO6, VIRTIO_NET_F_GUEST_TSO6),
            (libc::TUN_F_TSO_ECN, VIRTIO_NET_F_GUEST_ECN),
            (libc::TUN_F_UFO, VIRTIO_NET_F_GUEST_UFO),
        ] {
            if offloads & tun != 0 {
                f |= bit(guest);
            }
        }
    }
    f
}

/// The `TUN_F_*` offloads for what the driver accepted: what it receives.
pub fn offloads_for(features: u64) -> u32 {
    if features & bit(VIRTIO_NET_F_GUEST_CSUM) == 0 {
        return 0;
    }
    [
        (VIRTIO_NET_F_GUEST_TSO4, libc::TUN_F_TSO4),
        (VIRTIO_NET_F_GUEST_TSO6, libc::TUN_F_TSO6),
        (VIRTIO_NET_F_GUEST_ECN, libc::TUN_F_TSO_ECN),
        (VIRTIO_NET_F_GUEST_UFO, libc::TUN_F_UFO),
    ]
    .into_iter()
    .filter(|&(g, _)| features & bit(g) != 0)
    .fold(libc::TUN_F_CSUM, |acc, (_, t)| acc | t)
}

/// The header's size for the features: 12 bytes (with `num_buffers`) for
/// virtio 1 or merged buffers, else the legacy 10.
pub fn header_len(features: u64) -> usize {
    if features & (F_VERSION_1 | bit(VIRTIO_NET_F_MRG_RXBUF)) != 0 {
        std::mem::size_of::<virtio_net_hdr_mrg_rxbuf>()
    } else {
        std::mem::size_of::<virtio_net_hdr>()
    }
}

/// Counters of a card, shared with its I/O thread.
#[derive(Debug, Default)]
pub struct NetStats {
    /// Packets given to the guest.
    pub rx_packets: AtomicU64,
    /// Packets the guest sent.
    pub tx_packets: AtomicU64,
    /// Packets dropped: too large for the guest's buffer, or refused by the tap.
    pub dropped: AtomicU64,
    /// Times the receive queue was full with a packet waiting.
    pub rx_held: AtomicU64,
}

/// The network card.
pub struct Net {
    backend: Arc<dyn NetBackend>,
    features: u64,
    config: Vec<u8>,
    stats: Arc<NetStats>,
    worker: Option<Worker>,
}

impl Net {
    /// A card with address `mac` on `backend`.
    pub fn new(backend: Arc<dyn NetBackend>, mac: Mac) -> Self {
        let features = features_for(backend.offloads());
        let mut c = vec![0u8; std::mem::size_of::<virtio_net_config>()];
        c[offset_of!(virtio_net_config, mac)..][..6].copy_from_slice(&mac.0);
        c[offset_of!(virtio_net_config, status)..][..2].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
        c[offset_of!(virtio_net_config, max_virtqueue_pairs)..][..2].copy_from_slice(&1u16.to_le_bytes());
        Self { backend, features, config: c, stats: Arc::default(), worker: None }
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<NetStats> {
        self.stats.clone()
    }
}

/// What the I/O thread needs.
struct Work {
    backend: Arc<dyn NetBackend>,
    hdr_len: usize,
    merge: bool,
    guest_csum: bool,
    /// A packet read from the tap and not yet in the guest, with its length.
    held: Option<usize>,
    /// Whether the tap is watched for packets (`None`: not yet at all).
    reading: Option<bool>,
    buf: Vec<u8>,
    stats: Arc<NetStats>,
}

/// What became of a packet offered to the receive queue.
enum Delivery {
    /// In the used ring.
    Done,
    /// Dropped: it fits no buffer the driver gives.
    Dropped,
    /// No room yet: `seen` chains from `start` are not enough.
    NoRoom {
        /// The first available index looked at.
        start: u16,
        /// Chains available past it.
        seen: u16,
    },
}

impl Work {
    /// Reads one packet from the backend into `buf`; `None` when there is
    /// none (or the backend fails: then it is no longer read).
    fn read_packet(&mut self) -> Option<usize> {
        loop {
            // SAFETY: reads at most buf.len() bytes into buf.
            let n =
                unsafe { libc::read(self.backend.fd(), self.buf.as_mut_ptr() as *mut libc::c_void, self.buf.len()) };
            if n >= 0 {
                // A packet shorter than its header cannot come from a tap.
                return (n as usize >= self.hdr_len).then_some(n as usize);
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return None;
            }
        }
    }

    /// Puts the packet in `buf[..len]` into the receive queue.
    fn deliver(&mut self, len: usize, io: &mut Io) -> Result<Delivery, QueueError> {
        let mem = io.mem;
        let Some(q) = io.queue(RX) else { return Ok(Delivery::NoRoom { start: 0, seen: 0 }) };
        let start = q.next_avail();
        let mut chains: Vec<Chain> = vec![];
        let mut room = 0u64;
        while room < len as u64 {
            match next_chain(RX, q, mem)? {
                Some(c) => {
                    room += c.writable_len();
                    chains.push(c);
                }
                None => {
                    q.set_next_avail(start);
                    return Ok(Delivery::NoRoom { start, seen: chains.len() as u16 });
                }
            }
            if !self.merge {
                break;
            }
        }
        if room < len as u64 {
            // One buffer only, and too small: the packet goes, the buffer stays.
            q.set_next_avail(start);
            return Ok(Delivery::Dropped);
        }
        if self.hdr_len >= 12 {
            self.buf[10..12].copy_from_slice(&(chains.len() as u16).to_le_bytes());
        }
        if !self.guest_csum {
            // The driver did not take checksum offload: no flags for it.
            self.buf[0] = 0;
        }
        let mut off = 0;
        for c in &chains {
            let n = write_to(mem, &c.writable, &self.buf[off..len])?;
            q.add_used(mem, c.head, n as u32).map_err(|e| ring_error(RX, e))?;
            off += n;
        }
        Ok(Delivery::Done)
    }

    /// Moves packets from the backend to the guest while both have some.
    fn receive(&mut self, io: &mut Io) -> Result<(), QueueError> {
        let mut used = false;
        loop {
            let len = match self.held.take() {
                Some(len) => len,
                None => match self.read_packet() {
                    Some(len) => len,
                    None => break,
                },
            };
            match self.deliver(len, io)? {
                Delivery::Done => {
                    used = true;
                    self.stats.rx_packets.fetch_add(1, Ordering::Relaxed);
                }
                Delivery::Dropped => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Delivery::NoRoom { start, seen } => {
                    // Ask the driver to notify when it adds a buffer past
                    // those seen; if it did meanwhile, try again at once.
                    let mem = io.mem;
                    let Some(q) = io.queue(RX) else { break };
                    q.set_next_avail(start.wrapping_add(seen));
                    let more = q.enable_notification(mem).map_err(|e| ring_error(RX, e));
                    q.set_next_avail(start);
                    if more? {
                        self.held = Some(len);
                        continue;
                    }
                    self.held = Some(len);
                    self.stats.rx_held.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        // The tap is read only while the packet before went in (an
        // epoll_ctl only when that changes).
        let reading = self.held.is_none();
        if self.reading != Some(reading) {
            let events = if reading { EventSet::IN } else { EventSet::empty() };
            if io.watch(self.backend.fd(), TAP_TOKEN, events).is_ok() {
                self.reading = Some(reading);
            }
        }
        if used {
            io.signal_used(RX)?;
        }
        Ok(())
    }
}

impl QueueWork for Work {
    /// Transmit: the chain's readable bytes, header first, in one write.
    fn handle(&mut self, _index: usize, chain: &Chain, mem: &GuestMemory) -> Result<u32, QueueError> {
        if chain.readable_len() < self.hdr_len as u64 {
            return Err(QueueError::Malformed { head: chain.head, what: "a packet shorter than its header" });
        }
        let bufs = slices(mem, &chain.readable)?;
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec { iov_base: b.ptr_guard_mut().as_ptr() as *mut libc::c_void, iov_len: b.len() })
            .collect();
        let sent = loop {
            let n = iov.len().min(libc::UIO_MAXIOV as usize) as libc::c_int;
            // SAFETY: each iovec covers a live slice of guest memory (the
            // slices outlive the call); the kernel only reads them.
            let r = unsafe { libc::writev(self.backend.fd(), iov.as_ptr(), n) };
            if r >= 0 {
                break true;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break false;
            }
        };
        if sent {
            self.stats.tx_packets.fetch_add(1, Ordering::Relaxed);
        } else {
            // The tap refused it (down, or its queue full): a lost frame.
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(0)
    }

    fn start(&mut self, io: &mut Io) -> Result<(), QueueError> {
        io.service(self, TX)?;
        self.receive(io)
    }

    fn notified(&mut self, index: usize, io: &mut Io) -> Result<(), QueueError> {
        match index {
            RX => self.receive(io),
            _ => io.service(self, index),
        }
    }

    fn ready(&mut self, _token: u32, _events: EventSet, io: &mut Io) -> Result<(), QueueError> {
        self.receive(io)
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        for q in [RX, TX] {
            if a.queues.get(q).is_none_or(|q| q.is_none()) {
                return Err(ActivateError::MissingQueue(q));
            }
        }
        let hdr_len = header_len(a.features);
        self.backend.set_header_len(hdr_len).map_err(ActivateError::Backend)?;
        self.backend.set_offload(offloads_for(a.features)).map_err(ActivateError::Backend)?;
        let work = Work {
            backend: self.backend.clone(),
            hdr_len,
            merge: a.features & bit(VIRTIO_NET_F_MRG_RXBUF) != 0,
            guest_csum: a.features & bit(VIRTIO_NET_F_GUEST_CSUM) != 0,
            held: None,
            reading: None,
            buf: vec![0; MAX_PACKET],
            stats: self.stats.clone(),
        };
        let w =
            Worker::spawn("virtio-net".into(), work, a.queues, a.mem, a.interrupt).map_err(ActivateError::Thread)?;
        self.worker = Some(w);
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(w) = self.worker.take() {
            w.stop();
        }
        // Nothing offloaded for a driver that has not said what it takes.
        let _ = self.backend.set_offload(0);
    }
}

#[cfg(test)]
mod tests;
