//! Races against a running guest: `VM_RUN` on one thread while others
//! destroy, reinit, set registers, set up memory, close the descriptor or
//! unmap, map and unmap a read-only segment in the guest; create/destroy storms on one name; `fork` with the descriptor open
//! and use after the parent destroyed the VM; `kill -9` of a process in `VM_RUN`.

use crate::rng::Rng;
use crate::{kick, Tally};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vmmapi::vm_memory::{Bytes, GuestAddress};
use vmmapi::{Exit, Vm, VmReg, VM_SYSMEM_BASE};

/// The VM the races are about.
const RACE: &str = "fzrace";
/// The name the storms create and destroy.
const STORM: &str = "fzstorm";
/// Memory of the race VM.
const MEM: u64 = 16 << 20;
/// The segment mapped and unmapped under the running guest, and where.
const FLASH: i32 = vmmapi::VM_BOOTVARS;
const FLASH_GPA: u64 = 0x0400_0000;

fn errno(e: &vmmapi::Error) -> i32 {
    e.errno() as i32
}

/// Creates the race VM (if it does not exist) with `guest` loaded at the
/// start of RAM and vCPU 0 ready to run it.
fn load(guest: &[u8]) -> vmmapi::Result<Vm> {
    match Vm::create(RACE) {
        Ok(()) => {}
        Err(e) if e.errno() == vmmapi::Errno::EEXIST => {}
        Err(e) => return Err(e),
    }
    let vm = Vm::open(RACE)?;
    if vm.memory_size()?.is_none() {
        vm.setup_memory(MEM)?;
    }
    let mem = vm.map_memory()?;
    let _ = mem.write_slice(guest, GuestAddress(VM_SYSMEM_BASE));
    drop(mem);
    let v = vm.vcpu(0);
    v.activate()?;
    v.set_register(VmReg::PC, VM_SYSMEM_BASE)?;
    Ok(vm)
}

/// Runs vCPU 0 of the race VM until `stop`, reloading it whenever it was
/// destroyed or broken under us. Returns the runs made.
fn runner(guest: &[u8], stop: &AtomicBool, tally: &mut Tally) -> u64 {
    let mut runs = 0;
    while !stop.load(Ordering::Relaxed) {
        let vm = match load(guest) {
            Ok(vm) => vm,
            Err(e) => {
                tally.add("race-load", errno(&e));
                continue;
            }
        };
        let v = vm.vcpu(0);
        let mut data = None;
        while !stop.load(Ordering::Relaxed) {
            runs += 1;
            match v.run(data.take()) {
                Ok(e) => match e.exit {
                    Exit::InstEmul(m) if !m.write => data = Some(0),
                    Exit::Smccc { .. } => {
                        let _ = v.set_register(VmReg::x(0), u64::MAX);
                    }
                    Exit::InstEmul(_) | Exit::Bogus => {}
                    _ => break,
                },
                Err(e) if e.errno() == vmmapi::Errno::EINTR => {}
                Err(e) => {
                    tally.add("race-run", errno(&e));
                    break;
                }
            }
        }
    }
    runs
}

/// What the other threads do to the VM the runner runs.
fn meddler(rng: &mut Rng, stop: &AtomicBool, tally: &mut Tally) {
    let mut held: Option<Vm> = None;
    let mut map = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
        if held.is_none() {
            held = Vm::open(RACE).ok();
        }
        let Some(vm) = held.as_ref() else { continue };
        let r = match rng.below(12) {
            0 => Vm::destroy_name(RACE),
            1 => vm.reinit(),
            2 => vm.vcpu(rng.below(2) as i32).set_register(VmReg::x(rng.below(31) as u32), rng.u64()),
            3 => vm.vcpu(0).get_register(VmReg::PC).map(|_| ()),
            4 => vm.setup_memory(MEM),
            5 => {
                held = None;
                Ok(())
            }
            6 => {
                map = match map.take() {
                    Some(m) => {
                        drop(m);
                        None
                    }
                    None => vm.map_memory().ok(),
                };
                Ok(())
            }
            7 => vm.suspend(vmmapi::SuspendHow::Halt),
            8 => vm.vcpu(0).activate(),
            // A flash bank switching modes under the running vCPU.
            9 => match vm.memseg_len(FLASH) {
                Ok(None) => vm.alloc_memseg(FLASH, 1 << 20, "flash"),
                _ => vm.mmap_memseg(FLASH_GPA, FLASH, 1 << 20, vmmapi::VM_PROT_READ | vmmapi::VM_PROT_EXECUTE),
            },
            10 => vm.munmap_memseg(FLASH_GPA, 1 << 20),
            _ => vm.stats(0).map(|_| ()),
        };
        tally.add("race-op", r.as_ref().map_or_else(errno, |_| 0));
    }
}

/// `VM_RUN` against everything else, for `time`.
pub fn run_vs_ops(guest: &[u8], rng: &mut Rng, time: Duration, tally: &mut Tally) {
    let stop = AtomicBool::new(false);
    let runs = AtomicU64::new(0);
    std::thread::scope(|s| {
        let r = s.spawn(|| {
            let mut t = Tally::default();
            let _k = kick::enroll();
            runs.store(runner(guest, &stop, &mut t), Ordering::Relaxed);
            t
        });
        let ms: Vec<_> = (0..3)
            .map(|_| {
                let mut rng = rng.fork();
                let stop = &stop;
                s.spawn(move || {
                    let mut t = Tally::default();
                    meddler(&mut rng, stop, &mut t);
                    t
                })
            })
            .collect();
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
        tally.merge(r.join().expect("runner"));
        for m in ms {
            tally.merge(m.join().expect("meddler"));
        }
    });
    tally.count("race-vm_run-calls", runs.load(Ordering::Relaxed));
    let _ = Vm::destroy_name(RACE);
}

/// Several threads creating and destroying one name, for `time`.
pub fn storm(time: Duration, tally: &mut Tally) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let stop = &stop;
                s.spawn(move || {
                    let mut t = Tally::default();
                    while !stop.load(Ordering::Relaxed) {
                        let r = if i % 2 == 0 { Vm::create(STORM) } else { Vm::destroy_name(STORM) };
                        t.add("storm", r.as_ref().map_or_else(errno, |_| 0));
                        if let Ok(vm) = Vm::open(STORM) {
                            let _ = vm.setup_memory(1 << 20);
                        }
                    }
                    t
                })
            })
            .collect();
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
        for h in hs {
            tally.merge(h.join().expect("storm thread"));
        }
    });
    let _ = Vm::destroy_name(STORM);
}

/// A child that inherited the VM's descriptor uses it after the parent
/// destroyed the VM: every call must fail cleanly, and the mapping must
/// not reach freed memory (the child may die of SIGBUS, never the host).
pub fn fork_use(guest: &[u8], rounds: u32, tally: &mut Tally) {
    for _ in 0..rounds {
        let vm = match load(guest) {
            Ok(vm) => vm,
            Err(e) => {
                tally.add("fork-load", errno(&e));
                continue;
            }
        };
        let mem = vm.map_memory().ok();
        let mut fds = [0; 2];
        // SAFETY: a pipe for the parent to say "destroyed".
        unsafe { libc::pipe(fds.as_mut_ptr()) };
        // SAFETY: the child makes system calls only and leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let mut b = 0u8;
            // SAFETY: waits for the parent's byte.
            unsafe { libc::read(fds[0], &mut b as *mut u8 as *mut libc::c_void, 1) };
            // Exit status: the errno of a call on the destroyed VM (0 would be a call that worked).
            let status = vm.vcpu(0).get_register(VmReg::PC).map_or_else(|e| e.errno() as i32, |_| 0);
            if let Some(m) = &mem {
                let mut buf = [0u8; 8];
                let _ = m.read_slice(&mut buf, GuestAddress(VM_SYSMEM_BASE));
            }
            // SAFETY: leaves the child.
            unsafe { libc::_exit(status) };
        }
        let _ = Vm::destroy_name(RACE);
        // SAFETY: wakes the child.
        unsafe { libc::write(fds[1], [1u8].as_ptr() as *const libc::c_void, 1) };
        let mut status = 0;
        // SAFETY: our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        // SAFETY: our pipe's descriptors.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        let how = if libc::WIFSIGNALED(status) { 1000 + libc::WTERMSIG(status) } else { libc::WEXITSTATUS(status) };
        tally.add("fork-use-after-destroy", how);
    }
}

/// A process killed with SIGKILL in `VM_RUN` of a spinning guest; the VM is
/// then destroyed (which must work) and the next round starts.
pub fn kill9(guest: &[u8], rng: &mut Rng, rounds: u32, tally: &mut Tally) {
    for _ in 0..rounds {
        if let Err(e) = load(guest) {
            tally.add("kill9-load", errno(&e));
            continue;
        }
        // SAFETY: the child makes system calls only, through libvmmapi, then is killed.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            if let Ok(vm) = Vm::open(RACE) {
                let v = vm.vcpu(0);
                let mut data = None;
                while let Ok(e) = v.run(data.take()) {
                    if let Exit::InstEmul(m) = e.exit {
                        data = (!m.write).then_some(0);
                    }
                }
            }
            // SAFETY: leaves the child.
            unsafe { libc::_exit(0) };
        }
        std::thread::sleep(Duration::from_micros(rng.below(50_000)));
        // SAFETY: our child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        tally.add("kill9-destroy", Vm::destroy_name(RACE).as_ref().map_or_else(errno, |_| 0));
    }
}

/// Runs each kind of race for a share of `time`.
pub fn all(guest: &[u8], rng: &mut Rng, time: Duration, tally: &mut Tally) {
    let t0 = Instant::now();
    let slice = time / 4;
    run_vs_ops(guest, rng, slice, tally);
    storm(slice, tally);
    while t0.elapsed() < slice * 3 {
        fork_use(guest, 5, tally);
    }
    while t0.elapsed() < time {
        kill9(guest, rng, 2, tally);
    }
}
