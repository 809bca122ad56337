//! bhyveload's parts, apart from its `main`: memory sizes and where a
//! kernel goes in guest memory ([`image`], pure, unit-tested on any host and
//! shared with bhyve, which takes the same `-m SIZE`), where the guest is
//! found when no kernel is named ([`guestdir`]), opening a kernel or initrd
//! and putting it into guest memory ([`kernel`]), which the KVM VMM of the
//! benchmarks (`tests/kvmvmm`) shares so that both load alike, and its
//! command line ([`cli`]), which the shell completions are made from.

pub mod cli;
pub mod error;
pub mod guestdir;
pub mod image;
pub mod kernel;
