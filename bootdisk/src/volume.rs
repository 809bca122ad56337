//! The file systems a boot loader reads: ext2/3/4 through `ext4-view` and
//! FAT12/16/32 through `fatfs`, behind one small interface (stat, read up
//! to a limit, list a directory) with the volume's UUID and label, as
//! GRUB's `search` sees them.
//!
//! Both libraries get the partition through a [`Window`] with a read
//! budget, so a corrupt file system whose chains loop ends in an error
//! rather than a hang; FAT lookups walk directories here, with a bound on
//! entries, rather than through `fatfs`'s unbounded path search.

use crate::disk::Window;
use std::io::Read;

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// A regular file of this many bytes.
    File(u64),
    /// A directory.
    Dir,
    /// Something else (a device, a socket...).
    Other,
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing at that path.
    NotFound,
    /// A directory or special file.
    NotAFile,
    /// Larger than the limit; its length.
    TooLarge(u64),
    /// The file system failed (corrupt, or an I/O error): in words.
    Failed(String),
}

/// The most entries one FAT directory may have (the format's own limit).
const MAX_FAT_DIR_ENTRIES: usize = 65536;
/// Names listed from one directory at most (BLS entry directories).
pub const MAX_LIST: usize = 4096;

/// A readable file system on a partition or a whole disk.
pub struct Volume {
    /// "ext4", "ext3", "ext2", "FAT12", "FAT16" or "FAT32".
    pub kind: &'static str,
    /// The UUID as `blkid` and GRUB show it: hyphenated hex for ext,
    /// XXXX-XXXX (the volume serial) for FAT.
    pub uuid: String,
    /// The label ("" without one).
    pub label: String,
    fs: Fs,
}

enum Fs {
    Ext(ext4_view::Ext4),
    Fat(Box<fatfs::FileSystem<Window>>),
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("kind", &self.kind)
            .field("uuid", &self.uuid)
            .field("label", &self.label)
            .finish()
    }
}

const EXT_MAGIC: u16 = 0xef53;
const EXT_COMPAT_JOURNAL: u32 = 0x4;
const EXT_INCOMPAT_EXTENTS: u32 = 0x40;
const EXT_INCOMPAT_64BIT: u32 = 0x80;
const EXT_INCOMPAT_FLEX_BG: u32 = 0x200;

impl Volume {
    /// The file system on `w`: `Ok(None)` when it carries no ext or FAT
    /// signature, `Err` (in words) when it does but cannot be read.
    pub fn probe(w: Window) -> Result<Option<Volume>, String> {
        let mut sb = [0u8; 1024];
        if w.read_at(1024, &mut sb).is_ok() && u16::from_le_bytes([sb[56], sb[57]]) == EXT_MAGIC {
            return Self::ext(w, &sb).map(Some);
        }
        let mut boot = [0u8; 512];
        if w.read_at(0, &mut boot).is_ok() && looks_like_fat(&boot) {
            return Self::fat(w).map(Some);
        }
        Ok(None)
    }

    fn ext(w: Window, sb: &[u8; 1024]) -> Result<Volume, String> {
        let le32 = |at: usize| u32::from_le_bytes(sb[at..at + 4].try_into().unwrap_or_default());
        let (compat, incompat) = (le32(92), le32(96));
        let log = le32(24);
        if log > 6 {
            return Err(format!("ext superblock has a block size of 2^{} bytes", log + 10));
        }
        let block = 1024u64 << log;
        let mut blocks = u64::from(le32(4));
        if incompat & EXT_INCOMPAT_64BIT != 0 {
            blocks |= u64::from(le32(0x150)) << 32;
        }
        // ext4-view sizes its tables by the superblock's counts; a count
        // beyond the partition is corruption, and refused before it can
        // ask for memory that no real file system needs.
        if blocks.checked_mul(block).is_none_or(|n| n > w.len()) || le32(32) == 0 {
            return Err(format!(
                "ext superblock says {blocks} blocks of {block} bytes ({} per group) on {} bytes",
                le32(32),
                w.len()
            ));
        }
        let kind = if incompat & (EXT_INCOMPAT_EXTENTS | EXT_INCOMPAT_64BIT | EXT_INCOMPAT_FLEX_BG) != 0 {
            "ext4"
        } else if compat & EXT_COMPAT_JOURNAL != 0 {
            "ext3"
        } else {
            "ext2"
        };
        let fs = ext4_view::Ext4::load(Box::new(w)).map_err(|e| e.to_string())?;
        let uuid = fs.uuid().to_string();
        let label = fs.label().display().to_string();
        Ok(Volume { kind, uuid, label, fs: Fs::Ext(fs) })
    }

    fn fat(w: Window) -> Result<Volume, String> {
        let fs = fatfs::FileSystem::new(w, fatfs::FsOptions::new()).map_err(|e| e.to_string())?;
        let kind = match fs.fat_type() {
            fatfs::FatType::Fat12 => "FAT12",
            fatfs::FatType::Fat16 => "FAT16",
            fatfs::FatType::Fat32 => "FAT32",
        };
        let id = fs.volume_id();
        let uuid = format!("{:04X}-{:04X}", id >> 16, id & 0xffff);
        let label = String::from_utf8_lossy(fs.volume_label_as_bytes()).into_owned();
        let label = if label == "NO NAME" { String::new() } else { label };
        Ok(Volume { kind, uuid, label, fs: Fs::Fat(Box::new(fs)) })
    }

    /// What `path` (absolute, '/'-separated) names, following symbolic
    /// links; `None` if nothing.
    pub fn stat(&self, path: &str) -> Result<Option<Stat>, String> {
        match &self.fs {
            Fs::Ext(fs) => match fs.metadata(path) {
                Ok(m) if m.is_dir() => Ok(Some(Stat::Dir)),
                Ok(m) if m.file_type().is_regular_file() => Ok(Some(Stat::File(m.len()))),
                Ok(_) => Ok(Some(Stat::Other)),
                Err(e) if is_absent(&e) => Ok(None),
                Err(e) => Err(e.to_string()),
            },
            Fs::Fat(fs) => Ok(fat_lookup(fs, path)?.map(|e| match e {
                FatNode::Root => Stat::Dir,
                FatNode::Entry(e) if e.is_dir() => Stat::Dir,
                FatNode::Entry(e) => Stat::File(e.len()),
            })),
        }
    }

    /// The bytes of the file at `path`, if it has at most `limit` of them.
    pub fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, ReadError> {
        match &self.fs {
            Fs::Ext(fs) => {
                let mut f = match fs.open(path) {
                    Ok(f) => f,
                    Err(e) if is_absent(&e) => return Err(ReadError::NotFound),
                    Err(ext4_view::Ext4Error::IsADirectory | ext4_view::Ext4Error::IsASpecialFile) => {
                        return Err(ReadError::NotAFile)
                    }
                    Err(e) => return Err(ReadError::Failed(e.to_string())),
                };
                let len = f.metadata().len();
                if len > limit {
                    return Err(ReadError::TooLarge(len));
                }
                let mut out = vec![0u8; len as usize];
                let mut at = 0;
                while at < out.len() {
                    match f.read_bytes(&mut out[at..]) {
                        Ok(0) => return Err(ReadError::Failed(format!("ends after {at} of its {len} bytes"))),
                        Ok(n) => at += n,
                        Err(e) => return Err(ReadError::Failed(e.to_string())),
                    }
                }
                Ok(out)
            }
            Fs::Fat(fs) => {
                let e = match fat_lookup(fs, path).map_err(ReadError::Failed)? {
                    None => return Err(ReadError::NotFound),
                    Some(FatNode::Root) => return Err(ReadError::NotAFile),
                    Some(FatNode::Entry(e)) if e.is_dir() => return Err(ReadError::NotAFile),
                    Some(FatNode::Entry(e)) => e,
                };
                let len = e.len();
                if len > limit {
                    return Err(ReadError::TooLarge(len));
                }
                let mut out = Vec::with_capacity(len as usize);
                e.to_file().take(len).read_to_end(&mut out).map_err(|e| ReadError::Failed(e.to_string()))?;
                if (out.len() as u64) < len {
                    return Err(ReadError::Failed(format!("ends after {} of its {len} bytes", out.len())));
                }
                Ok(out)
            }
        }
    }

    /// The names in directory `path` (without `.` and `..`), at most
    /// [`MAX_LIST`]; `None` if there is no such directory.
    pub fn list(&self, path: &str) -> Result<Option<Vec<String>>, String> {
        match &self.fs {
            Fs::Ext(fs) => {
                let dir = match fs.read_dir(path) {
                    Ok(d) => d,
                    Err(e) if is_absent(&e) || matches!(e, ext4_view::Ext4Error::NotADirectory) => return Ok(None),
                    Err(e) => return Err(e.to_string()),
                };
                let mut names = Vec::new();
                for e in dir.take(MAX_LIST + 2) {
                    let e = e.map_err(|e| e.to_string())?;
                    let name = e.file_name().display().to_string();
                    if name != "." && name != ".." {
                        names.push(name);
                    }
                }
                names.truncate(MAX_LIST);
                Ok(Some(names))
            }
            Fs::Fat(fs) => {
                let dir = match fat_lookup(fs, path)? {
                    Some(FatNode::Root) => fs.root_dir(),
                    Some(FatNode::Entry(e)) if e.is_dir() => e.to_dir(),
                    _ => return Ok(None),
                };
                let mut names = Vec::new();
                for e in dir.iter().take(MAX_LIST + 2) {
                    let name = e.map_err(|e| e.to_string())?.file_name();
                    if name != "." && name != ".." {
                        names.push(name);
                    }
                }
                names.truncate(MAX_LIST);
                Ok(Some(names))
            }
        }
    }
}

fn is_absent(e: &ext4_view::Ext4Error) -> bool {
    matches!(
        e,
        ext4_view::Ext4Error::NotFound | ext4_view::Ext4Error::NotADirectory | ext4_view::Ext4Error::MalformedPath
    )
}

/// Whether sector 0 carries a FAT boot sector: the jump, a power-of-two
/// sector size from 512 to 4096, a power-of-two cluster, reserved sectors
/// and one or two FATs. (`fatfs` checks the rest.)
pub fn looks_like_fat(b: &[u8]) -> bool {
    let bps = u16::from_le_bytes([b[11], b[12]]);
    let spc = b[13];
    (b[0] == 0xeb || b[0] == 0xe9)
        && bps.is_power_of_two()
        && (512..=4096).contains(&bps)
        && spc.is_power_of_two()
        && u16::from_le_bytes([b[14], b[15]]) > 0
        && (1..=2).contains(&b[16])
        && b[510..512] == [0x55, 0xaa]
}

enum FatNode<'a> {
    Root,
    Entry(fatfs::DirEntry<'a, Window>),
}

/// Walks `path` one directory at a time, comparing names as FAT does
/// (without case, long or short name).
fn fat_lookup<'a>(fs: &'a fatfs::FileSystem<Window>, path: &str) -> Result<Option<FatNode<'a>>, String> {
    let mut stack: Vec<fatfs::DirEntry<'a, Window>> = Vec::new();
    let mut at_file = false;
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if at_file {
            return Ok(None);
        }
        if part == ".." {
            stack.pop();
            continue;
        }
        let dir = match stack.last() {
            None => fs.root_dir(),
            Some(e) => e.to_dir(),
        };
        let mut found = None;
        for e in dir.iter().take(MAX_FAT_DIR_ENTRIES) {
            let e = e.map_err(|e| e.to_string())?;
            if e.file_name().eq_ignore_ascii_case(part) || e.short_file_name().eq_ignore_ascii_case(part) {
                found = Some(e);
                break;
            }
        }
        let Some(e) = found else { return Ok(None) };
        at_file = !e.is_dir();
        stack.push(e);
    }
    Ok(Some(stack.pop().map_or(FatNode::Root, FatNode::Entry)))
}
