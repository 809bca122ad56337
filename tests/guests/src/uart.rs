//! Console output on the PL011 UART at 0x0900_0000.

use crate::mmio;
use core::fmt;

/// Base address of the PL011.
pub const BASE: usize = 0x0900_0000;
/// Data register: write a byte to send it.
pub const DR: usize = BASE;
/// Flag register (32-bit).
pub const FR: usize = BASE + 0x018;
/// FR.TXFF: the transmit FIFO is full.
const FR_TXFF: u64 = 1 << 5;

/// Sends one byte, waiting while the FIFO is full (as Linux's earlycon).
pub fn putb(b: u8) {
    // SAFETY: PL011 registers, MMIO outside RAM.
    unsafe {
        while mmio::ldr_w(FR) & FR_TXFF != 0 {}
        mmio::strb(DR, b.into());
    }
}

/// The console as a [`fmt::Write`]. Lines end in a bare `\n` (no `\r`), so
/// tests can match them exactly.
pub struct Uart;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(putb);
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    // Uart::write_str never fails.
    let _ = fmt::Write::write_fmt(&mut Uart, args);
}

/// Prints to the PL011.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::uart::_print(format_args!($($arg)*)) };
}

/// Prints a line to the PL011.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::uart::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
