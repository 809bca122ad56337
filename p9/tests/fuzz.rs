//! Randomised messages, well-formed and malformed, against a live share: the server must never
//! panic, must always answer with one well-framed reply within the space given, and must never
//! reach outside the share whatever the guest sends.
//!
//! Deterministic by default; `P9_FUZZ_SEED` and `P9_FUZZ_ITERS` pick other runs, and
//! `--nocapture` shows how many replies of each type and errno a run produced (so a change that
//! stops the generator from reaching past the first checks shows). `P9_FUZZ_TRACE=1` prints
//! every request and reply.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::SECRET;
use p9::wire::{msg, Put, Reader, NOFID, NOTAG};
use p9::Server;

/// xorshift64*: enough randomness for test inputs, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Field layouts of the requests: f fid, s name, v version, d u32, q u64, b u8, h u16, w walk
/// names, D count + data, o open flags, m mode, c count.
const LAYOUTS: &[(u8, &str)] = &[
    (msg::TAUTH, "fssd"),
    (msg::TATTACH, "ffssd"),
    (msg::TFLUSH, "h"),
    (msg::TWALK, "ffw"),
    (msg::TWALK, "ffw"),
    (msg::TWALK, "ffw"),
    (msg::TWALK, "ffw"),
    (msg::TLOPEN, "fo"),
    (msg::TLCREATE, "fsomd"),
    (msg::TREAD, "fqc"),
    (msg::TWRITE, "fqD"),
    (msg::TCLUNK, "f"),
    (msg::TREMOVE, "f"),
    (msg::TGETATTR, "fq"),
    (msg::TSETATTR, "fdmddqqqqq"),
    (msg::TREADDIR, "fqc"),
    (msg::TSTATFS, "f"),
    (msg::TFSYNC, "fd"),
    (msg::TLOCK, "fbdqqds"),
    (msg::TGETLOCK, "fbqqds"),
    (msg::TXATTRWALK, "ffs"),
    (msg::TXATTRCREATE, "fsqd"),
    (msg::TMKDIR, "fsmd"),
    (msg::TSYMLINK, "fssd"),
    (msg::TMKNOD, "fsmddd"),
    (msg::TREADLINK, "f"),
    (msg::TLINK, "ffs"),
    (msg::TRENAME, "ffs"),
    (msg::TRENAMEAT, "fsfs"),
    (msg::TUNLINKAT, "fsd"),
];

struct Gen<'a> {
    rng: Rng,
    names: Vec<&'a [u8]>,
}

impl Gen<'_> {
    fn u32(&mut self) -> u32 {
        let r = self.rng.next() as u32;
        self.rng.pick(&[0, 1, 2, 0x200, 0xffff_ffff, 0x8000_0000, r, r & 0xfff])
    }
    fn u64(&mut self) -> u64 {
        let r = self.rng.next();
        self.rng.pick(&[0, 1, 7, 4096, 1 << 40, 1 << 63, u64::MAX, r, r & 0xffff])
    }
    fn name(&mut self, out: &mut Vec<u8>) {
        if self.rng.chance(8) {
            let len = self.rng.below(300);
            let bytes: Vec<u8> = (0..len).map(|_| self.rng.next() as u8).collect();
            let _ = out.put_str(&bytes);
        } else {
            let n = self.rng.pick(&self.names);
            let _ = out.put_str(n);
        }
    }

    fn message(&mut self) -> Vec<u8> {
        let (ty, layout) = if self.rng.chance(20) {
            (self.rng.next() as u8, "dddd")
        } else if self.rng.chance(300) {
            // A new version ends the session (and, with a bad dialect, stops it until the next).
            (msg::TVERSION, "cv")
        } else {
            self.rng.pick(LAYOUTS)
        };
        let mut b = Vec::new();
        for f in layout.chars() {
            match f {
                'f' => {
                    let r = self.rng.next() as u32;
                    b.put_u32(self.rng.pick(&[0, 0, 0, 0, 1, 1, 2, 2, 3, 4, 5, NOFID, r]));
                }
                's' => self.name(&mut b),
                'v' => {
                    let v: &[u8] = self.rng.pick(&[b"9P2000.L", b"9P2000.L", b"9P2000", b"", b"9P2000.Lx"]);
                    let _ = b.put_str(v);
                }
                'd' => b.put_u32(self.u32()),
                'q' => b.put_u64(self.u64()),
                'b' => b.put_u8(self.rng.pick(&[0, 1, 2, 3, 0xff])),
                'h' => b.put_u16(self.rng.next() as u16),
                'c' => b.put_u32(self.rng.pick(&[0, 1, 11, 24, 100, 300, 4096, 65536, 0xffff_ffff])),
                'o' => {
                    let r = self.rng.next() as u32;
                    b.put_u32(self.rng.pick(&[0, 1, 2, 3, 0o1002, 0o200000, 0o100 | 2, 0o302, r]))
                }
                'm' => {
                    let kind =
                        self.rng.pick(&[0, libc::S_IFREG, libc::S_IFDIR, libc::S_IFIFO, libc::S_IFCHR, 0o170000]);
                    b.put_u32(kind | (self.rng.next() as u32 & 0o7777));
                }
                'w' => {
                    let n = self.rng.pick(&[0u16, 0, 1, 1, 1, 2, 3, 16, 17, 0xffff]);
                    b.put_u16(n);
                    for _ in 0..n.min(20) {
                        self.name(&mut b);
                    }
                }
                'D' => {
                    let len = self.rng.below(200);
                    b.put_u32(if self.rng.chance(10) { self.u32() } else { len as u32 });
                    b.extend((0..len).map(|i| i as u8));
                }
                _ => b.put_u32(self.rng.next() as u32),
            }
        }
        let mut m = Vec::new();
        m.put_u32(7 + b.len() as u32);
        m.put_u8(ty);
        m.put_u16(self.rng.next() as u16);
        m.extend_from_slice(&b);
        // Break a fifth of them.
        match self.rng.below(10) {
            0 => {
                let at = self.rng.below(m.len() + 1);
                m.truncate(at);
            }
            1 => {
                let at = self.rng.below(m.len());
                m[at] = self.rng.next() as u8;
            }
            _ => {}
        }
        if self.rng.chance(30) {
            m = (0..self.rng.below(40)).map(|_| self.rng.next() as u8).collect();
        }
        m
    }
}

/// Checks one reply's framing against its request.
fn check(request: &[u8], max_reply: usize, msize: Option<u32>, reply: &[u8]) {
    let mut r = Reader::new(reply);
    let size = r.u32().expect("reply has a size") as usize;
    let ty = r.u8().expect("reply has a type");
    let tag = r.u16().expect("reply has a tag");
    assert_eq!(size, reply.len(), "size field");
    assert!(!reply.windows(SECRET.len()).any(|w| w == SECRET), "a reply carried a file from outside the share");
    let parsed = request.len() >= 7 && {
        let s = u32::from_le_bytes(request[..4].try_into().unwrap()) as usize;
        (7..=request.len()).contains(&s)
    };
    // A readable tag is echoed even when the size field is wrong.
    let want_tag = if request.len() >= 7 { u16::from_le_bytes([request[5], request[6]]) } else { NOTAG };
    assert_eq!(tag, want_tag, "tag");
    if parsed {
        assert!(ty == msg::RLERROR || ty == request[4].wrapping_add(1), "reply type {ty} to {}", request[4]);
    } else {
        assert_eq!(ty, msg::RLERROR);
    }
    if ty == msg::RLERROR {
        assert_eq!(reply.len(), 11);
        let errno = u32::from_le_bytes(reply[7..11].try_into().unwrap());
        assert!((1..4096).contains(&errno), "errno {errno}");
    } else {
        let limit = msize.map_or(p9::MAX_MSIZE as usize, |m| m as usize).min(max_reply);
        assert!(reply.len() <= limit, "reply of {} bytes over the limit {limit}", reply.len());
    }
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let data = if m.is_file() { fs::read(e.path()).unwrap() } else { Vec::new() };
        out.push((e.file_name().to_string_lossy().into_owned(), data, std::os::unix::fs::MetadataExt::mode(&m)));
    }
    out.sort();
    out
}

fn run(seed: u64, iters: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let (share, outside) = (tmp.path().join("share"), tmp.path().join("outside"));
    fs::create_dir_all(share.join("d/e")).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), SECRET).unwrap();
    fs::write(share.join("f"), b"file in the share").unwrap();
    fs::write(share.join("d/g"), b"another").unwrap();
    symlink("../outside", share.join("up")).unwrap();
    symlink(outside.join("secret"), share.join("abs")).unwrap();
    symlink("/etc", share.join("etc")).unwrap();
    let before = snapshot(&outside);
    let abs = outside.join("secret");
    let abs = abs.as_os_str().as_encoded_bytes().to_vec();
    let names: Vec<&[u8]> = vec![
        b"f",
        b"d",
        b"e",
        b"g",
        b"up",
        b"abs",
        b"etc",
        b"new",
        b"x",
        b"..",
        b".",
        b"",
        b"/",
        b"d/g",
        b"../outside",
        b"../outside/secret",
        b"/etc/passwd",
        b"secret",
        b"outside",
        &abs,
    ];
    let mut gen = Gen { rng: Rng(seed | 1), names };
    let mut server = Server::new(&share, false).unwrap();
    let mut reply = Vec::new();
    let mut stats = [0usize; 512];
    let mut attached = false;
    for i in 0..iters {
        // Keep a session going: version when there is none, then attach fid 0 (again every so
        // often, since the guest's random clunks and removes drop it).
        let request = if server.msize().is_none() || !attached || i % 25 == 0 {
            let mut m = Vec::new();
            if server.msize().is_none() {
                m.put_u32(21);
                m.put_u8(msg::TVERSION);
                m.put_u16(NOTAG);
                m.put_u32(65536);
                m.put_str(b"9P2000.L").unwrap();
            } else {
                m.put_u32(7 + 4 + 4 + 2 + 2 + 4);
                m.put_u8(msg::TATTACH);
                m.put_u16(1);
                m.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
            }
            m
        } else {
            gen.message()
        };
        let max_reply = if gen.rng.chance(10) {
            gen.rng.pick(&[0, 10, 11, 255, 256, 300])
        } else {
            gen.rng.pick(&[4096, 65536, usize::MAX])
        };
        let version = request.get(4) == Some(&msg::TVERSION);
        server.handle(&request, max_reply, &mut reply);
        if version {
            attached = false;
        } else if request.get(4) == Some(&msg::TATTACH) {
            // Success, or fid 0 already in use.
            attached |= reply[4] != msg::RLERROR || reply[7] == libc::EBADF as u8;
        } else if matches!(request.get(4), Some(&(msg::TCLUNK | msg::TREMOVE))) && request.get(7..11) == Some(&[0; 4]) {
            attached = false;
        }
        check(&request, max_reply, server.msize(), &reply);
        let slot = if reply[4] == msg::RLERROR {
            256 + u32::from_le_bytes(reply[7..11].try_into().unwrap()) as usize % 256
        } else {
            reply[4] as usize
        };
        stats[slot] += 1;
        if std::env::var("P9_FUZZ_TRACE").is_ok() {
            eprintln!(
                "{i}: req type {:?} len {} → {:?}",
                request.get(4),
                request.len(),
                &reply[4..reply.len().min(12)]
            );
        }
    }
    eprintln!(
        "seed {seed}: successes by reply type {:?}",
        (0..256).filter(|&i| stats[i] > 0).map(|i| (i, stats[i])).collect::<Vec<_>>()
    );
    eprintln!(
        "seed {seed}: errors by errno {:?}",
        (256..512).filter(|&i| stats[i] > 0).map(|i| (i - 256, stats[i])).collect::<Vec<_>>()
    );
    let kinds = (0..256).filter(|&i| i != msg::RLERROR as usize && stats[i] > 0).count();
    assert!(iters < 20_000 || kinds >= 15, "seed {seed}: only {kinds} kinds of success: the generator is too shallow");
    assert_eq!(snapshot(&outside), before, "seed {seed}: something outside the share changed");
    assert!(tmp.path().join("share").is_dir());
    let mut siblings: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    siblings.sort();
    assert_eq!(siblings, ["outside", "share"], "seed {seed}: something appeared next to the share");
}

#[test]
fn random_and_malformed_messages() {
    let seed = std::env::var("P9_FUZZ_SEED").ok().and_then(|s| s.parse().ok());
    let iters = std::env::var("P9_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    match seed {
        Some(s) => run(s, iters),
        None => {
            for s in [1, 0x9e37_79b9_7f4a_7c15, 42, 7777] {
                run(s, iters);
            }
        }
    }
}
