//! Linux errno values the module returns (negated at the C boundary).

/// A positive Linux errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Operation not permitted.
pub const EPERM: Errno = Errno(1);
/// No such file or directory: no VM of that name.
pub const ENOENT: Errno = Errno(2);
/// Interrupted by a signal.
pub const EINTR: Errno = Errno(4);
/// I/O error: EL2 did not run the guest.
pub const EIO: Errno = Errno(5);
/// No such device or address: the VM was destroyed.
pub const ENXIO: Errno = Errno(6);
/// Out of memory.
pub const ENOMEM: Errno = Errno(12);
/// Bad address.
pub const EFAULT: Errno = Errno(14);
/// Device or resource busy.
pub const EBUSY: Errno = Errno(16);
/// File exists: a VM of that name exists.
pub const EEXIST: Errno = Errno(17);
/// No such device: EL2 cannot be had.
pub const ENODEV: Errno = Errno(19);
/// Invalid argument.
pub const EINVAL: Errno = Errno(22);
/// Inappropriate ioctl for device.
pub const ENOTTY: Errno = Errno(25);
/// No space left: the module's VM limit is reached.
pub const ENOSPC: Errno = Errno(28);

impl Errno {
    /// The negative return value the kernel expects.
    pub const fn to_kernel(self) -> i64 {
        -(self.0 as i64)
    }
}
