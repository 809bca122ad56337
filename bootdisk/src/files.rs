//! What the configuration readers see of a disk: its readable volumes by
//! number, UUID and label, and their files. The readers (GRUB, BLS,
//! extlinux) decide *what* boots and return a [`Choice`]; reading the
//! kernel and initrd is left to the caller, so the readers are tested
//! against an in-memory disk.

use crate::error::Error;
use crate::table::TableKind;
use crate::volume::Stat;

/// The most a configuration file may hold.
pub const MAX_CONFIG: u64 = 1 << 20;

/// A readable volume, as configurations name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolInfo {
    /// Partition number (1-based; 0 for a disk without a table).
    pub number: u32,
    /// "ext4", "FAT32", ...
    pub kind: &'static str,
    /// The file system's UUID.
    pub uuid: String,
    /// Its label.
    pub label: String,
}

/// A file on a volume (an index into [`Files::vols`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The volume.
    pub vol: usize,
    /// The absolute path on it.
    pub path: String,
}

/// What a configuration says to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The entry's title.
    pub title: String,
    /// The kernel.
    pub kernel: FileRef,
    /// The initrds, concatenated in this order.
    pub initrds: Vec<FileRef>,
    /// The kernel command line.
    pub cmdline: String,
    /// The configuration, for messages ("grub.cfg").
    pub config: String,
    /// Why this entry: the files read and the default that chose it.
    pub why: String,
    /// Things ignored or guessed on the way.
    pub notes: Vec<String>,
}

/// A disk's volumes and files.
pub trait Files {
    /// The disk's name, for messages.
    fn disk(&self) -> &str;
    /// Its partition table.
    fn table(&self) -> TableKind;
    /// The readable volumes.
    fn vols(&self) -> &[VolInfo];
    /// What `path` on volume `vol` is.
    fn stat(&self, vol: usize, path: &str) -> Result<Option<Stat>, Error>;
    /// The text of a configuration file (at most [`MAX_CONFIG`] bytes);
    /// `None` if there is no such file.
    fn text(&self, vol: usize, path: &str) -> Result<Option<String>, Error>;
    /// The names in a directory; `None` if there is none.
    fn list(&self, vol: usize, dir: &str) -> Result<Option<Vec<String>>, Error>;
}

/// Volume `vol` in words: "partition 2 (ext4)", or "(the whole disk, FAT16)".
pub fn place(files: &dyn Files, vol: usize) -> String {
    match files.vols().get(vol) {
        Some(v) if v.number == 0 => format!("(the whole disk, {})", v.kind),
        Some(v) => format!("partition {} ({})", v.number, v.kind),
        None => "(no such volume)".into(),
    }
}

/// Joins `rel` to directory `dir` and normalises the result (`.`, `..`,
/// doubled slashes), as an absolute path.
pub fn join(dir: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let full = if rel.starts_with('/') { rel.to_string() } else { format!("{dir}/{rel}") };
    for p in full.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The directory part of an absolute path.
pub fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

#[cfg(test)]
pub mod fake {
    //! An in-memory disk for the readers' tests.
    use super::*;
    use std::collections::BTreeMap;

    /// Volumes and their files; a path ending in '/' is a directory.
    pub struct FakeDisk {
        /// Table kind.
        pub table: TableKind,
        /// Volumes.
        pub vols: Vec<VolInfo>,
        /// (volume, path) to contents.
        pub files: BTreeMap<(usize, String), String>,
    }

    impl FakeDisk {
        /// A GPT disk with these (number, kind, uuid, label) volumes.
        pub fn new(vols: &[(u32, &'static str, &str, &str)]) -> Self {
            FakeDisk {
                table: TableKind::Gpt,
                vols: vols
                    .iter()
                    .map(|&(number, kind, uuid, label)| VolInfo {
                        number,
                        kind,
                        uuid: uuid.into(),
                        label: label.into(),
                    })
                    .collect(),
                files: BTreeMap::new(),
            }
        }

        /// Adds a file.
        pub fn file(mut self, vol: usize, path: &str, text: &str) -> Self {
            self.files.insert((vol, path.to_string()), text.to_string());
            self
        }
    }

    impl Files for FakeDisk {
        fn disk(&self) -> &str {
            "disk.img"
        }
        fn table(&self) -> TableKind {
            self.table
        }
        fn vols(&self) -> &[VolInfo] {
            &self.vols
        }
        fn stat(&self, vol: usize, path: &str) -> Result<Option<Stat>, Error> {
            if let Some(t) = self.files.get(&(vol, path.to_string())) {
                return Ok(Some(Stat::File(t.len() as u64)));
            }
            let dir = format!("{}/", path.trim_end_matches('/'));
            Ok(self.files.keys().any(|(v, p)| *v == vol && p.starts_with(&dir)).then_some(Stat::Dir))
        }
        fn text(&self, vol: usize, path: &str) -> Result<Option<String>, Error> {
            Ok(self.files.get(&(vol, path.to_string())).cloned())
        }
        fn list(&self, vol: usize, dir: &str) -> Result<Option<Vec<String>>, Error> {
            let dir = format!("{}/", dir.trim_end_matches('/'));
            let names: Vec<String> = self
                .files
                .keys()
                .filter(|(v, p)| *v == vol && p.starts_with(&dir))
                .filter_map(|(_, p)| p[dir.len()..].split('/').next().map(str::to_string))
                .collect();
            Ok((!names.is_empty()).then_some(names))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(join("/boot/extlinux", "../Image"), "/boot/Image");
        assert_eq!(join("/boot/extlinux", "/Image"), "/Image");
        assert_eq!(join("/", "a//b/./c"), "/a/b/c");
        assert_eq!(join("/", "../../x"), "/x");
        assert_eq!((dirname("/boot/grub/grub.cfg"), dirname("/x"), dirname("x")), ("/boot/grub", "/", "/"));
    }
}
