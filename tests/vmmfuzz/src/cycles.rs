//! Whole VM lives, many times: create, memory, load a guest, vCPU, vGIC,
//! run to its power-off, destroy; then the module's own counters (VMs,
//! vCPUs, guest pages, pages, objects) must be back where they started.
//! With `faults`, each allocation the module makes on that path is made to
//! fail in turn (the module's test-only `fault_inject` parameter): every
//! failure must be a clean errno (or a clean stop of the VM), the VM
//! destroyable, and nothing leaked.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use vmmapi::vm_memory::{Bytes, GuestAddress};
use vmmapi::{Errno, Exit, HypStatus, Vm, VmReg, VM_SYSMEM_BASE};

const NAME: &str = "cycle";
const MEM: u64 = 16 << 20;
/// PSCI SYSTEM_OFF.
const SYSTEM_OFF: u64 = 0x8400_0008;
const FAULT_PARAM: &str = "/sys/module/vmm/parameters/fault_inject";

/// The step of a life that failed, and its errno (or the VM's stop reason).
type Failure = (&'static str, String);

fn at<T>(step: &'static str, r: vmmapi::Result<T>) -> Result<T, Failure> {
    r.map_err(|e| (step, e.errno().to_string()))
}

fn eventfd() -> Result<OwnedFd, Failure> {
    // SAFETY: a new eventfd, owned by the OwnedFd below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(("eventfd", std::io::Error::last_os_error().to_string()));
    }
    // SAFETY: fd is new and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The loader child's exit status after a SIGBUS.
const SIGBUS_EXIT: i32 = 7;

extern "C" fn sigbus_exit(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(SIGBUS_EXIT) }
}

/// Writes `guest` at the start of RAM, as bhyveload does, in a child
/// process: with no page for it, the kernel ends the writer with SIGBUS.
fn load(vm: &Vm, guest: &[u8]) -> Result<(), Failure> {
    let mem = at("map", vm.map_memory())?;
    // SAFETY: the child only copies into the mapping and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // A SIGBUS ends the writer at once (Rust's own handler would retry
        // the access, which a single injected fault lets succeed).
        // SAFETY: installs a handler that only calls _exit.
        unsafe { libc::signal(libc::SIGBUS, sigbus_exit as *const () as libc::sighandler_t) };
        let ok = mem.write_slice(guest, GuestAddress(VM_SYSMEM_BASE)).is_ok();
        // SAFETY: leaves the child.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match (libc::WIFSIGNALED(status), libc::WEXITSTATUS(status)) {
        (true, _) => Err(("load", format!("the writer died of signal {}", libc::WTERMSIG(status)))),
        (false, 0) => Ok(()),
        (false, SIGBUS_EXIT) => Err(("load", "SIGBUS (no memory for the page)".to_string())),
        (false, _) => Err(("load", "outside memory".to_string())),
    }
}

/// One life of a VM running `guest` (a test guest that powers off).
fn life(guest: &[u8]) -> Result<(), Failure> {
    at("create", Vm::create(NAME))?;
    let vm = at("open", Vm::open(NAME))?;
    at("memory", vm.setup_memory(MEM))?;
    load(&vm, guest)?;
    at("vgic", vm.attach_vgic(1))?;
    // A device's eventfds, as bhyve registers them for a virtio queue.
    let notify = eventfd()?;
    let irq = eventfd()?;
    at("ioeventfd", vm.add_ioeventfd(0x0a00_0050, 4, Some(0), notify.as_fd()))?;
    at("irqfd", vm.add_irqfd(48, irq.as_fd(), None))?;
    let v = vm.vcpu(0);
    at("vcpu", v.activate())?;
    at("registers", v.set_register(VmReg::PC, VM_SYSMEM_BASE))?;
    let mut data = None;
    loop {
        let e = at("run", v.run(data.take()))?;
        match e.exit {
            Exit::InstEmul(m) if !m.write => data = Some(0),
            Exit::InstEmul(_) | Exit::Bogus => {}
            Exit::Smccc { func_id, .. } if func_id & 0xffff_ffff == SYSTEM_OFF => return Ok(()),
            Exit::Smccc { .. } => at("run", v.set_register(VmReg::x(0), u64::MAX))?,
            Exit::Hyp(h) if h.exception_nr == vmm_uapi::hyp_reason::NO_MEMORY => {
                return Err(("run", "the VM stopped: no memory for a guest page".into()))
            }
            other => return Err(("run", format!("{other:?}"))),
        }
    }
}

/// Destroys the cycle VM if it exists.
fn clear() -> Result<(), String> {
    match Vm::destroy_name(NAME) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Errno::ENOENT => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn status() -> Result<HypStatus, String> {
    vmmapi::hyp_status().map_err(|e| e.to_string())
}

/// What differs from `base` (VMs, vCPUs and guest pages must be zero).
fn leaks(base: &HypStatus) -> Result<Vec<String>, String> {
    let s = status()?;
    let mut out = vec![];
    for (what, now, was) in [
        ("VMs", u64::from(s.nr_vms), 0),
        ("vCPUs", u64::from(s.nr_vcpus), 0),
        ("guest pages", s.guest_pages, 0),
        ("pages", s.pages, base.pages),
        ("objects", s.objects, base.objects),
    ] {
        if now != was {
            out.push(format!("{what} {now} (was {was})"));
        }
    }
    Ok(out)
}

fn counts(s: &HypStatus) -> String {
    format!(
        "VMs {}, vCPUs {}, guest pages {}, pages {}, objects {}",
        s.nr_vms, s.nr_vcpus, s.guest_pages, s.pages, s.objects
    )
}

/// `cycles N GUEST`: N lives; every one must succeed, nothing may be left.
pub fn cycles(n: u32, guest: &[u8]) -> ExitCode {
    let run = || -> Result<(), String> {
        clear()?;
        let base = status()?;
        println!("vmmfuzz: cycles: before: {}", counts(&base));
        for i in 0..n {
            if let Err((step, e)) = life(guest) {
                return Err(format!("cycle {i}: {step}: {e}"));
            }
            clear()?;
        }
        let after = status()?;
        println!("vmmfuzz: cycles: after {n}: {}", counts(&after));
        let l = leaks(&base)?;
        if l.is_empty() {
            println!("vmmfuzz: cycles: {n} lives, nothing left behind");
            Ok(())
        } else {
            Err(format!("left behind after {n} lives: {}", l.join(", ")))
        }
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("vmmfuzz: cycles: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}

fn set_fault(n: u32) -> Result<(), String> {
    std::fs::write(FAULT_PARAM, n.to_string()).map_err(|e| format!("{FAULT_PARAM}: {e}"))
}

fn fault_left() -> Result<u32, String> {
    let s = std::fs::read_to_string(FAULT_PARAM).map_err(|e| format!("{FAULT_PARAM}: {e}"))?;
    s.trim().parse().map_err(|_| format!("{FAULT_PARAM}: '{}'", s.trim()))
}

/// `faults GUEST`: the life above with its 1st, 2nd, ... allocation failing,
/// until a life makes fewer allocations than the one asked to fail.
pub fn faults(guest: &[u8]) -> ExitCode {
    let run = || -> Result<(), String> {
        clear()?;
        life(guest).map_err(|(s, e)| format!("a life without faults failed at {s}: {e}"))?;
        clear()?;
        let base = status()?;
        let mut by_step: std::collections::BTreeMap<String, u32> = Default::default();
        let mut n = 1;
        loop {
            set_fault(n)?;
            let r = life(guest);
            let left = fault_left()?;
            set_fault(0)?;
            clear().map_err(|e| format!("fault {n}: the VM could not be destroyed: {e}"))?;
            let l = leaks(&base)?;
            if !l.is_empty() {
                return Err(format!("fault {n} ({r:?}): left behind: {}", l.join(", ")));
            }
            if left > 0 {
                // No allocation was the n-th: every one has been failed once.
                println!("vmmfuzz: faults: {} allocations in a life, each failed in turn", n - 1);
                break;
            }
            let what = match r {
                Ok(()) => "absorbed (the life went on)".to_string(),
                Err((step, e)) => format!("{step}: {e}"),
            };
            *by_step.entry(what).or_default() += 1;
            n += 1;
            if n > 100_000 {
                return Err("more than 100,000 allocations in one life?".into());
            }
        }
        for (what, k) in &by_step {
            println!("vmmfuzz: faults:   {k:>4} x {what}");
        }
        println!("vmmfuzz: faults: nothing left behind ({})", counts(&status()?));
        Ok(())
    };
    let r = run();
    let _ = set_fault(0);
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("vmmfuzz: faults: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}
