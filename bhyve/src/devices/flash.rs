//! The CFI flash of QEMU's `virt` board: two banks of 64 MiB at `0x0` and
//! `0x0400_0000`, each two x16 chips side by side on a 32-bit bus, with
//! the Intel/Sharp command set (CFI primary command set 1) that EDK2's
//! NOR flash driver, U-Boot's CFI driver and Linux's `cfi_cmdset_0001` use.
//! Bank 0 holds the firmware and is read-only; bank 1 is the firmware's
//! variable store.
//!
//! In read-array mode a bank is guest memory mapped read-only in stage 2:
//! reads and instruction fetches cost no exit, and each write exits to
//! here (the kernel reports writes to read-only memory as MMIO). A write
//! that starts a command puts the bank in command mode, which unmaps it
//! from stage 2 ([`Mapper`]), so that every access exits and reads return
//! the status register, the identifier or the CFI query table; going back
//! to read-array mode maps it again. bhyve changes a bank's contents
//! (program, erase) through its own mapping of the segment ([`Array`]),
//! never through the guest's, and the kernel makes the pages coherent
//! again when the guest faults them back in.
//!
//! Commands (the first write of a sequence; a chip takes its low byte):
//!
//! | cmd | what | next write |
//! | --- | --- | --- |
//! | `0xff`, `0xf0`, `0x00` | read array | |
//! | `0x70` | read status | |
//! | `0x50` | clear status, then read array | |
//! | `0x90` | read identifier (manufacturer, device, block lock status) | |
//! | `0x98` | CFI query | |
//! | `0x40`, `0x10` | program | the data |
//! | `0x20` | block erase | `0xd0` confirm |
//! | `0xe8` | buffered program | count - 1, that many data words, `0xd0` |
//! | `0x60` | block lock setup | `0x01` lock, `0xd0` unlock, `0x2f` lock-down |
//!
//! Programming clears bits only, as NOR flash does (new = old AND data);
//! erasing sets a 256 KiB block to `0xff`. Every operation completes at
//! once: the status register reads ready (bit 7) with the error bits the
//! operation earned (4 program, 5 erase, both for a bad sequence, 1 for a
//! locked or read-only block). On bank 1 a completed program or erase is
//! written to the variable store's file ([`Store`]) and flushed
//! (`fdatasync`) before the guest can read its status: what the guest saw
//! complete survives a crash of bhyve or of the host. Bank 0 answers every
//! command but programs and erases nothing (error bits), as QEMU's
//! read-only flash does, so drivers that probe both banks find both.
//! Blocks start unlocked (as on QEMU); locking is kept and obeyed.

use crate::bus::BusDevice;
use std::sync::Mutex;

/// Bytes in a bank.
pub const BANK_SIZE: u64 = 64 << 20;
/// Bytes in an erase block of a bank (two chips' 128 KiB blocks side by side).
pub const BLOCK_SIZE: u64 = 256 << 10;
/// The bus width of a bank, in bytes (the device tree's `bank-width`).
pub const BANK_WIDTH: u64 = 4;
/// Chips side by side in a bank, each 16 bits wide.
const CHIPS: u64 = 2;
/// Bytes a buffered program may write at most: 2 KiB per chip.
const WRITE_BUFFER: u64 = 2048 * CHIPS;

/// Status register bits.
mod sr {
    /// The write state machine is ready.
    pub const READY: u8 = 0x80;
    /// Erase failed (with [`PROGRAM`]: a bad command sequence).
    pub const ERASE: u8 = 0x20;
    /// Program failed.
    pub const PROGRAM: u8 = 0x10;
    /// The block is locked (or the bank read-only).
    pub const LOCKED: u8 = 0x02;
}

/// The identifier mode's answers: Intel's manufacturer code, and the device
/// code QEMU's `virt` flash gives.
const MANUFACTURER: u16 = 0x89;
const DEVICE: u16 = 0x18;

/// The CFI query table of one chip, by word address.
fn query(q: u64) -> u16 {
    let blocks = BANK_SIZE / BLOCK_SIZE - 1;
    let block_256 = BLOCK_SIZE / CHIPS / 256;
    let table: [u8; 0x44] = [
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0, //
        b'Q',
        b'R',
        b'Y', // 0x10: the CFI signature
        0x01,
        0x00, // 0x13: primary command set: Intel/Sharp extended
        0x31,
        0x00, // 0x15: its extended table's address
        0x00,
        0x00,
        0x00,
        0x00, // 0x17: no alternate command set
        0x17,
        0x20,
        0x00,
        0x00, // 0x1b: Vcc 1.7 to 2.0 V, no Vpp
        0x08,
        0x09,
        0x0a,
        0x00, // 0x1f: typical timeouts: word 256 us, buffer 512 us, block 1 s, no chip erase
        0x01,
        0x01,
        0x02,
        0x00, // 0x23: the maxima, as multiples
        25,   // 0x27: 32 MiB per chip
        0x01,
        0x00, // 0x28: x16 interface
        11,
        0x00, // 0x2a: 2 KiB write buffer
        0x01, // 0x2c: one region of uniform blocks
        blocks as u8,
        (blocks >> 8) as u8,
        block_256 as u8,
        (block_256 >> 8) as u8, // 0x2d
        b'P',
        b'R',
        b'I',
        b'1',
        b'0', // 0x31: extended table version 1.0
        0x00,
        0x00,
        0x00,
        0x00, // 0x36: optional features: none
        0x00, // 0x3a: nothing after suspend
        0x01,
        0x00, // 0x3b: block status: the lock bit
        0x18,
        0x00, // 0x3d: Vcc 1.8 V optimum, no Vpp
        0x01,
        0x80,
        0x00,
        0x03,
        0x03, // 0x3f: one protection register
    ];
    table.get(q as usize).map_or(0, |&b| b as u16)
}

/// A bank's bytes as the guest reads them: bhyve's mapping of its memory
/// segment (or a buffer in tests).
pub trait Array: Send + Sync {
    /// Fills `buf` from `offset`.
    fn read(&self, offset: u64, buf: &mut [u8]);
    /// Writes `data` at `offset`.
    fn write(&self, offset: u64, data: &[u8]);
}

/// Where a bank's writes are kept: the variable store's file.
pub trait Store: Send {
    /// Writes `data` at `offset` and flushes it to stable storage.
    fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()>;
}

/// Maps a bank in stage 2 (read-array mode) or unmaps it (command mode).
pub trait Mapper: Send + Sync {
    /// Maps bank `bank` for the guest (`true`) or unmaps it.
    fn set_mapped(&self, bank: usize, mapped: bool) -> Result<(), String>;
}

/// What reads of a bank return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The array (the bank is mapped; reads come here only when emulated).
    Array,
    /// The status register.
    Status,
    /// Identifier codes.
    Id,
    /// The CFI query table.
    Query,
}

/// What the next write is taken as.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Next {
    /// A command.
    Command,
    /// Data to program.
    Program,
    /// The erase confirm, for the block at this offset.
    Erase(u64),
    /// A lock command for the block at this offset.
    Lock(u64),
    /// The word count of a buffered program into the block at this offset.
    Count(u64),
    /// Data words (`left` of them) of a buffered program into `block`.
    Buffer { block: u64, left: u64, data: Vec<(u64, Vec<u8>)> },
    /// The confirm of a buffered program.
    Confirm(Vec<(u64, Vec<u8>)>),
}

/// One bank's state.
struct Bank {
    array: Box<dyn Array>,
    store: Option<Box<dyn Store>>,
    read_only: bool,
    mode: Mode,
    next: Next,
    status: u8,
    /// A lock bit per block.
    locked: Vec<bool>,
    /// Whether the guest has it mapped now.
    mapped: bool,
}

/// The two banks, at `0x0` (the firmware, read-only) and `0x0400_0000`
/// (the variables), as one device on the bus.
pub struct Flash {
    banks: [Mutex<Bank>; 2],
    mapper: Box<dyn Mapper>,
}

/// One of the flash's banks, as [`Flash::new`] takes it.
pub struct BankSpec {
    /// Its bytes.
    pub array: Box<dyn Array>,
    /// Where writes are kept (bank 1 with a variable store file), if anywhere.
    pub store: Option<Box<dyn Store>>,
    /// Programs and erases fail (bank 0).
    pub read_only: bool,
}

impl Flash {
    /// The flash with its two banks, both in read-array mode (and mapped).
    pub fn new(banks: [BankSpec; 2], mapper: Box<dyn Mapper>) -> Self {
        let banks = banks.map(|b| {
            Mutex::new(Bank {
                array: b.array,
                store: b.store,
                read_only: b.read_only,
                mode: Mode::Array,
                next: Next::Command,
                status: sr::READY,
                locked: vec![false; (BANK_SIZE / BLOCK_SIZE) as usize],
                mapped: true,
            })
        });
        Self { banks, mapper }
    }

    /// The bank of an access of `len` bytes at a device offset, and the
    /// offset in it; `None` for one that crosses from one bank into the other.
    fn bank(&self, offset: u64, len: usize) -> Option<(usize, u64)> {
        let n = (offset / BANK_SIZE) as usize;
        let off = offset % BANK_SIZE;
        (n < 2 && off + len as u64 <= BANK_SIZE).then_some((n, off))
    }
}

impl Bank {
    /// The 16-bit value each chip puts on the bus for word `word` (the
    /// byte offset divided by the bank width) in the current mode.
    fn chip_value(&self, word: u64) -> u16 {
        match self.mode {
            Mode::Array => 0,
            Mode::Status => self.status as u16,
            Mode::Id => match word & 0xff {
                0 => MANUFACTURER,
                1 => DEVICE,
                // Block lock status, at word 2 of each block.
                2 => (self.read_only || self.block_locked(word * BANK_WIDTH)) as u16,
                _ => 0,
            },
            Mode::Query => query(word),
        }
    }

    fn block_locked(&self, offset: u64) -> bool {
        self.locked.get((offset / BLOCK_SIZE) as usize).copied().unwrap_or(false)
    }

    fn read(&self, offset: u64, data: &mut [u8]) {
        if self.mode == Mode::Array {
            self.array.read(offset, data);
            return;
        }
        for (i, d) in data.iter_mut().enumerate() {
            let at = offset + i as u64;
            // Each chip drives two bytes of the 4-byte bus, low byte first.
            let v = self.chip_value(at / BANK_WIDTH);
            *d = (v >> (8 * (at % 2))) as u8;
        }
    }

    /// Finishes an operation: ready, with `errors`.
    fn done(&mut self, errors: u8) {
        self.status |= sr::READY | errors;
        self.mode = Mode::Status;
        self.next = Next::Command;
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let cmd = data.first().copied().unwrap_or(0);
        let block = offset - offset % BLOCK_SIZE;
        match std::mem::replace(&mut self.next, Next::Command) {
            Next::Command => self.command(cmd, block),
            Next::Program => {
                let e = self.program(&[(offset, data.to_vec())]);
                self.done(e);
            }
            Next::Erase(b) if cmd == 0xd0 => {
                let e = self.erase(b);
                self.done(e);
            }
            Next::Lock(b) => match cmd {
                0x01 | 0x2f => {
                    self.locked[(b / BLOCK_SIZE) as usize] = true;
                    self.done(0);
                }
                0xd0 => {
                    self.locked[(b / BLOCK_SIZE) as usize] = false;
                    self.done(0);
                }
                _ => self.done(sr::PROGRAM | sr::ERASE),
            },
            Next::Count(b) => {
                // Each chip takes its own count; they are the same.
                let words = u16::from_le_bytes([cmd, data.get(1).copied().unwrap_or(0)]) as u64 + 1;
                if words * BANK_WIDTH > WRITE_BUFFER {
                    self.done(sr::PROGRAM | sr::ERASE);
                } else {
                    self.mode = Mode::Status;
                    self.next = Next::Buffer { block: b, left: words, data: vec![] };
                }
            }
            Next::Buffer { block: b, left, data: mut words } => {
                if block != b {
                    // Outside the block the command named: aborted, nothing written.
                    self.done(sr::PROGRAM);
                    return;
                }
                words.push((offset, data.to_vec()));
                let left = left.saturating_sub((data.len() as u64 / BANK_WIDTH).max(1));
                self.next = if left == 0 { Next::Confirm(words) } else { Next::Buffer { block: b, left, data: words } };
            }
            Next::Confirm(data) if cmd == 0xd0 => {
                let e = self.program(&data);
                self.done(e);
            }
            // A second cycle that is not the one the command needs.
            Next::Erase(_) | Next::Confirm(_) => self.done(sr::PROGRAM | sr::ERASE),
        }
    }

    /// The first write of a sequence.
    fn command(&mut self, cmd: u8, block: u64) {
        match cmd {
            0xff | 0xf0 | 0x00 => self.mode = Mode::Array,
            0x70 => self.mode = Mode::Status,
            0x50 => {
                self.status = sr::READY;
                self.mode = Mode::Array;
            }
            0x90 => self.mode = Mode::Id,
            0x98 => self.mode = Mode::Query,
            0x40 | 0x10 => {
                self.mode = Mode::Status;
                self.next = Next::Program;
            }
            0x20 => {
                self.mode = Mode::Status;
                self.next = Next::Erase(block);
            }
            0x60 => {
                self.mode = Mode::Status;
                self.next = Next::Lock(block);
            }
            0xe8 => {
                // The buffer is free at once: status reads ready.
                self.status |= sr::READY;
                self.mode = Mode::Status;
                self.next = Next::Count(block);
            }
            // Unknown: taken as a return to read-array mode, as QEMU does.
            _ => self.mode = Mode::Array,
        }
    }

    /// Programs `writes` (offset, bytes): bits are only cleared. Returns
    /// the status error bits.
    fn program(&mut self, writes: &[(u64, Vec<u8>)]) -> u8 {
        if self.read_only || writes.iter().any(|(o, _)| self.block_locked(*o)) {
            return sr::PROGRAM | sr::LOCKED;
        }
        let mut programmed = vec![];
        for (offset, data) in writes {
            if offset + data.len() as u64 > BANK_SIZE {
                return sr::PROGRAM;
            }
            let mut old = vec![0; data.len()];
            self.array.read(*offset, &mut old);
            let new: Vec<u8> = old.iter().zip(data).map(|(o, d)| o & d).collect();
            programmed.push((*offset, new));
        }
        self.commit(&programmed, sr::PROGRAM)
    }

    /// Erases the block at `block`. Returns the status error bits.
    fn erase(&mut self, block: u64) -> u8 {
        if self.read_only || self.block_locked(block) {
            return sr::ERASE | sr::LOCKED;
        }
        self.commit(&[(block, vec![0xff; BLOCK_SIZE as usize])], sr::ERASE)
    }

    /// Writes `changes` to the store (flushed), then to the array the guest
    /// reads; if the store fails, neither changes and `error` is returned.
    fn commit(&mut self, changes: &[(u64, Vec<u8>)], error: u8) -> u8 {
        if let Some(store) = self.store.as_mut() {
            for (offset, data) in changes {
                if let Err(e) = store.write(*offset, data) {
                    eprintln!("bhyve: flash: cannot write the variable store at {offset:#x}: {e}");
                    return error;
                }
            }
        }
        for (offset, data) in changes {
            self.array.write(*offset, data);
        }
        0
    }
}

impl Flash {
    /// Maps or unmaps `bank` for the guest to match its mode.
    fn sync_mapping(&self, n: usize, bank: &mut Bank) {
        let want = bank.mode == Mode::Array && bank.next == Next::Command;
        if want != bank.mapped {
            match self.mapper.set_mapped(n, want) {
                Ok(()) => bank.mapped = want,
                Err(e) => eprintln!("bhyve: flash bank {n}: {e}"),
            }
        }
    }
}

impl BusDevice for Flash {
    fn read(&self, _base: u64, offset: u64, data: &mut [u8]) {
        match self.bank(offset, data.len()) {
            Some((n, off)) => self.banks[n].lock().unwrap_or_else(|p| p.into_inner()).read(off, data),
            None => data.fill(0),
        }
    }

    fn write(&self, _base: u64, offset: u64, data: &[u8]) {
        let Some((n, off)) = self.bank(offset, data.len()) else { return };
        let mut bank = self.banks[n].lock().unwrap_or_else(|p| p.into_inner());
        bank.write(off, data);
        self.sync_mapping(n, &mut bank);
    }
}

#[cfg(test)]
mod tests;
