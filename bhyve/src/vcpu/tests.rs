//! The vCPU loop and exit handling against a fake vCPU and made-up exits,
//! on this thread; several vCPU threads are `smp`'s tests.

use super::*;
use crate::devices::irq::NoInterrupt;
use crate::devices::pl011::Pl011;
use crate::devices::testdev::{self, TestDev};
use crate::layout::{PL011_BASE, PL011_SIZE, RAM_BASE, TESTDEV_BASE, TESTDEV_SIZE};
use crate::psci::{func, PowerState};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use vmm_uapi::{hyp_reason, HypExit, VmExit};

const PC: u64 = 0x4000_0100;

/// One scripted answer of the fake's `run`.
enum Step {
    Exit(Exit),
    Fail(Errno),
    /// A stop signal arrives during the run: it returns EINTR.
    Signal(Signal),
}

/// A vCPU that answers from a script and records what it is asked.
struct Fake {
    id: i32,
    script: VecDeque<Step>,
    runs: Vec<Option<u64>>,
    regs: Vec<(VmReg, u64)>,
    activations: usize,
    suspends: Vec<SuspendHow>,
    suspend_fails: Option<Errno>,
    set_fails: Option<Errno>,
    signal: Rc<Cell<Option<Signal>>>,
    /// The register file the emulation of accesses without a syndrome reads.
    file: std::collections::HashMap<VmReg, u64>,
}

impl Fake {
    fn new(script: Vec<Step>) -> Self {
        Fake {
            id: 0,
            script: script.into(),
            runs: vec![],
            regs: vec![],
            activations: 0,
            suspends: vec![],
            suspend_fails: None,
            set_fails: None,
            signal: Rc::new(Cell::new(None)),
            file: Default::default(),
        }
    }

    fn err(&self, op: &'static str, errno: Errno) -> vmmapi::Error {
        vmmapi::Error::Vcpu { name: "g".into(), vcpu: 0, op, errno }
    }
}

impl crate::insn::Registers for Fake {
    fn get_registers(&mut self, regs: &[VmReg]) -> vmmapi::Result<Vec<u64>> {
        Ok(regs.iter().map(|r| self.file.get(r).copied().unwrap_or(0)).collect())
    }
    fn set_registers(&mut self, regs: &[(VmReg, u64)]) -> vmmapi::Result<()> {
        if let Some(errno) = self.set_fails {
            return Err(self.err("set registers", errno));
        }
        for &(r, v) in regs {
            self.file.insert(r, v);
            self.regs.push((r, v));
        }
        Ok(())
    }
}

impl VcpuOps for Fake {
    fn id(&self) -> i32 {
        self.id
    }
    fn vm_name(&self) -> &str {
        "g"
    }
    fn activate(&mut self) -> vmmapi::Result<()> {
        self.activations += 1;
        Ok(())
    }
    fn run(&mut self, mmio_data: Option<u64>) -> vmmapi::Result<VmExitInfo> {
        self.runs.push(mmio_data);
        match self.script.pop_front() {
            Some(Step::Exit(exit)) => Ok(info(exit)),
            Some(Step::Fail(errno)) => Err(self.err("run", errno)),
            Some(Step::Signal(sig)) => {
                self.signal.set(Some(sig));
                Err(self.err("run", Errno::EINTR))
            }
            // Past the script: a test that gets here forgot to stop.
            None => Err(self.err("run", Errno::EIO)),
        }
    }
    fn set_register(&mut self, reg: VmReg, val: u64) -> vmmapi::Result<()> {
        if let Some(errno) = self.set_fails {
            return Err(self.err("set register", errno));
        }
        self.regs.push((reg, val));
        Ok(())
    }
    fn suspend(&mut self, how: SuspendHow) -> vmmapi::Result<()> {
        match self.suspend_fails {
            Some(errno) => Err(vmmapi::Error::Vm { name: "g".into(), op: "suspend", errno }),
            None => {
                self.suspends.push(how);
                Ok(())
            }
        }
    }
}

fn info(exit: Exit) -> VmExitInfo {
    VmExitInfo { pc: PC, exit, raw: VmExit::default() }
}

fn access(gpa: u64, size: u8, write: bool, data: u64) -> Exit {
    Exit::InstEmul(InstEmul { gpa, esr_el2: 0, access_size: size, sign_extend: false, write, sf: true, reg: 1, data })
}

fn read(gpa: u64, size: u8) -> Exit {
    access(gpa, size, false, 0)
}

fn write(gpa: u64, size: u8, data: u64) -> Exit {
    access(gpa, size, true, data)
}

fn smccc(func_id: u64) -> Exit {
    Exit::Smccc { func_id, args: [0; 7] }
}

fn psci_call(func_id: u32, args: &[u64]) -> Exit {
    let mut a = [0u64; 7];
    a[..args.len()].copy_from_slice(args);
    Exit::Smccc { func_id: func_id as u64, args: a }
}

/// Output shared between the UART and the test.
#[derive(Clone, Default)]
struct Out(Arc<Mutex<Vec<u8>>>);

impl Write for Out {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Guest RAM in these tests: 64 MiB.
const RAM_SIZE: u64 = 64 << 20;

/// A VM as bhyve builds it: a bus with a UART and a test device, and the
/// power states of `n` vCPUs.
struct Rig {
    bus: Bus,
    out: Out,
    td: Arc<TestDev>,
    cpus: Cpus,
    platform: Platform,
}

impl Rig {
    fn new(n: usize) -> Rig {
        let out = Out::default();
        let mut bus = Bus::new();
        bus.insert(Arc::new(Pl011::new(NoInterrupt, out.clone())), PL011_BASE, PL011_SIZE).unwrap();
        let td = Arc::new(TestDev::new(42));
        bus.insert(td.clone(), TESTDEV_BASE, TESTDEV_SIZE).unwrap();
        let platform = Platform { vcpus: n, ram_base: RAM_BASE, ram_size: RAM_SIZE };
        Rig { bus, out, td, cpus: Cpus::new(n), platform }
    }

    fn m(&self) -> Machine<'_> {
        Machine { bus: &self.bus, cpus: &self.cpus, platform: self.platform, mem: None }
    }

    fn exit(&self, v: &mut Fake, exit: Exit) -> Next {
        handle_exit(v, &self.m(), &info(exit))
    }

    /// Runs the loop; returns how it ended and the VM's stop, if any.
    fn run(&self, v: &mut Fake, signal: impl Fn() -> Option<Signal>) -> (Ended, Option<Stop>) {
        let ended = run_loop(v, &self.m(), signal);
        (ended, self.cpus.take_stop())
    }

    /// Runs the loop, which must stop the VM; returns why.
    fn run_to_stop(&self, v: &mut Fake) -> Stop {
        match self.run(v, || None) {
            (Ended::Stopped, Some(s)) => s,
            other => panic!("expected a stop, got {other:?}"),
        }
    }
}

/// One vCPU.
fn machine() -> Rig {
    Rig::new(1)
}

fn stop(next: Next) -> Stop {
    match next {
        Next::Stop(s) => s,
        n => panic!("expected a stop, got {n:?}"),
    }
}

#[test]
fn reads_pass_the_device_data_to_the_next_run() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    for (size, want) in [(1, 0x87), (2, 0x9687), (4, 0xB4A5_9687), (8, testdev::PATTERN)] {
        match r.exit(&mut v, read(TESTDEV_BASE, size)) {
            Next::Run(Some(d)) => assert_eq!(d, want, "size {size}"),
            n => panic!("{n:?}"),
        }
    }
    assert!(matches!(r.exit(&mut v, read(TESTDEV_BASE + 8, 8)), Next::Run(Some(42))));
    assert_eq!(r.td.stats().reads, 5);
}

#[test]
fn writes_reach_the_device_truncated_to_their_size() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    assert!(matches!(r.exit(&mut v, write(PL011_BASE, 4, 0x4142)), Next::Run(None)));
    assert!(matches!(r.exit(&mut v, write(PL011_BASE, 1, 0x4243)), Next::Run(None)));
    assert_eq!(*r.out.0.lock().unwrap(), b"BC");
    // CHECK sees only `access_size` bytes of `data`.
    r.exit(&mut v, write(TESTDEV_BASE + 0x10, 2, 0xdead_9687));
    let s = r.td.stats();
    assert_eq!((s.good, s.bad), (1, 0));
    assert!(v.runs.is_empty() && v.regs.is_empty(), "handle_exit never runs the vCPU");
}

#[test]
fn unclaimed_access_stops_with_exit_4_and_leaves_the_vm() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    let s = stop(r.exit(&mut v, read(0x4400_0000, 8)));
    assert_eq!(s.exit_code(), 4);
    assert_eq!(
        s.message().unwrap(),
        "unhandled read of 8 bytes at 0x44000000 (no device there), pc 0x40000100 on vCPU 0"
    );
    assert!(v.suspends.is_empty(), "the VM is left as it is");
    v.id = 3;
    let s = stop(r.exit(&mut v, write(PL011_BASE + 0xffc, 8, 1)));
    let msg = s.message().unwrap();
    assert!(msg.contains("runs past the end of the device at 0x09000000..=0x09000fff"), "{msg}");
    assert!(msg.ends_with("on vCPU 3"), "{msg}");
}

#[test]
fn impossible_access_sizes_are_errors() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    for size in [0, 3, 16] {
        let s = stop(r.exit(&mut v, read(PL011_BASE, size)));
        assert!(matches!(s, Stop::Error(Error::BadAccessSize { .. })), "{s:?}");
    }
}

#[test]
fn psci_version_and_unknown_functions() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    assert!(matches!(r.exit(&mut v, smccc(0x8400_0000)), Next::Run(None)));
    assert!(matches!(r.exit(&mut v, smccc(0x8400_0001)), Next::Run(None)));
    assert!(matches!(r.exit(&mut v, smccc(0x8400_0006)), Next::Run(None)));
    assert_eq!(v.regs, vec![(VmReg::x(0), 0x1_0000), (VmReg::x(0), u64::MAX), (VmReg::x(0), 2)]);
    assert!(v.suspends.is_empty());
}

#[test]
fn psci_system_off_and_reset_suspend_the_vm() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    let s = stop(r.exit(&mut v, smccc(0x8400_0008)));
    assert!(matches!(s, Stop::PowerOff));
    assert_eq!((s.exit_code(), s.message()), (1, None));
    let s = stop(r.exit(&mut v, smccc(0x8400_0009)));
    assert!(matches!(s, Stop::Reset));
    assert_eq!(s.exit_code(), 0);
    assert_eq!(v.suspends, vec![SuspendHow::Poweroff, SuspendHow::Reset]);
}

#[test]
fn failed_suspend_is_reported() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    v.suspend_fails = Some(Errno::ENXIO);
    let s = stop(r.exit(&mut v, smccc(0x8400_0008)));
    assert_eq!(s.message().unwrap(), "VM 'g' was destroyed");
    v.suspend_fails = Some(Errno::EINVAL);
    let s = stop(r.exit(&mut v, smccc(0x8400_0008)));
    assert_eq!(s.exit_code(), 4);
    assert!(s.message().unwrap().contains("cannot suspend"), "{:?}", s.message());
}

/// CPU_ON's answers, each in x0 of the caller, vCPU 0 of 4.
#[test]
fn cpu_on_answers() {
    let r = Rig::new(4);
    let mut v = Fake::new(vec![]);
    let x0 = |r: &Rig, v: &mut Fake, f: u32, args: &[u64]| {
        assert!(matches!(r.exit(v, psci_call(f, args)), Next::Run(None)));
        v.regs.pop().map(|(reg, val)| {
            assert_eq!(reg, VmReg::x(0));
            val
        })
    };
    let entry = RAM_BASE + 0x8_0000;
    assert_eq!(x0(&r, &mut v, func::CPU_ON_64, &[0x8000_0000, entry, 1]), Some(psci::ALREADY_ON), "itself");
    assert_eq!(x0(&r, &mut v, func::CPU_ON_64, &[0x8000_0001, entry, 1]), Some(psci::SUCCESS));
    assert_eq!(r.cpus.state(1), PowerState::OnPending);
    assert_eq!(x0(&r, &mut v, func::CPU_ON_64, &[0x8000_0001, entry, 2]), Some(psci::ON_PENDING));
    assert_eq!(r.cpus.wait_for_start(1), Some(Start { entry, context_id: 1 }), "the first call's");
    r.cpus.started(1);
    assert_eq!(x0(&r, &mut v, func::CPU_ON_32, &[1, entry, 1]), Some(psci::ALREADY_ON));
    assert_eq!(x0(&r, &mut v, func::CPU_ON_64, &[4, entry, 1]), Some(psci::INVALID_PARAMETERS), "no vCPU 4");
    assert_eq!(x0(&r, &mut v, func::CPU_ON_64, &[0x1_0002, entry, 1]), Some(psci::INVALID_PARAMETERS), "Aff2");
    assert_eq!(x0(&r, &mut v, func::CPU_ON_64, &[2, entry + 2, 1]), Some(psci::INVALID_ADDRESS));
    assert_eq!(x0(&r, &mut v, func::CPU_ON_64, &[2, RAM_BASE + RAM_SIZE, 1]), Some(psci::INVALID_ADDRESS));
    assert_eq!(x0(&r, &mut v, func::CPU_ON_32, &[2, 0x1000, 1]), Some(psci::INVALID_ADDRESS));
    assert_eq!(r.cpus.state(2), PowerState::Off, "refused calls change nothing");
    // SMC32: the low halves of entry and context id.
    assert_eq!(x0(&r, &mut v, func::CPU_ON_32, &[2, 0xffff_ffff_4000_0040, 0xffff_ffff_0000_0009]), Some(0));
    assert_eq!(r.cpus.wait_for_start(2), Some(Start { entry: 0x4000_0040, context_id: 9 }));
    assert!(v.suspends.is_empty() && v.activations == 0, "the target's thread starts it, not the caller");
}

#[test]
fn affinity_info_answers() {
    let r = Rig::new(3);
    let mut v = Fake::new(vec![]);
    r.cpus.cpu_on(2, Start { entry: RAM_BASE, context_id: 0 }).unwrap();
    for (args, want) in [
        ([0x8000_0000, 0], 0),
        ([1, 0], 1),
        ([0x8000_0002, 0], 2),
        ([3, 0], psci::INVALID_PARAMETERS),
        ([0, 1], psci::INVALID_PARAMETERS),
    ] {
        for f in [func::AFFINITY_INFO_32, func::AFFINITY_INFO_64] {
            assert!(matches!(r.exit(&mut v, psci_call(f, &args)), Next::Run(None)));
            assert_eq!(v.regs.pop(), Some((VmReg::x(0), want)), "{f:#x} {args:?}");
        }
    }
}

#[test]
fn cpu_off_waits_unless_it_is_the_last() {
    let r = Rig::new(2);
    let mut v = Fake::new(vec![]);
    r.cpus.cpu_on(1, Start { entry: RAM_BASE, context_id: 0 }).unwrap();
    assert!(matches!(r.exit(&mut v, psci_call(func::CPU_OFF, &[])), Next::Off));
    assert_eq!(r.cpus.state(0), PowerState::Off);
    assert!(v.regs.is_empty() && v.suspends.is_empty(), "CPU_OFF does not return to the guest");
    r.cpus.started(1);
    v.id = 1;
    let s = stop(r.exit(&mut v, psci_call(func::CPU_OFF, &[])));
    assert!(matches!(s, Stop::AllOff));
    assert_eq!((s.exit_code(), s.message().unwrap()), (2, "all vCPUs are off".into()));
    assert_eq!(v.suspends, vec![SuspendHow::Halt], "halted, as the VM is");
}

#[test]
fn a_failed_answer_stops() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    v.set_fails = Some(Errno::ENXIO);
    let s = stop(r.exit(&mut v, smccc(0x8400_0000)));
    assert!(matches!(s, Stop::Destroyed(_)), "{s:?}");
}

#[test]
fn hyp_exits_are_described() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    let h = HypExit {
        exception_nr: hyp_reason::DABT_NO_SYNDROME,
        esr_el2: 0x9200_0006,
        far_el2: 0x0b00_0000,
        hpfar_el2: 0x0b_0000,
    };
    let s = stop(r.exit(&mut v, Exit::Hyp(h)));
    assert_eq!(s.exit_code(), 4);
    assert!(
        s.message().unwrap().starts_with(
            "vCPU 0 stopped: data abort from the guest (translation fault) without a valid syndrome at 0x0b000000, pc 0x40000100"
        ),
        "{:?}",
        s.message()
    );
}

#[test]
fn suspended_exits_give_bhyve_exit_codes() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    let mut code = |how| {
        let s = stop(r.exit(&mut v, Exit::Suspended(how)));
        (s.exit_code(), s.message())
    };
    assert_eq!(code(SuspendHow::Reset), (0, None));
    assert_eq!(code(SuspendHow::Poweroff), (1, None));
    assert_eq!(code(SuspendHow::Halt), (2, None));
    assert_eq!(code(SuspendHow::Destroy), (4, Some("VM 'g' was destroyed".into())));
    assert_eq!(code(SuspendHow::Triplefault).0, 4);
    assert_eq!(code(SuspendHow::None).0, 4);
}

#[test]
fn bogus_runs_again_and_other_exits_stop() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    assert!(matches!(r.exit(&mut v, Exit::Bogus), Next::Run(None)));
    let s = stop(r.exit(&mut v, Exit::Other(vmm_uapi::exitcode::WFI)));
    assert_eq!(s.exit_code(), 4);
    assert!(s.message().unwrap().starts_with("vCPU 0 stopped: exit code 6 (WFI"), "{:?}", s.message());
}

#[test]
fn loop_completes_reads_and_retries_interrupted_runs() {
    let r = machine();
    let mut v = Fake::new(vec![
        Step::Exit(read(TESTDEV_BASE, 4)),
        Step::Fail(Errno::EINTR),
        Step::Exit(write(PL011_BASE, 1, b'!' as u64)),
        Step::Exit(Exit::Bogus),
        Step::Exit(smccc(0x8400_0000)),
        Step::Exit(smccc(0x8400_0008)),
    ]);
    let s = r.run_to_stop(&mut v);
    assert!(matches!(s, Stop::PowerOff), "{s:?}");
    assert_eq!(
        v.runs,
        vec![
            None,
            Some(0xB4A5_9687),
            Some(0xB4A5_9687), // the interrupted run, again
            None,
            None,
            None
        ]
    );
    assert_eq!(*r.out.0.lock().unwrap(), b"!");
    assert_eq!(v.regs, vec![(VmReg::x(0), 0x1_0000)]);
}

#[test]
fn loop_ends_at_cpu_off_with_the_vm_running() {
    let r = Rig::new(2);
    r.cpus.cpu_on(1, Start { entry: RAM_BASE, context_id: 0 }).unwrap();
    let mut v = Fake::new(vec![Step::Exit(Exit::Bogus), Step::Exit(psci_call(func::CPU_OFF, &[]))]);
    assert!(matches!(r.run(&mut v, || None), (Ended::Off, None)));
    assert_eq!(v.runs.len(), 2);
    assert!(!r.cpus.stopping());
}

#[test]
fn loop_stops_on_a_signal() {
    let r = machine();
    let mut v = Fake::new(vec![Step::Exit(Exit::Bogus), Step::Signal(Signal::SIGTERM)]);
    let flag = v.signal.clone();
    let (ended, s) = r.run(&mut v, || flag.get());
    assert_eq!(ended, Ended::Stopped);
    let s = s.unwrap();
    assert!(matches!(s, Stop::Signal(Signal::SIGTERM)), "{s:?}");
    assert_eq!(s.message().unwrap(), "stopped by SIGTERM");
    assert_eq!(s.exit_code(), 143);
    assert_eq!(v.runs.len(), 2);
    assert_eq!(Stop::Signal(Signal::SIGINT).exit_code(), 130);
}

#[test]
fn loop_checks_for_a_signal_and_a_stop_before_running() {
    let r = machine();
    let mut v = Fake::new(vec![]);
    let (_, s) = r.run(&mut v, || Some(Signal::SIGINT));
    assert!(matches!(s, Some(Stop::Signal(Signal::SIGINT))));
    assert!(v.runs.is_empty());
    // Stopped by another vCPU: this one does not run, and adds no reason.
    let r = machine();
    r.cpus.stop(Stop::Reset);
    assert!(matches!(r.run(&mut v, || None), (Ended::Stopped, Some(Stop::Reset))));
    assert!(v.runs.is_empty());
}

#[test]
fn an_interrupted_run_looks_at_the_stop() {
    // A kick: EINTR, and meanwhile another vCPU stopped the VM.
    let r = machine();
    let mut v = Fake::new(vec![Step::Fail(Errno::EINTR), Step::Exit(Exit::Bogus)]);
    let stopped = Cell::new(false);
    let (ended, s) = r.run(&mut v, || {
        if stopped.replace(true) {
            r.cpus.stop(Stop::PowerOff);
        }
        None
    });
    assert_eq!(ended, Ended::Stopped);
    assert!(matches!(s, Some(Stop::PowerOff)));
    assert_eq!(v.runs.len(), 1, "no run after the interrupted one");
}

#[test]
fn the_first_stop_counts() {
    let r = machine();
    r.cpus.stop(Stop::Signal(Signal::SIGHUP));
    let mut v = Fake::new(vec![]);
    assert!(matches!(r.exit(&mut v, read(0x4400_0000, 8)), Next::Stop(_)));
    let mut v = Fake::new(vec![Step::Exit(read(0x4400_0000, 8))]);
    // Already stopping: the loop does not even run.
    assert!(matches!(r.run(&mut v, || None), (Ended::Stopped, Some(Stop::Signal(Signal::SIGHUP)))));
}

#[test]
fn loop_reports_run_errors() {
    let r = machine();
    let mut v = Fake::new(vec![Step::Fail(Errno::ENXIO)]);
    let s = r.run_to_stop(&mut v);
    assert_eq!((s.exit_code(), s.message().unwrap()), (4, "VM 'g' was destroyed".into()));
    let r = machine();
    let mut v = Fake::new(vec![Step::Exit(Exit::Bogus), Step::Fail(Errno::EBUSY)]);
    let s = r.run_to_stop(&mut v);
    assert_eq!(s.exit_code(), 4);
    assert_eq!(s.message().unwrap(), "VM 'g' vCPU 0: cannot run: EBUSY: Device or resource busy (the vCPU is running)");
}

#[test]
fn loop_stops_at_the_first_error_without_touching_the_vm() {
    let r = machine();
    let mut v = Fake::new(vec![
        Step::Exit(write(PL011_BASE, 1, b'x' as u64)),
        Step::Exit(read(0x4400_0000, 8)),
        Step::Exit(Exit::Bogus),
    ]);
    let s = r.run_to_stop(&mut v);
    assert_eq!(s.exit_code(), 4);
    assert_eq!(v.runs.len(), 2, "no run after the error");
    assert!(v.suspends.is_empty());
}

#[test]
fn a_vcpu_starts_from_reset_at_its_entry_point() {
    let r = Rig::new(2);
    let entry = RAM_BASE + 0x1000;
    r.cpus.cpu_on(1, Start { entry, context_id: 0xc0ff_ee00 }).unwrap();
    let mut v = Fake::new(vec![Step::Exit(smccc(0x8400_0008))]);
    v.id = 1;
    vcpu_life(&mut v, &r.m(), || None);
    assert_eq!(v.activations, 1);
    assert_eq!(v.regs, vec![(VmReg::PC, entry), (VmReg::x(0), 0xc0ff_ee00)]);
    assert_eq!(v.runs, vec![None]);
    assert_eq!(r.cpus.state(1), PowerState::On);
    assert!(matches!(r.cpus.take_stop(), Some(Stop::PowerOff)));
}

#[test]
fn a_vcpu_that_cannot_be_set_up_stops_the_vm() {
    let r = Rig::new(2);
    r.cpus.cpu_on(1, Start { entry: RAM_BASE, context_id: 0 }).unwrap();
    let mut v = Fake::new(vec![]);
    v.id = 1;
    v.set_fails = Some(Errno::EBUSY);
    vcpu_life(&mut v, &r.m(), || None);
    assert!(v.runs.is_empty());
    let s = r.cpus.take_stop().unwrap();
    assert_eq!(s.exit_code(), 4);
    assert!(s.message().unwrap().starts_with("VM 'g' vCPU 0: cannot set register: EBUSY"), "{:?}", s.message());
}

#[test]
fn vcpu_0_runs_at_once_where_bhyveload_left_it() {
    let r = Rig::new(2);
    let mut v = Fake::new(vec![Step::Exit(smccc(0x8400_0009))]);
    vcpu_life(&mut v, &r.m(), || None);
    assert_eq!((v.activations, v.regs.len(), v.runs.len()), (0, 0, 1));
    assert!(matches!(r.cpus.take_stop(), Some(Stop::Reset)));
}
