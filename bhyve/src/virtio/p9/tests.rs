//! 9P sessions through a real ring against a temporary share: requests
//! gathered from several readable buffers, replies scattered over several
//! writable ones, as Linux's zero-copy requests lay them out.

use super::*;
use crate::virtio::testring::{TestRing, DATA};
use crate::virtio::worker::drain_queue;
use crate::virtio::{ActiveQueue, Interrupt};
use ::p9::wire::{msg, qt, Put, Reader};
use std::sync::Arc;
use vmm_sys_util::eventfd::EventFd;

const EPROTO: u32 = 71;
const EROFS: u32 = 30;
const ENOBUFS: u32 = 105;
const O_RDONLY: u32 = 0;
const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;
const O_CREAT: u32 = 0o100;
/// Where replies go, apart from the requests.
const REPLIES: u64 = DATA + 0x8_0000;
/// Room for each request and for each reply.
const STRIDE: u64 = 0x4000;

/// A 9P message: size, type, tag, body.
fn message(ty: u8, tag: u16, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.put_u32((7 + body.len()) as u32);
    m.put_u8(ty);
    m.put_u16(tag);
    m.extend_from_slice(body);
    m
}

fn version(tag: u16, msize: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u32(msize);
    b.put_str(b"9P2000.L").unwrap();
    message(msg::TVERSION, tag, &b)
}

fn attach(tag: u16, fid: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u32(fid);
    b.put_u32(::p9::wire::NOFID);
    b.put_str(b"root").unwrap();
    b.put_str(b"").unwrap();
    b.put_u32(0);
    message(msg::TATTACH, tag, &b)
}

fn walk(tag: u16, fid: u32, newfid: u32, names: &[&[u8]]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u32(fid);
    b.put_u32(newfid);
    b.put_u16(names.len() as u16);
    for n in names {
        b.put_str(n).unwrap();
    }
    message(msg::TWALK, tag, &b)
}

fn lopen(tag: u16, fid: u32, flags: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u32(fid);
    b.put_u32(flags);
    message(msg::TLOPEN, tag, &b)
}

fn lcreate(tag: u16, fid: u32, name: &[u8], flags: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u32(fid);
    b.put_str(name).unwrap();
    b.put_u32(flags);
    b.put_u32(0o644);
    b.put_u32(0);
    message(msg::TLCREATE, tag, &b)
}

fn read(tag: u16, fid: u32, offset: u64, count: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u32(fid);
    b.put_u64(offset);
    b.put_u32(count);
    message(msg::TREAD, tag, &b)
}

fn write(tag: u16, fid: u32, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u32(fid);
    b.put_u64(offset);
    b.put_u32(data.len() as u32);
    b.extend_from_slice(data);
    message(msg::TWRITE, tag, &b)
}

/// One request for the ring: its bytes, split into readable buffers at
/// `split` (if inside), and the lengths of its writable buffers.
struct Req {
    bytes: Vec<u8>,
    split: usize,
    reply: Vec<u32>,
}

fn req(bytes: Vec<u8>, reply: &[u32]) -> Req {
    // Two readable buffers: a 9P header can straddle them.
    let split = bytes.len() / 2;
    Req { bytes, split, reply: reply.to_vec() }
}

/// Puts `reqs` in a fresh ring (chain k's request at DATA + k * STRIDE, its
/// writable buffers one page apart from REPLIES + k * STRIDE).
fn load(reqs: &[Req]) -> (TestRing, Vec<u16>) {
    let mut r = TestRing::new(64);
    let mut heads = vec![];
    for (k, q) in reqs.iter().enumerate() {
        let at = DATA + k as u64 * STRIDE;
        r.put(at, &q.bytes);
        let mut bufs = vec![];
        let s = q.split.min(q.bytes.len());
        if s > 0 {
            bufs.push((at, s as u32, false));
        }
        if q.bytes.len() > s {
            bufs.push((at + s as u64 + 0x100, (q.bytes.len() - s) as u32, false));
            r.put(at + s as u64 + 0x100, &q.bytes[s..]);
        }
        for (i, &len) in q.reply.iter().enumerate() {
            let w = REPLIES + k as u64 * STRIDE + i as u64 * 0x1000;
            r.put(w, &vec![0xee; len as usize]);
            bufs.push((w, len, true));
        }
        let h = r.chain(&bufs);
        r.publish(h);
        heads.push(h);
    }
    (r, heads)
}

/// The reply of chain k: `used` bytes gathered from its writable buffers.
fn reply_of(r: &TestRing, k: usize, q: &Req, used: u32) -> Vec<u8> {
    let mut out = vec![];
    for (i, &len) in q.reply.iter().enumerate() {
        let take = (used as usize - out.len()).min(len as usize);
        out.extend(r.get(REPLIES + k as u64 * STRIDE + i as u64 * 0x1000, take));
    }
    out
}

/// Runs `reqs` through `w`; returns each reply, checked whole: its size
/// field is what the used ring says.
fn exchange(w: &mut Work, reqs: &[Req]) -> Vec<Vec<u8>> {
    let (r, heads) = load(reqs);
    let mut q = r.queue(false);
    assert!(drain_queue(w, 0, &mut q, &r.mem).unwrap());
    replies(&r, &heads, reqs)
}

fn replies(r: &TestRing, heads: &[u16], reqs: &[Req]) -> Vec<Vec<u8>> {
    assert_eq!(r.used_idx() as usize, reqs.len());
    (0..reqs.len())
        .map(|k| {
            let (id, used) = r.used_elem(k as u16);
            assert_eq!(id, heads[k] as u32);
            let rep = reply_of(r, k, &reqs[k], used);
            assert_eq!(u32::from_le_bytes(rep[0..4].try_into().unwrap()), used, "size field of reply {k}");
            rep
        })
        .collect()
}

/// (type, tag, body) of a reply.
fn parts(rep: &[u8]) -> (u8, u16, &[u8]) {
    (rep[4], u16::from_le_bytes([rep[5], rep[6]]), &rep[7..])
}

/// The errno of an Rlerror.
fn lerror(rep: &[u8]) -> Option<u32> {
    let (ty, _, body) = parts(rep);
    (ty == msg::RLERROR).then(|| u32::from_le_bytes(body[0..4].try_into().unwrap()))
}

fn share() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("hello.txt"), b"hello from the host\n").unwrap();
    d
}

fn opts(path: &Path, read_only: bool) -> P9Options {
    P9Options { sharename: "hostshare".into(), path: path.into(), read_only }
}

fn work_on(path: &Path, read_only: bool) -> Work {
    let mut d = Virtio9p::open(&opts(path, read_only)).unwrap();
    Work::new(d.fresh.take().unwrap())
}

#[test]
fn a_session_through_the_queue() {
    let dir = share();
    let mut w = work_on(dir.path(), false);
    let reps = exchange(
        &mut w,
        &[
            req(version(0xffff, 8192), &[512]),
            req(attach(1, 0), &[512]),
            req(walk(2, 0, 1, &[b"hello.txt"]), &[512]),
            req(lopen(3, 1, O_RDONLY), &[512]),
            // As Linux reads with zero copy: 11 bytes of header, then pages.
            req(read(4, 1, 0, 8192), &[11, 5, 4096]),
            req(read(5, 1, 6, 4), &[8192]),
        ],
    );
    let (ty, tag, body) = parts(&reps[0]);
    assert_eq!((ty, tag), (msg::TVERSION + 1, 0xffff));
    let mut r = Reader::new(body);
    assert_eq!((r.u32().unwrap(), r.str().unwrap()), (8192, &b"9P2000.L"[..]));
    let (ty, tag, body) = parts(&reps[1]);
    assert_eq!((ty, tag), (msg::TATTACH + 1, 1));
    assert_eq!(Reader::new(body).qid().unwrap().ty, qt::DIR);
    let (ty, _, body) = parts(&reps[2]);
    assert_eq!(ty, msg::TWALK + 1);
    let mut r = Reader::new(body);
    assert_eq!(r.u16().unwrap(), 1);
    assert_eq!(r.qid().unwrap().ty, qt::FILE);
    assert_eq!(parts(&reps[3]).0, msg::TLOPEN + 1);
    let (ty, tag, body) = parts(&reps[4]);
    assert_eq!((ty, tag), (msg::TREAD + 1, 4));
    // The reply only ever fills the room the chain gave (11 + 5 + 4096).
    let mut r = Reader::new(body);
    assert_eq!(r.u32().unwrap(), 20);
    assert_eq!(r.bytes(20).unwrap(), b"hello from the host\n");
    let mut r = Reader::new(parts(&reps[5]).2);
    assert_eq!((r.u32().unwrap(), r.bytes(4).unwrap()), (4, &b"from"[..]));

    // A write gathered from header and payload buffers reaches the host.
    let data = vec![b'g'; 3000];
    let reps = exchange(
        &mut w,
        &[
            req(walk(6, 0, 2, &[]), &[512]),
            req(lcreate(7, 2, b"from-guest", O_RDWR | O_CREAT), &[512]),
            Req { bytes: write(8, 2, 0, &data), split: 23, reply: vec![4096] },
        ],
    );
    assert_eq!(parts(&reps[1]).0, msg::TLCREATE + 1);
    assert_eq!(parts(&reps[2]).0, msg::TWRITE + 1);
    assert_eq!(Reader::new(parts(&reps[2]).2).u32().unwrap(), 3000);
    assert_eq!(std::fs::read(dir.path().join("from-guest")).unwrap(), data);
}

#[test]
fn config_space_holds_the_tag() {
    let dir = share();
    let d = Virtio9p::open(&opts(dir.path(), false)).unwrap();
    assert_eq!((d.device_type(), d.features(), d.queue_max_sizes()), (9, 1, &[QUEUE_SIZE][..]));
    let mut c = [0xffu8; 16];
    d.read_config(0, &mut c);
    assert_eq!(&c, b"\x09\x00hostshare\0\0\0\0\0");
    let mut one = [0u8; 1];
    d.read_config(2, &mut one);
    assert_eq!(one, [b'h']);
    d.read_config(300, &mut one);
    assert_eq!(one, [0]);

    let long = "t".repeat(MAX_TAG_LEN);
    let d = Virtio9p::open(&P9Options { sharename: long.clone(), ..opts(dir.path(), false) }).unwrap();
    let mut c = vec![0u8; 256];
    d.read_config(0, &mut c);
    assert_eq!(&c[..2], &(MAX_TAG_LEN as u16).to_le_bytes());
    assert_eq!(&c[2..], long.as_bytes());
    assert_eq!(check_tag(""), Err("the share name is empty".into()));
    assert_eq!(check_tag(&"t".repeat(255)), Err("the share name is 255 bytes long; at most 254 fit".into()));
    assert!(check_tag("a\0b").unwrap_err().contains("NUL"));
    assert!(Virtio9p::open(&P9Options { sharename: String::new(), ..opts(dir.path(), false) }).is_err());
}

#[test]
fn a_share_must_be_a_directory() {
    let dir = share();
    let e = Virtio9p::open(&opts(&dir.path().join("missing"), false)).err().unwrap();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    let e = Virtio9p::open(&opts(&dir.path().join("hello.txt"), false)).err().unwrap();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
}

#[test]
fn read_only_refuses_changes() {
    let dir = share();
    let mut w = work_on(dir.path(), true);
    let reps = exchange(
        &mut w,
        &[
            req(version(1, 8192), &[512]),
            req(attach(2, 0), &[512]),
            req(walk(3, 0, 1, &[]), &[512]),
            req(lcreate(4, 1, b"new", O_RDWR | O_CREAT), &[512]),
            req(walk(5, 0, 2, &[b"hello.txt"]), &[512]),
            req(lopen(6, 2, O_WRONLY), &[512]),
            req(lopen(7, 2, O_RDONLY), &[512]),
            req(read(8, 2, 0, 5), &[512]),
        ],
    );
    assert_eq!(lerror(&reps[3]), Some(EROFS));
    assert_eq!(lerror(&reps[5]), Some(EROFS));
    assert_eq!(parts(&reps[6]).0, msg::TLOPEN + 1);
    assert_eq!(&parts(&reps[7]).2[4..], b"hello");
    assert!(!dir.path().join("new").exists());
    assert_eq!(std::fs::read(dir.path().join("hello.txt")).unwrap(), b"hello from the host\n");
}

#[test]
fn bad_messages_are_answered_and_bad_chains_break_the_device() {
    let dir = share();
    let mut w = work_on(dir.path(), false);
    // After msize 4096, a message that says it is longer is cut at 4096.
    let mut long = write(3, 1, 0, &[0u8; 5000]);
    long.truncate(4500);
    let reps = exchange(
        &mut w,
        &[
            req(vec![1, 2, 3], &[512]),
            req(version(1, 4096), &[512]),
            req(long, &[512]),
            req(message(msg::TWALK, 4, &[1, 2]), &[512]),
            req(vec![], &[512]),
            req(attach(5, 0), &[512]),
        ],
    );
    assert_eq!((lerror(&reps[0]), parts(&reps[0]).1), (Some(EPROTO), 0xffff));
    assert_eq!(Reader::new(parts(&reps[1]).2).u32().unwrap(), 4096);
    assert_eq!((lerror(&reps[2]), parts(&reps[2]).1), (Some(EPROTO), 3));
    assert_eq!((lerror(&reps[3]), parts(&reps[3]).1), (Some(EPROTO), 4));
    assert_eq!(lerror(&reps[4]), Some(EPROTO));
    assert_eq!(parts(&reps[5]).0, msg::TATTACH + 1, "the session goes on");

    // Room for less than MIN_REPLY: answered with ENOBUFS; for less than
    // an Rlerror: the chain cannot be answered.
    let reps = exchange(&mut w, &[req(attach(6, 1), &[5, 6])]);
    assert_eq!((lerror(&reps[0]), parts(&reps[0]).1), (Some(ENOBUFS), 6));
    let (r, _) = load(&[req(attach(6, 1), &[6, 4])]);
    let mut q = r.queue(false);
    let e = drain_queue(&mut w, 0, &mut q, &r.mem).unwrap_err();
    assert!(matches!(e, QueueError::Malformed { what: "no room for a 9P reply", .. }), "{e:?}");
}

/// An activation of `d` on the chains of `reqs`; returns once its I/O
/// thread has served them and the device is reset again.
fn activate_and_reset(d: &mut Virtio9p, reqs: &[Req]) -> Vec<Vec<u8>> {
    let (r, heads) = load(reqs);
    let irq = Arc::new(Interrupt::new().unwrap());
    let queue = ActiveQueue { queue: r.queue(false), notify: EventFd::new(libc::EFD_NONBLOCK).unwrap() };
    d.activate(Activation { mem: r.mem.clone(), queues: vec![Some(queue)], interrupt: irq.clone(), features: 0 })
        .unwrap();
    // The I/O thread serves what is available before it waits for a
    // notification or a stop: after the reset the chains are done.
    d.reset();
    assert!(!irq.needs_reset());
    replies(&r, &heads, reqs)
}

#[test]
fn a_reset_starts_a_new_session() {
    let dir = share();
    let mut d = Virtio9p::open(&opts(dir.path(), false)).unwrap();
    let reps = activate_and_reset(
        &mut d,
        &[req(version(1, 8192), &[512]), req(attach(2, 7), &[512]), req(walk(3, 7, 8, &[b"hello.txt"]), &[512])],
    );
    assert_eq!(parts(&reps[2]).0, msg::TWALK + 1);
    // The new server has no session: nothing but Tversion is served.
    let reps = activate_and_reset(
        &mut d,
        &[
            req(walk(4, 7, 9, &[]), &[512]),
            req(version(5, 8192), &[512]),
            req(attach(6, 7), &[512]),
            req(walk(7, 7, 8, &[b"hello.txt"]), &[512]),
        ],
    );
    assert_eq!(lerror(&reps[0]), Some(EPROTO));
    assert_eq!(parts(&reps[2]).0, msg::TATTACH + 1);
    assert_eq!(parts(&reps[3]).0, msg::TWALK + 1, "fid 8 is free again");
    assert!(d.fresh.is_none());
}

#[test]
fn the_share_is_the_directory_opened_at_start() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("share");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), b"first").unwrap();
    let mut d = Virtio9p::open(&opts(&dir, false)).unwrap();
    // The path now names another directory; a new session still serves
    // the first one.
    std::fs::rename(&dir, base.path().join("moved")).unwrap();
    std::fs::create_dir(&dir).unwrap();
    let session = [
        req(version(1, 8192), &[512]),
        req(attach(2, 0), &[512]),
        req(walk(3, 0, 1, &[b"hello.txt"]), &[512]),
        req(lopen(4, 1, O_RDONLY), &[512]),
        req(read(5, 1, 0, 64), &[512]),
    ];
    activate_and_reset(&mut d, &session);
    let reps = activate_and_reset(&mut d, &session);
    assert_eq!(&parts(&reps[4]).2[4..], b"first");
}
