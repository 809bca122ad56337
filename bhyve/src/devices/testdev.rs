//! The test device (`-o testdev`): registers that let test guests check
//! MMIO emulation of every access size, and that bhyve's own FP/SIMD state
//! survives running the guest.
//!
//! | offset | register | access |
//! | --- | --- | --- |
//! | 0x000 | PATTERN: `0xF0E1_D2C3_B4A5_9687` | read |
//! | 0x008 | PARAM: `-o testdev.param=N` | read |
//! | 0x010 | CHECK: compares a write with PATTERN of the same size | write |
//! | 0x018 | LAST_SIZE: size of the last CHECK write (0 before one) | read |
//! | 0x020 | FPWORK: does f64 work in bhyve, returns a counter from 1 | read |
//! | 0x028 | IRQ_LINE: 1 raises, 0 lowers the device's interrupt (SPI 40) | write |
//!
//! Registers are 8 bytes apart and behave like memory within their 8 bytes:
//! an access of `n` bytes at register offset `k` sees bytes `k..k+n` of the
//! value. Reads of write-only or unknown registers return 0; writes to
//! read-only or unknown registers are ignored (and counted).

use super::irq::{Interrupt, NoInterrupt};
use super::{get_le, put_le};
use crate::bus::BusDevice;
use std::hint::black_box;
use std::sync::{Mutex, MutexGuard};

/// What PATTERN reads as.
pub const PATTERN: u64 = 0xF0E1_D2C3_B4A5_9687;

/// Register offsets.
pub mod reg {
    /// The pattern, read-only.
    pub const PATTERN: u64 = 0x000;
    /// The parameter from the command line, read-only.
    pub const PARAM: u64 = 0x008;
    /// Checked writes, write-only.
    pub const CHECK: u64 = 0x010;
    /// Size of the last CHECK write, read-only.
    pub const LAST_SIZE: u64 = 0x018;
    /// FP work and a counter, read-only.
    pub const FPWORK: u64 = 0x020;
    /// The interrupt line, write-only.
    pub const IRQ_LINE: u64 = 0x028;
}

/// What the guest did, for the line bhyve prints at exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestDevStats {
    /// Reads of any register.
    pub reads: u64,
    /// Writes to any register.
    pub writes: u64,
    /// CHECK writes that matched PATTERN.
    pub good: u64,
    /// CHECK writes that did not.
    pub bad: u64,
    /// FPWORK reads whose arithmetic came out wrong.
    pub fp_mismatches: u64,
}

impl TestDevStats {
    /// The line printed at exit: `testdev: R reads, W writes (G good, B bad),
    /// F FP mismatches`, and `, H host FP mismatches` when bhyve checked its
    /// registers around each guest run.
    pub fn summary(&self, host_fp_mismatches: Option<u64>) -> String {
        let mut s = format!(
            "testdev: {} reads, {} writes ({} good, {} bad), {} FP mismatches",
            self.reads, self.writes, self.good, self.bad, self.fp_mismatches
        );
        if let Some(h) = host_fp_mismatches {
            s.push_str(&format!(", {h} host FP mismatches"));
        }
        s
    }
}

#[derive(Default)]
struct State {
    stats: TestDevStats,
    last_size: u64,
    fp_counter: u64,
    /// Sum of all FPWORK steps so far, kept across reads so that a clobbered
    /// value between two reads shows too.
    fp_acc: f64,
}

/// The test device. Its registers and counters sit behind one lock, so
/// several vCPUs may use it at once (FPWORK's arithmetic runs on whichever
/// vCPU thread reads it).
pub struct TestDev {
    param: u64,
    irq: Box<dyn Interrupt>,
    state: Mutex<State>,
}

const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<TestDev>();
};

/// Bytes `k..k+n` of `value`, as the low bytes of the result.
fn window(value: u64, k: u64, n: usize) -> u64 {
    let v = value >> (8 * k);
    if n >= 8 {
        v
    } else {
        v & ((1u64 << (8 * n)) - 1)
    }
}

/// One FPWORK step. Each check's result depends on state that a guest
/// leaking into bhyve's FP registers would change: the rounding mode
/// (1/3 and 0.1 sums round differently), flush-to-zero (a subnormal result),
/// and the accumulator. Returns how many checks failed.
fn fp_step(acc: &mut f64, count: u64) -> u64 {
    let mut bad = 0;
    // black_box keeps the compiler from folding the arithmetic away.
    let third = black_box(1.0f64) / black_box(3.0f64);
    if third.to_bits() != 0x3FD5_5555_5555_5555 {
        bad += 1;
    }
    let mut tenth_sum = 0.0f64;
    for _ in 0..10 {
        tenth_sum += black_box(0.1f64);
    }
    if tenth_sum.to_bits() != 0x3FEF_FFFF_FFFF_FFFF {
        bad += 1;
    }
    let tiny = black_box(f64::MIN_POSITIVE) / black_box(4.0f64);
    if tiny.to_bits() != 0x0004_0000_0000_0000 {
        bad += 1;
    }
    // 1 + 2 + ... + 16 = 136 halves: exact, so after n steps acc is 68n.
    for i in 1..=16 {
        *acc += black_box(i as f64) * black_box(0.5f64);
    }
    if *acc != 68.0 * count as f64 {
        bad += 1;
    }
    bad
}

impl TestDev {
    /// A test device whose PARAM reads as `param`, with no interrupt line.
    pub fn new(param: u64) -> Self {
        Self::with_irq(param, Box::new(NoInterrupt))
    }

    /// A test device whose IRQ_LINE register drives `irq`.
    pub fn with_irq(param: u64, irq: Box<dyn Interrupt>) -> Self {
        Self { param, irq, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain counters: still meaningful after a panic elsewhere.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the guest did so far.
    pub fn stats(&self) -> TestDevStats {
        self.lock().stats
    }
}

impl BusDevice for TestDev {
    fn read(&self, _base: u64, offset: u64, data: &mut [u8]) {
        let mut s = self.lock();
        s.stats.reads += 1;
        let (reg, k) = (offset & !7, offset & 7);
        let value = match reg {
            reg::PATTERN => PATTERN,
            reg::PARAM => self.param,
            reg::LAST_SIZE => s.last_size,
            reg::FPWORK => {
                s.fp_counter += 1;
                let count = s.fp_counter;
                let bad = fp_step(&mut s.fp_acc, count);
                s.stats.fp_mismatches += bad;
                count
            }
            _ => 0,
        };
        put_le(data, window(value, k, data.len()));
    }

    fn write(&self, _base: u64, offset: u64, data: &[u8]) {
        let mut s = self.lock();
        s.stats.writes += 1;
        if offset & !7 == reg::CHECK {
            let expected = window(PATTERN, offset & 7, data.len());
            if get_le(data) == expected && matches!(data.len(), 1 | 2 | 4 | 8) {
                s.stats.good += 1;
            } else {
                s.stats.bad += 1;
            }
            s.last_size = data.len() as u64;
        } else if offset == reg::IRQ_LINE {
            self.irq.set_level(get_le(data) != 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(d: &TestDev, off: u64, n: usize) -> u64 {
        let mut b = vec![0xaau8; n];
        d.read(0x0B00_0000, off, &mut b);
        get_le(&b)
    }

    #[test]
    fn irq_line_drives_the_interrupt() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        struct Line(Arc<AtomicBool>);
        impl Interrupt for Line {
            fn set_level(&self, level: bool) {
                self.0.store(level, Ordering::SeqCst);
            }
        }
        let level = Arc::new(AtomicBool::new(false));
        let d = TestDev::with_irq(0, Box::new(Line(level.clone())));
        d.write(0x0B00_0000, reg::IRQ_LINE, &1u32.to_le_bytes());
        assert!(level.load(Ordering::SeqCst));
        d.write(0x0B00_0000, reg::IRQ_LINE, &0u32.to_le_bytes());
        assert!(!level.load(Ordering::SeqCst));
    }

    #[test]
    fn pattern_in_every_size() {
        let d = TestDev::new(0);
        assert_eq!(read(&d, reg::PATTERN, 1), 0x87);
        assert_eq!(read(&d, reg::PATTERN, 2), 0x9687);
        assert_eq!(read(&d, reg::PATTERN, 4), 0xB4A5_9687);
        assert_eq!(read(&d, reg::PATTERN, 8), PATTERN);
        assert_eq!(read(&d, 1, 1), 0x96, "memory-like within the register");
        assert_eq!(read(&d, 4, 4), 0xF0E1_D2C3);
        assert_eq!(d.stats().reads, 6);
    }

    #[test]
    fn param_is_read_only() {
        let d = TestDev::new(0x1234_5678_9abc_def0);
        assert_eq!(read(&d, reg::PARAM, 8), 0x1234_5678_9abc_def0);
        assert_eq!(read(&d, reg::PARAM, 2), 0xdef0);
        d.write(0, reg::PARAM, &[0; 8]);
        d.write(0, reg::PATTERN, &[0; 8]);
        assert_eq!(read(&d, reg::PARAM, 8), 0x1234_5678_9abc_def0);
        assert_eq!(read(&d, reg::PATTERN, 8), PATTERN);
        let s = d.stats();
        assert_eq!((s.writes, s.good, s.bad), (2, 0, 0), "counted, neither good nor bad");
    }

    #[test]
    fn check_counts_good_and_bad_writes() {
        let d = TestDev::new(0);
        assert_eq!(read(&d, reg::LAST_SIZE, 8), 0);
        d.write(0, reg::CHECK, &[0x87]);
        assert_eq!(read(&d, reg::LAST_SIZE, 8), 1);
        d.write(0, reg::CHECK, &0x9687u16.to_le_bytes());
        d.write(0, reg::CHECK, &0xB4A5_9687u32.to_le_bytes());
        d.write(0, reg::CHECK, &PATTERN.to_le_bytes());
        assert_eq!(read(&d, reg::LAST_SIZE, 4), 8);
        d.write(0, reg::CHECK, &0x9688u16.to_le_bytes());
        assert_eq!(read(&d, reg::LAST_SIZE, 1), 2);
        d.write(0, reg::CHECK, &PATTERN.to_le_bytes()[..4].iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(read(&d, reg::CHECK, 8), 0, "write-only");
        let s = d.stats();
        assert_eq!((s.writes, s.good, s.bad), (6, 4, 2));
        assert_eq!(s.reads, 5);
        assert_eq!(s.summary(None), "testdev: 5 reads, 6 writes (4 good, 2 bad), 0 FP mismatches");
    }

    #[test]
    fn fpwork_counts_up_and_finds_no_mismatch_here() {
        let d = TestDev::new(0);
        for i in 1..=100u64 {
            assert_eq!(read(&d, reg::FPWORK, 8), i);
        }
        assert_eq!(read(&d, reg::FPWORK, 1), 101);
        assert_eq!(d.stats().fp_mismatches, 0);
    }

    #[test]
    fn fp_step_notices_a_clobbered_accumulator() {
        let mut acc = 0.0;
        assert_eq!(fp_step(&mut acc, 1), 0);
        assert_eq!(acc, 68.0);
        acc = 1.0;
        assert_eq!(fp_step(&mut acc, 2), 1);
    }

    #[test]
    fn fpwork_from_several_vcpus_at_once() {
        let d = std::sync::Arc::new(TestDev::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let d = d.clone();
                std::thread::spawn(move || (0..250).map(|_| read(&d, reg::FPWORK, 8)).collect::<Vec<_>>())
            })
            .collect();
        let mut counts: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        counts.sort();
        assert_eq!(counts, (1..=1000).collect::<Vec<_>>(), "each count once");
        assert_eq!(d.stats().fp_mismatches, 0, "the accumulator kept pace with the counter");
    }

    #[test]
    fn unknown_offsets() {
        let d = TestDev::new(7);
        assert_eq!(read(&d, 0x028, 8), 0);
        assert_eq!(read(&d, 0xff8, 8), 0);
        d.write(0, 0x100, &[1, 2, 3, 4]);
        assert_eq!(d.stats().writes, 1);
        assert_eq!(d.stats().good + d.stats().bad, 0);
    }

    #[test]
    fn summary_with_host_check() {
        let s = TestDevStats { reads: 8, writes: 4, good: 4, bad: 0, fp_mismatches: 0 };
        assert_eq!(
            s.summary(Some(0)),
            "testdev: 8 reads, 4 writes (4 good, 0 bad), 0 FP mismatches, 0 host FP mismatches"
        );
    }
}
