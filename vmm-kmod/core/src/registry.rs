//! Named VMs in numbered slots. A slot number is the minor of the VM's device
//! node, so `/dev/vmm/NAME` finds its VM without a name lookup.

use crate::errno::{Errno, EEXIST, EINVAL, ENOENT, ENOSPC};
use vmm_uapi::{validate_name, VM_NAME_BUF};

/// The most VMs the module can ever hold (its `max_vms` parameter is at most
/// this): one 8-bit VMID each, 0 being the host's.
pub const MAX_VMS_LIMIT: usize = 255;

struct Entry<T> {
    name: [u8; VM_NAME_BUF],
    len: usize,
    value: T,
}

/// VMs by slot and name, at most `limit` of them.
pub struct Registry<T> {
    slots: [Option<Entry<T>>; MAX_VMS_LIMIT],
    limit: usize,
    count: usize,
}

impl<T> Registry<T> {
    /// An empty registry that accepts no VM until [`Registry::set_limit`].
    pub const fn new() -> Self {
        Self { slots: [const { None }; MAX_VMS_LIMIT], limit: 0, count: 0 }
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

    /// The name of the VM in `slot`.
    pub fn name(&self, slot: usize) -> Option<&[u8]> {
        self.slots.get(slot)?.as_ref().map(|e| &e.name[..e.len])
    }

    /// Checks that a VM called `name` may be added and returns the slot it
    /// would take and the name's length: `EINVAL` for a bad name, `EEXIST`
    /// for a duplicate, `ENOSPC` when the limit is reached.
    pub fn vacancy(&self, name: &[u8]) -> Result<(usize, usize), Errno> {
        let len = validate_name(name).map_err(|_| EINVAL)?;
        if self.find(name).is_some() {
            return Err(EEXIST);
        }
        if self.count >= self.limit {
            return Err(ENOSPC);
        }
        let slot = self.slots[..self.limit].iter().position(Option::is_none).ok_or(ENOSPC)?;
        Ok((slot, len))
    }

    /// Adds a VM in the slot [`Registry::vacancy`] gave for `name`.
    pub fn insert(&mut self, slot: usize, name: &[u8], value: T) -> Result<(), Errno> {
        let (free, len) = self.vacancy(name)?;
        if free != slot {
            return Err(EINVAL);
        }
        let mut buf = [0u8; VM_NAME_BUF];
        buf[..len].copy_from_slice(&name[..len]);
        self.slots[slot] = Some(Entry { name: buf, len, value });
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
        let (slot, _) = r.vacancy(name)?;
        r.insert(slot, name, v)?;
        Ok(slot)
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
        assert_eq!(add(&mut r, b"c", 3), Ok(0), "freed slots are reused");
        assert_eq!(r.slots().collect::<Vec<_>>(), vec![0, 1]);
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
        assert_eq!(r.insert(1, b"q", 0), Err(ENOSPC));
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
            let (slot, _) = r.vacancy(name.as_bytes()).unwrap();
            r.insert(slot, name.as_bytes(), 0).unwrap();
        }
        assert_eq!(r.vacancy(b"one-more"), Err(ENOSPC));
    }
}
