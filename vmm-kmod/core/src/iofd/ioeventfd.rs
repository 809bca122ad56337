//! Ioeventfds: guest writes to device addresses completed in the kernel by
//! signalling an eventfd (a virtio queue notification needs no trip to
//! `bhyve`).
//!
//! The table is a sorted array of at most [`VM_MAX_IOEVENTFDS`] entries,
//! allocated once per VM and never on the exit path. A vCPU looks a write
//! up under the read side of a reader-writer spinlock (`Vm`), so vCPUs do
//! not exclude each other and nothing sleeps; the eventfd is signalled
//! under the same read lock, which keeps a concurrent deassign from putting
//! it meanwhile. Registrations change rarely (device setup), under the
//! write side.

use crate::errno::{Errno, EEXIST, EINVAL, ENOENT, ENOSPC};
use crate::kernel::Eventfd;
use vmm_uapi::{VmIoeventfd, VM_IOEVENTFD_F_DATAMATCH, VM_IOEVENTFD_F_DEASSIGN, VM_MAX_IOEVENTFDS};

/// What a registration matches: an address, an access size (0: any) and
/// optionally a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Guest physical address.
    pub gpa: u64,
    /// Access size in bytes, or 0 for any.
    pub len: u8,
    /// The value a write must carry, if any (already truncated to `len`).
    pub datamatch: Option<u64>,
}

/// A request checked: what to match, whether to remove, the descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The registration.
    pub key: Key,
    /// `VM_IOEVENTFD_F_DEASSIGN`.
    pub deassign: bool,
    /// The eventfd's descriptor (looked up by the caller).
    pub fd: i32,
}

/// The bytes `len` covers (a write of any size at `gpa` covers at most 8).
fn span(len: u8) -> u64 {
    if len == 0 {
        8
    } else {
        len as u64
    }
}

/// `value` truncated to `size` bytes.
fn truncate(value: u64, size: u8) -> u64 {
    if size >= 8 {
        value
    } else {
        value & ((1u64 << (8 * size as u32)) - 1)
    }
}

impl Request {
    /// Checks a `VM_IOEVENTFD` argument: known flags, zero padding, a size of
    /// 0, 1, 2, 4 or 8 (0 only without DATAMATCH), and an address range
    /// below `ipa_limit` that `reserved` (guest RAM, the vGIC's frames) does
    /// not claim. All `EINVAL`.
    pub fn check(r: &VmIoeventfd, ipa_limit: u64, reserved: impl Fn(u64, u64) -> bool) -> Result<Request, Errno> {
        let matching = r.flags & VM_IOEVENTFD_F_DATAMATCH != 0;
        let len = match r.len {
            0 if !matching => 0u8,
            1 | 2 | 4 | 8 => r.len as u8,
            _ => return Err(EINVAL),
        };
        if r.flags & !(VM_IOEVENTFD_F_DATAMATCH | VM_IOEVENTFD_F_DEASSIGN) != 0 || r.pad != 0 {
            return Err(EINVAL);
        }
        let end = r.gpa.checked_add(span(len)).ok_or(EINVAL)?;
        if end > ipa_limit || reserved(r.gpa, span(len)) {
            return Err(EINVAL);
        }
        Ok(Request {
            key: Key { gpa: r.gpa, len, datamatch: matching.then(|| truncate(r.datamatch, len)) },
            deassign: r.flags & VM_IOEVENTFD_F_DEASSIGN != 0,
            fd: r.fd,
        })
    }
}

/// One registration, and the open file of the VM it came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    key: Key,
    efd: Eventfd,
    owner: usize,
}

/// A VM's ioeventfds, sorted by key. All-zero bytes are an empty table
/// (it is allocated zeroed: 8 KiB is too much for a kernel stack).
pub struct Ioeventfds {
    n: usize,
    entries: [Entry; VM_MAX_IOEVENTFDS],
}

impl Ioeventfds {
    /// How many there are.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Adds `efd` (a reference the table then owns) for `key`, registered
    /// through the VM's open file `owner` (see [`Ioeventfds::drain_owner`]). `EEXIST`
    /// when a registration at the same address could match the same write
    /// (same or any size, same or any value: a write has one destination),
    /// `ENOSPC` when the table is full. On error the caller keeps `efd`.
    pub fn insert(&mut self, key: Key, efd: Eventfd, owner: usize) -> Result<(), Errno> {
        let clash = self.at(key.gpa).iter().any(|e| {
            (e.key.len == 0 || key.len == 0 || e.key.len == key.len)
                && (e.key.datamatch.is_none() || key.datamatch.is_none() || e.key.datamatch == key.datamatch)
        });
        if clash {
            return Err(EEXIST);
        }
        if self.n == VM_MAX_IOEVENTFDS {
            return Err(ENOSPC);
        }
        let i = self.entries[..self.n].partition_point(|e| e.key < key);
        self.entries.copy_within(i..self.n, i + 1);
        self.entries[i] = Entry { key, efd, owner };
        self.n += 1;
        Ok(())
    }

    /// Removes the registration of exactly `key` whose eventfd is `efd`
    /// (compared by context) and returns its reference for the caller to
    /// put; `ENOENT` if there is none.
    pub fn remove(&mut self, key: Key, efd: Eventfd) -> Result<Eventfd, Errno> {
        let i = self.entries[..self.n].iter().position(|e| e.key == key && e.efd.addr() == efd.addr()).ok_or(ENOENT)?;
        let old = self.entries[i].efd;
        self.entries.copy_within(i + 1..self.n, i);
        self.n -= 1;
        self.entries[self.n] = Entry { key: Key::default(), efd: Eventfd::NONE, owner: 0 };
        Ok(old)
    }

    /// Removes the registrations made through the open file `owner` (it is
    /// being closed), handing each reference to `put`; keeps the rest sorted.
    pub fn drain_owner(&mut self, owner: usize, mut put: impl FnMut(Eventfd)) {
        let mut kept = 0;
        for i in 0..self.n {
            let e = self.entries[i];
            if e.owner == owner {
                put(e.efd);
            } else {
                self.entries[kept] = e;
                kept += 1;
            }
        }
        for e in &mut self.entries[kept..self.n] {
            *e = Entry { key: Key::default(), efd: Eventfd::NONE, owner: 0 };
        }
        self.n = kept;
    }

    /// Empties the table, handing each reference to `put`.
    pub fn drain(&mut self, mut put: impl FnMut(Eventfd)) {
        for e in &mut self.entries[..self.n] {
            put(core::mem::replace(&mut e.efd, Eventfd::NONE));
        }
        self.n = 0;
    }

    /// Whether a registration's bytes meet `[addr, addr + len)`.
    pub fn overlaps(&self, addr: u64, len: u64) -> bool {
        // Registered ranges never wrap (checked by Request::check).
        self.entries[..self.n]
            .iter()
            .any(|e| e.key.gpa < addr.saturating_add(len) && addr < e.key.gpa + span(e.key.len))
    }

    /// The registrations at `gpa` (a contiguous run: sorted by address first).
    fn at(&self, gpa: u64) -> &[Entry] {
        let all = &self.entries[..self.n];
        let lo = all.partition_point(|e| e.key.gpa < gpa);
        let hi = lo + all[lo..].partition_point(|e| e.key.gpa == gpa);
        &all[lo..hi]
    }

    /// The eventfd a guest write of `size` bytes of `value` (as the guest's
    /// register held it) to `gpa` completes, if any.
    pub fn lookup(&self, gpa: u64, size: u8, value: u64) -> Option<Eventfd> {
        let v = truncate(value, size);
        self.at(gpa)
            .iter()
            .find(|e| (e.key.len == 0 || e.key.len == size) && e.key.datamatch.is_none_or(|d| d == v))
            .map(|e| e.efd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KBox;

    fn table() -> KBox<Ioeventfds> {
        // SAFETY: all-zero bytes are an empty table (see the type).
        unsafe { KBox::<Ioeventfds>::try_new_zeroed() }.unwrap()
    }

    /// Only compared and handed back here, never signalled.
    fn efd(n: usize) -> Eventfd {
        Eventfd::fake(0x1000 * n)
    }

    fn key(gpa: u64, len: u8, datamatch: Option<u64>) -> Key {
        Key { gpa, len, datamatch }
    }

    fn req(gpa: u64, len: u32, datamatch: Option<u64>) -> VmIoeventfd {
        VmIoeventfd {
            gpa,
            datamatch: datamatch.unwrap_or(0),
            len,
            fd: 5,
            flags: if datamatch.is_some() { VM_IOEVENTFD_F_DATAMATCH } else { 0 },
            pad: 0,
        }
    }

    const RAM: (u64, u64) = (0x4000_0000, 0x4400_0000);
    fn reserved(a: u64, l: u64) -> bool {
        a < RAM.1 && a + l > RAM.0 || a < 0x080a_0000 + 0x2_0000 && a + l > 0x0800_0000
    }

    #[test]
    fn requests_are_checked() {
        let ok = |r: VmIoeventfd| Request::check(&r, 1 << 40, reserved);
        assert_eq!(ok(req(0x0a00_0050, 4, Some(1))).unwrap().key, key(0x0a00_0050, 4, Some(1)));
        assert_eq!(ok(req(0x0a00_0050, 0, None)).unwrap().key, key(0x0a00_0050, 0, None));
        assert_eq!(ok(req(0x0a00_0050, 0, Some(1))), Err(EINVAL), "any size with a value");
        for len in [3, 5, 16, u32::MAX] {
            assert_eq!(ok(req(0x0a00_0050, len, None)), Err(EINVAL), "len {len}");
        }
        assert_eq!(ok(VmIoeventfd { flags: 4, ..req(0x0a00_0050, 4, None) }), Err(EINVAL), "unknown flag");
        assert_eq!(ok(VmIoeventfd { pad: 1, ..req(0x0a00_0050, 4, None) }), Err(EINVAL), "padding");
        assert_eq!(ok(req(0x4000_1000, 4, None)), Err(EINVAL), "guest RAM");
        assert_eq!(ok(req(0x3fff_fffe, 4, None)), Err(EINVAL), "runs into RAM");
        assert_eq!(ok(req(0x3fff_fffc, 0, None)), Err(EINVAL), "any size may run into RAM");
        assert!(ok(req(0x3fff_fff8, 8, None)).is_ok(), "ends where RAM starts");
        assert_eq!(ok(req(0x0800_0100, 4, None)), Err(EINVAL), "the distributor");
        assert_eq!(ok(req(0x080b_fffc, 4, None)), Err(EINVAL), "the redistributor");
        assert_eq!(ok(req(u64::MAX - 1, 4, None)), Err(EINVAL), "wraps");
        assert_eq!(ok(req(1 << 40, 1, None)), Err(EINVAL), "beyond the address space");
        // The value is compared at the access size: its high bits are dropped.
        assert_eq!(ok(req(0x0a00_0050, 2, Some(0xdead_0001))).unwrap().key.datamatch, Some(1));
        let d = ok(VmIoeventfd { flags: VM_IOEVENTFD_F_DEASSIGN, ..req(0x0a00_0050, 4, None) }).unwrap();
        assert!(d.deassign && d.fd == 5);
    }

    #[test]
    fn writes_match_address_size_and_value() {
        let mut t = table();
        t.insert(key(0x0a00_0050, 4, Some(0)), efd(1), 1).unwrap();
        t.insert(key(0x0a00_0050, 4, Some(1)), efd(2), 1).unwrap();
        t.insert(key(0x0a00_0250, 0, None), efd(3), 1).unwrap();
        t.insert(key(0x0a00_0010, 2, None), efd(4), 1).unwrap();
        assert_eq!(t.lookup(0x0a00_0050, 4, 1), Some(efd(2)));
        assert_eq!(t.lookup(0x0a00_0050, 4, 0xffff_ffff_0000_0000), Some(efd(1)), "truncated to 4 bytes");
        assert_eq!(t.lookup(0x0a00_0050, 4, 2), None, "no queue 2");
        assert_eq!(t.lookup(0x0a00_0050, 2, 1), None, "another size");
        assert_eq!(t.lookup(0x0a00_0054, 4, 1), None, "another address");
        for size in [1, 2, 4, 8] {
            assert_eq!(t.lookup(0x0a00_0250, size, 77), Some(efd(3)), "any size, any value");
        }
        assert_eq!(t.lookup(0x0a00_0010, 2, 0x1234), Some(efd(4)));
        assert_eq!(t.lookup(0x0a00_0012, 2, 0x1234), None, "inside, not at the address");
    }

    #[test]
    fn clashes_removal_and_the_limit() {
        let mut t = table();
        t.insert(key(0x0a00_0050, 4, Some(1)), efd(1), 1).unwrap();
        assert_eq!(t.insert(key(0x0a00_0050, 4, Some(1)), efd(2), 1), Err(EEXIST), "the same");
        assert_eq!(t.insert(key(0x0a00_0050, 4, None), efd(2), 1), Err(EEXIST), "any value overlaps");
        assert_eq!(t.insert(key(0x0a00_0050, 0, None), efd(2), 1), Err(EEXIST), "any size overlaps");
        t.insert(key(0x0a00_0050, 2, Some(1)), efd(2), 1).unwrap();
        t.insert(key(0x0a00_0050, 4, Some(2)), efd(3), 1).unwrap();
        assert_eq!(t.remove(key(0x0a00_0050, 4, Some(1)), efd(9)), Err(ENOENT), "another eventfd");
        assert_eq!(t.remove(key(0x0a00_0050, 4, None), efd(1)), Err(ENOENT), "not with any value");
        assert_eq!(t.remove(key(0x0a00_0050, 4, Some(1)), efd(1)), Ok(efd(1)));
        assert_eq!(t.lookup(0x0a00_0050, 4, 1), None);
        assert_eq!(t.lookup(0x0a00_0050, 4, 2), Some(efd(3)));
        let mut t = table();
        for i in 0..VM_MAX_IOEVENTFDS {
            // Inserted out of order; kept sorted.
            let gpa = 0x0a00_0000 + ((i * 37) % VM_MAX_IOEVENTFDS) as u64 * 8;
            t.insert(key(gpa, 8, None), efd(i + 1), 1).unwrap();
        }
        assert_eq!(t.insert(key(0x0b00_0000, 8, None), efd(999), 1), Err(ENOSPC));
        assert!(t.entries.windows(2).all(|w| w[0].key < w[1].key));
        for i in 0..VM_MAX_IOEVENTFDS {
            let gpa = 0x0a00_0000 + ((i * 37) % VM_MAX_IOEVENTFDS) as u64 * 8;
            assert_eq!(t.lookup(gpa, 8, 0), Some(efd(i + 1)));
        }
        let mut put = vec![];
        t.drain(|e| put.push(e));
        assert_eq!((put.len(), t.len()), (VM_MAX_IOEVENTFDS, 0));
        assert_eq!(t.lookup(0x0a00_0000, 8, 0), None);
    }
}
