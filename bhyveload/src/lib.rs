//! The pure parts of bhyveload, kept apart so that they are unit-tested on any
//! host and shared with bhyve (which takes the same `-m SIZE`): memory sizes
//! ([`size`]), where a kernel goes in guest memory ([`image`]) and where
//! the guest is found when no kernel is named ([`guestdir`]); and its
//! command line ([`cli`]), which the shell completions are made from.

pub mod cli;
pub mod guestdir;
pub mod image;
