//! From a disk to a [`BootPlan`]: read the table, open each file system,
//! find the first boot configuration in order of preference, let it choose,
//! and read the kernel and initrds it names.

use crate::disk::{FileDisk, ReadAt, Window};
use crate::error::{format_size, Error};
use crate::files::{place, Choice, FileRef, Files, VolInfo, MAX_CONFIG};
use crate::table::{self, TableKind};
use crate::volume::{ReadError, Stat, Volume};
use crate::{bls, extlinux, grub};
use std::path::Path;
use std::rc::Rc;

/// Limits on what is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The most bytes a kernel, or all initrds together, may have (a
    /// loader passes its guest's memory size).
    pub max_file: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_file: 1 << 30 }
    }
}

/// Which kind of configuration chose the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// GRUB's grub.cfg.
    Grub,
    /// Boot Loader Specification entries.
    Bls,
    /// extlinux.conf.
    Extlinux,
}

/// A volume of the disk, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Partition number (0: the whole disk).
    pub number: u32,
    /// "ext4", "FAT32", ...
    pub kind: String,
    /// The file system UUID.
    pub uuid: String,
    /// Its label.
    pub label: String,
}

/// What to boot, read from the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPlan {
    /// The disk's name.
    pub disk: String,
    /// The configuration kind.
    pub loader: Loader,
    /// The entry's title.
    pub title: String,
    /// The kernel's partition number (0: the whole disk).
    pub partition: u32,
    /// The kernel's path on it.
    pub kernel_path: String,
    /// The kernel's bytes, as stored (perhaps gzip-compressed).
    pub kernel: Vec<u8>,
    /// The initrds' paths (prefixed "partition N:" when not on the kernel's).
    pub initrd_paths: Vec<String>,
    /// The initrds, concatenated (each starting 4-byte aligned, as GRUB
    /// lays them out); empty without one.
    pub initrd: Vec<u8>,
    /// The kernel command line.
    pub cmdline: String,
    /// Why this entry: files read and the default that chose it.
    pub why: String,
    /// Things ignored or guessed on the way.
    pub notes: Vec<String>,
}

impl BootPlan {
    /// One line: `'Debian GNU/Linux' from disk.img partition 2:
    /// /boot/vmlinuz-6.1.0-56-arm64, /boot/initrd.img-6.1.0-56-arm64`.
    pub fn summary(&self) -> String {
        let whole =
            if self.partition == 0 { "(the whole disk)".to_string() } else { format!("partition {}", self.partition) };
        let mut files = vec![self.kernel_path.clone()];
        files.extend(self.initrd_paths.iter().cloned());
        format!("'{}' from {} {}: {}", self.title, self.disk, whole, files.join(", "))
    }
}

/// A disk opened for finding what it boots.
pub struct BootDisk {
    name: String,
    table: TableKind,
    vols: Vec<(VolInfo, Volume)>,
    infos: Vec<VolInfo>,
    table_notes: Vec<String>,
}

impl std::fmt::Debug for BootDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootDisk")
            .field("name", &self.name)
            .field("table", &self.table)
            .field("vols", &self.infos)
            .finish()
    }
}

/// Opens the disk image or device at `path` and plans its boot.
pub fn plan_file(path: &Path, opts: &Options) -> Result<BootPlan, Error> {
    let name = path.display().to_string();
    let disk = FileDisk::open(path).map_err(|e| Error::Open { disk: name.clone(), reason: io_reason(&e) })?;
    plan(&name, Rc::new(disk), opts)
}

/// Plans the boot of `disk`, called `name` in messages.
pub fn plan(name: &str, disk: Rc<dyn ReadAt>, opts: &Options) -> Result<BootPlan, Error> {
    BootDisk::open(name, disk)?.plan(opts)
}

fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_string()
}

impl BootDisk {
    /// Reads the disk's table and opens its file systems.
    pub fn open(name: &str, disk: Rc<dyn ReadAt>) -> Result<BootDisk, Error> {
        let mut s0 = [0u8; 512];
        disk.read_at(0, &mut s0).map_err(|e| Error::Open { disk: name.into(), reason: io_reason(&e) })?;
        let whole = Window::new(disk.clone(), 0, disk.size());
        let tbl = if table::has_protective_mbr(&s0) {
            table::read_gpt(&*disk).map_err(|e| Error::Table { disk: name.into(), reason: e.0 })?
        } else {
            match Volume::probe(whole.clone()) {
                Ok(Some(v)) => {
                    let info = vol_info(0, &v);
                    return Ok(BootDisk {
                        name: name.into(),
                        table: TableKind::WholeDisk,
                        infos: vec![info.clone()],
                        vols: vec![(info, v)],
                        table_notes: Vec::new(),
                    });
                }
                Err(reason) => {
                    return Err(Error::NoFileSystem { disk: name.into(), found: format!("the whole disk: {reason}") })
                }
                Ok(None) => table::read_mbr(&s0, disk.size()).ok_or_else(|| Error::NoFileSystem {
                    disk: name.into(),
                    found: "no partition table and no file system".into(),
                })?,
            }
        };
        let mut vols = Vec::new();
        let mut found = Vec::new();
        for e in &tbl.entries {
            match Volume::probe(Window::new(disk.clone(), e.start, e.len)) {
                Ok(Some(v)) => vols.push((vol_info(e.number, &v), v)),
                Ok(None) => found.push(format!("partition {} ({}): no ext2/3/4 or FAT signature", e.number, e.kind)),
                Err(reason) => found.push(format!("partition {} ({}): {reason}", e.number, e.kind)),
            }
        }
        if vols.is_empty() {
            let found = if found.is_empty() { "the partition table is empty".into() } else { found.join("; ") };
            return Err(Error::NoFileSystem { disk: name.into(), found });
        }
        let mut table_notes = tbl.notes;
        table_notes.extend(found);
        let infos = vols.iter().map(|(i, _)| i.clone()).collect();
        Ok(BootDisk { name: name.into(), table: tbl.kind, vols, infos, table_notes })
    }

    /// The readable volumes, in table order.
    pub fn volumes(&self) -> Vec<VolumeInfo> {
        self.infos
            .iter()
            .map(|v| VolumeInfo { number: v.number, kind: v.kind.into(), uuid: v.uuid.clone(), label: v.label.clone() })
            .collect()
    }

    /// The table kind.
    pub fn table(&self) -> TableKind {
        self.table
    }

    /// Finds the boot configuration, lets it choose, reads the files.
    pub fn plan(&self, opts: &Options) -> Result<BootPlan, Error> {
        let (loader, choice) = self.choose()?;
        self.load(loader, choice, opts)
    }

    fn choose(&self) -> Result<(Loader, Choice), Error> {
        let n = self.vols.len();
        // GRUB: the ESP's stubs first (firmware runs GRUB from there), then
        // the usual places of the main grub.cfg.
        for vol in 0..n {
            let mut dirs = self.list(vol, "/EFI")?.unwrap_or_default();
            // The distribution's own directory before the fallback BOOT.
            dirs.sort_by_key(|d| (d.eq_ignore_ascii_case("boot"), d.to_ascii_lowercase()));
            for d in dirs {
                let p = format!("/EFI/{d}/grub.cfg");
                if let Some(Stat::File(_)) = self.stat(vol, &p)? {
                    return Ok((Loader::Grub, grub::choose(self, vol, &p)?));
                }
            }
        }
        for p in ["/boot/grub/grub.cfg", "/grub/grub.cfg", "/boot/grub2/grub.cfg", "/grub2/grub.cfg"] {
            for vol in 0..n {
                if let Some(Stat::File(_)) = self.stat(vol, p)? {
                    return Ok((Loader::Grub, grub::choose(self, vol, p)?));
                }
            }
        }
        for vol in 0..n {
            for dir in bls::DIRS {
                if self.list(vol, dir)?.is_some_and(|names| names.iter().any(|n| n.ends_with(".conf"))) {
                    return Ok((Loader::Bls, bls::choose(self, vol)?));
                }
            }
        }
        for p in extlinux::PATHS {
            for vol in 0..n {
                if let Some(text) = self.text(vol, p)? {
                    return Ok((Loader::Extlinux, extlinux::choose(self, vol, p, &text)?));
                }
            }
        }
        let places: Vec<String> = (0..n).map(|v| place(self, v)).collect();
        Err(Error::NoConfig {
            disk: self.name.clone(),
            looked: format!(
                "EFI/*/grub.cfg, /boot/grub/grub.cfg, /grub/grub.cfg, /boot/grub2/grub.cfg, /grub2/grub.cfg, \
                 /loader/entries/*.conf, /boot/loader/entries/*.conf, /boot/extlinux/extlinux.conf and \
                 /extlinux/extlinux.conf on {}",
                places.join(", ")
            ),
        })
    }

    fn load(&self, loader: Loader, c: Choice, opts: &Options) -> Result<BootPlan, Error> {
        let kernel = self.read(&c, &c.kernel, "kernel", opts.max_file)?;
        let mut initrd = Vec::new();
        let mut initrd_paths = Vec::new();
        for f in &c.initrds {
            // Each initrd starts 4-byte aligned, as GRUB places them, so
            // that concatenated cpio archives stay readable.
            initrd.resize(initrd.len().next_multiple_of(4), 0);
            let left = opts.max_file.saturating_sub(initrd.len() as u64);
            let bytes = self.read(&c, f, "initrd", left)?;
            initrd.extend_from_slice(&bytes);
            initrd_paths.push(if f.vol == c.kernel.vol {
                f.path.clone()
            } else {
                format!("partition {}:{}", self.infos[f.vol].number, f.path)
            });
        }
        let mut notes = self.table_notes.clone();
        notes.extend(c.notes);
        Ok(BootPlan {
            disk: self.name.clone(),
            loader,
            title: c.title,
            partition: self.infos[c.kernel.vol].number,
            kernel_path: c.kernel.path,
            kernel,
            initrd_paths,
            initrd,
            cmdline: c.cmdline,
            why: c.why,
            notes,
        })
    }

    fn read(&self, c: &Choice, f: &FileRef, role: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let bad = |what: String| Error::BadFile {
            disk: self.name.clone(),
            role: role.into(),
            path: f.path.clone(),
            config: c.config.clone(),
            place: place(self, f.vol),
            what,
        };
        self.vols[f.vol].1.read(&f.path, limit).map_err(|e| match e {
            ReadError::NotFound => Error::Missing {
                disk: self.name.clone(),
                role: role.into(),
                path: f.path.clone(),
                config: c.config.clone(),
                place: place(self, f.vol),
            },
            ReadError::NotAFile => bad("is not a regular file".into()),
            ReadError::TooLarge(len) => {
                bad(format!("is {}, more than the {} limit", format_size(len), format_size(limit)))
            }
            ReadError::Failed(why) => bad(format!("cannot be read: {why}")),
        })
    }
}

fn vol_info(number: u32, v: &Volume) -> VolInfo {
    VolInfo { number, kind: v.kind, uuid: v.uuid.clone(), label: v.label.clone() }
}

impl Files for BootDisk {
    fn disk(&self) -> &str {
        &self.name
    }
    fn table(&self) -> TableKind {
        self.table
    }
    fn vols(&self) -> &[VolInfo] {
        &self.infos
    }
    fn stat(&self, vol: usize, path: &str) -> Result<Option<Stat>, Error> {
        self.vols[vol].1.stat(path).map_err(|what| self.fs_error(vol, path, what))
    }
    fn text(&self, vol: usize, path: &str) -> Result<Option<String>, Error> {
        match self.vols[vol].1.read(path, MAX_CONFIG) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(ReadError::NotFound | ReadError::NotAFile) => Ok(None),
            Err(ReadError::TooLarge(n)) => {
                Err(self.fs_error(vol, path, format!("is {}, too large for a configuration file", format_size(n))))
            }
            Err(ReadError::Failed(why)) => Err(self.fs_error(vol, path, why)),
        }
    }
    fn list(&self, vol: usize, dir: &str) -> Result<Option<Vec<String>>, Error> {
        self.vols[vol].1.list(dir).map_err(|what| self.fs_error(vol, dir, what))
    }
}

impl BootDisk {
    fn fs_error(&self, vol: usize, path: &str, what: String) -> Error {
        Error::Fs { disk: self.name.clone(), place: place(self, vol), what: format!("{path}: {what}") }
    }
}
