//! A VM's memory: segments, their guest-physical mappings, and the stage-2
//! tables that hold the pages.
//!
//! Pages are allocated on first touch, by the guest (a stage-2 fault) or by
//! userspace (a fault on its `mmap` of the VM's device). They belong to the
//! VM, not to a process, and go back to the kernel when the VM is freed.
//! Before the guest first sees a page, it is cleaned to the point of
//! coherency: a guest with its MMU off reads memory uncached, and must see
//! what userspace (bhyveload) wrote through the cache.

use crate::errno::{Errno, EEXIST, EINVAL, ENOENT, ENOMEM};
use crate::mm::stage2::{Geometry, Leaf, Stage2, S2_PAGE_RAM, SW_ALLOCATED};
use crate::mm::{TableAlloc, PAGE_SIZE};
use vmm_uapi::{VmMemmap, VmMemseg, VM_MAX_MEMMAPS, VM_MAX_MEMSEGS, VM_MAX_SUFFIXLEN, VM_PROT_ALL};

/// Guest pages from the kernel (or a test double).
pub trait GuestPages {
    /// A zeroed page: its PA, or `None` when the host has none to give.
    fn alloc(&mut self) -> Option<u64>;
    /// As [`alloc`](Self::alloc), for a page allocated ahead of need (the
    /// rest of a userspace fault's run), whose failure only shortens the
    /// run: the kernel's test-only fault injection leaves these alone.
    fn alloc_ahead(&mut self) -> Option<u64> {
        self.alloc()
    }
    /// Drops the VM's reference to a page (userspace mappings may keep it).
    fn put(&mut self, pa: u64);
    /// Makes a page coherent for a guest running with caches off.
    fn make_coherent(&mut self, pa: u64);
}

#[derive(Clone, Copy)]
struct Memseg {
    len: u64,
    name: [u8; VM_MAX_SUFFIXLEN],
    mapped: bool,
}

/// A VM's memory.
pub struct VmMemory {
    segs: [Option<Memseg>; VM_MAX_MEMSEGS],
    maps: [Option<VmMemmap>; VM_MAX_MEMMAPS],
    stage2: Stage2,
    pages: u64,
}

/// Who touched a page first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toucher {
    /// The guest: the page must be mapped in stage 2.
    Guest,
    /// Userspace: the page is allocated, the guest will fault it in.
    User,
    /// Userspace, ahead of need: a page of a fault's run after the one
    /// faulted on; as `User`, allocated with [`GuestPages::alloc_ahead`].
    Ahead,
}

impl VmMemory {
    /// Empty memory with stage-2 tables of `geo`.
    pub fn new(tables: &mut impl TableAlloc, geo: Geometry) -> Result<Self, Errno> {
        Ok(Self {
            segs: [None; VM_MAX_MEMSEGS],
            maps: [None; VM_MAX_MEMMAPS],
            stage2: Stage2::new(tables, geo).map_err(|_| ENOMEM)?,
            pages: 0,
        })
    }

    /// The stage-2 tables.
    pub fn stage2(&self) -> &Stage2 {
        &self.stage2
    }

    /// Pages allocated so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// `VM_ALLOC_MEMSEG`. `host_limit` is the most memory the host could
    /// ever give (bigger requests fail now with `ENOMEM`, not later).
    pub fn alloc_memseg(&mut self, seg: &VmMemseg, host_limit: u64) -> Result<(), Errno> {
        let id = usize::try_from(seg.segid).map_err(|_| EINVAL)?;
        if id >= VM_MAX_MEMSEGS || seg.pad != 0 || seg.len == 0 || !seg.len.is_multiple_of(PAGE_SIZE) {
            return Err(EINVAL);
        }
        if !seg.name.contains(&0) {
            return Err(EINVAL);
        }
        if self.segs[id].is_some() {
            return Err(EEXIST);
        }
        if seg.len > host_limit || seg.len > self.stage2.geometry().ipa_limit() {
            return Err(ENOMEM);
        }
        self.segs[id] = Some(Memseg { len: seg.len, name: seg.name, mapped: false });
        Ok(())
    }

    /// `VM_GET_MEMSEG`: fills in the length (0 if absent) and name.
    pub fn get_memseg(&self, seg: &mut VmMemseg) -> Result<(), Errno> {
        let id = usize::try_from(seg.segid).map_err(|_| EINVAL)?;
        let s = self.segs.get(id).ok_or(EINVAL)?;
        seg.len = s.map_or(0, |s| s.len);
        seg.name = s.map_or([0; VM_MAX_SUFFIXLEN], |s| s.name);
        Ok(())
    }

    /// `VM_MMAP_MEMSEG`: maps a whole segment, once, at a free, aligned
    /// range of guest physical addresses inside the IPA space.
    pub fn mmap_memseg(&mut self, m: &VmMemmap) -> Result<(), Errno> {
        let id = usize::try_from(m.segid).map_err(|_| EINVAL)?;
        let seg = self.segs.get(id).copied().flatten().ok_or(EINVAL)?;
        let end = m.gpa.checked_add(m.len).ok_or(EINVAL)?;
        let aligned = m.gpa.is_multiple_of(PAGE_SIZE) && m.len.is_multiple_of(PAGE_SIZE);
        if !aligned || m.len == 0 || m.pad != 0 || m.prot & !VM_PROT_ALL != 0 || m.flags & !1 != 0 {
            return Err(EINVAL);
        }
        // Pages live in the stage-2 tables keyed by guest address, so a
        // segment is mapped exactly once, whole.
        if m.segoff != 0 || m.len != seg.len || seg.mapped {
            return Err(EINVAL);
        }
        if end > self.stage2.geometry().ipa_limit() {
            return Err(EINVAL);
        }
        if self.maps.iter().flatten().any(|o| m.gpa < o.gpa + o.len && o.gpa < end) {
            return Err(EEXIST);
        }
        let slot = self.maps.iter().position(Option::is_none).ok_or(ENOMEM)?;
        self.maps[slot] = Some(*m);
        if let Some(s) = self.segs[id].as_mut() {
            s.mapped = true;
        }
        Ok(())
    }

    /// `VM_MMAP_GETNEXT`: the mapping with the lowest address at or above `gpa`.
    pub fn mmap_getnext(&self, gpa: u64) -> Result<VmMemmap, Errno> {
        self.maps.iter().flatten().filter(|m| m.gpa + m.len > gpa).min_by_key(|m| m.gpa).copied().ok_or(ENOENT)
    }

    /// Whether `ipa` is guest memory.
    pub fn is_ram(&self, ipa: u64) -> bool {
        self.maps.iter().flatten().any(|m| ipa >= m.gpa && ipa - m.gpa < m.len)
    }

    /// Whether `[gpa, gpa + len)` overlaps guest memory.
    pub fn overlaps(&self, gpa: u64, len: u64) -> bool {
        let end = gpa.saturating_add(len);
        self.maps.iter().flatten().any(|m| gpa < m.gpa + m.len && m.gpa < end)
    }

    /// Whether `[gpa, gpa + len)` is inside one mapping (for userspace `mmap`).
    pub fn is_ram_range(&self, gpa: u64, len: u64) -> bool {
        self.maps.iter().flatten().any(|m| gpa >= m.gpa && len <= m.len && gpa - m.gpa <= m.len - len)
    }

    /// Provides the page at `ipa` (allocating it on first touch) and, for
    /// the guest, maps it. Returns the page's PA. `ENOMEM` when the host has
    /// no page or table to give; `EINVAL` outside guest memory.
    pub fn touch(
        &mut self,
        tables: &mut impl TableAlloc,
        pages: &mut impl GuestPages,
        ipa: u64,
        who: Toucher,
    ) -> Result<u64, Errno> {
        if !self.is_ram(ipa) {
            return Err(EINVAL);
        }
        let ipa = ipa & !(PAGE_SIZE - 1);
        let entry = self.stage2.leaf_entry(tables, ipa, true).map_err(|_| ENOMEM)?.ok_or(EINVAL)?;
        // SAFETY: a live descriptor of our tables; we hold the memory lock.
        let desc = unsafe { &mut *entry };
        let pa = match Leaf::from_desc(*desc) {
            Leaf::Mapped(pa) => return Ok(pa),
            Leaf::Allocated(pa) => pa,
            Leaf::Empty => {
                let pa = if who == Toucher::Ahead { pages.alloc_ahead() } else { pages.alloc() };
                let pa = pa.ok_or(ENOMEM)?;
                self.pages += 1;
                *desc = pa | SW_ALLOCATED;
                pa
            }
        };
        if who == Toucher::Guest {
            pages.make_coherent(pa);
            // Invalid to valid needs no TLB maintenance.
            *desc = pa | S2_PAGE_RAM;
        }
        Ok(pa)
    }

    /// [`touch`](Self::touch) of the pages from `ipa` on, for userspace,
    /// one PA in `out` each: a run for one fault on a userspace mapping,
    /// under one hold of the memory lock. Stops early where guest memory ends
    /// or the host has no page; fails only if the first page fails.
    pub fn touch_run(
        &mut self,
        tables: &mut impl TableAlloc,
        pages: &mut impl GuestPages,
        ipa: u64,
        out: &mut [u64],
    ) -> Result<usize, Errno> {
        for (i, pa) in out.iter_mut().enumerate() {
            let at = ipa.checked_add(i as u64 * PAGE_SIZE).ok_or(EINVAL);
            let who = if i == 0 { Toucher::User } else { Toucher::Ahead };
            match at.and_then(|at| self.touch(tables, pages, at, who)) {
                Ok(p) => *pa = p,
                Err(e) if i == 0 => return Err(e),
                Err(_) => return Ok(i),
            }
        }
        Ok(out.len())
    }

    /// Calls `f` with the PA of every page the guest has mapped (pages only
    /// userspace touched are cleaned when the guest first maps them).
    pub fn for_each_mapped(&self, tables: &mut impl TableAlloc, mut f: impl FnMut(u64)) {
        self.stage2.for_each_leaf(tables, |leaf| {
            if let Leaf::Mapped(pa) = leaf {
                f(pa);
            }
        });
    }

    /// Gives every page back and frees the tables. The caller invalidates
    /// the VMID's TLB entries first.
    pub fn destroy(self, tables: &mut impl TableAlloc, pages: &mut impl GuestPages) {
        self.stage2.destroy(tables, |pa| pages.put(pa));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::testalloc::HeapAlloc;
    use vmm_uapi::{VM_SYSMEM, VM_SYSMEM_BASE};

    #[derive(Default)]
    struct FakePages {
        next: u64,
        live: Vec<u64>,
        coherent: Vec<u64>,
        limit: Option<usize>,
        /// Pages allocated ahead of need.
        ahead: usize,
    }

    impl GuestPages for FakePages {
        fn alloc(&mut self) -> Option<u64> {
            if self.limit.is_some_and(|l| self.live.len() >= l) {
                return None;
            }
            self.next += 1;
            let pa = 0x10_0000_0000 + self.next * PAGE_SIZE;
            self.live.push(pa);
            Some(pa)
        }
        fn alloc_ahead(&mut self) -> Option<u64> {
            self.ahead += 1;
            self.alloc()
        }
        fn put(&mut self, pa: u64) {
            self.live.retain(|&p| p != pa);
        }
        fn make_coherent(&mut self, pa: u64) {
            self.coherent.push(pa);
        }
    }

    fn seg(len: u64) -> VmMemseg {
        VmMemseg { segid: VM_SYSMEM, pad: 0, len, name: [0; VM_MAX_SUFFIXLEN] }
    }

    fn map(gpa: u64, len: u64) -> VmMemmap {
        VmMemmap { gpa, segid: VM_SYSMEM, pad: 0, segoff: 0, len, prot: VM_PROT_ALL, flags: 0 }
    }

    fn mem(t: &mut HeapAlloc, len: u64) -> VmMemory {
        let mut m = VmMemory::new(t, Geometry::new(40)).unwrap();
        m.alloc_memseg(&seg(len), 1 << 32).unwrap();
        m.mmap_memseg(&map(VM_SYSMEM_BASE, len)).unwrap();
        m
    }

    #[test]
    fn segments_and_mappings_are_validated() {
        let mut t = HeapAlloc::default();
        let mut m = VmMemory::new(&mut t, Geometry::new(40)).unwrap();
        assert_eq!(m.alloc_memseg(&seg(0), 1 << 30), Err(EINVAL));
        assert_eq!(m.alloc_memseg(&seg(4097), 1 << 30), Err(EINVAL));
        assert_eq!(m.alloc_memseg(&seg(2 << 30), 1 << 30), Err(ENOMEM), "more than the host has");
        assert_eq!(m.alloc_memseg(&VmMemseg { segid: 9, ..seg(4096) }, 1 << 30), Err(EINVAL));
        m.alloc_memseg(&seg(64 << 20), 1 << 30).unwrap();
        assert_eq!(m.alloc_memseg(&seg(64 << 20), 1 << 30), Err(EEXIST));
        let mut q = VmMemseg { segid: VM_SYSMEM, ..seg(0) };
        m.get_memseg(&mut q).unwrap();
        assert_eq!(q.len, 64 << 20);
        assert_eq!(m.mmap_memseg(&map(VM_SYSMEM_BASE + 1, 64 << 20)), Err(EINVAL));
        assert_eq!(m.mmap_memseg(&map(VM_SYSMEM_BASE, 32 << 20)), Err(EINVAL), "whole segments only");
        assert_eq!(m.mmap_memseg(&map((1 << 40) - 4096, 64 << 20)), Err(EINVAL), "beyond the IPA space");
        assert_eq!(m.mmap_memseg(&VmMemmap { segid: 1, ..map(0, 4096) }), Err(EINVAL), "no such segment");
        m.mmap_memseg(&map(VM_SYSMEM_BASE, 64 << 20)).unwrap();
        assert_eq!(m.mmap_memseg(&map(VM_SYSMEM_BASE, 64 << 20)), Err(EINVAL), "mapped once");
        assert_eq!(m.mmap_getnext(0).unwrap().gpa, VM_SYSMEM_BASE);
        assert_eq!(m.mmap_getnext(VM_SYSMEM_BASE + (64 << 20)), Err(ENOENT));
        assert!(m.is_ram(VM_SYSMEM_BASE) && m.is_ram(VM_SYSMEM_BASE + (64 << 20) - 1));
        assert!(!m.is_ram(VM_SYSMEM_BASE + (64 << 20)) && !m.is_ram(0x0900_0000));
        assert!(m.is_ram_range(VM_SYSMEM_BASE, 64 << 20));
        assert!(!m.is_ram_range(VM_SYSMEM_BASE + 4096, 64 << 20));
        m.destroy(&mut t, &mut FakePages::default());
        assert_eq!(t.live, 0);
    }

    #[test]
    fn pages_come_on_first_touch_and_go_on_destroy() {
        let mut t = HeapAlloc::default();
        let mut p = FakePages::default();
        let mut m = mem(&mut t, 16 << 20);
        let a = VM_SYSMEM_BASE + 0x5123;
        // Userspace first: allocated, not mapped, not yet made coherent.
        let pa = m.touch(&mut t, &mut p, a, Toucher::User).unwrap();
        assert_eq!(m.stage2.lookup(&mut t, a), Leaf::Allocated(pa));
        assert!(p.coherent.is_empty());
        // Then the guest: the same page, now mapped and coherent.
        assert_eq!(m.touch(&mut t, &mut p, a, Toucher::Guest), Ok(pa));
        assert_eq!(m.stage2.lookup(&mut t, a), Leaf::Mapped(pa));
        assert_eq!(p.coherent, vec![pa]);
        // The guest first: mapped at once.
        let pb = m.touch(&mut t, &mut p, VM_SYSMEM_BASE, Toucher::Guest).unwrap();
        assert_ne!(pa, pb);
        assert_eq!(m.touch(&mut t, &mut p, VM_SYSMEM_BASE + 8, Toucher::User), Ok(pb));
        assert_eq!(m.pages(), 2);
        assert_eq!(m.touch(&mut t, &mut p, 0x0900_0000, Toucher::Guest), Err(EINVAL));
        m.destroy(&mut t, &mut p);
        assert!(p.live.is_empty(), "every page given back");
        assert_eq!(t.live, 0, "every table freed");
    }

    #[test]
    fn runs_of_pages_for_userspace_stop_where_memory_does() {
        let mut t = HeapAlloc::default();
        let mut p = FakePages { limit: Some(20), ..Default::default() };
        let mut m = mem(&mut t, 64 << 10);
        let mut out = [0u64; 16];
        // The guest has one page already: the run returns it, not a new one.
        let first = m.touch(&mut t, &mut p, VM_SYSMEM_BASE + 0x3000, Toucher::Guest).unwrap();
        assert_eq!(m.touch_run(&mut t, &mut p, VM_SYSMEM_BASE + 0x1000, &mut out), Ok(15), "to the end of RAM");
        assert_eq!(out[2], first);
        assert_eq!(
            m.stage2.lookup(&mut t, VM_SYSMEM_BASE + 0x2000),
            Leaf::Allocated(out[1]),
            "not mapped for the guest"
        );
        assert_eq!(m.pages(), 15);
        assert_eq!(p.ahead, 13, "all new pages but the first are allocated ahead");
        let mut out2 = [0u64; 4];
        assert_eq!(m.touch_run(&mut t, &mut p, VM_SYSMEM_BASE + 0xe000, &mut out2), Ok(2));
        assert_eq!(&out2[..2], &out[13..15], "the same pages again");
        // The first page decides: outside RAM, or no page at all.
        assert_eq!(m.touch_run(&mut t, &mut p, VM_SYSMEM_BASE + (64 << 10), &mut out2), Err(EINVAL));
        assert_eq!(m.touch_run(&mut t, &mut p, !0xfffu64, &mut out2), Err(EINVAL));
        assert_eq!(m.touch(&mut t, &mut p, VM_SYSMEM_BASE, Toucher::User).map(|_| ()), Ok(()));
        m.destroy(&mut t, &mut p);
        assert!(p.live.is_empty());
        let mut p = FakePages { limit: Some(3), ..Default::default() };
        let mut m = mem(&mut t, 64 << 10);
        assert_eq!(m.touch_run(&mut t, &mut p, VM_SYSMEM_BASE, &mut out), Ok(3), "as many as the host gives");
        assert_eq!(m.touch_run(&mut t, &mut p, VM_SYSMEM_BASE + 0x8000, &mut out), Err(ENOMEM));
        m.destroy(&mut t, &mut p);
        assert!(p.live.is_empty());
    }

    #[test]
    fn running_out_of_pages_is_enomem() {
        let mut t = HeapAlloc::default();
        let mut p = FakePages { limit: Some(1), ..Default::default() };
        let mut m = mem(&mut t, 16 << 20);
        m.touch(&mut t, &mut p, VM_SYSMEM_BASE, Toucher::Guest).unwrap();
        assert_eq!(m.touch(&mut t, &mut p, VM_SYSMEM_BASE + 4096, Toucher::Guest), Err(ENOMEM));
        m.destroy(&mut t, &mut p);
        assert!(p.live.is_empty());
    }
}
