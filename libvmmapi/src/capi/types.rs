//! The C API's types and constants, named as in C (this file is what
//! cbindgen turns into the first half of `vmmapi.h`). Values are written out
//! (cbindgen cannot follow paths into other crates) and checked against the
//! kernel ABI (`vmm_uapi`) at compile time below.

#![allow(non_camel_case_types)]

use std::ffi::c_int;
use vmm_uapi as abi;

/// A guest physical address.
pub type vm_paddr_t = u64;
/// An offset into a memory segment.
pub type vm_ooffset_t = i64;

/// Most vCPUs a VM can have; vCPU numbers are 0 to `VM_MAXCPU - 1`.
pub const VM_MAXCPU: c_int = 32;
/// Longest VM name, in bytes (printable ASCII, no '/').
pub const VM_MAX_NAMELEN: c_int = 31;
/// Room for a VM name and its NUL (the row size of `vm_list`'s array).
pub const VM_NAMEBUF_SIZE: usize = 32;
/// Guest physical address of system memory, 0x40000000 (QEMU `virt` layout).
pub const VM_SYSMEM_BASE: u64 = 0x40000000;
/// Segment id of system memory (`vm_setup_memory` makes it).
pub const VM_SYSMEM: c_int = 0;
/// Memory segments a VM can have (ids 0 to `VM_MAX_MEMSEGS - 1`).
pub const VM_MAX_MEMSEGS: c_int = 4;
/// Longest memory segment name, in bytes.
pub const VM_MAX_SUFFIXLEN: c_int = 63;
/// `prot` bit of a mapping: the guest may read.
pub const VM_PROT_READ: c_int = 1;
/// `prot` bit: the guest may write.
pub const VM_PROT_WRITE: c_int = 2;
/// `prot` bit: the guest may execute.
pub const VM_PROT_EXECUTE: c_int = 4;
/// All three.
pub const VM_PROT_ALL: c_int = 7;
/// `vm_run.flags`: `mmio_data` is the value of the MMIO read the last
/// `VM_EXITCODE_INST_EMUL` exit asked for.
pub const VM_RUN_F_MMIO_DATA: u32 = 1;
/// `vie.dir` of a read.
pub const VM_DIR_READ: u8 = 0;
/// `vie.dir` of a write.
pub const VM_DIR_WRITE: u8 = 1;
/// `vm_add_ioeventfd` flag: only writes of the value `datamatch` match.
pub const VM_IOEVENTFD_F_DATAMATCH: u32 = 1;
/// Most ioeventfds a VM may have.
pub const VM_MAX_IOEVENTFDS: c_int = 256;
/// Most irqfds a VM may have.
pub const VM_MAX_IRQFDS: c_int = 256;
/// Where `bhyve` puts the GICv3 distributor, 0x08000000 (QEMU `virt`).
pub const VGIC_DIST_BASE: u64 = 0x08000000;
/// Size of the distributor's frame.
pub const VGIC_DIST_SIZE: u64 = 0x10000;
/// Where `bhyve` puts the first redistributor, 0x080a0000.
pub const VGIC_REDIST_BASE: u64 = 0x080a0000;
/// Size of one vCPU's redistributor (its RD and SGI frames).
pub const VGIC_REDIST_SIZE: u64 = 0x20000;
/// Most counters `vm_get_stats` returns per call of the kernel.
pub const MAX_VM_STATS: c_int = 64;
/// Host CPUs `vmm_hyp_status` can describe.
pub const VMM_MAX_HOST_CPUS: c_int = 512;
/// Words in each CPU bitmap of `vmm_hyp_status`.
pub const VMM_CPU_MASK_WORDS: usize = 8;
/// Words of a `cpuset_t`.
pub const VM_CPUSET_WORDS: usize = 4;

/// How `vm_setup_memory` maps guest memory into the calling process.
#[repr(C)]
pub enum vm_mmap_style {
    /// Not at all (`vm_map_gpa` returns NULL).
    VM_MMAP_NONE = 0,
    /// All of it, at once, shared with the guest (`vm_map_gpa` works).
    VM_MMAP_ALL = 1,
    /// On demand: not supported (`EINVAL`).
    VM_MMAP_SPARSE = 2,
}

/// Why a VM is suspended (`vm_suspend`, and the `suspended` exit).
#[repr(C)]
pub enum vm_suspend_how {
    /// Not suspended.
    VM_SUSPEND_NONE = 0,
    /// Reboot (PSCI `SYSTEM_RESET`).
    VM_SUSPEND_RESET = 1,
    /// Power off (PSCI `SYSTEM_OFF`).
    VM_SUSPEND_POWEROFF = 2,
    /// Halt.
    VM_SUSPEND_HALT = 3,
    /// (x86 only: never seen here.)
    VM_SUSPEND_TRIPLEFAULT = 4,
    /// The VM was destroyed while the vCPU ran (not accepted by `vm_suspend`).
    VM_SUSPEND_DESTROY = 5,
    /// One past the last.
    VM_SUSPEND_LAST = 6,
}

/// Why `vm_run` returned (`vm_exit.exitcode`), FreeBSD arm64's numbers.
#[repr(C)]
pub enum vm_exitcode {
    /// Nothing to do: run again.
    VM_EXITCODE_BOGUS = 0,
    /// An MMIO access to emulate: `u.inst_emul`.
    VM_EXITCODE_INST_EMUL = 1,
    /// (Not produced: system registers are emulated in the kernel.)
    VM_EXITCODE_REG_EMUL = 2,
    /// (Not produced: HVCs arrive as `VM_EXITCODE_SMCCC`.)
    VM_EXITCODE_HVC = 3,
    /// The VM is suspended: `u.suspended.how`.
    VM_EXITCODE_SUSPENDED = 4,
    /// Something the kernel could not handle: `u.hyp`.
    VM_EXITCODE_HYP = 5,
    /// (Not produced: WFI sleeps in the kernel.)
    VM_EXITCODE_WFI = 6,
    /// (Not produced.)
    VM_EXITCODE_PAGING = 7,
    /// An SMCCC call (HVC or SMC) for userspace, e.g. PSCI: `u.smccc_call`.
    /// Put the results in x0 to x3 with `vm_set_register` and run again.
    VM_EXITCODE_SMCCC = 8,
    /// (Not produced.)
    VM_EXITCODE_DEBUG = 9,
    /// (Not produced.)
    VM_EXITCODE_BRK = 10,
    /// (Not produced.)
    VM_EXITCODE_SS = 11,
    /// One past the last.
    VM_EXITCODE_MAX = 12,
}

/// `u.hyp.exception_nr` of a `VM_EXITCODE_HYP` exit.
#[repr(C)]
pub enum vm_hyp_reason {
    /// A synchronous exception the kernel does not handle (see `esr_el2`).
    VM_HYP_SYNC = 0,
    /// A data abort outside guest memory without an instruction syndrome
    /// (e.g. a load pair): it cannot be emulated.
    VM_HYP_DABT_NO_SYNDROME = 1,
    /// An instruction fetch outside guest memory.
    VM_HYP_IABT_OUTSIDE_MEMORY = 2,
    /// The guest's page table walk left guest memory.
    VM_HYP_S1PTW_OUTSIDE_MEMORY = 3,
    /// An SError from the guest.
    VM_HYP_SERROR = 4,
    /// The host had no page to give the guest.
    VM_HYP_NO_MEMORY = 5,
}

/// Register numbers (`enum vm_reg_name`). Up to `VM_REG_GUEST_TCR_EL1`
/// they are FreeBSD arm64's; the rest are this kernel's.
#[repr(C)]
pub enum vm_reg_name {
    /// x0.
    VM_REG_GUEST_X0 = 0,
    /// x1.
    VM_REG_GUEST_X1,
    /// x2.
    VM_REG_GUEST_X2,
    /// x3.
    VM_REG_GUEST_X3,
    /// x4.
    VM_REG_GUEST_X4,
    /// x5.
    VM_REG_GUEST_X5,
    /// x6.
    VM_REG_GUEST_X6,
    /// x7.
    VM_REG_GUEST_X7,
    /// x8.
    VM_REG_GUEST_X8,
    /// x9.
    VM_REG_GUEST_X9,
    /// x10.
    VM_REG_GUEST_X10,
    /// x11.
    VM_REG_GUEST_X11,
    /// x12.
    VM_REG_GUEST_X12,
    /// x13.
    VM_REG_GUEST_X13,
    /// x14.
    VM_REG_GUEST_X14,
    /// x15.
    VM_REG_GUEST_X15,
    /// x16.
    VM_REG_GUEST_X16,
    /// x17.
    VM_REG_GUEST_X17,
    /// x18.
    VM_REG_GUEST_X18,
    /// x19.
    VM_REG_GUEST_X19,
    /// x20.
    VM_REG_GUEST_X20,
    /// x21.
    VM_REG_GUEST_X21,
    /// x22.
    VM_REG_GUEST_X22,
    /// x23.
    VM_REG_GUEST_X23,
    /// x24.
    VM_REG_GUEST_X24,
    /// x25.
    VM_REG_GUEST_X25,
    /// x26.
    VM_REG_GUEST_X26,
    /// x27.
    VM_REG_GUEST_X27,
    /// x28.
    VM_REG_GUEST_X28,
    /// x29.
    VM_REG_GUEST_X29,
    /// x30, the link register.
    VM_REG_GUEST_LR,
    /// SP_EL1.
    VM_REG_GUEST_SP,
    /// The PC.
    VM_REG_GUEST_PC,
    /// PSTATE (as SPSR_EL2 holds it); AArch64 EL0 or EL1 only.
    VM_REG_GUEST_CPSR,
    /// SCTLR_EL1.
    VM_REG_GUEST_SCTLR_EL1,
    /// TTBR0_EL1.
    VM_REG_GUEST_TTBR0_EL1,
    /// TTBR1_EL1.
    VM_REG_GUEST_TTBR1_EL1,
    /// TCR_EL1.
    VM_REG_GUEST_TCR_EL1,
    /// MAIR_EL1.
    VM_REG_GUEST_MAIR_EL1,
    /// AMAIR_EL1.
    VM_REG_GUEST_AMAIR_EL1,
    /// VBAR_EL1.
    VM_REG_GUEST_VBAR_EL1,
    /// ESR_EL1.
    VM_REG_GUEST_ESR_EL1,
    /// FAR_EL1.
    VM_REG_GUEST_FAR_EL1,
    /// ELR_EL1.
    VM_REG_GUEST_ELR_EL1,
    /// SPSR_EL1.
    VM_REG_GUEST_SPSR_EL1,
    /// SP_EL0.
    VM_REG_GUEST_SP_EL0,
    /// TPIDR_EL0.
    VM_REG_GUEST_TPIDR_EL0,
    /// TPIDR_EL1.
    VM_REG_GUEST_TPIDR_EL1,
    /// TPIDRRO_EL0.
    VM_REG_GUEST_TPIDRRO_EL0,
    /// CONTEXTIDR_EL1.
    VM_REG_GUEST_CONTEXTIDR_EL1,
    /// CPACR_EL1.
    VM_REG_GUEST_CPACR_EL1,
    /// MPIDR_EL1 as the guest reads it.
    VM_REG_GUEST_MPIDR_EL1,
    /// AFSR0_EL1.
    VM_REG_GUEST_AFSR0_EL1,
    /// AFSR1_EL1.
    VM_REG_GUEST_AFSR1_EL1,
    /// PAR_EL1.
    VM_REG_GUEST_PAR_EL1,
    /// CNTKCTL_EL1.
    VM_REG_GUEST_CNTKCTL_EL1,
    /// CSSELR_EL1.
    VM_REG_GUEST_CSSELR_EL1,
    /// MDSCR_EL1.
    VM_REG_GUEST_MDSCR_EL1,
    /// FPCR.
    VM_REG_GUEST_FPCR,
    /// FPSR.
    VM_REG_GUEST_FPSR,
    /// CNTV_CTL_EL0.
    VM_REG_GUEST_CNTV_CTL_EL0,
    /// CNTV_CVAL_EL0.
    VM_REG_GUEST_CNTV_CVAL_EL0,
    /// One past the last.
    VM_REG_LAST,
}

/// Capabilities (`vm_get_capability`), FreeBSD arm64's numbers. Here each
/// is fixed: the values say how this kernel behaves.
#[repr(C)]
pub enum vm_cap_type {
    /// Exit on WFI: 0 (the kernel sleeps the vCPU until an interrupt).
    VM_CAP_HALT_EXIT = 0,
    /// Exit on WFE/YIELD: 0.
    VM_CAP_PAUSE_EXIT = 1,
    /// The guest runs any EL1 code: 1.
    VM_CAP_UNRESTRICTED_GUEST = 2,
    /// Exit on the guest's BRK: 0.
    VM_CAP_BRK_EXIT = 3,
    /// Exit after every guest instruction: 0.
    VM_CAP_SS_EXIT = 4,
    /// Interrupts masked while the guest runs: 0.
    VM_CAP_MASK_HWINTR = 5,
    /// One past the last.
    VM_CAP_MAX = 6,
}

/// A set of vCPUs: vCPU n is bit `n % 64` of `__bits[n / 64]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct cpuset_t {
    /// The bits.
    pub __bits: [u64; VM_CPUSET_WORDS],
}

/// A decoded access (`u.inst_emul.vie`): what the instruction does.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vie {
    /// 1, 2, 4 or 8 bytes.
    pub access_size: u8,
    /// A read whose value is sign-extended into the register.
    pub sign_extend: u8,
    /// `VM_DIR_READ` or `VM_DIR_WRITE`.
    pub dir: u8,
    /// The register is 64-bit (Xn), else 32-bit (Wn).
    pub sf: u8,
    /// The register: 0 to 30, or 31 for the zero register.
    pub reg: c_int,
}

/// `u.inst_emul`: a guest load or store outside guest memory. For a
/// write, `data` is the value; for a read, give the value in the next
/// `vm_run` (`VM_RUN_F_MMIO_DATA`). Either way the next `vm_run` steps
/// past the instruction; setting a register in between abandons the
/// emulation (the instruction runs again).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vm_exit_inst_emul {
    /// The guest physical address accessed.
    pub gpa: vm_paddr_t,
    /// The syndrome (ESR_EL2) it was decoded from.
    pub esr_el2: u64,
    /// The access.
    pub vie: vie,
    /// For a write: the value, truncated to the access size.
    pub data: u64,
}

/// `u.hyp`: an exit nothing handled; the vCPU cannot go on usefully.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vm_exit_hyp {
    /// A `vm_hyp_reason`.
    pub exception_nr: u32,
    /// Zero.
    pub pad: u32,
    /// ESR_EL2.
    pub esr_el2: u64,
    /// FAR_EL2.
    pub far_el2: u64,
    /// HPFAR_EL2.
    pub hpfar_el2: u64,
}

/// `u.smccc_call`: the call's function id (x0) and arguments (x1 to x7).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vm_exit_smccc_call {
    /// x0.
    pub func_id: u64,
    /// x1 to x7.
    pub args: [u64; 7],
}

/// `u.suspended`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vm_exit_suspended {
    /// A `vm_suspend_how`.
    pub how: c_int,
}

/// The payload of `vm_exit`, by `exitcode`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union vm_exit_payload {
    /// `VM_EXITCODE_HYP`.
    pub hyp: vm_exit_hyp,
    /// `VM_EXITCODE_INST_EMUL`.
    pub inst_emul: vm_exit_inst_emul,
    /// `VM_EXITCODE_SMCCC`.
    pub smccc_call: vm_exit_smccc_call,
    /// `VM_EXITCODE_SUSPENDED`.
    pub suspended: vm_exit_suspended,
    /// The kernel's words, for other codes.
    pub raw: [u64; 8],
}

/// Why `vm_run` returned, and where.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct vm_exit {
    /// A `vm_exitcode`.
    pub exitcode: c_int,
    /// Length of the instruction that exited (4), where it matters.
    pub inst_length: c_int,
    /// The guest's PC at the exit.
    pub pc: u64,
    /// Details, by `exitcode`.
    pub u: vm_exit_payload,
}

/// `vm_run`'s argument. FreeBSD's has a cpuset instead of `flags` and
/// `mmio_data`; this kernel completes MMIO reads through them.
#[repr(C)]
pub struct vm_run {
    /// Set by `vm_run` to the vCPU's number.
    pub cpuid: c_int,
    /// `VM_RUN_F_*` bits; read, never changed, by `vm_run`.
    pub flags: u32,
    /// With `VM_RUN_F_MMIO_DATA`: the value the pending MMIO read gets.
    pub mmio_data: u64,
    /// Where the exit is written (must not be NULL).
    pub vm_exit: *mut vm_exit,
}

/// The module's view of the host (`vm_get_hyp_status`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vmm_hyp_status {
    /// Possible host CPUs.
    pub nr_cpus: u32,
    /// VMs that exist.
    pub nr_vms: u32,
    /// Host CPUs online now (bitmap, `VMM_CPU_MASK_WORDS` words).
    pub online: [u64; VMM_CPU_MASK_WORDS],
    /// Host CPUs on which the module holds EL2.
    pub installed: [u64; VMM_CPU_MASK_WORDS],
    /// Host CPUs whose EL2 code answered just now.
    pub answering: [u64; VMM_CPU_MASK_WORDS],
    /// vCPUs that exist, in all VMs.
    pub nr_vcpus: u32,
    /// Zero.
    pub pad: u32,
    /// Pages of guest memory the module holds.
    pub guest_pages: u64,
    /// Other pages the module holds.
    pub pages: u64,
    /// Kernel objects the module holds.
    pub objects: u64,
}

impl vm_exit {
    /// The C view of the kernel's exit record.
    pub(crate) fn from_abi(e: &abi::VmExit) -> Self {
        let u = match e.exitcode {
            abi::exitcode::INST_EMUL => {
                let i = e.inst_emul();
                vm_exit_payload {
                    inst_emul: vm_exit_inst_emul {
                        gpa: i.gpa,
                        esr_el2: i.esr_el2,
                        vie: vie {
                            access_size: i.access_size,
                            sign_extend: i.sign_extend as u8,
                            dir: if i.write { VM_DIR_WRITE } else { VM_DIR_READ },
                            sf: i.sf as u8,
                            reg: i.reg as c_int,
                        },
                        data: i.data,
                    },
                }
            }
            abi::exitcode::HYP => {
                let h = e.hyp();
                vm_exit_payload {
                    hyp: vm_exit_hyp {
                        exception_nr: h.exception_nr,
                        pad: 0,
                        esr_el2: h.esr_el2,
                        far_el2: h.far_el2,
                        hpfar_el2: h.hpfar_el2,
                    },
                }
            }
            abi::exitcode::SMCCC => {
                let (func_id, args) = e.smccc();
                vm_exit_payload { smccc_call: vm_exit_smccc_call { func_id, args } }
            }
            abi::exitcode::SUSPENDED => {
                vm_exit_payload { suspended: vm_exit_suspended { how: e.u[0] as u32 as c_int } }
            }
            _ => vm_exit_payload { raw: e.u },
        };
        Self { exitcode: e.exitcode as c_int, inst_length: e.inst_length as c_int, pc: e.pc, u }
    }
}

impl From<&abi::VmmctlHypStatus> for vmm_hyp_status {
    fn from(s: &abi::VmmctlHypStatus) -> Self {
        Self {
            nr_cpus: s.nr_cpus,
            nr_vms: s.nr_vms,
            online: s.online,
            installed: s.installed,
            answering: s.answering,
            nr_vcpus: s.nr_vcpus,
            pad: 0,
            guest_pages: s.guest_pages,
            pages: s.pages,
            objects: s.objects,
        }
    }
}

// The values C sees are the kernel's.
const _: () = {
    assert!(VM_MAXCPU as usize == abi::VM_MAXCPU);
    assert!(VM_MAX_NAMELEN as usize == abi::VM_MAX_NAMELEN);
    assert!(VM_NAMEBUF_SIZE == abi::VM_NAME_BUF);
    assert!(VM_SYSMEM_BASE == abi::VM_SYSMEM_BASE);
    assert!(VM_SYSMEM == abi::VM_SYSMEM);
    assert!(VM_MAX_MEMSEGS as usize == abi::VM_MAX_MEMSEGS);
    assert!(VM_MAX_SUFFIXLEN as usize + 1 == abi::VM_MAX_SUFFIXLEN);
    assert!(VM_PROT_READ == abi::VM_PROT_READ && VM_PROT_WRITE == abi::VM_PROT_WRITE);
    assert!(VM_PROT_EXECUTE == abi::VM_PROT_EXECUTE && VM_PROT_ALL == abi::VM_PROT_ALL);
    assert!(VM_RUN_F_MMIO_DATA == abi::VM_RUN_F_MMIO_DATA);
    assert!(VM_DIR_READ == abi::VM_DIR_READ && VM_DIR_WRITE == abi::VM_DIR_WRITE);
    assert!(VM_IOEVENTFD_F_DATAMATCH == abi::VM_IOEVENTFD_F_DATAMATCH);
    assert!(VM_MAX_IOEVENTFDS as usize == abi::VM_MAX_IOEVENTFDS);
    assert!(VM_MAX_IRQFDS as usize == abi::VM_MAX_IRQFDS);
    assert!(VGIC_DIST_BASE == abi::VGIC_DIST_BASE && VGIC_DIST_SIZE == abi::VGIC_DIST_SIZE);
    assert!(VGIC_REDIST_BASE == abi::VGIC_REDIST_BASE && VGIC_REDIST_SIZE == abi::VGIC_REDIST_SIZE);
    assert!(MAX_VM_STATS as usize == abi::MAX_VM_STATS);
    assert!(VMM_MAX_HOST_CPUS as usize == abi::VMM_MAX_CPUS);
    assert!(VMM_CPU_MASK_WORDS == abi::CPU_MASK_WORDS);
    assert!(VM_CPUSET_WORDS * 64 >= abi::VM_MAXCPU);
    assert!(vm_suspend_how::VM_SUSPEND_POWEROFF as u32 == abi::SuspendHow::Poweroff as u32);
    assert!(vm_suspend_how::VM_SUSPEND_RESET as u32 == abi::SuspendHow::Reset as u32);
    assert!(vm_suspend_how::VM_SUSPEND_HALT as u32 == abi::SuspendHow::Halt as u32);
    assert!(vm_suspend_how::VM_SUSPEND_DESTROY as u32 == abi::SuspendHow::Destroy as u32);
    assert!(vm_exitcode::VM_EXITCODE_INST_EMUL as u32 == abi::exitcode::INST_EMUL);
    assert!(vm_exitcode::VM_EXITCODE_SUSPENDED as u32 == abi::exitcode::SUSPENDED);
    assert!(vm_exitcode::VM_EXITCODE_HYP as u32 == abi::exitcode::HYP);
    assert!(vm_exitcode::VM_EXITCODE_SMCCC as u32 == abi::exitcode::SMCCC);
    assert!(vm_exitcode::VM_EXITCODE_MAX as u32 == abi::exitcode::MAX);
    assert!(vm_hyp_reason::VM_HYP_NO_MEMORY as u32 == abi::hyp_reason::NO_MEMORY);
    assert!(vm_hyp_reason::VM_HYP_DABT_NO_SYNDROME as u32 == abi::hyp_reason::DABT_NO_SYNDROME);
    assert!(vm_reg_name::VM_REG_GUEST_LR as i32 == abi::VmReg::LR.0);
    assert!(vm_reg_name::VM_REG_GUEST_PC as i32 == abi::VmReg::PC.0);
    assert!(vm_reg_name::VM_REG_GUEST_TCR_EL1 as i32 == abi::VmReg::TCR_EL1.0);
    assert!(vm_reg_name::VM_REG_GUEST_MAIR_EL1 as i32 == abi::VmReg::MAIR_EL1.0);
    assert!(vm_reg_name::VM_REG_GUEST_MPIDR_EL1 as i32 == abi::VmReg::MPIDR_EL1.0);
    assert!(vm_reg_name::VM_REG_GUEST_FPSR as i32 == abi::VmReg::FPSR.0);
    assert!(vm_reg_name::VM_REG_GUEST_CNTV_CVAL_EL0 as i32 == abi::VmReg::CNTV_CVAL_EL0.0);
    assert!(vm_reg_name::VM_REG_LAST as usize == abi::VmReg::COUNT);
    assert!(vm_cap_type::VM_CAP_MASK_HWINTR as i32 == crate::Capability::MaskHwintr as i32);
    assert!(std::mem::size_of::<vm_exit>() == std::mem::size_of::<abi::VmExit>());
    assert!(std::mem::size_of::<vm_exit_inst_emul>() == 32);
    assert!(std::mem::size_of::<vm_exit_payload>() == 64);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_names_follow_the_kernel_numbering() {
        // Every name of the C enum is the kernel's register of that number.
        let c = [
            (vm_reg_name::VM_REG_GUEST_X29 as i32, "x29"),
            (vm_reg_name::VM_REG_GUEST_SP as i32, "sp"),
            (vm_reg_name::VM_REG_GUEST_CPSR as i32, "cpsr"),
            (vm_reg_name::VM_REG_GUEST_VBAR_EL1 as i32, "vbar_el1"),
            (vm_reg_name::VM_REG_GUEST_SPSR_EL1 as i32, "spsr_el1"),
            (vm_reg_name::VM_REG_GUEST_TPIDRRO_EL0 as i32, "tpidrro_el0"),
            (vm_reg_name::VM_REG_GUEST_CSSELR_EL1 as i32, "csselr_el1"),
            (vm_reg_name::VM_REG_GUEST_CNTV_CTL_EL0 as i32, "cntv_ctl_el0"),
        ];
        for (n, name) in c {
            assert_eq!(abi::VmReg(n).name(), name);
        }
    }

    #[test]
    fn exits_in_c_shape() {
        let mut e = abi::VmExit { pc: 0x4000_0010, inst_length: 4, ..Default::default() };
        e.set_inst_emul(&abi::InstEmul {
            gpa: 0x900_0018,
            esr_el2: 0x9340_0046,
            access_size: 4,
            sign_extend: false,
            write: false,
            sf: false,
            reg: 3,
            data: 0,
        });
        let c = vm_exit::from_abi(&e);
        assert_eq!((c.exitcode, c.inst_length, c.pc), (1, 4, 0x4000_0010));
        // SAFETY: the INST_EMUL variant is the one written for this exitcode.
        let i = unsafe { c.u.inst_emul };
        assert_eq!((i.gpa, i.vie.access_size, i.vie.dir, i.vie.reg), (0x900_0018, 4, VM_DIR_READ, 3));
        e.set_suspended(abi::SuspendHow::Poweroff);
        // SAFETY: as above, SUSPENDED.
        assert_eq!(unsafe { vm_exit::from_abi(&e).u.suspended.how }, 2);
        e.set_smccc(0x8400_0008, &[1, 2, 3, 4, 5, 6, 7]);
        // SAFETY: as above, SMCCC.
        let s = unsafe { vm_exit::from_abi(&e).u.smccc_call };
        assert_eq!((s.func_id, s.args[6]), (0x8400_0008, 7));
    }
}
