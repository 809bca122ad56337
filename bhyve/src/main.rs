//! bhyve: run a VM that bhyveload prepared: its devices on an MMIO bus, its
//! console on stdio, its vCPU on this thread, until the guest resets, powers
//! off or fails. Exit status: 0 reset, 1 power-off, 2 halt, 4 error (and 2
//! for a bad command line); a stop signal kills bhyve with that signal.

use bhyve::bus::Bus;
use bhyve::console::Console;
use bhyve::devices::irq::NoInterrupt;
use bhyve::devices::pl011::Pl011;
use bhyve::devices::testdev::TestDev;
use bhyve::error::Error;
use bhyve::layout::{PL011_BASE, PL011_SIZE, TESTDEV_BASE, TESTDEV_SIZE};
use bhyve::vcpu::{self, KernelVcpu, Stop, EXIT_ERROR};
use bhyve::{cli, signals};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use vmmapi::{Errno, Vm};

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args_os()) {
        Ok(o) => o,
        Err(exit) => return exit.report(),
    };
    match run(&opts) {
        Ok(Ended::Code(code)) => ExitCode::from(code),
        Ok(Ended::Signal(sig)) => signals::die_of(sig),
        Err(e) => {
            eprintln!("bhyve: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// How bhyve ends once the vCPU has stopped.
enum Ended {
    /// Exit with this status.
    Code(u8),
    /// Die of this signal.
    Signal(Signal),
}

fn run(opts: &cli::Options) -> Result<Ended, Error> {
    let vm = open_vm(&opts.name)?;
    check_memory(&vm, opts.mem_size)?;

    let mut bus = Bus::new();
    let uart = Arc::new(Pl011::new(NoInterrupt, std::io::stdout()));
    bus.insert(uart.clone(), PL011_BASE, PL011_SIZE).map_err(Error::Bus)?;
    let testdev = match opts.testdev {
        Some(param) => {
            let dev = Arc::new(TestDev::new(param));
            bus.insert(dev.clone(), TESTDEV_BASE, TESTDEV_SIZE).map_err(Error::Bus)?;
            Some(dev)
        }
        None => None,
    };

    // Handlers first: a signal between raw mode and the loop must still
    // restore the terminal.
    signals::install().map_err(Error::Signals)?;
    // stdio is the only console for now; another kind must be set up here.
    let cli::ConsoleKind::Stdio = opts.console;
    let console = Console::start(uart).map_err(Error::Console)?;

    let mut vcpu = KernelVcpu::new(&vm, 0, testdev.is_some());
    let stop = vcpu::run_loop(&mut vcpu, &bus, signals::pending);

    // The terminal first, so that the lines below print as lines.
    console.restore();
    if let Some(msg) = stop.message() {
        eprintln!("bhyve: {msg}");
    }
    if let Some(dev) = &testdev {
        eprintln!("{}", dev.stats().summary(vcpu.host_fp_mismatches()));
    }
    drop(console);
    Ok(match stop {
        Stop::Signal(sig) => Ended::Signal(sig),
        other => Ended::Code(other.exit_code()),
    })
}

fn open_vm(name: &str) -> Result<Vm, Error> {
    Vm::open(name).map_err(|e| match e.errno() {
        Errno::ENOENT if !Path::new(vmm_uapi::VMMCTL_PATH).exists() => Error::NoModule(name.to_string()),
        Errno::ENOENT => Error::NoVm(name.to_string()),
        _ => Error::Vmm(e),
    })
}

/// `-m`, if given, must match the VM's memory; a VM without memory gets it.
fn check_memory(vm: &Vm, want: Option<u64>) -> Result<(), Error> {
    match (vm.memory_size()?, want) {
        (Some(have), Some(want)) if have != want => {
            Err(Error::MemoryMismatch { name: vm.name().to_string(), have, want })
        }
        (Some(_), _) => Ok(()),
        (None, Some(want)) => Ok(vm.setup_memory(want)?),
        (None, None) => Err(Error::NoMemory(vm.name().to_string())),
    }
}
