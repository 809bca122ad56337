//! Guest RAM holds what was written: fills all RAM above the image with a
//! pattern and reads it back three times. PARAM bits 0-7 are the pattern
//! byte, bits 8-31 the RAM size in MiB.

#![no_std]
#![no_main]

use guests::{println, smccc, testdev, RAM_BASE};

guests::entry!(main);

/// Well above the image and its stack (below 0x4010_0000).
const FILL_START: usize = 0x4020_0000;
const PASSES: u32 = 3;
/// Mismatches reported one by one; the rest are only counted.
const REPORT: u64 = 8;

fn main() -> ! {
    let param = testdev::param();
    let byte = param & 0xff;
    let mib = (param >> 8) & 0xff_ffff;
    let end = RAM_BASE + ((mib as usize) << 20);
    if end <= FILL_START {
        println!("memfill: FAIL {mib} MiB of RAM leaves nothing above {FILL_START:#x}");
        smccc::system_off();
    }
    let word = byte * 0x0101_0101_0101_0101;
    let words = (end - FILL_START) / 8;
    let base = FILL_START as *mut u64;

    println!("memfill: wrote {byte:#04x} over {mib} MiB");
    for i in 0..words {
        // SAFETY: FILL_START..end is guest RAM that nothing else uses;
        // 8-byte aligned, as Device memory (MMU off) requires.
        unsafe { base.add(i).write_volatile(word) };
    }

    let mut mismatches = 0u64;
    for pass in 1..=PASSES {
        for i in 0..words {
            // SAFETY: as above.
            let got = unsafe { base.add(i).read_volatile() };
            if got != word {
                if mismatches < REPORT {
                    println!("memfill: pass {pass}: {:#x} holds {got:#x}", FILL_START + 8 * i);
                }
                mismatches += 1;
            }
        }
    }
    println!("memfill: verified {PASSES} times, {mismatches} mismatches");
    smccc::system_off()
}
