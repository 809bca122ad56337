//! The functions the C shim calls. Each validates what it is given and
//! returns a negative errno; none can panic on user input.

use crate::arch::aarch64::{el2_blob, publish_code, Hw};
use crate::ctl::{self, VMS};
use crate::errno::{Errno, EINVAL, ENODEV};
use crate::hyp::{check_cpu, HYP};
use crate::klog;
use crate::registry::MAX_VMS_LIMIT;
use crate::vm::{Vm, VmRef};
use core::ffi::c_void;
use vmm_uapi::VMM_MAX_CPUS;

extern "C" {
    fn vmm_shim_bug() -> !;
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: BUG() stops the current task; nothing else can be done here.
    unsafe { vmm_shim_bug() }
}

fn ret(r: Result<(), Errno>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => -e.0,
    }
}

/// Module load, before any CPU is taken: checks the CPU, allocates EL2
/// memory and builds the EL2 identity map of the `nr_ram` RAM ranges
/// (`[start, end)` pairs) at `ram`.
#[no_mangle]
pub extern "C" fn vmm_core_init(nr_cpus: u32, max_vms: u32, ram: *const [u64; 2], nr_ram: usize) -> i32 {
    let mode = match check_cpu(&Hw, crate::kernel::kvm_on) {
        Ok(mode) => mode,
        Err(r) => {
            klog!(Err, "cannot load: {}", r);
            return -ENODEV.0;
        }
    };
    if max_vms == 0 || max_vms as usize > MAX_VMS_LIMIT || VMS.lock().set_limit(max_vms as usize).is_err() {
        klog!(Err, "cannot load: max_vms={} is not within 1..={}", max_vms, MAX_VMS_LIMIT);
        return -EINVAL.0;
    }
    if nr_cpus as usize > VMM_MAX_CPUS {
        klog!(Err, "cannot load: {} CPUs, at most {} are supported", nr_cpus, VMM_MAX_CPUS);
        return -ENODEV.0;
    }
    if ram.is_null() || nr_ram == 0 {
        klog!(Err, "cannot load: no RAM ranges to map at EL2");
        return -EINVAL.0;
    }
    // SAFETY: the shim passes an array of `nr_ram` ranges that outlives the call.
    let ranges = unsafe { core::slice::from_raw_parts(ram as *const (u64, u64), nr_ram) };
    let (blob, probe) = el2_blob();
    let r = HYP.init(mode, nr_cpus as usize, blob, probe, ranges, crate::arch::parange(), publish_code);
    if let Err(e) = r {
        klog!(Err, "cannot load: setting up EL2 failed (errno {}; EL2 code {} bytes)", e.0, blob.len());
        HYP.release();
    }
    ret(r)
}

/// Module unload, after every CPU was given back.
#[no_mangle]
pub extern "C" fn vmm_core_exit() {
    if !HYP.release() {
        klog!(Err, "EL2 memory leaked: a CPU still runs vmm's EL2 code");
    }
}

/// Destroys all VMs (unload forced with `rmmod -f`; normally there are none).
#[no_mangle]
pub extern "C" fn vmm_core_destroy_vms() {
    ctl::destroy_all(&VMS);
}

/// CPU hotplug, on the CPU coming online (and for every CPU at load).
#[no_mangle]
pub extern "C" fn vmm_core_cpu_online(cpu: u32) -> i32 {
    match HYP.cpu_online(&Hw, cpu as usize) {
        Ok(()) if HYP.mode() == crate::hyp::HostMode::Vhe => {
            klog!(Info, "cpu{} ready (the kernel's own EL2, VHE)", cpu);
            0
        }
        Ok(()) => {
            klog!(Info, "EL2 taken on cpu{}", cpu);
            0
        }
        Err(r) => {
            klog!(Err, "cannot take EL2 on cpu{}: {}", cpu, r);
            -ENODEV.0
        }
    }
}

/// CPU hotplug, on the CPU going offline (and for every CPU at unload).
#[no_mangle]
pub extern "C" fn vmm_core_cpu_offline(cpu: u32) {
    if HYP.cpu_offline(&Hw, cpu as usize) {
        if HYP.mode() == crate::hyp::HostMode::Vhe {
            klog!(Info, "cpu{} offline", cpu);
            return;
        }
        klog!(Info, "EL2 given back on cpu{}", cpu);
    } else {
        klog!(Err, "EL2 was not given back to the hyp stub on cpu{}", cpu);
    }
}

/// CPU PM exit (idle or suspend), on that CPU, interrupts off.
#[no_mangle]
pub extern "C" fn vmm_core_cpu_pm_exit(cpu: u32) -> i32 {
    match HYP.cpu_resume(&Hw, cpu as usize) {
        Ok(()) => 0,
        Err(r) => {
            klog!(Err, "cannot take EL2 again on cpu{} after a low-power state: {}", cpu, r);
            -ENODEV.0
        }
    }
}

/// Whether the host kernel runs at EL2 (VHE).
#[no_mangle]
pub extern "C" fn vmm_core_vhe() -> bool {
    HYP.mode() == crate::hyp::HostMode::Vhe
}

/// Whether our EL2 answers on the calling CPU, `cpu`.
#[no_mangle]
pub extern "C" fn vmm_core_cpu_ping(cpu: u32) -> bool {
    HYP.answers(&Hw, cpu as usize)
}

/// Builds the argument slice of an ioctl.
///
/// # Safety
/// `buf` is valid for `len` bytes, or `len` is 0.
unsafe fn arg<'a>(buf: *mut u8, len: usize) -> &'a mut [u8] {
    if len == 0 || buf.is_null() {
        &mut []
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::slice::from_raw_parts_mut(buf, len) }
    }
}

/// An ioctl of `/dev/vmmctl`. `buf` is the shim's kernel copy of the
/// argument, `len` bytes (the size the command encodes).
#[no_mangle]
pub extern "C" fn vmm_ctl_ioctl(cmd: u32, buf: *mut u8, len: usize) -> i64 {
    // SAFETY: the shim passes a kernel buffer of exactly `len` bytes.
    let buf = unsafe { arg(buf, len) };
    ret(ctl::ctl_ioctl(&VMS, cmd, buf)) as i64
}

/// Open of `/dev/vmm/NAME` (minor number `minor`): stores a VM reference in `*out`.
#[no_mangle]
pub extern "C" fn vmm_vm_open(minor: u32, out: *mut *mut c_void) -> i32 {
    if out.is_null() {
        return -EINVAL.0;
    }
    match ctl::vm_open(&VMS, minor) {
        Ok(vm) => {
            // SAFETY: `out` is the shim's local pointer variable.
            unsafe { *out = vm.into_raw() as *mut c_void };
            0
        }
        Err(e) => -e.0,
    }
}

/// Release of the file `owner` of `/dev/vmm/NAME`: the eventfds registered
/// through it go, then its VM reference.
#[no_mangle]
pub extern "C" fn vmm_vm_release(vm: *mut c_void, owner: *const c_void) {
    if !vm.is_null() {
        // SAFETY: the pointer is the file's private data set by vmm_vm_open,
        // released exactly once by the VFS.
        let vm = unsafe { VmRef::from_raw(vm as *mut Vm) };
        vm.release_owner(owner as usize);
        drop(vm);
    }
}

/// An ioctl of `/dev/vmm/NAME` through its open file `owner`.
#[no_mangle]
pub extern "C" fn vmm_vm_ioctl(vm: *mut c_void, owner: *const c_void, cmd: u32, buf: *mut u8, len: usize) -> i64 {
    if vm.is_null() {
        return -EINVAL.0 as i64;
    }
    // SAFETY: the file's reference keeps the VM alive during the call.
    let vm = unsafe { VmRef::borrow_raw(vm as *mut Vm) };
    // SAFETY: the shim passes a kernel buffer of exactly `len` bytes.
    let buf = unsafe { arg(buf, len) };
    ret(ctl::vm_ioctl(vm, owner as usize, cmd, buf)) as i64
}

/// `mmap` of `/dev/vmm/NAME`: may `[offset, offset + len)` be mapped?
#[no_mangle]
pub extern "C" fn vmm_vm_mmap(vm: *mut c_void, offset: u64, len: u64, shared: bool) -> i32 {
    if vm.is_null() {
        return -EINVAL.0;
    }
    // SAFETY: the file's reference keeps the VM alive during the call.
    let vm = unsafe { VmRef::borrow_raw(vm as *mut Vm) };
    ret(ctl::vm_mmap_check(vm, offset, len, shared))
}

/// A fault on such a mapping: the physical addresses of up to `n` pages
/// from guest address `gpa` on in `pa[0..n]` (allocated on first touch).
/// Returns how many (at least one), or a negative errno.
#[no_mangle]
pub extern "C" fn vmm_vm_fault(vm: *mut c_void, gpa: u64, pa: *mut u64, n: u32) -> i32 {
    if vm.is_null() || pa.is_null() || n == 0 {
        return -EINVAL.0;
    }
    // SAFETY: the mapping's file holds a reference to the VM.
    let vm = unsafe { VmRef::borrow_raw(vm as *mut Vm) };
    // SAFETY: the shim passes its own array of `n` entries.
    let out = unsafe { core::slice::from_raw_parts_mut(pa, n as usize) };
    match vm.user_pages(gpa, out) {
        Ok(got) => got as i32,
        Err(e) => -e.0,
    }
}

/// An irqfd's eventfd was written: called by the hook's wake-up callback
/// (interrupts off, the eventfd's lock held) with the VM it was made for.
#[no_mangle]
pub extern "C" fn vmm_irqfd_fire(vm: *mut c_void, spi: u32, level: bool) {
    crate::vm::irqfd_fire_raw(vm, spi, level);
}
