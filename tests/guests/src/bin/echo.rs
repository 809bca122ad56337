//! Console input: echoes each line it receives on the PL011 in upper case,
//! until a `q` line (case-insensitive); first checks that an SMCCC call nobody implements
//! answers NOT_SUPPORTED. Polls the UART, as early console code does.

#![no_std]
#![no_main]

use guests::{mmio, println, smccc, uart};

guests::entry!(main);

/// FR.RXFE: the receive FIFO is empty.
const FR_RXFE: u64 = 1 << 4;
/// An SMCCC function id of the vendor-specific hypervisor range nobody implements.
const UNKNOWN_CALL: u32 = 0xc600_ff00;

fn getb() -> u8 {
    // SAFETY: PL011 registers, MMIO outside RAM.
    unsafe {
        while mmio::ldr_w(uart::FR) & FR_RXFE != 0 {}
        mmio::ldr_w(uart::DR) as u8
    }
}

fn main() -> ! {
    // SAFETY: an SMCCC call; the ABI lets it clobber only x0..x17.
    let r = unsafe { smccc::hvc(UNKNOWN_CALL, [0; 7]) };
    println!("echo: unknown SMCCC call answered {:#x}", r[0]);
    println!("echo: ready");
    let mut line = [0u8; 64];
    let mut n = 0;
    loop {
        let b = getb();
        if b == b'\n' || b == b'\r' {
            let text = core::str::from_utf8(&line[..n]).unwrap_or("?");
            if text == "Q" {
                println!("echo: bye");
                smccc::system_off();
            }
            println!("echo: {}", text);
            n = 0;
        } else if n < line.len() {
            line[n] = b.to_ascii_uppercase();
            n += 1;
        }
    }
}
