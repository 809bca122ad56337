//! `extlinux.conf` as U-Boot's `sysboot` reads it: `DEFAULT`, `LABEL`,
//! `MENU LABEL`, `MENU DEFAULT`, `KERNEL` or `LINUX`, `INITRD` (several
//! files separated by commas), `APPEND`; `FDT`/`FDTDIR`/`DEVICETREE` are
//! ignored (bhyve describes its own machine). Keywords are case-blind.
//! Paths starting with '/' are from the partition's root, others from the
//! directory holding `extlinux.conf`.

use crate::error::Error;
use crate::files::{dirname, join, place, Choice, FileRef, Files};

/// Where `extlinux.conf` is looked for on each volume, in order.
pub const PATHS: [&str; 2] = ["/boot/extlinux/extlinux.conf", "/extlinux/extlinux.conf"];

#[derive(Debug, Default)]
struct Label {
    name: String,
    title: Option<String>,
    kernel: Option<String>,
    initrds: Vec<String>,
    append: String,
    localboot: bool,
    fdt: bool,
}

/// The default label of the `extlinux.conf` at `path` on volume `vol`.
pub fn choose(files: &dyn Files, vol: usize, path: &str, text: &str) -> Result<Choice, Error> {
    let mut labels: Vec<Label> = Vec::new();
    let mut default: Option<String> = None;
    let mut menu_default: Option<usize> = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (key, value) = line.split_once(char::is_whitespace).map_or((line, ""), |(k, v)| (k, v.trim()));
        let key = key.to_ascii_lowercase();
        let cur = labels.last_mut();
        match (key.as_str(), cur) {
            ("default", _) => default = Some(value.to_string()),
            ("label", _) => labels.push(Label { name: value.to_string(), ..Label::default() }),
            ("menu", Some(l)) => {
                let (sub, rest) = value.split_once(char::is_whitespace).map_or((value, ""), |(k, v)| (k, v.trim()));
                match sub.to_ascii_lowercase().as_str() {
                    "label" => l.title = Some(rest.to_string()),
                    "default" => menu_default = Some(labels.len() - 1),
                    _ => {}
                }
            }
            ("kernel" | "linux", Some(l)) => l.kernel = Some(value.to_string()),
            ("initrd", Some(l)) => {
                l.initrds = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
            }
            ("append", Some(l)) => l.append = value.to_string(),
            ("fdt" | "fdtdir" | "devicetree" | "devicetreedir" | "fdtoverlays", Some(l)) => l.fdt = true,
            ("localboot", Some(l)) => l.localboot = true,
            _ => {}
        }
    }
    let config = "extlinux.conf".to_string();
    if labels.is_empty() {
        return Err(Error::NoEntries { disk: files.disk().into(), config: path.into(), place: place(files, vol) });
    }
    let (index, how) = match (&default, menu_default) {
        (_, Some(i)) => (i, format!("MENU DEFAULT '{}'", labels[i].name)),
        (Some(d), None) => match labels.iter().position(|l| l.name == *d) {
            Some(i) => (i, format!("DEFAULT '{d}'")),
            None => {
                return Err(Error::NoSuchEntry {
                    disk: files.disk().into(),
                    config,
                    default: d.clone(),
                    entries: labels.iter().map(|l| format!("'{}'", l.name)).collect::<Vec<_>>().join(", "),
                })
            }
        },
        (None, None) => (0, "no DEFAULT: the first label".to_string()),
    };
    let l = &labels[index];
    let title = l.title.clone().unwrap_or_else(|| l.name.clone());
    let unbootable = |what: &str| Error::Unbootable {
        disk: files.disk().into(),
        config: config.clone(),
        title: title.clone(),
        what: what.into(),
    };
    if l.localboot {
        return Err(unbootable("boots the local disk (LOCALBOOT), not a kernel"));
    }
    let Some(kernel) = &l.kernel else { return Err(unbootable("names no kernel (no KERNEL or LINUX line)")) };
    let dir = dirname(path);
    let mut notes = Vec::new();
    if l.fdt {
        notes.push(format!("{path}: ignored the label's FDT (bhyve makes its own device tree)"));
    }
    Ok(Choice {
        title,
        kernel: FileRef { vol, path: join(dir, kernel) },
        initrds: l.initrds.iter().map(|p| FileRef { vol, path: join(dir, p) }).collect(),
        cmdline: l.append.clone(),
        config,
        why: format!("{how} in {path} on {}", place(files, vol)),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::fake::FakeDisk;

    const CONF: &str = "# U-Boot style\nTIMEOUT 30\nDEFAULT rescue\nMENU TITLE Boot\n\nLABEL linux\n  MENU LABEL Debian\n  KERNEL /Image\n  INITRD ../initrd.img\n  FDT /dtbs/x.dtb\n  APPEND root=/dev/vda2 console=ttyAMA0\n\nlabel rescue\n  menu label Rescue shell\n  linux Image-rescue\n  initrd a.cpio,b.cpio\n  append single\n";

    fn run(conf: &str) -> Result<Choice, Error> {
        let d = FakeDisk::new(&[(1, "FAT16", "1234-ABCD", "BOOT")]);
        choose(&d, 0, "/boot/extlinux/extlinux.conf", conf)
    }

    #[test]
    fn default_label() {
        let c = run(CONF).unwrap();
        assert_eq!(c.title, "Rescue shell");
        assert_eq!(c.kernel.path, "/boot/extlinux/Image-rescue");
        assert_eq!(
            c.initrds.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            vec!["/boot/extlinux/a.cpio", "/boot/extlinux/b.cpio"]
        );
        assert_eq!(c.cmdline, "single");
        assert_eq!(c.why, "DEFAULT 'rescue' in /boot/extlinux/extlinux.conf on partition 1 (FAT16)");
    }

    #[test]
    fn first_label_and_fdt_note() {
        let c = run(&CONF.replace("DEFAULT rescue\n", "")).unwrap();
        assert_eq!((c.title.as_str(), c.kernel.path.as_str()), ("Debian", "/Image"));
        assert_eq!(c.initrds[0].path, "/boot/initrd.img");
        assert_eq!(c.cmdline, "root=/dev/vda2 console=ttyAMA0");
        assert!(c.notes[0].contains("ignored the label's FDT"));
        let c = run(&CONF.replace("  KERNEL /Image\n", "  KERNEL /Image\n  MENU DEFAULT\n")).unwrap();
        assert_eq!(c.title, "Debian", "MENU DEFAULT wins");
    }

    #[test]
    fn refusals() {
        let e = run(&CONF.replace("DEFAULT rescue", "DEFAULT nope")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "extlinux.conf's default entry 'nope' does not exist on disk.img (entries: 'linux', 'rescue')"
        );
        let e = run("LABEL a\n LOCALBOOT 0\n").unwrap_err();
        assert!(e.to_string().contains("entry 'a' on disk.img boots the local disk"), "{e}");
        let e = run("LABEL a\n APPEND x\n").unwrap_err();
        assert!(e.to_string().ends_with("names no kernel (no KERNEL or LINUX line)"));
        assert!(run("TIMEOUT 1\n").unwrap_err().to_string().contains("has no boot entry"));
    }
}
