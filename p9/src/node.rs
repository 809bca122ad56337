//! Files the guest has walked to, and the only ways the server turns a guest's name into a file.
//!
//! A [`Node`] holds a descriptor on one file of the share (an `O_PATH` handle on the file
//! itself, never through a symlink) and the node it was walked from. Every name the guest sends
//! goes through [`check_name`] and is resolved by [`open_entry`] as one entry of a directory
//! the server already holds, with `openat2` and resolve flags that refuse anything but that
//! entry. Operations on a node that Linux only offers by path use [`proc_path`], the kernel's
//! handle on the very descriptor, never a path string the guest could influence.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};

/// The kind of a file, fixed for the life of its inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device node: walkable and stat-able, never opened by the server.
    Special,
}

impl Kind {
    /// The kind of a file with mode `st_mode`.
    pub fn of(st_mode: u32) -> Kind {
        match SFlag::from_bits_truncate(st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFREG => Kind::File,
            SFlag::S_IFLNK => Kind::Symlink,
            _ => Kind::Special,
        }
    }
}

/// One file of the share the server holds a descriptor on.
pub struct Node {
    /// Refers to the file itself (for a symlink, the link); usually `O_PATH`.
    pub fd: OwnedFd,
    /// The directory this node was walked from; `None` only for the share's root. It is where a
    /// `..` walk goes: never a path lookup, so it cannot lead out of the share.
    pub parent: Option<Arc<Node>>,
    /// The entry name in `parent` when the node was made (empty for the root). Used only by
    /// Trename and Tremove, which check that the name still leads to this very file.
    pub name: Vec<u8>,
    /// The file's kind.
    pub kind: Kind,
    /// st_dev, for the qid.
    pub dev: u64,
    /// st_ino, for the qid.
    pub ino: u64,
}

impl Node {
    /// A node for `fd`, a descriptor on a file of the share, stat-ed here.
    pub fn new(fd: OwnedFd, parent: Option<Arc<Node>>, name: &[u8]) -> Result<Node, Errno> {
        let st = stat(fd.as_fd())?;
        Ok(Node { fd, parent, name: name.to_vec(), kind: Kind::of(st.st_mode), dev: st.st_dev, ino: st.st_ino })
    }
}

impl Drop for Node {
    // A guest can nest directories as deep as it likes, so a chain of parents is released one
    // link at a time rather than by recursion, which could overflow the stack.
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(node) = next {
            next = match Arc::try_unwrap(node) {
                Ok(mut alone) => alone.parent.take(),
                Err(_) => None,
            };
        }
    }
}

/// Refuses a name that is not exactly one directory entry: empty, `.`, `..`, or containing `/`
/// or NUL. (`..` in a walk is handled before this, through [`Node::parent`].)
pub fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The resolve flags for every guest-named open. `RESOLVE_BENEATH` rather than
/// `RESOLVE_IN_ROOT`: the server never needs a symlink or `..` reinterpreted, so anything that
/// would leave the directory fails loudly (EXDEV) instead of being quietly rerooted at a
/// directory that is not the share's root. `RESOLVE_NO_SYMLINKS` (which implies
/// `RESOLVE_NO_MAGICLINKS`) because the server never follows a link; the guest reads links and
/// resolves them itself. `RESOLVE_NO_XDEV` because the share is one mount: a mount point inside
/// it (a bind mount, or `/proc` in a share of `/`) is not entered.
pub const RESOLVE: ResolveFlag = ResolveFlag::RESOLVE_BENEATH
    .union(ResolveFlag::RESOLVE_NO_MAGICLINKS)
    .union(ResolveFlag::RESOLVE_NO_SYMLINKS)
    .union(ResolveFlag::RESOLVE_NO_XDEV);

/// Opens the entry `name` of the directory `dir`, with `flags` plus `O_NOFOLLOW | O_CLOEXEC`,
/// creating it with `mode` if `flags` has `O_CREAT`. With `O_PATH` a symlink yields a handle on
/// the link itself; otherwise a symlink fails with `ELOOP`.
pub fn open_entry(dir: BorrowedFd, name: &[u8], flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
    check_name(name)?;
    let mut how = OpenHow::new().flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).resolve(RESOLVE);
    if flags.contains(OFlag::O_CREAT) {
        how = how.mode(mode);
    }
    // openat2 may answer EAGAIN when a rename elsewhere races the lookup; it is safe to retry.
    let mut tries = 0;
    let fd = loop {
        match openat2(dir.as_raw_fd(), name, how) {
            Err(Errno::EAGAIN) if tries < 8 => tries += 1,
            r => break r?,
        }
    };
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `name` in `dir` as an `O_PATH` handle on the entry itself.
pub fn lookup(dir: BorrowedFd, name: &[u8]) -> Result<OwnedFd, Errno> {
    open_entry(dir, name, OFlag::O_PATH, Mode::empty())
}

/// `/proc/self/fd/N` for descriptor `fd`: the kernel resolves it to the file `fd` refers to,
/// whatever has happened to names since, so calls that only take a path (chmod, truncate, and
/// reopening an `O_PATH` handle for I/O) reach exactly the file the server holds.
pub fn proc_path(fd: BorrowedFd) -> CString {
    // A decimal number never contains NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// Opens the file `fd` refers to afresh, with `flags` (plus `O_CLOEXEC`). Never use it on a
/// symlink (the open would follow the link's text).
pub fn reopen(fd: BorrowedFd, flags: OFlag) -> Result<OwnedFd, Errno> {
    let raw = nix::fcntl::open(proc_path(fd).as_c_str(), flags | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// fstat of `fd` without following it (it may be an `O_PATH` handle on a symlink).
pub fn stat(fd: BorrowedFd) -> Result<FileStat, Errno> {
    fstatat(Some(fd.as_raw_fd()), "", nix::fcntl::AtFlags::AT_EMPTY_PATH | nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
}

/// Gives a file the server just made the guest's owner (`uid`, `gid`). A server without the
/// privilege to chown keeps its own ownership: `EPERM` is not an error.
pub fn give(fd: BorrowedFd, uid: u32, gid: u32) -> Result<(), Errno> {
    let uid = (uid != crate::wire::NONUNAME).then(|| Uid::from_raw(uid));
    let gid = (gid != u32::MAX).then(|| Gid::from_raw(gid));
    let flags = nix::fcntl::AtFlags::AT_EMPTY_PATH | nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
    match fchownat(Some(fd.as_raw_fd()), "", uid, gid, flags) {
        Ok(()) | Err(Errno::EPERM) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_one_entry_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"a\0b", b"../x", b"x/"] {
            assert_eq!(check_name(bad), Err(Errno::EINVAL), "{bad:?}");
        }
        for good in [&b"a"[..], b"...", b".hidden", b"a b", b"\xff\xfe"] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn a_deep_parent_chain_drops_without_recursion() {
        let dir = tempfile::tempdir().unwrap();
        let root = nix::fcntl::open(dir.path(), OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        // SAFETY: open returned a new descriptor that nothing else owns.
        let root = unsafe { OwnedFd::from_raw_fd(root) };
        // On a 32 KiB stack, dropping 600 nested nodes by recursion would overflow (several
        // frames per level); the loop in Drop needs a constant amount.
        let t = std::thread::Builder::new().stack_size(32 * 1024).spawn(move || {
            let mut node = Arc::new(Node::new(root, None, b"").unwrap());
            for _ in 0..600 {
                let fd = node.fd.try_clone().unwrap();
                node = Arc::new(Node { fd, parent: Some(node), name: Vec::new(), kind: Kind::Dir, dev: 0, ino: 0 });
            }
            drop(node);
        });
        t.unwrap().join().unwrap();
    }
}
