//! The crate's one error type. Every message is one line and names the
//! disk, and the file or entry concerned.

/// Why a disk's boot plan could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The disk could not be opened.
    #[error("cannot open {disk}: {reason}")]
    Open {
        /// The disk.
        disk: String,
        /// Why, in words.
        reason: String,
    },
    /// The partition table is unusable (both GPT copies bad).
    #[error("{disk}: {reason}")]
    Table {
        /// The disk.
        disk: String,
        /// What is wrong.
        reason: String,
    },
    /// No partition holds a file system this crate reads.
    #[error("{disk} has no ext2/3/4 or FAT file system to boot from ({found})")]
    NoFileSystem {
        /// The disk.
        disk: String,
        /// What each partition held.
        found: String,
    },
    /// No GRUB, BLS or extlinux configuration on any file system.
    #[error("no boot configuration found on {disk} (looked for {looked})")]
    NoConfig {
        /// The disk.
        disk: String,
        /// What was looked for, where.
        looked: String,
    },
    /// A configuration file that does not parse.
    #[error("{disk}: {file}, line {line}: {what}")]
    Syntax {
        /// The disk.
        disk: String,
        /// The file and its partition.
        file: String,
        /// The line.
        line: u32,
        /// What is wrong.
        what: String,
    },
    /// The default entry names nothing in the menu.
    #[error("{config}'s default entry '{default}' does not exist on {disk} (entries: {entries})")]
    NoSuchEntry {
        /// The disk.
        disk: String,
        /// "grub.cfg", "loader.conf", "extlinux.conf".
        config: String,
        /// The default as written.
        default: String,
        /// The entries there are.
        entries: String,
    },
    /// A configuration without a single entry.
    #[error("{config} on {disk} {place} has no boot entry")]
    NoEntries {
        /// The disk.
        disk: String,
        /// The configuration file (or entries directory).
        config: String,
        /// Its partition in words.
        place: String,
    },
    /// The chosen entry cannot be booted here.
    #[error("{config}'s entry '{title}' on {disk} {what}")]
    Unbootable {
        /// The disk.
        disk: String,
        /// The configuration.
        config: String,
        /// The entry.
        title: String,
        /// Why ("names no kernel", "boots with 'chainloader'...").
        what: String,
    },
    /// A device, UUID or label the configuration names is not on the disk.
    #[error("{config} names {what}, which is not on {disk}")]
    NoDevice {
        /// The disk.
        disk: String,
        /// The configuration.
        config: String,
        /// The device in words.
        what: String,
    },
    /// A kernel, initrd or configuration file that is not there.
    #[error("the {role} {path} named by {config} is not on {disk} {place}")]
    Missing {
        /// The disk.
        disk: String,
        /// "kernel", "initrd", "configuration file".
        role: String,
        /// Its path.
        path: String,
        /// What named it.
        config: String,
        /// The partition in words ("partition 2 (ext4)").
        place: String,
    },
    /// A kernel, initrd or configuration file that is there but unusable.
    #[error("the {role} {path} named by {config} on {disk} {place} {what}")]
    BadFile {
        /// The disk.
        disk: String,
        /// "kernel", "initrd", "configuration file".
        role: String,
        /// Its path.
        path: String,
        /// What named it.
        config: String,
        /// The partition in words.
        place: String,
        /// What is wrong ("is a directory", "is 2G, more than ...").
        what: String,
    },
    /// A file system that fails while being read.
    #[error("{disk} {place}: {what}")]
    Fs {
        /// The disk.
        disk: String,
        /// The partition in words.
        place: String,
        /// What failed.
        what: String,
    },
    /// A configuration that runs away (a `configfile` loop, too many commands).
    #[error("{disk}: {config} {what}")]
    Runaway {
        /// The disk.
        disk: String,
        /// The configuration.
        config: String,
        /// What it did too much of.
        what: String,
    },
}

/// A size in the largest whole unit, as the tools print sizes ("512M").
pub fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift {
            return match n % (1 << shift) {
                0 => format!("{}{unit}", n >> shift),
                _ => format!("{:.1}{unit}", n as f64 / (1u64 << shift) as f64),
            };
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_disk() {
        let e = Error::Missing {
            disk: "disk.img".into(),
            role: "kernel".into(),
            path: "/boot/vmlinuz-6.1.0-56-arm64".into(),
            config: "grub.cfg".into(),
            place: "partition 2 (ext4)".into(),
        };
        assert_eq!(
            e.to_string(),
            "the kernel /boot/vmlinuz-6.1.0-56-arm64 named by grub.cfg is not on disk.img partition 2 (ext4)"
        );
        assert_eq!(
            (format_size(512 << 20), format_size(3 << 19), format_size(100)),
            ("512M".into(), "1.5M".into(), "100 bytes".into())
        );
    }
}
