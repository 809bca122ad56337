//! bhyve's one error type. Each message is one line, printed after `bhyve: `.

use crate::bus::BusError;
use crate::devmgr::PlaceError;
use crate::fdt::FdtError;
use crate::hyp_exit;
use vmmapi::size::format_size;
use vmmapi::{Errno, HypExit, SuspendHow};

/// Why bhyve could not set up the VM, or why a vCPU stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sandbox could not be entered (or its user found).
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// No VM of that name.
    #[error("VM '{0}' does not exist (create it with bhyveload)")]
    NoVm(String),
    /// `/dev/vmmctl` is missing: no VM can exist.
    #[error("cannot open VM '{0}': the vmm module is not loaded (no /dev/vmmctl)")]
    NoModule(String),
    /// `-m` differs from the VM's memory.
    #[error("VM '{name}' has {} of memory, not {} (-m)", format_size(*have), format_size(*want))]
    MemoryMismatch {
        /// The VM.
        name: String,
        /// Its memory.
        have: u64,
        /// What `-m` asked for.
        want: u64,
    },
    /// The VM has no memory and `-m` was not given.
    #[error("VM '{0}' has no memory (load it with bhyveload, or give -m SIZE)")]
    NoMemory(String),
    /// A libvmmapi call failed; its message names the VM and the errno.
    #[error("{0}")]
    Vmm(#[from] vmmapi::Error),
    /// Guest memory where the device tree goes could not be read or written.
    #[error("cannot {op} {len} bytes of guest memory at {gpa:#x}, where the device tree goes")]
    GuestMemory {
        /// "read" or "write".
        op: &'static str,
        /// Bytes.
        len: usize,
        /// Where.
        gpa: u64,
    },
    /// bhyveload's boot parameters have their magic but do not decode.
    #[error("the boot parameters at {gpa:#x} are damaged (load the VM again with bhyveload)")]
    BadBootParams {
        /// Where they are.
        gpa: u64,
    },
    /// No random bytes for the device tree's seeds.
    #[error("cannot read /dev/urandom for the device tree's seeds: {0}")]
    Random(std::io::Error),
    /// The device tree could not be built.
    #[error("cannot build the device tree: {0}")]
    DeviceTree(FdtError),
    /// A device could not be placed.
    #[error("cannot place a device: {0}")]
    Place(#[from] PlaceError),
    /// A device's backing file cannot be opened.
    #[error("slot {slot}: cannot open '{}': {}", path.display(), io_words(err))]
    Backend {
        /// The device's slot.
        slot: u32,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The firmware or its variable store cannot be used.
    #[error("{0}")]
    Firmware(#[from] crate::firmware::FirmwareError),
    /// The variable store's file cannot be made.
    #[error("bootvars '{}': cannot create it: {}", path.display(), io_words(err))]
    VarsCreate {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// A network card's tap cannot be had.
    #[error("slot {slot}: {err}")]
    Tap {
        /// The card's slot.
        slot: u32,
        /// Why.
        err: crate::virtio::net::tap::TapError,
    },
    /// A console port's socket cannot be made.
    #[error("slot {slot}: cannot listen on '{}' for port {port}: {}", path.display(), io_words(err))]
    Socket {
        /// The console's slot.
        slot: u32,
        /// The port.
        port: String,
        /// The socket's path.
        path: std::path::PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The flash banks cannot be loaded.
    #[error("flash: {0}")]
    Flash(String),
    /// The devices' I/O machinery (eventfds, threads) could not be set up.
    #[error("cannot set up the virtio devices: {0}")]
    IoThread(std::io::Error),
    /// The console could not be set up.
    #[error("cannot set up the console: {0}")]
    Console(String),
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {}", .0.desc())]
    Signals(Errno),
    /// The thread that waits for stop signals could not be started.
    #[error("cannot start the signal thread: {0}")]
    SignalThread(std::io::Error),
    /// The guest accessed an address no device claims.
    #[error(
        "unhandled {} at {gpa:#010x} ({why}), pc {pc:#010x} on vCPU {vcpu}",
        access_words(*write, *size, *value)
    )]
    UnhandledAccess {
        /// The vCPU.
        vcpu: i32,
        /// A write (else a read).
        write: bool,
        /// Bytes.
        size: u8,
        /// The value written.
        value: u64,
        /// Where.
        gpa: u64,
        /// The guest's PC.
        pc: u64,
        /// Why the bus refused it.
        why: BusError,
    },
    /// The kernel reported an access size that does not exist.
    #[error("vCPU {vcpu}: the kernel reported an access of {size} bytes at {gpa:#010x} (pc {pc:#010x}); sizes are 1, 2, 4 or 8")]
    BadAccessSize {
        /// The vCPU.
        vcpu: i32,
        /// The size reported.
        size: u8,
        /// Where.
        gpa: u64,
        /// The guest's PC.
        pc: u64,
    },
    /// A data abort without a syndrome (ISV=0) that bhyve cannot emulate.
    #[error("vCPU {vcpu} stopped: data abort without a valid syndrome at {gpa:#010x}, pc {pc:#010x}: {why} (ESR {esr:#010x})")]
    NoSyndrome {
        /// The vCPU.
        vcpu: i32,
        /// The guest's PC.
        pc: u64,
        /// The faulting guest physical address.
        gpa: u64,
        /// ESR_EL2 of the exit.
        esr: u64,
        /// What the instruction is, or why it could not be read.
        why: String,
    },
    /// An exit nothing could handle (`HYP`).
    #[error("{}", hyp_exit::describe(*vcpu, *pc, exit))]
    Hyp {
        /// The vCPU.
        vcpu: i32,
        /// The guest's PC.
        pc: u64,
        /// What the kernel reported.
        exit: HypExit,
    },
    /// An exit code bhyve does not handle yet.
    #[error("vCPU {vcpu} stopped: exit code {code} ({}) that bhyve does not handle, pc {pc:#010x}", hyp_exit::exit_code_name(*code))]
    UnhandledExit {
        /// The vCPU.
        vcpu: i32,
        /// The exit code.
        code: u32,
        /// The guest's PC.
        pc: u64,
    },
    /// A vCPU's thread could not be started.
    #[error("cannot start a thread for vCPU {vcpu}: {err}")]
    Thread {
        /// The vCPU.
        vcpu: usize,
        /// Why.
        err: std::io::Error,
    },
    /// A vCPU's thread panicked (a bug in bhyve).
    #[error("vCPU {vcpu}: bhyve's thread for it panicked")]
    Panicked {
        /// The vCPU.
        vcpu: usize,
    },
    /// A `SUSPENDED` exit with a reason bhyve has no exit status for.
    #[error("vCPU {vcpu} stopped: the VM was suspended for no known reason ({how:?})")]
    UnexpectedSuspend {
        /// The vCPU.
        vcpu: i32,
        /// The reason given.
        how: SuspendHow,
    },
}

/// An I/O error in words, without Rust's "(os error N)".
fn io_words(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// `read of 8 bytes`, `write of 1 byte (0x41)`.
fn access_words(write: bool, size: u8, value: u64) -> String {
    let bytes = if size == 1 { "byte" } else { "bytes" };
    if write {
        format!("write of {size} {bytes} ({value:#x})")
    } else {
        format!("read of {size} {bytes}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(Error::NoVm("g".into()).to_string(), "VM 'g' does not exist (create it with bhyveload)");
        let e = Error::UnhandledAccess {
            vcpu: 0,
            write: false,
            size: 8,
            value: 0,
            gpa: 0x4400_0000,
            pc: 0x4000_0123,
            why: BusError::NoDevice,
        };
        assert_eq!(e.to_string(), "unhandled read of 8 bytes at 0x44000000 (no device there), pc 0x40000123 on vCPU 0");
        let e = Error::UnhandledAccess {
            vcpu: 31,
            write: true,
            size: 1,
            value: 0x41,
            gpa: 0x1000,
            pc: 0x4000_0000,
            why: BusError::NoDevice,
        };
        assert_eq!(
            e.to_string(),
            "unhandled write of 1 byte (0x41) at 0x00001000 (no device there), pc 0x40000000 on vCPU 31"
        );
        let e = Error::MemoryMismatch { name: "g".into(), have: 128 << 20, want: 64 << 20 };
        assert_eq!(e.to_string(), "VM 'g' has 128M of memory, not 64M (-m)");
        assert_eq!(Error::Signals(Errno::EINVAL).to_string(), "cannot install signal handlers: Invalid argument");
    }
}
