//! IPIs: vCPU 0 starts vCPU 1 with PSCI CPU_ON and sends it SGI 1 10,000
//! times, each time waiting (at most a second) for vCPU 1's handler to
//! count it; vCPU 1 sleeps in WFI between them.

#![no_std]
#![no_main]

use guests::timer::poll_for;
use guests::{gic, println, smccc, Shared};

guests::entry!(main);
guests::secondary_entry!(secondary);

const SGI: u32 = 1;
const IPIS: u64 = 10_000;
/// The receiver: vCPU 1, Aff0 1 (also its CPU_ON target: the affinity
/// fields only, as PSCI asks).
const CPU1: u64 = 1;

/// Set by vCPU 1 once it takes SGI 1.
static READY: Shared<bool> = Shared::new(false);
/// SGIs vCPU 1 handled.
static ACKS: Shared<u64> = Shared::new(0);

extern "C" {
    fn _secondary_start();
}

fn acknowledge(_: u32) {
    ACKS.increment();
}

extern "C" fn secondary(_cpu: u64) -> ! {
    gic::init_cpu();
    gic::set_handler(SGI, acknowledge);
    gic::enable(SGI);
    gic::irq_unmask();
    READY.set(true);
    loop {
        gic::wfi();
    }
}

fn main() -> ! {
    gic::init_distributor();
    gic::init_cpu();
    let entry = _secondary_start as *const () as u64;
    // SAFETY: PSCI CPU_ON of vCPU 1 at `_secondary_start`, with its number
    // as the context id; it runs on its own stack and touches only the
    // statics above.
    let r = unsafe { smccc::cpu_on(CPU1, entry, CPU1) };
    if r != 0 {
        println!("sgi: FAIL CPU_ON cpu1 answered {r:#x}");
        smccc::system_off()
    }
    if !poll_for(5000, || READY.get()) {
        println!("sgi: FAIL cpu1 not ready after 5 s");
        smccc::system_off()
    }

    let mut sent = 0;
    while sent < IPIS {
        gic::send_sgi(SGI, 1 << CPU1);
        sent += 1;
        if !poll_for(1000, || ACKS.get() == sent) {
            println!("sgi: FAIL IPI {sent} not acknowledged after 1 s ({} acknowledged)", ACKS.get());
            break;
        }
    }
    // Nothing more may arrive.
    poll_for(10, || ACKS.get() != sent);
    let acks = ACKS.get();
    if acks != sent {
        println!("sgi: FAIL {acks} acknowledged, {sent} sent");
    }
    println!("sgi: {sent} IPIs sent to cpu1, {acks} acknowledged");
    println!("sgi: done");
    smccc::system_off()
}
