//! Guest memory: segments, their guest-physical mappings, and a userspace
//! view of them (`mmap` of the VM's device at offset = guest physical address).

use crate::error::{Error, Result};
use crate::sys;
use crate::Vm;
use std::os::fd::AsRawFd;
use vmm_uapi::{
    VmMemmap, VmMemseg, VM_ALLOC_MEMSEG, VM_GET_MEMSEG, VM_MAX_SUFFIXLEN, VM_MMAP_GETNEXT, VM_MMAP_MEMSEG, VM_PROT_ALL,
    VM_SYSMEM, VM_SYSMEM_BASE,
};

/// A userspace mapping of guest memory: the same bytes the guest sees.
#[derive(Debug)]
pub struct GuestMemory {
    gpa: u64,
    len: usize,
    ptr: *mut u8,
}

// SAFETY: the mapping is plain shared memory; concurrent access is the
// guest's and the caller's business, as with any shared memory.
unsafe impl Send for GuestMemory {}
// SAFETY: as above; &self methods copy bytes in and out.
unsafe impl Sync for GuestMemory {}

impl GuestMemory {
    /// Guest physical address of the first byte.
    pub fn gpa(&self) -> u64 {
        self.gpa
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn range(&self, gpa: u64, len: usize) -> Option<usize> {
        let off = gpa.checked_sub(self.gpa)? as usize;
        (off.checked_add(len)? <= self.len).then_some(off)
    }

    /// Copies `data` into guest memory at `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Option<()> {
        let off = self.range(gpa, data.len())?;
        // SAFETY: off..off+len lies inside the mapping (checked above).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), data.len()) };
        Some(())
    }

    /// Copies guest memory at `gpa` into `buf`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        let off = self.range(gpa, buf.len())?;
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), buf.as_mut_ptr(), buf.len()) };
        Some(())
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

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

    /// Maps the system memory into this process.
    pub fn map_memory(&self) -> Result<GuestMemory> {
        let name = self.name().to_string();
        let len = self.memory_size()?.ok_or(Error::Memory {
            name: name.clone(),
            len: 0,
            errno: nix::errno::Errno::ENOMEM,
        })?;
        // SAFETY: a fresh shared mapping of the VM's device; the kernel checks
        // that [offset, offset+len) is guest memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.file().as_raw_fd(),
                VM_SYSMEM_BASE as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::Memory { name, len, errno: nix::errno::Errno::last() });
        }
        Ok(GuestMemory { gpa: VM_SYSMEM_BASE, len: len as usize, ptr: ptr as *mut u8 })
    }
}
