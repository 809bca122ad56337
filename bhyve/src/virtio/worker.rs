//! A device's I/O thread: an epoll loop over its queues' notify eventfds,
//! a stop eventfd, and whatever host descriptors the device adds (a tap, a
//! socket, an eventfd of its own). When a queue is notified it runs the
//! device's [`QueueWork`]; by default that takes every chain with
//! notifications suppressed, until the available ring stays empty after
//! they are enabled again (`VIRTIO_RING_F_EVENT_IDX`: the driver is asked
//! to notify only for buffers past what was taken), then interrupts the
//! driver if the used ring's event index asks for it.
//!
//! Devices whose work is not "one chain in, one chain out" (a network
//! card's receive queue fills when the tap has a packet, not when the
//! driver notifies) override [`QueueWork::notified`] and
//! [`QueueWork::ready`], and use [`Io`] to watch their descriptors, take
//! chains and interrupt the driver.
//!
//! A [`QueueError`] marks the device `DEVICE_NEEDS_RESET` and the thread
//! stops touching the rings (and stops watching the device's descriptors);
//! it waits for the transport's reset to stop it.

use super::chain::{Chain, QueueError};
use super::{ActiveQueue, Interrupt};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;
use vmmapi::GuestMemory;

/// The work of a device on its queues, on its I/O thread.
pub trait QueueWork: Send + 'static {
    /// Handles one checked chain taken from queue `index`. Returns the
    /// number of bytes written into its writable buffers (for the used
    /// ring), or the error that breaks the device.
    fn handle(&mut self, index: usize, chain: &Chain, mem: &GuestMemory) -> Result<u32, QueueError>;

    /// The thread starts: by default every queue is serviced once, as
    /// buffers made available before `DRIVER_OK`, or notified before the
    /// thread listened, are not waited for. A device with descriptors of
    /// its own watches them here ([`Io::watch`]).
    fn start(&mut self, io: &mut Io) -> Result<(), QueueError> {
        for i in 0..io.queue_count() {
            io.service(self, i)?;
        }
        Ok(())
    }

    /// The driver notified queue `index`; by default it is serviced
    /// ([`Io::service`]).
    fn notified(&mut self, index: usize, io: &mut Io) -> Result<(), QueueError> {
        io.service(self, index)
    }

    /// A descriptor watched with `token` is ready for `events`.
    fn ready(&mut self, token: u32, events: EventSet, io: &mut Io) -> Result<(), QueueError> {
        let _ = (token, events, io);
        Ok(())
    }
}

/// What a device's work reaches on its I/O thread: the queues, guest
/// memory, the interrupt, and the thread's epoll.
pub struct Io<'a> {
    queues: &'a mut [Option<ActiveQueue>],
    /// Guest memory.
    pub mem: &'a GuestMemory,
    /// The device's interrupt.
    pub irq: &'a Interrupt,
    epoll: &'a Epoll,
    watched: &'a mut HashMap<u32, RawFd>,
}

/// Device tokens are kept apart from queue indexes and the stop token.
const SOURCE: u64 = 1 << 32;
const STOP_TOKEN: u64 = u64::MAX;

impl<'a> Io<'a> {
    /// The queues, their memory and interrupt, on `epoll`; `watched` keeps
    /// the device's descriptors by token.
    pub fn new(
        queues: &'a mut [Option<ActiveQueue>],
        mem: &'a GuestMemory,
        irq: &'a Interrupt,
        epoll: &'a Epoll,
        watched: &'a mut HashMap<u32, RawFd>,
    ) -> Self {
        Self { queues, mem, irq, epoll, watched }
    }

    /// How many queues the device has (set up or not).
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Queue `index`, if the driver set it up.
    pub fn queue(&mut self, index: usize) -> Option<&mut Queue> {
        self.queues.get_mut(index)?.as_mut().map(|q| &mut q.queue)
    }

    /// Watches `fd` for `events`, reported to [`QueueWork::ready`] with
    /// `token`; a descriptor watched already gets the new events (an empty
    /// set pauses it).
    pub fn watch(&mut self, fd: RawFd, token: u32, events: EventSet) -> std::io::Result<()> {
        let ev = EpollEvent::new(events, SOURCE | token as u64);
        match self.epoll.ctl(ControlOperation::Modify, fd, ev) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => self.epoll.ctl(ControlOperation::Add, fd, ev)?,
            r => r?,
        }
        self.watched.insert(token, fd);
        Ok(())
    }

    /// Stops watching the descriptor of `token` (before it is closed).
    pub fn unwatch(&mut self, token: u32) {
        if let Some(fd) = self.watched.remove(&token) {
            let _ = self.epoll.ctl(ControlOperation::Delete, fd, EpollEvent::default());
        }
    }

    /// Takes every available chain of queue `index` through `work`'s
    /// [`QueueWork::handle`] (see [`drain_queue`]) and interrupts the
    /// driver if it asked. A queue the driver did not set up is left.
    pub fn service<W: QueueWork + ?Sized>(&mut self, work: &mut W, index: usize) -> Result<(), QueueError> {
        let mem = self.mem;
        let Some(q) = self.queue(index) else { return Ok(()) };
        if drain_queue(work, index, q, mem)? {
            self.signal_used(index)?;
        }
        Ok(())
    }

    /// Chains were put in queue `index`'s used ring: interrupts the driver
    /// if the ring's event index (or flags) asks for it.
    pub fn signal_used(&mut self, index: usize) -> Result<(), QueueError> {
        let mem = self.mem;
        let Some(q) = self.queue(index) else { return Ok(()) };
        if q.needs_notification(mem).map_err(|e| ring_error(index, e))? {
            self.irq.signal_used_queue();
        }
        Ok(())
    }
}

/// A `virtio-queue` error on queue `index`: the driver broke its rings.
pub fn ring_error(index: usize, e: virtio_queue::Error) -> QueueError {
    QueueError::Ring { queue: index, why: e.to_string() }
}

/// Takes the next available chain of `q`, checked, if there is one.
pub fn next_chain(index: usize, q: &mut Queue, mem: &GuestMemory) -> Result<Option<Chain>, QueueError> {
    let next = q.iter(mem).map_err(|e| ring_error(index, e))?.next();
    next.map(|c| Chain::walk(c, mem)).transpose()
}

/// Takes every available chain of `q`, checks it, hands it to `work` and
/// returns it in the used ring; with notifications suppressed while it
/// works. Returns whether anything was used.
pub fn drain_queue<W: QueueWork + ?Sized>(
    work: &mut W,
    index: usize,
    q: &mut Queue,
    mem: &GuestMemory,
) -> Result<bool, QueueError> {
    let ring = |e| ring_error(index, e);
    let mut used = false;
    loop {
        q.disable_notification(mem).map_err(ring)?;
        while let Some(chain) = next_chain(index, q, mem)? {
            let len = work.handle(index, &chain, mem)?;
            q.add_used(mem, chain.head, len).map_err(ring)?;
            used = true;
        }
        if !q.enable_notification(mem).map_err(ring)? {
            return Ok(used);
        }
    }
}

/// A running I/O thread.
pub struct Worker {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the I/O thread `name` for `work` on `queues` (`None`: a queue
    /// the driver did not set up, which is never serviced).
    pub fn spawn<W: QueueWork>(
        name: String,
        mut work: W,
        mut queues: Vec<Option<ActiveQueue>>,
        mem: GuestMemory,
        irq: Arc<Interrupt>,
    ) -> std::io::Result<Worker> {
        let stop = EventFd::new(libc::EFD_NONBLOCK)?;
        let epoll = Epoll::new()?;
        epoll.ctl(ControlOperation::Add, stop.as_raw_fd(), EpollEvent::new(EventSet::IN, STOP_TOKEN))?;
        for (i, q) in queues.iter().enumerate() {
            if let Some(q) = q {
                epoll.ctl(ControlOperation::Add, q.notify.as_raw_fd(), EpollEvent::new(EventSet::IN, i as u64))?;
            }
        }
        let thread_stop = stop.try_clone()?;
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut watched = HashMap::new();
            let mut good = {
                let mut io = Io::new(&mut queues, &mem, &irq, &epoll, &mut watched);
                work.start(&mut io).is_ok()
            };
            if !good {
                irq.device_broken();
            }
            let mut events = vec![EpollEvent::default(); 16];
            loop {
                let n = match epoll.wait(-1, &mut events) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // Cannot wait: the device stops as a broken one would.
                    Err(_) => {
                        irq.device_broken();
                        let _ = thread_stop_wait(&thread_stop);
                        return;
                    }
                };
                for ev in &events[..n] {
                    let token = ev.data();
                    if token == STOP_TOKEN {
                        return;
                    }
                    let mut io = Io::new(&mut queues, &mem, &irq, &epoll, &mut watched);
                    let r = if token & SOURCE != 0 {
                        if !good {
                            // Level-triggered: left watched, it would spin.
                            io.unwatch(token as u32);
                            continue;
                        }
                        work.ready(token as u32, ev.event_set(), &mut io)
                    } else {
                        let index = token as usize;
                        let Some(Some(q)) = io.queues.get(index) else { continue };
                        let _ = q.notify.read();
                        if !good {
                            continue;
                        }
                        work.notified(index, &mut io)
                    };
                    if r.is_err() {
                        good = false;
                        irq.device_broken();
                    }
                }
            }
        })?;
        Ok(Worker { stop, thread: Some(thread) })
    }

    /// Stops the thread and waits until it has: it touches guest memory no
    /// more.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let _ = self.stop.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Blocks until the stop eventfd is written.
fn thread_stop_wait(stop: &EventFd) -> std::io::Result<()> {
    let mut p = libc::pollfd { fd: stop.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, for the duration of the call.
    while unsafe { libc::poll(&mut p, 1, -1) } < 0 {}
    Ok(())
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop_now();
    }
}
