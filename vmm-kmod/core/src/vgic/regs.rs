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

fn find<'a, S>(tables: &[&'a [RegDesc<S>]], offset: u64, size: u8) -> Option<(&'a RegDesc<S>, Access)> {
    let d = tables.iter().flat_map(|t| t.iter()).find(|d| offset >= d.offset && offset - d.offset < d.len)?;
    let rel = offset - d.offset;
    // Of an accepted size (1..=8 bytes, never zero), naturally aligned,
    // inside the range.
    let ok = (1..=8).contains(&size)
        && d.sizes & (1 << size) != 0
        && rel.is_multiple_of(size as u64)
        && rel + size as u64 <= d.len;
    ok.then_some((d, Access { offset: rel, size }))
}

/// Reads through the tables (unknown or malformed accesses read as zero).
pub fn read<S>(tables: &[&[RegDesc<S>]], s: &S, offset: u64, size: u8) -> u64 {
    find(tables, offset, size).map_or(0, |(d, a)| (d.read)(s, a))
}

/// Writes through the tables (unknown or malformed accesses are ignored).
pub fn write<S>(tables: &[&[RegDesc<S>]], s: &mut S, offset: u64, size: u8, value: u64) {
    if let Some((d, a)) = find(tables, offset, size) {
        (d.write)(s, a, value)
    }
}

/// A frame's interrupts by the number its registers count them with (the
/// distributor: INTID; a redistributor: its private INTIDs 0-31). Numbers
/// a frame does not hold read as zero and ignore writes.
pub trait Bank {
    /// Interrupt `n`.
    fn irq(&self, n: usize) -> Option<&Irq>;
    /// Interrupt `n`, mutably.
    fn irq_mut(&mut self, n: usize) -> Option<&mut Irq>;
}

fn read_bits<S: Bank>(s: &S, a: Access, f: fn(&Irq) -> bool) -> u64 {
    let (first, n) = field::bits(a);
    (0..n).filter(|&i| s.irq(first + i).is_some_and(f)).fold(0, |v, i| v | 1 << i)
}

fn write_bits<S: Bank>(s: &mut S, a: Access, v: u64, f: fn(&mut Irq, bool)) {
    let (first, n) = field::bits(a);
    for i in 0..n {
        if let Some(irq) = s.irq_mut(first + i) {
            f(irq, v & (1 << i) != 0);
        }
    }
}

/// The registers the distributor and the redistributors' SGI frames share,
/// at `base` (IGROUPR at base + 0x80 ... IPRIORITYR at base + 0x400):
/// group, set/clear-enable, set/clear-pending, set/clear-active (1 bit per
/// interrupt, `bits_len` bytes each) and priority (a byte each, `prio_len`).
/// A set/clear register acts on the bits written as 1.
pub const fn irq_regs<S: Bank>(base: u64, bits_len: u64, prio_len: u64) -> [RegDesc<S>; 8] {
    [
        RegDesc {
            offset: base + 0x080,
            len: bits_len,
            sizes: W,
            read: |s, a| read_bits(s, a, |i| i.group1),
            write: |s, a, v| write_bits(s, a, v, |i, b| i.group1 = b),
        },
        RegDesc {
            offset: base + 0x100,
            len: bits_len,
            sizes: W,
            read: |s, a| read_bits(s, a, |i| i.enabled),
            write: |s, a, v| write_bits(s, a, v, |i, b| i.enabled |= b),
        },
        RegDesc {
            offset: base + 0x180,
            len: bits_len,
            sizes: W,
            read: |s, a| read_bits(s, a, |i| i.enabled),
            write: |s, a, v| write_bits(s, a, v, |i, b| i.enabled &= !b),
        },
        RegDesc {
            offset: base + 0x200,
            len: bits_len,
            sizes: W,
            read: |s, a| read_bits(s, a, Irq::pending),
            write: |s, a, v| write_bits(s, a, v, |i, b| i.pending_latch |= b),
        },
        RegDesc {
            offset: base + 0x280,
            len: bits_len,
            sizes: W,
            read: |s, a| read_bits(s, a, Irq::pending),
            write: |s, a, v| {
                write_bits(s, a, v, |i, b| {
                    if b {
                        i.clear_pending()
                    }
                })
            },
        },
        RegDesc {
            offset: base + 0x300,
            len: bits_len,
            sizes: W,
            read: |s, a| read_bits(s, a, |i| i.active),
            write: |s, a, v| write_bits(s, a, v, |i, b| i.active |= b),
        },
        RegDesc {
            offset: base + 0x380,
            len: bits_len,
            sizes: W,
            read: |s, a| read_bits(s, a, |i| i.active),
            write: |s, a, v| write_bits(s, a, v, |i, b| i.active &= !b),
        },
        // A byte per interrupt, byte or word accesses.
        RegDesc {
            offset: base + 0x400,
            len: prio_len,
            sizes: B | W,
            read: |s, a| {
                let (first, n) = field::bytes(a);
                (0..n).fold(0, |v, i| v | (s.irq(first + i).map_or(0, |q| q.priority) as u64) << (8 * i))
            },
            write: |s, a, v| {
                let (first, n) = field::bytes(a);
                for i in 0..n {
                    if let Some(q) = s.irq_mut(first + i) {
                        q.priority = (v >> (8 * i)) as u8;
                    }
                }
            },
        },
    ]
}

use super::irq::Irq;

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
        write(&[T], &mut s, 0x10, 8, 7);
        assert_eq!(read(&[T], &s, 0x10, 8), 7);
        assert_eq!(read(&[T], &s, 0x20, 4), 0, "unknown offsets read as zero");
        write(&[T], &mut s, 0x10, 1, 9);
        assert_eq!(s.0, 7, "a size the register does not take is ignored");
        write(&[T], &mut s, 0x12, 4, 9);
        assert_eq!(s.0, 7, "a misaligned access is ignored");
        write(&[T], &mut s, 0x14, 8, 9);
        assert_eq!(s.0, 7, "an access running past the register is ignored");
        write(&[T], &mut s, 0x10, 0, 9);
        write(&[T], &mut s, 0x10, 200, 9);
        assert_eq!((s.0, read(&[T], &s, 0x10, 0)), (7, 0), "nonsense sizes are ignored");
    }
}
