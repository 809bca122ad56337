//! The server: session state (msize, fids), message dispatch, and the session-level messages
//! (version, attach, walk, clunk, flush). File and directory operations are in `file.rs` and
//! `dir.rs`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::node::{self, Kind, Node};
use crate::wire::{self, msg, qt, Put, Qid, Reader, NOFID};

/// The largest msize the server agrees to: a reply is built in one buffer of at most this size.
pub const MAX_MSIZE: u32 = 1 << 20;

/// The smallest msize the server accepts in Tversion (Linux's own minimum).
pub const MIN_MSIZE: u32 = 4096;

/// The reply space (`max_reply`) every request needs: an Rlerror. A request also needs room for
/// the largest reply of its kind (Rwalk 9 + 13 bytes per name, Rgetattr 160, Rlopen 24, ...),
/// except Rread, Rreaddir, Rreadlink and Rgetlock, which shrink to fit or fail before changing
/// anything. With less, the request is not executed and the reply is Rlerror(ENOBUFS), which a
/// device must have room for. Linux sizes its reply buffers so (on virtio since 6.1: a
/// one-name walk gets 22 bytes).
pub const MIN_REPLY: usize = wire::HEADER_LEN + 4;

/// Most fids a session may hold. A fid cloned by a walk of no names costs no descriptor, so
/// without a cap a guest could grow the table until the host runs out of memory; a Linux guest
/// holds about one fid per cached dentry and open file, far below this.
pub const MAX_FIDS: usize = 1 << 20;

/// Most names one Twalk may carry.
const MAX_WALK: usize = 16;

/// A fid: the guest's handle on a node, perhaps opened for I/O.
pub(crate) struct Fid {
    pub node: Arc<Node>,
    /// The numeric user the guest attached as (`n_uname`), owner of what this fid creates.
    pub uid: u32,
    /// The descriptor Tlopen/Tlcreate opened for I/O.
    pub open: Option<OwnedFd>,
}

/// A 9P2000.L server for one host directory.
///
/// Feed it whole request messages with [`Server::handle`]; it answers each with one whole reply
/// message, synchronously. It never leaves the directory given to [`Server::new`] (see the
/// crate documentation for how), and never panics on any input.
pub struct Server {
    pub(crate) root: Arc<Node>,
    pub(crate) read_only: bool,
    /// Negotiated by Tversion; `None` until then (every other request is refused).
    msize: Option<u32>,
    pub(crate) fids: HashMap<u32, Fid>,
    /// st_dev → qid path prefix. The share's own device has prefix 0, so its qid paths are its
    /// inode numbers; another device (a btrfs subvolume, an overlay layer) gets the next prefix
    /// in the top 16 bits.
    devs: HashMap<u64, u64>,
}

impl Server {
    /// Serves the directory `root`, refusing every change with `EROFS` if `read_only`.
    ///
    /// `root` is opened once, here; every later lookup is relative to that descriptor. Fails if
    /// `root` is not a directory, if the kernel lacks `openat2` (Linux 5.6) — there is no weaker
    /// fallback — or if `/proc/self/fd` is not there (procfs must be mounted).
    pub fn new(root: &Path, read_only: bool) -> io::Result<Server> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let raw = nix::fcntl::open(root, flags, Mode::empty())
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("{}: {e}", root.display())))?;
        // SAFETY: open returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // The probe asks for every resolve flag the server uses, so a kernel that has openat2
        // but not one of them fails here too.
        let probe = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let how = nix::fcntl::OpenHow::new().flags(probe).resolve(node::RESOLVE);
        match nix::fcntl::openat2(fd.as_raw_fd(), ".", how) {
            // SAFETY: openat2 returned a new descriptor that nothing else owns.
            Ok(probe_fd) => drop(unsafe { OwnedFd::from_raw_fd(probe_fd) }),
            Err(Errno::ENOSYS) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "virtio-9p needs openat2 (Linux 5.6 or later) to confine the share; this kernel lacks it",
                ))
            }
            Err(e) => return Err(io::Error::new(io::Error::from(e).kind(), format!("openat2 on the share: {e}"))),
        }
        let root_node = Node::new(fd, None, b"").map_err(io::Error::from)?;
        if root_node.kind != Kind::Dir {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{}: not a directory", root.display())));
        }
        match nix::sys::stat::stat(node::proc_path(root_node.fd.as_fd()).as_c_str()) {
            Ok(st) if st.st_dev == root_node.dev && st.st_ino == root_node.ino => {}
            _ => return Err(io::Error::other("virtio-9p needs /proc mounted (it reopens files via /proc/self/fd)")),
        }
        let mut devs = HashMap::new();
        devs.insert(root_node.dev, 0);
        Ok(Server { root: Arc::new(root_node), read_only, msize: None, fids: HashMap::new(), devs })
    }

    /// Answers one request. `request` holds one complete 9P message (`size[4] type[1] tag[2]
    /// ...`; bytes past `size` are ignored). `reply` is emptied and receives one complete
    /// message: the R-message, or Rlerror with an errno. `max_reply` is the space the device
    /// has for the reply; a reply never exceeds it nor the negotiated msize (Rread and
    /// Rreaddir carry less data to fit). A message too short to carry a tag is answered with
    /// tag `0xffff`.
    pub fn handle(&mut self, request: &[u8], max_reply: usize, reply: &mut Vec<u8>) {
        let (ty, tag, body) = match wire::split(request) {
            Ok(parts) => parts,
            Err(tag) => return wire::error(reply, tag, Errno::EPROTO),
        };
        let msize = match (ty, self.msize) {
            (msg::TVERSION, _) => MAX_MSIZE,
            (_, Some(m)) => m,
            (_, None) => return wire::error(reply, tag, Errno::EPROTO),
        };
        let limit = max_reply.min(msize as usize);
        if limit < reply_room(ty, body) {
            return wire::error(reply, tag, Errno::ENOBUFS);
        }
        wire::begin(reply, ty.wrapping_add(1), tag);
        match self.dispatch(ty, Reader::new(body), limit, reply) {
            Ok(()) if reply.len() <= limit => wire::finish(reply),
            Ok(()) => wire::error(reply, tag, Errno::EMSGSIZE),
            Err(e) => wire::error(reply, tag, e),
        }
    }

    /// The msize agreed by the last Tversion, if any.
    pub fn msize(&self) -> Option<u32> {
        self.msize
    }

    fn dispatch(&mut self, ty: u8, mut r: Reader, limit: usize, out: &mut Vec<u8>) -> Result<(), Errno> {
        match ty {
            msg::TVERSION => self.version(&mut r, out),
            msg::TAUTH => Err(Errno::EOPNOTSUPP),
            msg::TATTACH => self.attach(&mut r, out),
            msg::TFLUSH => r.u16().map(drop),
            msg::TWALK => self.walk(&mut r, out),
            msg::TCLUNK => self.fids.remove(&r.u32()?).map(drop).ok_or(Errno::EBADF),
            msg::TLOPEN => self.lopen(&mut r, out),
            msg::TLCREATE => self.lcreate(&mut r, out),
            msg::TREAD => self.read(&mut r, limit, out),
            msg::TWRITE => self.write(&mut r, out),
            msg::TREADDIR => self.readdir(&mut r, limit, out),
            msg::TGETATTR => self.getattr(&mut r, out),
            msg::TSETATTR => self.setattr(&mut r),
            msg::TSTATFS => self.statfs(&mut r, out),
            msg::TFSYNC => self.fsync(&mut r),
            msg::TLOCK => self.lock(&mut r, out),
            msg::TGETLOCK => self.getlock(&mut r, out),
            // Extended attributes are not offered; Linux's client takes EOPNOTSUPP as "none".
            msg::TXATTRWALK => Err(Errno::EOPNOTSUPP),
            msg::TXATTRCREATE => self.writable().and(Err(Errno::EOPNOTSUPP)),
            msg::TMKDIR => self.mkdir(&mut r, out),
            msg::TSYMLINK => self.symlink(&mut r, out),
            msg::TMKNOD => self.mknod(&mut r, out),
            msg::TREADLINK => self.readlink(&mut r, out),
            msg::TLINK => self.link(&mut r),
            msg::TRENAME => self.rename(&mut r),
            msg::TRENAMEAT => self.renameat(&mut r),
            msg::TUNLINKAT => self.unlinkat(&mut r),
            msg::TREMOVE => self.remove(&mut r),
            // Plain 9P2000 (Topen, Tcreate, Tstat, Twstat) and anything unknown.
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    /// Tversion: msize[4] version[s] → msize[4] version[s]. Starts a new session: every fid is
    /// clunked.
    fn version(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let asked = r.u32()?;
        let version = r.str()?;
        self.fids.clear();
        self.msize = None;
        let msize = asked.min(MAX_MSIZE);
        if msize < MIN_MSIZE {
            return Err(Errno::EINVAL);
        }
        out.put_u32(msize);
        if version.starts_with(b"9P2000.L") {
            self.msize = Some(msize);
            out.put_str(b"9P2000.L")
        } else {
            out.put_str(b"unknown")
        }
    }

    /// Tattach: fid[4] afid[4] uname[s] aname[s] n_uname[4] → qid. There is one share, so
    /// aname selects nothing; there is no authentication, so afid must be NOFID.
    fn attach(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        let afid = r.u32()?;
        let _uname = r.str()?;
        let _aname = r.str()?;
        let uid = r.u32()?;
        if afid != NOFID {
            return Err(Errno::EOPNOTSUPP);
        }
        self.new_fid(fid)?;
        let qid = self.qid(&self.root.clone());
        self.fids.insert(fid, Fid { node: self.root.clone(), uid, open: None });
        out.put_qid(&qid);
        Ok(())
    }

    /// Twalk: fid[4] newfid[4] nwname[2] wname[s]... → nwqid[2] qid... Each name is one entry
    /// of the directory reached so far (see `step`). If the first name fails the reply is an
    /// error; if a later one fails the reply lists the qids reached and newfid is not made.
    fn walk(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let fid = r.u32()?;
        let newfid = r.u32()?;
        let n = usize::from(r.u16()?);
        if n > MAX_WALK {
            return Err(Errno::EINVAL);
        }
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            names.push(r.str()?);
        }
        let from = self.fid(fid)?;
        let (uid, mut node) = (from.uid, from.node.clone());
        if newfid != fid {
            self.new_fid(newfid)?;
        }
        let mut qids = Vec::with_capacity(n);
        for (i, name) in names.iter().enumerate() {
            match self.step(&node, name) {
                Ok(next) => {
                    qids.push(self.qid(&next));
                    node = next;
                }
                Err(e) if i == 0 => return Err(e),
                Err(_) => break,
            }
        }
        // A walk of no names onto the same fid changes nothing (and keeps it open).
        if qids.len() == n && (n > 0 || newfid != fid) {
            self.fids.insert(newfid, Fid { node, uid, open: None });
        }
        out.put_u16(qids.len() as u16);
        for q in &qids {
            out.put_qid(q);
        }
        Ok(())
    }

    /// One walk step from the directory `node`. `..` goes to the node's known parent, and
    /// stays put at the share's root; any other name is looked up as one entry, never through
    /// a symlink (walking onto a symlink gives the link itself, and walking on from it fails
    /// with ENOTDIR).
    fn step(&self, node: &Arc<Node>, name: &[u8]) -> Result<Arc<Node>, Errno> {
        if node.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        if name == b".." {
            return Ok(node.parent.clone().unwrap_or_else(|| self.root.clone()));
        }
        let fd = node::lookup(node.fd.as_fd(), name)?;
        Ok(Arc::new(Node::new(fd, Some(node.clone()), name)?))
    }

    /// The fid `fid`, or EBADF.
    pub(crate) fn fid(&self, fid: u32) -> Result<&Fid, Errno> {
        self.fids.get(&fid).ok_or(Errno::EBADF)
    }

    /// The descriptor fid `fid` was opened with, or EBADF.
    pub(crate) fn opened(&self, fid: u32) -> Result<&OwnedFd, Errno> {
        self.fid(fid)?.open.as_ref().ok_or(Errno::EBADF)
    }

    /// The node of fid `fid`, which must be a directory.
    pub(crate) fn dir(&self, fid: u32) -> Result<Arc<Node>, Errno> {
        let node = &self.fid(fid)?.node;
        if node.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(node.clone())
    }

    /// Checks that `fid` is free to be made.
    fn new_fid(&self, fid: u32) -> Result<(), Errno> {
        if fid == NOFID || self.fids.contains_key(&fid) {
            return Err(Errno::EBADF);
        }
        if self.fids.len() >= MAX_FIDS {
            return Err(Errno::EMFILE);
        }
        Ok(())
    }

    /// Refuses a change to the share when it is read-only.
    pub(crate) fn writable(&self) -> Result<(), Errno> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    /// The qid of `node`.
    pub(crate) fn qid(&mut self, node: &Node) -> Qid {
        let ty = match node.kind {
            Kind::Dir => qt::DIR,
            Kind::Symlink => qt::SYMLINK,
            Kind::File | Kind::Special => qt::FILE,
        };
        Qid { ty, version: 0, path: self.qid_path(node.dev, node.ino) }
    }

    /// A qid path unique to (dev, ino): the inode number on the share's own device; elsewhere
    /// the inode number with the device's prefix in the top 16 bits (unique as long as that
    /// device's inode numbers stay below 2^48).
    pub(crate) fn qid_path(&mut self, dev: u64, ino: u64) -> u64 {
        let next = self.devs.len() as u64;
        let prefix = *self.devs.entry(dev).or_insert(next);
        ino ^ (prefix << 48)
    }
}

/// The largest reply a request of type `ty` with `body` can have, at least an Rlerror (see
/// [`MIN_REPLY`]). Replies that shrink, or whose requests change nothing, need only that.
fn reply_room(ty: u8, body: &[u8]) -> usize {
    const HDR: usize = wire::HEADER_LEN;
    const QID: usize = wire::QID_LEN;
    let room = match ty {
        msg::TVERSION => HDR + 4 + 2 + b"9P2000.L".len(),
        msg::TATTACH | msg::TMKDIR | msg::TSYMLINK | msg::TMKNOD => HDR + QID,
        // fid[4] newfid[4] nwname[2]: a walk of more names than allowed fails before changing
        // anything.
        msg::TWALK => {
            let n = body.get(8..10).map_or(0, |n| usize::from(u16::from_le_bytes([n[0], n[1]])));
            HDR + 2 + QID * n.min(MAX_WALK)
        }
        msg::TLOPEN | msg::TLCREATE => HDR + QID + 4,
        // valid[8] qid mode uid gid[4 each] nlink rdev size blksize blocks[8 each], then atime
        // mtime ctime btime[16 each] gen data_version[8 each].
        msg::TGETATTR => HDR + 8 + QID + 3 * 4 + 5 * 8 + 4 * 16 + 2 * 8,
        // type[4] bsize[4] blocks bfree bavail files ffree fsid[8 each] namelen[4].
        msg::TSTATFS => HDR + 4 + 4 + 6 * 8 + 4,
        _ => 0,
    };
    room.max(MIN_REPLY)
}
