//! bhyvectl's command line, in bhyve's long-option spelling (`--vm=NAME`).
//! A bad or missing flag gives one line naming it, the usage, and exit 2.

use clap::{ArgAction, Parser};
use std::ffi::OsString;
use vmmapi::cli;
pub use vmmapi::cli::Exit;

/// One-line usage printed under every command-line error.
pub const USAGE: &str = "usage: bhyvectl --vm=NAME [--create] [--destroy] | --list | --get-hyp-status  (see --help)";

#[derive(Parser, Debug)]
#[command(
    name = "bhyvectl",
    about = "Create, destroy, list and inspect VMs of the vmm module",
    disable_version_flag = true,
    after_help = "Exit status: 0 on success, 1 when an operation fails, 2 for a bad command line."
)]
struct Args {
    /// The VM to act on.
    #[arg(long, value_name = "NAME")]
    vm: Option<String>,
    /// Create the VM (before any other action).
    #[arg(long, action = ArgAction::SetTrue)]
    create: bool,
    /// Destroy the VM (after any other action).
    #[arg(long, action = ArgAction::SetTrue)]
    destroy: bool,
    /// The vCPU for --get-all and --get-stats (default 0).
    #[arg(long, value_name = "N", default_value_t = 0)]
    cpu: i32,
    /// Print the vCPU's registers (the VM must not be running).
    #[arg(long, action = ArgAction::SetTrue)]
    get_all: bool,
    /// Print the vCPU's exit counters.
    #[arg(long, action = ArgAction::SetTrue)]
    get_stats: bool,
    /// Print the VM's guest physical memory map.
    #[arg(long, action = ArgAction::SetTrue)]
    get_memmap: bool,
    /// Print which vCPUs are active.
    #[arg(long, action = ArgAction::SetTrue)]
    get_active_cpus: bool,
    /// List the VMs that exist.
    #[arg(long, action = ArgAction::SetTrue)]
    list: bool,
    /// Show, per CPU, whether the module holds EL2 and its code answers.
    #[arg(long, action = ArgAction::SetTrue)]
    get_hyp_status: bool,
}

/// What to do, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// `--create`.
    Create(String),
    /// `--list`.
    List,
    /// `--get-hyp-status`.
    HypStatus,
    /// `--get-all` of vCPU n.
    GetAll(String, i32),
    /// `--get-stats` of vCPU n.
    GetStats(String, i32),
    /// `--get-memmap`.
    GetMemmap(String),
    /// `--get-active-cpus`.
    GetActiveCpus(String),
    /// `--destroy`.
    Destroy(String),
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Command {
    /// The actions, create first and destroy last, as bhyvectl does.
    pub actions: Vec<Action>,
}

fn usage_error(msg: &str) -> Exit {
    cli::usage_error("bhyvectl", USAGE, msg)
}

/// The command line's definition: what `--help` prints and what the shell
/// completions (crate `completions`) are generated from.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// Parses the arguments (the first is the program name).
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, Exit> {
    let a = Args::try_parse_from(args).map_err(|e| cli::clap_exit("bhyvectl", USAGE, &e))?;
    let needs_vm = |flag: &str| -> Result<String, Exit> {
        a.vm.clone().ok_or_else(|| usage_error(&format!("{flag} needs --vm=NAME")))
    };
    let mut actions = vec![];
    if a.create {
        actions.push(Action::Create(needs_vm("--create")?));
    }
    if a.list {
        actions.push(Action::List);
    }
    if a.get_hyp_status {
        actions.push(Action::HypStatus);
    }
    if a.get_all {
        actions.push(Action::GetAll(needs_vm("--get-all")?, a.cpu));
    }
    if a.get_stats {
        actions.push(Action::GetStats(needs_vm("--get-stats")?, a.cpu));
    }
    if a.get_memmap {
        actions.push(Action::GetMemmap(needs_vm("--get-memmap")?));
    }
    if a.get_active_cpus {
        actions.push(Action::GetActiveCpus(needs_vm("--get-active-cpus")?));
    }
    if a.destroy {
        actions.push(Action::Destroy(needs_vm("--destroy")?));
    }
    if actions.is_empty() {
        return Err(usage_error(if a.vm.is_some() {
            "--vm=NAME given without an action (--create, --destroy)"
        } else {
            "no action given"
        }));
    }
    Ok(Command { actions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, Exit> {
        parse(std::iter::once("bhyvectl").chain(args.iter().copied()).map(OsString::from))
    }

    fn err(args: &[&str]) -> String {
        p(args).unwrap_err().usage_error_line(USAGE)
    }

    #[test]
    fn bhyve_spelling() {
        assert_eq!(p(&["--vm=a", "--create"]).unwrap().actions, vec![Action::Create("a".into())]);
        assert_eq!(p(&["--create", "--vm", "b"]).unwrap().actions, vec![Action::Create("b".into())]);
        assert_eq!(
            p(&["--destroy", "--vm=a", "--create"]).unwrap().actions,
            vec![Action::Create("a".into()), Action::Destroy("a".into())],
            "create first, destroy last"
        );
        assert_eq!(p(&["--list"]).unwrap().actions, vec![Action::List]);
        assert_eq!(p(&["--get-hyp-status"]).unwrap().actions, vec![Action::HypStatus]);
        assert_eq!(
            p(&["--vm=g", "--cpu=0", "--get-all", "--get-stats"]).unwrap().actions,
            vec![Action::GetAll("g".into(), 0), Action::GetStats("g".into(), 0)]
        );
        assert_eq!(p(&["--vm=g", "--get-memmap"]).unwrap().actions, vec![Action::GetMemmap("g".into())]);
    }

    #[test]
    fn bad_flags_are_named() {
        assert_eq!(err(&["--frobnicate"]), "bhyvectl: unknown flag '--frobnicate'");
        assert_eq!(err(&["--vm=a", "--destory"]), "bhyvectl: unknown flag '--destory'");
        assert_eq!(err(&["--create"]), "bhyvectl: --create needs --vm=NAME");
        assert_eq!(err(&["--destroy"]), "bhyvectl: --destroy needs --vm=NAME");
        assert_eq!(err(&["--vm"]), "bhyvectl: flag '--vm <NAME>' needs a value");
        assert_eq!(err(&["--get-all"]), "bhyvectl: --get-all needs --vm=NAME");
        assert!(err(&["--vm=g", "--get-all", "--cpu=x"]).contains("--cpu"));
        assert_eq!(err(&[]), "bhyvectl: no action given");
        assert!(err(&["--vm=a"]).contains("without an action"));
        assert!(err(&["stray"]).contains("'stray'"));
    }

    #[test]
    fn help_exits_zero_on_stdout() {
        let e = p(&["--help"]).unwrap_err();
        assert_eq!(e.code, 0);
        assert!(e.out.contains("--vm <NAME>") && e.out.contains("--destroy"));
        assert!(e.err.is_empty());
    }
}
