//! The interrupt line a device drives: an SPI of the VM's GICv3 ([`SpiLine`]),
//! or nothing ([`NoInterrupt`], in tests and when the host cannot give
//! guests a GIC, so guests poll).

/// A level-triggered interrupt line.
pub trait Interrupt: Send + Sync {
    /// Drives the line high (`true`) or low.
    fn set_level(&self, level: bool);
}

/// A line connected to nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoInterrupt;

impl Interrupt for NoInterrupt {
    fn set_level(&self, _level: bool) {}
}

/// A shared peripheral interrupt of the VM's GICv3 (level-sensitive).
pub struct SpiLine {
    vm: std::sync::Arc<vmmapi::Vm>,
    intid: u32,
}

impl SpiLine {
    /// SPI `intid` (32 and up) of `vm`.
    pub fn new(vm: std::sync::Arc<vmmapi::Vm>, intid: u32) -> Self {
        Self { vm, intid }
    }
}

impl Interrupt for SpiLine {
    fn set_level(&self, level: bool) {
        // Without a vGIC (ENODEV) the guest polls; nothing else can fail
        // for a valid SPI of a live VM.
        let _ = self.vm.set_irq_line(self.intid, level);
    }
}
