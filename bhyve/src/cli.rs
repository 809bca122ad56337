//! bhyve's command line, in bhyve's spelling:
//! `bhyve [-c [cpus=]N] [-m SIZE] [-o KEY=VALUE]... NAME`.
//! A bad or missing flag gives one line naming it, the usage, and exit 2.

use crate::virtio::blk::{BlkOptions, SectorSize};
use crate::virtio::p9::{check_tag, P9Options};
use clap::{ArgAction, Parser};
use std::collections::BTreeMap;
use std::ffi::OsString;
use vmmapi::cli;
pub use vmmapi::cli::Exit;
use vmmapi::size::parse_mem_size;

/// One-line usage printed under every command-line error.
pub const USAGE: &str =
    "usage: bhyve [-c [cpus=]N] [-m SIZE] [-s SLOT,EMULATION[,CONF]]... [-o KEY=VALUE]... NAME  (see --help)";

/// Device slots: one virtio-mmio transport each.
pub const SLOTS: u32 = crate::layout::VIRTIO_MMIO_COUNT;

/// Most vCPUs a VM has: the kernel's `VM_MAXCPU`.
pub const MAX_VCPUS: u32 = vmm_uapi::VM_MAXCPU as u32;

#[derive(Parser, Debug)]
#[command(
    name = "bhyve",
    about = "Run a VM prepared by bhyveload: its vCPUs, devices and console",
    disable_version_flag = true,
    after_help = "-s SLOT,EMULATION[,CONF]: a device in SLOT, 0 to 31, virtio-mmio transport SLOT at\n\
                  0x0a000000 + SLOT * 0x200 with SPI 16 + SLOT (only plain slots: no bus or function):\n  \
                  virtio-blk,PATH[,ro][,nocache][,direct][,nodelete][,sectorsize=L[/P]][,ser=ID]\n    \
                  a disk on a raw image file or a host block device; ro: read-only; nocache: O_DIRECT;\n    \
                  direct: O_SYNC; nodelete: no discard; sectorsize: logical/physical sector bytes,\n    \
                  powers of two from 512 to 65536; ser: the disk's ID (20 bytes; default from the path)\n  \
                  virtio-rnd         entropy from the host's getrandom\n  \
                  virtio-9p,SHARENAME=PATH[,ro]\n    \
                  the host directory PATH, mounted in the guest by its tag SHARENAME (mount -t 9p\n    \
                  -o trans=virtio,version=9p2000.L SHARENAME /mnt); the guest cannot reach outside it;\n    \
                  ro: every change is refused (EROFS)\n  \
                  hostbridge, lpc    accepted for bhyve's command lines; nothing is added\n\n\
                  -o keys:\n  \
                  console=stdio      the UART on stdin/stdout (the default, and the only one for now)\n  \
                  testdev            the test device at 0x0b000000\n  \
                  testdev.param=N    the test device, with PARAM reading N\n  \
                  pci.0.SLOT.0.device=EMULATION, pci.0.SLOT.0.KEY=VALUE\n                     \
                  the same as -s (bhyve_config(5)): keys path, ro, nocache, direct (or sync),\n                     \
                  nodelete, sectorsize, ser; sharename, path, ro for virtio-9p; booleans true/false\n\n\
                  vCPUs: vCPU 0 starts where bhyveload left it; the others start off, each on its own\n\
                  thread, until the guest turns them on with PSCI CPU_ON. vCPU n has MPIDR Aff0 = n mod 16,\n\
                  Aff1 = n / 16.\n\n\
                  PSCI 1.0 over HVC: PSCI_VERSION, PSCI_FEATURES, CPU_ON, CPU_OFF, AFFINITY_INFO,\n\
                  MIGRATE_INFO_TYPE, SYSTEM_OFF, SYSTEM_RESET.\n\n\
                  Exit status: 0 reset, 1 power-off, 2 halt (also: every vCPU is off), 4 error; 2 also for a\n\
                  bad command line. SIGINT, SIGTERM and SIGHUP stop every vCPU, and bhyve dies of the signal."
)]
struct Args {
    /// Number of vCPUs, 1 to 32 (the kernel's VM_MAXCPU).
    #[arg(short = 'c', value_name = "[cpus=]N")]
    cpus: Option<String>,
    /// Guest memory: must match the VM's (or sets it up if it has none).
    #[arg(short = 'm', value_name = "SIZE")]
    mem: Option<String>,
    /// A device (see below); may be given more than once.
    #[arg(short = 's', value_name = "SLOT,EMULATION[,CONF]", action = ArgAction::Append)]
    slots: Vec<String>,
    /// A setting (see below); may be given more than once.
    #[arg(short = 'o', value_name = "KEY=VALUE", action = ArgAction::Append)]
    opts: Vec<String>,
    /// The VM, prepared by bhyveload.
    #[arg(value_name = "NAME")]
    name: String,
}

/// The console's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// stdin and stdout.
    Stdio,
}

/// A device of `-s` or `pci.*` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKind {
    /// `virtio-blk`.
    Blk(BlkOptions),
    /// `virtio-rnd`.
    Rng,
    /// `virtio-9p`.
    P9(P9Options),
}

/// A device and its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Its slot: the virtio-mmio transport number.
    pub slot: u32,
    /// What it is.
    pub kind: DeviceKind,
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// The VM's name.
    pub name: String,
    /// vCPUs to run.
    pub cpus: u32,
    /// `-m`, in bytes.
    pub mem_size: Option<u64>,
    /// `-o console=`.
    pub console: ConsoleKind,
    /// With `-o testdev`: the test device's PARAM.
    pub testdev: Option<u64>,
    /// The devices of `-s` and `pci.*`, by slot.
    pub devices: Vec<DeviceSpec>,
}

fn usage_error(msg: &str) -> Exit {
    cli::usage_error("bhyve", USAGE, msg)
}

/// The command line's definition: what `--help` prints and what the shell
/// completions (crate `completions`) are generated from.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// Parses the arguments (the first is the program name).
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Options, Exit> {
    let a = Args::try_parse_from(args).map_err(|e| cli::clap_exit("bhyve", USAGE, &e))?;
    let cpus = match &a.cpus {
        Some(c) => parse_cpus(c).map_err(|e| usage_error(&format!("-c {c}: {e}")))?,
        None => 1,
    };
    let mem_size = match &a.mem {
        Some(m) => Some(parse_mem_size(m).map_err(|e| usage_error(&format!("-m {m}: {e}")))?),
        None => None,
    };
    let mut opts =
        Options { name: a.name, cpus, mem_size, console: ConsoleKind::Stdio, testdev: None, devices: vec![] };
    let mut slots = Slots::default();
    for s in &a.slots {
        slots.add_s(s).map_err(|e| usage_error(&format!("-s {s}: {e}")))?;
    }
    let mut testdev_on = None;
    let mut param = None;
    for o in &a.opts {
        let (key, value) = match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o.as_str(), None),
        };
        let bad = |why: &str| usage_error(&format!("-o {o}: {why}"));
        match key {
            "console" => match value {
                Some("stdio") => opts.console = ConsoleKind::Stdio,
                _ => return Err(bad("the console can only be 'stdio' for now")),
            },
            "testdev" => {
                testdev_on = Some(match value {
                    None => true,
                    Some(v) => parse_bool(v).ok_or_else(|| bad("expected true or false"))?,
                })
            }
            "testdev.param" => {
                let v = value.ok_or_else(|| bad("needs a value (testdev.param=N)"))?;
                param = Some(parse_u64(v).ok_or_else(|| bad("not a number"))?);
            }
            _ if key.starts_with("pci.") => slots.add_key(key, value.unwrap_or("true")).map_err(|e| bad(&e))?,
            _ => return Err(usage_error(&format!("unknown -o key '{key}'"))),
        }
    }
    opts.devices = slots.devices().map_err(|e| usage_error(&e))?;
    // A parameter for the test device asks for the device.
    if testdev_on.unwrap_or(param.is_some()) {
        opts.testdev = Some(param.unwrap_or(0));
    }
    Ok(opts)
}

/// The slots' settings, as bhyve_config(5) keys: `-s` is turned into them.
#[derive(Default)]
struct Slots {
    /// Keys by slot, and whether the slot's device is set.
    keys: BTreeMap<u32, BTreeMap<String, String>>,
}

/// A slot number: plain, 0 to 31.
fn parse_slot(s: &str) -> Result<u32, String> {
    if s.contains(':') {
        return Err(format!("'{s}': only plain slots exist (0 to {}), no bus or function", SLOTS - 1));
    }
    let n: u32 = s.parse().map_err(|_| format!("'{s}' is not a slot number"))?;
    if n >= SLOTS {
        return Err(format!("slot {n}: there are {SLOTS} slots, 0 to {} (one virtio-mmio transport each)", SLOTS - 1));
    }
    Ok(n)
}

impl Slots {
    /// `-s SLOT,EMULATION[,CONF]`.
    fn add_s(&mut self, arg: &str) -> Result<(), String> {
        let mut parts = arg.split(',');
        let slot = parse_slot(parts.next().unwrap_or(""))?;
        let emulation = parts.next().filter(|e| !e.is_empty()).ok_or("needs an emulation (SLOT,EMULATION)")?;
        self.set(slot, "device", emulation)?;
        let conf: Vec<&str> = parts.collect();
        match emulation {
            "virtio-blk" => {
                let (path, rest) = conf.split_first().ok_or("virtio-blk needs a path (SLOT,virtio-blk,PATH)")?;
                if path.is_empty() || path.contains('=') {
                    return Err("virtio-blk needs a path first (SLOT,virtio-blk,PATH[,OPTION]...)".into());
                }
                self.set(slot, "path", path)?;
                for o in rest {
                    match o.split_once('=') {
                        Some((k, v)) => self.set(slot, k, v)?,
                        None => self.set(slot, o, "true")?,
                    }
                }
            }
            "virtio-rnd" if !conf.is_empty() => return Err("virtio-rnd takes no options".into()),
            // As bhyve reads it: the one option with '=' is the share.
            "virtio-9p" => {
                let mut share = false;
                for o in conf {
                    match o.split_once('=') {
                        Some(_) if share => return Err("virtio-9p takes one share (SHARENAME=PATH)".into()),
                        Some((name, path)) => {
                            share = true;
                            self.set(slot, "sharename", name)?;
                            self.set(slot, "path", path)?;
                        }
                        None => self.set(slot, o, "true")?,
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `-o pci.0.SLOT.0.KEY=VALUE`.
    fn add_key(&mut self, key: &str, value: &str) -> Result<(), String> {
        let parts: Vec<&str> = key.split('.').collect();
        let ["pci", bus, slot, func, k] = parts[..] else {
            return Err("expected pci.0.SLOT.0.KEY".into());
        };
        if bus != "0" || func != "0" {
            return Err(format!("only bus 0 and function 0 exist (plain slots 0 to {})", SLOTS - 1));
        }
        let slot = parse_slot(slot)?;
        self.set(slot, k, value)
    }

    fn set(&mut self, slot: u32, key: &str, value: &str) -> Result<(), String> {
        let keys = self.keys.entry(slot).or_default();
        if key == "device" && keys.contains_key("device") {
            return Err(format!("slot {slot} is given twice"));
        }
        keys.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// The devices the keys describe.
    fn devices(&self) -> Result<Vec<DeviceSpec>, String> {
        let mut out = vec![];
        for (&slot, keys) in &self.keys {
            let at = |what: String| format!("slot {slot}: {what}");
            let device = keys.get("device").ok_or_else(|| at("settings but no device (pci.0.N.0.device=)".into()))?;
            let only = |allowed: &[&str]| -> Result<(), String> {
                match keys.keys().find(|k| k.as_str() != "device" && !allowed.contains(&k.as_str())) {
                    Some(k) => Err(at(format!("{device} has no option '{k}'"))),
                    None => Ok(()),
                }
            };
            let kind = match device.as_str() {
                "virtio-blk" => {
                    only(&["path", "ro", "nocache", "direct", "sync", "nodelete", "sectorsize", "ser"])?;
                    Some(DeviceKind::Blk(blk_options(keys).map_err(at)?))
                }
                "virtio-rnd" => {
                    only(&[])?;
                    Some(DeviceKind::Rng)
                }
                "virtio-9p" => {
                    only(&["sharename", "path", "ro"])?;
                    Some(DeviceKind::P9(p9_options(keys).map_err(at)?))
                }
                // bhyve's PCI host bridge and ISA bridge: nothing to add here.
                "hostbridge" | "lpc" => None,
                other => return Err(at(format!("unknown emulation '{other}' (virtio-9p, virtio-blk, virtio-rnd)"))),
            };
            if let Some(kind) = kind {
                out.push(DeviceSpec { slot, kind });
            }
        }
        Ok(out)
    }
}

/// A disk's options from its keys.
fn blk_options(keys: &BTreeMap<String, String>) -> Result<BlkOptions, String> {
    let flag = |k: &str| -> Result<bool, String> {
        match keys.get(k) {
            None => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| format!("{k}={v}: expected true or false")),
        }
    };
    let path = keys.get("path").filter(|p| !p.is_empty()).ok_or("virtio-blk needs a path")?;
    let sectorsize = match keys.get("sectorsize") {
        Some(v) => SectorSize::parse(v).map_err(|e| format!("sectorsize={v}: {e}"))?,
        None => SectorSize::default(),
    };
    let serial = keys.get("ser").cloned();
    if let Some(s) = &serial {
        if s.len() > crate::virtio::blk::ID_BYTES || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("ser={s}: at most 20 printable characters"));
        }
    }
    Ok(BlkOptions {
        path: path.into(),
        read_only: flag("ro")?,
        nocache: flag("nocache")?,
        direct: flag("direct")? || flag("sync")?,
        nodelete: flag("nodelete")?,
        sectorsize,
        serial,
    })
}

/// A share's options from its keys.
fn p9_options(keys: &BTreeMap<String, String>) -> Result<P9Options, String> {
    let sharename = keys.get("sharename").ok_or("virtio-9p needs a share (SLOT,virtio-9p,SHARENAME=PATH)")?;
    check_tag(sharename).map_err(|e| format!("sharename={sharename}: {e}"))?;
    let path = keys.get("path").filter(|p| !p.is_empty()).ok_or("virtio-9p needs a path (SHARENAME=PATH)")?;
    let read_only = match keys.get("ro") {
        None => false,
        Some(v) => parse_bool(v).ok_or_else(|| format!("ro={v}: expected true or false"))?,
    };
    Ok(P9Options { sharename: sharename.clone(), path: path.into(), read_only })
}

/// `-c N` or `-c cpus=N`.
fn parse_cpus(s: &str) -> Result<u32, String> {
    let n = match s.split_once('=') {
        Some(("cpus", n)) => n,
        Some((key, _)) => return Err(format!("unknown key '{key}' (only cpus= for now)")),
        None => s,
    };
    let n: u32 = n.parse().map_err(|_| format!("'{n}' is not a number of vCPUs"))?;
    if n == 0 {
        Err("a VM needs at least 1 vCPU".into())
    } else if n > MAX_VCPUS {
        Err(format!("at most {MAX_VCPUS} vCPUs (VM_MAXCPU)"))
    } else {
        Ok(n)
    }
}

/// Decimal, or hexadecimal after `0x`.
fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// bhyve's configuration booleans.
fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Some(true),
        "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Options, Exit> {
        parse(std::iter::once("bhyve").chain(args.iter().copied()).map(OsString::from))
    }

    fn err(args: &[&str]) -> String {
        p(args).unwrap_err().usage_error_line(USAGE)
    }

    #[test]
    fn defaults() {
        assert_eq!(
            p(&["g"]).unwrap(),
            Options {
                name: "g".into(),
                cpus: 1,
                mem_size: None,
                console: ConsoleKind::Stdio,
                testdev: None,
                devices: vec![]
            }
        );
    }

    #[test]
    fn bhyve_spelling() {
        let o = p(&["-c", "1", "-m", "64M", "-o", "console=stdio", "g"]).unwrap();
        assert_eq!((o.cpus, o.mem_size, o.console), (1, Some(64 << 20), ConsoleKind::Stdio));
        assert_eq!(p(&["-c", "cpus=1", "g"]).unwrap().cpus, 1);
        assert_eq!(p(&["-c1", "-m1g", "g"]).unwrap().mem_size, Some(1 << 30));
    }

    #[test]
    fn testdev_options() {
        assert_eq!(p(&["-o", "testdev", "g"]).unwrap().testdev, Some(0));
        assert_eq!(p(&["-o", "testdev.param=42", "g"]).unwrap().testdev, Some(42));
        assert_eq!(p(&["-o", "testdev", "-o", "testdev.param=0xfeed", "g"]).unwrap().testdev, Some(0xfeed));
        assert_eq!(p(&["-o", "testdev.param=18446744073709551615", "g"]).unwrap().testdev, Some(u64::MAX));
        assert_eq!(p(&["-o", "testdev=true", "g"]).unwrap().testdev, Some(0));
        assert_eq!(p(&["-o", "testdev=off", "g"]).unwrap().testdev, None);
        assert_eq!(p(&["-o", "testdev.param=1", "-o", "testdev=false", "g"]).unwrap().testdev, None);
    }

    #[test]
    fn bad_o_keys_are_named() {
        assert_eq!(err(&["-o", "frob=1", "g"]), "bhyve: unknown -o key 'frob'");
        assert_eq!(err(&["-o", "frob", "g"]), "bhyve: unknown -o key 'frob'");
        assert_eq!(err(&["-o", "console=tcp", "g"]), "bhyve: -o console=tcp: the console can only be 'stdio' for now");
        assert_eq!(err(&["-o", "testdev.param=x", "g"]), "bhyve: -o testdev.param=x: not a number");
        assert_eq!(err(&["-o", "testdev.param", "g"]), "bhyve: -o testdev.param: needs a value (testdev.param=N)");
        assert!(err(&["-o", "testdev=maybe", "g"]).contains("true or false"));
    }

    #[test]
    fn cpu_counts() {
        assert_eq!(p(&["-c", "2", "g"]).unwrap().cpus, 2);
        assert_eq!(p(&["-c", "cpus=4", "g"]).unwrap().cpus, 4);
        assert_eq!(p(&["-c32", "g"]).unwrap().cpus, 32);
        assert_eq!(MAX_VCPUS, 32);
        assert_eq!(err(&["-c", "33", "g"]), "bhyve: -c 33: at most 32 vCPUs (VM_MAXCPU)");
        assert_eq!(err(&["-c", "cpus=64", "g"]), "bhyve: -c cpus=64: at most 32 vCPUs (VM_MAXCPU)");
        assert_eq!(err(&["-c", "0", "g"]), "bhyve: -c 0: a VM needs at least 1 vCPU");
        assert_eq!(err(&["-c", "cpus=0", "g"]), "bhyve: -c cpus=0: a VM needs at least 1 vCPU");
        assert!(err(&["-c", "-1", "g"]).contains("-1"));
        assert!(err(&["-c", "two", "g"]).starts_with("bhyve: -c two: 'two' is not a number"));
        assert!(err(&["-c", "sockets=1", "g"]).contains("unknown key 'sockets'"));
    }

    #[test]
    fn bad_flags_are_named() {
        assert_eq!(err(&["-x", "g"]), "bhyve: unknown flag '-x'");
        assert_eq!(err(&[]), "bhyve: missing <NAME>");
        assert_eq!(err(&["g", "-m"]), "bhyve: flag '-m <SIZE>' needs a value");
        assert_eq!(err(&["-m", "12x", "g"]), "bhyve: -m 12x: unknown unit 'x' (use K, M, G or T)");
        assert_eq!(err(&["-m", "0", "g"]), "bhyve: -m 0: must not be zero");
        assert!(err(&["g", "h"]).contains("'h'"));
    }

    fn blk(path: &str) -> BlkOptions {
        BlkOptions { path: path.into(), ..Default::default() }
    }

    #[test]
    fn slots_as_bhyve_spells_them() {
        let o =
            p(&["-s", "0,hostbridge", "-s", "31,lpc", "-s", "1,virtio-blk,/d.img", "-s", "2,virtio-rnd", "g"]).unwrap();
        assert_eq!(
            o.devices,
            [
                DeviceSpec { slot: 1, kind: DeviceKind::Blk(blk("/d.img")) },
                DeviceSpec { slot: 2, kind: DeviceKind::Rng }
            ]
        );
        let o = p(&["-s", "3,virtio-blk,/d,ro,nocache,direct,nodelete,sectorsize=4096/16384,ser=DISK7", "g"]).unwrap();
        let want = BlkOptions {
            path: "/d".into(),
            read_only: true,
            nocache: true,
            direct: true,
            nodelete: true,
            sectorsize: SectorSize { logical: 4096, physical: 16384 },
            serial: Some("DISK7".into()),
        };
        assert_eq!(o.devices, [DeviceSpec { slot: 3, kind: DeviceKind::Blk(want.clone()) }]);
        let o = p(&[
            "-o",
            "pci.0.3.0.device=virtio-blk",
            "-o",
            "pci.0.3.0.path=/d",
            "-o",
            "pci.0.3.0.ro=true",
            "-o",
            "pci.0.3.0.nocache=true",
            "-o",
            "pci.0.3.0.sync=true",
            "-o",
            "pci.0.3.0.nodelete=true",
            "-o",
            "pci.0.3.0.sectorsize=4096/16384",
            "-o",
            "pci.0.3.0.ser=DISK7",
            "g",
        ])
        .unwrap();
        assert_eq!(o.devices, [DeviceSpec { slot: 3, kind: DeviceKind::Blk(want) }], "the same through keys");
        let o = p(&["-s", "4,virtio-blk,/d", "-o", "pci.0.4.0.ro=true", "-o", "pci.0.4.0.ro=false", "g"]).unwrap();
        assert_eq!(o.devices[0].kind, DeviceKind::Blk(blk("/d")), "a later key wins");
        assert_eq!(
            p(&["-s", "5,virtio-blk,/d,sectorsize=512", "g"]).unwrap().devices[0].kind,
            DeviceKind::Blk(blk("/d"))
        );
    }

    #[test]
    fn slot_errors_are_named() {
        assert_eq!(
            err(&["-s", "1:0,virtio-blk,/d", "g"]),
            "bhyve: -s 1:0,virtio-blk,/d: '1:0': only plain slots exist (0 to 31), no bus or function"
        );
        assert!(err(&["-s", "0:1:0,virtio-rnd", "g"]).contains("only plain slots exist"));
        assert_eq!(
            err(&["-s", "32,virtio-rnd", "g"]),
            "bhyve: -s 32,virtio-rnd: slot 32: there are 32 slots, 0 to 31 (one virtio-mmio transport each)"
        );
        assert_eq!(err(&["-s", "x,virtio-rnd", "g"]), "bhyve: -s x,virtio-rnd: 'x' is not a slot number");
        assert_eq!(err(&["-s", "1", "g"]), "bhyve: -s 1: needs an emulation (SLOT,EMULATION)");
        assert_eq!(
            err(&["-s", "1,virtio-rnd", "-s", "1,virtio-rnd", "g"]),
            "bhyve: -s 1,virtio-rnd: slot 1 is given twice"
        );
        assert_eq!(
            err(&["-s", "1,virtio-rnd", "-o", "pci.0.1.0.device=virtio-blk", "g"]),
            "bhyve: -o pci.0.1.0.device=virtio-blk: slot 1 is given twice"
        );
        assert_eq!(
            err(&["-s", "2,virtio-net,tap0", "g"]),
            "bhyve: slot 2: unknown emulation 'virtio-net' (virtio-9p, virtio-blk, virtio-rnd)"
        );
        assert_eq!(
            err(&["-s", "2,virtio-blk", "g"]),
            "bhyve: -s 2,virtio-blk: virtio-blk needs a path (SLOT,virtio-blk,PATH)"
        );
        assert_eq!(err(&["-s", "2,virtio-blk,/d,frob", "g"]), "bhyve: slot 2: virtio-blk has no option 'frob'");
        assert_eq!(err(&["-s", "2,virtio-blk,/d,ro=maybe", "g"]), "bhyve: slot 2: ro=maybe: expected true or false");
        assert_eq!(
            err(&["-s", "2,virtio-blk,/d,sectorsize=1000", "g"]),
            "bhyve: slot 2: sectorsize=1000: 1000 is not a power of two from 512 to 65536"
        );
        assert_eq!(
            err(&["-s", "2,virtio-blk,/d,sectorsize=4096/512", "g"]),
            "bhyve: slot 2: sectorsize=4096/512: the physical size 512 is smaller than the logical 4096"
        );
        assert!(err(&["-s", "2,virtio-blk,/d,sectorsize=256", "g"]).contains("256 is not a power of two from 512"));
        assert!(err(&["-s", "2,virtio-blk,/d,ser=012345678901234567890", "g"]).contains("at most 20 printable"));
        assert_eq!(err(&["-s", "2,virtio-rnd,x", "g"]), "bhyve: -s 2,virtio-rnd,x: virtio-rnd takes no options");
        assert_eq!(err(&["-o", "pci.0.2.0.path=/d", "g"]), "bhyve: slot 2: settings but no device (pci.0.N.0.device=)");
        assert_eq!(
            err(&["-o", "pci.1.2.0.device=virtio-rnd", "g"]),
            "bhyve: -o pci.1.2.0.device=virtio-rnd: only bus 0 and function 0 exist (plain slots 0 to 31)"
        );
        assert!(err(&["-o", "pci.0.2.device=virtio-rnd", "g"]).contains("expected pci.0.SLOT.0.KEY"));
        assert!(err(&["-o", "pci.0.2.0.device=virtio-rnd", "-o", "pci.0.2.0.path=/x", "g"])
            .contains("virtio-rnd has no option 'path'"));
    }

    fn share(name: &str, path: &str, read_only: bool) -> DeviceKind {
        DeviceKind::P9(P9Options { sharename: name.into(), path: path.into(), read_only })
    }

    #[test]
    fn virtio_9p_as_bhyve_spells_it() {
        assert_eq!(
            p(&["-s", "3,virtio-9p,host=/srv/share", "g"]).unwrap().devices[0].kind,
            share("host", "/srv/share", false)
        );
        assert_eq!(p(&["-s", "3,virtio-9p,ro,host=/srv", "g"]).unwrap().devices[0].kind, share("host", "/srv", true));
        let o = p(&[
            "-o",
            "pci.0.4.0.device=virtio-9p",
            "-o",
            "pci.0.4.0.sharename=t",
            "-o",
            "pci.0.4.0.path=/p",
            "-o",
            "pci.0.4.0.ro=true",
            "g",
        ])
        .unwrap();
        assert_eq!(o.devices, [DeviceSpec { slot: 4, kind: share("t", "/p", true) }]);
        let tag = "t".repeat(254);
        assert_eq!(
            p(&["-s", &format!("5,virtio-9p,{tag}=/p"), "g"]).unwrap().devices[0].kind,
            share(&tag, "/p", false)
        );
    }

    #[test]
    fn virtio_9p_errors_are_named() {
        assert_eq!(
            err(&["-s", "3,virtio-9p", "g"]),
            "bhyve: slot 3: virtio-9p needs a share (SLOT,virtio-9p,SHARENAME=PATH)"
        );
        assert_eq!(
            err(&["-s", "3,virtio-9p,a=/a,b=/b", "g"]),
            "bhyve: -s 3,virtio-9p,a=/a,b=/b: virtio-9p takes one share (SHARENAME=PATH)"
        );
        assert_eq!(err(&["-s", "3,virtio-9p,=/a", "g"]), "bhyve: slot 3: sharename=: the share name is empty");
        assert_eq!(err(&["-s", "3,virtio-9p,a=", "g"]), "bhyve: slot 3: virtio-9p needs a path (SHARENAME=PATH)");
        assert_eq!(
            err(&["-s", &format!("3,virtio-9p,{}=/a", "t".repeat(255)), "g"]),
            format!("bhyve: slot 3: sharename={}: the share name is 255 bytes long; at most 254 fit", "t".repeat(255))
        );
        assert_eq!(err(&["-s", "3,virtio-9p,a=/a,rw", "g"]), "bhyve: slot 3: virtio-9p has no option 'rw'");
        assert_eq!(
            err(&["-o", "pci.0.3.0.device=virtio-9p", "-o", "pci.0.3.0.sharename=a", "-o", "pci.0.3.0.ro=2", "g"]),
            "bhyve: slot 3: virtio-9p needs a path (SHARENAME=PATH)"
        );
        assert_eq!(
            err(&[
                "-o",
                "pci.0.3.0.device=virtio-9p",
                "-o",
                "pci.0.3.0.sharename=a",
                "-o",
                "pci.0.3.0.path=/a",
                "-o",
                "pci.0.3.0.ro=2",
                "g"
            ]),
            "bhyve: slot 3: ro=2: expected true or false"
        );
    }

    #[test]
    fn help_exits_zero_on_stdout() {
        let e = p(&["--help"]).unwrap_err();
        assert_eq!(e.code, 0);
        assert!(e.out.contains("testdev.param=N") && e.out.contains("-c <[cpus=]N>"));
        assert!(e.out.contains("1 to 32 (the kernel's VM_MAXCPU)"), "{}", e.out);
        assert!(e.out.contains("CPU_ON, CPU_OFF, AFFINITY_INFO"));
        assert!(e.out.contains("virtio-blk,PATH[,ro]") && e.out.contains("pci.0.SLOT.0.device"), "{}", e.out);
        assert!(e.out.contains("virtio-9p,SHARENAME=PATH[,ro]"), "{}", e.out);
        assert!(e.err.is_empty());
    }
}
