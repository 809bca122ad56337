//! Operations on one file a fid names: open and create, I/O, directory listing, attributes,
//! statfs, fsync and advisory locks.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag};
use nix::sys::stat::{fchmod, fchmodat, FchmodatFlags, Mode};
use nix::unistd::{fchownat, Gid, Uid, Whence};

use crate::node::{self, Kind, Node};
use crate::server::Server;
use crate::wire::{qt, Put, Qid, Reader};

/// Tlopen/Tlcreate flags (Linux's generic open flag values, whatever the host architecture).
mod dotl {
    pub const ACCMODE: u32 = 0o3;
    pub const NOACCESS: u32 = 0o3;
    pub const EXCL: u32 = 0o200;
    pub const TRUNC: u32 = 0o1000;
}

/// Tsetattr `valid` bits.
mod setattr {
    pub const MODE: u32 = 0x1;
    pub const UID: u32 = 0x2;
    pub const GID: u32 = 0x4;
    pub const SIZE: u32 = 0x8;
    pub const ATIME: u32 = 0x10;
    pub const MTIME: u32 = 0x20;
    pub const ATIME_SET: u32 = 0x80;
    pub const MTIME_SET: u32 = 0x100;
}

/// Rgetattr's `valid`: the basic fields, all of which are filled.
const GETATTR_BASIC: u64 = 0x7ff;

/// Tlock/Tgetlock lock types and Rlock statuses.
const LOCK_RDLCK: u8 = 0;
const LOCK_WRLCK: u8 = 1;
const LOCK_UNLCK: u8 = 2;
const LOCK_SUCCESS: u8 = 0;
const LOCK_BLOCKED: u8 = 1;

/// Host open flags for 9P2000.L `flags`. The wire carries x86/generic values, and an arm64
/// host's O_DIRECTORY/O_NOFOLLOW/O_DIRECT differ, so each flag is translated by name. Dropped:
/// O_CREAT/O_EXCL (Tlcreate's business), O_NOCTTY, O_ASYNC, O_DIRECT (the server's buffers are
/// not aligned for it), O_NOATIME (EPERM unless the server owns the file), O_LARGEFILE and
/// O_CLOEXEC (always on). O_NOFOLLOW is always added where a name is opened.
fn open_flags(flags: u32) -> Result<OFlag, Errno> {
    let mut o = match flags & dotl::ACCMODE {
        0 => OFlag::O_RDONLY,
        1 => OFlag::O_WRONLY,
        2 => OFlag::O_RDWR,
        _ => return Err(Errno::EINVAL),
    };
    let map = [
        (dotl::TRUNC, OFlag::O_TRUNC),
        (0o2000, OFlag::O_APPEND),
        (0o4000, OFlag::O_NONBLOCK),
        (0o10000, OFlag::O_DSYNC),
        (0o200000, OFlag::O_DIRECTORY),
        (0o4000000, OFlag::O_SYNC),
    ];
    for (bit, flag) in map {
        if flags & bit != 0 {
            o |= flag;
        }
    }
    Ok(o)
}

/// Whether opening with 9P2000.L `flags` could change the file.
fn writes(flags: u32) -> bool {
    flags & dotl::ACCMODE != 0 || flags & dotl::TRUNC != 0
}

/// A byte offset or length from the wire as the kernel's signed type.
fn off(v: u64) -> Result<i64, Errno> {
    i64::try_from(v).map_err(|_| Errno::EINVAL)
}

impl Server {
    /// Tlopen: fid[4] flags[4] → qid iounit[4]. Regular files and directories only: a device
    /// node would reach host hardware and a FIFO could block the server, so those are EPERM (a
    /// Linux guest opens its FIFOs and device nodes locally, never through the server).
    pub(crate) fn lopen(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        let flags = r.u32()?;
        let oflags = open_flags(flags)?;
        if writes(flags) {
            self.writable()?;
        }
        let f = self.fid(fid)?;
        if f.open.is_some() {
            return Err(Errno::EBADF);
        }
        let node = f.node.clone();
        let fd = match node.kind {
            // The open goes through /proc/self/fd, which names the inode the fid holds: no
            // name is looked up again, so nothing swapped in since the walk can be reached.
            Kind::Dir | Kind::File => node::reopen(node.fd.as_fd(), oflags)?,
            Kind::Symlink => return Err(Errno::ELOOP),
            Kind::Special => return Err(Errno::EPERM),
        };
        let qid = self.qid(&node);
        if let Some(f) = self.fids.get_mut(&fid) {
            f.open = Some(fd);
        }
        out.put_qid(&qid);
        out.put_u32(0);
        Ok(())
    }

    /// Tlcreate: fid[4] name[s] flags[4] mode[4] gid[4] → qid iounit[4]. Creates a regular file
    /// in the directory fid and opens it; fid then refers to the new file. Without O_EXCL in
    /// flags an existing file is opened instead (never through a symlink).
    pub(crate) fn lcreate(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        let name = r.str()?;
        let flags = r.u32()?;
        let mode = r.u32()?;
        let gid = r.u32()?;
        self.writable()?;
        if flags & dotl::ACCMODE == dotl::NOACCESS {
            return Err(Errno::EINVAL);
        }
        let oflags = open_flags(flags)?;
        let dir = self.dir(fid)?;
        let (uid, opened) = (self.fid(fid)?.uid, self.fid(fid)?.open.is_some());
        if opened {
            return Err(Errno::EBADF);
        }
        let perm = Mode::from_bits_truncate(mode & 0o7777);
        let create = oflags | OFlag::O_CREAT | OFlag::O_EXCL;
        let fd = match node::open_entry(dir.fd.as_fd(), name, create, perm) {
            Ok(fd) => {
                // The guest applied its umask already; undo the server's.
                fchmod(fd.as_raw_fd(), perm)?;
                node::give(fd.as_fd(), uid, gid)?;
                fd
            }
            // Open what is there through a handle first, so that only a regular file is ever
            // opened: opening a FIFO would block the server, a device would reach the host's.
            Err(Errno::EEXIST) if flags & dotl::EXCL == 0 => {
                let path = node::lookup(dir.fd.as_fd(), name)?;
                match Kind::of(node::stat(path.as_fd())?.st_mode) {
                    Kind::File => node::reopen(path.as_fd(), oflags)?,
                    Kind::Dir => return Err(Errno::EISDIR),
                    Kind::Symlink => return Err(Errno::ELOOP),
                    Kind::Special => return Err(Errno::EPERM),
                }
            }
            Err(e) => return Err(e),
        };
        let node = Arc::new(Node::new(fd.try_clone().map_err(errno)?, Some(dir), name)?);
        let qid = self.qid(&node);
        if let Some(f) = self.fids.get_mut(&fid) {
            f.node = node;
            f.open = Some(fd);
        }
        out.put_qid(&qid);
        out.put_u32(0);
        Ok(())
    }

    /// Tread: fid[4] offset[8] count[4] → count[4] data. Reads at most what fits the reply.
    pub(crate) fn read(&mut self, r: &mut Reader, limit: usize, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        let offset = off(r.u64()?)?;
        let count = r.u32()? as usize;
        let fd = self.opened(fid)?;
        let n = count.min(limit.saturating_sub(out.len() + 4));
        let at = out.len();
        out.put_u32(0);
        out.resize(at + 4 + n, 0);
        let got = nix::sys::uio::pread(fd, &mut out[at + 4..], offset)?;
        out.truncate(at + 4 + got);
        out[at..at + 4].copy_from_slice(&(got as u32).to_le_bytes());
        Ok(())
    }

    /// Twrite: fid[4] offset[8] count[4] data → count[4].
    pub(crate) fn write(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        let offset = off(r.u64()?)?;
        let count = r.u32()? as usize;
        let data = r.bytes(count)?;
        self.writable()?;
        let n = nix::sys::uio::pwrite(self.opened(fid)?, data, offset)?;
        out.put_u32(n as u32);
        Ok(())
    }

    /// Treaddir: fid[4] offset[8] count[4] → count[4] entries, each qid offset[8] type[1]
    /// name[s]. `offset` is 0 or an entry's offset from an earlier reply (the host's directory
    /// cookie), so the fid keeps no listing state.
    pub(crate) fn readdir(&mut self, r: &mut Reader, limit: usize, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        // Cookies are opaque 64-bit values; they go back to lseek bit for bit.
        let offset = r.u64()? as i64;
        let count = r.u32()? as usize;
        let f = self.fid(fid)?;
        let fd = f.open.as_ref().ok_or(Errno::EBADF)?;
        if f.node.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        let dev = f.node.dev;
        let room = count.min(limit.saturating_sub(out.len() + 4));
        nix::unistd::lseek(fd.as_raw_fd(), offset, Whence::SeekSet)?;
        // A host entry is at most 280 bytes; the slack lets one be read even when its 9P form
        // is the part that does not fit, so "too small" is told apart from "end".
        let mut buf = vec![0u8; room + 512];
        let n = getdents(fd.as_fd(), &mut buf)?;
        let mut entries = Vec::with_capacity(room);
        let mut host = Reader::new(&buf[..n]);
        while let Ok(ent) = dirent(&mut host) {
            if entries.len() + 24 + ent.name.len() > room {
                if entries.is_empty() {
                    return Err(Errno::EINVAL);
                }
                break;
            }
            let ty = match ent.ty {
                libc::DT_DIR => qt::DIR,
                libc::DT_LNK => qt::SYMLINK,
                _ => qt::FILE,
            };
            entries.put_qid(&Qid { ty, version: 0, path: self.qid_path(dev, ent.ino) });
            entries.put_u64(ent.off);
            entries.put_u8(ent.ty);
            entries.put_str(ent.name)?;
        }
        out.put_u32(entries.len() as u32);
        out.extend_from_slice(&entries);
        Ok(())
    }

    /// Tgetattr: fid[4] request_mask[8] → the basic attributes, whatever was asked.
    // st_nlink is u64 on x86_64 and u32 on arm64; the conversion is needed on one of them.
    #[allow(clippy::useless_conversion)]
    pub(crate) fn getattr(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        let _mask = r.u64()?;
        let node = self.fid(fid)?.node.clone();
        let st = node::stat(node.fd.as_fd())?;
        let qid = self.qid(&node);
        out.put_u64(GETATTR_BASIC);
        out.put_qid(&qid);
        out.put_u32(st.st_mode);
        out.put_u32(st.st_uid);
        out.put_u32(st.st_gid);
        out.put_u64(u64::from(st.st_nlink));
        out.put_u64(st.st_rdev);
        out.put_u64(st.st_size as u64);
        out.put_u64(st.st_blksize as u64);
        out.put_u64(st.st_blocks as u64);
        for (sec, nsec) in [(st.st_atime, st.st_atime_nsec), (st.st_mtime, st.st_mtime_nsec)] {
            out.put_u64(sec as u64);
            out.put_u64(nsec as u64);
        }
        out.put_u64(st.st_ctime as u64);
        out.put_u64(st.st_ctime_nsec as u64);
        // btime, gen, data_version: not in `valid`.
        for _ in 0..4 {
            out.put_u64(0);
        }
        Ok(())
    }

    /// Tsetattr: fid[4] valid[4] mode[4] uid[4] gid[4] size[8] atime[8+8] mtime[8+8]. Applied
    /// to the inode the fid holds: mode and size through /proc/self/fd, owner and times on the
    /// descriptor itself (so a symlink's own owner and times).
    pub(crate) fn setattr(&mut self, r: &mut Reader) -> Result<(), Errno> {
        let fid = r.u32()?;
        let valid = r.u32()?;
        let mode = r.u32()?;
        let uid = r.u32()?;
        let gid = r.u32()?;
        let size = r.u64()?;
        let atime = (r.u64()?, r.u64()?);
        let mtime = (r.u64()?, r.u64()?);
        self.writable()?;
        let node = self.fid(fid)?.node.clone();
        let fd = node.fd.as_fd();
        if valid & setattr::MODE != 0 {
            if node.kind == Kind::Symlink {
                return Err(Errno::EOPNOTSUPP);
            }
            let path = node::proc_path(fd);
            fchmodat(None, path.as_c_str(), Mode::from_bits_truncate(mode & 0o7777), FchmodatFlags::FollowSymlink)?;
        }
        if valid & (setattr::UID | setattr::GID) != 0 {
            let uid = (valid & setattr::UID != 0).then(|| Uid::from_raw(uid));
            let gid = (valid & setattr::GID != 0).then(|| Gid::from_raw(gid));
            fchownat(Some(fd.as_raw_fd()), "", uid, gid, AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW)?;
        }
        if valid & setattr::SIZE != 0 {
            match node.kind {
                Kind::File => nix::unistd::truncate(node::proc_path(fd).as_c_str(), off(size)?)?,
                Kind::Dir => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
        }
        if valid & (setattr::ATIME | setattr::MTIME) != 0 {
            let a = time(valid, setattr::ATIME, setattr::ATIME_SET, atime)?;
            let m = time(valid, setattr::MTIME, setattr::MTIME_SET, mtime)?;
            set_times(fd, node.kind, [a, m])?;
        }
        Ok(())
    }

    /// Tstatfs: fid[4] → type[4] bsize[4] blocks[8] bfree[8] bavail[8] files[8] ffree[8]
    /// fsid[8] namelen[4], of the file system holding fid.
    pub(crate) fn statfs(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        let fd = self.fid(fid)?.node.fd.as_raw_fd();
        let mut st = MaybeUninit::<libc::statfs>::zeroed();
        // SAFETY: `st` is a writable buffer of the type fstatfs fills; `fd` is open.
        Errno::result(unsafe { libc::fstatfs(fd, st.as_mut_ptr()) })?;
        // SAFETY: fstatfs succeeded, so it filled `st`; and zeroed was already a valid value.
        let st = unsafe { st.assume_init() };
        // SAFETY: fsid_t is two C ints (its field is private in the libc crate).
        let fsid: [i32; 2] = unsafe { std::mem::transmute(st.f_fsid) };
        out.put_u32(st.f_type as u32);
        out.put_u32(st.f_bsize as u32);
        out.put_u64(st.f_blocks);
        out.put_u64(st.f_bfree);
        out.put_u64(st.f_bavail);
        out.put_u64(st.f_files);
        out.put_u64(st.f_ffree);
        out.put_u64(u64::from(fsid[0] as u32) | (u64::from(fsid[1] as u32) << 32));
        out.put_u32(st.f_namelen as u32);
        Ok(())
    }

    /// Tfsync: fid[4] datasync[4]; fid must be open.
    pub(crate) fn fsync(&mut self, r: &mut Reader) -> Result<(), Errno> {
        let fid = r.u32()?;
        let datasync = r.u32()?;
        let fd = self.opened(fid)?.as_raw_fd();
        if datasync != 0 {
            nix::unistd::fdatasync(fd)
        } else {
            nix::unistd::fsync(fd)
        }
    }

    /// Tlock: fid[4] type[1] flags[4] start[8] length[8] proc_id[4] client_id[s] → status[1].
    /// A real advisory lock: an open-file-description lock on the fid's descriptor, so guest
    /// fids and host processes exclude each other. The server never waits: a conflict is
    /// BLOCKED, and Linux's client retries when it wants to wait. Two fids of one guest process
    /// conflict too (each open file has its own lock owner).
    pub(crate) fn lock(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        let ty = r.u8()?;
        let _flags = r.u32()?;
        let start = off(r.u64()?)?;
        let len = off(r.u64()?)?;
        let _proc = r.u32()?;
        let _client = r.str()?;
        let fl = flock(ty, start, len)?;
        let fd = self.opened(fid)?.as_raw_fd();
        let status = match nix::fcntl::fcntl(fd, FcntlArg::F_OFD_SETLK(&fl)) {
            Ok(_) => LOCK_SUCCESS,
            Err(Errno::EAGAIN | Errno::EACCES) => LOCK_BLOCKED,
            Err(e) => return Err(e),
        };
        out.put_u8(status);
        Ok(())
    }

    /// Tgetlock: fid[4] type[1] start[8] length[8] proc_id[4] client_id[s] → type[1] start[8]
    /// length[8] proc_id[4] client_id[s]: the first lock that would conflict, or type UNLCK. The
    /// holder of a conflicting lock is reported as proc_id 0: it may be a host process.
    pub(crate) fn getlock(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        let ty = r.u8()?;
        let start = r.u64()?;
        let len = r.u64()?;
        let proc_id = r.u32()?;
        let client = r.str()?;
        let mut fl = flock(ty, off(start)?, off(len)?)?;
        let fd = self.opened(fid)?.as_raw_fd();
        nix::fcntl::fcntl(fd, FcntlArg::F_OFD_GETLK(&mut fl))?;
        match i32::from(fl.l_type) {
            libc::F_UNLCK => {
                out.put_u8(LOCK_UNLCK);
                out.put_u64(start);
                out.put_u64(len);
                out.put_u32(proc_id);
            }
            t => {
                out.put_u8(if t == libc::F_WRLCK { LOCK_WRLCK } else { LOCK_RDLCK });
                out.put_u64(fl.l_start as u64);
                out.put_u64(fl.l_len as u64);
                out.put_u32(0);
            }
        }
        out.put_str(client)
    }
}

/// A `struct flock` for a 9P lock type and range.
fn flock(ty: u8, start: i64, len: i64) -> Result<libc::flock, Errno> {
    let l_type = match ty {
        LOCK_RDLCK => libc::F_RDLCK,
        LOCK_WRLCK => libc::F_WRLCK,
        LOCK_UNLCK => libc::F_UNLCK,
        _ => return Err(Errno::EINVAL),
    };
    // SAFETY: flock is plain integers, for which all-zero is valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    Ok(fl)
}

/// The timespec for one of Tsetattr's times: untouched, now, or the given time.
fn time(valid: u32, change: u32, given: u32, (sec, nsec): (u64, u64)) -> Result<libc::timespec, Errno> {
    // SAFETY: timespec is plain integers, for which all-zero is valid.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if valid & change == 0 {
        ts.tv_nsec = libc::UTIME_OMIT;
    } else if valid & given == 0 {
        ts.tv_nsec = libc::UTIME_NOW;
    } else {
        if nsec >= 1_000_000_000 {
            return Err(Errno::EINVAL);
        }
        ts.tv_sec = off(sec)?;
        ts.tv_nsec = nsec as libc::c_long;
    }
    Ok(ts)
}

/// utimensat on the descriptor itself (AT_EMPTY_PATH, not following a symlink). Kernels before
/// 5.8 refuse AT_EMPTY_PATH there; for anything but a symlink /proc/self/fd does the same.
fn set_times(fd: BorrowedFd, kind: Kind, times: [libc::timespec; 2]) -> Result<(), Errno> {
    let flags = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW;
    // SAFETY: the path is a NUL-terminated empty string, `times` points to two timespecs, and
    // `fd` is open for the duration of the call.
    let rc = unsafe { libc::utimensat(fd.as_raw_fd(), c"".as_ptr(), times.as_ptr(), flags) };
    match Errno::result(rc) {
        Err(Errno::EINVAL) if kind != Kind::Symlink => {
            let path = node::proc_path(fd);
            // SAFETY: `path` is NUL-terminated and `times` points to two timespecs.
            let rc = unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) };
            Errno::result(rc).map(drop)
        }
        r => r.map(drop),
    }
}

/// getdents64 into `buf`; the number of bytes filled.
fn getdents(fd: BorrowedFd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for its whole length and `fd` is open.
    let n = unsafe { libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    Errno::result(n).map(|n| n as usize)
}

/// One host directory entry.
struct Dirent<'a> {
    ino: u64,
    off: u64,
    ty: u8,
    name: &'a [u8],
}

/// Decodes one `linux_dirent64` (ino[8] off[8] reclen[2] type[1] name NUL, in host order).
fn dirent<'a>(r: &mut Reader<'a>) -> Result<Dirent<'a>, Errno> {
    let head = r.bytes(19)?;
    let ino = u64::from_ne_bytes(head[0..8].try_into().map_err(|_| Errno::EIO)?);
    let off = u64::from_ne_bytes(head[8..16].try_into().map_err(|_| Errno::EIO)?);
    let reclen = usize::from(u16::from_ne_bytes([head[16], head[17]]));
    let rest = r.bytes(reclen.checked_sub(19).ok_or(Errno::EIO)?)?;
    let name = rest.split(|&b| b == 0).next().unwrap_or_default();
    Ok(Dirent { ino, off, ty: head[18], name })
}

/// An io::Error from std's descriptor calls, as an errno.
fn errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_flags_become_host_flags() {
        // O_DIRECTORY and O_NOFOLLOW have other values on arm64 than on the wire.
        assert_eq!(open_flags(0o200000).unwrap(), OFlag::O_RDONLY | OFlag::O_DIRECTORY);
        assert_eq!(open_flags(0o1002).unwrap(), OFlag::O_RDWR | OFlag::O_TRUNC);
        // O_DIRECT, O_NOATIME, O_LARGEFILE, O_NOFOLLOW, O_CLOEXEC and O_CREAT are dropped.
        assert_eq!(open_flags(0o40000 | 0o1000000 | 0o100000 | 0o400000 | 0o2000000 | 0o100).unwrap(), OFlag::O_RDONLY);
        assert_eq!(open_flags(3), Err(Errno::EINVAL));
        assert!(writes(1) && writes(2) && writes(0o1000) && !writes(0o200000));
    }
}
