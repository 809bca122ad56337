//! libvmmapi: the userspace API of the `vmm` kernel module.
//!
//! VMs live in the kernel, not in a process: [`Vm::create`] makes one
//! (`/dev/vmm/NAME` appears), any later process [`Vm::open`]s it by name, and
//! it lasts until [`Vm::destroy`]. The same calls exist for C programs in
//! `include/vmmapi.h` (`vm_create`, `vm_open`, `vm_close`, `vm_destroy`, ...),
//! with bhyve's names and signatures.

pub mod boot;
pub mod capi;
#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod memory;
pub mod size;
mod sys;
mod vcpu;

pub use error::{Error, Result};
pub use memory::{GuestMemory, GuestRegion};
pub use nix::errno::Errno;
pub use vcpu::{decode_exit, exception_entry, Capability, Exit, Vcpu, VmExitInfo};
pub use vm_memory;
pub use vmm_uapi::{
    validate_name, HypExit, InstEmul, NameError, SuspendHow, VmReg, VmmctlHypStatus as HypStatus, VM_BOOTROM,
    VM_BOOTVARS, VM_MAXCPU, VM_MAX_NAMELEN, VM_PROT_ALL, VM_PROT_EXECUTE, VM_PROT_READ, VM_PROT_WRITE, VM_SYSMEM,
    VM_SYSMEM_BASE,
};

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use vmm_uapi::{
    VmCpuset, VmStatDesc, VmStats, VmSuspend, VmmctlVmCreate, VmmctlVmDestroy, MAX_VM_STATS, VMMCTL_GET_HYP_STATUS,
    VMMCTL_PATH, VMM_DEV_DIR, VM_ACTIVE_CPUS, VM_GET_CPUS, VM_STATS, VM_STAT_DESC, VM_SUSPEND,
};

/// An open VM: a handle on `/dev/vmm/NAME`.
#[derive(Debug)]
pub struct Vm {
    name: String,
    file: File,
}

fn open_ctl() -> Result<File> {
    OpenOptions::new().read(true).write(true).open(VMMCTL_PATH).map_err(|e| Error::Control { errno: sys::errno_of(&e) })
}

/// Path of a VM's device node.
pub fn vm_path(name: &str) -> PathBuf {
    PathBuf::from(VMM_DEV_DIR).join(name)
}

impl Vm {
    /// Creates the VM `name` in the kernel. It exists until destroyed.
    pub fn create(name: &str) -> Result<()> {
        let ctl = open_ctl()?;
        let mut req = VmmctlVmCreate::new(name.as_bytes());
        sys::ioctl(&ctl, vmm_uapi::VMMCTL_VM_CREATE, &mut req)
            .map_err(|errno| Error::Create { name: name.to_string(), errno })
    }

    /// Opens the existing VM `name`.
    pub fn open(name: &str) -> Result<Vm> {
        // A name the module could never have created is ENOENT here, not a
        // surprising path ("../x") under /dev.
        if validate_name(name.as_bytes()).is_err() || name.contains('\0') {
            return Err(Error::Open { name: name.to_string(), errno: Errno::ENOENT });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(vm_path(name))
            .map_err(|e| Error::Open { name: name.to_string(), errno: sys::errno_of(&e) })?;
        Ok(Vm { name: name.to_string(), file })
    }

    /// Destroys the VM `name`: its node goes at once, its memory when the
    /// last handle on it is closed.
    pub fn destroy_name(name: &str) -> Result<()> {
        let ctl = open_ctl()?;
        let mut req = VmmctlVmDestroy::new(name.as_bytes());
        sys::ioctl(&ctl, vmm_uapi::VMMCTL_VM_DESTROY, &mut req)
            .map_err(|errno| Error::Destroy { name: name.to_string(), errno })
    }

    /// Destroys this VM and closes the handle.
    pub fn destroy(self) -> Result<()> {
        Vm::destroy_name(&self.name)
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file descriptor of `/dev/vmm/NAME`.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    fn err(&self, op: &'static str, errno: Errno) -> Error {
        Error::Vm { name: self.name.clone(), op, errno }
    }

    /// vCPU `id` (0 .. [`VM_MAXCPU`]); the kernel checks the number on use.
    pub fn vcpu(&self, id: i32) -> Vcpu<'_> {
        Vcpu::new(self, id)
    }

    /// Makes the VM ready for a new boot (FreeBSD's `vm_reinit`): no longer
    /// suspended, no vCPU active, memory kept. Fails with `EBUSY` while a
    /// vCPU runs.
    pub fn reinit(&self) -> Result<()> {
        sys::ioctl_none(&self.file, vmm_uapi::VM_REINIT).map_err(|e| self.err("reinitialize", e))
    }

    /// Suspends the VM: every vCPU's `run` returns `Exit::Suspended(how)`.
    pub fn suspend(&self, how: SuspendHow) -> Result<()> {
        let mut s = VmSuspend { how: how as u32 };
        sys::ioctl(&self.file, VM_SUSPEND, &mut s).map_err(|e| self.err("suspend", e))
    }

    /// Gives the VM a GICv3 at QEMU `virt`'s addresses with a redistributor
    /// for each of `nr_vcpus` vCPUs (`VM_ATTACH_VGIC`). `EEXIST` if it has one.
    pub fn attach_vgic(&self, nr_vcpus: u32) -> Result<()> {
        self.attach_vgic_at(&vmm_uapi::VmVgicDescr {
            dist_start: vmm_uapi::VGIC_DIST_BASE,
            dist_size: vmm_uapi::VGIC_DIST_SIZE,
            redist_start: vmm_uapi::VGIC_REDIST_BASE,
            redist_size: vmm_uapi::VGIC_REDIST_SIZE * nr_vcpus as u64,
        })
    }

    /// Gives the VM a GICv3 with its frames where `d` says (the kernel
    /// checks alignment, sizes and overlaps: `EINVAL`; `EEXIST` if it has one).
    pub fn attach_vgic_at(&self, d: &vmm_uapi::VmVgicDescr) -> Result<()> {
        let mut d = *d;
        sys::ioctl(&self.file, vmm_uapi::VM_ATTACH_VGIC, &mut d).map_err(|e| self.err("attach a GICv3", e))
    }

    /// Raises (`level`) or lowers the line of SPI `intid` (32 and up).
    pub fn set_irq_line(&self, intid: u32, level: bool) -> Result<()> {
        let mut irq = vmm_uapi::VmIrq { irq: intid };
        let cmd = if level { vmm_uapi::VM_ASSERT_IRQ } else { vmm_uapi::VM_DEASSERT_IRQ };
        sys::ioctl(&self.file, cmd, &mut irq).map_err(|e| self.err("set an interrupt line", e))
    }

    /// `VM_IOEVENTFD` with a descriptor number (the C API's way in; the
    /// kernel checks that it is an open eventfd).
    pub(crate) fn ioeventfd(&self, gpa: u64, len: u32, datamatch: Option<u64>, fd: RawFd, flags: u32) -> Result<()> {
        let mut r = vmm_uapi::VmIoeventfd {
            gpa,
            datamatch: datamatch.unwrap_or(0),
            len,
            fd,
            flags: flags | if datamatch.is_some() { vmm_uapi::VM_IOEVENTFD_F_DATAMATCH } else { 0 },
            pad: 0,
        };
        let op =
            if flags & vmm_uapi::VM_IOEVENTFD_F_DEASSIGN != 0 { "remove an ioeventfd" } else { "add an ioeventfd" };
        sys::ioctl(&self.file, vmm_uapi::VM_IOEVENTFD, &mut r).map_err(|e| self.err(op, e))
    }

    /// Completes guest writes of `len` bytes (1, 2, 4 or 8; 0: any size) to
    /// `gpa`, of the value `datamatch` if given, in the kernel by
    /// signalling the eventfd `fd` (`VM_IOEVENTFD`): `run` does not return
    /// for them. `EINVAL` for a bad size or an address in RAM or the vGIC,
    /// `EEXIST` if a registration at `gpa` could take the same write,
    /// `EBADF`/`EINVAL` if `fd` is not an eventfd, `ENOSPC` past 256.
    pub fn add_ioeventfd(&self, gpa: u64, len: u32, datamatch: Option<u64>, fd: BorrowedFd) -> Result<()> {
        self.ioeventfd(gpa, len, datamatch, fd.as_raw_fd(), 0)
    }

    /// Removes what [`Vm::add_ioeventfd`] added with the same arguments
    /// (`ENOENT` if nothing was).
    pub fn remove_ioeventfd(&self, gpa: u64, len: u32, datamatch: Option<u64>, fd: BorrowedFd) -> Result<()> {
        self.ioeventfd(gpa, len, datamatch, fd.as_raw_fd(), vmm_uapi::VM_IOEVENTFD_F_DEASSIGN)
    }

    /// Makes each write to the eventfd `fd` raise SPI `irq` (`VM_IRQFD`):
    /// as an edge, or with `resample` as a level the kernel lowers when the
    /// guest has completed the interrupt, then signalling `resample`.
    /// `EINVAL` for an INTID that is not an SPI, `EEXIST` if `fd` already
    /// raises an interrupt of this VM, `EBADF`/`EINVAL` for descriptors that
    /// are not eventfds, `ENOSPC` past 256.
    pub fn add_irqfd(&self, irq: u32, fd: BorrowedFd, resample: Option<BorrowedFd>) -> Result<()> {
        self.irqfd_add(irq, fd.as_raw_fd(), resample.map(|f| f.as_raw_fd()))
    }

    /// [`Vm::add_irqfd`] with descriptor numbers (the C API's way in).
    pub(crate) fn irqfd_add(&self, irq: u32, fd: RawFd, resample: Option<RawFd>) -> Result<()> {
        let mut r = vmm_uapi::VmIrqfd {
            fd,
            irq,
            flags: if resample.is_some() { vmm_uapi::VM_IRQFD_F_RESAMPLE } else { 0 },
            resamplefd: resample.unwrap_or(-1),
        };
        sys::ioctl(&self.file, vmm_uapi::VM_IRQFD, &mut r).map_err(|e| self.err("add an irqfd", e))
    }

    /// Removes the irqfd of `fd` for SPI `irq` (`ENOENT` if there is none).
    pub fn remove_irqfd(&self, irq: u32, fd: BorrowedFd) -> Result<()> {
        self.irqfd_remove(irq, fd.as_raw_fd())
    }

    /// [`Vm::remove_irqfd`] with a descriptor number.
    pub(crate) fn irqfd_remove(&self, irq: u32, fd: RawFd) -> Result<()> {
        let mut r = vmm_uapi::VmIrqfd { fd, irq, flags: vmm_uapi::VM_IRQFD_F_DEASSIGN, resamplefd: -1 };
        sys::ioctl(&self.file, vmm_uapi::VM_IRQFD, &mut r).map_err(|e| self.err("remove an irqfd", e))
    }

    /// The activated vCPUs, as a bit mask.
    pub fn active_cpus(&self) -> Result<u64> {
        self.cpus(VM_ACTIVE_CPUS, "get active cpus")
    }

    /// The suspended vCPUs, as a bit mask (`VM_SUSPENDED_CPUS`): always
    /// empty, as the kernel has no per-vCPU suspend.
    pub fn suspended_cpus(&self) -> Result<u64> {
        self.cpus(vmm_uapi::VM_SUSPENDED_CPUS, "get suspended cpus")
    }

    fn cpus(&self, which: i32, op: &'static str) -> Result<u64> {
        let mut c = VmCpuset { which, ..Default::default() };
        sys::ioctl(&self.file, VM_GET_CPUS, &mut c).map_err(|e| self.err(op, e))?;
        Ok(c.mask)
    }

    /// vCPU `cpu`'s counters with their names (`VM_STATS`, `VM_STAT_DESC`).
    pub fn stats(&self, cpu: i32) -> Result<Vec<(String, u64)>> {
        let values = self.stat_values(cpu)?;
        let mut out = Vec::with_capacity(values.len());
        for (i, value) in values.into_iter().enumerate() {
            out.push((self.stat_desc(i as i32)?, value));
        }
        Ok(out)
    }

    /// vCPU `cpu`'s counters, in index order (`VM_STATS`, as many calls as
    /// it takes: each returns at most [`MAX_VM_STATS`]).
    pub fn stat_values(&self, cpu: i32) -> Result<Vec<u64>> {
        let mut out = vec![];
        loop {
            let mut st = VmStats { cpuid: cpu, index: out.len() as i32, ..Default::default() };
            sys::ioctl(&self.file, VM_STATS, &mut st).map_err(|e| self.err("get stats", e))?;
            let n = (st.num_entries.max(0) as usize).min(MAX_VM_STATS);
            out.extend_from_slice(&st.statbuf[..n]);
            if n < MAX_VM_STATS {
                return Ok(out);
            }
        }
    }

    /// The name of counter `index` (`VM_STAT_DESC`; `EINVAL` past the last).
    pub fn stat_desc(&self, index: i32) -> Result<String> {
        let mut d = VmStatDesc { index, ..Default::default() };
        sys::ioctl(&self.file, VM_STAT_DESC, &mut d).map_err(|e| self.err("get stat description", e))?;
        let len = d.desc.iter().position(|&b| b == 0).unwrap_or(d.desc.len());
        Ok(String::from_utf8_lossy(&d.desc[..len]).into_owned())
    }
}

/// Names of the VMs that exist, sorted.
pub fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(VMM_DEV_DIR) {
        Ok(d) => d,
        // No VM yet (or no module): the directory does not exist.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            open_ctl()?;
            return Ok(vec![]);
        }
        Err(e) => return Err(Error::List { errno: sys::errno_of(&e) }),
    };
    let mut names: Vec<String> = dir.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    Ok(names)
}

/// Which CPUs the module holds EL2 on, as the module sees it now.
pub fn hyp_status() -> Result<HypStatus> {
    let ctl = open_ctl()?;
    let mut st = HypStatus::default();
    sys::ioctl(&ctl, VMMCTL_GET_HYP_STATUS, &mut st).map_err(|errno| Error::HypStatus { errno })?;
    Ok(st)
}
