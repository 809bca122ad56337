//! One access outside what the VM owns, chosen by PARAM. The hypervisor must
//! stop the VM at the access, so "ESCAPED" is never printed.

#![no_std]
#![no_main]

use core::arch::asm;
use guests::{mmio, println, smccc, testdev};

guests::entry!(main);

#[derive(Clone, Copy)]
enum Access {
    /// 8-byte load.
    Read,
    /// 8-byte store.
    Write,
    /// 4-byte store.
    Write4,
    /// Branch there.
    Fetch,
}

/// Indexed by PARAM. RAM is 0x4000_0000..0x4400_0000 (64 MiB).
const TARGETS: [(Access, usize); 9] = [
    (Access::Read, 0x4400_0000),    // just past RAM
    (Access::Write, 0x4400_0000),   // just past RAM
    (Access::Read, 0x4800_0000),    // well past RAM
    (Access::Write, 0x7FFF_F000),   // last page below 2 GiB
    (Access::Read, 0x1_0000_0000),  // above 4 GiB
    (Access::Read, 0xFF_FFFF_F000), // top of a 40-bit IPA space
    (Access::Fetch, 0x4400_0000),   // execute past RAM
    (Access::Read, 0x0),            // address 0
    (Access::Write4, 0x0C00_0000),  // device space where nothing is
];

fn main() -> ! {
    let n = testdev::param();
    let Some(&(access, addr)) = usize::try_from(n).ok().and_then(|i| TARGETS.get(i)) else {
        println!("escape: no target {n}");
        smccc::system_off()
    };
    let verb = match access {
        Access::Read => "read",
        Access::Write | Access::Write4 => "write",
        Access::Fetch => "fetch",
    };
    println!("escape: target {n}: {verb} {addr:#x}");
    // SAFETY: deliberately touches an address the VM does not own; none of
    // them is memory this program uses (its image and stack are below
    // 0x4010_0000), so no Rust-visible state can change.
    unsafe {
        match access {
            Access::Read => {
                mmio::ldr_x(addr);
            }
            Access::Write => mmio::str_x(addr, 0x5A5A_5A5A_5A5A_5A5A),
            Access::Write4 => mmio::str_w(addr, 0x5A5A_5A5A),
            Access::Fetch => asm!("br {}", in(reg) addr, options(noreturn, nostack)),
        }
    }
    println!("escape: ESCAPED target {n}");
    smccc::system_off()
}
