//! Reading the kernel and the initrd, and putting them into guest memory.
//!
//! Everything that can be checked without the VM is checked first (the file
//! opens, its header, its length against the memory), so that a file that
//! cannot be loaded leaves nothing behind. The bytes themselves are then
//! read once, straight into guest memory ([`Payload::write_to`]): a regular
//! file by `read(2)` into the VM's mapping, a gzip-compressed one
//! uncompressed into it through a small buffer. Only bytes that come from
//! elsewhere (a disk's file system by `-d`, a pipe or a device, whose length
//! is known only once read) are held in this process first.
//!
//! Loading a 27 MB `Image` used to read it into a growing buffer and copy
//! that into guest memory: two copies, and every page of the buffer faulted
//! in as well as every page of the guest's. One `read` into guest memory
//! does the work once.

use crate::error::{io_reason, Error};
use crate::image::{self, ImageError, Placement, HEADER_LEN};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use vmmapi::vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryError, GuestMemoryMmap};

/// Where a kernel or initrd comes from: a file, or bytes already read
/// (from a disk's file system by `-d`), with a name for messages.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file (or device, or pipe) of the host.
    File(PathBuf),
    /// Bytes read elsewhere.
    Bytes {
        /// What to call them in messages ("disk.img partition 2:/boot/vmlinuz").
        name: PathBuf,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

impl Source {
    /// The file's path, or the bytes' name.
    pub fn name(&self) -> &Path {
        match self {
            Source::File(p) => p,
            Source::Bytes { name, .. } => name,
        }
    }

    /// At most `limit` bytes, plus one to tell that there were more.
    pub fn read(&self, limit: u64) -> Result<Vec<u8>, Error> {
        match self {
            Source::File(p) => read_limited(p, limit),
            Source::Bytes { bytes, .. } => {
                let n = bytes.len().min(usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX));
                Ok(bytes[..n].to_vec())
            }
        }
    }

    /// The full length, when more than `read` bytes were read: a regular
    /// file's or the bytes'; `None` for a pipe or a device.
    pub fn len(&self, read: u64) -> Option<u64> {
        match self {
            Source::File(p) => file_len(p, read),
            Source::Bytes { bytes, .. } => Some(bytes.len() as u64),
        }
    }

    /// Opens it to be loaded as it is (an initrd): a regular file stays a
    /// file, read when written; anything else is read now, at most `limit`
    /// bytes plus one (so a [`Payload::len`] above `limit` says "too large").
    pub fn open(&self, limit: u64) -> Result<Payload, Error> {
        if let Source::File(p) = self {
            if let Some((file, len)) = open_regular(p)? {
                return Ok(Payload { name: p.clone(), content: Content::File { file, len } });
            }
        }
        Ok(Payload { name: self.name().to_path_buf(), content: Content::Bytes(self.read(limit)?) })
    }
}

/// Where a [`Payload`]'s bytes come from when it is written.
#[derive(Debug)]
pub enum Content {
    /// Bytes already in this process.
    Bytes(Vec<u8>),
    /// A regular file of `len` bytes, read straight into guest memory.
    File {
        /// The open file.
        file: File,
        /// Its length when opened.
        len: u64,
    },
    /// A gzip-compressed regular file whose trailer says that it
    /// uncompresses to `len` bytes, uncompressed into guest memory.
    Gzip {
        /// The open file.
        file: File,
        /// The uncompressed length.
        len: u64,
    },
}

/// A kernel's or initrd's bytes, checked and ready to be put into guest memory.
#[derive(Debug)]
pub struct Payload {
    /// The file's path, or the bytes' name, for messages.
    pub name: PathBuf,
    /// The bytes, or where they come from.
    pub content: Content,
}

/// Bytes uncompressed at a time before they are copied into guest memory.
const GZIP_CHUNK: usize = 256 << 10;

impl Payload {
    /// How many bytes go into guest memory.
    pub fn len(&self) -> u64 {
        match &self.content {
            Content::Bytes(b) => b.len() as u64,
            Content::File { len, .. } | Content::Gzip { len, .. } => *len,
        }
    }

    /// Whether there is nothing to load.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts the bytes into `mem` at `gpa`; `vm` names the VM in messages.
    /// A file that fails to read now (an I/O error, a damaged gzip stream,
    /// a file cut short meanwhile) has left part of itself there.
    pub fn write_to(&self, mem: &GuestMemoryMmap, gpa: u64, vm: &str) -> Result<(), Error> {
        let len = self.len();
        let outside = || Error::GuestWrite { name: vm.to_string(), gpa, len };
        let size = usize::try_from(len).map_err(|_| outside())?;
        if !GuestMemoryBackend::check_range(mem, GuestAddress(gpa), size) {
            return Err(outside());
        }
        let read_err = |e: &std::io::Error| Error::Read { path: self.name.clone(), reason: io_reason(e) };
        match &self.content {
            Content::Bytes(b) => mem.write_slice(b, GuestAddress(gpa)).map_err(|_| outside()),
            Content::File { file, len } => {
                let mut f = file;
                f.seek(SeekFrom::Start(0)).map_err(|e| read_err(&e))?;
                // read(2) straight into guest memory, as often as it takes
                // (it may return less than asked, from a large file or a
                // network file system).
                let mut done = 0u64;
                while done < *len {
                    let at = GuestAddress(gpa + done);
                    let n = mem.read_volatile_from(at, &mut f, (*len - done) as usize).map_err(|e| match e {
                        GuestMemoryError::IOError(io) => read_err(&io),
                        _ => outside(),
                    })?;
                    if n == 0 {
                        return Err(Error::Read {
                            path: self.name.clone(),
                            reason: format!("it ended after {done} of its {len} bytes (it changed while loading)"),
                        });
                    }
                    done += n as u64;
                }
                Ok(())
            }
            Content::Gzip { file, len } => {
                let mut f = file;
                f.seek(SeekFrom::Start(0)).map_err(|e| read_err(&e))?;
                let gzip_err = |reason: String| Error::Gzip { path: self.name.clone(), reason };
                let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(f));
                let mut chunk = vec![0u8; GZIP_CHUNK.min(*len as usize + 1)];
                let mut at = 0u64;
                loop {
                    let n = match gz.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(gzip_err(e.to_string())),
                    };
                    if at + n as u64 > *len {
                        return Err(gzip_err(format!("it uncompresses to more than the {len} bytes its trailer says")));
                    }
                    mem.write_slice(&chunk[..n], GuestAddress(gpa + at)).map_err(|_| outside())?;
                    at += n as u64;
                }
                if at != *len {
                    return Err(gzip_err(format!("it uncompresses to {at} bytes, not the {len} its trailer says")));
                }
                Ok(())
            }
        }
    }
}

/// A kernel opened and placed; its bytes are not in guest memory yet.
#[derive(Debug)]
pub struct KernelFile {
    /// Its bytes, uncompressed when written.
    pub payload: Payload,
    /// Where they go and where the vCPU starts.
    pub placement: Placement,
    /// Whether it is a Linux `Image` (which gets an initrd, a command line
    /// and a device tree) rather than a raw binary.
    pub linux: bool,
}

/// The first bytes of a gzip stream (Debian's `vmlinuz` is a gzipped `Image`
/// on some flavours).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The shortest gzip file: a 10-byte header, an empty deflate block, an
/// 8-byte trailer.
const GZIP_MIN: u64 = 20;

/// Reads at most `limit` bytes of `path`, plus one to tell that there were
/// more: the file may be huge, or a device without end such as /dev/zero.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let read_err = |e: std::io::Error| Error::Read { path: path.to_path_buf(), reason: io_reason(&e) };
    let file = File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(read_err)?;
    Ok(bytes)
}

/// The length of a regular file of which `read` bytes were read (it may
/// have grown meanwhile); `None` for a pipe or a device.
pub fn file_len(path: &Path, read: u64) -> Option<u64> {
    std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len().max(read))
}

/// `path` opened with its length, if it is a regular file; `None` for a
/// pipe or a device, which are read whole instead.
fn open_regular(path: &Path) -> Result<Option<(File, u64)>, Error> {
    let read_err = |e: std::io::Error| Error::Read { path: path.to_path_buf(), reason: io_reason(&e) };
    let file = File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    Ok(meta.is_file().then_some((file, meta.len())))
}

/// The error for a file of which more than `ram` bytes were read: a regular
/// file says how long it is; a pipe or device only that it holds more.
fn too_large(src: &Source, read: u64, ram: u64) -> Error {
    let path = src.name().to_path_buf();
    match src.len(read) {
        Some(len) => Error::Kernel { path, source: ImageError::TooLarge { len, ram } },
        None => Error::StreamTooLarge { path, ram },
    }
}

/// Opens `src` and places it in `ram_size` bytes of RAM at `ram_base`. A
/// gzip-compressed file is uncompressed when written, as boot loaders do
/// for arm64 kernels; here only its first bytes are, for the header.
pub fn read_kernel(src: &Source, ram_base: u64, ram_size: u64) -> Result<KernelFile, Error> {
    let path = src.name();
    let regular = match src {
        Source::File(p) => open_regular(p)?,
        Source::Bytes { .. } => None,
    };
    let Some((file, len)) = regular else {
        return kernel_in_memory(src, ram_base, ram_size);
    };
    if len > ram_size {
        return Err(too_large(src, len, ram_size));
    }
    let mut head = [0u8; HEADER_LEN];
    let n = read_head(&file, &mut head).map_err(|e| Error::Read { path: path.to_path_buf(), reason: io_reason(&e) })?;
    let (content, head, len) = if head[..n].starts_with(&GZIP_MAGIC) {
        let gzip_err = |reason: String| Error::Gzip { path: path.to_path_buf(), reason };
        let mut uncompressed = Vec::with_capacity(HEADER_LEN);
        flate2::read::GzDecoder::new(&file)
            .take(HEADER_LEN as u64)
            .read_to_end(&mut uncompressed)
            .map_err(|e| gzip_err(e.to_string()))?;
        if len < GZIP_MIN {
            return Err(gzip_err(format!("{len} bytes is too short for one")));
        }
        // ISIZE: the uncompressed length (mod 2^32), checked again by the
        // decoder and by Payload::write_to.
        let mut isize = [0u8; 4];
        file.read_exact_at(&mut isize, len - 4).map_err(|e| gzip_err(e.to_string()))?;
        let isize = u32::from_le_bytes(isize) as u64;
        if isize > ram_size {
            return Err(Error::GzipTooLarge { path: path.to_path_buf(), ram: ram_size });
        }
        (Content::Gzip { file, len: isize }, uncompressed, isize)
    } else {
        (Content::File { file, len }, head[..n].to_vec(), len)
    };
    let kind = image::identify(&head);
    let placement = image::place(kind, len, ram_base, ram_size)
        .map_err(|source| Error::Kernel { path: path.to_path_buf(), source })?;
    Ok(KernelFile {
        payload: Payload { name: path.to_path_buf(), content },
        placement,
        linux: matches!(kind, image::Kernel::Linux(_)),
    })
}

/// Up to `buf.len()` bytes from the start of `file`; fewer only at its end.
fn read_head(file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// [`read_kernel`] for bytes that must be read whole first: a disk's file,
/// a pipe, a device.
fn kernel_in_memory(src: &Source, ram_base: u64, ram_size: u64) -> Result<KernelFile, Error> {
    let path = src.name();
    let mut bytes = src.read(ram_size)?;
    if bytes.len() as u64 > ram_size {
        return Err(too_large(src, bytes.len() as u64, ram_size));
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .take(ram_size.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| Error::Gzip { path: path.to_path_buf(), reason: e.to_string() })?;
        if out.len() as u64 > ram_size {
            return Err(Error::GzipTooLarge { path: path.to_path_buf(), ram: ram_size });
        }
        bytes = out;
    }
    let len = bytes.len() as u64;
    let kind = image::identify(&bytes);
    let placement = image::place(kind, len, ram_base, ram_size)
        .map_err(|source| Error::Kernel { path: path.to_path_buf(), source })?;
    Ok(KernelFile {
        payload: Payload { name: path.to_path_buf(), content: Content::Bytes(bytes) },
        placement,
        linux: matches!(kind, image::Kernel::Linux(_)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::IMAGE_MAGIC;

    const RAM: u64 = 0x4000_0000;

    /// `k` written into fresh guest memory of `ram` bytes, read back.
    fn loaded(k: &KernelFile, ram: u64) -> Vec<u8> {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM), ram as usize)]).unwrap();
        k.payload.write_to(&mem, k.placement.load_addr, "t").unwrap();
        let mut out = vec![0u8; k.payload.len() as usize];
        mem.read_slice(&mut out, GuestAddress(k.placement.load_addr)).unwrap();
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// Bytes that do not repeat soon, so that they compress poorly.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn file(p: &str) -> Source {
        Source::File(PathBuf::from(p))
    }

    /// A file in a fresh directory under the system's temporary directory.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> Self {
            let dir = std::env::temp_dir().join(format!("bhyveload-test-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(name);
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn missing_file_is_named() {
        let e = read_kernel(&file("/nonexistent/prog.bin"), RAM, 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "cannot read '/nonexistent/prog.bin': No such file or directory");
    }

    #[test]
    fn raw_binary_at_ram_start() {
        let f = TempFile::new("prog.bin", &[0xaa; 100]);
        let k = read_kernel(&Source::File(f.0.clone()), RAM, 1 << 20).unwrap();
        assert!(matches!(k.payload.content, Content::File { len: 100, .. }), "read when written");
        assert_eq!(loaded(&k, 1 << 20), vec![0xaa; 100]);
        assert_eq!((k.placement.load_addr, k.placement.entry), (RAM, RAM));
    }

    #[test]
    fn too_large_names_both_sizes() {
        let f = TempFile::new("big.bin", &vec![1u8; 8192]);
        let e = read_kernel(&Source::File(f.0.clone()), RAM, 4096).unwrap_err();
        assert!(e.to_string().ends_with("big.bin' is 8K but the VM has 4K of memory"), "{e}");
    }

    #[test]
    fn linux_image_at_text_offset() {
        let mut img = vec![0u8; 4096];
        img[8..16].copy_from_slice(&0x8_0000u64.to_le_bytes());
        img[16..24].copy_from_slice(&0x10_0000u64.to_le_bytes());
        img[0x38..0x3c].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        assert!(img.len() >= HEADER_LEN);
        let f = TempFile::new("Image", &img);
        let k = read_kernel(&Source::File(f.0.clone()), RAM, 4 << 20).unwrap();
        assert_eq!(k.placement.load_addr, RAM + 0x8_0000);
        assert_eq!(k.placement.span, 0x10_0000);
        let e = read_kernel(&Source::File(f.0.clone()), RAM, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("needing 1M at offset 0x80000"), "{e}");
    }

    #[test]
    fn file_lengths_come_from_the_file() {
        let f = TempFile::new("initrd", &vec![1u8; 8192]);
        assert_eq!(read_limited(&f.0, 4096).unwrap().len(), 4097, "one more than asked: there is more");
        assert_eq!(file_len(&f.0, 4097), Some(8192));
        assert_eq!(file_len(Path::new("/dev/zero"), 4097), None);
    }

    #[test]
    fn endless_devices_are_not_read_to_the_end() {
        let e = read_kernel(&file("/dev/zero"), RAM, 4096).unwrap_err();
        assert_eq!(e.to_string(), "'/dev/zero' holds more than the VM's 4K of memory");
    }

    #[test]
    fn gzipped_image_is_uncompressed() {
        // Mostly zeros, which compress well, so that the file fits in 8K.
        let mut img = vec![0u8; GZIP_CHUNK * 2 + 4321];
        img[1000..2000].copy_from_slice(&noise(1000));
        img[GZIP_CHUNK * 2..GZIP_CHUNK * 2 + 1000].copy_from_slice(&noise(1000));
        img[0x38..0x3c].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        img[16..24].copy_from_slice(&0x10_0000u64.to_le_bytes());
        let f = TempFile::new("vmlinuz", &gzip(&img));
        let k = read_kernel(&Source::File(f.0.clone()), RAM, 4 << 20).unwrap();
        assert!(matches!(k.payload.content, Content::Gzip { .. }));
        assert_eq!(k.payload.len(), img.len() as u64, "from the trailer");
        assert_eq!(loaded(&k, 4 << 20), img, "in several chunks");
        assert_eq!(k.placement.load_addr, RAM);
        let e = read_kernel(&Source::File(f.0.clone()), RAM, 8192).unwrap_err();
        assert!(e.to_string().ends_with("vmlinuz' uncompresses to more than the VM's 8K of memory"), "{e}");
        let f = TempFile::new("broken.gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3]);
        let e = read_kernel(&Source::File(f.0.clone()), RAM, 4 << 20).unwrap_err();
        assert!(e.to_string().contains("broken.gz' is not a valid gzip file: "), "{e}");
    }

    #[test]
    fn bytes_from_a_disk() {
        let src = Source::Bytes { name: "disk.img partition 2:/boot/x".into(), bytes: vec![7u8; 8192] };
        let k = read_kernel(&src, RAM, 1 << 20).unwrap();
        assert_eq!((k.payload.len(), k.linux), (8192, false));
        assert_eq!(loaded(&k, 1 << 20), vec![7u8; 8192]);
        let e = read_kernel(&src, RAM, 4096).unwrap_err();
        assert_eq!(e.to_string(), "'disk.img partition 2:/boot/x' is 8K but the VM has 4K of memory");
        assert_eq!(src.read(10).unwrap().len(), 11, "one more than asked");
    }

    #[test]
    fn empty_file() {
        let f = TempFile::new("empty", b"");
        let e = read_kernel(&Source::File(f.0.clone()), RAM, 4096).unwrap_err();
        assert!(e.to_string().ends_with("empty' is empty"), "{e}");
    }

    #[test]
    fn a_damaged_gzip_stream_is_found_when_written() {
        let img = noise(100_000);
        let mut gz = gzip(&img);
        let mid = gz.len() / 2;
        gz[mid] ^= 0x55;
        let f = TempFile::new("damaged.gz", &gz);
        let k = read_kernel(&Source::File(f.0.clone()), RAM, 1 << 20).unwrap();
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM), 1 << 20)]).unwrap();
        let e = k.payload.write_to(&mem, RAM, "t").unwrap_err();
        assert!(e.to_string().contains("damaged.gz' is not a valid gzip file: "), "{e}");
    }

    #[test]
    fn a_gzip_trailer_that_lies_is_caught() {
        let img = noise(10_000);
        for isize in [9_000u32, 11_000] {
            let mut gz = gzip(&img);
            let n = gz.len();
            gz[n - 4..].copy_from_slice(&isize.to_le_bytes());
            let f = TempFile::new("liar.gz", &gz);
            let k = read_kernel(&Source::File(f.0.clone()), RAM, 1 << 20).unwrap();
            assert_eq!(k.payload.len(), isize as u64);
            let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM), 1 << 20)]).unwrap();
            let e = k.payload.write_to(&mem, RAM, "t").unwrap_err();
            assert!(e.to_string().contains("liar.gz' is not a valid gzip file: "), "{isize}: {e}");
        }
        let f = TempFile::new("short.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0]);
        let e = read_kernel(&Source::File(f.0.clone()), RAM, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("short.gz' is not a valid gzip file: "), "{e}");
    }

    #[test]
    fn a_file_cut_short_after_opening_says_so() {
        let f = TempFile::new("shrinks", &[5u8; 10_000]);
        let k = read_kernel(&Source::File(f.0.clone()), RAM, 1 << 20).unwrap();
        std::fs::write(&f.0, [5u8; 100]).unwrap();
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM), 1 << 20)]).unwrap();
        let e = k.payload.write_to(&mem, RAM, "t").unwrap_err();
        assert!(e.to_string().starts_with("cannot read '") && e.to_string().contains("shrinks'"), "{e}");
    }

    #[test]
    fn writes_stay_inside_guest_memory() {
        let p = Payload { name: "x".into(), content: Content::Bytes(vec![1; 8192]) };
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM), 1 << 20)]).unwrap();
        let e = p.write_to(&mem, RAM + (1 << 20) - 4096, "g").unwrap_err();
        assert_eq!(e.to_string(), "VM 'g': cannot write 8K at 0x400ff000: not in the mapped guest memory");
        assert!(p.write_to(&mem, RAM - 4096, "g").is_err());
        assert!(p.write_to(&mem, RAM + (1 << 20) - 8192, "g").is_ok());
    }

    #[test]
    fn initrds_are_opened_not_read() {
        let f = TempFile::new("initrd.gz", &[9u8; 5000]);
        let p = Source::File(f.0.clone()).open(1 << 20).unwrap();
        assert!(matches!(p.content, Content::File { len: 5000, .. }), "not uncompressed: the kernel does that");
        let p = file("/dev/zero").open(4096).unwrap();
        assert_eq!(p.len(), 4097, "a device is read, one byte more than the limit");
        let p = Source::Bytes { name: "d".into(), bytes: vec![1; 10] }.open(4096).unwrap();
        assert_eq!(p.len(), 10);
        let e = file("/nonexistent/initrd").open(4096).unwrap_err();
        assert_eq!(e.to_string(), "cannot read '/nonexistent/initrd': No such file or directory");
    }
}
