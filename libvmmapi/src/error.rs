//! libvmmapi's one error type: what failed, on which VM, and the errno.

use nix::errno::Errno;

/// Result of libvmmapi calls.
pub type Result<T> = std::result::Result<T, Error>;

/// A failed libvmmapi call. The message names the VM and the errno in words.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/dev/vmmctl` could not be opened.
    #[error("cannot open /dev/vmmctl: {}{}", desc(*errno), if *errno == Errno::ENOENT { " (is the vmm module loaded?)" } else { "" })]
    Control {
        /// Why.
        errno: Errno,
    },
    /// `VMMCTL_VM_CREATE` failed.
    #[error("cannot create VM '{name}': {}{}", desc(*errno), hint(*errno))]
    Create {
        /// The VM.
        name: String,
        /// Why.
        errno: Errno,
    },
    /// `VMMCTL_VM_DESTROY` failed.
    #[error("cannot destroy VM '{name}': {}{}", desc(*errno), hint(*errno))]
    Destroy {
        /// The VM.
        name: String,
        /// Why.
        errno: Errno,
    },
    /// `/dev/vmm/NAME` could not be opened.
    #[error("cannot open VM '{name}': {}{}", desc(*errno), if *errno == Errno::ENOENT { " (no such VM)" } else { "" })]
    Open {
        /// The VM.
        name: String,
        /// Why.
        errno: Errno,
    },
    /// `/dev/vmm` could not be read.
    #[error("cannot list VMs: {}", desc(*errno))]
    List {
        /// Why.
        errno: Errno,
    },
    /// An operation on a VM failed.
    #[error("VM '{name}': cannot {op}: {}", desc(*errno))]
    Vm {
        /// The VM.
        name: String,
        /// What was tried.
        op: &'static str,
        /// Why.
        errno: Errno,
    },
    /// An operation on a vCPU failed.
    #[error("VM '{name}' vCPU {vcpu}: cannot {op}: {}{}", desc(*errno), vcpu_hint(*errno))]
    Vcpu {
        /// The VM.
        name: String,
        /// The vCPU.
        vcpu: i32,
        /// What was tried.
        op: &'static str,
        /// Why.
        errno: Errno,
    },
    /// Setting up or reading guest memory failed.
    #[error("VM '{name}': guest memory{}: {}{}", if *len > 0 { format!(" of {len} bytes") } else { String::new() }, desc(*errno), mem_hint(*errno))]
    Memory {
        /// The VM.
        name: String,
        /// The size asked for, if any.
        len: u64,
        /// Why.
        errno: Errno,
    },
    /// `VMMCTL_GET_HYP_STATUS` failed.
    #[error("cannot read the EL2 status: {}", desc(*errno))]
    HypStatus {
        /// Why.
        errno: Errno,
    },
}

impl Error {
    /// The errno behind the error.
    pub fn errno(&self) -> Errno {
        match self {
            Error::Control { errno }
            | Error::Create { errno, .. }
            | Error::Destroy { errno, .. }
            | Error::Open { errno, .. }
            | Error::List { errno }
            | Error::HypStatus { errno }
            | Error::Vm { errno, .. }
            | Error::Vcpu { errno, .. }
            | Error::Memory { errno, .. } => *errno,
        }
    }
}

/// "EEXIST: File exists": the symbol users search for and the words.
fn desc(e: Errno) -> String {
    format!("{e:?}: {}", e.desc())
}

fn vcpu_hint(e: Errno) -> &'static str {
    match e {
        Errno::EBUSY => " (the vCPU is running)",
        Errno::ENXIO => " (the VM was destroyed)",
        _ => "",
    }
}

fn mem_hint(e: Errno) -> &'static str {
    match e {
        Errno::ENOMEM => " (more than the host can give)",
        Errno::EEXIST => " (the VM already has memory)",
        _ => "",
    }
}

fn hint(e: Errno) -> &'static str {
    match e {
        Errno::EINVAL => " (a name is 1 to 31 printable ASCII characters, without '/')",
        Errno::ENOSPC => " (the module's max_vms limit is reached)",
        Errno::ENOENT => " (no such VM)",
        Errno::EEXIST => " (a VM of that name exists)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_vm_and_the_errno() {
        let e = Error::Create { name: "a".into(), errno: Errno::EEXIST };
        assert_eq!(e.to_string(), "cannot create VM 'a': EEXIST: File exists (a VM of that name exists)");
        let e = Error::Destroy { name: "zz".into(), errno: Errno::ENOENT };
        assert_eq!(e.to_string(), "cannot destroy VM 'zz': ENOENT: No such file or directory (no such VM)");
        let e = Error::Control { errno: Errno::EACCES };
        assert_eq!(e.to_string(), "cannot open /dev/vmmctl: EACCES: Permission denied");
        assert_eq!(e.errno(), Errno::EACCES);
    }
}
