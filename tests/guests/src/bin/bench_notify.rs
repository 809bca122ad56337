//! The cost of a virtio queue notification: PARAM (default 10000) 32-bit
//! writes to a notify register that an ioeventfd completes in the kernel,
//! then as many to one without (a round trip to the `eventfds` host
//! program), each loop timed with the virtual counter (instructions under
//! QEMU -icount).

#![no_std]
#![no_main]

use guests::timer::{cntfrq, cntvct};
use guests::{mmio, println, smccc, testdev};

guests::entry!(main);

/// Registered by the host program: 4 bytes, datamatch 1.
const NOTIFY: usize = 0x0A00_0050;
/// The same register of the next virtio-mmio slot: nothing registered.
const NOTIFY_USER: usize = 0x0A00_0250;

fn timed(what: &str, addr: usize, n: u64) {
    let start = cntvct();
    for _ in 0..n {
        // SAFETY: a device register of the host program, outside RAM.
        unsafe { mmio::str_w(addr, 1) };
    }
    let ticks = cntvct() - start;
    println!("bench: {what} iterations {n} ticks {ticks} cntfrq {}", cntfrq());
}

fn main() -> ! {
    let n = match testdev::param() {
        0 => 10_000,
        n => n,
    };
    timed("notify_ioeventfd", NOTIFY, n);
    timed("notify_userspace", NOTIFY_USER, n);
    smccc::system_off()
}
