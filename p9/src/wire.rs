//! The 9P wire format: little-endian integers, strings as a 16-bit length and bytes, 13-byte
//! qids, and every message framed as `size[4] type[1] tag[2] body`.
//!
//! Decoding never trusts a length: each read checks what is left and a short message is an
//! `EPROTO` error, never a panic.

use nix::errno::Errno;

/// Bytes of `size[4] type[1] tag[2]` in front of every message.
pub const HEADER_LEN: usize = 7;

/// The tag of Tversion, and of a reply to a message whose tag could not be read.
pub const NOTAG: u16 = 0xffff;

/// The "no fid" value (an attach without an authentication fid).
pub const NOFID: u32 = 0xffff_ffff;

/// The "no numeric user" value of Tattach's `n_uname`.
pub const NONUNAME: u32 = 0xffff_ffff;

/// Message type numbers. A reply's type is its request's plus one.
pub mod msg {
    #![allow(missing_docs)]
    pub const RLERROR: u8 = 7;
    pub const TSTATFS: u8 = 8;
    pub const TLOPEN: u8 = 12;
    pub const TLCREATE: u8 = 14;
    pub const TSYMLINK: u8 = 16;
    pub const TMKNOD: u8 = 18;
    pub const TRENAME: u8 = 20;
    pub const TREADLINK: u8 = 22;
    pub const TGETATTR: u8 = 24;
    pub const TSETATTR: u8 = 26;
    pub const TXATTRWALK: u8 = 30;
    pub const TXATTRCREATE: u8 = 32;
    pub const TREADDIR: u8 = 40;
    pub const TFSYNC: u8 = 50;
    pub const TLOCK: u8 = 52;
    pub const TGETLOCK: u8 = 54;
    pub const TLINK: u8 = 70;
    pub const TMKDIR: u8 = 72;
    pub const TRENAMEAT: u8 = 74;
    pub const TUNLINKAT: u8 = 76;
    pub const TVERSION: u8 = 100;
    pub const TAUTH: u8 = 102;
    pub const TATTACH: u8 = 104;
    pub const TFLUSH: u8 = 108;
    pub const TWALK: u8 = 110;
    pub const TREAD: u8 = 116;
    pub const TWRITE: u8 = 118;
    pub const TCLUNK: u8 = 120;
    pub const TREMOVE: u8 = 122;
}

/// Qid type bits.
pub mod qt {
    #![allow(missing_docs)]
    pub const DIR: u8 = 0x80;
    pub const SYMLINK: u8 = 0x02;
    pub const FILE: u8 = 0x00;
}

/// The server's identity of a file: type bits, version and a unique 64-bit path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qid {
    /// `qt::DIR`, `qt::SYMLINK` or `qt::FILE`.
    pub ty: u8,
    /// Always 0 here: the server keeps no change counter (Linux's default `cache=none` does
    /// not use it).
    pub version: u32,
    /// From the file's (st_dev, st_ino).
    pub path: u64,
}

/// Encoded size of a qid.
pub const QID_LEN: usize = 13;

/// A cursor over a received message body.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Errno> {
        if n > self.buf.len() {
            return Err(Errno::EPROTO);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Errno> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Errno> {
        Ok(self.array::<1>()?[0])
    }

    /// A 16-bit integer.
    pub fn u16(&mut self) -> Result<u16, Errno> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A 32-bit integer.
    pub fn u32(&mut self) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A 64-bit integer.
    pub fn u64(&mut self) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A string's bytes (9P strings are not NUL-terminated and need not be UTF-8).
    pub fn str(&mut self) -> Result<&'a [u8], Errno> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }

    /// A qid.
    pub fn qid(&mut self) -> Result<Qid, Errno> {
        Ok(Qid { ty: self.u8()?, version: self.u32()?, path: self.u64()? })
    }
}

/// Appending encoded values to a reply.
pub trait Put {
    /// One byte.
    fn put_u8(&mut self, v: u8);
    /// A 16-bit integer.
    fn put_u16(&mut self, v: u16);
    /// A 32-bit integer.
    fn put_u32(&mut self, v: u32);
    /// A 64-bit integer.
    fn put_u64(&mut self, v: u64);
    /// A string; `ENAMETOOLONG` if it has more than 65535 bytes.
    fn put_str(&mut self, s: &[u8]) -> Result<(), Errno>;
    /// A qid.
    fn put_qid(&mut self, q: &Qid);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_str(&mut self, s: &[u8]) -> Result<(), Errno> {
        let n = u16::try_from(s.len()).map_err(|_| Errno::ENAMETOOLONG)?;
        self.put_u16(n);
        self.extend_from_slice(s);
        Ok(())
    }
    fn put_qid(&mut self, q: &Qid) {
        self.put_u8(q.ty);
        self.put_u32(q.version);
        self.put_u64(q.path);
    }
}

/// Splits a message into (type, tag, body). The body ends where `size` says, so a device may
/// pass a buffer longer than the message. On failure, the error carries the tag if it was
/// readable.
pub fn split(request: &[u8]) -> Result<(u8, u16, &[u8]), u16> {
    let mut r = Reader::new(request);
    let (Ok(size), Ok(ty), Ok(tag)) = (r.u32(), r.u8(), r.u16()) else {
        return Err(NOTAG);
    };
    let size = usize::try_from(size).map_err(|_| tag)?;
    if size < HEADER_LEN || size > request.len() {
        return Err(tag);
    }
    Ok((ty, tag, &request[HEADER_LEN..size]))
}

/// Starts a reply of type `ty` in `out` (emptied first); `finish` writes its size.
pub fn begin(out: &mut Vec<u8>, ty: u8, tag: u16) {
    out.clear();
    out.put_u32(0);
    out.put_u8(ty);
    out.put_u16(tag);
}

/// Writes the final size into the reply's first four bytes.
pub fn finish(out: &mut [u8]) {
    let size = u32::try_from(out.len()).unwrap_or(u32::MAX);
    if let Some(head) = out.get_mut(..4) {
        head.copy_from_slice(&size.to_le_bytes());
    }
}

/// Replaces `out` with a complete Rlerror carrying `errno`.
pub fn error(out: &mut Vec<u8>, tag: u16, errno: Errno) {
    begin(out, msg::RLERROR, tag);
    out.put_u32(errno as i32 as u32);
    finish(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_are_eproto() {
        let mut r = Reader::new(&[1, 0, 0]);
        assert_eq!(r.u32(), Err(Errno::EPROTO));
        let mut r = Reader::new(&[5, 0, b'a']);
        assert_eq!(r.str(), Err(Errno::EPROTO));
    }

    #[test]
    fn values_round_trip() {
        let mut v = Vec::new();
        v.put_u8(1);
        v.put_u16(0x203);
        v.put_u32(0x4050607);
        v.put_u64(0x8090a0b0c0d0e0f);
        v.put_str(b"name").unwrap();
        v.put_qid(&Qid { ty: qt::DIR, version: 7, path: 99 });
        let mut r = Reader::new(&v);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(0x203));
        assert_eq!(r.u32(), Ok(0x4050607));
        assert_eq!(r.u64(), Ok(0x8090a0b0c0d0e0f));
        assert_eq!(r.str(), Ok(&b"name"[..]));
        assert_eq!(r.qid(), Ok(Qid { ty: qt::DIR, version: 7, path: 99 }));
        assert_eq!(r.u8(), Err(Errno::EPROTO));
    }

    #[test]
    fn split_checks_the_size_field() {
        assert_eq!(split(&[7, 0, 0]), Err(NOTAG));
        assert_eq!(split(&[6, 0, 0, 0, 100, 3, 0]), Err(3));
        assert_eq!(split(&[9, 0, 0, 0, 100, 3, 0, 1]), Err(3));
        let m = [9, 0, 0, 0, 100, 3, 0, 1, 2, 0xee];
        assert_eq!(split(&m), Ok((100, 3, &[1u8, 2][..])));
        let mut out = Vec::new();
        error(&mut out, 3, Errno::ENOENT);
        assert_eq!(out, [11, 0, 0, 0, 7, 3, 0, 2, 0, 0, 0]);
    }

    #[test]
    fn overlong_strings_are_refused() {
        let mut v = Vec::new();
        assert_eq!(v.put_str(&vec![b'x'; 70000]), Err(Errno::ENAMETOOLONG));
        assert!(v.is_empty());
    }
}
