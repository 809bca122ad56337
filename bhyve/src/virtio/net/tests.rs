use super::tap::NetBackend;
use super::*;
use crate::virtio::testring::{TestRing, DATA};
use crate::virtio::worker::Io;
use crate::virtio::{ActiveQueue, Interrupt};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use vmm_sys_util::epoll::Epoll;
use vmm_sys_util::eventfd::EventFd;

/// One end of a SOCK_SEQPACKET pair standing in for a tap: one packet per
/// read and write, as a tap gives them.
struct Pair {
    fd: OwnedFd,
    offloads: u32,
    set: Mutex<Vec<u32>>,
    hdr: Mutex<usize>,
}

impl NetBackend for Pair {
    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    fn offloads(&self) -> u32 {
        self.offloads
    }
    fn set_offload(&self, flags: u32) -> std::io::Result<()> {
        self.set.lock().unwrap().push(flags);
        Ok(())
    }
    fn set_header_len(&self, len: usize) -> std::io::Result<()> {
        *self.hdr.lock().unwrap() = len;
        Ok(())
    }
}

/// The card's end (non-blocking, as a tap is opened) and the host's end.
fn pair(offloads: u32) -> (Arc<Pair>, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into fds.
    assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) }, 0);
    // SAFETY: both are new descriptors owned here.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe { libc::fcntl(a.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    (Arc::new(Pair { fd: a, offloads, set: Mutex::new(vec![]), hdr: Mutex::new(0) }), b)
}

fn send(fd: &OwnedFd, data: &[u8]) {
    // SAFETY: writes data.len() bytes from data.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr() as *const libc::c_void, data.len()) };
    assert_eq!(n, data.len() as isize);
}

fn recv(fd: &OwnedFd) -> Option<Vec<u8>> {
    let mut b = vec![0u8; MAX_PACKET];
    // SAFETY: reads at most b.len() bytes into b.
    let n = unsafe { libc::recv(fd.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, b.len(), libc::MSG_DONTWAIT) };
    (n >= 0).then(|| {
        b.truncate(n as usize);
        b
    })
}

/// A card's I/O side on test rings: the receive and transmit rings, the
/// work, and what drives it.
struct Rig {
    rx: TestRing,
    tx: TestRing,
    work: Work,
    queues: Vec<Option<ActiveQueue>>,
    irq: Interrupt,
    epoll: Epoll,
    host: OwnedFd,
    stats: Arc<NetStats>,
}

impl Rig {
    fn new(merge: bool) -> Self {
        let rx = TestRing::new(16);
        let tx = rx.sibling(16, 0x8_0000);
        let (backend, host) = pair(0);
        let stats = Arc::new(NetStats::default());
        let work = Work {
            backend,
            hdr_len: 12,
            merge,
            guest_csum: true,
            held: None,
            reading: None,
            buf: vec![0; MAX_PACKET],
            stats: stats.clone(),
        };
        let queues = [&rx, &tx]
            .iter()
            .map(|r| Some(ActiveQueue { queue: r.queue(true), notify: EventFd::new(libc::EFD_NONBLOCK).unwrap() }))
            .collect();
        Self { rx, tx, work, queues, irq: Interrupt::new().unwrap(), epoll: Epoll::new().unwrap(), host, stats }
    }

    fn run(&mut self, f: impl FnOnce(&mut Work, &mut Io) -> Result<(), QueueError>) {
        let mut watched = HashMap::new();
        let mut io = Io::new(&mut self.queues, &self.rx.mem, &self.irq, &self.epoll, &mut watched);
        f(&mut self.work, &mut io).unwrap();
    }

    /// Offers a receive buffer of `len` bytes at `addr`.
    fn rx_buffer(&mut self, addr: u64, len: u32) {
        let h = self.rx.chain(&[(addr, len, true)]);
        self.rx.publish(h);
    }
}

fn packet(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect()
}

#[test]
fn transmit_writes_each_chain_as_one_packet() {
    let mut r = Rig::new(true);
    let hdr = [0x11u8; 12];
    let body = packet(3000, 1);
    r.tx.put(DATA, &hdr);
    r.tx.put(DATA + 0x100, &body[..1000]);
    r.tx.put(DATA + 0x1000, &body[1000..]);
    let h = r.tx.chain(&[(DATA, 12, false), (DATA + 0x100, 1000, false), (DATA + 0x1000, 2000, false)]);
    r.tx.publish(h);
    let h = r.tx.chain(&[(DATA + 0x2000, 12 + 60, false)]);
    r.tx.publish(h);
    r.run(|w, io| w.notified(TX, io));
    let got = recv(&r.host).unwrap();
    assert_eq!(got.len(), 3012);
    assert_eq!(&got[..12], &hdr);
    assert_eq!(&got[12..], &body[..]);
    assert_eq!(recv(&r.host).unwrap().len(), 72, "the second chain, a packet of its own");
    assert!(recv(&r.host).is_none());
    assert_eq!(r.tx.used_idx(), 2);
    assert_eq!(r.stats.tx_packets.load(Ordering::Relaxed), 2);
    assert_eq!(r.irq.status(), 1, "the driver is told");
}

#[test]
fn a_transmit_chain_shorter_than_its_header_breaks_the_device() {
    let mut r = Rig::new(true);
    let h = r.tx.chain(&[(DATA, 8, false)]);
    r.tx.publish(h);
    let mut watched = HashMap::new();
    let mut io = Io::new(&mut r.queues, &r.rx.mem, &r.irq, &r.epoll, &mut watched);
    assert!(matches!(r.work.notified(TX, &mut io), Err(QueueError::Malformed { .. })));
}

#[test]
fn receive_merges_buffers_and_counts_them_in_the_header() {
    let mut r = Rig::new(true);
    r.rx_buffer(DATA, 2048);
    r.rx_buffer(DATA + 0x1000, 2048);
    r.rx_buffer(DATA + 0x2000, 2048);
    let mut p = packet(12 + 3000, 5);
    p[0] = 1; // NEEDS_CSUM, kept: the driver took GUEST_CSUM
    send(&r.host, &p);
    r.run(|w, io| w.ready(TAP_TOKEN, EventSet::IN, io));
    assert_eq!(r.rx.used_idx(), 2, "two buffers for 3012 bytes");
    assert_eq!(r.rx.used_elem(0).1, 2048);
    assert_eq!(r.rx.used_elem(1).1, 3012 - 2048);
    let mut got = r.rx.get(DATA, 2048);
    got.extend(r.rx.get(DATA + 0x1000, 3012 - 2048));
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 2, "num_buffers");
    assert_eq!(&got[..10], &p[..10]);
    assert_eq!(&got[12..], &p[12..]);
    assert_eq!(r.irq.status(), 1);
    assert_eq!(r.stats.rx_packets.load(Ordering::Relaxed), 1);
}

#[test]
fn a_full_receive_queue_holds_packets_back_and_loses_none() {
    let mut r = Rig::new(true);
    let ps: Vec<Vec<u8>> = (0..4).map(|i| packet(12 + 500 + i * 10, i as u8)).collect();
    for p in &ps {
        send(&r.host, p);
    }
    r.run(|w, io| w.ready(TAP_TOKEN, EventSet::IN, io));
    assert_eq!(r.rx.used_idx(), 0);
    assert!(r.work.held.is_some(), "one packet waits");
    assert_eq!(r.stats.rx_held.load(Ordering::Relaxed), 1);
    r.rx_buffer(DATA, 2048);
    r.run(|w, io| w.notified(RX, io));
    assert_eq!(r.rx.used_idx(), 1, "one buffer, one packet");
    assert!(r.work.held.is_some());
    for i in 1..4 {
        r.rx_buffer(DATA + 0x1000 * i, 2048);
    }
    r.run(|w, io| w.notified(RX, io));
    assert_eq!(r.rx.used_idx(), 4);
    assert!(r.work.held.is_none());
    for (i, p) in ps.iter().enumerate() {
        let got = r.rx.get(DATA + 0x1000 * i as u64, p.len());
        assert_eq!(&got[12..], &p[12..], "packet {i} in order");
        assert_eq!(r.rx.used_elem(i as u16).1 as usize, p.len());
    }
    assert_eq!(r.stats.dropped.load(Ordering::Relaxed), 0);
}

#[test]
fn a_packet_waits_for_enough_merged_buffers() {
    let mut r = Rig::new(true);
    r.rx_buffer(DATA, 1024);
    send(&r.host, &packet(12 + 1500, 9));
    r.run(|w, io| w.ready(TAP_TOKEN, EventSet::IN, io));
    assert_eq!(r.rx.used_idx(), 0, "1024 bytes is not enough: nothing taken");
    r.rx_buffer(DATA + 0x1000, 1024);
    r.run(|w, io| w.notified(RX, io));
    assert_eq!(r.rx.used_idx(), 2);
    assert_eq!((r.rx.used_elem(0).1, r.rx.used_elem(1).1), (1024, 12 + 1500 - 1024));
}

#[test]
fn without_merged_buffers_a_packet_too_large_for_the_buffer_is_dropped() {
    let mut r = Rig::new(false);
    r.work.guest_csum = false;
    r.rx_buffer(DATA, 1000);
    let mut big = packet(12 + 1500, 2);
    big[0] = 1;
    send(&r.host, &big);
    let mut small = packet(12 + 100, 3);
    small[0] = 1;
    send(&r.host, &small);
    r.run(|w, io| w.ready(TAP_TOKEN, EventSet::IN, io));
    assert_eq!(r.stats.dropped.load(Ordering::Relaxed), 1);
    assert_eq!(r.rx.used_idx(), 1);
    assert_eq!(r.rx.used_elem(0).1, 112, "the small one took the buffer");
    let got = r.rx.get(DATA, 112);
    assert_eq!(got[0], 0, "no checksum flags for a driver without GUEST_CSUM");
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 1);
}

#[test]
fn features_follow_the_tap() {
    let all = features_for(tap::ALL_OFFLOADS);
    for b in [
        VIRTIO_NET_F_CSUM,
        VIRTIO_NET_F_GUEST_CSUM,
        VIRTIO_NET_F_GUEST_TSO4,
        VIRTIO_NET_F_GUEST_TSO6,
        VIRTIO_NET_F_GUEST_UFO,
        VIRTIO_NET_F_HOST_TSO4,
        VIRTIO_NET_F_MRG_RXBUF,
        VIRTIO_NET_F_MAC,
        VIRTIO_NET_F_STATUS,
    ] {
        assert!(all & bit(b) != 0, "bit {b}");
    }
    let none = features_for(0);
    assert_eq!(none & (bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO4)), 0);
    assert!(none & bit(VIRTIO_NET_F_CSUM) != 0);
    let csum = features_for(libc::TUN_F_CSUM);
    assert!(csum & bit(VIRTIO_NET_F_GUEST_CSUM) != 0 && csum & bit(VIRTIO_NET_F_GUEST_TSO4) == 0);
    assert_eq!(features_for(libc::TUN_F_TSO4) & bit(VIRTIO_NET_F_GUEST_TSO4), 0, "TSO needs checksums");
    assert_eq!(offloads_for(all), tap::ALL_OFFLOADS);
    assert_eq!(offloads_for(all & !bit(VIRTIO_NET_F_GUEST_CSUM)), 0);
    assert_eq!(
        offloads_for(bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO6)),
        libc::TUN_F_CSUM | libc::TUN_F_TSO6
    );
    assert_eq!(header_len(F_VERSION_1), 12);
    assert_eq!(header_len(bit(VIRTIO_NET_F_MRG_RXBUF)), 12);
    assert_eq!(header_len(0), 10);
}

#[test]
fn activation_sets_the_header_and_the_guests_offloads() {
    let (b, _host) = pair(tap::ALL_OFFLOADS);
    let mut n = Net::new(b.clone(), Mac([2, 0, 0, 0, 0, 1]));
    let r = TestRing::new(16);
    let t = r.sibling(16, 0x8_0000);
    let q =
        |r: &TestRing| Some(ActiveQueue { queue: r.queue(true), notify: EventFd::new(libc::EFD_NONBLOCK).unwrap() });
    let features =
        F_VERSION_1 | bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO4) | bit(VIRTIO_NET_F_MRG_RXBUF);
    let a = Activation {
        mem: r.mem.clone(),
        queues: vec![q(&r), q(&t)],
        interrupt: Arc::new(Interrupt::new().unwrap()),
        features,
    };
    n.activate(a).unwrap();
    assert_eq!(*b.hdr.lock().unwrap(), 12);
    n.reset();
    assert_eq!(*b.set.lock().unwrap(), [libc::TUN_F_CSUM | libc::TUN_F_TSO4, 0]);
    let a = Activation {
        mem: r.mem.clone(),
        queues: vec![q(&r), None],
        interrupt: Arc::new(Interrupt::new().unwrap()),
        features,
    };
    assert!(matches!(n.activate(a), Err(ActivateError::MissingQueue(1))));
}

#[test]
fn config_space_has_the_mac_and_link_up() {
    let (b, _host) = pair(0);
    let n = Net::new(b, Mac([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]));
    let mut c = [0u8; 10];
    n.read_config(0, &mut c);
    assert_eq!(c, [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 1, 0, 1, 0]);
    assert_eq!(n.device_type(), 1);
}

#[test]
fn macs() {
    assert_eq!(Mac::parse("02:00:5e:10:00:01"), Ok(Mac([2, 0, 0x5e, 0x10, 0, 1])));
    assert_eq!(Mac::parse("02:AB:cd:00:00:01").unwrap().to_string(), "02:ab:cd:00:00:01");
    for bad in
        ["02:00:5e:10:00", "02:00:5e:10:00:01:02", "2:00:5e:10:00:01", "02-00-5e-10-00-01", "zz:00:5e:10:00:01", ""]
    {
        assert!(Mac::parse(bad).unwrap_err().contains("is not a MAC address"), "{bad}");
    }
    assert_eq!(Mac::parse("01:00:5e:00:00:01").unwrap_err(), "01:00:5e:00:00:01 is a multicast address, not a card's");
    assert!(Mac::parse("ff:ff:ff:ff:ff:ff").is_err());
    assert!(Mac::parse("00:00:00:00:00:00").is_err());
    let a = Mac::derived("guest", 3);
    assert_eq!(a, Mac::derived("guest", 3), "stable");
    assert_ne!(a, Mac::derived("guest", 4));
    assert_ne!(a, Mac::derived("guest2", 3));
    assert_ne!(Mac::derived("a", 12), Mac::derived("a1", 2));
    for m in [a, Mac::derived("x", 0), Mac::derived("", 31)] {
        assert_eq!(m.0[0] & 3, 2, "{m}: locally administered, unicast");
    }
}
