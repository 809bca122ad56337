//! A level-sensitive SPI from the test device: 100 times, raise the line
//! (testdev IRQ_LINE = 1) and wait in WFI for the SPI 40 handler, which
//! lowers it again before its EOI (else the SPI would fire again at once).
//! Before and after, with the line low, nothing may arrive.

#![no_std]
#![no_main]

use guests::timer::delay_ms;
use guests::{gic, println, smccc, testdev, Shared};

guests::entry!(main);

const SPI: u32 = testdev::IRQ_INTID;
const ROUNDS: u64 = 100;

/// SPIs handled.
static COUNT: Shared<u64> = Shared::new(0);
/// Times the line was raised.
static RAISED: Shared<u64> = Shared::new(0);

/// Lowers the line and counts. An SPI more than the line was raised (it
/// came again although lowered) disables it, so that main, not kept from
/// running by a storm, reports it.
fn handle(_: u32) {
    testdev::set_irq_line(false);
    COUNT.increment();
    if COUNT.get() > RAISED.get() {
        gic::disable(SPI);
    }
}

/// With the line low for 50 ms: no interrupt taken, none pending.
fn quiet(when: &str, want: u64) -> bool {
    delay_ms(50);
    let (count, pending) = (COUNT.get(), gic::is_pending(SPI));
    let ok = count == want && !pending;
    if !ok {
        println!("spi: FAIL {when}, line low: {count} handled (want {want}), pending {pending}");
    }
    ok
}

/// Raises the line [`ROUNDS`] times, each time waiting in WFI for the
/// handler; stops at the first round not handled exactly once.
fn rounds() -> bool {
    for round in 1..=ROUNDS {
        RAISED.set(round);
        testdev::set_irq_line(true);
        gic::wait_until(|| COUNT.get() >= round);
        if COUNT.get() != round {
            println!("spi: FAIL round {round}: {} handled", COUNT.get());
            return false;
        }
    }
    true
}

fn main() -> ! {
    testdev::set_irq_line(false);
    gic::init_distributor();
    gic::init_cpu();
    gic::set_handler(SPI, handle);
    gic::route_to_self(SPI);
    gic::enable(SPI);
    gic::irq_unmask();

    if quiet("before the first round", 0) && rounds() && quiet("after the last round", ROUNDS) {
        println!("spi: {ROUNDS} level interrupts raised and handled");
    }
    println!("spi: done");
    smccc::system_off()
}
