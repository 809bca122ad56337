//! Descriptor chains, checked whole before a device looks at them.
//!
//! `virtio-queue`'s iterator stops quietly on a chain it cannot follow (a
//! loop, an index out of the table, more descriptors than the queue has, a
//! table outside guest memory). [`Chain::walk`] tells those apart from a
//! proper end: a chain whose last descriptor still says NEXT was cut short,
//! and that is the driver's fault. Each buffer must lie in guest memory, and
//! device-writable buffers must follow the readable ones (virtio 1.2,
//! 2.7.4.2). A chain that passes is a list of [`Segment`]s the device reads
//! and writes through `vm-memory`, which checks every access again.

use std::ops::Deref;
use virtio_queue::{desc::split::Descriptor, DescriptorChain};
use vmmapi::vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, VolatileSlice};
use vmmapi::GuestMemory;

/// Why a chain, a ring or a queue is unusable: the driver broke the rules,
/// and the device needs a reset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The chain does not end: a loop, a bad index, more descriptors than
    /// the queue, or a table outside guest memory.
    #[error("descriptor chain {head} does not end properly")]
    Unterminated {
        /// The chain's head index.
        head: u16,
    },
    /// A buffer outside guest memory.
    #[error("buffer {addr:#x}+{len:#x} of chain {head} is outside guest memory")]
    OutsideMemory {
        /// The chain's head index.
        head: u16,
        /// The buffer's address.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// A readable buffer after a writable one.
    #[error("chain {head} has a device-readable buffer after a writable one")]
    Order {
        /// The chain's head index.
        head: u16,
    },
    /// The request in the chain is too short for its kind, or has no room
    /// for its status.
    #[error("chain {head}: {what}")]
    Malformed {
        /// The chain's head index.
        head: u16,
        /// What is wrong.
        what: &'static str,
    },
    /// The rings cannot be read or written (the available index ran ahead
    /// by more than the queue size, or a ring left guest memory).
    #[error("the rings of queue {queue} are broken: {why}")]
    Ring {
        /// The queue.
        queue: usize,
        /// What `virtio-queue` said.
        why: String,
    },
}

/// A guest buffer: `len` bytes at `addr`, checked to lie in guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest physical address.
    pub addr: u64,
    /// Bytes.
    pub len: u32,
}

/// A checked chain: its head, and its readable then writable buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The head index, for the used ring.
    pub head: u16,
    /// Device-readable buffers, in order.
    pub readable: Vec<Segment>,
    /// Device-writable buffers, in order.
    pub writable: Vec<Segment>,
}

impl Chain {
    /// Walks `chain` whole and checks it (see the module's documentation).
    pub fn walk<M>(chain: DescriptorChain<M>, mem: &GuestMemory) -> Result<Chain, QueueError>
    where
        M: Deref<Target = GuestMemory>,
    {
        let head = chain.head_index();
        let mut c = Chain { head, readable: vec![], writable: vec![] };
        let mut last: Option<Descriptor> = None;
        // The iterator yields at most as many descriptors as the queue (or
        // an indirect table) has: the walk is bounded.
        for d in chain {
            let seg = Segment { addr: d.addr().0, len: d.len() };
            if !mem.check_range(GuestAddress(seg.addr), seg.len as usize) {
                return Err(QueueError::OutsideMemory { head, addr: seg.addr, len: seg.len });
            }
            if d.is_write_only() {
                c.writable.push(seg);
            } else if !c.writable.is_empty() {
                return Err(QueueError::Order { head });
            } else {
                c.readable.push(seg);
            }
            last = Some(d);
        }
        match last {
            Some(d) if !d.has_next() => Ok(c),
            _ => Err(QueueError::Unterminated { head }),
        }
    }

    /// Bytes of all readable buffers.
    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|s| s.len as u64).sum()
    }

    /// Bytes of all writable buffers.
    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|s| s.len as u64).sum()
    }
}

/// The segments covering bytes `start .. start + len` of `segs` taken as
/// one byte stream; `None` if they hold fewer bytes.
pub fn sub_range(segs: &[Segment], start: u64, len: u64) -> Option<Vec<Segment>> {
    let mut out = vec![];
    let (mut skip, mut want) = (start, len);
    for s in segs {
        if want == 0 {
            break;
        }
        let l = s.len as u64;
        if skip >= l {
            skip -= l;
            continue;
        }
        let take = (l - skip).min(want);
        out.push(Segment { addr: s.addr + skip, len: take as u32 });
        want -= take;
        skip = 0;
    }
    (want == 0).then_some(out)
}

/// Copies the bytes of `segs` (at most `buf.len()`) into `buf`; returns
/// how many.
pub fn read_from(mem: &GuestMemory, segs: &[Segment], buf: &mut [u8]) -> Result<usize, QueueError> {
    let mut n = 0;
    for s in segs {
        if n == buf.len() {
            break;
        }
        let take = (s.len as usize).min(buf.len() - n);
        mem.read_slice(&mut buf[n..n + take], GuestAddress(s.addr)).map_err(|_| QueueError::OutsideMemory {
            head: 0,
            addr: s.addr,
            len: s.len,
        })?;
        n += take;
    }
    Ok(n)
}

/// Copies `data` into `segs` (as much as they hold); returns how many bytes.
pub fn write_to(mem: &GuestMemory, segs: &[Segment], data: &[u8]) -> Result<usize, QueueError> {
    let mut n = 0;
    for s in segs {
        if n == data.len() {
            break;
        }
        let take = (s.len as usize).min(data.len() - n);
        mem.write_slice(&data[n..n + take], GuestAddress(s.addr)).map_err(|_| QueueError::OutsideMemory {
            head: 0,
            addr: s.addr,
            len: s.len,
        })?;
        n += take;
    }
    Ok(n)
}

/// The guest memory of `segs`, for the host's vectored I/O.
pub fn slices<'m>(mem: &'m GuestMemory, segs: &[Segment]) -> Result<Vec<VolatileSlice<'m, ()>>, QueueError> {
    segs.iter()
        .map(|s| {
            mem.get_slice(GuestAddress(s.addr), s.len as usize).map_err(|_| QueueError::OutsideMemory {
                head: 0,
                addr: s.addr,
                len: s.len,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
