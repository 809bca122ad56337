//! `vmmfuzz`: attacks the vmm module from userspace, as a hostile or buggy
//! tool would, and says what it did. Test-only: run it inside the emulated
//! host; whether the host survived is judged there (its log, `rmmod`, a
//! guest run afterwards), not here.
//!
//! ```text
//! vmmfuzz fuzz [--seed N] [--seconds S] [--threads T] [--guest FILE]
//!     calls (every ioctl, fuzzed; raw numbers; mmap games) on T threads for
//!     half the time, then races against a running guest (FILE, default the
//!     spin test guest) for the other half; then destroys every VM. The seed
//!     (printed) replays the same sequence of calls on each thread.
//! vmmfuzz cycles N [GUEST]
//!     N whole VM lives (create, memory, load GUEST, default the hello test
//!     guest, vCPU, vGIC, run to power-off, destroy); the module's counters
//!     must be back where they started
//! vmmfuzz faults [GUEST]
//!     that life with each of the module's allocations made to fail in
//!     turn (its fault_inject parameter): clean errnos, nothing leaked
//! vmmfuzz openrace MAX_SECONDS
//!     opens /dev/vmm/a while another thread destroys a and creates b in its
//!     place; fails if an open of a's path ever yields b
//! ```

mod calls;
mod cycles;
mod kick;
mod mmaps;
mod openrace;
mod races;
mod rng;

use rng::Rng;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Calls made and how they ended: (what, errno or 0) to count.
#[derive(Default)]
pub struct Tally(BTreeMap<(&'static str, i32), u64>, i32);

impl Tally {
    /// One call of `what` that ended with `errno` (0: success).
    pub fn add(&mut self, what: &'static str, errno: i32) {
        *self.0.entry((what, errno)).or_default() += 1;
        self.1 = errno;
    }

    /// How the last call added ended.
    pub fn last(&self) -> i32 {
        self.1
    }

    /// `n` more of `what`.
    pub fn count(&mut self, what: &'static str, n: u64) {
        *self.0.entry((what, 0)).or_default() += n;
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: Tally) {
        for (k, v) in other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }

    /// All calls counted.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// One line per kind of call: its count and how they ended.
    pub fn report(&self) -> String {
        let mut by: BTreeMap<&str, Vec<(i32, u64)>> = BTreeMap::new();
        for (&(what, e), &n) in &self.0 {
            by.entry(what).or_default().push((e, n));
        }
        let mut out = String::new();
        for (what, ends) in by {
            let total: u64 = ends.iter().map(|(_, n)| n).sum();
            let ends: Vec<String> = ends
                .iter()
                .map(|&(e, n)| match e {
                    0 => format!("ok {n}"),
                    e if e > 1000 => format!("signal {} {n}", e - 1000),
                    e => format!("{} {n}", errno_name(e)),
                })
                .collect();
            out += &format!("vmmfuzz:   {what:<24} {total:>8}: {}\n", ends.join(", "));
        }
        out
    }
}

fn errno_name(e: i32) -> String {
    nix::errno::Errno::from_raw(e).to_string().split(':').next().unwrap_or("?").to_string()
}

struct Args {
    seed: u64,
    seconds: u64,
    threads: usize,
    guest: String,
}

fn parse_fuzz(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        seed: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64),
        seconds: 60,
        threads: 4,
        guest: "/usr/share/bhyve-tests/spin.bin".into(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => a.seed = val()?.parse().map_err(|_| "--seed takes a number".to_string())?,
            "--seconds" => a.seconds = val()?.parse().map_err(|_| "--seconds takes a number".to_string())?,
            "--threads" => {
                a.threads = val()?.parse().ok().filter(|t| (1..=32).contains(t)).ok_or("--threads takes 1 to 32")?
            }
            "--guest" => a.guest = val()?.clone(),
            other => return Err(format!("unknown flag '{other}'")),
        }
    }
    Ok(a)
}

/// Calls on `threads` threads for `time`, each thread with its own
/// sequence derived from `rng`.
fn calls_phase(rng: &mut Rng, threads: usize, time: Duration, t: &calls::Targets) -> Tally {
    let stop = AtomicBool::new(false);
    let mut tally = Tally::default();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let mut rng = rng.fork();
                let stop = &stop;
                s.spawn(move || {
                    let _kicked = kick::enroll();
                    let mut tally = Tally::default();
                    let ctl = match calls::open_ctl() {
                        Ok(c) => c,
                        Err(e) => {
                            eprintln!("vmmfuzz: /dev/vmmctl: {e}");
                            return tally;
                        }
                    };
                    let mut vms: Vec<std::fs::File> = vec![];
                    while !stop.load(Ordering::Relaxed) {
                        match rng.below(100) {
                            0..=9 => calls::ctl_call(&ctl, &mut rng, t, &mut tally),
                            10..=14 => {
                                if let Some(f) = calls::open_vm(&mut rng) {
                                    vms.push(f);
                                    if vms.len() > 6 {
                                        vms.remove(rng.below(vms.len() as u64) as usize);
                                    }
                                }
                            }
                            15 | 16 if !vms.is_empty() => {
                                vms.remove(rng.below(vms.len() as u64) as usize);
                            }
                            17 | 18 if !vms.is_empty() => {
                                let i = rng.below(vms.len() as u64) as usize;
                                mmaps::round(&vms[i], &mut rng, &mut tally);
                            }
                            19..=28 if !vms.is_empty() => {
                                let i = rng.below(vms.len() as u64) as usize;
                                calls::run_call(&vms[i], &mut rng, t, &mut tally);
                                if tally.last() == libc::ENXIO {
                                    vms.swap_remove(i);
                                }
                            }
                            _ if !vms.is_empty() => {
                                let i = rng.below(vms.len() as u64) as usize;
                                calls::vm_call(&vms[i], &mut rng, t, &mut tally);
                                // A destroyed VM's descriptor: open a live one instead.
                                if tally.last() == libc::ENXIO {
                                    vms.swap_remove(i);
                                }
                            }
                            _ => calls::ctl_call(&ctl, &mut rng, t, &mut tally),
                        }
                    }
                    tally
                })
            })
            .collect();
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
        for h in hs {
            tally.merge(h.join().expect("call thread"));
        }
    });
    tally
}

/// Destroys every VM there is; returns (destroyed, left).
fn destroy_all() -> (usize, Vec<String>) {
    let mut destroyed = 0;
    let mut left = vec![];
    if let Ok(dir) = std::fs::read_dir(vmm_uapi::VMM_DEV_DIR) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            match vmmapi::Vm::destroy_name(&name) {
                Ok(()) => destroyed += 1,
                Err(err) => left.push(format!("{name}: {err}")),
            }
        }
    }
    (destroyed, left)
}

fn fuzz(a: &Args) -> ExitCode {
    println!(
        "vmmfuzz: seed {} ({} s, {} threads; replay with --seed {} --seconds {} --threads {})",
        a.seed, a.seconds, a.threads, a.seed, a.seconds, a.threads
    );
    let guest = match std::fs::read(&a.guest) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("vmmfuzz: {}: {e}", a.guest);
            return ExitCode::from(2);
        }
    };
    let targets = match calls::Targets::new() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("vmmfuzz: mapping argument pages: {e}");
            return ExitCode::from(2);
        }
    };
    let t0 = Instant::now();
    let mut rng = Rng::new(a.seed);
    let half = Duration::from_secs(a.seconds) / 2;
    let mut tally = calls_phase(&mut rng, a.threads, half, &targets);
    let calls = tally.total();
    let (cleared, _) = destroy_all();
    races::all(&guest, &mut rng, half, &mut tally);
    let (destroyed, left) = destroy_all();
    print!("{}", tally.report());
    println!(
        "vmmfuzz: seed {}: {} calls in {:.0} s ({calls} fuzzed calls, {} in races); {} VMs destroyed after the calls, {destroyed} after the races, {} left",
        a.seed,
        tally.total(),
        t0.elapsed().as_secs_f64(),
        tally.total() - calls,
        cleared,
        left.len()
    );
    for l in &left {
        println!("vmmfuzz: cannot destroy {l}");
    }
    if left.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("vmmfuzz: {msg}");
    eprintln!(
        "usage: vmmfuzz fuzz [--seed N] [--seconds S] [--threads T] [--guest FILE] | cycles N [GUEST] | faults [GUEST] | openrace MAX_SECONDS"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fuzz") => match parse_fuzz(&args[1..]) {
            Ok(a) => fuzz(&a),
            Err(e) => usage(&e),
        },
        Some(cmd @ ("cycles" | "faults")) => {
            let (n, guest) = match (cmd, args.get(1)) {
                ("cycles", Some(n)) => match n.parse() {
                    Ok(n) => (n, args.get(2)),
                    Err(_) => return usage("cycles takes a number"),
                },
                ("cycles", None) => return usage("cycles takes a number"),
                _ => (0, args.get(1)),
            };
            let path = guest.map_or("/usr/share/bhyve-tests/hello.bin", String::as_str);
            let guest = match std::fs::read(path) {
                Ok(g) => g,
                Err(e) => return usage(&format!("{path}: {e}")),
            };
            if cmd == "cycles" {
                cycles::cycles(n, &guest)
            } else {
                cycles::faults(&guest)
            }
        }
        Some("openrace") => match args.get(1).and_then(|s| s.parse().ok()) {
            Some(s) => openrace::run(Duration::from_secs(s)),
            None => usage("openrace takes MAX_SECONDS"),
        },
        _ => usage("which test?"),
    }
}
