//! Hypercalls (`hvc #0`, SMC Calling Convention) and PSCI power-off.

use core::arch::asm;

/// SMCCC_VERSION: answers 0x10001 (SMCCC 1.1).
pub const SMCCC_VERSION: u32 = 0x8000_0000;
/// PSCI SYSTEM_OFF: ends the VM, never returns.
pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;
/// PSCI SYSTEM_RESET.
pub const PSCI_SYSTEM_RESET: u32 = 0x8400_0009;
/// PSCI CPU_ON (SMC64).
pub const PSCI_CPU_ON: u32 = 0xc400_0003;
/// x0 for an unknown function id.
pub const NOT_SUPPORTED: u64 = -1i64 as u64;

/// `hvc #0` with function id `func` in x0 and `args` in x1..x7; returns
/// x0..x3.
///
/// x4..x17 are declared clobbered although SMCCC 1.1 preserves them: these
/// guests test the hypervisor, and a bug there should show up as a wrong
/// answer, not as corrupted compiler state.
///
/// # Safety
/// The call must not change memory or CPU state the program relies on
/// (e.g. PSCI CPU_ON or MEM_PROTECT would).
#[inline(always)]
pub unsafe fn hvc(func: u32, args: [u64; 7]) -> [u64; 4] {
    let (r0, r1, r2, r3);
    // SAFETY: the caller vouches for the call; all registers it may change
    // are declared.
    unsafe {
        asm!(
            "hvc #0",
            inlateout("x0") u64::from(func) => r0,
            inlateout("x1") args[0] => r1,
            inlateout("x2") args[1] => r2,
            inlateout("x3") args[2] => r3,
            inlateout("x4") args[3] => _,
            inlateout("x5") args[4] => _,
            inlateout("x6") args[5] => _,
            inlateout("x7") args[6] => _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack),
        )
    };
    [r0, r1, r2, r3]
}

/// SMCCC_VERSION: returns x0 (0x10001 for SMCCC 1.1).
#[inline(always)]
pub fn version() -> u64 {
    // SAFETY: a query with no side effects.
    unsafe { hvc(SMCCC_VERSION, [0; 7])[0] }
}

/// PSCI CPU_ON of the vCPU with affinity `target` at `entry`, with
/// `context_id` in its x0; returns PSCI's answer (0: done).
///
/// # Safety
/// `entry` must be code that may run on that vCPU alongside this one (as
/// `secondary_entry!`'s `_secondary_start` is, with the context id its
/// number).
pub unsafe fn cpu_on(target: u64, entry: u64, context_id: u64) -> u64 {
    // SAFETY: the caller vouches for what the new vCPU runs.
    unsafe { hvc(PSCI_CPU_ON, [target, entry, context_id, 0, 0, 0, 0])[0] }
}

/// PSCI SYSTEM_OFF: the VM ends here.
pub fn system_off() -> ! {
    // SAFETY: the VM stops; nothing runs afterwards.
    unsafe { hvc(PSCI_SYSTEM_OFF, [0; 7]) };
    halt("PSCI SYSTEM_OFF returned")
}

/// PSCI SYSTEM_RESET: the VM restarts from its entry point.
pub fn system_reset() -> ! {
    // SAFETY: the VM restarts; nothing of this run continues.
    unsafe { hvc(PSCI_SYSTEM_RESET, [0; 7]) };
    halt("PSCI SYSTEM_RESET returned")
}

/// Says why and spins: the hypervisor broke its promise to stop the VM,
/// and the test watching this guest times out rather than seeing it end.
fn halt(why: &str) -> ! {
    crate::println!("{}: {why}", crate::name());
    loop {
        core::hint::spin_loop();
    }
}
