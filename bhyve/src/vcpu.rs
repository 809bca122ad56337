//! The vCPU loop: run, handle the exit, run again, until something stops it.
//!
//! The loop is a small state machine ([`State`]) over a [`VcpuOps`], and each
//! exit goes through the free function [`handle_exit`]; tests drive both with
//! a fake vCPU and made-up exits, no kernel needed.

use crate::bus::Bus;
use crate::error::Error;
use crate::fpcheck::FpCheck;
use crate::psci::{self, Call};
use nix::sys::signal::Signal;
use vmmapi::{Errno, Exit, InstEmul, SuspendHow, Vm, VmExitInfo, VmReg};

/// What the loop needs of a vCPU.
pub trait VcpuOps {
    /// The vCPU's number.
    fn id(&self) -> i32;
    /// The VM's name, for messages.
    fn vm_name(&self) -> &str;
    /// Runs the guest until the next exit; `mmio_data` completes a read.
    fn run(&mut self, mmio_data: Option<u64>) -> vmmapi::Result<VmExitInfo>;
    /// Sets a guest register.
    fn set_register(&mut self, reg: VmReg, val: u64) -> vmmapi::Result<()>;
    /// Suspends the whole VM.
    fn suspend(&mut self, how: SuspendHow) -> vmmapi::Result<()>;
}

/// Why the vCPU stopped, which decides bhyve's exit status.
#[derive(Debug)]
pub enum Stop {
    /// The guest reset the machine: exit 0.
    Reset,
    /// The guest powered the machine off: exit 1.
    PowerOff,
    /// The machine was halted: exit 2.
    Halt,
    /// The VM was destroyed under us (`bhyvectl --destroy`): exit 4.
    Destroyed(String),
    /// A stop signal arrived: bhyve dies of it.
    Signal(Signal),
    /// Something went wrong: exit 4.
    Error(Error),
}

/// bhyve's exit status for errors.
pub const EXIT_ERROR: u8 = 4;

impl Stop {
    /// bhyve's exit status: 0 reset, 1 power-off, 2 halt, 4 error; for a
    /// signal, the status a shell shows when the process dies of it.
    pub fn exit_code(&self) -> u8 {
        match self {
            Stop::Reset => 0,
            Stop::PowerOff => 1,
            Stop::Halt => 2,
            Stop::Destroyed(_) | Stop::Error(_) => EXIT_ERROR,
            Stop::Signal(s) => 128u8.wrapping_add(*s as u8),
        }
    }

    /// The line to print (after `bhyve: `), if any.
    pub fn message(&self) -> Option<String> {
        match self {
            Stop::Reset | Stop::PowerOff | Stop::Halt => None,
            Stop::Destroyed(name) => Some(format!("VM '{name}' was destroyed")),
            Stop::Signal(s) => Some(format!("stopped by {}", s.as_str())),
            Stop::Error(e) => Some(e.to_string()),
        }
    }
}

/// What to do after an exit.
#[derive(Debug)]
pub enum Next {
    /// Run again, completing a read with this value if any.
    Run(Option<u64>),
    /// Stop.
    Stop(Stop),
}

/// A failed libvmmapi call: the VM destroyed (ENXIO) or an error.
fn vmm_failure<V: VcpuOps + ?Sized>(vcpu: &V, e: vmmapi::Error) -> Stop {
    if e.errno() == Errno::ENXIO {
        Stop::Destroyed(vcpu.vm_name().to_string())
    } else {
        Stop::Error(Error::Vmm(e))
    }
}

/// Emulates a guest access on the bus.
fn handle_mmio(bus: &Bus, vcpu: i32, pc: u64, a: &InstEmul) -> Next {
    let size = a.access_size as usize;
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Next::Stop(Stop::Error(Error::BadAccessSize { vcpu, size: a.access_size, gpa: a.gpa, pc }));
    }
    let mut buf = [0u8; 8];
    let data = &mut buf[..size];
    let (result, value) = if a.write {
        data.copy_from_slice(&a.data.to_le_bytes()[..size]);
        (bus.write(a.gpa, data), None)
    } else {
        let r = bus.read(a.gpa, data);
        (r, Some(u64::from_le_bytes(buf)))
    };
    match result {
        Ok(()) => Next::Run(value),
        Err(why) => Next::Stop(Stop::Error(Error::UnhandledAccess {
            write: a.write,
            size: a.access_size,
            value: a.data,
            gpa: a.gpa,
            pc,
            why,
        })),
    }
}

/// Answers a PSCI call.
fn handle_psci<V: VcpuOps + ?Sized>(vcpu: &mut V, func_id: u64, args: &[u64; 7]) -> Next {
    let result = match psci::handle(func_id, args) {
        Call::Return(x0) => vcpu.set_register(VmReg::x(0), x0).map(|()| Next::Run(None)),
        Call::SystemOff => vcpu.suspend(SuspendHow::Poweroff).map(|()| Next::Stop(Stop::PowerOff)),
        Call::SystemReset => vcpu.suspend(SuspendHow::Reset).map(|()| Next::Stop(Stop::Reset)),
    };
    result.unwrap_or_else(|e| Next::Stop(vmm_failure(vcpu, e)))
}

/// Handles one exit of `vcpu`.
pub fn handle_exit<V: VcpuOps + ?Sized>(vcpu: &mut V, bus: &Bus, info: &VmExitInfo) -> Next {
    let id = vcpu.id();
    match info.exit {
        Exit::Bogus => Next::Run(None),
        Exit::InstEmul(a) => handle_mmio(bus, id, info.pc, &a),
        Exit::Smccc { func_id, args } => handle_psci(vcpu, func_id, &args),
        Exit::Hyp(exit) => Next::Stop(Stop::Error(Error::Hyp { vcpu: id, pc: info.pc, exit })),
        Exit::Suspended(how) => Next::Stop(match how {
            SuspendHow::Reset => Stop::Reset,
            SuspendHow::Poweroff => Stop::PowerOff,
            SuspendHow::Halt => Stop::Halt,
            SuspendHow::Destroy => Stop::Destroyed(vcpu.vm_name().to_string()),
            SuspendHow::None | SuspendHow::Triplefault => Stop::Error(Error::UnexpectedSuspend { vcpu: id, how }),
        }),
        Exit::Other(code) => Next::Stop(Stop::Error(Error::UnhandledExit { vcpu: id, code, pc: info.pc })),
    }
}

/// The loop's state.
enum State {
    /// About to run the guest, completing a read with this value if any.
    Running(Option<u64>),
    /// Done.
    Stopped(Stop),
}

/// Runs `vcpu` until it stops. `signal` says whether a stop signal arrived;
/// it is asked before each run and when a run is interrupted.
pub fn run_loop<V: VcpuOps + ?Sized>(vcpu: &mut V, bus: &Bus, signal: impl Fn() -> Option<Signal>) -> Stop {
    let mut state = State::Running(None);
    loop {
        state = match state {
            State::Stopped(stop) => return stop,
            State::Running(mmio_data) => {
                if let Some(sig) = signal() {
                    State::Stopped(Stop::Signal(sig))
                } else {
                    match vcpu.run(mmio_data) {
                        Ok(info) => match handle_exit(vcpu, bus, &info) {
                            Next::Run(data) => State::Running(data),
                            Next::Stop(stop) => State::Stopped(stop),
                        },
                        // A signal that is not a stop signal (those are
                        // checked at the top), e.g. SIGCONT: the same request
                        // again. This takes a VM_RUN failing with EINTR to have
                        // consumed nothing, not even `mmio_data`.
                        Err(e) if e.errno() == Errno::EINTR => State::Running(mmio_data),
                        Err(e) => State::Stopped(vmm_failure(vcpu, e)),
                    }
                }
            }
        }
    }
}

/// A vCPU of a VM in the kernel.
pub struct KernelVcpu<'a> {
    vm: &'a Vm,
    id: i32,
    /// With `-o testdev` on arm64: every run goes through the FP check.
    fp: Option<FpCheck>,
}

impl<'a> KernelVcpu<'a> {
    /// vCPU `id` of `vm`; `fp_check` runs it through [`FpCheck`] where the
    /// architecture allows.
    pub fn new(vm: &'a Vm, id: i32, fp_check: bool) -> Self {
        Self { vm, id, fp: if fp_check { FpCheck::new() } else { None } }
    }

    /// FP registers found changed across runs, if they were checked.
    pub fn host_fp_mismatches(&self) -> Option<u64> {
        self.fp.as_ref().map(FpCheck::mismatches)
    }

    /// `VM_RUN` through the FP check, with the same result as `Vcpu::run`.
    #[cfg(target_arch = "aarch64")]
    fn run_checked(&mut self, mmio_data: Option<u64>) -> Option<vmmapi::Result<VmExitInfo>> {
        use vmm_uapi::{VmExit, VmRun, VM_RUN_F_MMIO_DATA};
        let fp = self.fp.as_mut()?;
        let mut r = VmRun {
            cpuid: self.id,
            flags: if mmio_data.is_some() { VM_RUN_F_MMIO_DATA } else { 0 },
            mmio_data: mmio_data.unwrap_or(0),
            exit: VmExit::default(),
        };
        let ret = fp.run(self.vm.fd(), &mut r);
        Some(if ret < 0 {
            Err(vmmapi::Error::Vcpu {
                name: self.vm.name().to_string(),
                vcpu: self.id,
                op: "run",
                errno: Errno::from_raw((-ret) as i32),
            })
        } else {
            Ok(vmmapi::decode_exit(&r.exit))
        })
    }

    #[cfg(not(target_arch = "aarch64"))]
    fn run_checked(&mut self, _mmio_data: Option<u64>) -> Option<vmmapi::Result<VmExitInfo>> {
        None
    }
}

impl VcpuOps for KernelVcpu<'_> {
    fn id(&self) -> i32 {
        self.id
    }

    fn vm_name(&self) -> &str {
        self.vm.name()
    }

    fn run(&mut self, mmio_data: Option<u64>) -> vmmapi::Result<VmExitInfo> {
        match self.run_checked(mmio_data) {
            Some(r) => r,
            None => self.vm.vcpu(self.id).run(mmio_data),
        }
    }

    fn set_register(&mut self, reg: VmReg, val: u64) -> vmmapi::Result<()> {
        self.vm.vcpu(self.id).set_register(reg, val)
    }

    fn suspend(&mut self, how: SuspendHow) -> vmmapi::Result<()> {
        self.vm.suspend(how)
    }
}

#[cfg(test)]
mod tests;
