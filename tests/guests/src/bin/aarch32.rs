//! AArch32 at EL0, which the CPU may allow under an AArch64 guest kernel
//! (32-bit user programs): what it makes trap to the hypervisor (host
//! interrupts during a long loop, a WFI, MMIO loads) is handled with the PC
//! stepped by the instruction's own length: 4 for A32, 2 for a 16-bit T32
//! load. Each run ends with an SVC, taken by this guest's EL1 at the vector
//! for lower-EL AArch32 synchronous exceptions. On a CPU whose EL0 is
//! AArch64 only, there is nothing to check.

#![no_std]
#![no_main]

use core::arch::global_asm;
use core::ptr::addr_of;
use guests::timer::{ms_to_ticks, Timer};
use guests::{gic, mmio, println, smccc, sysreg, uart};

guests::entry!(main);

/// ESR_EL1.EC of an SVC from AArch32.
const EC_SVC32: u64 = 0x11;
/// SPSR for AArch32 User mode (M = 0b10000) with A, I and F masked; T
/// (bit 5) selects T32.
const SPSR_USR: u64 = 0x10 | 1 << 6 | 1 << 7 | 1 << 8;
const SPSR_T: u64 = 1 << 5;

/// A32: wfi; a loop of r3 iterations; r1 = [r0]; r2 = r1; svc #0.
#[repr(C, align(4))]
struct A32([u32; 6]);
static A32_CODE: A32 = A32([
    0xe320_f003, // wfi
    0xe253_3001, // subs r3, r3, #1
    0x1aff_fffd, // bne  (back to subs)
    0xe590_1000, // ldr  r1, [r0]
    0xe1a0_2001, // mov  r2, r1
    0xef00_0000, // svc  #0
]);

/// T32, 16-bit encodings: wfi; r1 = [r0]; svc #1.
#[repr(C, align(4))]
struct T32([u16; 3]);
static T32_CODE: T32 = T32([
    0xbf30, // wfi
    0x6801, // ldr r1, [r0]
    0xdf01, // svc #1
]);

/// What EL0 left: ESR_EL1 of the SVC, r1, r2, and the return address.
#[repr(C)]
#[derive(Clone, Copy)]
struct El0Exit {
    esr: u64,
    r1: u64,
    r2: u64,
    elr: u64,
}

// run_el0(pc, spsr, r0, r3) enters EL0 at pc with r0 and r3 set and the
// other registers zero, and returns when EL0 takes the synchronous vector
// for a lower EL in AArch32 (offset 0x600), which resumes on the stack
// saved here. Every other vector is unexpected.
guests::vector_table!(aarch32_vectors, 12 => el0_returned);
global_asm!(
    r#"
    .section .text.run_el0, "ax"
    .global run_el0
run_el0:
    stp     x29, x30, [sp, #-96]!
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
    mov     x9, sp
    adrp    x10, {saved_sp}
    str     x9, [x10, :lo12:{saved_sp}]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    mov     x0, x2
    mov     x1, xzr
    mov     x2, xzr
    isb
    eret

    .global el0_returned
el0_returned:
    adrp    x10, {exit}
    add     x10, x10, :lo12:{exit}
    mrs     x9, esr_el1
    stp     x9, x1, [x10]
    mrs     x9, elr_el1
    stp     x2, x9, [x10, #16]
    adrp    x10, {saved_sp}
    ldr     x9, [x10, :lo12:{saved_sp}]
    mov     sp, x9
    ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #64]
    ldp     x27, x28, [sp, #80]
    ldp     x29, x30, [sp], #96
    ret
"#,
    saved_sp = sym SAVED_SP,
    exit = sym EXIT,
);

static mut SAVED_SP: u64 = 0;
/// What EL0 left, written by the vector.
static mut EXIT: El0Exit = El0Exit { esr: 0, r1: 0, r2: 0, elr: 0 };

extern "C" {
    static aarch32_vectors: [u32; 512];
    fn run_el0(pc: u64, spsr: u64, r0: u64, r3: u64);
}

/// Runs EL0 code until its SVC; what it left.
///
/// # Safety
/// `pc` must hold code for the state `spsr` selects, ending in an SVC.
unsafe fn el0(pc: u64, spsr: u64, r0: u64, r3: u64) -> El0Exit {
    // SAFETY: per the caller; the vector fills EXIT before run_el0 returns.
    unsafe {
        run_el0(pc, spsr, r0, r3);
        *addr_of!(EXIT)
    }
}

fn main() -> ! {
    if (sysreg!(read "id_aa64pfr0_el1") & 0xf) < 2 {
        println!("aarch32: EL0 is AArch64 only on this CPU; nothing to check");
        println!("aarch32: ok");
        smccc::system_off();
    }
    // SAFETY: the PL011's flag register, a read without side effects.
    let fr = unsafe { mmio::ldr_w(uart::FR) };
    // EL0 may run WFI and WFE (nTWI, nTWE), as Linux lets it: they trap to
    // the hypervisor, not to this EL1. Each WFI at EL0 ends when the
    // virtual timer, armed 100 ms ahead (far enough that the WFI comes first,
    // however slow the emulator), fires (EL0 runs with IRQs masked: it
    // stays pending until disarmed).
    sysreg!(write "sctlr_el1", sysreg!(read "sctlr_el1") | 1 << 16 | 1 << 18);
    gic::init_distributor();
    gic::init_cpu();
    gic::enable(Timer::Virtual.intid());
    let arm = || {
        Timer::Virtual.set_cval(Timer::Virtual.count() + ms_to_ticks(100));
        Timer::Virtual.set_enabled(true);
    };
    sysreg!(write "vbar_el1", addr_of!(aarch32_vectors) as u64);
    arm();
    // SAFETY: the code is in guest RAM (MMU off: EL0 may run it), and ends
    // with an SVC, which the vector turns into a return from run_el0.
    let a = unsafe { el0(addr_of!(A32_CODE) as u64, SPSR_USR, uart::FR as u64, 1 << 24) };
    Timer::Virtual.set_enabled(false);
    println!(
        "aarch32: A32 at EL0: esr={:#x} r1={:#x} r2={:#x} elr={:#x} (FR at EL1 {fr:#x})",
        a.esr, a.r1, a.r2, a.elr
    );
    arm();
    // SAFETY: as above, in T32.
    let t = unsafe { el0(addr_of!(T32_CODE) as u64, SPSR_USR | SPSR_T, uart::FR as u64, 0) };
    Timer::Virtual.set_enabled(false);
    println!("aarch32: T32 at EL0: esr={:#x} r1={:#x} elr={:#x}", t.esr, t.r1, t.elr);
    // An A32 SVC has IL=1, a 16-bit T32 one IL=0 and its immediate.
    let (a_end, t_end) = (addr_of!(A32_CODE) as u64 + 24, addr_of!(T32_CODE) as u64 + 6);
    let a_ok = a.esr >> 26 == EC_SVC32 && a.esr & (1 << 25) != 0 && a.r1 == fr && a.r2 == fr && a.elr == a_end;
    let t_ok = t.esr >> 26 == EC_SVC32 && t.esr & (1 << 25) == 0 && t.esr & 0xffff == 1 && t.r1 == fr && t.elr == t_end;
    if a_ok && t_ok {
        println!("aarch32: ok");
    } else {
        println!("aarch32: FAIL a32={a_ok} t32={t_ok}");
    }
    smccc::system_off()
}
