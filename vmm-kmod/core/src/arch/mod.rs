//! The hardware layer: the only code that reads or writes system registers,
//! issues `hvc`, maintains caches, or runs at EL2.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
