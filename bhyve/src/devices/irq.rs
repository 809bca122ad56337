//! The interrupt line a device drives. The interrupt controller comes later;
//! until then devices drive [`NoInterrupt`] and guests poll.

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
