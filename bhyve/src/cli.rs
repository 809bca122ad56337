//! bhyve's command line, in bhyve's spelling:
//! `bhyve [-c [cpus=]N] [-m SIZE] [-o KEY=VALUE]... NAME`.
//! A bad or missing flag gives one line naming it, the usage, and exit 2.

use clap::{ArgAction, Parser};
use std::ffi::OsString;
use vmmapi::cli;
pub use vmmapi::cli::Exit;
use vmmapi::size::parse_mem_size;

/// One-line usage printed under every command-line error.
pub const USAGE: &str = "usage: bhyve [-c [cpus=]N] [-m SIZE] [-o KEY=VALUE]... NAME  (see --help)";

/// Most vCPUs a VM has: the kernel's `VM_MAXCPU`.
pub const MAX_VCPUS: u32 = vmm_uapi::VM_MAXCPU as u32;

#[derive(Parser, Debug)]
#[command(
    name = "bhyve",
    about = "Run a VM prepared by bhyveload: its vCPUs, devices and console",
    disable_version_flag = true,
    after_help = "-o keys:\n  \
                  console=stdio      the UART on stdin/stdout (the default, and the only one for now)\n  \
                  testdev            the test device at 0x0b000000\n  \
                  testdev.param=N    the test device, with PARAM reading N\n\n\
                  vCPUs: vCPU 0 starts where bhyveload left it; the others start off, each on its own\n\
                  thread, until the guest turns them on with PSCI CPU_ON. vCPU n has MPIDR Aff0 = n mod 16,\n\
                  Aff1 = n / 16.\n\n\
                  PSCI 1.0 over HVC: PSCI_VERSION, PSCI_FEATURES, CPU_ON, CPU_OFF, AFFINITY_INFO,\n\
                  MIGRATE_INFO_TYPE, SYSTEM_OFF, SYSTEM_RESET.\n\n\
                  Exit status: 0 reset, 1 power-off, 2 halt (also: every vCPU is off), 4 error; 2 also for a\n\
                  bad command line. SIGINT, SIGTERM and SIGHUP stop every vCPU, and bhyve dies of the signal."
)]
struct Args {
    /// Number of vCPUs, 1 to 32 (the kernel's VM_MAXCPU).
    #[arg(short = 'c', value_name = "[cpus=]N")]
    cpus: Option<String>,
    /// Guest memory: must match the VM's (or sets it up if it has none).
    #[arg(short = 'm', value_name = "SIZE")]
    mem: Option<String>,
    /// A setting (see below); may be given more than once.
    #[arg(short = 'o', value_name = "KEY=VALUE", action = ArgAction::Append)]
    opts: Vec<String>,
    /// The VM, prepared by bhyveload.
    #[arg(value_name = "NAME")]
    name: String,
}

/// The console's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// stdin and stdout.
    Stdio,
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// The VM's name.
    pub name: String,
    /// vCPUs to run.
    pub cpus: u32,
    /// `-m`, in bytes.
    pub mem_size: Option<u64>,
    /// `-o console=`.
    pub console: ConsoleKind,
    /// With `-o testdev`: the test device's PARAM.
    pub testdev: Option<u64>,
}

fn usage_error(msg: &str) -> Exit {
    cli::usage_error("bhyve", USAGE, msg)
}

/// Parses the arguments (the first is the program name).
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Options, Exit> {
    let a = Args::try_parse_from(args).map_err(|e| cli::clap_exit("bhyve", USAGE, &e))?;
    let cpus = match &a.cpus {
        Some(c) => parse_cpus(c).map_err(|e| usage_error(&format!("-c {c}: {e}")))?,
        None => 1,
    };
    let mem_size = match &a.mem {
        Some(m) => Some(parse_mem_size(m).map_err(|e| usage_error(&format!("-m {m}: {e}")))?),
        None => None,
    };
    let mut opts = Options { name: a.name, cpus, mem_size, console: ConsoleKind::Stdio, testdev: None };
    let mut testdev_on = None;
    let mut param = None;
    for o in &a.opts {
        let (key, value) = match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o.as_str(), None),
        };
        let bad = |why: &str| usage_error(&format!("-o {o}: {why}"));
        match key {
            "console" => match value {
                Some("stdio") => opts.console = ConsoleKind::Stdio,
                _ => return Err(bad("the console can only be 'stdio' for now")),
            },
            "testdev" => {
                testdev_on = Some(match value {
                    None => true,
                    Some(v) => parse_bool(v).ok_or_else(|| bad("expected true or false"))?,
                })
            }
            "testdev.param" => {
                let v = value.ok_or_else(|| bad("needs a value (testdev.param=N)"))?;
                param = Some(parse_u64(v).ok_or_else(|| bad("not a number"))?);
            }
            _ => return Err(usage_error(&format!("unknown -o key '{key}'"))),
        }
    }
    // A parameter for the test device asks for the device.
    if testdev_on.unwrap_or(param.is_some()) {
        opts.testdev = Some(param.unwrap_or(0));
    }
    Ok(opts)
}

/// `-c N` or `-c cpus=N`.
fn parse_cpus(s: &str) -> Result<u32, String> {
    let n = match s.split_once('=') {
        Some(("cpus", n)) => n,
        Some((key, _)) => return Err(format!("unknown key '{key}' (only cpus= for now)")),
        None => s,
    };
    let n: u32 = n.parse().map_err(|_| format!("'{n}' is not a number of vCPUs"))?;
    if n == 0 {
        Err("a VM needs at least 1 vCPU".into())
    } else if n > MAX_VCPUS {
        Err(format!("at most {MAX_VCPUS} vCPUs (VM_MAXCPU)"))
    } else {
        Ok(n)
    }
}

/// Decimal, or hexadecimal after `0x`.
fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// bhyve's configuration booleans.
fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Some(true),
        "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Options, Exit> {
        parse(std::iter::once("bhyve").chain(args.iter().copied()).map(OsString::from))
    }

    fn err(args: &[&str]) -> String {
        p(args).unwrap_err().usage_error_line(USAGE)
    }

    #[test]
    fn defaults() {
        assert_eq!(
            p(&["g"]).unwrap(),
            Options { name: "g".into(), cpus: 1, mem_size: None, console: ConsoleKind::Stdio, testdev: None }
        );
    }

    #[test]
    fn bhyve_spelling() {
        let o = p(&["-c", "1", "-m", "64M", "-o", "console=stdio", "g"]).unwrap();
        assert_eq!((o.cpus, o.mem_size, o.console), (1, Some(64 << 20), ConsoleKind::Stdio));
        assert_eq!(p(&["-c", "cpus=1", "g"]).unwrap().cpus, 1);
        assert_eq!(p(&["-c1", "-m1g", "g"]).unwrap().mem_size, Some(1 << 30));
    }

    #[test]
    fn testdev_options() {
        assert_eq!(p(&["-o", "testdev", "g"]).unwrap().testdev, Some(0));
        assert_eq!(p(&["-o", "testdev.param=42", "g"]).unwrap().testdev, Some(42));
        assert_eq!(p(&["-o", "testdev", "-o", "testdev.param=0xfeed", "g"]).unwrap().testdev, Some(0xfeed));
        assert_eq!(p(&["-o", "testdev.param=18446744073709551615", "g"]).unwrap().testdev, Some(u64::MAX));
        assert_eq!(p(&["-o", "testdev=true", "g"]).unwrap().testdev, Some(0));
        assert_eq!(p(&["-o", "testdev=off", "g"]).unwrap().testdev, None);
        assert_eq!(p(&["-o", "testdev.param=1", "-o", "testdev=false", "g"]).unwrap().testdev, None);
    }

    #[test]
    fn bad_o_keys_are_named() {
        assert_eq!(err(&["-o", "frob=1", "g"]), "bhyve: unknown -o key 'frob'");
        assert_eq!(err(&["-o", "frob", "g"]), "bhyve: unknown -o key 'frob'");
        assert_eq!(err(&["-o", "console=tcp", "g"]), "bhyve: -o console=tcp: the console can only be 'stdio' for now");
        assert_eq!(err(&["-o", "testdev.param=x", "g"]), "bhyve: -o testdev.param=x: not a number");
        assert_eq!(err(&["-o", "testdev.param", "g"]), "bhyve: -o testdev.param: needs a value (testdev.param=N)");
        assert!(err(&["-o", "testdev=maybe", "g"]).contains("true or false"));
    }

    #[test]
    fn cpu_counts() {
        assert_eq!(p(&["-c", "2", "g"]).unwrap().cpus, 2);
        assert_eq!(p(&["-c", "cpus=4", "g"]).unwrap().cpus, 4);
        assert_eq!(p(&["-c32", "g"]).unwrap().cpus, 32);
        assert_eq!(MAX_VCPUS, 32);
        assert_eq!(err(&["-c", "33", "g"]), "bhyve: -c 33: at most 32 vCPUs (VM_MAXCPU)");
        assert_eq!(err(&["-c", "cpus=64", "g"]), "bhyve: -c cpus=64: at most 32 vCPUs (VM_MAXCPU)");
        assert_eq!(err(&["-c", "0", "g"]), "bhyve: -c 0: a VM needs at least 1 vCPU");
        assert_eq!(err(&["-c", "cpus=0", "g"]), "bhyve: -c cpus=0: a VM needs at least 1 vCPU");
        assert!(err(&["-c", "-1", "g"]).contains("-1"));
        assert!(err(&["-c", "two", "g"]).starts_with("bhyve: -c two: 'two' is not a number"));
        assert!(err(&["-c", "sockets=1", "g"]).contains("unknown key 'sockets'"));
    }

    #[test]
    fn bad_flags_are_named() {
        assert_eq!(err(&["-x", "g"]), "bhyve: unknown flag '-x'");
        assert_eq!(err(&[]), "bhyve: missing <NAME>");
        assert_eq!(err(&["g", "-m"]), "bhyve: flag '-m <SIZE>' needs a value");
        assert_eq!(err(&["-m", "12x", "g"]), "bhyve: -m 12x: unknown unit 'x' (use K, M, G or T)");
        assert_eq!(err(&["-m", "0", "g"]), "bhyve: -m 0: must not be zero");
        assert!(err(&["g", "h"]).contains("'h'"));
    }

    #[test]
    fn help_exits_zero_on_stdout() {
        let e = p(&["--help"]).unwrap_err();
        assert_eq!(e.code, 0);
        assert!(e.out.contains("testdev.param=N") && e.out.contains("-c <[cpus=]N>"));
        assert!(e.out.contains("1 to 32 (the kernel's VM_MAXCPU)"), "{}", e.out);
        assert!(e.out.contains("CPU_ON, CPU_OFF, AFFINITY_INFO"));
        assert!(e.err.is_empty());
    }
}
