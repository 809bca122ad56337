//! The state of one virtual interrupt.

/// One interrupt's state, as the distributor or a redistributor holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irq {
    /// Enabled (ISENABLER/ICENABLER).
    pub enabled: bool,
    /// Pending by a latch: an edge, a write to ISPENDR, an SGI.
    pub pending_latch: bool,
    /// The input line (level-sensitive interrupts).
    pub line: bool,
    /// Active (acknowledged, not yet deactivated).
    pub active: bool,
    /// Edge-triggered (ICFGR bit 1 of its field); else level-sensitive.
    pub edge: bool,
    /// Group 1 (IGROUPR); group 0 interrupts are never delivered to a
    /// non-secure guest with group 0 disabled.
    pub group1: bool,
    /// Priority (IPRIORITYR), lower is more urgent.
    pub priority: u8,
    /// For SPIs: IROUTER (affinity and the IRM bit).
    pub route: u64,
}

/// At reset: disabled, level-sensitive, priority 0, and in non-secure
/// group 1, as secure firmware leaves the GIC for the non-secure world on
/// a machine with EL3, and as KVM's GICv3 starts: a guest has no secure
/// side to move them there, and firmware made for KVM (EDK2's ArmVirtQemu)
/// never writes IGROUPR.
impl Default for Irq {
    fn default() -> Self {
        Irq {
            enabled: false,
            pending_latch: false,
            line: false,
            active: false,
            edge: false,
            group1: true,
            priority: 0,
            route: 0,
        }
    }
}

impl Irq {
    /// Whether it is pending: latched, or a level-sensitive line held high.
    pub fn pending(&self) -> bool {
        self.pending_latch || (!self.edge && self.line)
    }

    /// Whether it can be signalled to a vCPU now: enabled, pending, not active.
    pub fn deliverable(&self) -> bool {
        self.enabled && self.pending() && !self.active
    }

    /// Sets the input line. A rising edge latches an edge-triggered
    /// interrupt; a level-sensitive one follows the line.
    pub fn set_line(&mut self, level: bool) {
        if self.edge && level && !self.line {
            self.pending_latch = true;
        }
        self.line = level;
    }

    /// ICPENDR: clears the latch (a level-sensitive line still held high
    /// keeps it pending).
    pub fn clear_pending(&mut self) {
        self.pending_latch = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_and_edge_semantics() {
        let mut l = Irq { enabled: true, ..Default::default() };
        l.set_line(true);
        assert!(l.pending() && l.deliverable());
        l.clear_pending();
        assert!(l.pending(), "a level held high stays pending");
        l.set_line(false);
        assert!(!l.pending());

        let mut e = Irq { enabled: true, edge: true, ..Default::default() };
        e.set_line(true);
        e.set_line(false);
        assert!(e.pending(), "an edge is latched");
        e.active = true;
        assert!(!e.deliverable(), "not while active");
        e.clear_pending();
        assert!(!e.pending());
    }
}
