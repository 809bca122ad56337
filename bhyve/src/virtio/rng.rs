//! virtio-rng (entropy device, ID 4): one queue; each buffer the driver
//! offers is filled with bytes from the host's `getrandom(2)`.

use super::chain::{write_to, Chain, QueueError};
use super::worker::{QueueWork, Worker};
use super::{ActivateError, Activation, VirtioDevice};
use virtio_bindings::virtio_ids::VIRTIO_ID_RNG;
use vmmapi::GuestMemory;

/// Entries in its queue.
pub const QUEUE_SIZE: u16 = 64;
/// Most bytes given for one request: more would only delay the others.
pub const MAX_PER_REQUEST: usize = 64 << 10;

/// Where the bytes come from.
pub type Source = fn(&mut [u8]) -> std::io::Result<()>;

/// Fills `buf` from `getrandom(2)`.
pub fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most buf.len() - done bytes into buf[done..].
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr() as *mut libc::c_void, buf.len() - done, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            done += n as usize;
        }
    }
    Ok(())
}

/// The entropy device.
pub struct Rng {
    source: Source,
    worker: Option<Worker>,
}

impl Rng {
    /// An entropy device reading `source`.
    pub fn new(source: Source) -> Self {
        Self { source, worker: None }
    }
}

struct Work {
    source: Source,
}

impl QueueWork for Work {
    fn handle(&mut self, _index: usize, chain: &Chain, mem: &GuestMemory) -> Result<u32, QueueError> {
        let want = (chain.writable_len() as usize).min(MAX_PER_REQUEST);
        let mut buf = vec![0u8; want];
        // No entropy: nothing written, which the driver sees as 0 bytes.
        if (self.source)(&mut buf).is_err() {
            return Ok(0);
        }
        Ok(write_to(mem, &chain.writable, &buf)? as u32)
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        0
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        if a.queues.first().is_none_or(|q| q.is_none()) {
            return Err(ActivateError::MissingQueue(0));
        }
        let w = Worker::spawn("virtio-rnd".into(), Work { source: self.source }, a.queues, a.mem, a.interrupt)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testring::{TestRing, DATA};
    use crate::virtio::worker::drain_queue;

    fn fives(buf: &mut [u8]) -> std::io::Result<()> {
        buf.fill(5);
        Ok(())
    }

    #[test]
    fn buffers_are_filled() {
        let mut r = TestRing::new(8);
        let h = r.chain(&[(DATA, 100, true), (DATA + 0x1000, 28, true)]);
        r.publish(h);
        let mut q = r.queue(false);
        let mut w = Work { source: fives };
        assert!(drain_queue(&mut w, 0, &mut q, &r.mem).unwrap());
        assert_eq!(r.used_elem(0), (h as u32, 128));
        assert!(r.get(DATA, 100).iter().chain(&r.get(DATA + 0x1000, 28)).all(|&b| b == 5));
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        getrandom(&mut a).unwrap();
        getrandom(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
