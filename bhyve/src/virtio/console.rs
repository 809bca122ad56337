//! virtio-console (ID 3) with several ports (`VIRTIO_CONSOLE_F_MULTIPORT`):
//! bhyve's `virtio-console,NAME=PATH[,NAME=PATH...]`, each named port on a
//! unix socket bhyve creates and listens on, and optionally a console port
//! on bhyve's stdio, which Linux makes `hvc0`.
//!
//! Queues: port 0's receive and transmit queues, the control queues (2 and
//! 3), then two for each further port. Port 0 is the console port when
//! there is one; named ports are 1, 2, ... in the order given, so the first
//! named port is always `/dev/vport<N>p1` in the guest (and
//! `/dev/virtio-ports/NAME` by its name).
//!
//! The control protocol (virtio 1.2, 5.3.6.2): the driver says it is ready,
//! the device adds its ports; the driver readies each, and the device says
//! which is the console, names the others, and tells whether the host side
//! is open: the console always, a named port while a client is connected.
//!
//! Bytes move without loss both ways: input waits (and the source is not
//! read) while the guest has no receive buffer or does not have the port
//! open (Linux discards input on a port nobody opened), and output waits while a
//! client's socket is full (its transmit queue is not taken meanwhile).
//! Output for a named port nobody is connected to is discarded, as a
//! serial line nobody listens to would lose it.

mod control;
pub mod port;

use super::chain::{read_from, write_to, Chain, QueueError};
use super::worker::{next_chain, ring_error, Io, QueueWork, Worker};
use super::{read_config_bytes, ActivateError, Activation, VirtioDevice};
use control::{Control, Event};
use port::{Port, PortIo};
use std::sync::{Arc, Mutex, MutexGuard};
use virtio_bindings::virtio_ids::VIRTIO_ID_CONSOLE;
use virtio_queue::QueueT;
use vmm_sys_util::epoll::EventSet;
use vmmapi::GuestMemory;

/// `VIRTIO_CONSOLE_F_MULTIPORT` (bit 1; virtio-bindings has no console
/// constants).
pub const F_MULTIPORT: u64 = 1 << 1;
/// Entries in each queue.
pub const QUEUE_SIZE: u16 = 64;
/// Most named ports on one device.
pub const MAX_NAMED_PORTS: usize = 15;
/// The control receive queue (device to driver).
pub const CONTROL_RX: usize = 2;
/// The control transmit queue (driver to device).
pub const CONTROL_TX: usize = 3;

/// The receive queue of port `id`.
pub fn rx_queue(id: u32) -> usize {
    if id == 0 {
        0
    } else {
        2 + 2 * id as usize
    }
}

/// The transmit queue of port `id`.
pub fn tx_queue(id: u32) -> usize {
    rx_queue(id) + 1
}

/// The port a queue belongs to (`None` for the control queues), and
/// whether it is the transmit one.
fn port_of_queue(q: usize) -> Option<(u32, bool)> {
    match q {
        0 | 1 => Some((0, q == 1)),
        CONTROL_RX | CONTROL_TX => None,
        _ => Some(((q / 2 - 1) as u32, q % 2 == 1)),
    }
}

/// The ports and what the control protocol has said, shared by the device
/// and its I/O thread (the ports outlive a driver's resets).
pub struct State {
    ports: Vec<Port>,
    control: Control,
}

/// The console device.
pub struct Console {
    state: Arc<Mutex<State>>,
    sizes: Vec<u16>,
    config: Vec<u8>,
    worker: Option<Worker>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl Console {
    /// A device with `ports` (their ids set: 0 for a console, 1.. named).
    pub fn new(ports: Vec<Port>) -> Self {
        let max = ports.iter().map(|p| p.id + 1).max().unwrap_or(1);
        let sizes = vec![QUEUE_SIZE; 2 * (max as usize + 1)];
        let mut config = vec![0u8; 12];
        config[4..8].copy_from_slice(&max.to_le_bytes());
        Self { state: Arc::new(Mutex::new(State { ports, control: Control::default() })), sizes, config, worker: None }
    }
}

/// What the I/O thread needs.
struct Work {
    state: Arc<Mutex<State>>,
}

impl Work {
    /// Sends what the control protocol has queued, as far as the driver
    /// gave buffers.
    fn flush_control(s: &mut State, io: &mut Io) -> Result<(), QueueError> {
        for p in &mut s.ports {
            let (id, ready) = (p.id, p.guest_ready);
            if let Some(open) = p.take_change() {
                // Before the port is ready, PORT_READY's answer tells it.
                if ready {
                    s.control.push(id, Event::PortOpen, open as u16, &[]);
                }
            }
        }
        let mem = io.mem;
        let Some(q) = io.queue(CONTROL_RX) else { return Ok(()) };
        let mut used = false;
        while let Some(msg) = s.control.peek() {
            let Some(c) = next_chain(CONTROL_RX, q, mem)? else { break };
            let n = write_to(mem, &c.writable, msg)?;
            q.add_used(mem, c.head, n as u32).map_err(|e| ring_error(CONTROL_RX, e))?;
            s.control.pop();
            used = true;
        }
        if s.control.peek().is_some() {
            q.enable_notification(mem).map_err(|e| ring_error(CONTROL_RX, e))?;
        }
        if used {
            io.signal_used(CONTROL_RX)?;
        }
        Ok(())
    }

    /// A message from the driver.
    fn control_message(s: &mut State, bytes: &[u8]) {
        let Some((id, event, value)) = control::decode(bytes) else { return };
        match event {
            Event::DeviceReady if value == 1 => {
                for p in &s.ports {
                    s.control.push(p.id, Event::DeviceAdd, 1, &[]);
                }
            }
            Event::PortReady if value == 1 => {
                let Some(p) = s.ports.iter_mut().find(|p| p.id == id) else { return };
                p.guest_ready = true;
                if p.is_console() {
                    s.control.push(id, Event::ConsolePort, 1, &[]);
                }
                if let Some(name) = p.name() {
                    let name = name.as_bytes().to_vec();
                    s.control.push(id, Event::PortName, 1, &name);
                }
                if p.host_open() {
                    s.control.push(id, Event::PortOpen, 1, &[]);
                }
            }
            Event::PortOpen => {
                if let Some(p) = s.ports.iter_mut().find(|p| p.id == id) {
                    p.guest_open = value == 1;
                }
            }
            _ => {}
        }
    }

    /// Moves host input of port `i` into its receive queue while both
    /// have some; the source is read only while nothing waits. Only while
    /// the guest has the port open: Linux throws away what arrives on a
    /// port nobody in the guest has open.
    fn receive(s: &mut State, i: usize, io: &mut Io) -> Result<(), QueueError> {
        let mem = io.mem;
        let p = &mut s.ports[i];
        let q_index = rx_queue(p.id);
        let mut used = false;
        while p.guest_open {
            if p.pending_in().is_empty() && !p.read_host() {
                break;
            }
            let Some(q) = io.queue(q_index) else { break };
            match next_chain(q_index, q, mem)? {
                Some(c) => {
                    let n = write_to(mem, &c.writable, p.pending_in())?;
                    q.add_used(mem, c.head, n as u32).map_err(|e| ring_error(q_index, e))?;
                    p.consume_in(n);
                    used = true;
                }
                None => {
                    if q.enable_notification(mem).map_err(|e| ring_error(q_index, e))? {
                        continue;
                    }
                    break;
                }
            }
        }
        p.rewatch(i, io);
        if used {
            io.signal_used(q_index)?;
        }
        Ok(())
    }

    /// Takes port `i`'s output while its host side takes it.
    fn transmit(s: &mut State, i: usize, io: &mut Io) -> Result<(), QueueError> {
        let mem = io.mem;
        let p = &mut s.ports[i];
        let q_index = tx_queue(p.id);
        let mut used = false;
        while p.flush_out() {
            let Some(q) = io.queue(q_index) else { break };
            let Some(c) = next_chain(q_index, q, mem)? else {
                if q.enable_notification(mem).map_err(|e| ring_error(q_index, e))? {
                    continue;
                }
                break;
            };
            let mut buf = vec![0u8; c.readable_len() as usize];
            read_from(mem, &c.readable, &mut buf)?;
            p.queue_out(buf);
            q.add_used(mem, c.head, 0).map_err(|e| ring_error(q_index, e))?;
            used = true;
        }
        p.rewatch(i, io);
        if used {
            io.signal_used(q_index)?;
        }
        Ok(())
    }

    /// Everything that can move, moves.
    fn pump_all(s: &mut State, io: &mut Io) -> Result<(), QueueError> {
        for i in 0..s.ports.len() {
            Self::transmit(s, i, io)?;
            Self::receive(s, i, io)?;
        }
        Self::flush_control(s, io)
    }

    fn control_tx(s: &mut State, io: &mut Io) -> Result<(), QueueError> {
        let mem = io.mem;
        let Some(q) = io.queue(CONTROL_TX) else { return Ok(()) };
        let mut used = false;
        loop {
            while let Some(c) = next_chain(CONTROL_TX, q, mem)? {
                let mut buf = [0u8; 8];
                let n = read_from(mem, &c.readable, &mut buf)?;
                Self::control_message(s, &buf[..n]);
                q.add_used(mem, c.head, 0).map_err(|e| ring_error(CONTROL_TX, e))?;
                used = true;
            }
            if !q.enable_notification(mem).map_err(|e| ring_error(CONTROL_TX, e))? {
                break;
            }
        }
        if used {
            io.signal_used(CONTROL_TX)?;
        }
        // A port made ready may have input and output waiting.
        Self::pump_all(s, io)
    }
}

impl QueueWork for Work {
    fn handle(&mut self, _index: usize, _chain: &Chain, _mem: &GuestMemory) -> Result<u32, QueueError> {
        // Every queue is taken by notified(): nothing comes here.
        Ok(0)
    }

    fn start(&mut self, io: &mut Io) -> Result<(), QueueError> {
        let state = self.state.clone();
        let mut s = lock(&state);
        for i in 0..s.ports.len() {
            s.ports[i].rewatch(i, io);
        }
        Self::control_tx(&mut s, io)
    }

    fn notified(&mut self, index: usize, io: &mut Io) -> Result<(), QueueError> {
        let state = self.state.clone();
        let mut s = lock(&state);
        match port_of_queue(index) {
            None if index == CONTROL_TX => Self::control_tx(&mut s, io),
            None => Self::flush_control(&mut s, io),
            Some((id, tx)) => {
                let Some(i) = s.ports.iter().position(|p| p.id == id) else { return Ok(()) };
                if tx {
                    Self::transmit(&mut s, i, io)
                } else {
                    Self::receive(&mut s, i, io)
                }
            }
        }
    }

    fn ready(&mut self, token: u32, events: EventSet, io: &mut Io) -> Result<(), QueueError> {
        let state = self.state.clone();
        let mut s = lock(&state);
        let (i, what) = port::untoken(token);
        let Some(p) = s.ports.get_mut(i) else { return Ok(()) };
        p.host_event(what, events);
        Self::transmit(&mut s, i, io)?;
        Self::receive(&mut s, i, io)?;
        Self::flush_control(&mut s, io)
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.sizes
    }

    fn features(&self) -> u64 {
        F_MULTIPORT
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        if a.features & F_MULTIPORT == 0 {
            // Without the control queues only port 0 exists: the driver
            // would find no console nor names. Not offered otherwise.
            return Err(ActivateError::MissingQueue(CONTROL_RX));
        }
        for q in [CONTROL_RX, CONTROL_TX] {
            if a.queues.get(q).is_none_or(|q| q.is_none()) {
                return Err(ActivateError::MissingQueue(q));
            }
        }
        {
            let mut s = lock(&self.state);
            s.control = Control::default();
            for p in &mut s.ports {
                p.guest_ready = false;
                p.guest_open = false;
            }
        }
        let work = Work { state: self.state.clone() };
        let w = Worker::spawn("virtio-console".into(), work, a.queues, a.mem, a.interrupt)
            .map_err(ActivateError::Thread)?;
        self.worker = Some(w);
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(w) = self.worker.take() {
            w.stop();
        }
    }
}

/// How a port reaches the host.
pub use port::PortIo as Backend;
/// The input side of a stdio console port, for [`crate::console::Console`].
pub use port::StdioInput;

/// Makes the ports of a device: the console on stdio (if `stdio` is given)
/// as port 0, then each named port on its socket.
pub fn ports(stdio: Option<PortIo>, named: Vec<(String, PortIo)>) -> Vec<Port> {
    let mut v = vec![];
    if let Some(io) = stdio {
        v.push(Port::new(0, None, io));
    }
    for (k, (name, io)) in named.into_iter().enumerate() {
        v.push(Port::new(k as u32 + 1, Some(name), io));
    }
    v
}

#[cfg(test)]
mod tests;
