//! Interrupt priorities, with SGIs a CPU sends itself:
//!
//! (a) preemption: in the handler of SGI 2 (priority 0xa0), SGIs 3 (0x40)
//!     and 4 (0xc0) are sent; ICC_IAR1_EL1 must then give 3, which may
//!     preempt the running priority, and after its EOI 1023, as 4 may not
//!     although pending; 4 is delivered after SGI 2's EOI.
//! (b) masking: a disabled SGI stays pending, undelivered, and is
//!     delivered once enabled.
//! (c) ICC_PMR_EL1: an SGI at 0xa0 stays pending with the mask at 0x80 and
//!     at 0xa0 (only priorities below the mask pass) and is delivered once
//!     the mask is 0xff.
//! (d) more pending than list registers: 8 SGIs (7-14) pended at once with
//!     interrupts masked are all delivered once unmasked, within 10 ms
//!     (the hypervisor refills its list registers as they drain).

#![no_std]
#![no_main]

use core::fmt;
use guests::gic::{self, SPURIOUS};
use guests::timer::{delay_ms, poll_for};
use guests::{println, smccc, Shared};

guests::entry!(main);

/// (a): the SGI whose handler runs the test, one more urgent, one less.
const LOW: u32 = 2;
const HIGH: u32 = 3;
const LOWER: u32 = 4;
/// (b): the SGI disabled while pending.
const MASKED: u32 = 5;
/// (c): the SGI held back by the priority mask.
const PMR_SGI: u32 = 6;
const SGIS: [u32; 5] = [LOW, HIGH, LOWER, MASKED, PMR_SGI];
/// (d): more SGIs than a GIC has list registers (QEMU has 4).
const BURST: core::ops::RangeInclusive<u32> = 7..=14;

/// Deliveries through the IRQ vector, by SGI.
static COUNT: [Shared<u64>; 16] = [const { Shared::new(0) }; 16];
/// What ICC_IAR1_EL1 gave in SGI 2's handler: after sending SGIs 3 and 4,
/// and after ending what the first read gave.
static FIRST: Shared<u32> = Shared::new(0);
static SECOND: Shared<u32> = Shared::new(0);
/// Whether SGI 4 was pending (GICR_ISPENDR0) before the second read.
static LOWER_PENDING: Shared<bool> = Shared::new(false);

fn count(intid: u32) {
    COUNT[intid as usize].increment();
}

fn delivered(intid: u32) -> u64 {
    COUNT[intid as usize].get()
}

/// The target list of SGIs to itself: the guest runs on vCPU 0 (Aff0 0).
const ME: u16 = 1;

/// Reads ICC_IAR1_EL1 until it gives an INTID, for at most `ms`.
fn ack_within(ms: u64) -> u32 {
    let mut intid = SPURIOUS;
    poll_for(ms, || {
        intid = gic::ack();
        intid != SPURIOUS
    });
    intid
}

/// SGI 2's handler, running at priority 0xa0: test (a).
fn low(intid: u32) {
    count(intid);
    gic::send_sgi(HIGH, ME);
    gic::send_sgi(LOWER, ME);
    let first = ack_within(10);
    FIRST.set(first);
    if first != SPURIOUS {
        gic::eoi(first);
    }
    LOWER_PENDING.set(poll_for(10, || gic::is_pending(LOWER)));
    let second = gic::ack();
    SECOND.set(second);
    if second != SPURIOUS {
        gic::eoi(second);
    }
}

/// Prints PASS or FAIL (with what was seen); returns the failures, 0 or 1.
fn check(ok: bool, what: &str, seen: fmt::Arguments) -> u32 {
    if ok {
        println!("priority: PASS {what}");
    } else {
        println!("priority: FAIL {what} ({seen})");
    }
    u32::from(!ok)
}

fn preemption() -> u32 {
    gic::send_sgi(LOW, ME);
    poll_for(100, || delivered(LOWER) != 0);
    let (first, second, pending) = (FIRST.get(), SECOND.get(), LOWER_PENDING.get());
    check(
        delivered(LOW) == 1 && first == HIGH,
        "(a) SGI 3 (0x40) preempts SGI 2 (0xa0): ICC_IAR1_EL1 gives 3 in its handler",
        format_args!("SGI 2 delivered {} times, ICC_IAR1_EL1 gave {first}", delivered(LOW)),
    ) + check(
        second == SPURIOUS && pending,
        "(a) SGI 4 (0xc0) pending but not preempting SGI 2: ICC_IAR1_EL1 gives 1023",
        format_args!("ICC_IAR1_EL1 gave {second}, SGI 4 pending {pending}"),
    ) + check(
        delivered(LOWER) == 1 && delivered(HIGH) == 0,
        "(a) SGI 4 delivered once after SGI 2's EOI",
        format_args!("SGI 4 delivered {} times, SGI 3 {} times", delivered(LOWER), delivered(HIGH)),
    )
}

/// Checks that `intid`, 10 ms on, has not been delivered and is pending.
fn held(intid: u32, what: &str) -> u32 {
    delay_ms(10);
    let (n, pending) = (delivered(intid), gic::is_pending(intid));
    check(n == 0 && pending, what, format_args!("delivered {n} times, pending {pending}"))
}

/// Checks that `intid` is delivered within 1 ms, once, and no longer pending.
fn released(intid: u32, what: &str) -> u32 {
    poll_for(1, || delivered(intid) != 0);
    let (n, pending) = (delivered(intid), gic::is_pending(intid));
    check(n == 1 && !pending, what, format_args!("delivered {n} times, pending {pending}"))
}

fn masking() -> u32 {
    gic::disable(MASKED);
    gic::send_sgi(MASKED, ME);
    let failures = held(MASKED, "(b) disabled SGI 5 stays pending, not delivered");
    gic::enable(MASKED);
    failures + released(MASKED, "(b) SGI 5 delivered once enabled (within 1 ms)")
}

fn pmr() -> u32 {
    gic::set_pmr(0x80);
    gic::send_sgi(PMR_SGI, ME);
    let mut failures = held(PMR_SGI, "(c) SGI 6 (0xa0) stays pending with ICC_PMR_EL1 0x80");
    gic::set_pmr(0xa0);
    failures += held(PMR_SGI, "(c) SGI 6 (0xa0) stays pending with ICC_PMR_EL1 0xa0");
    gic::set_pmr(0xff);
    failures + released(PMR_SGI, "(c) SGI 6 delivered once ICC_PMR_EL1 is 0xff (within 1 ms)")
}

fn overflow() -> u32 {
    gic::irq_mask();
    for sgi in BURST {
        gic::send_sgi(sgi, ME);
    }
    gic::irq_unmask();
    poll_for(10, || BURST.clone().all(|s| delivered(s) == 1));
    let got = BURST.clone().filter(|&s| delivered(s) == 1).count();
    check(
        got == 8,
        "(d) 8 SGIs pending at once all delivered (more than the list registers)",
        format_args!("{got} of 8"),
    )
}

fn main() -> ! {
    gic::init_distributor();
    gic::init_cpu();
    for sgi in SGIS.into_iter().chain(BURST) {
        gic::set_handler(sgi, count);
        gic::enable(sgi);
    }
    gic::set_handler(LOW, low);
    gic::set_priority(HIGH, 0x40);
    gic::set_priority(LOWER, 0xc0);
    gic::irq_unmask();

    let mut failures = preemption() + masking() + pmr() + overflow();
    let left = SGIS.into_iter().chain(BURST).filter(|&s| gic::is_active(s) || gic::is_pending(s)).count();
    failures += check(left == 0, "no SGI left active or pending", format_args!("{left} left"));
    println!("priority: done, {failures} failures");
    smccc::system_off()
}
