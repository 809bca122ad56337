//! PSCI (Arm DEN 0022) over HVC: what the guest asked, as a decision for the
//! vCPU loop. Pure: it sees the function id and arguments, never a vCPU.
//!
//! The functions are one table; adding one (`CPU_ON`, `CPU_OFF`, ...) is a
//! line there and a [`Call`] variant for the loop to act on.

/// PSCI return code: the function is not implemented.
pub const NOT_SUPPORTED: u64 = -1i64 as u64;
/// PSCI return code: success.
pub const SUCCESS: u64 = 0;
/// What `PSCI_VERSION` answers: 1.0 (major in bits 31:16).
pub const VERSION_1_0: u64 = 0x1_0000;

/// Function ids (SMC32 calling convention).
pub mod func {
    /// `PSCI_VERSION`.
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    /// `SYSTEM_OFF`.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// `SYSTEM_RESET`.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// `PSCI_FEATURES` (mandatory from PSCI 1.0).
    pub const PSCI_FEATURES: u32 = 0x8400_000A;
}

/// What a call asks of bhyve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Answer with this in x0 and run on (x1..x3 stay the guest's, as
    /// SMCCC 1.1 wants for functions returning one value).
    Return(u64),
    /// Power the machine off.
    SystemOff,
    /// Reset the machine.
    SystemReset,
}

type Handler = fn(&[u64; 7]) -> Call;

/// The functions bhyve implements: id, name, handler.
const FUNCTIONS: &[(u32, &str, Handler)] = &[
    (func::PSCI_VERSION, "PSCI_VERSION", |_| Call::Return(VERSION_1_0)),
    (func::SYSTEM_OFF, "SYSTEM_OFF", |_| Call::SystemOff),
    (func::SYSTEM_RESET, "SYSTEM_RESET", |_| Call::SystemReset),
    (func::PSCI_FEATURES, "PSCI_FEATURES", features),
];

fn lookup(id: u64) -> Option<&'static (u32, &'static str, Handler)> {
    // SMCCC passes the function id in w0: the upper half of x0 is not part of it.
    FUNCTIONS.iter().find(|(f, _, _)| *f == id as u32)
}

/// `PSCI_FEATURES(x1)`: 0 for the functions in the table, else NOT_SUPPORTED.
fn features(args: &[u64; 7]) -> Call {
    Call::Return(match lookup(args[0]) {
        Some(_) => SUCCESS,
        None => NOT_SUPPORTED,
    })
}

/// Decides a call of function `func_id` with x1..x7 in `args`.
pub fn handle(func_id: u64, args: &[u64; 7]) -> Call {
    match lookup(func_id) {
        Some((_, _, handler)) => handler(args),
        None => Call::Return(NOT_SUPPORTED),
    }
}

/// The function's name, for messages.
pub fn name(func_id: u64) -> Option<&'static str> {
    lookup(func_id).map(|(_, n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_ARGS: [u64; 7] = [0; 7];

    #[test]
    fn version_is_1_0() {
        assert_eq!(handle(0x8400_0000, &NO_ARGS), Call::Return(0x10000));
        assert_eq!(name(0x8400_0000), Some("PSCI_VERSION"));
    }

    #[test]
    fn system_off_and_reset() {
        assert_eq!(handle(0x8400_0008, &NO_ARGS), Call::SystemOff);
        assert_eq!(handle(0x8400_0009, &NO_ARGS), Call::SystemReset);
        assert_eq!(handle(0xffff_ffff_8400_0008, &NO_ARGS), Call::SystemOff, "only w0 counts");
    }

    #[test]
    fn anything_else_is_not_supported() {
        assert_eq!(NOT_SUPPORTED, u64::MAX);
        for id in [0x8400_0001, 0xC400_0003, 0x8400_0002, 0x8000_0000, 0, u64::MAX, 0x1_8400_0000 | 1 << 30] {
            assert_eq!(handle(id, &NO_ARGS), Call::Return(NOT_SUPPORTED), "{id:#x}");
        }
        assert_eq!(name(0xC400_0003), None);
    }

    #[test]
    fn features_lists_the_table() {
        let q = |f: u64| handle(0x8400_000A, &[f, 0, 0, 0, 0, 0, 0]);
        assert_eq!(q(0x8400_0000), Call::Return(SUCCESS));
        assert_eq!(q(0x8400_0008), Call::Return(SUCCESS));
        assert_eq!(q(0x8400_000A), Call::Return(SUCCESS));
        assert_eq!(q(0xC400_0003), Call::Return(NOT_SUPPORTED), "CPU_ON: not yet");
        assert_eq!(q(0x8000_0000), Call::Return(NOT_SUPPORTED), "SMCCC_VERSION");
    }
}
