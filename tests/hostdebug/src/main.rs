//! `hostdebug NAME`: the host's own hardware debug state survives a guest
//! that uses its own. A child process, traced by this one, runs vCPU 0 of
//! the loaded VM NAME (the `debug` test guest, which arms and disarms its
//! own breakpoint and watchpoint 0) to its power-off, then stores to a
//! variable on which the parent set hardware watchpoint 0 of the host. The
//! parent must see that store stop the child (SIGTRAP, TRAP_HWBKPT): EL2
//! put the host's watchpoint back after every guest exit. Test-only (system
//! tests in the emulated host); prints the guest's console on stdout.

use std::io::Write;
use std::process::ExitCode;
use vmmapi::{Exit, Vm, VmReg, VM_SYSMEM_BASE};

/// What the child stores to once the guest is done; the host watchpoint's address.
static mut WATCHED: u64 = 0;

/// `struct user_hwdebug_state` with one register (linux/ptrace.h, arm64).
#[repr(C)]
struct HwDebugState {
    dbg_info: u32,
    pad: u32,
    addr: u64,
    ctrl: u32,
    pad2: u32,
}

/// `NT_ARM_HW_WATCH`.
const NT_ARM_HW_WATCH: libc::c_int = 0x403;
/// DBGWCR for EL0 (PAC 0b10) stores (LSC 0b10) of 8 bytes (BAS), enabled.
const WCR_EL0_STORE: u32 = 1 | 2 << 1 | 2 << 3 | 0xff << 5;
/// PSCI SYSTEM_OFF.
const SYSTEM_OFF: u64 = 0x8400_0008;
/// `si_code` of a hardware breakpoint or watchpoint trap.
const TRAP_HWBKPT: i32 = 4;

/// The child: runs vCPU 0 of `name` to its power-off, echoing the guest's
/// PL011 output, then stores to WATCHED.
fn child(name: &str) -> ! {
    // SAFETY: plain system calls; the parent waits for the stop.
    unsafe {
        libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
        libc::raise(libc::SIGSTOP);
    }
    let run = || -> vmmapi::Result<()> {
        let vm = Vm::open(name)?;
        let vcpu = vm.vcpu(0);
        vcpu.activate()?;
        vcpu.set_register(VmReg::PC, VM_SYSMEM_BASE)?;
        let mut data = None;
        let mut out = std::io::stdout().lock();
        loop {
            let e = vcpu.run(data.take())?;
            match e.exit {
                Exit::InstEmul(m) if m.write => {
                    if m.gpa == 0x0900_0000 {
                        let _ = out.write_all(&[m.data as u8]);
                    }
                }
                // PL011 reads (flags: transmit FIFO never full) and anything else: 0.
                Exit::InstEmul(_) => data = Some(0),
                Exit::Smccc { func_id, .. } if func_id == SYSTEM_OFF => return Ok(()),
                Exit::Smccc { .. } => vcpu.set_register(VmReg::x(0), u64::MAX)?,
                Exit::Bogus => {}
                other => {
                    eprintln!("hostdebug: unexpected exit {other:?} at {:#x}", e.pc);
                    std::process::exit(3);
                }
            }
        }
    };
    if let Err(e) = run() {
        eprintln!("hostdebug: {e}");
        std::process::exit(3);
    }
    // SAFETY: this process's own variable; the parent's watchpoint is on it.
    unsafe { std::ptr::addr_of_mut!(WATCHED).write_volatile(0x5a) };
    println!("hostdebug: child stored to the watched variable");
    std::process::exit(0)
}

/// Waits for the child; `Some(signal)` if it stopped, `None` if it ended
/// (its status printed).
fn wait_stop(pid: libc::pid_t) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFSTOPPED(status) {
        return Some(libc::WSTOPSIG(status));
    }
    println!("hostdebug: child ended, status {:#x}", status);
    None
}

/// Sets the child's watchpoint 0 to `ctrl` at WATCHED.
fn set_watchpoint(pid: libc::pid_t, ctrl: u32) -> bool {
    let mut st = HwDebugState { dbg_info: 0, pad: 0, addr: std::ptr::addr_of!(WATCHED) as u64, ctrl, pad2: 0 };
    let mut iov = libc::iovec { iov_base: &mut st as *mut _ as *mut libc::c_void, iov_len: size_of::<HwDebugState>() };
    // SAFETY: the child is stopped under our trace; iov describes `st`.
    unsafe { libc::ptrace(libc::PTRACE_SETREGSET, pid, NT_ARM_HW_WATCH, &mut iov as *mut libc::iovec) == 0 }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name] = args.as_slice() else {
        eprintln!("usage: hostdebug NAME");
        return ExitCode::from(2);
    };
    // SAFETY: fork in a single-threaded program.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        child(name);
    }
    if pid < 0 || wait_stop(pid) != Some(libc::SIGSTOP) {
        eprintln!("hostdebug: the child did not stop for tracing");
        return ExitCode::from(1);
    }
    if !set_watchpoint(pid, WCR_EL0_STORE) {
        eprintln!("hostdebug: PTRACE_SETREGSET NT_ARM_HW_WATCH: {}", std::io::Error::last_os_error());
        return ExitCode::from(1);
    }
    let mut fired = false;
    loop {
        // SAFETY: continues our stopped child without a signal.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, 0) };
        match wait_stop(pid) {
            Some(libc::SIGTRAP) => {
                // SAFETY: siginfo of our stopped child into a zeroed struct.
                let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: as above.
                unsafe { libc::ptrace(libc::PTRACE_GETSIGINFO, pid, 0, &mut si as *mut libc::siginfo_t) };
                // SAFETY: the kernel filled a SIGTRAP siginfo, whose si_addr is valid.
                let addr = unsafe { si.si_addr() } as u64;
                println!("hostdebug: host watchpoint fired: si_code {} at {addr:#x}", si.si_code);
                fired |= si.si_code == TRAP_HWBKPT && addr == std::ptr::addr_of!(WATCHED) as u64;
                // Disarm it, so the store completes.
                set_watchpoint(pid, 0);
            }
            Some(sig) => println!("hostdebug: child stopped by signal {sig}"),
            None => break,
        }
    }
    println!("hostdebug: host watchpoint after the guest's debug run: {}", if fired { "fired" } else { "LOST" });
    ExitCode::from(u8::from(!fired))
}
