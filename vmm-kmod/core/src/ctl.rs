//! The ioctls of `/dev/vmmctl` (create, destroy, EL2 status) and the VM
//! device's open, release and ioctl.

use crate::errno::{Errno, EFAULT, EINVAL, ENOTTY, ENXIO};
use crate::kernel::{self, KMutex};
use crate::klog;
use crate::registry::Registry;
use crate::vcpu::stats::{STAT_COUNT, STAT_NAMES};
use crate::vm::{Vm, VmRef};
use core::mem::size_of;
use vmm_uapi::{
    SuspendHow, VmActivateCpu, VmCpuset, VmIrq, VmMemmap, VmMemseg, VmReg, VmRegister, VmRegisterSet, VmRun,
    VmStatDesc, VmStats, VmSuspend, VmmctlHypStatus, VmmctlVmCreate, VmmctlVmDestroy, VMMCTL_GET_HYP_STATUS,
    VMMCTL_VM_CREATE, VMMCTL_VM_DESTROY, VM_ACTIVATE_CPU, VM_ACTIVE_CPUS, VM_ALLOC_MEMSEG, VM_ASSERT_IRQ,
    VM_ATTACH_VGIC, VM_DEASSERT_IRQ, VM_GET_CPUS, VM_GET_MEMSEG, VM_GET_REGISTER, VM_GET_REGISTER_SET, VM_IOEVENTFD,
    VM_IRQFD, VM_MMAP_GETNEXT, VM_MMAP_MEMSEG, VM_MUNMAP_MEMSEG, VM_REINIT, VM_RUN, VM_SET_REGISTER,
    VM_SET_REGISTER_SET, VM_STATS, VM_STAT_DESC, VM_SUSPEND, VM_SUSPENDED_CPUS,
};

/// The VMs of the module.
pub type Vms = KMutex<Registry<VmRef>>;

/// The module's VMs.
pub static VMS: Vms = KMutex::new(Registry::new());

/// Reads a plain-data ioctl argument from the kernel copy of it.
fn read_arg<T: Copy>(buf: &[u8]) -> Result<T, Errno> {
    if buf.len() != size_of::<T>() {
        return Err(EINVAL);
    }
    // SAFETY: the length matches, read_unaligned needs no alignment, and the
    // ABI structs are plain integers and byte arrays, valid for any bits.
    Ok(unsafe { core::ptr::read_unaligned(buf.as_ptr() as *const T) })
}

/// Writes a plain-data result into the kernel buffer copied out afterwards.
fn write_arg<T: Copy>(buf: &mut [u8], v: &T) -> Result<(), Errno> {
    if buf.len() != size_of::<T>() {
        return Err(EINVAL);
    }
    // SAFETY: the length matches and write_unaligned needs no alignment.
    unsafe { core::ptr::write_unaligned(buf.as_mut_ptr() as *mut T, *v) };
    Ok(())
}

/// `VMMCTL_VM_CREATE`: a new VM and its device node `/dev/vmm/NAME`.
pub fn vm_create(vms: &Vms, req: &VmmctlVmCreate) -> Result<(), Errno> {
    if req.reserved.iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    let mut reg = vms.lock();
    let at = reg.vacancy(&req.name)?;
    let (slot, name) = (at.slot, &req.name[..at.len]);
    let vm = VmRef::new(name)?;
    kernel::vm_node_create(slot, at.minor, name)?;
    if let Err(e) = reg.insert(at, name, vm) {
        kernel::vm_node_destroy(slot);
        return Err(e);
    }
    // The module stays loaded while any VM exists.
    kernel::module_get();
    if let Some(vm) = reg.get(slot) {
        klog!(Info, "created VM {} (VMID {}, {}-bit guest physical addresses)", Bytes(name), vm.vmid(), vm.ipa_bits());
    }
    Ok(())
}

/// `VMMCTL_VM_DESTROY`: removes the VM's name and node at once; its memory
/// goes when the last open file of it is closed.
pub fn vm_destroy(vms: &Vms, req: &VmmctlVmDestroy) -> Result<(), Errno> {
    if req.reserved.iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    let mut reg = vms.lock();
    let (slot, vm) = reg.remove(&req.name)?;
    destroy(slot, vm);
    Ok(())
}

fn destroy(slot: usize, vm: VmRef) {
    vm.mark_destroyed();
    kernel::vm_node_destroy(slot);
    klog!(Info, "destroyed VM {}", Bytes(vm.name()));
    drop(vm);
    kernel::module_put();
}

/// Destroys every VM (module unload after a forced `rmmod -f`).
pub fn destroy_all(vms: &Vms) {
    let mut reg = vms.lock();
    let slots: [Option<usize>; crate::registry::MAX_VMS_LIMIT] = {
        let mut s = [None; crate::registry::MAX_VMS_LIMIT];
        for (i, slot) in reg.slots().enumerate() {
            s[i] = Some(slot);
        }
        s
    };
    for slot in slots.into_iter().flatten() {
        if let Some(vm) = reg.remove_slot(slot) {
            destroy(slot, vm);
        }
    }
}

/// `VMMCTL_GET_HYP_STATUS`.
pub fn hyp_status(vms: &Vms) -> VmmctlHypStatus {
    let (objects, pages, guest_pages) = kernel::counters();
    let mut st = VmmctlHypStatus {
        nr_cpus: crate::hyp::HYP.nr_cpus() as u32,
        nr_vms: vms.lock().len() as u32,
        installed: crate::hyp::HYP.installed_mask(),
        nr_vcpus: crate::vcpu::LIVE.load(core::sync::atomic::Ordering::Relaxed),
        guest_pages,
        pages,
        objects,
        ..Default::default()
    };
    kernel::online_cpus(&mut st.online);
    kernel::ping_cpus(&mut st.answering);
    st
}

/// Dispatches an ioctl of `/dev/vmmctl`; `buf` is the kernel copy of the
/// argument (of the size the command encodes, copied back if it reads).
pub fn ctl_ioctl(vms: &Vms, cmd: u32, buf: &mut [u8]) -> Result<(), Errno> {
    match cmd {
        VMMCTL_VM_CREATE => vm_create(vms, &read_arg(buf)?),
        VMMCTL_VM_DESTROY => vm_destroy(vms, &read_arg(buf)?),
        VMMCTL_GET_HYP_STATUS => write_arg(buf, &hyp_status(vms)),
        _ => Err(ENOTTY),
    }
}

/// Opens the VM whose device node has minor number `minor`: a new reference
/// for the file. A node of a VM destroyed since its path was looked up finds
/// nothing (`ENXIO`), never the VM that took its slot.
pub fn vm_open(vms: &Vms, minor: u32) -> Result<VmRef, Errno> {
    let reg = vms.lock();
    reg.by_minor(minor).cloned().ok_or(ENXIO)
}

/// Dispatches an ioctl of `/dev/vmm/NAME` made through the open file
/// `owner` (a token: what it registers goes when that file is closed);
/// `buf` is the kernel copy of the argument. Every field is checked; user
/// pointers inside arguments are only followed through the kernel's
/// user-copy functions.
pub fn vm_ioctl(vm: &Vm, owner: usize, cmd: u32, buf: &mut [u8]) -> Result<(), Errno> {
    if vm.is_destroyed() {
        return Err(ENXIO);
    }
    match cmd {
        VM_RUN => {
            let mut r: VmRun = read_arg(buf)?;
            crate::vcpu::run::run(vm, vm.vcpu(r.cpuid)?, &mut r)?;
            write_arg(buf, &r)
        }
        VM_REINIT => vm.reinit(),
        VM_ATTACH_VGIC => vm.attach_vgic(&read_arg(buf)?),
        VM_ASSERT_IRQ => vm.set_irq_line(read_arg::<VmIrq>(buf)?.irq, true),
        VM_DEASSERT_IRQ => vm.set_irq_line(read_arg::<VmIrq>(buf)?.irq, false),
        VM_IOEVENTFD => vm.ioeventfd(&read_arg(buf)?, owner),
        VM_IRQFD => vm.irqfd(&read_arg(buf)?, owner),
        VM_SUSPEND => {
            let s: VmSuspend = read_arg(buf)?;
            match SuspendHow::from_u32(s.how) {
                Some(how @ (SuspendHow::Reset | SuspendHow::Poweroff | SuspendHow::Halt)) => {
                    vm.suspend(how);
                    Ok(())
                }
                _ => Err(EINVAL),
            }
        }
        VM_ALLOC_MEMSEG => vm.memory().alloc_memseg(&read_arg(buf)?, Vm::host_limit()),
        VM_GET_MEMSEG => {
            let mut seg: VmMemseg = read_arg(buf)?;
            vm.memory().get_memseg(&mut seg)?;
            write_arg(buf, &seg)
        }
        VM_MMAP_MEMSEG => vm.memory().mmap_memseg(&read_arg(buf)?),
        VM_MUNMAP_MEMSEG => vm.munmap_memseg(&read_arg(buf)?),
        VM_MMAP_GETNEXT => {
            let m: VmMemmap = read_arg(buf)?;
            let next = vm.memory().mmap_getnext(m.gpa)?;
            write_arg(buf, &next)
        }
        VM_SET_REGISTER => {
            let r: VmRegister = read_arg(buf)?;
            vm.vcpu(r.cpuid)?.try_lock()?.set(VmReg(r.regnum), r.regval)
        }
        VM_GET_REGISTER => {
            let mut r: VmRegister = read_arg(buf)?;
            r.regval = vm.vcpu(r.cpuid)?.try_lock()?.get(VmReg(r.regnum))?;
            write_arg(buf, &r)
        }
        VM_SET_REGISTER_SET | VM_GET_REGISTER_SET => register_set(vm, cmd == VM_SET_REGISTER_SET, &read_arg(buf)?),
        VM_ACTIVATE_CPU => {
            let a: VmActivateCpu = read_arg(buf)?;
            vm.activate(a.vcpuid)
        }
        VM_GET_CPUS => {
            let mut c: VmCpuset = read_arg(buf)?;
            c.mask = match c.which {
                VM_ACTIVE_CPUS => vm.active_mask(),
                VM_SUSPENDED_CPUS => 0,
                _ => return Err(EINVAL),
            };
            write_arg(buf, &c)
        }
        VM_STATS => {
            let mut st: VmStats = read_arg(buf)?;
            let vcpu = vm.vcpu(st.cpuid)?;
            let first = usize::try_from(st.index).map_err(|_| EINVAL)?.min(STAT_COUNT);
            let n = (STAT_COUNT - first).min(st.statbuf.len());
            for (i, v) in st.statbuf[..n].iter_mut().enumerate() {
                *v = vcpu.stats.get(first + i);
            }
            st.num_entries = n as i32;
            write_arg(buf, &st)
        }
        VM_STAT_DESC => {
            let mut d: VmStatDesc = read_arg(buf)?;
            let name = STAT_NAMES.get(usize::try_from(d.index).map_err(|_| EINVAL)?).ok_or(EINVAL)?;
            d.desc = [0; 128];
            d.desc[..name.len()].copy_from_slice(name.as_bytes());
            write_arg(buf, &d)
        }
        _ => Err(ENOTTY),
    }
}

/// `VM_SET_REGISTER_SET` / `VM_GET_REGISTER_SET`: the arrays are in user memory.
fn register_set(vm: &Vm, set: bool, rs: &VmRegisterSet) -> Result<(), Errno> {
    const MAX: usize = VmReg::COUNT;
    let n = rs.count as usize;
    if n > MAX {
        return Err(EINVAL);
    }
    let mut nums = [0i32; MAX];
    let mut vals = [0u64; MAX];
    // SAFETY: i32 arrays have no invalid bit patterns; viewing them as bytes is sound.
    let num_bytes = unsafe { core::slice::from_raw_parts_mut(nums.as_mut_ptr() as *mut u8, n * 4) };
    if !crate::kernel::copy_from_user(num_bytes, rs.regnums) {
        return Err(EFAULT);
    }
    // SAFETY: as above, for u64.
    let val_bytes = unsafe { core::slice::from_raw_parts_mut(vals.as_mut_ptr() as *mut u8, n * 8) };
    if set && !crate::kernel::copy_from_user(val_bytes, rs.regvals) {
        return Err(EFAULT);
    }
    let mut g = vm.vcpu(rs.cpuid)?.try_lock()?;
    for i in 0..n {
        let r = VmReg(nums[i]);
        if set {
            g.set(r, vals[i])?;
        } else {
            vals[i] = g.get(r)?;
        }
    }
    drop(g);
    if !set {
        // SAFETY: as above.
        let out = unsafe { core::slice::from_raw_parts(vals.as_ptr() as *const u8, n * 8) };
        if !crate::kernel::copy_to_user(rs.regvals, out) {
            return Err(EFAULT);
        }
    }
    Ok(())
}

/// Userspace `mmap` of the VM's device: offset = guest physical address.
/// The whole range must be guest memory, shared (never copy-on-write).
pub fn vm_mmap_check(vm: &Vm, offset: u64, len: u64, shared: bool) -> Result<(), Errno> {
    if vm.is_destroyed() {
        return Err(ENXIO);
    }
    if !shared || len == 0 || !vm.memory().is_ram_range(offset, len) {
        return Err(EINVAL);
    }
    Ok(())
}

/// Formats a name's bytes (printable ASCII by the name rules) for the log.
struct Bytes<'a>(&'a [u8]);

impl core::fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0 {
            core::fmt::Write::write_char(f, b as char)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno::{EEXIST, ENOENT, ENOSPC};
    use crate::kernel::mock::{FAIL_NODE, MINORS, MODULE_REFS, NODES};

    fn vms(limit: usize) -> Vms {
        let v: Vms = KMutex::new(Registry::new());
        v.lock().set_limit(limit).unwrap();
        v
    }

    fn create(v: &Vms, name: &str) -> Result<(), Errno> {
        let mut req = VmmctlVmCreate::new(name.as_bytes());
        // SAFETY: VmmctlVmCreate is plain data; viewing it as bytes is sound.
        let buf =
            unsafe { core::slice::from_raw_parts_mut(&mut req as *mut _ as *mut u8, size_of::<VmmctlVmCreate>()) };
        ctl_ioctl(v, VMMCTL_VM_CREATE, buf)
    }

    fn destroy_req(v: &Vms, name: &str) -> Result<(), Errno> {
        let mut req = VmmctlVmDestroy::new(name.as_bytes());
        // SAFETY: as above.
        let buf =
            unsafe { core::slice::from_raw_parts_mut(&mut req as *mut _ as *mut u8, size_of::<VmmctlVmDestroy>()) };
        ctl_ioctl(v, VMMCTL_VM_DESTROY, buf)
    }

    fn refs() -> i64 {
        MODULE_REFS.with(|r| *r.borrow())
    }

    #[test]
    fn create_and_destroy_manage_nodes_and_module_refs() {
        let v = vms(8);
        create(&v, "a").unwrap();
        create(&v, "b").unwrap();
        assert_eq!(NODES.with(|n| n.borrow().clone()), vec![(0, b"a".to_vec()), (1, b"b".to_vec())]);
        assert_eq!(refs(), 2);
        assert_eq!(create(&v, "a"), Err(EEXIST));
        destroy_req(&v, "a").unwrap();
        assert_eq!(destroy_req(&v, "a"), Err(ENOENT));
        assert_eq!(NODES.with(|n| n.borrow().len()), 1);
        assert_eq!(refs(), 1);
        destroy_all(&v);
        assert_eq!(refs(), 0);
        assert!(NODES.with(|n| n.borrow().is_empty()));
    }

    #[test]
    fn bad_requests_get_errnos() {
        let v = vms(1);
        assert_eq!(create(&v, ""), Err(EINVAL));
        assert_eq!(create(&v, "a/b"), Err(EINVAL));
        assert_eq!(create(&v, &"x".repeat(32)), Err(EINVAL));
        create(&v, "only").unwrap();
        assert_eq!(create(&v, "two"), Err(ENOSPC));
        let mut req = VmmctlVmCreate::new(b"r");
        req.reserved[3] = 1;
        assert_eq!(vm_create(&v, &req), Err(EINVAL), "reserved fields must be zero");
        assert_eq!(ctl_ioctl(&v, VMMCTL_VM_CREATE, &mut [0u8; 10]), Err(EINVAL));
        assert_eq!(ctl_ioctl(&v, 0x1234, &mut []), Err(ENOTTY));
        destroy_all(&v);
    }

    #[test]
    fn a_failed_node_leaves_nothing_behind() {
        let v = vms(4);
        FAIL_NODE.with(|f| *f.borrow_mut() = Some(crate::errno::ENOMEM));
        assert_eq!(create(&v, "a"), Err(crate::errno::ENOMEM));
        assert_eq!(v.lock().len(), 0);
        assert_eq!(refs(), 0);
        create(&v, "a").unwrap();
        destroy_all(&v);
    }

    #[test]
    fn open_files_outlive_destroy() {
        let v = vms(4);
        create(&v, "a").unwrap();
        let minor = MINORS.with(|m| m.borrow()[0].1);
        let file = vm_open(&v, minor).unwrap();
        assert_eq!(file.refs(), 2);
        destroy_req(&v, "a").unwrap();
        assert!(file.is_destroyed());
        assert_eq!(file.refs(), 1, "the file holds the last reference");
        assert_eq!(vm_ioctl(&file, 1, VM_RUN, &mut []), Err(ENXIO));
        assert!(vm_open(&v, minor).is_err(), "the VM is gone");
        let raw = file.into_raw();
        // SAFETY: raw came from into_raw just above.
        drop(unsafe { VmRef::from_raw(raw) });
    }

    #[test]
    fn hyp_status_reports_vms() {
        let v = vms(4);
        create(&v, "a").unwrap();
        let mut buf = [0u8; size_of::<VmmctlHypStatus>()];
        ctl_ioctl(&v, VMMCTL_GET_HYP_STATUS, &mut buf).unwrap();
        let st: VmmctlHypStatus = read_arg(&buf).unwrap();
        assert_eq!(st.nr_vms, 1);
        assert_eq!(st.online[0], 0b11);
        destroy_all(&v);
    }
}

#[cfg(test)]
mod vm_tests {
    use super::*;
    use crate::errno::EBUSY;
    use vmm_uapi::{VM_MAX_SUFFIXLEN, VM_PROT_ALL, VM_SYSMEM, VM_SYSMEM_BASE};

    fn bytes<T>(v: &mut T) -> &mut [u8] {
        // SAFETY: the ABI structs are plain data; viewing one as bytes is sound.
        unsafe { core::slice::from_raw_parts_mut(v as *mut T as *mut u8, size_of::<T>()) }
    }

    #[test]
    fn memory_and_registers_through_ioctls() {
        let vm = VmRef::new(b"t").unwrap();
        let mut seg = VmMemseg { segid: VM_SYSMEM, pad: 0, len: 16 << 20, name: [0; VM_MAX_SUFFIXLEN] };
        vm_ioctl(&vm, 1, VM_ALLOC_MEMSEG, bytes(&mut seg)).unwrap();
        let mut m = VmMemmap {
            gpa: VM_SYSMEM_BASE,
            segid: VM_SYSMEM,
            pad: 0,
            segoff: 0,
            len: 16 << 20,
            prot: VM_PROT_ALL,
            flags: 0,
        };
        vm_ioctl(&vm, 1, VM_MMAP_MEMSEG, bytes(&mut m)).unwrap();
        let mut q = VmMemseg { len: 0, ..seg };
        vm_ioctl(&vm, 1, VM_GET_MEMSEG, bytes(&mut q)).unwrap();
        assert_eq!(q.len, 16 << 20);
        assert!(vm_mmap_check(&vm, VM_SYSMEM_BASE, 16 << 20, true).is_ok());
        assert_eq!(vm_mmap_check(&vm, VM_SYSMEM_BASE, 16 << 20, false), Err(EINVAL), "private mappings");
        assert_eq!(vm_mmap_check(&vm, 0, 4096, true), Err(EINVAL));

        let mut a = VmActivateCpu { vcpuid: 0, pad: 0 };
        vm_ioctl(&vm, 1, VM_ACTIVATE_CPU, bytes(&mut a)).unwrap();
        let mut r = VmRegister { cpuid: 0, regnum: VmReg::PC.0, regval: VM_SYSMEM_BASE };
        vm_ioctl(&vm, 1, VM_SET_REGISTER, bytes(&mut r)).unwrap();
        let nums = [VmReg::PC.0, VmReg::CPSR.0];
        let mut vals = [0u64; 2];
        let mut rs =
            VmRegisterSet { cpuid: 0, count: 2, regnums: nums.as_ptr() as u64, regvals: vals.as_mut_ptr() as u64 };
        vm_ioctl(&vm, 1, VM_GET_REGISTER_SET, bytes(&mut rs)).unwrap();
        assert_eq!(vals, [VM_SYSMEM_BASE, 0x3c5]);
        let mut bad = VmRegister { cpuid: 0, regnum: VmReg::CPSR.0, regval: 0x3c9 };
        assert_eq!(vm_ioctl(&vm, 1, VM_SET_REGISTER, bytes(&mut bad)), Err(EINVAL), "never EL2");
        let mut bad = VmRegister { cpuid: 99, ..r };
        assert_eq!(vm_ioctl(&vm, 1, VM_SET_REGISTER, bytes(&mut bad)), Err(EINVAL));
        let mut rs = VmRegisterSet { count: 1000, ..rs };
        assert_eq!(vm_ioctl(&vm, 1, VM_GET_REGISTER_SET, bytes(&mut rs)), Err(EINVAL));
        let _held = vm.vcpu(0).unwrap().try_lock().unwrap();
        assert_eq!(vm_ioctl(&vm, 1, VM_GET_REGISTER, bytes(&mut r)), Err(EBUSY), "a running vCPU");
    }

    #[test]
    fn suspend_and_stats() {
        let vm = VmRef::new(b"s").unwrap();
        let mut s = VmSuspend { how: SuspendHow::Destroy as u32 };
        assert_eq!(vm_ioctl(&vm, 1, VM_SUSPEND, bytes(&mut s)), Err(EINVAL), "only the kernel destroys");
        let mut s = VmSuspend { how: SuspendHow::Poweroff as u32 };
        vm_ioctl(&vm, 1, VM_SUSPEND, bytes(&mut s)).unwrap();
        assert_eq!(vm.suspended(), Some(SuspendHow::Poweroff));
        vm.activate(0).unwrap();
        let held = vm.vcpu(0).unwrap().try_lock().unwrap();
        assert_eq!(vm_ioctl(&vm, 1, VM_REINIT, &mut []), Err(EBUSY), "not while a vCPU runs");
        drop(held);
        vm_ioctl(&vm, 1, VM_REINIT, &mut []).unwrap();
        assert_eq!(vm.suspended(), None, "ready to boot again");
        assert_eq!(vm.active_mask(), 0);
        let mut st = VmStats::default();
        vm_ioctl(&vm, 1, VM_STATS, bytes(&mut st)).unwrap();
        assert_eq!(st.num_entries as usize, STAT_COUNT);
        let mut d = VmStatDesc { index: 0, ..Default::default() };
        vm_ioctl(&vm, 1, VM_STAT_DESC, bytes(&mut d)).unwrap();
        assert!(d.desc.starts_with(b"total exits\0"));
        let mut d = VmStatDesc { index: STAT_COUNT as i32, ..Default::default() };
        assert_eq!(vm_ioctl(&vm, 1, VM_STAT_DESC, bytes(&mut d)), Err(EINVAL));
        let mut c = VmCpuset { which: 7, ..Default::default() };
        assert_eq!(vm_ioctl(&vm, 1, VM_GET_CPUS, bytes(&mut c)), Err(EINVAL));
    }
}
