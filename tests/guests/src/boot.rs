//! `_start`, and exception vectors that report anything unexpected.

use crate::{name, println, smccc};
use core::arch::{asm, global_asm};

// Entered at EL1h with the MMU and caches off and DAIF masked.
global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    // Rust code may use SIMD registers (memcpy, formatting): stop FP/SIMD
    // trapping (CPACR_EL1.FPEN = 0b11) before any of it runs.
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb

    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1

    // A stray exception should be reported, not run whatever VBAR_EL1 held.
    adrp    x1, __default_vectors
    add     x1, x1, :lo12:__default_vectors
    msr     vbar_el1, x1
    isb

    // Zero .bss (16-byte aligned by link.ld). Plain stores: `dc zva` faults
    // on Device memory, which is all memory while the MMU is off.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
0:  cmp     x1, x2
    b.hs    1f
    stp     xzr, xzr, [x1], #16
    b       0b
1:  bl      __guest_main
    // __guest_main never returns; if it did, trap into the report below.
    udf     #0

    // The default vector table: 16 entries of 0x80 bytes, 2 KiB aligned.
    // Each passes its offset to `unexpected_exception`.
    .section .text.vectors, "ax"
    .balign 0x800
    .global __default_vectors
__default_vectors:
    .irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .balign 0x80
    mov     x0, #(\n * 0x80)
    b       {handler}
    .endr
"#,
    handler = sym unexpected_exception,
);

/// Reports an exception nobody expected, with the vector offset it came
/// through (0x200 = synchronous, current EL with SP_ELx) and the syndrome,
/// then powers off. Vector tables can branch here with the offset in x0.
pub extern "C" fn unexpected_exception(vector: u64) -> ! {
    let (esr, elr, far): (u64, u64, u64);
    // SAFETY: reads of EL1 exception registers, no side effects.
    unsafe {
        asm!(
            "mrs {}, esr_el1",
            "mrs {}, elr_el1",
            "mrs {}, far_el1",
            out(reg) esr,
            out(reg) elr,
            out(reg) far,
            options(nomem, nostack, preserves_flags),
        )
    };
    println!("{}: unexpected exception, vector {vector:#x} ESR_EL1 {esr:#x} ELR_EL1 {elr:#x} FAR_EL1 {far:#x}", name());
    smccc::system_off()
}
