//! Never exits: a vCPU that spins with interrupts masked, for testing that
//! the host can still stop the VM (signal, bhyvectl --destroy, timeouts).

#![no_std]
#![no_main]

use core::arch::asm;
use guests::println;

guests::entry!(main);

fn main() -> ! {
    println!("spin: spinning with interrupts masked");
    // SAFETY: masks exceptions and spins forever; nothing else runs.
    unsafe { asm!("msr daifset, #0xf", "b .", options(noreturn, nomem, nostack)) }
}
