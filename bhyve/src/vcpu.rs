//! One vCPU: run, handle the exit, run again, until it turns itself off or
//! the VM stops; and its life on its thread, from off to on and back.
//!
//! The loop is a small state machine ([`State`]) over a [`VcpuOps`], and each
//! exit goes through the free function [`handle_exit`]; tests drive both with
//! a fake vCPU and made-up exits, no kernel needed. What the vCPUs share
//! (devices, power states, the stop) is a [`Machine`].

use crate::bus::Bus;
use crate::error::Error;
use crate::fpcheck::FpCheck;
use crate::insn::{self, Failure, Registers};
use crate::power::{Cpus, Start};
use crate::psci::{self, Call, Platform};
use nix::sys::signal::Signal;
use vmm_uapi::hyp_reason;
use vmmapi::{Errno, Exit, GuestMemory, InstEmul, SuspendHow, Vm, VmExitInfo, VmReg};

/// What the loop needs of a vCPU (and, to emulate accesses without a
/// syndrome, its registers).
pub trait VcpuOps: Registers {
    /// The vCPU's number.
    fn id(&self) -> i32;
    /// The VM's name, for messages.
    fn vm_name(&self) -> &str;
    /// Puts the vCPU in its reset state (EL1h, DAIF masked, MMU off), also
    /// after it ran.
    fn activate(&mut self) -> vmmapi::Result<()>;
    /// Runs the guest until the next exit; `mmio_data` completes a read.
    fn run(&mut self, mmio_data: Option<u64>) -> vmmapi::Result<VmExitInfo>;
    /// Sets a guest register.
    fn set_register(&mut self, reg: VmReg, val: u64) -> vmmapi::Result<()>;
    /// Suspends the whole VM: every vCPU's run returns `Suspended`.
    fn suspend(&mut self, how: SuspendHow) -> vmmapi::Result<()>;
}

/// What the vCPUs share: the devices, the power states and the stop, and
/// the VM's shape for PSCI.
pub struct Machine<'a> {
    /// The MMIO bus.
    pub bus: &'a Bus,
    /// Who is on; why the VM stops.
    pub cpus: &'a Cpus,
    /// vCPUs and RAM.
    pub platform: Platform,
    /// All guest memory (RAM and flash), to read the instructions of
    /// accesses without a syndrome and the tables that map them; without
    /// it such accesses stop the VM.
    pub mem: Option<&'a GuestMemory>,
}

/// Why the VM stopped, which decides bhyve's exit status.
#[derive(Debug)]
pub enum Stop {
    /// The guest reset the machine: exit 0.
    Reset,
    /// The guest powered the machine off: exit 1.
    PowerOff,
    /// The machine was halted: exit 2.
    Halt,
    /// Every vCPU turned itself off (PSCI `CPU_OFF`): a halt, exit 2.
    AllOff,
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
            Stop::Halt | Stop::AllOff => 2,
            Stop::Destroyed(_) | Stop::Error(_) => EXIT_ERROR,
            Stop::Signal(s) => 128u8.wrapping_add(*s as u8),
        }
    }

    /// The line to print (after `bhyve: `), if any.
    pub fn message(&self) -> Option<String> {
        match self {
            Stop::Reset | Stop::PowerOff | Stop::Halt => None,
            Stop::AllOff => Some("all vCPUs are off".into()),
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
    /// The vCPU turned itself off (it is marked off already): wait for a
    /// `CPU_ON`.
    Off,
    /// Stop the VM.
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

/// Emulates a guest access of vCPU `vcpu` on the bus.
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
            vcpu,
            write: a.write,
            size: a.access_size,
            value: a.data,
            gpa: a.gpa,
            pc,
            why,
        })),
    }
}

/// Answers a PSCI call of `vcpu`.
fn handle_psci<V: VcpuOps + ?Sized>(vcpu: &mut V, m: &Machine, func_id: u64, args: &[u64; 7]) -> Next {
    let id = vcpu.id() as usize;
    let x0 = match psci::handle(func_id, args, &m.platform) {
        Call::Return(x0) => x0,
        Call::CpuOn { target, entry, context_id } => {
            psci::cpu_on_result(m.cpus.cpu_on(target, Start { entry, context_id }))
        }
        Call::AffinityInfo { target } => m.cpus.state(target).affinity_info(),
        Call::CpuOff if m.cpus.cpu_off(id) => return suspend(vcpu, SuspendHow::Halt, Stop::AllOff),
        Call::CpuOff => return Next::Off,
        Call::SystemOff => return suspend(vcpu, SuspendHow::Poweroff, Stop::PowerOff),
        Call::SystemReset => return suspend(vcpu, SuspendHow::Reset, Stop::Reset),
    };
    match vcpu.set_register(VmReg::x(0), x0) {
        Ok(()) => Next::Run(None),
        Err(e) => Next::Stop(vmm_failure(vcpu, e)),
    }
}

/// Suspends the VM `how`, which stops every vCPU that runs, then stops for
/// `why`. Every vCPU being off is suspended as a halt too: what a new
/// `bhyve` on the VM would find, were it not reloaded.
fn suspend<V: VcpuOps + ?Sized>(vcpu: &mut V, how: SuspendHow, why: Stop) -> Next {
    match vcpu.suspend(how) {
        Ok(()) => Next::Stop(why),
        Err(e) => Next::Stop(vmm_failure(vcpu, e)),
    }
}

/// Handles one exit of `vcpu`.
pub fn handle_exit<V: VcpuOps + ?Sized>(vcpu: &mut V, m: &Machine, info: &VmExitInfo) -> Next {
    let id = vcpu.id();
    match info.exit {
        Exit::Bogus => Next::Run(None),
        Exit::InstEmul(a) => handle_mmio(m.bus, id, info.pc, &a),
        Exit::Smccc { func_id, args } => handle_psci(vcpu, m, func_id, &args),
        Exit::Hyp(exit) => match m.mem {
            Some(mem) if exit.exception_nr == hyp_reason::DABT_NO_SYNDROME => {
                match insn::emulate(vcpu, id, m.bus, mem, &exit) {
                    Ok(()) => Next::Run(None),
                    Err(Failure::Vmm(e)) => Next::Stop(vmm_failure(vcpu, e)),
                    Err(Failure::Guest(e)) => Next::Stop(Stop::Error(e)),
                }
            }
            _ => Next::Stop(Stop::Error(Error::Hyp { vcpu: id, pc: info.pc, exit })),
        },
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
    /// Done: the vCPU is off, or the VM stops.
    Done(Ended),
}

/// How [`run_loop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The vCPU turned itself off (`CPU_OFF`); the VM runs on.
    Off,
    /// The VM is stopping; the reason is in [`Machine::cpus`].
    Stopped,
}

/// Runs `vcpu` until it turns itself off or the VM stops. A stop found
/// here (an error, a power-off...) goes to `m.cpus`, where the first one
/// counts. `signal` says whether a stop signal arrived; it and the stop are
/// looked at before each run, so also after a run interrupted by a signal.
pub fn run_loop<V: VcpuOps + ?Sized>(vcpu: &mut V, m: &Machine, signal: impl Fn() -> Option<Signal>) -> Ended {
    let mut state = State::Running(None);
    loop {
        state = match state {
            State::Done(ended) => return ended,
            State::Running(mmio_data) => {
                if let Some(sig) = signal() {
                    m.cpus.stop(Stop::Signal(sig));
                }
                if m.cpus.stopping() {
                    State::Done(Ended::Stopped)
                } else {
                    match vcpu.run(mmio_data) {
                        Ok(info) => match handle_exit(vcpu, m, &info) {
                            Next::Run(data) => State::Running(data),
                            Next::Off => State::Done(Ended::Off),
                            Next::Stop(stop) => {
                                m.cpus.stop(stop);
                                State::Done(Ended::Stopped)
                            }
                        },
                        // A signal: a kick or a stop signal (both looked at
                        // at the top), or another (SIGCONT): the same request
                        // again. VM_RUN completes the last exit (`mmio_data`)
                        // before it looks for signals, and only once: asking
                        // again is harmless.
                        Err(e) if e.errno() == Errno::EINTR => State::Running(mmio_data),
                        Err(e) => {
                            m.cpus.stop(vmm_failure(vcpu, e));
                            State::Done(Ended::Stopped)
                        }
                    }
                }
            }
        }
    }
}

/// The life of `vcpu` on its thread until the VM stops: while off, wait for
/// a `CPU_ON`; then start from reset at its entry point with its context id
/// in x0, and run until it turns itself off again. vCPU 0 starts on, where
/// bhyveload left it.
pub fn vcpu_life<V: VcpuOps + ?Sized>(vcpu: &mut V, m: &Machine, signal: impl Fn() -> Option<Signal>) {
    let id = vcpu.id() as usize;
    loop {
        if m.cpus.state(id) != psci::PowerState::On {
            let Some(start) = m.cpus.wait_for_start(id) else { return };
            if let Err(e) = power_on(vcpu, start) {
                m.cpus.stop(vmm_failure(vcpu, e));
                return;
            }
            m.cpus.started(id);
        }
        if run_loop(vcpu, m, &signal) == Ended::Stopped {
            return;
        }
    }
}

/// Reset state, PC = entry, x0 = context id.
fn power_on<V: VcpuOps + ?Sized>(vcpu: &mut V, start: Start) -> vmmapi::Result<()> {
    vcpu.activate()?;
    vcpu.set_register(VmReg::PC, start.entry)?;
    vcpu.set_register(VmReg::x(0), start.context_id)
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

impl Registers for KernelVcpu<'_> {
    fn get_registers(&mut self, regs: &[VmReg]) -> vmmapi::Result<Vec<u64>> {
        self.vm.vcpu(self.id).get_registers(regs)
    }

    fn set_registers(&mut self, regs: &[(VmReg, u64)]) -> vmmapi::Result<()> {
        self.vm.vcpu(self.id).set_registers(regs)
    }
}

impl VcpuOps for KernelVcpu<'_> {
    fn id(&self) -> i32 {
        self.id
    }

    fn vm_name(&self) -> &str {
        self.vm.name()
    }

    fn activate(&mut self) -> vmmapi::Result<()> {
        self.vm.vcpu(self.id).activate()
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
