//! Guest memory: segments, their guest-physical mappings, and a userspace
//! view of them (`mmap` of the VM's device at offset = guest physical address).
//!
//! The view is `vm-memory`'s [`GuestMemoryMmap`]: the one abstraction of
//! guest memory in the project, used by the loader, the device tree and the
//! virtio devices alike, so that every guest address is checked by the same
//! code before it is touched.

use crate::error::{Error, Result};
use crate::sys;
use crate::Vm;
use vm_memory::mmap::MmapRegion;
use vm_memory::{FileOffset, GuestAddress, GuestRegionMmap};
use vmm_uapi::{
    VmMemmap, VmMemseg, VmMunmap, VM_ALLOC_MEMSEG, VM_GET_MEMSEG, VM_MAX_SUFFIXLEN, VM_MMAP_GETNEXT, VM_MMAP_MEMSEG,
    VM_MUNMAP_MEMSEG, VM_PROT_ALL, VM_SYSMEM, VM_SYSMEM_BASE,
};

/// One userspace mapping of guest memory, at its guest physical address.
pub type GuestRegion = GuestRegionMmap<()>;

/// A userspace mapping of guest memory: the same bytes the guest sees, by
/// guest physical address (read and write them with [`vm_memory::Bytes`]).
pub type GuestMemory = vm_memory::GuestMemoryMmap<()>;

impl Vm {
    /// Gives the VM `len` bytes of system memory at [`VM_SYSMEM_BASE`]
    /// (FreeBSD's `vm_setup_memory`). Pages are allocated on first touch.
    pub fn setup_memory(&self, len: u64) -> Result<()> {
        let name = self.name().to_string();
        let mut seg = VmMemseg { segid: VM_SYSMEM, pad: 0, len, name: [0; VM_MAX_SUFFIXLEN] };
        sys::ioctl(self.file(), VM_ALLOC_MEMSEG, &mut seg).map_err(|errno| Error::Memory {
            name: name.clone(),
            len,
            errno,
        })?;
        let mut map =
            VmMemmap { gpa: VM_SYSMEM_BASE, segid: VM_SYSMEM, pad: 0, segoff: 0, len, prot: VM_PROT_ALL, flags: 0 };
        sys::ioctl(self.file(), VM_MMAP_MEMSEG, &mut map).map_err(|errno| Error::Memory { name, len, errno })
    }

    /// Gives the VM memory segment `segid` of `len` bytes named `name`
    /// (empty for system memory), as FreeBSD's `vm_alloc_memseg` does: a
    /// segment that already exists with that length and name is kept
    /// (`Ok`), one that differs is `EINVAL`; a name longer than 63 bytes is
    /// `ENAMETOOLONG`.
    pub fn alloc_memseg(&self, segid: i32, len: u64, name: &str) -> Result<()> {
        let fail = |errno| Error::Memory { name: self.name().to_string(), len, errno };
        let mut buf = [0u8; VM_MAX_SUFFIXLEN];
        if name.len() >= VM_MAX_SUFFIXLEN || name.contains('\0') {
            return Err(fail(nix::errno::Errno::ENAMETOOLONG));
        }
        buf[..name.len()].copy_from_slice(name.as_bytes());
        let (have, have_name) = self.get_memseg(segid)?;
        if have != 0 {
            return if have == len && have_name == name { Ok(()) } else { Err(fail(nix::errno::Errno::EINVAL)) };
        }
        let mut seg = VmMemseg { segid, pad: 0, len, name: buf };
        sys::ioctl(self.file(), VM_ALLOC_MEMSEG, &mut seg).map_err(fail)
    }

    /// Length (0 if absent) and name of memory segment `segid` (`VM_GET_MEMSEG`).
    pub fn get_memseg(&self, segid: i32) -> Result<(u64, String)> {
        let mut seg = VmMemseg { segid, pad: 0, len: 0, name: [0; VM_MAX_SUFFIXLEN] };
        sys::ioctl(self.file(), VM_GET_MEMSEG, &mut seg).map_err(|errno| Error::Memory {
            name: self.name().to_string(),
            len: 0,
            errno,
        })?;
        let n = seg.name.iter().position(|&b| b == 0).unwrap_or(seg.name.len());
        Ok((seg.len, String::from_utf8_lossy(&seg.name[..n]).into_owned()))
    }

    /// Maps segment `m.segid` at guest physical address `m.gpa`
    /// (`VM_MMAP_MEMSEG`) as `m` describes it, as FreeBSD's `vm_mmap_memseg` does: the same
    /// mapping made before is kept (`Ok`), a different one at `m.gpa` is
    /// `EEXIST`. The kernel maps a segment once, whole, at offset 0.
    pub fn mmap_memmap(&self, m: &VmMemmap) -> Result<()> {
        let fail = |errno| Error::Memory { name: self.name().to_string(), len: m.len, errno };
        if let Some(have) = self.mmap_getnext(m.gpa)? {
            if have.gpa == m.gpa {
                let same = (have.segid, have.segoff, have.len, have.prot, have.flags)
                    == (m.segid, m.segoff, m.len, m.prot, m.flags);
                return if same { Ok(()) } else { Err(fail(nix::errno::Errno::EEXIST)) };
            }
        }
        let mut map = VmMemmap { pad: 0, ..*m };
        sys::ioctl(self.file(), VM_MMAP_MEMSEG, &mut map).map_err(fail)
    }

    /// The mapping with the lowest address that ends above `gpa`, if any
    /// (`VM_MMAP_GETNEXT`).
    pub fn mmap_getnext(&self, gpa: u64) -> Result<Option<VmMemmap>> {
        let mut m = VmMemmap { gpa, ..Default::default() };
        match sys::ioctl(self.file(), VM_MMAP_GETNEXT, &mut m) {
            Ok(()) => Ok(Some(m)),
            Err(nix::errno::Errno::ENOENT) => Ok(None),
            Err(errno) => Err(Error::Memory { name: self.name().to_string(), len: 0, errno }),
        }
    }

    /// The length of segment `segid`, or `None` if it is not allocated.
    pub fn memseg_len(&self, segid: i32) -> Result<Option<u64>> {
        let (len, _) = self.get_memseg(segid)?;
        Ok((len != 0).then_some(len))
    }

    /// Size of the system memory, or `None` before [`Vm::setup_memory`].
    pub fn memory_size(&self) -> Result<Option<u64>> {
        let (len, _) = self.get_memseg(VM_SYSMEM)?;
        Ok((len != 0).then_some(len))
    }

    /// Maps all `len` bytes of segment `segid` at `gpa` for the guest with
    /// `prot` (`VM_PROT_*`; `VM_MMAP_MEMSEG`). Without `VM_PROT_WRITE` guest
    /// writes exit as MMIO writes. A segment unmapped with
    /// [`Vm::munmap_memseg`] maps again only where it was (`EINVAL`
    /// elsewhere); `EEXIST` over another segment.
    pub fn mmap_memseg(&self, gpa: u64, segid: i32, len: u64, prot: i32) -> Result<()> {
        let mut map = VmMemmap { gpa, segid, pad: 0, segoff: 0, len, prot, flags: 0 };
        sys::ioctl(self.file(), VM_MMAP_MEMSEG, &mut map).map_err(|errno| self.mem_err(len, errno))
    }

    /// Removes the guest mapping of exactly `[gpa, gpa + len)`
    /// (`VM_MUNMAP_MEMSEG`, FreeBSD's `vm_munmap_memseg`): from its return,
    /// every guest access there exits to userspace as MMIO, while the
    /// segment's contents stay, and stay reachable through
    /// [`Vm::map_region`]. `EINVAL` if no mapping is exactly that.
    pub fn munmap_memseg(&self, gpa: u64, len: u64) -> Result<()> {
        let mut u = VmMunmap { gpa, len };
        sys::ioctl(self.file(), VM_MUNMAP_MEMSEG, &mut u).map_err(|errno| self.mem_err(len, errno))
    }

    fn mem_err(&self, len: u64, errno: nix::errno::Errno) -> Error {
        Error::Memory { name: self.name().to_string(), len, errno }
    }

    /// The guest-physical mappings, in address order (`VM_MMAP_GETNEXT`).
    pub fn memory_maps(&self) -> Result<Vec<VmMemmap>> {
        let mut maps = vec![];
        let mut gpa = 0;
        while let Some(m) = self.mmap_getnext(gpa)? {
            gpa = m.gpa + m.len;
            maps.push(m);
        }
        Ok(maps)
    }

    /// Maps `len` bytes of guest memory at `gpa` into this process (`mmap`
    /// of the VM's device at offset = guest physical address), readable and
    /// writable: the pages of a segment, whether or not the guest has them
    /// mapped now. The mapping lasts as long as the region.
    pub fn map_region(&self, gpa: u64, len: u64) -> Result<GuestRegion> {
        let fail = |errno| self.mem_err(len, errno);
        let size = usize::try_from(len).map_err(|_| fail(nix::errno::Errno::ENOMEM))?;
        let file = self.file().try_clone().map_err(|e| fail(sys::errno_of(&e)))?;
        // The kernel checks that [offset, offset + len) is guest memory.
        let region = MmapRegion::build(
            Some(FileOffset::new(file, gpa)),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
        )
        .map_err(|e| {
            fail(match e {
                vm_memory::mmap::MmapRegionError::Mmap(io) => sys::errno_of(&io),
                _ => nix::errno::Errno::EINVAL,
            })
        })?;
        GuestRegionMmap::new(region, GuestAddress(gpa)).ok_or(fail(nix::errno::Errno::EOVERFLOW))
    }

    /// Maps the system memory into this process as one region of a
    /// [`GuestMemory`]. The mapping lasts as long as the value (and its
    /// clones: regions are shared).
    pub fn map_memory(&self) -> Result<GuestMemory> {
        let len = self.memory_size()?.ok_or(self.mem_err(0, nix::errno::Errno::ENOMEM))?;
        let region = self.map_region(VM_SYSMEM_BASE, len)?;
        GuestMemory::from_regions(vec![region]).map_err(|_| self.mem_err(len, nix::errno::Errno::EINVAL))
    }
}
