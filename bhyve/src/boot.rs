//! The Linux boot hand-off: bhyveload's boot parameters in, the device tree out.
//!
//! bhyveload loads the kernel and the initrd but knows nothing of devices,
//! so it leaves a [`BootParams`] block (magic `BHYVEBP1`, the initrd's place,
//! the command line) where the device tree goes: at [`dtb_addr`], the last
//! [`DTB_MAX`] (2 MiB) of RAM. When bhyve starts, before any vCPU runs,
//! [`install_device_tree`] reads that block, builds the tree for this VM
//! ([`crate::fdt`]), writes it over the block, and says where it is, for
//! vCPU 0's x0 (Linux's arm64 boot protocol).
//!
//! Anything else there is left alone: a device tree (bhyve run again on a VM
//! whose block it already replaced keeps its tree) or whatever a guest that
//! is not Linux keeps at the top of its RAM.
//!
//! Guest memory is anything `vm-memory` can read and write by guest
//! address: the VM's mapping in bhyve, an anonymous one in tests.

use crate::devmgr::Placement;
use crate::error::Error;
use crate::fdt::{create_fdt, FdtConfig, RNG_SEED_LEN};
use crate::psci::Platform;
use std::io::Read;
#[cfg(doc)]
use vmmapi::boot::CMDLINE_MAX;
use vmmapi::boot::{dtb_addr, BootParams, DTB_MAX, MAGIC};
use vmmapi::vm_memory::{Bytes, GuestAddress, GuestMemoryError};

/// How many bytes are read to find the block: one page, which holds the
/// largest (with a command line of [`CMDLINE_MAX`](vmmapi::boot::CMDLINE_MAX)
/// bytes; a test checks).
/// Reading all 2 MiB would make the kernel back every page of it.
const PEEK: usize = 4096;
const _: () = assert!(PEEK as u64 <= DTB_MAX);

/// Guest memory, by guest physical address.
pub trait Memory: Bytes<GuestAddress, E = GuestMemoryError> {}
impl<M: Bytes<GuestAddress, E = GuestMemoryError>> Memory for M {}

/// Random bytes for the tree: `rng-seed`, then `kaslr-seed`.
pub type Seeds = ([u8; RNG_SEED_LEN], u64);

/// [`Seeds`] from `/dev/urandom`.
pub fn urandom_seeds() -> std::io::Result<Seeds> {
    let mut f = std::fs::File::open("/dev/urandom")?;
    let (mut rng, mut kaslr) = ([0u8; RNG_SEED_LEN], [0u8; 8]);
    f.read_exact(&mut rng)?;
    f.read_exact(&mut kaslr)?;
    Ok((rng, u64::from_le_bytes(kaslr)))
}

/// The kernel command line bhyveload left at the top of RAM, if it left
/// its boot parameters there (read only: nothing changes).
pub fn boot_cmdline(mem: &impl Memory, p: &Platform) -> Result<Option<String>, Error> {
    Ok(read_params(mem, p)?.map(|(_, params)| params.cmdline))
}

/// bhyveload's block and where it is, if it is there.
fn read_params(mem: &impl Memory, p: &Platform) -> Result<Option<(u64, BootParams)>, Error> {
    if p.ram_size < DTB_MAX {
        return Ok(None);
    }
    let addr = dtb_addr(p.ram_base, p.ram_size);
    let mut block = [0u8; PEEK];
    mem.read_slice(&mut block, GuestAddress(addr)).map_err(|_| Error::GuestMemory {
        op: "read",
        len: PEEK,
        gpa: addr,
    })?;
    if block[..MAGIC.len()] != MAGIC {
        return Ok(None);
    }
    let params = BootParams::decode(&block).ok_or(Error::BadBootParams { gpa: addr })?;
    Ok(Some((addr, params)))
}

/// If bhyveload left its boot parameters at the top of RAM, replaces them
/// with the device tree of the VM `p` with `devices` and returns the tree's address (for
/// vCPU 0's x0); else leaves memory as it is and returns `None`. `seeds` is
/// called only when a tree is built.
pub fn install_device_tree(
    mem: &impl Memory,
    p: &Platform,
    devices: &[Placement],
    seeds: impl FnOnce() -> std::io::Result<Seeds>,
) -> Result<Option<u64>, Error> {
    let Some((addr, params)) = read_params(mem, p)? else { return Ok(None) };
    let (initrd_addr, initrd_len) = params.initrd;
    let initrd = match initrd_len {
        0 => None,
        len => Some(initrd_addr..initrd_addr.checked_add(len).ok_or(Error::BadBootParams { gpa: addr })?),
    };
    // How far the block reaches: it is what bhyveload encoded. (Encoding
    // fails only for a NUL in the command line, which the tree refuses too.)
    let old_len = params.encode().map_or(DTB_MAX as usize, |b| b.len());
    let (rng_seed, kaslr_seed) = seeds().map_err(Error::Random)?;
    let cfg = FdtConfig {
        ram_base: p.ram_base,
        ram_size: p.ram_size,
        vcpus: p.vcpus,
        cmdline: params.cmdline,
        initrd,
        rng_seed,
        kaslr_seed,
        devices: devices.to_vec(),
    };
    let tree = create_fdt(&cfg).map_err(Error::DeviceTree)?;
    replace(mem, addr, old_len, &tree)?;
    Ok(Some(addr))
}

/// For a firmware boot: writes the device tree of the VM `p` with `devices`
/// at the base of RAM, where QEMU puts it for the firmware it boots (EDK2's
/// ArmVirtQemu and U-Boot's `qemu_arm64` look for it there), with no
/// command line and no initrd. Returns its address.
pub fn install_firmware_tree(
    mem: &impl Memory,
    p: &Platform,
    devices: &[Placement],
    seeds: impl FnOnce() -> std::io::Result<Seeds>,
) -> Result<u64, Error> {
    let (rng_seed, kaslr_seed) = seeds().map_err(Error::Random)?;
    let cfg = FdtConfig {
        ram_base: p.ram_base,
        ram_size: p.ram_size,
        vcpus: p.vcpus,
        cmdline: String::new(),
        initrd: None,
        rng_seed,
        kaslr_seed,
        devices: devices.to_vec(),
    };
    let tree = create_fdt(&cfg).map_err(Error::DeviceTree)?;
    mem.write_slice(&tree, GuestAddress(p.ram_base)).map_err(|_| Error::GuestMemory {
        op: "write",
        len: tree.len(),
        gpa: p.ram_base,
    })?;
    Ok(p.ram_base)
}

/// Writes `tree` at `addr` and zeroes what is left of the `old_len` bytes
/// there before it, so that no part of the block outlives it.
fn replace(mem: &impl Memory, addr: u64, old_len: usize, tree: &[u8]) -> Result<(), Error> {
    mem.write_slice(tree, GuestAddress(addr)).map_err(|_| Error::GuestMemory {
        op: "write",
        len: tree.len(),
        gpa: addr,
    })?;
    if let Some(rest) = old_len.checked_sub(tree.len()).filter(|&n| n > 0) {
        let gpa = addr + tree.len() as u64;
        mem.write_slice(&vec![0; rest], GuestAddress(gpa)).map_err(|_| Error::GuestMemory {
            op: "write",
            len: rest,
            gpa,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
