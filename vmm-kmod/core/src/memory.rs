//! A VM's memory: segments, their guest-physical mappings, and the stage-2
//! tables that hold the pages.
//!
//! Pages are allocated on first touch, by the guest (a stage-2 fault) or by
//! userspace (a fault on its `mmap` of the VM's device). They belong to the
//! VM, not to a process, and go back to the kernel when the VM is freed.
//! Before the guest first sees a page, it is cleaned to the point of
//! coherency: a guest with its MMU off reads memory uncached, and must see
//! what userspace (bhyveload) wrote through the cache.
//!
//! Where a 2 MiB-aligned range lies wholly inside a segment, its first
//! touch (by anyone) asks the host for a 2 MiB chunk: the guest then maps
//! it with one stage-2 block and one fault, not 512, and userspace gets
//! its pages one by one as before (each page of a chunk is a page of its
//! own to the kernel). Where the host has no chunk to give, or the range
//! is a segment's ragged edge, or userspace or an earlier fallback already
//! put single pages there, the range stays made of 4 KiB pages: a block is
//! never built from pages allocated apart, so it is decided at first touch.
//!
//! Pages live in the stage-2 tables, keyed by guest address, so a segment
//! has a *home*: the address it was first mapped at. Unmapping it
//! (`VM_MUNMAP_MEMSEG`, a flash bank in command mode) makes its pages
//! invalid for the guest but keeps them, and userspace's view of them, at
//! home; mapping it again can only be there. A page made invalid this way
//! is cleaned again when the guest next faults it in, so what userspace
//! wrote meanwhile (a flash program or erase) reaches a guest reading
//! uncached.

use crate::errno::{Errno, EEXIST, EINVAL, ENOENT, ENOMEM};
use crate::mm::stage2::{is_table, s2_block, s2_page, Geometry, Leaf, Stage2, BLOCK_SIZE, SW_ALLOCATED};
use crate::mm::{TableAlloc, PAGE_SIZE};
use vmm_uapi::{
    VmMemmap, VmMemseg, VmMunmap, VM_MAX_MEMMAPS, VM_MAX_MEMSEGS, VM_MAX_SUFFIXLEN, VM_PROT_ALL, VM_PROT_EXECUTE,
    VM_PROT_READ, VM_PROT_WRITE,
};

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
    /// A zeroed, 2 MiB-aligned chunk of 512 pages, each then a page of its
    /// own ([`put`](Self::put) one by one, or [`put_block`](Self::put_block)):
    /// its PA, or `None` when the host has none (then pages are used). Its
    /// failure only costs faults, so fault injection leaves it alone.
    fn alloc_block(&mut self) -> Option<u64> {
        None
    }
    /// Drops the VM's reference to a page (userspace mappings may keep it).
    fn put(&mut self, pa: u64);
    /// Drops the VM's reference to each page of a chunk from
    /// [`alloc_block`](Self::alloc_block).
    fn put_block(&mut self, pa: u64) {
        for i in 0..BLOCK_SIZE / PAGE_SIZE {
            self.put(pa + i * PAGE_SIZE);
        }
    }
    /// Makes `[pa, pa + len)` (a page or a chunk) coherent for a guest
    /// running with caches off.
    fn make_coherent(&mut self, pa: u64, len: u64);
}

#[derive(Clone, Copy)]
struct Memseg {
    len: u64,
    name: [u8; VM_MAX_SUFFIXLEN],
    /// Where its pages are kept, once it was first mapped.
    home: Option<u64>,
    /// Mapped for the guest now.
    mapped: bool,
}

impl Memseg {
    /// Whether its home overlaps `[gpa, end)`.
    fn home_overlaps(&self, gpa: u64, end: u64) -> bool {
        self.home.is_some_and(|h| gpa < h + self.len && h < end)
    }

    /// Whether its home holds `[gpa, gpa + len)` (`len` 1 for an address).
    fn home_holds(&self, gpa: u64, len: u64) -> bool {
        self.home.is_some_and(|h| gpa >= h && len <= self.len && gpa - h <= self.len - len)
    }
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
        self.segs[id] = Some(Memseg { len: seg.len, name: seg.name, home: None, mapped: false });
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

    /// `VM_MMAP_MEMSEG`: maps a whole segment, readable, at a free, aligned
    /// range of guest physical addresses inside the IPA space; a segment
    /// mapped before, only at its home.
    pub fn mmap_memseg(&mut self, m: &VmMemmap) -> Result<(), Errno> {
        let id = usize::try_from(m.segid).map_err(|_| EINVAL)?;
        let seg = self.segs.get(id).copied().flatten().ok_or(EINVAL)?;
        let end = m.gpa.checked_add(m.len).ok_or(EINVAL)?;
        let aligned = m.gpa.is_multiple_of(PAGE_SIZE) && m.len.is_multiple_of(PAGE_SIZE);
        if !aligned || m.len == 0 || m.pad != 0 || m.prot & !VM_PROT_ALL != 0 || m.flags & !1 != 0 {
            return Err(EINVAL);
        }
        // Stage 2 has no write-only or execute-only pages worth offering.
        if m.prot & VM_PROT_READ == 0 {
            return Err(EINVAL);
        }
        // Pages live in the stage-2 tables keyed by guest address, so a
        // segment is mapped whole, once at a time, always at its home.
        if m.segoff != 0 || m.len != seg.len || seg.mapped || seg.home.is_some_and(|h| h != m.gpa) {
            return Err(EINVAL);
        }
        if end > self.stage2.geometry().ipa_limit() {
            return Err(EINVAL);
        }
        let others = self.segs.iter().enumerate().filter(|(i, _)| *i != id).filter_map(|(_, s)| s.as_ref());
        if others.clone().any(|s| s.home_overlaps(m.gpa, end)) {
            return Err(EEXIST);
        }
        let slot = self.maps.iter().position(Option::is_none).ok_or(ENOMEM)?;
        self.maps[slot] = Some(*m);
        if let Some(s) = self.segs[id].as_mut() {
            s.mapped = true;
            s.home = Some(m.gpa);
        }
        Ok(())
    }

    /// `VM_MUNMAP_MEMSEG`: removes the guest mapping of exactly
    /// `[gpa, gpa + len)`. Its pages stay, invalid for the guest. Returns
    /// whether the guest had any of them mapped: then the caller must
    /// invalidate the VM's TLB entries on every CPU before the guest may
    /// count on them being gone.
    pub fn munmap_memseg(&mut self, tables: &mut impl TableAlloc, u: &VmMunmap) -> Result<bool, Errno> {
        let slot = self.maps.iter().position(|m| m.is_some_and(|m| m.gpa == u.gpa && m.len == u.len)).ok_or(EINVAL)?;
        let Some(m) = self.maps[slot].take() else { return Err(EINVAL) };
        if let Some(s) = usize::try_from(m.segid).ok().and_then(|id| self.segs.get_mut(id)).and_then(Option::as_mut) {
            s.mapped = false;
        }
        let mut was_mapped = false;
        self.stage2.for_each_desc_in(tables, m.gpa, m.gpa + m.len, |d| {
            if let Leaf::Mapped(pa) = Leaf::from_desc(*d) {
                *d = pa | SW_ALLOCATED;
                was_mapped = true;
            }
        });
        Ok(was_mapped)
    }

    /// `VM_MMAP_GETNEXT`: the mapping with the lowest address at or above `gpa`.
    pub fn mmap_getnext(&self, gpa: u64) -> Result<VmMemmap, Errno> {
        self.maps.iter().flatten().filter(|m| m.gpa + m.len > gpa).min_by_key(|m| m.gpa).copied().ok_or(ENOENT)
    }

    /// The guest mapping that holds `ipa`.
    fn mapping(&self, ipa: u64) -> Option<&VmMemmap> {
        self.maps.iter().flatten().find(|m| ipa >= m.gpa && ipa - m.gpa < m.len)
    }

    /// Whether `ipa` is guest memory the guest has mapped now.
    pub fn is_ram(&self, ipa: u64) -> bool {
        self.mapping(ipa).is_some()
    }

    /// Whether `ipa` is guest memory the guest may read but not write
    /// (a mapping without `VM_PROT_WRITE`).
    pub fn is_read_only(&self, ipa: u64) -> bool {
        self.mapping(ipa).is_some_and(|m| m.prot & VM_PROT_WRITE == 0)
    }

    /// Whether `[gpa, gpa + len)` overlaps the home of a segment, mapped
    /// for the guest or not.
    pub fn overlaps(&self, gpa: u64, len: u64) -> bool {
        let end = gpa.saturating_add(len);
        self.segs.iter().flatten().any(|s| s.home_overlaps(gpa, end))
    }

    /// Whether `[gpa, gpa + len)` is inside one segment's home (for
    /// userspace `mmap`, which reaches a segment also while the guest has
    /// it unmapped).
    pub fn is_ram_range(&self, gpa: u64, len: u64) -> bool {
        self.segs.iter().flatten().any(|s| s.home_holds(gpa, len))
    }

    /// Provides the page at `ipa` (allocating it, or the 2 MiB chunk around
    /// it, on first touch) and, for the guest, maps it (or the chunk's
    /// block). Returns the page's PA. `ENOMEM` when the host has no page or
    /// table to give; `EINVAL` outside guest memory.
    pub fn touch(
        &mut self,
        tables: &mut impl TableAlloc,
        pages: &mut impl GuestPages,
        ipa: u64,
        who: Toucher,
    ) -> Result<u64, Errno> {
        let prot = match who {
            Toucher::Guest => {
                let m = self.mapping(ipa).ok_or(EINVAL)?;
                Some((m.prot & VM_PROT_WRITE != 0, m.prot & VM_PROT_EXECUTE != 0))
            }
            Toucher::User | Toucher::Ahead if self.is_ram_range(ipa, 1) => None,
            Toucher::User | Toucher::Ahead => return Err(EINVAL),
        };
        let ipa = ipa & !(PAGE_SIZE - 1);
        if let Some(pa) = self.touch_block(tables, pages, ipa, prot)? {
            return Ok(pa);
        }
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
        if let Some((write, exec)) = prot {
            pages.make_coherent(pa, PAGE_SIZE);
            // Invalid to valid needs no TLB maintenance.
            *desc = pa | s2_page(write, exec);
        }
        Ok(pa)
    }

    /// [`touch`](Self::touch) where `ipa`'s 2 MiB range is (or may become) a
    /// block: the page's PA, or `None` where pages are used instead. `prot`
    /// (write, execute): the guest's touch, which maps the whole block.
    fn touch_block(
        &mut self,
        tables: &mut impl TableAlloc,
        pages: &mut impl GuestPages,
        ipa: u64,
        prot: Option<(bool, bool)>,
    ) -> Result<Option<u64>, Errno> {
        let base = ipa & !(BLOCK_SIZE - 1);
        // Only a range inside one segment: the whole block is then the
        // segment's, with the one mapping's permissions.
        if !self.is_ram_range(base, BLOCK_SIZE) {
            return Ok(None);
        }
        let entry = self.stage2.block_entry(tables, base, true).map_err(|_| ENOMEM)?.ok_or(EINVAL)?;
        // SAFETY: a live descriptor of our tables; we hold the memory lock.
        let desc = unsafe { &mut *entry };
        if is_table(*desc) {
            return Ok(None);
        }
        let pa = match Leaf::from_desc(*desc) {
            Leaf::Mapped(pa) => return Ok(Some(pa + (ipa - base))),
            Leaf::Allocated(pa) => pa,
            Leaf::Empty => {
                let Some(pa) = pages.alloc_block() else { return Ok(None) };
                if !pa.is_multiple_of(BLOCK_SIZE) {
                    // Not what alloc_block promises; pages will do.
                    pages.put_block(pa);
                    return Ok(None);
                }
                self.pages += BLOCK_SIZE / PAGE_SIZE;
                *desc = pa | SW_ALLOCATED;
                pa
            }
        };
        if let Some((write, exec)) = prot {
            pages.make_coherent(pa, BLOCK_SIZE);
            // Invalid to valid needs no TLB maintenance.
            *desc = pa | s2_block(write, exec);
        }
        Ok(Some(pa + (ipa - base)))
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

    /// Calls `f` with the PA of every page the guest has mapped, those of
    /// blocks one by one (pages only userspace touched are cleaned when the
    /// guest first maps them).
    pub fn for_each_mapped(&self, tables: &mut impl TableAlloc, mut f: impl FnMut(u64)) {
        self.stage2.for_each_leaf(tables, |leaf, size| {
            if let Leaf::Mapped(pa) = leaf {
                (0..size / PAGE_SIZE).for_each(|i| f(pa + i * PAGE_SIZE));
            }
        });
    }

    /// Gives every page back and frees the tables. The caller invalidates
    /// the VMID's TLB entries first.
    pub fn destroy(self, tables: &mut impl TableAlloc, pages: &mut impl GuestPages) {
        self.stage2.destroy(tables, |pa, size| if size == BLOCK_SIZE { pages.put_block(pa) } else { pages.put(pa) });
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
        /// What was made coherent: (PA, length).
        coherent: Vec<(u64, u64)>,
        limit: Option<usize>,
        /// Pages allocated ahead of need.
        ahead: usize,
        /// How many 2 MiB chunks the host has to give (none by default).
        chunks: usize,
        chunks_given: u64,
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
        fn alloc_block(&mut self) -> Option<u64> {
            if self.chunks == 0 {
                return None;
            }
            self.chunks -= 1;
            self.chunks_given += 1;
            let pa = 0x20_0000_0000 + self.chunks_given * BLOCK_SIZE;
            self.live.extend((0..512).map(|i| pa + i * PAGE_SIZE));
            Some(pa)
        }
        fn put(&mut self, pa: u64) {
            let n = self.live.len();
            self.live.retain(|&p| p != pa);
            assert_eq!(self.live.len() + 1, n, "{pa:#x} put once, after it was given");
        }
        fn make_coherent(&mut self, pa: u64, len: u64) {
            self.coherent.push((pa, len));
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
        assert_eq!(p.coherent, vec![(pa, PAGE_SIZE)]);
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

    fn map_seg(segid: i32, gpa: u64, len: u64, prot: i32) -> VmMemmap {
        VmMemmap { gpa, segid, pad: 0, segoff: 0, len, prot, flags: 0 }
    }

    #[test]
    fn a_segment_unmapped_keeps_its_pages_at_home() {
        let mut t = HeapAlloc::default();
        let mut p = FakePages::default();
        let mut m = mem(&mut t, 16 << 20);
        let flash = VmMemseg { segid: 2, ..seg(64 << 20) };
        m.alloc_memseg(&flash, 1 << 32).unwrap();
        let ro = VM_PROT_READ | VM_PROT_EXECUTE;
        assert_eq!(m.mmap_memseg(&map_seg(2, 0x0400_0000, 64 << 20, VM_PROT_WRITE)), Err(EINVAL), "unreadable");
        assert_eq!(m.mmap_memseg(&map_seg(2, VM_SYSMEM_BASE, 64 << 20, ro)), Err(EEXIST), "over RAM");
        m.mmap_memseg(&map_seg(2, 0x0400_0000, 64 << 20, ro)).unwrap();
        assert!(m.is_ram(0x0400_0000) && m.is_read_only(0x0400_0000) && !m.is_read_only(VM_SYSMEM_BASE));
        let a = 0x0400_3000;
        let pa = m.touch(&mut t, &mut p, a, Toucher::Guest).unwrap();
        let Some(e) = m.stage2.leaf_entry(&mut t, a, false).unwrap() else { panic!("no entry") };
        // SAFETY: a live descriptor of the test's tables.
        assert_eq!((unsafe { *e } >> 6) & 3, 0b01, "read-only in stage 2");
        let ur = m.touch(&mut t, &mut p, 0x0400_5000, Toucher::User).unwrap();

        // Unmapped: the guest's entry goes (TLB maintenance needed), the pages stay.
        let un = VmMunmap { gpa: 0x0400_0000, len: 64 << 20 };
        assert_eq!(m.munmap_memseg(&mut t, &VmMunmap { len: 4096, ..un }), Err(EINVAL), "not a whole mapping");
        assert_eq!(m.munmap_memseg(&mut t, &un), Ok(true));
        assert_eq!(m.munmap_memseg(&mut t, &un), Err(EINVAL), "unmapped already");
        assert!(!m.is_ram(a) && !m.is_read_only(a), "guest accesses are MMIO now");
        assert_eq!(m.stage2.lookup(&mut t, a), Leaf::Allocated(pa));
        assert_eq!(m.touch(&mut t, &mut p, a, Toucher::Guest), Err(EINVAL));
        assert_eq!(m.touch(&mut t, &mut p, a, Toucher::User), Ok(pa), "userspace still reaches it");
        assert!(m.is_ram_range(0x0400_0000, 64 << 20) && m.overlaps(0x07ff_f000, 4096));
        assert_eq!(m.mmap_getnext(0).unwrap().gpa, VM_SYSMEM_BASE, "not listed while unmapped");
        // A segment lives at home: not elsewhere, and nothing else goes there.
        assert_eq!(m.mmap_memseg(&map_seg(2, 0x1_0000_0000, 64 << 20, ro)), Err(EINVAL));
        m.alloc_memseg(&VmMemseg { segid: 3, ..seg(4096) }, 1 << 32).unwrap();
        assert_eq!(m.mmap_memseg(&map_seg(3, 0x0400_0000, 4096, VM_PROT_ALL)), Err(EEXIST));

        // Mapped again: the same pages, made coherent again as the guest comes back.
        m.mmap_memseg(&map_seg(2, 0x0400_0000, 64 << 20, ro)).unwrap();
        let cleaned = p.coherent.len();
        assert_eq!(m.touch(&mut t, &mut p, a, Toucher::Guest), Ok(pa));
        assert_eq!(m.touch(&mut t, &mut p, 0x0400_5000, Toucher::Guest), Ok(ur));
        assert_eq!(p.coherent.len(), cleaned + 2);
        // Unmapping what the guest never touched needs no TLB maintenance.
        let unused = VmMemseg { segid: 1, ..seg(1 << 20) };
        m.alloc_memseg(&unused, 1 << 32).unwrap();
        m.mmap_memseg(&map_seg(1, 0, 1 << 20, ro)).unwrap();
        assert_eq!(m.munmap_memseg(&mut t, &VmMunmap { gpa: 0, len: 1 << 20 }), Ok(false));
        m.destroy(&mut t, &mut p);
        assert!(p.live.is_empty());
        assert_eq!(t.live, 0);
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

    /// The level-2 descriptor at `ipa`.
    fn l2(m: &mut VmMemory, t: &mut HeapAlloc, ipa: u64) -> u64 {
        let e = m.stage2.block_entry(t, ipa, false).unwrap().unwrap();
        // SAFETY: a live descriptor of the test's tables.
        unsafe { *e }
    }

    #[test]
    fn a_guest_touch_maps_a_whole_block_once() {
        let mut t = HeapAlloc::default();
        let mut p = FakePages { chunks: 8, ..Default::default() };
        let mut m = mem(&mut t, 16 << 20);
        let a = VM_SYSMEM_BASE + (2 << 20) + 0x5123;
        let pa = m.touch(&mut t, &mut p, a, Toucher::Guest).unwrap();
        let chunk = pa - 0x5000;
        assert!(chunk.is_multiple_of(BLOCK_SIZE));
        assert_eq!(m.pages(), 512);
        assert_eq!(p.coherent, [(chunk, BLOCK_SIZE)], "made coherent whole, once");
        let d = l2(&mut m, &mut t, a);
        assert_eq!(d, chunk | s2_block(true, true), "a valid block with the mapping's permissions");
        // The rest of the block costs the guest nothing more.
        for off in [0, 0x1000, BLOCK_SIZE - 1] {
            let ipa = VM_SYSMEM_BASE + (2 << 20) + off;
            assert_eq!(m.touch(&mut t, &mut p, ipa, Toucher::Guest), Ok(chunk + (off & !0xfff)));
        }
        assert_eq!(m.touch(&mut t, &mut p, a, Toucher::User), Ok(pa), "userspace sees the same page");
        assert_eq!((m.pages(), p.chunks_given, p.coherent.len()), (512, 1, 1));
        // Set/way maintenance cleans every page of it.
        let mut n = 0;
        m.for_each_mapped(&mut t, |q| {
            assert_eq!(q, chunk + n * PAGE_SIZE);
            n += 1;
        });
        assert_eq!(n, 512);
        m.destroy(&mut t, &mut p);
        assert!(p.live.is_empty(), "each page of the chunk given back once");
        assert_eq!(t.live, 0);
    }

    #[test]
    fn userspace_first_gets_the_pages_of_a_chunk_that_the_guest_then_maps() {
        let mut t = HeapAlloc::default();
        let mut p = FakePages { chunks: 8, ..Default::default() };
        let mut m = mem(&mut t, 16 << 20);
        let mut out = [0u64; 16];
        // A run across a block boundary: two chunks, pages in order within each.
        let at = VM_SYSMEM_BASE + BLOCK_SIZE - 8 * PAGE_SIZE;
        assert_eq!(m.touch_run(&mut t, &mut p, at, &mut out), Ok(16));
        assert_eq!(p.chunks_given, 2);
        assert_eq!(out[7], out[0] + 7 * PAGE_SIZE, "the first chunk's last pages");
        assert!((out[7] + PAGE_SIZE).is_multiple_of(BLOCK_SIZE));
        assert!(out[8].is_multiple_of(BLOCK_SIZE) && out[8..].windows(2).all(|w| w[1] == w[0] + PAGE_SIZE));
        assert_eq!(p.ahead, 0, "no single page was needed");
        assert_eq!(Leaf::from_desc(l2(&mut m, &mut t, at)), Leaf::Allocated(out[0] - (BLOCK_SIZE - 8 * PAGE_SIZE)));
        assert!(p.coherent.is_empty(), "not for the guest yet");
        // The guest's first touch maps the chunk userspace wrote, cleaned.
        let chunk = out[8];
        assert_eq!(m.touch(&mut t, &mut p, VM_SYSMEM_BASE + BLOCK_SIZE + 0x7000, Toucher::Guest), Ok(chunk + 0x7000));
        assert_eq!(p.coherent, [(chunk, BLOCK_SIZE)]);
        assert_eq!(Leaf::from_desc(l2(&mut m, &mut t, VM_SYSMEM_BASE + BLOCK_SIZE)), Leaf::Mapped(chunk));
        assert_eq!(m.pages(), 1024);
        m.destroy(&mut t, &mut p);
        assert!(p.live.is_empty());
        assert_eq!(t.live, 0);
    }

    #[test]
    fn pages_where_no_chunk_fits_or_none_is_given() {
        let mut t = HeapAlloc::default();
        // One chunk to give; RAM at an odd MiB, 5 MiB long: the middle 2 MiB
        // could be a block, the edges cannot.
        let mut p = FakePages { chunks: 1, ..Default::default() };
        let mut m = VmMemory::new(&mut t, Geometry::new(40)).unwrap();
        let base = VM_SYSMEM_BASE + (1 << 20);
        m.alloc_memseg(&seg(5 << 20), 1 << 32).unwrap();
        m.mmap_memseg(&map(base, 5 << 20)).unwrap();
        let low = m.touch(&mut t, &mut p, base, Toucher::Guest).unwrap();
        assert_eq!((p.chunks_given, m.pages()), (0, 1), "a ragged edge is pages");
        assert_eq!(m.stage2.lookup(&mut t, base), Leaf::Mapped(low));
        let mid = VM_SYSMEM_BASE + BLOCK_SIZE;
        let b = m.touch(&mut t, &mut p, mid + 0x3000, Toucher::Guest).unwrap();
        assert_eq!((p.chunks_given, m.pages()), (1, 513));
        assert_eq!(Leaf::from_desc(l2(&mut m, &mut t, mid)), Leaf::Mapped(b - 0x3000));
        // The next whole range finds the host out of chunks: pages, for good.
        let next = mid + BLOCK_SIZE;
        let q = m.touch(&mut t, &mut p, next + 0x1000, Toucher::Guest).unwrap();
        assert_eq!(m.pages(), 514);
        assert!(is_table(l2(&mut m, &mut t, next)), "a page table, not a block");
        p.chunks = 1;
        assert_ne!(m.touch(&mut t, &mut p, next, Toucher::Guest), Ok(q));
        assert_eq!((p.chunks_given, m.pages()), (1, 515), "pages there stay pages");
        // The top edge: pages again, up to the segment's end and no further.
        let top = base + (5 << 20) - PAGE_SIZE;
        m.touch(&mut t, &mut p, top, Toucher::Guest).unwrap();
        assert_eq!(m.touch(&mut t, &mut p, top + PAGE_SIZE, Toucher::Guest), Err(EINVAL));
        assert_eq!((p.chunks_given, m.pages()), (1, 516));
        assert_eq!(p.coherent.iter().filter(|c| c.1 == BLOCK_SIZE).count(), 1);
        m.destroy(&mut t, &mut p);
        assert!(p.live.is_empty());
        assert_eq!(t.live, 0);
    }

    #[test]
    fn pages_userspace_touched_first_keep_their_range_in_pages() {
        let mut t = HeapAlloc::default();
        let mut p = FakePages::default();
        let mut m = mem(&mut t, 4 << 20);
        // The host had no chunk when userspace came: a page.
        let u = m.touch(&mut t, &mut p, VM_SYSMEM_BASE + 0x4000, Toucher::User).unwrap();
        // Chunks now, but the range has a page of its own: no block over it.
        p.chunks = 4;
        assert_eq!(m.touch(&mut t, &mut p, VM_SYSMEM_BASE + 0x4000, Toucher::Guest), Ok(u));
        m.touch(&mut t, &mut p, VM_SYSMEM_BASE, Toucher::Guest).unwrap();
        assert_eq!(p.chunks_given, 0);
        assert_eq!(m.pages(), 2);
        // The next range is untouched: a block.
        m.touch(&mut t, &mut p, VM_SYSMEM_BASE + BLOCK_SIZE, Toucher::User).unwrap();
        assert_eq!((p.chunks_given, m.pages()), (1, 514));
        m.destroy(&mut t, &mut p);
        assert!(p.live.is_empty());
        assert_eq!(t.live, 0);
    }

    #[test]
    fn a_read_only_block_is_unmapped_whole_and_cleaned_again() {
        let mut t = HeapAlloc::default();
        let mut p = FakePages { chunks: 64, ..Default::default() };
        let mut m = VmMemory::new(&mut t, Geometry::new(40)).unwrap();
        m.alloc_memseg(&VmMemseg { segid: 2, ..seg(4 << 20) }, 1 << 32).unwrap();
        let ro = VM_PROT_READ | VM_PROT_EXECUTE;
        m.mmap_memseg(&map_seg(2, 0, 4 << 20, ro)).unwrap();
        let pa = m.touch(&mut t, &mut p, 0x1000, Toucher::Guest).unwrap();
        let d = l2(&mut m, &mut t, 0);
        assert_eq!(d, (pa - 0x1000) | s2_block(false, true), "read-only, executable");
        assert_eq!((d >> 6) & 3, 0b01);
        // Flash written by userspace while unmapped: the guest sees it cleaned.
        assert_eq!(m.munmap_memseg(&mut t, &VmMunmap { gpa: 0, len: 4 << 20 }), Ok(true));
        assert_eq!(m.stage2.lookup(&mut t, 0x1000), Leaf::Allocated(pa));
        assert_eq!(m.touch(&mut t, &mut p, 0x1000, Toucher::User), Ok(pa));
        m.mmap_memseg(&map_seg(2, 0, 4 << 20, ro)).unwrap();
        assert_eq!(m.touch(&mut t, &mut p, 0x1000, Toucher::Guest), Ok(pa));
        assert_eq!(p.coherent, [(pa - 0x1000, BLOCK_SIZE); 2]);
        // Unmapping only blocks userspace touched needs no TLB maintenance.
        m.touch(&mut t, &mut p, BLOCK_SIZE, Toucher::User).unwrap();
        assert_eq!(m.munmap_memseg(&mut t, &VmMunmap { gpa: 0, len: 4 << 20 }), Ok(true));
        m.mmap_memseg(&map_seg(2, 0, 4 << 20, ro)).unwrap();
        assert_eq!(m.munmap_memseg(&mut t, &VmMunmap { gpa: 0, len: 4 << 20 }), Ok(false));
        assert_eq!(m.pages(), 1024);
        m.destroy(&mut t, &mut p);
        assert!(p.live.is_empty());
        assert_eq!(t.live, 0);
    }

    #[test]
    fn a_table_failure_under_a_block_is_enomem_and_leaks_nothing() {
        let mut p = FakePages { chunks: 1, ..Default::default() };
        for n in 0..3 {
            let mut t = HeapAlloc::default();
            let mut m = mem(&mut t, 4 << 20);
            t.fail_after = Some(n);
            let r = m.touch(&mut t, &mut p, VM_SYSMEM_BASE, Toucher::Guest);
            t.fail_after = None;
            m.destroy(&mut t, &mut p);
            assert!(p.live.is_empty(), "after {n} tables");
            assert_eq!(t.live, 0);
            if r.is_ok() {
                return;
            }
            assert_eq!(r, Err(ENOMEM));
            p.chunks = 1;
        }
        panic!("no touch succeeded with 2 tables to make");
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
