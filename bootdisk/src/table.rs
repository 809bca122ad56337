//! Partition tables: GPT (protective MBR, primary header and entries with
//! their CRCs, the backup when the primary is bad) and MBR primary
//! partitions.
//!
//! Written here rather than taken from `gptman`/`mbrman`: those are
//! read-write editors that trust the header's counts (a crafted entry
//! count allocates without bound; a partition at LBA 0 reaches an
//! `unwrap`; sector arithmetic overflows), and a boot loader reads disks it
//! did not make. This reader bounds every size by the disk's and reads
//! nothing else.

use crate::disk::ReadAt;
use std::fmt;

/// Which kind of table a disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// GUID partition table.
    Gpt,
    /// PC (DOS) partition table.
    Mbr,
    /// None: the disk is one file system.
    WholeDisk,
}

/// One partition of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// Its number as Linux and GRUB count: the GPT entry's index plus one,
    /// or the MBR slot (1 to 4).
    pub number: u32,
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// The partition type in words ("EFI system", "type 0x83", or the GUID).
    pub kind: String,
    /// Whether the type says EFI system partition.
    pub esp: bool,
    /// The GPT partition name (empty for MBR).
    pub name: String,
}

/// A table as read, with what was noticed on the way (a bad primary GPT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// GPT or MBR.
    pub kind: TableKind,
    /// Bytes per logical sector.
    pub sector: u64,
    /// The partitions in use, in table order.
    pub entries: Vec<TableEntry>,
    /// Things a user may want to know ("the primary GPT header is bad: ...").
    pub notes: Vec<String>,
}

/// Why a table could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError(pub String);

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The most a GPT entry array may take; the specification's minimum is
/// 16 KiB and real tables use exactly that.
const MAX_GPT_ARRAY: u64 = 1 << 20;
const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
const MBR_SIGNATURE: [u8; 2] = [0x55, 0xaa];
const MBR_GPT_PROTECTIVE: u8 = 0xee;
const ESP_GUID: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const GUID_NAMES: [(&str, &str); 6] = [
    (ESP_GUID, "EFI system"),
    ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"),
    ("BC13C2FF-59E6-4262-A352-B275FD6F7172", "Linux extended boot"),
    ("B921B045-1DF0-41C3-AF44-4C6F280D3FAE", "Linux root (ARM-64)"),
    ("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "Linux root (x86-64)"),
    ("21686148-6449-6E6F-744E-656564454649", "BIOS boot"),
];

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fn crc32(bytes: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(bytes)
}

/// A GUID as text, in the mixed-endian layout GPT stores it in.
pub fn guid_text(g: &[u8]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        le32(g, 0),
        le16(g, 4),
        le16(g, 6),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

/// Whether sector 0 holds an MBR whose partitions include GPT's protective one.
pub fn has_protective_mbr(sector0: &[u8]) -> bool {
    sector0.len() >= 512
        && sector0[510..512] == MBR_SIGNATURE
        && (0..4).any(|i| sector0[446 + i * 16 + 4] == MBR_GPT_PROTECTIVE)
}

/// Reads a GPT: the primary header at LBA 1 and its entries, or the backup
/// header at the last LBA when the primary (or its entries) fails its
/// checks. Tries 512-byte sectors, then 4096.
pub fn read_gpt(disk: &dyn ReadAt) -> Result<Table, TableError> {
    let size = disk.size();
    let mut first_err = None;
    for sector in [512u64, 4096] {
        if size < sector * 3 {
            continue;
        }
        let primary = read_gpt_copy(disk, sector, 1);
        let err = match primary {
            Ok(entries) => return Ok(Table { kind: TableKind::Gpt, sector, entries, notes: Vec::new() }),
            Err(e) => e,
        };
        match read_gpt_copy(disk, sector, size / sector - 1) {
            Ok(entries) => {
                let note = format!("the primary GPT is bad ({err}); using the backup at the end of the disk");
                return Ok(Table { kind: TableKind::Gpt, sector, entries, notes: vec![note] });
            }
            Err(backup) => {
                // Neither copy at this sector size: perhaps the other size.
                let absent = err.0.starts_with("no GPT signature") && backup.0.starts_with("no GPT signature");
                let e = TableError(format!("{err}, and the backup GPT too: {backup}"));
                if !absent {
                    return Err(e);
                }
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| TableError("too small for a GPT".into())))
}

/// One copy of the GPT: the header at `lba` and the entry array it names.
fn read_gpt_copy(disk: &dyn ReadAt, sector: u64, lba: u64) -> Result<Vec<TableEntry>, TableError> {
    let io = |e: std::io::Error| TableError(format!("cannot read the GPT header at LBA {lba}: {e}"));
    let mut hdr = vec![0u8; sector as usize];
    disk.read_at(lba * sector, &mut hdr).map_err(io)?;
    if &hdr[0..8] != GPT_SIGNATURE {
        return Err(TableError(format!("no GPT signature at LBA {lba}")));
    }
    let hsize = le32(&hdr, 12) as usize;
    if !(92..=sector as usize).contains(&hsize) {
        return Err(TableError(format!("GPT header at LBA {lba} has a bad size {hsize}")));
    }
    let want = le32(&hdr, 16);
    let mut copy = hdr[..hsize].to_vec();
    copy[16..20].fill(0);
    if crc32(&copy) != want {
        return Err(TableError(format!("GPT header at LBA {lba} fails its CRC")));
    }
    if le64(&hdr, 24) != lba {
        return Err(TableError(format!("GPT header at LBA {lba} says it is at LBA {}", le64(&hdr, 24))));
    }
    let (array_lba, count, esize) = (le64(&hdr, 72), u64::from(le32(&hdr, 80)), u64::from(le32(&hdr, 84)));
    let array_len = count.checked_mul(esize).filter(|&n| n <= MAX_GPT_ARRAY);
    let array_len = match array_len {
        Some(n) if esize >= 128 && esize % 8 == 0 => n,
        _ => return Err(TableError(format!("GPT at LBA {lba} has {count} entries of {esize} bytes"))),
    };
    let mut array = vec![0u8; array_len as usize];
    let at = array_lba.checked_mul(sector).ok_or_else(|| TableError(format!("GPT entries at LBA {array_lba}")))?;
    disk.read_at(at, &mut array)
        .map_err(|e| TableError(format!("cannot read the GPT entries at LBA {array_lba}: {e}")))?;
    if crc32(&array) != le32(&hdr, 88) {
        return Err(TableError(format!("GPT entries of the header at LBA {lba} fail their CRC")));
    }
    let mut entries = Vec::new();
    for (i, e) in array.chunks_exact(esize as usize).enumerate() {
        if e[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        let kind = guid_text(&e[..16]);
        let name: String = char::decode_utf16(e[56..128].chunks_exact(2).map(|c| le16(c, 0)).take_while(|&c| c != 0))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        // A partition with its ends reversed or past the disk's end is
        // nothing to read; it is left out rather than failing the disk.
        let Some(len) = last.checked_sub(first).and_then(|n| n.checked_add(1)).and_then(|n| n.checked_mul(sector))
        else {
            continue;
        };
        let Some(start) =
            first.checked_mul(sector).filter(|s| s.checked_add(len).is_some_and(|end| end <= disk.size()))
        else {
            continue;
        };
        let esp = kind == ESP_GUID;
        let kind = GUID_NAMES.iter().find(|(g, _)| *g == kind).map(|(_, n)| n.to_string()).unwrap_or(kind);
        entries.push(TableEntry { number: i as u32 + 1, start, len, kind, esp, name });
    }
    Ok(entries)
}

/// Reads the four primary partitions of an MBR in sector 0 (`None`: no MBR
/// signature, or no partition in it). Extended partitions are named in a
/// note: their logical partitions are not read.
pub fn read_mbr(sector0: &[u8], disk_size: u64) -> Option<Table> {
    if sector0.len() < 512 || sector0[510..512] != MBR_SIGNATURE {
        return None;
    }
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for slot in 0..4u32 {
        let e = &sector0[446 + slot as usize * 16..][..16];
        let (status, ptype) = (e[0], e[4]);
        let (first, count) = (u64::from(le32(e, 8)), u64::from(le32(e, 12)));
        if ptype == 0 || count == 0 {
            continue;
        }
        // Boot-sector code is no table: a status byte other than 0 or 0x80
        // means sector 0 is something else.
        if status & 0x7f != 0 {
            return None;
        }
        if matches!(ptype, 0x05 | 0x0f | 0x85) {
            notes.push(format!("partition {} is an extended partition; its logical partitions are not read", slot + 1));
            continue;
        }
        let (start, len) = (first * 512, count * 512);
        if first == 0 || start + len > disk_size {
            continue;
        }
        let kind = format!("type 0x{ptype:02x}");
        entries.push(TableEntry { number: slot + 1, start, len, kind, esp: ptype == 0xef, name: String::new() });
    }
    (!entries.is_empty() || !notes.is_empty()).then_some(Table { kind: TableKind::Mbr, sector: 512, entries, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk with a GPT of `parts` (first LBA, last LBA, type GUID bytes)
    /// in both copies, made by hand to the specification.
    pub(crate) fn gpt_disk(lbas: u64, parts: &[(u64, u64, [u8; 16])]) -> Vec<u8> {
        let mut d = vec![0u8; (lbas * 512) as usize];
        d[446 + 4] = 0xee;
        d[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xaa;
        let mut array = vec![0u8; 128 * 128];
        for (i, (first, last, guid)) in parts.iter().enumerate() {
            let e = &mut array[i * 128..][..128];
            e[..16].copy_from_slice(guid);
            e[16] = i as u8 + 1;
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&last.to_le_bytes());
            e[56] = b'p';
        }
        let acrc = crc32(&array);
        for (me, other, array_lba) in [(1, lbas - 1, 2), (lbas - 1, 1, lbas - 33)] {
            let mut h = vec![0u8; 92];
            h[..8].copy_from_slice(GPT_SIGNATURE);
            h[8..12].copy_from_slice(&0x10000u32.to_le_bytes());
            h[12..16].copy_from_slice(&92u32.to_le_bytes());
            h[24..32].copy_from_slice(&me.to_le_bytes());
            h[32..40].copy_from_slice(&other.to_le_bytes());
            h[72..80].copy_from_slice(&array_lba.to_le_bytes());
            h[80..84].copy_from_slice(&128u32.to_le_bytes());
            h[84..88].copy_from_slice(&128u32.to_le_bytes());
            h[88..92].copy_from_slice(&acrc.to_le_bytes());
            let c = crc32(&h);
            h[16..20].copy_from_slice(&c.to_le_bytes());
            d[(me * 512) as usize..][..92].copy_from_slice(&h);
            d[(array_lba * 512) as usize..][..array.len()].copy_from_slice(&array);
        }
        d
    }

    const ESP: [u8; 16] =
        [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
    const LINUX: [u8; 16] =
        [0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4];

    #[test]
    fn gpt_primary_then_backup() {
        let mut d = gpt_disk(200, &[(40, 79, ESP), (80, 159, LINUX)]);
        assert!(has_protective_mbr(&d[..512]));
        let t = read_gpt(&d).unwrap();
        assert_eq!((t.kind, t.sector, t.notes.len()), (TableKind::Gpt, 512, 0));
        assert_eq!(t.entries.len(), 2);
        assert_eq!((t.entries[0].number, t.entries[0].start, t.entries[0].len), (1, 40 * 512, 40 * 512));
        assert!(t.entries[0].esp && t.entries[0].kind == "EFI system" && t.entries[0].name == "p");
        assert_eq!((t.entries[1].kind.as_str(), t.entries[1].esp), ("Linux filesystem", false));
        // A flipped byte in the primary header: the backup is used, and said so.
        d[512 + 40] ^= 1;
        let b = read_gpt(&d).unwrap();
        assert_eq!(b.entries, t.entries);
        assert!(b.notes[0].contains("the primary GPT is bad (GPT header at LBA 1 fails its CRC)"), "{:?}", b.notes);
        // A bad primary entry array: the backup's array is used.
        let mut d2 = gpt_disk(200, &[(40, 79, ESP)]);
        d2[2 * 512 + 100] ^= 1;
        assert!(read_gpt(&d2).unwrap().notes[0].contains("entries of the header at LBA 1 fail their CRC"));
        // Both bad.
        d[199 * 512 + 20] ^= 1;
        let e = read_gpt(&d).unwrap_err();
        assert!(e.0.contains("LBA 1 fails its CRC, and the backup GPT too: GPT header at LBA 199 fails"), "{e}");
    }

    #[test]
    fn gpt_partitions_past_the_end_are_left_out() {
        let d = gpt_disk(200, &[(40, 300, LINUX), (0, u64::MAX, LINUX), (90, 80, LINUX), (100, 120, LINUX)]);
        let t = read_gpt(&d).unwrap();
        assert_eq!(t.entries.iter().map(|e| e.number).collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn mbr_primaries() {
        let mut s = vec![0u8; 512];
        s[510] = 0x55;
        s[511] = 0xaa;
        assert_eq!(read_mbr(&s, 1 << 20), None, "no partitions");
        let put = |s: &mut Vec<u8>, slot: usize, t: u8, first: u32, n: u32| {
            let e = &mut s[446 + slot * 16..][..16];
            e[4] = t;
            e[8..12].copy_from_slice(&first.to_le_bytes());
            e[12..16].copy_from_slice(&n.to_le_bytes());
        };
        put(&mut s, 0, 0x0c, 2048, 1024);
        put(&mut s, 1, 0x83, 4096, 4096);
        put(&mut s, 2, 0x05, 9000, 10);
        put(&mut s, 3, 0x83, 100_000, 10);
        let t = read_mbr(&s, 8192 * 512).unwrap();
        assert_eq!(t.entries.len(), 2);
        assert_eq!((t.entries[1].number, t.entries[1].start, t.entries[1].kind.as_str()), (2, 4096 * 512, "type 0x83"));
        assert!(t.notes[0].contains("partition 3 is an extended partition"));
        s[446] = 0x12;
        assert_eq!(read_mbr(&s, 8192 * 512), None, "boot code, not a table");
    }

    #[test]
    fn guids_are_mixed_endian() {
        assert_eq!(guid_text(&ESP), ESP_GUID);
    }
}
