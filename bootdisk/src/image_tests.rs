//! The whole crate against real images made by the host's tools (see
//! [`crate::testimg`]): the layouts distributions install, and the ways
//! they go wrong.

use crate::grub::tests::debian_cfg;
use crate::testimg::{disk, ext, fat, is_htree, Tmp};
use crate::{plan, BootDisk, Error, Loader, Options, ReadAt, TableKind};
use std::rc::Rc;

const ROOT_UUID: &str = "6f1d2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b";
const BOOT_UUID: &str = "0b007000-1111-4222-8333-944455556666";
const K56: &str = "6.1.0-56-arm64";
const K10: &str = "6.1.0-10-arm64";

/// Kernel-like bytes: a few hundred KiB, so reads cross blocks and extents.
fn kernel(ver: &str) -> Vec<u8> {
    format!("KERNEL {ver} ").repeat(20_000).into_bytes()
}

fn initrd(ver: &str) -> Vec<u8> {
    format!("INITRD {ver} ").repeat(3_001).into_bytes()
}

fn stub(uuid: &str, dir: &str) -> String {
    format!("search.fs_uuid {uuid} root hd0,gpt2 \nset prefix=($root)'{dir}'\nconfigfile $prefix/grub.cfg\n")
}

/// Debian's layout: a FAT ESP with EFI/debian/grub.cfg, an ext4 root with
/// /boot/grub/grub.cfg, two kernels, the /vmlinuz links, and a /boot big
/// enough to be an htree directory.
fn debian(t: &Tmp, default: &str, grubenv: Option<&str>) -> Vec<u8> {
    let cfg = debian_cfg(ROOT_UUID, default);
    let (k56, i56, k10, i10) = (kernel(K56), initrd(K56), kernel(K10), initrd(K10));
    let names: Vec<(String, Vec<u8>)> =
        (0..150).map(|i| (format!("/boot/config-padding-file-number-{i:04}"), vec![b'x'; 10])).collect();
    let p56 = format!("/boot/vmlinuz-{K56}");
    let pi56 = format!("/boot/initrd.img-{K56}");
    let p10 = format!("/boot/vmlinuz-{K10}");
    let pi10 = format!("/boot/initrd.img-{K10}");
    let link = format!("->boot/vmlinuz-{K56}");
    let mut tree: Vec<(&str, &[u8])> = vec![
        ("/boot/grub/grub.cfg", cfg.as_bytes()),
        (&p56, &k56),
        (&pi56, &i56),
        (&p10, &k10),
        (&pi10, &i10),
        ("/vmlinuz", link.as_bytes()),
        ("/etc/fstab", b"UUID=... / ext4 defaults 0 1\n"),
    ];
    if let Some(env) = grubenv {
        tree.push(("/boot/grub/grubenv", env.as_bytes()));
    }
    tree.extend(names.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
    let root = ext(t, "root.img", "ext4", 16, "root", ROOT_UUID, &tree);
    assert!(is_htree(&root, "/boot"), "the test image's /boot should be an htree directory");
    let stub = stub(ROOT_UUID, "/boot/grub");
    let esp = fat(
        t,
        "esp.img",
        16,
        8192,
        "ESP",
        "AB12CD34",
        &[("/EFI/debian/grub.cfg", stub.as_bytes()), ("/EFI/debian/grubaa64.efi", b"MZ...")],
    );
    disk(t, "gpt", &[("U", &esp), ("L", &root)])
}

fn plan_of(d: Vec<u8>) -> Result<crate::BootPlan, Error> {
    plan("disk.img", Rc::new(d), &Options::default())
}

#[test]
fn debian_gpt_esp_and_root() {
    let t = Tmp::new("debian");
    let d = debian(&t, "0", None);
    let bd = BootDisk::open("disk.img", Rc::new(d.clone())).unwrap();
    assert_eq!(bd.table(), TableKind::Gpt);
    let v = bd.volumes();
    assert_eq!(
        (v[0].number, v[0].kind.as_str(), v[0].uuid.as_str(), v[0].label.as_str()),
        (1, "FAT16", "AB12-CD34", "ESP")
    );
    assert_eq!(
        (v[1].number, v[1].kind.as_str(), v[1].uuid.as_str(), v[1].label.as_str()),
        (2, "ext4", ROOT_UUID, "root")
    );
    let p = plan_of(d).unwrap();
    assert_eq!(p.loader, Loader::Grub);
    assert_eq!(
        p.summary(),
        format!("'Debian GNU/Linux' from disk.img partition 2: /boot/vmlinuz-{K56}, /boot/initrd.img-{K56}")
    );
    assert_eq!(p.kernel, kernel(K56));
    assert_eq!(p.initrd, initrd(K56));
    assert_eq!(p.cmdline, format!("BOOT_IMAGE=/boot/vmlinuz-{K56} root=UUID={ROOT_UUID} ro quiet console=ttyAMA0"));
    assert_eq!(
        p.why,
        "default '0' in /EFI/debian/grub.cfg on partition 1 (FAT16) -> /boot/grub/grub.cfg on partition 2 (ext4)"
    );
    assert_eq!(p.notes, Vec::<String>::new());
}

#[test]
fn submenu_default_and_saved_entry() {
    let t = Tmp::new("saved");
    let env = format!(
        "# GRUB Environment Block\nsaved_entry=gnulinux-advanced-{ROOT_UUID}>gnulinux-{K10}-advanced-{ROOT_UUID}\n{}",
        "#".repeat(1024 - 140)
    );
    let p = plan_of(debian(&t, "${saved_entry}", Some(&env))).unwrap();
    assert_eq!(p.title, format!("Debian GNU/Linux, with Linux {K10}"));
    assert_eq!((p.kernel.clone(), p.initrd.clone()), (kernel(K10), initrd(K10)));
    let t = Tmp::new("submenu");
    let p = plan_of(debian(&t, "1>1", None)).unwrap();
    assert!(p.title.ends_with("(recovery mode)") && p.cmdline.contains(" single "), "{p:?}");
}

#[test]
fn corrupt_primary_gpt_uses_the_backup() {
    let t = Tmp::new("gptbad");
    let mut d = debian(&t, "0", None);
    d[512 + 8] ^= 0xff;
    let p = plan_of(d.clone()).unwrap();
    assert_eq!(p.kernel_path, format!("/boot/vmlinuz-{K56}"));
    assert_eq!(
        p.notes,
        vec!["the primary GPT is bad (GPT header at LBA 1 fails its CRC); using the backup at the end of the disk"]
    );
    let last = d.len() / 512 - 1;
    d[last * 512 + 8] ^= 0xff;
    let e = plan_of(d).unwrap_err().to_string();
    assert_eq!(e, format!("disk.img: GPT header at LBA 1 fails its CRC, and the backup GPT too: GPT header at LBA {last} fails its CRC"));
}

#[test]
fn separate_boot_partition() {
    let t = Tmp::new("sepboot");
    let cfg = format!(
        "set default=0\nmenuentry 'Debian GNU/Linux' {{\n\tsearch --no-floppy --fs-uuid --set=root {BOOT_UUID}\n\tlinux /vmlinuz-{K56} root=UUID={ROOT_UUID} ro\n\tinitrd /initrd.img-{K56}\n}}\n"
    );
    let (k, i) = (kernel(K56), initrd(K56));
    let (pk, pi) = (format!("/vmlinuz-{K56}"), format!("/initrd.img-{K56}"));
    let boot =
        ext(&t, "boot.img", "ext2", 8, "boot", BOOT_UUID, &[("/grub/grub.cfg", cfg.as_bytes()), (&pk, &k), (&pi, &i)]);
    let root = ext(&t, "root.img", "ext4", 8, "root", ROOT_UUID, &[("/etc/fstab", b"x")]);
    let stub = stub(BOOT_UUID, "/grub");
    let esp = fat(&t, "esp.img", 16, 4096, "ESP", "11112222", &[("/EFI/debian/grub.cfg", stub.as_bytes())]);
    let d = disk(&t, "gpt", &[("U", &esp), ("L", &boot), ("L", &root)]);
    let p = plan_of(d).unwrap();
    assert_eq!(p.summary(), format!("'Debian GNU/Linux' from disk.img partition 2: /vmlinuz-{K56}, /initrd.img-{K56}"));
    assert_eq!((p.kernel, p.initrd), (k, i));
    assert!(p.why.ends_with("-> /grub/grub.cfg on partition 2 (ext2)"), "{}", p.why);
}

#[test]
fn bls_entries_on_the_esp() {
    let t = Tmp::new("bls");
    let (k, i) = (kernel(K56), initrd(K56));
    let e56 = format!("title Debian 12\nversion {K56}\nlinux /debian/{K56}/linux\ninitrd /debian/{K56}/initrd.img-{K56}\noptions root=UUID={ROOT_UUID} ro\n");
    let e10 =
        format!("title Debian 12 (old)\nversion {K10}\nlinux /debian/{K10}/linux\noptions root=UUID={ROOT_UUID} ro\n");
    let (f56, f10) = (format!("/loader/entries/debian-{K56}.conf"), format!("/loader/entries/debian-{K10}.conf"));
    let (pk, pi, pk10) =
        (format!("/debian/{K56}/linux"), format!("/debian/{K56}/initrd.img-{K56}"), format!("/debian/{K10}/linux"));
    let esp = fat(
        &t,
        "esp.img",
        12,
        4096,
        "ESP",
        "CAFE0001",
        &[
            (&f56, e56.as_bytes()),
            (&f10, e10.as_bytes()),
            (&pk, &k),
            (&pi, &i),
            (&pk10, b"old"),
            ("/loader/loader.conf", b"timeout 3\n"),
        ],
    );
    let root = ext(&t, "root.img", "ext4", 8, "root", ROOT_UUID, &[("/etc/fstab", b"x")]);
    let d = disk(&t, "gpt", &[("U", &esp), ("L", &root)]);
    let p = plan_of(d.clone()).unwrap();
    assert_eq!(p.loader, Loader::Bls);
    assert_eq!(
        p.summary(),
        format!("'Debian 12' from disk.img partition 1: /debian/{K56}/linux, /debian/{K56}/initrd.img-{K56}")
    );
    assert_eq!((p.kernel, p.initrd, p.cmdline.as_str()), (k, i, format!("root=UUID={ROOT_UUID} ro").as_str()));
    assert_eq!(BootDisk::open("d", Rc::new(d)).unwrap().volumes()[0].kind, "FAT12");
}

#[test]
fn extlinux_on_fat32_with_an_mbr() {
    let t = Tmp::new("extlinux");
    let (k, i) = (kernel(K56), initrd(K56));
    let conf = "DEFAULT debian\nLABEL debian\n  MENU LABEL Debian (U-Boot)\n  LINUX ../Image\n  INITRD ../initrd.img\n  FDTDIR ../dtbs\n  APPEND root=/dev/vda2 console=ttyAMA0\n";
    let boot = fat(
        &t,
        "boot.img",
        32,
        34 * 1024,
        "BOOT",
        "F00DF00D",
        &[("/extlinux/extlinux.conf", conf.as_bytes()), ("/Image", &k), ("/initrd.img", &i)],
    );
    let d = disk(&t, "dos", &[("c", &boot)]);
    let bd = BootDisk::open("sd.img", Rc::new(d.clone())).unwrap();
    assert_eq!((bd.table(), bd.volumes()[0].kind.as_str()), (TableKind::Mbr, "FAT32"));
    let p = plan_of(d).unwrap();
    assert_eq!(p.loader, Loader::Extlinux);
    assert_eq!(p.summary(), "'Debian (U-Boot)' from disk.img partition 1: /Image, /initrd.img");
    assert_eq!((p.kernel, p.initrd, p.cmdline.as_str()), (k, i, "root=/dev/vda2 console=ttyAMA0"));
    assert_eq!(p.notes, vec!["/extlinux/extlinux.conf: ignored the label's FDT (bhyve makes its own device tree)"]);
}

#[test]
fn symlinked_kernels_on_a_whole_disk_file_system() {
    let t = Tmp::new("links");
    let (k, i) = (kernel(K56), initrd(K56));
    let conf = b"LABEL l\n KERNEL /vmlinuz\n INITRD /initrd.img\n APPEND root=/dev/vda\n";
    let (pk, pi) = (format!("/boot/vmlinuz-{K56}"), format!("/boot/initrd.img-{K56}"));
    let (lk, li) = (format!("->boot/vmlinuz-{K56}"), format!("->/boot/initrd.img-{K56}"));
    let img = ext(
        &t,
        "whole.img",
        "ext4",
        8,
        "",
        ROOT_UUID,
        &[
            ("/boot/extlinux/extlinux.conf", conf),
            (&pk, &k),
            (&pi, &i),
            ("/vmlinuz", lk.as_bytes()),
            ("/initrd.img", li.as_bytes()),
        ],
    );
    let p = plan_of(std::fs::read(img).unwrap()).unwrap();
    assert_eq!(p.summary(), "'l' from disk.img (the whole disk): /vmlinuz, /initrd.img");
    assert_eq!((p.kernel, p.initrd), (k, i));
}

#[test]
fn missing_initrd_and_limits() {
    let t = Tmp::new("missing");
    let cfg = b"menuentry 'Debian GNU/Linux' {\n linux /boot/vmlinuz-1 ro\n initrd /boot/initrd.img-1\n}\n";
    let k = kernel("1");
    let root =
        ext(&t, "root.img", "ext4", 8, "root", ROOT_UUID, &[("/boot/grub/grub.cfg", cfg), ("/boot/vmlinuz-1", &k)]);
    let d = disk(&t, "gpt", &[("L", &root)]);
    let e = plan_of(d.clone()).unwrap_err();
    assert_eq!(e.to_string(), "the initrd /boot/initrd.img-1 named by grub.cfg is not on disk.img partition 1 (ext4)");
    let e = plan("disk.img", Rc::new(d), &Options { max_file: 64 << 10 }).unwrap_err();
    assert_eq!(e.to_string(), "the kernel /boot/vmlinuz-1 named by grub.cfg on disk.img partition 1 (ext4) is 175.8K, more than the 64K limit");
}

#[test]
fn no_configuration() {
    let t = Tmp::new("nocfg");
    let root = ext(&t, "root.img", "ext4", 8, "root", ROOT_UUID, &[("/etc/fstab", b"x")]);
    let esp = fat(&t, "esp.img", 16, 4096, "ESP", "12345678", &[("/EFI/BOOT/BOOTAA64.EFI", b"MZ")]);
    let e = plan_of(disk(&t, "gpt", &[("U", &esp), ("L", &root)])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no boot configuration found on disk.img (looked for EFI/*/grub.cfg, /boot/grub/grub.cfg, /grub/grub.cfg, \
         /boot/grub2/grub.cfg, /grub2/grub.cfg, /loader/entries/*.conf, /boot/loader/entries/*.conf, \
         /boot/extlinux/extlinux.conf and /extlinux/extlinux.conf on partition 1 (FAT16), partition 2 (ext4))"
    );
    let e = plan_of(vec![0u8; 1 << 20]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "disk.img has no ext2/3/4 or FAT file system to boot from (no partition table and no file system)"
    );
}

/// A deterministic generator, so a failure can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Damaged images: bytes flipped where the structures are (GPT, boot
/// sectors, FATs, superblocks, group descriptors, inode tables, directory
/// blocks) and anywhere. Every run must end in a plan or an error, never a
/// panic or a hang.
#[test]
fn fuzz_damaged_images() {
    let t = Tmp::new("fuzz");
    let base = debian(&t, "1>1", None);
    // Where the structures are: the table, the ESP's boot sector, FATs and
    // root directory (from 1 MiB), the root file system's superblock,
    // descriptors, bitmaps, inode table and first directories (from 9 MiB).
    let hot = [(0, 34 * 512), (1 << 20, 64 << 10), (9 << 20, 1 << 20)];
    let rounds = std::env::var("BOOTDISK_FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut outcomes = [0usize; 2];
    for seed in 1..=rounds {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let mut d = base.clone();
        for _ in 0..1 + rng.below(64) {
            let at = match rng.below(4) {
                3 => rng.below(d.len()),
                r => hot[r].0 + rng.below(hot[r].1),
            };
            d[at] = rng.next() as u8;
        }
        let r = plan("fuzz.img", Rc::new(d) as Rc<dyn ReadAt>, &Options::default());
        outcomes[r.is_ok() as usize] += 1;
    }
    assert!(outcomes[1] > 0 && outcomes[0] > 0, "damage should break some runs and spare others: {outcomes:?}");
}

/// Damaged configuration text: every parser must answer, never panic.
#[test]
fn fuzz_configuration_text() {
    use crate::files::fake::FakeDisk;
    let cfg = debian_cfg(ROOT_UUID, "1>2");
    let bls = "title T\nversion 1.0~rc1-2^x\nlinux /k\ninitrd /i\noptions a b\n";
    let ext = "DEFAULT a\nLABEL a\n KERNEL /k\n INITRD /i,/j\n APPEND x\nMENU DEFAULT\n";
    let alphabet = b"{}[]\"'$\\;\n #()=>-*?!abc0129 \t";
    for seed in 1..=3000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let pick = rng.below(3);
        let mut text = [cfg.as_bytes(), bls.as_bytes(), ext.as_bytes()][pick].to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(text.len());
            match rng.below(3) {
                0 => text[at] = alphabet[rng.below(alphabet.len())],
                1 => drop(text.remove(at)),
                _ => text.insert(at, alphabet[rng.below(alphabet.len())]),
            }
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        let d = FakeDisk::new(&[(1, "FAT16", "AB12-CD34", "ESP"), (2, "ext4", ROOT_UUID, "root")])
            .file(1, "/boot/grub/grub.cfg", &text)
            .file(1, "/boot/grub/grubenv", &text)
            .file(0, "/loader/entries/a.conf", &text)
            .file(0, "/loader/loader.conf", &text);
        let _ = crate::grub::choose(&d, 1, "/boot/grub/grub.cfg");
        let _ = crate::bls::choose(&d, 0);
        let _ = crate::extlinux::choose(&d, 0, "/extlinux/extlinux.conf", &text);
    }
}
