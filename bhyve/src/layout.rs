//! The guest's physical memory map, QEMU `virt` compatible so that existing
//! kernels and firmware find their devices where they expect them:
//!
//! ```text
//!   0x0000_0000 +-------------------------+
//!               | flash bank 0     64 MiB |  with -o bootrom: the firmware, read-only
//!   0x0400_0000 +-------------------------+
//!               | flash bank 1     64 MiB |  its variables (devices/flash.rs)
//!   0x0800_0000 +-------------------------+
//!               | GICv3 distributor 64 KiB|  in the kernel
//!   0x0801_0000 +-------------------------+
//!               | (nothing; ITS on QEMU)  |
//!   0x080A_0000 +-------------------------+
//!               | GICv3 redistributors    |  128 KiB per vCPU, in the kernel
//!   0x084A_0000 +-------------------------+  (the end with 32 vCPUs)
//!               | (nothing)               |
//!   0x0900_0000 +-------------------------+
//!               | PL011 UART       4 KiB  |  console, SPI 1 (INTID 33)
//!   0x0900_1000 +-------------------------+
//!               | (nothing)               |
//!   0x0901_0000 +-------------------------+
//!               | PL031 RTC        4 KiB  |  host time, no alarm interrupt
//!   0x0901_1000 +-------------------------+
//!               | (nothing)               |
//!   0x0A00_0000 +-------------------------+
//!               | virtio-mmio 0..31       |  0x200 each, only those given
//!               |   n at 0x0A00_0000      |  with -s n; SPI 16+n (INTID 48+n),
//!               |       + n * 0x200       |  edge-triggered
//!   0x0A00_4000 +-------------------------+
//!               | (nothing)               |
//!   0x0B00_0000 +-------------------------+
//!               | test device      4 KiB  |  only with -o testdev, SPI 8 (INTID 40)
//!   0x0B00_1000 +-------------------------+
//!               | (nothing)               |
//!   0x4000_0000 +-------------------------+
//!               | RAM             -m SIZE |  with -o bootrom: the device tree first,
//!               |   ...                   |  as QEMU places it for firmware
//!               | device tree      2 MiB  |  for Linux: the last 2 MiB (fdt.rs, boot.rs)
//!               +-------------------------+
//! ```
//!
//! Which device is where is decided in one place, [`crate::devmgr`], from
//! these constants; the device tree is written from its records.

/// The CFI flash: bank 0 (the firmware) here, bank 1 (its variables) right above.
pub const FLASH_BASE: u64 = 0;
/// Bytes of both flash banks.
pub const FLASH_SIZE: u64 = 2 * crate::devices::flash::BANK_SIZE;

/// Start of guest RAM (the kernel module places system memory here).
pub const RAM_BASE: u64 = vmm_uapi::VM_SYSMEM_BASE;

/// The GICv3 distributor (the kernel's vGIC places it here).
pub const GIC_DIST_BASE: u64 = vmm_uapi::VGIC_DIST_BASE;
/// Bytes of the distributor's register window.
pub const GIC_DIST_SIZE: u64 = vmm_uapi::VGIC_DIST_SIZE;
/// The first GICv3 redistributor; vCPU n's is `n` × [`GIC_REDIST_SIZE`] above.
pub const GIC_REDIST_BASE: u64 = vmm_uapi::VGIC_REDIST_BASE;
/// Bytes of one redistributor (its RD and SGI frames).
pub const GIC_REDIST_SIZE: u64 = vmm_uapi::VGIC_REDIST_SIZE;

/// The PL011 UART.
pub const PL011_BASE: u64 = 0x0900_0000;
/// Bytes of the PL011's register window.
pub const PL011_SIZE: u64 = 0x1000;
/// The PL011's interrupt: SPI 1 (INTID 33), as on QEMU `virt`.
pub const PL011_SPI: u32 = 33;

/// The PL031 real-time clock.
pub const PL031_BASE: u64 = 0x0901_0000;
/// Bytes of the PL031's register window.
pub const PL031_SIZE: u64 = 0x1000;

/// The first virtio-mmio transport; transport n is `n` × [`VIRTIO_MMIO_SIZE`] above.
pub const VIRTIO_MMIO_BASE: u64 = 0x0A00_0000;
/// Bytes of one virtio-mmio transport's window.
pub const VIRTIO_MMIO_SIZE: u64 = 0x200;
/// How many virtio-mmio transports there are (QEMU `virt` has 32).
pub const VIRTIO_MMIO_COUNT: u32 = 32;
/// Transport 0's interrupt: SPI 16 (INTID 48); transport n has INTID 48 + n.
pub const VIRTIO_MMIO_SPI: u32 = 48;

/// The test device (`-o testdev`).
pub const TESTDEV_BASE: u64 = 0x0B00_0000;
/// Bytes of the test device's register window.
pub const TESTDEV_SIZE: u64 = 0x1000;
/// The test device's interrupt: SPI 8 (INTID 40).
pub const TESTDEV_SPI: u32 = 40;

// The devices sit below RAM, in this order, without overlap, the
// redistributors counted for the most vCPUs a VM has.
const _: () = assert!(FLASH_BASE + FLASH_SIZE <= GIC_DIST_BASE);
const _: () = assert!(GIC_DIST_BASE == 0x0800_0000 && GIC_REDIST_BASE == 0x080A_0000);
const _: () = assert!(GIC_DIST_BASE + GIC_DIST_SIZE <= GIC_REDIST_BASE);
const _: () = assert!(GIC_REDIST_BASE + vmm_uapi::VM_MAXCPU as u64 * GIC_REDIST_SIZE == 0x084A_0000);
const _: () = assert!(0x084A_0000 <= PL011_BASE);
const _: () = assert!(PL011_BASE + PL011_SIZE <= PL031_BASE);
const _: () = assert!(PL031_BASE + PL031_SIZE <= VIRTIO_MMIO_BASE);
const _: () = assert!(VIRTIO_MMIO_BASE + VIRTIO_MMIO_COUNT as u64 * VIRTIO_MMIO_SIZE == 0x0A00_4000);
const _: () = assert!(0x0A00_4000 <= TESTDEV_BASE);
// The transports' SPIs stay clear of the others and within the vGIC's 128.
const _: () = assert!(TESTDEV_SPI < VIRTIO_MMIO_SPI && VIRTIO_MMIO_SPI + VIRTIO_MMIO_COUNT <= 32 + 128);
const _: () = assert!(TESTDEV_BASE + TESTDEV_SIZE <= RAM_BASE);
const _: () = assert!(RAM_BASE == 0x4000_0000);
