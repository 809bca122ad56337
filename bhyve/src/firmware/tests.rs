//! Firmware images made up to the shape of EDK2's and U-Boot's (and the
//! real ones from Debian's packages where they are installed), variable
//! stores in a temporary directory, banks in anonymous memory.

use super::*;
use crate::cli::BootRom;
use vmmapi::vm_memory::mmap::MmapRegion;
use vmmapi::vm_memory::GuestAddress;

/// An EDK2-shaped image: a branch to 0x1000, a firmware volume there of `fv_len`.
fn uefi(size: usize, fv_len: u64) -> Vec<u8> {
    let mut v = vec![0xffu8; size];
    v[..4].copy_from_slice(&0x1400_0400u32.to_le_bytes());
    let h = &mut v[0x1000..0x1048];
    h.fill(0);
    h[0x20..0x28].copy_from_slice(&fv_len.to_le_bytes());
    h[0x28..0x2c].copy_from_slice(b"_FVH");
    h[0x30..0x32].copy_from_slice(&0x48u16.to_le_bytes());
    let sum = h.chunks_exact(2).fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
    h[0x32..0x34].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    v
}

/// A U-Boot-shaped image: `b reset` over a nop and its four header words.
fn uboot(size: usize, end: u64) -> Vec<u8> {
    let mut v = vec![0u8; size];
    v[..4].copy_from_slice(&0x1400_000au32.to_le_bytes());
    v[4..8].copy_from_slice(&0xd503_201fu32.to_le_bytes());
    v[0x10..0x18].copy_from_slice(&end.to_le_bytes());
    v
}

#[test]
fn firmware_is_recognised() {
    assert_eq!(check_image(&uefi(2 << 20, 0x1f_f000)), Ok(Kind::Uefi));
    assert_eq!(check_image(&uboot(971_304, 971_304)), Ok(Kind::UBoot));
    let mut other = vec![0u8; 4096];
    other[..4].copy_from_slice(&0x1400_0010u32.to_le_bytes());
    assert_eq!(check_image(&other), Ok(Kind::Other));
}

#[test]
fn what_is_not_firmware_is_refused_in_words() {
    assert_eq!(check_image(&[]), Err(ImageError::Empty));
    let big = vec![0u8; BANK_SIZE as usize + 1];
    assert_eq!(check_image(&big).unwrap_err().to_string(), "it is 67108865 bytes, larger than the 64M flash bank");
    let text = b"#!/bin/sh\necho hello\n".to_vec();
    assert_eq!(
        check_image(&text).unwrap_err().to_string(),
        "it is not AArch64 firmware: its first word 0x622f2123 is not a branch instruction"
    );
    let mut image = vec![0u8; 4096];
    image[56..60].copy_from_slice(b"ARM\x64");
    assert_eq!(check_image(&image), Err(ImageError::LinuxImage));
    let e = check_image(&uefi(1 << 20, 0x1f_f000)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "it is truncated: its UEFI firmware volume at 0x1000 is 2044K long, but the file ends 1020K into it"
    );
    assert_eq!(
        check_image(&uboot(4096, 971_304)).unwrap_err().to_string(),
        "it is truncated: its U-Boot image is 971304 bytes long by its header, the file 4096"
    );
    // A damaged volume header is not trusted (and the image is then just a branch).
    let mut bad = uefi(1 << 20, 0x1f_f000);
    bad[0x1030] ^= 1;
    assert_eq!(check_image(&bad), Ok(Kind::Other));
}

/// Debian's images, where qemu-efi-aarch64 and u-boot-qemu are installed.
#[test]
fn debians_firmware_is_recognised() {
    for (path, kind) in [
        ("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", Kind::Uefi),
        ("/usr/share/AAVMF/AAVMF_CODE.fd", Kind::Uefi),
        ("/usr/lib/u-boot/qemu_arm64/u-boot.bin", Kind::UBoot),
    ] {
        let Ok(image) = std::fs::read(path) else {
            eprintln!("{path} is not installed: not checked");
            continue;
        };
        assert_eq!(check_image(&image), Ok(kind), "{path}");
        let half = &image[..image.len().min(1 << 20) / 2];
        assert!(check_image(half).is_err(), "{path} cut in half");
    }
}

fn tmp() -> PathBuf {
    let d = std::env::temp_dir().join(format!("bhyve-fw-{}-{:?}", std::process::id(), std::thread::current().id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn templates_go_with_their_code() {
    let d = tmp();
    for f in ["AAVMF_CODE.fd", "AAVMF_VARS.fd", "AAVMF_CODE.ms.fd", "AAVMF_VARS.ms.fd", "QEMU_EFI.fd"] {
        std::fs::write(d.join(f), b"x").unwrap();
    }
    assert_eq!(template_for(&d.join("AAVMF_CODE.fd")), Some(d.join("AAVMF_VARS.fd")));
    assert_eq!(template_for(&d.join("AAVMF_CODE.ms.fd")), Some(d.join("AAVMF_VARS.ms.fd")));
    assert_eq!(template_for(&d.join("QEMU_EFI.fd")), None);
    std::fs::remove_file(d.join("AAVMF_VARS.fd")).unwrap();
    assert_eq!(template_for(&d.join("AAVMF_CODE.fd")), None, "no template file: none");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn variable_stores_are_found_or_made_from_their_template() {
    let d = tmp();
    let code = d.join("AAVMF_CODE.fd");
    std::fs::write(&code, uefi(2 << 20, 0x1f_f000)).unwrap();
    std::fs::write(d.join("AAVMF_VARS.fd"), [7u8; 8192]).unwrap();
    let opts = |vars: Option<&str>| BootRom { rom: code.clone(), vars: vars.map(|v| d.join(v)), template: None };
    // Missing: from the template beside the code, made later.
    let fw = Firmware::read(&opts(Some("mine.fd"))).unwrap();
    assert_eq!((fw.kind, fw.vars.bytes.len()), (Kind::Uefi, 8192));
    assert!(matches!(&fw.vars.file, VarsFile::Create(p) if *p == d.join("mine.fd")));
    assert!(!d.join("mine.fd").exists(), "nothing written yet");
    // Without a template: an erased bank.
    let qemu = d.join("QEMU_EFI.fd");
    std::fs::write(&qemu, uefi(2 << 20, 0x1f_f000)).unwrap();
    let fw = Firmware::read(&BootRom { rom: qemu.clone(), vars: None, template: None }).unwrap();
    assert!(matches!(fw.vars.file, VarsFile::None));
    assert_eq!(fw.vars.bytes.len() as u64, BANK_SIZE);
    assert!(fw.vars.bytes.iter().all(|&b| b == ERASED));
    // Existing: its own bytes, open for writing.
    std::fs::write(d.join("old.fd"), [1u8; 4096]).unwrap();
    let fw = Firmware::read(&opts(Some("old.fd"))).unwrap();
    assert!(matches!(fw.vars.file, VarsFile::Open(_)) && fw.vars.bytes == [1u8; 4096]);
    // Refused: a store larger than the bank, a directory, a missing template.
    let f = File::create(d.join("huge.fd")).unwrap();
    f.set_len(BANK_SIZE + 4096).unwrap();
    let e = Firmware::read(&opts(Some("huge.fd"))).err().unwrap().to_string();
    assert_eq!(e, format!("bootvars '{}': it is larger than the 64M flash bank", d.join("huge.fd").display()));
    std::fs::create_dir(d.join("dir.fd")).unwrap();
    assert!(Firmware::read(&opts(Some("dir.fd"))).is_err());
    let o = BootRom { template: Some(d.join("nope.fd")), ..opts(Some("new.fd")) };
    let e = Firmware::read(&o).err().unwrap().to_string();
    assert!(e.ends_with("nope.fd': (the template) No such file or directory"), "{e}");
    // And the firmware itself.
    let o = BootRom { rom: d.join("missing.fd"), vars: None, template: None };
    let e = Firmware::read(&o).err().unwrap().to_string();
    assert_eq!(e, format!("bootrom '{}': No such file or directory", d.join("missing.fd").display()));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_store_is_made_whole_or_not_at_all() {
    let d = tmp();
    let p = d.join("vars.fd");
    let f = create_store(&p, &[0x5a; 10000]).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), [0x5a; 10000]);
    let mut store = FileStore::new(f).unwrap();
    store.write(4, &[1, 2]).unwrap();
    assert_eq!(std::fs::read(&p).unwrap()[..8], [0x5a, 0x5a, 0x5a, 0x5a, 1, 2, 0x5a, 0x5a]);
    // Past the end of a short store: erased bytes up to the write, as the bank reads.
    store.write(10004, &[3]).unwrap();
    let all = std::fs::read(&p).unwrap();
    assert_eq!((all.len(), &all[9999..]), (10005, &[0x5a, 0xff, 0xff, 0xff, 0xff, 3][..]));
    assert!(create_store(&d.join("no/such/dir/vars.fd"), &[0; 4]).is_err());
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["vars.fd"], "no temporary file left");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn banks_are_loaded_with_the_rest_filled() {
    let region = GuestRegion::new(MmapRegion::new(BANK_SIZE as usize).unwrap(), GuestAddress(0)).unwrap();
    load_bank(&region, &[1, 2, 3], ERASED, true).unwrap();
    let a = RegionArray(region);
    let mut b = [0u8; 5];
    a.read(0, &mut b);
    assert_eq!(b, [1, 2, 3, 0xff, 0xff]);
    a.read(BANK_SIZE - 5, &mut b);
    assert_eq!(b, [0xff; 5]);
    // Past the bank: erased, never out of bounds.
    a.read(BANK_SIZE - 2, &mut b);
    assert_eq!(b, [0xff; 5]);
}

#[test]
fn a_firmware_file_larger_than_the_bank_is_not_read() {
    let d = tmp();
    let big = d.join("big.fd");
    File::create(&big).unwrap().set_len(65 << 20).unwrap();
    let e = Firmware::read(&BootRom { rom: big.clone(), vars: None, template: None }).err().unwrap().to_string();
    assert_eq!(e, format!("bootrom '{}': it is 65M, larger than the 64M flash bank", big.display()));
    std::fs::remove_dir_all(&d).unwrap();
}
