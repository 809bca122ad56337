//! Register-descriptor tables: each MMIO register of a GIC frame is a range
//! of offsets with a read and a write handler; anything not described reads
//! as zero and ignores writes, as the architecture asks of reserved space.

/// What a handler sees of an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Offset of the access from the start of the register range.
    pub offset: u64,
    /// Size in bytes (1, 2, 4 or 8).
    pub size: u8,
}

/// A register range: `[offset, offset + len)` of a frame, the access sizes
/// it accepts, and its handlers over the state `S`.
pub struct RegDesc<S> {
    /// First byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Accepted sizes, as a bit mask of (1 << size).
    pub sizes: u16,
    /// Read handler.
    pub read: fn(&S, Access) -> u64,
    /// Write handler.
    pub write: fn(&mut S, Access, u64),
}

/// Bit masks for [`RegDesc::sizes`].
pub const B: u16 = 1 << 1;
/// 32-bit accesses.
pub const W: u16 = 1 << 4;
/// 64-bit accesses.
pub const D: u16 = 1 << 8;

/// A read-as-zero handler.
pub fn raz<S>(_: &S, _: Access) -> u64 {
    0
}

/// A write-ignored handler.
pub fn wi<S>(_: &mut S, _: Access, _: u64) {}

fn find<S>(table: &[RegDesc<S>], offset: u64, size: u8) -> Option<(&RegDesc<S>, Access)> {
    let d = table.iter().find(|d| offset >= d.offset && offset - d.offset < d.len)?;
    let rel = offset - d.offset;
    // Of an accepted size (1..=8 bytes, never zero), naturally aligned,
    // inside the range.
    let ok = (1..=8).contains(&size)
        && d.sizes & (1 << size) != 0
        && rel.is_multiple_of(size as u64)
        && rel + size as u64 <= d.len;
    ok.then_some((d, Access { offset: rel, size }))
}

/// Reads through the table (unknown or malformed accesses read as zero).
pub fn read<S>(table: &[RegDesc<S>], s: &S, offset: u64, size: u8) -> u64 {
    find(table, offset, size).map_or(0, |(d, a)| (d.read)(s, a))
}

/// Writes through the table (unknown or malformed accesses are ignored).
pub fn write<S>(table: &[RegDesc<S>], s: &mut S, offset: u64, size: u8, value: u64) {
    if let Some((d, a)) = find(table, offset, size) {
        (d.write)(s, a, value)
    }
}

/// Helpers for the bit-per-interrupt and byte-per-interrupt registers.
pub mod field {
    /// For a 1-bit-per-interrupt register: the first interrupt the access
    /// covers and how many.
    pub fn bits(a: super::Access) -> (usize, usize) {
        (a.offset as usize * 8, a.size as usize * 8)
    }

    /// For a 2-bits-per-interrupt register (ICFGR).
    pub fn pairs(a: super::Access) -> (usize, usize) {
        (a.offset as usize * 4, a.size as usize * 4)
    }

    /// For a byte-per-interrupt register (IPRIORITYR).
    pub fn bytes(a: super::Access) -> (usize, usize) {
        (a.offset as usize, a.size as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S(u64);
    const T: &[RegDesc<S>] =
        &[RegDesc { offset: 0x10, len: 8, sizes: W | D, read: |s, _| s.0, write: |s, _, v| s.0 = v }];

    #[test]
    fn dispatch_and_defaults() {
        let mut s = S(0);
        write(T, &mut s, 0x10, 8, 7);
        assert_eq!(read(T, &s, 0x10, 8), 7);
        assert_eq!(read(T, &s, 0x20, 4), 0, "unknown offsets read as zero");
        write(T, &mut s, 0x10, 1, 9);
        assert_eq!(s.0, 7, "a size the register does not take is ignored");
        write(T, &mut s, 0x12, 4, 9);
        assert_eq!(s.0, 7, "a misaligned access is ignored");
        write(T, &mut s, 0x14, 8, 9);
        assert_eq!(s.0, 7, "an access running past the register is ignored");
        write(T, &mut s, 0x10, 0, 9);
        write(T, &mut s, 0x10, 200, 9);
        assert_eq!((s.0, read(T, &s, 0x10, 0)), (7, 0), "nonsense sizes are ignored");
    }
}
