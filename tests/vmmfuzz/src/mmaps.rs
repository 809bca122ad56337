//! mmap of a VM's node with fuzzed offsets, lengths and protections, then
//! touching what was mapped. A touch may rightly kill the toucher (SIGBUS
//! outside the VM's memory, SIGSEGV on a protection), so it happens in a
//! child process; the parent only counts how each child ended.

use crate::rng::Rng;
use crate::Tally;
use std::fs::File;
use std::os::fd::AsRawFd;
use vmm_uapi::VM_SYSMEM_BASE;

/// Forks a child that maps `vm` a few times and touches the mappings.
/// Writes are zeros only: guest code the fuzzer never meant to run is never
/// planted (a guest that arms its timer near 2^64 freezes QEMU 7.2).
pub fn round(vm: &File, rng: &mut Rng, tally: &mut Tally) {
    let mut child_rng = rng.fork();
    // SAFETY: the child only makes system calls and exits with _exit; it
    // takes no lock another thread might hold (no allocation, no stdio).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        child(vm, &mut child_rng);
    }
    if pid < 0 {
        tally.add("mmap-fork", std::io::Error::last_os_error().raw_os_error().unwrap_or(-1));
        return;
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let how = if libc::WIFSIGNALED(status) { libc::WTERMSIG(status) } else { 0 };
    // Signals as "errnos" of the round: 0 clean, 7 SIGBUS, 11 SIGSEGV.
    tally.add("mmap-touch", how);
}

fn child(vm: &File, rng: &mut Rng) -> ! {
    for _ in 0..8 {
        let offset = match rng.below(4) {
            0 => rng.edgy() & !0xfff,
            1 => rng.edgy(),
            _ => VM_SYSMEM_BASE + (rng.below(4096) << 12),
        };
        let len = match rng.below(4) {
            0 => rng.edgy() as usize,
            _ => ((1 + rng.below(64)) << 12) as usize,
        };
        let prot = *rng.pick(&[
            libc::PROT_NONE,
            libc::PROT_READ,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::PROT_WRITE,
        ]);
        let flags = if rng.one_in(4) { libc::MAP_PRIVATE } else { libc::MAP_SHARED };
        // SAFETY: a new mapping at an address of the kernel's choice; nothing else uses it.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, vm.as_raw_fd(), offset as libc::off_t) };
        if p == libc::MAP_FAILED {
            continue;
        }
        let pages = (len / 4096).clamp(1, 16);
        for _ in 0..pages {
            let at = (p as usize + (rng.below(len.max(1) as u64) as usize & !7)) as *mut u64;
            // SAFETY: inside the mapping; a fault here kills only this child, which is the test.
            unsafe {
                if rng.one_in(2) {
                    at.write_volatile(0);
                } else {
                    let _ = at.read_volatile();
                }
            }
        }
        if rng.one_in(2) {
            // SAFETY: unmaps what this loop mapped (sometimes left for exit to clean up).
            unsafe { libc::munmap(p, len) };
        }
    }
    // SAFETY: ends the child without running the parent's atexit handlers.
    unsafe { libc::_exit(0) }
}
