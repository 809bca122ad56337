//! A small 9P2000.L client that drives `Server::handle` directly, checking the framing of every
//! reply, for the integration tests.
#![allow(dead_code)]

use std::path::Path;

use p9::wire::{msg, Put, Qid, Reader};
use p9::Server;

/// Marks the content of files outside the share; no reply may ever carry it.
pub const SECRET: &[u8] = b"OUTSIDE-SECRET-5e2b91";

pub const RDONLY: u32 = 0;
pub const WRONLY: u32 = 1;
pub const RDWR: u32 = 2;
pub const TRUNC: u32 = 0o1000;
pub const DIRECTORY: u32 = 0o200000;
pub const CREATE: u32 = 0o100;
pub const EXCL: u32 = 0o200;
pub const AT_REMOVEDIR: u32 = 0x200;
pub const ROOT: u32 = 0;

/// Linux errno values, as Rlerror carries them.
pub mod e {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EBADF: i32 = 9;
    pub const EEXIST: i32 = 17;
    pub const EXDEV: i32 = 18;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const EROFS: i32 = 30;
    pub const ELOOP: i32 = 40;
    pub const EPROTO: i32 = 71;
    pub const EOPNOTSUPP: i32 = 95;
    pub const ENOBUFS: i32 = 105;
    pub const EBUSY: i32 = 16;
}

/// The attributes of Rgetattr the tests look at.
#[derive(Debug)]
pub struct Attr {
    pub valid: u64,
    pub qid: Qid,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub size: u64,
    pub mtime: (u64, u64),
}

/// One Rreaddir entry.
#[derive(Debug)]
pub struct Entry {
    pub qid: Qid,
    pub offset: u64,
    pub ty: u8,
    pub name: Vec<u8>,
}

pub struct Client {
    pub server: Server,
    pub max_reply: usize,
    tag: u16,
}

/// Reply bodies: Ok(body) or Err(errno).
pub type Res<T> = Result<T, i32>;

impl Client {
    /// A server on `root`, after Tversion (msize 65536) and Tattach of fid ROOT as uid 0.
    pub fn new(root: &Path, read_only: bool) -> Client {
        let server = Server::new(root, read_only).expect("server");
        let mut c = Client { server, max_reply: 65536, tag: 1 };
        assert_eq!(c.version(65536, b"9P2000.L"), Ok((65536, b"9P2000.L".to_vec())));
        c.attach(ROOT, 0).expect("attach");
        c
    }

    /// Sends one raw message; returns the whole reply.
    pub fn raw(&mut self, request: &[u8]) -> Vec<u8> {
        let mut reply = vec![0xaa; 3];
        self.server.handle(request, self.max_reply, &mut reply);
        assert!(!reply.windows(SECRET.len()).any(|w| w == SECRET), "a reply carried a file from outside the share");
        reply
    }

    /// Sends type `ty` with `body`; checks the reply's framing.
    pub fn call(&mut self, ty: u8, body: &[u8]) -> Res<Vec<u8>> {
        self.tag = self.tag.wrapping_add(1) % 0xfff0;
        let mut m = Vec::new();
        m.put_u32((7 + body.len()) as u32);
        m.put_u8(ty);
        m.put_u16(self.tag);
        m.extend_from_slice(body);
        let reply = self.raw(&m);
        let mut r = Reader::new(&reply);
        assert_eq!(r.u32().unwrap() as usize, reply.len(), "size field");
        let rty = r.u8().unwrap();
        assert_eq!(r.u16().unwrap(), self.tag, "tag");
        assert!(reply.len() <= self.max_reply.max(11), "reply longer than max_reply");
        if rty == msg::RLERROR {
            assert_eq!(reply.len(), 11);
            return Err(r.u32().unwrap() as i32);
        }
        assert_eq!(rty, ty + 1, "reply type");
        Ok(reply[7..].to_vec())
    }

    pub fn version(&mut self, msize: u32, v: &[u8]) -> Res<(u32, Vec<u8>)> {
        let mut b = Vec::new();
        b.put_u32(msize);
        b.put_str(v).unwrap();
        let body = self.call(msg::TVERSION, &b)?;
        let mut r = Reader::new(&body);
        Ok((r.u32().unwrap(), r.str().unwrap().to_vec()))
    }

    pub fn attach(&mut self, fid: u32, uid: u32) -> Res<Qid> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u32(!0);
        b.put_str(b"user").unwrap();
        b.put_str(b"share").unwrap();
        b.put_u32(uid);
        Ok(Reader::new(&self.call(msg::TATTACH, &b)?).qid().unwrap())
    }

    pub fn walk(&mut self, fid: u32, newfid: u32, names: &[&[u8]]) -> Res<Vec<Qid>> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u32(newfid);
        b.put_u16(names.len() as u16);
        for n in names {
            b.put_str(n).unwrap();
        }
        let body = self.call(msg::TWALK, &b)?;
        let mut r = Reader::new(&body);
        let n = r.u16().unwrap();
        Ok((0..n).map(|_| r.qid().unwrap()).collect())
    }

    /// Walks `names` from ROOT to a new fid `newfid`, which must succeed in full.
    pub fn walk_to(&mut self, newfid: u32, names: &[&[u8]]) -> Qid {
        let q = self.walk(ROOT, newfid, names).expect("walk");
        assert_eq!(q.len(), names.len(), "walk was partial");
        q.last().copied().unwrap_or(Qid { ty: 0x80, version: 0, path: 0 })
    }

    pub fn lopen(&mut self, fid: u32, flags: u32) -> Res<Qid> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u32(flags);
        Ok(Reader::new(&self.call(msg::TLOPEN, &b)?).qid().unwrap())
    }

    pub fn lcreate(&mut self, fid: u32, name: &[u8], flags: u32, mode: u32, gid: u32) -> Res<Qid> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_str(name).unwrap();
        b.put_u32(flags);
        b.put_u32(mode);
        b.put_u32(gid);
        Ok(Reader::new(&self.call(msg::TLCREATE, &b)?).qid().unwrap())
    }

    pub fn read(&mut self, fid: u32, offset: u64, count: u32) -> Res<Vec<u8>> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u64(offset);
        b.put_u32(count);
        let body = self.call(msg::TREAD, &b)?;
        let mut r = Reader::new(&body);
        let n = r.u32().unwrap() as usize;
        assert_eq!(body.len(), 4 + n, "Rread count");
        Ok(body[4..].to_vec())
    }

    pub fn write(&mut self, fid: u32, offset: u64, data: &[u8]) -> Res<u32> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u64(offset);
        b.put_u32(data.len() as u32);
        b.extend_from_slice(data);
        Ok(Reader::new(&self.call(msg::TWRITE, &b)?).u32().unwrap())
    }

    pub fn clunk(&mut self, fid: u32) -> Res<()> {
        self.call(msg::TCLUNK, &fid.to_le_bytes()).map(drop)
    }

    pub fn remove(&mut self, fid: u32) -> Res<()> {
        self.call(msg::TREMOVE, &fid.to_le_bytes()).map(drop)
    }

    pub fn mkdir(&mut self, dfid: u32, name: &[u8], mode: u32, gid: u32) -> Res<Qid> {
        let mut b = Vec::new();
        b.put_u32(dfid);
        b.put_str(name).unwrap();
        b.put_u32(mode);
        b.put_u32(gid);
        Ok(Reader::new(&self.call(msg::TMKDIR, &b)?).qid().unwrap())
    }

    pub fn symlink(&mut self, dfid: u32, name: &[u8], target: &[u8]) -> Res<Qid> {
        let mut b = Vec::new();
        b.put_u32(dfid);
        b.put_str(name).unwrap();
        b.put_str(target).unwrap();
        b.put_u32(!0);
        Ok(Reader::new(&self.call(msg::TSYMLINK, &b)?).qid().unwrap())
    }

    pub fn mknod(&mut self, dfid: u32, name: &[u8], mode: u32, major: u32, minor: u32) -> Res<Qid> {
        let mut b = Vec::new();
        b.put_u32(dfid);
        b.put_str(name).unwrap();
        b.put_u32(mode);
        b.put_u32(major);
        b.put_u32(minor);
        b.put_u32(!0);
        Ok(Reader::new(&self.call(msg::TMKNOD, &b)?).qid().unwrap())
    }

    pub fn readlink(&mut self, fid: u32) -> Res<Vec<u8>> {
        let body = self.call(msg::TREADLINK, &fid.to_le_bytes())?;
        Ok(Reader::new(&body).str().unwrap().to_vec())
    }

    pub fn link(&mut self, dfid: u32, fid: u32, name: &[u8]) -> Res<()> {
        let mut b = Vec::new();
        b.put_u32(dfid);
        b.put_u32(fid);
        b.put_str(name).unwrap();
        self.call(msg::TLINK, &b).map(drop)
    }

    pub fn rename(&mut self, fid: u32, dfid: u32, name: &[u8]) -> Res<()> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u32(dfid);
        b.put_str(name).unwrap();
        self.call(msg::TRENAME, &b).map(drop)
    }

    pub fn renameat(&mut self, ofid: u32, oname: &[u8], nfid: u32, nname: &[u8]) -> Res<()> {
        let mut b = Vec::new();
        b.put_u32(ofid);
        b.put_str(oname).unwrap();
        b.put_u32(nfid);
        b.put_str(nname).unwrap();
        self.call(msg::TRENAMEAT, &b).map(drop)
    }

    pub fn unlinkat(&mut self, dfid: u32, name: &[u8], flags: u32) -> Res<()> {
        let mut b = Vec::new();
        b.put_u32(dfid);
        b.put_str(name).unwrap();
        b.put_u32(flags);
        self.call(msg::TUNLINKAT, &b).map(drop)
    }

    pub fn getattr(&mut self, fid: u32) -> Res<Attr> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u64(0x3fff);
        let body = self.call(msg::TGETATTR, &b)?;
        assert_eq!(body.len(), 153, "Rgetattr body size");
        let mut r = Reader::new(&body);
        let valid = r.u64().unwrap();
        let qid = r.qid().unwrap();
        let (mode, uid, gid) = (r.u32().unwrap(), r.u32().unwrap(), r.u32().unwrap());
        let nlink = r.u64().unwrap();
        let _rdev = r.u64().unwrap();
        let size = r.u64().unwrap();
        let _blksize = r.u64().unwrap();
        let _blocks = r.u64().unwrap();
        let _atime = (r.u64().unwrap(), r.u64().unwrap());
        let mtime = (r.u64().unwrap(), r.u64().unwrap());
        Ok(Attr { valid, qid, mode, uid, gid, nlink, size, mtime })
    }

    /// Tsetattr with `valid` and the given fields (times as (sec, nsec)).
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &mut self,
        fid: u32,
        valid: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
        atime: (u64, u64),
        mtime: (u64, u64),
    ) -> Res<()> {
        let mut b = Vec::new();
        for v in [fid, valid, mode, uid, gid] {
            b.put_u32(v);
        }
        for v in [size, atime.0, atime.1, mtime.0, mtime.1] {
            b.put_u64(v);
        }
        self.call(msg::TSETATTR, &b).map(drop)
    }

    /// Treaddir; the entries.
    pub fn readdir(&mut self, fid: u32, offset: u64, count: u32) -> Res<Vec<Entry>> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u64(offset);
        b.put_u32(count);
        let body = self.call(msg::TREADDIR, &b)?;
        let mut r = Reader::new(&body);
        let n = r.u32().unwrap() as usize;
        assert_eq!(body.len(), 4 + n, "Rreaddir count");
        assert!(n <= count as usize);
        let mut out = Vec::new();
        let mut r = Reader::new(&body[4..]);
        while let Ok(qid) = r.qid() {
            let offset = r.u64().unwrap();
            let ty = r.u8().unwrap();
            let name = r.str().unwrap().to_vec();
            out.push(Entry { qid, offset, ty, name });
        }
        Ok(out)
    }

    /// Every entry of the opened directory `fid`, read `count` bytes at a time.
    pub fn readdir_all(&mut self, fid: u32, count: u32) -> Vec<Vec<u8>> {
        let (mut names, mut offset) = (Vec::new(), 0);
        loop {
            let ents = self.readdir(fid, offset, count).expect("readdir");
            let Some(last) = ents.last() else { break };
            offset = last.offset;
            names.extend(ents.into_iter().map(|e| e.name));
        }
        names.sort();
        names
    }

    /// Rstatfs: (blocks, namelen) are what the tests compare; the whole body is checked for size.
    pub fn statfs(&mut self, fid: u32) -> Res<(u64, u32)> {
        let body = self.call(msg::TSTATFS, &fid.to_le_bytes())?;
        assert_eq!(body.len(), 60);
        let mut r = Reader::new(&body[8..]);
        let blocks = r.u64().unwrap();
        let namelen = u32::from_le_bytes(body[56..60].try_into().unwrap());
        Ok((blocks, namelen))
    }

    pub fn fsync(&mut self, fid: u32) -> Res<()> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u32(0);
        self.call(msg::TFSYNC, &b).map(drop)
    }

    /// Tlock; the status.
    pub fn lock(&mut self, fid: u32, ty: u8, start: u64, len: u64) -> Res<u8> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u8(ty);
        b.put_u32(0);
        b.put_u64(start);
        b.put_u64(len);
        b.put_u32(42);
        b.put_str(b"guest").unwrap();
        Ok(self.call(msg::TLOCK, &b)?[0])
    }

    /// Tgetlock; (type, start, length).
    pub fn getlock(&mut self, fid: u32, ty: u8, start: u64, len: u64) -> Res<(u8, u64, u64)> {
        let mut b = Vec::new();
        b.put_u32(fid);
        b.put_u8(ty);
        b.put_u64(start);
        b.put_u64(len);
        b.put_u32(42);
        b.put_str(b"guest").unwrap();
        let body = self.call(msg::TGETLOCK, &b)?;
        let mut r = Reader::new(&body);
        Ok((r.u8().unwrap(), r.u64().unwrap(), r.u64().unwrap()))
    }
}
