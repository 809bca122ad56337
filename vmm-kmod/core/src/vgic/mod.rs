//! The virtual GICv3: interrupt state as plain data ([`irq`]), the
//! distributor and redistributor registers as tables of descriptors
//! ([`dist`], [`redist`], over [`regs`]). Pure logic, tested on the build
//! machine; delivery through the list registers and their EL2 save/restore
//! build on it.
//!
//! The GIC shown to guests has a single security state (`GICD_CTLR.DS` = 1)
//! with affinity routing always on (`ARE`), group 1 for everything a
//! non-secure OS uses, [`NR_SPIS`] shared interrupts, and no LPIs or ITS.

pub mod dist;
pub mod irq;
pub mod lr;
pub mod redist;
pub mod regs;

/// Shared peripheral interrupts per VM (INTIDs 32 ..= 32 + NR_SPIS - 1).
pub const NR_SPIS: usize = 128;
/// Private interrupts per vCPU: SGIs 0..16 and PPIs 16..32.
pub const NR_PRIVATE: usize = 32;
/// First SPI.
pub const SPI_BASE: u32 = 32;
/// One past the last interrupt ID in use.
pub const NR_IRQS: u32 = SPI_BASE + NR_SPIS as u32;

/// GICD_IIDR / GICR_IIDR: implementer Arm (0x43b), product 0, revision 0,
/// variant 1 (what we are, not a copy of any one implementation).
pub const IIDR: u32 = 0x0100_043b;
/// PIDR2: architecture revision GICv3.
pub const PIDR2_GICV3: u32 = 0x3 << 4;
