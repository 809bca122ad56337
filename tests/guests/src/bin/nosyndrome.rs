//! Loads and stores a data abort gives no syndrome for (ESR ISV=0), which
//! bhyve emulates from the instruction: pre- and post-index writeback,
//! load and store pairs (also `ldpsw`), signed and narrow accesses, and a
//! stack-pointer base, against the test device; first with the MMU off,
//! then through a stage-1 mapping that puts the device at another virtual
//! address (bhyve must walk the guest's tables to read the instruction and
//! must use the fault's address, not the virtual one). Each check prints
//! PASS or FAIL; the last line counts them. With `-o testdev.param=N`:
//!
//! - 1: a load exclusive (`ldxr`) from the device, which bhyve does not
//!   emulate: the VM must stop with a message naming it;
//! - 2: a load pair from where nothing is: the VM must stop.

#![no_std]
#![no_main]

use core::arch::asm;
use guests::testdev::{self, CHECK, PATTERN, PATTERN_VALUE};
use guests::{println, smccc};

guests::entry!(main);

/// Counts failures.
struct Checks {
    n: u32,
    failures: u32,
}

impl Checks {
    fn eq(&mut self, what: &str, got: u64, want: u64) {
        self.n += 1;
        if got == want {
            println!("nosyndrome: PASS {what} {got:#x}");
        } else {
            println!("nosyndrome: FAIL {what} got {got:#x} want {want:#x}");
            self.failures += 1;
        }
    }
}

/// Where the device is: its physical address, or its alias with the MMU on.
fn suite(c: &mut Checks, base: usize, tag: &str) {
    let p = PATTERN_VALUE;
    let param = testdev::param();
    let check = base + (CHECK - PATTERN);
    // SAFETY: each asm block reads or writes the test device's registers
    // (PATTERN, PARAM, CHECK) at `base`, and moves only its own registers.
    unsafe {
        println!("nosyndrome: {tag}");
        let (a, b): (u64, u64);
        asm!("ldp {a}, {b}, [{x}]", x = in(reg) base, a = out(reg) a, b = out(reg) b, options(nostack));
        c.eq("ldp x", a, p);
        c.eq("ldp x (second)", b, param);

        let (a, b, x): (u64, u64, usize);
        asm!("ldp {a}, {b}, [{x}, #-16]!", x = inout(reg) base + 16 => x, a = out(reg) a, b = out(reg) b, options(nostack));
        c.eq("ldp pre-index", a ^ b, p ^ param);
        c.eq("ldp pre-index writeback", x as u64, base as u64);

        let (a, x): (u64, usize);
        asm!("ldr {a}, [{x}], #8", x = inout(reg) base => x, a = out(reg) a, options(nostack));
        c.eq("ldr post-index", a, p);
        c.eq("ldr post-index writeback", x as u64, base as u64 + 8);

        let (a, x): (u64, usize);
        asm!("ldrsw {a}, [{x}, #4]!", x = inout(reg) base => x, a = out(reg) a, options(nostack));
        c.eq("ldrsw pre-index", a, 0xffff_ffff_f0e1_d2c3);
        c.eq("ldrsw pre-index writeback", x as u64, base as u64 + 4);

        let (a, x): (u64, usize);
        asm!("ldrb {a:w}, [{x}], #1", x = inout(reg) base => x, a = out(reg) a, options(nostack));
        c.eq("ldrb post-index", a, 0x87);
        c.eq("ldrb post-index writeback", x as u64, base as u64 + 1);

        let (a, b): (u64, u64);
        asm!("ldpsw {a}, {b}, [{x}]", x = in(reg) base, a = out(reg) a, b = out(reg) b, options(nostack));
        c.eq("ldpsw", a, 0xffff_ffff_b4a5_9687);
        c.eq("ldpsw (second)", b, 0xffff_ffff_f0e1_d2c3);

        // Stores: CHECK compares each write with PATTERN at its offset.
        asm!("stp {a:w}, {b:w}, [{x}]", x = in(reg) check, a = in(reg) p, b = in(reg) p >> 32, options(nostack));
        c.eq("stp w: last size", testdev::last_size(), 4);
        let x: usize;
        asm!("str {a}, [{x}, #16]!", x = inout(reg) base => x, a = in(reg) p, options(nostack));
        c.eq("str pre-index writeback", x as u64, check as u64);
        c.eq("str pre-index: last size", testdev::last_size(), 8);
        let x: usize;
        asm!("strh {a:w}, [{x}], #2", x = inout(reg) check => x, a = in(reg) p, options(nostack));
        c.eq("strh post-index writeback", x as u64, check as u64 + 2);
        c.eq("strh post-index: last size", testdev::last_size(), 2);
        // SP as the base (interrupts are masked; SP is put back at once).
        let sp: u64;
        asm!(
            "mov {old}, sp",
            "mov sp, {top}",
            "str {a}, [sp, #-16]!",
            "mov {new}, sp",
            "mov sp, {old}",
            top = in(reg) check + 16,
            a = in(reg) p,
            old = out(reg) _,
            new = out(reg) sp,
        );
        c.eq("str [sp, #-16]! writeback", sp, check as u64);
    }
}

/// The level-1 table for TTBR0 (4 KiB granule, 39-bit addresses).
#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut L1: Table = Table([0; 512]);

/// Where the device's gigabyte appears with the MMU on: VA 2 GiB.
const ALIAS: usize = 0x8000_0000;

/// Identity-maps RAM (1 GiB block at 1 GiB) and the first gigabyte (the
/// devices, as Device memory: the console goes on working), maps the
/// devices again at [`ALIAS`], then turns the MMU on.
fn mmu_on() {
    const NORMAL: u64 = 0b01 | 3 << 8 | 1 << 10; // block, inner shareable, AF, MAIR 0
    const DEVICE: u64 = 0b01 | 1 << 2 | 1 << 10; // block, AF, MAIR 1
                                                 // SAFETY: the table is ours; RAM keeps its addresses (identity), so
                                                 // code, stack and data stay where they are when the MMU comes on.
    unsafe {
        let l1 = core::ptr::addr_of_mut!(L1) as *mut u64;
        l1.write_volatile(DEVICE);
        l1.add(1).write_volatile(0x4000_0000 | NORMAL);
        l1.add(2).write_volatile(DEVICE);
        let tcr: u64 = 25 | 1 << 8 | 1 << 10 | 3 << 12 | 1 << 23 | 25 << 16 | 0b010 << 32;
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {l1}",
            "dsb ish",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            "mrs {t}, sctlr_el1",
            "orr {t}, {t}, #1",
            "msr sctlr_el1, {t}",
            "isb",
            mair = in(reg) 0x00ffu64, // 0: Normal write-back, 1: Device-nGnRnE
            tcr = in(reg) tcr,
            l1 = in(reg) l1,
            t = out(reg) _,
            options(nostack),
        );
    }
}

fn main() -> ! {
    match testdev::param() {
        1 => {
            println!("nosyndrome: ldxr from the device");
            // SAFETY: bhyve must stop the VM here.
            unsafe { asm!("ldxr {a}, [{x}]", x = in(reg) PATTERN, a = out(reg) _, options(nostack)) };
            println!("nosyndrome: FAIL ldxr was emulated");
            smccc::system_off()
        }
        2 => {
            println!("nosyndrome: ldp from where nothing is");
            // SAFETY: bhyve must stop the VM here.
            unsafe { asm!("ldp {a}, {b}, [{x}]", x = in(reg) 0x0c00_0000usize, a = out(reg) _, b = out(reg) _) };
            println!("nosyndrome: FAIL ldp from nothing returned");
            smccc::system_off()
        }
        _ => {}
    }
    let mut c = Checks { n: 0, failures: 0 };
    suite(&mut c, PATTERN, "MMU off");
    mmu_on();
    suite(&mut c, ALIAS + PATTERN, "MMU on, the device at another virtual address");
    println!("nosyndrome: {} checks, {} failures", c.n, c.failures);
    smccc::system_off()
}
