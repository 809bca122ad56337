//! An open of `/dev/vmm/a` racing the destruction of `a` and the creation of
//! `b`: the kernel resolves the path first and reaches the module later, so a
//! module that found VMs by slot alone handed out `b`. The two VMs differ in
//! memory size, which tells them apart through the opened descriptor.
//!
//! Two ways: deterministically, with the window held open (the path resolved
//! with `O_PATH` while `a` exists, opened for real through `/proc/self/fd`
//! after `b` replaced it); and as a race of two threads.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vmmapi::Vm;

const A: &str = "openrace-a";
const B: &str = "openrace-b";
const A_MEM: u64 = 2 << 20;
const B_MEM: u64 = 4 << 20;

fn make(name: &str, mem: u64) -> Result<(), vmmapi::Error> {
    Vm::create(name)?;
    Vm::open(name)?.setup_memory(mem)
}

/// The race runs until both sides did this much (or the time given runs
/// out): a count, not a time, so a loaded machine tests as much as an idle one.
const ENOUGH: u64 = 200;

/// Destroys and creates `a` and `b` in turn until `stop`; counts the cycles.
fn churn(stop: &AtomicBool, cycles: &AtomicU64) -> Result<(), vmmapi::Error> {
    while !stop.load(Ordering::Relaxed) {
        Vm::destroy_name(A)?;
        make(B, B_MEM)?;
        Vm::destroy_name(B)?;
        make(A, A_MEM)?;
        cycles.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// What the opens of `a`'s path gave.
#[derive(Default)]
struct Opens {
    tried: u64,
    got_a: u64,
    got_b: u64,
    no_memory_yet: u64,
}

fn open_a(stop: &AtomicBool, got_a: &AtomicU64) -> Opens {
    let mut o = Opens::default();
    while !stop.load(Ordering::Relaxed) {
        o.tried += 1;
        // Vm::open is what every tool does: open the path, use the descriptor.
        let Ok(vm) = Vm::open(A) else { continue };
        match vm.memory_size() {
            Ok(Some(A_MEM)) => {
                o.got_a += 1;
                got_a.store(o.got_a, Ordering::Relaxed);
            }
            Ok(Some(B_MEM)) => {
                o.got_b += 1;
                if o.got_b == 1 {
                    eprintln!("vmmfuzz: open #{} of /dev/vmm/{A} gave the VM {B}", o.tried);
                }
            }
            _ => o.no_memory_yet += 1,
        }
    }
    o
}

/// The memory size of the VM open on `file` (`VM_GET_MEMSEG`), if any.
fn memory_of(file: &File) -> Option<u64> {
    let mut seg = vmm_uapi::VmMemseg { segid: vmm_uapi::VM_SYSMEM, pad: 0, len: 0, name: [0; 64] };
    // SAFETY: VM_GET_MEMSEG reads and writes exactly one VmMemseg, which `seg` is.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), vmm_uapi::VM_GET_MEMSEG as _, &mut seg) };
    (r == 0 && seg.len != 0).then_some(seg.len)
}

/// `a`'s node resolved while `a` exists, opened after `a` was destroyed and
/// `b` created: returns what the open gave (`None`: it failed).
fn stale_open() -> Result<Option<u64>, String> {
    make(A, A_MEM).map_err(|e| e.to_string())?;
    let path = CString::new(vmmapi::vm_path(A).into_os_string().into_encoded_bytes()).expect("no NUL in a path");
    // SAFETY: a valid C string; O_PATH opens no device, it only holds the node.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!("O_PATH open of {path:?}: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just opened and is owned by nothing else.
    let held = unsafe { File::from_raw_fd(fd) };
    Vm::destroy_name(A).map_err(|e| e.to_string())?;
    make(B, B_MEM).map_err(|e| e.to_string())?;
    let reopened = std::fs::OpenOptions::new().read(true).write(true).open(format!("/proc/self/fd/{fd}"));
    drop(held);
    let got = reopened.ok().and_then(|f| memory_of(&f));
    Vm::destroy_name(B).map_err(|e| e.to_string())?;
    Ok(got)
}

/// Runs the deterministic check 100 times, then the race until each side did
/// `ENOUGH` (at most for `time`), and reports.
pub fn run(time: Duration) -> ExitCode {
    let _ = Vm::destroy_name(A);
    let _ = Vm::destroy_name(B);
    let (mut stale_b, mut stale_other) = (0, 0);
    for _ in 0..100 {
        match stale_open() {
            Ok(Some(B_MEM)) => stale_b += 1,
            Ok(Some(_)) => stale_other += 1,
            Ok(None) => {}
            Err(e) => {
                eprintln!("vmmfuzz: {e}");
                return ExitCode::from(2);
            }
        }
    }
    println!("vmmfuzz: openrace: a's node held across destroy a/create b, then opened: {stale_b} of 100 gave {B}, {stale_other} gave another VM");
    if let Err(e) = make(A, A_MEM) {
        eprintln!("vmmfuzz: {e}");
        return ExitCode::from(2);
    }
    let stop = AtomicBool::new(false);
    let (cycles, got_a) = (AtomicU64::new(0), AtomicU64::new(0));
    let (churned, opens) = std::thread::scope(|s| {
        let churner = s.spawn(|| churn(&stop, &cycles));
        let opener = s.spawn(|| open_a(&stop, &got_a));
        let t0 = Instant::now();
        let enough = || cycles.load(Ordering::Relaxed) >= ENOUGH && got_a.load(Ordering::Relaxed) >= ENOUGH;
        while t0.elapsed() < time && !churner.is_finished() && !enough() {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        (churner.join().expect("churn thread"), opener.join().expect("open thread"))
    });
    let _ = Vm::destroy_name(A);
    let _ = Vm::destroy_name(B);
    if let Err(e) = churned {
        eprintln!("vmmfuzz: create/destroy failed: {e}");
        return ExitCode::from(2);
    }
    let cycles = cycles.load(Ordering::Relaxed);
    println!(
        "vmmfuzz: openrace: {cycles} destroy/create cycles, {} opens of /dev/vmm/{A}: {} gave {A}, {} gave {B}, {} found no memory yet, {} failed",
        opens.tried,
        opens.got_a,
        opens.got_b,
        opens.no_memory_yet,
        opens.tried - opens.got_a - opens.got_b - opens.no_memory_yet
    );
    if opens.got_b > 0 || stale_b > 0 || stale_other > 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
