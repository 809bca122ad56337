//! Memory sizes as bhyve users type them (`-m 512M`) and as messages print them.
//!
//! Parsing follows FreeBSD's `expand_number(3)`, which bhyve and bhyveload use:
//! a number (decimal, or hexadecimal after `0x`) and an optional unit `K`, `M`,
//! `G`, `T`, `P` or `E` (powers of 1024, either case), which may be followed by
//! `B` (`64MB`); a lone `B` means bytes. Unlike bhyve, a bare number is always
//! bytes: bhyve's "less than 1 MiB means MiB" rule is not kept, because `-m 4096`
//! meaning 4 GiB surprises more than it helps.

/// Guest memory is given in whole pages of this many bytes.
pub const PAGE_SIZE: u64 = 4096;

/// Why a size was refused. The message follows the flag and the value, as in
/// `-m 12x: unknown unit 'x' (use K, M, G or T)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No number where one was expected.
    #[error("not a size (a number of bytes, or a number with K, M, G or T)")]
    NotANumber,
    /// Something other than a unit after the number.
    #[error("unknown unit '{0}' (use K, M, G or T)")]
    BadUnit(String),
    /// The value does not fit in 64 bits.
    #[error("too large")]
    TooLarge,
    /// Zero bytes of memory.
    #[error("must not be zero")]
    Zero,
    /// Not a whole number of pages.
    #[error("{0} bytes is not a multiple of 4K")]
    NotPageMultiple(u64),
}

/// Parses a size the way `expand_number(3)` does (see the module doc).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    let end = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    if end == 0 {
        return Err(SizeError::NotANumber);
    }
    let number = u64::from_str_radix(&digits[..end], radix).map_err(|_| SizeError::TooLarge)?;
    let unit = &digits[end..];
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        "t" | "tb" => 40,
        "p" | "pb" => 50,
        "e" | "eb" => 60,
        _ => return Err(SizeError::BadUnit(unit.to_string())),
    };
    if shift > 0 && number.leading_zeros() < shift {
        return Err(SizeError::TooLarge);
    }
    Ok(number << shift)
}

/// Parses a guest memory size: as [`parse_size`], and a non-zero whole number
/// of 4 KiB pages, since guest memory is mapped page by page.
pub fn parse_mem_size(s: &str) -> Result<u64, SizeError> {
    let n = parse_size(s)?;
    if n == 0 {
        Err(SizeError::Zero)
    } else if n % PAGE_SIZE != 0 {
        Err(SizeError::NotPageMultiple(n))
    } else {
        Ok(n)
    }
}

/// A size for messages: in the largest unit that divides it exactly, so that
/// what is printed can be typed back to `-m` (`128M`, `1536M`, `4K`), or in
/// bytes when no unit divides it (`1000 bytes`).
pub fn format_size(n: u64) -> String {
    const UNITS: [(u32, &str); 6] = [(60, "E"), (50, "P"), (40, "T"), (30, "G"), (20, "M"), (10, "K")];
    if n == 0 {
        return "0 bytes".to_string();
    }
    for (shift, unit) in UNITS {
        if n.trailing_zeros() >= shift {
            return format!("{}{unit}", n >> shift);
        }
    }
    if n == 1 {
        "1 byte".to_string()
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_either_case() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert_eq!(parse_size("1P"), Ok(1 << 50));
        assert_eq!(parse_size("3E"), Ok(3 << 60));
    }

    #[test]
    fn expand_number_extras() {
        assert_eq!(parse_size("64MB"), Ok(64 << 20), "B after a unit is ignored");
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("4096B"), Ok(4096), "a lone B means bytes");
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("0X10M"), Ok(16 << 20));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn refuses_what_is_not_a_size() {
        assert_eq!(parse_size(""), Err(SizeError::NotANumber));
        assert_eq!(parse_size("M"), Err(SizeError::NotANumber));
        assert_eq!(parse_size("-1"), Err(SizeError::NotANumber));
        assert_eq!(parse_size(" 1M"), Err(SizeError::NotANumber));
        assert_eq!(parse_size("0x"), Err(SizeError::NotANumber));
        assert_eq!(parse_size("12x"), Err(SizeError::BadUnit("x".into())));
        assert_eq!(parse_size("1MM"), Err(SizeError::BadUnit("MM".into())));
        assert_eq!(parse_size("1M "), Err(SizeError::BadUnit("M ".into())));
        assert_eq!(parse_size("1.5G"), Err(SizeError::BadUnit(".5G".into())));
        assert_eq!(parse_size("1Bk"), Err(SizeError::BadUnit("Bk".into())));
        assert_eq!(parse_size("1é"), Err(SizeError::BadUnit("é".into())), "non-ASCII");
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_size("18446744073709551616"), Err(SizeError::TooLarge));
        assert_eq!(parse_size("16E"), Err(SizeError::TooLarge));
        assert_eq!(parse_size("15E"), Ok(15 << 60));
        assert_eq!(parse_size("16777216T"), Err(SizeError::TooLarge));
    }

    #[test]
    fn memory_sizes_are_whole_pages() {
        assert_eq!(parse_mem_size("64M"), Ok(64 << 20));
        assert_eq!(parse_mem_size("4k"), Ok(4096));
        assert_eq!(parse_mem_size("0"), Err(SizeError::Zero));
        assert_eq!(parse_mem_size("0M"), Err(SizeError::Zero));
        assert_eq!(parse_mem_size("1000"), Err(SizeError::NotPageMultiple(1000)));
        assert_eq!(parse_mem_size("6K"), Err(SizeError::NotPageMultiple(6144)));
        assert_eq!(SizeError::NotPageMultiple(6144).to_string(), "6144 bytes is not a multiple of 4K");
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format_size(128 << 20), "128M");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(2 << 30), "2G");
        assert_eq!(format_size(4096), "4K");
        assert_eq!(format_size(1 << 40), "1T");
        assert_eq!(format_size(1000), "1000 bytes");
        assert_eq!(format_size(1), "1 byte");
        assert_eq!(format_size(0), "0 bytes");
        assert_eq!(format_size(u64::MAX), "18446744073709551615 bytes");
        for s in ["128M", "1536M", "4K", "3G", "7T"] {
            assert_eq!(format_size(parse_size(s).unwrap()), s, "round trip");
        }
    }
}
