//! bhyveload's command line, in bhyve's spelling:
//! `bhyveload -m SIZE [-k FILE] [-i FILE] [-e ARGS]... NAME`, or
//! `bhyveload -m SIZE -d DISK [-e ARGS]... NAME`.
//! A bad or missing flag gives one line naming it, the usage, and exit 2.

use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;
use vmmapi::cli;
pub use vmmapi::cli::Exit;
use vmmapi::size::parse_mem_size;

/// One-line usage printed under every command-line error.
pub const USAGE: &str = "usage: bhyveload -m SIZE [-d DISK | -k FILE [-i FILE]] [-e ARGS]... NAME  (see --help)";

/// The kernel command line when no `-e` is given: the console on the PL011.
pub const DEFAULT_CMDLINE: &str = "console=ttyAMA0";

#[derive(Parser, Debug)]
#[command(
    name = "bhyveload",
    about = "Create a VM if needed, give it memory, and load its kernel",
    disable_version_flag = true,
    after_help = "SIZE is bytes, or a number with K, M, G or T (either case), a multiple of 4K.\n\
                  An existing VM is reused if its memory has the same size.\n\
                  Exit status: 0 on success, 1 when loading fails, 2 for a bad command line."
)]
struct Args {
    /// Guest memory size.
    #[arg(short = 'm', value_name = "SIZE", required = true)]
    mem: String,
    /// Kernel to load: an arm64 Linux Image, possibly gzipped (placed as
    /// Linux's booting.rst says), or any other file, loaded and entered at
    /// the start of RAM [default: the guest in /var/lib/bhyve/NAME, else
    /// /usr/share/bhyve/guest, else none: the VM only gets its memory].
    #[arg(short = 'k', value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// Initial ramdisk for a Linux kernel, placed at the top of memory below
    /// the device tree.
    #[arg(short = 'i', value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// Kernel command line; several -e are joined with spaces. With -d it
    /// replaces the command line the disk's configuration gives [default:
    /// the disk's, else the guest directory's cmdline file, else
    /// console=ttyAMA0].
    #[arg(short = 'e', value_name = "ARGS")]
    cmdline: Vec<String>,
    /// Boot what an installed disk (image or device) boots, without
    /// firmware: its GRUB grub.cfg (the ESP's stub, /boot/grub, /grub),
    /// else its Boot Loader Specification entries, else its extlinux.conf,
    /// on ext2/3/4 or FAT partitions (GPT, MBR or none). The default
    /// entry's kernel, initrd and command line are loaded as -k, -i and -e
    /// would load them. The disk is only read.
    #[arg(short = 'd', long = "disk", value_name = "DISK")]
    disk: Option<PathBuf>,
    /// The VM, created if it does not exist.
    #[arg(value_name = "NAME")]
    name: String,
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Command {
    /// The VM's name.
    pub name: String,
    /// Guest memory in bytes (non-zero, whole pages).
    pub mem_size: u64,
    /// The kernel to load, if any.
    pub kernel: Option<PathBuf>,
    /// The initrd to load with it, if any.
    pub initrd: Option<PathBuf>,
    /// The kernel command line, if given.
    pub cmdline: Option<String>,
    /// The disk to boot from (`-d`), if given.
    pub disk: Option<PathBuf>,
}

fn usage_error(msg: &str) -> Exit {
    cli::usage_error("bhyveload", USAGE, msg)
}

/// The command line's definition: what `--help` prints and what the shell
/// completions (crate `completions`) are generated from.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// Parses the arguments (the first is the program name).
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, Exit> {
    let a = Args::try_parse_from(args).map_err(|e| cli::clap_exit("bhyveload", USAGE, &e))?;
    let mem_size = parse_mem_size(&a.mem).map_err(|e| usage_error(&format!("-m {}: {e}", a.mem)))?;
    let cmdline = (!a.cmdline.is_empty()).then(|| a.cmdline.join(" "));
    if a.disk.is_some() {
        // The disk names its own kernel and initrd.
        for (flag, given) in [("-k", a.kernel.is_some()), ("-i", a.initrd.is_some())] {
            if given {
                return Err(usage_error(&format!(
                    "-d and {flag} cannot be used together: -d boots the kernel and initrd the disk names"
                )));
            }
        }
    }
    Ok(Command { name: a.name, mem_size, kernel: a.kernel, initrd: a.initrd, cmdline, disk: a.disk })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, Exit> {
        parse(std::iter::once("bhyveload").chain(args.iter().copied()).map(OsString::from))
    }

    fn err(args: &[&str]) -> String {
        p(args).unwrap_err().usage_error_line(USAGE)
    }

    #[test]
    fn bhyve_spelling() {
        assert_eq!(
            p(&["-m", "64M", "-k", "Image", "g"]).unwrap(),
            Command {
                name: "g".into(),
                mem_size: 64 << 20,
                kernel: Some("Image".into()),
                initrd: None,
                cmdline: None,
                disk: None
            }
        );
        assert_eq!(
            p(&["-m512m", "guest"]).unwrap(),
            Command {
                name: "guest".into(),
                mem_size: 512 << 20,
                kernel: None,
                initrd: None,
                cmdline: None,
                disk: None
            }
        );
        let c =
            p(&["-m", "1G", "-k", "Image", "-i", "initrd.gz", "-e", "console=ttyAMA0 quiet", "-e", "panic=-1", "g"])
                .unwrap();
        assert_eq!(c.initrd, Some("initrd.gz".into()));
        assert_eq!(c.cmdline.as_deref(), Some("console=ttyAMA0 quiet panic=-1"));
        assert_eq!(p(&["g", "-m", "1G"]).unwrap().mem_size, 1 << 30);
    }

    #[test]
    fn bad_sizes_name_m() {
        assert_eq!(err(&["-m", "12x", "g"]), "bhyveload: -m 12x: unknown unit 'x' (use K, M, G or T)");
        assert_eq!(err(&["-m", "0", "g"]), "bhyveload: -m 0: must not be zero");
        assert_eq!(err(&["-m", "1000", "g"]), "bhyveload: -m 1000: 1000 bytes is not a multiple of 4K");
        assert!(err(&["-m", "big", "g"]).starts_with("bhyveload: -m big: not a size"));
        assert_eq!(err(&["-m", "99999999T", "g"]), "bhyveload: -m 99999999T: too large");
    }

    #[test]
    fn bad_flags_are_named() {
        assert_eq!(err(&["-x", "-m", "1M", "g"]), "bhyveload: unknown flag '-x'");
        assert_eq!(err(&["g"]), "bhyveload: missing -m <SIZE>");
        assert_eq!(err(&["-m", "1M"]), "bhyveload: missing <NAME>");
        assert_eq!(err(&["g", "-m"]), "bhyveload: flag '-m <SIZE>' needs a value");
        assert_eq!(err(&["-m", "1M", "g", "-k"]), "bhyveload: flag '-k <FILE>' needs a value");
        assert!(err(&["-m", "1M", "g", "h"]).contains("'h'"));
        assert!(err(&["-m", "1M", "-m", "2M", "g"]).contains("-m"));
    }

    #[test]
    fn disk_flag() {
        let c = p(&["-m", "512M", "-d", "disk.img", "-e", "console=ttyAMA0", "g"]).unwrap();
        assert_eq!((c.disk, c.kernel, c.cmdline.as_deref()), (Some("disk.img".into()), None, Some("console=ttyAMA0")));
        assert_eq!(p(&["-m", "512M", "--disk", "/dev/vdb", "g"]).unwrap().disk, Some("/dev/vdb".into()));
        assert_eq!(
            err(&["-m", "512M", "-d", "disk.img", "-k", "Image", "g"]),
            "bhyveload: -d and -k cannot be used together: -d boots the kernel and initrd the disk names"
        );
        assert!(err(&["-m", "512M", "-i", "initrd", "-d", "disk.img", "g"]).starts_with("bhyveload: -d and -i cannot"));
    }

    #[test]
    fn help_exits_zero_on_stdout() {
        let e = p(&["--help"]).unwrap_err();
        assert_eq!(e.code, 0);
        assert!(e.out.contains("-m <SIZE>") && e.out.contains("-k <FILE>") && e.out.contains("-d, --disk <DISK>"));
        assert!(e.err.is_empty());
    }
}
