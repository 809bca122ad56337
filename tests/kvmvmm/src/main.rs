//! kvmvmm: a small VMM on Linux KVM, the benchmarks' measuring instrument
//! (`scripts/bench`). It runs the guests bhyve runs, on the same emulated
//! host, with bhyve's own device models (PL011, PL031, test device), bhyve's
//! device tree and bhyveload's loader, so that what differs between the two
//! columns of the benchmark is the hypervisor: KVM, with its in-kernel GICv3,
//! timers and PSCI, against the vmm module with bhyve.
//!
//! ```text
//! kvmvmm [-c N] [-m SIZE] [-p PARAM] [--notify] GUEST.bin   a raw test guest at 0x4000_0000
//! kvmvmm [-c N] [-m SIZE] [-i INITRD] [-e CMDLINE] Image    a Linux kernel
//!        [--start-time] [--stats]                          (for the benchmarks)
//! ```
//!
//! The console (the PL011) is stdout. kvmvmm ends when the guest powers off
//! (exit status 0) or resets (1); on an error it says why and exits with 4.
//! It is a measuring instrument, not a product: no console input, no
//! virtio, one memory slot.

#[cfg(target_arch = "aarch64")]
mod kvm;
#[cfg(target_arch = "aarch64")]
mod vm;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status on an error.
const EXIT_ERROR: i32 = 4;

/// Command line.
#[derive(Parser, Debug)]
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
#[command(name = "kvmvmm", about = "Run a test guest or a Linux kernel on KVM, as bhyve would (benchmarks)")]
struct Args {
    /// vCPUs.
    #[arg(short = 'c', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=32))]
    cpus: u32,
    /// Guest memory (a size such as 512M).
    #[arg(short = 'm', default_value = "64M", value_parser = mem_size)]
    mem: u64,
    /// Put the test device at 0x0B00_0000 with this PARAM (bhyve's -o testdev.param=N).
    #[arg(short = 'p')]
    param: Option<u64>,
    /// An initrd for a Linux kernel.
    #[arg(short = 'i')]
    initrd: Option<PathBuf>,
    /// The kernel command line.
    #[arg(short = 'e', default_value = "console=ttyAMA0")]
    cmdline: String,
    /// Complete 32-bit writes of 1 to 0x0A00_0050 in the kernel (KVM_IOEVENTFD), as the bench_notify guest expects.
    #[arg(long)]
    notify: bool,
    /// Say on stderr when the vCPUs start (CLOCK_MONOTONIC, ns), for timing the loading.
    #[arg(long)]
    start_time: bool,
    /// At the end, print KVM's counters of this VM (from debugfs, which must be mounted).
    #[arg(long)]
    stats: bool,
    /// A Linux Image (plain or gzipped) or a raw binary, entered at 0x4000_0000.
    kernel: PathBuf,
}

fn mem_size(s: &str) -> Result<u64, String> {
    vmmapi::size::parse_mem_size(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    #[cfg(target_arch = "aarch64")]
    let result = vm::run(&args);
    #[cfg(not(target_arch = "aarch64"))]
    let result: Result<(), String> = Err(format!("'{}': arm64 guests run on arm64 hosts only", args.kernel.display()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvmvmm: {e}");
            ExitCode::from(EXIT_ERROR as u8)
        }
    }
}
