//! FP/SIMD state across exits: the host thread does FP work on each testdev
//! FPWORK read, and must hand the guest back all 32 V registers, FPCR and
//! FPSR as they were.

#![no_std]
#![no_main]

use core::arch::global_asm;
use guests::{println, smccc, testdev};

guests::entry!(main);

const EXITS: u64 = 10_000;
/// FPCR: DN (bit 25), FZ (bit 24), RMode = 0b11 (bits 23:22); default is 0.
const FPCR: u64 = 0x03C0_0000;
/// FPSR: QC (bit 27), IXC (bit 4), IOC (bit 0).
const FPSR: u64 = 0x0800_0011;
/// Failure codes below 32 name a V register; these the control registers.
const FAIL_FPCR: u64 = 32;
const FAIL_FPSR: u64 = 33;

/// 16-byte aligned: the table is loaded with `ldr qN`, and with the MMU off
/// an unaligned access faults.
#[repr(C, align(16))]
struct Patterns([[u64; 2]; 32]);

/// Register n holds [low, high]: every half of every register differs.
static PATTERNS: Patterns = Patterns(patterns());

const fn patterns() -> [[u64; 2]; 32] {
    let mut p = [[0; 2]; 32];
    let mut n = 0;
    while n < 32 {
        let bytes = n as u64 * 0x0101_0101_0101_0101;
        p[n] = [0x0F1E_2D3C_4B5A_6978 ^ bytes, 0xFEDC_BA98_7654_3210 ^ bytes];
        n += 1;
    }
    p
}

extern "C" {
    /// Loads v0-v31 from `patterns`, sets FPCR and FPSR, then `exits` times
    /// reads `fpwork` and checks everything. Returns 0, or
    /// `exit << 8 | what` for the first mismatch, `exit` counting from 1 and
    /// `what` a register number, FAIL_FPCR or FAIL_FPSR.
    fn fp_exits(exits: u64, fpwork: usize, patterns: *const [u64; 2]) -> u64;
}

// One routine, so the compiler cannot touch a V register in between. It is
// an AAPCS64 function: d8-d15 are callee-saved, and FPCR/FPSR go back to what
// the Rust code had.
global_asm!(
    r#"
    .section .text.fp_exits, "ax"
    .balign 4
    .global fp_exits
fp_exits:
    stp     d8, d9, [sp, #-80]!
    stp     d10, d11, [sp, #16]
    stp     d12, d13, [sp, #32]
    stp     d14, d15, [sp, #48]
    mrs     x3, fpcr
    mrs     x4, fpsr
    stp     x3, x4, [sp, #64]

    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ldr     q\n, [x2, #(\n * 16)]
    .endr
    mov     x3, #({fpcr} & 0xffff)
    movk    x3, #({fpcr} >> 16), lsl #16
    msr     fpcr, x3
    mov     x4, #({fpsr} & 0xffff)
    movk    x4, #({fpsr} >> 16), lsl #16
    msr     fpsr, x4

    mov     x10, #0                 // exits so far
1:  ldr     x9, [x1]                // FPWORK: exit, host does FP work
    add     x10, x10, #1
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    mov     x11, #\n
    ldp     x5, x6, [x2, #(\n * 16)]
    fmov    x7, d\n
    cmp     x7, x5
    b.ne    9f
    mov     x7, v\n\().d[1]
    cmp     x7, x6
    b.ne    9f
    .endr
    mov     x11, #{fail_fpcr}
    mrs     x7, fpcr
    cmp     x7, x3
    b.ne    9f
    mov     x11, #{fail_fpsr}
    mrs     x7, fpsr
    cmp     x7, x4
    b.ne    9f
    cmp     x10, x0
    b.lo    1b
    mov     x0, #0
    b       2f
9:  orr     x0, x11, x10, lsl #8

2:  ldp     x3, x4, [sp, #64]
    msr     fpcr, x3
    msr     fpsr, x4
    ldp     d14, d15, [sp, #48]
    ldp     d12, d13, [sp, #32]
    ldp     d10, d11, [sp, #16]
    ldp     d8, d9, [sp], #80
    ret
"#,
    fpcr = const FPCR,
    fpsr = const FPSR,
    fail_fpcr = const FAIL_FPCR,
    fail_fpsr = const FAIL_FPSR,
);

fn main() -> ! {
    // SAFETY: fp_exits is the AAPCS64 function above; FPWORK is MMIO outside
    // RAM and PATTERNS is 32 aligned pairs, as it reads them.
    let r = unsafe { fp_exits(EXITS, testdev::FPWORK, PATTERNS.0.as_ptr()) };
    match (r >> 8, r & 0xff) {
        (0, _) => println!("fp: PASS {EXITS} exits, v0-v31, fpcr and fpsr intact"),
        (i, FAIL_FPCR) => println!("fp: FAIL at exit {i}: fpcr"),
        (i, FAIL_FPSR) => println!("fp: FAIL at exit {i}: fpsr"),
        (i, n) => println!("fp: FAIL at exit {i}: v{n}"),
    }
    smccc::system_off()
}
