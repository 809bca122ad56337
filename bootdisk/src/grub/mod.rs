//! GRUB's configuration, run the way GRUB runs it, as far as choosing a
//! Linux entry goes: variables (`set`, `export`, `load_env` from
//! `grubenv`), `search` by UUID, label or file, `configfile` and `source`,
//! `if` on conditions that can be decided here, `menuentry` and `submenu`,
//! the default (`N`, a title or id, `A>B` into a submenu), then the chosen
//! entry's `linux` and `initrd`. Other commands (`insmod`, `echo`,
//! `load_video`, ...) are skipped.
//!
//! Devices: `hd0` is the disk; `(hd0,gptN)`, `(hd0,msdosN)` or `(hd0,N)`
//! its partition N. Anything else (another disk, LVM, RAID) is refused.

mod cond;
mod script;
#[cfg(test)]
pub(crate) mod tests;

use crate::bls;
use crate::error::Error;
use crate::files::{dirname, place, Choice, FileRef, Files};
use crate::table::TableKind;
use crate::volume::Stat;
use script::{Part, Stmt, Word};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// The most commands one run may execute, and files it may nest.
const MAX_STEPS: u32 = 100_000;
const MAX_NESTING: u32 = 16;

/// Variables GRUB sets before reading its configuration, as it does on
/// 64-bit Arm EFI (all exported).
const PRESET: [(&str, &str); 9] = [
    ("grub_platform", "efi"),
    ("grub_cpu", "arm64"),
    ("feature_menuentry_id", "y"),
    ("feature_default_font_path", "y"),
    ("feature_all_video_module", "y"),
    ("feature_timeout_style", "y"),
    ("feature_platform_search_hint", "y"),
    ("feature_200_final", "y"),
    ("?", "0"),
];

/// A variable's value, and whether it is known (a value derived from the
/// status of a command this reader cannot run is not).
#[derive(Debug, Clone, Default)]
struct Val {
    s: String,
    known: bool,
}

#[derive(Debug, Clone, Default)]
struct Env {
    vars: HashMap<String, Val>,
    exported: HashSet<String>,
}

impl Env {
    fn get(&self, name: &str) -> Val {
        self.vars.get(name).cloned().unwrap_or(Val { s: String::new(), known: true })
    }
    fn set(&mut self, name: &str, s: &str, known: bool) {
        // GRUB keeps `root` without parentheses whichever way it is set.
        let s = if name == "root" { s.trim_start_matches('(').trim_end_matches(')') } else { s };
        self.vars.insert(name.to_string(), Val { s: s.to_string(), known });
    }
    /// A new context, as GRUB opens for `configfile`, a submenu or an
    /// entry: only exported variables carry over.
    fn child(&self) -> Env {
        let vars = self.vars.iter().filter(|(k, _)| self.exported.contains(*k)).map(|(k, v)| (k.clone(), v.clone()));
        Env { vars: vars.collect(), exported: self.exported.clone() }
    }
}

/// What a menu item runs.
#[derive(Debug, Clone)]
enum Body {
    Script(Rc<Vec<Stmt>>),
    /// A BLS entry added by Fedora's `blscfg`.
    Bls(Box<bls::Entry>, usize),
}

#[derive(Debug, Clone)]
struct Item {
    title: String,
    id: Option<String>,
    submenu: bool,
    body: Body,
}

/// What an entry (or the top level) loaded.
#[derive(Debug, Default)]
struct Loaded {
    kernel: Option<(FileRef, String)>,
    cmdline: String,
    initrds: Vec<FileRef>,
    other: Option<String>,
    booted: bool,
}

enum Flow {
    Next,
    Stop,
}

struct Grub<'f> {
    files: &'f dyn Files,
    env: Env,
    menu: Vec<Item>,
    /// The configuration files read, in order.
    chain: Vec<String>,
    /// The file being run, for messages.
    file: String,
    notes: Vec<String>,
    status: Option<bool>,
    steps: u32,
    nesting: u32,
    loaded: Loaded,
    start_vol: usize,
    /// The file whose menu is shown: the first, or the last `configfile`.
    menu_file: (usize, String),
}

/// Runs the GRUB configuration at `path` on volume `vol` and returns the
/// default entry's kernel, initrds and command line.
pub fn choose(files: &dyn Files, vol: usize, path: &str) -> Result<Choice, Error> {
    let mut env = Env::default();
    for (k, v) in PRESET {
        env.set(k, v, true);
        env.exported.insert(k.to_string());
    }
    let dev = dev_name(files, vol);
    let prefix = format!("({dev}){}", dirname(path));
    for (k, v) in [("root", dev.as_str()), ("prefix", &prefix), ("cmdpath", &prefix), ("config_directory", &prefix)] {
        env.set(k, v, true);
        env.exported.insert(k.to_string());
    }
    let mut g = Grub {
        files,
        env,
        menu: Vec::new(),
        chain: Vec::new(),
        file: String::new(),
        notes: Vec::new(),
        status: Some(true),
        steps: 0,
        nesting: 0,
        loaded: Loaded::default(),
        start_vol: vol,
        menu_file: (vol, path.to_string()),
    };
    g.run_file(vol, path, true)?;
    if g.loaded.booted && g.loaded.kernel.is_some() {
        let loaded = std::mem::take(&mut g.loaded);
        let why = format!("the top level of {} boots it", g.chain.join(" -> "));
        return g.finish("(top level)".into(), loaded, why);
    }
    if g.menu.is_empty() {
        let (vol, config) = g.menu_file.clone();
        return Err(Error::NoEntries { disk: files.disk().into(), config, place: place(files, vol) });
    }
    let default = g.env.get("default");
    if !default.known {
        g.notes.push(format!("the default entry '{}' depends on a command bhyveload cannot run", default.s));
    }
    let want = if default.s.is_empty() { "0".to_string() } else { default.s.clone() };
    let (item, level_env) = g.select(&want)?;
    let loaded = g.run_entry(&item, &level_env)?;
    let how = if default.s.is_empty() {
        "no default: the first entry".to_string()
    } else {
        format!("default '{}'", default.s)
    };
    let why = format!("{} in {}", how, g.chain.join(" -> "));
    g.finish(item.title.clone(), loaded, why)
}

/// GRUB's name for a volume: `hd0,gpt2`, `hd0,msdos1` or `hd0`.
fn dev_name(files: &dyn Files, vol: usize) -> String {
    let n = files.vols().get(vol).map_or(0, |v| v.number);
    match files.table() {
        TableKind::Gpt => format!("hd0,gpt{n}"),
        TableKind::Mbr => format!("hd0,msdos{n}"),
        TableKind::WholeDisk => "hd0".into(),
    }
}

impl Grub<'_> {
    fn err_syntax(&self, line: u32, what: String) -> Error {
        Error::Syntax { disk: self.files.disk().into(), file: self.file.clone(), line, what }
    }

    fn config_name(&self) -> String {
        "grub.cfg".into()
    }

    fn run_file(&mut self, vol: usize, path: &str, must_exist: bool) -> Result<Flow, Error> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Error::Runaway {
                disk: self.files.disk().into(),
                config: self.file.clone(),
                what: format!("nests configfile/source more than {MAX_NESTING} deep"),
            });
        }
        let here = format!("{} on {}", path, place(self.files, vol));
        let text = match self.files.text(vol, path)? {
            Some(t) => t,
            None if must_exist => {
                return Err(Error::Missing {
                    disk: self.files.disk().into(),
                    role: "configuration file".into(),
                    path: path.into(),
                    config: if self.file.is_empty() { "the disk".into() } else { self.file.clone() },
                    place: place(self.files, vol),
                })
            }
            None => {
                self.nesting -= 1;
                self.status = Some(false);
                return Ok(Flow::Next);
            }
        };
        if must_exist {
            self.menu_file = (vol, path.to_string());
        }
        let outer = std::mem::replace(&mut self.file, here.clone());
        self.chain.push(here);
        let script = script::parse(&text).map_err(|e| self.err_syntax(e.line, e.what))?;
        let flow = self.run_list(&script)?;
        self.file = outer;
        self.nesting -= 1;
        Ok(flow)
    }

    fn run_list(&mut self, list: &[Stmt]) -> Result<Flow, Error> {
        for s in list {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err(Error::Runaway {
                    disk: self.files.disk().into(),
                    config: self.file.clone(),
                    what: format!("runs more than {MAX_STEPS} commands"),
                });
            }
            let flow = match s {
                Stmt::Cmd { line, words } => self.command(*line, words)?,
                Stmt::If { line, arms, otherwise } => self.run_if(*line, arms, otherwise.as_deref())?,
                Stmt::Menu { words, body, submenu, .. } => {
                    self.add_item(words, body, *submenu);
                    Flow::Next
                }
                Stmt::Skipped { .. } => Flow::Next,
            };
            if let Flow::Stop = flow {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Next)
    }

    fn run_if(
        &mut self,
        line: u32,
        arms: &[(Vec<Stmt>, Vec<Stmt>)],
        otherwise: Option<&[Stmt]>,
    ) -> Result<Flow, Error> {
        for (i, (cond, body)) in arms.iter().enumerate() {
            if let Flow::Stop = self.run_list(cond)? {
                return Ok(Flow::Stop);
            }
            match self.status {
                Some(true) => return self.run_list(body),
                Some(false) => {}
                None => {
                    let later = arms[i..].iter().any(|(c, b)| script::relevant(c) || script::relevant(b));
                    if later || otherwise.is_some_and(script::relevant) {
                        self.notes.push(format!(
                            "{}, line {line}: could not decide an 'if'; took its first branch",
                            self.file
                        ));
                    }
                    return self.run_list(body);
                }
            }
        }
        match otherwise {
            Some(o) => self.run_list(o),
            None => Ok(Flow::Next),
        }
    }

    /// Expands words into fields: variables substituted, unquoted ones
    /// split on blanks. The flag says whether every value was known.
    fn expand(&self, words: &[Word]) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        let mut known = true;
        for w in words {
            let mut cur = String::new();
            let mut have = false;
            for p in &w.0 {
                match p {
                    Part::Lit(s) | Part::Quoted(s) => {
                        cur.push_str(s);
                        have = true;
                    }
                    Part::Var { name, quoted } => {
                        let v = self.var(name);
                        known &= v.known;
                        if *quoted {
                            cur.push_str(&v.s);
                            have = true;
                            continue;
                        }
                        if v.s.starts_with(char::is_whitespace) && have {
                            out.push(std::mem::take(&mut cur));
                            have = false;
                        }
                        for (i, piece) in v.s.split_whitespace().enumerate() {
                            if i > 0 {
                                out.push(std::mem::take(&mut cur));
                            }
                            cur.push_str(piece);
                            have = true;
                        }
                        if v.s.ends_with(char::is_whitespace) && have {
                            out.push(std::mem::take(&mut cur));
                            have = false;
                        }
                    }
                }
            }
            if have {
                out.push(cur);
            }
        }
        (out, known)
    }

    fn var(&self, name: &str) -> Val {
        match name {
            "?" => match self.status {
                Some(ok) => Val { s: if ok { "0" } else { "1" }.into(), known: true },
                None => Val { s: String::new(), known: false },
            },
            _ => self.env.get(name),
        }
    }

    fn command(&mut self, line: u32, words: &[Word]) -> Result<Flow, Error> {
        let (args, known) = self.expand(words);
        let Some(cmd) = args.first().map(String::as_str) else { return Ok(Flow::Next) };
        let rest = &args[1..];
        // NAME=VALUE as a command of its own.
        if let Some((name, value)) = assignment(words, cmd) {
            self.env.set(name, value, known);
            self.status = Some(true);
            return Ok(Flow::Next);
        }
        self.status = Some(true);
        match cmd {
            "set" => {
                for a in rest {
                    match a.split_once('=') {
                        Some((n, v)) => self.env.set(n, v, known),
                        None => self.env.set(a, "", true),
                    }
                }
            }
            "unset" => {
                for n in rest {
                    self.env.vars.remove(n);
                }
            }
            "export" => {
                for n in rest {
                    self.env.exported.insert(n.clone());
                }
            }
            "true" => {}
            "false" => self.status = Some(false),
            "[" | "test" => {
                let mut a = rest.to_vec();
                if cmd == "[" && a.last().map(String::as_str) != Some("]") {
                    return Err(self.err_syntax(line, "'[' without ']'".into()));
                }
                if cmd == "[" {
                    a.pop();
                }
                self.status = if known { cond::eval(&a, &|p| self.stat(p)) } else { None };
            }
            "search" | "search.fs_uuid" | "search.fs_label" | "search.file" | "search.fs_file" => {
                self.search(cmd, rest)
            }
            "configfile" | "source" | "." => {
                let path = rest.first().ok_or_else(|| self.err_syntax(line, format!("'{cmd}' without a file")))?;
                let (vol, p) = self.locate(path)?;
                if cmd == "configfile" {
                    // A new context whose menu replaces this one.
                    let child = self.env.child();
                    let outer_env = std::mem::replace(&mut self.env, child);
                    let outer_menu = std::mem::take(&mut self.menu);
                    self.run_file(vol, &p, true)?;
                    drop((outer_env, outer_menu));
                    return Ok(Flow::Stop);
                }
                return self.run_file(vol, &p, false);
            }
            "load_env" => self.load_env(rest)?,
            "blscfg" => self.blscfg()?,
            "linux" | "linux16" | "linuxefi" => {
                let path = rest.first().ok_or_else(|| self.err_syntax(line, format!("'{cmd}' without a kernel")))?;
                let (vol, p) = self.locate(path)?;
                self.loaded.kernel = Some((FileRef { vol, path: p }, path.clone()));
                self.loaded.cmdline = loader_cmdline(rest);
                self.loaded.initrds.clear();
            }
            "initrd" | "initrd16" | "initrdefi" => {
                let mut refs = Vec::new();
                for a in rest {
                    if a.starts_with("newc:") || a.starts_with("--") {
                        return Err(
                            self.err_syntax(line, format!("'{cmd} {a}': only plain initrd files are supported"))
                        );
                    }
                    let (vol, p) = self.locate(a)?;
                    refs.push(FileRef { vol, path: p });
                }
                self.loaded.initrds = refs;
            }
            "devicetree" => {
                self.notes.push(format!("{}, line {line}: ignored 'devicetree' (bhyve makes its own)", self.file))
            }
            "chainloader" | "multiboot" | "multiboot2" | "kfreebsd" | "knetbsd" | "kopenbsd" | "xnu_kernel"
            | "xnu_kernel64" | "appleloader" | "legacy_configfile" | "fwsetup" | "reboot" | "halt" => {
                if cmd == "fwsetup" && rest.first().map(String::as_str) == Some("--is-supported") {
                    // No firmware setup here.
                    self.status = Some(false);
                } else if self.loaded.other.is_none() {
                    self.loaded.other = Some(cmd.to_string());
                }
            }
            "boot" => {
                self.loaded.booted = true;
                return Ok(Flow::Stop);
            }
            _ => self.status = None,
        }
        Ok(Flow::Next)
    }

    /// A path as GRUB reads it: `(device)/path`, or `/path` on `$root`.
    fn locate(&self, path: &str) -> Result<(usize, String), Error> {
        let (dev, rest) = match path.strip_prefix('(') {
            Some(p) => match p.split_once(')') {
                Some((d, r)) => (d.to_string(), r),
                None => return Err(self.no_device(format!("the malformed device in '{path}'"))),
            },
            None => (self.env.get("root").s, path),
        };
        let vol = self.device(&dev)?;
        Ok((vol, crate::files::join("/", rest)))
    }

    fn no_device(&self, what: String) -> Error {
        Error::NoDevice { disk: self.files.disk().into(), config: self.config_name(), what }
    }

    /// The volume a GRUB device name stands for.
    fn device(&self, dev: &str) -> Result<usize, Error> {
        let bad = || self.no_device(format!("device ({dev})"));
        if dev.is_empty() {
            return Ok(self.start_vol);
        }
        let (disk, part) = match dev.split_once(',') {
            Some((d, p)) => (d, Some(p)),
            None => (dev, None),
        };
        if disk != "hd0" {
            return Err(bad());
        }
        let number = match (part, self.files.table()) {
            (None, TableKind::WholeDisk) => 0,
            (None, _) => {
                return Err(self.no_device(format!("device ({dev}), the whole disk, which has a partition table")))
            }
            (Some(p), t) => {
                let digits = match t {
                    TableKind::Gpt => p.strip_prefix("gpt").unwrap_or(p),
                    TableKind::Mbr => p.strip_prefix("msdos").unwrap_or(p),
                    TableKind::WholeDisk => return Err(bad()),
                };
                digits.parse::<u32>().map_err(|_| bad())?
            }
        };
        self.files.vols().iter().position(|v| v.number == number).ok_or_else(bad)
    }

    fn stat(&self, path: &str) -> Option<Stat> {
        let (vol, p) = self.locate(path).ok()?;
        self.files.stat(vol, &p).ok().flatten()
    }

    fn search(&mut self, cmd: &str, args: &[String]) {
        let mut kind = match cmd {
            "search.fs_uuid" => 'u',
            "search.fs_label" => 'l',
            _ => 'f',
        };
        let mut var: Option<String> = None;
        let mut names = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-u" | "--fs-uuid" => kind = 'u',
                "-l" | "--label" => kind = 'l',
                "-f" | "--file" => kind = 'f',
                "-s" | "--set" => var = Some("root".into()),
                "--hint" | "-h" => {
                    it.next();
                }
                a if a.starts_with("--set=") => var = Some(a["--set=".len()..].to_string()),
                a if a.starts_with('-') => {}
                a => names.push(a.to_string()),
            }
        }
        let name = match cmd {
            // search.fs_uuid NAME [VAR [HINTS...]]
            "search" => names.last().cloned(),
            _ => {
                var = names.get(1).cloned();
                names.first().cloned()
            }
        };
        let Some(name) = name else {
            self.status = Some(false);
            return;
        };
        let vols = self.files.vols();
        let found = (0..vols.len()).find(|&i| match kind {
            'u' => vols[i].uuid.eq_ignore_ascii_case(&name),
            'l' => vols[i].label == name,
            _ => self.files.stat(i, &crate::files::join("/", &name)).ok().flatten().is_some(),
        });
        match found {
            Some(i) => {
                if let Some(v) = var {
                    let dev = dev_name(self.files, i);
                    self.env.set(&v, &dev, true);
                }
                self.status = Some(true);
            }
            None => {
                let what = match kind {
                    'u' => "file system UUID",
                    'l' => "file system label",
                    _ => "file",
                };
                self.notes.push(format!("{}: search found no {what} '{name}' on {}", self.file, self.files.disk()));
                self.status = Some(false);
            }
        }
    }

    /// `load_env [-f FILE] [VAR...]`: variables from a `grubenv` block.
    fn load_env(&mut self, args: &[String]) -> Result<(), Error> {
        let mut file = None;
        let mut only = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-f" | "--file" => file = it.next().cloned(),
                a if a.starts_with("--file=") => file = Some(a["--file=".len()..].to_string()),
                a if a.starts_with('-') => {}
                a => only.push(a.to_string()),
            }
        }
        let file = file.unwrap_or_else(|| format!("{}/grubenv", self.env.get("prefix").s));
        let Ok((vol, p)) = self.locate(&file) else {
            self.status = Some(false);
            return Ok(());
        };
        let Some(text) = self.files.text(vol, &p)? else {
            self.status = Some(false);
            return Ok(());
        };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((k, v)) = line.split_once('=') {
                if only.is_empty() || only.iter().any(|o| o == k) {
                    let v = v.replace("\\n", "\n").replace("\\\\", "\\");
                    self.env.set(k, &v, true);
                }
            }
        }
        Ok(())
    }

    /// Fedora's `blscfg`: the BLS entries of `$root` become menu entries.
    fn blscfg(&mut self) -> Result<(), Error> {
        let vol = self.device(&self.env.get("root").s)?;
        let vars = &self.env;
        let expand = |s: &str| expand_plain(s, &|n| vars.get(n).s);
        let (entries, notes) = bls::entries(self.files, vol, Some(&expand))?;
        self.notes.extend(notes);
        for e in entries {
            self.menu.push(Item {
                title: e.title.clone(),
                id: Some(e.id.clone()),
                submenu: false,
                body: Body::Bls(Box::new(e), vol),
            });
        }
        Ok(())
    }

    fn add_item(&mut self, words: &[Word], body: &Rc<Vec<Stmt>>, submenu: bool) {
        let (args, _) = self.expand(words);
        let mut title = None;
        let mut id = None;
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--class" | "--users" | "--hotkey" | "--source" => {
                    it.next();
                }
                "--id" => id = it.next(),
                a if a.starts_with("--id=") => id = Some(a["--id=".len()..].to_string()),
                "--unrestricted" => {}
                a if a.starts_with("--") => {}
                _ if title.is_none() => title = Some(a),
                _ => {}
            }
        }
        self.menu.push(Item { title: title.unwrap_or_default(), id, submenu, body: Body::Script(body.clone()) });
    }

    /// The item `default` names, walking into submenus for `A>B`, with
    /// the context its level ran in.
    fn select(&mut self, default: &str) -> Result<(Item, Env), Error> {
        let mut items = std::mem::take(&mut self.menu);
        let mut env = self.env.clone();
        let parts: Vec<&str> = default.split('>').collect();
        for (i, part) in parts.iter().enumerate() {
            let found = match part.trim().parse::<usize>() {
                Ok(n) => items.get(n).cloned(),
                Err(_) => items.iter().find(|it| it.id.as_deref() == Some(part) || it.title == *part).cloned(),
            };
            let Some(item) = found else {
                let titles: Vec<String> = items.iter().map(|i| format!("'{}'", i.title)).collect();
                return Err(Error::NoSuchEntry {
                    disk: self.files.disk().into(),
                    config: self.config_name(),
                    default: default.into(),
                    entries: if titles.is_empty() { "none".into() } else { titles.join(", ") },
                });
            };
            let last = i + 1 == parts.len();
            match (item.submenu, last) {
                (false, true) => return Ok((item, env)),
                (true, true) => {
                    return Err(self.unbootable(&item.title, "is a submenu, not an entry".into()));
                }
                (false, false) => {
                    return Err(
                        self.unbootable(&item.title, format!("is an entry, not a submenu holding '{}'", parts[i + 1]))
                    );
                }
                (true, false) => {
                    let Body::Script(body) = &item.body else { unreachable!("submenus are scripts") };
                    let outer = std::mem::replace(&mut self.env, env.child());
                    self.run_list(body)?;
                    env = std::mem::replace(&mut self.env, outer);
                    items = std::mem::take(&mut self.menu);
                }
            }
        }
        Err(self.unbootable(default, "is empty".into()))
    }

    fn unbootable(&self, title: &str, what: String) -> Error {
        Error::Unbootable { disk: self.files.disk().into(), config: self.config_name(), title: title.into(), what }
    }

    /// Runs the chosen entry in its own context, as GRUB does on boot.
    fn run_entry(&mut self, item: &Item, level_env: &Env) -> Result<Loaded, Error> {
        match &item.body {
            Body::Bls(e, vol) => Ok(Loaded {
                kernel: Some((FileRef { vol: *vol, path: e.linux.clone() }, e.linux.clone())),
                cmdline: loader_cmdline(
                    &std::iter::once(e.linux.clone())
                        .chain(e.options.split_whitespace().map(String::from))
                        .collect::<Vec<_>>(),
                ),
                initrds: e.initrds.iter().map(|p| FileRef { vol: *vol, path: p.clone() }).collect(),
                other: None,
                booted: true,
            }),
            Body::Script(body) => {
                self.env = level_env.child();
                self.env.set("chosen", &item.title, true);
                self.loaded = Loaded::default();
                self.run_list(body)?;
                Ok(std::mem::take(&mut self.loaded))
            }
        }
    }

    fn finish(self, title: String, loaded: Loaded, why: String) -> Result<Choice, Error> {
        if let Some(other) = loaded.other.filter(|_| loaded.kernel.is_none()) {
            return Err(self.unbootable(&title, format!("boots with '{other}'; bhyveload loads Linux kernels only")));
        }
        let Some((kernel, _)) = loaded.kernel else {
            return Err(self.unbootable(&title, "names no kernel (no 'linux' line)".into()));
        };
        Ok(Choice {
            title,
            kernel,
            initrds: loaded.initrds,
            cmdline: loaded.cmdline,
            config: self.config_name(),
            why,
            notes: self.notes,
        })
    }
}

/// `NAME=VALUE` as a command: the first word's unquoted start is a name
/// followed by '='.
fn assignment<'a>(words: &[Word], expanded: &'a str) -> Option<(&'a str, &'a str)> {
    let Some(Part::Lit(first)) = words.first().and_then(|w| w.0.first()) else { return None };
    let (name, _) = first.split_once('=')?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    expanded.split_once('=')
}

/// The kernel command line GRUB's Linux loader builds from `linux`'s
/// arguments: `BOOT_IMAGE=` and the kernel path, then the arguments, each
/// with `\`, `'` and `"` escaped by a backslash, and in double quotes if
/// it holds a blank.
fn loader_cmdline(args: &[String]) -> String {
    let mut out = String::from("BOOT_IMAGE=");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let quote = a.contains(' ');
        if quote {
            out.push('"');
        }
        for c in a.chars() {
            if matches!(c, '\\' | '\'' | '"') {
                out.push('\\');
            }
            out.push(c);
        }
        if quote {
            out.push('"');
        }
    }
    out
}

/// `$name` and `${name}` in `s` replaced by `get(name)` (BLS `options`
/// under `blscfg`).
pub(crate) fn expand_plain(s: &str, get: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(b) = after.strip_prefix('{') {
            match b.split_once('}') {
                Some((n, t)) => (n, t),
                None => (b, ""),
            }
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
        } else {
            out.push_str(&get(name));
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}
