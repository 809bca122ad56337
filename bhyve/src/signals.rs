//! Signals: stopping bhyve (SIGINT, SIGTERM, SIGHUP), and kicking a vCPU
//! thread out of `VM_RUN` (SIGUSR1).
//!
//! A stop signal may land on any thread but those that block it (the
//! console's, the watcher's). Its handler records it and writes a byte to a
//! pipe; the [`StopWatch`] thread reads the pipe and stops the VM, and the
//! vCPU thread that took the signal, its `VM_RUN` failing with `EINTR`, sees
//! it too. Either way the other vCPU threads are then kicked. Then bhyve
//! restores the terminal and dies of the same signal, so that its parent sees
//! what happened (a shell shows 130 for SIGINT, 143 for SIGTERM).
//!
//! A kick is SIGUSR1 sent to one thread, whose handler does nothing and is
//! installed without `SA_RESTART`: that thread's `VM_RUN` fails with `EINTR`
//! and the thread looks at the stop. A kick that lands after the thread
//! looked but before it entered the kernel is lost, and the guest runs until
//! its next exit: the kernel has no way to unblock signals atomically with
//! entering the guest (KVM's `KVM_SET_SIGNAL_MASK`, or its `immediate_exit`
//! flag). So the kicker repeats the kick until the thread is gone.

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::pthread::{pthread_kill, Pthread};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{pipe2, read};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The signals that stop bhyve.
pub const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The signal that kicks a vCPU thread out of `VM_RUN`.
pub const KICK: Signal = Signal::SIGUSR1;

/// The last stop signal received, or 0.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// The write end of the [`StopWatch`]'s pipe, or -1.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // An atomic store and write(2): async-signal-safe. errno is the
    // interrupted code's.
    let errno = nix::errno::Errno::last_raw();
    PENDING.store(sig, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) of one byte from a live local to a descriptor
        // bhyve never closes; non-blocking, so a full pipe (a wake-up is
        // already there) does not hang the handler.
        let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    nix::errno::Errno::set_raw(errno);
}

extern "C" fn on_kick(_: libc::c_int) {
    // Nothing: being interrupted is the point.
}

fn stop_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in STOP_SIGNALS {
        set.add(s);
    }
    set
}

/// Where the stop signals are told: see [`StopWatch::wait`]. Keep it for
/// the life of the process: stop signals write to it.
pub struct StopWatch {
    read: OwnedFd,
}

impl StopWatch {
    /// Blocks until a stop signal arrives (or has arrived) and returns it.
    /// Call it on a thread with the stop signals blocked.
    pub fn wait(&self) -> Signal {
        loop {
            if let Some(sig) = pending() {
                return sig;
            }
            let mut b = [0u8; 16];
            // EINTR (a signal this thread does not block): look again. A
            // read error would be a bug; looking again is still right.
            let _ = read(self.read.as_raw_fd(), &mut b);
        }
    }
}

/// A pipe whose write end the stop handler writes to.
fn wake_pipe() -> nix::Result<StopWatch> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
    fcntl(write.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    // Kept open for the process's life: the handler may run at any time.
    let old = WAKE_FD.swap(write.into_raw_fd(), Ordering::SeqCst);
    if old >= 0 {
        // SAFETY: `old` came from an OwnedFd given up above in an earlier
        // call; nothing else owns it. The handler may still write to it for
        // an instant, which at worst writes to whatever reuses the number:
        // only tests call this twice.
        drop(unsafe { OwnedFd::from_raw_fd(old) });
    }
    Ok(StopWatch { read })
}

/// Installs the handlers for the stop signals and the kick, and returns
/// where to wait for a stop signal.
pub fn install() -> nix::Result<StopWatch> {
    let watch = wake_pipe()?;
    // No SA_RESTART: VM_RUN must return EINTR rather than be restarted.
    let stop = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for s in STOP_SIGNALS {
        // SAFETY: the handler only stores to an atomic and write(2)s, which
        // are async-signal-safe; it replaces the default action of a signal
        // that no other code in bhyve handles.
        unsafe { signal::sigaction(s, &stop) }?;
    }
    install_kick()?;
    Ok(watch)
}

/// Installs the kick's empty handler.
pub(crate) fn install_kick() -> nix::Result<()> {
    let kick = SigAction::new(SigHandler::Handler(on_kick), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler does nothing; no other code in bhyve uses SIGUSR1.
    unsafe { signal::sigaction(KICK, &kick) }.map(drop)
}

/// Interrupts `thread`'s `VM_RUN`, if it is in one. `thread` must not have
/// been joined.
pub fn kick(thread: Pthread) -> nix::Result<()> {
    pthread_kill(thread, KICK)
}

/// Interrupts the `VM_RUN` of bhyve's thread `tid` (a kernel thread id), if
/// it is in one. A thread that has gone gives `ESRCH`; `tgkill` cannot
/// reach another process's thread that took its number.
pub fn kick_tid(tid: libc::pid_t) -> nix::Result<()> {
    // SAFETY: tgkill with integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, KICK as libc::c_int) };
    nix::errno::Errno::result(r).map(drop)
}

/// The stop signal received so far, if any.
pub fn pending() -> Option<Signal> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}

/// Runs `f` with the stop signals blocked in this thread. Threads started in
/// `f` inherit the mask, so they never take a stop signal.
pub fn with_stop_signals_blocked<R>(f: impl FnOnce() -> R) -> nix::Result<R> {
    let mut old = SigSet::empty();
    signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&stop_set()), Some(&mut old))?;
    let r = f();
    signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
    Ok(r)
}

/// Dies of `sig` with its default action, so the exit status says so.
pub fn die_of(sig: Signal) -> ! {
    // SAFETY: SIG_DFL is always a valid disposition.
    let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    // To the process (bhyve itself), not raise(3)'s tkill: the sandbox
    // allows signals to bhyve only, and a process-directed signal names it.
    let _ = signal::kill(nix::unistd::getpid(), sig);
    // raise() returns only if the signal could not be delivered: exit with
    // the status a shell would have shown.
    std::process::exit(128 + sig as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;
    use std::sync::mpsc;
    use std::time::Duration;

    /// PENDING and WAKE_FD are the process's: one test for both.
    #[test]
    fn handler_records_the_signal_and_wakes_the_watch() {
        assert_eq!(pending(), None);
        let watch = wake_pipe().unwrap();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || tx.send(watch.wait()).unwrap());
        std::thread::sleep(Duration::from_millis(10));
        assert!(rx.try_recv().is_err(), "nothing yet");
        Errno::set_raw(libc::EAGAIN);
        on_signal(libc::SIGTERM);
        assert_eq!(Errno::last_raw(), libc::EAGAIN, "errno kept");
        assert_eq!(pending(), Some(Signal::SIGTERM));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Signal::SIGTERM));
        t.join().unwrap();
        PENDING.store(0, Ordering::SeqCst);
    }

    #[test]
    fn blocked_mask_is_inherited_and_restored() {
        let inner = with_stop_signals_blocked(|| {
            std::thread::spawn(|| SigSet::thread_get_mask().unwrap().contains(Signal::SIGINT)).join().unwrap()
        })
        .unwrap();
        assert!(inner, "a thread started inside has SIGINT blocked");
        assert!(!SigSet::thread_get_mask().unwrap().contains(Signal::SIGINT));
    }
}
