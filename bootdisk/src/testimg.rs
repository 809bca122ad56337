//! Real disk images for the tests, made with the host's own tools, as a
//! distribution's installer makes them: `sfdisk` on a file for the table,
//! `mkfs.ext4 -d` (then `e2fsck -D`, which indexes large directories into
//! htrees) and `mkfs.vfat` + `mmd`/`mcopy`. `scripts/setup` installs them
//! (e2fsprogs, dosfstools, mtools, fdisk); a missing tool fails the test
//! saying which package to install.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory removed when dropped.
pub struct Tmp(pub PathBuf);

impl Tmp {
    /// A fresh directory named after `tag`.
    pub fn new(tag: &str) -> Tmp {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("bootdisk-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command, package: &str) {
    let out =
        cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}): install {package} (scripts/setup does)"));
    // e2fsck exits 1 when it changed something (here: indexed directories).
    let ok = out.status.success() || (cmd.get_program() == "e2fsck" && out.status.code() == Some(1));
    assert!(ok, "{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// A tree of files to put on a file system: (path, contents), or a
/// symbolic link when the contents start with "->".
pub type Tree<'a> = &'a [(&'a str, &'a [u8])];

fn populate(dir: &Path, tree: Tree<'_>) {
    for (path, data) in tree {
        let p = dir.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        match data.strip_prefix(b"->") {
            Some(target) => symlink(std::str::from_utf8(target).unwrap(), &p).unwrap(),
            None => std::fs::write(&p, data).unwrap(),
        }
    }
}

/// An ext2/3/4 image (`kind` "ext4" or "ext2") of `mb` MiB holding `tree`.
pub fn ext(t: &Tmp, name: &str, kind: &str, mb: u64, label: &str, uuid: &str, tree: Tree<'_>) -> PathBuf {
    let dir = t.0.join(format!("{name}.d"));
    populate(&dir, tree);
    let img = t.0.join(name);
    run(
        Command::new(format!("mkfs.{kind}"))
            .args(["-q", "-F", "-b", "4096", "-L", label, "-U", uuid, "-d"])
            .arg(&dir)
            .arg(&img)
            .arg(format!("{mb}M")),
        "e2fsprogs",
    );
    run(Command::new("e2fsck").args(["-f", "-y", "-D"]).arg(&img), "e2fsprogs");
    img
}

/// Whether directory `dir` of an ext image is an htree (hashed) one.
pub fn is_htree(img: &Path, dir: &str) -> bool {
    let out =
        Command::new("debugfs").args(["-R", &format!("htree {dir}")]).arg(img).output().expect("debugfs (e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).contains("Root node dump")
}

/// A FAT image (`bits` 12, 16 or 32) of `kb` KiB holding `tree` (no links).
pub fn fat(t: &Tmp, name: &str, bits: u32, kb: u64, label: &str, serial: &str, tree: Tree<'_>) -> PathBuf {
    let img = t.0.join(name);
    let mut mk = Command::new("mkfs.vfat");
    mk.args(["-C", "-F", &bits.to_string(), "-n", label, "-i", serial]);
    if bits != 12 {
        // One-sector clusters: enough of them for FAT16/32 on a small image.
        mk.args(["-s", "1"]);
    }
    run(mk.arg(&img).arg(kb.to_string()), "dosfstools");
    let src = t.0.join(format!("{name}.d"));
    populate(&src, tree);
    let mut dirs: Vec<String> = Vec::new();
    for (path, _) in tree {
        let mut d = Path::new(path).parent();
        while let Some(p) = d.filter(|p| *p != Path::new("/")) {
            dirs.push(p.display().to_string());
            d = p.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs.sort_by_key(|d| d.len());
    for d in dirs {
        run(Command::new("mmd").arg("-D").arg("s").arg("-i").arg(&img).arg(format!("::{d}")), "mtools");
    }
    for (path, _) in tree {
        run(
            Command::new("mcopy")
                .arg("-i")
                .arg(&img)
                .arg(src.join(path.trim_start_matches('/')))
                .arg(format!("::{path}")),
            "mtools",
        );
    }
    img
}

/// A disk with a `gpt` or `dos` table (made by `sfdisk`) holding these
/// (sfdisk type, image) partitions from 1 MiB on, each rounded up to MiB.
pub fn disk(t: &Tmp, label: &str, parts: &[(&str, &Path)]) -> Vec<u8> {
    const MB: u64 = 1 << 20;
    let mut script = format!("label: {label}\n");
    let mut at = MB;
    let mut places = Vec::new();
    for (ty, img) in parts {
        let len = std::fs::metadata(img).unwrap().len().div_ceil(MB) * MB;
        script.push_str(&format!("start={}, size={}, type={ty}\n", at / 512, len / 512));
        places.push((at, *img));
        at += len;
    }
    let path = t.0.join("disk.img");
    std::fs::File::create(&path).unwrap().set_len(at + MB).unwrap();
    let script_path = t.0.join("sfdisk.txt");
    std::fs::write(&script_path, script).unwrap();
    run(
        Command::new("sh").arg("-c").arg(format!(
            "sfdisk -q --no-reread --no-tell-kernel '{}' < '{}'",
            path.display(),
            script_path.display()
        )),
        "fdisk",
    );
    let mut d = std::fs::read(&path).unwrap();
    for (at, img) in places {
        let bytes = std::fs::read(img).unwrap();
        d[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
    }
    d
}
