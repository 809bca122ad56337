//! The seam between the transports and the kernel's fast paths: how a
//! queue notification reaches a device's I/O thread, and how its interrupt
//! eventfd reaches the guest.
//!
//! Each transport has a notify eventfd per queue and its device an
//! interrupt eventfd, always. [`Wiring::attach`] is called when the driver
//! sets `DRIVER_OK`, [`Wiring::detach`] at a reset and when bhyve stops.
//!
//! - [`Kernel`] (a module with `VM_IOEVENTFD` and `VM_IRQFD`): `attach`
//!   registers each queue's eventfd for a 4-byte write of its index at the
//!   transport's QueueNotify, and the interrupt eventfd as an edge irqfd;
//!   `detach` removes them. A notification then never leaves the kernel and
//!   an interrupt never enters bhyve. Nothing else changes: the transport's
//!   own signalling is simply never reached (except for writes the
//!   registration does not match, e.g. of another size). The module also
//!   drops them when bhyve's descriptor of the VM closes, however bhyve ends.
//! - [`Fallback`] (an older module): a QueueNotify write exits to bhyve's
//!   vCPU thread, and the transport signals the queue's eventfd itself; the
//!   interrupt eventfd is read by the IRQ pump thread, which pulses the
//!   transport's SPI with `Vm::set_irq_line(intid, true)` then `false`.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;
use vmmapi::{Errno, Vm};

/// What a transport has to wire.
pub struct Wires<'a> {
    /// Guest physical address of its QueueNotify register.
    pub notify_gpa: u64,
    /// Each ready queue's index and notify eventfd.
    pub notify: Vec<(u16, &'a EventFd)>,
    /// The transport's SPI (INTID).
    pub intid: u32,
    /// The device's interrupt eventfd.
    pub interrupt: &'a EventFd,
}

/// How notifications and interrupts travel (see the module's documentation).
pub trait Wiring: Send + Sync {
    /// The driver set `DRIVER_OK`: route `w`.
    fn attach(&self, w: &Wires) -> std::io::Result<()>;
    /// The device was reset, or bhyve stops: undo [`Wiring::attach`].
    fn detach(&self, w: &Wires);
}

/// The kernel's fast paths.
pub struct Kernel {
    vm: Arc<Vm>,
}

fn borrow(e: &EventFd) -> BorrowedFd<'_> {
    // SAFETY: the descriptor belongs to `e`, which outlives the borrow.
    unsafe { BorrowedFd::borrow_raw(e.as_raw_fd()) }
}

fn io_error(e: vmmapi::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.errno() as i32)
}

impl Kernel {
    /// The kernel's fast paths for `vm`, or `None` with a module that has
    /// none (`ENOTTY`): asks it to remove an irqfd that was never made.
    pub fn probe(vm: Arc<Vm>) -> std::io::Result<Option<Arc<Kernel>>> {
        let e = EventFd::new(libc::EFD_NONBLOCK)?;
        match vm.remove_irqfd(crate::layout::VIRTIO_MMIO_SPI, borrow(&e)) {
            Err(err) if err.errno() == Errno::ENOTTY => Ok(None),
            _ => Ok(Some(Arc::new(Kernel { vm }))),
        }
    }
}

impl Wiring for Kernel {
    fn attach(&self, w: &Wires) -> std::io::Result<()> {
        for (i, &(index, fd)) in w.notify.iter().enumerate() {
            if let Err(e) = self.vm.add_ioeventfd(w.notify_gpa, 4, Some(index.into()), borrow(fd)) {
                for &(index, fd) in &w.notify[..i] {
                    let _ = self.vm.remove_ioeventfd(w.notify_gpa, 4, Some(index.into()), borrow(fd));
                }
                return Err(io_error(e));
            }
        }
        if let Err(e) = self.vm.add_irqfd(w.intid, borrow(w.interrupt), None) {
            for &(index, fd) in &w.notify {
                let _ = self.vm.remove_ioeventfd(w.notify_gpa, 4, Some(index.into()), borrow(fd));
            }
            return Err(io_error(e));
        }
        Ok(())
    }

    fn detach(&self, w: &Wires) {
        for &(index, fd) in &w.notify {
            let _ = self.vm.remove_ioeventfd(w.notify_gpa, 4, Some(index.into()), borrow(fd));
        }
        let _ = self.vm.remove_irqfd(w.intid, borrow(w.interrupt));
    }
}

/// Pulses SPIs: the IRQ pump's way to the guest.
pub type Pulse = Arc<dyn Fn(u32) + Send + Sync>;

/// Notifications by MMIO exits, interrupts by the IRQ pump thread.
pub struct Fallback {
    epoll: Epoll,
    /// INTID by the eventfd's descriptor.
    lines: Mutex<HashMap<RawFd, u32>>,
}

impl Fallback {
    /// Starts the IRQ pump thread, which calls `pulse(intid)` once for each
    /// batch of signals on an attached interrupt eventfd. It runs as long
    /// as the process.
    pub fn start(pulse: Pulse) -> std::io::Result<Arc<Fallback>> {
        let f = Arc::new(Fallback { epoll: Epoll::new()?, lines: Mutex::new(HashMap::new()) });
        let pump = f.clone();
        std::thread::Builder::new().name("irq pump".into()).spawn(move || pump.run(&*pulse))?;
        Ok(f)
    }

    fn run(&self, pulse: &(dyn Fn(u32) + Send + Sync)) {
        let mut events = vec![EpollEvent::default(); 32];
        loop {
            let n = match self.epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(_) => continue,
            };
            for ev in &events[..n] {
                let fd = ev.data() as RawFd;
                // Drain first: a signal after the read is a new pulse.
                let mut count = 0u64;
                // SAFETY: reads 8 bytes into `count` from a descriptor; a
                // descriptor closed meanwhile only gives an error.
                let r = unsafe { libc::read(fd, &mut count as *mut u64 as *mut libc::c_void, 8) };
                let intid = self.lines.lock().unwrap_or_else(|e| e.into_inner()).get(&fd).copied();
                if let (8, Some(intid)) = (r, intid) {
                    pulse(intid);
                }
            }
        }
    }
}

impl Wiring for Fallback {
    fn attach(&self, w: &Wires) -> std::io::Result<()> {
        let fd = w.interrupt.as_raw_fd();
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).insert(fd, w.intid);
        self.epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, fd as u64))
    }

    fn detach(&self, w: &Wires) {
        let fd = w.interrupt.as_raw_fd();
        let _ = self.epoll.ctl(ControlOperation::Delete, fd, EpollEvent::default());
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).remove(&fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn fallback_pulses_the_line_of_an_attached_eventfd_only() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let f = Fallback::start(Arc::new(move |i| tx.lock().unwrap().send(i).unwrap())).unwrap();
        let evt = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let w = Wires { notify_gpa: 0x0a00_0050, notify: vec![], intid: 49, interrupt: &evt };
        evt.write(1).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "not attached yet");
        f.attach(&w).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(49), "pending before attach: pulsed");
        evt.write(1).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(49));
        f.detach(&w);
        evt.write(1).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "detached");
    }
}
