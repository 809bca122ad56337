//! The transport's register rules, with a device and a wiring that record
//! what they are asked.

use super::*;
use crate::virtio::testring::TestRing;
use crate::virtio::ActivateError;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Default)]
struct Log {
    activations: AtomicU32,
    resets: AtomicU32,
    attached: AtomicU32,
    detached: AtomicU32,
    last_features: std::sync::Mutex<u64>,
}

struct Dev(Arc<Log>);

impl VirtioDevice for Dev {
    fn device_type(&self) -> u32 {
        2
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[16, 8]
    }
    fn features(&self) -> u64 {
        1 << 5
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::super::read_config_bytes(&[1, 2, 3, 4, 5, 6, 7, 8], offset, data);
    }
    fn write_config(&mut self, _: u64, _: &[u8]) {}
    fn activate(&mut self, a: Activation) -> Result<(), ActivateError> {
        self.0.activations.fetch_add(1, Ordering::SeqCst);
        *self.0.last_features.lock().unwrap() = a.features;
        Ok(())
    }
    fn reset(&mut self) {
        self.0.resets.fetch_add(1, Ordering::SeqCst);
    }
}

struct Wire(Arc<Log>);

impl Wiring for Wire {
    fn attach(&self, w: &Wires) -> std::io::Result<()> {
        assert_eq!((w.notify_gpa, w.intid), (0x0a00_0050, 48));
        self.0.attached.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn detach(&self, _: &Wires) {
        self.0.detached.fetch_add(1, Ordering::SeqCst);
    }
}

fn setup() -> (MmioTransport, Arc<Log>, TestRing) {
    let log = Arc::new(Log::default());
    let ring = TestRing::new(16);
    let t =
        MmioTransport::new(Box::new(Dev(log.clone())), ring.mem.clone(), Arc::new(Wire(log.clone())), 0x0a00_0000, 48)
            .unwrap();
    (t, log, ring)
}

fn rd(t: &MmioTransport, off: u32) -> u32 {
    let mut d = [0u8; 4];
    t.read(0, off as u64, &mut d);
    u32::from_le_bytes(d)
}

fn wr(t: &MmioTransport, off: u32, v: u32) {
    t.write(0, off as u64, &v.to_le_bytes());
}

/// Features written as the driver accepts `f`.
fn negotiate(t: &MmioTransport, f: u64) -> u32 {
    wr(t, reg::VIRTIO_MMIO_STATUS, 1);
    wr(t, reg::VIRTIO_MMIO_STATUS, 3);
    wr(t, reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    wr(t, reg::VIRTIO_MMIO_DRIVER_FEATURES, f as u32);
    wr(t, reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(t, reg::VIRTIO_MMIO_DRIVER_FEATURES, (f >> 32) as u32);
    wr(t, reg::VIRTIO_MMIO_STATUS, 3 | 8);
    rd(t, reg::VIRTIO_MMIO_STATUS)
}

fn set_queue(t: &MmioTransport, sel: u32, size: u32, r: &TestRing) {
    wr(t, reg::VIRTIO_MMIO_QUEUE_SEL, sel);
    wr(t, reg::VIRTIO_MMIO_QUEUE_NUM, size);
    wr(t, reg::VIRTIO_MMIO_QUEUE_DESC_LOW, r.desc as u32);
    wr(t, reg::VIRTIO_MMIO_QUEUE_DESC_HIGH, (r.desc >> 32) as u32);
    wr(t, reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW, r.avail as u32);
    wr(t, reg::VIRTIO_MMIO_QUEUE_USED_LOW, r.used as u32);
    wr(t, reg::VIRTIO_MMIO_QUEUE_READY, 1);
}

#[test]
fn identity_and_feature_pages() {
    let (t, _, _) = setup();
    assert_eq!(rd(&t, 0), 0x7472_6976);
    assert_eq!(rd(&t, 4), 2);
    assert_eq!(rd(&t, 8), 2);
    assert_eq!(rd(&t, 12), VENDOR);
    wr(&t, reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_DEVICE_FEATURES), 1 << 5 | 1 << 29, "device bit and EVENT_IDX");
    wr(&t, reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_DEVICE_FEATURES), 1, "VERSION_1, no ACCESS_PLATFORM");
    wr(&t, reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_DEVICE_FEATURES), 0);
    wr(&t, reg::VIRTIO_MMIO_QUEUE_SEL, 1);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_QUEUE_NUM_MAX), 8);
    wr(&t, reg::VIRTIO_MMIO_QUEUE_SEL, 2);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "no such queue");
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_SHM_LEN_LOW), u32::MAX, "no shared memory");
    let mut b = [0u8; 2];
    t.read(0, 0x102, &mut b);
    assert_eq!(b, [3, 4], "config space at any width");
    let mut odd = [0xffu8; 2];
    t.read(0, 0, &mut odd);
    assert_eq!(odd, [0, 0], "registers are 32-bit");
}

#[test]
fn features_ok_only_for_a_subset_with_version_1() {
    let (t, _, _) = setup();
    assert_eq!(negotiate(&t, 1 << 5), 3, "no VERSION_1: FEATURES_OK refused");
    wr(&t, reg::VIRTIO_MMIO_STATUS, 0);
    assert_eq!(negotiate(&t, F_VERSION_1 | 1 << 6), 3, "a feature not offered");
    wr(&t, reg::VIRTIO_MMIO_STATUS, 0);
    assert_eq!(negotiate(&t, F_VERSION_1 | F_EVENT_IDX | 1 << 5), 11);
    // Closed once FEATURES_OK is set.
    wr(&t, reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    wr(&t, reg::VIRTIO_MMIO_DRIVER_FEATURES, 1 << 6);
    assert_eq!(t.lock().driver_features, F_VERSION_1 | F_EVENT_IDX | 1 << 5);
}

#[test]
fn driver_ok_activates_and_reset_stops() {
    let (t, log, r) = setup();
    assert_eq!(negotiate(&t, F_VERSION_1 | F_EVENT_IDX), 11);
    set_queue(&t, 0, 16, &r);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_QUEUE_READY), 1);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_QUEUE_DESC_LOW), r.desc as u32);
    wr(&t, reg::VIRTIO_MMIO_STATUS, 15);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_STATUS), 15);
    assert_eq!(log.activations.load(Ordering::SeqCst), 1);
    assert_eq!(log.attached.load(Ordering::SeqCst), 1);
    assert_eq!(*log.last_features.lock().unwrap(), F_VERSION_1 | F_EVENT_IDX);
    // Queue registers are closed now.
    wr(&t, reg::VIRTIO_MMIO_QUEUE_NUM, 4);
    assert_eq!(t.lock().queues[0].size, 16);
    // Clearing a bit is not a reset; 0 is.
    wr(&t, reg::VIRTIO_MMIO_STATUS, 7);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_STATUS), 15);
    wr(&t, reg::VIRTIO_MMIO_STATUS, 0);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_STATUS), 0);
    assert_eq!((log.resets.load(Ordering::SeqCst), log.detached.load(Ordering::SeqCst)), (1, 1));
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_QUEUE_READY), 0, "queues forgotten");
    // Dropping a reset transport does nothing more.
    drop(t);
    assert_eq!(log.resets.load(Ordering::SeqCst), 1);
}

#[test]
fn bad_queues_at_driver_ok_need_a_reset() {
    for (size, bad_addr) in [(0, false), (3, false), (32, false), (16, true)] {
        let (t, log, r) = setup();
        negotiate(&t, F_VERSION_1);
        set_queue(&t, 0, size, &r);
        if bad_addr {
            wr(&t, reg::VIRTIO_MMIO_QUEUE_USED_LOW, r.desc as u32 + 8); // overlaps the table
        }
        wr(&t, reg::VIRTIO_MMIO_STATUS, 15);
        assert_eq!(rd(&t, reg::VIRTIO_MMIO_STATUS), 15 | 0x40, "size {size}");
        assert_eq!(rd(&t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 2, "a configuration change");
        assert_eq!(rd(&t, reg::VIRTIO_MMIO_CONFIG_GENERATION), 1);
        assert_eq!(log.activations.load(Ordering::SeqCst), 0);
        wr(&t, reg::VIRTIO_MMIO_STATUS, 0);
        assert_eq!(rd(&t, reg::VIRTIO_MMIO_STATUS), 0, "a reset clears it");
        assert_eq!(rd(&t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 0);
        negotiate(&t, F_VERSION_1);
        set_queue(&t, 0, 16, &r);
        wr(&t, reg::VIRTIO_MMIO_STATUS, 15);
        assert_eq!(rd(&t, reg::VIRTIO_MMIO_STATUS), 15, "then it works");
        assert_eq!(log.activations.load(Ordering::SeqCst), 1);
    }
    // Rings outside guest memory.
    let (t, _, r) = setup();
    negotiate(&t, F_VERSION_1);
    set_queue(&t, 0, 16, &r);
    wr(&t, reg::VIRTIO_MMIO_QUEUE_DESC_HIGH, 1);
    wr(&t, reg::VIRTIO_MMIO_STATUS, 15);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_STATUS) & 0x40, 0x40);
}

#[test]
fn interrupts_and_notifications() {
    let (t, _, _) = setup();
    t.interrupt().signal_used_queue();
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 1);
    wr(&t, reg::VIRTIO_MMIO_INTERRUPT_ACK, 1);
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    t.interrupt().signal_config_change();
    assert_eq!(rd(&t, reg::VIRTIO_MMIO_CONFIG_GENERATION), 1);
    wr(&t, reg::VIRTIO_MMIO_QUEUE_NOTIFY, 1);
    assert_eq!(t.notify_eventfd(1).unwrap().read().unwrap(), 1);
    assert!(t.notify_eventfd(0).unwrap().read().is_err(), "only queue 1's");
    wr(&t, reg::VIRTIO_MMIO_QUEUE_NOTIFY, 7); // no such queue: ignored
}
