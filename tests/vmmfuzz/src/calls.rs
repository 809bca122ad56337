//! Structured and raw calls on `/dev/vmmctl` and `/dev/vmm/NAME`: every
//! ioctl of the ABI with its fields mutated toward the edges, pointers that
//! are NULL, unmapped, kernel addresses, misaligned or read-only, sizes in
//! the ioctl number that lie, and numbers in and out of the group.

use crate::rng::Rng;
use crate::Tally;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use vmm_uapi::ioctl::{ioc, IOC_NONE, IOC_READ, IOC_WRITE};
use vmm_uapi::*;

/// VM names the calls mostly use, so that they meet the same VMs; now and
/// then a name of any length and bytes is tried instead.
pub const NAMES: [&str; 4] = ["fz0", "fz1", "fz2", "fz3"];

/// Memory to point arguments at: a writable page, a read-only page, and an
/// address with nothing mapped.
pub struct Targets {
    rw: *mut u8,
    ro: *mut u8,
    unmapped: u64,
    /// Descriptors for VM_IOEVENTFD and VM_IRQFD: eventfds, and others
    /// that are not (a regular file, a closed number).
    fds: Vec<i32>,
}

// SAFETY: the pages are only ever used as ioctl arguments; the kernel copies
// to and from them (racing threads may see torn values, which is the point).
unsafe impl Send for Targets {}
// SAFETY: as above.
unsafe impl Sync for Targets {}

impl Targets {
    /// Maps the pages.
    pub fn new() -> std::io::Result<Targets> {
        let map = |prot| {
            // SAFETY: an anonymous private mapping of two pages at an address of the kernel's choice.
            let p =
                unsafe { libc::mmap(std::ptr::null_mut(), 8192, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
            if p == libc::MAP_FAILED {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(p as *mut u8)
            }
        };
        let rw = map(libc::PROT_READ | libc::PROT_WRITE)?;
        let ro = map(libc::PROT_READ)?;
        let gone = map(libc::PROT_READ)?;
        // SAFETY: unmaps the mapping just made, leaving its address unmapped.
        unsafe { libc::munmap(gone as *mut libc::c_void, 8192) };
        let mut fds = vec![];
        for _ in 0..4 {
            // SAFETY: a new eventfd, kept open for the whole run.
            fds.push(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) });
        }
        // SAFETY: opens /dev/null (not an eventfd); the path is a valid C string.
        fds.push(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) });
        // SAFETY: a descriptor opened and closed at once: its number is free, for now.
        let closed = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::close(closed) };
        fds.extend([closed, -1, 100_000]);
        Ok(Targets { rw, ro, unmapped: gone as u64, fds })
    }

    /// A pointer for an argument of `len` bytes: mostly a valid buffer
    /// holding `valid`, sometimes something a careful kernel must refuse.
    fn arg(&self, rng: &mut Rng, valid: &[u8]) -> u64 {
        let len = valid.len().min(4096);
        match rng.below(16) {
            0 => 0,
            1 => self.unmapped,
            2 => 0xffff_8000_0000_0000 | rng.below(1 << 40) << 12,
            3 => self.ro as u64,
            4 => self.rw as u64 + 4096 - (len as u64 / 2),
            5 => rng.edgy(),
            _ => {
                let misaligned = rng.below(4) == 0;
                let at = self.rw as u64 + u64::from(misaligned) * (1 + rng.below(7));
                // SAFETY: `at` is within the 8 KiB writable mapping (offset < 8 + 4096).
                unsafe { std::ptr::copy_nonoverlapping(valid.as_ptr(), at as *mut u8, len) };
                at
            }
        }
    }

    /// Reads back `len` bytes the kernel may have written at the writable page.
    fn result(&self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len.min(4096)];
        // SAFETY: the writable mapping holds at least 4 KiB.
        unsafe { std::ptr::copy_nonoverlapping(self.rw, out.as_mut_ptr(), out.len()) };
        out
    }
}

/// `ioctl(fd, cmd, arg)`: 0 or the errno.
pub fn ioctl(fd: &File, cmd: u32, arg: u64) -> i32 {
    // SAFETY: the kernel checks `arg` as a user pointer; a bad one is EFAULT,
    // never a fault in this process (it never dereferences it itself).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as _, arg) };
    if r < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

fn bytes<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: T is one of the ABI's plain-data structs (integers and byte arrays, no padding read as meaning).
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }.to_vec()
}

/// A name: mostly one of [`NAMES`], else bytes of any kind and length.
pub fn name(rng: &mut Rng) -> Vec<u8> {
    if rng.below(16) != 0 {
        return rng.pick(&NAMES).as_bytes().to_vec();
    }
    let mut n = vec![0u8; rng.below(40) as usize];
    rng.fill(&mut n);
    if rng.one_in(2) {
        // Printable, so that some of them are valid and exist for a while.
        for b in &mut n {
            *b = b'!' + *b % 94;
        }
    }
    n
}

/// Opens `/dev/vmmctl`.
pub fn open_ctl() -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open(VMMCTL_PATH)
}

/// Opens a VM's node by a fuzzed name (the path may be anything under /dev/vmm).
pub fn open_vm(rng: &mut Rng) -> Option<File> {
    let n = name(rng);
    let s = String::from_utf8_lossy(&n).replace('/', "_");
    OpenOptions::new().read(true).write(true).open(format!("{VMM_DEV_DIR}/{s}")).ok()
}

/// A VM that exists, by its node in /dev/vmm (the fuzzed names create some
/// that the pool never names again).
fn existing(rng: &mut Rng) -> Option<Vec<u8>> {
    let names: Vec<_> = std::fs::read_dir(VMM_DEV_DIR).ok()?.flatten().map(|e| e.file_name()).collect();
    (!names.is_empty()).then(|| rng.pick(&names).as_encoded_bytes().to_vec())
}

/// One call on `/dev/vmmctl`.
pub fn ctl_call(ctl: &File, rng: &mut Rng, t: &Targets, tally: &mut Tally) {
    match rng.below(12) {
        6 => {
            if let Some(n) = existing(rng) {
                tally.add(
                    "VMMCTL_VM_DESTROY",
                    ioctl(ctl, VMMCTL_VM_DESTROY, t.arg(rng, &bytes(&VmmctlVmDestroy::new(&n)))),
                );
            }
        }
        0..=3 => {
            let mut req = VmmctlVmCreate::new(&name(rng));
            if rng.one_in(16) {
                req.reserved[rng.below(16) as usize] = rng.u64() as u32;
            }
            tally.add("VMMCTL_VM_CREATE", ioctl(ctl, VMMCTL_VM_CREATE, t.arg(rng, &bytes(&req))));
        }
        4 | 5 => {
            let req = VmmctlVmDestroy::new(&name(rng));
            tally.add("VMMCTL_VM_DESTROY", ioctl(ctl, VMMCTL_VM_DESTROY, t.arg(rng, &bytes(&req))));
        }
        7 | 8 => {
            let st = VmmctlHypStatus::default();
            tally.add("VMMCTL_GET_HYP_STATUS", ioctl(ctl, VMMCTL_GET_HYP_STATUS, t.arg(rng, &bytes(&st))));
        }
        _ => raw_call(ctl, rng, t, tally, b'V'),
    }
}

/// A register number: mostly valid, sometimes just past either end.
fn regnum(rng: &mut Rng) -> i32 {
    match rng.below(8) {
        0 => rng.u64() as i32,
        1 => VmReg::COUNT as i32 + rng.below(3) as i32,
        2 => -1,
        _ => rng.below(VmReg::COUNT as u64) as i32,
    }
}

/// A value for register `reg`. The virtual timer's compare value stays far
/// from 2^64: QEMU 7.2's own timer arithmetic wraps there and freezes the
/// whole emulated machine (real hardware does not), which would stop the run
/// for a reason that is not ours.
fn regval(rng: &mut Rng, reg: i32) -> u64 {
    if reg == VmReg::CNTV_CVAL_EL0.0 {
        rng.below(1 << 48)
    } else {
        rng.edgy()
    }
}

fn cpuid(rng: &mut Rng) -> i32 {
    match rng.below(8) {
        0 => rng.u64() as i32,
        1 => -1,
        2 => VM_MAXCPU as i32 + rng.below(2) as i32,
        _ => rng.below(4) as i32,
    }
}

/// One call on a VM's node (`VM_RUN` is left to [`run_call`]); its errno
/// is the tally's `last`.
pub fn vm_call(vm: &File, rng: &mut Rng, t: &Targets, tally: &mut Tally) {
    match rng.below(26) {
        0 => tally.add("VM_REINIT", ioctl(vm, VM_REINIT, 0)),
        1 => {
            let s = VmSuspend { how: rng.below(8) as u32 };
            tally.add("VM_SUSPEND", ioctl(vm, VM_SUSPEND, t.arg(rng, &bytes(&s))));
        }
        2 | 3 => {
            let len = if rng.one_in(2) { rng.below(64) << 12 } else { rng.edgy() };
            let seg = VmMemseg { segid: rng.below(6) as i32 - 1, pad: 0, len, name: [0; VM_MAX_SUFFIXLEN] };
            tally.add("VM_ALLOC_MEMSEG", ioctl(vm, VM_ALLOC_MEMSEG, t.arg(rng, &bytes(&seg))));
        }
        4 => {
            let seg = VmMemseg { segid: rng.below(6) as i32 - 1, pad: 0, len: 0, name: [0; VM_MAX_SUFFIXLEN] };
            tally.add("VM_GET_MEMSEG", ioctl(vm, VM_GET_MEMSEG, t.arg(rng, &bytes(&seg))));
        }
        5 | 6 => {
            let gpa = match rng.below(4) {
                0 | 1 => VM_SYSMEM_BASE + (rng.below(64) << 12),
                // Where bhyve puts its flash banks.
                2 => rng.below(2) << 26,
                _ => rng.edgy(),
            };
            let m = VmMemmap {
                gpa,
                segid: rng.below(6) as i32 - 1,
                pad: if rng.one_in(16) { 1 } else { 0 },
                segoff: if rng.one_in(2) { 0 } else { rng.edgy() },
                len: if rng.one_in(2) { rng.below(64) << 12 } else { rng.edgy() },
                prot: rng.below(9) as i32,
                flags: if rng.one_in(4) { rng.u64() as i32 } else { 0 },
            };
            tally.add("VM_MMAP_MEMSEG", ioctl(vm, VM_MMAP_MEMSEG, t.arg(rng, &bytes(&m))));
        }
        7 => {
            let m = VmMemmap { gpa: rng.edgy(), ..Default::default() };
            tally.add("VM_MMAP_GETNEXT", ioctl(vm, VM_MMAP_GETNEXT, t.arg(rng, &bytes(&m))));
        }
        8 | 9 => {
            let regnum = regnum(rng);
            let r = VmRegister { cpuid: cpuid(rng), regnum, regval: regval(rng, regnum) };
            tally.add("VM_SET_REGISTER", ioctl(vm, VM_SET_REGISTER, t.arg(rng, &bytes(&r))));
        }
        10 => {
            let r = VmRegister { cpuid: cpuid(rng), regnum: regnum(rng), regval: 0 };
            tally.add("VM_GET_REGISTER", ioctl(vm, VM_GET_REGISTER, t.arg(rng, &bytes(&r))));
        }
        11 | 12 => register_set(vm, rng, t, tally),
        13 => {
            let a = VmActivateCpu { vcpuid: cpuid(rng), pad: if rng.one_in(16) { 1 } else { 0 } };
            tally.add("VM_ACTIVATE_CPU", ioctl(vm, VM_ACTIVATE_CPU, t.arg(rng, &bytes(&a))));
        }
        14 => {
            let c = VmCpuset { which: rng.below(4) as i32 - 1, pad: 0, mask: rng.u64() };
            tally.add("VM_GET_CPUS", ioctl(vm, VM_GET_CPUS, t.arg(rng, &bytes(&c))));
        }
        15 => {
            let n = 1 + rng.below(VM_MAXCPU as u64 + 2);
            let d = if rng.one_in(2) {
                VmVgicDescr {
                    dist_start: VGIC_DIST_BASE,
                    dist_size: VGIC_DIST_SIZE,
                    redist_start: VGIC_REDIST_BASE,
                    redist_size: n * VGIC_REDIST_SIZE,
                }
            } else {
                VmVgicDescr {
                    dist_start: rng.edgy(),
                    dist_size: rng.edgy(),
                    redist_start: rng.edgy(),
                    redist_size: rng.edgy(),
                }
            };
            tally.add("VM_ATTACH_VGIC", ioctl(vm, VM_ATTACH_VGIC, t.arg(rng, &bytes(&d))));
        }
        16 | 17 => {
            let irq = VmIrq { irq: if rng.one_in(2) { 32 + rng.below(130) as u32 } else { rng.edgy() as u32 } };
            let (n, cmd) =
                if rng.one_in(2) { ("VM_ASSERT_IRQ", VM_ASSERT_IRQ) } else { ("VM_DEASSERT_IRQ", VM_DEASSERT_IRQ) };
            tally.add(n, ioctl(vm, cmd, t.arg(rng, &bytes(&irq))));
        }
        18 => {
            let mut st = VmStats { cpuid: cpuid(rng), ..Default::default() };
            st.index = if rng.one_in(2) { rng.below(70) as i32 } else { rng.u64() as i32 };
            tally.add("VM_STATS", ioctl(vm, VM_STATS, t.arg(rng, &bytes(&st))));
        }
        19 => {
            let d = VmStatDesc {
                index: if rng.one_in(2) { rng.below(70) as i32 } else { rng.u64() as i32 },
                ..Default::default()
            };
            tally.add("VM_STAT_DESC", ioctl(vm, VM_STAT_DESC, t.arg(rng, &bytes(&d))));
        }
        20 => {
            let gpa = match rng.below(4) {
                0 => rng.edgy(),
                1 => VM_SYSMEM_BASE + rng.below(4096),
                2 => VGIC_DIST_BASE + rng.below(0x1_0000),
                _ => 0x0a00_0050 + (rng.below(32) << 9),
            };
            let f = VmIoeventfd {
                gpa,
                datamatch: rng.edgy(),
                len: *rng.pick(&[0, 1, 2, 4, 8, 3, 16, u32::MAX]),
                fd: *rng.pick(&t.fds),
                flags: if rng.one_in(8) { rng.u64() as u32 } else { rng.below(4) as u32 },
                pad: if rng.one_in(16) { 1 } else { 0 },
            };
            tally.add("VM_IOEVENTFD", ioctl(vm, VM_IOEVENTFD, t.arg(rng, &bytes(&f))));
        }
        21 => {
            let f = VmIrqfd {
                fd: *rng.pick(&t.fds),
                irq: if rng.one_in(2) { 32 + rng.below(130) as u32 } else { rng.edgy() as u32 },
                flags: if rng.one_in(8) { rng.u64() as u32 } else { rng.below(4) as u32 },
                resamplefd: *rng.pick(&t.fds),
            };
            tally.add("VM_IRQFD", ioctl(vm, VM_IRQFD, t.arg(rng, &bytes(&f))));
        }
        22 => poke(rng, t),
        23 | 24 => {
            let u = match rng.below(3) {
                // A whole mapping, as bhyve's flash banks unmap.
                0 => VmMunmap { gpa: VM_SYSMEM_BASE, len: rng.below(64) << 12 },
                1 => VmMunmap { gpa: rng.below(2) << 26, len: rng.below(64) << 12 },
                _ => VmMunmap { gpa: rng.edgy(), len: rng.edgy() },
            };
            tally.add("VM_MUNMAP_MEMSEG", ioctl(vm, VM_MUNMAP_MEMSEG, t.arg(rng, &bytes(&u))));
        }
        _ => raw_call(vm, rng, t, tally, b'v'),
    }
}

/// Writes to the eventfds now and then, so registered irqfds fire while
/// everything else goes on.
pub fn poke(rng: &mut Rng, t: &Targets) {
    let fd = t.fds[rng.below(4) as usize];
    // SAFETY: an 8-byte write to one of our eventfds (it may be full: EAGAIN).
    unsafe { libc::write(fd, 1u64.to_ne_bytes().as_ptr() as *const libc::c_void, 8) };
}

/// `VM_SET_REGISTER_SET` / `VM_GET_REGISTER_SET`: the arrays behind the
/// argument's pointers are fuzzed too.
fn register_set(vm: &File, rng: &mut Rng, t: &Targets, tally: &mut Tally) {
    let count = if rng.one_in(4) { rng.edgy() as u32 } else { rng.below(VmReg::COUNT as u64 + 2) as u32 };
    let n = (count as usize).min(VmReg::COUNT + 2);
    let nums: Vec<i32> = (0..n).map(|_| regnum(rng)).collect();
    let vals: Vec<u64> = nums.iter().map(|&r| regval(rng, r)).collect();
    let num_bytes: Vec<u8> = nums.iter().flat_map(|v| v.to_le_bytes()).collect();
    let val_bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    // The arrays in the second page of the writable mapping, or anywhere bad.
    let arr = |rng: &mut Rng, data: &[u8], slot: u64| -> u64 {
        if rng.below(4) == 0 {
            let any = rng.edgy();
            return *rng.pick(&[0, t.unmapped, t.ro as u64, 0xffff_0000_dead_0000, any]);
        }
        let at = t.rw as u64 + 4096 + slot * 1024;
        // SAFETY: at most (VmReg::COUNT + 2) * 8 < 1024 bytes into the second page.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), at as *mut u8, data.len().min(1024)) };
        at
    };
    let rs =
        VmRegisterSet { cpuid: cpuid(rng), count, regnums: arr(rng, &num_bytes, 0), regvals: arr(rng, &val_bytes, 1) };
    let (name, cmd) = if rng.one_in(2) {
        ("VM_SET_REGISTER_SET", VM_SET_REGISTER_SET)
    } else {
        ("VM_GET_REGISTER_SET", VM_GET_REGISTER_SET)
    };
    tally.add(name, ioctl(vm, cmd, t.arg(rng, &bytes(&rs))));
}

/// `VM_RUN` of a fuzzed vCPU with fuzzed flags. The caller makes sure a
/// signal interrupts it if the guest never exits.
pub fn run_call(vm: &File, rng: &mut Rng, t: &Targets, tally: &mut Tally) {
    let r = VmRun {
        cpuid: cpuid(rng),
        flags: if rng.one_in(4) { rng.u64() as u32 } else { rng.below(2) as u32 },
        mmio_data: rng.edgy(),
        exit: VmExit::default(),
    };
    tally.add("VM_RUN", ioctl(vm, VM_RUN, t.arg(rng, &bytes(&r))));
    let _ = t.result(std::mem::size_of::<VmRun>());
}

/// A number that is no real ioctl, or a real one with a size or direction
/// that lies, in group `ty` or out of it.
fn raw_call(fd: &File, rng: &mut Rng, t: &Targets, tally: &mut Tally, ty: u8) {
    let cmd = match rng.below(4) {
        0 => rng.u64() as u32,
        1 => ioc(rng.below(4) as u32, ty, rng.below(256) as u8, rng.below(512) as usize),
        2 => {
            // A real number with another size encoded.
            let real =
                *rng.pick(&[VM_RUN, VM_SET_REGISTER, VM_ALLOC_MEMSEG, VM_STATS, VMMCTL_VM_CREATE, VM_ATTACH_VGIC]);
            (real & !(0x3fff << 16)) | ((rng.below(0x4000) as u32) << 16)
        }
        _ => ioc(*rng.pick(&[IOC_NONE, IOC_READ, IOC_WRITE]), rng.u64() as u8, rng.u64() as u8, rng.below(64) as usize),
    };
    let mut junk = vec![0u8; 512];
    rng.fill(&mut junk);
    tally.add("raw", ioctl(fd, cmd, t.arg(rng, &junk)));
}
