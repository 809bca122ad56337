//! Stage-1 translation of a guest virtual address, as the guest's MMU
//! would do it with its own registers (SCTLR_EL1, TCR_EL1, TTBR0/1_EL1):
//! what bhyve needs to read the instruction at the guest's PC and to find
//! the addresses of an access it emulates. Pure logic over a reader of
//! guest memory, tested on this machine with tables built in a map.
//!
//! The EL1&0 regime: 4, 16 and 64 KiB granules, both halves of the address
//! space, top-byte-ignore for data, blocks where the granule allows them,
//! and 48-bit output addresses. Permissions are not checked: the hardware
//! already ran the access that got us here.

/// The guest's translation registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regime {
    /// SCTLR_EL1: bit 0 is the MMU's enable.
    pub sctlr: u64,
    /// TCR_EL1.
    pub tcr: u64,
    /// TTBR0_EL1: the lower half's tables.
    pub ttbr0: u64,
    /// TTBR1_EL1: the upper half's tables.
    pub ttbr1: u64,
}

/// Why an address does not translate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// The address is in neither half the TCR sets up.
    #[error("{va:#x} is outside both halves of the guest's address space")]
    OutOfRange {
        /// The address.
        va: u64,
    },
    /// The half's walks are disabled (TCR_EL1.EPDn).
    #[error("walks through TTBR{n}_EL1 are disabled")]
    Disabled {
        /// 0 or 1.
        n: u8,
    },
    /// A reserved granule size in TCR_EL1.
    #[error("TCR_EL1.TG{n} holds a reserved granule size")]
    BadGranule {
        /// 0 or 1.
        n: u8,
    },
    /// A table entry outside guest memory.
    #[error("its level {level} table entry at {addr:#x} is outside guest memory")]
    Unreadable {
        /// The table's level.
        level: u32,
        /// The entry's (intermediate physical) address.
        addr: u64,
    },
    /// An invalid entry.
    #[error("its level {level} table entry at {addr:#x} ({desc:#x}) maps nothing")]
    NotMapped {
        /// The table's level.
        level: u32,
        /// The entry's address.
        addr: u64,
        /// The entry.
        desc: u64,
    },
}

/// Output address bits of a descriptor, [47:12].
const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Translates `va`; `data` for a data access (top-byte-ignore applies),
/// else an instruction fetch. `read` reads 8 bytes of guest memory at an
/// intermediate physical address (where the tables are).
pub fn translate(r: &Regime, va: u64, data: bool, mut read: impl FnMut(u64) -> Option<u64>) -> Result<u64, WalkError> {
    if r.sctlr & 1 == 0 {
        return Ok(va);
    }
    let tcr = r.tcr;
    let upper = (va >> 55) & 1 == 1;
    // (TnSZ, EPDn, granule bits, TBIn, TTBRn) of the half `va` is in.
    let (n, tsz, epd, granule, tbi, ttbr) = if upper {
        let g = match (tcr >> 30) & 3 {
            1 => Some(14),
            2 => Some(12),
            3 => Some(16),
            _ => None,
        };
        (1u8, (tcr >> 16) & 0x3f, (tcr >> 23) & 1, g, (tcr >> 38) & 1, r.ttbr1)
    } else {
        let g = match (tcr >> 14) & 3 {
            0 => Some(12),
            1 => Some(16),
            2 => Some(14),
            _ => None,
        };
        (0u8, tcr & 0x3f, (tcr >> 7) & 1, g, (tcr >> 37) & 1, r.ttbr0)
    };
    let granule: u32 = granule.ok_or(WalkError::BadGranule { n })?;
    let ia = 64 - tsz.clamp(16, 48) as u32;
    // The bits above the input size must all equal bit 55 (the top byte
    // is not looked at for data with TBI).
    let top = if tbi == 1 && data { 56 } else { 64 };
    let above = if top > ia { ((1u128 << top) - (1u128 << ia)) as u64 } else { 0 };
    if va & above != if upper { above } else { 0 } {
        return Err(WalkError::OutOfRange { va });
    }
    if epd == 1 {
        return Err(WalkError::Disabled { n });
    }
    let stride = granule - 3;
    let levels = (ia - granule).div_ceil(stride);
    let mut level = 4 - levels;
    let mut table = ttbr & 0x0000_ffff_ffff_fffe;
    loop {
        let shift = granule + stride * (3 - level);
        let index_bits = if level == 4 - levels { ia - shift } else { stride };
        let index = (va >> shift) & ((1 << index_bits) - 1);
        let addr = table + index * 8;
        let desc = read(addr).ok_or(WalkError::Unreadable { level, addr })?;
        let not_mapped = WalkError::NotMapped { level, addr, desc };
        if desc & 1 == 0 {
            return Err(not_mapped);
        }
        let block = desc & 2 == 0;
        if level == 3 || block {
            // Pages at level 3; blocks at level 1 (4 KiB granule) and 2.
            let allowed = if level == 3 { !block } else { level == 2 || (level == 1 && granule == 12) };
            if !allowed {
                return Err(not_mapped);
            }
            let span = 1u64 << shift;
            return Ok((desc & OA_MASK & !(span - 1)) | (va & (span - 1)));
        }
        table = desc & OA_MASK & !((1 << granule) - 1);
        level += 1;
    }
}

#[cfg(test)]
mod tests;
