//! bhyvectl: create, destroy, list and inspect VMs, with bhyve's options.

mod cli;

use cli::{Action, Command};
use std::process::ExitCode;
use vmmapi::Vm;

fn main() -> ExitCode {
    let cmd = match cli::parse(std::env::args_os()) {
        Ok(cmd) => cmd,
        Err(cli::Exit { code, out, err }) => {
            print!("{out}");
            eprint!("{err}");
            return ExitCode::from(code);
        }
    };
    match run(&cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bhyvectl: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cmd: &Command) -> vmmapi::Result<()> {
    for action in &cmd.actions {
        match action {
            Action::Create(name) => Vm::create(name)?,
            Action::Destroy(name) => Vm::destroy_name(name)?,
            Action::List => {
                for name in vmmapi::list()? {
                    println!("{name}");
                }
            }
            Action::HypStatus => print_hyp_status(&vmmapi::hyp_status()?),
        }
    }
    Ok(())
}

fn print_hyp_status(st: &vmmapi::HypStatus) {
    use vmm_uapi::cpu_in_mask;
    println!("vms: {}", st.nr_vms);
    for cpu in 0..st.nr_cpus as usize {
        let online = cpu_in_mask(&st.online, cpu);
        let el2 = match (
            cpu_in_mask(&st.installed, cpu),
            cpu_in_mask(&st.answering, cpu),
        ) {
            (true, true) => "vmm (answers)",
            (true, false) if online => "vmm (NOT ANSWERING)",
            (true, false) => "vmm",
            (false, _) => "hyp stub",
        };
        println!(
            "cpu{cpu}: {} el2={el2}",
            if online { "online" } else { "offline" }
        );
    }
}
