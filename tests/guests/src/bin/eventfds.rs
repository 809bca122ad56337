//! The I/O fast paths, against the `eventfds` host program (not bhyve),
//! which registers the eventfds and plays the device. Phases, each started
//! by a write to PHASE (a trip to userspace) and checked by both sides:
//!
//! 1. PARAM (N) writes of 1 to NOTIFY, each completed in the kernel by an
//!    ioeventfd (datamatch 1), then a write of 0 and a 16-bit write there,
//!    which are not its to take and reach the host;
//! 2. edge irqfd on SPI 48, handshaken: the host writes the eventfd, the
//!    handler answers through the ACK ioeventfd (any size), M = N / 10
//!    times: each write is delivered exactly once;
//! 3. edge irqfd, a burst of M writes without waiting: between 1 and M
//!    interrupts (writes that come while one is pending merge);
//! 4. resampling irqfd on SPI 49 (level): 2 K deliveries, the host writing
//!    again on each resample notice; afterwards the line stays low;
//! 5. 10 more NOTIFY writes after the host closed that eventfd.

#![no_std]
#![no_main]

use guests::timer::delay_ms;
use guests::{gic, mmio, println, smccc, testdev, Shared};

guests::entry!(main);

/// The pretend device (a virtio-mmio slot of QEMU `virt`).
const DEV: usize = 0x0A00_0000;
/// Queue notify: ioeventfd, 4 bytes, datamatch 1.
const NOTIFY: usize = DEV + 0x050;
/// The handler's acknowledgements: ioeventfd, any size.
const ACK: usize = DEV + 0x060;
/// Write: the phase starting (to the host program).
const PHASE: usize = DEV + 0x070;
/// Read: the last phase the host's device thread finished.
const STATUS: usize = DEV + 0x078;
/// Edge irqfd's SPI (virtio-mmio slot 16).
const EDGE: u32 = 48;
/// Resampling irqfd's SPI.
const LEVEL: u32 = 49;
/// Resample rounds (two deliveries each).
const ROUNDS: u64 = 50;

static EDGES: Shared<u64> = Shared::new(0);
static LEVELS: Shared<u64> = Shared::new(0);

fn write(addr: usize, v: u64) {
    // SAFETY: the host program's device registers, outside RAM.
    unsafe { mmio::str_w(addr, v) }
}

fn on_edge(_: u32) {
    EDGES.increment();
    write(ACK, EDGES.get());
}

fn on_level(_: u32) {
    LEVELS.increment();
}

/// Polls (interrupts taken meanwhile) until the host's device thread
/// finished `phase`. Not in WFI: the register changing is no interrupt.
fn host_done(phase: u64) {
    gic::irq_unmask();
    // SAFETY: a device register outside RAM; reading has no side effect.
    while unsafe { mmio::ldr_x(STATUS) } < phase {}
}

fn main() -> ! {
    let n = testdev::param().max(10);
    let m = n / 10;
    let mut ok = true;
    gic::init_distributor();
    gic::init_cpu();
    // SPI 48 edge-triggered (GICD_ICFGR3, its field's bit 1), 49 level.
    // SAFETY: the distributor's ICFGR3, read-modify-write of our bits.
    unsafe {
        let icfgr = gic::GICD_BASE + 0x0c00 + 4 * (EDGE as usize / 16);
        let v = mmio::ldr_w(icfgr) | 2 << (2 * (EDGE % 16));
        mmio::str_w(icfgr, v);
    }
    for (intid, h) in [(EDGE, on_edge as gic::Handler), (LEVEL, on_level)] {
        gic::set_handler(intid, h);
        gic::route_to_self(intid);
        gic::enable(intid);
    }

    write(PHASE, 1);
    for _ in 0..n {
        write(NOTIFY, 1);
    }
    write(NOTIFY, 0);
    // SAFETY: as in `write`.
    unsafe { mmio::strh(NOTIFY, 1) };
    println!("eventfds: ioeventfd: {n} notify writes done");

    write(PHASE, 2);
    gic::irq_unmask();
    gic::wait_until(|| EDGES.get() >= m);
    host_done(2);
    let handshaken = EDGES.get();
    ok &= handshaken == m;
    println!("eventfds: edge: {handshaken} interrupts for {m} handshaken writes");

    write(PHASE, 3);
    host_done(3);
    delay_ms(5);
    let burst = EDGES.get() - handshaken;
    ok &= (1..=m).contains(&burst);
    println!("eventfds: burst: {burst} interrupts for {m} writes (1..={m} expected)");

    write(PHASE, 4);
    gic::wait_until(|| LEVELS.get() >= 2 * ROUNDS);
    host_done(4);
    delay_ms(20);
    let (levels, pending) = (LEVELS.get(), gic::is_pending(LEVEL));
    ok &= levels == 2 * ROUNDS && !pending;
    println!("eventfds: resample: {levels} interrupts for {} asserts, pending afterwards: {pending}", 2 * ROUNDS);

    write(PHASE, 5);
    for _ in 0..10 {
        write(NOTIFY, 1);
    }
    println!("eventfds: {}", if ok { "ok" } else { "FAIL" });
    write(PHASE, 6);
    smccc::system_off()
}
