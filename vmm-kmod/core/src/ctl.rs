//! The ioctls of `/dev/vmmctl` (create, destroy, EL2 status) and the VM
//! device's open, release and ioctl.

use crate::errno::{Errno, EINVAL, ENOTTY, ENXIO};
use crate::kernel::{self, KMutex};
use crate::klog;
use crate::registry::Registry;
use crate::vm::{Vm, VmRef};
use core::mem::size_of;
use vmm_uapi::{
    VmmctlHypStatus, VmmctlVmCreate, VmmctlVmDestroy, VMMCTL_GET_HYP_STATUS, VMMCTL_VM_CREATE,
    VMMCTL_VM_DESTROY,
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
    let (slot, len) = reg.vacancy(&req.name)?;
    let name = &req.name[..len];
    let vm = VmRef::new(name)?;
    kernel::vm_node_create(slot, name)?;
    if let Err(e) = reg.insert(slot, name, vm) {
        kernel::vm_node_destroy(slot);
        return Err(e);
    }
    // The module stays loaded while any VM exists.
    kernel::module_get();
    klog!(Info, "created VM {}", Bytes(name));
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
    let mut st = VmmctlHypStatus {
        nr_cpus: crate::hyp::HYP.nr_cpus() as u32,
        nr_vms: vms.lock().len() as u32,
        installed: crate::hyp::HYP.installed_mask(),
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

/// Opens the VM in `slot` (the device's minor): a new reference for the file.
pub fn vm_open(vms: &Vms, slot: usize) -> Result<VmRef, Errno> {
    let reg = vms.lock();
    reg.get(slot).cloned().ok_or(ENXIO)
}

/// Dispatches an ioctl of `/dev/vmm/NAME`. No per-VM ioctl exists yet.
pub fn vm_ioctl(vm: &Vm, _cmd: u32, _buf: &mut [u8]) -> Result<(), Errno> {
    if vm.is_destroyed() {
        return Err(ENXIO);
    }
    Err(ENOTTY)
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
    use crate::kernel::mock::{FAIL_NODE, MODULE_REFS, NODES};

    fn vms(limit: usize) -> Vms {
        let v: Vms = KMutex::new(Registry::new());
        v.lock().set_limit(limit).unwrap();
        v
    }

    fn create(v: &Vms, name: &str) -> Result<(), Errno> {
        let mut req = VmmctlVmCreate::new(name.as_bytes());
        // SAFETY: VmmctlVmCreate is plain data; viewing it as bytes is sound.
        let buf = unsafe {
            core::slice::from_raw_parts_mut(
                &mut req as *mut _ as *mut u8,
                size_of::<VmmctlVmCreate>(),
            )
        };
        ctl_ioctl(v, VMMCTL_VM_CREATE, buf)
    }

    fn destroy_req(v: &Vms, name: &str) -> Result<(), Errno> {
        let mut req = VmmctlVmDestroy::new(name.as_bytes());
        // SAFETY: as above.
        let buf = unsafe {
            core::slice::from_raw_parts_mut(
                &mut req as *mut _ as *mut u8,
                size_of::<VmmctlVmDestroy>(),
            )
        };
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
        assert_eq!(
            NODES.with(|n| n.borrow().clone()),
            vec![(0, b"a".to_vec()), (1, b"b".to_vec())]
        );
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
        assert_eq!(
            vm_create(&v, &req),
            Err(EINVAL),
            "reserved fields must be zero"
        );
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
        let file = vm_open(&v, 0).unwrap();
        assert_eq!(file.refs(), 2);
        destroy_req(&v, "a").unwrap();
        assert!(file.is_destroyed());
        assert_eq!(file.refs(), 1, "the file holds the last reference");
        assert_eq!(vm_ioctl(&file, 0, &mut []), Err(ENXIO));
        assert!(vm_open(&v, 0).is_err(), "the slot is empty now");
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
