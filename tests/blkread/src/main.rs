//! `blkread PATH rand|seq BYTES COUNT DEPTH [MARKER]`: COUNT reads of BYTES each from
//! PATH (a block device or a file on a file system with `O_DIRECT`),
//! around the page cache, with DEPTH of them in flight at once through
//! Linux AIO (`io_submit`/`io_getevents`: one thread, so the depth is the
//! device's, not the scheduler's). `rand` reads at random BYTES-aligned
//! places (a fixed seed: the same places every run), `seq` one after the
//! other from 0, wrapping at the end.
//!
//! After DEPTH untimed reads (to fault everything in) it prints MARKER, if
//! given, on stderr and waits a second (for whoever counts events around
//! the run to take note, and the console to drain); then it prints
//! `blkread: mode=M bytes=B depth=D count=N ns=T`, T the CLOCK_MONOTONIC
//! nanoseconds the COUNT reads took. Exit status: 0, or 1 with one line on
//! stderr (a short read is an error).

use std::alloc::{alloc_zeroed, Layout};
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::time::Instant;

/// `struct iocb` of <linux/aio_abi.h> (little-endian, 64-bit).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: u32,
    opcode: u16,
    reqprio: i16,
    fildes: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

/// `struct io_event`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct IoEvent {
    data: u64,
    obj: u64,
    res: i64,
    res2: i64,
}

const IOCB_CMD_PREAD: u16 = 0;
// _IOR(0x12, 114, size_t)
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;

fn fail(msg: &str) -> ! {
    eprintln!("blkread: {msg}");
    std::process::exit(1)
}

fn num(s: &str, what: &str) -> u64 {
    s.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| fail(&format!("{what} '{s}' is not a positive number")))
}

/// Where the reads go: random aligned places or one after the other.
struct Places {
    random: bool,
    slots: u64,
    next: u64,
    state: u64,
}

impl Places {
    fn next(&mut self) -> u64 {
        if self.random {
            // xorshift64: cheap, and the same sequence every run.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            self.state % self.slots
        } else {
            let s = self.next;
            self.next = (self.next + 1) % self.slots;
            s
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, mode, bytes, count, depth, marker) = match &args[..] {
        [p, m, b, c, d] => (p, m, b, c, d, None),
        [p, m, b, c, d, k] => (p, m, b, c, d, Some(k)),
        _ => fail("usage: blkread PATH rand|seq BYTES COUNT DEPTH [MARKER]"),
    };
    let random = match mode.as_str() {
        "rand" => true,
        "seq" => false,
        m => fail(&format!("mode '{m}' is neither rand nor seq")),
    };
    let bytes = num(bytes, "BYTES");
    let count = num(count, "COUNT");
    let depth = num(depth, "DEPTH").min(count);
    if !bytes.is_multiple_of(4096) {
        fail("BYTES must be a multiple of 4096");
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let fd = file.as_raw_fd();
    let meta = file.metadata().unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let size = if meta.file_type().is_block_device() {
        let mut size = 0u64;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer.
        if unsafe { libc::ioctl(fd, BLKGETSIZE64 as _, &mut size) } < 0 {
            fail(&format!("{path}: {}", std::io::Error::last_os_error()));
        }
        size
    } else {
        meta.len()
    };
    let slots = size / bytes;
    if slots == 0 {
        fail(&format!("{path} ({size} bytes) is smaller than one read"));
    }
    let mut places = Places { random, slots, next: 0, state: 0x9e37_79b9_7f4a_7c15 };

    let layout = Layout::from_size_align(bytes as usize, 4096).unwrap_or_else(|_| fail("BYTES too large"));
    let bufs: Vec<u64> = (0..depth)
        .map(|_| {
            // SAFETY: the layout has a non-zero size.
            let p = unsafe { alloc_zeroed(layout) };
            if p.is_null() {
                fail("out of memory");
            }
            p as u64
        })
        .collect();

    let mut ctx: libc::c_ulong = 0;
    // SAFETY: io_setup writes the context id through the pointer.
    if unsafe { libc::syscall(libc::SYS_io_setup, depth as libc::c_long, &mut ctx) } < 0 {
        fail(&format!("io_setup: {}", std::io::Error::last_os_error()));
    }
    let mut iocbs = vec![Iocb::default(); depth as usize];
    let mut events = vec![IoEvent::default(); depth as usize];
    let mut ready: Vec<usize> = Vec::with_capacity(depth as usize);
    // Runs `n` reads with `depth` in flight: the replacements of the reads
    // reaped together go in one io_submit, as they would from any program
    // that keeps a queue full (a device sees them as one batch).
    let mut run = |places: &mut Places, n: u64| {
        let mut submitted = 0;
        let mut done = 0;
        ready.clear();
        ready.extend(0..depth.min(n) as usize);
        loop {
            let mut ptrs: Vec<*mut Iocb> = Vec::with_capacity(ready.len());
            for &i in ready.iter().take((n - submitted) as usize) {
                iocbs[i] = Iocb {
                    data: i as u64,
                    opcode: IOCB_CMD_PREAD,
                    fildes: fd as u32,
                    buf: bufs[i],
                    nbytes: bytes,
                    offset: (places.next() * bytes) as i64,
                    ..Default::default()
                };
                ptrs.push(&mut iocbs[i]);
            }
            if !ptrs.is_empty() {
                // SAFETY: each iocb stays alive (in `iocbs`, not touched)
                // until its event is reaped; its buffer is ours, BYTES long.
                let r =
                    unsafe { libc::syscall(libc::SYS_io_submit, ctx, ptrs.len() as libc::c_long, ptrs.as_mut_ptr()) };
                if r != ptrs.len() as libc::c_long {
                    fail(&format!("io_submit: {r} of {}: {}", ptrs.len(), std::io::Error::last_os_error()));
                }
                submitted += ptrs.len() as u64;
            }
            ready.clear();
            if done == n {
                return;
            }
            // SAFETY: events has room for `depth` entries; no timeout.
            let got = unsafe {
                libc::syscall(
                    libc::SYS_io_getevents,
                    ctx,
                    1 as libc::c_long,
                    depth as libc::c_long,
                    events.as_mut_ptr(),
                    std::ptr::null_mut::<libc::timespec>(),
                )
            };
            if got < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                fail(&format!("io_getevents: {e}"));
            }
            for ev in &events[..got as usize] {
                if ev.res != bytes as i64 {
                    fail(&format!("a read returned {} instead of {bytes}", ev.res));
                }
                done += 1;
                ready.push(ev.data as usize);
            }
        }
    };
    run(&mut places, depth);
    if let Some(m) = marker {
        eprintln!("{m}");
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let t0 = Instant::now();
    run(&mut places, count);
    let ns = t0.elapsed().as_nanos();
    println!("blkread: mode={mode} bytes={bytes} depth={depth} count={count} ns={ns}");
}
