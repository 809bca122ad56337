//! Who is on, and why the VM stops: the state the vCPU threads share.
//!
//! Each vCPU is off, on, or being turned on (a `CPU_ON` named it and its
//! thread has not started it yet). The first reason to stop is kept, and
//! every waiter is woken then: vCPU threads that are off, and the thread
//! that waits for the stop to tell the others.
//!
//! One lock and one condition variable for everything: changes are rare (a
//! `CPU_ON`, a `CPU_OFF`, the stop), and under one lock "every vCPU is off"
//! and "the first stop wins" are plain comparisons. The stop is also kept in
//! an atomic, which vCPU threads read before every run without the lock.

use crate::psci::{CpuOnRefused, PowerState};
use crate::vcpu::Stop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where and how a vCPU starts, from its `CPU_ON`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// Its first PC.
    pub entry: u64,
    /// Its x0.
    pub context_id: u64,
}

#[derive(Debug, Clone, Copy)]
enum Power {
    Off,
    OnPending(Start),
    On,
}

struct Inner {
    power: Vec<Power>,
    /// Threads that have returned (or never started).
    exited: Vec<bool>,
    stop: Option<Stop>,
}

/// The power state of every vCPU, the stop reason, and which vCPU threads
/// are still there.
pub struct Cpus {
    inner: Mutex<Inner>,
    /// Signalled on every change.
    changed: Condvar,
    stopping: AtomicBool,
}

impl Cpus {
    /// `n` vCPUs (at least one): vCPU 0 on (bhyveload set it up), the
    /// others off.
    pub fn new(n: usize) -> Self {
        let mut power = vec![Power::Off; n.max(1)];
        power[0] = Power::On;
        let exited = vec![false; power.len()];
        Self { inner: Mutex::new(Inner { power, exited, stop: None }), changed: Condvar::new(), stopping: false.into() }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain values, consistent at every unlock: still good after a panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// How many vCPUs.
    pub fn vcpus(&self) -> usize {
        self.lock().power.len()
    }

    /// vCPU `id`'s power state.
    pub fn state(&self, id: usize) -> PowerState {
        match self.lock().power[id] {
            Power::Off => PowerState::Off,
            Power::OnPending(_) => PowerState::OnPending,
            Power::On => PowerState::On,
        }
    }

    /// `CPU_ON`: vCPU `id` is to start as `start` says, if it is off.
    pub fn cpu_on(&self, id: usize, start: Start) -> Result<(), CpuOnRefused> {
        let mut g = self.lock();
        match g.power[id] {
            Power::On => Err(CpuOnRefused::AlreadyOn),
            Power::OnPending(_) => Err(CpuOnRefused::OnPending),
            Power::Off => {
                g.power[id] = Power::OnPending(start);
                self.changed.notify_all();
                Ok(())
            }
        }
    }

    /// Waits, on vCPU `id`'s thread, until a `CPU_ON` names it (its start,
    /// the vCPU staying on-pending until [`Cpus::started`]) or the VM stops
    /// (`None`).
    pub fn wait_for_start(&self, id: usize) -> Option<Start> {
        let mut g = self.lock();
        loop {
            if g.stop.is_some() {
                return None;
            }
            match g.power[id] {
                Power::OnPending(start) => return Some(start),
                // Not on the way to starting: a thread only waits while off.
                Power::On => return None,
                Power::Off => g = self.wait(g),
            }
        }
    }

    /// vCPU `id` is set up and about to run: on.
    pub fn started(&self, id: usize) {
        self.lock().power[id] = Power::On;
        self.changed.notify_all();
    }

    /// `CPU_OFF` of vCPU `id`. Returns whether every vCPU is now off.
    pub fn cpu_off(&self, id: usize) -> bool {
        let mut g = self.lock();
        g.power[id] = Power::Off;
        self.changed.notify_all();
        g.power.iter().all(|p| matches!(p, Power::Off))
    }

    /// Stops the VM for `why`, unless it is already stopping. Returns
    /// whether this was the first reason (the one that counts).
    pub fn stop(&self, why: Stop) -> bool {
        let mut g = self.lock();
        if g.stop.is_some() {
            return false;
        }
        g.stop = Some(why);
        self.stopping.store(true, Ordering::SeqCst);
        self.changed.notify_all();
        true
    }

    /// Whether the VM is stopping.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Waits until the VM is stopping.
    pub fn wait_for_stop(&self) {
        let mut g = self.lock();
        while g.stop.is_none() {
            g = self.wait(g);
        }
    }

    /// vCPU `id`'s thread has returned, or will never start.
    pub fn exited(&self, id: usize) {
        self.lock().exited[id] = true;
        self.changed.notify_all();
    }

    /// The vCPUs whose threads are still there.
    pub fn alive(&self) -> Vec<usize> {
        self.lock().exited.iter().enumerate().filter(|(_, &e)| !e).map(|(id, _)| id).collect()
    }

    /// Waits up to `timeout` for every vCPU thread to return; returns
    /// whether they all have.
    pub fn wait_for_exits(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if g.exited.iter().all(|&e| e) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self.changed.wait_timeout(g, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// The reason the VM stopped, once (`None` if it is not stopping, or
    /// was taken).
    pub fn take_stop(&self) -> Option<Stop> {
        self.lock().stop.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use std::sync::Arc;
    use std::thread;

    const S: Start = Start { entry: 0x4000_1000, context_id: 7 };

    #[test]
    fn vcpu_0_starts_on_the_others_off() {
        let c = Cpus::new(3);
        assert_eq!(c.vcpus(), 3);
        assert_eq!([0, 1, 2].map(|i| c.state(i)), [PowerState::On, PowerState::Off, PowerState::Off]);
        assert!(!c.stopping());
        assert_eq!(c.alive(), vec![0, 1, 2]);
        assert_eq!(Cpus::new(0).vcpus(), 1, "never without a vCPU");
    }

    #[test]
    fn cpu_on_is_refused_unless_off() {
        let c = Cpus::new(2);
        assert_eq!(c.cpu_on(0, S), Err(CpuOnRefused::AlreadyOn));
        assert_eq!(c.cpu_on(1, S), Ok(()));
        assert_eq!(c.state(1), PowerState::OnPending);
        assert_eq!(c.cpu_on(1, Start { entry: 0, context_id: 0 }), Err(CpuOnRefused::OnPending));
        assert_eq!(c.wait_for_start(1), Some(S), "the first CPU_ON's start");
        assert_eq!(c.state(1), PowerState::OnPending, "until the thread says so");
        c.started(1);
        assert_eq!(c.state(1), PowerState::On);
        assert_eq!(c.cpu_on(1, S), Err(CpuOnRefused::AlreadyOn));
    }

    #[test]
    fn all_off_counts_pending_as_on() {
        let c = Cpus::new(3);
        c.cpu_on(1, S).unwrap();
        assert!(!c.cpu_off(0), "vCPU 1 is on its way");
        assert_eq!(c.state(0), PowerState::Off);
        c.started(1);
        assert_eq!(c.cpu_on(0, S), Ok(()), "off vCPUs can be turned on again");
        c.started(0);
        assert!(!c.cpu_off(1));
        assert!(c.cpu_off(0), "the last one");
    }

    #[test]
    fn the_last_cpu_off_is_all_off() {
        assert!(Cpus::new(1).cpu_off(0));
        let c = Cpus::new(2);
        assert!(c.cpu_off(0));
    }

    #[test]
    fn a_waiting_thread_starts_on_cpu_on() {
        let c = Arc::new(Cpus::new(2));
        let c2 = c.clone();
        let t = thread::spawn(move || c2.wait_for_start(1));
        thread::sleep(Duration::from_millis(10));
        c.cpu_on(1, S).unwrap();
        assert_eq!(t.join().unwrap(), Some(S));
    }

    #[test]
    fn the_first_stop_wins_and_wakes_everyone() {
        let c = Arc::new(Cpus::new(3));
        let waiters: Vec<_> = (1..3)
            .map(|id| {
                let c = c.clone();
                thread::spawn(move || c.wait_for_start(id))
            })
            .collect();
        let c2 = c.clone();
        let watcher = thread::spawn(move || c2.wait_for_stop());
        thread::sleep(Duration::from_millis(10));
        assert!(c.stop(Stop::PowerOff));
        assert!(!c.stop(Stop::Signal(Signal::SIGTERM)), "second");
        assert!(c.stopping());
        for w in waiters {
            assert_eq!(w.join().unwrap(), None);
        }
        watcher.join().unwrap();
        assert!(matches!(c.take_stop(), Some(Stop::PowerOff)));
        assert!(c.take_stop().is_none(), "once");
        assert!(c.stopping(), "still stopping");
    }

    #[test]
    fn a_stopping_vm_starts_nobody() {
        let c = Cpus::new(2);
        c.cpu_on(1, S).unwrap();
        c.stop(Stop::Halt);
        assert_eq!(c.wait_for_start(1), None);
        assert_eq!(c.wait_for_start(0), None, "vCPU 0 is on: nothing to wait for");
    }

    #[test]
    fn exits_are_tracked() {
        let c = Arc::new(Cpus::new(3));
        c.exited(1);
        assert_eq!(c.alive(), vec![0, 2]);
        assert!(!c.wait_for_exits(Duration::from_millis(5)), "times out");
        let c2 = c.clone();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            c2.exited(0);
            c2.exited(2);
        });
        assert!(c.wait_for_exits(Duration::from_secs(10)));
        assert!(c.alive().is_empty());
        t.join().unwrap();
    }
}
