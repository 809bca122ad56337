//! SMC and HVC with function ids of every class: each owning entity (0-63),
//! fast and yielding, SMC32 and SMC64, a spread of function numbers. Every
//! call must return, with NOT_SUPPORTED for what nobody implements, and the
//! discovery and PSCI queries answered as SMCCC 1.1 and PSCI 1.0 say.
//! Calls that would change the VM (PSCI CPU_OFF, CPU_SUSPEND, CPU_ON,
//! SYSTEM_*, MEM_PROTECT, MIGRATE) are left out.

#![no_std]
#![no_main]

use core::arch::asm;
use guests::println;
use guests::smccc::{self, NOT_SUPPORTED};

guests::entry!(main);

/// Function numbers tried in every class.
const NUMBERS: [u32; 9] = [0, 1, 2, 3, 4, 0x10, 0xff, 0x100, 0xffff];

/// PSCI function numbers (owner 4) that change the VM's state.
const PSCI_CHANGES: [u32; 11] = [0x1, 0x2, 0x3, 0x5, 0x8, 0x9, 0xc, 0xe, 0x12, 0x13, 0x14];

/// `smc #0` with x0 = `func`, x1 = `arg`; returns x0.
fn smc(func: u32, arg: u64) -> u64 {
    let r;
    // SAFETY: an SMCCC call the sweep chose to be without side effects; all
    // registers SMCCC lets the callee change are declared.
    unsafe {
        asm!("smc #0", inlateout("x0") u64::from(func) => r, inlateout("x1") arg => _,
             out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
             out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
             out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
    }
    r
}

/// `hvc #0` with x0 = `func`, x1 = `arg`; returns x0.
fn hvc(func: u32, arg: u64) -> u64 {
    // SAFETY: as for smc.
    unsafe { smccc::hvc(func, [arg, 0, 0, 0, 0, 0, 0])[0] }
}

/// What a call of `fid`, with x1 = SMCCC_VERSION's id, must answer (`None`:
/// an answer that depends on the VM's state; any answer but a hang will do).
fn expected(fid: u32) -> Option<u64> {
    let fast = fid & (1 << 31) != 0;
    let smc64 = fid & (1 << 30) != 0;
    let owner = (fid >> 24) & 0x3f;
    let num = fid & 0xffff;
    if !fast {
        // Yielding calls: nothing here implements one.
        return Some(NOT_SUPPORTED);
    }
    match (owner, smc64, num) {
        (0, false, 0) => Some(0x1_0001), // SMCCC_VERSION: 1.1
        (0, false, 1) => Some(0),        // SMCCC_ARCH_FEATURES(SMCCC_VERSION): implemented
        (4, false, 0) => Some(0x1_0000), // PSCI_VERSION: 1.0
        (4, _, 4) => None,               // AFFINITY_INFO: the state of the vCPU x1 names
        (4, false, 6) => Some(2),        // MIGRATE_INFO_TYPE: no trusted OS
        (4, false, 0xa) => Some(0),      // PSCI_FEATURES(SMCCC_VERSION): implemented (SMCCC 1.1)
        _ => Some(NOT_SUPPORTED),
    }
}

fn main() -> ! {
    let (mut calls, mut unsupported, mut wrong) = (0u32, 0u32, 0u32);
    for conduit in ["hvc", "smc"] {
        for owner in 0..64u32 {
            for kind in [0x8000_0000u32, 0xc000_0000, 0x0000_0000, 0x4000_0000] {
                for &num in &NUMBERS {
                    if owner == 4 && PSCI_CHANGES.contains(&num) {
                        continue;
                    }
                    let fid = kind | owner << 24 | num;
                    // x1: SMCCC_VERSION's id, so ARCH_FEATURES and PSCI_FEATURES ask about it.
                    let arg = u64::from(smccc::SMCCC_VERSION);
                    let r = if conduit == "hvc" { hvc(fid, arg) } else { smc(fid, arg) };
                    calls += 1;
                    if r == NOT_SUPPORTED {
                        unsupported += 1;
                    }
                    if let Some(w) = expected(fid) {
                        if r != w {
                            wrong += 1;
                            println!("hvcsweep: {conduit} {fid:#010x}: got {r:#x}, expected {w:#x}");
                        }
                    }
                }
            }
        }
    }
    println!("hvcsweep: {calls} calls, {unsupported} NOT_SUPPORTED, {wrong} wrong answers");
    if wrong == 0 {
        println!("hvcsweep: ok");
    }
    smccc::system_off()
}
