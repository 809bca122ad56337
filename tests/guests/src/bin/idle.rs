//! Never exits: a 100 Hz virtual timer and otherwise WFI, for measuring
//! what an idle vCPU costs the host. The handler counts ticks and moves
//! the absolute compare value on by one period.

#![no_std]
#![no_main]

use guests::timer::{cntfrq, Timer};
use guests::{gic, println, Shared};

guests::entry!(main);

const TIMER: Timer = Timer::Virtual;

/// Ticks handled.
static COUNT: Shared<u64> = Shared::new(0);
/// The compare value of the tick now due.
static CVAL: Shared<u64> = Shared::new(0);
/// Counter ticks in a period.
static PERIOD: Shared<u64> = Shared::new(0);

fn tick(_: u32) {
    let next = CVAL.get() + PERIOD.get();
    CVAL.set(next);
    TIMER.set_cval(next);
    COUNT.increment();
}

fn main() -> ! {
    println!("idle: waiting in WFI with a 100 Hz timer");
    gic::init_distributor();
    gic::init_cpu();
    gic::set_handler(TIMER.intid(), tick);
    gic::enable(TIMER.intid());
    PERIOD.set(cntfrq() / 100);
    CVAL.set(TIMER.count() + PERIOD.get());
    TIMER.set_cval(CVAL.get());
    TIMER.set_enabled(true);
    gic::irq_unmask();
    loop {
        gic::wfi();
    }
}
