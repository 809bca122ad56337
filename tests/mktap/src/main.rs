//! `mktap NAME`: makes NAME a persistent tap with virtio-net headers
//! (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, `TUNSETPERSIST`), down, as
//! `ip tuntap add NAME mode tap vnet_hdr` does; `mktap -d NAME` removes it.
//! The tests use it to show that bhyve leaves a tap it did not make as it
//! was. Exit status: 0, or 1 with one line on stderr.

use std::os::fd::AsRawFd;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, persist) = match &args[..] {
        [n] if !n.starts_with('-') => (n.clone(), 1),
        [d, n] if d == "-d" => (n.clone(), 0),
        _ => fail("usage: mktap [-d] NAME"),
    };
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        fail(&format!("'{name}': 1 to 15 characters"));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .unwrap_or_else(|e| fail(&format!("/dev/net/tun: {e}")));
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: the ioctls read (and TUNSETIFF writes) one ifreq, or take an int.
    unsafe {
        if libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF as _, &mut ifr) < 0 {
            fail(&format!("{name}: TUNSETIFF: {}", std::io::Error::last_os_error()));
        }
        if libc::ioctl(f.as_raw_fd(), libc::TUNSETPERSIST as _, persist as libc::c_ulong) < 0 {
            fail(&format!("{name}: TUNSETPERSIST: {}", std::io::Error::last_os_error()));
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("mktap: {msg}");
    std::process::exit(1);
}
