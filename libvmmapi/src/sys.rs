//! The raw ioctl call and errno plumbing.

use nix::errno::Errno;
use std::fs::File;
use std::os::fd::AsRawFd;

/// Issues `cmd` on `file` with `arg` as its in/out argument.
pub(crate) fn ioctl<T>(file: &File, cmd: u32, arg: &mut T) -> Result<(), Errno> {
    debug_assert_eq!(vmm_uapi::ioctl::size(cmd), std::mem::size_of::<T>());
    // SAFETY: `arg` is a live, exclusively borrowed T of the size `cmd`
    // encodes; the kernel reads and writes at most that many bytes.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), cmd as _, arg as *mut T) };
    Errno::result(r).map(drop)
}

pub(crate) fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Issues `cmd`, which takes no argument.
pub(crate) fn ioctl_none(file: &File, cmd: u32) -> Result<(), Errno> {
    // SAFETY: the command carries no argument; the kernel reads nothing.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), cmd as _, 0) };
    Errno::result(r).map(drop)
}
