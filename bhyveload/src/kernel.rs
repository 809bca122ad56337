//! Reading the kernel file and deciding where it goes, before any VM is
//! touched: a file that cannot be loaded leaves nothing behind.

use crate::error::{io_reason, Error};
use bhyveload::image::{self, ImageError, Placement};
use std::io::Read;
use std::path::{Path, PathBuf};

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
}

/// A kernel read from its file, with its place in guest memory.
#[derive(Debug)]
pub struct LoadedKernel {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Where they go and where the vCPU starts.
    pub placement: Placement,
    /// Whether it is a Linux `Image` (which gets an initrd, a command line
    /// and a device tree) rather than a raw binary.
    pub linux: bool,
}

/// The first bytes of a gzip stream (Debian's `vmlinuz` is a gzipped `Image`).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads at most `limit` bytes of `path`, plus one to tell that there were
/// more: the file may be huge, or a device without end such as /dev/zero.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let read_err = |e: std::io::Error| Error::Read { path: path.to_path_buf(), reason: io_reason(&e) };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(read_err)?;
    Ok(bytes)
}

/// The length of a regular file of which `read` bytes were read (it may
/// have grown meanwhile); `None` for a pipe or a device.
pub fn file_len(path: &Path, read: u64) -> Option<u64> {
    std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len().max(read))
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

/// Reads `src` and places it in `ram_size` bytes of RAM at `ram_base`. A
/// gzip-compressed file is uncompressed first, as boot loaders do for
/// arm64 kernels.
pub fn read_kernel(src: &Source, ram_base: u64, ram_size: u64) -> Result<LoadedKernel, Error> {
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
    Ok(LoadedKernel { bytes, placement, linux: matches!(kind, image::Kernel::Linux(_)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bhyveload::image::{HEADER_LEN, IMAGE_MAGIC};

    const RAM: u64 = 0x4000_0000;

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
        assert_eq!(k.bytes, vec![0xaa; 100]);
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
        use std::io::Write;
        let mut img = vec![0u8; 8192];
        img[0x38..0x3c].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        img[16..24].copy_from_slice(&0x10_0000u64.to_le_bytes());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&img).unwrap();
        let f = TempFile::new("vmlinuz", &gz.finish().unwrap());
        let k = read_kernel(&Source::File(f.0.clone()), RAM, 4 << 20).unwrap();
        assert_eq!(k.bytes, img);
        assert_eq!(k.placement.load_addr, RAM);
        let e = read_kernel(&Source::File(f.0.clone()), RAM, 4096).unwrap_err();
        assert!(e.to_string().ends_with("vmlinuz' uncompresses to more than the VM's 4K of memory"), "{e}");
        let f = TempFile::new("broken.gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3]);
        let e = read_kernel(&Source::File(f.0.clone()), RAM, 4 << 20).unwrap_err();
        assert!(e.to_string().contains("broken.gz' is not a valid gzip file: "), "{e}");
    }

    #[test]
    fn bytes_from_a_disk() {
        let src = Source::Bytes { name: "disk.img partition 2:/boot/x".into(), bytes: vec![7u8; 8192] };
        let k = read_kernel(&src, RAM, 1 << 20).unwrap();
        assert_eq!((k.bytes.len(), k.linux), (8192, false));
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
}
