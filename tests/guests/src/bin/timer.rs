//! Timer interrupts: PARAM 0 takes the EL1 virtual timer (PPI 27), 1 the
//! physical timer (PPI 30), at 1 ms periods for 1000 ticks. Each tick's
//! handler moves the absolute compare value on by one period, so ticks do
//! not drift, and checks it did not come early; main waits in WFI.

#![no_std]
#![no_main]

use guests::timer::{cntfrq, Timer};
use guests::{gic, println, smccc, testdev, Shared};

guests::entry!(main);

const TICKS: u64 = 1000;

/// Ticks handled.
static COUNT: Shared<u64> = Shared::new(0);
/// Ticks that came before their compare value.
static EARLY: Shared<u64> = Shared::new(0);
/// The compare value of the tick now due.
static CVAL: Shared<u64> = Shared::new(0);
/// Counter ticks in a period.
static PERIOD: Shared<u64> = Shared::new(0);

fn timer_of(intid: u32) -> Timer {
    if intid == Timer::Physical.intid() {
        Timer::Physical
    } else {
        Timer::Virtual
    }
}

/// The tick handler: counts and sets the next compare value, which also
/// lowers the level-sensitive timer line before the EOI. The last tick
/// stops the timer, so that even a line that stays up (a storm, which
/// would keep main from running) ends with a report.
fn tick(intid: u32) {
    let timer = timer_of(intid);
    let due = CVAL.get();
    if timer.count() < due {
        EARLY.increment();
    }
    CVAL.set(due + PERIOD.get());
    timer.set_cval(due + PERIOD.get());
    COUNT.increment();
    if COUNT.get() == TICKS {
        timer.set_enabled(false);
    }
}

fn main() -> ! {
    let timer = match testdev::param() {
        0 => Timer::Virtual,
        1 => Timer::Physical,
        p => {
            println!("timer: FAIL PARAM {p}: 0 (virtual) or 1 (physical)");
            smccc::system_off()
        }
    };
    gic::init_distributor();
    gic::init_cpu();
    gic::set_handler(timer.intid(), tick);
    gic::enable(timer.intid());

    let period = cntfrq() / 1000;
    PERIOD.set(period);
    let start = timer.count();
    CVAL.set(start + period);
    timer.set_cval(start + period);
    timer.set_enabled(true);
    gic::irq_unmask();
    gic::wait_until(|| COUNT.get() >= TICKS);
    let elapsed = timer.count() - start;

    let early = EARLY.get();
    if early != 0 {
        println!("timer: FAIL {early} ticks came before their compare value");
    }
    println!("timer: {TICKS} {} timer ticks in {} ms", timer.name(), elapsed * 1000 / cntfrq());
    println!("timer: done");
    smccc::system_off()
}
