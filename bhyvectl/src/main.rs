//! bhyvectl: create, destroy, list and inspect VMs, with bhyve's options.

use bhyvectl::cli::{self, Action, Command};
use std::process::ExitCode;
use vmmapi::{Vm, VmReg};

fn main() -> ExitCode {
    let cmd = match cli::parse(std::env::args_os()) {
        Ok(cmd) => cmd,
        Err(exit) => return exit.report(),
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
            Action::GetAll(name, cpu) => {
                let vm = Vm::open(name)?;
                let regs: Vec<VmReg> = VmReg::all().collect();
                let vals = vm.vcpu(*cpu).get_registers(&regs)?;
                for (r, v) in regs.iter().zip(vals) {
                    println!("{:<16}0x{v:016x}", r.name());
                }
            }
            Action::GetStats(name, cpu) => {
                for (desc, v) in Vm::open(name)?.stats(*cpu)? {
                    println!("{desc:<44}{v}");
                }
            }
            Action::GetMemmap(name) => {
                println!("{:<19}{:<19}{:<8}{:<12}prot", "address", "length", "segment", "offset");
                for m in Vm::open(name)?.memory_maps()? {
                    let prot: String = [(1, 'R'), (2, 'W'), (4, 'X')]
                        .iter()
                        .map(|&(bit, c)| if m.prot & bit != 0 { c } else { '-' })
                        .collect();
                    let seg = if m.segid == vmm_uapi::VM_SYSMEM { "sysmem".to_string() } else { m.segid.to_string() };
                    println!("0x{:016x} 0x{:016x} {seg:<8}0x{:<10x}{prot}", m.gpa, m.len, m.segoff);
                }
            }
            Action::GetActiveCpus(name) => {
                let mask = Vm::open(name)?.active_cpus()?;
                let cpus: Vec<String> = (0..64).filter(|i| mask & (1 << i) != 0).map(|i| i.to_string()).collect();
                println!("active cpus: {}", if cpus.is_empty() { "(none)".to_string() } else { cpus.join(",") });
            }
        }
    }
    Ok(())
}

fn print_hyp_status(st: &vmmapi::HypStatus) {
    use vmm_uapi::cpu_in_mask;
    println!("vms: {}", st.nr_vms);
    println!("vcpus: {}", st.nr_vcpus);
    println!("guest pages: {}", st.guest_pages);
    println!("module pages: {}", st.pages);
    println!("module objects: {}", st.objects);
    for cpu in 0..st.nr_cpus as usize {
        let online = cpu_in_mask(&st.online, cpu);
        let el2 = match (cpu_in_mask(&st.installed, cpu), cpu_in_mask(&st.answering, cpu)) {
            (true, true) => "vmm (answers)",
            (true, false) if online => "vmm (NOT ANSWERING)",
            (true, false) => "vmm",
            (false, _) => "hyp stub",
        };
        println!("cpu{cpu}: {} el2={el2}", if online { "online" } else { "offline" });
    }
}
