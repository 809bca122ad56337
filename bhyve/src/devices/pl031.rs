//! The PL031 real-time clock at `0x0901_0000`, as Linux's `rtc-pl031`
//! driver uses it: a seconds counter the guest reads (DR) and sets (LR),
//! running from the host's clock. The match register and interrupt mask are
//! kept but no alarm fires (the device tree gives it no interrupt, so the
//! guest does not expect one).

use super::{get_le, put_le};
use crate::bus::BusDevice;
use std::sync::Mutex;

/// Register offsets.
pub mod reg {
    /// Data: the counter, read-only.
    pub const DR: u64 = 0x000;
    /// Match.
    pub const MR: u64 = 0x004;
    /// Load: a write sets the counter.
    pub const LR: u64 = 0x008;
    /// Control: bit 0 starts the counter (it always runs).
    pub const CR: u64 = 0x00c;
    /// Interrupt mask.
    pub const IMSC: u64 = 0x010;
    /// Raw interrupt status.
    pub const RIS: u64 = 0x014;
    /// Masked interrupt status.
    pub const MIS: u64 = 0x018;
    /// Interrupt clear, write-only.
    pub const ICR: u64 = 0x01c;
    /// First of the eight PrimeCell identification registers.
    pub const ID: u64 = 0xfe0;
}

/// PeriphID0..3 (part 0x031, designer ARM) and PCellID0..3.
const IDS: [u8; 8] = [0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

#[derive(Default)]
struct State {
    /// Counter minus the host's clock, in seconds.
    offset: i64,
    mr: u32,
    imsc: u32,
}

/// A PL031 whose time comes from `now` (seconds since the epoch).
pub struct Pl031<F> {
    now: F,
    state: Mutex<State>,
}

impl<F: Fn() -> u64 + Send + Sync> Pl031<F> {
    /// A clock that reads as `now()` until the guest loads another time.
    pub fn new(now: F) -> Self {
        Self { now, state: Mutex::new(State::default()) }
    }

    fn counter(&self, s: &State) -> u32 {
        // The PL031 counter is 32 bits; it wraps in 2106.
        ((self.now)() as i64).wrapping_add(s.offset) as u32
    }
}

/// The host's clock in seconds since the epoch.
pub fn host_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl<F: Fn() -> u64 + Send + Sync> BusDevice for Pl031<F> {
    fn read(&self, _base: u64, offset: u64, data: &mut [u8]) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let v: u32 = match offset {
            reg::DR => self.counter(&s),
            reg::MR => s.mr,
            reg::LR => self.counter(&s),
            reg::CR => 1,
            reg::IMSC => s.imsc,
            reg::ID..=0xffc if offset.is_multiple_of(4) => u32::from(IDS[((offset - reg::ID) / 4) as usize]),
            _ => 0,
        };
        put_le(data, u64::from(v));
    }

    fn write(&self, _base: u64, offset: u64, data: &[u8]) {
        let v = get_le(data) as u32;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match offset {
            reg::MR => s.mr = v,
            reg::LR => s.offset = i64::from(v) - (self.now)() as i64,
            reg::IMSC => s.imsc = v & 1,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn r32(d: &impl BusDevice, off: u64) -> u32 {
        let mut b = [0u8; 4];
        d.read(0x0901_0000, off, &mut b);
        u32::from_le_bytes(b)
    }

    fn w32(d: &impl BusDevice, off: u64, v: u32) {
        d.write(0x0901_0000, off, &v.to_le_bytes());
    }

    #[test]
    fn counts_host_seconds_and_loads() {
        let t = Arc::new(AtomicU64::new(1_800_000_000));
        let t2 = t.clone();
        let rtc = Pl031::new(move || t2.load(Ordering::SeqCst));
        assert_eq!(r32(&rtc, reg::DR), 1_800_000_000);
        t.fetch_add(5, Ordering::SeqCst);
        assert_eq!(r32(&rtc, reg::DR), 1_800_000_005);
        w32(&rtc, reg::LR, 1000);
        assert_eq!(r32(&rtc, reg::DR), 1000);
        t.fetch_add(7, Ordering::SeqCst);
        assert_eq!(r32(&rtc, reg::DR), 1007, "runs on from the loaded time");
        w32(&rtc, reg::DR, 5);
        assert_eq!(r32(&rtc, reg::DR), 1007, "DR is read-only");
    }

    #[test]
    fn registers_and_ids() {
        let rtc = Pl031::new(|| 0);
        assert_eq!(r32(&rtc, reg::CR), 1, "always started");
        w32(&rtc, reg::MR, 77);
        w32(&rtc, reg::IMSC, 3);
        assert_eq!((r32(&rtc, reg::MR), r32(&rtc, reg::IMSC)), (77, 1));
        assert_eq!((r32(&rtc, reg::RIS), r32(&rtc, reg::MIS)), (0, 0), "no alarm fires");
        let ids: Vec<u32> = (0..8).map(|i| r32(&rtc, reg::ID + 4 * i)).collect();
        assert_eq!(ids, vec![0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        assert_eq!(r32(&rtc, 0x800), 0);
    }

    #[test]
    fn host_clock_is_now() {
        assert!(host_seconds() > 1_700_000_000);
    }
}
