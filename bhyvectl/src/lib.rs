//! bhyvectl's command line, as a library so that the shell completions
//! (crate `completions`) are made from the same definition.

pub mod cli;
