//! bhyveload: create a VM if needed, give it memory, load its kernel and
//! leave vCPU 0 ready to start it, as FreeBSD's bhyveload does before bhyve.
//!
//! Everything that can be checked without the kernel (the command line, the
//! file, where it goes) is checked first; a VM this run created is destroyed
//! again if a later step fails, so a failure leaves nothing half-made.

use bhyveload::error::Error;
use bhyveload::image::{self, Placement};
use bhyveload::kernel::{self, KernelFile, Payload, Source};
use bhyveload::{cli, guestdir};
use std::path::PathBuf;
use std::process::ExitCode;
use vmmapi::boot::BootParams;
use vmmapi::{Errno, Vm, VmReg, VM_SYSMEM_BASE};

/// What goes into guest memory besides the kernel for a Linux boot.
struct LinuxBoot {
    /// The initrd, if there is one, and where it goes.
    initrd: Option<(Payload, u64)>,
    /// The boot parameters block for bhyve, and where it goes (the device
    /// tree's address, which vCPU 0 gets in x0).
    params: (Vec<u8>, u64),
}

fn main() -> ExitCode {
    let cmd = match cli::parse(std::env::args_os()) {
        Ok(cmd) => cmd,
        Err(exit) => return exit.report(),
    };
    match run(&cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bhyveload: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cmd: &cli::Command) -> Result<(), Error> {
    let boot = choose(cmd)?;
    let kernel = match &boot.kernel {
        Some(path) => Some(kernel::read_kernel(path, VM_SYSMEM_BASE, cmd.mem_size)?),
        None => None,
    };
    let linux = match (&kernel, &boot.kernel) {
        (Some(k), Some(src)) => linux_boot(&boot, cmd.mem_size, k, src)?,
        _ => None,
    };
    let (vm, created) = open_or_create(&cmd.name)?;
    // A VM that ran before (powered off, reset, stopped) boots afresh.
    let result = if created { Ok(()) } else { vm.reinit().map_err(Error::from) }
        .and_then(|()| prepare(&vm, cmd.mem_size, kernel.as_ref(), linux.as_ref()));
    if result.is_err() && created {
        drop(vm);
        if let Err(e) = Vm::destroy_name(&cmd.name) {
            // The first error is the one that matters; say that this one
            // left the VM behind.
            eprintln!("bhyveload: (and the VM it created is left behind: {e})");
        }
    }
    result
}

/// What to boot: the files named on the command line, what the disk of
/// `-d` boots, or the guest directory's where no kernel is named (see
/// [`guestdir`]).
struct Boot {
    kernel: Option<Source>,
    initrd: Option<Source>,
    cmdline: String,
}

fn choose(cmd: &cli::Command) -> Result<Boot, Error> {
    let cmdline = |dir: Option<&String>| cmd.cmdline.clone().or(dir.cloned()).unwrap_or(cli::DEFAULT_CMDLINE.into());
    let file = |p: &Option<PathBuf>| p.clone().map(Source::File);
    if let Some(disk) = &cmd.disk {
        return from_disk(disk, cmd);
    }
    if cmd.kernel.is_some() {
        return Ok(Boot { kernel: file(&cmd.kernel), initrd: file(&cmd.initrd), cmdline: cmdline(None) });
    }
    let dirs = guestdir::search_path(&cmd.name);
    match guestdir::find(&dirs).map_err(|e| Error::GuestDir { reason: e.to_string() })? {
        Some(g) => Ok(Boot {
            kernel: Some(Source::File(g.kernel)),
            initrd: file(&cmd.initrd.clone().or(g.initrd)),
            cmdline: cmdline(g.cmdline.as_ref()),
        }),
        None if cmd.initrd.is_some() || cmd.cmdline.is_some() => Err(Error::NoKernel { dirs }),
        None => Ok(Boot { kernel: None, initrd: None, cmdline: cmdline(None) }),
    }
}

/// What the disk of `-d` boots: its configuration's default entry, read
/// from its file systems (see the `bootdisk` crate). `-e` replaces the
/// command line the configuration gives, as on the other paths.
fn from_disk(disk: &std::path::Path, cmd: &cli::Command) -> Result<Boot, Error> {
    let plan = bootdisk::plan_file(disk, &bootdisk::Options { max_file: cmd.mem_size })?;
    println!("bhyveload: booting {}", plan.summary());
    for note in &plan.notes {
        eprintln!("bhyveload: note: {note}");
    }
    let on = |path: &str| PathBuf::from(format!("{} partition {}:{path}", plan.disk, plan.partition));
    let initrd = (!plan.initrd_paths.is_empty())
        .then(|| Source::Bytes { name: on(&plan.initrd_paths.join(",")), bytes: plan.initrd.clone() });
    Ok(Boot {
        kernel: Some(Source::Bytes { name: on(&plan.kernel_path), bytes: plan.kernel }),
        initrd,
        cmdline: cmd.cmdline.clone().unwrap_or(plan.cmdline),
    })
}

/// Opens the initrd and lays out what a Linux kernel gets besides itself;
/// `None` for a raw binary, which gets nothing (and refuses an initrd).
fn linux_boot(cmd: &Boot, mem_size: u64, k: &KernelFile, src: &Source) -> Result<Option<LinuxBoot>, Error> {
    let path = src.name();
    if !k.linux {
        return match &cmd.initrd {
            Some(_) => Err(Error::InitrdWithoutLinux { path: path.to_path_buf() }),
            None => Ok(None),
        };
    }
    let initrd = cmd.initrd.as_ref().map(|s| s.open(mem_size)).transpose()?;
    // More than the whole memory read: say how big the file really is.
    let read = initrd.as_ref().map_or(0, Payload::len);
    let initrd_len = match &cmd.initrd {
        Some(s) if read > mem_size => s.len(read).unwrap_or(read),
        _ => read,
    };
    let layout = image::layout_linux(&k.placement, initrd_len, VM_SYSMEM_BASE, mem_size).map_err(|source| {
        match (&cmd.initrd, source) {
            (Some(s), source @ image::ImageError::InitrdTooLarge { .. }) => {
                Error::Initrd { path: s.name().to_path_buf(), source }
            }
            (_, source) => Error::Kernel { path: path.to_path_buf(), source },
        }
    })?;
    let params = BootParams { initrd: (layout.initrd_addr, read), cmdline: cmd.cmdline.clone() };
    let block = params.encode().ok_or(Error::CmdlineTooLong { len: cmd.cmdline.len() })?;
    let initrd = initrd.filter(|p| !p.is_empty()).map(|p| (p, layout.initrd_addr));
    Ok(Some(LinuxBoot { initrd, params: (block, layout.dtb_addr) }))
}

/// Opens the VM, creating it first if it does not exist. Says whether this
/// run created it.
fn open_or_create(name: &str) -> Result<(Vm, bool), Error> {
    let created = match Vm::create(name) {
        Ok(()) => true,
        Err(e) if e.errno() == Errno::EEXIST => false,
        Err(e) => return Err(e.into()),
    };
    match Vm::open(name) {
        Ok(vm) => Ok((vm, created)),
        Err(e) => {
            if created {
                let _ = Vm::destroy_name(name);
            }
            Err(e.into())
        }
    }
}

/// Gives the VM its memory (or checks the memory it has) and loads the kernel.
fn prepare(vm: &Vm, mem_size: u64, kernel: Option<&KernelFile>, linux: Option<&LinuxBoot>) -> Result<(), Error> {
    match vm.memory_size()? {
        None => vm.setup_memory(mem_size)?,
        Some(have) if have == mem_size => {}
        Some(have) => return Err(Error::MemoryMismatch { name: vm.name().to_string(), have, want: mem_size }),
    }
    if let Some(k) = kernel {
        let mem = vm.map_memory()?;
        k.payload.write_to(&mem, k.placement.load_addr, vm.name())?;
        let mut dtb = 0;
        if let Some(l) = linux {
            if let Some((initrd, at)) = &l.initrd {
                initrd.write_to(&mem, *at, vm.name())?;
            }
            write(vm, &mem, l.params.1, &l.params.0)?;
            dtb = l.params.1;
        }
        start_at(vm, &k.placement, dtb)?;
    }
    Ok(())
}

fn write(vm: &Vm, mem: &vmmapi::GuestMemory, gpa: u64, bytes: &[u8]) -> Result<(), Error> {
    use vmmapi::vm_memory::{Bytes, GuestAddress};
    mem.write_slice(bytes, GuestAddress(gpa)).map_err(|_| Error::GuestWrite {
        name: vm.name().to_string(),
        gpa,
        len: bytes.len() as u64,
    })
}

/// Leaves vCPU 0 as Linux's booting.rst wants it: at the entry point, x0 the
/// device tree's address (where bhyve writes the tree; 0 for a raw binary,
/// which gets none), x1..x3 zero. The rest of the state (EL1h, interrupts
/// masked, MMU off) is what activation gives.
fn start_at(vm: &Vm, p: &Placement, dtb: u64) -> Result<(), Error> {
    let vcpu = vm.vcpu(0);
    match vcpu.activate() {
        Ok(()) => {}
        // A reloaded VM's vCPU is already active (FreeBSD says EBUSY); the
        // registers below still set where it starts.
        Err(e) if e.errno() == Errno::EBUSY => {}
        Err(e) => return Err(e.into()),
    }
    vcpu.set_register(VmReg::PC, p.entry)?;
    vcpu.set_register(VmReg::x(0), dtb)?;
    for n in 1..4 {
        vcpu.set_register(VmReg::x(n), 0)?;
    }
    Ok(())
}
