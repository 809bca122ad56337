//! Never exits: all 32 vCPUs storm at once, each in its own way, by its
//! number n: n % 5 = 0 WFE in a loop (a trap and a yield each), 1 WFI with
//! its virtual timer firing and enabled in the GIC but masked in PSTATE (the
//! interrupt is pending, so WFI never waits and is never taken),
//! 2 an exception storm inside the guest (every vector an `udf`), 3 HVCs the
//! kernel answers, 4 MMIO reads that bhyve answers. The host must stay
//! responsive and be able to stop the VM. Run with `bhyve -c 32`.

#![no_std]
#![no_main]

use core::arch::global_asm;
use guests::{gic, println, smccc};

guests::entry!(main);

global_asm!(
    r#"
    .section .text.storm32, "ax"
    .balign 2048
storm32_vectors:
    .rept 512
    udf #0
    .endr

    .global storm32_entry
storm32_entry:
    mov     x1, #5
    udiv    x2, x0, x1
    msub    x1, x2, x1, x0
    cbz     x1, 0f
    cmp     x1, #1
    b.eq    1f
    cmp     x1, #2
    b.eq    2f
    cmp     x1, #3
    b.eq    3f
    b       4f
0:  wfe
    b       0b
1:  mov     x3, #0x080a0000         // this vCPU's redistributor: RD frame
    add     x3, x3, x0, lsl #17
    ldr     w4, [x3, #0x14]         // GICR_WAKER: awake
    bic     w4, w4, #2
    str     w4, [x3, #0x14]
    add     x3, x3, #0x10000        // SGI frame
    mov     w4, #(1 << 27)          // the virtual timer's PPI: group 1, enabled
    str     w4, [x3, #0x80]
    str     w4, [x3, #0x100]
    mov     x4, #0xff
    msr     icc_pmr_el1, x4
    mov     x4, #1
    msr     icc_igrpen1_el1, x4
    msr     cntv_cval_el0, xzr
    msr     cntv_ctl_el0, x4
    isb
5:  wfi
    b       5b
2:  adr     x2, storm32_vectors
    msr     vbar_el1, x2
    isb
    udf     #0
3:  mov     x0, #0x80000000
    hvc     #0
    b       3b
4:  mov     x3, #0x09000000
6:  ldr     w4, [x3, #0x18]
    b       6b
"#
);

extern "C" {
    fn storm32_entry();
    static storm32_vectors: [u32; 512];
}

fn main() -> ! {
    gic::init_distributor();
    let mut started = 1;
    for n in 1..32u64 {
        let mpidr = ((n / 16) << 8) | (n % 16);
        // SAFETY: the entry point uses no stack and no memory but its own
        // code: every vCPU may run it at once.
        let r = unsafe { smccc::cpu_on(mpidr, storm32_entry as *const () as u64, n) };
        if r == 0 {
            started += 1;
        } else {
            println!("storm32: CPU_ON of vCPU {n} answered {r:#x}");
        }
    }
    println!("storm32: {started} vCPUs storming");
    // vCPU 0 joins as an exception storm.
    // SAFETY: points VBAR_EL1 at the table of `udf`s and raises the first
    // exception; nothing returns.
    unsafe {
        core::arch::asm!(
            "msr daifset, #0xf",
            "msr vbar_el1, {v}",
            "isb",
            "udf #0",
            v = in(reg) core::ptr::addr_of!(storm32_vectors),
            options(noreturn, nostack)
        )
    }
}
