//! Named VMs in numbered slots, each with the minor number of its device node
//! `/dev/vmm/NAME`, so that an open finds its VM without a name lookup.
//!
//! A minor is never handed to the next VM of the same slot: an open that
//! looked up `/dev/vmm/a` before `a` was destroyed reaches the module with
//! `a`'s minor, which must then find nothing rather than the VM that took
//! `a`'s slot. So a minor is the slot plus a count of the slot's uses above
//! [`SLOT_BITS`], and slots are taken round robin: a minor comes back only after
//! 2^20 creations (the kernel's minor space).

use crate::errno::{Errno, EEXIST, EINVAL, ENOENT, ENOSPC};
use vmm_uapi::{validate_name, VM_NAME_BUF};

/// The most VMs the module can ever hold (its `max_vms` parameter is at most
/// this): one 8-bit VMID each, 0 being the host's.
pub const MAX_VMS_LIMIT: usize = 255;

/// Low bits of a minor number that give the slot.
pub const SLOT_BITS: u32 = 8;

/// Minor numbers the module's device nodes use (all of the kernel's 20 bits).
pub const MINORS: u32 = 1 << 20;

/// Uses of one slot that give distinct minors.
const USES: u32 = MINORS >> SLOT_BITS;

const _: () = assert!(MAX_VMS_LIMIT < 1 << SLOT_BITS);

struct Entry<T> {
    name: [u8; VM_NAME_BUF],
    len: usize,
    minor: u32,
    value: T,
}

/// Where a new VM goes: what [`Registry::vacancy`] found for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vacancy {
    /// The registry slot.
    pub slot: usize,
    /// The minor number of its device node.
    pub minor: u32,
    /// The length of its name.
    pub len: usize,
}

/// VMs by slot and name, at most `limit` of them.
pub struct Registry<T> {
    slots: [Option<Entry<T>>; MAX_VMS_LIMIT],
    /// Times each slot was taken (modulo [`USES`]).
    uses: [u32; MAX_VMS_LIMIT],
    /// The slot the search for a free one starts at.
    next: usize,
    limit: usize,
    count: usize,
}

impl<T> Registry<T> {
    /// An empty registry that accepts no VM until [`Registry::set_limit`].
    pub const fn new() -> Self {
        Self { slots: [const { None }; MAX_VMS_LIMIT], uses: [0; MAX_VMS_LIMIT], next: 0, limit: 0, count: 0 }
    }

    /// Sets the most VMs at once (1 ..= [`MAX_VMS_LIMIT`]).
    pub fn set_limit(&mut self, limit: usize) -> Result<(), Errno> {
        if limit == 0 || limit > MAX_VMS_LIMIT {
            return Err(EINVAL);
        }
        self.limit = limit;
        Ok(())
    }

    /// Number of VMs.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there is no VM.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The slot of the VM called `name` (a name buffer, NUL-terminated or not).
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        let len = validate_name(name).ok()?;
        let name = &name[..len];
        self.slots.iter().position(|e| e.as_ref().is_some_and(|e| &e.name[..e.len] == name))
    }

    /// The VM in `slot`.
    pub fn get(&self, slot: usize) -> Option<&T> {
        self.slots.get(slot)?.as_ref().map(|e| &e.value)
    }

    /// The VM whose device node has minor number `minor`, if it still exists.
    pub fn by_minor(&self, minor: u32) -> Option<&T> {
        let slot = (minor & ((1 << SLOT_BITS) - 1)) as usize;
        self.slots.get(slot)?.as_ref().filter(|e| e.minor == minor).map(|e| &e.value)
    }

    /// The name of the VM in `slot`.
    pub fn name(&self, slot: usize) -> Option<&[u8]> {
        self.slots.get(slot)?.as_ref().map(|e| &e.name[..e.len])
    }

    /// Checks that a VM called `name` may be added and says where it would
    /// go: `EINVAL` for a bad name, `EEXIST` for a duplicate, `ENOSPC` when
    /// the limit is reached.
    pub fn vacancy(&self, name: &[u8]) -> Result<Vacancy, Errno> {
        let len = validate_name(name).map_err(|_| EINVAL)?;
        if self.find(name).is_some() {
            return Err(EEXIST);
        }
        if self.count >= self.limit {
            return Err(ENOSPC);
        }
        let slot =
            (0..self.limit).map(|i| (self.next + i) % self.limit).find(|&s| self.slots[s].is_none()).ok_or(ENOSPC)?;
        let uses = (self.uses[slot] + 1) % USES;
        Ok(Vacancy { slot, minor: uses << SLOT_BITS | slot as u32, len })
    }

    /// Adds a VM where [`Registry::vacancy`] said `name` goes.
    pub fn insert(&mut self, at: Vacancy, name: &[u8], value: T) -> Result<(), Errno> {
        if self.vacancy(name)? != at {
            return Err(EINVAL);
        }
        let mut buf = [0u8; VM_NAME_BUF];
        buf[..at.len].copy_from_slice(&name[..at.len]);
        self.slots[at.slot] = Some(Entry { name: buf, len: at.len, minor: at.minor, value });
        self.uses[at.slot] = at.minor >> SLOT_BITS;
        self.next = (at.slot + 1) % self.limit;
        self.count += 1;
        Ok(())
    }

    /// Removes the VM called `name`, returning its slot and value.
    pub fn remove(&mut self, name: &[u8]) -> Result<(usize, T), Errno> {
        validate_name(name).map_err(|_| EINVAL)?;
        let slot = self.find(name).ok_or(ENOENT)?;
        self.remove_slot(slot).ok_or(ENOENT).map(|v| (slot, v))
    }

    /// Removes the VM in `slot`.
    pub fn remove_slot(&mut self, slot: usize) -> Option<T> {
        let e = self.slots.get_mut(slot)?.take()?;
        self.count -= 1;
        Some(e.value)
    }

    /// Slots in use.
    pub fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().enumerate().filter(|(_, e)| e.is_some()).map(|(i, _)| i)
    }
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(limit: usize) -> Registry<u32> {
        let mut r = Registry::new();
        r.set_limit(limit).unwrap();
        r
    }

    fn add(r: &mut Registry<u32>, name: &[u8], v: u32) -> Result<usize, Errno> {
        let at = r.vacancy(name)?;
        r.insert(at, name, v)?;
        Ok(at.slot)
    }

    #[test]
    fn adds_finds_and_removes() {
        let mut r = reg(4);
        assert_eq!(add(&mut r, b"a", 1), Ok(0));
        assert_eq!(add(&mut r, b"b\0\0", 2), Ok(1));
        assert_eq!(r.find(b"b"), Some(1));
        assert_eq!(r.get(1), Some(&2));
        assert_eq!(r.name(1), Some(&b"b"[..]));
        assert_eq!(r.len(), 2);
        assert_eq!(r.remove(b"a"), Ok((0, 1)));
        assert_eq!(add(&mut r, b"c", 3), Ok(2), "slots are taken round robin");
        assert_eq!(add(&mut r, b"d", 4), Ok(3));
        assert_eq!(add(&mut r, b"e", 5), Ok(0), "freed slots are reused when the others are taken");
        assert_eq!(r.slots().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }

    /// An open that resolved `/dev/vmm/a` before `a` was destroyed and `b`
    /// created in its slot carries `a`'s minor: it must not find `b`.
    #[test]
    fn a_stale_minor_finds_nothing() {
        let mut r = reg(1);
        let a = r.vacancy(b"a").unwrap();
        r.insert(a, b"a", 1).unwrap();
        assert_eq!(r.by_minor(a.minor), Some(&1));
        r.remove(b"a").unwrap();
        let b = r.vacancy(b"b").unwrap();
        assert_eq!(b.slot, a.slot, "one slot: b takes a's");
        assert_ne!(b.minor, a.minor);
        r.insert(b, b"b", 2).unwrap();
        assert_eq!(r.by_minor(a.minor), None, "a's minor must not open b");
        assert_eq!(r.by_minor(b.minor), Some(&2));
        assert_eq!(r.by_minor(b.minor + 1), None);
    }

    /// Minors are all distinct for 2^20 creations, stay within the kernel's
    /// minor space, and keep the slot in their low bits.
    #[test]
    fn minors_come_back_only_after_the_whole_space() {
        let mut r = reg(MAX_VMS_LIMIT);
        let mut seen = std::collections::HashSet::new();
        let first = r.vacancy(b"x").unwrap().minor;
        for i in 0..(USES as usize * MAX_VMS_LIMIT) {
            let name = if i % 2 == 0 { &b"x"[..] } else { &b"y"[..] };
            let at = r.vacancy(name).unwrap();
            assert!(at.minor < MINORS);
            assert_eq!(at.minor as usize & 0xff, at.slot);
            assert!(seen.insert(at.minor), "minor {:#x} came back after {i} creations", at.minor);
            r.insert(at, name, 0).unwrap();
            r.remove(name).unwrap();
        }
        assert_eq!(r.vacancy(b"x").unwrap().minor, first, "then they wrap");
    }

    #[test]
    fn errnos() {
        let mut r = reg(2);
        assert_eq!(add(&mut r, b"", 0), Err(EINVAL));
        assert_eq!(add(&mut r, b"x/y", 0), Err(EINVAL));
        assert_eq!(add(&mut r, &[b'n'; 32], 0), Err(EINVAL));
        add(&mut r, b"a", 0).unwrap();
        assert_eq!(add(&mut r, b"a", 0), Err(EEXIST));
        add(&mut r, b"b", 0).unwrap();
        assert_eq!(add(&mut r, b"c", 0), Err(ENOSPC));
        assert_eq!(add(&mut r, b"a", 0), Err(EEXIST), "a duplicate is EEXIST even when full");
        assert_eq!(r.remove(b"zz"), Err(ENOENT));
        assert_eq!(r.remove(b"a/"), Err(EINVAL));
        assert_eq!(r.insert(Vacancy { slot: 1, minor: 1, len: 1 }, b"q", 0), Err(ENOSPC));
    }

    #[test]
    fn limits() {
        let mut r: Registry<u8> = Registry::new();
        assert_eq!(r.vacancy(b"a"), Err(ENOSPC), "no VM before a limit is set");
        assert_eq!(r.set_limit(0), Err(EINVAL));
        assert_eq!(r.set_limit(MAX_VMS_LIMIT + 1), Err(EINVAL));
        r.set_limit(MAX_VMS_LIMIT).unwrap();
        for i in 0..MAX_VMS_LIMIT {
            let name = format!("vm{i}");
            let at = r.vacancy(name.as_bytes()).unwrap();
            r.insert(at, name.as_bytes(), 0).unwrap();
        }
        assert_eq!(r.vacancy(b"one-more"), Err(ENOSPC));
    }
}
