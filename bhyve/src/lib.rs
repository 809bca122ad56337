//! bhyve's parts, apart from its `main`: the MMIO bus, the device models, the
//! vCPU loop and its exit handling, PSCI and the vCPUs' power states, the
//! vCPU threads, the console, the command line, and the device tree that a
//! Linux guest boots with.
//! Everything here that does not need the kernel is unit-tested on any host.

pub mod boot;
pub mod bus;
pub mod cli;
pub mod console;
pub mod devices;
pub mod devmgr;
pub mod error;
pub mod fdt;
pub mod firmware;
pub mod fpcheck;
pub mod hyp_exit;
pub mod insn;
pub mod layout;
pub mod power;
pub mod psci;
pub mod sandbox;
pub mod signals;
pub mod smp;
pub mod vcpu;
pub mod virtio;
