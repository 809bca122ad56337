//! What an installed Linux disk boots, found without firmware: the
//! partition table (GPT with its backup, MBR, or none), the ext2/3/4 and
//! FAT file systems on it, and the boot configuration they hold: GRUB's
//! `grub.cfg` first (the ESP's `EFI/*/grub.cfg` stub, then `/boot/grub`,
//! `/grub`, `/boot/grub2`, `/grub2`), then Boot Loader Specification
//! entries, then `extlinux.conf`. The result is a [`BootPlan`]: the
//! default entry's kernel and initrd bytes and its command line, with one
//! line saying what was chosen and why.
//!
//! Everything is read-only: the disk is read through [`ReadAt`] (a file,
//! a block device, bytes in memory, or any `Read + Seek`), never written.
//!
//! ```no_run
//! let plan = bootdisk::plan_file(std::path::Path::new("disk.img"), &bootdisk::Options::default())?;
//! println!("booting {}", plan.summary());
//! # Ok::<(), bootdisk::Error>(())
//! ```

// The error names the disk, the file and the entry, so it is large; it
// ends the run, once, so its size costs nothing.
#![allow(clippy::result_large_err)]

mod bls;
mod disk;
mod error;
mod extlinux;
mod files;
mod grub;
#[cfg(test)]
mod image_tests;
mod plan;
mod table;
#[cfg(test)]
mod testimg;
mod volume;

pub use disk::{FileDisk, ReadAt, SeekDisk};
pub use error::{format_size, Error};
pub use plan::{plan, plan_file, BootDisk, BootPlan, Loader, Options, VolumeInfo};
pub use table::TableKind;
