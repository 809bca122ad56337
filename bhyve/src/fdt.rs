//! The guest's device tree: what a Linux kernel is told about the machine
//! bhyve gives it, in the shape of QEMU's `virt` board, so that the drivers
//! Linux already has for that board bind as they are.
//!
//! ```text
//! /                  linux,dummy-virt, "bhyve-arm64", interrupt-parent = <&gic>
//! ├─ chosen          bootargs, stdout-path, initrd range, rng-seed, kaslr-seed
//! ├─ flash@0         the two CFI flash banks, with -o bootrom (devices/flash.rs)
//! ├─ memory@40000000 RAM
//! ├─ cpus            cpu@<MPIDR affinity> each, started by PSCI
//! ├─ psci            PSCI 1.0 over HVC (psci.rs)
//! ├─ intc@8000000    the GICv3 in the kernel: distributor and redistributors
//! ├─ timer           the architected timers' PPIs
//! ├─ apb-pclk        the 24 MHz clock the PL011's driver wants named
//! ├─ pl011@9000000   the console (devices/pl011.rs)
//! ├─ pl031@9010000   the real-time clock (devices/pl031.rs)
//! └─ virtio_mmio@a000000 + n * 0x200, one per transport given (virtio/mmio.rs)
//! ```
//!
//! One `create_*_node` function per node, in that order; phandles are the
//! named constants below. The devices' nodes are written from the device
//! manager's placements ([`crate::devmgr`]), so their addresses and
//! interrupts are those of the bus.
//!
//! Only the virtio-mmio transports that have a device are described, not all
//! 32 as QEMU does: the tree then says what exists, an empty transport needs
//! no window on the bus, and the guest's driver does not probe 32 windows
//! (four trips to bhyve each) at every boot.
//! [`create_fdt`] is pure: bhyve's startup (`boot.rs`) decides where the
//! blob goes and where its random bytes come from.

use crate::devmgr::{Placement, Slot, Trigger};
use crate::layout::{GIC_DIST_BASE, GIC_DIST_SIZE, GIC_REDIST_BASE, GIC_REDIST_SIZE};
use crate::psci::{Platform, MPIDR_AFFINITY};
use std::ops::Range;
use vm_fdt::FdtWriter;
use vmmapi::boot::DTB_MAX;
use vmmapi::size::format_size;
use vmmapi::VM_MAXCPU;

/// Phandle of the GIC, the interrupt parent of every node.
pub const PHANDLE_GIC: u32 = 1;
/// Phandle of the fixed 24 MHz clock (`apb-pclk`).
pub const PHANDLE_CLK: u32 = 2;

/// Bytes of `rng-seed`.
pub const RNG_SEED_LEN: usize = 64;

// The three cells of an interrupt specifier (the `arm,gic-v3` binding):
// kind, number within the kind, trigger.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
const IRQ_TYPE_EDGE_RISING: u32 = 1;
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;

/// The GIC's maintenance interrupt: PPI 9, INTID 25.
const GIC_MAINTENANCE_INTID: u32 = 25;
/// The architected timers' interrupts, as INTIDs, in the order the
/// `arm,armv8-timer` binding lists them: secure physical (PPI 13),
/// non-secure physical (PPI 14, the kernel module's `PTIMER_PPI`), virtual
/// (PPI 11, its `VTIMER_PPI`), hypervisor (PPI 10).
const TIMER_INTIDS: [u32; 4] = [29, 30, 27, 26];

/// What `apb-pclk` says it runs at: 24 MHz, as on QEMU `virt`. The PL011
/// model does not depend on it (it has no baud rate to get wrong).
const CLK_FREQ: u32 = 24_000_000;

/// What the tree describes: the machine's shape and what bhyveload handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdtConfig {
    /// First byte of guest RAM.
    pub ram_base: u64,
    /// Bytes of guest RAM.
    pub ram_size: u64,
    /// vCPUs, 1 to `VM_MAXCPU`; vCPU n's MPIDR is [`Platform::mpidr_of`]`(n)`.
    pub vcpus: usize,
    /// The kernel command line (`bootargs`).
    pub cmdline: String,
    /// The initrd's guest physical addresses, start to end (exclusive), if
    /// there is one.
    pub initrd: Option<Range<u64>>,
    /// Random bytes for the kernel's entropy pool (`rng-seed`).
    pub rng_seed: [u8; RNG_SEED_LEN],
    /// A random number for KASLR (`kaslr-seed`).
    pub kaslr_seed: u64,
    /// The devices, where the device manager placed them.
    pub devices: Vec<Placement>,
}

/// Why there is no device tree.
#[derive(Debug, thiserror::Error)]
pub enum FdtError {
    /// The writer refused a node or property (a command line with a NUL in it).
    #[error("{0}")]
    Write(#[from] vm_fdt::Error),
    /// The tree does not fit where it goes.
    #[error("it would take {len} bytes, more than the {} it has", format_size(DTB_MAX))]
    TooBig {
        /// The tree's size.
        len: usize,
    },
    /// A vCPU count bhyve cannot run.
    #[error("{0} vCPUs: a VM has 1 to {VM_MAXCPU}")]
    Vcpus(usize),
}

/// Builds the device tree blob for `cfg`, at most [`DTB_MAX`] bytes.
pub fn create_fdt(cfg: &FdtConfig) -> Result<Vec<u8>, FdtError> {
    if !(1..=VM_MAXCPU).contains(&cfg.vcpus) {
        return Err(FdtError::Vcpus(cfg.vcpus));
    }
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_string("model", "bhyve-arm64")?;
    fdt.property_u32("interrupt-parent", PHANDLE_GIC)?;

    create_chosen_node(&mut fdt, cfg)?;
    if let Some(p) = cfg.devices.iter().find(|p| p.slot == Slot::Flash) {
        create_flash_node(&mut fdt, p)?;
    }
    create_memory_node(&mut fdt, cfg.ram_base, cfg.ram_size)?;
    create_cpu_nodes(&mut fdt, cfg.vcpus)?;
    create_psci_node(&mut fdt)?;
    create_gic_node(&mut fdt, cfg.vcpus)?;
    create_timer_node(&mut fdt)?;
    create_clock_node(&mut fdt)?;
    for p in &cfg.devices {
        match p.slot {
            Slot::Pl011 => create_serial_node(&mut fdt, p)?,
            Slot::Pl031 => create_rtc_node(&mut fdt, p)?,
            Slot::VirtioMmio(_) => create_virtio_mmio_node(&mut fdt, p)?,
            // Written first, as QEMU does (firmware looks for it by compatible).
            Slot::Flash => {}
            // Found by the test guests at its fixed address.
            Slot::TestDev => {}
        }
    }

    fdt.end_node(root)?;
    let blob = fdt.finish()?;
    if blob.len() as u64 > DTB_MAX {
        return Err(FdtError::TooBig { len: blob.len() });
    }
    Ok(blob)
}

/// The name of the PL011's node, which `stdout-path` names too.
fn serial_node_name(p: &Placement) -> String {
    format!("pl011@{:x}", p.base)
}

/// An interrupt specifier for PPI `intid` (16 to 31), level-triggered.
fn ppi(intid: u32) -> [u32; 3] {
    debug_assert!((16..32).contains(&intid));
    [GIC_PPI, intid - 16, IRQ_TYPE_LEVEL_HIGH]
}

/// The interrupt specifier of a placed device's SPI (INTID 32 and up).
fn spi(p: &Placement) -> Option<[u32; 3]> {
    let (intid, trigger) = p.irq?;
    debug_assert!(intid >= 32);
    let kind = match trigger {
        Trigger::Level => IRQ_TYPE_LEVEL_HIGH,
        Trigger::Edge => IRQ_TYPE_EDGE_RISING,
    };
    Some([GIC_SPI, intid - 32, kind])
}

/// `reg` and, if it has one, `interrupts` of a placed device.
fn reg_and_interrupts(fdt: &mut FdtWriter, p: &Placement) -> Result<(), FdtError> {
    fdt.property_array_u64("reg", &[p.base, p.size])?;
    if let Some(irq) = spi(p) {
        fdt.property_array_u32("interrupts", &irq)?;
    }
    Ok(())
}

fn create_chosen_node(fdt: &mut FdtWriter, cfg: &FdtConfig) -> Result<(), FdtError> {
    let chosen = fdt.begin_node("chosen")?;
    // Firmware boots have none: the firmware's loader passes its own.
    if !cfg.cmdline.is_empty() {
        fdt.property_string("bootargs", &cfg.cmdline)?;
    }
    if let Some(uart) = cfg.devices.iter().find(|p| p.slot == Slot::Pl011) {
        fdt.property_string("stdout-path", &format!("/{}", serial_node_name(uart)))?;
    }
    if let Some(initrd) = &cfg.initrd {
        fdt.property_u64("linux,initrd-start", initrd.start)?;
        fdt.property_u64("linux,initrd-end", initrd.end)?;
    }
    fdt.property("rng-seed", &cfg.rng_seed)?;
    fdt.property_u64("kaslr-seed", cfg.kaslr_seed)?;
    fdt.end_node(chosen)?;
    Ok(())
}

/// The CFI flash (the `cfi-flash` binding): one node whose `reg` covers
/// both banks, each [`BANK_SIZE`](crate::devices::flash::BANK_SIZE), on a
/// 32-bit bus, as on QEMU `virt`.
fn create_flash_node(fdt: &mut FdtWriter, p: &Placement) -> Result<(), FdtError> {
    use crate::devices::flash::{BANK_SIZE, BANK_WIDTH};
    let node = fdt.begin_node(&format!("flash@{:x}", p.base))?;
    fdt.property_string("compatible", "cfi-flash")?;
    fdt.property_array_u64("reg", &[p.base, BANK_SIZE, p.base + BANK_SIZE, p.size - BANK_SIZE])?;
    fdt.property_u32("bank-width", BANK_WIDTH as u32)?;
    fdt.end_node(node)?;
    Ok(())
}

fn create_memory_node(fdt: &mut FdtWriter, base: u64, size: u64) -> Result<(), FdtError> {
    let memory = fdt.begin_node(&format!("memory@{base:x}"))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[base, size])?;
    fdt.end_node(memory)?;
    Ok(())
}

fn create_cpu_nodes(fdt: &mut FdtWriter, vcpus: usize) -> Result<(), FdtError> {
    let cpus = fdt.begin_node("cpus")?;
    // One cell: Aff3 is 0 on every vCPU.
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for id in 0..vcpus {
        let reg = (Platform::mpidr_of(id) & MPIDR_AFFINITY) as u32;
        let cpu = fdt.begin_node(&format!("cpu@{reg:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,armv8")?;
        fdt.property_u32("reg", reg)?;
        fdt.property_string("enable-method", "psci")?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;
    Ok(())
}

fn create_psci_node(fdt: &mut FdtWriter) -> Result<(), FdtError> {
    let psci = fdt.begin_node("psci")?;
    fdt.property_string_list("compatible", vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()])?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(psci)?;
    Ok(())
}

fn create_gic_node(fdt: &mut FdtWriter, vcpus: usize) -> Result<(), FdtError> {
    let gic = fdt.begin_node(&format!("intc@{GIC_DIST_BASE:x}"))?;
    fdt.property_string("compatible", "arm,gic-v3")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    // No children yet (an ITS would be one); Linux's binding asks for these.
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_null("ranges")?;
    let redists = GIC_REDIST_SIZE * vcpus as u64;
    fdt.property_array_u64("reg", &[GIC_DIST_BASE, GIC_DIST_SIZE, GIC_REDIST_BASE, redists])?;
    fdt.property_u32("#redistributor-regions", 1)?;
    fdt.property_array_u32("interrupts", &ppi(GIC_MAINTENANCE_INTID))?;
    fdt.property_phandle(PHANDLE_GIC)?;
    fdt.end_node(gic)?;
    Ok(())
}

fn create_timer_node(fdt: &mut FdtWriter) -> Result<(), FdtError> {
    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    let irqs: Vec<u32> = TIMER_INTIDS.iter().flat_map(|&intid| ppi(intid)).collect();
    fdt.property_array_u32("interrupts", &irqs)?;
    // The counter runs whatever the vCPU's power state.
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;
    Ok(())
}

fn create_clock_node(fdt: &mut FdtWriter) -> Result<(), FdtError> {
    let clk = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", CLK_FREQ)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(PHANDLE_CLK)?;
    fdt.end_node(clk)?;
    Ok(())
}

fn create_serial_node(fdt: &mut FdtWriter, p: &Placement) -> Result<(), FdtError> {
    let uart = fdt.begin_node(&serial_node_name(p))?;
    fdt.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()])?;
    reg_and_interrupts(fdt, p)?;
    // The AMBA bus code and the driver each look for a clock by name.
    fdt.property_array_u32("clocks", &[PHANDLE_CLK, PHANDLE_CLK])?;
    fdt.property_string_list("clock-names", vec!["uartclk".into(), "apb_pclk".into()])?;
    fdt.end_node(uart)?;
    Ok(())
}

/// The PL031 RTC. No `interrupts`: bhyve's PL031 has no alarm, and the
/// driver then offers none.
fn create_rtc_node(fdt: &mut FdtWriter, p: &Placement) -> Result<(), FdtError> {
    let rtc = fdt.begin_node(&format!("pl031@{:x}", p.base))?;
    fdt.property_string_list("compatible", vec!["arm,pl031".into(), "arm,primecell".into()])?;
    reg_and_interrupts(fdt, p)?;
    fdt.property_u32("clocks", PHANDLE_CLK)?;
    fdt.property_string("clock-names", "apb_pclk")?;
    fdt.end_node(rtc)?;
    Ok(())
}

/// A virtio-mmio transport (the `virtio,mmio` binding). `dma-coherent`:
/// the device reaches guest memory through the host's caches, as the
/// guest's CPUs do, so the driver must not do cache maintenance for it.
fn create_virtio_mmio_node(fdt: &mut FdtWriter, p: &Placement) -> Result<(), FdtError> {
    let node = fdt.begin_node(&format!("virtio_mmio@{:x}", p.base))?;
    fdt.property_string("compatible", "virtio,mmio")?;
    reg_and_interrupts(fdt, p)?;
    fdt.property_null("dma-coherent")?;
    fdt.end_node(node)?;
    Ok(())
}

#[cfg(test)]
mod tests;
