//! Where `bhyveload` finds a guest when no `-k` is given: a directory with
//! the kernel, optionally an initrd and a command line. First the VM's own
//! ([`VM_DIR`]`/NAME`), then the system's default guest ([`DEFAULT_DIR`]).
//! So `bhyveload -m 512M guest` boots something without further flags, and
//! a VM can be given its own kernel once, by putting files in place.

use std::io;
use std::path::{Path, PathBuf};

/// Parent of the per-VM directories.
pub const VM_DIR: &str = "/var/lib/bhyve";
/// The system's default guest.
pub const DEFAULT_DIR: &str = "/usr/share/bhyve/guest";
/// Names tried for the kernel, in order.
pub const KERNEL_NAMES: [&str; 2] = ["Image", "vmlinuz"];
/// Names tried for the initrd, in order.
pub const INITRD_NAMES: [&str; 3] = ["initrd", "initrd.gz", "initrd.img"];
/// The file holding the command line (its first line).
pub const CMDLINE_NAME: &str = "cmdline";

/// A guest found in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestDir {
    /// The directory.
    pub dir: PathBuf,
    /// Its kernel.
    pub kernel: PathBuf,
    /// Its initrd, if it has one.
    pub initrd: Option<PathBuf>,
    /// Its command line, if it has one.
    pub cmdline: Option<String>,
}

/// The directories searched for VM `name`, in order. A name that would
/// leave [`VM_DIR`] (`.` or `..`) has no directory of its own.
pub fn search_path(name: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if name != "." && name != ".." && !name.contains('/') {
        dirs.push(Path::new(VM_DIR).join(name));
    }
    dirs.push(PathBuf::from(DEFAULT_DIR));
    dirs
}

/// The first of `dirs` that holds a kernel, read into a [`GuestDir`]. A
/// directory without a kernel is skipped; a `cmdline` that cannot be read
/// is an error (it was meant to be used).
pub fn find(dirs: &[PathBuf]) -> io::Result<Option<GuestDir>> {
    for dir in dirs {
        let first = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
        let Some(kernel) = first(&KERNEL_NAMES) else { continue };
        let cmdline_path = dir.join(CMDLINE_NAME);
        let cmdline = if cmdline_path.exists() {
            let text = std::fs::read_to_string(&cmdline_path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", cmdline_path.display())))?;
            Some(text.lines().next().unwrap_or("").trim().to_string())
        } else {
            None
        };
        return Ok(Some(GuestDir { dir: dir.clone(), kernel, initrd: first(&INITRD_NAMES), cmdline }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let d = std::env::temp_dir().join(format!("bhyveload-guestdir-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            TempDir(d)
        }
        fn file(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn search_path_is_the_vm_then_the_default() {
        assert_eq!(search_path("guest"), vec![PathBuf::from("/var/lib/bhyve/guest"), PathBuf::from(DEFAULT_DIR)]);
        assert_eq!(search_path(".."), vec![PathBuf::from(DEFAULT_DIR)], "never /var/lib");
        assert_eq!(search_path("."), vec![PathBuf::from(DEFAULT_DIR)]);
    }

    #[test]
    fn first_directory_with_a_kernel_wins() {
        let t = TempDir::new("order");
        let (vm, def) = (t.0.join("vm"), t.0.join("default"));
        t.file("vm/cmdline", "ignored: no kernel here\n");
        let k = t.file("default/vmlinuz", "k");
        let i = t.file("default/initrd.gz", "i");
        t.file("default/cmdline", "  console=ttyAMA0 quiet  \nsecond line ignored\n");
        let g = find(&[vm.clone(), def.clone()]).unwrap().unwrap();
        assert_eq!(g, GuestDir { dir: def, kernel: k, initrd: Some(i), cmdline: Some("console=ttyAMA0 quiet".into()) });
        let k = t.file("vm/Image", "k");
        let g = find(&[vm.clone(), t.0.join("default")]).unwrap().unwrap();
        assert_eq!((g.dir, g.kernel, g.initrd), (vm, k, None));
    }

    #[test]
    fn nothing_found() {
        let t = TempDir::new("none");
        assert_eq!(find(&[t.0.join("missing"), t.0.clone()]).unwrap(), None);
    }
}
