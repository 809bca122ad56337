//! Interrupts threads that may be stuck in `VM_RUN` of a guest that never
//! exits: a thread enrolls, and a kicker thread sends it SIGUSR1 (whose
//! handler does nothing and does not restart the call) every few
//! milliseconds, so `VM_RUN` returns `EINTR` and the thread can look at the clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const SLOTS: usize = 64;
/// Kernel thread ids of enrolled threads (0: free). Kicked with tgkill, so
/// a thread that has just ended gets nothing and harms nothing.
static THREADS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static STARTED: AtomicBool = AtomicBool::new(false);

extern "C" fn nothing(_: libc::c_int) {}

/// Installs the handler and starts the kicker (once).
pub fn start() {
    if STARTED.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: installs a handler that does nothing, without SA_RESTART, so
    // a blocking ioctl returns EINTR.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = nothing as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
    std::thread::spawn(|| loop {
        std::thread::sleep(Duration::from_millis(5));
        for t in &THREADS {
            let tid = t.load(Ordering::Relaxed);
            if tid != 0 {
                // SAFETY: a signal to a thread of this process (ESRCH if it is gone).
                unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid as libc::pid_t, libc::SIGUSR1) };
            }
        }
    });
}

/// Enrollment of the calling thread until the guard drops.
pub struct Enrolled(usize);

/// Enrolls the calling thread for kicks.
pub fn enroll() -> Enrolled {
    start();
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() } as u64;
    for (i, t) in THREADS.iter().enumerate() {
        if t.compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
            return Enrolled(i);
        }
    }
    panic!("more than {SLOTS} threads enrolled for kicks");
}

impl Drop for Enrolled {
    fn drop(&mut self) {
        THREADS[self.0].store(0, Ordering::SeqCst);
    }
}
