//! An Arm PL011 UART (PrimeCell r1p5 identification), enough for Linux's
//! `amba-pl011` driver and its `earlycon`.
//!
//! Output is immediate: a byte written to DR goes to `W` at once, so the
//! transmitter is always idle (TXFE set, TXFF and BUSY clear). Input arrives
//! from the console through [`Pl011::enqueue_input`] into a 32-byte FIFO.
//! Baud rate, line control, control (CR) and DMA registers are kept and read
//! back but have no effect: output flows even with the UART disabled, as on
//! QEMU, so that early output works whatever firmware left in CR. Offsets
//! without a register read as zero and ignore writes.
//!
//! Every access takes the UART's lock for its whole length, output
//! included: accesses of several vCPUs (and the console's input) are
//! applied one after the other, never mixed.

use super::irq::Interrupt;
use super::{get_le, put_le};
use crate::bus::BusDevice;
use crate::console::ConsoleInput;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Bytes the receive FIFO holds; input beyond is dropped (an overrun).
pub const RX_FIFO_LEN: usize = 32;

/// Register offsets.
pub mod reg {
    /// Data register: write sends, read pops the receive FIFO.
    pub const DR: u64 = 0x000;
    /// Receive status (read) / error clear (write).
    pub const RSR_ECR: u64 = 0x004;
    /// Flag register.
    pub const FR: u64 = 0x018;
    /// IrDA low-power counter.
    pub const ILPR: u64 = 0x020;
    /// Integer baud rate divisor.
    pub const IBRD: u64 = 0x024;
    /// Fractional baud rate divisor.
    pub const FBRD: u64 = 0x028;
    /// Line control.
    pub const LCR_H: u64 = 0x02c;
    /// Control.
    pub const CR: u64 = 0x030;
    /// Interrupt FIFO level select.
    pub const IFLS: u64 = 0x034;
    /// Interrupt mask set/clear.
    pub const IMSC: u64 = 0x038;
    /// Raw interrupt status.
    pub const RIS: u64 = 0x03c;
    /// Masked interrupt status.
    pub const MIS: u64 = 0x040;
    /// Interrupt clear.
    pub const ICR: u64 = 0x044;
    /// DMA control.
    pub const DMACR: u64 = 0x048;
    /// First of the PeriphID0-3 and PCellID0-3 registers.
    pub const ID: u64 = 0xfe0;
}

/// Flag register bits.
pub mod fr {
    /// The UART is sending data.
    pub const BUSY: u32 = 1 << 3;
    /// Receive FIFO empty.
    pub const RXFE: u32 = 1 << 4;
    /// Transmit FIFO full.
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO empty.
    pub const TXFE: u32 = 1 << 7;
}

/// Interrupt bits of IMSC, RIS, MIS and ICR.
pub mod int {
    /// Receive.
    pub const RX: u32 = 1 << 4;
    /// Transmit.
    pub const TX: u32 = 1 << 5;
    /// Receive timeout.
    pub const RT: u32 = 1 << 6;
    /// Overrun error.
    pub const OE: u32 = 1 << 10;
    /// All eleven interrupt bits.
    pub const ALL: u32 = 0x7ff;
}

/// RSR bit: overrun (input dropped because the FIFO was full).
const RSR_OE: u32 = 1 << 3;
/// Reset value of CR: transmit and receive enabled, UART disabled.
const CR_RESET: u32 = 0x300;
/// Reset value of IFLS: both FIFOs trigger at half full.
const IFLS_RESET: u32 = 0x12;
/// PeriphID0-3 (part 0x011, Arm, revision r1p5) then PCellID0-3.
const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

struct State<W> {
    out: W,
    rx: VecDeque<u8>,
    rsr: u32,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    /// Latched interrupt bits (RX, TX, OE); RIS is this.
    ris: u32,
    dmacr: u32,
    /// The level last given to the interrupt line.
    line: bool,
}

/// A PL011 UART writing its output to `W` and driving the line `I`.
pub struct Pl011<I: Interrupt, W: Write + Send> {
    irq: I,
    state: Mutex<State<W>>,
    /// Signalled when the guest takes a byte from a full receive FIFO.
    rx_space: Condvar,
}

// bhyve's UART is used by every vCPU thread and the console's.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Pl011<super::irq::NoInterrupt, std::io::Stdout>>();
};

impl<I: Interrupt, W: Write + Send> Pl011<I, W> {
    /// A UART in its reset state.
    pub fn new(irq: I, out: W) -> Self {
        Self {
            irq,
            state: Mutex::new(State {
                out,
                rx: VecDeque::with_capacity(RX_FIFO_LEN),
                rsr: 0,
                ilpr: 0,
                ibrd: 0,
                fbrd: 0,
                lcr_h: 0,
                cr: CR_RESET,
                ifls: IFLS_RESET,
                imsc: 0,
                ris: 0,
                dmacr: 0,
                line: false,
            }),
            rx_space: Condvar::new(),
        }
    }

    /// The interrupt line.
    pub fn irq(&self) -> &I {
        &self.irq
    }

    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // A poisoned lock means a panic elsewhere mid-access; the registers
        // are plain values and still consistent enough for a UART.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts input into the receive FIFO. Returns how many bytes fit; the rest
    /// is dropped, as the hardware drops on overrun.
    pub fn enqueue_input(&self, bytes: &[u8]) -> usize {
        let mut s = self.lock();
        let room = RX_FIFO_LEN - s.rx.len();
        let n = bytes.len().min(room);
        s.rx.extend(&bytes[..n]);
        if n > 0 {
            s.ris |= int::RX;
        }
        if n < bytes.len() {
            s.rsr |= RSR_OE;
            s.ris |= int::OE;
        }
        self.update_line(&mut s);
        n
    }

    /// Bytes of free space in the receive FIFO.
    pub fn rx_room(&self) -> usize {
        RX_FIFO_LEN - self.lock().rx.len()
    }

    fn update_line(&self, s: &mut State<W>) {
        let level = s.ris & s.imsc != 0;
        if level != s.line {
            s.line = level;
            self.irq.set_level(level);
        }
    }

    fn read_reg(&self, s: &mut State<W>, reg: u64) -> u32 {
        match reg {
            reg::DR => match s.rx.pop_front() {
                Some(b) => {
                    if s.rx.len() == RX_FIFO_LEN - 1 {
                        self.rx_space.notify_all();
                    }
                    if s.rx.is_empty() {
                        // Below the trigger level: the receive interrupt
                        // drops, as on the hardware.
                        s.ris &= !(int::RX | int::RT);
                    }
                    b as u32
                }
                None => 0,
            },
            reg::RSR_ECR => s.rsr,
            reg::FR => {
                let mut f = fr::TXFE;
                if s.rx.is_empty() {
                    f |= fr::RXFE;
                }
                if s.rx.len() == RX_FIFO_LEN {
                    f |= fr::RXFF;
                }
                f
            }
            reg::ILPR => s.ilpr,
            reg::IBRD => s.ibrd,
            reg::FBRD => s.fbrd,
            reg::LCR_H => s.lcr_h,
            reg::CR => s.cr,
            reg::IFLS => s.ifls,
            reg::IMSC => s.imsc,
            reg::RIS => s.ris,
            reg::MIS => s.ris & s.imsc,
            reg::DMACR => s.dmacr,
            r if (reg::ID..reg::ID + 0x20).contains(&r) => ID_BYTES[((r - reg::ID) / 4) as usize] as u32,
            _ => 0,
        }
    }

    /// Writes the byte lanes `mask` of register `reg` with `val`.
    fn write_reg(s: &mut State<W>, reg: u64, val: u32, mask: u32) {
        let merge = |old: u32, width: u32| (old & !mask | val & mask) & width;
        match reg {
            // Only a write reaching DR's low byte carries a character.
            reg::DR if mask & 0xff != 0 => {
                // Output errors (a closed terminal) lose the byte, as a
                // disconnected line would; the guest cannot be told.
                let _ = s.out.write_all(&[val as u8]);
                let _ = s.out.flush();
                // Sent at once: the FIFO is empty again, below its trigger
                // level, which raises the transmit interrupt.
                s.ris |= int::TX;
            }
            reg::RSR_ECR => s.rsr = 0,
            reg::ILPR => s.ilpr = merge(s.ilpr, 0xff),
            reg::IBRD => s.ibrd = merge(s.ibrd, 0xffff),
            reg::FBRD => s.fbrd = merge(s.fbrd, 0x3f),
            reg::LCR_H => s.lcr_h = merge(s.lcr_h, 0xff),
            reg::CR => s.cr = merge(s.cr, 0xffff),
            reg::IFLS => s.ifls = merge(s.ifls, 0x3f),
            reg::IMSC => s.imsc = merge(s.imsc, int::ALL),
            reg::ICR => s.ris &= !(val & mask),
            reg::DMACR => s.dmacr = merge(s.dmacr, 0x7),
            _ => {}
        }
    }
}

impl<I: Interrupt, W: Write + Send> ConsoleInput for Pl011<I, W> {
    fn push(&self, bytes: &[u8]) -> usize {
        self.enqueue_input(bytes)
    }

    fn wait_for_room(&self) {
        let s = self.lock();
        let _s = self.rx_space.wait_while(s, |s| s.rx.len() >= RX_FIFO_LEN).unwrap_or_else(|e| e.into_inner());
    }
}

/// Whether the bus may hand a device an access of this many bytes.
fn valid_size(n: usize) -> bool {
    matches!(n, 1 | 2 | 4 | 8)
}

impl<I: Interrupt, W: Write + Send> BusDevice for Pl011<I, W> {
    /// Registers are 32 bits wide at 4-byte aligned offsets. A narrower read
    /// gets the addressed bytes of its register; an 8-byte read gets the
    /// register zero-extended.
    fn read(&self, _base: u64, offset: u64, data: &mut [u8]) {
        if !valid_size(data.len()) {
            data.fill(0);
            return;
        }
        let mut s = self.lock();
        let v = self.read_reg(&mut s, offset & !3);
        put_le(data, (v >> ((offset & 3) * 8)) as u64);
        self.update_line(&mut s);
    }

    /// A write reaches the byte lanes of one register it covers; bytes past
    /// that register (of an 8-byte write) are ignored.
    fn write(&self, _base: u64, offset: u64, data: &[u8]) {
        if !valid_size(data.len()) {
            return;
        }
        let lane = (offset & 3) as usize;
        let bytes = data.len().min(4 - lane);
        let shift = lane * 8;
        let mask = (((1u64 << (bytes * 8)) - 1) << shift) as u32;
        let val = ((get_le(data) << shift) as u32) & mask;
        let mut s = self.lock();
        Self::write_reg(&mut s, offset & !3, val, mask);
        self.update_line(&mut s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// An interrupt line that remembers its level and counts changes.
    #[derive(Default)]
    struct Line {
        level: AtomicBool,
        changes: AtomicUsize,
    }

    impl Interrupt for Line {
        fn set_level(&self, level: bool) {
            self.level.store(level, Ordering::SeqCst);
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
    }

    type Uart = Pl011<Line, Vec<u8>>;

    fn uart() -> Uart {
        Pl011::new(Line::default(), Vec::new())
    }

    fn r32(u: &Uart, off: u64) -> u32 {
        let mut d = [0u8; 4];
        u.read(0x0900_0000, off, &mut d);
        u32::from_le_bytes(d)
    }

    fn w32(u: &Uart, off: u64, v: u32) {
        u.write(0x0900_0000, off, &v.to_le_bytes());
    }

    fn output(u: &Uart) -> Vec<u8> {
        u.lock().out.clone()
    }

    fn line(u: &Uart) -> bool {
        u.irq().level.load(Ordering::SeqCst)
    }

    #[test]
    fn reset_values() {
        let u = uart();
        assert_eq!(r32(&u, reg::CR), 0x300);
        assert_eq!(r32(&u, reg::IFLS), 0x12);
        assert_eq!(r32(&u, reg::FR), fr::TXFE | fr::RXFE);
        for r in [reg::RSR_ECR, reg::ILPR, reg::IBRD, reg::FBRD, reg::LCR_H, reg::IMSC, reg::RIS, reg::MIS, reg::DMACR]
        {
            assert_eq!(r32(&u, r), 0, "{r:#x}");
        }
        assert!(!line(&u));
    }

    #[test]
    fn identification_registers() {
        let u = uart();
        let ids: Vec<u32> = (0..8).map(|i| r32(&u, 0xfe0 + 4 * i)).collect();
        assert_eq!(ids, vec![0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        let mut b = [0u8; 1];
        u.read(0, 0xff0, &mut b);
        assert_eq!(b, [0x0d], "byte reads work too");
    }

    #[test]
    fn writes_to_dr_go_out_at_once() {
        let u = uart();
        for &b in b"hi\n" {
            w32(&u, reg::DR, b as u32 | 0xffff_ff00);
        }
        u.write(0, reg::DR, b"!");
        u.write(0, reg::DR, &[b'?', 0xff]);
        u.write(0, reg::DR, &u64::from(b'8').to_le_bytes());
        assert_eq!(output(&u), b"hi\n!?8");
        // The transmitter is never full nor busy.
        let f = r32(&u, reg::FR);
        assert_eq!(f & (fr::TXFF | fr::BUSY), 0);
        assert_ne!(f & fr::TXFE, 0);
        // A write to DR's second byte only carries no character.
        u.write(0, reg::DR + 1, b"x");
        assert_eq!(output(&u), b"hi\n!?8");
    }

    #[test]
    fn receive_fifo() {
        let u = uart();
        assert_eq!(u.enqueue_input(b"ab"), 2);
        assert_eq!(r32(&u, reg::FR) & (fr::RXFE | fr::RXFF), 0);
        assert_eq!(r32(&u, reg::DR), b'a' as u32, "error bits are 0");
        assert_eq!(r32(&u, reg::DR), b'b' as u32);
        assert_ne!(r32(&u, reg::FR) & fr::RXFE, 0);
        assert_eq!(r32(&u, reg::DR), 0, "empty FIFO reads 0");
        // 32 entries; the rest is dropped and flagged as an overrun.
        let input: Vec<u8> = (0..40).collect();
        assert_eq!(u.enqueue_input(&input), RX_FIFO_LEN);
        assert_eq!(u.rx_room(), 0);
        assert_eq!(r32(&u, reg::FR) & (fr::RXFF | fr::RXFE), fr::RXFF);
        assert_eq!(r32(&u, reg::RSR_ECR), RSR_OE);
        assert_ne!(r32(&u, reg::RIS) & int::OE, 0);
        w32(&u, reg::RSR_ECR, 0);
        assert_eq!(r32(&u, reg::RSR_ECR), 0, "ECR clears");
        assert_eq!(u.enqueue_input(b"z"), 0);
        for i in 0..32 {
            assert_eq!(r32(&u, reg::DR), i);
        }
        assert_eq!(u.rx_room(), RX_FIFO_LEN);
    }

    #[test]
    fn stored_registers_keep_their_width() {
        let u = uart();
        for (r, width) in [
            (reg::ILPR, 0xff),
            (reg::IBRD, 0xffff),
            (reg::FBRD, 0x3f),
            (reg::LCR_H, 0xff),
            (reg::CR, 0xffff),
            (reg::IFLS, 0x3f),
            (reg::IMSC, 0x7ff),
            (reg::DMACR, 0x7),
        ] {
            w32(&u, r, 0xffff_ffff);
            assert_eq!(r32(&u, r), width, "{r:#x}");
            w32(&u, r, 0);
        }
        w32(&u, reg::IBRD, 0x1234);
        u.write(0, reg::IBRD + 1, &[0xab]);
        assert_eq!(r32(&u, reg::IBRD), 0xab34, "a byte write changes one lane");
        let mut h = [0u8; 2];
        u.read(0, reg::IBRD, &mut h);
        assert_eq!(h, [0x34, 0xab]);
        let mut b = [0u8; 1];
        u.read(0, reg::IBRD + 1, &mut b);
        assert_eq!(b, [0xab]);
    }

    #[test]
    fn read_only_and_unknown_registers() {
        let u = uart();
        u.enqueue_input(b"x");
        let before = r32(&u, reg::RIS);
        w32(&u, reg::RIS, 0);
        w32(&u, reg::MIS, 0xffff);
        w32(&u, reg::FR, 0);
        assert_eq!(r32(&u, reg::RIS), before);
        assert_eq!(r32(&u, reg::FR) & fr::RXFE, 0);
        for off in [0x008, 0x01c, 0x04c, 0x100, 0xffc + 4, 0xfdc] {
            w32(&u, off, 0xdead_beef);
            assert_eq!(r32(&u, off), 0, "{off:#x}");
        }
        assert_eq!(r32(&u, reg::ICR), 0, "ICR is write-only");
        let mut odd = [0xffu8; 3];
        u.read(0, reg::CR, &mut odd);
        assert_eq!(odd, [0; 3], "sizes other than 1, 2, 4, 8 read zero");
        u.write(0, reg::CR, &[0, 0, 0]);
        assert_eq!(r32(&u, reg::CR), 0x300, "and do not write");
    }

    #[test]
    fn eight_byte_accesses() {
        let u = uart();
        let mut d = [0xffu8; 8];
        u.read(0, reg::CR, &mut d);
        assert_eq!(u64::from_le_bytes(d), 0x300);
        u.write(0, reg::CR, &0xffff_ffff_0000_0301u64.to_le_bytes());
        assert_eq!(r32(&u, reg::CR), 0x301);
        assert_eq!(r32(&u, reg::IFLS), 0x12, "the next register is untouched");
    }

    #[test]
    fn receive_interrupt() {
        let u = uart();
        u.enqueue_input(b"a");
        assert_eq!(r32(&u, reg::RIS), int::RX);
        assert_eq!(r32(&u, reg::MIS), 0, "masked");
        assert!(!line(&u));
        w32(&u, reg::IMSC, int::RX | int::RT);
        assert_eq!(r32(&u, reg::MIS), int::RX);
        assert!(line(&u), "unmasking raises the line");
        r32(&u, reg::DR);
        assert_eq!(r32(&u, reg::RIS), 0, "draining the FIFO clears RXIS");
        assert!(!line(&u));
        u.enqueue_input(b"bc");
        assert!(line(&u));
        w32(&u, reg::ICR, int::RX);
        assert_eq!(r32(&u, reg::RIS), 0, "ICR clears");
        assert!(!line(&u));
        assert_eq!(r32(&u, reg::FR) & fr::RXFE, 0, "the data is still there");
        u.enqueue_input(b"d");
        assert!(line(&u), "new data raises it again");
    }

    #[test]
    fn transmit_interrupt() {
        let u = uart();
        assert_eq!(r32(&u, reg::RIS), 0, "not raised at reset, as on the hardware");
        w32(&u, reg::DR, b'x' as u32);
        assert_eq!(r32(&u, reg::RIS), int::TX, "idle again after a byte");
        assert!(!line(&u));
        w32(&u, reg::IMSC, int::TX);
        assert!(line(&u));
        assert_eq!(r32(&u, reg::MIS), int::TX);
        w32(&u, reg::ICR, int::ALL);
        assert_eq!(r32(&u, reg::RIS), 0);
        assert!(!line(&u));
        w32(&u, reg::DR, b'y' as u32);
        assert!(line(&u));
        w32(&u, reg::IMSC, 0);
        assert!(!line(&u), "masking lowers the line");
        assert_eq!(r32(&u, reg::RIS), int::TX, "but RIS keeps it");
    }

    #[test]
    fn console_waits_for_the_guest_to_read() {
        let u = std::sync::Arc::new(uart());
        assert_eq!(u.push(&[b'x'; RX_FIFO_LEN]), RX_FIFO_LEN);
        let guest = u.clone();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            r32(&guest, reg::DR)
        });
        u.wait_for_room();
        assert_eq!(reader.join().unwrap(), b'x' as u32);
        assert_eq!(u.push(b"yz"), 1);
    }

    /// Output of several vCPUs at once: every byte out once, each vCPU's
    /// in its order; byte-lane writes to one register from two vCPUs both
    /// land (no read-modify-write lost).
    #[test]
    fn vcpus_write_at_once_without_tearing() {
        let u = std::sync::Arc::new(uart());
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let u = u.clone();
                std::thread::spawn(move || {
                    for i in 0..500u32 {
                        w32(&u, reg::DR, (b'a' + t) as u32);
                        // Lane t of IBRD/CR, 16-bit registers: lanes 0 and 1.
                        let r = if t < 2 { reg::IBRD } else { reg::CR };
                        u.write(0, r + (t as u64 & 1), &[(i as u8) | 1]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let out = output(&u);
        assert_eq!(out.len(), 2000);
        for t in 0..4u8 {
            assert_eq!(out.iter().filter(|&&b| b == b'a' + t).count(), 500);
        }
        // The last writes of each thread: 499 | 1 = 0xf3.
        assert_eq!(r32(&u, reg::IBRD), 0xf3f3);
        assert_eq!(r32(&u, reg::CR), 0xf3f3);
    }

    #[test]
    fn line_changes_only_on_edges() {
        let u = uart();
        w32(&u, reg::IMSC, int::RX);
        u.enqueue_input(b"a");
        u.enqueue_input(b"b");
        r32(&u, reg::FR);
        assert_eq!(u.irq().changes.load(Ordering::SeqCst), 1);
        r32(&u, reg::DR);
        r32(&u, reg::DR);
        assert_eq!(u.irq().changes.load(Ordering::SeqCst), 2);
        assert!(!line(&u));
    }
}
