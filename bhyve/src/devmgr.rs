//! The device manager: the one place that decides where a device lives.
//!
//! A [`Slot`] names a place of the machine (the console UART, the RTC, the
//! test device, virtio-mmio transport n); [`Slot::placement`] gives its
//! MMIO window, its interrupt and the interrupt's trigger, from the
//! constants of [`crate::layout`]. [`DeviceManager::add`] puts a device on
//! the bus at its slot's window and records the placement; the device tree
//! is written from those records ([`crate::fdt`]), so the bus and the tree
//! agree by construction: a device is in the tree exactly when it is on the
//! bus, at the same address, with the interrupt it was built with.

use crate::bus::{Bus, BusDevice, BusError};
use crate::layout::{
    FLASH_BASE, FLASH_SIZE, PL011_BASE, PL011_SIZE, PL011_SPI, PL031_BASE, PL031_SIZE, TESTDEV_BASE, TESTDEV_SIZE,
    TESTDEV_SPI, VIRTIO_MMIO_BASE, VIRTIO_MMIO_COUNT, VIRTIO_MMIO_SIZE, VIRTIO_MMIO_SPI,
};
use std::sync::Arc;

/// A place in the machine for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    /// The CFI flash's two banks (`-o bootrom`).
    Flash,
    /// The PL011 UART, the console.
    Pl011,
    /// The PL031 real-time clock.
    Pl031,
    /// The project's test device (`-o testdev`); not in the device tree.
    TestDev,
    /// virtio-mmio transport n, 0 to [`VIRTIO_MMIO_COUNT`] - 1 (bhyve's `-s n`).
    VirtioMmio(u32),
}

/// How an interrupt is triggered, as the device tree says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Level-sensitive, active high: the device holds the line.
    Level,
    /// Rising edge: each signal is one pulse.
    Edge,
}

/// Where a device lives: its MMIO window and its interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The place.
    pub slot: Slot,
    /// First address of its window.
    pub base: u64,
    /// Bytes of its window.
    pub size: u64,
    /// Its SPI as an INTID (32 and up), if it has one, and the trigger.
    pub irq: Option<(u32, Trigger)>,
}

/// Why a device cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    /// A virtio-mmio transport number beyond the last.
    #[error("there is no virtio-mmio transport {0} (they are 0 to {max})", max = VIRTIO_MMIO_COUNT - 1)]
    NoTransport(u32),
    /// The slot is taken.
    #[error("{0:?} is taken")]
    Taken(Slot),
    /// The bus refused the window (a bug in the layout).
    #[error("{0}")]
    Bus(BusError),
}

impl Slot {
    /// The slot's window and interrupt.
    pub fn placement(self) -> Result<Placement, PlaceError> {
        let (base, size, irq) = match self {
            Slot::Flash => (FLASH_BASE, FLASH_SIZE, None),
            Slot::Pl011 => (PL011_BASE, PL011_SIZE, Some((PL011_SPI, Trigger::Level))),
            // bhyve's PL031 has no alarm, so no interrupt.
            Slot::Pl031 => (PL031_BASE, PL031_SIZE, None),
            Slot::TestDev => (TESTDEV_BASE, TESTDEV_SIZE, Some((TESTDEV_SPI, Trigger::Level))),
            Slot::VirtioMmio(n) if n < VIRTIO_MMIO_COUNT => (
                VIRTIO_MMIO_BASE + n as u64 * VIRTIO_MMIO_SIZE,
                VIRTIO_MMIO_SIZE,
                Some((VIRTIO_MMIO_SPI + n, Trigger::Edge)),
            ),
            Slot::VirtioMmio(n) => return Err(PlaceError::NoTransport(n)),
        };
        Ok(Placement { slot: self, base, size, irq })
    }
}

impl Placement {
    /// The SPI's INTID, if the device has one.
    pub fn intid(&self) -> Option<u32> {
        self.irq.map(|(i, _)| i)
    }
}

/// The devices of the machine: the bus they are on and where each is.
#[derive(Default)]
pub struct DeviceManager {
    bus: Bus,
    placed: Vec<Placement>,
}

impl DeviceManager {
    /// No devices yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `dev` on the bus at `slot`'s window. Returns the placement.
    pub fn add(&mut self, slot: Slot, dev: Arc<dyn BusDevice>) -> Result<Placement, PlaceError> {
        let p = slot.placement()?;
        if self.placed.iter().any(|q| q.slot == slot) {
            return Err(PlaceError::Taken(slot));
        }
        self.bus.insert(dev, p.base, p.size).map_err(PlaceError::Bus)?;
        self.placed.push(p);
        Ok(p)
    }

    /// Every device placed, in the order they were added.
    pub fn placements(&self) -> &[Placement] {
        &self.placed
    }

    /// The bus the vCPUs dispatch to.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::RAM_BASE;

    struct Nothing;
    impl BusDevice for Nothing {
        fn read(&self, _: u64, _: u64, data: &mut [u8]) {
            data.fill(0);
        }
        fn write(&self, _: u64, _: u64, _: &[u8]) {}
    }

    fn all_slots() -> Vec<Slot> {
        let mut v = vec![Slot::Flash, Slot::Pl011, Slot::Pl031, Slot::TestDev];
        v.extend((0..VIRTIO_MMIO_COUNT).map(Slot::VirtioMmio));
        v
    }

    #[test]
    fn every_slot_fits_without_overlap_below_ram() {
        let mut m = DeviceManager::new();
        for s in all_slots() {
            let p = m.add(s, Arc::new(Nothing)).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert!(p.base + p.size <= RAM_BASE, "{s:?}");
        }
        assert_eq!(m.placements().len(), 4 + 32);
        let mut spis: Vec<u32> = m.placements().iter().filter_map(Placement::intid).collect();
        let n = spis.len();
        spis.sort();
        spis.dedup();
        assert_eq!(spis.len(), n, "no SPI shared");
        assert!(spis.iter().all(|&i| (32..32 + 128).contains(&i)), "within the vGIC's 128 SPIs");
    }

    #[test]
    fn virtio_mmio_is_where_qemu_virt_has_it() {
        let p = Slot::VirtioMmio(0).placement().unwrap();
        assert_eq!((p.base, p.size, p.irq), (0x0a00_0000, 0x200, Some((48, Trigger::Edge))));
        let p = Slot::VirtioMmio(31).placement().unwrap();
        assert_eq!((p.base, p.irq), (0x0a00_3e00, Some((79, Trigger::Edge))));
        assert_eq!(Slot::VirtioMmio(32).placement(), Err(PlaceError::NoTransport(32)));
        assert_eq!(PlaceError::NoTransport(32).to_string(), "there is no virtio-mmio transport 32 (they are 0 to 31)");
    }

    #[test]
    fn a_slot_is_taken_once() {
        let mut m = DeviceManager::new();
        m.add(Slot::VirtioMmio(3), Arc::new(Nothing)).unwrap();
        assert_eq!(m.add(Slot::VirtioMmio(3), Arc::new(Nothing)), Err(PlaceError::Taken(Slot::VirtioMmio(3))));
        assert_eq!(m.placements().len(), 1);
        assert!(m.bus().get(0x0a00_0600).is_some() && m.bus().get(0x0a00_0400).is_none());
    }
}
