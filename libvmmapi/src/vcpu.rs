//! vCPU handles: activation, registers, and running.

use crate::error::{Error, Result};
use crate::sys;
use crate::Vm;
use nix::errno::Errno;
use vmm_uapi::{
    exitcode, HypExit, InstEmul, SuspendHow, VmActivateCpu, VmExit, VmReg, VmRegister, VmRegisterSet, VmRun,
    VM_ACTIVATE_CPU, VM_GET_REGISTER, VM_GET_REGISTER_SET, VM_RUN, VM_RUN_F_MMIO_DATA, VM_SET_REGISTER,
    VM_SET_REGISTER_SET,
};

/// A vCPU of an open VM.
#[derive(Debug, Clone, Copy)]
pub struct Vcpu<'a> {
    vm: &'a Vm,
    id: i32,
}

/// Why `VM_RUN` returned to userspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Nothing to do: run again.
    Bogus,
    /// Emulate this access; for a read, pass the value to the next [`Vcpu::run`].
    InstEmul(InstEmul),
    /// An SMCCC call (HVC or SMC): set x0..x3 with [`Vcpu::set_register`] and run again.
    Smccc {
        /// Function id (x0).
        func_id: u64,
        /// x1..x7.
        args: [u64; 7],
    },
    /// Something nothing handled.
    Hyp(HypExit),
    /// The VM was suspended.
    Suspended(SuspendHow),
    /// Another exit code.
    Other(u32),
}

/// An exit and where it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmExitInfo {
    /// Guest PC.
    pub pc: u64,
    /// What happened.
    pub exit: Exit,
    /// The raw ABI record.
    pub raw: VmExit,
}

impl<'a> Vcpu<'a> {
    pub(crate) fn new(vm: &'a Vm, id: i32) -> Self {
        Self { vm, id }
    }

    /// The vCPU's number.
    pub fn id(&self) -> i32 {
        self.id
    }

    fn err(&self, op: &'static str, errno: Errno) -> Error {
        Error::Vcpu { name: self.vm.name().to_string(), vcpu: self.id, op, errno }
    }

    /// Activates the vCPU: it gets the reset state of the Linux arm64 boot
    /// protocol (EL1h, DAIF masked, MMU and caches off).
    pub fn activate(&self) -> Result<()> {
        let mut a = VmActivateCpu { vcpuid: self.id, pad: 0 };
        sys::ioctl(self.vm.file(), VM_ACTIVATE_CPU, &mut a).map_err(|e| self.err("activate", e))
    }

    /// Sets one register.
    pub fn set_register(&self, reg: VmReg, val: u64) -> Result<()> {
        let mut r = VmRegister { cpuid: self.id, regnum: reg.0, regval: val };
        sys::ioctl(self.vm.file(), VM_SET_REGISTER, &mut r).map_err(|e| self.err("set register", e))
    }

    /// Reads one register.
    pub fn get_register(&self, reg: VmReg) -> Result<u64> {
        let mut r = VmRegister { cpuid: self.id, regnum: reg.0, regval: 0 };
        sys::ioctl(self.vm.file(), VM_GET_REGISTER, &mut r).map_err(|e| self.err("get register", e))?;
        Ok(r.regval)
    }

    /// Sets several registers in one call.
    pub fn set_registers(&self, regs: &[(VmReg, u64)]) -> Result<()> {
        let nums: Vec<i32> = regs.iter().map(|r| r.0 .0).collect();
        let vals: Vec<u64> = regs.iter().map(|r| r.1).collect();
        let mut s = VmRegisterSet {
            cpuid: self.id,
            count: regs.len() as u32,
            regnums: nums.as_ptr() as u64,
            regvals: vals.as_ptr() as u64,
        };
        sys::ioctl(self.vm.file(), VM_SET_REGISTER_SET, &mut s).map_err(|e| self.err("set registers", e))
    }

    /// Reads several registers in one call.
    pub fn get_registers(&self, regs: &[VmReg]) -> Result<Vec<u64>> {
        let nums: Vec<i32> = regs.iter().map(|r| r.0).collect();
        let mut vals = vec![0u64; regs.len()];
        let mut s = VmRegisterSet {
            cpuid: self.id,
            count: regs.len() as u32,
            regnums: nums.as_ptr() as u64,
            regvals: vals.as_mut_ptr() as u64,
        };
        sys::ioctl(self.vm.file(), VM_GET_REGISTER_SET, &mut s).map_err(|e| self.err("get registers", e))?;
        Ok(vals)
    }

    /// Runs the vCPU until an exit userspace must handle. `mmio_data`
    /// completes a pending `InstEmul` read. `EINTR` (a signal) is returned
    /// as an error whose [`Error::errno`] is `EINTR`.
    pub fn run(&self, mmio_data: Option<u64>) -> Result<VmExitInfo> {
        let mut r = VmRun {
            cpuid: self.id,
            flags: if mmio_data.is_some() { VM_RUN_F_MMIO_DATA } else { 0 },
            mmio_data: mmio_data.unwrap_or(0),
            exit: VmExit::default(),
        };
        sys::ioctl(self.vm.file(), VM_RUN, &mut r).map_err(|e| self.err("run", e))?;
        Ok(decode_exit(&r.exit))
    }
}

/// Turns the ABI record into an [`Exit`].
pub fn decode_exit(e: &VmExit) -> VmExitInfo {
    let exit = match e.exitcode {
        exitcode::BOGUS => Exit::Bogus,
        exitcode::INST_EMUL => Exit::InstEmul(e.inst_emul()),
        exitcode::SMCCC => {
            let (func_id, args) = e.smccc();
            Exit::Smccc { func_id, args }
        }
        exitcode::HYP => Exit::Hyp(e.hyp()),
        exitcode::SUSPENDED => match e.suspended() {
            Some(how) => Exit::Suspended(how),
            None => Exit::Other(e.exitcode),
        },
        code => Exit::Other(code),
    };
    VmExitInfo { pc: e.pc, exit, raw: *e }
}
