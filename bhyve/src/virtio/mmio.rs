//! The virtio-mmio transport, version 2 (virtio 1.2, 4.2.2): the registers
//! a driver sets a device up with, at a window the device manager gives.
//!
//! The transport owns the registers and their rules; the device
//! ([`VirtioDevice`]) does the work. Registers are 32 bits wide; other
//! accesses to them read as zero and are ignored, as the configuration
//! space (from 0x100) takes any width. The rules that protect bhyve:
//!
//! - features are taken only between `DRIVER` and `FEATURES_OK`, and
//!   `FEATURES_OK` sticks only for a subset of the offered ones that
//!   includes `VERSION_1`;
//! - queue registers are taken only before `DRIVER_OK`;
//! - at `DRIVER_OK` every ready queue is checked (a power-of-two size no
//!   larger than the maximum, aligned rings inside guest memory that do not
//!   overlap); a bad one marks the device `DEVICE_NEEDS_RESET`, which it
//!   stays, doing nothing, until the driver writes 0 to Status.
//!
//! QueueNotify writes signal the queue's eventfd without taking the lock,
//! so a notification costs the vCPU thread one `write(2)`.

use super::wiring::{Wires, Wiring};
use super::{Activation, ActiveQueue, Interrupt, VirtioDevice, F_EVENT_IDX, F_VERSION_1};
use crate::bus::BusDevice;
use crate::devices::{get_le, put_le};
use std::sync::{Arc, Mutex, MutexGuard};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_mmio as reg;
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;
use vmmapi::vm_memory::{GuestAddress, GuestMemoryBackend};
use vmmapi::GuestMemory;

/// MagicValue: "virt".
pub const MAGIC: u32 = 0x7472_6976;
/// The transport's version: 2, virtio 1.x (1 was the legacy interface).
pub const VERSION: u32 = 2;
/// VendorID: "BHYV".
pub const VENDOR: u32 = 0x5659_4842;
/// Where the configuration space starts.
pub const CONFIG_OFFSET: u64 = reg::VIRTIO_MMIO_CONFIG as u64;

/// One queue's registers, as the driver wrote them.
#[derive(Debug, Clone, Copy, Default)]
struct QueueRegs {
    size: u16,
    ready: bool,
    desc: u64,
    avail: u64,
    used: u64,
}

struct State {
    device: Box<dyn VirtioDevice>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<QueueRegs>,
    /// The queues handed to the device and wired, while it is active.
    active: bool,
}

/// A virtio device behind its virtio-mmio registers.
pub struct MmioTransport {
    state: Mutex<State>,
    interrupt: Arc<Interrupt>,
    notify: Vec<EventFd>,
    max_sizes: Vec<u16>,
    offered: u64,
    mem: GuestMemory,
    wiring: Arc<dyn Wiring>,
    notify_gpa: u64,
    intid: u32,
}

impl MmioTransport {
    /// `device` behind a transport at `base` with SPI `intid`, its rings in
    /// `mem`, its notifications and interrupt routed by `wiring`.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemory,
        wiring: Arc<dyn Wiring>,
        base: u64,
        intid: u32,
    ) -> std::io::Result<Self> {
        let max_sizes = device.queue_max_sizes().to_vec();
        let notify = max_sizes.iter().map(|_| EventFd::new(libc::EFD_NONBLOCK)).collect::<Result<_, _>>()?;
        let offered = device.features() | F_VERSION_1 | F_EVENT_IDX;
        let queues = vec![QueueRegs::default(); max_sizes.len()];
        Ok(Self {
            state: Mutex::new(State {
                device,
                status: 0,
                device_features_sel: 0,
                driver_features_sel: 0,
                driver_features: 0,
                queue_sel: 0,
                queues,
                active: false,
            }),
            interrupt: Arc::new(Interrupt::new()?),
            notify,
            max_sizes,
            offered,
            mem,
            wiring,
            notify_gpa: base + reg::VIRTIO_MMIO_QUEUE_NOTIFY as u64,
            intid,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device's interrupt (for tests and the wiring).
    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    /// The notify eventfd of queue `index`.
    pub fn notify_eventfd(&self, index: usize) -> Option<&EventFd> {
        self.notify.get(index)
    }

    fn wires(&self, s: &State) -> Wires<'_> {
        let notify = s
            .queues
            .iter()
            .zip(&self.notify)
            .enumerate()
            .filter(|(_, (q, _))| q.ready)
            .map(|(i, (_, e))| (i as u16, e))
            .collect();
        Wires { notify_gpa: self.notify_gpa, notify, intid: self.intid, interrupt: self.interrupt.eventfd() }
    }

    /// Device reset: stop the device, unwire it, forget the driver's setup.
    fn reset(&self, s: &mut State) {
        if s.active {
            s.device.reset();
            self.wiring.detach(&self.wires(s));
            s.active = false;
        }
        s.status = 0;
        s.device_features_sel = 0;
        s.driver_features_sel = 0;
        s.driver_features = 0;
        s.queue_sel = 0;
        s.queues.iter_mut().for_each(|q| *q = QueueRegs::default());
        for e in &self.notify {
            let _ = e.read();
        }
        self.interrupt.reset();
    }

    fn write_status(&self, s: &mut State, v: u32) {
        if v == 0 {
            self.reset(s);
            return;
        }
        // Bits are only ever added, except by a reset.
        if v & s.status != s.status || self.interrupt.needs_reset() {
            return;
        }
        let new = v & !s.status;
        let mut v = v;
        if new & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            let f = s.driver_features;
            if f & !self.offered != 0 || f & F_VERSION_1 == 0 || s.status & VIRTIO_CONFIG_S_DRIVER == 0 {
                v &= !VIRTIO_CONFIG_S_FEATURES_OK;
            }
        }
        if new & VIRTIO_CONFIG_S_DRIVER_OK != 0 && v & VIRTIO_CONFIG_S_FAILED == 0 {
            if v & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
                // DRIVER_OK without agreed features: not taken.
                v &= !VIRTIO_CONFIG_S_DRIVER_OK;
            } else {
                s.status = v;
                self.activate(s);
                return;
            }
        }
        s.status = v;
    }

    /// DRIVER_OK: checks the queues, hands them to the device, wires it.
    fn activate(&self, s: &mut State) {
        let event_idx = s.driver_features & F_EVENT_IDX != 0;
        let mut queues = Vec::with_capacity(s.queues.len());
        for (i, r) in s.queues.iter().enumerate() {
            if !r.ready {
                queues.push(None);
                continue;
            }
            match check_queue(r, self.max_sizes[i], &self.mem, event_idx) {
                Some(queue) => match self.notify[i].try_clone() {
                    Ok(notify) => queues.push(Some(ActiveQueue { queue, notify })),
                    Err(_) => return self.interrupt.device_broken(),
                },
                None => return self.interrupt.device_broken(),
            }
        }
        if self.wiring.attach(&self.wires(s)).is_err() {
            return self.interrupt.device_broken();
        }
        let a = Activation {
            mem: self.mem.clone(),
            queues,
            interrupt: self.interrupt.clone(),
            features: s.driver_features,
        };
        match s.device.activate(a) {
            Ok(()) => s.active = true,
            Err(_) => {
                self.wiring.detach(&self.wires(s));
                self.interrupt.device_broken();
            }
        }
    }

    fn read_reg(&self, offset: u32) -> u32 {
        let s = self.lock();
        let q = s.queues.get(s.queue_sel as usize);
        match offset {
            reg::VIRTIO_MMIO_MAGIC_VALUE => MAGIC,
            reg::VIRTIO_MMIO_VERSION => VERSION,
            reg::VIRTIO_MMIO_DEVICE_ID => s.device.device_type(),
            reg::VIRTIO_MMIO_VENDOR_ID => VENDOR,
            reg::VIRTIO_MMIO_DEVICE_FEATURES => match s.device_features_sel {
                0 => self.offered as u32,
                1 => (self.offered >> 32) as u32,
                _ => 0,
            },
            reg::VIRTIO_MMIO_QUEUE_NUM_MAX => self.max_sizes.get(s.queue_sel as usize).copied().unwrap_or(0) as u32,
            reg::VIRTIO_MMIO_QUEUE_READY => q.is_some_and(|q| q.ready) as u32,
            reg::VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt.status(),
            reg::VIRTIO_MMIO_STATUS => {
                s.status | if self.interrupt.needs_reset() { VIRTIO_CONFIG_S_NEEDS_RESET } else { 0 }
            }
            reg::VIRTIO_MMIO_QUEUE_DESC_LOW => q.map_or(0, |q| q.desc as u32),
            reg::VIRTIO_MMIO_QUEUE_DESC_HIGH => q.map_or(0, |q| (q.desc >> 32) as u32),
            reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW => q.map_or(0, |q| q.avail as u32),
            reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH => q.map_or(0, |q| (q.avail >> 32) as u32),
            reg::VIRTIO_MMIO_QUEUE_USED_LOW => q.map_or(0, |q| q.used as u32),
            reg::VIRTIO_MMIO_QUEUE_USED_HIGH => q.map_or(0, |q| (q.used >> 32) as u32),
            // No shared memory regions: their length reads as -1.
            reg::VIRTIO_MMIO_SHM_LEN_LOW | reg::VIRTIO_MMIO_SHM_LEN_HIGH => u32::MAX,
            reg::VIRTIO_MMIO_SHM_BASE_LOW | reg::VIRTIO_MMIO_SHM_BASE_HIGH => u32::MAX,
            reg::VIRTIO_MMIO_CONFIG_GENERATION => self.interrupt.generation(),
            _ => 0,
        }
    }

    fn write_reg(&self, offset: u32, v: u32) {
        if offset == reg::VIRTIO_MMIO_QUEUE_NOTIFY {
            // Notifications before DRIVER_OK are looked at when the device
            // starts; an index out of range is ignored.
            if let Some(e) = self.notify.get(v as usize) {
                let _ = e.write(1);
            }
            return;
        }
        let mut s = self.lock();
        let st = s.status;
        let features_open = st & VIRTIO_CONFIG_S_DRIVER != 0 && st & VIRTIO_CONFIG_S_FEATURES_OK == 0;
        let setup_open = st & VIRTIO_CONFIG_S_DRIVER_OK == 0 && !self.interrupt.needs_reset();
        let sel = s.queue_sel as usize;
        let set_half = |x: &mut u64, high: bool| {
            *x = if high { (*x & 0xffff_ffff) | (v as u64) << 32 } else { (*x & !0xffff_ffff) | v as u64 };
        };
        match offset {
            reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL => s.device_features_sel = v,
            reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL => s.driver_features_sel = v,
            reg::VIRTIO_MMIO_DRIVER_FEATURES if features_open => match s.driver_features_sel {
                0 => s.driver_features = (s.driver_features & !0xffff_ffff) | v as u64,
                1 => s.driver_features = (s.driver_features & 0xffff_ffff) | (v as u64) << 32,
                _ => {}
            },
            reg::VIRTIO_MMIO_QUEUE_SEL => s.queue_sel = v,
            reg::VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt.ack(v),
            reg::VIRTIO_MMIO_STATUS => self.write_status(&mut s, v),
            _ if !setup_open => {}
            _ => {
                let Some(q) = s.queues.get_mut(sel) else { return };
                match offset {
                    reg::VIRTIO_MMIO_QUEUE_NUM => q.size = v as u16,
                    reg::VIRTIO_MMIO_QUEUE_READY => q.ready = v == 1,
                    reg::VIRTIO_MMIO_QUEUE_DESC_LOW => set_half(&mut q.desc, false),
                    reg::VIRTIO_MMIO_QUEUE_DESC_HIGH => set_half(&mut q.desc, true),
                    reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW => set_half(&mut q.avail, false),
                    reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH => set_half(&mut q.avail, true),
                    reg::VIRTIO_MMIO_QUEUE_USED_LOW => set_half(&mut q.used, false),
                    reg::VIRTIO_MMIO_QUEUE_USED_HIGH => set_half(&mut q.used, true),
                    _ => {}
                }
            }
        }
    }
}

/// A ring's bytes: the descriptor table, the driver area (available ring
/// with `used_event`) and the device area (used ring with `avail_event`).
fn ring_spans(r: &QueueRegs) -> [(u64, u64); 3] {
    let n = r.size as u64;
    [(r.desc, 16 * n), (r.avail, 6 + 2 * n), (r.used, 6 + 8 * n)]
}

/// The queue the driver set up, if it is sound: a size the device allows,
/// aligned areas (16, 2 and 4 bytes) wholly in guest memory, apart from
/// each other.
fn check_queue(r: &QueueRegs, max: u16, mem: &GuestMemory, event_idx: bool) -> Option<Queue> {
    let size = r.size;
    if size == 0 || size > max || !size.is_power_of_two() {
        return None;
    }
    let spans = ring_spans(r);
    for &(addr, len) in &spans {
        if !mem.check_range(GuestAddress(addr), len as usize) {
            return None;
        }
    }
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if a.0 < b.0 + b.1 && b.0 < a.0 + a.1 {
                return None;
            }
        }
    }
    let mut q = Queue::new(max).ok()?;
    q.try_set_size(size).ok()?;
    q.try_set_desc_table_address(GuestAddress(r.desc)).ok()?;
    q.try_set_avail_ring_address(GuestAddress(r.avail)).ok()?;
    q.try_set_used_ring_address(GuestAddress(r.used)).ok()?;
    q.set_event_idx(event_idx);
    q.set_ready(true);
    q.is_valid(mem).then_some(q)
}

impl BusDevice for MmioTransport {
    fn read(&self, _base: u64, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_OFFSET {
            self.lock().device.read_config(offset - CONFIG_OFFSET, data);
        } else if data.len() == 4 && offset.is_multiple_of(4) {
            put_le(data, self.read_reg(offset as u32) as u64);
        } else {
            data.fill(0);
        }
    }

    fn write(&self, _base: u64, offset: u64, data: &[u8]) {
        if offset >= CONFIG_OFFSET {
            self.lock().device.write_config(offset - CONFIG_OFFSET, data);
        } else if data.len() == 4 && offset.is_multiple_of(4) {
            self.write_reg(offset as u32, get_le(data) as u32);
        }
    }
}

impl Drop for MmioTransport {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.reset(&mut s);
    }
}

#[cfg(test)]
mod tests;
