//! `vmmfuzz`: attacks the vmm module from userspace, as a hostile or buggy
//! tool would, and says what it found. Test-only: run inside the emulated host.
//!
//! ```text
//! vmmfuzz openrace SECONDS   opens /dev/vmm/a while another thread destroys
//!                            a and creates b in its place; fails if an open
//!                            of a's path ever yields b
//! ```

mod openrace;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: vmmfuzz openrace SECONDS");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["openrace", secs] => match secs.parse() {
            Ok(s) => openrace::run(std::time::Duration::from_secs(s)),
            Err(_) => usage(),
        },
        _ => usage(),
    }
}
