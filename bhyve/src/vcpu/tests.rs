//! The vCPU loop and exit handling against a fake vCPU and made-up exits.

use super::*;
use crate::devices::irq::NoInterrupt;
use crate::devices::pl011::Pl011;
use crate::devices::testdev::{self, TestDev};
use crate::layout::{PL011_BASE, PL011_SIZE, TESTDEV_BASE, TESTDEV_SIZE};
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
    script: VecDeque<Step>,
    runs: Vec<Option<u64>>,
    regs: Vec<(VmReg, u64)>,
    suspends: Vec<SuspendHow>,
    suspend_fails: Option<Errno>,
    signal: Rc<Cell<Option<Signal>>>,
}

impl Fake {
    fn new(script: Vec<Step>) -> Self {
        Fake {
            script: script.into(),
            runs: vec![],
            regs: vec![],
            suspends: vec![],
            suspend_fails: None,
            signal: Rc::new(Cell::new(None)),
        }
    }

    fn err(&self, op: &'static str, errno: Errno) -> vmmapi::Error {
        vmmapi::Error::Vcpu { name: "g".into(), vcpu: 0, op, errno }
    }
}

impl VcpuOps for Fake {
    fn id(&self) -> i32 {
        0
    }
    fn vm_name(&self) -> &str {
        "g"
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

/// A bus with a UART and a test device, as bhyve builds it.
fn machine() -> (Bus, Out, Arc<TestDev>) {
    let out = Out::default();
    let mut bus = Bus::new();
    bus.insert(Arc::new(Pl011::new(NoInterrupt, out.clone())), PL011_BASE, PL011_SIZE).unwrap();
    let td = Arc::new(TestDev::new(42));
    bus.insert(td.clone(), TESTDEV_BASE, TESTDEV_SIZE).unwrap();
    (bus, out, td)
}

fn stop(next: Next) -> Stop {
    match next {
        Next::Stop(s) => s,
        Next::Run(d) => panic!("expected a stop, got Run({d:?})"),
    }
}

#[test]
fn reads_pass_the_device_data_to_the_next_run() {
    let (bus, _, td) = machine();
    let mut v = Fake::new(vec![]);
    for (size, want) in [(1, 0x87), (2, 0x9687), (4, 0xB4A5_9687), (8, testdev::PATTERN)] {
        match handle_exit(&mut v, &bus, &info(read(TESTDEV_BASE, size))) {
            Next::Run(Some(d)) => assert_eq!(d, want, "size {size}"),
            n => panic!("{n:?}"),
        }
    }
    assert!(matches!(handle_exit(&mut v, &bus, &info(read(TESTDEV_BASE + 8, 8))), Next::Run(Some(42))));
    assert_eq!(td.stats().reads, 5);
}

#[test]
fn writes_reach_the_device_truncated_to_their_size() {
    let (bus, out, td) = machine();
    let mut v = Fake::new(vec![]);
    assert!(matches!(handle_exit(&mut v, &bus, &info(write(PL011_BASE, 4, 0x4142))), Next::Run(None)));
    assert!(matches!(handle_exit(&mut v, &bus, &info(write(PL011_BASE, 1, 0x4243))), Next::Run(None)));
    assert_eq!(*out.0.lock().unwrap(), b"BC");
    // CHECK sees only `access_size` bytes of `data`.
    handle_exit(&mut v, &bus, &info(write(TESTDEV_BASE + 0x10, 2, 0xdead_9687)));
    let s = td.stats();
    assert_eq!((s.good, s.bad), (1, 0));
    assert!(v.runs.is_empty() && v.regs.is_empty(), "handle_exit never runs the vCPU");
}

#[test]
fn unclaimed_access_stops_with_exit_4_and_leaves_the_vm() {
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![]);
    let s = stop(handle_exit(&mut v, &bus, &info(read(0x4400_0000, 8))));
    assert_eq!(s.exit_code(), 4);
    assert_eq!(s.message().unwrap(), "unhandled read of 8 bytes at 0x44000000 (no device there), pc 0x40000100");
    assert!(v.suspends.is_empty(), "the VM is left as it is");
    let s = stop(handle_exit(&mut v, &bus, &info(write(PL011_BASE + 0xffc, 8, 1))));
    assert!(
        s.message().unwrap().contains("runs past the end of the device at 0x09000000..=0x09000fff"),
        "{:?}",
        s.message()
    );
}

#[test]
fn impossible_access_sizes_are_errors() {
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![]);
    for size in [0, 3, 16] {
        let s = stop(handle_exit(&mut v, &bus, &info(read(PL011_BASE, size))));
        assert!(matches!(s, Stop::Error(Error::BadAccessSize { .. })), "{s:?}");
    }
}

#[test]
fn psci_version_and_unknown_functions() {
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![]);
    assert!(matches!(handle_exit(&mut v, &bus, &info(smccc(0x8400_0000))), Next::Run(None)));
    assert!(matches!(handle_exit(&mut v, &bus, &info(smccc(0xC400_0003))), Next::Run(None)));
    assert_eq!(v.regs, vec![(VmReg::x(0), 0x1_0000), (VmReg::x(0), u64::MAX)]);
    assert!(v.suspends.is_empty());
}

#[test]
fn psci_system_off_and_reset_suspend_the_vm() {
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![]);
    let s = stop(handle_exit(&mut v, &bus, &info(smccc(0x8400_0008))));
    assert!(matches!(s, Stop::PowerOff));
    assert_eq!((s.exit_code(), s.message()), (1, None));
    let s = stop(handle_exit(&mut v, &bus, &info(smccc(0x8400_0009))));
    assert!(matches!(s, Stop::Reset));
    assert_eq!(s.exit_code(), 0);
    assert_eq!(v.suspends, vec![SuspendHow::Poweroff, SuspendHow::Reset]);
}

#[test]
fn failed_suspend_is_reported() {
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![]);
    v.suspend_fails = Some(Errno::ENXIO);
    let s = stop(handle_exit(&mut v, &bus, &info(smccc(0x8400_0008))));
    assert_eq!(s.message().unwrap(), "VM 'g' was destroyed");
    v.suspend_fails = Some(Errno::EINVAL);
    let s = stop(handle_exit(&mut v, &bus, &info(smccc(0x8400_0008))));
    assert_eq!(s.exit_code(), 4);
    assert!(s.message().unwrap().contains("cannot suspend"), "{:?}", s.message());
}

#[test]
fn hyp_exits_are_described() {
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![]);
    let h = HypExit {
        exception_nr: hyp_reason::DABT_NO_SYNDROME,
        esr_el2: 0x9200_0006,
        far_el2: 0x0b00_0000,
        hpfar_el2: 0x0b_0000,
    };
    let s = stop(handle_exit(&mut v, &bus, &info(Exit::Hyp(h))));
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
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![]);
    let mut code = |how| {
        let s = stop(handle_exit(&mut v, &bus, &info(Exit::Suspended(how))));
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
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![]);
    assert!(matches!(handle_exit(&mut v, &bus, &info(Exit::Bogus)), Next::Run(None)));
    let s = stop(handle_exit(&mut v, &bus, &info(Exit::Other(vmm_uapi::exitcode::WFI))));
    assert_eq!(s.exit_code(), 4);
    assert!(s.message().unwrap().starts_with("vCPU 0 stopped: exit code 6 (WFI"), "{:?}", s.message());
}

#[test]
fn loop_completes_reads_and_retries_interrupted_runs() {
    let (bus, out, _) = machine();
    let mut v = Fake::new(vec![
        Step::Exit(read(TESTDEV_BASE, 4)),
        Step::Fail(Errno::EINTR),
        Step::Exit(write(PL011_BASE, 1, b'!' as u64)),
        Step::Exit(Exit::Bogus),
        Step::Exit(smccc(0x8400_0000)),
        Step::Exit(smccc(0x8400_0008)),
    ]);
    let s = run_loop(&mut v, &bus, || None);
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
    assert_eq!(*out.0.lock().unwrap(), b"!");
    assert_eq!(v.regs, vec![(VmReg::x(0), 0x1_0000)]);
}

#[test]
fn loop_stops_on_a_signal() {
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![Step::Exit(Exit::Bogus), Step::Signal(Signal::SIGTERM)]);
    let flag = v.signal.clone();
    let s = run_loop(&mut v, &bus, || flag.get());
    assert!(matches!(s, Stop::Signal(Signal::SIGTERM)), "{s:?}");
    assert_eq!(s.message().unwrap(), "stopped by SIGTERM");
    assert_eq!(s.exit_code(), 143);
    assert_eq!(v.runs.len(), 2);
    assert_eq!(Stop::Signal(Signal::SIGINT).exit_code(), 130);
}

#[test]
fn loop_checks_for_a_signal_before_running() {
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![]);
    let s = run_loop(&mut v, &bus, || Some(Signal::SIGINT));
    assert!(matches!(s, Stop::Signal(Signal::SIGINT)));
    assert!(v.runs.is_empty());
}

#[test]
fn loop_reports_run_errors() {
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![Step::Fail(Errno::ENXIO)]);
    let s = run_loop(&mut v, &bus, || None);
    assert_eq!((s.exit_code(), s.message().unwrap()), (4, "VM 'g' was destroyed".into()));
    let mut v = Fake::new(vec![Step::Exit(Exit::Bogus), Step::Fail(Errno::EBUSY)]);
    let s = run_loop(&mut v, &bus, || None);
    assert_eq!(s.exit_code(), 4);
    assert_eq!(s.message().unwrap(), "VM 'g' vCPU 0: cannot run: EBUSY: Device or resource busy (the vCPU is running)");
}

#[test]
fn loop_stops_at_the_first_error_without_touching_the_vm() {
    let (bus, _, _) = machine();
    let mut v = Fake::new(vec![
        Step::Exit(write(PL011_BASE, 1, b'x' as u64)),
        Step::Exit(read(0x4400_0000, 8)),
        Step::Exit(Exit::Bogus),
    ]);
    let s = run_loop(&mut v, &bus, || None);
    assert_eq!(s.exit_code(), 4);
    assert_eq!(v.runs.len(), 2, "no run after the error");
    assert!(v.suspends.is_empty());
}
