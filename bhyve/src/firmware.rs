//! Firmware boots (`-o bootrom=FILE`): the firmware checked, the variable
//! store found or made, both loaded into the flash banks' memory segments,
//! and the flash device ([`crate::devices::flash`]) given what it works on.
//!
//! Everything that can be refused is refused before the VM is touched:
//! [`Firmware::read`] reads and checks both files and decides what a
//! missing variable store is made from, without writing anything. The
//! store's file is made (from its template, through a temporary file and a
//! rename, flushed) only once the VM is ready for it.

use crate::devices::flash::{Array, Mapper, Store, BANK_SIZE};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use vmmapi::size::format_size;
use vmmapi::vm_memory::{Bytes, MemoryRegionAddress};
use vmmapi::{GuestRegion, Vm, VM_BOOTROM, VM_BOOTVARS, VM_PROT_EXECUTE, VM_PROT_READ};

/// What erased flash reads as.
pub const ERASED: u8 = 0xff;

/// The segment of each bank and the name it is allocated with.
pub const BANKS: [(i32, &str); 2] = [(VM_BOOTROM, "bootrom"), (VM_BOOTVARS, "bootvars")];

/// What a firmware image was recognised by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A UEFI firmware volume (EDK2).
    Uefi,
    /// U-Boot's AArch64 start (`b reset` over its header).
    UBoot,
    /// Something else that starts with a branch.
    Other,
}

/// Why a firmware image is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Nothing in it.
    #[error("it is empty")]
    Empty,
    /// Larger than the bank it goes into.
    #[error("it is {}, larger than the {} flash bank", format_size(*size), format_size(BANK_SIZE))]
    TooBig {
        /// Its size.
        size: u64,
    },
    /// A Linux kernel, which bhyveload loads.
    #[error("it is a Linux kernel Image, not firmware (load it with bhyveload -k)")]
    LinuxImage,
    /// The first instruction (where vCPU 0 starts) is not a branch.
    #[error("it is not AArch64 firmware: its first word {insn:#010x} is not a branch instruction")]
    NotFirmware {
        /// The first word.
        insn: u32,
    },
    /// A firmware volume runs past the end of the file.
    #[error("it is truncated: its UEFI firmware volume at {offset:#x} is {} long, but the file ends {} into it", format_size(*len), format_size(*have))]
    TruncatedVolume {
        /// Where the volume starts.
        offset: u64,
        /// Its length by its header.
        len: u64,
        /// What the file has of it.
        have: u64,
    },
    /// U-Boot's image runs past the end of the file.
    #[error("it is truncated: its U-Boot image is {end} bytes long by its header, the file {size}")]
    TruncatedUBoot {
        /// The image's length by its header.
        end: u64,
        /// The file's.
        size: u64,
    },
}

/// `B` with any offset.
const fn is_branch(insn: u32) -> bool {
    insn & 0xfc00_0000 == 0x1400_0000
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The UEFI firmware volume header at `off`, if one is there (signature
/// `_FVH`, a header that sums to zero): its length.
fn volume_at(image: &[u8], off: usize) -> Option<u64> {
    if image.get(off + 0x28..off + 0x2c)? != b"_FVH" {
        return None;
    }
    let header = u16_at(image, off + 0x30)? as usize;
    let words = image.get(off..off + header)?;
    let sum = words.chunks_exact(2).fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
    (header >= 0x38 && header.is_multiple_of(2) && sum == 0).then_some(u64_at(image, off + 0x20)?)
}

/// Checks a firmware image for flash bank 0: a size that fits, a branch
/// where vCPU 0 starts, and, where it has a header that says how long it
/// is (a UEFI firmware volume in its first 64 KiB, U-Boot's AArch64
/// start), all of it.
pub fn check_image(image: &[u8]) -> Result<Kind, ImageError> {
    let size = image.len() as u64;
    if size == 0 {
        return Err(ImageError::Empty);
    }
    if size > BANK_SIZE {
        return Err(ImageError::TooBig { size });
    }
    // The arm64 Image header's magic, "ARM\x64" at 56.
    if image.get(56..60) == Some(b"ARM\x64") {
        return Err(ImageError::LinuxImage);
    }
    let word = |at: usize| image.get(at..at + 4).map(|w| u32::from_le_bytes(w.try_into().unwrap_or([0; 4])));
    let insn = word(0).unwrap_or(0);
    if !is_branch(insn) {
        return Err(ImageError::NotFirmware { insn });
    }
    for off in (0..image.len().min(64 << 10)).step_by(4096) {
        if let Some(len) = volume_at(image, off) {
            let have = size - off as u64;
            if len > have {
                return Err(ImageError::TruncatedVolume { offset: off as u64, len, have });
            }
            return Ok(Kind::Uefi);
        }
    }
    // U-Boot's arm64 start.S: "b reset" over a nop and four words, the
    // second of which is the image's length (_end - _start).
    if insn == 0x1400_000a && word(4) == Some(0xd503_201f) {
        if let Some(end) = u64_at(image, 0x10).filter(|&e| e > 0x28 && e <= BANK_SIZE) {
            if end > size {
                return Err(ImageError::TruncatedUBoot { end, size });
            }
            return Ok(Kind::UBoot);
        }
    }
    Ok(Kind::Other)
}

/// The variable store template that goes with firmware at `rom`, by
/// Debian's (and Fedora's) naming: `X_VARS*.fd` beside `X_CODE*.fd`
/// (`AAVMF_CODE.fd` and `AAVMF_VARS.fd`, `AAVMF_CODE.ms.fd` and
/// `AAVMF_VARS.ms.fd`), if it exists.
pub fn template_for(rom: &Path) -> Option<PathBuf> {
    let name = rom.file_name()?.to_str()?;
    let at = name.find("_CODE")?;
    let vars = rom.with_file_name(format!("{}_VARS{}", &name[..at], &name[at + 5..]));
    vars.is_file().then_some(vars)
}

/// Why a firmware boot cannot start.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// The firmware file cannot be read.
    #[error("bootrom '{}': {}", path.display(), io_words(err))]
    ReadRom {
        /// The file.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The firmware file is refused.
    #[error("bootrom '{}': {why}", path.display())]
    BadRom {
        /// The file.
        path: PathBuf,
        /// Why.
        why: ImageError,
    },
    /// A variable store or its template cannot be used.
    #[error("bootvars '{}': {why}", path.display())]
    Vars {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

fn io_words(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => vmmapi::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// A regular file's bytes and its length; a file larger than a bank is not
/// read (its bytes come back empty).
fn read_up_to_bank(path: &Path) -> std::io::Result<(Vec<u8>, u64)> {
    let f = File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    let mut v = vec![];
    if meta.len() <= BANK_SIZE {
        // Never more than a bank, whatever the file does meanwhile.
        f.take(BANK_SIZE + 1).read_to_end(&mut v)?;
    }
    Ok((v, meta.len()))
}

/// The variable store: what bank 1 holds, and the file its writes go to.
pub struct Vars {
    /// The bank's first bytes (the rest is erased).
    pub bytes: Vec<u8>,
    /// The store's file: open, or to be made (`-o bootvars` of a missing
    /// file), or none (the variables last until bhyve exits).
    pub file: VarsFile,
}

/// Where bank 1's writes go.
pub enum VarsFile {
    /// Nowhere: kept in memory only.
    None,
    /// This file, open for writing.
    Open(File),
    /// A file to make from [`Vars::bytes`] at this path.
    Create(PathBuf),
}

/// A firmware boot, read and checked, nothing written yet.
pub struct Firmware {
    /// The firmware image, for bank 0.
    pub rom: Vec<u8>,
    /// What it was recognised as.
    pub kind: Kind,
    /// The variable store, for bank 1.
    pub vars: Vars,
}

impl Firmware {
    /// Reads and checks the firmware and the variable store (or its
    /// template) of `opts`.
    pub fn read(opts: &crate::cli::BootRom) -> Result<Firmware, FirmwareError> {
        let (rom, len) =
            read_up_to_bank(&opts.rom).map_err(|err| FirmwareError::ReadRom { path: opts.rom.clone(), err })?;
        let bad = |why| FirmwareError::BadRom { path: opts.rom.clone(), why };
        if len > BANK_SIZE {
            return Err(bad(ImageError::TooBig { size: len }));
        }
        let kind = check_image(&rom).map_err(bad)?;
        let vars_err = |path: &Path, why: String| FirmwareError::Vars { path: path.to_path_buf(), why };
        let existing = match &opts.vars {
            Some(p) => match OpenOptions::new().read(true).write(true).open(p) {
                Ok(f) => Some((p, f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(vars_err(p, io_words(&e))),
            },
            None => None,
        };
        let vars = match existing {
            Some((p, f)) => {
                let bytes = store_bytes(p).map_err(|why| vars_err(p, why))?;
                Vars { bytes, file: VarsFile::Open(f) }
            }
            None => {
                let template = opts.template.clone().or_else(|| template_for(&opts.rom));
                let bytes = match &template {
                    Some(t) => store_bytes(t).map_err(|why| vars_err(t, format!("(the template) {why}")))?,
                    None => vec![ERASED; BANK_SIZE as usize],
                };
                let file = opts.vars.clone().map_or(VarsFile::None, VarsFile::Create);
                Vars { bytes, file }
            }
        };
        Ok(Firmware { rom, kind, vars })
    }
}

/// A variable store's (or template's) bytes: a regular file of at most a bank.
fn store_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let (bytes, len) = read_up_to_bank(path).map_err(|e| io_words(&e))?;
    if len > BANK_SIZE || bytes.len() as u64 > BANK_SIZE {
        return Err(format!("it is larger than the {} flash bank", format_size(BANK_SIZE)));
    }
    Ok(bytes)
}

/// Makes the variable store's file at `path` holding `bytes`, through a
/// temporary file renamed into place once flushed: a crash leaves either
/// nothing or the whole file.
pub fn create_store(path: &Path, bytes: &[u8]) -> std::io::Result<File> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let made = (|| {
        let f = OpenOptions::new().read(true).write(true).create_new(true).open(&tmp)?;
        f.write_all_at(bytes, 0)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(f)
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    made
}

/// Loads `bytes` into a bank's segment through `region`, the rest of the
/// bank filled with `fill`. In a `fresh` segment (its pages never touched,
/// so zero) pages that would be written with zeros are skipped, so that
/// they are never allocated.
pub fn load_bank(region: &GuestRegion, bytes: &[u8], fill: u8, fresh: bool) -> Result<(), String> {
    let mut page = [0u8; 4096];
    for off in (0..BANK_SIZE as usize).step_by(page.len()) {
        let have = bytes.get(off..).map_or(&[][..], |b| &b[..b.len().min(page.len())]);
        page[..have.len()].copy_from_slice(have);
        page[have.len()..].fill(fill);
        if fresh && page.iter().all(|&b| b == 0) {
            continue;
        }
        region
            .write_slice(&page, MemoryRegionAddress(off as u64))
            .map_err(|e| format!("cannot write the flash bank at {off:#x}: {e}"))?;
    }
    Ok(())
}

/// A bank's bytes as bhyve maps them.
pub struct RegionArray(pub GuestRegion);

impl Array for RegionArray {
    fn read(&self, offset: u64, buf: &mut [u8]) {
        if self.0.read_slice(buf, MemoryRegionAddress(offset)).is_err() {
            buf.fill(ERASED);
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        // Offsets stay within the bank, which the region covers whole.
        let _ = self.0.write_slice(data, MemoryRegionAddress(offset));
    }
}

/// The variable store's file. One shorter than the bank (the rest of the
/// bank reads erased) grows by erased bytes up to what the guest writes
/// past its end, so that it always holds what the guest reads.
pub struct FileStore {
    file: File,
    len: u64,
}

impl FileStore {
    /// Writes go to `file`.
    pub fn new(file: File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self { file, len })
    }
}

impl Store for FileStore {
    fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if offset > self.len {
            self.file.write_all_at(&vec![ERASED; (offset - self.len) as usize], self.len)?;
        }
        self.file.write_all_at(data, offset)?;
        self.len = self.len.max(offset + data.len() as u64);
        // Before the guest can read that the write is done.
        self.file.sync_data()
    }
}

/// Maps and unmaps the banks in stage 2 through the kernel.
pub struct VmMapper(pub std::sync::Arc<Vm>);

impl Mapper for VmMapper {
    fn set_mapped(&self, bank: usize, mapped: bool) -> Result<(), String> {
        let gpa = bank as u64 * BANK_SIZE;
        let r = if mapped {
            self.0.mmap_memseg(gpa, BANKS[bank].0, BANK_SIZE, VM_PROT_READ | VM_PROT_EXECUTE)
        } else {
            self.0.munmap_memseg(gpa, BANK_SIZE)
        };
        r.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
