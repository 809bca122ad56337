//! The system calls a sandboxed bhyve may make, in one place: the seccomp
//! filter's allowlist. Anything else traps (SIGSYS), and bhyve stops saying
//! which call it was.
//!
//! The list covers what bhyve does once everything is open and set up:
//! vCPU threads in `VM_RUN`, device I/O threads, the console, signals and
//! the ways out. What only set-up does (opening files and devices, making
//! taps and sockets, `mmap` of the VM's memory, changing user) is not on it.
//! Groups that only some devices need are added only when one is there.
//! Calls are those of arm64 Linux (no `open`, `stat` or `poll`: only their
//! `*at` and `p*` forms); the same list compiles for x86_64 so that it can
//! be unit-tested, with x86_64's older names added where its libc uses them.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// What the running configuration needs beyond the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// A virtio-9p share: the file server works on the host's files.
    pub p9: bool,
    /// Named virtio-console ports: unix sockets taking clients.
    pub sockets: bool,
    /// bhyve's process id: signals go only to bhyve itself.
    pub pid: u32,
}

/// One system call and the argument conditions under which it is allowed
/// (any of the rules; no rules: always).
pub struct Call {
    /// Its name, for messages.
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: i64,
    /// Argument checks, or none.
    pub rules: Vec<SeccompRule>,
}

/// A group of calls and why bhyve makes them.
pub struct Group {
    /// What the calls are for.
    pub why: &'static str,
    /// The calls.
    pub calls: Vec<Call>,
}

macro_rules! call {
    ($name:ident) => {
        Call { name: stringify!($name), nr: paste_nr!($name), rules: vec![] }
    };
    ($name:ident, $rules:expr) => {
        Call { name: stringify!($name), nr: paste_nr!($name), rules: $rules }
    };
}

macro_rules! paste_nr {
    (read) => {
        libc::SYS_read
    };
    (write) => {
        libc::SYS_write
    };
    (readv) => {
        libc::SYS_readv
    };
    (writev) => {
        libc::SYS_writev
    };
    (pread64) => {
        libc::SYS_pread64
    };
    (pwrite64) => {
        libc::SYS_pwrite64
    };
    (preadv) => {
        libc::SYS_preadv
    };
    (pwritev) => {
        libc::SYS_pwritev
    };
    (preadv2) => {
        libc::SYS_preadv2
    };
    (pwritev2) => {
        libc::SYS_pwritev2
    };
    (lseek) => {
        libc::SYS_lseek
    };
    (close) => {
        libc::SYS_close
    };
    (dup3) => {
        libc::SYS_dup3
    };
    (fcntl) => {
        libc::SYS_fcntl
    };
    (fstat) => {
        libc::SYS_fstat
    };
    (newfstatat) => {
        libc::SYS_newfstatat
    };
    (statx) => {
        libc::SYS_statx
    };
    (fsync) => {
        libc::SYS_fsync
    };
    (fdatasync) => {
        libc::SYS_fdatasync
    };
    (fallocate) => {
        libc::SYS_fallocate
    };
    (ioctl) => {
        libc::SYS_ioctl
    };
    (ppoll) => {
        libc::SYS_ppoll
    };
    (pselect6) => {
        libc::SYS_pselect6
    };
    (epoll_create1) => {
        libc::SYS_epoll_create1
    };
    (epoll_ctl) => {
        libc::SYS_epoll_ctl
    };
    (epoll_pwait) => {
        libc::SYS_epoll_pwait
    };
    (eventfd2) => {
        libc::SYS_eventfd2
    };
    (mmap) => {
        libc::SYS_mmap
    };
    (munmap) => {
        libc::SYS_munmap
    };
    (mprotect) => {
        libc::SYS_mprotect
    };
    (mremap) => {
        libc::SYS_mremap
    };
    (madvise) => {
        libc::SYS_madvise
    };
    (brk) => {
        libc::SYS_brk
    };
    (clone) => {
        libc::SYS_clone
    };
    (futex) => {
        libc::SYS_futex
    };
    (set_robust_list) => {
        libc::SYS_set_robust_list
    };
    (rseq) => {
        libc::SYS_rseq
    };
    (set_tid_address) => {
        libc::SYS_set_tid_address
    };
    (sched_yield) => {
        libc::SYS_sched_yield
    };
    (sched_getaffinity) => {
        libc::SYS_sched_getaffinity
    };
    (prctl) => {
        libc::SYS_prctl
    };
    (exit) => {
        libc::SYS_exit
    };
    (exit_group) => {
        libc::SYS_exit_group
    };
    (getpid) => {
        libc::SYS_getpid
    };
    (gettid) => {
        libc::SYS_gettid
    };
    (rt_sigaction) => {
        libc::SYS_rt_sigaction
    };
    (rt_sigprocmask) => {
        libc::SYS_rt_sigprocmask
    };
    (rt_sigreturn) => {
        libc::SYS_rt_sigreturn
    };
    (sigaltstack) => {
        libc::SYS_sigaltstack
    };
    (kill) => {
        libc::SYS_kill
    };
    (tgkill) => {
        libc::SYS_tgkill
    };
    (tkill) => {
        libc::SYS_tkill
    };
    (clock_gettime) => {
        libc::SYS_clock_gettime
    };
    (clock_getres) => {
        libc::SYS_clock_getres
    };
    (clock_nanosleep) => {
        libc::SYS_clock_nanosleep
    };
    (nanosleep) => {
        libc::SYS_nanosleep
    };
    (gettimeofday) => {
        libc::SYS_gettimeofday
    };
    (getrandom) => {
        libc::SYS_getrandom
    };
    (accept4) => {
        libc::SYS_accept4
    };
    (recvfrom) => {
        libc::SYS_recvfrom
    };
    (sendto) => {
        libc::SYS_sendto
    };
    (recvmsg) => {
        libc::SYS_recvmsg
    };
    (sendmsg) => {
        libc::SYS_sendmsg
    };
    (shutdown) => {
        libc::SYS_shutdown
    };
    (openat) => {
        libc::SYS_openat
    };
    (openat2) => {
        libc::SYS_openat2
    };
    (mkdirat) => {
        libc::SYS_mkdirat
    };
    (mknodat) => {
        libc::SYS_mknodat
    };
    (symlinkat) => {
        libc::SYS_symlinkat
    };
    (linkat) => {
        libc::SYS_linkat
    };
    (renameat) => {
        libc::SYS_renameat
    };
    (renameat2) => {
        libc::SYS_renameat2
    };
    (unlinkat) => {
        libc::SYS_unlinkat
    };
    (readlinkat) => {
        libc::SYS_readlinkat
    };
    (fchownat) => {
        libc::SYS_fchownat
    };
    (fchown) => {
        libc::SYS_fchown
    };
    (fchmodat) => {
        libc::SYS_fchmodat
    };
    (fchmod) => {
        libc::SYS_fchmod
    };
    (utimensat) => {
        libc::SYS_utimensat
    };
    (getdents64) => {
        libc::SYS_getdents64
    };
    (fstatfs) => {
        libc::SYS_fstatfs
    };
    (statfs) => {
        libc::SYS_statfs
    };
    (ftruncate) => {
        libc::SYS_ftruncate
    };
    (faccessat) => {
        libc::SYS_faccessat
    };
    (flock) => {
        libc::SYS_flock
    };
    (execve) => {
        libc::SYS_execve
    };
    (execveat) => {
        libc::SYS_execveat
    };
    (socket) => {
        libc::SYS_socket
    };
    (connect) => {
        libc::SYS_connect
    };
    (bind) => {
        libc::SYS_bind
    };
    (ptrace) => {
        libc::SYS_ptrace
    };
    (setuid) => {
        libc::SYS_setuid
    };
    (clone3) => {
        libc::SYS_clone3
    };
    (mount) => {
        libc::SYS_mount
    };
    (init_module) => {
        libc::SYS_init_module
    };
    (finit_module) => {
        libc::SYS_finit_module
    };
    (bpf) => {
        libc::SYS_bpf
    };
    (process_vm_writev) => {
        libc::SYS_process_vm_writev
    };
    (memfd_create) => {
        libc::SYS_memfd_create
    };
    (pipe2) => {
        libc::SYS_pipe2
    };
    (wait4) => {
        libc::SYS_wait4
    };
    (capset) => {
        libc::SYS_capset
    };
    (setgid) => {
        libc::SYS_setgid
    };
    (setgroups) => {
        libc::SYS_setgroups
    };
    (unshare) => {
        libc::SYS_unshare
    };
    (setns) => {
        libc::SYS_setns
    };
    (chroot) => {
        libc::SYS_chroot
    };
    (pivot_root) => {
        libc::SYS_pivot_root
    };
    (kexec_load) => {
        libc::SYS_kexec_load
    };
    (reboot) => {
        libc::SYS_reboot
    };
    (listen) => {
        libc::SYS_listen
    };
    (socketpair) => {
        libc::SYS_socketpair
    };
    // x86_64's older calls, which its libcs still make.
    (open) => {
        libc::SYS_open
    };
    (poll) => {
        libc::SYS_poll
    };
    (epoll_wait) => {
        libc::SYS_epoll_wait
    };
    (stat) => {
        libc::SYS_stat
    };
    (arch_prctl) => {
        libc::SYS_arch_prctl
    };
}

/// `arg` (32 bits) equals `v`.
fn eq32(arg: u8, v: u64) -> Cond {
    Cond::new(arg, Len::Dword, Op::Eq, v).expect("argument index below 6")
}

/// `arg` (64 bits) masked with `mask` equals `v`.
fn masked64(arg: u8, mask: u64, v: u64) -> Cond {
    Cond::new(arg, Len::Qword, Op::MaskedEq(mask), v).expect("argument index below 6")
}

/// `arg` (32 bits) masked with `mask` equals `v`.
fn masked32(arg: u8, mask: u64, v: u64) -> Cond {
    Cond::new(arg, Len::Dword, Op::MaskedEq(mask), v).expect("argument index below 6")
}

/// A rule of one condition.
fn rule(c: Cond) -> SeccompRule {
    SeccompRule::new(vec![c]).expect("a rule with a condition")
}

/// The ioctl type (group) of the vmm module's ioctls: `'v'`.
pub const VMM_IOCTL_TYPE: u8 = b'v';

/// The ioctls bhyve makes after set-up, by number, apart from the vmm
/// module's group. `TIOCSTI` (faking terminal input) and every other
/// terminal or device ioctl are not among them.
// The constants' types differ between libcs (c_ulong on glibc, c_int on musl).
#[allow(clippy::unnecessary_cast)]
pub const IOCTLS: [(&str, u64); 9] = [
    ("TCGETS", libc::TCGETS as u64),
    ("TCSETS", libc::TCSETS as u64),
    ("TIOCGWINSZ", libc::TIOCGWINSZ as u64),
    ("FIONBIO", libc::FIONBIO as u64),
    ("FIOCLEX", libc::FIOCLEX as u64),
    ("TUNSETOFFLOAD", libc::TUNSETOFFLOAD as u64),
    ("TUNSETVNETHDRSZ", libc::TUNSETVNETHDRSZ as u64),
    ("BLKDISCARD", 0x1277),
    ("BLKZEROOUT", 0x127f),
];

/// The allowlist for `needs`, in groups.
pub fn groups(needs: &Needs) -> Vec<Group> {
    let pid = u64::from(needs.pid);
    // The vmm group's rule first: VM_RUN is the call bhyve makes most (one
    // per exit to userspace), and the filter tries a call's rules in order.
    let mut ioctl_rules = vec![rule(masked32(1, 0xff00, u64::from(VMM_IOCTL_TYPE) << 8))];
    ioctl_rules.extend(IOCTLS.iter().map(|&(_, n)| rule(eq32(1, n))));
    let mut g = vec![
        Group {
            why: "I/O on descriptors opened before the sandbox: disks (positioned and vectored, flushes, \
                  discard and write-zeroes), the tap, eventfds, stdio, the vars store",
            calls: vec![
                call!(read),
                call!(write),
                call!(readv),
                call!(writev),
                call!(pread64),
                call!(pwrite64),
                call!(preadv),
                call!(pwritev),
                call!(preadv2),
                call!(pwritev2),
                call!(lseek),
                call!(close),
                call!(dup3),
                call!(fcntl),
                call!(fstat),
                call!(newfstatat),
                call!(statx),
                call!(fsync),
                call!(fdatasync),
                call!(fallocate),
            ],
        },
        Group {
            why: "ioctls: the vmm module's (VM_RUN, registers, interrupts, ioeventfd/irqfd); the tap's \
                  offloads; a block device's discard; the terminal's settings (raw mode and back)",
            calls: vec![call!(ioctl, ioctl_rules)],
        },
        Group {
            why: "waiting: the I/O threads' epoll and eventfds, the console's poll",
            calls: vec![
                call!(ppoll),
                call!(pselect6),
                call!(epoll_create1),
                call!(epoll_ctl),
                call!(epoll_pwait),
                call!(eventfd2),
            ],
        },
        Group {
            why: "memory: the allocator and thread stacks; never executable memory",
            calls: vec![
                call!(mmap, vec![rule(masked64(2, libc::PROT_EXEC as u64, 0))]),
                call!(mprotect, vec![rule(masked64(2, libc::PROT_EXEC as u64, 0))]),
                call!(munmap),
                call!(mremap),
                call!(madvise),
                call!(brk),
            ],
        },
        Group {
            why: "threads: I/O threads start when the guest's driver starts a device; threads only \
                  (CLONE_THREAD), never a new process",
            calls: vec![
                call!(clone, vec![rule(masked64(0, libc::CLONE_THREAD as u64, libc::CLONE_THREAD as u64))]),
                call!(futex),
                call!(set_robust_list),
                call!(rseq),
                call!(set_tid_address),
                call!(sched_yield),
                call!(sched_getaffinity),
                call!(prctl, vec![rule(eq32(0, libc::PR_SET_NAME as u64)), rule(eq32(0, libc::PR_GET_NAME as u64))]),
                call!(getpid),
                call!(gettid),
                call!(exit),
                call!(exit_group),
            ],
        },
        Group {
            why: "signals: handlers, masks and returns; kicks to bhyve's own vCPU threads (tgkill), \
                  dying of a stop signal (kill of bhyve itself), abort (SIGABRT to the caller)",
            calls: vec![
                call!(rt_sigaction),
                call!(rt_sigprocmask),
                call!(rt_sigreturn),
                call!(sigaltstack),
                call!(kill, vec![rule(eq32(0, pid))]),
                call!(tgkill, vec![rule(eq32(0, pid))]),
                call!(tkill, vec![rule(eq32(1, libc::SIGABRT as u64))]),
            ],
        },
        Group {
            why: "time (the RTC, timeouts) and entropy (virtio-rnd, hash seeds)",
            calls: vec![
                call!(clock_gettime),
                call!(clock_getres),
                call!(clock_nanosleep),
                call!(nanosleep),
                call!(gettimeofday),
                call!(getrandom),
            ],
        },
    ];
    if needs.sockets {
        g.push(Group {
            why: "virtio-console ports: taking a client on the listening socket and talking to it",
            calls: vec![
                call!(accept4),
                call!(recvfrom),
                call!(sendto),
                call!(recvmsg),
                call!(sendmsg),
                call!(shutdown),
            ],
        });
    }
    if needs.p9 {
        g.push(Group {
            why: "virtio-9p: the file server walks, makes, changes and removes entries relative to the \
                  share's directory descriptor (Landlock keeps it beneath the share)",
            calls: vec![
                call!(openat),
                call!(openat2),
                call!(mkdirat),
                call!(mknodat),
                call!(symlinkat),
                call!(linkat),
                call!(renameat),
                call!(renameat2),
                call!(unlinkat),
                call!(readlinkat),
                call!(fchownat),
                call!(fchown),
                call!(fchmodat),
                call!(fchmod),
                call!(utimensat),
                call!(getdents64),
                call!(fstatfs),
                call!(statfs),
                call!(ftruncate),
                call!(faccessat),
                call!(flock),
            ],
        });
    }
    #[cfg(target_arch = "x86_64")]
    g.push(Group {
        why: "x86_64 only (unit tests): the older calls its libcs make",
        calls: vec![call!(poll), call!(epoll_wait), call!(arch_prctl)],
    });
    g
}

/// Number of distinct system calls allowed for `needs`.
pub fn count(needs: &Needs) -> usize {
    groups(needs).iter().flat_map(|g| g.calls.iter().map(|c| c.nr)).collect::<std::collections::BTreeSet<_>>().len()
}

/// The seccomp filter for `needs`: the allowlist, and SIGSYS for the rest.
pub fn filter(needs: &Needs) -> Result<BpfProgram, seccompiler::BackendError> {
    // An empty list of rules allows the call whatever its arguments; two
    // groups naming one call allow it if either does.
    let mut rules: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
    for g in groups(needs) {
        for c in g.calls {
            let e = rules.entry(c.nr).or_insert_with(|| Some(vec![]));
            match e {
                Some(r) if !c.rules.is_empty() => r.extend(c.rules),
                _ => *e = None,
            }
        }
    }
    let rules = rules.into_iter().map(|(nr, r)| (nr, r.unwrap_or_default())).collect();
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    SeccompFilter::new(rules, SeccompAction::Trap, SeccompAction::Allow, arch)?.try_into()
}

macro_rules! known {
    ($($n:ident),* $(,)?) => {
        /// The name of system call `nr` where bhyve knows it (every call on
        /// the allowlist, and the usual ones an attacker would try), for
        /// the message of a refused call. Allocates nothing: the SIGSYS
        /// handler calls it.
        pub fn name(nr: i64) -> Option<&'static str> {
            $( if nr == paste_nr!($n) { return Some(stringify!($n)); } )*
            None
        }
    };
}

known!(
    read,
    write,
    readv,
    writev,
    pread64,
    pwrite64,
    preadv,
    pwritev,
    preadv2,
    pwritev2,
    lseek,
    close,
    dup3,
    fcntl,
    fstat,
    newfstatat,
    statx,
    fsync,
    fdatasync,
    fallocate,
    ioctl,
    ppoll,
    pselect6,
    epoll_create1,
    epoll_ctl,
    epoll_pwait,
    eventfd2,
    mmap,
    munmap,
    mprotect,
    mremap,
    madvise,
    brk,
    clone,
    futex,
    set_robust_list,
    rseq,
    set_tid_address,
    sched_yield,
    sched_getaffinity,
    prctl,
    exit,
    exit_group,
    getpid,
    gettid,
    rt_sigaction,
    rt_sigprocmask,
    rt_sigreturn,
    sigaltstack,
    kill,
    tgkill,
    tkill,
    clock_gettime,
    clock_getres,
    clock_nanosleep,
    nanosleep,
    gettimeofday,
    getrandom,
    accept4,
    recvfrom,
    sendto,
    recvmsg,
    sendmsg,
    shutdown,
    openat,
    openat2,
    mkdirat,
    mknodat,
    symlinkat,
    linkat,
    renameat,
    renameat2,
    unlinkat,
    readlinkat,
    fchownat,
    fchown,
    fchmodat,
    fchmod,
    utimensat,
    getdents64,
    fstatfs,
    statfs,
    ftruncate,
    faccessat,
    flock,
    execve,
    execveat,
    socket,
    connect,
    bind,
    ptrace,
    setuid,
    clone3,
    mount,
    init_module,
    finit_module,
    bpf,
    process_vm_writev,
    memfd_create,
    pipe2,
    wait4,
    capset,
    setgid,
    setgroups,
    unshare,
    setns,
    chroot,
    pivot_root,
    kexec_load,
    reboot,
    listen,
    socketpair,
);
