//! What a network card sends through: a Linux tap opened from
//! `/dev/net/tun` with a virtio-net header on every packet
//! (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`), or, for the tests, anything else
//! that carries one packet per read and write ([`NetBackend`]).
//!
//! A tap that does not exist is created, brought up, and lives as long as
//! bhyve's descriptor: the kernel removes it when bhyve ends, however it
//! ends. One that exists (made with `ip tuntap add ... mode tap`) is
//! attached to and left as it was.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// The `TUN_F_*` offloads bhyve asks a tap for.
pub const ALL_OFFLOADS: u32 =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN | libc::TUN_F_UFO;

/// A packet pipe with virtio-net headers: each read gives one packet with
/// its header, each write takes one.
pub trait NetBackend: Send + Sync {
    /// The descriptor to read, write and poll (non-blocking).
    fn fd(&self) -> RawFd;
    /// The `TUN_F_*` offloads it accepts.
    fn offloads(&self) -> u32;
    /// Which offloaded packets it may give: `TUNSETOFFLOAD`.
    fn set_offload(&self, flags: u32) -> io::Result<()>;
    /// The size of the header before each packet: `TUNSETVNETHDRSZ`.
    fn set_header_len(&self, len: usize) -> io::Result<()>;
}

/// Why a tap cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name is not an interface name.
    #[error("'{0}' is not an interface name ({1})")]
    BadName(String, &'static str),
    /// A step of opening it failed.
    #[error("cannot open tap '{name}': {what}: {}", words(err))]
    Open {
        /// The tap.
        name: String,
        /// Which step.
        what: &'static str,
        /// Why.
        err: io::Error,
    },
}

/// An I/O error in words, without Rust's "(os error N)".
fn words(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// Checks a Linux interface name: 1 to 15 bytes, not `.` or `..`, without
/// `/`, `:`, `%` (a pattern for the kernel to fill) or white space.
pub fn check_name(name: &str) -> Result<(), TapError> {
    let bad = |why| Err(TapError::BadName(name.to_string(), why));
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return bad("1 to 15 characters");
    }
    if name == "." || name == ".." {
        return bad("not . or ..");
    }
    if name.bytes().any(|b| b == b'/' || b == b':' || b == b'%' || b.is_ascii_whitespace() || b.is_ascii_control()) {
        return bad("no '/', ':', '%' or white space");
    }
    Ok(())
}

/// An open tap.
pub struct Tap {
    file: File,
    name: String,
    created: bool,
    offloads: u32,
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr
}

impl Tap {
    /// Opens tap `name`, creating it (up, and gone when bhyve ends) if it
    /// does not exist. Nothing is left behind when this fails.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        check_name(name)?;
        let err = |what, err| TapError::Open { name: name.to_string(), what, err };
        let existed = std::path::Path::new("/sys/class/net").join(name).exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| err("/dev/net/tun", e))?;
        let fd = file.as_raw_fd();
        let mut features: libc::c_uint = 0;
        // SAFETY: the ioctl writes one unsigned int through the pointer.
        if unsafe { libc::ioctl(fd, libc::TUNGETFEATURES as _, &mut features) } < 0 {
            return Err(err("TUNGETFEATURES", io::Error::last_os_error()));
        }
        let want = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_uint;
        if features & want != want {
            return Err(err("the tun driver", io::Error::from_raw_os_error(libc::EOPNOTSUPP)));
        }
        let mut ifr = ifreq(name);
        ifr.ifr_ifru.ifru_flags = want as libc::c_short;
        // SAFETY: the ioctl reads and writes one ifreq through the pointer.
        if unsafe { libc::ioctl(fd, libc::TUNSETIFF as _, &mut ifr) } < 0 {
            let e = io::Error::last_os_error();
            let what = match e.raw_os_error() {
                Some(libc::EINVAL) if existed => "it exists and is not a tap (or not one with these flags)",
                Some(libc::EBUSY) => "another process has it open",
                _ => "TUNSETIFF",
            };
            return Err(err(what, e));
        }
        let mut tap = Tap { file, name: name.to_string(), created: !existed, offloads: 0 };
        tap.offloads = tap.probe_offloads();
        tap.set_offload(0).map_err(|e| err("TUNSETOFFLOAD", e))?;
        if tap.created {
            tap.bring_up().map_err(|e| err("bringing it up", e))?;
        }
        Ok(tap)
    }

    /// The most of [`ALL_OFFLOADS`] the tap takes.
    fn probe_offloads(&self) -> u32 {
        let tries = [ALL_OFFLOADS, ALL_OFFLOADS & !libc::TUN_F_UFO, libc::TUN_F_CSUM];
        tries.into_iter().find(|&f| self.set_offload(f).is_ok()).unwrap_or(0)
    }

    fn bring_up(&self) -> io::Result<()> {
        // SAFETY: a plain socket call; the descriptor is owned below.
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `s` is a new descriptor nobody else owns.
        let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(s) };
        let mut ifr = ifreq(&self.name);
        // SAFETY: the ioctls read and write one ifreq through the pointer.
        unsafe {
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) < 0 {
                return Err(io::Error::last_os_error());
            }
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut ifr) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether bhyve created it (and the kernel removes it when bhyve ends).
    pub fn created(&self) -> bool {
        self.created
    }
}

impl NetBackend for Tap {
    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn offloads(&self) -> u32 {
        self.offloads
    }

    fn set_offload(&self, flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes the flags as the argument itself.
        if unsafe { libc::ioctl(self.file.as_raw_fd(), libc::TUNSETOFFLOAD as _, flags as libc::c_ulong) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn set_header_len(&self, len: usize) -> io::Result<()> {
        let len = len as libc::c_int;
        // SAFETY: the ioctl reads one int through the pointer.
        if unsafe { libc::ioctl(self.file.as_raw_fd(), libc::TUNSETVNETHDRSZ as _, &len) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["tap0", "vmnet12", "br-a.b_c", "a23456789012345"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a:1", "tap%d", "a b", "a234567890123456", "t\n"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_name("tap%d").unwrap_err().to_string(),
            "'tap%d' is not an interface name (no '/', ':', '%' or white space)"
        );
    }
}
