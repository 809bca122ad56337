//! The hand-off on a fake memory: the top 2 MiB of a VM's RAM in a `Vec`.

use super::*;
use crate::fdt::RNG_SEED_LEN;
use vmmapi::boot::CMDLINE_MAX;
use vmmapi::vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

const RAM: u64 = 0x4000_0000;
const MIB: u64 = 1 << 20;
/// 2 vCPUs, 512 MiB.
const P: Platform = Platform { vcpus: 2, ram_base: RAM, ram_size: 512 * MIB };
/// Where the tree goes in [`P`].
const DTB: u64 = 0x5fe0_0000;

/// Guest memory from `base`, an anonymous mapping.
struct FakeRam {
    mem: GuestMemoryMmap<()>,
}

impl FakeRam {
    /// `len` bytes from `base`, all `fill`.
    fn new(base: u64, len: usize, fill: u8) -> Self {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(base), len)]).unwrap();
        mem.write_slice(&vec![fill; len], GuestAddress(base)).unwrap();
        Self { mem }
    }

    /// The top 2 MiB of [`P`]'s RAM, all `fill`.
    fn top(fill: u8) -> Self {
        Self::new(DTB, DTB_MAX as usize, fill)
    }

    /// The whole region, as it is now.
    fn snapshot(&self) -> Vec<u8> {
        let r = self.mem.iter().next().unwrap();
        let mut v = vec![0; r.len() as usize];
        self.mem.read_slice(&mut v, r.start_addr()).unwrap();
        v
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), GuestMemoryError> {
        self.mem.write_slice(data, GuestAddress(gpa))
    }
}

impl std::ops::Deref for FakeRam {
    type Target = GuestMemoryMmap<()>;
    fn deref(&self) -> &Self::Target {
        &self.mem
    }
}

fn seeds() -> std::io::Result<Seeds> {
    Ok(([7; RNG_SEED_LEN], 0xfeed_f00d))
}

fn no_seeds() -> std::io::Result<Seeds> {
    panic!("no tree is built: no seeds needed");
}

/// Memory holding bhyveload's block for `params`, the rest 0xee.
fn with_block(params: &BootParams) -> FakeRam {
    let mem = FakeRam::top(0xee);
    mem.write(DTB, &params.encode().unwrap()).unwrap();
    mem
}

#[test]
fn block_becomes_a_tree() {
    let params = BootParams { initrd: (0x5000_0000, 0x12_3456), cmdline: "console=ttyAMA0 quiet".into() };
    let mem = with_block(&params);
    assert_eq!(install_device_tree(&*mem, &P, &[], seeds).unwrap(), Some(DTB));

    let bytes = mem.snapshot();
    assert_eq!(bytes[..4], 0xd00d_feedu32.to_be_bytes(), "FDT magic");
    let fdt = fdt::Fdt::new(&bytes).unwrap();
    let size = fdt.total_size();
    assert!(size > params.encode().unwrap().len(), "the tree covers the whole block");
    assert!(bytes[size..].iter().all(|&b| b == 0xee), "nothing past the tree is touched");
    assert_eq!(fdt.chosen().bootargs(), Some("console=ttyAMA0 quiet"));
    let chosen = fdt.find_node("/chosen").unwrap();
    let u64_of = |name: &str| u64::from_be_bytes(chosen.property(name).unwrap().value.try_into().unwrap());
    assert_eq!(u64_of("linux,initrd-start"), 0x5000_0000);
    assert_eq!(u64_of("linux,initrd-end"), 0x5012_3456);
    assert_eq!(u64_of("kaslr-seed"), 0xfeed_f00d);
    assert_eq!(chosen.property("rng-seed").unwrap().value, [7; RNG_SEED_LEN]);
    assert_eq!(fdt.cpus().count(), 2);
    let reg = fdt.find_node("/memory@40000000").unwrap().property("reg").unwrap().value;
    assert_eq!(reg, [RAM.to_be_bytes(), (512 * MIB).to_be_bytes()].concat());

    // Run again (bhyve restarted without bhyveload): the tree stays.
    assert_eq!(install_device_tree(&*mem, &P, &[], no_seeds).unwrap(), None);
    assert_eq!(mem.snapshot(), bytes);
}

#[test]
fn no_initrd() {
    let mem = with_block(&BootParams { initrd: (0x5000_0000, 0), cmdline: String::new() });
    assert_eq!(install_device_tree(&*mem, &P, &[], seeds).unwrap(), Some(DTB));
    let bytes = mem.snapshot();
    let fdt = fdt::Fdt::new(&bytes).unwrap();
    let chosen = fdt.find_node("/chosen").unwrap();
    assert!(chosen.property("linux,initrd-start").is_none() && chosen.property("linux,initrd-end").is_none());
}

#[test]
fn anything_else_is_left_alone() {
    // A device tree of someone else's (just the magic is enough), zeros, noise.
    let mut fdt_like = vec![0xd0, 0x0d, 0xfe, 0xed];
    fdt_like.resize(64, 0x11);
    for head in [fdt_like, vec![0; 64], b"BHYVEBP0 not quite".to_vec(), b"HYVEBP1".to_vec()] {
        let mem = FakeRam::top(0x5a);
        mem.write(DTB, &head).unwrap();
        let before = mem.snapshot();
        assert_eq!(install_device_tree(&*mem, &P, &[], no_seeds).unwrap(), None, "{head:x?}");
        assert_eq!(mem.snapshot(), before);
    }
}

#[test]
fn ram_smaller_than_the_region_has_no_block() {
    let tiny = Platform { ram_size: MIB, ..P };
    let mem = FakeRam::new(RAM, MIB as usize, 0);
    assert_eq!(install_device_tree(&*mem, &tiny, &[], no_seeds).unwrap(), None);
}

#[test]
fn errors() {
    // Memory that is not there.
    let mem = FakeRam::new(RAM, 4096, 0);
    let e = install_device_tree(&*mem, &P, &[], no_seeds).unwrap_err();
    assert_eq!(e.to_string(), "cannot read 4096 bytes of guest memory at 0x5fe00000, where the device tree goes");

    // The magic, then nonsense: a command line longer than there can be.
    let mem = with_block(&BootParams { initrd: (0, 0), cmdline: "x".into() });
    mem.write(DTB + 32, &u32::MAX.to_le_bytes()).unwrap();
    let e = install_device_tree(&*mem, &P, &[], no_seeds).unwrap_err();
    assert_eq!(e.to_string(), "the boot parameters at 0x5fe00000 are damaged (load the VM again with bhyveload)");

    // An initrd that wraps around.
    let mem = with_block(&BootParams { initrd: (u64::MAX - 10, 20), cmdline: "x".into() });
    assert!(matches!(install_device_tree(&*mem, &P, &[], no_seeds), Err(Error::BadBootParams { gpa: DTB })));

    // No random bytes.
    let mem = with_block(&BootParams::default());
    let e = install_device_tree(&*mem, &P, &[], || Err(std::io::Error::other("no entropy"))).unwrap_err();
    assert_eq!(e.to_string(), "cannot read /dev/urandom for the device tree's seeds: no entropy");

    // A tree that cannot be built: too many vCPUs.
    let mem = with_block(&BootParams::default());
    let e = install_device_tree(&*mem, &Platform { vcpus: 33, ..P }, &[], seeds).unwrap_err();
    assert_eq!(e.to_string(), "cannot build the device tree: 33 vCPUs: a VM has 1 to 32");
}

#[test]
fn the_largest_block_fits_in_one_peek() {
    let params = BootParams { initrd: (1, 2), cmdline: "x".repeat(CMDLINE_MAX) };
    let block = params.encode().unwrap();
    assert!(block.len() <= PEEK);
    let mem = with_block(&params);
    assert_eq!(install_device_tree(&*mem, &P, &[], seeds).unwrap(), Some(DTB));
    let bytes = mem.snapshot();
    assert_eq!(fdt::Fdt::new(&bytes).unwrap().chosen().bootargs(), Some(params.cmdline.as_str()));
}

#[test]
fn replace_zeroes_only_the_rest_of_the_old_block() {
    let mem = FakeRam::top(0xee);
    replace(&*mem, DTB, 100, &[1, 2, 3]).unwrap();
    let bytes = mem.snapshot();
    assert_eq!(bytes[..3], [1, 2, 3]);
    assert!(bytes[3..100].iter().all(|&b| b == 0));
    assert!(bytes[100..].iter().all(|&b| b == 0xee));
    // A tree longer than the block: nothing to zero.
    replace(&*mem, DTB, 2, &[4, 5, 6]).unwrap();
    assert_eq!(mem.snapshot()[..4], [4, 5, 6, 0]);
}

#[test]
fn urandom_gives_seeds() {
    let (a, b) = (urandom_seeds().unwrap(), urandom_seeds().unwrap());
    assert_ne!(a, b, "two draws of 72 random bytes differ");
}

#[test]
fn firmware_finds_its_tree_at_the_base_of_ram() {
    let ram = FakeRam::new(RAM, 2 * MIB as usize, 0xee);
    let devices = [crate::devmgr::Slot::Flash.placement().unwrap(), crate::devmgr::Slot::Pl011.placement().unwrap()];
    assert_eq!(install_firmware_tree(&*ram, &P, &devices, seeds).unwrap(), RAM);
    let mem = ram.snapshot();
    let fdt = fdt::Fdt::new(&mem).unwrap();
    assert!(fdt.find_node("/flash@0").is_some());
    assert!(fdt.chosen().bootargs().is_none(), "the firmware's loader gives the command line");
    assert_eq!(fdt.memory().regions().next().unwrap().size, Some(512 * MIB as usize));
    // RAM that cannot be written there: an error, not a panic.
    let elsewhere = FakeRam::new(0x8000_0000, MIB as usize, 0);
    assert!(install_firmware_tree(&*elsewhere, &P, &devices, seeds).is_err());
}
