use super::syscalls::{self, count, filter, groups, name, Needs};
use super::*;
use crate::cli::{self, UserSpec};
use std::collections::BTreeSet;

fn needs(p9: bool, sockets: bool) -> Needs {
    Needs { p9, sockets, pid: 1234 }
}

fn names(n: &Needs) -> BTreeSet<&'static str> {
    groups(n).into_iter().flat_map(|g| g.calls).map(|c| c.name).collect()
}

#[test]
fn the_allowlist_builds_into_a_filter_for_every_configuration() {
    for (p9, sockets) in [(false, false), (true, false), (false, true), (true, true)] {
        let bpf = filter(&needs(p9, sockets)).unwrap();
        assert!(bpf.len() > count(&needs(p9, sockets)), "at least one instruction a call");
    }
}

#[test]
fn nothing_that_starts_programs_or_reaches_out_is_allowed() {
    let all = names(&needs(true, true));
    for bad in ["execve", "execveat", "socket", "connect", "bind", "ptrace", "setuid", "mount", "bpf", "clone3"] {
        assert!(!all.contains(bad), "{bad} is allowed");
    }
}

#[test]
fn file_calls_come_with_a_share_only() {
    let base = names(&needs(false, false));
    let p9 = names(&needs(true, false));
    for c in ["openat", "openat2", "mkdirat", "renameat2", "unlinkat", "fchownat", "utimensat", "getdents64"] {
        assert!(!base.contains(c), "{c} without a share");
        assert!(p9.contains(c), "{c} missing with a share");
    }
    assert!(!base.contains("accept4"));
    assert!(names(&needs(false, true)).contains("accept4"));
    assert_eq!(count(&needs(false, false)) + 21, count(&needs(true, false)));
}

#[test]
fn what_the_threads_need_is_there() {
    let base = names(&needs(false, false));
    for c in [
        "ioctl",
        "epoll_pwait",
        "eventfd2",
        "readv",
        "writev",
        "preadv",
        "pwritev",
        "fdatasync",
        "fallocate",
        "ppoll",
        "rt_sigreturn",
        "tgkill",
        "clone",
        "futex",
        "exit_group",
    ] {
        assert!(base.contains(c), "{c} missing");
    }
}

#[test]
fn every_call_has_one_entry_and_a_reason() {
    for g in groups(&needs(true, true)) {
        assert!(!g.why.is_empty());
        let nrs: Vec<i64> = g.calls.iter().map(|c| c.nr).collect();
        assert_eq!(nrs.len(), nrs.iter().collect::<BTreeSet<_>>().len(), "{}", g.why);
    }
}

#[test]
fn refused_calls_have_names_for_the_message() {
    assert_eq!(name(libc::SYS_execve), Some("execve"));
    assert_eq!(name(libc::SYS_openat), Some("openat"));
    assert_eq!(name(libc::SYS_ioctl), Some("ioctl"));
    assert_eq!(name(-1), None);
}

#[test]
#[allow(clippy::unnecessary_cast)] // c_int on musl
fn terminal_injection_is_not_an_allowed_ioctl() {
    let nrs: Vec<u64> = syscalls::IOCTLS.iter().map(|&(_, n)| n).collect();
    assert!(!nrs.contains(&(libc::TIOCSTI as u64)));
    // Nor does the vmm group's mask let it through: its type is 'T'.
    assert_ne!((libc::TIOCSTI as u64 >> 8) & 0xff, u64::from(syscalls::VMM_IOCTL_TYPE));
}

#[test]
fn share_capabilities_are_the_file_servers_only() {
    assert_eq!(share_capabilities(false, false), 0);
    assert_eq!(cap_names(share_capabilities(true, false)), "dac_override,dac_read_search");
    assert_eq!(cap_names(share_capabilities(true, true)), "chown,dac_override,dac_read_search,fowner,fsetid");
    assert_eq!(cap_names(1 << 21), "0x200000");
    assert_eq!(cap_names(1 << 21 | 1), "chown and 0x200000");
}

#[test]
fn user_specs() {
    assert_eq!(UserSpec::parse("nobody"), Ok(UserSpec { user: "nobody".into(), group: None }));
    assert_eq!(UserSpec::parse("1000:100"), Ok(UserSpec { user: "1000".into(), group: Some("100".into()) }));
    for bad in ["", ":", "a:", ":b", "a b", "a:b:c", "a/b"] {
        assert!(UserSpec::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn numbers_resolve_without_the_user_database_given_a_group() {
    let u = resolve_user(&UserSpec { user: "4242".into(), group: Some("4343".into()) }).unwrap();
    assert_eq!(u, User { uid: 4242, gid: 4343 });
    assert_eq!(resolve_user(&UserSpec { user: "root".into(), group: None }).unwrap(), User { uid: 0, gid: 0 });
    assert!(resolve_user(&UserSpec { user: "no-such-user-here".into(), group: None }).is_err());
}

fn parse(args: &[&str]) -> Result<cli::Options, cli::Exit> {
    cli::parse(std::iter::once("bhyve").chain(args.iter().copied()).chain(["vm"]).map(Into::into))
}

#[test]
fn sandbox_options() {
    let o = parse(&[]).unwrap();
    assert!(o.sandbox);
    assert_eq!(o.sandbox_user, None);
    assert!(!parse(&["-o", "sandbox=false"]).unwrap().sandbox);
    assert!(parse(&["-o", "sandbox"]).unwrap().sandbox);
    let o = parse(&["-o", "sandbox.user=nobody:nogroup"]).unwrap();
    assert_eq!(o.sandbox_user, Some(UserSpec { user: "nobody".into(), group: Some("nogroup".into()) }));
    assert!(parse(&["-o", "sandbox=maybe"]).is_err());
    assert!(parse(&["-o", "sandbox.user="]).is_err());
    assert!(parse(&["-o", "sandbox=false", "-o", "sandbox.user=nobody"]).is_err());
}

/// The filter, applied for real in a child process: allowed calls work, a
/// refused one ends the process through the handler with status 4.
#[test]
fn a_refused_call_ends_the_process_with_its_name() {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let bpf = filter(&Needs { p9: false, sockets: false, pid: 0 }).unwrap();
    // SAFETY: the child makes system calls only (no allocation: the
    // filter was built before the fork) and ends with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            libc::dup2(fds[1], 2);
            if install_sigsys_handler().is_err() || seccompiler::apply_filter(&bpf).is_err() {
                libc::_exit(9);
            }
            libc::getpid();
            let sh = c"/bin/true";
            let argv = [sh.as_ptr(), std::ptr::null()];
            libc::execve(sh.as_ptr(), argv.as_ptr(), argv[1..].as_ptr());
            libc::_exit(8);
        }
    }
    // SAFETY: closing our copy of the write end; waitpid on our child.
    unsafe { libc::close(fds[1]) };
    let mut status = 0;
    // SAFETY: waitpid writes one int.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let mut out = vec![0u8; 256];
    // SAFETY: read into a live buffer.
    let n = unsafe { libc::read(fds[0], out.as_mut_ptr().cast(), out.len()) };
    out.truncate(n.max(0) as usize);
    let msg = String::from_utf8_lossy(&out);
    assert!(libc::WIFEXITED(status), "status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 4, "{msg}");
    assert!(msg.contains("refused system call") && msg.contains("(execve)"), "{msg}");
}
