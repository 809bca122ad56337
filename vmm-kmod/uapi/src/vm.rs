//! The ioctls of a VM's device `/dev/vmm/NAME` (group `'v'`): memory,
//! vCPU registers, running, exits, suspend and statistics. Names and
//! numbers follow FreeBSD's arm64 `vmm.h`/`vmm_dev.h` where they fit.

use crate::ioctl::{iow, iowr};
use core::mem::{offset_of, size_of};

/// Most vCPUs a VM can have.
pub const VM_MAXCPU: usize = 32;
/// Guest physical address of system memory (QEMU `virt` layout).
pub const VM_SYSMEM_BASE: u64 = 0x4000_0000;
/// Segment id of system memory.
pub const VM_SYSMEM: i32 = 0;
/// Segment id bhyve gives the boot ROM: flash bank 0, the firmware
/// (FreeBSD's `VM_BOOTROM`).
pub const VM_BOOTROM: i32 = 1;
/// Segment id bhyve gives flash bank 1, the firmware's variable store
/// (FreeBSD amd64 keeps its variables inside the boot ROM's segment).
pub const VM_BOOTVARS: i32 = 2;
/// Most memory segments a VM can have.
pub const VM_MAX_MEMSEGS: usize = 4;
/// Most guest-physical mappings of segments.
pub const VM_MAX_MEMMAPS: usize = 8;
/// Length of a memory segment's name buffer.
pub const VM_MAX_SUFFIXLEN: usize = 64;

/// `PROT_READ` in [`VmMemmap::prot`].
pub const VM_PROT_READ: i32 = 1;
/// `PROT_WRITE`.
pub const VM_PROT_WRITE: i32 = 2;
/// `PROT_EXECUTE`.
pub const VM_PROT_EXECUTE: i32 = 4;
/// All of the above.
pub const VM_PROT_ALL: i32 = 7;

/// A memory segment (`struct vm_memseg`): `VM_ALLOC_MEMSEG`, `VM_GET_MEMSEG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmMemseg {
    /// Segment id; [`VM_SYSMEM`] for system memory.
    pub segid: i32,
    /// Reserved, zero.
    pub pad: u32,
    /// Length in bytes (a multiple of 4 KiB); 0 from `VM_GET_MEMSEG` if absent.
    pub len: u64,
    /// Name, NUL-terminated; empty for system memory.
    pub name: [u8; VM_MAX_SUFFIXLEN],
}

/// A mapping of a segment into guest physical memory (`struct vm_memmap`):
/// `VM_MMAP_MEMSEG`, `VM_MMAP_GETNEXT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmMemmap {
    /// Guest physical address (4 KiB aligned).
    pub gpa: u64,
    /// Segment id.
    pub segid: i32,
    /// Reserved, zero.
    pub pad: u32,
    /// Offset in the segment.
    pub segoff: u64,
    /// Length in bytes.
    pub len: u64,
    /// `VM_PROT_*` bits.
    pub prot: i32,
    /// `VM_MEMMAP_F_*` bits.
    pub flags: i32,
}

/// `struct vm_munmap`: `VM_MUNMAP_MEMSEG`, the guest mapping of exactly
/// `[gpa, gpa + len)` to remove.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmMunmap {
    /// Guest physical address of the mapping.
    pub gpa: u64,
    /// Its length.
    pub len: u64,
}

/// `struct vm_register`: `VM_GET_REGISTER`, `VM_SET_REGISTER`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmRegister {
    /// vCPU.
    pub cpuid: i32,
    /// A [`VmReg`] number.
    pub regnum: i32,
    /// Value.
    pub regval: u64,
}

/// `struct vm_register_set`: `VM_GET_REGISTER_SET`, `VM_SET_REGISTER_SET`.
/// The arrays are in the caller's memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmRegisterSet {
    /// vCPU.
    pub cpuid: i32,
    /// Number of registers (at most [`VmReg::COUNT`]).
    pub count: u32,
    /// User address of `count` `i32` register numbers.
    pub regnums: u64,
    /// User address of `count` `u64` values.
    pub regvals: u64,
}

/// `struct vm_activate_cpu`: `VM_ACTIVATE_CPU`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmActivateCpu {
    /// vCPU to activate (reset state as the Linux boot protocol wants).
    pub vcpuid: i32,
    /// Reserved, zero.
    pub pad: u32,
}

/// Which set `VM_GET_CPUS` reports.
pub const VM_ACTIVE_CPUS: i32 = 0;
/// vCPUs suspended by `VM_SUSPEND_CPU`.
pub const VM_SUSPENDED_CPUS: i32 = 1;

/// `struct vm_cpuset`: `VM_GET_CPUS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmCpuset {
    /// [`VM_ACTIVE_CPUS`] or [`VM_SUSPENDED_CPUS`].
    pub which: i32,
    /// Reserved, zero.
    pub pad: u32,
    /// Bit n set: vCPU n is in the set.
    pub mask: u64,
}

/// How a VM was suspended (`enum vm_suspend_how`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendHow {
    /// Not suspended.
    None = 0,
    /// Reboot (PSCI `SYSTEM_RESET`): bhyve exits 0.
    Reset = 1,
    /// Power off (PSCI `SYSTEM_OFF`): bhyve exits 1.
    Poweroff = 2,
    /// Halt: bhyve exits 2.
    Halt = 3,
    /// (x86 only; never used here.)
    Triplefault = 4,
    /// The VM was destroyed while running.
    Destroy = 5,
}

impl SuspendHow {
    /// From the ABI value.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::None,
            1 => Self::Reset,
            2 => Self::Poweroff,
            3 => Self::Halt,
            4 => Self::Triplefault,
            5 => Self::Destroy,
            _ => return None,
        })
    }
}

/// `struct vm_suspend`: `VM_SUSPEND`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmSuspend {
    /// A [`SuspendHow`] value other than `None`.
    pub how: u32,
}

/// Exit codes (`enum vm_exitcode`, FreeBSD arm64 numbering).
pub mod exitcode {
    /// Nothing to report (e.g. a host interrupt): run again.
    pub const BOGUS: u32 = 0;
    /// A data abort outside guest memory, decoded: emulate the access.
    pub const INST_EMUL: u32 = 1;
    /// A trapped system register access for userspace.
    pub const REG_EMUL: u32 = 2;
    /// (Reserved: HVCs arrive as [`SMCCC`].)
    pub const HVC: u32 = 3;
    /// The VM was suspended (`VM_SUSPEND`), see the payload.
    pub const SUSPENDED: u32 = 4;
    /// An exit nothing handles: ESR, FAR, HPFAR in the payload.
    pub const HYP: u32 = 5;
    /// The vCPU waits for an interrupt.
    pub const WFI: u32 = 6;
    /// A stage-2 fault userspace must resolve.
    pub const PAGING: u32 = 7;
    /// An SMCCC call (HVC or SMC): function id and arguments.
    pub const SMCCC: u32 = 8;
    /// Debug exception.
    pub const DEBUG: u32 = 9;
    /// BRK instruction.
    pub const BRK: u32 = 10;
    /// Software step.
    pub const SS: u32 = 11;
    /// One past the last.
    pub const MAX: u32 = 12;
}

/// Why a [`exitcode::HYP`] exit happened (`exception_nr` in its payload).
pub mod hyp_reason {
    /// A synchronous exception the kernel does not handle (see ESR).
    pub const SYNC: u32 = 0;
    /// A data abort without a valid instruction syndrome (ISV=0).
    pub const DABT_NO_SYNDROME: u32 = 1;
    /// An instruction fetch outside guest memory.
    pub const IABT_OUTSIDE_MEMORY: u32 = 2;
    /// A stage-2 fault on a guest page table walk outside memory.
    pub const S1PTW_OUTSIDE_MEMORY: u32 = 3;
    /// An SError from the guest.
    pub const SERROR: u32 = 4;
    /// Guest memory could not be allocated (host out of memory).
    pub const NO_MEMORY: u32 = 5;
}

/// `struct vm_exit`: what `VM_RUN` reports. The payload `u` depends on
/// `exitcode`; use the accessors (the C header has it as a union):
///
/// | exitcode | payload words |
/// | --- | --- |
/// | `INST_EMUL` | `gpa`, `esr_el2`, `access_size:u8 sign_extend:u8 dir:u8 sf:u8 reg:u32`, `data` |
/// | `SMCCC` | `func_id`, `args[7]` (x1..x7) |
/// | `HYP` | `exception_nr:u32 pad:u32`, `esr_el2`, `far_el2`, `hpfar_el2` |
/// | `SUSPENDED` | `how:u32` |
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmExit {
    /// An [`exitcode`] value.
    pub exitcode: u32,
    /// Length of the instruction that exited (4), where it matters.
    pub inst_length: u32,
    /// Guest PC of the exit.
    pub pc: u64,
    /// Payload.
    pub u: [u64; 8],
}

/// A decoded guest access to emulate (`INST_EMUL` payload).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstEmul {
    /// Guest physical address accessed.
    pub gpa: u64,
    /// The syndrome it was decoded from.
    pub esr_el2: u64,
    /// 1, 2, 4 or 8 bytes.
    pub access_size: u8,
    /// A read whose value is sign-extended.
    pub sign_extend: bool,
    /// A write (else a read).
    pub write: bool,
    /// The register is 64-bit (Xn), else 32-bit (Wn).
    pub sf: bool,
    /// Register number 0-30, or 31 for the zero register.
    pub reg: u32,
    /// For a write: the value (truncated to `access_size`).
    pub data: u64,
}

/// Direction values of [`InstEmul`] in the ABI.
pub const VM_DIR_READ: u8 = 0;
/// A write.
pub const VM_DIR_WRITE: u8 = 1;

/// An exit nothing handled (`HYP` payload).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HypExit {
    /// A [`hyp_reason`] value.
    pub exception_nr: u32,
    /// `ESR_EL2` of the exit.
    pub esr_el2: u64,
    /// `FAR_EL2`.
    pub far_el2: u64,
    /// `HPFAR_EL2`.
    pub hpfar_el2: u64,
}

impl VmExit {
    /// The `INST_EMUL` payload.
    pub fn inst_emul(&self) -> InstEmul {
        let w = self.u[2];
        InstEmul {
            gpa: self.u[0],
            esr_el2: self.u[1],
            access_size: w as u8,
            sign_extend: (w >> 8) as u8 != 0,
            write: (w >> 16) as u8 == VM_DIR_WRITE,
            sf: (w >> 24) as u8 != 0,
            reg: (w >> 32) as u32,
            data: self.u[3],
        }
    }

    /// Sets an `INST_EMUL` exit.
    pub fn set_inst_emul(&mut self, e: &InstEmul) {
        self.exitcode = exitcode::INST_EMUL;
        self.u = [0; 8];
        self.u[0] = e.gpa;
        self.u[1] = e.esr_el2;
        self.u[2] = e.access_size as u64
            | (e.sign_extend as u64) << 8
            | (if e.write { VM_DIR_WRITE } else { VM_DIR_READ } as u64) << 16
            | (e.sf as u64) << 24
            | (e.reg as u64) << 32;
        self.u[3] = e.data;
    }

    /// The `SMCCC` payload: function id and x1..x7.
    pub fn smccc(&self) -> (u64, [u64; 7]) {
        let mut args = [0; 7];
        args.copy_from_slice(&self.u[1..8]);
        (self.u[0], args)
    }

    /// Sets an `SMCCC` exit.
    pub fn set_smccc(&mut self, func_id: u64, args: &[u64; 7]) {
        self.exitcode = exitcode::SMCCC;
        self.u[0] = func_id;
        self.u[1..8].copy_from_slice(args);
    }

    /// The `HYP` payload.
    pub fn hyp(&self) -> HypExit {
        HypExit { exception_nr: self.u[0] as u32, esr_el2: self.u[1], far_el2: self.u[2], hpfar_el2: self.u[3] }
    }

    /// Sets a `HYP` exit.
    pub fn set_hyp(&mut self, h: &HypExit) {
        self.exitcode = exitcode::HYP;
        self.u = [h.exception_nr as u64, h.esr_el2, h.far_el2, h.hpfar_el2, 0, 0, 0, 0];
    }

    /// The `SUSPENDED` payload.
    pub fn suspended(&self) -> Option<SuspendHow> {
        SuspendHow::from_u32(self.u[0] as u32)
    }

    /// Sets a `SUSPENDED` exit.
    pub fn set_suspended(&mut self, how: SuspendHow) {
        self.exitcode = exitcode::SUSPENDED;
        self.u = [how as u64, 0, 0, 0, 0, 0, 0, 0];
    }
}

/// `flags` of [`VmRun`]: `mmio_data` completes the pending `INST_EMUL` read.
pub const VM_RUN_F_MMIO_DATA: u32 = 1;

/// `struct vm_run`: `VM_RUN`. Runs vCPU `cpuid` until an exit for
/// userspace. After an `INST_EMUL` read, pass the value read with
/// [`VM_RUN_F_MMIO_DATA`]; the kernel writes it to the register (extending it
/// as decoded) and steps past the instruction. After an `INST_EMUL` write
/// or an `SMCCC` exit, the next `VM_RUN` continues after the instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmRun {
    /// vCPU.
    pub cpuid: i32,
    /// `VM_RUN_F_*` bits.
    pub flags: u32,
    /// The value of a completed MMIO read.
    pub mmio_data: u64,
    /// The exit (out).
    pub exit: VmExit,
}

/// Most statistics a VM keeps per vCPU.
pub const MAX_VM_STATS: usize = 64;

/// `struct vm_stats`: `VM_STATS`, the counters of vCPU `cpuid` from `index`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmStats {
    /// vCPU.
    pub cpuid: i32,
    /// First counter wanted.
    pub index: i32,
    /// Counters returned (out).
    pub num_entries: i32,
    /// Reserved, zero.
    pub pad: u32,
    /// The counters (out).
    pub statbuf: [u64; MAX_VM_STATS],
}

impl Default for VmStats {
    fn default() -> Self {
        Self { cpuid: 0, index: 0, num_entries: 0, pad: 0, statbuf: [0; MAX_VM_STATS] }
    }
}

/// `struct vm_stat_desc`: `VM_STAT_DESC`, the name of counter `index`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmStatDesc {
    /// Counter index.
    pub index: i32,
    /// Reserved, zero.
    pub pad: u32,
    /// Its description, NUL-terminated (out).
    pub desc: [u8; 128],
}

impl Default for VmStatDesc {
    fn default() -> Self {
        Self { index: 0, pad: 0, desc: [0; 128] }
    }
}

/// `struct vm_vgic_descr`: `VM_ATTACH_VGIC`, where the guest finds its GICv3.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmVgicDescr {
    /// Guest physical address of the distributor (64 KiB aligned).
    pub dist_start: u64,
    /// Its size: 64 KiB.
    pub dist_size: u64,
    /// Guest physical address of the first redistributor (64 KiB aligned).
    pub redist_start: u64,
    /// Size of the redistributor region: 128 KiB per vCPU.
    pub redist_size: u64,
}

/// `struct vm_irq`: `VM_ASSERT_IRQ`, `VM_DEASSERT_IRQ`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmIrq {
    /// An SPI's INTID (32 and up).
    pub irq: u32,
}

/// `struct vm_ioeventfd`: `VM_IOEVENTFD`. A guest write of `len` bytes to
/// `gpa` (and, with [`VM_IOEVENTFD_F_DATAMATCH`], of the value `datamatch`)
/// is completed in the kernel by signalling the eventfd `fd`: `VM_RUN` does
/// not return for it. With [`VM_IOEVENTFD_F_DEASSIGN`] the same
/// registration (all fields alike) is removed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmIoeventfd {
    /// Guest physical address written (outside RAM and the vGIC's frames).
    pub gpa: u64,
    /// With [`VM_IOEVENTFD_F_DATAMATCH`]: the value the write must carry,
    /// compared after truncation to the access size.
    pub datamatch: u64,
    /// Access size in bytes: 1, 2, 4 or 8; 0 for any size (then without
    /// [`VM_IOEVENTFD_F_DATAMATCH`]).
    pub len: u32,
    /// The eventfd to signal.
    pub fd: i32,
    /// `VM_IOEVENTFD_F_*` bits.
    pub flags: u32,
    /// Reserved, zero.
    pub pad: u32,
}

/// [`VmIoeventfd::flags`]: only writes of the value `datamatch` match.
pub const VM_IOEVENTFD_F_DATAMATCH: u32 = 1;
/// [`VmIoeventfd::flags`]: remove the registration instead of adding it.
pub const VM_IOEVENTFD_F_DEASSIGN: u32 = 2;
/// Most ioeventfds one VM may have (`ENOSPC` beyond).
pub const VM_MAX_IOEVENTFDS: usize = 256;

/// `struct vm_irqfd`: `VM_IRQFD`. Each write to the eventfd `fd` raises
/// SPI `irq`: as an edge (its pending state latched), or with
/// [`VM_IRQFD_F_RESAMPLE`] as a level held until the guest completes the
/// interrupt, when the line is lowered and `resamplefd` signalled. With
/// [`VM_IRQFD_F_DEASSIGN`] the registration of `fd` for `irq` is removed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmIrqfd {
    /// The eventfd whose writes raise the interrupt.
    pub fd: i32,
    /// The SPI's INTID (32 and up).
    pub irq: u32,
    /// `VM_IRQFD_F_*` bits.
    pub flags: u32,
    /// With [`VM_IRQFD_F_RESAMPLE`]: the eventfd signalled when the guest
    /// has completed the interrupt and the line was lowered.
    pub resamplefd: i32,
}

/// [`VmIrqfd::flags`]: remove the registration instead of adding it.
pub const VM_IRQFD_F_DEASSIGN: u32 = 1;
/// [`VmIrqfd::flags`]: level semantics with a resample eventfd.
pub const VM_IRQFD_F_RESAMPLE: u32 = 2;
/// Most irqfds one VM may have (`ENOSPC` beyond).
pub const VM_MAX_IRQFDS: usize = 256;

/// The QEMU `virt` GICv3 distributor.
pub const VGIC_DIST_BASE: u64 = 0x0800_0000;
/// Its size.
pub const VGIC_DIST_SIZE: u64 = 0x1_0000;
/// The QEMU `virt` GICv3 redistributors.
pub const VGIC_REDIST_BASE: u64 = 0x080a_0000;
/// One redistributor (RD and SGI frames).
pub const VGIC_REDIST_SIZE: u64 = 0x2_0000;

/// Run a vCPU.
pub const VM_RUN: u32 = iowr(b'v', 1, size_of::<VmRun>());
/// Reset the VM for a new boot: not suspended, no vCPU active, no vGIC
/// (the next bhyve attaches one for its vCPUs), memory kept (bhyveload
/// calls it when it reuses a VM). `EBUSY` while a vCPU runs.
pub const VM_REINIT: u32 = crate::ioctl::ioc(crate::ioctl::IOC_NONE, b'v', 3, 0);
/// Suspend the VM (all vCPUs exit with `SUSPENDED`).
pub const VM_SUSPEND: u32 = iow(b'v', 2, size_of::<VmSuspend>());
/// Allocate a memory segment.
pub const VM_ALLOC_MEMSEG: u32 = iow(b'v', 10, size_of::<VmMemseg>());
/// Read a memory segment's length.
pub const VM_GET_MEMSEG: u32 = iowr(b'v', 11, size_of::<VmMemseg>());
/// Map a segment into guest physical memory. Without [`VM_PROT_WRITE`] the
/// guest reads (and, with [`VM_PROT_EXECUTE`], runs) the pages without an
/// exit, and each write exits to userspace as an MMIO write (`INST_EMUL`).
/// A segment lives at the first address it was mapped at: after
/// [`VM_MUNMAP_MEMSEG`] it maps again there only (`EINVAL` elsewhere).
pub const VM_MMAP_MEMSEG: u32 = iow(b'v', 12, size_of::<VmMemmap>());
/// Remove the guest mapping of exactly `[gpa, gpa + len)` (`EINVAL` if no
/// mapping is exactly that). The segment keeps its pages and contents, and
/// userspace keeps its `mmap` of them; the guest's stage-2 entries go and
/// every CPU's TLB entries of the VM are invalidated before the call
/// returns, so from then on every guest access to the range exits to
/// userspace as MMIO (`INST_EMUL`), until `VM_MMAP_MEMSEG` maps it again.
pub const VM_MUNMAP_MEMSEG: u32 = iow(b'v', 14, size_of::<VmMunmap>());
/// The first mapping at or above `gpa`.
pub const VM_MMAP_GETNEXT: u32 = iowr(b'v', 13, size_of::<VmMemmap>());
/// Set one register.
pub const VM_SET_REGISTER: u32 = iow(b'v', 20, size_of::<VmRegister>());
/// Get one register.
pub const VM_GET_REGISTER: u32 = iowr(b'v', 21, size_of::<VmRegister>());
/// Set several registers.
pub const VM_SET_REGISTER_SET: u32 = iow(b'v', 22, size_of::<VmRegisterSet>());
/// Get several registers.
pub const VM_GET_REGISTER_SET: u32 = iowr(b'v', 23, size_of::<VmRegisterSet>());
/// Activate a vCPU (reset state).
pub const VM_ACTIVATE_CPU: u32 = iow(b'v', 30, size_of::<VmActivateCpu>());
/// Read the set of active (or suspended) vCPUs.
pub const VM_GET_CPUS: u32 = iowr(b'v', 31, size_of::<VmCpuset>());
/// Give the VM a GICv3 at the given addresses (once).
pub const VM_ATTACH_VGIC: u32 = iow(b'v', 60, size_of::<VmVgicDescr>());
/// Raise an SPI's line (level semantics).
pub const VM_ASSERT_IRQ: u32 = iow(b'v', 61, size_of::<VmIrq>());
/// Lower an SPI's line.
pub const VM_DEASSERT_IRQ: u32 = iow(b'v', 62, size_of::<VmIrq>());
/// Add (or remove) an ioeventfd: guest writes completed by an eventfd.
pub const VM_IOEVENTFD: u32 = iow(b'v', 70, size_of::<VmIoeventfd>());
/// Add (or remove) an irqfd: an eventfd that raises an SPI.
pub const VM_IRQFD: u32 = iow(b'v', 71, size_of::<VmIrqfd>());
/// Read a vCPU's counters.
pub const VM_STATS: u32 = iowr(b'v', 50, size_of::<VmStats>());
/// Read a counter's name.
pub const VM_STAT_DESC: u32 = iowr(b'v', 51, size_of::<VmStatDesc>());

const _: () = assert!(size_of::<VmMemseg>() == 80);
const _: () = assert!(size_of::<VmMemmap>() == 40);
const _: () = assert!(offset_of!(VmMemmap, segoff) == 16);
const _: () = assert!(size_of::<VmMunmap>() == 16);
const _: () = assert!(size_of::<VmRegister>() == 16);
const _: () = assert!(size_of::<VmRegisterSet>() == 24);
const _: () = assert!(size_of::<VmExit>() == 80);
const _: () = assert!(offset_of!(VmExit, u) == 16);
const _: () = assert!(size_of::<VmRun>() == 96);
const _: () = assert!(offset_of!(VmRun, exit) == 16);
const _: () = assert!(size_of::<VmStats>() == 16 + 8 * MAX_VM_STATS);
const _: () = assert!(size_of::<VmStatDesc>() == 136);
const _: () = assert!(size_of::<VmCpuset>() == 16);
const _: () = assert!(size_of::<VmVgicDescr>() == 32);
const _: () = assert!(size_of::<VmIrq>() == 4);
const _: () = assert!(size_of::<VmIoeventfd>() == 32);
const _: () = assert!(offset_of!(VmIoeventfd, len) == 16);
const _: () = assert!(offset_of!(VmIoeventfd, fd) == 20);
const _: () = assert!(offset_of!(VmIoeventfd, flags) == 24);
const _: () = assert!(size_of::<VmIrqfd>() == 16);
const _: () = assert!(offset_of!(VmIrqfd, resamplefd) == 12);

/// A register number (`enum vm_reg_name`): FreeBSD's arm64 order for the
/// first ones (x0..x30, SP, PC, CPSR, SCTLR, TTBR0/1, TCR), then the other
/// EL1 and EL0 registers a VMM needs.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmReg(pub i32);

/// Names of the registers, indexed by number (x0..x29 first).
const REG_NAMES: [&str; VmReg::COUNT] = [
    "x0",
    "x1",
    "x2",
    "x3",
    "x4",
    "x5",
    "x6",
    "x7",
    "x8",
    "x9",
    "x10",
    "x11",
    "x12",
    "x13",
    "x14",
    "x15",
    "x16",
    "x17",
    "x18",
    "x19",
    "x20",
    "x21",
    "x22",
    "x23",
    "x24",
    "x25",
    "x26",
    "x27",
    "x28",
    "x29",
    "lr",
    "sp",
    "pc",
    "cpsr",
    "sctlr_el1",
    "ttbr0_el1",
    "ttbr1_el1",
    "tcr_el1",
    "mair_el1",
    "amair_el1",
    "vbar_el1",
    "esr_el1",
    "far_el1",
    "elr_el1",
    "spsr_el1",
    "sp_el0",
    "tpidr_el0",
    "tpidr_el1",
    "tpidrro_el0",
    "contextidr_el1",
    "cpacr_el1",
    "mpidr_el1",
    "afsr0_el1",
    "afsr1_el1",
    "par_el1",
    "cntkctl_el1",
    "csselr_el1",
    "mdscr_el1",
    "fpcr",
    "fpsr",
    "cntv_ctl_el0",
    "cntv_cval_el0",
];

impl VmReg {
    /// x30, the link register.
    pub const LR: VmReg = VmReg(30);
    /// SP_EL1 (the stack of EL1h, where guests start).
    pub const SP: VmReg = VmReg(31);
    /// The guest's PC.
    pub const PC: VmReg = VmReg(32);
    /// PSTATE, as SPSR_EL2 holds it.
    pub const CPSR: VmReg = VmReg(33);
    /// SCTLR_EL1.
    pub const SCTLR_EL1: VmReg = VmReg(34);
    /// TTBR0_EL1.
    pub const TTBR0_EL1: VmReg = VmReg(35);
    /// TTBR1_EL1.
    pub const TTBR1_EL1: VmReg = VmReg(36);
    /// TCR_EL1.
    pub const TCR_EL1: VmReg = VmReg(37);
    /// MAIR_EL1.
    pub const MAIR_EL1: VmReg = VmReg(38);
    /// AMAIR_EL1.
    pub const AMAIR_EL1: VmReg = VmReg(39);
    /// VBAR_EL1.
    pub const VBAR_EL1: VmReg = VmReg(40);
    /// ESR_EL1.
    pub const ESR_EL1: VmReg = VmReg(41);
    /// FAR_EL1.
    pub const FAR_EL1: VmReg = VmReg(42);
    /// ELR_EL1.
    pub const ELR_EL1: VmReg = VmReg(43);
    /// SPSR_EL1.
    pub const SPSR_EL1: VmReg = VmReg(44);
    /// SP_EL0.
    pub const SP_EL0: VmReg = VmReg(45);
    /// TPIDR_EL0.
    pub const TPIDR_EL0: VmReg = VmReg(46);
    /// TPIDR_EL1.
    pub const TPIDR_EL1: VmReg = VmReg(47);
    /// TPIDRRO_EL0.
    pub const TPIDRRO_EL0: VmReg = VmReg(48);
    /// CONTEXTIDR_EL1.
    pub const CONTEXTIDR_EL1: VmReg = VmReg(49);
    /// CPACR_EL1.
    pub const CPACR_EL1: VmReg = VmReg(50);
    /// MPIDR_EL1 as the guest reads it (VMPIDR_EL2).
    pub const MPIDR_EL1: VmReg = VmReg(51);
    /// AFSR0_EL1.
    pub const AFSR0_EL1: VmReg = VmReg(52);
    /// AFSR1_EL1.
    pub const AFSR1_EL1: VmReg = VmReg(53);
    /// PAR_EL1.
    pub const PAR_EL1: VmReg = VmReg(54);
    /// CNTKCTL_EL1.
    pub const CNTKCTL_EL1: VmReg = VmReg(55);
    /// CSSELR_EL1.
    pub const CSSELR_EL1: VmReg = VmReg(56);
    /// MDSCR_EL1.
    pub const MDSCR_EL1: VmReg = VmReg(57);
    /// FPCR.
    pub const FPCR: VmReg = VmReg(58);
    /// FPSR.
    pub const FPSR: VmReg = VmReg(59);
    /// CNTV_CTL_EL0.
    pub const CNTV_CTL_EL0: VmReg = VmReg(60);
    /// CNTV_CVAL_EL0.
    pub const CNTV_CVAL_EL0: VmReg = VmReg(61);

    /// Number of register numbers.
    pub const COUNT: usize = 62;

    /// Register `x<n>`, n in 0..=30.
    pub const fn x(n: u32) -> VmReg {
        assert!(n <= 30);
        VmReg(n as i32)
    }

    /// Whether the number names a register.
    pub fn is_valid(self) -> bool {
        (0..Self::COUNT as i32).contains(&self.0)
    }

    /// Every register, in number order.
    pub fn all() -> impl Iterator<Item = VmReg> {
        (0..Self::COUNT as i32).map(VmReg)
    }

    /// The register's name as bhyvectl prints it ("?" if invalid).
    pub fn name(self) -> &'static str {
        if self.is_valid() {
            REG_NAMES[self.0 as usize]
        } else {
            "?"
        }
    }

    /// The register called `name`.
    pub fn from_name(name: &str) -> Option<VmReg> {
        REG_NAMES.iter().position(|&n| n == name).map(|i| VmReg(i as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_names_round_trip() {
        assert_eq!(VmReg::x(0).name(), "x0");
        assert_eq!(VmReg::x(29).name(), "x29");
        assert_eq!(VmReg::PC.name(), "pc");
        assert_eq!(VmReg::CNTV_CVAL_EL0.name(), "cntv_cval_el0");
        for r in VmReg::all() {
            assert_eq!(VmReg::from_name(r.name()), Some(r));
        }
        assert!(!VmReg(62).is_valid() && !VmReg(-1).is_valid());
        assert_eq!(VmReg(99).name(), "?");
    }

    #[test]
    fn exit_payloads_round_trip() {
        let mut e = VmExit::default();
        let ie = InstEmul {
            gpa: 0x900_0018,
            esr_el2: 0x9300_0046,
            access_size: 4,
            sign_extend: true,
            write: false,
            sf: true,
            reg: 19,
            data: 0,
        };
        e.set_inst_emul(&ie);
        assert_eq!(e.exitcode, exitcode::INST_EMUL);
        assert_eq!(e.inst_emul(), ie);
        e.set_smccc(0x8400_0008, &[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(e.smccc(), (0x8400_0008, [1, 2, 3, 4, 5, 6, 7]));
        let h = HypExit { exception_nr: hyp_reason::DABT_NO_SYNDROME, esr_el2: 1, far_el2: 2, hpfar_el2: 3 };
        e.set_hyp(&h);
        assert_eq!(e.hyp(), h);
        e.set_suspended(SuspendHow::Poweroff);
        assert_eq!(e.suspended(), Some(SuspendHow::Poweroff));
    }

    #[test]
    fn ioctl_numbers() {
        assert_eq!(VM_RUN, 0xc060_7601);
        assert_eq!(VM_SET_REGISTER, 0x4010_7614);
        assert_eq!(crate::ioctl::ty(VM_ALLOC_MEMSEG), b'v');
        assert_eq!(VM_IOEVENTFD, 0x4020_7646);
        assert_eq!(VM_IRQFD, 0x4010_7647);
        assert_eq!(VM_MUNMAP_MEMSEG, 0x4010_760e);
    }
}
