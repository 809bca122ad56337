//! MMIO emulation against testdev: every load width with and without sign
//! extension, every store width, the zero register, and fixed high register
//! numbers. With PARAM == 1, a load pair instead: it has no instruction
//! syndrome, so the hypervisor emulates it from the instruction.

#![no_std]
#![no_main]

use core::arch::asm;
use guests::testdev::{self, CHECK, PATTERN, PATTERN_VALUE};
use guests::{mmio, println, smccc};

guests::entry!(main);

/// Counts failures; prints one PASS or FAIL line per check.
struct Checks {
    failures: u32,
}

impl Checks {
    /// A load of PATTERN returned `got` (the whole X register).
    fn load(&mut self, insn: &str, got: u64, want: u64) {
        if got == want {
            println!("mmio: PASS {insn} {got:#x}");
        } else {
            println!("mmio: FAIL {insn} got {got:#x} want {want:#x}");
            self.failures += 1;
        }
    }

    /// A store to CHECK was just made: the device saw `want` bytes.
    fn store(&mut self, insn: &str, want: u64) {
        let size = testdev::last_size();
        if size == want {
            println!("mmio: PASS {insn} size {size}");
        } else {
            println!("mmio: FAIL {insn} size {size} want {want}");
            self.failures += 1;
        }
    }
}

fn main() -> ! {
    if testdev::param() == 1 {
        load_pair();
    }
    let p = PATTERN_VALUE;
    let mut c = Checks { failures: 0 };

    // SAFETY: testdev registers are MMIO outside RAM;
    // reading PATTERN and writing CHECK touch nothing but the device.
    unsafe {
        c.load("ldrb", mmio::ldrb(PATTERN), 0x87);
        c.load("ldrh", mmio::ldrh(PATTERN), 0x9687);
        c.load("ldr w", mmio::ldr_w(PATTERN), 0xB4A5_9687);
        c.load("ldr x", mmio::ldr_x(PATTERN), p);
        // Sign extension to 64 bits...
        c.load("ldrsb x", mmio::ldrsb_x(PATTERN), 0xFFFF_FFFF_FFFF_FF87);
        c.load("ldrsh x", mmio::ldrsh_x(PATTERN), 0xFFFF_FFFF_FFFF_9687);
        c.load("ldrsw x", mmio::ldrsw_x(PATTERN), 0xFFFF_FFFF_B4A5_9687);
        // ...and to 32: writing a W register zeroes the upper half.
        c.load("ldrsb w", mmio::ldrsb_w(PATTERN), 0x0000_0000_FFFF_FF87);
        c.load("ldrsh w", mmio::ldrsh_w(PATTERN), 0x0000_0000_FFFF_9687);
    }

    // SAFETY: as above.
    unsafe {
        mmio::strb(CHECK, p);
        c.store("strb", 1);
        mmio::strh(CHECK, p);
        c.store("strh", 2);
        mmio::str_w(CHECK, p);
        c.store("str w", 4);
        mmio::str_x(CHECK, p);
        c.store("str x", 8);
    }

    // Register 31 is the zero register here, not SP.
    println!("mmio: info xzr store (testdev counts its value 0 as a bad CHECK write)");
    // SAFETY: as above.
    unsafe { asm!("str xzr, [{a}]", a = in(reg) CHECK, options(nostack, preserves_flags)) };
    c.store("str xzr", 8);
    load_to_xzr(&mut c);

    // Fixed high register numbers (x19, the example, is reserved by LLVM),
    // so a hypervisor that ignores the syndrome's register field fails.
    let v: u64;
    // SAFETY: as above.
    unsafe { asm!("ldr x27, [{a}]", a = in(reg) PATTERN, out("x27") v, options(nostack, preserves_flags)) };
    c.load("ldr x27", v, p);
    // SAFETY: as above.
    unsafe { asm!("str x28, [{a}]", a = in(reg) CHECK, in("x28") p, options(nostack, preserves_flags)) };
    c.store("str x28", 8);

    println!("mmio: done, {} failures", c.failures);
    smccc::system_off()
}

/// `ldr xzr` must discard the value: a hypervisor that writes register 31
/// as SP would move the stack. SP is restored before Rust sees it.
fn load_to_xzr(c: &mut Checks) {
    let (before, after): (u64, u64);
    // SAFETY: as in main; SP is put back as it was before the asm ends.
    unsafe {
        asm!(
            "mov {before}, sp",
            "ldr xzr, [{a}]",
            "mov {after}, sp",
            "mov sp, {before}",
            a = in(reg) PATTERN,
            before = out(reg) before,
            after = out(reg) after,
            options(nostack, preserves_flags),
        )
    };
    if before == after {
        println!("mmio: PASS ldr xzr (sp intact)");
    } else {
        println!("mmio: FAIL ldr xzr changed sp from {before:#x} to {after:#x}");
        c.failures += 1;
    }
}

/// A load pair from testdev: ESR_EL2.ISV = 0, emulated from the instruction.
fn load_pair() -> ! {
    println!("mmio: ldp from testdev (no valid syndrome)");
    let (a, b): (u64, u64);
    // SAFETY: reads 16 bytes of testdev registers (PATTERN, PARAM).
    unsafe {
        asm!(
            "ldp x0, x1, [{a}]",
            a = in(reg) PATTERN,
            out("x0") a,
            out("x1") b,
            options(nostack, preserves_flags),
        )
    };
    if (a, b) == (PATTERN_VALUE, 1) {
        println!("mmio: PASS ldp {a:#x} {b:#x}");
    } else {
        println!("mmio: FAIL ldp got {a:#x} {b:#x}");
    }
    smccc::system_off()
}
