//! Self-hosted debug inside the guest, as a debugger in it uses it: a
//! hardware breakpoint, a watchpoint on a store, and software single step
//! (also over instructions the hypervisor completes), all taken at EL1 by
//! the guest's own vector. While the OS lock is locked (its state at reset)
//! none of them fires; the guest unlocks it first, as Linux does at boot.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use guests::{println, smccc, sysreg};

guests::entry!(main);

/// ESR_EL1.EC of debug exceptions taken without a change of EL.
const EC_BREAKPOINT: u64 = 0x31;
const EC_STEP: u64 = 0x33;
const EC_WATCHPOINT: u64 = 0x35;
/// MDSCR_EL1: SS, KDE, MDE.
const MDSCR_SS: u64 = 1;
const MDSCR_KDE: u64 = 1 << 13;
const MDSCR_MDE: u64 = 1 << 15;
/// DBGBCR: enabled, EL1 only (PMC 0b01), all four bytes (BAS).
const BCR_EL1: u64 = 1 | 1 << 1 | 0xf << 5;
/// DBGWCR: enabled, EL1 only (PAC 0b01), stores (LSC 0b10), eight bytes (BAS).
const WCR_EL1_STORE: u64 = 1 | 1 << 1 | 2 << 3 | 0xff << 5;
/// Steps taken before stepping is turned off.
const STEPS: usize = 4;

/// What the vector saw: (EC, ELR, FAR) of each debug exception, in order.
static mut SEEN: [(u64, u64, u64); 16] = [(0, 0, 0); 16];
static mut SEEN_N: usize = 0;
static mut WATCHED: u64 = 0;

// The synchronous exception from EL1 with SP_EL1 (offset 0x200) calls
// `on_debug` with the caller-saved registers kept; every other vector is
// unexpected.
guests::vector_table!(debug_vectors, 4 => debug_sync);
global_asm!(
    r#"
    .section .text.debug_sync, "ax"
    .global debug_sync
debug_sync:
    sub     sp, sp, #160
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x30, [sp, #144]
    bl      {handler}
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x30, [sp, #144]
    add     sp, sp, #160
    eret
"#,
    handler = sym on_debug,
);

extern "C" {
    /// The table above (only its address is used).
    static debug_vectors: [u32; 512];
}

/// Records a debug exception and makes the guest go on: a breakpoint or
/// watchpoint is disabled (the instruction then runs again without it); a
/// step is followed by another until STEPS, then stepping is turned off.
extern "C" fn on_debug() {
    let (esr, elr, far) = (sysreg!(read "esr_el1"), sysreg!(read "elr_el1"), sysreg!(read "far_el1"));
    let ec = esr >> 26;
    // SAFETY: one CPU; the vector runs with further debug exceptions masked.
    unsafe {
        let n = *addr_of!(SEEN_N);
        if let Some(slot) = (*addr_of_mut!(SEEN)).get_mut(n) {
            *slot = (ec, elr, far);
        }
        *addr_of_mut!(SEEN_N) = n + 1;
    }
    let steps = seen().iter().filter(|s| s.0 == EC_STEP).count();
    match ec {
        EC_BREAKPOINT => sysreg!(write "dbgbcr0_el1", 0),
        EC_WATCHPOINT => sysreg!(write "dbgwcr0_el1", 0),
        EC_STEP if steps < STEPS => sysreg!(write "spsr_el1", sysreg!(read "spsr_el1") | 1 << 21),
        EC_STEP => sysreg!(write "mdscr_el1", sysreg!(read "mdscr_el1") & !MDSCR_SS),
        _ => {
            println!("debug: FAIL unexpected exception ESR_EL1={esr:#x} at {elr:#x}");
            smccc::system_off();
        }
    }
}

#[inline(never)]
fn target(x: u64) -> u64 {
    // SAFETY: only keeps the call from being folded away.
    unsafe { asm!("nop", options(nomem, nostack, preserves_flags)) };
    x.wrapping_mul(3)
}

/// Debug exceptions seen so far.
fn seen() -> &'static [(u64, u64, u64)] {
    // SAFETY: read after the exceptions, on the one CPU.
    unsafe { &(&*addr_of!(SEEN))[..(*addr_of!(SEEN_N)).min(16)] }
}

/// Four instructions stepped one at a time, two of them completed by the
/// hypervisor (an ID register read, trapped; an MMIO load of the PL011's
/// flag register, served by bhyve): enters them by `eret` with
/// SPSR_EL1.SS set (EL1h, D clear). Returns their address.
fn step_four() -> u64 {
    let start: u64;
    // SAFETY: the eret goes to the next instructions at EL1 with the same
    // stack; each step exception returns to the next one; the load reads
    // the UART's flag register, which has no side effects.
    unsafe {
        asm!(
            "adr {start}, 2f",
            "msr elr_el1, {start}",
            "mov {t}, #(0x1c5)",
            "orr {t}, {t}, #(1 << 21)",
            "msr spsr_el1, {t}",
            "eret",
            "2: mrs {t}, id_aa64mmfr0_el1",
            "ldr {t:w}, [{fr}]",
            "add {t}, {t}, #1",
            "add {t}, {t}, #1",
            "nop",
            start = out(reg) start,
            t = out(reg) _,
            fr = in(reg) guests::uart::FR,
            options(nostack),
        )
    };
    start
}

fn main() -> ! {
    // The table is 2 KiB aligned and handles every vector.
    sysreg!(write "vbar_el1", addr_of!(debug_vectors) as u64);
    let counts = sysreg!(read "id_aa64dfr0_el1");
    println!(
        "debug: {} breakpoints, {} watchpoints, oslsr_el1={:#x}",
        ((counts >> 12) & 0xf) + 1,
        ((counts >> 20) & 0xf) + 1,
        sysreg!(read "oslsr_el1")
    );
    let bp = target as *const () as u64;
    sysreg!(write "dbgbvr0_el1", bp);
    sysreg!(write "dbgbcr0_el1", BCR_EL1);
    sysreg!(write "mdscr_el1", MDSCR_MDE | MDSCR_KDE);
    // SAFETY: unmasks debug exceptions; the vector takes them.
    unsafe { asm!("msr daifclr, #8", "isb", options(nostack, preserves_flags)) };
    target(1);
    let locked = seen().len();
    println!("debug: with the OS lock locked: {locked} exceptions");

    sysreg!(write "oslar_el1", 0);
    let r = target(2);
    let bp_ok = matches!(seen(), [(EC_BREAKPOINT, pc, _)] if *pc == bp) && r == 6;
    println!("debug: breakpoint: {:x?} (target at {bp:#x})", seen());

    let watched = addr_of_mut!(WATCHED);
    sysreg!(write "dbgwvr0_el1", watched as u64);
    sysreg!(write "dbgwcr0_el1", WCR_EL1_STORE);
    // SAFETY: WATCHED is ours; the load does not match (stores only).
    let before = unsafe { read_volatile(watched) };
    // SAFETY: as above; the store takes the watchpoint, then runs.
    unsafe { write_volatile(watched, 0x77) };
    let wp_ok = matches!(seen(), [_, (EC_WATCHPOINT, _, far)] if *far == watched as u64)
        // SAFETY: as above.
        && before == 0 && unsafe { read_volatile(watched) } == 0x77;
    println!("debug: watchpoint: {:x?} (variable at {watched:#x?})", &seen()[1..]);

    // With MDSCR_EL1.SS set and PSTATE.SS clear, a step exception would be
    // due at once: set it with debug exceptions masked; step_four's eret
    // unmasks them with PSTATE.SS set.
    // SAFETY: masks debug exceptions only.
    unsafe { asm!("msr daifset, #8", "isb", options(nostack, preserves_flags)) };
    sysreg!(write "mdscr_el1", sysreg!(read "mdscr_el1") | MDSCR_SS);
    let start = step_four();
    let steps: [u64; STEPS] = core::array::from_fn(|i| seen().get(2 + i).map_or(0, |s| s.1));
    let step_ok = seen().len() == 2 + STEPS
        && seen()[2..].iter().all(|s| s.0 == EC_STEP)
        && steps.iter().enumerate().all(|(i, &pc)| pc == start + 4 * (i as u64 + 1));
    println!("debug: single step from {start:#x}: {steps:x?}");

    if locked == 0 && bp_ok && wp_ok && step_ok {
        println!("debug: ok");
    } else {
        println!("debug: FAIL locked={locked} breakpoint={bp_ok} watchpoint={wp_ok} step={step_ok}");
    }
    smccc::system_off()
}
