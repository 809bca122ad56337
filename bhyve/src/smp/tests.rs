//! Several vCPU threads against fake vCPUs of a fake VM: who starts whom,
//! CPU_OFF, every vCPU off, and how a stop reaches every thread.
//!
//! The fake VM behaves as the kernel does where it matters here: a suspend
//! makes every run return `Suspended` (those in progress too), and a kick
//! makes a run in progress fail with `EINTR`; as with a signal, a kick that
//! comes before the run is lost.

use super::*;
use crate::bus::Bus;
use crate::layout::RAM_BASE;
use crate::psci::{func, Platform, PowerState};
use crate::vcpu::{Machine, Stop, VcpuOps};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use vmm_uapi::VmExit;
use vmmapi::{Errno, Exit, InstEmul, SuspendHow, VmExitInfo, VmReg};

const PC: u64 = 0x4000_0100;
const RAM_SIZE: u64 = 64 << 20;
/// How long a scenario may take before the test fails rather than hangs.
const TIMEOUT: Duration = Duration::from_secs(20);

/// What a fake vCPU was asked, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Activate,
    Set(VmReg, u64),
    /// A run that returned an exit.
    Run,
    /// A run that failed with EINTR (kicked).
    Interrupted,
    Suspend(SuspendHow),
}

/// What a [`Step::Until`] waits for.
type Condition = Box<dyn Fn(&Cpus, &VmState) -> bool + Send>;

/// One scripted answer of a fake's `run`.
enum Step {
    Exit(Exit),
    /// Runs until kicked (EINTR) or the VM is suspended.
    Block,
    /// As Block, but the first `n` kicks are lost, as when a signal lands
    /// just before the thread enters the kernel.
    Deaf(u32),
    /// Runs until `cond` holds for the power states and the fake VM (or
    /// the VM stops), then exits with nothing to do.
    Until(Condition),
    /// A stop signal arrives during the run.
    Signal(Signal),
    /// bhyve has a bug.
    Panic,
}

struct VmState {
    suspended: Option<SuspendHow>,
    /// Kicks so far, by vCPU.
    kicks: Vec<u32>,
    /// Which vCPUs are in a blocking run.
    blocked: Vec<bool>,
}

/// The fake VM: suspend state and kicks, shared by its fake vCPUs.
struct FakeVm {
    state: Mutex<VmState>,
    changed: Condvar,
    /// The stop signal that arrived, or 0.
    signal: AtomicI32,
}

impl FakeVm {
    fn new(n: usize) -> Self {
        let state = VmState { suspended: None, kicks: vec![0; n], blocked: vec![false; n] };
        FakeVm { state: Mutex::new(state), changed: Condvar::new(), signal: AtomicI32::new(0) }
    }

    fn signal(&self) -> Option<Signal> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            n => Signal::try_from(n).ok(),
        }
    }

    /// A run that waits for a kick (after `deaf` lost ones) or a suspend.
    fn block(&self, id: usize, deaf: u32) -> Result<(), SuspendHow> {
        let mut s = self.state.lock().unwrap();
        let lost = s.kicks[id] + deaf;
        s.blocked[id] = true;
        let r = loop {
            if let Some(how) = s.suspended {
                break Err(how);
            }
            if s.kicks[id] > lost {
                break Ok(());
            }
            s = self.changed.wait(s).unwrap();
        };
        s.blocked[id] = false;
        r
    }
}

impl Kick for FakeVm {
    fn register(&self, _: usize) {}
    fn kick(&self, id: usize) {
        let mut s = self.state.lock().unwrap();
        s.kicks[id] += 1;
        self.changed.notify_all();
    }
}

/// A fake vCPU of a [`FakeVm`], running a script.
struct FakeCpu {
    id: i32,
    vm: Arc<FakeVm>,
    cpus: Arc<Cpus>,
    script: VecDeque<Step>,
    log: Vec<Event>,
}

impl FakeCpu {
    fn err(&self, op: &'static str, errno: Errno) -> vmmapi::Error {
        vmmapi::Error::Vcpu { name: "g".into(), vcpu: self.id, op, errno }
    }

    fn exit(&mut self, exit: Exit) -> vmmapi::Result<VmExitInfo> {
        self.log.push(Event::Run);
        Ok(VmExitInfo { pc: PC, exit, raw: VmExit::default() })
    }

    fn interrupted(&mut self) -> vmmapi::Result<VmExitInfo> {
        self.log.push(Event::Interrupted);
        Err(self.err("run", Errno::EINTR))
    }
}

// These tests never emulate an access without a syndrome (no guest memory).
impl crate::insn::Registers for FakeCpu {
    fn get_registers(&mut self, _: &[VmReg]) -> vmmapi::Result<Vec<u64>> {
        Err(self.err("get registers", Errno::EIO))
    }
    fn set_registers(&mut self, _: &[(VmReg, u64)]) -> vmmapi::Result<()> {
        Err(self.err("set registers", Errno::EIO))
    }
}

impl VcpuOps for FakeCpu {
    fn id(&self) -> i32 {
        self.id
    }
    fn vm_name(&self) -> &str {
        "g"
    }
    fn activate(&mut self) -> vmmapi::Result<()> {
        self.log.push(Event::Activate);
        Ok(())
    }
    fn run(&mut self, _: Option<u64>) -> vmmapi::Result<VmExitInfo> {
        let suspended = self.vm.state.lock().unwrap().suspended;
        if let Some(how) = suspended {
            return self.exit(Exit::Suspended(how));
        }
        let id = self.id as usize;
        match self.script.pop_front() {
            Some(Step::Exit(e)) => self.exit(e),
            Some(Step::Block) => match self.vm.block(id, 0) {
                Ok(()) => self.interrupted(),
                Err(how) => self.exit(Exit::Suspended(how)),
            },
            Some(Step::Deaf(n)) => match self.vm.block(id, n) {
                Ok(()) => self.interrupted(),
                Err(how) => self.exit(Exit::Suspended(how)),
            },
            Some(Step::Until(cond)) => {
                while !cond(&self.cpus, &self.vm.state.lock().unwrap()) && !self.cpus.stopping() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                self.exit(Exit::Bogus)
            }
            Some(Step::Signal(sig)) => {
                self.vm.signal.store(sig as i32, Ordering::SeqCst);
                self.interrupted()
            }
            Some(Step::Panic) => panic!("a bug in bhyve (this panic is part of the test)"),
            // Past the script: a test that gets here forgot to stop.
            None => Err(self.err("run", Errno::EIO)),
        }
    }
    fn set_register(&mut self, reg: VmReg, val: u64) -> vmmapi::Result<()> {
        self.log.push(Event::Set(reg, val));
        Ok(())
    }
    fn suspend(&mut self, how: SuspendHow) -> vmmapi::Result<()> {
        self.log.push(Event::Suspend(how));
        let mut s = self.vm.state.lock().unwrap();
        // The first reason stays, as in the kernel.
        s.suspended.get_or_insert(how);
        self.vm.changed.notify_all();
        Ok(())
    }
}

fn psci(f: u32, args: &[u64]) -> Step {
    let mut a = [0u64; 7];
    a[..args.len()].copy_from_slice(args);
    Step::Exit(Exit::Smccc { func_id: f as u64, args: a })
}

/// `CPU_ON` (SMC64) of vCPU `id`, by its MPIDR.
fn cpu_on(id: usize, entry: u64, context_id: u64) -> Step {
    psci(func::CPU_ON_64, &[Platform::mpidr_of(id), entry, context_id])
}

/// Waits until vCPU `id` is in `state`.
fn until(id: usize, state: PowerState) -> Step {
    Step::Until(Box::new(move |c, _| c.state(id) == state))
}

/// Waits until vCPUs `ids` are all in a blocking run.
fn until_blocked(ids: &'static [usize]) -> Step {
    Step::Until(Box::new(move |_, vm| ids.iter().all(|&id| vm.blocked[id])))
}

/// Waits, on the test's thread, until vCPUs `ids` are all in a blocking run.
fn wait_blocked(vm: &FakeVm, ids: &[usize]) {
    while !ids.iter().all(|&id| vm.state.lock().unwrap().blocked[id]) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn unhandled_read() -> Step {
    let a = InstEmul {
        gpa: 0x4400_0000,
        esr_el2: 0,
        access_size: 8,
        sign_extend: false,
        write: false,
        sf: true,
        reg: 1,
        data: 0,
    };
    Step::Exit(Exit::InstEmul(a))
}

/// What a scenario left.
struct Outcome {
    stop: Stop,
    /// Each vCPU's log, by number.
    logs: Vec<Vec<Event>>,
    suspended: Option<SuspendHow>,
    kicks: Vec<u32>,
}

/// Runs one script per vCPU through [`run`], with a timeout. `during` runs
/// on the test's thread meanwhile (a signal, a destroy...).
fn scenario_with(scripts: Vec<Vec<Step>>, during: impl FnOnce(&Cpus, &FakeVm) + Send + 'static) -> Outcome {
    let n = scripts.len();
    let vm = Arc::new(FakeVm::new(n));
    let cpus = Arc::new(Cpus::new(n));
    let (tx, rx) = mpsc::channel();
    let (v, c) = (vm.clone(), cpus.clone());
    std::thread::spawn(move || {
        let bus = Bus::new();
        let m = Machine {
            bus: &bus,
            cpus: &c,
            platform: Platform { vcpus: n, ram_base: RAM_BASE, ram_size: RAM_SIZE },
            mem: None,
        };
        let vcpus = scripts
            .into_iter()
            .enumerate()
            .map(|(id, s)| FakeCpu { id: id as i32, vm: v.clone(), cpus: c.clone(), script: s.into(), log: vec![] })
            .collect();
        let (stop, vcpus) = run(&m, vcpus, || v.signal(), &*v);
        let logs = vcpus.into_iter().map(|f| (f.id, f.log)).collect::<Vec<_>>();
        let _ = tx.send((stop, logs));
    });
    during(&cpus, &vm);
    let (stop, logs) = rx.recv_timeout(TIMEOUT).expect("the vCPU threads stop");
    let ids: Vec<i32> = logs.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (0..n as i32).collect::<Vec<_>>(), "every vCPU back, in order");
    let s = vm.state.lock().unwrap();
    assert!(cpus.alive().is_empty(), "every thread returned");
    Outcome { stop, logs: logs.into_iter().map(|(_, l)| l).collect(), suspended: s.suspended, kicks: s.kicks.clone() }
}

fn scenario(scripts: Vec<Vec<Step>>) -> Outcome {
    scenario_with(scripts, |_, _| {})
}

/// The registers a log sets, in order.
fn sets(log: &[Event]) -> Vec<(VmReg, u64)> {
    log.iter()
        .filter_map(|e| match e {
            Event::Set(r, v) => Some((*r, *v)),
            _ => None,
        })
        .collect()
}

const ENTRY: u64 = RAM_BASE + 0x8_0000;

#[test]
fn cpu_on_starts_a_waiting_vcpu_at_its_entry_point() {
    let o = scenario(vec![
        vec![cpu_on(1, ENTRY, 0xfeed_f00d_1234_5678), Step::Block],
        vec![until_blocked(&[0]), psci(func::SYSTEM_OFF, &[])],
    ]);
    assert!(matches!(o.stop, Stop::PowerOff), "{:?}", o.stop);
    assert_eq!(
        o.logs[1],
        vec![
            Event::Activate,
            Event::Set(VmReg::PC, ENTRY),
            Event::Set(VmReg::x(0), 0xfeed_f00d_1234_5678),
            Event::Run,
            Event::Run,
            Event::Suspend(SuspendHow::Poweroff)
        ]
    );
    // CPU_ON succeeded, then vCPU 0 ran until the suspend stopped it.
    assert_eq!(o.logs[0], [Event::Run, Event::Set(VmReg::x(0), 0), Event::Run]);
    assert!(!o.logs[0].contains(&Event::Activate), "vCPU 0 is where bhyveload left it");
}

#[test]
fn cpu_on_smc32_starts_at_the_low_halves() {
    let o = scenario(vec![
        vec![psci(func::CPU_ON_32, &[0xffff_ffff_8000_0001, 0xdead_beef_4000_2000, 0x1_0000_0007]), Step::Block],
        vec![psci(func::SYSTEM_RESET, &[])],
    ]);
    assert!(matches!(o.stop, Stop::Reset));
    assert_eq!(o.stop.exit_code(), 0);
    assert_eq!(sets(&o.logs[1]), vec![(VmReg::PC, 0x4000_2000), (VmReg::x(0), 7)]);
}

#[test]
fn cpu_on_of_a_running_vcpu_is_already_on() {
    let o = scenario(vec![
        vec![
            cpu_on(1, ENTRY, 0),
            until(1, PowerState::On),
            cpu_on(1, ENTRY, 0),
            psci(func::AFFINITY_INFO_64, &[1, 0]),
            psci(func::SYSTEM_OFF, &[]),
        ],
        vec![Step::Block],
    ]);
    assert!(matches!(o.stop, Stop::PowerOff));
    let x0: Vec<u64> = sets(&o.logs[0]).into_iter().map(|(_, v)| v).collect();
    assert_eq!(x0, vec![0, crate::psci::ALREADY_ON, 0], "success, ALREADY_ON, AFFINITY_INFO ON");
}

#[test]
fn cpu_off_then_cpu_on_again() {
    let o = scenario(vec![
        vec![
            cpu_on(1, ENTRY, 1),
            until(1, PowerState::Off),
            psci(func::AFFINITY_INFO_32, &[1, 0]),
            cpu_on(1, ENTRY + 0x100, 2),
            Step::Block,
        ],
        vec![psci(func::CPU_OFF, &[]), psci(func::SYSTEM_RESET, &[])],
    ]);
    assert!(matches!(o.stop, Stop::Reset), "{:?}", o.stop);
    assert_eq!(
        o.logs[1],
        vec![
            Event::Activate,
            Event::Set(VmReg::PC, ENTRY),
            Event::Set(VmReg::x(0), 1),
            Event::Run, // CPU_OFF: no answer
            Event::Activate,
            Event::Set(VmReg::PC, ENTRY + 0x100),
            Event::Set(VmReg::x(0), 2),
            Event::Run,
            Event::Suspend(SuspendHow::Reset)
        ]
    );
    let x0: Vec<u64> = sets(&o.logs[0]).into_iter().map(|(_, v)| v).collect();
    assert_eq!(x0, vec![0, 1, 0], "success, AFFINITY_INFO OFF, success");
}

#[test]
fn all_vcpus_off_is_a_halt() {
    let o = scenario(vec![
        vec![cpu_on(1, ENTRY, 0), psci(func::CPU_OFF, &[])],
        vec![until(0, PowerState::Off), psci(func::CPU_OFF, &[])],
        // vCPU 2 never starts: off all along.
        vec![],
    ]);
    assert!(matches!(o.stop, Stop::AllOff), "{:?}", o.stop);
    assert_eq!(o.stop.exit_code(), 2);
    assert_eq!(o.stop.message().unwrap(), "all vCPUs are off");
    assert_eq!(o.suspended, Some(SuspendHow::Halt));
    assert_eq!(o.logs[1].last(), Some(&Event::Suspend(SuspendHow::Halt)), "by the last one off");
    assert!(o.logs[2].is_empty());
}

#[test]
fn a_lone_vcpu_off_is_a_halt() {
    let o = scenario(vec![vec![psci(func::CPU_OFF, &[])]]);
    assert!(matches!(o.stop, Stop::AllOff));
}

#[test]
fn an_error_on_one_vcpu_stops_the_others_and_leaves_the_vm() {
    let o = scenario(vec![
        vec![cpu_on(1, ENTRY, 0), cpu_on(2, ENTRY, 0), Step::Block],
        vec![Step::Block],
        vec![until_blocked(&[0, 1]), unhandled_read()],
        vec![],
    ]);
    assert_eq!(o.stop.exit_code(), 4);
    let msg = o.stop.message().unwrap();
    assert!(msg.starts_with("unhandled read of 8 bytes at 0x44000000") && msg.ends_with("on vCPU 2"), "{msg}");
    assert_eq!(o.suspended, None, "the VM is left as it is");
    assert!(o.logs.iter().flatten().all(|e| !matches!(e, Event::Suspend(_))));
    for id in [0, 1] {
        assert_eq!(o.logs[id].last(), Some(&Event::Interrupted), "vCPU {id} kicked out of its run");
        assert!(o.kicks[id] >= 1);
    }
    assert!(o.logs[3].is_empty(), "vCPU 3 stayed off and left");
}

#[test]
fn system_off_from_vcpu_2_stops_all_with_exit_1() {
    let o = scenario(vec![
        vec![cpu_on(1, ENTRY, 0), cpu_on(2, ENTRY, 0), Step::Block],
        vec![Step::Block],
        vec![until_blocked(&[0, 1]), psci(func::SYSTEM_OFF, &[])],
    ]);
    assert!(matches!(o.stop, Stop::PowerOff));
    assert_eq!((o.stop.exit_code(), o.stop.message()), (1, None));
    assert_eq!(o.suspended, Some(SuspendHow::Poweroff));
    let suspends: Vec<usize> = (0..3).filter(|&id| o.logs[id].iter().any(|e| matches!(e, Event::Suspend(_)))).collect();
    assert_eq!(suspends, vec![2], "only the caller suspends");
    for id in [0, 1] {
        assert_eq!(o.logs[id].last(), Some(&Event::Run), "vCPU {id}'s run returned the suspend");
    }
}

#[test]
fn a_stop_signal_on_one_vcpu_stops_all() {
    let o = scenario(vec![
        vec![cpu_on(1, ENTRY, 0), Step::Block],
        vec![until_blocked(&[0]), Step::Signal(Signal::SIGTERM)],
        vec![],
    ]);
    assert!(matches!(o.stop, Stop::Signal(Signal::SIGTERM)), "{:?}", o.stop);
    assert_eq!(o.suspended, None);
    assert_eq!(o.logs[0].last(), Some(&Event::Interrupted));
}

#[test]
fn a_stop_from_outside_stops_all() {
    // The signal thread's way: the VM stops while every vCPU is in the guest.
    let o = scenario_with(vec![vec![cpu_on(1, ENTRY, 0), Step::Block], vec![Step::Block], vec![]], |cpus, vm| {
        wait_blocked(vm, &[0, 1]);
        cpus.stop(Stop::Signal(Signal::SIGINT));
    });
    assert!(matches!(o.stop, Stop::Signal(Signal::SIGINT)));
    assert!(o.logs[0].ends_with(&[Event::Interrupted]) && o.logs[1].ends_with(&[Event::Interrupted]));
    assert!(o.logs[2].is_empty());
}

#[test]
fn the_vm_destroyed_under_running_vcpus() {
    let o = scenario_with(vec![vec![cpu_on(1, ENTRY, 0), Step::Block], vec![Step::Block]], |_, vm| {
        wait_blocked(vm, &[0, 1]);
        // bhyvectl --destroy: the kernel suspends the VM.
        vm.state.lock().unwrap().suspended = Some(SuspendHow::Destroy);
        vm.changed.notify_all();
    });
    assert_eq!(o.stop.message().unwrap(), "VM 'g' was destroyed");
}

#[test]
fn a_lost_kick_is_repeated() {
    let o = scenario(vec![vec![cpu_on(1, ENTRY, 0), Step::Deaf(3)], vec![until_blocked(&[0]), unhandled_read()]]);
    assert_eq!(o.stop.exit_code(), 4);
    assert!(o.kicks[0] >= 4, "kicked until it left: {:?}", o.kicks);
}

#[test]
fn every_off_vcpu_leaves_when_the_vm_stops() {
    let mut scripts = vec![vec![unhandled_read()]];
    scripts.resize_with(32, Vec::new);
    let o = scenario(scripts);
    assert_eq!(o.stop.exit_code(), 4);
    assert!(o.logs[1..].iter().all(Vec::is_empty));
}

#[test]
fn a_panicking_vcpu_thread_stops_the_vm() {
    let n = 2;
    let vm = Arc::new(FakeVm::new(n));
    let cpus = Arc::new(Cpus::new(n));
    let bus = Bus::new();
    let m = Machine {
        bus: &bus,
        cpus: &cpus,
        platform: Platform { vcpus: n, ram_base: RAM_BASE, ram_size: RAM_SIZE },
        mem: None,
    };
    let scripts = vec![vec![cpu_on(1, ENTRY, 0), Step::Block], vec![Step::Panic]];
    let vcpus = scripts
        .into_iter()
        .enumerate()
        .map(|(id, s)| FakeCpu { id: id as i32, vm: vm.clone(), cpus: cpus.clone(), script: s.into(), log: vec![] })
        .collect();
    let (stop, back) = run(&m, vcpus, || None, &*vm);
    assert_eq!(stop.message().unwrap(), "vCPU 1: bhyve's thread for it panicked");
    assert_eq!(back.iter().map(|v| v.id).collect::<Vec<_>>(), vec![0], "the panicked one is lost");
}

#[test]
fn supervise_kicks_until_every_thread_is_gone() {
    let cpus = Arc::new(Cpus::new(3));
    cpus.exited(2);
    let kicks = Mutex::new(vec![]);
    let c = cpus.clone();
    let t = std::thread::spawn(move || {
        c.stop(Stop::Halt);
        std::thread::sleep(KICK_INTERVAL * 3);
        c.exited(0);
        std::thread::sleep(KICK_INTERVAL * 3);
        c.exited(1);
    });
    let stop = supervise(&cpus, |id| kicks.lock().unwrap().push(id));
    t.join().unwrap();
    assert!(matches!(stop, Stop::Halt));
    let k = kicks.into_inner().unwrap();
    assert!(!k.contains(&2), "never a thread that is gone");
    assert!(k.iter().filter(|&&id| id == 1).count() > k.iter().filter(|&&id| id == 0).count(), "{k:?}");
}

/// The real kick: a thread blocked in a system call gets EINTR (the handler
/// is installed without SA_RESTART), and only that thread.
#[test]
fn signal_kick_interrupts_a_registered_thread() {
    use std::os::fd::AsRawFd;
    signals::install_kick().unwrap();
    let kick = Arc::new(SignalKick::new(1));
    let (r, _w) = nix::unistd::pipe().unwrap();
    let k = kick.clone();
    let t = std::thread::spawn(move || {
        k.register(0);
        nix::unistd::read(r.as_raw_fd(), &mut [0u8; 1])
    });
    while !t.is_finished() {
        kick.kick(0);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(t.join().unwrap(), Err(Errno::EINTR));
    SignalKick::new(1).kick(0); // nobody registered: nothing
}
