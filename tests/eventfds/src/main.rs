//! `eventfds test NAME N`: runs vCPU 0 of the VM NAME, loaded with the
//! `eventfds` test guest, playing a virtio-style device with `VM_IOEVENTFD`
//! and `VM_IRQFD` (see that guest for the phases): a device thread writes
//! the irqfds and waits on the guest's acknowledgements and resample
//! notices; the vCPU thread serves the few exits that reach userspace.
//! Checks the errnos of bad registrations first and the counts after; the
//! registrations are left for the process's exit to close (the VM, in the
//! kernel, outlives it). Prints the guest's console and one line per check.
//!
//! `eventfds bench NAME N`: runs the `bench_notify` guest with NOTIFY
//! registered, for scripts/bench.
//!
//! Test-only (system tests and benchmarks in the emulated host).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use vmmapi::{Errno, Exit, Vm, VmReg, VM_SYSMEM_BASE};

const DEV: u64 = 0x0A00_0000;
const NOTIFY: u64 = DEV + 0x050;
const ACK: u64 = DEV + 0x060;
const PHASE: u64 = DEV + 0x070;
const STATUS: u64 = DEV + 0x078;
const UART_DR: u64 = 0x0900_0000;
const TESTDEV_PARAM: u64 = 0x0B00_0008;
const EDGE: u32 = 48;
const LEVEL: u32 = 49;
/// Resample rounds, as the guest has them.
const ROUNDS: u64 = 50;
const SYSTEM_OFF: u64 = 0x8400_0008;

fn eventfd() -> OwnedFd {
    // SAFETY: creates a descriptor we then own.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Reads an eventfd's count (blocking until it is not zero).
fn read_count(fd: BorrowedFd) -> u64 {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into `v`.
    let n = unsafe { libc::read(fd.as_raw_fd(), &mut v as *mut u64 as *mut libc::c_void, 8) };
    if n == 8 {
        v
    } else {
        0
    }
}

/// Reads an eventfd's count without waiting (0 if none).
fn poll_count(fd: BorrowedFd) -> u64 {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd, no wait.
    if unsafe { libc::poll(&mut p, 1, 0) } == 1 {
        read_count(fd)
    } else {
        0
    }
}

fn signal(fd: BorrowedFd) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from `one`.
    unsafe { libc::write(fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
}

/// Checks that `r` failed with `want`; prints the result.
fn expect_errno(what: &str, r: vmmapi::Result<()>, want: Errno) -> bool {
    let got = r.err().map(|e| e.errno());
    let ok = got == Some(want);
    println!(
        "eventfds: {} {what}: {}",
        if ok { "PASS" } else { "FAIL" },
        got.map_or("success".into(), |e| format!("{e:?}"))
    );
    ok
}

/// Bad registrations: each refused with its errno, nothing changed.
fn errnos(vm: &Vm, notify: BorrowedFd, edge: BorrowedFd) -> bool {
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    // SAFETY: a number no descriptor of ours has; the kernel finds nothing.
    let bad = unsafe { BorrowedFd::borrow_raw(9999) };
    let mut ok = true;
    ok &= expect_errno("ioeventfd, bad fd", vm.add_ioeventfd(NOTIFY + 8, 4, None, bad), Errno::EBADF);
    ok &= expect_errno("ioeventfd, not an eventfd", vm.add_ioeventfd(NOTIFY + 8, 4, None, null.as_fd()), Errno::EINVAL);
    ok &= expect_errno("ioeventfd, len 3", vm.add_ioeventfd(NOTIFY + 8, 3, None, notify), Errno::EINVAL);
    ok &= expect_errno(
        "ioeventfd, any size with a value",
        vm.add_ioeventfd(NOTIFY + 8, 0, Some(1), notify),
        Errno::EINVAL,
    );
    ok &= expect_errno("ioeventfd, in RAM", vm.add_ioeventfd(VM_SYSMEM_BASE + 0x1000, 4, None, notify), Errno::EINVAL);
    ok &= expect_errno("ioeventfd, in the vGIC", vm.add_ioeventfd(0x0800_0000, 4, None, notify), Errno::EINVAL);
    ok &= expect_errno("ioeventfd, duplicate", vm.add_ioeventfd(NOTIFY, 4, Some(1), notify), Errno::EEXIST);
    ok &= expect_errno("ioeventfd, remove unknown", vm.remove_ioeventfd(NOTIFY, 4, Some(7), notify), Errno::ENOENT);
    ok &= expect_errno("irqfd, a PPI", vm.add_irqfd(27, edge, None), Errno::EINVAL);
    ok &= expect_errno("irqfd, no such SPI", vm.add_irqfd(1000, edge, None), Errno::EINVAL);
    ok &= expect_errno("irqfd, bad fd", vm.add_irqfd(50, bad, None), Errno::EBADF);
    ok &= expect_errno("irqfd, not an eventfd", vm.add_irqfd(50, null.as_fd(), None), Errno::EINVAL);
    ok &= expect_errno("irqfd, duplicate", vm.add_irqfd(50, edge, None), Errno::EEXIST);
    ok &= expect_errno("irqfd, remove unknown", vm.remove_irqfd(50, edge), Errno::ENOENT);
    ok
}

/// The device's eventfds.
struct Fds {
    ack: OwnedFd,
    edge: OwnedFd,
    level: OwnedFd,
    resample: OwnedFd,
}

/// The device thread: phases as the guest starts them.
fn device(fds: Arc<Fds>, phases: mpsc::Receiver<u64>, status: Arc<AtomicU64>, m: u64, acks: Arc<AtomicU64>) {
    for phase in phases {
        match phase {
            2 => {
                for _ in 0..m {
                    signal(fds.edge.as_fd());
                    acks.fetch_add(read_count(fds.ack.as_fd()), Ordering::SeqCst);
                }
            }
            3 => {
                for _ in 0..m {
                    signal(fds.edge.as_fd());
                }
            }
            4 => {
                for _ in 0..2 * ROUNDS {
                    signal(fds.level.as_fd());
                    read_count(fds.resample.as_fd());
                }
            }
            _ => {}
        }
        status.store(phase, Ordering::SeqCst);
    }
}

/// What the vCPU thread saw.
#[derive(Default)]
struct Seen {
    exits: u64,
    notify_user: u64,
}

/// Runs vCPU 0 to the guest's power-off; `write(gpa, value)` handles
/// device writes, `read(gpa)` device reads (UART and PARAM aside).
fn run(vm: &Vm, n: u64, mut write: impl FnMut(u64, u64), read: impl Fn(u64) -> u64) -> vmmapi::Result<Seen> {
    let vcpu = vm.vcpu(0);
    vcpu.activate()?;
    vcpu.set_register(VmReg::PC, VM_SYSMEM_BASE)?;
    let mut seen = Seen::default();
    let mut data = None;
    let mut out = std::io::stdout().lock();
    loop {
        let e = vcpu.run(data.take())?;
        match e.exit {
            Exit::InstEmul(m) => {
                seen.exits += 1;
                if m.write {
                    match m.gpa {
                        UART_DR => {
                            let _ = out.write_all(&[m.data as u8]);
                        }
                        NOTIFY => seen.notify_user += 1,
                        g => write(g, m.data),
                    }
                } else {
                    data = Some(match m.gpa {
                        TESTDEV_PARAM => n,
                        g => read(g),
                    });
                }
            }
            Exit::Smccc { func_id, .. } if func_id == SYSTEM_OFF => return Ok(seen),
            Exit::Smccc { .. } => vcpu.set_register(VmReg::x(0), u64::MAX)?,
            Exit::Bogus => {}
            other => {
                eprintln!("eventfds: unexpected exit {other:?} at {:#x}", e.pc);
                std::process::exit(3);
            }
        }
    }
}

fn stat(vm: &Vm, name: &str) -> u64 {
    vm.stats(0).ok().and_then(|s| s.into_iter().find(|(n, _)| n == name)).map_or(u64::MAX, |(_, v)| v)
}

fn check(ok: bool, what: std::fmt::Arguments) -> bool {
    println!("eventfds: {} {what}", if ok { "PASS" } else { "FAIL" });
    ok
}

/// A process that opened the VM, registered an ioeventfd at NOTIFY and an
/// irqfd on EDGE, and was killed: its registrations must go with its
/// descriptor, so this process can make the same ones (no EEXIST).
fn killed_owner(name: &str) -> bool {
    // SAFETY: the child only opens the VM, registers and kills itself.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let (a, b) = (eventfd(), eventfd());
        if let Ok(vm) = Vm::open(name) {
            let _ = vm.add_ioeventfd(NOTIFY, 4, Some(1), a.as_fd());
            let _ = vm.add_irqfd(EDGE, b.as_fd(), None);
        }
        // SAFETY: ends this child at once, as kill -9 would.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    let mut status = 0;
    // SAFETY: our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    check(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        format_args!("a process that registered was killed"),
    )
}

fn test(vm: &Vm, n: u64) -> vmmapi::Result<bool> {
    let killed = killed_owner(vm.name());
    let fds = Arc::new(Fds { ack: eventfd(), edge: eventfd(), level: eventfd(), resample: eventfd() });
    // The vCPU thread's own: read in phase 2, closed in phase 5 while registered.
    let notify = eventfd();
    vm.attach_vgic(1)?;
    vm.add_ioeventfd(NOTIFY, 4, Some(1), notify.as_fd())?;
    vm.add_ioeventfd(ACK, 0, None, fds.ack.as_fd())?;
    vm.add_irqfd(EDGE, fds.edge.as_fd(), None)?;
    vm.add_irqfd(LEVEL, fds.level.as_fd(), Some(fds.resample.as_fd()))?;
    // The same registrations as the killed process's were accepted just above.
    let mut ok = killed && check(true, format_args!("its registrations went with it"));
    ok &= errnos(vm, notify.as_fd(), fds.edge.as_fd());
    let mut notify = Some(notify);

    let (tx, rx) = mpsc::channel();
    let status = Arc::new(AtomicU64::new(0));
    let acks = Arc::new(AtomicU64::new(0));
    let dev = {
        let (fds, status, acks) = (fds.clone(), status.clone(), acks.clone());
        std::thread::spawn(move || device(fds, rx, status, n / 10, acks))
    };
    let mut notified = u64::MAX;
    let seen = run(
        vm,
        n,
        |gpa, v| {
            if gpa != PHASE {
                return;
            }
            match (v, notify.as_ref()) {
                (2, Some(fd)) => notified = poll_count(fd.as_fd()),
                (5, _) => drop(notify.take()),
                _ => {}
            }
            let _ = tx.send(v);
        },
        |gpa| if gpa == STATUS { status.load(Ordering::SeqCst) } else { 0 },
    )?;
    drop(tx);
    let _ = dev.join();
    let acks = acks.load(Ordering::SeqCst) + poll_count(fds.ack.as_fd());
    let in_kernel = stat(vm, "mmio writes completed by ioeventfd");
    let to_user = stat(vm, "mmio accesses to userspace");
    ok &= check(notified == n, format_args!("notify eventfd count {notified} after {n} writes"));
    ok &= check(
        seen.notify_user == 2,
        format_args!("{} notify writes reached userspace (want 2: a wrong value, a wrong size)", seen.notify_user),
    );
    ok &= check(
        in_kernel == n + acks + 10,
        format_args!(
            "{in_kernel} writes completed in the kernel (want {n} notifies + {acks} acks + 10 after the close)"
        ),
    );
    ok &= check(to_user == seen.exits, format_args!("{to_user} mmio exits counted, {} seen by userspace", seen.exits));
    Ok(ok)
}

/// The bench guest: NOTIFY registered; the device never reads it (the
/// count is checked at the end), so only the guest's side is measured.
fn bench(vm: &Vm, n: u64) -> vmmapi::Result<bool> {
    let notify = eventfd();
    vm.attach_vgic(1)?;
    vm.add_ioeventfd(NOTIFY, 4, Some(1), notify.as_fd())?;
    let seen = run(vm, n, |_, _| {}, |_| 0)?;
    let count = poll_count(notify.as_fd());
    Ok(check(count == n && seen.notify_user == 0, format_args!("bench: {count} notifies signalled of {n}")))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, name, n) = match args.as_slice() {
        [m, name, n] if m == "test" || m == "bench" => match n.parse::<u64>() {
            Ok(n) if n >= 10 => (m.clone(), name.clone(), n),
            _ => (String::new(), String::new(), 0),
        },
        _ => (String::new(), String::new(), 0),
    };
    if n == 0 {
        eprintln!("usage: eventfds test|bench NAME N   (N >= 10)");
        return ExitCode::from(2);
    }
    let r = Vm::open(&name).and_then(|vm| if mode == "test" { test(&vm, n) } else { bench(&vm, n) });
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("eventfds: {e}");
            ExitCode::from(1)
        }
    }
}
