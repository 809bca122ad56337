//! Interrupt benchmarks (run with `bhyve -c 2`), timed with CNTVCT_EL0,
//! which under QEMU -icount converts to instructions executed:
//! - a read of a distributor register (GICD_IIDR), emulated in the kernel;
//! - a virtual IPI round trip: vCPU 0 sends SGI 1 to vCPU 1, sleeping in
//!   WFI, whose handler answers with SGI 2; vCPU 0 sleeps in WFI until that
//!   arrives (both sides block, as real code does);
//! - virtual timer delivery: from the timer's compare value to the guest's
//!   handler, summed over the ticks.
//!
//! N = testdev PARAM (default 1000).

#![no_std]
#![no_main]

use guests::timer::{cntfrq, cntvct, poll_for, Timer};
use guests::{gic, mmio, println, smccc, testdev, Shared};

guests::entry!(main);
guests::secondary_entry!(secondary);

const SGI: u32 = 1;
const SGI_BACK: u32 = 2;
const CPU1: u64 = 1;
const GICD_IIDR: usize = gic::GICD_BASE + 0x8;
const TIMER: Timer = Timer::Virtual;

static READY: Shared<bool> = Shared::new(false);
static ACKS: Shared<u64> = Shared::new(0);
static BACK: Shared<u64> = Shared::new(0);
/// The compare value of the timer tick now due, and the latencies so far.
static CVAL: Shared<u64> = Shared::new(0);
static LATENCY: Shared<u64> = Shared::new(0);
static TICKS: Shared<u64> = Shared::new(0);

extern "C" {
    fn _secondary_start();
}

fn acknowledge(_: u32) {
    ACKS.increment();
    gic::send_sgi(SGI_BACK, 1);
}

fn answered(_: u32) {
    BACK.increment();
}

fn tick(_: u32) {
    // How late the handler runs after the deadline, then the next deadline
    // a little ahead, so each tick is measured from an idle vCPU.
    LATENCY.set(LATENCY.get() + TIMER.count().wrapping_sub(CVAL.get()));
    TICKS.increment();
    let next = TIMER.count() + cntfrq() / 2000;
    CVAL.set(next);
    TIMER.set_cval(next);
}

extern "C" fn secondary(_cpu: u64) -> ! {
    gic::init_cpu();
    gic::set_handler(SGI, acknowledge);
    gic::enable(SGI);
    gic::irq_unmask();
    READY.set(true);
    loop {
        gic::wfi();
    }
}

fn report(what: &str, n: u64, ticks: u64) {
    println!("bench: {what} iterations {n} ticks {ticks} cntfrq {}", cntfrq());
}

fn main() -> ! {
    let n = match testdev::param() {
        0 => 1000,
        n => n,
    };
    gic::init_distributor();
    gic::init_cpu();

    // A distributor register read.
    let t0 = cntvct();
    for _ in 0..n {
        // SAFETY: a read of GICD_IIDR, MMIO outside RAM.
        unsafe { mmio::ldr_w(GICD_IIDR) };
    }
    report("gicd_read", n, cntvct() - t0);

    // IPI round trips to a vCPU sleeping in WFI.
    let entry = _secondary_start as *const () as u64;
    // SAFETY: PSCI CPU_ON of vCPU 1 at its secondary entry point.
    let r = unsafe { smccc::cpu_on(CPU1, entry, CPU1) };
    if r != 0 || !poll_for(5000, || READY.get()) {
        println!("bench: FAIL cpu1 did not start ({r:#x})");
        smccc::system_off()
    }
    gic::set_handler(SGI_BACK, answered);
    gic::enable(SGI_BACK);
    gic::irq_unmask();
    let t0 = cntvct();
    for i in 1..=n {
        gic::send_sgi(SGI, 1 << CPU1);
        gic::wait_until(|| BACK.get() == i);
    }
    report("ipi_round_trip", n, cntvct() - t0);

    // Virtual timer deliveries to a vCPU in WFI.
    gic::set_handler(TIMER.intid(), tick);
    gic::enable(TIMER.intid());
    let first = TIMER.count() + cntfrq() / 2000;
    CVAL.set(first);
    TIMER.set_cval(first);
    TIMER.set_enabled(true);
    gic::wait_until(|| TICKS.get() >= n);
    TIMER.set_enabled(false);
    report("vtimer_delivery", TICKS.get(), LATENCY.get());
    smccc::system_off()
}
