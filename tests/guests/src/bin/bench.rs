//! Exit costs: PARAM (default 10000) hypercalls (SMCCC_VERSION, answered at
//! EL2), as many trapped system register reads (ID_AA64PFR0_EL1, emulated
//! in the host kernel), then as many PL011 register reads answered by bhyve
//! in userspace, each loop timed with the virtual counter (instructions
//! under QEMU -icount).

#![no_std]
#![no_main]

use guests::timer::{cntfrq, cntvct};
use guests::{mmio, println, smccc, testdev, uart};

guests::entry!(main);

fn main() -> ! {
    let n = match testdev::param() {
        0 => 10_000,
        n => n,
    };
    let freq = cntfrq();

    let start = cntvct();
    for _ in 0..n {
        smccc::version();
    }
    let ticks = cntvct() - start;
    println!("bench: hvc_smccc_version iterations {n} ticks {ticks} cntfrq {freq}");

    let start = cntvct();
    for _ in 0..n {
        // Trapped (HCR_EL2.TID3) and answered by the host kernel's ID register emulation.
        core::hint::black_box(guests::sysreg!(read "id_aa64pfr0_el1"));
    }
    let ticks = cntvct() - start;
    println!("bench: sysreg_id_aa64pfr0 iterations {n} ticks {ticks} cntfrq {freq}");

    let start = cntvct();
    for _ in 0..n {
        // SAFETY: the PL011 flag register, MMIO; reading has no side effects.
        unsafe { mmio::ldr_w(uart::FR) };
    }
    let ticks = cntvct() - start;
    println!("bench: mmio_pl011_fr iterations {n} ticks {ticks} cntfrq {freq}");

    smccc::system_off()
}
