//! The VM: the guest loaded as bhyveload loads it, bhyve's devices on a
//! bus, bhyve's device tree for a Linux kernel, a thread per vCPU serving
//! its exits to userspace (MMIO), until the guest powers off or resets.

use crate::{kvm, Args, EXIT_ERROR};
use bhyve::devices::irq::Interrupt;
use bhyve::devices::pl011::Pl011;
use bhyve::devices::pl031::{self, Pl031};
use bhyve::devices::testdev::TestDev;
use bhyve::devmgr::{DeviceManager, Slot};
use bhyve::fdt::{create_fdt, FdtConfig};
use bhyve::layout::RAM_BASE;
use bhyveload::image::layout_linux;
use bhyveload::kernel::{read_kernel, Source};
use kvm_bindings::{KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{IoEventAddress, VcpuExit, VcpuFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmmapi::vm_memory::{Bytes, GuestAddress};

/// The queue-notify register of `--notify` (as `eventfds bench` registers
/// it for bhyve): 32-bit writes of 1 there complete in the kernel.
const NOTIFY: u64 = 0x0A00_0050;

/// What the vCPU threads share.
struct Shared {
    devices: DeviceManager,
    /// `--stats`.
    stats: bool,
    /// `--notify`'s eventfd.
    notify: Option<EventFd>,
    /// MMIO accesses no device took (the notify guest's userspace writes).
    unclaimed: AtomicU64,
}

/// Loads and runs the guest of `a`; returns only on an error.
pub fn run(a: &Args) -> Result<(), String> {
    let kernel = read_kernel(&Source::File(a.kernel.clone()), RAM_BASE, a.mem).map_err(|e| e.to_string())?;
    let initrd = match (&a.initrd, kernel.linux) {
        (Some(p), true) => Some(Source::File(p.clone()).open(a.mem).map_err(|e| e.to_string())?),
        (Some(_), false) => return Err(format!("-i needs a Linux Image; '{}' is not one", a.kernel.display())),
        (None, _) => None,
    };
    let m = kvm::create(a.mem, a.cpus)?;
    kernel.payload.write_to(&m.mem, kernel.placement.load_addr, "kvm").map_err(|e| e.to_string())?;

    let mut devices = DeviceManager::new();
    let spi = |slot: Slot| -> Result<kvm::Spi, String> {
        let intid = slot.placement().map_err(|e| e.to_string())?.intid().ok_or("a slot without an interrupt")?;
        Ok(kvm::Spi::new(m.vm.clone(), intid))
    };
    let uart = Pl011::new(spi(Slot::Pl011)?, std::io::stdout());
    devices.add(Slot::Pl011, Arc::new(uart)).map_err(|e| e.to_string())?;
    devices.add(Slot::Pl031, Arc::new(Pl031::new(pl031::host_seconds))).map_err(|e| e.to_string())?;
    if let Some(param) = a.param {
        let line: Box<dyn Interrupt> = Box::new(spi(Slot::TestDev)?);
        devices.add(Slot::TestDev, Arc::new(TestDev::with_irq(param, line))).map_err(|e| e.to_string())?;
    }

    let mut x0 = 0;
    if kernel.linux {
        // bhyveload's layout and bhyve's device tree, in one go.
        let initrd_len = initrd.as_ref().map_or(0, |p| p.len());
        let layout = layout_linux(&kernel.placement, initrd_len, RAM_BASE, a.mem)
            .map_err(|e| format!("'{}': {e}", a.kernel.display()))?;
        if let Some(p) = initrd.as_ref().filter(|p| !p.is_empty()) {
            p.write_to(&m.mem, layout.initrd_addr, "kvm").map_err(|e| e.to_string())?;
        }
        let (rng_seed, kaslr_seed) = bhyve::boot::urandom_seeds().map_err(|e| format!("/dev/urandom: {e}"))?;
        let cfg = FdtConfig {
            ram_base: RAM_BASE,
            ram_size: a.mem,
            vcpus: a.cpus as usize,
            cmdline: a.cmdline.clone(),
            initrd: (initrd_len > 0).then(|| layout.initrd_addr..layout.initrd_addr + initrd_len),
            rng_seed,
            kaslr_seed,
            devices: devices.placements().to_vec(),
        };
        let tree = create_fdt(&cfg).map_err(|e| format!("device tree: {e}"))?;
        m.mem.write_slice(&tree, GuestAddress(layout.dtb_addr)).map_err(|e| format!("device tree: {e}"))?;
        x0 = layout.dtb_addr;
    }
    kvm::start_at(&m.vcpus[0], kernel.placement.entry, x0)?;

    let notify = if a.notify {
        let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?;
        m.vm.register_ioevent(&fd, &IoEventAddress::Mmio(NOTIFY), 1u32).map_err(|e| format!("KVM_IOEVENTFD: {e}"))?;
        Some(fd)
    } else {
        None
    };
    let shared = Arc::new(Shared { devices, stats: a.stats, notify, unclaimed: AtomicU64::new(0) });
    if a.start_time {
        eprintln!("kvmvmm: vCPUs start at {} ns", monotonic_ns());
    }
    let threads: Vec<_> = m
        .vcpus
        .into_iter()
        .enumerate()
        .map(|(id, vcpu)| {
            let shared = shared.clone();
            std::thread::Builder::new().name(format!("vcpu{id}")).spawn(move || run_vcpu(vcpu, id, &shared))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("vCPU thread: {e}"))?;
    // The vCPU threads end the process; none returns.
    for t in threads {
        let _ = t.join();
    }
    Err("the vCPU threads ended".into())
}

/// Runs vCPU `id` until the guest powers off or resets, or KVM fails; then
/// ends the process (the other vCPUs may be asleep in the kernel).
fn run_vcpu(mut vcpu: VcpuFd, id: usize, s: &Shared) -> ! {
    let bus = s.devices.bus();
    loop {
        match vcpu.run() {
            Ok(VcpuExit::MmioRead(addr, data)) => {
                if bus.read(addr, data).is_err() {
                    data.fill(0);
                    s.unclaimed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                if bus.write(addr, data).is_err() {
                    s.unclaimed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => finish(s, kind),
            // A signal: nothing to do but go on.
            Ok(VcpuExit::Intr) => {}
            Ok(other) => fail(format!("vCPU {id}: unexpected exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => fail(format!("vCPU {id}: KVM_RUN: {e}")),
        }
    }
}

fn fail(msg: String) -> ! {
    eprintln!("kvmvmm: {msg}");
    std::process::exit(EXIT_ERROR)
}

/// CLOCK_MONOTONIC in ns, the clock of /proc/timer_list's "now at".
fn monotonic_ns() -> u128 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes the one timespec given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
}

/// KVM's counters of this process's VM, summed over its vCPUs: the files of
/// its debugfs directory (`/sys/kernel/debug/kvm/PID-FD`).
fn print_stats() {
    let prefix = format!("{}-", std::process::id());
    let dirs = std::fs::read_dir("/sys/kernel/debug/kvm").into_iter().flatten().flatten();
    let Some(dir) =
        dirs.map(|d| d.path()).find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
    else {
        eprintln!("kvmvmm: no KVM statistics (is debugfs mounted on /sys/kernel/debug?)");
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|f| f.path()).collect();
    files.sort();
    for f in files {
        if let (Some(name), Ok(v)) = (f.file_name(), std::fs::read_to_string(&f)) {
            if let Ok(n) = v.trim().parse::<u64>() {
                eprintln!("kvmvmm: stat {} {n}", name.to_string_lossy());
            }
        }
    }
}

/// The guest powered off (or reset, or crashed): report and end.
fn finish(s: &Shared, kind: u32) -> ! {
    if s.stats {
        print_stats();
    }
    if let Some(fd) = &s.notify {
        let kernel = fd.read().unwrap_or(0);
        let user = s.unclaimed.load(Ordering::Relaxed);
        eprintln!("kvmvmm: notify: {kernel} writes completed in the kernel, {user} by this process");
    }
    match kind {
        KVM_SYSTEM_EVENT_SHUTDOWN => std::process::exit(0),
        KVM_SYSTEM_EVENT_RESET => std::process::exit(1),
        other => fail(format!("the guest stopped (system event {other})")),
    }
}
