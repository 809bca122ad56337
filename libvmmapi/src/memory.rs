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
    VmMemmap, VmMemseg, VM_ALLOC_MEMSEG, VM_GET_MEMSEG, VM_MAX_SUFFIXLEN, VM_MMAP_GETNEXT, VM_MMAP_MEMSEG, VM_PROT_ALL,
    VM_SYSMEM, VM_SYSMEM_BASE,
};

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
        let mut seg = VmMemseg { segid: VM_SYSMEM, pad: 0, len: 0, name: [0; VM_MAX_SUFFIXLEN] };
        sys::ioctl(self.file(), VM_GET_MEMSEG, &mut seg).map_err(|errno| Error::Memory {
            name: self.name().to_string(),
            len: 0,
            errno,
        })?;
        Ok((seg.len != 0).then_some(seg.len))
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

    /// Maps the system memory into this process: `mmap` of the VM's device
    /// at offset = guest physical address, as one region of a
    /// [`GuestMemory`]. The mapping lasts as long as the value (and its
    /// clones: regions are shared).
    pub fn map_memory(&self) -> Result<GuestMemory> {
        let name = self.name().to_string();
        let fail = |len, errno| Error::Memory { name: name.clone(), len, errno };
        let len = self.memory_size()?.ok_or(fail(0, nix::errno::Errno::ENOMEM))?;
        let size = usize::try_from(len).map_err(|_| fail(len, nix::errno::Errno::ENOMEM))?;
        let file = self.file().try_clone().map_err(|e| fail(len, sys::errno_of(&e)))?;
        // The kernel checks that [offset, offset + len) is guest memory.
        let region = MmapRegion::build(
            Some(FileOffset::new(file, VM_SYSMEM_BASE)),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
        )
        .map_err(|e| {
            let errno = match e {
                vm_memory::mmap::MmapRegionError::Mmap(io) => sys::errno_of(&io),
                _ => nix::errno::Errno::EINVAL,
            };
            fail(len, errno)
        })?;
        let region = GuestRegionMmap::new(region, GuestAddress(VM_SYSMEM_BASE))
            .ok_or(fail(len, nix::errno::Errno::EOVERFLOW))?;
        GuestMemory::from_regions(vec![region]).map_err(|_| fail(len, nix::errno::Errno::EINVAL))
    }
}
