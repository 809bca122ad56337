//! Cache maintenance by set/way, the way firmware uses it: a whole-cache
//! clean and invalidate (every set and way of every data cache level up to
//! the point of coherency, from CLIDR_EL1 and CCSIDR_EL1) before turning the
//! MMU and caches on, and again before turning them off. In between, the
//! translation controls written while the hypervisor traps them (MAIR, TCR,
//! TTBR0) must read back as written, and data written with caches on must
//! read the same with them off.

#![no_std]
#![no_main]

use core::arch::asm;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use guests::{println, smccc, sysreg};

guests::entry!(main);

/// A level-1 table for a 4 GiB identity map (TCR_EL1.T0SZ = 32).
#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut TABLE: Table = Table([0; 512]);
/// Data written with caches on, checked with them off.
static mut DATA: [u64; 512] = [0; 512];

/// Block descriptor bits: valid block, access flag, AttrIndx.
const BLOCK: u64 = 0b01 | 1 << 10;
const DEVICE: u64 = BLOCK | 1 << 53 | 1 << 54; // AttrIndx 0, never executed
const NORMAL: u64 = BLOCK | 1 << 2 | 3 << 8;
/// MAIR_EL1: attribute 0 Device-nGnRnE, attribute 1 Normal write-back.
const MAIR: u64 = 0xff << 8;
/// TCR_EL1: T0SZ 32, walks inner/outer write-back inner shareable, 4 KiB
/// granule, no TTBR1 walks (EPD1), 32-bit physical addresses.
const TCR: u64 = 32 | 1 << 8 | 1 << 10 | 3 << 12 | 1 << 23;
/// SCTLR_EL1.M, C and I.
const SCTLR_MCI: u64 = 1 | 1 << 2 | 1 << 12;

/// Cleans and invalidates every data cache level below the point of
/// coherency by set/way. Returns (operations, levels).
fn clean_inval_all() -> (u64, u32) {
    let clidr = sysreg!(read "clidr_el1");
    let ccidx = (sysreg!(read "id_aa64mmfr2_el1") >> 20) & 0xf != 0;
    let loc = ((clidr >> 24) & 7) as u32;
    let (mut ops, mut levels) = (0, 0);
    for level in 0..loc {
        // Ctype 2, 3 or 4: a data or unified cache at this level.
        if (clidr >> (3 * level)) & 7 < 2 {
            continue;
        }
        sysreg!(write "csselr_el1", (level as u64) << 1);
        let ccsidr = sysreg!(read "ccsidr_el1");
        let line_log2 = (ccsidr & 7) + 4;
        let (ways, sets) = if ccidx {
            (((ccsidr >> 3) & 0x1f_ffff) + 1, ((ccsidr >> 32) & 0xff_ffff) + 1)
        } else {
            (((ccsidr >> 3) & 0x3ff) + 1, ((ccsidr >> 13) & 0x7fff) + 1)
        };
        // The way number sits in the top bits of the 32-bit operand.
        let way_shift = if ways > 1 { (ways - 1).leading_zeros() - 32 } else { 0 };
        for way in 0..ways {
            for set in 0..sets {
                let op = way.checked_shl(way_shift).unwrap_or(0) | set << line_log2 | (level as u64) << 1;
                // SAFETY: a data cache maintenance operation: cleans and
                // invalidates one line; memory contents are unchanged.
                unsafe { asm!("dc cisw, {}", in(reg) op, options(nostack, preserves_flags)) };
                ops += 1;
            }
        }
        levels += 1;
    }
    // SAFETY: barriers.
    unsafe { asm!("dsb sy", "isb", options(nostack, preserves_flags)) };
    (ops, levels)
}

fn main() -> ! {
    let (ops, levels) = clean_inval_all();
    println!("setway: {ops} set/way operations over {levels} cache levels, caches off");

    // An identity map: the first GiB (the devices) as Device memory, the
    // second (RAM) as Normal write-back memory.
    // SAFETY: the table is ours and not yet in use.
    unsafe {
        let t = &mut *addr_of_mut!(TABLE);
        t.0[0] = DEVICE;
        t.0[1] = 0x4000_0000 | NORMAL;
    }
    // SAFETY (the writes below): the map covers the code, data, stack and
    // console at the same addresses, so turning it on changes no address.
    sysreg!(write "mair_el1", MAIR);
    sysreg!(write "tcr_el1", TCR);
    sysreg!(write "ttbr0_el1", addr_of!(TABLE) as u64);
    // SAFETY: invalidates this guest's stale stage 1 TLB entries.
    unsafe { asm!("tlbi vmalle1", "dsb nsh", "isb", options(nostack, preserves_flags)) };
    let (mair, tcr, ttbr0) = (sysreg!(read "mair_el1"), sysreg!(read "tcr_el1"), sysreg!(read "ttbr0_el1"));
    if mair != MAIR || tcr & 0xffff_ffff != TCR || ttbr0 != addr_of!(TABLE) as u64 {
        println!("setway: FAIL controls read back mair={mair:#x} tcr={tcr:#x} ttbr0={ttbr0:#x}");
        smccc::system_off();
    }
    sysreg!(write "sctlr_el1", sysreg!(read "sctlr_el1") | SCTLR_MCI);
    let sctlr = sysreg!(read "sctlr_el1");
    println!("setway: mmu and caches on, sctlr_el1={sctlr:#x}");

    // Fill data through the cache, then clean by set/way and turn caches off.
    let data = addr_of_mut!(DATA) as *mut u64;
    for i in 0..512 {
        // SAFETY: within DATA.
        unsafe { write_volatile(data.add(i), 0x5e7_0000 + i as u64) };
    }
    let (ops2, _) = clean_inval_all();
    sysreg!(write "sctlr_el1", sysreg!(read "sctlr_el1") & !SCTLR_MCI);
    let mismatches = (0..512)
        // SAFETY: within DATA.
        .filter(|&i| unsafe { read_volatile(data.add(i)) } != 0x5e7_0000 + i as u64)
        .count();
    println!("setway: {ops2} set/way operations with caches on, then off: {mismatches} mismatches");
    if sctlr & SCTLR_MCI == SCTLR_MCI && mismatches == 0 && ops > 0 && ops == ops2 {
        println!("setway: ok");
    } else {
        println!("setway: FAIL");
    }
    smccc::system_off()
}
