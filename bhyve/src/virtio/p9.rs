//! virtio-9p (9P transport, ID 9): a host directory shared with the guest,
//! in bhyve's terms (`virtio-9p,SHARENAME=PATH[,ro]`). The guest mounts it
//! by its tag, the share name: `mount -t 9p -o trans=virtio,version=9p2000.L
//! SHARENAME /mnt`.
//!
//! One queue. Each chain is one 9P request in its device-readable buffers,
//! with room for the reply in its writable ones (Linux's zero-copy requests
//! put a header first and the user's pages after it: both are one byte
//! stream here). The device's [`p9::Server`] answers it: 9P2000.L, confined
//! to the share (the `p9` crate says how). A message the server cannot make
//! sense of is the server's to answer, with Rlerror; only a chain that
//! cannot carry even an Rlerror (fewer than 11 writable bytes) breaks the
//! device, as other ring-level garbage does.
//!
//! A request is read as far as its size field says, and never more than the
//! negotiated msize (before Tversion, the server's largest): a longer one is
//! cut there, and the server answers it with EPROTO. The reply may use every
//! writable byte, and no more than the msize.
//!
//! The server's state (msize, fids) belongs to the driver's session: a
//! device reset drops it, and the next `DRIVER_OK` starts a new server on
//! the same directory, the one bhyve opened at start (through its
//! descriptor: the path is not looked up again).
//!
//! File I/O runs on the device's I/O thread and blocks it: a slow host file
//! system delays this device's requests, never a vCPU or another device.
//! With one queue served in order, nothing would be gained by more threads
//! until requests can complete out of order.

use super::chain::{read_from, write_to, Chain, QueueError};
use super::worker::{QueueWork, Worker};
use super::{read_config_bytes, ActivateError, Activation, VirtioDevice};
use ::p9::Server;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use virtio_bindings::virtio_ids::VIRTIO_ID_9P;
use vmmapi::GuestMemory;

/// Entries in the queue: Linux puts up to 128 descriptors in one request
/// (no indirect descriptors are offered), so this leaves room for others.
pub const QUEUE_SIZE: u16 = 256;
/// `VIRTIO_9P_MOUNT_TAG`: the configuration space holds the mount tag.
pub const F_MOUNT_TAG: u64 = 1 << 0;
/// The longest tag: what the configuration window of a virtio-mmio
/// transport holds after the 2-byte length.
pub const MAX_TAG_LEN: usize = 254;
const _: () = assert!(MAX_TAG_LEN as u64 + 2 == crate::layout::VIRTIO_MMIO_SIZE - super::mmio::CONFIG_OFFSET);

/// Bytes of the smallest reply, Rlerror: size[4] type[1] tag[2] ecode[4].
const RLERROR_LEN: u64 = 11;

/// The options of one share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct P9Options {
    /// The guest's name for it: the mount tag.
    pub sharename: String,
    /// The host directory.
    pub path: PathBuf,
    /// `ro`: every change is refused with EROFS.
    pub read_only: bool,
}

/// Checks that `name` can be a mount tag: not empty, at most
/// [`MAX_TAG_LEN`] bytes, no NUL (the guest reads it as a C string).
pub fn check_tag(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("the share name is empty".into())
    } else if name.len() > MAX_TAG_LEN {
        Err(format!("the share name is {} bytes long; at most {MAX_TAG_LEN} fit", name.len()))
    } else if name.contains('\0') {
        Err("the share name contains a NUL byte".into())
    } else {
        Ok(())
    }
}

/// The 9P device.
pub struct Virtio9p {
    /// The share, opened once (`O_PATH`): every session's server starts
    /// from this very directory.
    root: OwnedFd,
    read_only: bool,
    config: Vec<u8>,
    /// A server not yet used: the first is made at open, to report a share
    /// that cannot be served before the guest runs.
    fresh: Option<Server>,
    worker: Option<Worker>,
}

impl Virtio9p {
    /// Opens the share of `opts` (a directory, or an error naming why not).
    pub fn open(opts: &P9Options) -> io::Result<Self> {
        check_tag(&opts.sharename).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let root: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&opts.path)?
            .into();
        let fresh = Server::new(&fd_path(&root), opts.read_only)?;
        let tag = opts.sharename.as_bytes();
        let mut config = (tag.len() as u16).to_le_bytes().to_vec();
        config.extend_from_slice(tag);
        Ok(Self { root, read_only: opts.read_only, config, fresh: Some(fresh), worker: None })
    }

    /// The share's directory (for the sandbox, which keeps access beneath it).
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Whether the share is read-only.
    pub fn read_only(&self) -> bool {
        self.read_only
    }
}

/// The path the kernel resolves to the file `fd` holds, whatever became
/// of its name.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    Path::new("/proc/self/fd").join(fd.as_raw_fd().to_string())
}

/// What the I/O thread needs: the session's server and its buffers.
struct Work {
    server: Server,
    request: Vec<u8>,
    reply: Vec<u8>,
}

impl Work {
    fn new(server: Server) -> Self {
        Self { server, request: Vec::new(), reply: Vec::new() }
    }
}

impl QueueWork for Work {
    fn handle(&mut self, _index: usize, chain: &Chain, mem: &GuestMemory) -> Result<u32, QueueError> {
        let room = chain.writable_len();
        if room < RLERROR_LEN {
            return Err(QueueError::Malformed { head: chain.head, what: "no room for a 9P reply" });
        }
        let bound = u64::from(self.server.msize().unwrap_or(::p9::MAX_MSIZE));
        let mut size = [0u8; 4];
        let got = read_from(mem, &chain.readable, &mut size)?;
        let declared = if got == size.len() { u64::from(u32::from_le_bytes(size)) } else { got as u64 };
        let len = declared.min(chain.readable_len()).min(bound) as usize;
        self.request.resize(len, 0);
        read_from(mem, &chain.readable, &mut self.request)?;
        let max_reply = usize::try_from(room).unwrap_or(usize::MAX);
        self.server.handle(&self.request, max_reply, &mut self.reply);
        Ok(write_to(mem, &chain.writable, &self.reply)? as u32)
    }
}

impl VirtioDevice for Virtio9p {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_9P
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        F_MOUNT_TAG
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        if a.queues.first().is_none_or(|q| q.is_none()) {
            return Err(ActivateError::MissingQueue(0));
        }
        let server = match self.fresh.take() {
            Some(s) => s,
            None => Server::new(&fd_path(&self.root), self.read_only).map_err(ActivateError::Backend)?,
        };
        let w = Worker::spawn("virtio-9p".into(), Work::new(server), a.queues, a.mem, a.interrupt)
            .map_err(ActivateError::Thread)?;
        self.worker = Some(w);
        Ok(())
    }

    fn reset(&mut self) {
        // The server goes with the thread: its fids are closed.
        if let Some(w) = self.worker.take() {
            w.stop();
        }
    }
}

#[cfg(test)]
mod tests;
