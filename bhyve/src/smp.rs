//! Several vCPUs: one thread each, all started at once. vCPU 0 runs; the
//! others wait, off, for a PSCI `CPU_ON` ([`vcpu_life`]). The calling thread
//! waits for the first reason to stop, then gets every vCPU thread out:
//! those that are off wake up by themselves, those in `VM_RUN` are kicked,
//! again and again (a kick can be lost), until they have all returned.
//!
//! The VM is not suspended to stop it: an error leaves it as it was, to be
//! inspected (`bhyvectl --get-all`) or reloaded.

use crate::error::Error;
use crate::power::Cpus;
use crate::signals;
use crate::vcpu::{vcpu_life, Machine, Stop, VcpuOps};
use nix::sys::signal::Signal;
use std::sync::Mutex;
use std::time::Duration;

/// How often a vCPU thread that has not returned is kicked again.
pub const KICK_INTERVAL: Duration = Duration::from_millis(10);

/// How the vCPU threads are interrupted.
pub trait Kick: Sync {
    /// Called on vCPU `id`'s thread as it starts.
    fn register(&self, id: usize);
    /// Interrupts vCPU `id`'s run, if it is in one.
    fn kick(&self, id: usize);
}

/// A vCPU thread's id in the kernel: kicks go to it with `tgkill`, which
/// names bhyve's process too, so that the sandbox can allow signals to
/// bhyve's own threads only.
#[derive(Clone, Copy)]
struct Thread(libc::pid_t);

/// Kicks with [`signals::KICK`] (install it first: [`signals::install`]).
pub struct SignalKick {
    threads: Mutex<Vec<Option<Thread>>>,
}

impl SignalKick {
    /// For `n` vCPU threads.
    pub fn new(n: usize) -> Self {
        Self { threads: Mutex::new(vec![None; n]) }
    }
}

impl Kick for SignalKick {
    fn register(&self, id: usize) {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())[id] = Some(Thread(nix::unistd::gettid().as_raw()));
    }

    fn kick(&self, id: usize) {
        // [`run`] kicks only threads it has not joined. A thread that has
        // returned meanwhile is still there to signal (ESRCH at worst).
        if let Some(Thread(t)) = self.threads.lock().unwrap_or_else(|e| e.into_inner())[id] {
            let _ = signals::kick_tid(t);
        }
    }
}

/// Marks a vCPU thread as returned, even when it panics (then as the
/// reason to stop, too).
struct Exited<'a> {
    cpus: &'a Cpus,
    id: usize,
}

impl Drop for Exited<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.cpus.stop(Stop::Error(Error::Panicked { vcpu: self.id }));
        }
        self.cpus.exited(self.id);
    }
}

/// Runs `vcpus` (as many as `m.cpus` has, each knowing its number), each on
/// its own thread, until the VM stops. Returns why, and the vCPUs back
/// (those whose threads did not panic), in order. `signal` says whether a
/// stop signal arrived (see [`crate::vcpu::run_loop`]).
pub fn run<V: VcpuOps + Send>(
    m: &Machine,
    vcpus: Vec<V>,
    signal: impl Fn() -> Option<Signal> + Sync,
    kick: &impl Kick,
) -> (Stop, Vec<V>) {
    std::thread::scope(|s| {
        let mut threads = Vec::with_capacity(vcpus.len());
        let mut started = vec![false; m.cpus.vcpus()];
        for mut vcpu in vcpus {
            let id = vcpu.id() as usize;
            let signal = &signal;
            let thread = std::thread::Builder::new().name(format!("vcpu {id}")).spawn_scoped(s, move || {
                let _exited = Exited { cpus: m.cpus, id };
                kick.register(id);
                vcpu_life(&mut vcpu, m, signal);
                vcpu
            });
            match thread {
                Ok(t) => {
                    threads.push(t);
                    started[id] = true;
                }
                Err(err) => {
                    m.cpus.stop(Stop::Error(Error::Thread { vcpu: id, err }));
                    break;
                }
            }
        }
        for (id, _) in started.iter().enumerate().filter(|(_, s)| !**s) {
            m.cpus.exited(id);
        }
        let stop = supervise(m.cpus, |id| kick.kick(id));
        let vcpus = threads.into_iter().filter_map(|t| t.join().ok()).collect();
        (stop, vcpus)
    })
}

/// Waits for the VM to stop, then kicks every vCPU thread that has not
/// returned, every [`KICK_INTERVAL`], until none is left. Returns why the VM
/// stopped.
pub fn supervise(cpus: &Cpus, kick: impl Fn(usize)) -> Stop {
    cpus.wait_for_stop();
    loop {
        let alive = cpus.alive();
        if alive.is_empty() {
            break;
        }
        for id in alive {
            kick(id);
        }
        cpus.wait_for_exits(KICK_INTERVAL);
    }
    cpus.take_stop().expect("a stopping VM has a reason, taken only here")
}

#[cfg(test)]
mod tests;
