//! The KVM side: a VM with its guest memory, its vCPUs (vCPU 0 running,
//! the others off until the guest's PSCI `CPU_ON`, which KVM answers
//! itself), and KVM's in-kernel GICv3 where bhyve's vGIC is. Timers and
//! PSCI are KVM's own, in the kernel, as the vmm module's are.

use bhyve::devices::irq::Interrupt;
use bhyve::layout::{GIC_DIST_BASE, GIC_REDIST_BASE, RAM_BASE};
use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3, kvm_regs,
    kvm_userspace_memory_region, kvm_vcpu_init, user_pt_regs, KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_TYPE_SPI,
    KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR,
    KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_REG_ARM64, KVM_REG_ARM_CORE, KVM_REG_SIZE_U64,
    KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
};
use kvm_ioctls::{DeviceFd, Kvm, VcpuFd, VmFd};
use std::mem::offset_of;
use std::sync::Arc;
use vmmapi::vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// INTIDs of the vGIC: 32 private ones, then 128 SPIs, as bhyve's vGIC has.
const NR_IRQS: u32 = 32 + 128;

/// A KVM VM ready to run: memory, vCPUs, GIC.
pub struct Machine {
    /// The VM, shared with the devices' interrupt lines.
    pub vm: Arc<VmFd>,
    /// Guest RAM at [`RAM_BASE`]: anonymous memory of this process.
    pub mem: GuestMemoryMmap,
    /// vCPU n at index n.
    pub vcpus: Vec<VcpuFd>,
    /// Kept open: the GIC lives as long as its device descriptor or the VM.
    _gic: DeviceFd,
}

fn fail(what: &str) -> impl Fn(kvm_ioctls::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A VM with `ram_size` bytes of RAM and `vcpus` vCPUs.
pub fn create(ram_size: u64, vcpus: u32) -> Result<Machine, String> {
    let kvm = Kvm::new().map_err(fail("/dev/kvm"))?;
    let vm = kvm.create_vm().map_err(fail("KVM_CREATE_VM"))?;
    let size = usize::try_from(ram_size).map_err(|_| format!("{ram_size} bytes of memory is too much here"))?;
    // Anonymous memory, private to this process (MAP_NORESERVE): what a
    // KVM VMM gives its guest, transparent huge pages included where the
    // host kernel uses them.
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM_BASE), size)])
        .map_err(|e| format!("guest memory of {ram_size} bytes: {e}"))?;
    let host = mem.get_host_address(GuestAddress(RAM_BASE)).map_err(|e| format!("guest memory: {e}"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: RAM_BASE,
        memory_size: ram_size,
        userspace_addr: host as u64,
    };
    // SAFETY: the region is `mem`'s mapping, which the Machine keeps for as
    // long as the VM (the process ends with both).
    unsafe { vm.set_user_memory_region(region) }.map_err(fail("KVM_SET_USER_MEMORY_REGION"))?;

    let mut init = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut init).map_err(fail("KVM_ARM_PREFERRED_TARGET"))?;
    init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    let vcpus = (0..vcpus)
        .map(|id| {
            let vcpu = vm.create_vcpu(id.into()).map_err(fail("KVM_CREATE_VCPU"))?;
            let mut init = init;
            if id > 0 {
                init.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
            }
            vcpu.vcpu_init(&init).map_err(fail("KVM_ARM_VCPU_INIT"))?;
            Ok(vcpu)
        })
        .collect::<Result<Vec<_>, String>>()?;
    // After the vCPUs: KVM sizes the redistributors by them.
    let gic = create_gic(&vm)?;
    Ok(Machine { vm: Arc::new(vm), mem, vcpus, _gic: gic })
}

/// KVM's GICv3 at QEMU `virt`'s (and bhyve's) addresses.
fn create_gic(vm: &VmFd) -> Result<DeviceFd, String> {
    let mut dev = kvm_create_device { type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3, fd: 0, flags: 0 };
    let gic = vm.create_device(&mut dev).map_err(fail("KVM_CREATE_DEVICE (GICv3)"))?;
    let dist: u64 = GIC_DIST_BASE;
    let redist: u64 = GIC_REDIST_BASE;
    let nr_irqs: u32 = NR_IRQS;
    let set = |group: u32, attr: u32, addr: u64| {
        let a = kvm_device_attr { flags: 0, group, attr: attr.into(), addr };
        gic.set_device_attr(&a).map_err(|e| format!("GICv3 attribute {group}/{attr}: {e}"))
    };
    set(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist as *const u64 as u64)?;
    set(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist as *const u64 as u64)?;
    set(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs as *const u32 as u64)?;
    set(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, 0)?;
    Ok(gic)
}

/// The `KVM_{GET,SET}_ONE_REG` id of the 64-bit core register at byte
/// `offset` of `struct kvm_regs`.
fn core_reg(offset: usize) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | u64::from(KVM_REG_ARM_CORE) | (offset / 4) as u64
}

/// Sets `vcpu`'s PC and x0 (the rest is as `KVM_ARM_VCPU_INIT` left it:
/// EL1h, interrupts masked, MMU off, which is also Linux's boot protocol).
pub fn start_at(vcpu: &VcpuFd, pc: u64, x0: u64) -> Result<(), String> {
    let regs = offset_of!(kvm_regs, regs);
    let set = |offset: usize, v: u64| {
        vcpu.set_one_reg(core_reg(offset), &v.to_le_bytes()).map(|_| ()).map_err(fail("KVM_SET_ONE_REG"))
    };
    set(regs + offset_of!(user_pt_regs, pc), pc)?;
    set(regs + offset_of!(user_pt_regs, regs), x0)
}

/// A level-sensitive SPI of KVM's GIC, for bhyve's device models.
pub struct Spi {
    vm: Arc<VmFd>,
    intid: u32,
}

impl Spi {
    /// SPI `intid` (32 and up) of `vm`.
    pub fn new(vm: Arc<VmFd>, intid: u32) -> Self {
        Self { vm, intid }
    }
}

impl Interrupt for Spi {
    fn set_level(&self, level: bool) {
        // KVM_IRQ_LINE on arm64: the type in bits 24-31, the INTID below.
        let irq = KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT | self.intid;
        // Fails only for an INTID the GIC does not have: a bug, not a state.
        if let Err(e) = self.vm.set_irq_line(irq, level) {
            eprintln!("kvmvmm: KVM_IRQ_LINE {}: {e}", self.intid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_register_ids() {
        // x0 is the first word of struct kvm_regs, pc the 33rd doubleword.
        assert_eq!(core_reg(0), 0x6030_0000_0010_0000);
        assert_eq!(core_reg(offset_of!(kvm_regs, regs) + offset_of!(user_pt_regs, pc)), 0x6030_0000_0010_0040);
    }
}
