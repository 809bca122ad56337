//! vCPU handles: activation, registers, and running.

use crate::error::{Error, Result};
use crate::sys;
use crate::Vm;
use nix::errno::Errno;
use vmm_uapi::{
    exitcode, HypExit, InstEmul, SuspendHow, VmActivateCpu, VmExit, VmReg, VmRegister, VmRegisterSet, VmRun,
    VM_ACTIVATE_CPU, VM_GET_REGISTER, VM_GET_REGISTER_SET, VM_MAXCPU, VM_RUN, VM_RUN_F_MMIO_DATA, VM_SET_REGISTER,
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

    /// Makes the guest take a synchronous exception to EL1 with syndrome
    /// `esr` and fault address `far` before its next instruction (FreeBSD's
    /// `vm_inject_exception`), as the CPU would: see [`exception_entry`].
    /// Done with the register ioctls, so an emulation in flight (a pending
    /// MMIO access) is dropped: the exception's return address is the
    /// instruction that exited. The vCPU must not be running (`EBUSY`).
    pub fn inject_exception(&self, esr: u64, far: u64) -> Result<()> {
        let now = self.get_registers(&[VmReg::PC, VmReg::CPSR, VmReg::VBAR_EL1])?;
        self.set_registers(&exception_entry(now[0], now[1], now[2], esr, far))
    }

    /// A capability's value (FreeBSD's `vm_get_capability`). The kernel's
    /// behaviour is fixed, so these describe it: see [`Capability`].
    /// `EINVAL` for a vCPU number out of range.
    pub fn capability(&self, cap: Capability) -> Result<i32> {
        if !(0..VM_MAXCPU as i32).contains(&self.id) {
            return Err(self.err("get a capability", Errno::EINVAL));
        }
        Ok(cap.value())
    }

    /// Sets a capability (FreeBSD's `vm_set_capability`): to the value it
    /// has (zero or not), `Ok`; to any other, `ENOTSUP`.
    pub fn set_capability(&self, cap: Capability, val: i32) -> Result<()> {
        if (self.capability(cap)? != 0) == (val != 0) {
            Ok(())
        } else {
            Err(self.err("set a capability", Errno::ENOTSUP))
        }
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

/// The optional behaviours FreeBSD's arm64 vmm lets userspace turn on and
/// off (`enum vm_cap_type`, same numbers). Here each is fixed, and
/// [`Capability::value`] says how it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Exit to userspace on WFI: no, 0 (the kernel puts the vCPU to sleep
    /// until it has an interrupt).
    HaltExit = 0,
    /// Exit on a spin-wait hint (WFE, YIELD): no, 0.
    PauseExit = 1,
    /// The guest runs any EL1 code, MMU on or off: yes, 1.
    UnrestrictedGuest = 2,
    /// Exit on the guest's BRK instructions: no, 0 (they are the guest's own).
    BrkExit = 3,
    /// Exit after each guest instruction (software step): no, 0.
    SsExit = 4,
    /// Mask interrupts to the guest while it runs: no, 0.
    MaskHwintr = 5,
}

impl Capability {
    /// The capability of number `n`, if any.
    pub fn from_i32(n: i32) -> Option<Self> {
        Some(match n {
            0 => Self::HaltExit,
            1 => Self::PauseExit,
            2 => Self::UnrestrictedGuest,
            3 => Self::BrkExit,
            4 => Self::SsExit,
            5 => Self::MaskHwintr,
            _ => return None,
        })
    }

    /// Its value, the same on every vCPU.
    pub fn value(self) -> i32 {
        (self == Self::UnrestrictedGuest) as i32
    }
}

/// What taking a synchronous exception to EL1 does to the registers (the
/// Arm ARM's exception entry, as the kernel does for the UNDEFs it
/// injects): ESR_EL1 and FAR_EL1 get `esr` and `far`, ELR_EL1 the PC,
/// SPSR_EL1 the PSTATE, and the vCPU continues at EL1h, D, A, I and F
/// masked, at the vector for where it was: VBAR_EL1 + 0x000 from EL1 with
/// SP_EL0, + 0x200 from EL1 with SP_EL1, + 0x400 from AArch64 EL0, + 0x600
/// from AArch32 EL0.
pub fn exception_entry(pc: u64, cpsr: u64, vbar: u64, esr: u64, far: u64) -> [(VmReg, u64); 6] {
    const M: u64 = 0x1f;
    const EL1T: u64 = 0b00100;
    const EL1H: u64 = 0b00101;
    const DAIF: u64 = 0xf << 6;
    let offset = match cpsr & M {
        EL1T => 0x000,
        EL1H => 0x200,
        m if m & 0x10 != 0 => 0x600,
        _ => 0x400,
    };
    [
        (VmReg::ESR_EL1, esr),
        (VmReg::FAR_EL1, far),
        (VmReg::ELR_EL1, pc),
        (VmReg::SPSR_EL1, cpsr),
        (VmReg::CPSR, DAIF | EL1H),
        (VmReg::PC, vbar.wrapping_add(offset)),
    ]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_entry_picks_the_vector_and_saves_the_state() {
        let r = exception_entry(0x4000_1234, 0x3c5, 0x4000_8000, 0x9200_0046, 0x0900_0000);
        assert_eq!(
            r,
            [
                (VmReg::ESR_EL1, 0x9200_0046),
                (VmReg::FAR_EL1, 0x0900_0000),
                (VmReg::ELR_EL1, 0x4000_1234),
                (VmReg::SPSR_EL1, 0x3c5),
                (VmReg::CPSR, 0x3c5),
                (VmReg::PC, 0x4000_8200),
            ]
        );
        let pc = |cpsr| exception_entry(0, cpsr, 0x1000, 0, 0)[5].1;
        assert_eq!(pc(0b00100), 0x1000, "EL1t: current EL with SP_EL0");
        assert_eq!(pc(0x2000_0000), 0x1400, "AArch64 EL0, flags kept in SPSR only");
        assert_eq!(pc(0b10000), 0x1600, "AArch32 EL0 (User)");
        assert_eq!(exception_entry(0, 0x2000_0000, 0, 0, 0)[3].1, 0x2000_0000);
    }

    #[test]
    fn capabilities_describe_the_fixed_behaviour() {
        assert_eq!(Capability::from_i32(2), Some(Capability::UnrestrictedGuest));
        assert_eq!(Capability::UnrestrictedGuest.value(), 1);
        assert_eq!(Capability::HaltExit.value(), 0);
        assert_eq!(Capability::from_i32(6), None);
        assert_eq!(Capability::from_i32(-1), None);
        for n in 0..6 {
            assert_eq!(Capability::from_i32(n).map(|c| c as i32), Some(n));
        }
    }
}
