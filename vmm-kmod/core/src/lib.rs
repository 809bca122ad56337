//! Rust core of the `vmm` kernel module.
//!
//! The C shim (`vmm-kmod/shim/vmm_shim.c`) owns what must be C: module
//! init/exit, device registration, file operations, CPU hotplug and PM
//! notifiers, and thin wrappers of kernel services. Everything else is here:
//!
//! - [`hyp`]: taking EL2 from the kernel's hyp stub on each CPU and giving it
//!   back, as logic over the [`hyp::El2`] trait so it is tested on x86;
//! - [`registry`]: named VMs, with FreeBSD's name rules and a limit;
//! - [`ctl`]: the `/dev/vmmctl` and `/dev/vmm/NAME` ioctls;
//! - [`arch`]: the only code that touches system registers or runs at EL2;
//! - [`kernel`]: kernel services (the shim on the target, a double in tests).
//!
//! On the build machine it links std only for the test double of the kernel
//! services. On the target it is built for `aarch64-unknown-none-softfloat`, so no
//! FP/SIMD register is used anywhere in kernel context.
#![cfg_attr(target_os = "none", no_std)]

pub mod arch;
pub mod ctl;
pub mod errno;
pub mod hyp;
pub mod iofd;
pub mod kernel;
pub mod memory;
pub mod mm;
pub mod registry;
pub mod vcpu;
pub mod vgic;
pub mod vm;
pub mod vmid;

#[cfg(all(target_os = "none", not(test)))]
mod ffi;
