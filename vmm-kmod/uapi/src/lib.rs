//! The ioctl ABI of the `vmm` kernel module: device names, ioctl numbers,
//! `#[repr(C)]` argument structs and the rules both sides check.
//!
//! This one `no_std` crate is compiled into the kernel module and into
//! libvmmapi, so the two can never disagree. Numbers use Linux's `_IOC`
//! encoding; names follow FreeBSD's `vmm_dev.h` where they fit.
#![no_std]

pub mod esr;
pub mod ioctl;
pub mod name;
pub mod vm;

pub use name::{validate_name, NameError, VM_MAX_NAMELEN, VM_NAME_BUF};
pub use vm::*;

use core::mem::{offset_of, size_of};

/// The control device: creates and destroys VMs.
pub const VMMCTL_PATH: &str = "/dev/vmmctl";
/// Directory holding one device node per VM (`/dev/vmm/NAME`).
pub const VMM_DEV_DIR: &str = "/dev/vmm";

/// Largest number of CPUs the ABI can describe (bitmaps below).
pub const VMM_MAX_CPUS: usize = 512;
/// Words in a CPU bitmap.
pub const CPU_MASK_WORDS: usize = VMM_MAX_CPUS / 64;

/// Argument of [`VMMCTL_VM_CREATE`]: the new VM's name, NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmmctlVmCreate {
    /// Name, at most [`VM_MAX_NAMELEN`] bytes followed by NUL bytes.
    pub name: [u8; VM_NAME_BUF],
    /// Must be zero: room to grow without a new ioctl number.
    pub reserved: [u32; 16],
}

/// Argument of [`VMMCTL_VM_DESTROY`]: the name of the VM to destroy.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmmctlVmDestroy {
    /// Name, at most [`VM_MAX_NAMELEN`] bytes followed by NUL bytes.
    pub name: [u8; VM_NAME_BUF],
    /// Must be zero.
    pub reserved: [u32; 16],
}

impl VmmctlVmCreate {
    /// The request for `name` (not validated here; the module validates).
    pub fn new(name: &[u8]) -> Self {
        Self { name: name_buf(name), reserved: [0; 16] }
    }
}

impl VmmctlVmDestroy {
    /// The request for `name` (not validated here; the module validates).
    pub fn new(name: &[u8]) -> Self {
        Self { name: name_buf(name), reserved: [0; 16] }
    }
}

/// Copies `name` into a NUL-padded buffer, truncating what cannot fit so the
/// module sees an unterminated (and so rejected) name rather than a shorter one.
fn name_buf(name: &[u8]) -> [u8; VM_NAME_BUF] {
    let mut buf = [0u8; VM_NAME_BUF];
    let n = name.len().min(VM_NAME_BUF);
    buf[..n].copy_from_slice(&name[..n]);
    buf
}

/// Result of [`VMMCTL_GET_HYP_STATUS`]: which CPUs run the module's EL2 code.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmmctlHypStatus {
    /// Number of possible CPUs (`nr_cpu_ids`).
    pub nr_cpus: u32,
    /// Number of VMs that exist.
    pub nr_vms: u32,
    /// CPUs online now.
    pub online: [u64; CPU_MASK_WORDS],
    /// CPUs on which the module believes it holds EL2.
    pub installed: [u64; CPU_MASK_WORDS],
    /// CPUs whose EL2 answered the module's ping just now.
    pub answering: [u64; CPU_MASK_WORDS],
    /// vCPUs that exist, in all VMs.
    pub nr_vcpus: u32,
    /// Reserved, zero.
    pub pad: u32,
    /// Pages of guest memory the module holds, in all VMs.
    pub guest_pages: u64,
    /// Other pages the module holds (stage-2 tables, EL2 state): some
    /// belong to the module itself, so not zero with no VM.
    pub pages: u64,
    /// Kernel objects the module holds (VMs, vCPUs, locks, ...): as above.
    pub objects: u64,
}

impl Default for VmmctlHypStatus {
    fn default() -> Self {
        Self {
            nr_cpus: 0,
            nr_vms: 0,
            online: [0; CPU_MASK_WORDS],
            installed: [0; CPU_MASK_WORDS],
            answering: [0; CPU_MASK_WORDS],
            nr_vcpus: 0,
            pad: 0,
            guest_pages: 0,
            pages: 0,
            objects: 0,
        }
    }
}

/// Tests bit `cpu` of a CPU bitmap.
pub fn cpu_in_mask(mask: &[u64; CPU_MASK_WORDS], cpu: usize) -> bool {
    cpu < VMM_MAX_CPUS && mask[cpu / 64] & (1 << (cpu % 64)) != 0
}

/// Create a VM (`struct vmmctl_vm_create`), on `/dev/vmmctl`.
pub const VMMCTL_VM_CREATE: u32 = ioctl::iowr(b'V', 0, size_of::<VmmctlVmCreate>());
/// Destroy a VM (`struct vmmctl_vm_destroy`), on `/dev/vmmctl`.
pub const VMMCTL_VM_DESTROY: u32 = ioctl::iowr(b'V', 1, size_of::<VmmctlVmDestroy>());
/// Report EL2 ownership per CPU (`struct vmmctl_hyp_status`), on `/dev/vmmctl`.
pub const VMMCTL_GET_HYP_STATUS: u32 = ioctl::ior(b'V', 2, size_of::<VmmctlHypStatus>());

const _: () = assert!(size_of::<VmmctlVmCreate>() == 96);
const _: () = assert!(offset_of!(VmmctlVmCreate, reserved) == 32);
const _: () = assert!(size_of::<VmmctlVmDestroy>() == 96);
const _: () = assert!(size_of::<VmmctlHypStatus>() == 8 + 3 * 8 * CPU_MASK_WORDS + 32);
const _: () = assert!(offset_of!(VmmctlHypStatus, guest_pages) == 8 + 3 * 8 * CPU_MASK_WORDS + 8);
const _: () = assert!(offset_of!(VmmctlHypStatus, online) == 8);
const _: () = assert!(offset_of!(VmmctlHypStatus, answering) == 8 + 2 * 64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_encoding() {
        // Same values as _IOWR('V', 0, 96), _IOWR('V', 1, 96), _IOR('V', 2, 232) in C.
        assert_eq!(VMMCTL_VM_CREATE, 0xc060_5600);
        assert_eq!(VMMCTL_VM_DESTROY, 0xc060_5601);
        assert_eq!(VMMCTL_GET_HYP_STATUS, 0x80e8_5602);
    }

    #[test]
    fn create_request_pads_and_truncates() {
        let r = VmmctlVmCreate::new(b"guest");
        assert_eq!(&r.name[..6], b"guest\0");
        assert!(r.name[5..].iter().all(|&b| b == 0));
        let long = [b'x'; 40];
        let r = VmmctlVmDestroy::new(&long);
        assert!(r.name.iter().all(|&b| b == b'x'), "no terminator: the module must reject it");
        assert_eq!(validate_name(&r.name), Err(NameError::TooLong));
    }

    #[test]
    fn cpu_masks() {
        let mut m = [0u64; CPU_MASK_WORDS];
        m[1] = 1 << 3;
        assert!(cpu_in_mask(&m, 67));
        assert!(!cpu_in_mask(&m, 66));
        assert!(!cpu_in_mask(&m, VMM_MAX_CPUS));
    }
}
