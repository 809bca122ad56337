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
use bhyve::virtio::console::{self as vconsole, port::Socket, Backend as PortIo, StdioInput};
use bhyve::virtio::mmio::MmioTransport;
use bhyve::virtio::net::tap::Tap;
use bhyve::virtio::wiring::{Fallback, Kernel, Wiring};
use bhyve::virtio::{blk, net, rng, VirtioDevice};
use bhyve::{cli, signals};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use vmmapi::{Errno, Vm, VmReg};

fn main() -> ExitCode {
    let mut opts = match cli::parse(std::env::args_os()) {
        Ok(o) => o,
        Err(exit) => return exit.report(),
    };
    match run(&mut opts) {
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

fn run(opts: &mut cli::Options) -> Result<Ended, Error> {
    // Every backend before the VM is touched: a missing disk changes nothing.
    let mut backends = open_backends(&opts.devices)?;
    let vm = Arc::new(open_vm(&opts.name)?);
    let ram_size = check_memory(&vm, opts.mem_size)?;
    let platform = Platform { vcpus: opts.cpus as usize, ram_base: RAM_BASE, ram_size };
    // Where the keyboard goes: the guest's console.
    let stdio_input = if virtio_console_wanted(&vm, opts, &platform)? {
        let input = StdioInput::new().map_err(Error::IoThread)?;
        add_stdio_port(opts, &mut backends, &input)?;
        Some(input)
    } else {
        None
    };
    attach_gic(&vm, opts.cpus)?;

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
    let input: Arc<dyn bhyve::console::ConsoleInput> = match stdio_input {
        Some(i) => i,
        None => uart,
    };
    let console = Console::start(input).map_err(Error::Console)?;

    let machine = Machine { bus: devices.bus(), cpus: &cpus, platform };
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

/// Whether the console on stdio is a virtio-console port: `-o console=`,
/// or without it the kernel command line bhyveload left.
fn virtio_console_wanted(vm: &Vm, opts: &cli::Options, platform: &Platform) -> Result<bool, Error> {
    Ok(match opts.console {
        cli::ConsoleKind::Stdio => false,
        cli::ConsoleKind::Virtio => true,
        cli::ConsoleKind::Auto => {
            boot::boot_cmdline(&vm.map_memory()?, platform)?.is_some_and(|c| cli::wants_virtio_console(&c))
        }
    })
}

/// Puts the stdio console port on the virtio-console of `-s` that asked
/// for it, or on a new one in the first free slot.
fn add_stdio_port(
    opts: &mut cli::Options,
    backends: &mut Vec<(u32, Backend)>,
    input: &Arc<StdioInput>,
) -> Result<(), Error> {
    opts.add_stdio_console().map_err(Error::Console)?;
    let port = PortIo::Stdio { input: input.clone(), out: Box::new(std::io::stdout()) };
    let slot = opts
        .devices
        .iter()
        .find(|d| matches!(&d.kind, DeviceKind::Console(c) if c.stdio))
        .map(|d| d.slot)
        .expect("add_stdio_console placed it");
    match backends.iter_mut().find(|(s, _)| *s == slot) {
        Some((_, Backend::Console { stdio, .. })) => *stdio = Some(port),
        _ => backends.push((slot, Backend::Console { stdio: Some(port), named: vec![] })),
    }
    Ok(())
}

/// A device of the command line with what it works on, opened.
enum Backend {
    Blk(Arc<dyn blk::backend::Backend>, blk::BlkOptions),
    Rng,
    Net(Arc<Tap>, net::Mac),
    Console { stdio: Option<PortIo>, named: Vec<(String, PortIo)> },
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
                DeviceKind::Net(o) => {
                    let tap = Tap::open(&o.tap).map_err(|err| Error::Tap { slot: d.slot, err })?;
                    Backend::Net(Arc::new(tap), o.mac)
                }
                DeviceKind::Console(o) => {
                    let mut named = vec![];
                    for (name, path) in &o.ports {
                        let s = Socket::listen(path).map_err(|err| Error::Socket {
                            slot: d.slot,
                            port: name.clone(),
                            path: path.clone(),
                            err,
                        })?;
                        named.push((name.clone(), PortIo::Socket(s)));
                    }
                    // The stdio port is added once the console is chosen.
                    Backend::Console { stdio: None, named }
                }
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
            Backend::Net(tap, mac) => Box::new(net::Net::new(tap, mac)),
            Backend::Console { stdio, named } => Box::new(vconsole::Console::new(vconsole::ports(stdio, named))),
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
