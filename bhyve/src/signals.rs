//! Stopping bhyve with a signal: SIGINT, SIGTERM and SIGHUP interrupt the
//! vCPU's `VM_RUN` (their handler is installed without `SA_RESTART`, so the
//! ioctl fails with `EINTR`); the vCPU loop sees the signal, bhyve restores
//! the terminal and then dies of the same signal, so that its parent sees
//! what happened (a shell shows 130 for SIGINT, 143 for SIGTERM).
//!
//! A signal that arrives after the loop checked but before it enters the
//! guest is only seen at the next exit: the kernel has no way to unblock
//! signals atomically with entering the guest (KVM's `KVM_SET_SIGNAL_MASK`).

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use std::sync::atomic::{AtomicI32, Ordering};

/// The signals that stop bhyve.
pub const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The last stop signal received, or 0.
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    PENDING.store(sig, Ordering::SeqCst);
}

fn stop_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in STOP_SIGNALS {
        set.add(s);
    }
    set
}

/// Installs the handler for the stop signals.
pub fn install() -> nix::Result<()> {
    // No SA_RESTART: VM_RUN must return EINTR rather than be restarted.
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for s in STOP_SIGNALS {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; it replaces the default action of a signal that
        // no other code in bhyve handles.
        unsafe { signal::sigaction(s, &action) }?;
    }
    Ok(())
}

/// The stop signal received so far, if any.
pub fn pending() -> Option<Signal> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}

/// Runs `f` with the stop signals blocked in this thread. Threads started in
/// `f` inherit the mask, so they never take a stop signal: it goes to the
/// vCPU thread, where it interrupts `VM_RUN`.
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
    let _ = signal::raise(sig);
    // raise() returns only if the signal could not be delivered: exit with
    // the status a shell would have shown.
    std::process::exit(128 + sig as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_records_the_signal() {
        assert_eq!(pending(), None);
        on_signal(libc::SIGTERM);
        assert_eq!(pending(), Some(Signal::SIGTERM));
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
