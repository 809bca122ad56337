//! What to load where: the arm64 Linux `Image` header and the placement rules
//! of the kernel's `Documentation/arm64/booting.rst`, or a raw binary at the
//! start of RAM. Pure: it sees bytes and sizes, never a VM.

use vmmapi::boot::{self, DTB_MAX};
use vmmapi::size::format_size;

/// `magic` of an arm64 `Image` header: "ARM\x64", little-endian, at offset 0x38.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;
/// Bytes of the `Image` header.
pub const HEADER_LEN: usize = 64;
/// The kernel is placed `text_offset` bytes above a base aligned to this.
pub const IMAGE_BASE_ALIGN: u64 = 2 << 20;
/// `text_offset` of kernels older than 3.17, whose header has `image_size` 0
/// and a `text_offset` that cannot be trusted (booting.rst).
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// `flags` bit 0: the kernel is big-endian.
pub const FLAG_BE: u64 = 1;

const OFF_TEXT_OFFSET: usize = 8;
const OFF_IMAGE_SIZE: usize = 16;
const OFF_FLAGS: usize = 24;
const OFF_MAGIC: usize = 0x38;

/// The fields of an `Image` header that placement needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the image above a 2 MiB aligned base.
    pub text_offset: u64,
    /// Bytes the kernel occupies once running (with its BSS); 0 in old kernels.
    pub image_size: u64,
    /// Informative flags (bit 0: big-endian, bits 1-2: page size, bit 3: placement).
    pub flags: u64,
}

/// What kind of file is being loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// An arm64 Linux `Image`.
    Linux(ImageHeader),
    /// Anything else: loaded as is at the start of RAM and entered there.
    Raw,
}

/// Where the file goes and where the vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Guest physical address of the file's first byte.
    pub load_addr: u64,
    /// Guest physical address the vCPU starts at.
    pub entry: u64,
    /// Bytes from `load_addr` the kernel needs (its file, or its `image_size` if larger).
    pub span: u64,
}

/// A file that cannot be loaded. The messages follow the file's name
/// (`'Image' is empty`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// An empty file.
    #[error("is empty")]
    Empty,
    /// A big-endian kernel (`flags` bit 0).
    #[error("is a big-endian arm64 Image; only little-endian kernels can run here")]
    BigEndian,
    /// A raw binary larger than the memory.
    #[error("is {} but the VM has {} of memory", format_size(*len), format_size(*ram))]
    TooLarge {
        /// The file's length.
        len: u64,
        /// The VM's memory.
        ram: u64,
    },
    /// An `Image` that does not fit where booting.rst says it must go.
    #[error(
        "is a Linux Image needing {} at offset {offset:#x} of RAM, but the VM has {} of memory",
        format_size(*span),
        format_size(*ram)
    )]
    ImageTooLarge {
        /// Offset of the load address from the start of RAM.
        offset: u64,
        /// Bytes needed there.
        span: u64,
        /// The VM's memory.
        ram: u64,
    },
    /// An `Image` that reaches into the top 2 MiB, where the device tree goes.
    #[error(
        "is a Linux Image needing {} at offset {offset:#x} of RAM, which leaves no room for the \
         device tree in the top {} of the VM's {} of memory",
        format_size(*span),
        format_size(DTB_MAX),
        format_size(*ram)
    )]
    NoRoomForDtb {
        /// Offset of the load address from the start of RAM.
        offset: u64,
        /// Bytes needed there.
        span: u64,
        /// The VM's memory.
        ram: u64,
    },
    /// An initrd larger than the memory between the kernel and the device tree.
    #[error("is {} but only {} of memory is free between the kernel and the device tree", format_size(*len), format_size(*room))]
    InitrdTooLarge {
        /// The initrd's length.
        len: u64,
        /// The room there is.
        room: u64,
    },
}

/// Where a Linux kernel's companions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxLayout {
    /// Guest physical address of the initrd (meaningless when it is empty).
    pub initrd_addr: u64,
    /// Guest physical address of the device tree (and of bhyveload's boot
    /// parameters until bhyve replaces them with it).
    pub dtb_addr: u64,
}

/// Places the device tree in the top [`DTB_MAX`] bytes of RAM and an initrd
/// of `initrd_len` bytes page-aligned right below it, as high as it goes so
/// that the kernel keeps the most room to relocate and grow. booting.rst
/// asks only that both lie in RAM clear of the kernel's `image_size`, and
/// the tree 8-byte aligned and within 2 MiB.
pub fn layout_linux(
    kernel: &Placement,
    initrd_len: u64,
    ram_base: u64,
    ram_size: u64,
) -> Result<LinuxLayout, ImageError> {
    let offset = kernel.load_addr - ram_base;
    let kernel_end = kernel.load_addr + kernel.span;
    let dtb_addr = boot::dtb_addr(ram_base, ram_size);
    if ram_size < DTB_MAX || kernel_end > dtb_addr {
        return Err(ImageError::NoRoomForDtb { offset, span: kernel.span, ram: ram_size });
    }
    let room = (dtb_addr - kernel_end) & !(PAGE - 1);
    if initrd_len > room {
        return Err(ImageError::InitrdTooLarge { len: initrd_len, room });
    }
    let initrd_addr = (dtb_addr - initrd_len) & !(PAGE - 1);
    Ok(LinuxLayout { initrd_addr, dtb_addr })
}

const PAGE: u64 = 4096;

fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

/// Tells an arm64 `Image` from a raw binary by its header's magic.
pub fn identify(file: &[u8]) -> Kernel {
    if file.len() < HEADER_LEN {
        return Kernel::Raw;
    }
    let mut m = [0u8; 4];
    m.copy_from_slice(&file[OFF_MAGIC..OFF_MAGIC + 4]);
    if u32::from_le_bytes(m) != IMAGE_MAGIC {
        return Kernel::Raw;
    }
    Kernel::Linux(ImageHeader {
        text_offset: le_u64(file, OFF_TEXT_OFFSET),
        image_size: le_u64(file, OFF_IMAGE_SIZE),
        flags: le_u64(file, OFF_FLAGS),
    })
}

/// Decides where a file of `len` bytes goes in RAM of `ram_size` bytes at
/// `ram_base`, and checks that all of it fits.
pub fn place(kernel: Kernel, len: u64, ram_base: u64, ram_size: u64) -> Result<Placement, ImageError> {
    if len == 0 {
        return Err(ImageError::Empty);
    }
    match kernel {
        Kernel::Raw => {
            if len > ram_size {
                return Err(ImageError::TooLarge { len, ram: ram_size });
            }
            Ok(Placement { load_addr: ram_base, entry: ram_base, span: len })
        }
        Kernel::Linux(h) => {
            if h.flags & FLAG_BE != 0 {
                return Err(ImageError::BigEndian);
            }
            // booting.rst: with image_size 0 the kernel predates the field and
            // text_offset 0x80000 must be assumed.
            let text_offset = if h.image_size == 0 { LEGACY_TEXT_OFFSET } else { h.text_offset };
            let span = h.image_size.max(len);
            // The 2 MiB aligned base as close to the start of RAM as possible,
            // which leaves the most memory above the kernel.
            let too_large = ImageError::ImageTooLarge { offset: text_offset, span, ram: ram_size };
            let base = ram_base.checked_next_multiple_of(IMAGE_BASE_ALIGN).ok_or(too_large.clone())?;
            let load_addr = base.checked_add(text_offset).ok_or(too_large.clone())?;
            let offset = load_addr - ram_base;
            let end = offset.checked_add(span).ok_or(too_large.clone())?;
            if end > ram_size {
                return Err(ImageError::ImageTooLarge { offset, span, ram: ram_size });
            }
            Ok(Placement { load_addr, entry: load_addr, span })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: u64 = 0x4000_0000;
    const MB: u64 = 1 << 20;

    /// A file starting with an `Image` header with these fields.
    fn image(text_offset: u64, image_size: u64, flags: u64, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len.max(HEADER_LEN)];
        f[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes()); // code0: b +64
        f[8..16].copy_from_slice(&text_offset.to_le_bytes());
        f[16..24].copy_from_slice(&image_size.to_le_bytes());
        f[24..32].copy_from_slice(&flags.to_le_bytes());
        f[0x38..0x3c].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        f[0x3c..0x40].copy_from_slice(&0u32.to_le_bytes());
        f
    }

    #[test]
    fn reads_the_header() {
        let f = image(0x1234, 0x20_0000, 0xa, 4096);
        assert_eq!(identify(&f), Kernel::Linux(ImageHeader { text_offset: 0x1234, image_size: 0x20_0000, flags: 0xa }));
        assert_eq!(&f[0x38..0x3c], b"ARMd", "the magic spells ARM\\x64");
    }

    #[test]
    fn anything_else_is_raw() {
        assert_eq!(identify(b""), Kernel::Raw);
        assert_eq!(identify(&[0u8; 4096]), Kernel::Raw);
        let mut f = image(0, 0x1000, 0, 4096);
        f[0x38] ^= 1;
        assert_eq!(identify(&f), Kernel::Raw, "wrong magic");
        let f = image(0, 0x1000, 0, 64);
        assert!(matches!(identify(&f), Kernel::Linux(_)), "a bare header is enough");
        assert_eq!(identify(&f[..63]), Kernel::Raw, "too short for a header");
    }

    #[test]
    fn places_a_modern_image_at_text_offset() {
        // A 6.1-era kernel: text_offset 0, image_size larger than the file (BSS).
        let k = identify(&image(0, 40 * MB, 0xa, 4096));
        let p = place(k, 30 * MB, RAM, 64 * MB).unwrap();
        assert_eq!(p, Placement { load_addr: RAM, entry: RAM, span: 40 * MB });
        let k = identify(&image(0x8_0000, 4 * MB, 0, 4096));
        let p = place(k, 3 * MB, RAM, 64 * MB).unwrap();
        assert_eq!(p.load_addr, RAM + 0x8_0000);
        assert_eq!(p.entry, p.load_addr);
    }

    #[test]
    fn base_is_2m_aligned() {
        let k = identify(&image(0x1000, MB, 0, 4096));
        let p = place(k, MB, 0x4010_0000, 64 * MB).unwrap();
        assert_eq!(p.load_addr, 0x4020_1000, "next 2 MiB boundary plus text_offset");
    }

    #[test]
    fn old_kernels_get_0x80000() {
        let k = identify(&image(0x12_3456, 0, 0, 4096));
        let p = place(k, 8 * MB, RAM, 64 * MB).unwrap();
        assert_eq!(p.load_addr, RAM + LEGACY_TEXT_OFFSET);
        assert_eq!(p.span, 8 * MB, "the file length when image_size is unknown");
    }

    #[test]
    fn the_file_counts_when_larger_than_image_size() {
        let k = identify(&image(0, MB, 0, 4096));
        assert_eq!(place(k, 3 * MB, RAM, 64 * MB).unwrap().span, 3 * MB);
    }

    #[test]
    fn image_must_fit_whole() {
        let k = identify(&image(0x8_0000, 64 * MB, 0, 4096));
        assert_eq!(
            place(k, MB, RAM, 64 * MB),
            Err(ImageError::ImageTooLarge { offset: 0x8_0000, span: 64 * MB, ram: 64 * MB })
        );
        let k = identify(&image(0, 64 * MB, 0, 4096));
        assert!(place(k, MB, RAM, 64 * MB).is_ok(), "exactly full is fine");
        let e = place(identify(&image(0x8_0000, 64 * MB, 0, 64)), MB, RAM, 32 * MB).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a Linux Image needing 64M at offset 0x80000 of RAM, but the VM has 32M of memory"
        );
    }

    #[test]
    fn hostile_headers_do_not_overflow() {
        let k = identify(&image(u64::MAX - 5, 16, 0, 4096));
        assert!(matches!(place(k, 4096, RAM, 64 * MB), Err(ImageError::ImageTooLarge { .. })));
        let k = identify(&image(0x1000, u64::MAX, 0, 4096));
        assert!(matches!(place(k, 4096, RAM, 64 * MB), Err(ImageError::ImageTooLarge { .. })));
        let k = identify(&image(0, MB, 0, 4096));
        assert!(place(k, MB, u64::MAX - 4095, 4096).is_err(), "RAM near the top");
    }

    #[test]
    fn big_endian_is_refused() {
        let k = identify(&image(0, MB, FLAG_BE | 0x2, 4096));
        assert_eq!(place(k, MB, RAM, 64 * MB), Err(ImageError::BigEndian));
    }

    #[test]
    fn initrd_goes_right_below_the_device_tree() {
        let k = place(identify(&image(0, 20 * MB, 0, 64)), 10 * MB, RAM, 64 * MB).unwrap();
        let l = layout_linux(&k, 5000, RAM, 64 * MB).unwrap();
        assert_eq!(l.dtb_addr, RAM + 62 * MB);
        assert_eq!(l.initrd_addr, RAM + 62 * MB - 8192, "page-aligned, ends at or below the tree");
        assert!(layout_linux(&k, 42 * MB, RAM, 64 * MB).is_ok(), "exactly fills the gap");
        let e = layout_linux(&k, 42 * MB + 1, RAM, 64 * MB).unwrap_err();
        assert_eq!(e, ImageError::InitrdTooLarge { len: 42 * MB + 1, room: 42 * MB });
        assert_eq!(
            e.to_string(),
            format!(
                "is {} but only 42M of memory is free between the kernel and the device tree",
                format_size(42 * MB + 1)
            )
        );
    }

    #[test]
    fn kernel_must_leave_the_top_2m() {
        let k = place(identify(&image(0, 63 * MB, 0, 64)), MB, RAM, 64 * MB).unwrap();
        let e = layout_linux(&k, 0, RAM, 64 * MB).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a Linux Image needing 63M at offset 0x0 of RAM, which leaves no room for the device tree in the top 2M of the VM's 64M of memory"
        );
        let k = place(identify(&image(0, 62 * MB, 0, 64)), MB, RAM, 64 * MB).unwrap();
        assert_eq!(layout_linux(&k, 0, RAM, 64 * MB).unwrap().dtb_addr, RAM + 62 * MB);
    }

    #[test]
    fn raw_binaries_go_to_the_start_of_ram() {
        let p = place(Kernel::Raw, 123, RAM, 64 * MB).unwrap();
        assert_eq!(p, Placement { load_addr: RAM, entry: RAM, span: 123 });
        assert!(place(Kernel::Raw, 64 * MB, RAM, 64 * MB).is_ok());
        let e = place(Kernel::Raw, 130 * MB, RAM, 64 * MB).unwrap_err();
        assert_eq!(e.to_string(), "is 130M but the VM has 64M of memory");
        assert_eq!(place(Kernel::Raw, 0, RAM, 64 * MB), Err(ImageError::Empty));
    }
}
