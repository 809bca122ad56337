//! Attempts to get out of the share. Each test lays out `share/` next to `outside/` (whose
//! files hold `SECRET`), tries one trick, and checks that it failed or stayed inside: the
//! client asserts that no reply ever carries `SECRET`, and `Outside::unchanged` that nothing
//! outside was created, removed, linked, or changed.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use common::*;
use p9::wire::qt;

/// What the tests compare of one outside path: (path, content, nlink, mode, mtime, ctime).
type Seen = (PathBuf, Vec<u8>, u64, u32, i64, i64);

struct Outside {
    _tmp: tempfile::TempDir,
    share: PathBuf,
    outside: PathBuf,
    before: Vec<Seen>,
}

impl Outside {
    fn new() -> Outside {
        let tmp = tempfile::tempdir().unwrap();
        let share = tmp.path().join("share");
        let outside = tmp.path().join("outside");
        fs::create_dir(&share).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), SECRET).unwrap();
        fs::create_dir(outside.join("dir")).unwrap();
        fs::write(outside.join("dir/f"), SECRET).unwrap();
        let mut o = Outside { share, outside, before: Vec::new(), _tmp: tmp };
        o.before = o.snapshot();
        o
    }

    /// Every path under outside/ (and outside/ itself), with content, nlink, mode and times.
    fn snapshot(&self) -> Vec<Seen> {
        fn walk(p: &Path, out: &mut Vec<Seen>) {
            let m = fs::symlink_metadata(p).unwrap();
            let data = if m.is_file() { fs::read(p).unwrap() } else { Vec::new() };
            out.push((p.to_path_buf(), data, m.nlink(), m.mode(), m.mtime(), m.ctime()));
            if m.is_dir() {
                let mut names: Vec<_> = fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
                names.sort();
                for n in names {
                    walk(&n, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.outside, &mut out);
        // The parent of the share: nothing may appear next to share/ and outside/.
        let mut siblings: Vec<_> =
            fs::read_dir(self.share.parent().unwrap()).unwrap().map(|e| e.unwrap().path()).collect();
        siblings.sort();
        out.extend(siblings.into_iter().map(|p| (p, Vec::new(), 0, 0, 0, 0)));
        out
    }

    fn unchanged(&self) {
        assert_eq!(self.snapshot(), self.before, "something outside the share changed");
    }

    fn client(&self) -> Client {
        Client::new(&self.share, false)
    }
}

#[test]
fn dotdot_from_the_root_stays_at_the_root() {
    let o = Outside::new();
    let mut c = o.client();
    let root = fs::metadata(&o.share).unwrap().ino();
    let q = c.walk(ROOT, 1, &[b"..", b"..", b".."]).unwrap();
    assert!(q.iter().all(|q| q.path == root && q.ty == qt::DIR), "{q:?}");
    c.lopen(1, RDONLY | DIRECTORY).unwrap();
    assert_eq!(c.readdir_all(1, 8192), vec![b".".to_vec(), b"..".to_vec()]);
    assert_eq!(c.walk(ROOT, 2, &[b"..", b"outside", b"secret"]).unwrap().len(), 1);
    assert_eq!(c.clunk(2), Err(e::EBADF));
    // From deeper down, .. climbs only to the root.
    fs::create_dir_all(o.share.join("a/b")).unwrap();
    let q = c.walk(ROOT, 3, &[b"a", b"b", b"..", b"..", b"..", b".."]).unwrap();
    assert_eq!(q.len(), 6);
    assert_eq!(q[5].path, root);
    assert_eq!(c.walk(3, 4, &[b"outside"]), Err(e::ENOENT));
    o.unchanged();
}

#[test]
fn names_that_are_paths_are_refused() {
    let o = Outside::new();
    let mut c = o.client();
    fs::create_dir(o.share.join("d")).unwrap();
    let abs = o.outside.join("secret");
    let abs = abs.as_os_str().as_encoded_bytes();
    let abs_new = o.outside.join("new");
    let abs_new = abs_new.as_os_str().as_encoded_bytes();
    for bad in [abs, b"../outside/secret", b"d/../../outside", b"/etc", b".", b"", b"a\0b"] {
        assert_eq!(c.walk(ROOT, 1, &[bad]), Err(e::EINVAL), "walk {bad:?}");
    }
    c.walk_to(2, &[]);
    for bad in [abs_new, b"../outside/new", b"d/x", b"..", b"."] {
        assert_eq!(c.lcreate(2, bad, RDWR | CREATE, 0o644, !0), Err(e::EINVAL), "lcreate {bad:?}");
        assert_eq!(c.mkdir(ROOT, bad, 0o755, !0), Err(e::EINVAL), "mkdir {bad:?}");
        assert_eq!(c.symlink(ROOT, bad, b"x"), Err(e::EINVAL), "symlink {bad:?}");
        assert_eq!(c.mknod(ROOT, bad, libc::S_IFIFO | 0o600, 0, 0), Err(e::EINVAL), "mknod {bad:?}");
        assert_eq!(c.unlinkat(ROOT, bad, 0), Err(e::EINVAL), "unlinkat {bad:?}");
    }
    assert_eq!(c.unlinkat(ROOT, abs, 0), Err(e::EINVAL));
    assert_eq!(c.unlinkat(ROOT, b"../outside/secret", 0), Err(e::EINVAL));
    assert_eq!(c.unlinkat(ROOT, b"../outside/dir", AT_REMOVEDIR), Err(e::EINVAL));
    o.unchanged();
}

#[test]
fn a_symlink_to_etc_is_only_a_link() {
    let o = Outside::new();
    symlink("/etc", o.share.join("etc")).unwrap();
    symlink(o.outside.join("secret"), o.share.join("abs")).unwrap();
    let mut c = o.client();
    let q = c.walk_to(1, &[b"etc"]);
    assert_eq!(q.ty, qt::SYMLINK);
    assert_eq!(c.readlink(1).unwrap(), b"/etc", "reading the link itself is fine");
    assert_eq!(c.lopen(1, RDONLY), Err(e::ELOOP));
    assert_eq!(c.lopen(1, RDONLY | DIRECTORY), Err(e::ELOOP));
    // Walking through it stops at the link.
    assert_eq!(c.walk(ROOT, 2, &[b"etc", b"passwd"]).unwrap().len(), 1);
    assert_eq!(c.walk(1, 2, &[b"passwd"]), Err(e::ENOTDIR));
    assert_eq!(c.lcreate(1, b"x", RDWR | CREATE, 0o644, !0), Err(e::ENOTDIR));
    assert_eq!(c.mkdir(1, b"x", 0o755, !0), Err(e::ENOTDIR));
    assert_eq!(c.renameat(1, b"passwd", ROOT, b"stolen"), Err(e::ENOTDIR));
    // Its attributes are the link's own.
    let a = c.getattr(1).unwrap();
    assert_eq!(a.mode & libc::S_IFMT, libc::S_IFLNK);
    // The same for an absolute link to an outside file.
    c.walk_to(3, &[b"abs"]);
    assert_eq!(c.lopen(3, RDONLY), Err(e::ELOOP));
    assert_eq!(c.lopen(3, RDWR | TRUNC), Err(e::ELOOP));
    assert_eq!(c.setattr(3, 0x8, 0, 0, 0, 0, (0, 0), (0, 0)), Err(e::EINVAL), "truncate through a link");
    assert_eq!(c.setattr(3, 0x1, 0o777, 0, 0, 0, (0, 0), (0, 0)), Err(e::EOPNOTSUPP), "chmod through a link");
    // Times and owner apply to the link itself (a root server's chown may succeed on it).
    c.setattr(3, 0x20 | 0x100, 0, 0, 0, 0, (0, 0), (12345, 0)).unwrap();
    assert_eq!(fs::symlink_metadata(o.share.join("abs")).unwrap().mtime(), 12345);
    let _ = c.setattr(3, 0x2 | 0x4, 0, 4321, 4321, 0, (0, 0), (0, 0));
    // Creating over the link's name does not follow it.
    c.walk_to(4, &[]);
    assert_eq!(c.lcreate(4, b"abs", RDWR | CREATE | TRUNC, 0o644, !0), Err(e::ELOOP));
    assert_eq!(c.mkdir(ROOT, b"abs", 0o755, !0), Err(e::EEXIST));
    // Removing or renaming the link touches the link only.
    c.renameat(ROOT, b"abs", ROOT, b"abs2").unwrap();
    c.walk_to(5, &[b"abs2"]);
    c.remove(5).unwrap();
    assert!(fs::symlink_metadata(o.share.join("abs2")).is_err());
    o.unchanged();
}

#[test]
fn a_relative_symlink_out_of_the_share_is_only_a_link() {
    let o = Outside::new();
    symlink("../outside", o.share.join("up")).unwrap();
    symlink("../outside/secret", o.share.join("upsecret")).unwrap();
    let mut c = o.client();
    assert_eq!(c.walk(ROOT, 1, &[b"up", b"secret"]).unwrap().len(), 1);
    assert_eq!(c.walk(ROOT, 1, &[b"up", b"dir", b"f"]).unwrap().len(), 1);
    c.walk_to(2, &[b"up"]);
    assert_eq!(c.lopen(2, RDONLY | DIRECTORY), Err(e::ELOOP));
    assert_eq!(c.readdir(2, 0, 4096).map(|e| e.len()), Err(e::EBADF));
    assert_eq!(c.unlinkat(2, b"secret", 0), Err(e::ENOTDIR));
    assert_eq!(c.mknod(2, b"x", libc::S_IFREG | 0o644, 0, 0), Err(e::ENOTDIR));
    assert_eq!(c.symlink(2, b"x", b"y"), Err(e::ENOTDIR));
    c.walk_to(3, &[b"upsecret"]);
    assert_eq!(c.lopen(3, RDONLY), Err(e::ELOOP));
    assert_eq!(c.lopen(3, WRONLY | TRUNC), Err(e::ELOOP));
    assert_eq!(c.readlink(3).unwrap(), b"../outside/secret");
    o.unchanged();
}

#[test]
fn hard_links_and_renames_cannot_reach_outside() {
    let o = Outside::new();
    symlink(o.outside.join("secret"), o.share.join("sl")).unwrap();
    fs::write(o.share.join("mine"), b"inside").unwrap();
    let mut c = o.client();
    c.walk_to(1, &[b"mine"]);
    // The new name must be an entry of a share directory.
    assert_eq!(c.link(ROOT, 1, b"../outside/hl"), Err(e::EINVAL));
    let abs = o.outside.join("hl");
    assert_eq!(c.link(ROOT, 1, abs.as_os_str().as_encoded_bytes()), Err(e::EINVAL));
    // The source is the fid's own file: linking a fid on a link to outside links the link.
    c.walk_to(2, &[b"sl"]);
    match c.link(ROOT, 2, b"hl") {
        Ok(()) => {
            let m = fs::symlink_metadata(o.share.join("hl")).unwrap();
            assert!(m.file_type().is_symlink());
            assert_eq!(m.ino(), fs::symlink_metadata(o.share.join("sl")).unwrap().ino());
        }
        // Without CAP_DAC_READ_SEARCH a symlink is not linked at all.
        Err(err) => assert_eq!(err, e::EPERM),
    }
    // Renames by name stay among share entries.
    let abs_secret = o.outside.join("secret");
    let abs_secret = abs_secret.as_os_str().as_encoded_bytes();
    assert_eq!(c.renameat(ROOT, b"../outside/secret", ROOT, b"stolen"), Err(e::EINVAL));
    assert_eq!(c.renameat(ROOT, abs_secret, ROOT, b"stolen"), Err(e::EINVAL));
    assert_eq!(c.renameat(ROOT, b"mine", ROOT, b"../outside/planted"), Err(e::EINVAL));
    assert_eq!(c.renameat(ROOT, b"mine", ROOT, abs_secret), Err(e::EINVAL));
    assert_eq!(c.rename(1, ROOT, b"../outside/planted"), Err(e::EINVAL));
    assert_eq!(c.rename(ROOT, ROOT, b"x"), Err(e::EBUSY), "the share root has no entry to move");
    // Renaming onto the link replaces the link, not its target.
    c.renameat(ROOT, b"mine", ROOT, b"sl").unwrap();
    assert_eq!(fs::read(o.share.join("sl")).unwrap(), b"inside");
    // Renaming the link itself moves the link.
    symlink(o.outside.join("secret"), o.share.join("sl2")).unwrap();
    c.renameat(ROOT, b"sl2", ROOT, b"sl3").unwrap();
    assert!(fs::symlink_metadata(o.share.join("sl3")).unwrap().file_type().is_symlink());
    o.unchanged();
}

#[test]
fn a_directory_swapped_for_a_symlink_after_the_walk_is_not_followed() {
    let o = Outside::new();
    fs::create_dir(o.share.join("d")).unwrap();
    fs::write(o.share.join("d/f"), b"inside").unwrap();
    fs::write(o.share.join("d/secret"), b"also inside").unwrap();
    let mut c = o.client();
    c.walk_to(1, &[b"d"]);
    c.walk_to(2, &[b"d", b"f"]);
    c.walk_to(3, &[b"d"]);
    // The host (or a racing guest request) swaps d for a symlink to outside/.
    fs::rename(o.share.join("d"), o.share.join("d_old")).unwrap();
    symlink(&o.outside, o.share.join("d")).unwrap();
    // The fids still hold the original directory and file.
    c.lopen(2, RDONLY).unwrap();
    assert_eq!(c.read(2, 0, 100).unwrap(), b"inside");
    assert_eq!(c.walk(1, 4, &[b"secret"]).map(|q| q.len()), Ok(1));
    c.lopen(4, RDONLY).unwrap();
    assert_eq!(c.read(4, 0, 100).unwrap(), b"also inside");
    assert_eq!(c.walk(1, 5, &[b"dir"]), Err(e::ENOENT));
    c.walk(1, 7, &[]).unwrap();
    c.lcreate(7, b"new", RDWR | CREATE, 0o644, !0).unwrap();
    assert!(o.share.join("d_old/new").exists());
    c.mkdir(1, b"newdir", 0o755, !0).unwrap();
    assert!(o.share.join("d_old/newdir").is_dir());
    c.lopen(3, RDONLY | DIRECTORY).unwrap();
    let names = c.readdir_all(3, 8192);
    assert!(names.contains(&b"f".to_vec()) && !names.contains(&b"dir".to_vec()), "{names:?}");
    // A fresh walk by the name meets the symlink and stops there.
    assert_eq!(c.walk(ROOT, 8, &[b"d", b"secret"]).unwrap().len(), 1);
    c.walk_to(8, &[b"d"]);
    assert_eq!(c.lopen(8, RDONLY | DIRECTORY), Err(e::ELOOP));
    // Remove through the old fid: its recorded name now leads to the symlink, another file.
    assert_eq!(c.remove(1), Err(e::ENOENT));
    assert!(fs::symlink_metadata(o.share.join("d")).is_ok());
    o.unchanged();
}

#[test]
fn a_file_swapped_for_a_symlink_after_the_walk_is_not_followed() {
    let o = Outside::new();
    fs::write(o.share.join("f"), b"inside").unwrap();
    let mut c = o.client();
    c.walk_to(1, &[b"f"]);
    fs::remove_file(o.share.join("f")).unwrap();
    symlink(o.outside.join("secret"), o.share.join("f")).unwrap();
    // The fid holds the unlinked original: writing, truncating and chmod reach only it.
    c.lopen(1, RDWR | TRUNC).unwrap();
    c.write(1, 0, b"scribble").unwrap();
    c.setattr(1, 0x1 | 0x8, 0o600, 0, 0, 1, (0, 0), (0, 0)).unwrap();
    c.walk_to(2, &[]);
    c.link(ROOT, 1, b"relinked").unwrap_or(());
    o.unchanged();
}

#[test]
fn the_share_is_one_mount() {
    // A share of / (read-only) cannot enter /proc, another mount: no magic links, no /proc/1/root.
    let root = fs::metadata("/").unwrap();
    let Ok(proc) = fs::metadata("/proc/self") else { return };
    if proc.dev() == root.dev() {
        eprintln!("skipped: /proc is not a separate mount here");
        return;
    }
    let mut c = Client::new(Path::new("/"), true);
    assert_eq!(c.walk(ROOT, 1, &[b"proc"]), Err(e::EXDEV));
    assert_eq!(c.walk(ROOT, 1, &[b"..", b"proc"]).unwrap().len(), 1);
}

#[test]
fn a_bind_mount_inside_the_share_is_not_entered() {
    // Needs a private mount namespace (root, and a kernel that lets a thread have one); the
    // thread's namespace ends with it, so the host's mounts are never touched.
    let o = Outside::new();
    fs::create_dir(o.share.join("bind")).unwrap();
    let (share, outside) = (o.share.clone(), o.outside.clone());
    let t = std::thread::spawn(move || {
        // SAFETY: unshare and mount take no pointers but the NUL-terminated strings given.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return false;
            }
            let root = c"/";
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return false;
            }
            let src = std::ffi::CString::new(outside.as_os_str().as_encoded_bytes()).unwrap();
            let dst = std::ffi::CString::new(share.join("bind").as_os_str().as_encoded_bytes()).unwrap();
            if libc::mount(src.as_ptr(), dst.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) != 0 {
                return false;
            }
        }
        assert_eq!(fs::read(share.join("bind/secret")).unwrap(), SECRET, "the bind mount is in place");
        let mut c = Client::new(&share, false);
        assert_eq!(c.walk(ROOT, 1, &[b"bind"]), Err(e::EXDEV));
        assert_eq!(c.walk(ROOT, 1, &[b"bind", b"secret"]), Err(e::EXDEV));
        assert_eq!(c.unlinkat(ROOT, b"bind", AT_REMOVEDIR), Err(libc::EBUSY));
        true
    });
    if !t.join().unwrap() {
        eprintln!("skipped: no private mount namespace here");
    }
    o.unchanged();
}
