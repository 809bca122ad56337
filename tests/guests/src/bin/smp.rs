//! SMP: vCPU 0 brings up vCPUs 1..N-1 (N = testdev PARAM, default 4) with
//! PSCI CPU_ON; each prints its MPIDR in turn. Then PSCI's answers are
//! checked: ALREADY_ON, INVALID_PARAMETERS, AFFINITY_INFO on and off after
//! the secondaries call CPU_OFF.
//!
//! With the MMU off all memory is Device memory: no exclusives, but plain
//! accesses are seen by the other CPUs in program order, so a turn counter
//! in memory orders the CPUs' printing.

#![no_std]
#![no_main]

use core::arch::asm;
use core::ptr::{addr_of, addr_of_mut};
use guests::smccc::PSCI_CPU_ON as CPU_ON;
use guests::{println, smccc, testdev};

guests::entry!(main);
guests::secondary_entry!(secondary);

const CPU_OFF: u32 = 0x8400_0002;
const AFFINITY_INFO: u32 = 0xc400_0004;
const ALREADY_ON: u64 = -4i64 as u64;
const INVALID_PARAMETERS: u64 = -2i64 as u64;

/// Whose turn it is to print (0: the boot CPU is still starting the others).
static mut TURN: u64 = 0;
/// Set by the boot CPU: the secondaries may turn themselves off.
static mut OFF: u64 = 0;
/// The boot CPU's virtual count just before it starts the others.
static mut T0: u64 = 0;
/// Secondaries whose virtual count was behind T0 (the counters disagree).
static mut BEHIND: u64 = 0;

fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reads MPIDR_EL1, no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn mpidr_of(cpu: u64) -> u64 {
    1 << 31 | (cpu & 0xf) | (cpu >> 4) << 8
}

fn get(p: *const u64) -> u64 {
    // SAFETY: p points to one of the statics above; volatile, as other CPUs write them.
    unsafe { p.read_volatile() }
}

fn set(p: *mut u64, v: u64) {
    // SAFETY: as above.
    unsafe { p.write_volatile(v) }
}

fn psci(func: u32, a: u64, b: u64, c: u64) -> u64 {
    // SAFETY: an SMCCC call; only x0..x17 may change.
    let r = unsafe { smccc::hvc(func, [a, b, c, 0, 0, 0, 0]) };
    r[0]
}

extern "C" {
    fn _secondary_start();
}

/// The secondaries' entry point, for CPU_ON.
fn entry() -> u64 {
    _secondary_start as *const () as u64
}

extern "C" fn secondary(cpu: u64) -> ! {
    // All vCPUs of a VM share one virtual counter: ours cannot be behind
    // what vCPU 0 read before starting us.
    if guests::timer::cntvct() < get(addr_of!(T0)) {
        set(addr_of_mut!(BEHIND), get(addr_of!(BEHIND)) + 1);
    }
    while get(addr_of!(TURN)) != cpu {}
    println!("smp: cpu{cpu} mpidr {:#x}", mpidr());
    set(addr_of_mut!(TURN), cpu + 1);
    while get(addr_of!(OFF)) == 0 {}
    psci(CPU_OFF, 0, 0, 0);
    println!("smp: FAIL cpu{cpu} returned from CPU_OFF");
    smccc::system_off()
}

fn main() -> ! {
    let n = match testdev::param() {
        0 => 4,
        n => n.min(16),
    };
    println!("smp: cpu0 mpidr {:#x}, starting {} more", mpidr(), n - 1);
    let t0 = guests::timer::cntvct();
    set(addr_of_mut!(T0), t0);
    // The guest's counter starts near zero when its VM is created.
    println!("smp: virtual counter {} ms after the VM was created", t0 / (guests::timer::cntfrq() / 1000));
    let mut failures = 0;
    for cpu in 1..n {
        let r = psci(CPU_ON, mpidr_of(cpu), entry(), cpu);
        if r != 0 {
            println!("smp: FAIL CPU_ON cpu{cpu} answered {r:#x}");
            failures += 1;
        }
    }
    if n > 1 {
        // Once cpu1 is on (not merely ON_PENDING), a second CPU_ON must
        // say ALREADY_ON.
        while psci(AFFINITY_INFO, mpidr_of(1), 0, 0) != 0 {}
        let r = psci(CPU_ON, mpidr_of(1), entry(), 1);
        println!("smp: CPU_ON of a running cpu: {}", if r == ALREADY_ON { "ALREADY_ON" } else { "FAIL" });
        failures += u32::from(r != ALREADY_ON);
    }
    let r = psci(CPU_ON, mpidr_of(n), entry(), n);
    println!("smp: CPU_ON of a missing cpu: {}", if r == INVALID_PARAMETERS { "INVALID_PARAMETERS" } else { "FAIL" });
    failures += u32::from(r != INVALID_PARAMETERS);
    // Let the secondaries print, one after the other.
    set(addr_of_mut!(TURN), 1);
    while get(addr_of!(TURN)) != n {}
    let on = (1..n).filter(|&c| psci(AFFINITY_INFO, mpidr_of(c), 0, 0) == 0).count() as u64;
    println!("smp: AFFINITY_INFO: {on} of {} secondaries on", n - 1);
    failures += u32::from(on != n - 1);
    set(addr_of_mut!(OFF), 1);
    for c in 1..n {
        while psci(AFFINITY_INFO, mpidr_of(c), 0, 0) != 1 {}
    }
    println!("smp: all secondaries off after CPU_OFF");
    let behind = get(addr_of!(BEHIND));
    println!("smp: virtual counters agree: {}", if behind == 0 { "yes" } else { "FAIL" });
    failures += u32::from(behind != 0);
    println!("smp: done, {failures} failures");
    smccc::system_off()
}
