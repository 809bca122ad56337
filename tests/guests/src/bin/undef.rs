//! Instructions EL1 may not execute, each of which must raise an UNDEF
//! (ESR_EL1.EC = 0) in the guest: some are UNDEFINED in hardware, others
//! trap to the hypervisor, which must inject the UNDEF.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::ptr::{addr_of, addr_of_mut};
use guests::{println, smccc};

guests::entry!(main);

/// ESR_EL1 of the last synchronous exception; the vector writes it.
static mut ESR: u64 = NO_EXCEPTION;
/// Not a possible ESR_EL1 value (RES0 bits set).
const NO_EXCEPTION: u64 = u64::MAX;

// The vector table: the synchronous exception from the current EL with
// SP_ELx (offset 0x200) records ESR_EL1 and resumes after the faulting
// instruction; every other vector is unexpected.
guests::vector_table!(undef_vectors, 4 => undef_sync);
global_asm!(
    r#"
    .section .text.undef_sync, "ax"
    .global undef_sync
undef_sync:
    stp     x0, x1, [sp, #-16]!
    mrs     x0, esr_el1
    adrp    x1, {esr}
    str     x0, [x1, :lo12:{esr}]
    mrs     x0, elr_el1
    add     x0, x0, #4
    msr     elr_el1, x0
    ldp     x0, x1, [sp], #16
    eret
"#,
    esr = sym ESR,
);

extern "C" {
    /// The table above (only its address is used).
    static undef_vectors: [u32; 512];
}

/// (text, code): the code runs the text as one asm instruction, with x0 = 0
/// as the source of writes and x0 clobbered by reads.
macro_rules! insn {
    ($text:literal) => {
        ($text, {
            fn run() {
                // SAFETY: the instruction should be UNDEFINED at EL1 and be
                // skipped by the vector; if it runs anyway, it reads into x0,
                // or writes EL2 state that EL1 cannot reach.
                unsafe { asm!($text, inout("x0") 0u64 => _) };
            }
            run as fn()
        })
    };
}

const TESTS: [(&str, fn()); 13] = [
    insn!("udf #0"),
    insn!("mrs x0, hcr_el2"),
    insn!("msr hcr_el2, x0"),
    insn!("mrs x0, vttbr_el2"),
    insn!("msr vbar_el2, x0"),
    insn!("tlbi alle2"),
    insn!("mrs x0, sctlr_el3"),
    insn!("msr sp_el1, x0"),
    insn!("mrs x0, s3_0_c15_c0_0"),
    insn!("msr s3_0_c0_c4_0, x0"),
    // SVE, with the guest's CPACR_EL1.ZEN open (below): its registers and
    // instructions are the host's (ZCR_EL1 sets its vector length), so
    // they must trap on a CPU that has SVE, and UNDEF on one that has not.
    insn!("mrs x0, s3_0_c1_c2_0"),
    insn!("msr s3_0_c1_c2_0, x0"),
    insn!(".inst 0x04bf5020"),
];

fn main() -> ! {
    // SAFETY: installs the table above, 2 KiB aligned as VBAR_EL1 requires;
    // its handlers preserve every register they use.
    unsafe { asm!("msr vbar_el1, {}", "isb", in(reg) addr_of!(undef_vectors), options(nostack)) };

    // CPACR_EL1.ZEN = 0b11: SVE not trapped at EL1 (the guest's own choice).
    guests::sysreg!(write "cpacr_el1", guests::sysreg!(read "cpacr_el1") | 3 << 16);
    let mut undefined = 0;
    for (text, run) in TESTS {
        // SAFETY: ESR is only accessed through volatile reads and writes,
        // by this single thread and its own exception vector.
        unsafe { addr_of_mut!(ESR).write_volatile(NO_EXCEPTION) };
        run();
        // SAFETY: as above.
        let esr = unsafe { addr_of!(ESR).read_volatile() };
        let ec = (esr >> 26) & 0x3f;
        if esr == NO_EXCEPTION {
            println!("undef: FAIL {text} (no exception)");
        } else if ec != 0 {
            println!("undef: FAIL {text} (EC {ec:#x})");
        } else {
            println!("undef: PASS {text} -> UNDEF");
            undefined += 1;
        }
    }
    println!("undef: {undefined}/{} undefined as expected", TESTS.len());
    // The ID registers show only what is virtualised: no EL2, no PMU.
    let (pfr0, dfr0): (u64, u64);
    // SAFETY: reading ID registers has no side effects.
    unsafe { asm!("mrs {}, id_aa64pfr0_el1", "mrs {}, id_aa64dfr0_el1", out(reg) pfr0, out(reg) dfr0) };
    println!(
        "undef: id_aa64pfr0 el2={} gic={} id_aa64dfr0 pmuver={} debugver={}",
        (pfr0 >> 8) & 0xf,
        (pfr0 >> 24) & 0xf,
        (dfr0 >> 8) & 0xf,
        dfr0 & 0xf
    );
    smccc::system_off()
}
