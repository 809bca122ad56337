//! The hypervisor's test device (bhyve `-o testdev`), MMIO at 0x0B00_0000.

use crate::mmio;

/// Base address of the device.
pub const BASE: usize = 0x0B00_0000;
/// Read-only, any size: [`PATTERN_VALUE`] truncated to the access size.
pub const PATTERN: usize = BASE;
/// Read-only, 64-bit: the number given with `-o testdev.param=N`.
pub const PARAM: usize = BASE + 0x008;
/// Write-only, any size: write [`PATTERN_VALUE`] truncated to the size.
pub const CHECK: usize = BASE + 0x010;
/// Read-only, 64-bit: size in bytes of the last write to [`CHECK`].
pub const LAST_SIZE: usize = BASE + 0x018;
/// Read-only, 64-bit: the host does FP work on each read; a counter.
pub const FPWORK: usize = BASE + 0x020;

/// What [`PATTERN`] holds. The top bit of each truncation (0x87, 0x9687,
/// 0xB4A5_9687) is set, so sign extension is visible.
pub const PATTERN_VALUE: u64 = 0xF0E1_D2C3_B4A5_9687;

/// The PARAM register (0 unless given on bhyve's command line).
pub fn param() -> u64 {
    // SAFETY: a device register outside RAM; reading has no side effects.
    unsafe { mmio::ldr_x(PARAM) }
}

/// The LAST_SIZE register.
pub fn last_size() -> u64 {
    // SAFETY: a device register outside RAM; reading has no side effects.
    unsafe { mmio::ldr_x(LAST_SIZE) }
}

/// Reads FPWORK: an exit in which the host does FP work.
pub fn fpwork() -> u64 {
    // SAFETY: a device register outside RAM; its side effect is on the host.
    unsafe { mmio::ldr_x(FPWORK) }
}

/// Write-only, 32-bit: 1 raises and 0 lowers the device's interrupt line,
/// the level-sensitive SPI [`IRQ_INTID`].
pub const IRQ_LINE: usize = BASE + 0x028;
/// The device's interrupt: SPI 8.
pub const IRQ_INTID: u32 = 40;

/// Raises (`true`) or lowers the device's interrupt line.
pub fn set_irq_line(high: bool) {
    // SAFETY: a device register outside RAM; the write only moves the line.
    unsafe { mmio::str_w(IRQ_LINE, high.into()) }
}
