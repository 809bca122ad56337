//! Boot Loader Specification type #1 entries: `loader/entries/*.conf`
//! with `title`, `version`, `linux`, `initrd`, `options`; sorted as the
//! specification says (entries with a `sort-key` first, by sort key,
//! machine id and then version, newest first; the rest by file name,
//! newest version first); the default from `loader/loader.conf`'s
//! `default` glob, else the first entry.

use crate::error::Error;
use crate::files::{join, place, Choice, FileRef, Files};
use crate::volume::Stat;
use std::cmp::Ordering;

/// Where entries are looked for on a volume: the ESP or XBOOTLDR
/// partition's root, or /boot on a root file system.
pub const DIRS: [&str; 2] = ["/loader/entries", "/boot/loader/entries"];

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name without `.conf`.
    pub id: String,
    /// `title`, else the id.
    pub title: String,
    /// `version`.
    pub version: String,
    /// `machine-id`.
    pub machine_id: String,
    /// `sort-key`.
    pub sort_key: Option<String>,
    /// `linux`, resolved on the entry's volume.
    pub linux: String,
    /// `initrd` lines, in order, resolved.
    pub initrds: Vec<String>,
    /// `options` lines joined by blanks.
    pub options: String,
}

/// The entries of volume `vol`, sorted, with notes on those left out.
/// `expand` substitutes GRUB variables in `options` (under `blscfg`).
pub fn entries(
    files: &dyn Files,
    vol: usize,
    expand: Option<&dyn Fn(&str) -> String>,
) -> Result<(Vec<Entry>, Vec<String>), Error> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for dir in DIRS {
        let Some(mut names) = files.list(vol, dir)? else { continue };
        names.retain(|n| n.ends_with(".conf"));
        names.sort();
        for name in names {
            let path = format!("{dir}/{name}");
            let Some(text) = files.text(vol, &path)? else { continue };
            match parse(files, vol, dir, &name, &text, expand)? {
                Ok(e) => out.push(e),
                Err(why) => notes.push(format!("left out {path} on {}: {why}", place(files, vol))),
            }
        }
        if !out.is_empty() || !notes.is_empty() {
            break;
        }
    }
    out.sort_by(order);
    Ok((out, notes))
}

/// Parses one entry file; `Ok(Err(why))` for an entry that cannot boot here.
fn parse(
    files: &dyn Files,
    vol: usize,
    dir: &str,
    name: &str,
    text: &str,
    expand: Option<&dyn Fn(&str) -> String>,
) -> Result<Result<Entry, String>, Error> {
    let id = name.trim_end_matches(".conf").to_string();
    let mut e = Entry {
        id: id.clone(),
        title: String::new(),
        version: String::new(),
        machine_id: String::new(),
        sort_key: None,
        linux: String::new(),
        initrds: Vec::new(),
        options: String::new(),
    };
    let mut arch = None;
    let mut efi = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (key, value) = line.split_once(char::is_whitespace).map_or((line, ""), |(k, v)| (k, v.trim()));
        match key {
            "title" => e.title = value.into(),
            "version" => e.version = value.into(),
            "machine-id" => e.machine_id = value.into(),
            "sort-key" => e.sort_key = Some(value.into()),
            "linux" => e.linux = value.into(),
            "initrd" => e.initrds.extend(value.split_whitespace().map(String::from)),
            "options" => {
                if !e.options.is_empty() {
                    e.options.push(' ');
                }
                e.options.push_str(value);
            }
            "architecture" => arch = Some(value.to_ascii_lowercase()),
            "efi" => efi = true,
            _ => {}
        }
    }
    if let Some(a) = arch.filter(|a| a != "aa64") {
        return Ok(Err(format!("it is for architecture '{a}'")));
    }
    if e.linux.is_empty() {
        return Ok(Err(if efi { "it boots an EFI program".into() } else { "it has no 'linux' line".into() }));
    }
    if e.title.is_empty() {
        e.title = id;
    }
    if let Some(f) = expand {
        e.options = f(&e.options).split_whitespace().collect::<Vec<_>>().join(" ");
    }
    // Paths are relative to the root of the entry's partition; entries
    // kept in /boot of a root file system name their files relative to
    // /boot when they are not found from the root.
    let resolve = |p: &str| -> Result<String, Error> {
        let abs = join("/", p);
        if dir.starts_with("/boot/") && files.stat(vol, &abs)?.is_none() {
            let under = join("/boot", p.trim_start_matches('/'));
            if let Some(Stat::File(_)) = files.stat(vol, &under)? {
                return Ok(under);
            }
        }
        Ok(abs)
    };
    e.linux = resolve(&e.linux)?;
    e.initrds = e.initrds.iter().map(|p| resolve(p)).collect::<Result<_, _>>()?;
    Ok(Ok(e))
}

/// The specification's order: first those with a sort key (by key, machine
/// id, then version newest first), then the rest by file name, newest first.
fn order(a: &Entry, b: &Entry) -> Ordering {
    let by_name = || version_cmp(&b.id, &a.id);
    match (&a.sort_key, &b.sort_key) {
        (Some(x), Some(y)) => x
            .cmp(y)
            .then_with(|| a.machine_id.cmp(&b.machine_id))
            .then_with(|| version_cmp(&b.version, &a.version))
            .then_with(by_name),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => by_name(),
    }
}

/// Version comparison in the manner of the specification: numbers by value,
/// letters by code, `~` before anything (even the end), `-` and `^` before
/// any further part, other punctuation a separator.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let skip = |s: &mut &[u8]| {
        while let Some((&c, rest)) = s.split_first() {
            if c.is_ascii_alphanumeric() || matches!(c, b'~' | b'-' | b'^' | b'.') {
                break;
            }
            *s = rest;
        }
    };
    loop {
        skip(&mut a);
        skip(&mut b);
        // The special characters, in their order: ~ < end < - < ^ < . < the rest.
        let rank = |s: &[u8]| match s.first() {
            Some(b'~') => 0,
            None => 1,
            Some(b'-') => 2,
            Some(b'^') => 3,
            Some(b'.') => 4,
            Some(_) => 5,
        };
        let (ra, rb) = (rank(a), rank(b));
        if ra != rb || ra < 5 {
            if ra != rb {
                return ra.cmp(&rb);
            }
            if ra == 1 {
                return Ordering::Equal;
            }
            a = &a[1..];
            b = &b[1..];
            continue;
        }
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (da, db) = (digits(a), digits(b));
        if da > 0 || db > 0 {
            // A number is newer than letters.
            if da == 0 || db == 0 {
                return da.cmp(&db);
            }
            let trim = |s: &[u8]| s.iter().skip_while(|&&c| c == b'0').count();
            let (na, nb) = (&a[..da], &b[..db]);
            let (ta, tb) = (trim(na), trim(nb));
            let c = ta.cmp(&tb).then_with(|| na[da - ta..].cmp(&nb[db - tb..]));
            if c != Ordering::Equal {
                return c;
            }
            a = &a[da..];
            b = &b[db..];
        } else {
            let alpha = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_alphabetic()).count();
            let (la, lb) = (alpha(a), alpha(b));
            let c = a[..la].cmp(&b[..lb]);
            if c != Ordering::Equal {
                return c;
            }
            a = &a[la..];
            b = &b[lb..];
        }
    }
}

/// Whether `name` matches the glob `pat` (`*`, `?`, `[...]`).
pub fn glob(pat: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char], depth: u32) -> bool {
        if depth > 64 {
            return false;
        }
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| m(&p[1..], &n[i..], depth + 1)),
            Some('?') => !n.is_empty() && m(&p[1..], &n[1..], depth),
            Some('[') => match (p.iter().position(|&c| c == ']'), n.first()) {
                (Some(end), Some(c)) if end > 1 => {
                    let set = &p[1..end];
                    let (neg, set) = if set.first() == Some(&'!') { (true, &set[1..]) } else { (false, set) };
                    let hit = set.iter().enumerate().any(|(i, &s)| {
                        s == *c
                            || (set.get(i + 1) == Some(&'-') && set.get(i + 2).is_some_and(|&hi| s <= *c && *c <= hi))
                    });
                    hit != neg && m(&p[end + 1..], &n[1..], depth)
                }
                _ => false,
            },
            Some(&c) => n.first() == Some(&c) && m(&p[1..], &n[1..], depth),
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pat.chars().collect(), name.chars().collect());
    m(&p, &n, 0)
}

/// The default BLS entry of volume `vol`.
pub fn choose(files: &dyn Files, vol: usize) -> Result<Choice, Error> {
    let (entries, mut notes) = entries(files, vol, None)?;
    if entries.is_empty() {
        let config = "loader/entries/*.conf".into();
        return Err(Error::NoEntries { disk: files.disk().into(), config, place: place(files, vol) });
    }
    let mut default = None;
    for conf in ["/loader/loader.conf", "/boot/loader/loader.conf"] {
        if let Some(text) = files.text(vol, conf)? {
            for line in text.lines().map(str::trim) {
                if let Some(v) = line.strip_prefix("default").filter(|v| v.starts_with(char::is_whitespace)) {
                    default = Some(v.trim().to_string());
                }
            }
            break;
        }
    }
    let (entry, why) = match default.as_deref() {
        None => (&entries[0], "no default in loader.conf: the first entry".to_string()),
        Some(d) if d.starts_with('@') => {
            notes.push(format!(
                "loader.conf's default '{d}' is an EFI variable, which this disk does not hold; took the first entry"
            ));
            (&entries[0], "the first entry".to_string())
        }
        Some(d) => match entries.iter().find(|e| glob(d, &e.id) || glob(d, &format!("{}.conf", e.id))) {
            Some(e) => (e, format!("loader.conf's default '{d}'")),
            None => {
                return Err(Error::NoSuchEntry {
                    disk: files.disk().into(),
                    config: "loader.conf".into(),
                    default: d.into(),
                    entries: entries.iter().map(|e| format!("'{}'", e.id)).collect::<Vec<_>>().join(", "),
                })
            }
        },
    };
    Ok(Choice {
        title: entry.title.clone(),
        kernel: FileRef { vol, path: entry.linux.clone() },
        initrds: entry.initrds.iter().map(|p| FileRef { vol, path: p.clone() }).collect(),
        cmdline: entry.options.clone(),
        config: format!("loader entry {}.conf", entry.id),
        why: format!("{why}, of {} entries on {}", entries.len(), place(files, vol)),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::fake::FakeDisk;

    #[test]
    fn versions() {
        use Ordering::*;
        for (a, b, want) in [
            ("6.1.0-10-arm64", "6.1.0-9-arm64", Greater),
            ("6.10", "6.9", Greater),
            ("1.0", "1.0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0-1", Less),
            ("1.0a", "1.0", Greater),
            ("001", "1", Equal),
            ("fc39", "fc40", Less),
            ("2", "a", Greater),
        ] {
            assert_eq!(version_cmp(a, b), want, "{a} vs {b}");
            assert_eq!(version_cmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("fedora-*", "fedora-6.5.conf"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("[a-c]x", "bx") && !glob("[!a-c]x", "bx"));
        assert!(!glob("*x", "abc"));
        assert!(!glob(&"*".repeat(200), "a"), "bounded");
    }

    fn disk() -> FakeDisk {
        FakeDisk::new(&[(1, "FAT32", "AAAA-BBBB", "")])
            .file(0, "/loader/entries/debian-6.1.0-9.conf", "title Debian\nversion 6.1.0-9\nlinux /vmlinuz-9\ninitrd /initrd-9\noptions root=/dev/vda2\noptions ro\n")
            .file(0, "/loader/entries/debian-6.1.0-10.conf", "# newest\ntitle Debian 10\nversion 6.1.0-10\nlinux /vmlinuz-10\ninitrd /ucode\ninitrd /initrd-10\noptions root=/dev/vda2 quiet\n")
            .file(0, "/loader/entries/other.conf", "title Other\nlinux /x\narchitecture x64\n")
            .file(0, "/loader/entries/uki.conf", "title UKI\nefi /EFI/Linux/a.efi\n")
            .file(0, "/loader/entries/README", "not an entry")
    }

    #[test]
    fn newest_first_without_a_default() {
        let c = choose(&disk(), 0).unwrap();
        assert_eq!(c.title, "Debian 10");
        assert_eq!(c.kernel.path, "/vmlinuz-10");
        assert_eq!(c.initrds.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), vec!["/ucode", "/initrd-10"]);
        assert_eq!(c.cmdline, "root=/dev/vda2 quiet");
        assert_eq!(c.config, "loader entry debian-6.1.0-10.conf");
        assert!(c.why.contains("the first entry, of 2 entries"), "{}", c.why);
        assert!(c.notes.iter().any(|n| n.contains("other.conf") && n.contains("architecture 'x64'")), "{:?}", c.notes);
        assert!(c.notes.iter().any(|n| n.contains("uki.conf") && n.contains("EFI program")));
    }

    #[test]
    fn loader_conf_default() {
        let c = choose(&disk().file(0, "/loader/loader.conf", "timeout 3\ndefault debian-6.1.0-9*\n"), 0).unwrap();
        assert_eq!((c.title.as_str(), c.cmdline.as_str()), ("Debian", "root=/dev/vda2 ro"));
        let e = choose(&disk().file(0, "/loader/loader.conf", "default nothing\n"), 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "loader.conf's default entry 'nothing' does not exist on disk.img (entries: 'debian-6.1.0-10', 'debian-6.1.0-9')"
        );
    }

    #[test]
    fn sort_keys_come_first() {
        let d = disk().file(0, "/loader/entries/z-a.conf", "title Z1\nsort-key arch\nversion 1\nlinux /a\n").file(
            0,
            "/loader/entries/z-b.conf",
            "title Z2\nsort-key arch\nversion 2\nlinux /b\n",
        );
        let (e, _) = entries(&d, 0, None).unwrap();
        assert_eq!(e.iter().map(|e| e.title.as_str()).collect::<Vec<_>>(), vec!["Z2", "Z1", "Debian 10", "Debian"]);
    }

    #[test]
    fn boot_relative_paths_on_a_root_file_system() {
        let d = FakeDisk::new(&[(2, "ext4", "u", "")])
            .file(
                0,
                "/boot/loader/entries/f.conf",
                "title F\nlinux /vmlinuz-6\ninitrd /boot/initrd-6\noptions $kernelopts x\n",
            )
            .file(0, "/boot/vmlinuz-6", "k")
            .file(0, "/boot/initrd-6", "i");
        let expand = |s: &str| s.replace("$kernelopts", "root=UUID=1 ro");
        let (e, _) = entries(&d, 0, Some(&expand)).unwrap();
        assert_eq!((e[0].linux.as_str(), e[0].initrds[0].as_str()), ("/boot/vmlinuz-6", "/boot/initrd-6"));
        assert_eq!(e[0].options, "root=UUID=1 ro x");
    }
}
