//! The distributor (GICD_*): global control and the shared interrupts.

use super::irq::Irq;
use super::regs::{field, irq_regs, wi, Bank, RegDesc, D, W};
use super::{IIDR, NR_IRQS, NR_SPIS, PIDR2_GICV3, SPI_BASE};

/// GICD_CTLR.EnableGrp0.
pub const CTLR_ENABLE_G0: u32 = 1 << 0;
/// GICD_CTLR.EnableGrp1.
pub const CTLR_ENABLE_G1: u32 = 1 << 1;
/// GICD_CTLR.ARE: affinity routing, always on.
pub const CTLR_ARE: u32 = 1 << 4;
/// GICD_CTLR.DS: a single security state.
pub const CTLR_DS: u32 = 1 << 6;
/// IROUTER.IRM: "any participating PE" (1 of N) routing.
pub const IROUTER_IRM: u64 = 1 << 31;

/// Distributor state.
#[derive(Clone, Debug)]
pub struct Dist {
    /// The group enables of GICD_CTLR.
    pub enables: u32,
    /// SPIs, INTID 32 + index.
    pub spis: [Irq; NR_SPIS],
}

impl Default for Dist {
    fn default() -> Self {
        Self { enables: 0, spis: [Irq::default(); NR_SPIS] }
    }
}

impl Dist {
    /// The SPI with INTID `intid`.
    pub fn spi(&self, intid: usize) -> Option<&Irq> {
        intid.checked_sub(SPI_BASE as usize).and_then(|i| self.spis.get(i))
    }

    /// The SPI with INTID `intid`, mutably.
    pub fn spi_mut(&mut self, intid: usize) -> Option<&mut Irq> {
        intid.checked_sub(SPI_BASE as usize).and_then(|i| self.spis.get_mut(i))
    }

    /// Reads a register at `offset` in the distributor frame.
    pub fn read(&self, offset: u64, size: u8) -> u64 {
        super::regs::read(&[DIST_REGS, &DIST_IRQ_REGS], self, offset, size)
    }

    /// Writes a register.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) {
        super::regs::write(&[DIST_REGS, &DIST_IRQ_REGS], self, offset, size, value)
    }
}

fn typer() -> u64 {
    // ITLinesNumber: 32 * (N + 1) interrupt IDs; IDbits: 10 bits (value 9).
    let it_lines = NR_IRQS.div_ceil(32) - 1;
    (it_lines | 9 << 19) as u64
}

impl Bank for Dist {
    fn irq(&self, intid: usize) -> Option<&Irq> {
        self.spi(intid)
    }

    fn irq_mut(&mut self, intid: usize) -> Option<&mut Irq> {
        self.spi_mut(intid)
    }
}

/// The per-interrupt registers, for INTIDs 0-1023 (those below 32 and
/// beyond our SPIs read as zero).
const DIST_IRQ_REGS: [RegDesc<Dist>; 8] = irq_regs(0, 0x80, 0x400);

/// The distributor's other registers. Anything else, including the words of the
/// private interrupts (INTIDs 0-31 live in the redistributors when affinity
/// routing is on), reads as zero and ignores writes.
pub const DIST_REGS: &[RegDesc<Dist>] = &[
    RegDesc {
        offset: 0x0000,
        len: 4,
        sizes: W,
        read: |d, _| (d.enables | CTLR_ARE | CTLR_DS) as u64,
        write: |d, _, v| d.enables = v as u32 & (CTLR_ENABLE_G0 | CTLR_ENABLE_G1),
    },
    RegDesc { offset: 0x0004, len: 4, sizes: W, read: |_, _| typer(), write: wi },
    RegDesc { offset: 0x0008, len: 4, sizes: W, read: |_, _| IIDR as u64, write: wi },
    // ICFGR: 2 bits per interrupt, bit 1 set = edge-triggered.
    RegDesc {
        offset: 0x0c00,
        len: 0x100,
        sizes: W,
        read: |d, a| {
            let (first, n) = field::pairs(a);
            (0..n).fold(0, |v, i| v | ((d.spi(first + i).is_some_and(|q| q.edge) as u64) << (2 * i + 1)))
        },
        write: |d, a, v| {
            let (first, n) = field::pairs(a);
            for i in 0..n {
                if let Some(q) = d.spi_mut(first + i) {
                    q.edge = v & (1 << (2 * i + 1)) != 0;
                }
            }
        },
    },
    // IROUTER: 64 bits per SPI (Aff3 in [39:32], IRM, Aff2.Aff1.Aff0).
    RegDesc {
        offset: 0x6000,
        len: 0x2000,
        sizes: W | D,
        read: |d, a| {
            let intid = (a.offset / 8) as usize;
            let shift = (a.offset % 8) * 8;
            d.spi(intid).map_or(0, |q| q.route >> shift) & if a.size == 8 { u64::MAX } else { 0xffff_ffff }
        },
        write: |d, a, v| {
            let intid = (a.offset / 8) as usize;
            let mask = 0xff_8000_0000u64 | 0xff_ffff;
            if let Some(q) = d.spi_mut(intid) {
                q.route = match (a.size, a.offset % 8) {
                    (8, _) => v & mask,
                    (_, 0) => (q.route & !0xffff_ffff) | (v & mask & 0xffff_ffff),
                    _ => (q.route & 0xffff_ffff) | ((v << 32) & mask),
                };
            }
        },
    },
    RegDesc { offset: 0xffe8, len: 4, sizes: W, read: |_, _| PIDR2_GICV3 as u64, write: wi },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identification() {
        let d = Dist::default();
        assert_eq!(d.read(0x0000, 4) as u32 & (CTLR_ARE | CTLR_DS), CTLR_ARE | CTLR_DS);
        let typer = d.read(0x0004, 4);
        assert_eq!(typer & 0x1f, 4, "160 interrupt IDs");
        assert_eq!((typer >> 19) & 0x1f, 9, "10 ID bits");
        assert_eq!(d.read(0xffe8, 4), 0x30);
        assert_eq!(d.read(0x0008, 4), IIDR as u64);
        assert_eq!(d.read(0x7f00, 4), 0, "beyond our SPIs");
    }

    #[test]
    fn enables_pending_active_and_the_private_word() {
        let mut d = Dist::default();
        d.write(0x0000, 4, 0x13);
        assert_eq!(d.read(0x0000, 4) as u32 & 0x3, 0x3);
        // ISENABLER1 covers INTIDs 32..63.
        d.write(0x0104, 4, 0b101);
        assert!(d.spi(32).unwrap().enabled && d.spi(34).unwrap().enabled && !d.spi(33).unwrap().enabled);
        d.write(0x0184, 4, 0b1);
        assert!(!d.spi(32).unwrap().enabled);
        assert_eq!(d.read(0x0104, 4), 0b100);
        // Word 0 (SGIs, PPIs) is the redistributors' business.
        d.write(0x0100, 4, u32::MAX as u64);
        assert_eq!(d.read(0x0100, 4), 0);
        d.write(0x0204, 4, 0b10);
        assert!(d.spi(33).unwrap().pending());
        d.write(0x0284, 4, 0b10);
        assert!(!d.spi(33).unwrap().pending());
        d.write(0x0304, 4, 0b1000);
        assert_eq!(d.read(0x0304, 4), 0b1000);
        d.write(0x0384, 4, 0b1000);
        assert_eq!(d.read(0x0304, 4), 0);
    }

    #[test]
    fn priorities_config_and_routing() {
        let mut d = Dist::default();
        d.write(0x0420, 4, 0xa0b0_c0d0); // INTIDs 32..35
        assert_eq!(d.spi(32).unwrap().priority, 0xd0);
        assert_eq!(d.spi(35).unwrap().priority, 0xa0);
        d.write(0x0421, 1, 0x11);
        assert_eq!(d.read(0x0420, 4), 0xa0b0_11d0);
        d.write(0x0c08, 4, 0b1000); // ICFGR2: INTID 33 edge
        assert!(d.spi(33).unwrap().edge && !d.spi(32).unwrap().edge);
        assert_eq!(d.read(0x0c08, 4), 0b1000);
        d.write(0x6000 + 8 * 40, 8, 0x1_0000_0203 | IROUTER_IRM | 0xf000_0000_0000);
        assert_eq!(d.spi(40).unwrap().route, 0x1_8000_0203, "RES0 bits dropped");
        d.write(0x6000 + 8 * 40 + 4, 4, 0x2);
        assert_eq!(d.read(0x6000 + 8 * 40, 8), 0x2_8000_0203);
        assert_eq!(d.read(0x6000 + 8 * 40, 4), 0x8000_0203);
    }
}
