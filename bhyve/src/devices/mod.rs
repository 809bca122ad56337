//! Device models. Each takes its side effects (output, interrupt line) as type
//! parameters, so that tests drive it with a `Vec<u8>` and a recording line.

pub mod flash;
pub mod irq;
pub mod pl011;
pub mod pl031;
pub mod testdev;

/// Copies the low `data.len()` bytes of `value` into `data`, little-endian
/// (the guest's byte order). Bytes past 8 are zero.
pub fn put_le(data: &mut [u8], value: u64) {
    let bytes = value.to_le_bytes();
    for (i, d) in data.iter_mut().enumerate() {
        *d = bytes.get(i).copied().unwrap_or(0);
    }
}

/// The value of up to 8 little-endian bytes; bytes past 8 are ignored.
pub fn get_le(data: &[u8]) -> u64 {
    data.iter().take(8).enumerate().fold(0, |v, (i, &b)| v | (b as u64) << (8 * i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_helpers() {
        let mut d = [0u8; 2];
        put_le(&mut d, 0x1234_5678);
        assert_eq!(d, [0x78, 0x56]);
        let mut d = [0xffu8; 10];
        put_le(&mut d, 0x0102_0304_0506_0708);
        assert_eq!(d, [8, 7, 6, 5, 4, 3, 2, 1, 0, 0]);
        assert_eq!(get_le(&[0x78, 0x56]), 0x5678);
        assert_eq!(get_le(&[8, 7, 6, 5, 4, 3, 2, 1, 9]), 0x0102_0304_0506_0708);
        assert_eq!(get_le(&[]), 0);
    }
}
