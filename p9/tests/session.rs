//! A guest's session against a temporary share, checked against what the host sees.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use p9::wire::{msg, qt, Put};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn version_negotiates_msize_and_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::new(dir.path(), false);
    assert_eq!(c.version(8192, b"9P2000.L"), Ok((8192, b"9P2000.L".to_vec())));
    assert_eq!(c.server.msize(), Some(8192));
    // A new version clunks every fid.
    assert_eq!(c.clunk(ROOT), Err(e::EBADF));
    assert_eq!(c.version(1 << 30, b"9P2000.L"), Ok((p9::MAX_MSIZE, b"9P2000.L".to_vec())));
    assert_eq!(c.version(100, b"9P2000.L"), Err(e::EINVAL));
    assert_eq!(c.version(8192, b"9P2000.u"), Ok((8192, b"unknown".to_vec())));
    // Without an agreed dialect nothing else is served.
    assert_eq!(c.attach(ROOT, 0), Err(e::EPROTO));
    assert_eq!(c.version(8192, b"9P2000.L"), Ok((8192, b"9P2000.L".to_vec())));
    let root = c.attach(ROOT, 0).unwrap();
    assert_eq!(root.ty, qt::DIR);
    assert_eq!(root.path, fs::metadata(dir.path()).unwrap().ino());
    assert_eq!(c.attach(ROOT, 0), Err(e::EBADF), "fid in use");
    assert_eq!(c.call(msg::TAUTH, &[0; 12]), Err(e::EOPNOTSUPP));
    assert_eq!(c.call(112, &[0; 5]), Err(e::EOPNOTSUPP), "9P2000 Topen");
    assert_eq!(c.call(msg::TFLUSH, &[1, 0]), Ok(Vec::new()));
}

#[test]
fn a_guest_session_changes_the_host_directory() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path();
    fs::write(host.join("hello.txt"), b"hello, world\n").unwrap();
    let mut c = Client::new(host, false);

    // walk + lopen + read
    let q = c.walk_to(1, &[b"hello.txt"]);
    assert_eq!(q.ty, qt::FILE);
    assert_eq!(q.path, fs::metadata(host.join("hello.txt")).unwrap().ino());
    c.lopen(1, RDONLY).unwrap();
    assert_eq!(c.read(1, 0, 100).unwrap(), b"hello, world\n");
    assert_eq!(c.read(1, 7, 5).unwrap(), b"world");
    assert_eq!(c.read(1, 100, 5).unwrap(), b"");
    assert_eq!(c.lopen(1, RDONLY), Err(e::EBADF), "already open");
    assert_eq!(c.write(1, 0, b"x"), Err(e::EBADF), "opened read-only");
    c.clunk(1).unwrap();
    assert_eq!(c.clunk(1), Err(e::EBADF));

    // lcreate + write, with the exact mode whatever the server's umask
    c.walk_to(2, &[]);
    let q = c.lcreate(2, b"new.txt", RDWR | CREATE, 0o666, !0).unwrap();
    assert_eq!(q.ty, qt::FILE);
    assert_eq!(c.write(2, 0, b"written by the guest"), Ok(20));
    assert_eq!(c.read(2, 11, 100).unwrap(), b"the guest");
    assert_eq!(fs::read(host.join("new.txt")).unwrap(), b"written by the guest");
    assert_eq!(fs::metadata(host.join("new.txt")).unwrap().permissions().mode() & 0o7777, 0o666);
    c.fsync(2).unwrap();
    c.clunk(2).unwrap();
    c.walk_to(2, &[]);
    assert_eq!(c.lcreate(2, b"new.txt", RDWR | CREATE | EXCL, 0o600, !0), Err(e::EEXIST));
    // Without O_EXCL an existing file is opened, and its mode is left alone.
    c.lcreate(2, b"new.txt", RDWR | CREATE | TRUNC, 0o600, !0).unwrap();
    assert_eq!(fs::read(host.join("new.txt")).unwrap(), b"");
    assert_eq!(fs::metadata(host.join("new.txt")).unwrap().permissions().mode() & 0o7777, 0o666);
    c.clunk(2).unwrap();

    // mkdir, and lcreate inside it
    let q = c.mkdir(ROOT, b"sub", 0o750, !0).unwrap();
    assert_eq!(q.ty, qt::DIR);
    let md = fs::metadata(host.join("sub")).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.permissions().mode() & 0o7777, 0o750);
    assert_eq!(c.mkdir(ROOT, b"sub", 0o750, !0), Err(e::EEXIST));
    c.walk_to(3, &[b"sub"]);
    c.lcreate(3, b"inner", WRONLY | CREATE, 0o640, !0).unwrap();
    c.write(3, 0, b"deep").unwrap();
    c.clunk(3).unwrap();
    assert_eq!(fs::read(host.join("sub/inner")).unwrap(), b"deep");

    // walk with .. goes back through the fids' own parents
    let q = c.walk(ROOT, 4, &[b"sub", b"..", b"sub", b"inner"]).unwrap();
    assert_eq!(q.len(), 4);
    assert_eq!(q[1].path, fs::metadata(host).unwrap().ino());
    assert_eq!(q[3].path, fs::metadata(host.join("sub/inner")).unwrap().ino());
    c.clunk(4).unwrap();
    // A walk failing after the first name lists what it reached and makes no fid.
    assert_eq!(c.walk(ROOT, 4, &[b"sub", b"missing"]).unwrap().len(), 1);
    assert_eq!(c.clunk(4), Err(e::EBADF));
    assert_eq!(c.walk(ROOT, 4, &[b"missing"]), Err(e::ENOENT));
    assert_eq!(c.walk(ROOT, 4, &[b"new.txt", b"x"]).unwrap().len(), 1, "walk on from a file");
    let names: Vec<&[u8]> = vec![b"sub"; 17];
    assert_eq!(c.walk(ROOT, 4, &names), Err(e::EINVAL), "more than 16 names");

    // readdir
    c.walk_to(5, &[b"sub"]);
    c.lopen(5, RDONLY | DIRECTORY).unwrap();
    let ents = c.readdir(5, 0, 4096).unwrap();
    let inner = ents.iter().find(|e| e.name == b"inner").expect("inner listed");
    assert_eq!(inner.qid.path, fs::metadata(host.join("sub/inner")).unwrap().ino());
    assert_eq!(inner.ty, libc::DT_REG);
    assert_eq!(c.readdir_all(5, 4096), vec![b".".to_vec(), b"..".to_vec(), b"inner".to_vec()]);
    c.clunk(5).unwrap();

    // getattr and setattr
    c.walk_to(6, &[b"sub", b"inner"]);
    let a = c.getattr(6).unwrap();
    let md = fs::metadata(host.join("sub/inner")).unwrap();
    assert_eq!(a.valid, 0x7ff);
    assert_eq!((a.mode, a.uid, a.gid, a.nlink, a.size), (md.mode(), md.uid(), md.gid(), 1, 4));
    assert_eq!(a.mtime, (md.mtime() as u64, md.mtime_nsec() as u64));
    // mode | size | mtime given
    c.setattr(6, 0x1 | 0x8 | 0x20 | 0x100, 0o604, 0, 0, 2, (0, 0), (1_000_000_000, 5)).unwrap();
    let md = fs::metadata(host.join("sub/inner")).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o604);
    assert_eq!(fs::read(host.join("sub/inner")).unwrap(), b"de");
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_000_000_000, 5));
    if is_root() {
        c.setattr(6, 0x2 | 0x4, 0, 1234, 5678, 0, (0, 0), (0, 0)).unwrap();
        let md = fs::metadata(host.join("sub/inner")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
    }
    assert_eq!(c.setattr(ROOT, 0x8, 0, 0, 0, 0, (0, 0), (0, 0)), Err(e::EISDIR));
    assert_eq!(c.setattr(6, 0x20 | 0x100, 0, 0, 0, 0, (0, 0), (1, 1_000_000_000)), Err(e::EINVAL));

    // rename: Trename moves the fid with the file, Trenameat works by names
    c.rename(6, ROOT, b"moved").unwrap();
    assert!(!host.join("sub/inner").exists());
    assert_eq!(fs::read(host.join("moved")).unwrap(), b"de");
    assert_eq!(c.getattr(6).unwrap().size, 2);
    c.renameat(ROOT, b"moved", 3, b"missing-dir-fid").unwrap_err();
    c.walk_to(7, &[b"sub"]);
    c.renameat(ROOT, b"moved", 7, b"back").unwrap();
    assert_eq!(fs::read(host.join("sub/back")).unwrap(), b"de");
    // fid 6's recorded name is stale now: Tremove notices instead of removing another file.
    fs::write(host.join("moved"), b"a different file").unwrap();
    assert_eq!(c.remove(6), Err(e::ENOENT));
    assert!(host.join("moved").exists());
    assert_eq!(c.clunk(6), Err(e::EBADF), "Tremove clunks even when it fails");

    // symlink and readlink
    let q = c.symlink(ROOT, b"link", b"sub/back").unwrap();
    assert_eq!(q.ty, qt::SYMLINK);
    assert_eq!(fs::read_link(host.join("link")).unwrap().as_os_str(), "sub/back");
    c.walk_to(8, &[b"link"]);
    assert_eq!(c.readlink(8).unwrap(), b"sub/back");
    assert_eq!(c.readlink(ROOT), Err(e::EINVAL));
    assert_eq!(c.symlink(ROOT, b"empty", b""), Err(e::ENOENT));

    // link
    c.walk_to(9, &[b"sub", b"back"]);
    c.link(ROOT, 9, b"hard").unwrap();
    assert_eq!(fs::metadata(host.join("hard")).unwrap().ino(), fs::metadata(host.join("sub/back")).unwrap().ino());
    assert_eq!(c.link(ROOT, 7, b"dirlink"), Err(e::EPERM));

    // mknod: FIFOs yes, devices no
    let q = c.mknod(ROOT, b"fifo", libc::S_IFIFO | 0o600, 0, 0).unwrap();
    assert_eq!(q.ty, qt::FILE);
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fs::metadata(host.join("fifo")).unwrap().file_type()));
    assert_eq!(c.mknod(ROOT, b"null", libc::S_IFCHR | 0o666, 1, 3), Err(e::EPERM));
    assert_eq!(c.mknod(ROOT, b"disk", libc::S_IFBLK | 0o666, 8, 0), Err(e::EPERM));
    assert!(!host.join("null").exists() && !host.join("disk").exists());
    c.walk_to(10, &[b"fifo"]);
    assert_eq!(c.lopen(10, RDONLY), Err(e::EPERM), "a FIFO would block the server");
    c.walk_to(11, &[]);
    assert_eq!(c.lcreate(11, b"fifo", RDWR | CREATE, 0o644, !0), Err(e::EPERM), "nor through Tlcreate");
    assert_eq!(c.lcreate(11, b"sub", RDONLY | CREATE, 0o644, !0), Err(e::EISDIR));

    // statfs
    let s = c.statfs(ROOT).unwrap();
    let v = nix::sys::statvfs::statvfs(host).unwrap();
    assert_eq!(s.0, v.blocks() as u64);
    assert_eq!(u64::from(s.1), v.name_max() as u64);

    // unlinkat and remove
    assert_eq!(c.unlinkat(ROOT, b"sub", 0), Err(e::EISDIR));
    assert_eq!(c.unlinkat(ROOT, b"fifo", 0x1), Err(e::EINVAL));
    c.unlinkat(ROOT, b"fifo", 0).unwrap();
    c.unlinkat(ROOT, b"hard", 0).unwrap();
    c.unlinkat(ROOT, b"link", 0).unwrap();
    assert!(!host.join("fifo").exists() && !host.join("hard").exists() && !host.join("link").exists());
    assert!(host.join("sub/back").exists(), "unlinking the symlink left its target");
    c.remove(9).unwrap();
    assert!(!host.join("sub/back").exists());
    c.unlinkat(ROOT, b"sub", AT_REMOVEDIR).unwrap();
    assert!(!host.join("sub").exists());
    assert_eq!(c.remove(ROOT), Err(e::EBUSY));
    assert!(host.exists());
}

#[test]
fn created_files_belong_to_the_guest_user() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::new(dir.path(), false);
    c.attach(20, 1000).unwrap();
    c.walk(20, 21, &[]).unwrap();
    c.lcreate(21, b"f", WRONLY | CREATE, 0o644, 1001).unwrap();
    c.mkdir(20, b"d", 0o755, 1002).unwrap();
    c.symlink(20, b"l", b"f").unwrap();
    let own = |n: &str| {
        let m = fs::symlink_metadata(dir.path().join(n)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(own("f"), (1000, 1001));
    assert_eq!(own("d"), (1000, 1002));
    assert_eq!(own("l").0, 1000);
}

#[test]
fn readdir_pages_through_a_large_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut want = vec![b".".to_vec(), b"..".to_vec()];
    for i in 0..300 {
        let name = format!("{i:03}-{}", "x".repeat(i % 200));
        fs::write(dir.path().join(&name), b"").unwrap();
        want.push(name.into_bytes());
    }
    want.sort();
    let mut c = Client::new(dir.path(), false);
    c.walk_to(1, &[]);
    c.lopen(1, RDONLY | DIRECTORY).unwrap();
    // 300 bytes per reply: at most one long entry at a time.
    assert_eq!(c.readdir_all(1, 300), want);
    assert_eq!(c.readdir_all(1, 60000), want);
    // A count too small for the next entry is an error, not a false end of directory.
    assert_eq!(c.readdir(1, 0, 10).map(|e| e.len()), Err(e::EINVAL));
    // Reading a directory fid that is not open is EBADF; a file is not a directory.
    c.walk_to(2, &[]);
    assert_eq!(c.readdir(2, 0, 1000).map(|e| e.len()), Err(e::EBADF));
}

#[test]
fn replies_fit_max_reply() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("big"), vec![7u8; 100_000]).unwrap();
    let mut c = Client::new(dir.path(), false);
    c.walk_to(1, &[b"big"]);
    c.lopen(1, RDONLY).unwrap();
    // msize 65536 bounds a read...
    assert_eq!(c.read(1, 0, 100_000).unwrap().len(), 65536 - 11);
    // ...and so does the device's buffer.
    c.max_reply = 1000;
    assert_eq!(c.read(1, 0, 100_000).unwrap().len(), 1000 - 11);
    c.max_reply = 300;
    c.walk_to(2, &[]);
    c.lopen(2, RDONLY | DIRECTORY).unwrap();
    assert!(c.readdir(2, 0, 60000).is_ok());
    // Too little room: nothing is done.
    c.max_reply = p9::MIN_REPLY - 1;
    assert_eq!(c.mkdir(ROOT, b"never", 0o755, !0), Err(e::ENOBUFS));
    c.max_reply = 19;
    assert_eq!(c.mkdir(ROOT, b"never", 0o755, !0), Err(e::ENOBUFS));
    assert!(!dir.path().join("never").exists());
}

/// Linux (on virtio since 6.1) gives each request just the room its largest reply needs: a
/// walk 9 bytes and 13 per name, a getattr 160 bytes, a mkdir 20. That is enough; one byte
/// less and the request is not carried out.
#[test]
fn replies_fit_the_room_linux_gives() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("d")).unwrap();
    fs::write(dir.path().join("d/f"), b"x").unwrap();
    let mut c = Client::new(dir.path(), false);
    c.max_reply = 9 + 13;
    assert_eq!(c.walk(ROOT, 1, &[b"d", b"f"]), Err(e::ENOBUFS));
    assert_eq!(c.clunk(1), Err(e::EBADF), "the walk made no fid");
    assert_eq!(c.walk(ROOT, 1, &[b"d"]).map(|q| q.len()), Ok(1));
    c.max_reply = 9 + 2 * 13;
    assert_eq!(c.walk(1, 2, &[b"f"]).map(|q| q.len()), Ok(1));
    assert_eq!(c.walk(ROOT, 3, &[b"d", b"f"]).map(|q| q.len()), Ok(2));
    c.max_reply = 159;
    assert!(matches!(c.getattr(2), Err(e::ENOBUFS)));
    c.max_reply = 160;
    assert_eq!(c.getattr(2).map(|a| a.size), Ok(1));
    c.max_reply = 20;
    assert!(c.mkdir(1, b"new", 0o755, !0).is_ok());
    assert!(dir.path().join("d/new").is_dir());
    c.max_reply = 9 + 2 * 13;
    c.walk_to(4, &[b"d", b"f"]);
    c.max_reply = 23;
    assert_eq!(c.lopen(4, RDONLY), Err(e::ENOBUFS));
    c.max_reply = 24;
    assert!(c.lopen(4, RDONLY).is_ok());
    assert_eq!(c.read(4, 0, 100).unwrap(), b"x");
    c.max_reply = 66;
    assert!(matches!(c.call(p9::wire::msg::TSTATFS, &ROOT.to_le_bytes()), Err(e::ENOBUFS)));
    c.max_reply = 67;
    assert!(c.call(p9::wire::msg::TSTATFS, &ROOT.to_le_bytes()).is_ok());
}

#[test]
fn locks_exclude_other_fids_and_host_processes() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"0123456789").unwrap();
    let mut c = Client::new(dir.path(), false);
    for fid in [1, 2] {
        c.walk_to(fid, &[b"f"]);
        c.lopen(fid, RDWR).unwrap();
    }
    assert_eq!(c.lock(1, 1, 0, 5), Ok(0), "write lock taken");
    assert_eq!(c.lock(2, 1, 0, 1), Ok(1), "conflict: BLOCKED");
    assert_eq!(c.lock(2, 1, 5, 0), Ok(0), "the rest of the file is free");
    assert_eq!(c.getlock(2, 0, 0, 5), Ok((1, 0, 5)), "the conflicting lock");
    assert_eq!(c.getlock(1, 1, 0, 5).map(|l| l.0), Ok(2), "own locks do not conflict");
    // A host process sees the guest's lock.
    let host = fs::OpenOptions::new().read(true).write(true).open(dir.path().join("f")).unwrap();
    // SAFETY: flock is plain integers, for which all-zero is valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_len = 1;
    nix::fcntl::fcntl(std::os::fd::AsRawFd::as_raw_fd(&host), nix::fcntl::FcntlArg::F_OFD_GETLK(&mut fl)).unwrap();
    assert_eq!(i32::from(fl.l_type), libc::F_WRLCK);
    assert_eq!(c.lock(1, 2, 0, 5), Ok(0), "unlock");
    assert_eq!(c.lock(2, 1, 0, 1), Ok(0), "now free");
    assert_eq!(c.lock(2, 9, 0, 1), Err(e::EINVAL));
    assert_eq!(c.lock(2, 1, u64::MAX, 1), Err(e::EINVAL));
    // Clunking releases a fid's locks.
    c.clunk(2).unwrap();
    assert_eq!(c.lock(1, 1, 0, 0), Ok(0));
}

#[test]
fn extended_attributes_are_not_offered() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::new(dir.path(), false);
    let mut b = Vec::new();
    b.put_u32(ROOT);
    b.put_u32(1);
    b.put_str(b"user.x").unwrap();
    assert_eq!(c.call(msg::TXATTRWALK, &b), Err(e::EOPNOTSUPP));
    let mut b = Vec::new();
    b.put_u32(ROOT);
    b.put_str(b"user.x").unwrap();
    b.put_u64(1);
    b.put_u32(0);
    assert_eq!(c.call(msg::TXATTRCREATE, &b), Err(e::EOPNOTSUPP));
}
