//! bhyve's command line, in bhyve's spelling:
//! `bhyve [-c [cpus=]N] [-m SIZE] [-l bootrom,FILE[,VARS]] [-o KEY=VALUE]... NAME`.
//! A bad or missing flag gives one line naming it, the usage, and exit 2.

use crate::virtio::blk::{BlkOptions, SectorSize};
use crate::virtio::console::MAX_NAMED_PORTS;
use crate::virtio::net::{tap, Mac};
use crate::virtio::p9::{check_tag, P9Options};
use clap::{ArgAction, Parser};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use vmmapi::cli;
pub use vmmapi::cli::Exit;
use vmmapi::size::parse_mem_size;

/// One-line usage printed under every command-line error.
pub const USAGE: &str = "usage: bhyve [-c [cpus=]N] [-m SIZE] [-l bootrom,FILE[,VARS]] [-s SLOT,EMULATION[,CONF]]... \
     [-o KEY=VALUE]... NAME  (see --help)";

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
                  virtio-net,TAP[,mac=xx:xx:xx:xx:xx:xx]\n    \
                  a network card on Linux tap TAP (/dev/net/tun, with virtio-net headers and the\n    \
                  tap's offloads); a TAP that does not exist is created, brought up, and removed\n    \
                  when bhyve ends; one that exists is left as it was. The MAC is derived from the\n    \
                  VM's name and the slot (locally administered; the same on every run) if not given\n  \
                  virtio-console[,stdio][,NAME=PATH]...\n    \
                  ports: stdio is the console port (port 0, the guest's hvc0) on bhyve's stdio;\n    \
                  each NAME=PATH a port on a unix socket bhyve creates at PATH and listens on (one\n    \
                  client at a time); ports 1, 2, ... in order: /dev/vport<N>p1, /dev/virtio-ports/NAME\n  \
                  hostbridge, lpc    accepted for bhyve's command lines; nothing is added\n\n\
                  -l bootrom,FILE[,VARS]   the same as -o bootrom=FILE -o bootvars=VARS\n\
                  -l com1,stdio            the console on stdio (the default)\n\n\
                  -o keys:\n  \
                  console=stdio      the guest's console is the PL011 UART (ttyAMA0) on stdin/stdout\n  \
                  console=virtio     the guest's console is a virtio-console port (hvc0) on stdin/stdout,\n                     \
                  the device in the first free slot unless a -s virtio-console has stdio\n                     \
                  Without console=, bhyve follows the kernel command line bhyveload left: its\n                     \
                  last console= naming hvc0 means virtio, anything else (or no Linux) the PL011.\n                     \
                  The PL011's output is always on stdout (for earlycon=pl011,0x9000000 and for\n                     \
                  guests that write to it); stdin goes to the console chosen. (bhyve users know\n                     \
                  -l com1,stdio for the UART: here the UART is always there, and -o console says\n                     \
                  which device gets the keyboard.)\n  \
                  bootrom=FILE       boot this firmware (EDK2's QEMU_EFI.fd or AAVMF_CODE.fd, U-Boot's\n                     \
                  u-boot.bin) from CFI flash bank 0 at 0x0, read-only; vCPU 0 starts at 0x0 and the\n                     \
                  device tree is at 0x40000000. The VM (and its memory, with -m) is made if needed:\n                     \
                  no bhyveload\n  \
                  bootvars=FILE      flash bank 1 at 0x4000000, the firmware's variables, kept in FILE\n                     \
                  (made from the template if missing); without it they last until bhyve exits\n  \
                  bootvars.template=FILE   the template (default: X_VARS*.fd beside an X_CODE*.fd\n                     \
                  firmware, else an erased bank)\n  \
                  sandbox=B          once set up, bhyve confines itself (default true): Landlock (no\n                     \
                  file opened by path but beneath a virtio-9p share), no capabilities (those\n                     \
                  a 9p share needs excepted), and a seccomp allowlist of system calls; a refused\n                     \
                  call stops bhyve naming it. false: none of it (for debugging)\n  \
                  sandbox.user=USER[:GROUP]   the sandbox also makes bhyve USER (a name or uid) with\n                     \
                  GROUP (default: USER's group) as its only group, keeping no capability\n  \
                  testdev            the test device at 0x0b000000\n  \
                  testdev.param=N    the test device, with PARAM reading N\n  \
                  testdev.fpcheck=B  with the test device: check the host's FP registers across every\n                     \
                  VM_RUN (default true; false for benchmarks)\n  \
                  pci.0.SLOT.0.device=EMULATION, pci.0.SLOT.0.KEY=VALUE\n                     \
                  the same as -s (bhyve_config(5)): keys path, ro, nocache, direct (or sync),\n                     \
                  nodelete, sectorsize, ser for virtio-blk; sharename, path, ro for virtio-9p;\n                     \
                  backend, mac for virtio-net; stdio, port.NAME.path for virtio-console;\n                     \
                  booleans true/false\n\n\
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
    /// A boot ROM (`bootrom,FILE[,VARS]`), or the console (`com1,stdio`), in amd64 bhyve's spelling.
    #[arg(short = 'l', value_name = "DEV,CONF", action = ArgAction::Append)]
    lpc: Vec<String>,
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

/// Which device is the console on bhyve's stdio (`-o console=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// Not said: the kernel command line decides ([`wants_virtio_console`]).
    Auto,
    /// `stdio`: the PL011.
    Stdio,
    /// `virtio`: a virtio-console port.
    Virtio,
}

/// Whether a kernel command line puts the console on a virtio-console
/// port: its last `console=` names an `hvc` device.
pub fn wants_virtio_console(cmdline: &str) -> bool {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|a| a.strip_prefix("console="))
        .next_back()
        .is_some_and(|c| c.starts_with("hvc"))
}

/// A virtio-net card's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// The tap's name.
    pub tap: String,
    /// Its address, given or derived.
    pub mac: Mac,
}

/// A virtio-console's ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// A console port on bhyve's stdio.
    pub stdio: bool,
    /// Named ports on unix sockets, in order.
    pub ports: Vec<(String, PathBuf)>,
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
    /// `virtio-net`.
    Net(NetOptions),
    /// `virtio-console`.
    Console(ConsoleOptions),
}

/// A device and its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Its slot: the virtio-mmio transport number.
    pub slot: u32,
    /// What it is.
    pub kind: DeviceKind,
}

/// Firmware to boot from the flash (`-o bootrom=`, `-l bootrom,`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRom {
    /// The firmware image, for flash bank 0.
    pub rom: PathBuf,
    /// The variable store's file, for flash bank 1.
    pub vars: Option<PathBuf>,
    /// What a missing variable store is made from.
    pub template: Option<PathBuf>,
}

/// `-o sandbox.user=USER[:GROUP]`: a name or a number each; without
/// GROUP, the user's own group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// The user's name or uid.
    pub user: String,
    /// The group's name or gid, if given.
    pub group: Option<String>,
}

impl UserSpec {
    /// Parses `USER[:GROUP]`.
    pub fn parse(s: &str) -> Result<UserSpec, String> {
        let (user, group) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let ok = |n: &str| !n.is_empty() && !n.contains(|c: char| c.is_whitespace() || c == ':' || c == '/');
        if !ok(user) || group.is_some_and(|g| !ok(g)) {
            return Err("expected USER[:GROUP], each a name or a number".into());
        }
        Ok(UserSpec { user: user.to_string(), group: group.map(str::to_string) })
    }
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
    /// With the test device: whether vCPU runs check the host's FP
    /// registers (`-o testdev.fpcheck`).
    pub fp_check: bool,
    /// `-o sandbox=`: whether bhyve sandboxes itself once set up.
    pub sandbox: bool,
    /// `-o sandbox.user=`: the user the sandbox makes bhyve.
    pub sandbox_user: Option<UserSpec>,
    /// The devices of `-s` and `pci.*`, by slot.
    pub devices: Vec<DeviceSpec>,
    /// Firmware to boot, if any (else bhyveload prepared the VM).
    pub bootrom: Option<BootRom>,
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
    let mut opts = Options {
        name: a.name,
        cpus,
        mem_size,
        console: ConsoleKind::Auto,
        testdev: None,
        fp_check: true,
        sandbox: true,
        sandbox_user: None,
        devices: vec![],
        bootrom: None,
    };
    let (mut rom, mut vars, mut template) = (None, None, None);
    for l in &a.lpc {
        let bad = |why: &str| usage_error(&format!("-l {l}: {why}"));
        let mut parts = l.splitn(3, ',');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("bootrom"), Some(f), v) if !f.is_empty() && v != Some("") => {
                rom = Some(PathBuf::from(f));
                if let Some(v) = v {
                    vars = Some(PathBuf::from(v));
                }
            }
            (Some("bootrom"), _, _) => return Err(bad("expected bootrom,FILE[,VARSFILE]")),
            (Some("com1"), Some("stdio"), None) => {}
            _ => return Err(bad("only bootrom,FILE[,VARSFILE] and com1,stdio exist")),
        }
    }
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
                Some("virtio") => opts.console = ConsoleKind::Virtio,
                _ => return Err(bad("the console is 'stdio' (the PL011) or 'virtio' (a virtio-console port)")),
            },
            "testdev" => {
                testdev_on = Some(match value {
                    None => true,
                    Some(v) => parse_bool(v).ok_or_else(|| bad("expected true or false"))?,
                })
            }
            "testdev.fpcheck" => {
                opts.fp_check = parse_bool(value.unwrap_or("true")).ok_or_else(|| bad("expected true or false"))?
            }
            "sandbox" => {
                opts.sandbox = parse_bool(value.unwrap_or("true")).ok_or_else(|| bad("expected true or false"))?
            }
            "sandbox.user" => {
                opts.sandbox_user = Some(UserSpec::parse(value.unwrap_or("")).map_err(|e| bad(&e))?);
            }
            "bootrom" | "lpc.bootrom" => rom = Some(path_value(value).ok_or_else(|| bad("needs a file"))?),
            "bootvars" | "lpc.bootvars" => vars = Some(path_value(value).ok_or_else(|| bad("needs a file"))?),
            "bootvars.template" => template = Some(path_value(value).ok_or_else(|| bad("needs a file"))?),
            "testdev.param" => {
                let v = value.ok_or_else(|| bad("needs a value (testdev.param=N)"))?;
                param = Some(parse_u64(v).ok_or_else(|| bad("not a number"))?);
            }
            _ if key.starts_with("pci.") => slots.add_key(key, value.unwrap_or("true")).map_err(|e| bad(&e))?,
            _ => return Err(usage_error(&format!("unknown -o key '{key}'"))),
        }
    }
    if opts.sandbox_user.is_some() && !opts.sandbox {
        return Err(usage_error("sandbox.user needs the sandbox (it is part of it): drop sandbox=false"));
    }
    opts.devices = slots.devices(&opts.name).map_err(|e| usage_error(&e))?;
    let stdio_ports = opts.devices.iter().filter(|d| matches!(&d.kind, DeviceKind::Console(c) if c.stdio)).count();
    if stdio_ports > 1 {
        return Err(usage_error("only one virtio-console can have its console on stdio"));
    }
    if stdio_ports == 1 {
        match opts.console {
            ConsoleKind::Stdio => {
                return Err(usage_error("-o console=stdio gives stdio to the PL011: no virtio-console can have it"))
            }
            _ => opts.console = ConsoleKind::Virtio,
        }
    }
    opts.bootrom = match (rom, vars, template) {
        (Some(rom), vars, template) => Some(BootRom { rom, vars, template }),
        (None, None, None) => None,
        (None, _, _) => return Err(usage_error("bootvars needs a bootrom (-o bootrom=FILE)")),
    };
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
    /// Port keys by slot, in the order they came.
    port_order: BTreeMap<u32, Vec<String>>,
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
            "virtio-net" => {
                let (tap, rest) = conf.split_first().ok_or("virtio-net needs a tap (SLOT,virtio-net,TAP)")?;
                if tap.is_empty() || tap.contains('=') {
                    return Err("virtio-net needs a tap first (SLOT,virtio-net,TAP[,mac=MAC])".into());
                }
                self.set(slot, "backend", tap)?;
                for o in rest {
                    match o.split_once('=') {
                        Some((k, v)) => self.set(slot, k, v)?,
                        None => self.set(slot, o, "true")?,
                    }
                }
            }
            "virtio-console" => {
                for o in &conf {
                    match o.split_once('=') {
                        Some((name, path)) => {
                            check_port_name(name)?;
                            self.set(slot, &format!("port.{name}.path"), path)?;
                        }
                        None if *o == "stdio" => self.set(slot, "stdio", "true")?,
                        None => return Err(format!("virtio-console: '{o}' is neither stdio nor NAME=PATH")),
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
        let parts: Vec<&str> = key.splitn(5, '.').collect();
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
        if key.starts_with("port.") {
            if keys.contains_key(key) {
                return Err(format!("slot {slot}: {key} is given twice"));
            }
            self.port_order.entry(slot).or_default().push(key.to_string());
        }
        if key == "device" && keys.contains_key("device") {
            return Err(format!("slot {slot} is given twice"));
        }
        keys.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// The devices the keys describe (VM `vm`'s: its name makes MACs).
    fn devices(&self, vm: &str) -> Result<Vec<DeviceSpec>, String> {
        let mut out = vec![];
        for (&slot, keys) in &self.keys {
            let at = |what: String| format!("slot {slot}: {what}");
            let device = keys.get("device").ok_or_else(|| at("settings but no device (pci.0.N.0.device=)".into()))?;
            let only = |allowed: &[&str]| -> Result<(), String> {
                let port_key = |k: &str| device == "virtio-console" && port_path_key(k).is_some();
                match keys.keys().find(|k| k.as_str() != "device" && !allowed.contains(&k.as_str()) && !port_key(k)) {
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
                "virtio-net" => {
                    only(&["backend", "mac"])?;
                    let tap = keys
                        .get("backend")
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| at("virtio-net needs a backend (a tap)".into()))?;
                    tap::check_name(tap).map_err(|e| at(e.to_string()))?;
                    let mac = match keys.get("mac") {
                        Some(m) => Mac::parse(m).map_err(|e| at(format!("mac={m}: {e}")))?,
                        None => Mac::derived(vm, slot),
                    };
                    Some(DeviceKind::Net(NetOptions { tap: tap.clone(), mac }))
                }
                "virtio-console" => {
                    only(&["stdio"])?;
                    let stdio = match keys.get("stdio") {
                        None => false,
                        Some(v) => parse_bool(v).ok_or_else(|| at(format!("stdio={v}: expected true or false")))?,
                    };
                    let mut ports = vec![];
                    let order = self.port_order.get(&slot).map_or(&[][..], |v| &v[..]);
                    for k in order {
                        let v = &keys[k];
                        if let Some(name) = port_path_key(k) {
                            check_port_name(name).map_err(at)?;
                            if v.is_empty() {
                                return Err(at(format!("port {name} needs a socket path")));
                            }
                            ports.push((name.to_string(), PathBuf::from(v)));
                        }
                    }
                    if ports.len() > MAX_NAMED_PORTS {
                        return Err(at(format!("at most {MAX_NAMED_PORTS} named ports")));
                    }
                    if !stdio && ports.is_empty() {
                        return Err(at("virtio-console needs a port (stdio or NAME=PATH)".into()));
                    }
                    Some(DeviceKind::Console(ConsoleOptions { stdio, ports }))
                }
                // bhyve's PCI host bridge and ISA bridge: nothing to add here.
                "hostbridge" | "lpc" => None,
                other => {
                    return Err(at(format!(
                        "unknown emulation '{other}' (virtio-blk, virtio-rnd, virtio-net, virtio-console, virtio-9p)"
                    )))
                }
            };
            if let Some(kind) = kind {
                out.push(DeviceSpec { slot, kind });
            }
        }
        Ok(out)
    }
}

/// `port.NAME.path`: NAME.
fn port_path_key(k: &str) -> Option<&str> {
    k.strip_prefix("port.")?.strip_suffix(".path")
}

/// A port's name: 1 to 64 of letters, digits, `_` and `-` (it becomes a
/// file name in the guest, and a key here).
fn check_port_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!("'{name}' is not a port name (1 to 64 letters, digits, '_' or '-')"));
    }
    Ok(())
}

impl Options {
    /// The slot a virtio-console with the stdio console port goes in when
    /// none was given: the first free one.
    pub fn free_slot(&self) -> Option<u32> {
        (0..SLOTS).find(|s| !self.devices.iter().any(|d| d.slot == *s))
    }

    /// Gives the guest its console on a virtio-console port on stdio: the
    /// device of `-s` that has it, or a new one in the first free slot.
    pub fn add_stdio_console(&mut self) -> Result<(), String> {
        if self.devices.iter().any(|d| matches!(&d.kind, DeviceKind::Console(c) if c.stdio)) {
            return Ok(());
        }
        let slot = self.free_slot().ok_or("no free slot for the virtio console (-o console=virtio)")?;
        self.devices
            .push(DeviceSpec { slot, kind: DeviceKind::Console(ConsoleOptions { stdio: true, ports: vec![] }) });
        self.devices.sort_by_key(|d| d.slot);
        Ok(())
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

/// A file name given as a value.
fn path_value(v: Option<&str>) -> Option<PathBuf> {
    v.filter(|v| !v.is_empty()).map(PathBuf::from)
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
mod tests;
