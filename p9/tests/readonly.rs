//! A read-only share serves reads and refuses every change with EROFS; and `Server::new`'s
//! own failures.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;

use common::*;
use p9::wire::{msg, Put};

#[test]
fn a_read_only_share_serves_reads_and_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path();
    fs::write(host.join("f"), b"read me").unwrap();
    fs::create_dir(host.join("d")).unwrap();
    symlink("f", host.join("l")).unwrap();
    let before: Vec<_> = ["f", "d", "l"].iter().map(|n| fs::symlink_metadata(host.join(n)).unwrap()).collect();
    let mut c = Client::new(host, true);

    // Reading works.
    c.walk_to(1, &[b"f"]);
    c.lopen(1, RDONLY).unwrap();
    assert_eq!(c.read(1, 0, 100).unwrap(), b"read me");
    c.walk_to(2, &[]);
    c.lopen(2, RDONLY | DIRECTORY).unwrap();
    assert_eq!(c.readdir_all(2, 4096).len(), 5);
    c.walk_to(3, &[b"l"]);
    assert_eq!(c.readlink(3).unwrap(), b"f");
    assert!(c.getattr(1).is_ok() && c.statfs(ROOT).is_ok());
    c.fsync(1).unwrap();

    // Every change is EROFS.
    assert_eq!(c.write(1, 0, b"x"), Err(e::EROFS));
    c.walk_to(4, &[b"f"]);
    assert_eq!(c.lopen(4, WRONLY), Err(e::EROFS));
    assert_eq!(c.lopen(4, RDWR), Err(e::EROFS));
    assert_eq!(c.lopen(4, RDONLY | TRUNC), Err(e::EROFS));
    c.walk_to(5, &[]);
    assert_eq!(c.lcreate(5, b"new", RDWR | CREATE, 0o644, !0), Err(e::EROFS));
    assert_eq!(c.lcreate(5, b"f", RDONLY | CREATE, 0o644, !0), Err(e::EROFS));
    assert_eq!(c.mkdir(ROOT, b"new", 0o755, !0), Err(e::EROFS));
    assert_eq!(c.symlink(ROOT, b"new", b"f"), Err(e::EROFS));
    assert_eq!(c.mknod(ROOT, b"new", libc::S_IFIFO | 0o644, 0, 0), Err(e::EROFS));
    assert_eq!(c.link(ROOT, 1, b"new"), Err(e::EROFS));
    assert_eq!(c.rename(1, ROOT, b"new"), Err(e::EROFS));
    assert_eq!(c.renameat(ROOT, b"f", ROOT, b"new"), Err(e::EROFS));
    assert_eq!(c.unlinkat(ROOT, b"f", 0), Err(e::EROFS));
    assert_eq!(c.unlinkat(ROOT, b"d", AT_REMOVEDIR), Err(e::EROFS));
    for valid in [0x1, 0x2, 0x4, 0x8, 0x10, 0x20] {
        assert_eq!(c.setattr(1, valid, 0o777, 0, 0, 0, (0, 0), (0, 0)), Err(e::EROFS), "setattr {valid:#x}");
    }
    let mut b = Vec::new();
    b.put_u32(1);
    b.put_str(b"user.x").unwrap();
    b.put_u64(1);
    b.put_u32(0);
    assert_eq!(c.call(msg::TXATTRCREATE, &b), Err(e::EROFS));
    assert_eq!(c.remove(1), Err(e::EROFS));
    assert_eq!(c.clunk(1), Err(e::EBADF), "Tremove clunked the fid anyway");

    assert_eq!(fs::read(host.join("f")).unwrap(), b"read me");
    let after: Vec<_> = ["f", "d", "l"].iter().map(|n| fs::symlink_metadata(host.join(n)).unwrap()).collect();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (b.ino(), b.mode(), b.uid(), b.size(), b.mtime()),
            (a.ino(), a.mode(), a.uid(), a.size(), a.mtime())
        );
    }
    let mut names: Vec<_> = fs::read_dir(host).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["d", "f", "l"]);
}

#[test]
fn new_refuses_what_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("file"), b"").unwrap();
    let err = p9::Server::new(&dir.path().join("file"), false).err().expect("a file is no share");
    assert!(err.to_string().contains("file"), "{err}");
    assert!(p9::Server::new(&dir.path().join("missing"), false).is_err());
    assert!(p9::Server::new(Path::new(""), false).is_err());
}

#[test]
fn the_server_can_move_to_a_device_thread() {
    fn is_send<T: Send>() {}
    is_send::<p9::Server>();
}
