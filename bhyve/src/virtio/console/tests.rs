use super::control::Event;
use super::port::{token, Socket, Source, StdioInput};
use super::*;
use crate::console::ConsoleInput;
use crate::virtio::testring::{TestRing, DATA};
use crate::virtio::{ActiveQueue, Interrupt};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use vmm_sys_util::epoll::Epoll;
use vmm_sys_util::eventfd::EventFd;

/// A writer whose bytes the test reads.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A console with a stdio port and a port "p1" on a socket, its six queues
/// on test rings, driven as its I/O thread would.
struct Rig {
    rings: Vec<TestRing>,
    work: Work,
    queues: Vec<Option<ActiveQueue>>,
    irq: Interrupt,
    epoll: Epoll,
    watched: HashMap<u32, std::os::fd::RawFd>,
    out: Shared,
    input: Arc<StdioInput>,
    path: std::path::PathBuf,
    _dir: TempDir,
    next_data: u64,
    ctrl_seen: u16,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("bhyve-console-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

impl Rig {
    fn new(tag: &str) -> Self {
        let dir = temp_dir(tag);
        let path = dir.0.join("p1.sock");
        let out = Shared::default();
        let input = StdioInput::new().unwrap();
        let stdio = PortIo::Stdio { input: input.clone(), out: Box::new(out.clone()) };
        let sock = PortIo::Socket(Socket::listen(&path).unwrap());
        let c = Console::new(ports(Some(stdio), vec![("p1".into(), sock)]));
        assert_eq!(c.queue_max_sizes().len(), 6);
        let first = TestRing::new(16);
        let mut rings: Vec<TestRing> = (0..6).map(|k| first.sibling(16, 0x4_0000 + k * 0xc000)).collect();
        rings[0] = first.sibling(16, 0x4_0000);
        let queues = rings
            .iter()
            .map(|r| Some(ActiveQueue { queue: r.queue(true), notify: EventFd::new(libc::EFD_NONBLOCK).unwrap() }))
            .collect();
        let mut r = Self {
            rings,
            work: Work { state: c.state.clone() },
            queues,
            irq: Interrupt::new().unwrap(),
            epoll: Epoll::new().unwrap(),
            watched: HashMap::new(),
            out,
            input,
            path,
            _dir: dir,
            next_data: DATA,
            ctrl_seen: 0,
        };
        for _ in 0..8 {
            r.give(CONTROL_RX, 64);
        }
        r
    }

    fn io_run(&mut self, f: impl FnOnce(&mut Work, &mut Io) -> Result<(), QueueError>) {
        let mut io = Io::new(&mut self.queues, &self.rings[0].mem, &self.irq, &self.epoll, &mut self.watched);
        f(&mut self.work, &mut io).unwrap();
    }

    /// Gives queue `q` a writable buffer of `len` bytes; returns its address.
    fn give(&mut self, q: usize, len: u32) -> u64 {
        let a = self.next_data;
        self.next_data += 0x400;
        let h = self.rings[q].chain(&[(a, len, true)]);
        self.rings[q].publish(h);
        a
    }

    /// Sends `bytes` on queue `q` (driver to device) and notifies it.
    fn send(&mut self, q: usize, bytes: &[u8]) {
        let a = self.next_data;
        self.next_data += 0x400;
        self.rings[q].put(a, bytes);
        let h = self.rings[q].chain(&[(a, bytes.len() as u32, false)]);
        self.rings[q].publish(h);
        self.io_run(|w, io| w.notified(q, io));
    }

    fn control(&mut self, id: u32, event: u16, value: u16) {
        let mut m = id.to_le_bytes().to_vec();
        m.extend_from_slice(&event.to_le_bytes());
        m.extend_from_slice(&value.to_le_bytes());
        self.send(CONTROL_TX, &m);
    }

    /// The control messages the device sent since the last call.
    fn messages(&mut self) -> Vec<(u32, Event, u16, Vec<u8>)> {
        let r = &self.rings[CONTROL_RX];
        let mut v = vec![];
        while self.ctrl_seen != r.used_idx() {
            let (id, len) = r.used_elem(self.ctrl_seen);
            // The control buffers were given first, 0x400 apart.
            let b = r.get(DATA + 0x400 * id as u64, len as usize);
            let (pid, ev, val) = control::decode(&b).unwrap();
            v.push((pid, ev, val, b[8..].to_vec()));
            self.ctrl_seen += 1;
        }
        v
    }

    /// The bytes in the used buffers of receive queue `q` from `from` on.
    fn received(&self, q: usize, from: u16) -> Vec<u8> {
        let r = &self.rings[q];
        let mut v = vec![];
        for i in from..r.used_idx() {
            let (id, len) = r.used_elem(i);
            let mut d = [0u8; 16];
            self.rings[0].mem.read_slice(&mut d, vmmapi::vm_memory::GuestAddress(r.desc + 16 * id as u64)).unwrap();
            let addr = u64::from_le_bytes(d[0..8].try_into().unwrap());
            v.extend(r.get(addr, len as usize));
        }
        v
    }

    fn handshake(&mut self) {
        self.control(0, 0, 1);
        let m = self.messages();
        assert_eq!(
            m.iter().map(|m| (m.0, m.1, m.2)).collect::<Vec<_>>(),
            [(0, Event::DeviceAdd, 1), (1, Event::DeviceAdd, 1)]
        );
        self.control(0, 3, 1);
        self.control(1, 3, 1);
        let m = self.messages();
        assert_eq!(
            m,
            [
                (0, Event::ConsolePort, 1, vec![]),
                (0, Event::PortOpen, 1, vec![]),
                (1, Event::PortName, 1, b"p1".to_vec())
            ],
            "the console, open; the named port, closed (no client)"
        );
        // The guest opens both (Linux does so for the console itself).
        self.control(0, 6, 1);
        self.control(1, 6, 1);
        assert!(self.messages().is_empty());
    }
}

use vmmapi::vm_memory::Bytes;

#[test]
fn queue_numbers() {
    assert_eq!((rx_queue(0), tx_queue(0), rx_queue(1), tx_queue(1), rx_queue(3)), (0, 1, 4, 5, 8));
    assert_eq!(port_of_queue(1), Some((0, true)));
    assert_eq!(port_of_queue(4), Some((1, false)));
    assert_eq!(port_of_queue(7), Some((2, true)));
    assert_eq!(port_of_queue(2), None);
    let (i, s) = port::untoken(token(3, Source::Client));
    assert_eq!((i, s), (3, Source::Client));
}

#[test]
fn console_port_output_and_typed_input() {
    let mut r = Rig::new("stdio");
    r.handshake();
    r.send(1, b"login: ");
    assert_eq!(&*r.out.0.lock().unwrap(), b"login: ");
    assert_eq!(r.input.push(b"ls -l\n"), 6);
    r.io_run(|w, io| w.ready(token(0, Source::Listener), EventSet::IN, io));
    assert_eq!(r.rings[0].used_idx(), 0, "no receive buffer yet: the input waits");
    r.give(0, 4);
    r.io_run(|w, io| w.notified(0, io));
    assert_eq!(r.received(0, 0), b"ls -");
    r.give(0, 64);
    r.io_run(|w, io| w.notified(0, io));
    assert_eq!(r.received(0, 0), b"ls -l\n", "in order, nothing lost");
    assert!(r.irq.status() & 1 != 0);
}

#[test]
fn input_waits_until_the_guest_opens_the_port() {
    let mut r = Rig::new("unopened");
    r.control(0, 0, 1);
    r.control(1, 3, 1);
    r.messages();
    let mut c = UnixStream::connect(&r.path).unwrap();
    r.io_run(|w, io| w.ready(token(1, Source::Listener), EventSet::IN, io));
    c.write_all(b"early").unwrap();
    r.give(4, 64);
    r.io_run(|w, io| w.ready(token(1, Source::Client), EventSet::IN, io));
    assert_eq!(r.rings[4].used_idx(), 0, "not open in the guest: held");
    r.control(1, 6, 1);
    assert_eq!(r.received(4, 0), b"early", "delivered once opened");
}

#[test]
fn stdio_input_is_bounded() {
    let i = StdioInput::new().unwrap();
    let big = vec![b'x'; port::STDIO_BUFFER + 10];
    assert_eq!(i.push(&big), port::STDIO_BUFFER);
    assert_eq!(i.push(b"y"), 0);
}

#[test]
fn a_socket_port_carries_bytes_both_ways_and_tells_open_and_close() {
    let mut r = Rig::new("sock");
    r.handshake();
    r.send(5, b"before anyone listens");
    let mut c = UnixStream::connect(&r.path).unwrap();
    r.io_run(|w, io| w.ready(token(1, Source::Listener), EventSet::IN, io));
    assert_eq!(r.messages(), [(1, Event::PortOpen, 1, vec![])]);
    let second = UnixStream::connect(&r.path).unwrap();
    r.io_run(|w, io| w.ready(token(1, Source::Listener), EventSet::IN, io));
    let mut b = [0u8; 4];
    second.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    assert_eq!((&second).read(&mut b).unwrap(), 0, "a second client is closed at once");
    assert!(r.messages().is_empty());

    c.write_all(b"from the host").unwrap();
    r.give(4, 64);
    r.io_run(|w, io| w.ready(token(1, Source::Client), EventSet::IN, io));
    assert_eq!(r.received(4, 0), b"from the host");

    r.send(5, b"from the guest");
    let mut got = [0u8; 14];
    c.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from the guest", "output before the client came was discarded");

    c.shutdown(std::net::Shutdown::Write).unwrap();
    r.io_run(|w, io| w.ready(token(1, Source::Client), EventSet::IN | EventSet::READ_HANG_UP, io));
    assert!(r.messages().is_empty(), "half closed: still open for the guest's output");
    r.send(5, b"still");
    let mut got = [0u8; 5];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still");
    drop(c);
    r.io_run(|w, io| w.ready(token(1, Source::Client), EventSet::IN | EventSet::HANG_UP, io));
    assert_eq!(r.messages(), [(1, Event::PortOpen, 0, vec![])]);
    let _c2 = UnixStream::connect(&r.path).unwrap();
    r.io_run(|w, io| w.ready(token(1, Source::Listener), EventSet::IN, io));
    assert_eq!(r.messages(), [(1, Event::PortOpen, 1, vec![])], "a new client after the first left");
}

#[test]
fn sockets_are_made_and_removed() {
    let d = temp_dir("listen");
    let p = d.0.join("s");
    std::fs::write(&p, b"x").unwrap();
    assert_eq!(Socket::listen(&p).err().unwrap().to_string(), "it exists and is not a socket");
    std::fs::remove_file(&p).unwrap();
    let s = Socket::listen(&p).unwrap();
    assert_eq!(Socket::listen(&p).err().unwrap().to_string(), "another process listens on it");
    drop(s);
    assert!(!p.exists(), "removed when bhyve is done with it");
    // A socket left by a bhyve that was killed: replaced.
    let stale = std::os::unix::net::UnixListener::bind(&p).unwrap();
    drop(stale);
    assert!(p.exists());
    let _s = Socket::listen(&p).unwrap();
}

#[test]
fn config_and_features() {
    let c = Console::new(ports(None, vec![]));
    assert_eq!(c.device_type(), 3);
    assert_eq!(c.features(), F_MULTIPORT);
    let mut b = [0u8; 4];
    c.read_config(4, &mut b);
    assert_eq!(u32::from_le_bytes(b), 1, "max_nr_ports");
}
