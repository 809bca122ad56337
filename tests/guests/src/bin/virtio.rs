//! A hostile virtio driver: drives the virtio-mmio registers and the rings
//! of the entropy device in slot 1 (`bhyve -s 1,virtio-rnd`) itself. One
//! good request first, then each kind of garbage in turn; after each the
//! Status register must show DEVICE_NEEDS_RESET (0x40) with a
//! configuration-change interrupt pending, and after a reset a good request
//! must work again. Polls: no interrupts are taken.

#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};
use guests::mmio::{ldr_w, str_w};
use guests::timer::delay_ms;
use guests::{println, smccc, Shared, RAM_BASE};

guests::entry!(main);

/// virtio-mmio transport 1.
const T: usize = 0x0a00_0200;
const STATUS: usize = 0x70;
const INT_STATUS: usize = 0x60;
const INT_ACK: usize = 0x64;
const NEEDS_RESET: u32 = 0x40;

/// The rings and the buffer, above the image and its stack.
const DESC: usize = RAM_BASE + 0x20_0000;
const AVAIL: usize = DESC + 0x1000;
const USED: usize = DESC + 0x2000;
const BUF: usize = DESC + 0x3000;
/// The end of guest RAM with `-m 64M`.
const RAM_END: u64 = RAM_BASE as u64 + (64 << 20);

const NEXT: u16 = 1;
const WRITE: u16 = 2;

static FAILURES: Shared<u64> = Shared::new(0);

fn rd(off: usize) -> u32 {
    // SAFETY: a register of the transport bhyve puts there.
    unsafe { ldr_w(T + off) as u32 }
}

fn wr(off: usize, v: u32) {
    // SAFETY: as above.
    unsafe { str_w(T + off, v as u64) }
}

fn put16(addr: usize, v: u16) {
    // SAFETY: guest RAM the guest owns, above its image.
    unsafe { write_volatile(addr as *mut u16, v) }
}

fn get16(addr: usize) -> u16 {
    // SAFETY: as above.
    unsafe { read_volatile(addr as *const u16) }
}

fn desc(i: usize, addr: u64, len: u32, flags: u16, next: u16) {
    let d = DESC + 16 * i;
    // SAFETY: guest RAM the guest owns.
    unsafe {
        write_volatile(d as *mut u64, addr);
        write_volatile((d + 8) as *mut u32, len);
    }
    put16(d + 12, flags);
    put16(d + 14, next);
}

fn fence() {
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Rings where `layout` says (size, desc, avail, used), driver set up to
/// DRIVER_OK with VERSION_1 only. Returns the Status read back.
fn init(size: u32, desc_at: u64, avail_at: u64, used_at: u64) -> u32 {
    wr(STATUS, 0);
    for a in [AVAIL, USED] {
        for k in 0..(4 + 8 * 16) / 2 {
            put16(a + 2 * k, 0);
        }
    }
    fence();
    wr(STATUS, 1);
    wr(STATUS, 3);
    wr(0x24, 1);
    wr(0x20, 1); // VERSION_1 (bit 32)
    wr(0x24, 0);
    wr(0x20, 0);
    wr(STATUS, 11);
    wr(0x30, 0);
    wr(0x38, size);
    wr(0x80, desc_at as u32);
    wr(0x84, (desc_at >> 32) as u32);
    wr(0x90, avail_at as u32);
    wr(0x94, (avail_at >> 32) as u32);
    wr(0xa0, used_at as u32);
    wr(0xa4, (used_at >> 32) as u32);
    wr(0x44, 1);
    wr(STATUS, 15);
    rd(STATUS)
}

fn init_good(size: u32) -> u32 {
    init(size, DESC as u64, AVAIL as u64, USED as u64)
}

/// Publishes head 0 as the `n`-th available entry and notifies.
fn publish(n: u16, avail_idx: u16) {
    put16(AVAIL + 4 + 2 * n as usize, 0);
    fence();
    put16(AVAIL + 2, avail_idx);
    fence();
    wr(0x50, 0);
}

fn check(what: &str, ok: bool) {
    if ok {
        println!("virtio: PASS {what}");
    } else {
        println!("virtio: FAIL {what}");
        FAILURES.set(FAILURES.get() + 1);
    }
}

/// A 64-byte request on a fresh ring: filled, and used with length 64.
fn good(what: &str) {
    let st = init_good(16);
    for k in 0..32 {
        put16(BUF + 2 * k, 0);
    }
    desc(0, BUF as u64, 64, WRITE, 0);
    publish(0, 1);
    let mut waited = 0;
    while get16(USED + 2) != 1 && waited < 2000 {
        delay_ms(1);
        waited += 1;
    }
    // SAFETY: guest RAM the guest owns.
    let len = unsafe { read_volatile((USED + 8) as *const u32) };
    let filled = (0..32).any(|k| get16(BUF + 2 * k) != 0);
    check(what, st == 15 && get16(USED + 2) == 1 && len == 64 && filled);
}

/// After `what`'s garbage: DEVICE_NEEDS_RESET and a configuration-change
/// interrupt, then a reset and a good request.
fn broken(what: &str) {
    let mut waited = 0;
    while rd(STATUS) & NEEDS_RESET == 0 && waited < 2000 {
        delay_ms(1);
        waited += 1;
    }
    let st = rd(STATUS);
    let is = rd(INT_STATUS);
    wr(INT_ACK, is);
    check(what, st & NEEDS_RESET != 0 && is & 2 != 0);
    wr(STATUS, 0);
    check("reset clears DEVICE_NEEDS_RESET", rd(STATUS) == 0);
    good("a good request after the reset");
}

fn main() -> ! {
    println!("virtio: device id {} version {} magic {:#x}", rd(8), rd(4), rd(0));
    check("an entropy device, virtio-mmio version 2", rd(0) == 0x7472_6976 && rd(4) == 2 && rd(8) == 4);
    good("a good request");

    init_good(16);
    desc(0, RAM_END + 0x1000_0000, 64, WRITE, 0);
    publish(0, 1);
    broken("a descriptor outside guest memory");

    init_good(16);
    desc(0, BUF as u64, 16, WRITE | NEXT, 1);
    desc(1, BUF as u64, 16, WRITE | NEXT, 0);
    publish(0, 1);
    broken("a descriptor loop");

    init_good(4);
    for i in 0..4 {
        desc(i, BUF as u64, 8, WRITE | NEXT, i as u16 + 1);
    }
    publish(0, 1);
    broken("a chain longer than the queue");

    init_good(16);
    desc(0, RAM_END - 16, 64, WRITE, 0);
    publish(0, 1);
    broken("a length beyond the end of guest memory");

    init_good(16);
    desc(0, BUF as u64, 64, WRITE, 0);
    publish(0, 100);
    broken("an available index 100 ahead");

    let st = init(16, DESC as u64, AVAIL as u64, DESC as u64 + 64);
    check("DRIVER_OK taken with a used ring over the table", st & 4 != 0);
    broken("a used ring over the descriptor table at DRIVER_OK");

    init_good(3);
    broken("queue size 3 at DRIVER_OK");

    let max = {
        wr(0x30, 0);
        rd(0x34)
    };
    init_good(max * 2);
    broken("queue size twice QueueNumMax at DRIVER_OK");

    init(16, 0x1_0000_0000, AVAIL as u64, USED as u64);
    broken("a descriptor table outside guest memory at DRIVER_OK");

    init(16, DESC as u64 + 8, AVAIL as u64, USED as u64);
    broken("a misaligned descriptor table at DRIVER_OK");

    println!("virtio: done, {} failures", FAILURES.get());
    smccc::system_off()
}
