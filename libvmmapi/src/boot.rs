//! What bhyveload hands to bhyve for a Linux boot, through guest memory.
//!
//! bhyveload knows the kernel, the initrd and the command line; bhyve knows
//! the devices and vCPUs. So bhyveload writes this block where the device
//! tree will go ([`dtb_addr`]: the last 2 MiB of RAM, which Linux's boot
//! protocol allows), and bhyve, when it starts, builds the device tree from
//! it and its own devices, writes the tree over it, and passes its address
//! to the kernel in x0. A VM whose block was already consumed (bhyve run
//! again without bhyveload) keeps its tree.

/// The block's magic, first 8 bytes.
pub const MAGIC: [u8; 8] = *b"BHYVEBP1";
/// Room for the device tree (and so the most the block may use).
pub const DTB_MAX: u64 = 2 << 20;
/// Longest command line, NUL excluded (Linux arm64's COMMAND_LINE_SIZE).
pub const CMDLINE_MAX: usize = 2047;
const HEADER: usize = 8 + 4 + 4 + 8 + 8 + 4 + 4;

/// Boot parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootParams {
    /// Guest physical address and size of the initrd (size 0: none).
    pub initrd: (u64, u64),
    /// The kernel command line.
    pub cmdline: String,
}

/// Where the device tree (and the block before it) goes in a VM with RAM
/// at `ram_base` of `ram_size` bytes.
pub fn dtb_addr(ram_base: u64, ram_size: u64) -> u64 {
    ram_base + ram_size - DTB_MAX
}

impl BootParams {
    /// The block as bytes (`None` if the command line is too long).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let cmd = self.cmdline.as_bytes();
        if cmd.len() > CMDLINE_MAX || cmd.contains(&0) {
            return None;
        }
        let mut b = Vec::with_capacity(HEADER + cmd.len() + 1);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&1u32.to_le_bytes()); // version
        b.extend_from_slice(&0u32.to_le_bytes()); // flags
        b.extend_from_slice(&self.initrd.0.to_le_bytes());
        b.extend_from_slice(&self.initrd.1.to_le_bytes());
        b.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(cmd);
        b.push(0);
        Some(b)
    }

    /// Reads a block (`None` if `b` does not start with one).
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < HEADER || b[..8] != MAGIC {
            return None;
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(b[32..36].try_into().ok()?) as usize;
        if len > CMDLINE_MAX || b.len() < HEADER + len {
            return None;
        }
        let cmdline = String::from_utf8(b[HEADER..HEADER + len].to_vec()).ok()?;
        Some(Self { initrd: (u64_at(16), u64_at(24)), cmdline })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = BootParams { initrd: (0x4800_0000, 1234), cmdline: "console=ttyAMA0 quiet".into() };
        let b = p.encode().unwrap();
        assert_eq!(BootParams::decode(&b), Some(p));
        assert_eq!(BootParams::decode(&b[..10]), None);
        assert_eq!(BootParams::decode(&[0u8; 64]), None, "no magic");
        let long = BootParams { cmdline: "x".repeat(CMDLINE_MAX + 1), ..Default::default() };
        assert_eq!(long.encode(), None);
        assert_eq!(dtb_addr(0x4000_0000, 512 << 20), 0x5fe0_0000);
    }
}
