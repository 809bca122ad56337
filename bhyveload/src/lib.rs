//! The pure parts of bhyveload, kept apart so that they are unit-tested on any
//! host and shared with bhyve (which takes the same `-m SIZE`): memory sizes
//! ([`size`]) and where a kernel goes in guest memory ([`image`]).

pub mod image;
