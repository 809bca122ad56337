//! bhyve: run a VM that bhyveload prepared, or boot firmware from the flash
//! (`-o bootrom=`, making the VM if needed): its devices on an MMIO bus, its
//! console on stdio, each vCPU on a thread of its own, until the guest
//! resets, powers off, halts or fails. Exit status: 0 reset, 1 power-off,
//! 2 halt, 4 error (and 2 for a bad command line); a stop signal kills bhyve
//! with that signal.
//!
//! Every file (disks, firmware, variable store) is opened and checked
//! before the VM is touched; a VM this run made, and a variable store it
//! made, are removed again if the set-up fails, so that nothing is left
//! half-made.

use bhyve::boot;
use bhyve::cli::{DeviceKind, DeviceSpec};
use bhyve::console::Console;
use bhyve::devices::flash::{BankSpec, Flash, Store, BANK_SIZE};
use bhyve::devices::irq::SpiLine;
use bhyve::devices::pl011::Pl011;
use bhyve::devices::pl031::{self, Pl031};
use bhyve::devices::testdev::TestDev;
use bhyve::devmgr::{DeviceManager, Placement, Slot};
use bhyve::error::Error;
use bhyve::firmware::{self, FileStore, Firmware, RegionArray, VarsFile, VmMapper, BANKS, ERASED};
use bhyve::layout::{FLASH_BASE, RAM_BASE};
use bhyve::power::Cpus;
use bhyve::psci::Platform;
use bhyve::sandbox::reaper::Reaper;
use bhyve::smp::{self, SignalKick};
use bhyve::vcpu::{KernelVcpu, Machine, Stop, EXIT_ERROR};
use bhyve::virtio::blk::backend::{FileBackend, OpenFlags};
use bhyve::virtio::console::{self as vconsole, port::Socket, Backend as PortIo, StdioInput};
use bhyve::virtio::mmio::MmioTransport;
use bhyve::virtio::net::tap::Tap;
use bhyve::virtio::wiring::{Fallback, Kernel, Wiring};
use bhyve::virtio::{blk, net, p9, rng, VirtioDevice};
use bhyve::{cli, sandbox, signals};
use nix::sys::signal::Signal;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use vmmapi::{Errno, GuestMemory, GuestRegion, Vm, VmReg, VM_PROT_EXECUTE, VM_PROT_READ};

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

/// What the set-up made, for running.
struct Setup {
    devices: DeviceManager,
    uart: Arc<Pl011<SpiLine, std::io::Stdout>>,
    testdev: Option<Arc<TestDev>>,
    platform: Platform,
    /// All guest memory, for emulating accesses without a syndrome.
    mem: GuestMemory,
}

fn run(opts: &mut cli::Options) -> Result<Ended, Error> {
    // Every file before the VM is touched: a missing disk or a bad firmware
    // changes nothing.
    let firmware = opts.bootrom.as_ref().map(Firmware::read).transpose()?;
    let mut backends = open_backends(&opts.devices)?;
    // Firmware needs no bhyveload: the VM is made here if need be.
    let (vm, created) = match &firmware {
        Some(_) => open_or_create(&opts.name)?,
        None => (open_vm(&opts.name)?, false),
    };
    let vm = Arc::new(vm);
    // Where the keyboard goes: the guest's console. Firmware talks on the
    // PL011 unless -o console=virtio says otherwise.
    let stdio_input = if virtio_console_wanted(&vm, opts, firmware.is_some())? {
        let input = StdioInput::new().map_err(Error::IoThread)?;
        add_stdio_port(opts, &mut backends, &input)?;
        Some(input)
    } else {
        None
    };
    // The sandbox keeps the shares' directories, and nothing else by path.
    let shares = share_dirs(&backends)?;
    let sockets: Vec<PathBuf> = opts
        .devices
        .iter()
        .filter_map(|d| match &d.kind {
            DeviceKind::Console(c) => Some(c.ports.iter().map(|(_, p)| p.clone())),
            _ => None,
        })
        .flatten()
        .collect();
    let user = match (&opts.sandbox_user, opts.sandbox) {
        (Some(spec), true) => Some(sandbox::resolve_user(spec).map_err(Error::Sandbox)?),
        _ => None,
    };
    let mut made_vars = None;
    let setup = match set_up(&vm, opts, firmware, backends, &mut made_vars) {
        Ok(s) => s,
        Err(e) => {
            if let Some(p) = made_vars {
                let _ = std::fs::remove_file(p);
            }
            if created {
                if let Err(d) = Vm::destroy_name(&opts.name) {
                    eprintln!("bhyve: (and the VM it created is left behind: {d})");
                }
            }
            return Err(e);
        }
    };
    let Setup { devices, uart, testdev, platform, mem } = setup;

    // Handlers first: a signal between raw mode and the vCPUs must still
    // restore the terminal. (Before the sandbox: their pipe is made here.)
    let watch = signals::install().map_err(Error::Signals)?;
    let mut reaper = None;
    if opts.sandbox {
        if !sockets.is_empty() {
            reaper =
                Some(Reaper::start(&sockets).map_err(|e| Error::Sandbox(format!("cannot start the reaper: {e}")))?);
        }
        // Everything is open and the VM set up; the guest has not run. No
        // thread but this one runs yet: those started later inherit it all.
        let plan = sandbox::Plan {
            user,
            shares: shares.iter().map(|(fd, ro)| (fd.as_fd(), *ro)).collect(),
            sockets: !sockets.is_empty(),
        };
        let report = sandbox::enter(&plan).map_err(Error::Sandbox)?;
        if std::env::var_os("BHYVE_SANDBOX_REPORT").is_some() {
            eprintln!("bhyve: {report}");
        }
    }
    sandbox::self_test();

    let cpus = Arc::new(Cpus::new(platform.vcpus));
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

    let machine = Machine { bus: devices.bus(), cpus: &cpus, platform, mem: Some(&mem) };
    let vcpus =
        (0..platform.vcpus).map(|id| KernelVcpu::new(&vm, id as i32, testdev.is_some() && opts.fp_check)).collect();
    let (stop, vcpus) = smp::run(&machine, vcpus, signals::pending, &SignalKick::new(platform.vcpus));

    // The terminal first, so that the lines below print as lines.
    console.restore();
    if let Some(r) = reaper {
        r.finish();
    }
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

/// Everything between opening the VM and running it: memory, GIC, devices,
/// the firmware's flash or bhyveload's boot parameters, the device tree.
fn set_up(
    vm: &Arc<Vm>,
    opts: &cli::Options,
    firmware: Option<Firmware>,
    backends: Vec<(u32, Backend)>,
    made_vars: &mut Option<PathBuf>,
) -> Result<Setup, Error> {
    if firmware.is_some() {
        // A VM that ran before boots afresh, as bhyveload makes it for kernels.
        vm.reinit()?;
    }
    let ram_size = check_memory(vm, opts.mem_size)?;
    attach_gic(vm, opts.cpus)?;
    let platform = Platform { vcpus: opts.cpus as usize, ram_base: RAM_BASE, ram_size };

    let mut devices = DeviceManager::new();
    let mut regions = vec![];
    let booting_firmware = firmware.is_some();
    if let Some(fw) = firmware {
        let flash = install_flash(vm, fw, made_vars, &mut regions)?;
        devices.add(Slot::Flash, Arc::new(flash))?;
    }
    let uart = Arc::new(Pl011::new(spi_of(vm, Slot::Pl011)?, std::io::stdout()));
    devices.add(Slot::Pl011, uart.clone())?;
    devices.add(Slot::Pl031, Arc::new(Pl031::new(pl031::host_seconds)))?;
    let testdev = match opts.testdev {
        Some(param) => {
            let dev = Arc::new(TestDev::with_irq(param, Box::new(spi_of(vm, Slot::TestDev)?)));
            devices.add(Slot::TestDev, dev.clone())?;
            Some(dev)
        }
        None => None,
    };
    add_virtio(vm, &mut devices, backends)?;
    regions.push(vm.map_region(RAM_BASE, ram_size)?);
    let mem = GuestMemory::from_regions(regions).map_err(|e| Error::Flash(format!("guest memory: {e}")))?;
    if booting_firmware {
        boot::install_firmware_tree(&mem, &platform, devices.placements(), boot::urandom_seeds)?;
        start_firmware(vm)?;
    } else {
        boot_linux(vm, &platform, devices.placements())?;
    }
    Ok(Setup { devices, uart, testdev, platform, mem })
}

/// Gives the VM its flash: each bank's segment made (once) and mapped
/// read-only in read-array mode, loaded with the firmware and the
/// variable store (whose file is made now if it is missing), and the
/// device that switches the banks between modes. Each bank is also added
/// to `regions`, the guest memory bhyve reads instructions and tables from.
fn install_flash(
    vm: &Arc<Vm>,
    fw: Firmware,
    made_vars: &mut Option<PathBuf>,
    regions: &mut Vec<GuestRegion>,
) -> Result<Flash, Error> {
    let rx = VM_PROT_READ | VM_PROT_EXECUTE;
    let mut arrays = vec![];
    for (bank, &(segid, name)) in BANKS.iter().enumerate() {
        let gpa = FLASH_BASE + bank as u64 * BANK_SIZE;
        let fresh = vm.memseg_len(segid)?.is_none();
        if fresh {
            vm.alloc_memseg(segid, BANK_SIZE, name)?;
        }
        // Read-array mode, whatever a bhyve before this one left.
        match vm.memory_maps()?.iter().find(|m| m.segid == segid) {
            Some(m) if m.gpa == gpa && m.prot == rx => {}
            Some(m) => {
                vm.munmap_memseg(m.gpa, m.len)?;
                vm.mmap_memseg(gpa, segid, BANK_SIZE, rx)?;
            }
            None => vm.mmap_memseg(gpa, segid, BANK_SIZE, rx)?,
        }
        let region = vm.map_region(gpa, BANK_SIZE)?;
        let (bytes, fill) = if bank == 0 { (&fw.rom, 0) } else { (&fw.vars.bytes, ERASED) };
        firmware::load_bank(&region, bytes, fill, fresh).map_err(Error::Flash)?;
        arrays.push(RegionArray(region));
        regions.push(vm.map_region(gpa, BANK_SIZE)?);
    }
    let store: Option<Box<dyn Store>> = match fw.vars.file {
        VarsFile::None => None,
        VarsFile::Open(f) => Some(Box::new(FileStore::new(f).map_err(|e| Error::Flash(e.to_string()))?)),
        VarsFile::Create(path) => {
            let f = firmware::create_store(&path, &fw.vars.bytes)
                .map_err(|err| Error::VarsCreate { path: path.clone(), err })?;
            *made_vars = Some(path);
            Some(Box::new(FileStore::new(f).map_err(|e| Error::Flash(e.to_string()))?))
        }
    };
    let mut arrays = arrays.into_iter();
    let (Some(rom), Some(vars)) = (arrays.next(), arrays.next()) else {
        return Err(Error::Flash("two banks expected".into()));
    };
    Ok(Flash::new(
        [
            BankSpec { array: Box::new(rom), store: None, read_only: true },
            BankSpec { array: Box::new(vars), store, read_only: false },
        ],
        Box::new(VmMapper(vm.clone())),
    ))
}

/// vCPU 0 at the flash's first instruction, from reset (EL1h, interrupts
/// masked, MMU and caches off), as a CPU comes out of reset on QEMU `virt`.
fn start_firmware(vm: &Vm) -> Result<(), Error> {
    let v = vm.vcpu(0);
    v.activate()?;
    v.set_register(VmReg::PC, FLASH_BASE)?;
    Ok(())
}

/// Opens the VM, making it first if it does not exist. Says whether this
/// run made it.
fn open_or_create(name: &str) -> Result<(Vm, bool), Error> {
    let created = match Vm::create(name) {
        Ok(()) => true,
        Err(e) if e.errno() == Errno::EEXIST => false,
        Err(e) => return Err(e.into()),
    };
    match open_vm(name) {
        Ok(vm) => Ok((vm, created)),
        Err(e) => {
            if created {
                let _ = Vm::destroy_name(name);
            }
            Err(e)
        }
    }
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
fn virtio_console_wanted(vm: &Vm, opts: &cli::Options, firmware: bool) -> Result<bool, Error> {
    Ok(match opts.console {
        cli::ConsoleKind::Stdio => false,
        cli::ConsoleKind::Virtio => true,
        cli::ConsoleKind::Auto if firmware => false,
        cli::ConsoleKind::Auto => {
            let ram_size = check_memory(vm, opts.mem_size)?;
            let platform = Platform { vcpus: opts.cpus as usize, ram_base: RAM_BASE, ram_size };
            boot::boot_cmdline(&vm.map_memory()?, &platform)?.is_some_and(|c| cli::wants_virtio_console(&c))
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
    P9(p9::Virtio9p),
    Net(Arc<Tap>, net::Mac),
    Console { stdio: Option<PortIo>, named: Vec<(String, PortIo)> },
}

/// Copies of the virtio-9p shares' directory descriptors, and whether each
/// is read-only.
fn share_dirs(backends: &[(u32, Backend)]) -> Result<Vec<(OwnedFd, bool)>, Error> {
    backends
        .iter()
        .filter_map(|(_, b)| match b {
            Backend::P9(d) => Some(d.root().try_clone_to_owned().map(|fd| (fd, d.read_only()))),
            _ => None,
        })
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::Sandbox(format!("cannot keep the share's directory: {e}")))
}

/// Opens the disks and shares of `devices`.
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
                DeviceKind::P9(o) => Backend::P9(p9::Virtio9p::open(o).map_err(|err| Error::Backend {
                    slot: d.slot,
                    path: o.path.clone(),
                    err,
                })?),
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
            Backend::P9(d) => Box::new(d),
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
