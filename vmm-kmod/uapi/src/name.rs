//! VM names: FreeBSD's rules, checked identically by the module and the tools.
//!
//! A name is 1 to [`VM_MAX_NAMELEN`] bytes of printable ASCII without `/`, and
//! not `.` or `..` (it becomes a path component under `/dev/vmm`).

/// Longest VM name in bytes (FreeBSD's `VM_MAX_NAMELEN` less the NUL).
pub const VM_MAX_NAMELEN: usize = 31;
/// Size of a name buffer in the ABI, NUL included.
pub const VM_NAME_BUF: usize = VM_MAX_NAMELEN + 1;

/// Why a VM name is rejected (the module answers `EINVAL` for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`VM_MAX_NAMELEN`] bytes.
    TooLong,
    /// The name holds a byte that is not printable ASCII, or a `/`.
    BadChar(u8),
    /// `.` and `..` are not names.
    Dot,
}

impl core::fmt::Display for NameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NameError::Empty => write!(f, "VM name is empty"),
            NameError::TooLong => write!(f, "VM name is longer than {VM_MAX_NAMELEN} bytes"),
            NameError::BadChar(b'/') => write!(f, "VM name contains '/'"),
            NameError::BadChar(c) => write!(f, "VM name contains the unprintable byte {c:#04x}"),
            NameError::Dot => write!(f, "VM name cannot be '.' or '..'"),
        }
    }
}

/// Checks a name given as bytes up to an optional NUL terminator (so a whole
/// ABI buffer can be passed) and returns its length without the NUL.
pub fn validate_name(buf: &[u8]) -> Result<usize, NameError> {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = &buf[..len];
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if len > VM_MAX_NAMELEN {
        return Err(NameError::TooLong);
    }
    if let Some(&c) = name.iter().find(|&&c| !(0x20..0x7f).contains(&c) || c == b'/') {
        return Err(NameError::BadChar(c));
    }
    if name == b"." || name == b".." {
        return Err(NameError::Dot);
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_freebsd_style_names() {
        assert_eq!(validate_name(b"guest"), Ok(5));
        assert_eq!(validate_name(b"a"), Ok(1));
        assert_eq!(validate_name(b"vm-01_test.x"), Ok(12));
        assert_eq!(validate_name(b"my vm"), Ok(5));
        assert_eq!(validate_name(&[b'n'; 31]), Ok(31));
        assert_eq!(validate_name(b"guest\0\0\0junk"), Ok(5));
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(validate_name(b""), Err(NameError::Empty));
        assert_eq!(validate_name(b"\0abc"), Err(NameError::Empty));
        assert_eq!(validate_name(&[b'n'; 32]), Err(NameError::TooLong));
        assert_eq!(validate_name(b"a/b"), Err(NameError::BadChar(b'/')));
        assert_eq!(validate_name(b"tab\there"), Err(NameError::BadChar(b'\t')));
        assert_eq!(validate_name(b"caf\xc3\xa9"), Err(NameError::BadChar(0xc3)));
        assert_eq!(validate_name(b"del\x7f"), Err(NameError::BadChar(0x7f)));
        assert_eq!(validate_name(b"."), Err(NameError::Dot));
        assert_eq!(validate_name(b".."), Err(NameError::Dot));
        assert_eq!(validate_name(b"...").map(|_| ()), Ok(()));
    }
}
