//! A redistributor (GICR_*), one per vCPU: its RD frame and, 64 KiB above,
//! its SGI frame holding the vCPU's private interrupts (SGIs and PPIs).

use super::irq::Irq;
use super::regs::{irq_regs, wi, Bank, RegDesc, D, W};
use super::{IIDR, NR_PRIVATE, PIDR2_GICV3};

/// Size of one redistributor: the RD frame and the SGI frame.
pub const REDIST_SIZE: u64 = 0x2_0000;
/// Offset of the SGI frame.
pub const SGI_BASE: u64 = 0x1_0000;
/// GICR_WAKER.ProcessorSleep.
pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// GICR_WAKER.ChildrenAsleep.
pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

/// A redistributor's state.
#[derive(Clone, Debug)]
pub struct Redist {
    /// The vCPU's number (GICR_TYPER.Processor_Number).
    pub vcpu: u32,
    /// Its MPIDR (GICR_TYPER.Affinity).
    pub mpidr: u64,
    /// The last redistributor of the region (GICR_TYPER.Last).
    pub last: bool,
    /// GICR_WAKER.ProcessorSleep.
    pub asleep: bool,
    /// SGIs (0..16, edge) and PPIs (16..32, level by default).
    pub private: [Irq; NR_PRIVATE],
}

impl Redist {
    /// The redistributor of vCPU `vcpu` with MPIDR `mpidr`, at reset:
    /// everything disabled, and awake (GICR_WAKER.ProcessorSleep clear):
    /// as firmware at EL3 leaves it for the non-secure world, and as KVM's
    /// GICv3 reads; firmware made for KVM (EDK2) never wakes it itself.
    pub fn new(vcpu: u32, mpidr: u64, last: bool) -> Self {
        let mut private = [Irq::default(); NR_PRIVATE];
        for sgi in &mut private[..16] {
            sgi.edge = true;
        }
        Self { vcpu, mpidr, last, asleep: false, private }
    }

    /// Reads a register at `offset` in the redistributor (both frames).
    pub fn read(&self, offset: u64, size: u8) -> u64 {
        super::regs::read(&[REDIST_REGS, &SGI_IRQ_REGS], self, offset, size)
    }

    /// Writes a register.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) {
        super::regs::write(&[REDIST_REGS, &SGI_IRQ_REGS], self, offset, size, value)
    }

    fn typer(&self) -> u64 {
        // Affinity: Aff3.Aff2.Aff1.Aff0 in [63:32].
        let m = self.mpidr;
        let aff = (m & 0xff_ffff) | ((m >> 32) & 0xff) << 24;
        aff << 32 | (self.vcpu as u64 & 0xffff) << 8 | (self.last as u64) << 4
    }
}

impl Bank for Redist {
    fn irq(&self, n: usize) -> Option<&Irq> {
        self.private.get(n)
    }

    fn irq_mut(&mut self, n: usize) -> Option<&mut Irq> {
        self.private.get_mut(n)
    }
}

/// The SGI frame's per-interrupt registers, for the private INTIDs 0-31.
const SGI_IRQ_REGS: [RegDesc<Redist>; 8] = irq_regs(SGI_BASE, 4, 0x20);

/// The redistributor's other registers (RD frame, then the SGI frame's
/// trigger configuration).
pub const REDIST_REGS: &[RegDesc<Redist>] = &[
    // GICR_CTLR: no LPIs, nothing pending (RWP 0).
    RegDesc { offset: 0x0000, len: 4, sizes: W, read: |_, _| 0, write: wi },
    RegDesc { offset: 0x0004, len: 4, sizes: W, read: |_, _| IIDR as u64, write: wi },
    RegDesc { offset: 0x0008, len: 8, sizes: W | D, read: |r, a| r.typer() >> (8 * a.offset), write: wi },
    // GICR_WAKER: waking takes effect at once (ChildrenAsleep follows).
    RegDesc {
        offset: 0x0014,
        len: 4,
        sizes: W,
        read: |r, _| {
            if r.asleep {
                (WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP) as u64
            } else {
                0
            }
        },
        write: |r, _, v| r.asleep = v as u32 & WAKER_PROCESSOR_SLEEP != 0,
    },
    RegDesc { offset: 0xffe8, len: 4, sizes: W, read: |_, _| PIDR2_GICV3 as u64, write: wi },
    // ICFGR0: SGIs are edge-triggered, read-only.
    RegDesc { offset: SGI_BASE + 0x0c00, len: 4, sizes: W, read: |_, _| 0xaaaa_aaaa, write: wi },
    // ICFGR1: the PPIs' trigger mode.
    RegDesc {
        offset: SGI_BASE + 0x0c04,
        len: 4,
        sizes: W,
        read: |r, _| (0..16).fold(0, |v, i| v | ((r.private[16 + i].edge as u64) << (2 * i + 1))),
        write: |r, _, v| {
            for i in 0..16 {
                r.private[16 + i].edge = v & (1 << (2 * i + 1)) != 0;
            }
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identification_and_waker() {
        let mut r = Redist::new(5, 0x8000_0105, true);
        let typer = r.read(0x0008, 8);
        assert_eq!(typer >> 32, 0x0105, "Aff1.Aff0 of MPIDR 0x80000105");
        assert_eq!((typer >> 8) & 0xffff, 5);
        assert_eq!(typer & (1 << 4), 1 << 4, "Last");
        assert_eq!(r.read(0x000c, 4), 0x0105, "the upper word alone");
        assert_eq!(r.read(0xffe8, 4), 0x30);
        assert_eq!(r.read(0x0014, 4), 0, "awake at reset");
        r.write(0x0014, 4, 0b10);
        assert_eq!(r.read(0x0014, 4), 0b110, "asleep");
        r.write(0x0014, 4, 0);
        assert_eq!(r.read(0x0014, 4), 0, "awake at once");
    }

    #[test]
    fn private_interrupts() {
        let mut r = Redist::new(0, 0x8000_0000, false);
        assert!(r.private.iter().all(|q| q.group1), "group 1 at reset");
        r.write(SGI_BASE + 0x0080, 4, 0xffff_fffe);
        assert!(!r.private[0].group1 && r.private[1].group1);
        r.write(SGI_BASE + 0x0100, 4, 1 << 27 | 1 << 1);
        assert_eq!(r.read(SGI_BASE + 0x0100, 4), 1 << 27 | 1 << 1);
        r.write(SGI_BASE + 0x0180, 4, 1 << 1);
        assert!(!r.private[1].enabled && r.private[27].enabled);
        r.write(SGI_BASE + 0x041b, 1, 0x20); // INTID 27's priority byte
        assert_eq!(r.private[27].priority, 0x20);
        assert_eq!(r.read(SGI_BASE + 0x0c00, 4), 0xaaaa_aaaa);
        r.write(SGI_BASE + 0x0c00, 4, 0);
        assert!(r.private[3].edge, "SGIs stay edge-triggered");
        assert!(!r.private[27].edge, "PPIs start level-sensitive");
        r.write(SGI_BASE + 0x0200, 4, 1 << 3);
        assert!(r.private[3].pending());
        assert_eq!(r.read(SGI_BASE + 0x0d00, 4), 0, "IGRPMODR0: single security state");
    }
}
