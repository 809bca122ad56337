//! Many round trips through the hypervisor: hypercalls answered in the host
//! kernel, each checked, and timed with the virtual counter.

#![no_std]
#![no_main]

use guests::timer::{cntfrq, cntvct};
use guests::{println, smccc};

guests::entry!(main);

const CALLS: u32 = 100_000;
/// SMCCC 1.1.
const WANT: u64 = 0x10001;

fn main() -> ! {
    let mut first = None;
    let mut wrong = 0u32;
    let start = cntvct();
    for _ in 0..CALLS {
        let v = smccc::version();
        first.get_or_insert(v);
        if v != WANT {
            wrong += 1;
        }
    }
    let ticks = cntvct() - start;
    let first = first.unwrap_or(WANT);
    println!("exits: {CALLS} hypercalls, SMCCC version {first:#x}, {wrong} wrong");
    println!("exits: ticks {ticks} cntfrq {}", cntfrq());
    smccc::system_off()
}
