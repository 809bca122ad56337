//! virtio-blk (block device, ID 2): one queue of requests on a raw image
//! file or a host block device, in bhyve's terms (`virtio-blk,PATH[,ro]
//! [,nocache][,direct][,nodelete][,sectorsize=L[/P]][,ser=SERIAL]`).
//!
//! A request is a 16-byte header (type, reserved, sector in 512-byte
//! units), its data, and a status byte in the last writable byte. Reads,
//! writes, flush (`fdatasync`: a write is durable once a later flush
//! completes, and only then), discard (punched holes, or `BLKDISCARD`), write
//! zeroes and get-id are served; a read-only disk refuses writes with
//! IOERR, and a host I/O error reaches the guest as IOERR. A chain with no
//! room for its header or status marks the device `DEVICE_NEEDS_RESET`: it
//! cannot even be answered.

pub mod backend;

use super::chain::{read_from, slices, sub_range, write_to, Chain, QueueError, Segment};
use super::worker::{QueueWork, Worker};
use super::{read_config_bytes, ActivateError, Activation, VirtioDevice};
use backend::Backend;
use std::mem::offset_of;
use std::path::Path;
use std::sync::Arc;
use virtio_bindings::virtio_blk::*;
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use vmmapi::GuestMemory;

/// Entries in the queue.
pub const QUEUE_SIZE: u16 = 256;
/// Bytes of a sector, the unit of every position and count.
pub const SECTOR: u64 = 512;
/// Bytes of the ID a get-id request returns.
pub const ID_BYTES: usize = VIRTIO_BLK_ID_BYTES as usize;
/// Most segments in one discard or write-zeroes request.
pub const MAX_RANGE_SEGS: u32 = 32;
/// Most sectors in one discard or write-zeroes segment.
pub const MAX_RANGE_SECTORS: u32 = 0x40_0000;

const HEADER: u64 = 16;
const RANGE_SEG: u64 = 16;

/// A disk's logical and physical sector sizes (`sectorsize=L[/P]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectorSize {
    /// What the guest addresses: `blk_size`.
    pub logical: u32,
    /// What the storage writes at once: `physical_block_exp`.
    pub physical: u32,
}

impl Default for SectorSize {
    fn default() -> Self {
        Self { logical: 512, physical: 512 }
    }
}

impl SectorSize {
    /// Parses `L` or `L/P`: powers of two from 512 to 64 KiB, P at least L.
    pub fn parse(s: &str) -> Result<Self, String> {
        let one = |v: &str| -> Result<u32, String> {
            let n: u32 = v.parse().map_err(|_| format!("'{v}' is not a number"))?;
            if !n.is_power_of_two() || !(512..=65536).contains(&n) {
                return Err(format!("{n} is not a power of two from 512 to 65536"));
            }
            Ok(n)
        };
        let (l, p) = match s.split_once('/') {
            Some((l, p)) => (one(l)?, one(p)?),
            None => (one(s)?, one(s)?),
        };
        if p < l {
            return Err(format!("the physical size {p} is smaller than the logical {l}"));
        }
        Ok(Self { logical: l, physical: p })
    }
}

/// The options of one disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkOptions {
    /// The image file or block device.
    pub path: std::path::PathBuf,
    /// `ro`.
    pub read_only: bool,
    /// `nocache`: O_DIRECT.
    pub nocache: bool,
    /// `direct`: O_SYNC.
    pub direct: bool,
    /// `nodelete`: no discard.
    pub nodelete: bool,
    /// `sectorsize=`.
    pub sectorsize: SectorSize,
    /// `ser=`: the ID get-id returns; derived from the path by default.
    pub serial: Option<String>,
}

/// The default serial: `BHYVE-XXXX-XXXX-XXXX` from a hash of the path (as
/// bhyve derives it), so a disk keeps its ID from run to run.
pub fn default_serial(path: &Path) -> String {
    // FNV-1a, 64 bits: stable across builds and hosts.
    let h = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3));
    let w = |i: u32| (h >> (16 * i)) as u16;
    format!("BHYVE-{:04X}-{:04X}-{:04X}", w(2), w(1), w(0))
}

/// The block device.
pub struct Blk {
    backend: Arc<dyn Backend>,
    features: u64,
    config: Vec<u8>,
    id: [u8; ID_BYTES],
    may_unmap: bool,
    worker: Option<Worker>,
}

impl Blk {
    /// A disk on `backend` with `opts` (its path only names it: the backend
    /// is open already).
    pub fn new(backend: Arc<dyn Backend>, opts: &BlkOptions) -> Self {
        let bit = |b: u32| 1u64 << b;
        let mut features = bit(VIRTIO_BLK_F_SEG_MAX)
            | bit(VIRTIO_BLK_F_BLK_SIZE)
            | bit(VIRTIO_BLK_F_FLUSH)
            | bit(VIRTIO_BLK_F_TOPOLOGY);
        if opts.read_only {
            features |= bit(VIRTIO_BLK_F_RO);
        } else {
            features |= bit(VIRTIO_BLK_F_WRITE_ZEROES);
            if !opts.nodelete {
                features |= bit(VIRTIO_BLK_F_DISCARD);
            }
        }
        let may_unmap = !opts.read_only && !opts.nodelete;
        let ss = opts.sectorsize;
        let mut c = vec![0u8; std::mem::size_of::<virtio_blk_config>()];
        let mut put = |off: usize, bytes: &[u8]| c[off..off + bytes.len()].copy_from_slice(bytes);
        put(offset_of!(virtio_blk_config, capacity), &(backend.size() / SECTOR).to_le_bytes());
        put(offset_of!(virtio_blk_config, seg_max), &(QUEUE_SIZE as u32 - 2).to_le_bytes());
        put(offset_of!(virtio_blk_config, blk_size), &ss.logical.to_le_bytes());
        put(offset_of!(virtio_blk_config, physical_block_exp), &[(ss.physical / ss.logical).trailing_zeros() as u8]);
        put(offset_of!(virtio_blk_config, min_io_size), &((ss.physical / ss.logical) as u16).to_le_bytes());
        put(offset_of!(virtio_blk_config, num_queues), &1u16.to_le_bytes());
        put(offset_of!(virtio_blk_config, max_discard_sectors), &MAX_RANGE_SECTORS.to_le_bytes());
        put(offset_of!(virtio_blk_config, max_discard_seg), &MAX_RANGE_SEGS.to_le_bytes());
        put(offset_of!(virtio_blk_config, discard_sector_alignment), &(ss.logical / SECTOR as u32).to_le_bytes());
        put(offset_of!(virtio_blk_config, max_write_zeroes_sectors), &MAX_RANGE_SECTORS.to_le_bytes());
        put(offset_of!(virtio_blk_config, max_write_zeroes_seg), &MAX_RANGE_SEGS.to_le_bytes());
        put(offset_of!(virtio_blk_config, write_zeroes_may_unmap), &[may_unmap as u8]);
        let serial = opts.serial.clone().unwrap_or_else(|| default_serial(&opts.path));
        let mut id = [0u8; ID_BYTES];
        let s = serial.as_bytes();
        id[..s.len().min(ID_BYTES)].copy_from_slice(&s[..s.len().min(ID_BYTES)]);
        Self { backend, features, config: c, id, may_unmap, worker: None }
    }
}

/// What the I/O thread needs.
struct Work {
    backend: Arc<dyn Backend>,
    read_only: bool,
    discard: bool,
    write_zeroes: bool,
    may_unmap: bool,
    id: [u8; ID_BYTES],
}

/// A status byte, and the bytes written before it.
type Outcome = (u8, u32);

const OK: u8 = VIRTIO_BLK_S_OK as u8;
const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
const UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

impl Work {
    /// The byte range of `len` bytes at `sector`, if the disk has it.
    fn range(&self, sector: u64, len: u64) -> Option<u64> {
        let off = sector.checked_mul(SECTOR)?;
        (off.checked_add(len)? <= self.backend.size()).then_some(off)
    }

    fn transfer(&self, mem: &GuestMemory, sector: u64, data: &[Segment], write: bool) -> Result<Outcome, QueueError> {
        let len: u64 = data.iter().map(|s| s.len as u64).sum();
        let Some(off) = self.range(sector, len).filter(|_| len.is_multiple_of(SECTOR)) else { return Ok((IOERR, 0)) };
        let bufs = slices(mem, data)?;
        let r = if write { self.backend.write_at(off, &bufs) } else { self.backend.read_at(off, &bufs) };
        Ok(match r {
            Ok(()) if write => (OK, 0),
            Ok(()) => (OK, len as u32),
            Err(_) => (IOERR, 0),
        })
    }

    /// Discard or write zeroes: a list of {sector, sectors, flags} segments.
    fn ranges(&self, mem: &GuestMemory, data: &[Segment], zeroes: bool) -> Result<Outcome, QueueError> {
        let len: u64 = data.iter().map(|s| s.len as u64).sum();
        if len == 0 || !len.is_multiple_of(RANGE_SEG) || len / RANGE_SEG > MAX_RANGE_SEGS as u64 {
            return Ok((UNSUPP, 0));
        }
        let mut segs = vec![0u8; len as usize];
        read_from(mem, data, &mut segs)?;
        for s in segs.chunks_exact(RANGE_SEG as usize) {
            let sector = u64::from_le_bytes(s[0..8].try_into().unwrap_or_default());
            let count = u32::from_le_bytes(s[8..12].try_into().unwrap_or_default());
            let flags = u32::from_le_bytes(s[12..16].try_into().unwrap_or_default());
            let unmap = flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0;
            // Discard has no flags; write zeroes only unmap.
            if flags & !VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0 || (unmap && !zeroes) {
                return Ok((UNSUPP, 0));
            }
            let bytes = count as u64 * SECTOR;
            let Some(off) = self.range(sector, bytes).filter(|_| count <= MAX_RANGE_SECTORS) else {
                return Ok((IOERR, 0));
            };
            let r = if zeroes {
                self.backend.write_zeroes(off, bytes, unmap && self.may_unmap)
            } else {
                self.backend.discard(off, bytes)
            };
            if r.is_err() {
                return Ok((IOERR, 0));
            }
        }
        Ok((OK, 0))
    }
}

impl QueueWork for Work {
    fn handle(&mut self, _index: usize, chain: &Chain, mem: &GuestMemory) -> Result<u32, QueueError> {
        let head = chain.head;
        let malformed = |what| QueueError::Malformed { head, what };
        let wlen = chain.writable_len();
        let rlen = chain.readable_len();
        let status = sub_range(&chain.writable, wlen.checked_sub(1).ok_or(malformed("no status byte"))?, 1)
            .ok_or(malformed("no status byte"))?;
        let out = sub_range(&chain.writable, 0, wlen - 1).ok_or(malformed("no status byte"))?;
        let mut hdr = [0u8; HEADER as usize];
        if rlen < HEADER || read_from(mem, &chain.readable, &mut hdr)? < HEADER as usize {
            return Err(malformed("a request header shorter than 16 bytes"));
        }
        let data_in = sub_range(&chain.readable, HEADER, rlen - HEADER).ok_or(malformed("a bad header"))?;
        let kind = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or_default());
        let (st, written) = match kind {
            VIRTIO_BLK_T_IN => self.transfer(mem, sector, &out, false)?,
            VIRTIO_BLK_T_OUT if self.read_only => (IOERR, 0),
            VIRTIO_BLK_T_OUT => self.transfer(mem, sector, &data_in, true)?,
            VIRTIO_BLK_T_FLUSH if self.read_only => (OK, 0),
            VIRTIO_BLK_T_FLUSH => (if self.backend.flush().is_ok() { OK } else { IOERR }, 0),
            VIRTIO_BLK_T_GET_ID => (OK, write_to(mem, &out, &self.id)? as u32),
            VIRTIO_BLK_T_DISCARD if self.discard => self.ranges(mem, &data_in, false)?,
            VIRTIO_BLK_T_WRITE_ZEROES if self.write_zeroes => self.ranges(mem, &data_in, true)?,
            _ => (UNSUPP, 0),
        };
        write_to(mem, &status, &[st])?;
        Ok(written + 1)
    }
}

impl VirtioDevice for Blk {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        if a.queues.first().is_none_or(|q| q.is_none()) {
            return Err(ActivateError::MissingQueue(0));
        }
        let has = |b: u32| a.features & (1u64 << b) != 0;
        let work = Work {
            backend: self.backend.clone(),
            read_only: self.features & (1 << VIRTIO_BLK_F_RO) != 0,
            discard: has(VIRTIO_BLK_F_DISCARD),
            write_zeroes: has(VIRTIO_BLK_F_WRITE_ZEROES),
            may_unmap: self.may_unmap,
            id: self.id,
        };
        let w =
            Worker::spawn("virtio-blk".into(), work, a.queues, a.mem, a.interrupt).map_err(ActivateError::Thread)?;
        self.worker = Some(w);
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(w) = self.worker.take() {
            w.stop();
        }
    }
}

#[cfg(test)]
mod tests;
