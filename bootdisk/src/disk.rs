//! Where the bytes come from: a disk read by offset, and a window on it for
//! one partition. Reading only: nothing here can write, so a disk that is
//! in use elsewhere (or an image of one) is never changed.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::rc::Rc;

/// A disk read by offset. `read_at` fills the whole buffer or fails.
pub trait ReadAt {
    /// The disk's size in bytes.
    fn size(&self) -> u64;
    /// Reads `buf.len()` bytes at `offset`; an error if they are not all there.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// Bytes in memory (tests, or a small image read whole).
impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.as_slice().read_at(offset, buf)
    }
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).ok().filter(|&s| s <= self.len());
        match start.and_then(|s| self.get(s..s.checked_add(buf.len())?)) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(past_end(offset, buf.len(), self.len() as u64)),
        }
    }
}

fn past_end(offset: u64, len: usize, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("{len} bytes at offset {offset} are past the end ({size} bytes)"),
    )
}

/// A file or block device, read with `pread` (no shared seek position).
#[derive(Debug)]
pub struct FileDisk {
    file: std::fs::File,
    size: u64,
}

impl FileDisk {
    /// Opens `path` read-only. The size comes from seeking to the end,
    /// which (unlike the metadata) works for block devices too.
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let size = file.seek(SeekFrom::End(0))?;
        Ok(FileDisk { file, size })
    }
}

impl ReadAt for FileDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.size) {
            return Err(past_end(offset, buf.len(), self.size));
        }
        self.file.read_exact_at(buf, offset)
    }
}

/// Any `Read + Seek` as a disk (one reader, so reads take turns).
#[derive(Debug)]
pub struct SeekDisk<R> {
    inner: RefCell<R>,
    size: u64,
}

impl<R: Read + Seek> SeekDisk<R> {
    /// Wraps `inner`, finding its size by seeking to its end.
    pub fn new(mut inner: R) -> io::Result<Self> {
        let size = inner.seek(SeekFrom::End(0))?;
        Ok(SeekDisk { inner: RefCell::new(inner), size })
    }
}

impl<R: Read + Seek> ReadAt for SeekDisk<R> {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.size) {
            return Err(past_end(offset, buf.len(), self.size));
        }
        let mut r = self.inner.borrow_mut();
        r.seek(SeekFrom::Start(offset))?;
        r.read_exact(buf)
    }
}

/// The bytes of one partition (or the whole disk): reads are confined to
/// it. It is the file systems' device: `ext4_view::Ext4Read` by offset,
/// and `Read + Seek` (with a `Write` that always fails) for `fatfs`.
///
/// Reads draw on a budget shared by the window's clones: twice the
/// window's size and 64 MiB more, far above what finding and reading a
/// kernel takes, so that a corrupt file system whose chains loop fails
/// instead of reading forever.
#[derive(Clone)]
pub struct Window {
    disk: Rc<dyn ReadAt>,
    start: u64,
    len: u64,
    pos: u64,
    budget: Rc<Cell<u64>>,
}

/// The budget's fixed part (see [`Window`]).
const BUDGET_EXTRA: u64 = 64 << 20;

impl Window {
    /// `len` bytes of `disk` from `start`, cut to what the disk has.
    pub fn new(disk: Rc<dyn ReadAt>, start: u64, len: u64) -> Self {
        let len = len.min(disk.size().saturating_sub(start));
        let budget = Rc::new(Cell::new(len.saturating_mul(2).saturating_add(BUDGET_EXTRA)));
        Window { disk, start, len, pos: 0, budget }
    }

    /// The window's size.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Reads `buf.len()` bytes at `offset` within the window.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let Some(left) = self.budget.get().checked_sub(buf.len() as u64) else {
            return Err(io::Error::other("read more than twice the partition: its file system loops"));
        };
        self.budget.set(left);
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.len => self.disk.read_at(self.start + offset, buf),
            _ => Err(past_end(offset, buf.len(), self.len)),
        }
    }
}

impl ext4_view::Ext4Read for Window {
    fn read(&mut self, start_byte: u64, dst: &mut [u8]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Window::read_at(self, start_byte, dst).map_err(|e| e.to_string().into())
    }
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        Window::read_at(self, self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let base = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = base.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// `fatfs` wants a writable device; this one refuses every write, so the
/// disk is never changed even if the library tried.
impl Write for Window {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "bootdisk reads disks only"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_confine_reads() {
        let disk: Rc<dyn ReadAt> = Rc::new((0u8..=255).collect::<Vec<u8>>());
        let mut w = Window::new(disk.clone(), 16, 32);
        let mut b = [0u8; 4];
        w.read_at(0, &mut b).unwrap();
        assert_eq!(b, [16, 17, 18, 19]);
        assert!(w.read_at(30, &mut b).is_err(), "past the window");
        assert!(w.read_at(u64::MAX, &mut b).is_err(), "no overflow");
        w.seek(SeekFrom::End(-2)).unwrap();
        assert_eq!(Read::read(&mut w, &mut b).unwrap(), 2);
        assert_eq!(&b[..2], &[46, 47]);
        assert_eq!(Read::read(&mut w, &mut b).unwrap(), 0);
        assert!(w.seek(SeekFrom::Current(-100)).is_err());
        assert!(w.write(b"x").is_err(), "never writes");
        assert_eq!(Window::new(disk.clone(), 250, 100).len(), 6, "cut to the disk");
        let w = Window::new(disk, 0, 16);
        assert_eq!(w.budget.get(), 32 + BUDGET_EXTRA);
        w.clone().budget.set(40);
        let mut big = vec![0u8; 16];
        let reads = (0..10).take_while(|_| w.read_at(0, &mut big).is_ok()).count();
        assert_eq!(reads, 2, "the budget, shared by clones, ends reading");
    }

    #[test]
    fn seek_disk_reads_by_offset() {
        let d = SeekDisk::new(io::Cursor::new(vec![1u8, 2, 3, 4])).unwrap();
        let mut b = [0u8; 2];
        d.read_at(2, &mut b).unwrap();
        assert_eq!((d.size(), b), (4, [3, 4]));
        assert!(d.read_at(3, &mut b).is_err());
    }
}
