//! bhyve: run a VM that bhyveload prepared: its devices on an MMIO bus, its
//! console on stdio, each vCPU on a thread of its own, until the guest
//! resets, powers off, halts or fails. Exit status: 0 reset, 1 power-off,
//! 2 halt, 4 error (and 2 for a bad command line); a stop signal kills bhyve
//! with that signal.

use bhyve::boot;
use bhyve::cli::{DeviceKind, DeviceSpec};
use bhyve::console::Console;
use bhyve::devices::irq::SpiLine;
use bhyve::devices::pl011::Pl011;
use bhyve::devices::pl031::{self, Pl031};
use bhyve::devices::testdev::TestDev;
use bhyve::devmgr::{DeviceManager, Placement, Slot};
use bhyve::error::Error;
use bhyve::layout::RAM_BASE;
use bhyve::power::Cpus;
use bhyve::psci::Platform;
use bhyve::smp::{self, SignalKick};
use bhyve::vcpu::{KernelVcpu, Machine, Stop, EXIT_ERROR};
use bhyve::virtio::blk::backend::{FileBackend, OpenFlags};
use bhyve::virtio::mmio::MmioTransport;
use bhyve::virtio::wiring::{Fallback, Kernel, Wiring};
use bhyve::virtio::{blk, rng, VirtioDevice};
use bhyve::{cli, signals};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use vmmapi::{Errno, Vm, VmReg};

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

/// How bhyve ends once the vCPUs have stopped.
enum Ended {
    /// Exit with this status.
    Code(u8),
    /// Die of this signal.
    Signal(Signal),
}

fn run(opts: &cli::Options) -> Result<Ended, Error> {
    // Every backend before the VM is touched: a missing disk changes nothing.
    let backends = open_backends(&opts.devices)?;
    let vm = Arc::new(open_vm(&opts.name)?);
    let ram_size = check_memory(&vm, opts.mem_size)?;
    attach_gic(&vm, opts.cpus)?;
    let platform = Platform { vcpus: opts.cpus as usize, ram_base: RAM_BASE, ram_size };

    let mut devices = DeviceManager::new();
    let uart = Arc::new(Pl011::new(spi_of(&vm, Slot::Pl011)?, std::io::stdout()));
    devices.add(Slot::Pl011, uart.clone())?;
    devices.add(Slot::Pl031, Arc::new(Pl031::new(pl031::host_seconds)))?;
    let testdev = match opts.testdev {
        Some(param) => {
            let dev = Arc::new(TestDev::with_irq(param, Box::new(spi_of(&vm, Slot::TestDev)?)));
            devices.add(Slot::TestDev, dev.clone())?;
            Some(dev)
        }
        None => None,
    };
    add_virtio(&vm, &mut devices, backends)?;
    boot_linux(&vm, &platform, devices.placements())?;

    let cpus = Arc::new(Cpus::new(platform.vcpus));
    // Handlers first: a signal between raw mode and the vCPUs must still
    // restore the terminal.
    let watch = signals::install().map_err(Error::Signals)?;
    let watched = cpus.clone();
    // Never joined: it waits for a signal that may never come.
    signals::with_stop_signals_blocked(|| {
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            watched.stop(Stop::Signal(watch.wait()));
            // Keeps the pipe open: a later signal's handler still writes to it.
            loop {
                std::thread::park();
            }
        })
    })
    .map_err(Error::Signals)?
    .map_err(Error::SignalThread)?;
    // stdio is the only console for now; another kind must be set up here.
    let cli::ConsoleKind::Stdio = opts.console;
    let console = Console::start(uart).map_err(Error::Console)?;

    let machine = Machine { bus: devices.bus(), cpus: &cpus, platform, mem: None };
    let vcpus = (0..platform.vcpus).map(|id| KernelVcpu::new(&vm, id as i32, testdev.is_some())).collect();
    let (stop, vcpus) = smp::run(&machine, vcpus, signals::pending, &SignalKick::new(platform.vcpus));

    // The terminal first, so that the lines below print as lines.
    console.restore();
    if let Some(msg) = stop.message() {
        eprintln!("bhyve: {msg}");
    }
    if let Some(dev) = &testdev {
        let host = vcpus.iter().filter_map(KernelVcpu::host_fp_mismatches).reduce(|a, b| a + b);
        eprintln!("{}", dev.stats().summary(host));
    }
    drop(console);
    Ok(match stop {
        Stop::Signal(sig) => Ended::Signal(sig),
        other => Ended::Code(other.exit_code()),
    })
}

/// Gives the guest its GICv3 (in the kernel) with a redistributor per
/// vCPU. A VM that has one keeps it; a host that cannot give guests a GIC
/// runs them without interrupts, and says so.
fn attach_gic(vm: &Vm, cpus: u32) -> Result<(), Error> {
    match vm.attach_vgic(cpus) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Errno::EEXIST => Ok(()),
        Err(e) if e.errno() == Errno::ENODEV => {
            eprintln!("bhyve: this host cannot give guests a GICv3; they run without interrupts");
            Ok(())
        }
        Err(e) => Err(Error::Vmm(e)),
    }
}

/// If bhyveload left boot parameters for a Linux kernel, puts the device
/// tree in their place and its address in vCPU 0's x0, before any vCPU runs.
fn boot_linux(vm: &Vm, platform: &Platform, devices: &[Placement]) -> Result<(), Error> {
    if let Some(dtb) = boot::install_device_tree(&vm.map_memory()?, platform, devices, boot::urandom_seeds)? {
        vm.vcpu(0).set_register(VmReg::x(0), dtb)?;
    }
    Ok(())
}

/// A device of the command line with what it works on, opened.
enum Backend {
    Blk(Arc<dyn blk::backend::Backend>, blk::BlkOptions),
    Rng,
}

/// Opens the disks of `devices`.
fn open_backends(devices: &[DeviceSpec]) -> Result<Vec<(u32, Backend)>, Error> {
    devices
        .iter()
        .map(|d| {
            let b = match &d.kind {
                DeviceKind::Blk(o) => {
                    let flags = OpenFlags { read_only: o.read_only, direct_io: o.nocache, sync: o.direct };
                    let f = FileBackend::open(&o.path, flags).map_err(|err| Error::Backend {
                        slot: d.slot,
                        path: o.path.clone(),
                        err,
                    })?;
                    Backend::Blk(Arc::new(f), o.clone())
                }
                DeviceKind::Rng => Backend::Rng,
            };
            Ok((d.slot, b))
        })
        .collect()
}

/// Puts each virtio device behind its transport, in its slot. Queue
/// notifications and interrupts take the kernel's fast paths (ioeventfd,
/// irqfd), or with an older module the fallback (MMIO exits, the IRQ
/// pump): see virtio::wiring.
fn add_virtio(vm: &Arc<Vm>, devices: &mut DeviceManager, backends: Vec<(u32, Backend)>) -> Result<(), Error> {
    if backends.is_empty() {
        return Ok(());
    }
    let mem = vm.map_memory()?;
    let wiring: Arc<dyn Wiring> = match Kernel::probe(vm.clone()).map_err(Error::IoThread)? {
        Some(k) => k,
        None => {
            let pulse_vm = vm.clone();
            Fallback::start(Arc::new(move |intid| {
                // Edge-triggered: a rising edge latches the interrupt.
                let _ = pulse_vm.set_irq_line(intid, true);
                let _ = pulse_vm.set_irq_line(intid, false);
            }))
            .map_err(Error::IoThread)?
        }
    };
    for (slot, b) in backends {
        let device: Box<dyn VirtioDevice> = match b {
            Backend::Blk(f, o) => Box::new(blk::Blk::new(f, &o)),
            Backend::Rng => Box::new(rng::Rng::new(rng::getrandom)),
        };
        let p = Slot::VirtioMmio(slot).placement()?;
        let intid = p.intid().expect("a transport has an interrupt");
        let t = MmioTransport::new(device, mem.clone(), wiring.clone(), p.base, intid).map_err(Error::IoThread)?;
        devices.add(p.slot, Arc::new(t))?;
    }
    Ok(())
}

/// The level-sensitive line of the device at `slot`.
fn spi_of(vm: &Arc<Vm>, slot: Slot) -> Result<SpiLine, Error> {
    let intid = slot.placement()?.intid().expect("a slot with an interrupt");
    Ok(SpiLine::new(vm.clone(), intid))
}

fn open_vm(name: &str) -> Result<Vm, Error> {
    Vm::open(name).map_err(|e| match e.errno() {
        Errno::ENOENT if !Path::new(vmm_uapi::VMMCTL_PATH).exists() => Error::NoModule(name.to_string()),
        Errno::ENOENT => Error::NoVm(name.to_string()),
        _ => Error::Vmm(e),
    })
}

/// `-m`, if given, must match the VM's memory; a VM without memory gets it.
/// Returns the size of guest RAM.
fn check_memory(vm: &Vm, want: Option<u64>) -> Result<u64, Error> {
    match (vm.memory_size()?, want) {
        (Some(have), Some(want)) if have != want => {
            Err(Error::MemoryMismatch { name: vm.name().to_string(), have, want })
        }
        (Some(have), _) => Ok(have),
        (None, Some(want)) => {
            vm.setup_memory(want)?;
            Ok(want)
        }
        (None, None) => Err(Error::NoMemory(vm.name().to_string())),
    }
}
