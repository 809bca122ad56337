//! Every system register encoding (op0 2 and 3: op1, CRn, CRm, op2 all
//! values, 32,768 in all) read and written from EL1: each access either
//! completes or raises an exception in the guest, an UNDEF or one the
//! architecture gives at EL1 for it on this CPU (a trapped MSR/MRS for an
//! unallocated ID register with FEAT_IDST, SVE or SME registers while the
//! guest's own CPACR_EL1 traps them); the hypervisor neither stops
//! the VM nor lets the guest reach the host's registers. A write puts back
//! the value just read (or 0 where the read was UNDEFINED), so the guest
//! changes nothing it did not already have; the virtual timer's compare
//! value is never set near 2^64, which freezes QEMU 7.2 (not a real CPU).
//!
//! The instructions are made at run time in a RAM buffer and called.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::ptr::{addr_of, addr_of_mut};
use guests::{println, smccc};

guests::entry!(main);

/// ESR_EL1 of the exception the last probe raised, or [`NONE`].
static mut ESR: u64 = NONE;
/// Not an ESR value (RES0 bits set).
const NONE: u64 = u64::MAX;

// Synchronous exceptions from EL1 record ESR_EL1 and resume after the
// faulting instruction (in the probe buffer: its `ret`).
guests::vector_table!(sysregs_vectors, 4 => sysregs_sync);
global_asm!(
    r#"
    .section .text.sysregs_sync, "ax"
    .global sysregs_sync
sysregs_sync:
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
    static sysregs_vectors: [u32; 512];
}

/// The buffer the probe instructions are written to: one instruction and `ret`.
#[repr(C, align(64))]
struct Probe([u32; 16]);
static mut PROBE: Probe = Probe([0; 16]);

const RET: u32 = 0xd65f_03c0;
const MRS: u32 = 0xd530_0000;
const MSR: u32 = 0xd510_0000;

/// An encoding: (op0, op1, CRn, CRm, op2).
type Enc = (u32, u32, u32, u32, u32);

/// The MRS or MSR of `e` with x1 as the register.
fn insn(base: u32, (op0, op1, crn, crm, op2): Enc) -> u32 {
    base | (op0 - 2) << 19 | op1 << 16 | crn << 12 | crm << 8 | op2 << 5 | 1
}

/// Runs `insn` with x1 = `x1`; returns x1 afterwards and the ESR of the
/// exception it raised (None if none).
fn run(insn: u32, x1: u64) -> (u64, Option<u64>) {
    let p = addr_of_mut!(PROBE) as *mut u32;
    let out;
    // SAFETY: writes two instructions into the guest's own buffer, makes them
    // visible to instruction fetch, then calls them; `ret` comes back here,
    // and an exception resumes at the `ret` (the vector above). The probe
    // may write any system register with the value it read from it (see
    // the module's documentation), which leaves the guest as it was.
    unsafe {
        p.write_volatile(insn);
        p.add(1).write_volatile(RET);
        addr_of_mut!(ESR).write_volatile(NONE);
        asm!(
            "dc cvau, {p}",
            "dsb ish",
            "ic ivau, {p}",
            "dsb ish",
            "isb",
            "blr {p}",
            p = in(reg) p,
            inout("x1") x1 => out,
            out("x30") _,
            options(nostack),
        );
        let esr = addr_of!(ESR).read_volatile();
        (out, (esr != NONE).then_some(esr))
    }
}

/// Reads `e`: Ok(value) or Err(ESR).
fn read(e: Enc) -> Result<u64, u64> {
    match run(insn(MRS, e), 0) {
        (v, None) => Ok(v),
        (_, Some(esr)) => Err(esr),
    }
}

/// Writes `v` to `e`: Ok or Err(ESR).
fn write(e: Enc, v: u64) -> Result<(), u64> {
    match run(insn(MSR, e), v) {
        (_, None) => Ok(()),
        (_, Some(esr)) => Err(esr),
    }
}

/// CNTV_CVAL_EL0: written back only if far from 2^64.
const CNTV_CVAL: Enc = (3, 3, 14, 3, 2);

fn main() -> ! {
    // SAFETY: installs the table above, 2 KiB aligned; its handler keeps
    // every register but the ELR it steps.
    unsafe { asm!("msr vbar_el1, {}", "isb", in(reg) addr_of!(sysregs_vectors), options(nostack)) };

    let (mut reads, mut read_undef, mut writes, mut write_undef, mut other) = (0u32, 0u32, 0u32, 0u32, 0u32);
    let ec = |esr: u64| esr >> 26;
    // Exception classes EL1 itself may take for a register access: UNDEF,
    // a trapped MSR/MRS (FEAT_IDST), SVE and SME access traps (the guest's
    // CPACR_EL1.ZEN and SMEN are off). Anything else would be the
    // hypervisor's doing.
    let expected = |esr: u64| matches!(ec(esr), 0x00 | 0x18 | 0x19 | 0x1d);
    let mut classes = [0u32; 64];
    for op0 in 2..=3 {
        for op1 in 0..8 {
            for crn in 0..16 {
                for crm in 0..16 {
                    for op2 in 0..8 {
                        let e = (op0, op1, crn, crm, op2);
                        let back = match read(e) {
                            Ok(v) => {
                                reads += 1;
                                v
                            }
                            Err(esr) => {
                                read_undef += 1;
                                classes[ec(esr) as usize] += 1;
                                if !expected(esr) {
                                    other += 1;
                                    println!("sysregs: read {e:?}: ESR {esr:#x}");
                                }
                                0
                            }
                        };
                        if e == CNTV_CVAL && back > 1 << 62 {
                            continue;
                        }
                        match write(e, back) {
                            Ok(()) => writes += 1,
                            Err(esr) => {
                                write_undef += 1;
                                classes[ec(esr) as usize] += 1;
                                if !expected(esr) {
                                    other += 1;
                                    println!("sysregs: write {e:?}: ESR {esr:#x}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    println!(
        "sysregs: {} encodings: {reads} read, {read_undef} UNDEFINED to read; {writes} written, {write_undef} UNDEFINED to write; {other} other exceptions",
        reads + read_undef
    );
    for (c, n) in classes.iter().enumerate().filter(|(_, &n)| n != 0) {
        println!("sysregs: exception class {c:#04x}: {n}");
    }
    // Registers whose fate is known on any CPU.
    let checks = [
        ("MIDR_EL1 readable", read((3, 0, 0, 0, 0)).is_ok()),
        ("MIDR_EL1 read-only", write((3, 0, 0, 0, 0), 0).is_err()),
        ("CNTFRQ_EL0 read-only at EL1", write((3, 3, 14, 0, 0), 1).is_err()),
        ("HCR_EL2 out of reach", read((3, 4, 1, 1, 0)).is_err()),
        ("VTTBR_EL2 out of reach", write((3, 4, 2, 1, 0), 0).is_err()),
        ("SCTLR_EL1 read and written", read((3, 0, 1, 0, 0)).is_ok_and(|v| write((3, 0, 1, 0, 0), v).is_ok())),
    ];
    let mut ok = other == 0;
    for (what, good) in checks {
        if !good {
            println!("sysregs: FAIL: {what}");
            ok = false;
        }
    }
    if ok {
        println!("sysregs: ok");
    }
    smccc::system_off()
}
