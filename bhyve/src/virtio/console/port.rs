//! A console port's host side: bhyve's stdio (the console), or a unix
//! socket bhyve listens on, one client at a time (a second is refused by
//! being closed at once).

use crate::console::ConsoleInput;
use crate::virtio::worker::Io;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

/// Bytes of input a stdio port keeps for the guest before the console's
/// reader waits.
pub const STDIO_BUFFER: usize = 4096;
/// Bytes read from a socket at once.
const CHUNK: usize = 4096;

/// What bhyve's console reader gives a stdio port: a bounded buffer, and
/// an eventfd that wakes the device's I/O thread.
pub struct StdioInput {
    buf: Mutex<VecDeque<u8>>,
    room: Condvar,
    evt: EventFd,
}

impl StdioInput {
    /// An empty input.
    pub fn new() -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            buf: Mutex::new(VecDeque::new()),
            room: Condvar::new(),
            evt: EventFd::new(libc::EFD_NONBLOCK)?,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<u8>> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes up to `max` bytes out.
    fn take(&self, max: usize) -> Vec<u8> {
        let mut b = self.lock();
        let n = b.len().min(max);
        let v = b.drain(..n).collect();
        self.room.notify_all();
        v
    }
}

impl ConsoleInput for StdioInput {
    fn push(&self, bytes: &[u8]) -> usize {
        let mut b = self.lock();
        let n = bytes.len().min(STDIO_BUFFER - b.len());
        b.extend(&bytes[..n]);
        drop(b);
        if n > 0 {
            let _ = self.evt.write(1);
        }
        n
    }

    fn wait_for_room(&self) {
        let b = self.lock();
        let _b = self.room.wait_while(b, |b| b.len() >= STDIO_BUFFER).unwrap_or_else(|e| e.into_inner());
    }
}

/// A unix socket bhyve listens on, and its client.
pub struct Socket {
    listener: UnixListener,
    path: PathBuf,
    client: Option<UnixStream>,
}

impl Socket {
    /// Creates and listens on `path`. A socket file nobody listens on (left
    /// by a bhyve that was killed) is replaced; anything else there is an
    /// error, and so is a socket someone listens on.
    pub fn listen(path: &Path) -> std::io::Result<Socket> {
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !m.file_type().is_socket() {
                return Err(std::io::Error::new(ErrorKind::AlreadyExists, "it exists and is not a socket"));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(ErrorKind::AddrInUse, "another process listens on it"));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(Socket { listener, path: path.to_path_buf(), client: None })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // A sandboxed bhyve may not remove files: its reaper does.
        if !crate::sandbox::active() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How a port reaches the host.
pub enum PortIo {
    /// bhyve's stdio: input from the console's reader, output to `out`.
    Stdio {
        /// The input.
        input: Arc<StdioInput>,
        /// Where output goes (stdout).
        out: Box<dyn Write + Send>,
    },
    /// A unix socket.
    Socket(Socket),
}

/// What a port's token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The listening socket, or the stdio input's eventfd.
    Listener,
    /// The connected client.
    Client,
}

/// The token of `what` for the port at index `i`.
pub fn token(i: usize, what: Source) -> u32 {
    2 * i as u32 + (what == Source::Client) as u32
}

/// The port index and source of a token.
pub fn untoken(t: u32) -> (usize, Source) {
    ((t / 2) as usize, if t % 2 == 1 { Source::Client } else { Source::Listener })
}

/// A port of the device.
pub struct Port {
    /// Its id in the control protocol.
    pub id: u32,
    name: Option<String>,
    io: PortIo,
    /// The driver made it ready.
    pub guest_ready: bool,
    /// The guest has it open.
    pub guest_open: bool,
    input: Vec<u8>,
    output: Vec<u8>,
    /// A change of the host side (opened, closed) not yet told.
    change: Option<bool>,
    /// The client hung up with input still unread: read what is left.
    hung_up: bool,
    /// A client gone, to be unwatched before its descriptor is closed.
    closed: Option<UnixStream>,
    /// The client shut its sending side: nothing more to read, though it
    /// may still read the guest's output.
    eof_in: bool,
}

impl Port {
    /// Port `id`, named `name` (a console port has none), on `io`.
    pub fn new(id: u32, name: Option<String>, io: PortIo) -> Self {
        Self {
            id,
            name,
            io,
            guest_ready: false,
            guest_open: false,
            input: vec![],
            output: vec![],
            change: None,
            hung_up: false,
            closed: None,
            eof_in: false,
        }
    }

    /// Whether it is the console (on stdio).
    pub fn is_console(&self) -> bool {
        matches!(self.io, PortIo::Stdio { .. })
    }

    /// Its name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether the host side is open: stdio always, a socket while a
    /// client is connected.
    pub fn host_open(&self) -> bool {
        match &self.io {
            PortIo::Stdio { .. } => true,
            PortIo::Socket(s) => s.client.is_some(),
        }
    }

    /// Input read from the host, not yet in the guest.
    pub fn pending_in(&self) -> &[u8] {
        &self.input
    }

    /// `n` bytes of input went to the guest.
    pub fn consume_in(&mut self, n: usize) {
        self.input.drain(..n.min(self.input.len()));
    }

    /// Reads more input from the host; false if there is none now.
    pub fn read_host(&mut self) -> bool {
        match &mut self.io {
            PortIo::Stdio { input, .. } => {
                self.input = input.take(CHUNK);
                !self.input.is_empty()
            }
            PortIo::Socket(s) => {
                let Some(c) = &mut s.client else { return false };
                if self.eof_in && !self.hung_up {
                    return false;
                }
                let mut buf = [0u8; CHUNK];
                loop {
                    match c.read(&mut buf) {
                        // Half closed: the client may still read.
                        Ok(0) if !self.hung_up => {
                            self.eof_in = true;
                            return false;
                        }
                        Ok(0) => break,
                        Ok(n) => {
                            self.input.extend_from_slice(&buf[..n]);
                            return true;
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == ErrorKind::WouldBlock && !self.hung_up => return false,
                        Err(_) => break,
                    }
                }
                // Hung up and read to the end, or an error: the client is gone.
                self.close_client();
                false
            }
        }
    }

    fn close_client(&mut self) {
        if let PortIo::Socket(s) = &mut self.io {
            if let Some(c) = s.client.take() {
                self.closed = Some(c);
                self.change = Some(false);
            }
        }
        self.output.clear();
        self.hung_up = false;
        self.eof_in = false;
    }

    /// Output for the host. To stdio it is written at once; to a socket as
    /// far as it takes it, the rest kept; with no client it is discarded.
    pub fn queue_out(&mut self, bytes: Vec<u8>) {
        match &mut self.io {
            PortIo::Stdio { out, .. } => {
                // A closed stdout loses the guest's output, nothing more.
                let _ = out.write_all(&bytes);
                let _ = out.flush();
            }
            PortIo::Socket(s) if s.client.is_some() => {
                self.output.extend_from_slice(&bytes);
                self.flush_out();
            }
            PortIo::Socket(_) => {}
        }
    }

    /// Writes kept output; true when none is left (more may be taken).
    pub fn flush_out(&mut self) -> bool {
        let PortIo::Socket(s) = &mut self.io else { return true };
        let Some(c) = &mut s.client else {
            self.output.clear();
            return true;
        };
        while !self.output.is_empty() {
            match c.write(&self.output) {
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(_) => {
                    self.close_client();
                    return true;
                }
            }
        }
        true
    }

    /// A change of the host side since the last call: opened or closed.
    pub fn take_change(&mut self) -> Option<bool> {
        self.change.take()
    }

    /// Something happened on the port's descriptor.
    pub fn host_event(&mut self, what: Source, events: EventSet) {
        match (&mut self.io, what) {
            (PortIo::Stdio { input, .. }, _) => {
                let _ = input.evt.read();
            }
            (PortIo::Socket(s), Source::Listener) => {
                while let Ok((c, _)) = s.listener.accept() {
                    if s.client.is_some() || c.set_nonblocking(true).is_err() {
                        // One client at a time: the next is closed at once.
                        continue;
                    }
                    s.client = Some(c);
                    self.change = Some(true);
                }
            }
            (PortIo::Socket(_), Source::Client) => {
                // Gone both ways: what it sent is still delivered, then
                // the port is closed.
                if events.intersects(EventSet::HANG_UP | EventSet::ERROR) {
                    self.hung_up = true;
                    if self.input.is_empty() {
                        self.read_host();
                    }
                }
            }
        }
    }

    /// Watches what the port can use now: the listener (or stdio's
    /// eventfd) always; the client for input while none waits, and for
    /// room while output waits.
    pub fn rewatch(&mut self, i: usize, io: &mut Io) {
        if let Some(c) = self.closed.take() {
            io.unwatch(token(i, Source::Client));
            drop(c);
        }
        match &self.io {
            PortIo::Stdio { input, .. } => {
                let _ = io.watch(input.evt.as_raw_fd(), token(i, Source::Listener), EventSet::IN);
            }
            PortIo::Socket(s) => {
                let _ = io.watch(s.listener.as_raw_fd(), token(i, Source::Listener), EventSet::IN);
                if let Some(c) = &s.client {
                    if self.hung_up {
                        // Hang-ups are reported whatever is asked: what is
                        // left is read as the guest takes it.
                        io.unwatch(token(i, Source::Client));
                        return;
                    }
                    let mut ev = EventSet::empty();
                    if self.input.is_empty() && !self.eof_in && self.guest_open {
                        ev |= EventSet::IN;
                    }
                    if !self.output.is_empty() {
                        ev |= EventSet::OUT;
                    }
                    let _ = io.watch(c.as_raw_fd(), token(i, Source::Client), ev);
                }
            }
        }
    }
}
