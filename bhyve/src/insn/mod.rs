//! Emulation of the guest loads and stores the hardware cannot describe in
//! a syndrome (data aborts with ESR ISV=0: writeback, pairs), which
//! firmware and compilers issue to devices. The kernel reports them as a
//! `HYP` exit (`DABT_NO_SYNDROME`) with the fault's addresses; bhyve reads
//! the instruction at the guest's PC (through the guest's stage-1 tables
//! when its MMU is on, [`walk`]), decodes it ([`decode`]), does the
//! accesses on the bus, writes the registers back (loaded ones, the base
//! on writeback) and steps the PC: QEMU does the same, in userspace, for
//! KVM's exits without a syndrome. It lives here, not in the kernel,
//! because it needs the guest's memory and tables, which userspace has
//! mapped and the kernel would have to walk by hand, and the devices,
//! which are here anyway.

pub mod decode;
pub mod walk;

use crate::bus::{Bus, BusError};
use crate::error::Error;
use crate::hyp_exit;
use decode::{LoadStore, Offset};
use vmm_uapi::esr::Esr;
use vmmapi::vm_memory::{Bytes, GuestAddress};
use vmmapi::{GuestMemory, HypExit, VmReg};
use walk::Regime;

/// What emulating needs of the vCPU: its registers.
pub trait Registers {
    /// Reads the registers `regs`, in order.
    fn get_registers(&mut self, regs: &[VmReg]) -> vmmapi::Result<Vec<u64>>;
    /// Writes registers.
    fn set_registers(&mut self, regs: &[(VmReg, u64)]) -> vmmapi::Result<()>;
}

/// Why an access was not emulated.
#[derive(Debug)]
pub enum Failure {
    /// A register could not be read or written.
    Vmm(vmmapi::Error),
    /// The guest's access cannot be done: stop the VM with this error.
    Guest(Error),
}

/// The registers read for each emulation: x0..x30, then these.
const STATE: [VmReg; 8] = [
    VmReg::SP,
    VmReg::SP_EL0,
    VmReg::PC,
    VmReg::CPSR,
    VmReg::SCTLR_EL1,
    VmReg::TCR_EL1,
    VmReg::TTBR0_EL1,
    VmReg::TTBR1_EL1,
];

/// The vCPU's registers at the exit.
struct Cpu {
    x: [u64; 31],
    sp: u64,
    sp_el0: u64,
    pc: u64,
    cpsr: u64,
    regime: Regime,
}

impl Cpu {
    fn read(vcpu: &mut (impl Registers + ?Sized)) -> vmmapi::Result<Cpu> {
        let regs: Vec<VmReg> = (0..31).map(VmReg::x).chain(STATE).collect();
        let v = vcpu.get_registers(&regs)?;
        let mut x = [0; 31];
        x.copy_from_slice(&v[..31]);
        let s = &v[31..];
        Ok(Cpu {
            x,
            sp: s[0],
            sp_el0: s[1],
            pc: s[2],
            cpsr: s[3],
            regime: Regime { sctlr: s[4], tcr: s[5], ttbr0: s[6], ttbr1: s[7] },
        })
    }

    /// The stack pointer register 31 names as a base: SP_EL1 in EL1h
    /// (PSTATE.SP set), else SP_EL0.
    fn sp_reg(&self) -> VmReg {
        if self.cpsr & 1 == 1 {
            VmReg::SP
        } else {
            VmReg::SP_EL0
        }
    }

    /// Register `n` as a base (31: the stack pointer).
    fn base(&self, n: u32) -> u64 {
        match n {
            31 if self.cpsr & 1 == 1 => self.sp,
            31 => self.sp_el0,
            n => self.x[n as usize],
        }
    }

    /// Register `n` as data (31: the zero register).
    fn data(&self, n: u32) -> u64 {
        self.x.get(n as usize).copied().unwrap_or(0)
    }
}

/// Reads 8 bytes of guest memory, for table walks.
fn read_u64(mem: &GuestMemory, ipa: u64) -> Option<u64> {
    mem.read_obj::<u64>(GuestAddress(ipa)).ok()
}

/// Emulates the access of the `DABT_NO_SYNDROME` exit `exit` of vCPU
/// `id`: reads its registers and instruction, does the accesses on `bus`
/// (or in `mem`, where no device is), and leaves the vCPU after the
/// instruction.
pub fn emulate(
    vcpu: &mut (impl Registers + ?Sized),
    id: i32,
    bus: &Bus,
    mem: &GuestMemory,
    exit: &HypExit,
) -> Result<(), Failure> {
    let cpu = Cpu::read(vcpu).map_err(Failure::Vmm)?;
    let esr = Esr(exit.esr_el2);
    let gpa = hyp_exit::fault_ipa(exit);
    let stop = |why: String| Failure::Guest(Error::NoSyndrome { vcpu: id, pc: cpu.pc, gpa, esr: exit.esr_el2, why });
    if cpu.cpsr & 0x10 != 0 {
        return Err(stop("the guest runs AArch32 code there, and bhyve decodes only A64 instructions".into()));
    }
    let insn_ipa = walk::translate(&cpu.regime, cpu.pc, false, |a| read_u64(mem, a))
        .map_err(|e| stop(format!("its instruction cannot be read: the PC does not translate: {e}")))?;
    let insn = mem
        .read_obj::<u32>(GuestAddress(insn_ipa))
        .map_err(|_| stop(format!("its instruction cannot be read: {insn_ipa:#x} is not guest memory")))?;
    let ls = decode::decode(insn)
        .map_err(|why| stop(format!("the instruction {insn:#010x} is {why}, which bhyve does not emulate")))?;
    // The fault's own page is known from the syndrome registers (unless FAR
    // is not valid); other pages a pair reaches are walked.
    let fnv = esr.iss() & (1 << 10) != 0;
    let page = |va: u64| va & 0x00ff_ffff_ffff_f000;
    let ipa_of = |va: u64| -> Result<u64, Failure> {
        if !fnv && page(va) == page(exit.far_el2) {
            return Ok((gpa & !0xfff) | (va & 0xfff));
        }
        walk::translate(&cpu.regime, va, true, |a| read_u64(mem, a))
            .map_err(|e| stop(format!("{ls}: its address {va:#x} does not translate: {e}")))
    };
    let index = match ls.offset {
        Offset::Reg { rm, .. } => cpu.data(rm),
        Offset::Imm(_) => 0,
    };
    let (va, writeback) = ls.address(cpu.base(ls.rn), index);
    let mut set = vec![];
    for (reg, off) in ls.transfers() {
        let at = ipa_of(va.wrapping_add(off))?;
        if ls.load {
            let raw = access(bus, mem, &ls, at, None).map_err(|why| unhandled(id, cpu.pc, &ls, at, 0, why))?;
            if reg != 31 {
                set.push((VmReg::x(reg), ls.load_value(raw)));
            }
        } else {
            let v = ls.store_value(cpu.data(reg));
            access(bus, mem, &ls, at, Some(v)).map_err(|why| unhandled(id, cpu.pc, &ls, at, v, why))?;
        }
    }
    if let Some(b) = writeback {
        set.push((if ls.rn == 31 { cpu.sp_reg() } else { VmReg::x(ls.rn) }, b));
    }
    set.push((VmReg::PC, cpu.pc.wrapping_add(4)));
    vcpu.set_registers(&set).map_err(Failure::Vmm)
}

fn unhandled(vcpu: i32, pc: u64, ls: &LoadStore, gpa: u64, value: u64, why: BusError) -> Failure {
    Failure::Guest(Error::UnhandledAccess { vcpu, write: !ls.load, size: ls.size, value, gpa, pc, why })
}

/// One access of `ls.size` bytes at `gpa`: a read (`value` None, returns
/// what was read) or a write. Devices first; guest memory where no device is.
fn access(bus: &Bus, mem: &GuestMemory, ls: &LoadStore, gpa: u64, value: Option<u64>) -> Result<u64, BusError> {
    let mut buf = [0u8; 8];
    let data = &mut buf[..ls.size as usize];
    let r = match value {
        Some(v) => {
            data.copy_from_slice(&v.to_le_bytes()[..ls.size as usize]);
            bus.write(gpa, data)
        }
        None => bus.read(gpa, data),
    };
    match r {
        Err(BusError::NoDevice) => {
            let m = match value {
                Some(_) => mem.write_slice(data, GuestAddress(gpa)),
                None => mem.read_slice(data, GuestAddress(gpa)),
            };
            m.map_err(|_| BusError::NoDevice)?;
        }
        other => other?,
    }
    Ok(u64::from_le_bytes(buf))
}

#[cfg(test)]
mod tests;
