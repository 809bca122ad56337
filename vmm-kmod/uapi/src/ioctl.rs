//! Linux `_IOC` ioctl number encoding (asm-generic, as on arm64).

const NRSHIFT: u32 = 0;
const TYPESHIFT: u32 = 8;
const SIZESHIFT: u32 = 16;
const DIRSHIFT: u32 = 30;
const SIZEMASK: u32 = (1 << 14) - 1;

/// No data transfer.
pub const IOC_NONE: u32 = 0;
/// Userspace writes, the kernel reads.
pub const IOC_WRITE: u32 = 1;
/// The kernel writes, userspace reads.
pub const IOC_READ: u32 = 2;

/// `_IOC(dir, ty, nr, size)`. Panics at compile time if `size` does not fit.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    assert!(size as u32 <= SIZEMASK);
    (dir << DIRSHIFT) | ((ty as u32) << TYPESHIFT) | ((nr as u32) << NRSHIFT) | ((size as u32) << SIZESHIFT)
}

/// `_IOWR(ty, nr, size)`.
pub const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, size)
}

/// `_IOR(ty, nr, size)`.
pub const fn ior(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_READ, ty, nr, size)
}

/// `_IOW(ty, nr, size)`.
pub const fn iow(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_WRITE, ty, nr, size)
}

/// The direction bits of `cmd`.
pub const fn dir(cmd: u32) -> u32 {
    cmd >> DIRSHIFT
}

/// The argument size encoded in `cmd`.
pub const fn size(cmd: u32) -> usize {
    ((cmd >> SIZESHIFT) & SIZEMASK) as usize
}

/// The type (group) byte of `cmd`.
pub const fn ty(cmd: u32) -> u8 {
    (cmd >> TYPESHIFT) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = iowr(b'v', 7, 24);
        assert_eq!(dir(c), IOC_READ | IOC_WRITE);
        assert_eq!(size(c), 24);
        assert_eq!(ty(c), b'v');
        assert_eq!(c & 0xff, 7);
        assert_eq!(iow(b'v', 1, 8) >> 30, IOC_WRITE);
        assert_eq!(ioc(IOC_NONE, b'v', 1, 0), 0x7601);
    }
}
