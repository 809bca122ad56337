//! A device's I/O thread: an epoll loop over its queues' notify eventfds
//! and a stop eventfd. When a queue is notified it runs the device's
//! [`QueueWork`] with notifications suppressed, until the available ring
//! stays empty after they are enabled again (`VIRTIO_RING_F_EVENT_IDX`: the
//! driver is asked to notify only for buffers past what was taken), then
//! interrupts the driver if the used ring's event index asks for it.
//!
//! A [`QueueError`] marks the device `DEVICE_NEEDS_RESET` and the thread
//! stops touching the rings; it waits for the transport's reset to stop it.

use super::chain::{Chain, QueueError};
use super::{ActiveQueue, Interrupt};
use std::os::fd::AsRawFd;
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
    let ring = |e: virtio_queue::Error| QueueError::Ring { queue: index, why: e.to_string() };
    let mut used = false;
    loop {
        q.disable_notification(mem).map_err(ring)?;
        loop {
            let next = q.iter(mem).map_err(ring)?.next();
            let Some(desc_chain) = next else { break };
            let chain = Chain::walk(desc_chain, mem)?;
            let len = work.handle(index, &chain, mem)?;
            q.add_used(mem, chain.head, len).map_err(ring)?;
            used = true;
        }
        if !q.enable_notification(mem).map_err(ring)? {
            return Ok(used);
        }
    }
}

/// Services queue `index` once: drains it and interrupts the driver if it
/// asked. A broken ring marks the device; returns whether it is still good.
pub fn service<W: QueueWork + ?Sized>(
    work: &mut W,
    index: usize,
    q: &mut Queue,
    mem: &GuestMemory,
    irq: &Interrupt,
) -> bool {
    let r = drain_queue(work, index, q, mem).and_then(|used| {
        Ok(used && q.needs_notification(mem).map_err(|e| QueueError::Ring { queue: index, why: e.to_string() })?)
    });
    match r {
        Ok(notify) => {
            if notify {
                irq.signal_used_queue();
            }
            true
        }
        Err(_) => {
            irq.device_broken();
            false
        }
    }
}

/// A running I/O thread.
pub struct Worker {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

const STOP_TOKEN: u64 = u64::MAX;

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
            // Buffers made available before DRIVER_OK, or notified before
            // the thread listened, are not waited for.
            let mut good = true;
            for (i, q) in queues.iter_mut().enumerate() {
                if let Some(q) = q {
                    good = good && service(&mut work, i, &mut q.queue, &mem, &irq);
                }
            }
            let mut events = vec![EpollEvent::default(); queues.len() + 1];
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
                    let Some(Some(q)) = queues.get_mut(token as usize) else { continue };
                    let _ = q.notify.read();
                    if good {
                        good = service(&mut work, token as usize, &mut q.queue, &mem, &irq);
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
