//! A driver's side of one split virtqueue in test memory, for the unit
//! tests of chains, devices and the transport.

use vmmapi::vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmmapi::GuestMemory;

/// Where test memory starts.
pub const BASE: u64 = 0x4000_0000;
/// Bytes of test memory.
pub const LEN: usize = 0x10_0000;
/// Where buffers go: well above the rings.
pub const DATA: u64 = BASE + 0x1_0000;
/// VIRTQ_DESC_F_NEXT and _WRITE.
pub const NEXT: u16 = 1;
/// A device-writable buffer.
pub const WRITE: u16 = 2;

/// One queue's rings, written as a driver would.
pub struct TestRing {
    /// The memory the rings and buffers are in.
    pub mem: GuestMemory,
    /// Queue size.
    pub size: u16,
    /// Descriptor table, available ring, used ring.
    pub desc: u64,
    /// Available ring.
    pub avail: u64,
    /// Used ring.
    pub used: u64,
    next_desc: u16,
    avail_idx: u16,
}

impl TestRing {
    /// A queue of `size` entries at the start of fresh memory.
    pub fn new(size: u16) -> Self {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(BASE), LEN)]).unwrap();
        Self { mem, size, desc: BASE, avail: BASE + 0x4000, used: BASE + 0x8000, next_desc: 0, avail_idx: 0 }
    }

    /// Another queue of `size` entries in the same memory, its rings at
    /// `BASE + offset` (keep it clear of the buffers the test uses).
    pub fn sibling(&self, size: u16, offset: u64) -> Self {
        let b = BASE + offset;
        Self { mem: self.mem.clone(), size, desc: b, avail: b + 0x4000, used: b + 0x8000, next_desc: 0, avail_idx: 0 }
    }

    /// The device's view: a ready queue over these rings.
    pub fn queue(&self, event_idx: bool) -> virtio_queue::Queue {
        use virtio_queue::QueueT;
        let mut q = virtio_queue::Queue::new(self.size).unwrap();
        q.try_set_desc_table_address(GuestAddress(self.desc)).unwrap();
        q.try_set_avail_ring_address(GuestAddress(self.avail)).unwrap();
        q.try_set_used_ring_address(GuestAddress(self.used)).unwrap();
        q.set_event_idx(event_idx);
        q.set_ready(true);
        q
    }

    /// Writes descriptor `i`.
    pub fn set_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let a = GuestAddress(self.desc + 16 * i as u64);
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem.write_slice(&d, a).unwrap();
    }

    /// Makes a chain of `bufs` (address, length, device-writable) from the
    /// next free descriptors and returns its head (not yet published).
    pub fn chain(&mut self, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (k, &(addr, len, w)) in bufs.iter().enumerate() {
            let i = (head + k as u16) % self.size;
            let last = k + 1 == bufs.len();
            let flags = if w { WRITE } else { 0 } | if last { 0 } else { NEXT };
            self.set_desc(i, addr, len, flags, (i + 1) % self.size);
        }
        self.next_desc = (head + bufs.len() as u16) % self.size;
        head
    }

    /// Puts `head` in the available ring and moves its index on.
    pub fn publish(&mut self, head: u16) {
        let slot = self.avail + 4 + 2 * (self.avail_idx % self.size) as u64;
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.set_avail_idx(self.avail_idx);
    }

    /// Writes the available ring's index as it is (garbage allowed).
    pub fn set_avail_idx(&self, idx: u16) {
        self.mem.write_obj(idx, GuestAddress(self.avail + 2)).unwrap();
    }

    /// The used ring's index.
    pub fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(self.used + 2)).unwrap()
    }

    /// Used element `i`: (id, len).
    pub fn used_elem(&self, i: u16) -> (u32, u32) {
        let a = self.used + 4 + 8 * (i % self.size) as u64;
        (self.mem.read_obj(GuestAddress(a)).unwrap(), self.mem.read_obj(GuestAddress(a + 4)).unwrap())
    }

    /// Writes `data` at `addr`.
    pub fn put(&self, addr: u64, data: &[u8]) {
        self.mem.write_slice(data, GuestAddress(addr)).unwrap();
    }

    /// Reads `len` bytes at `addr`.
    pub fn get(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}
