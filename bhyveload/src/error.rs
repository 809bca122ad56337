//! bhyveload's one error type. Each message is one line, printed after
//! `bhyveload: `, and names the file or VM concerned.

use crate::image::ImageError;
use std::path::PathBuf;
use vmmapi::size::format_size;

/// Why loading failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel file could not be read.
    #[error("cannot read '{}': {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error in words.
        reason: String,
    },
    /// The kernel file cannot be loaded into this VM.
    #[error("'{}' {source}", path.display())]
    Kernel {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ImageError,
    },
    /// A pipe or device that gives more bytes than the memory holds.
    #[error("'{}' holds more than the VM's {} of memory", path.display(), format_size(*ram))]
    StreamTooLarge {
        /// The file.
        path: PathBuf,
        /// The VM's memory.
        ram: u64,
    },
    /// A gzip-compressed kernel that does not uncompress.
    #[error("'{}' is not a valid gzip file: {reason}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's complaint.
        reason: String,
    },
    /// A gzip-compressed kernel larger than the memory once uncompressed.
    #[error("'{}' uncompresses to more than the VM's {} of memory", path.display(), format_size(*ram))]
    GzipTooLarge {
        /// The file.
        path: PathBuf,
        /// The VM's memory.
        ram: u64,
    },
    /// The initrd does not fit.
    #[error("initrd '{}' {source}", path.display())]
    Initrd {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ImageError,
    },
    /// An initrd given with a kernel that is not a Linux Image.
    #[error("-i needs a Linux Image kernel; '{}' is not one", path.display())]
    InitrdWithoutLinux {
        /// The kernel file.
        path: PathBuf,
    },
    /// A guest directory's files could not be read.
    #[error("guest directory: {reason}")]
    GuestDir {
        /// The error in words, with the file.
        reason: String,
    },
    /// -i or -e without any kernel to go with them.
    #[error(
        "-i and -e need a kernel: give -k FILE, or put an Image in {}",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" or ")
    )]
    NoKernel {
        /// Where bhyveload looked.
        dirs: Vec<PathBuf>,
    },
    /// The command line does not fit Linux's limit.
    #[error("-e: the kernel command line is {len} bytes; Linux takes at most {}", vmmapi::boot::CMDLINE_MAX)]
    CmdlineTooLong {
        /// Its length.
        len: usize,
    },
    /// The VM exists with memory of another size.
    #[error("VM '{name}' exists with {} of memory, not {}", format_size(*have), format_size(*want))]
    MemoryMismatch {
        /// The VM.
        name: String,
        /// Its memory.
        have: u64,
        /// What `-m` asked for.
        want: u64,
    },
    /// Guest memory does not cover where the kernel goes (the mapping is
    /// smaller than the VM's memory size said).
    #[error("VM '{name}': cannot write {} at {gpa:#x}: not in the mapped guest memory", format_size(*len))]
    GuestWrite {
        /// The VM.
        name: String,
        /// Where.
        gpa: u64,
        /// How much.
        len: u64,
    },
    /// A libvmmapi call failed; its message names the VM and the errno.
    #[error("{0}")]
    Vmm(#[from] vmmapi::Error),
    /// `-d`: the disk's boot configuration could not be followed; the
    /// message names the disk and what is missing.
    #[error("{0}")]
    Disk(Box<bootdisk::Error>),
}

impl From<bootdisk::Error> for Error {
    fn from(e: bootdisk::Error) -> Self {
        // Boxed: it names disk, file and entry, and would make every
        // result of this crate as large.
        Error::Disk(Box::new(e))
    }
}

/// An I/O error in words, without Rust's "(os error N)".
pub fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => vmmapi::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let e = Error::Read {
            path: "prog.bin".into(),
            reason: io_reason(&std::io::Error::from_raw_os_error(libc::ENOENT)),
        };
        assert_eq!(e.to_string(), "cannot read 'prog.bin': No such file or directory");
        let e = Error::MemoryMismatch { name: "g".into(), have: 128 << 20, want: 64 << 20 };
        assert_eq!(e.to_string(), "VM 'g' exists with 128M of memory, not 64M");
        let e = Error::Kernel { path: "Image".into(), source: ImageError::BigEndian };
        assert_eq!(e.to_string(), "'Image' is a big-endian arm64 Image; only little-endian kernels can run here");
        let e =
            Error::Kernel { path: "prog.bin".into(), source: ImageError::TooLarge { len: 130 << 20, ram: 64 << 20 } };
        assert_eq!(e.to_string(), "'prog.bin' is 130M but the VM has 64M of memory");
    }
}
