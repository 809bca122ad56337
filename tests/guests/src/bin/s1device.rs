//! A guest that points its stage-1 translation at device regions: it turns
//! its MMU on with the first gigabyte (the GIC, the UART, the RTC, nothing
//! else) mapped as ordinary cacheable memory, uses the devices through
//! that mapping (which must still work: the hypervisor sees the accesses at
//! stage 2), then does what `-o testdev.param=N` asks: case 1 the
//! hypervisor emulates, the others it must refuse by stopping the VM with a
//! message, never by crashing or by touching anything of the host's:
//!
//! - 1: a load pair from the UART (no instruction syndrome: bhyve emulates
//!   it from the instruction, which it reads through these tables);
//! - 2: a load through a page table that lives in the UART (TTBR1 = its base);
//! - 3: an instruction fetch from 0x0C00_0000, where nothing is;
//! - 4: a store to 0x0C00_0000.
//!
//! Without a parameter it powers off after the harmless part.

#![no_std]
#![no_main]

use core::arch::asm;
use core::ptr::addr_of;
use guests::{gic, println, smccc, testdev};

guests::entry!(main);

/// The level-1 table for TTBR0 (4 KiB granule, 39-bit addresses: 1 GiB per entry).
#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut L1: Table = Table([0; 512]);

/// A 1 GiB block of Normal write-back memory (MAIR index 0), inner
/// shareable, accessed, EL1 read/write, executable.
const BLOCK_NORMAL: u64 = 0b01 | 3 << 8 | 1 << 10;

/// Where nothing is mapped in the VM.
const NOTHING: usize = 0x0C00_0000;

fn mmu_on() {
    // SAFETY: the table is ours and nothing else uses it; with the MMU on
    // the first two gigabytes stay where they are (identity map), so the
    // code, stack and devices keep their addresses.
    unsafe {
        let l1 = core::ptr::addr_of_mut!(L1) as *mut u64;
        l1.write_volatile(BLOCK_NORMAL);
        l1.add(1).write_volatile(0x4000_0000 | BLOCK_NORMAL);
        let tcr: u64 = 25 // T0SZ: 39-bit
            | 1 << 8 | 1 << 10 | 3 << 12 // walks: write-back, inner shareable
            | 1 << 23 // EPD1: no TTBR1 walks (for now)
            | 25 << 16 // T1SZ
            | 0b010 << 32; // IPS: 40 bits
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
            "orr {t}, {t}, #(1 << 2)",
            "orr {t}, {t}, #(1 << 12)",
            "msr sctlr_el1, {t}",
            "isb",
            mair = in(reg) 0xffu64,
            tcr = in(reg) tcr,
            l1 = in(reg) l1,
            t = out(reg) _,
            options(nostack),
        );
    }
}

fn main() -> ! {
    let what = testdev::param();
    mmu_on();
    // The devices through a cacheable mapping: still the devices.
    // SAFETY: the distributor's TYPER, a read-only register.
    let typer = unsafe { core::ptr::read_volatile((gic::GICD_BASE + 4) as *const u32) };
    println!("s1device: MMU on, devices mapped as memory; GICD_TYPER {typer:#x}");
    match what {
        1 => {
            println!("s1device: load pair from the UART");
            let (dr, rsr): (u64, u64);
            // SAFETY: reads the UART's DR (nothing received: 0) and RSR;
            // no syndrome: the hypervisor emulates it from the instruction.
            unsafe { asm!("ldp {a:w}, {b:w}, [{p}]", p = in(reg) 0x0900_0000usize, a = out(reg) dr, b = out(reg) rsr) };
            println!("s1device: load pair emulated: DR {dr:#x}, RSR {rsr:#x}");
            smccc::system_off()
        }
        2 => {
            println!("s1device: a load through a table in the UART");
            // SAFETY: TTBR1 walks start at the UART's base: the load's walk
            // reads a device; the hypervisor must stop the VM.
            unsafe {
                asm!(
                    "mrs {t}, tcr_el1",
                    "bic {t}, {t}, #(1 << 23)",
                    "msr tcr_el1, {t}",
                    "msr ttbr1_el1, {b}",
                    "isb",
                    "ldr {t}, [{va}]",
                    t = out(reg) _,
                    b = in(reg) 0x0900_0000u64,
                    va = in(reg) 0xffff_ff80_0000_0000u64,
                )
            };
        }
        3 => {
            println!("s1device: a jump to where nothing is");
            // SAFETY: the fetch must stop the VM; nothing runs there.
            unsafe { asm!("blr {p}", p = in(reg) NOTHING, out("x30") _) };
        }
        4 => {
            println!("s1device: a store to where nothing is");
            // SAFETY: the store must stop the VM.
            unsafe { core::ptr::write_volatile(NOTHING as *mut u32, 0x5a) };
        }
        _ => {
            let l1 = addr_of!(L1) as usize;
            println!("s1device: ok (table at {l1:#x})");
            smccc::system_off()
        }
    }
    println!("s1device: FAIL: still running after case {what}");
    smccc::system_off()
}
