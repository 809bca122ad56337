//! Operations on directory entries: make (mkdir, symlink, mknod, link), rename, remove, and
//! readlink.
//!
//! Every name here is checked to be one entry (`check_name`) and handed to an `*at` call with
//! the directory descriptor the server holds, so it can only name an entry of that directory;
//! none of these calls follows a symlink in its last component.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{linkat, symlinkat, unlinkat, UnlinkatFlags};

use crate::node::{self, check_name, Kind, Node};
use crate::server::Server;
use crate::wire::{Put, Reader};

impl Server {
    /// Tmkdir: dfid[4] name[s] mode[4] gid[4] → qid.
    pub(crate) fn mkdir(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let (dfid, name, mode, gid) = (r.u32()?, r.str()?, r.u32()?, r.u32()?);
        self.writable()?;
        let dir = self.dir(dfid)?;
        check_name(name)?;
        let perm = Mode::from_bits_truncate(mode & 0o7777);
        mkdirat(Some(dir.fd.as_raw_fd()), name, perm)?;
        self.made(dfid, dir, name, Some(perm), gid, out)
    }

    /// Tsymlink: dfid[4] name[s] target[s] gid[4] → qid. The target is only stored; the server
    /// never follows it.
    pub(crate) fn symlink(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let (dfid, name, target, gid) = (r.u32()?, r.str()?, r.str()?, r.u32()?);
        self.writable()?;
        let dir = self.dir(dfid)?;
        check_name(name)?;
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        symlinkat(target, Some(dir.fd.as_raw_fd()), name)?;
        self.made(dfid, dir, name, None, gid, out)
    }

    /// Tmknod: dfid[4] name[s] mode[4] major[4] minor[4] gid[4] → qid. Regular files, FIFOs and
    /// sockets only: a device node in the share would let the guest reach host devices, so
    /// those are EPERM (as for an unprivileged process).
    pub(crate) fn mknod(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let (dfid, name, mode) = (r.u32()?, r.str()?, r.u32()?);
        let (_major, _minor, gid) = (r.u32()?, r.u32()?, r.u32()?);
        self.writable()?;
        let dir = self.dir(dfid)?;
        check_name(name)?;
        let kind = match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
            k if k.is_empty() => SFlag::S_IFREG,
            k @ (SFlag::S_IFREG | SFlag::S_IFIFO | SFlag::S_IFSOCK) => k,
            SFlag::S_IFCHR | SFlag::S_IFBLK => return Err(Errno::EPERM),
            _ => return Err(Errno::EINVAL),
        };
        let perm = Mode::from_bits_truncate(mode & 0o7777);
        mknodat(Some(dir.fd.as_raw_fd()), name, kind, perm, 0)?;
        self.made(dfid, dir, name, Some(perm), gid, out)
    }

    /// After making `name` in `dir`: sets its exact permissions (the server's umask must not
    /// apply: the guest applied its own), gives it to the guest's user, and replies its qid.
    fn made(
        &mut self,
        dfid: u32,
        dir: Arc<Node>,
        name: &[u8],
        perm: Option<Mode>,
        gid: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), Errno> {
        let fd = node::lookup(dir.fd.as_fd(), name)?;
        let node = Node::new(fd, Some(dir), name)?;
        if let (Some(perm), false) = (perm, node.kind == Kind::Symlink) {
            fchmodat(None, node::proc_path(node.fd.as_fd()).as_c_str(), perm, FchmodatFlags::FollowSymlink)?;
        }
        node::give(node.fd.as_fd(), self.fid(dfid)?.uid, gid)?;
        let qid = self.qid(&node);
        out.put_qid(&qid);
        Ok(())
    }

    /// Treadlink: fid[4] → target[s].
    pub(crate) fn readlink(&mut self, r: &mut Reader, out: &mut Vec<u8>) -> Result<(), Errno> {
        let node = self.fid(r.u32()?)?.node.clone();
        if node.kind != Kind::Symlink {
            return Err(Errno::EINVAL);
        }
        let target = nix::fcntl::readlinkat(Some(node.fd.as_raw_fd()), "")?;
        out.put_str(std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()))
    }

    /// Tlink: dfid[4] fid[4] name[s]. Links the very file fid holds (for a symlink, the link).
    pub(crate) fn link(&mut self, r: &mut Reader) -> Result<(), Errno> {
        let (dfid, fid, name) = (r.u32()?, r.u32()?, r.str()?);
        self.writable()?;
        let dir = self.dir(dfid)?;
        check_name(name)?;
        let node = self.fid(fid)?.node.clone();
        if node.kind == Kind::Dir {
            return Err(Errno::EPERM);
        }
        let (src, to) = (node.fd.as_raw_fd(), Some(dir.fd.as_raw_fd()));
        match linkat(Some(src), &b""[..], to, name, AtFlags::AT_EMPTY_PATH) {
            // Linking by descriptor needs CAP_DAC_READ_SEARCH; without it the kernel says
            // ENOENT, and /proc/self/fd (followed to the file, not its name) does the same job.
            Err(Errno::ENOENT) if node.kind != Kind::Symlink => {
                let path = node::proc_path(node.fd.as_fd());
                linkat(None, path.as_bytes(), to, name, AtFlags::AT_SYMLINK_FOLLOW)
            }
            r => r,
        }
    }

    /// Trename: fid[4] dfid[4] name[s]. Moves the file fid holds into dfid as `name`; fid
    /// follows it.
    pub(crate) fn rename(&mut self, r: &mut Reader) -> Result<(), Errno> {
        let (fid, dfid, name) = (r.u32()?, r.u32()?, r.str()?);
        self.writable()?;
        let to = self.dir(dfid)?;
        check_name(name)?;
        let node = self.fid(fid)?.node.clone();
        let from = entry_of(&node)?;
        nix::fcntl::renameat(Some(from.as_raw_fd()), &node.name[..], Some(to.fd.as_raw_fd()), name)?;
        let fd = node.fd.try_clone().map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let moved = Node { fd, parent: Some(to), name: name.to_vec(), kind: node.kind, dev: node.dev, ino: node.ino };
        if let Some(f) = self.fids.get_mut(&fid) {
            f.node = Arc::new(moved);
        }
        Ok(())
    }

    /// Trenameat: olddirfid[4] oldname[s] newdirfid[4] newname[s].
    pub(crate) fn renameat(&mut self, r: &mut Reader) -> Result<(), Errno> {
        let (ofid, oname, nfid, nname) = (r.u32()?, r.str()?, r.u32()?, r.str()?);
        self.writable()?;
        let (from, to) = (self.dir(ofid)?, self.dir(nfid)?);
        check_name(oname)?;
        check_name(nname)?;
        nix::fcntl::renameat(Some(from.fd.as_raw_fd()), oname, Some(to.fd.as_raw_fd()), nname)
    }

    /// Tunlinkat: dirfid[4] name[s] flags[4]; flags is 0 or AT_REMOVEDIR (0x200).
    pub(crate) fn unlinkat(&mut self, r: &mut Reader) -> Result<(), Errno> {
        let (dfid, name, flags) = (r.u32()?, r.str()?, r.u32()?);
        self.writable()?;
        let dir = self.dir(dfid)?;
        check_name(name)?;
        let how = match flags {
            0 => UnlinkatFlags::NoRemoveDir,
            0x200 => UnlinkatFlags::RemoveDir,
            _ => return Err(Errno::EINVAL),
        };
        unlinkat(Some(dir.fd.as_raw_fd()), name, how)
    }

    /// Tremove: fid[4]. Removes the file fid holds; fid is clunked whatever the outcome.
    pub(crate) fn remove(&mut self, r: &mut Reader) -> Result<(), Errno> {
        let fid = self.fids.remove(&r.u32()?).ok_or(Errno::EBADF)?;
        self.writable()?;
        let from = entry_of(&fid.node)?;
        let how = if fid.node.kind == Kind::Dir { UnlinkatFlags::RemoveDir } else { UnlinkatFlags::NoRemoveDir };
        unlinkat(Some(from.as_raw_fd()), &fid.node.name[..], how)
    }
}

/// The directory holding `node` under its recorded name, after checking that the name still
/// leads to this very file (it may have been renamed since the walk): ENOENT if not. The share's
/// root has no entry to rename or remove: EBUSY.
fn entry_of(node: &Node) -> Result<BorrowedFd<'_>, Errno> {
    let parent = node.parent.as_ref().ok_or(Errno::EBUSY)?;
    let st = fstatat(Some(parent.fd.as_raw_fd()), &node.name[..], AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if (st.st_dev, st.st_ino) != (node.dev, node.ino) {
        return Err(Errno::ENOENT);
    }
    Ok(parent.fd.as_fd())
}
