//! The sandbox bhyve enters once its VM, files, taps and sockets are open and
//! the VM is set up, before the guest runs: from then on a guest that takes
//! over bhyve's device code finds little to do with it.
//!
//! Three layers, in this order, on the main thread before it starts any
//! other (so that every thread bhyve starts later inherits the first two;
//! the third reaches all threads by itself):
//!
//! 1. **Landlock**: no file may be opened, made, renamed or removed by path,
//!    except beneath a virtio-9p share's directory (held as a descriptor
//!    since set-up). Descriptors already open keep working. Where the
//!    kernel has no Landlock, one line says so and bhyve goes on.
//! 2. **Privileges**: with `-o sandbox.user=USER`, bhyve becomes USER
//!    (its uid, gid and only that group) and keeps no capability. Without
//!    it, a bhyve run as root stays uid 0 but keeps no capability, except,
//!    when it serves a virtio-9p share, those the file server needs to act
//!    for the guest's users (chown, and reading and writing files whatever
//!    their mode). The bounding set loses the rest.
//! 3. **seccomp**: the allowlist of [`syscalls`], applied to every thread
//!    (`SECCOMP_FILTER_FLAG_TSYNC`). Any other call traps; the handler
//!    prints the call's number and name, puts the terminal back, and bhyve
//!    exits with status 4.
//!
//! `-o sandbox=false` turns all three off (for debugging).

pub mod reaper;
pub mod syscalls;

use crate::console;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the sandbox is up: code that would touch paths at the end
/// (removing a socket) leaves that to the [`reaper`].
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether this process is sandboxed.
pub fn active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// A user to become: `-o sandbox.user=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// Its uid.
    pub uid: u32,
    /// Its (primary) gid: also its only group.
    pub gid: u32,
}

/// Finds the user (and group) of `-o sandbox.user=`: names from the
/// system's user and group databases, numbers as they are.
pub fn resolve_user(spec: &crate::cli::UserSpec) -> Result<User, String> {
    use nix::unistd::{Group, User as PwUser};
    let pw = match spec.user.parse::<u32>() {
        Ok(uid) => PwUser::from_uid(uid.into()).ok().flatten(),
        Err(_) => Some(
            PwUser::from_name(&spec.user)
                .map_err(|e| format!("cannot look up user '{}': {e}", spec.user))?
                .ok_or_else(|| format!("no user '{}'", spec.user))?,
        ),
    };
    let uid = pw.as_ref().map(|p| p.uid.as_raw()).unwrap_or_else(|| spec.user.parse().unwrap_or_default());
    let gid = match &spec.group {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => Group::from_name(g)
                .map_err(|e| format!("cannot look up group '{g}': {e}"))?
                .ok_or_else(|| format!("no group '{g}'"))?
                .gid
                .as_raw(),
        },
        None => pw.map(|p| p.gid.as_raw()).ok_or_else(|| {
            format!("uid {} has no entry in the user database: give its group (USER:GROUP)", spec.user)
        })?,
    };
    Ok(User { uid, gid })
}

/// What the sandbox must leave bhyve.
pub struct Plan<'a> {
    /// The user to become, if any.
    pub user: Option<User>,
    /// The virtio-9p shares' directories, and whether each is read-only.
    pub shares: Vec<(BorrowedFd<'a>, bool)>,
    /// Whether there are virtio-console ports on sockets.
    pub sockets: bool,
}

/// What each layer did, for the one line bhyve prints with `-o
/// sandbox.verbose` and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Landlock: "enforced", "partly enforced" or why not.
    pub landlock: String,
    /// The user bhyve runs as and the capabilities it kept.
    pub privileges: String,
    /// System calls allowed.
    pub syscalls: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sandbox: landlock {}; {}; seccomp allows {} system calls",
            self.landlock, self.privileges, self.syscalls
        )
    }
}

/// Enters the sandbox. Call it on the main thread, before it starts
/// threads: Landlock and capabilities hold for the calling thread and the
/// threads it starts afterwards.
pub fn enter(plan: &Plan) -> Result<Report, String> {
    let landlock = landlock(&plan.shares)?;
    let privileges = match plan.user {
        Some(u) => become_user(u, !plan.shares.is_empty())?,
        None => drop_capabilities(!plan.shares.is_empty(), plan.shares.iter().any(|&(_, ro)| !ro))?,
    };
    let needs = syscalls::Needs { p9: !plan.shares.is_empty(), sockets: plan.sockets, pid: std::process::id() };
    let bpf = syscalls::filter(&needs).map_err(|e| format!("cannot build the seccomp filter: {e}"))?;
    install_sigsys_handler()?;
    seccompiler::apply_filter_all_threads(&bpf)
        .map_err(|e| format!("cannot install the seccomp filter: {e} (-o sandbox=false runs without the sandbox)"))?;
    ACTIVE.store(true, Ordering::SeqCst);
    Ok(Report { landlock, privileges, syscalls: syscalls::count(&needs) })
}

/// Layer 1: Landlock. Returns how it went; fails only if the kernel has
/// Landlock and refuses the ruleset.
fn landlock(shares: &[(BorrowedFd, bool)]) -> Result<String, String> {
    use landlock::{
        Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, RestrictSelfAttr, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, Scope, ABI,
    };
    let err = |e: landlock::RulesetError| format!("Landlock: {e}");
    // Every right this crate knows, each taken if the kernel has it.
    let abi = ABI::V10;
    let mut created = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?
        .handle_access(AccessNet::from_all(abi))
        .map_err(err)?
        .scope(Scope::from_all(abi))
        .map_err(err)?
        .create()
        .map_err(err)?;
    for &(fd, read_only) in shares {
        // Executing the guest's files is never needed (and seccomp forbids exec).
        let rights = if read_only { AccessFs::from_read(abi) } else { AccessFs::from_all(abi) } & !AccessFs::Execute;
        created = created.add_rule(PathBeneath::new(fd.as_fd(), rights)).map_err(err)?;
    }
    // Newer kernels put every thread in the domain at once.
    let created = created.all_threads(true).map_err(err)?;
    let status = created.restrict_self().map_err(err)?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "enforced".into(),
        RulesetStatus::PartiallyEnforced => "enforced (the rights this kernel has)".into(),
        RulesetStatus::NotEnforced => {
            eprintln!(
                "bhyve: sandbox: this kernel has no Landlock (CONFIG_SECURITY_LANDLOCK, 'landlock' in lsm=): \
                 file access is confined by seccomp and privileges only"
            );
            "not available".into()
        }
    })
}

// Capability numbers (linux/capability.h), which libc does not carry.
const CAP_CHOWN: u32 = 0;
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_FOWNER: u32 = 3;
const CAP_FSETID: u32 = 4;

/// The capabilities the virtio-9p file server needs to act for the guest's
/// users when bhyve stays root: reading (and, writable, changing) files
/// whatever their owner and mode, and giving new files to the guest's user.
pub fn share_capabilities(share: bool, writable: bool) -> u64 {
    let bit = |c: u32| 1u64 << c;
    let mut caps = 0;
    if share {
        caps |= bit(CAP_DAC_OVERRIDE) | bit(CAP_DAC_READ_SEARCH);
    }
    if writable {
        caps |= bit(CAP_CHOWN) | bit(CAP_FOWNER) | bit(CAP_FSETID);
    }
    caps
}

/// `capget`/`capset`'s header (version 3: 64-bit sets).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// One 32-bit half of the three sets.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// The calling thread's permitted capabilities.
fn permitted() -> Result<u64, String> {
    let mut h = CapHeader { version: CAP_V3, pid: 0 };
    let mut d = [CapData::default(); 2];
    // SAFETY: capget writes two CapData through the pointer, the size
    // version 3 says.
    if unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) } < 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    Ok(u64::from(d[0].permitted) | u64::from(d[1].permitted) << 32)
}

/// Layer 2 without a user: keep only `share_capabilities` of those held.
fn drop_capabilities(share: bool, writable: bool) -> Result<String, String> {
    let held = permitted()?;
    let keep = held & share_capabilities(share, writable);
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    // The bounding set first: that needs CAP_SETPCAP, which goes next.
    for cap in 0..64u32 {
        if keep & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments only; EINVAL past the
            // last capability the kernel knows is expected.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        }
    }
    let mut h = CapHeader { version: CAP_V3, pid: 0 };
    let half = |v: u64| v as u32;
    let d = [
        CapData { effective: half(keep), permitted: half(keep), inheritable: 0 },
        CapData { effective: half(keep >> 32), permitted: half(keep >> 32), inheritable: 0 },
    ];
    // SAFETY: capset reads the header and two CapData through the pointers.
    if unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) } < 0 {
        return Err(format!("cannot drop capabilities: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    Ok(format!("uid {uid}, capabilities {}", cap_names(keep)))
}

/// `caps` by name, or "none".
pub fn cap_names(caps: u64) -> String {
    let names = [
        (CAP_CHOWN, "chown"),
        (CAP_DAC_OVERRIDE, "dac_override"),
        (CAP_DAC_READ_SEARCH, "dac_read_search"),
        (CAP_FOWNER, "fowner"),
        (CAP_FSETID, "fsetid"),
    ];
    let v: Vec<&str> = names.iter().filter(|&&(c, _)| caps & (1 << c) != 0).map(|&(_, n)| n).collect();
    match (v.is_empty(), caps & !names.iter().fold(0, |a, &(c, _)| a | 1 << c)) {
        (true, 0) => "none".into(),
        (_, 0) => v.join(","),
        (true, other) => format!("{other:#x}"),
        (_, other) => format!("{} and {other:#x}", v.join(",")),
    }
}

/// Layer 2 with a user: become it, for good.
fn become_user(u: User, share: bool) -> Result<String, String> {
    let gid = u.gid as libc::gid_t;
    // SAFETY: plain calls with integers and a live one-element array. musl
    // applies them to every thread of the process.
    unsafe {
        if libc::setgroups(1, &gid) < 0 {
            return Err(format!("cannot set the groups to {gid}: {}", std::io::Error::last_os_error()));
        }
        if libc::setgid(gid) < 0 {
            return Err(format!("cannot become group {gid}: {}", std::io::Error::last_os_error()));
        }
        if libc::setuid(u.uid) < 0 {
            return Err(format!("cannot become user {}: {}", u.uid, std::io::Error::last_os_error()));
        }
        // No way back: a uid of 0 left anywhere would let it.
        if u.uid != 0 && (libc::setuid(0) == 0 || libc::geteuid() == 0) {
            return Err("still root after changing user".into());
        }
    }
    // A new uid makes the process undumpable, and /proc/self/fd root's:
    // the 9p server reopens its files there.
    if share {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    }
    let caps = permitted()?;
    if caps != 0 && u.uid != 0 {
        return Err(format!("capabilities left after changing user: {caps:#x}"));
    }
    Ok(format!("uid {} gid {}, capabilities {}", u.uid, u.gid, cap_names(caps)))
}

/// The SIGSYS handler: a refused call ends bhyve, saying which.
extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    /// siginfo's head and the `_sigsys` member of its union (64-bit).
    #[repr(C)]
    struct SigsysInfo {
        signo: i32,
        errno: i32,
        code: i32,
        _pad: i32,
        call_addr: usize,
        syscall: i32,
        arch: u32,
    }
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO; for a
    // seccomp trap its union holds `_sigsys`, laid out as above.
    let nr = unsafe { (*(info as *const SigsysInfo)).syscall };
    let mut buf = [0u8; 160];
    let mut w = Line { buf: &mut buf, len: 0 };
    w.put(b"bhyve: sandbox: refused system call ");
    w.num(nr as i64);
    if let Some(name) = syscalls::name(i64::from(nr)) {
        w.put(b" (");
        w.put(name.as_bytes());
        w.put(b")");
    }
    w.put(b"; stopping\n");
    // SAFETY: write(2) from a live buffer, then the terminal back and
    // _exit: async-signal-safe calls that the filter allows.
    unsafe {
        libc::write(2, w.buf.as_ptr().cast(), w.len);
        console::restore_from_signal();
        libc::_exit(crate::vcpu::EXIT_ERROR as i32);
    }
}

/// A line built without allocating (in a signal handler).
struct Line<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Line<'_> {
    fn put(&mut self, b: &[u8]) {
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }

    fn num(&mut self, v: i64) {
        let mut digits = [0u8; 20];
        let (mut u, mut i) = (v.unsigned_abs(), digits.len());
        loop {
            i -= 1;
            digits[i] = b'0' + (u % 10) as u8;
            u /= 10;
            if u == 0 {
                break;
            }
        }
        if v < 0 {
            self.put(b"-");
        }
        self.put(&digits[i..]);
    }
}

fn install_sigsys_handler() -> Result<(), String> {
    // SAFETY: a zeroed sigaction is valid; the handler only makes
    // async-signal-safe calls.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) < 0 {
            return Err(format!("cannot handle SIGSYS: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// For the sandbox scenario only (`BHYVE_SANDBOX_SELFTEST=FILE`): from a
/// thread started after the sandbox, as a guest that took over a device
/// would, tries to open FILE and then to run `/bin/sh`. The first should be
/// refused (printed), the second end bhyve.
pub fn self_test() {
    let Some(path) = std::env::var_os("BHYVE_SANDBOX_SELFTEST") else { return };
    let t = std::thread::Builder::new().name("selftest".into()).spawn(move || {
        match std::fs::File::open(&path) {
            Ok(_) => eprintln!("bhyve: selftest: opened {}", path.to_string_lossy()),
            Err(e) => eprintln!("bhyve: selftest: open {}: refused ({e})", path.to_string_lossy()),
        }
        let sh = c"/bin/sh";
        let argv = [sh.as_ptr(), c"-c".as_ptr(), c"echo selftest-exec-ran".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: NUL-terminated strings and NULL-terminated arrays that
        // live across the call.
        unsafe { libc::execve(sh.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        eprintln!("bhyve: selftest: exec: {}", std::io::Error::last_os_error());
    });
    if let Ok(t) = t {
        let _ = t.join();
    }
}

#[cfg(test)]
mod tests;
