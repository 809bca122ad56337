//! Never exits: an exception storm with interrupts masked. Its vector
//! table's every entry is an undefined instruction, so each exception
//! raises the next one, forever, without ever leaving the guest; the host
//! must keep running and be able to stop the VM.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::ptr::addr_of;
use guests::println;

guests::entry!(main);

// 2 KiB aligned, as VBAR_EL1 requires; every vector is `udf`.
global_asm!(".balign 2048", "storm_vectors:", ".rept 512", "udf #0", ".endr");

extern "C" {
    static storm_vectors: u8;
}

fn main() -> ! {
    println!("storm: exception storm with interrupts masked");
    // SAFETY: points VBAR_EL1 at the table of `udf`s and raises the first
    // exception; nothing returns.
    unsafe {
        asm!(
            "msr daifset, #0xf",
            "msr vbar_el1, {v}",
            "isb",
            "udf #0",
            v = in(reg) addr_of!(storm_vectors),
            options(noreturn, nostack)
        )
    }
}
