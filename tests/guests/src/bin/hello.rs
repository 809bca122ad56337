//! The smallest guest: the vCPU runs at EL1, the console prints and PSCI
//! SYSTEM_OFF ends the VM.

#![no_std]
#![no_main]

use core::arch::asm;
use guests::{println, smccc};

guests::entry!(main);

fn main() -> ! {
    let current_el: u64;
    // SAFETY: reads CurrentEL, no side effects.
    unsafe { asm!("mrs {}, CurrentEL", out(reg) current_el, options(nomem, nostack, preserves_flags)) };
    // CurrentEL.EL is bits 3:2; the raw value is printed too (0x4 for EL1).
    let el = (current_el >> 2) & 3;
    println!("hello: guest running at EL{el} (CurrentEL={current_el:#x})");
    println!("hello: powering off");
    smccc::system_off()
}
