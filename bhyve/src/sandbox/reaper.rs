//! The reaper: a small process forked before the sandbox, that removes the
//! virtio-console sockets when bhyve ends. A sandboxed bhyve may not remove
//! files (Landlock), and a bhyve that changed user may not have the right
//! to either; the sockets must still go, as they do without the sandbox.
//!
//! The reaper is given the paths at fork and takes nothing from bhyve but
//! one byte (or the end of the pipe, when bhyve dies): it cannot be made to
//! remove anything else. It removes each path only if it is still a
//! socket, answers with one byte, and exits. Stop signals (a Ctrl-C to the
//! whole process group) leave it alone: it ends with bhyve.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// bhyve's ends of the pipes to a running reaper.
pub struct Reaper {
    done: OwnedFd,
    ack: OwnedFd,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Reaper {
    /// Forks the reaper for `paths`. Call it before the sandbox (which
    /// forbids new processes).
    pub fn start(paths: &[PathBuf]) -> std::io::Result<Reaper> {
        let paths: Vec<CString> = paths.iter().filter_map(|p| CString::new(p.as_os_str().as_bytes()).ok()).collect();
        let (done_r, done_w) = pipe()?;
        let (ack_r, ack_w) = pipe()?;
        // No zombie: nobody waits for the reaper.
        // SAFETY: SIG_IGN is a valid disposition; bhyve has no other children.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        // SAFETY: the child makes only async-signal-safe calls (signal,
        // close_range, read, lstat, unlink, write, _exit) on data made
        // before the fork.
        match unsafe { libc::fork() } {
            -1 => Err(std::io::Error::last_os_error()),
            // SAFETY: this is the child, right after the fork.
            0 => unsafe { child(done_r.as_raw_fd(), ack_w.as_raw_fd(), &paths) },
            _ => Ok(Reaper { done: done_w, ack: ack_r }),
        }
    }

    /// Has the sockets removed and waits until they are.
    pub fn finish(self) {
        let b = 1u8;
        // SAFETY: one byte from and into live locals; errors mean the
        // reaper has gone, and then there is nothing to wait for.
        unsafe {
            libc::write(self.done.as_raw_fd(), (&b as *const u8).cast(), 1);
            let mut a = 0u8;
            while libc::read(self.ack.as_raw_fd(), (&mut a as *mut u8).cast(), 1) < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {}
        }
    }
}

/// The reaper's life.
///
/// # Safety
/// Only right after `fork`, in the child.
unsafe fn child(done: i32, ack: i32, paths: &[CString]) -> ! {
    // SAFETY: (for the block) plain system calls on integers and on the
    // live CStrings and locals; the process ends with _exit.
    unsafe {
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(s, libc::SIG_IGN);
        }
        // Only the two pipe ends stay open: the reaper must not keep the
        // VM, a tap or the terminal alive.
        let (lo, hi) = (done.min(ack) as u32, done.max(ack) as u32);
        if lo > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, lo - 1, 0u32);
        }
        if hi > lo + 1 {
            libc::syscall(libc::SYS_close_range, lo + 1, hi - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, hi + 1, u32::MAX, 0u32);
        let mut b = 0u8;
        while libc::read(done, (&mut b as *mut u8).cast(), 1) < 0 && *libc::__errno_location() == libc::EINTR {}
        for p in paths {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::lstat(p.as_ptr(), &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK {
                libc::unlink(p.as_ptr());
            }
        }
        libc::write(ack, (&b as *const u8).cast(), 1);
        libc::_exit(0)
    }
}
