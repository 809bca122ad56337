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

    /// Size of the system memory, or `None` before [`Vm::setup_memory`].
    pub fn memory_size(&self) -> Result<Option<u64>> {
        self.memseg_len(VM_SYSMEM)
    }

    /// Allocates memory segment `segid` of `len` bytes called `name`
    /// (`VM_ALLOC_MEMSEG`, FreeBSD's `vm_alloc_memseg`). Pages come on first
    /// touch. `EEXIST` if the segment exists, `ENOMEM` beyond the host's memory.
    pub fn alloc_memseg(&self, segid: i32, len: u64, name: &str) -> Result<()> {
        let mut seg = VmMemseg { segid, pad: 0, len, name: [0; VM_MAX_SUFFIXLEN] };
        let n = name.len().min(VM_MAX_SUFFIXLEN - 1);
        seg.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        sys::ioctl(self.file(), VM_ALLOC_MEMSEG, &mut seg).map_err(|errno| self.mem_err(len, errno))
    }

    /// The length of segment `segid`, or `None` if it is not allocated.
    pub fn memseg_len(&self, segid: i32) -> Result<Option<u64>> {
        let mut seg = VmMemseg { segid, pad: 0, len: 0, name: [0; VM_MAX_SUFFIXLEN] };
        sys::ioctl(self.file(), VM_GET_MEMSEG, &mut seg).map_err(|errno| self.mem_err(0, errno))?;
        Ok((seg.len != 0).then_some(seg.len))
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
        loop {
            let mut m = VmMemmap { gpa, ..Default::default() };
            match sys::ioctl(self.file(), VM_MMAP_GETNEXT, &mut m) {
                Ok(()) => {
                    gpa = m.gpa + m.len;
                    maps.push(m);
                }
                Err(nix::errno::Errno::ENOENT) => return Ok(maps),
                Err(errno) => return Err(Error::Memory { name: self.name().to_string(), len: 0, errno }),
            }
        }
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
