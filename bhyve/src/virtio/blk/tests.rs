//! Requests against a disk in memory (and a temporary file), through a
//! real ring.

use super::backend::{FileBackend, MemBackend, OpenFlags};
use super::*;
use crate::virtio::testring::{TestRing, DATA};
use crate::virtio::worker::drain_queue;
use std::io::Write;

const HDR: u64 = DATA;
const BUF: u64 = DATA + 0x1000;
const STATUS: u64 = DATA + 0x100;

fn work(backend: Arc<dyn Backend>, read_only: bool) -> Work {
    Work { backend, read_only, discard: true, write_zeroes: true, may_unmap: true, id: *b"DISK-SERIAL-01234567" }
}

/// Sends one request (header, data readable or writable) and returns
/// (status byte, used length).
fn request(w: &mut Work, kind: u32, sector: u64, data: Option<(u32, bool)>, pre: &[u8]) -> (u8, u32) {
    let mut r = TestRing::new(16);
    let mut hdr = [0u8; 16];
    hdr[0..4].copy_from_slice(&kind.to_le_bytes());
    hdr[8..16].copy_from_slice(&sector.to_le_bytes());
    r.put(HDR, &hdr);
    r.put(BUF, pre);
    r.put(STATUS, &[0xff]);
    let mut bufs = vec![(HDR, 16, false)];
    if let Some((len, write)) = data {
        bufs.push((BUF, len, write));
    }
    bufs.push((STATUS, 1, true));
    let h = r.chain(&bufs);
    r.publish(h);
    let mut q = r.queue(false);
    assert!(drain_queue(w, 0, &mut q, &r.mem).unwrap());
    let (id, len) = r.used_elem(0);
    assert_eq!(id, h as u32);
    LAST.with(|l| *l.borrow_mut() = r.get(BUF, data.map_or(0, |d| d.0 as usize)));
    (r.get(STATUS, 1)[0], len)
}

thread_local! {
    static LAST: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(vec![]) };
}

fn last_buf() -> Vec<u8> {
    LAST.with(|l| l.borrow().clone())
}

fn mem_disk(sectors: usize) -> Arc<MemBackend> {
    Arc::new(MemBackend::new(sectors * 512))
}

#[test]
fn read_write_flush_get_id() {
    let disk = mem_disk(64);
    let mut w = work(disk.clone(), false);
    let data: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(request(&mut w, VIRTIO_BLK_T_OUT, 3, Some((1024, false)), &data), (0, 1));
    assert_eq!(&disk.bytes.lock().unwrap()[3 * 512..5 * 512], &data[..]);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_IN, 3, Some((1024, true)), &[]), (0, 1025));
    assert_eq!(last_buf(), data);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_FLUSH, 0, None, &[]), (0, 1));
    assert_eq!(*disk.flushes.lock().unwrap(), 1);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_GET_ID, 0, Some((20, true)), &[]), (0, 21));
    assert_eq!(last_buf(), b"DISK-SERIAL-01234567");
    assert_eq!(request(&mut w, 99, 0, None, &[]), (VIRTIO_BLK_S_UNSUPP as u8, 1));
}

#[test]
fn bad_sectors_and_lengths_are_ioerr() {
    let mut w = work(mem_disk(8), false);
    let ioerr = VIRTIO_BLK_S_IOERR as u8;
    assert_eq!(request(&mut w, VIRTIO_BLK_T_IN, 7, Some((1024, true)), &[]).0, ioerr, "past the end");
    assert_eq!(request(&mut w, VIRTIO_BLK_T_IN, 8, Some((512, true)), &[]).0, ioerr);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_IN, u64::MAX / 256, Some((512, true)), &[]).0, ioerr, "overflow");
    assert_eq!(request(&mut w, VIRTIO_BLK_T_OUT, 0, Some((100, false)), &[]).0, ioerr, "not whole sectors");
    assert_eq!(request(&mut w, VIRTIO_BLK_T_IN, 7, Some((512, true)), &[]).0, 0, "the last sector");
}

#[test]
fn read_only_refuses_writes() {
    let disk = mem_disk(8);
    let mut w = work(disk.clone(), true);
    w.discard = false;
    w.write_zeroes = false;
    assert_eq!(request(&mut w, VIRTIO_BLK_T_OUT, 0, Some((512, false)), &[1; 512]), (VIRTIO_BLK_S_IOERR as u8, 1));
    assert!(disk.bytes.lock().unwrap().iter().all(|&b| b == 0), "nothing written");
    let seg = [0u8; 16];
    assert_eq!(request(&mut w, VIRTIO_BLK_T_DISCARD, 0, Some((16, false)), &seg).0, VIRTIO_BLK_S_UNSUPP as u8);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_IN, 0, Some((512, true)), &[]).0, 0, "reads work");
}

fn range_seg(sector: u64, count: u32, flags: u32) -> Vec<u8> {
    [&sector.to_le_bytes()[..], &count.to_le_bytes(), &flags.to_le_bytes()].concat()
}

#[test]
fn discard_and_write_zeroes() {
    let disk = mem_disk(16);
    disk.bytes.lock().unwrap().fill(0xaa);
    let mut w = work(disk.clone(), false);
    let segs = [range_seg(2, 2, 0), range_seg(10, 1, 0)].concat();
    assert_eq!(request(&mut w, VIRTIO_BLK_T_DISCARD, 0, Some((32, false)), &segs), (0, 1));
    let b = disk.bytes.lock().unwrap().clone();
    assert!(b[1024..2048].iter().all(|&x| x == 0) && b[5120..5632].iter().all(|&x| x == 0));
    assert!(b[..1024].iter().all(|&x| x == 0xaa) && b[2048..5120].iter().all(|&x| x == 0xaa));
    let z = range_seg(0, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_WRITE_ZEROES, 0, Some((16, false)), &z), (0, 1));
    assert!(disk.bytes.lock().unwrap()[..512].iter().all(|&x| x == 0));
    let unsupp = VIRTIO_BLK_S_UNSUPP as u8;
    assert_eq!(request(&mut w, VIRTIO_BLK_T_DISCARD, 0, Some((16, false)), &z).0, unsupp, "discard has no unmap flag");
    assert_eq!(request(&mut w, VIRTIO_BLK_T_DISCARD, 0, Some((8, false)), &z).0, unsupp, "half a segment");
    let past = range_seg(15, 2, 0);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_DISCARD, 0, Some((16, false)), &past).0, VIRTIO_BLK_S_IOERR as u8);
    w.discard = false;
    assert_eq!(request(&mut w, VIRTIO_BLK_T_DISCARD, 0, Some((16, false)), &segs[..16]).0, unsupp, "not offered");
}

#[test]
fn host_errors_are_ioerr() {
    let mut failing = MemBackend::new(8 * 512);
    failing.fail = true;
    let mut w = work(Arc::new(failing), false);
    let ioerr = VIRTIO_BLK_S_IOERR as u8;
    assert_eq!(request(&mut w, VIRTIO_BLK_T_IN, 0, Some((512, true)), &[]).0, ioerr);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_OUT, 0, Some((512, false)), &[0; 512]).0, ioerr);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_FLUSH, 0, None, &[]).0, ioerr);
}

#[test]
fn malformed_requests_break_the_device() {
    let mut w = work(mem_disk(8), false);
    // No status byte: nothing writable.
    let mut r = TestRing::new(16);
    let h = r.chain(&[(HDR, 16, false)]);
    r.publish(h);
    let mut q = r.queue(false);
    assert!(matches!(drain_queue(&mut w, 0, &mut q, &r.mem), Err(QueueError::Malformed { .. })));
    // A header of 8 bytes.
    let mut r = TestRing::new(16);
    let h = r.chain(&[(HDR, 8, false), (STATUS, 1, true)]);
    r.publish(h);
    let mut q = r.queue(false);
    assert!(matches!(drain_queue(&mut w, 0, &mut q, &r.mem), Err(QueueError::Malformed { .. })));
    // An available index far ahead of the ring.
    let r = TestRing::new(16);
    r.set_avail_idx(100);
    let mut q = r.queue(false);
    assert!(matches!(drain_queue(&mut w, 0, &mut q, &r.mem), Err(QueueError::Ring { .. })));
}

#[test]
fn a_file_disk() {
    let path = std::env::temp_dir().join(format!("bhyve-blk-test-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&vec![0x11; 8192]).unwrap();
    drop(f);
    let disk = Arc::new(FileBackend::open(&path, OpenFlags::default()).unwrap());
    assert_eq!(disk.size(), 8192);
    let mut w = work(disk, false);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_OUT, 1, Some((1024, false)), &[0x22; 1024]).0, 0);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_FLUSH, 0, None, &[]).0, 0);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_IN, 0, Some((2048, true)), &[]).0, 0);
    let b = last_buf();
    assert!(b[..512].iter().all(|&x| x == 0x11) && b[512..1536].iter().all(|&x| x == 0x22));
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[512..1536].iter().all(|&x| x == 0x22), "the file has it");
    let seg = range_seg(8, 8, 0);
    assert_eq!(request(&mut w, VIRTIO_BLK_T_DISCARD, 0, Some((16, false)), &seg).0, 0);
    assert!(std::fs::read(&path).unwrap()[4096..].iter().all(|&x| x == 0), "a punched hole reads as zero");
    let ro = Arc::new(FileBackend::open(&path, OpenFlags { read_only: true, ..Default::default() }).unwrap());
    assert_eq!(ro.size(), 8192);
    std::fs::remove_file(&path).unwrap();
    assert!(FileBackend::open(&path, OpenFlags::default()).is_err());
}

#[test]
fn config_space_and_features() {
    let opts = BlkOptions {
        path: "/x".into(),
        sectorsize: SectorSize { logical: 4096, physical: 16384 },
        ..Default::default()
    };
    let b = Blk::new(mem_disk(2048), &opts);
    let mut c = [0u8; 8];
    b.read_config(0, &mut c);
    assert_eq!(u64::from_le_bytes(c), 2048, "capacity in 512-byte sectors");
    let mut c = [0u8; 4];
    b.read_config(20, &mut c);
    assert_eq!(u32::from_le_bytes(c), 4096, "blk_size");
    let mut e = [0u8; 1];
    b.read_config(24, &mut e);
    assert_eq!(e[0], 2, "physical_block_exp: 16384 = 4096 << 2");
    let bit = |f: u32| b.features() & (1 << f) != 0;
    assert!(
        bit(VIRTIO_BLK_F_FLUSH) && bit(VIRTIO_BLK_F_DISCARD) && bit(VIRTIO_BLK_F_BLK_SIZE) && !bit(VIRTIO_BLK_F_RO)
    );
    let ro = Blk::new(mem_disk(8), &BlkOptions { read_only: true, ..opts.clone() });
    assert!(ro.features() & (1 << VIRTIO_BLK_F_RO) != 0 && ro.features() & (1 << VIRTIO_BLK_F_DISCARD) == 0);
    let nd = Blk::new(mem_disk(8), &BlkOptions { nodelete: true, ..opts });
    assert!(nd.features() & (1 << VIRTIO_BLK_F_DISCARD) == 0);
    let mut big = [0xffu8; 8];
    nd.read_config(0x1000, &mut big);
    assert_eq!(big, [0; 8], "past the end reads as zero");
}

#[test]
fn default_serial_is_stable_and_20_bytes() {
    let a = default_serial(Path::new("/var/disk.img"));
    assert_eq!(a, default_serial(Path::new("/var/disk.img")));
    assert_ne!(a, default_serial(Path::new("/var/disk2.img")));
    assert_eq!(a.len(), 20);
    assert!(a.starts_with("BHYVE-"));
}

#[test]
fn sector_sizes() {
    assert_eq!(SectorSize::parse("4096").unwrap(), SectorSize { logical: 4096, physical: 4096 });
    assert_eq!(SectorSize::parse("512/4096").unwrap(), SectorSize { logical: 512, physical: 4096 });
    for bad in ["0", "511", "1000", "131072", "4096/512", "x", "512/"] {
        assert!(SectorSize::parse(bad).is_err(), "{bad}");
    }
}
