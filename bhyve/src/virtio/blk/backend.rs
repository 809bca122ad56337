//! Where a virtio-blk disk's bytes live: a raw image file or a host block
//! device ([`FileBackend`]), or, in tests, memory ([`MemBackend`]).
//! Transfers go straight between the file and guest memory (`preadv` /
//! `pwritev` on the guest's buffers), one system call per request where
//! the kernel moves it all.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use vmmapi::vm_memory::VolatileSlice;

/// A disk's storage.
pub trait Backend: Send + Sync {
    /// Its size in bytes.
    fn size(&self) -> u64;
    /// Fills `bufs`, in order, from offset `off`; all of them or an error.
    fn read_at(&self, off: u64, bufs: &[VolatileSlice<()>]) -> io::Result<()>;
    /// Writes `bufs`, in order, at offset `off`; all of them or an error.
    fn write_at(&self, off: u64, bufs: &[VolatileSlice<()>]) -> io::Result<()>;
    /// Makes every completed write durable.
    fn flush(&self) -> io::Result<()>;
    /// Forgets `len` bytes at `off` (they may read as zero afterwards).
    fn discard(&self, off: u64, len: u64) -> io::Result<()>;
    /// Makes `len` bytes at `off` read as zero, giving the space back if
    /// `unmap`.
    fn write_zeroes(&self, off: u64, len: u64, unmap: bool) -> io::Result<()>;
}

/// How to open a disk (bhyve's options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// `ro`: read-only.
    pub read_only: bool,
    /// `nocache`: `O_DIRECT`, around the host's page cache.
    pub direct_io: bool,
    /// `direct`: `O_SYNC`, every write durable when it completes.
    pub sync: bool,
}

/// A raw image file or a host block device.
pub struct FileBackend {
    file: File,
    size: u64,
    block_device: bool,
}

// From <linux/fs.h>: _IOR(0x12, 114, size_t), _IO(0x12, 119), _IO(0x12, 127).
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
const BLKDISCARD: libc::c_ulong = 0x1277;
const BLKZEROOUT: libc::c_ulong = 0x127f;

impl FileBackend {
    /// Opens `path` as `flags` say.
    pub fn open(path: &Path, flags: OpenFlags) -> io::Result<Self> {
        let mut custom = 0;
        if flags.direct_io {
            custom |= libc::O_DIRECT;
        }
        if flags.sync {
            custom |= libc::O_SYNC;
        }
        let file = OpenOptions::new().read(true).write(!flags.read_only).custom_flags(custom).open(path)?;
        let meta = file.metadata()?;
        let block_device = meta.file_type().is_block_device();
        let size = if block_device {
            let mut size = 0u64;
            // SAFETY: BLKGETSIZE64 writes one u64 through the pointer.
            if unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, &mut size) } < 0 {
                return Err(io::Error::last_os_error());
            }
            size
        } else if meta.file_type().is_file() {
            meta.len()
        } else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file or a block device"));
        };
        Ok(Self { file, size, block_device })
    }

    /// `preadv`/`pwritev` until every byte of `bufs` moved.
    fn transfer(&self, mut off: u64, bufs: &[VolatileSlice<()>], write: bool) -> io::Result<()> {
        let mut iov: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec { iov_base: b.ptr_guard_mut().as_ptr() as *mut libc::c_void, iov_len: b.len() })
            .collect();
        let mut first = 0;
        while first < iov.len() {
            let part = &iov[first..iov.len().min(first + libc::UIO_MAXIOV as usize)];
            let fd = self.file.as_raw_fd();
            // SAFETY: each iovec covers a live slice of guest memory (the
            // slices outlive the call); the kernel reads or writes only them.
            let n = unsafe {
                if write {
                    libc::pwritev(fd, part.as_ptr(), part.len() as i32, off as libc::off_t)
                } else {
                    libc::preadv(fd, part.as_ptr(), part.len() as i32, off as libc::off_t)
                }
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            off += n as u64;
            let mut n = n as usize;
            while n > 0 && first < iov.len() {
                let v = &mut iov[first];
                let take = n.min(v.iov_len);
                // SAFETY: stays within the iovec's buffer.
                v.iov_base = unsafe { (v.iov_base as *mut u8).add(take) } as *mut libc::c_void;
                v.iov_len -= take;
                n -= take;
                if v.iov_len == 0 {
                    first += 1;
                }
            }
        }
        Ok(())
    }

    fn fallocate(&self, mode: i32, off: u64, len: u64) -> io::Result<()> {
        // SAFETY: plain system call on our descriptor.
        if unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off as libc::off_t, len as libc::off_t) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn range_ioctl(&self, req: libc::c_ulong, off: u64, len: u64) -> io::Result<()> {
        let range = [off, len];
        // SAFETY: the ioctl reads two u64s through the pointer.
        if unsafe { libc::ioctl(self.file.as_raw_fd(), req as _, range.as_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes zeroes the slow way, for file systems without ZERO_RANGE.
    fn write_zero_bytes(&self, off: u64, len: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let zeroes = vec![0u8; 64 << 10];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeroes.len() as u64) as usize;
            self.file.write_all_at(&zeroes[..n], off + done)?;
            done += n as u64;
        }
        Ok(())
    }
}

impl Backend for FileBackend {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, off: u64, bufs: &[VolatileSlice<()>]) -> io::Result<()> {
        self.transfer(off, bufs, false)
    }

    fn write_at(&self, off: u64, bufs: &[VolatileSlice<()>]) -> io::Result<()> {
        self.transfer(off, bufs, true)
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn discard(&self, off: u64, len: u64) -> io::Result<()> {
        if self.block_device {
            self.range_ioctl(BLKDISCARD, off, len)
        } else {
            self.fallocate(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off, len)
        }
    }

    fn write_zeroes(&self, off: u64, len: u64, unmap: bool) -> io::Result<()> {
        if self.block_device {
            return self.range_ioctl(BLKZEROOUT, off, len);
        }
        let mode = if unmap { libc::FALLOC_FL_PUNCH_HOLE } else { libc::FALLOC_FL_ZERO_RANGE };
        match self.fallocate(mode | libc::FALLOC_FL_KEEP_SIZE, off, len) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => self.write_zero_bytes(off, len),
            r => r,
        }
    }
}

/// A disk in memory, for tests; `fail` makes every operation fail with EIO.
pub struct MemBackend {
    /// The disk's bytes.
    pub bytes: Mutex<Vec<u8>>,
    /// Fail every operation (a host I/O error).
    pub fail: bool,
    /// Flushes done.
    pub flushes: Mutex<u32>,
}

impl MemBackend {
    /// `size` zero bytes.
    pub fn new(size: usize) -> Self {
        Self { bytes: Mutex::new(vec![0; size]), fail: false, flushes: Mutex::new(0) }
    }

    fn check(&self) -> io::Result<()> {
        if self.fail {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }

    fn range(&self, off: u64, len: u64) -> io::Result<std::ops::Range<usize>> {
        self.check()?;
        let end = off.checked_add(len).filter(|&e| e <= self.size()).ok_or(io::ErrorKind::UnexpectedEof)?;
        Ok(off as usize..end as usize)
    }
}

impl Backend for MemBackend {
    fn size(&self) -> u64 {
        self.bytes.lock().unwrap().len() as u64
    }

    fn read_at(&self, mut off: u64, bufs: &[VolatileSlice<()>]) -> io::Result<()> {
        for b in bufs {
            let r = self.range(off, b.len() as u64)?;
            b.copy_from(&self.bytes.lock().unwrap()[r]);
            off += b.len() as u64;
        }
        Ok(())
    }

    fn write_at(&self, mut off: u64, bufs: &[VolatileSlice<()>]) -> io::Result<()> {
        for b in bufs {
            let r = self.range(off, b.len() as u64)?;
            b.copy_to(&mut self.bytes.lock().unwrap()[r]);
            off += b.len() as u64;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.check()?;
        *self.flushes.lock().unwrap() += 1;
        Ok(())
    }

    fn discard(&self, off: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(off, len, true)
    }

    fn write_zeroes(&self, off: u64, len: u64, _unmap: bool) -> io::Result<()> {
        let r = self.range(off, len)?;
        self.bytes.lock().unwrap()[r].fill(0);
        Ok(())
    }
}
