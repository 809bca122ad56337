//! bhyveload: create a VM if needed, give it memory, load its kernel and
//! leave vCPU 0 ready to start it, as FreeBSD's bhyveload does before bhyve.
//!
//! Everything that can be checked without the kernel (the command line, the
//! file, where it goes) is checked first; a VM this run created is destroyed
//! again if a later step fails, so a failure leaves nothing half-made.

mod cli;
mod error;
mod kernel;

use bhyveload::image::Placement;
use error::Error;
use kernel::LoadedKernel;
use std::process::ExitCode;
use vmmapi::{Errno, Vm, VmReg, VM_SYSMEM_BASE};

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
    let kernel = match &cmd.kernel {
        Some(path) => Some(kernel::read_kernel(path, VM_SYSMEM_BASE, cmd.mem_size)?),
        None => None,
    };
    let (vm, created) = open_or_create(&cmd.name)?;
    // A VM that ran before (powered off, reset, stopped) boots afresh.
    let result = if created { Ok(()) } else { vm.reinit().map_err(Error::from) }
        .and_then(|()| prepare(&vm, cmd.mem_size, kernel.as_ref()));
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
fn prepare(vm: &Vm, mem_size: u64, kernel: Option<&LoadedKernel>) -> Result<(), Error> {
    match vm.memory_size()? {
        None => vm.setup_memory(mem_size)?,
        Some(have) if have == mem_size => {}
        Some(have) => return Err(Error::MemoryMismatch { name: vm.name().to_string(), have, want: mem_size }),
    }
    if let Some(k) = kernel {
        load(vm, k)?;
        start_at(vm, &k.placement)?;
    }
    Ok(())
}

fn load(vm: &Vm, k: &LoadedKernel) -> Result<(), Error> {
    let mem = vm.map_memory()?;
    mem.write(k.placement.load_addr, &k.bytes).ok_or_else(|| Error::GuestWrite {
        name: vm.name().to_string(),
        gpa: k.placement.load_addr,
        len: k.bytes.len() as u64,
    })
}

/// Leaves vCPU 0 as Linux's booting.rst wants it: at the entry point, x0 the
/// device tree's address (none yet: 0), x1..x3 zero. The rest of the state
/// (EL1h, interrupts masked, MMU off) is what activation gives.
fn start_at(vm: &Vm, p: &Placement) -> Result<(), Error> {
    let vcpu = vm.vcpu(0);
    match vcpu.activate() {
        Ok(()) => {}
        // A reloaded VM's vCPU is already active (FreeBSD says EBUSY); the
        // registers below still set where it starts.
        Err(e) if e.errno() == Errno::EBUSY => {}
        Err(e) => return Err(e.into()),
    }
    vcpu.set_register(VmReg::PC, p.entry)?;
    for n in 0..4 {
        vcpu.set_register(VmReg::x(n), 0)?;
    }
    Ok(())
}
