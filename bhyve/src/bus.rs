//! The MMIO bus: devices by guest-physical range, found by address.
//!
//! Devices take `&self` and keep their state behind their own locks, so the
//! bus needs none and vCPU threads (and the console thread) reach devices
//! concurrently.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A device on the bus. `base` is where the device's window starts, `offset`
/// the accessed address minus `base`, and `data` is 1, 2, 4 or 8 bytes in the
/// guest's (little-endian) byte order.
pub trait BusDevice: Send + Sync {
    /// A guest read: fill `data`.
    fn read(&self, base: u64, offset: u64, data: &mut [u8]);
    /// A guest write of `data`.
    fn write(&self, base: u64, offset: u64, data: &[u8]);
}

/// A range of guest physical addresses, `base .. base + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusRange {
    /// First address.
    pub base: u64,
    /// Length in bytes (non-zero).
    pub len: u64,
}

impl BusRange {
    /// The last address in the range (`len` is never 0 on the bus).
    pub fn last(&self) -> u64 {
        self.base + (self.len - 1)
    }

    /// Whether `addr` lies in the range.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < self.len
    }
}

impl std::fmt::Display for BusRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#010x}..={:#010x}", self.base, self.last())
    }
}

/// Why a device could not be placed, or an access not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// A device with an empty window.
    #[error("device at {base:#010x} has a zero-length window")]
    ZeroLength {
        /// Where it was to go.
        base: u64,
    },
    /// A window that runs past the end of the address space.
    #[error("device window at {base:#010x} of {len:#x} bytes wraps around the address space")]
    Overflow {
        /// Where it was to go.
        base: u64,
        /// Its length.
        len: u64,
    },
    /// A window that overlaps one already on the bus.
    #[error("device window {new} overlaps the device at {old}")]
    Overlap {
        /// The window being added.
        new: BusRange,
        /// The window already there.
        old: BusRange,
    },
    /// No device at the address.
    #[error("no device there")]
    NoDevice,
    /// The access starts in a device's window and runs past its end.
    #[error("the access runs past the end of the device at {0}")]
    PastEnd(BusRange),
}

/// Devices by the base of their window.
#[derive(Default)]
pub struct Bus {
    devices: BTreeMap<u64, (BusRange, Arc<dyn BusDevice>)>,
}

// Every vCPU thread uses the bus at once; it is never changed once they run.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Bus>();
};

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `device` at `base .. base + len`, which must be non-empty, must
    /// not wrap, and must not overlap another device.
    pub fn insert(&mut self, device: Arc<dyn BusDevice>, base: u64, len: u64) -> Result<(), BusError> {
        if len == 0 {
            return Err(BusError::ZeroLength { base });
        }
        base.checked_add(len - 1).ok_or(BusError::Overflow { base, len })?;
        let new = BusRange { base, len };
        // Only two neighbours can overlap: the last window starting at or
        // below `base`, and the first starting above it.
        let below = self.devices.range(..=base).next_back();
        let above = self.devices.range(base..).next();
        for (_, (old, _)) in below.into_iter().chain(above) {
            if old.base <= new.last() && new.base <= old.last() {
                return Err(BusError::Overlap { new, old: *old });
            }
        }
        self.devices.insert(base, (new, device));
        Ok(())
    }

    /// The device whose window holds `addr`, and its window.
    pub fn get(&self, addr: u64) -> Option<(BusRange, &Arc<dyn BusDevice>)> {
        let (_, (range, dev)) = self.devices.range(..=addr).next_back()?;
        range.contains(addr).then_some((*range, dev))
    }

    /// The device an access of `len` bytes at `addr` goes to; all of the
    /// access must lie in its window.
    fn route(&self, addr: u64, len: usize) -> Result<(BusRange, &Arc<dyn BusDevice>), BusError> {
        let (range, dev) = self.get(addr).ok_or(BusError::NoDevice)?;
        let offset = addr - range.base;
        if (len as u64).saturating_sub(1) > range.len - 1 - offset {
            return Err(BusError::PastEnd(range));
        }
        Ok((range, dev))
    }

    /// Delivers a read of `data.len()` bytes at `addr`.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> Result<(), BusError> {
        let (range, dev) = self.route(addr, data.len())?;
        dev.read(range.base, addr - range.base, data);
        Ok(())
    }

    /// Delivers a write of `data` at `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), BusError> {
        let (range, dev) = self.route(addr, data.len())?;
        dev.write(range.base, addr - range.base, data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// 'r' or 'w', base, offset, data.
    type Access = (char, u64, u64, Vec<u8>);

    /// Records accesses; reads return the offset as bytes.
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<Access>>,
    }

    impl BusDevice for Recorder {
        fn read(&self, base: u64, offset: u64, data: &mut [u8]) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = offset as u8 + i as u8;
            }
            self.log.lock().unwrap().push(('r', base, offset, data.to_vec()));
        }
        fn write(&self, base: u64, offset: u64, data: &[u8]) {
            self.log.lock().unwrap().push(('w', base, offset, data.to_vec()));
        }
    }

    fn dev() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    #[test]
    fn routes_by_address_with_offsets() {
        let mut bus = Bus::new();
        let a = dev();
        let b = dev();
        bus.insert(a.clone(), 0x1000, 0x100).unwrap();
        bus.insert(b.clone(), 0x2000, 0x1000).unwrap();
        let mut d = [0u8; 4];
        bus.read(0x1010, &mut d).unwrap();
        assert_eq!(d, [0x10, 0x11, 0x12, 0x13]);
        bus.write(0x2ff8, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(a.log.lock().unwrap()[0], ('r', 0x1000, 0x10, vec![0x10, 0x11, 0x12, 0x13]));
        assert_eq!(b.log.lock().unwrap()[0], ('w', 0x2000, 0xff8, vec![1, 2, 3, 4, 5, 6, 7, 8]));
        assert!(bus.get(0x10ff).is_some());
        assert_eq!(bus.get(0x1000).unwrap().0, BusRange { base: 0x1000, len: 0x100 });
    }

    #[test]
    fn holes_are_no_device() {
        let mut bus = Bus::new();
        bus.insert(dev(), 0x1000, 0x100).unwrap();
        let mut d = [0u8; 8];
        assert_eq!(bus.read(0xfff, &mut d[..1]), Err(BusError::NoDevice));
        assert_eq!(bus.read(0x1100, &mut d), Err(BusError::NoDevice));
        assert_eq!(bus.write(0, &d), Err(BusError::NoDevice));
        assert_eq!(bus.write(u64::MAX, &d[..1]), Err(BusError::NoDevice));
        assert!(Bus::new().get(0x1000).is_none());
    }

    #[test]
    fn accesses_past_the_end_are_refused() {
        let mut bus = Bus::new();
        let r = BusRange { base: 0x1000, len: 0x100 };
        bus.insert(dev(), r.base, r.len).unwrap();
        let mut d = [0u8; 8];
        assert_eq!(bus.read(0x10fc, &mut d), Err(BusError::PastEnd(r)));
        assert!(bus.read(0x10f8, &mut d).is_ok(), "exactly to the end");
        assert!(bus.read(0x10ff, &mut d[..1]).is_ok());
        assert_eq!(bus.write(0x10ff, &d[..2]), Err(BusError::PastEnd(r)));
        let mut top = Bus::new();
        top.insert(dev(), u64::MAX - 7, 8).unwrap();
        assert!(top.read(u64::MAX - 7, &mut d).is_ok(), "a window ending at the top");
        assert!(top.read(u64::MAX - 3, &mut d).is_err());
    }

    #[test]
    fn insertion_is_checked() {
        let mut bus = Bus::new();
        assert_eq!(bus.insert(dev(), 0x1000, 0), Err(BusError::ZeroLength { base: 0x1000 }));
        assert_eq!(bus.insert(dev(), u64::MAX, 2), Err(BusError::Overflow { base: u64::MAX, len: 2 }));
        assert!(bus.insert(dev(), u64::MAX, 1).is_ok(), "the last byte is fine");
        bus.insert(dev(), 0x1000, 0x100).unwrap();
        let old = BusRange { base: 0x1000, len: 0x100 };
        for (base, len) in [(0x1000, 0x100), (0xf00, 0x101), (0x10ff, 1), (0x1080, 0x10), (0x800, 0x1000)] {
            assert_eq!(
                bus.insert(dev(), base, len),
                Err(BusError::Overlap { new: BusRange { base, len }, old }),
                "{base:#x}+{len:#x}"
            );
        }
        assert!(bus.insert(dev(), 0xf00, 0x100).is_ok(), "touching below");
        assert!(bus.insert(dev(), 0x1100, 0x100).is_ok(), "touching above");
        assert!(matches!(bus.insert(dev(), 0x1050, 0x200), Err(BusError::Overlap { .. })));
    }

    #[test]
    fn messages() {
        let e = BusError::Overlap {
            new: BusRange { base: 0x0900_0800, len: 0x1000 },
            old: BusRange { base: 0x0900_0000, len: 0x1000 },
        };
        assert_eq!(
            e.to_string(),
            "device window 0x09000800..=0x090017ff overlaps the device at 0x09000000..=0x09000fff"
        );
        assert_eq!(BusError::NoDevice.to_string(), "no device there");
    }
}
