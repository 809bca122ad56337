//! The flash driven as EDK2's, U-Boot's and Linux's drivers drive it,
//! against buffers, a recording store and a recording mapper.

use super::*;
use std::sync::Arc;

/// A bank's bytes in a buffer.
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Array for Buf {
    fn read(&self, offset: u64, buf: &mut [u8]) {
        let v = self.0.lock().unwrap();
        buf.copy_from_slice(&v[offset as usize..offset as usize + buf.len()]);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        self.0.lock().unwrap()[offset as usize..offset as usize + data.len()].copy_from_slice(data);
    }
}

/// Writes that reached the store: offset and bytes.
type Writes = Vec<(u64, Vec<u8>)>;

/// Records what reaches the store; fails when told to.
#[derive(Clone, Default)]
struct Rec {
    writes: Arc<Mutex<Writes>>,
    fail: Arc<Mutex<bool>>,
}

impl Store for Rec {
    fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if *self.fail.lock().unwrap() {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        self.writes.lock().unwrap().push((offset, data.to_vec()));
        Ok(())
    }
}

#[derive(Clone, Default)]
struct Maps(Arc<Mutex<Vec<(usize, bool)>>>);

impl Mapper for Maps {
    fn set_mapped(&self, bank: usize, mapped: bool) -> Result<(), String> {
        self.0.lock().unwrap().push((bank, mapped));
        Ok(())
    }
}

struct Rig {
    flash: Flash,
    banks: [Arc<Mutex<Vec<u8>>>; 2],
    store: Rec,
    maps: Maps,
}

const B1: u64 = BANK_SIZE;

impl Rig {
    fn new() -> Rig {
        let mut code = vec![0u8; BANK_SIZE as usize];
        code[..4096].iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
        let banks = [Arc::new(Mutex::new(code)), Arc::new(Mutex::new(vec![0xff; BANK_SIZE as usize]))];
        let store = Rec::default();
        let maps = Maps::default();
        let flash = Flash::new(
            [
                BankSpec { array: Box::new(Buf(banks[0].clone())), store: None, read_only: true },
                BankSpec {
                    array: Box::new(Buf(banks[1].clone())),
                    store: Some(Box::new(store.clone())),
                    read_only: false,
                },
            ],
            Box::new(maps.clone()),
        );
        Rig { flash, banks, store, maps }
    }

    fn w32(&self, offset: u64, v: u32) {
        self.flash.write(0, offset, &v.to_le_bytes());
    }

    /// A command as EDK2's SEND_NOR_COMMAND writes it: to both chips, at
    /// word `word` of the bank starting at `base`.
    fn cmd(&self, base: u64, word: u64, c: u16) {
        self.w32(base + word * 4, (c as u32) << 16 | c as u32);
    }

    fn r32(&self, offset: u64) -> u32 {
        let mut b = [0; 4];
        self.flash.read(0, offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn r8(&self, offset: u64) -> u8 {
        let mut b = [0; 1];
        self.flash.read(0, offset, &mut b);
        b[0]
    }

    fn bytes(&self, bank: usize, offset: u64, len: usize) -> Vec<u8> {
        self.banks[bank].lock().unwrap()[offset as usize..offset as usize + len].to_vec()
    }

    fn maps(&self) -> Vec<(usize, bool)> {
        std::mem::take(&mut *self.maps.0.lock().unwrap())
    }
}

#[test]
fn read_array_is_memory_and_stays_mapped() {
    let r = Rig::new();
    assert_eq!(r.r8(1000), (1000 % 251) as u8);
    assert_eq!(r.r32(B1 + 8), 0xffff_ffff);
    r.cmd(B1, 0, 0xff);
    r.cmd(0, 0, 0xf0);
    r.cmd(B1, 0, 0x50);
    assert!(r.maps().is_empty(), "no command mode, no unmapping");
}

#[test]
fn a_cfi_query_as_u_boot_probes_it() {
    let r = Rig::new();
    // U-Boot first tries x8 chips: 0x98 in every byte at 0x55 (scaled by 4).
    r.w32(B1 + 0x55 * 4, 0x9898_9898);
    assert_eq!(r.maps(), [(1, false)], "command mode: unmapped, every read exits");
    // Each x16 chip answers in its own half: not what x8 chips would.
    assert_eq!(r.r32(B1 + 0x10 * 4), 0x0051_0051);
    assert_ne!(r.r32(B1 + 0x10 * 4), 0x5151_5151);
    assert_eq!((r.r32(B1 + 0x11 * 4), r.r32(B1 + 0x12 * 4)), (0x0052_0052, 0x0059_0059), "QRY");
    assert_eq!(r.r8(B1 + 0x10 * 4 + 2), 0x51, "a byte of chip 1");
    assert_eq!(r.r32(B1 + 0x13 * 4), 0x0001_0001, "Intel/Sharp command set");
    assert_eq!(r.r32(B1 + 0x27 * 4), 0x0019_0019, "32 MiB per chip");
    assert_eq!(r.r32(B1 + 0x2a * 4), 0x000b_000b, "2 KiB write buffer per chip");
    // 256 blocks of 0x200 * 256 = 128 KiB per chip: 256 KiB blocks on the bus.
    let region: Vec<u32> = (0x2d..=0x30).map(|q| r.r32(B1 + q * 4) & 0xff).collect();
    assert_eq!(region, [0xff, 0x00, 0x00, 0x02]);
    assert_eq!((r.r32(B1 + 0x31 * 4), r.r32(B1 + 0x34 * 4)), (0x0050_0050, 0x0031_0031), "PRI 1.x");
    assert_eq!(r.r32(B1 + 0x400), 0, "past the table");
    r.cmd(B1, 0, 0xff);
    assert_eq!(r.maps(), [(1, true)], "read-array mode: mapped again");
    assert_eq!(r.r32(B1 + 0x40), 0xffff_ffff);
}

#[test]
fn identifier_and_block_lock_status() {
    let r = Rig::new();
    r.cmd(B1, 0, 0x90);
    assert_eq!((r.r32(B1), r.r32(B1 + 4)), (0x0089_0089, 0x0018_0018));
    assert_eq!(r.r32(B1 + BLOCK_SIZE + 8), 0, "unlocked");
    r.cmd(B1 + BLOCK_SIZE, 0, 0x60);
    r.cmd(B1 + BLOCK_SIZE, 0, 0x01);
    assert_eq!(r.r32(B1), 0x0080_0080, "status after the lock");
    r.cmd(B1, 0, 0x90);
    assert_eq!(r.r32(B1 + BLOCK_SIZE + 8), 0x0001_0001, "locked");
    assert_eq!(r.r32(B1 + 8), 0, "its neighbour is not");
    r.cmd(0, 0, 0x90);
    assert_eq!(r.r32(8), 0x0001_0001, "bank 0 reads as locked");
}

#[test]
fn a_word_program_clears_bits_and_is_stored_before_it_reads_done() {
    let r = Rig::new();
    let at = B1 + 0x1000;
    r.cmd(at, 0, 0x40);
    r.w32(at, 0x1234_5678);
    assert_eq!(r.r32(at), 0x0080_0080, "status: ready, no error");
    assert_eq!(*r.store.writes.lock().unwrap(), [(0x1000, vec![0x78, 0x56, 0x34, 0x12])]);
    r.cmd(B1, 0, 0xff);
    assert_eq!(r.r32(at), 0x1234_5678);
    // Programming cannot set bits: 0x1234_5678 & 0xffff_00ff.
    r.cmd(at, 0, 0x10);
    r.w32(at, 0xffff_00ff);
    r.cmd(B1, 0, 0xff);
    assert_eq!(r.r32(at), 0x1234_0078);
    assert_eq!(r.maps(), [(1, false), (1, true), (1, false), (1, true)]);
}

#[test]
fn a_block_erase_sets_one_block() {
    let r = Rig::new();
    r.banks[1].lock().unwrap()[..(2 * BLOCK_SIZE) as usize].fill(0);
    r.cmd(B1 + BLOCK_SIZE, 0, 0x20);
    r.cmd(B1 + BLOCK_SIZE, 0, 0xd0);
    assert_eq!(r.r32(B1), 0x0080_0080);
    assert_eq!(r.bytes(1, 0, 4), [0; 4], "the block before is untouched");
    assert!(r.bytes(1, BLOCK_SIZE, BLOCK_SIZE as usize).iter().all(|&b| b == 0xff));
    let w = r.store.writes.lock().unwrap().clone();
    assert_eq!((w.len(), w[0].0, w[0].1.len()), (1, BLOCK_SIZE, BLOCK_SIZE as usize));
    // A bad confirm: a sequence error, nothing erased; clear status clears it.
    r.cmd(B1, 0, 0x20);
    r.cmd(B1, 0, 0x55);
    assert_eq!(r.r32(B1), 0x00b0_00b0);
    assert_eq!(r.bytes(1, 0, 4), [0; 4]);
    r.cmd(B1, 0, 0x50);
    r.cmd(B1, 0, 0x70);
    assert_eq!(r.r32(B1), 0x0080_0080);
}

#[test]
fn a_buffered_program_as_edk2_writes_one() {
    let r = Rig::new();
    let at = B1 + 3 * BLOCK_SIZE + 0x80;
    // 0xe8 at the block, poll for a free buffer, the count (words - 1),
    // the words, the confirm, poll for completion.
    r.cmd(at, 0, 0xe8);
    assert_eq!(r.r32(at) & 0x0080_0080, 0x0080_0080);
    r.cmd(at, 0, 31);
    for i in 0..32u64 {
        assert!(r.store.writes.lock().unwrap().is_empty(), "nothing before the confirm");
        r.w32(at + i * 4, 0xa5a5_0000 | i as u32);
    }
    r.cmd(at, 0, 0xd0);
    assert_eq!(r.r32(at), 0x0080_0080);
    r.cmd(at, 0, 0xff);
    assert_eq!(r.r32(at + 31 * 4), 0xa5a5_001f);
    assert_eq!(r.store.writes.lock().unwrap().len(), 32);
    // Words outside the block abort it; so does a missing confirm.
    r.cmd(at, 0, 0xe8);
    r.cmd(at, 0, 0);
    r.w32(at + BLOCK_SIZE, 0);
    assert_eq!(r.r32(at) & 0xff, 0x90);
    r.cmd(at, 0, 0x50);
    r.cmd(at, 0, 0xe8);
    r.cmd(at, 0, 0);
    r.w32(at + 0x100, 0);
    r.cmd(at, 0, 0xff);
    assert_eq!(r.r32(at) & 0xff, 0xb0);
    r.cmd(at, 0, 0xff);
    assert_eq!(r.r32(at + 0x100), 0xffff_ffff, "nothing written");
    // More than the buffer holds is refused.
    r.cmd(at, 0, 0xe8);
    r.cmd(at, 0, 1024);
    assert_eq!(r.r32(at) & 0xff, 0xb0);
}

#[test]
fn locked_blocks_and_the_read_only_bank_refuse_writes() {
    let r = Rig::new();
    r.cmd(B1, 0, 0x60);
    r.cmd(B1, 0, 0x01);
    r.cmd(B1, 0, 0x40);
    r.w32(B1, 0);
    assert_eq!(r.r32(B1) & 0xff, 0x92);
    r.cmd(B1, 0, 0x20);
    r.cmd(B1, 0, 0xd0);
    assert_eq!(r.r32(B1) & 0xff, 0xb2);
    r.cmd(B1, 0, 0x50);
    r.cmd(B1, 0, 0x60);
    r.cmd(B1, 0, 0xd0);
    r.cmd(B1, 0, 0x40);
    r.w32(B1, 0);
    assert_eq!(r.r32(B1) & 0xff, 0x80, "unlocked: programmed");
    // Bank 0: every command answers, nothing changes.
    let before = r.bytes(0, 0, 8);
    r.cmd(0, 0, 0x40);
    r.w32(0, 0);
    assert_eq!(r.r32(0) & 0xff, 0x92);
    r.cmd(0, 0, 0x20);
    r.cmd(0, 0, 0xd0);
    assert_eq!(r.r32(0) & 0xff, 0xb2);
    r.cmd(0, 0, 0xe8);
    r.cmd(0, 0, 1);
    r.w32(0, 0);
    r.w32(4, 0);
    r.cmd(0, 0, 0xd0);
    r.cmd(0, 0, 0xff);
    assert_eq!(r.bytes(0, 0, 8), before);
    assert_eq!(r.store.writes.lock().unwrap().len(), 1, "only bank 1's one program");
}

#[test]
fn a_store_that_fails_changes_nothing_and_reports_it() {
    let r = Rig::new();
    *r.store.fail.lock().unwrap() = true;
    r.cmd(B1, 0, 0x40);
    r.w32(B1, 0);
    assert_eq!(r.r32(B1) & 0xff, 0x90);
    r.cmd(B1, 0, 0xff);
    assert_eq!(r.r32(B1), 0xffff_ffff, "the guest sees what the file has");
}
