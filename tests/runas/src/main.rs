//! `runas UID[:GID] COMMAND [ARGS...]`: drops root and runs a command, so the
//! system tests can check what a non-root user gets (the host's busybox has
//! no su). Test-only.

use nix::unistd::{execvp, setgid, setgroups, setuid, Gid, Uid};
use std::ffi::CString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((ids, cmd)) = args.split_first().filter(|(_, c)| !c.is_empty()) else {
        eprintln!("usage: runas UID[:GID] COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    let (uid, gid) = ids.split_once(':').unwrap_or((ids, ids));
    let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
        eprintln!("runas: bad UID[:GID] '{ids}'");
        return ExitCode::from(2);
    };
    let r = setgroups(&[]).and_then(|_| setgid(Gid::from_raw(gid))).and_then(|_| setuid(Uid::from_raw(uid)));
    if let Err(e) = r {
        eprintln!("runas: cannot become {uid}:{gid}: {e}");
        return ExitCode::from(1);
    }
    let argv: Vec<CString> = match cmd.iter().map(|a| CString::new(a.as_str())).collect() {
        Ok(v) => v,
        Err(_) => {
            eprintln!("runas: argument with a NUL byte");
            return ExitCode::from(2);
        }
    };
    let e = execvp(&argv[0], &argv).unwrap_err();
    eprintln!("runas: cannot run {}: {e}", cmd[0]);
    ExitCode::from(127)
}
