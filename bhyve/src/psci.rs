//! PSCI 1.0 (Arm DEN 0022) over HVC: what the guest asked, as a decision for
//! the vCPU loop. Pure: it sees the function id, the arguments and the VM's
//! shape ([`Platform`]), never a vCPU; who is on is the caller's business
//! (`power.rs`), and the caller turns a [`Call`] into an answer.
//!
//! The functions are one table; adding one is a line there, and a [`Call`]
//! variant if the loop must act on it.

/// PSCI return code: success.
pub const SUCCESS: u64 = 0;
/// PSCI return code: the function is not implemented.
pub const NOT_SUPPORTED: u64 = -1i64 as u64;
/// PSCI return code: a bad argument (an MPIDR that is no vCPU, an affinity
/// level bhyve does not track).
pub const INVALID_PARAMETERS: u64 = -2i64 as u64;
/// PSCI return code: `CPU_ON` of a vCPU that is on.
pub const ALREADY_ON: u64 = -4i64 as u64;
/// PSCI return code: `CPU_ON` of a vCPU that is being turned on.
pub const ON_PENDING: u64 = -5i64 as u64;
/// PSCI return code: `CPU_ON` with an entry point that is not code in RAM.
pub const INVALID_ADDRESS: u64 = -9i64 as u64;
/// What `PSCI_VERSION` answers: 1.0 (major in bits 31:16).
pub const VERSION_1_0: u64 = 0x1_0000;
/// What `MIGRATE_INFO_TYPE` answers: no Trusted OS, nothing to migrate.
pub const NO_TRUSTED_OS: u64 = 2;

/// Function ids. Bit 30 set: the SMC64 calling convention.
pub mod func {
    /// `PSCI_VERSION`.
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    /// `CPU_OFF`.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// `CPU_ON`, SMC32: entry point and context id are 32-bit.
    pub const CPU_ON_32: u32 = 0x8400_0003;
    /// `CPU_ON`, SMC64.
    pub const CPU_ON_64: u32 = 0xC400_0003;
    /// `AFFINITY_INFO`, SMC32.
    pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
    /// `AFFINITY_INFO`, SMC64.
    pub const AFFINITY_INFO_64: u32 = 0xC400_0004;
    /// `MIGRATE_INFO_TYPE`.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// `SYSTEM_OFF`.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// `SYSTEM_RESET`.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// `PSCI_FEATURES` (mandatory from PSCI 1.0).
    pub const PSCI_FEATURES: u32 = 0x8400_000A;
    /// `SMCCC_VERSION` (SMCCC 1.1): answered by the kernel module, which
    /// implements SMCCC 1.1; listed here so that `PSCI_FEATURES` reports it, as
    /// SMCCC 1.1 requires of a caller that wants to discover it.
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
}

/// `SMCCC_VERSION`'s answer: 1.1 (the kernel module gives the same).
const SMCCC_VERSION_1_1: u64 = 0x1_0001;

/// The SMC64 bit of a function id.
const SMC64: u32 = 1 << 30;

/// The affinity fields of an MPIDR (Aff3 in 39:32, Aff2..Aff0 in 23:0). The
/// other bits (RES1 bit 31, U, MT) say nothing about which CPU is meant and
/// are ignored, as KVM does: a guest may pass its MPIDR_EL1 as read. The
/// device tree's `cpu` nodes give these bits as `reg`.
pub const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

/// What PSCI needs to know of the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// vCPUs (`-c`), numbered from 0.
    pub vcpus: usize,
    /// First byte of guest RAM.
    pub ram_base: u64,
    /// Bytes of guest RAM.
    pub ram_size: u64,
}

impl Platform {
    /// The MPIDR the kernel gives vCPU `id`: Aff0 = id mod 16, Aff1 = id / 16.
    pub fn mpidr_of(id: usize) -> u64 {
        1 << 31 | (id as u64 & 0xf) | ((id as u64 >> 4) & 0xff) << 8
    }

    /// The vCPU whose affinity fields are those of `mpidr`, if there is one.
    pub fn vcpu_of(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & MPIDR_AFFINITY;
        let (aff0, aff1) = (aff & 0xff, (aff >> 8) & 0xff);
        // Aff2 and Aff3 are 0 on every vCPU; Aff0 counts to 15 only.
        if aff >> 16 != 0 || aff0 >= 16 {
            return None;
        }
        let id = (aff1 * 16 + aff0) as usize;
        (id < self.vcpus).then_some(id)
    }

    /// Whether a vCPU may start at `entry`: an instruction in RAM.
    fn is_entry_point(&self, entry: u64) -> bool {
        entry & 3 == 0 && entry >= self.ram_base && entry - self.ram_base < self.ram_size
    }
}

/// A vCPU's power state, as `AFFINITY_INFO` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// Running guest code.
    On,
    /// Off: its thread waits for a `CPU_ON`.
    Off,
    /// Turned on by a `CPU_ON`, not yet running.
    OnPending,
}

impl PowerState {
    /// `AFFINITY_INFO`'s answer: ON 0, OFF 1, ON_PENDING 2.
    pub fn affinity_info(self) -> u64 {
        match self {
            PowerState::On => 0,
            PowerState::Off => 1,
            PowerState::OnPending => 2,
        }
    }
}

/// Why a `CPU_ON` that PSCI found well-formed was refused: the target is not off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuOnRefused {
    /// It is on.
    AlreadyOn,
    /// It is being turned on.
    OnPending,
}

/// `CPU_ON`'s answer once the power states have had their say.
pub fn cpu_on_result(r: Result<(), CpuOnRefused>) -> u64 {
    match r {
        Ok(()) => SUCCESS,
        Err(CpuOnRefused::AlreadyOn) => ALREADY_ON,
        Err(CpuOnRefused::OnPending) => ON_PENDING,
    }
}

/// What a call asks of bhyve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Answer with this in x0 and run on (x1..x3 stay the guest's, as
    /// SMCCC 1.1 wants for functions returning one value).
    Return(u64),
    /// Turn vCPU `target` on at `entry` with `context_id` in x0, if it is
    /// off; answer with [`cpu_on_result`]. Target and entry are checked.
    CpuOn {
        /// The vCPU, one of the VM's.
        target: usize,
        /// Its first PC: 4-byte aligned, in RAM.
        entry: u64,
        /// Its x0.
        context_id: u64,
    },
    /// Turn the calling vCPU off; no answer, it does not come back.
    CpuOff,
    /// Answer with [`PowerState::affinity_info`] of vCPU `target` (one of the VM's).
    AffinityInfo {
        /// The vCPU.
        target: usize,
    },
    /// Power the machine off.
    SystemOff,
    /// Reset the machine.
    SystemReset,
}

/// A function: its arguments x1..x7 (for SMC32 functions, their low
/// halves) and the VM, to a decision.
type Handler = fn(&[u64; 7], &Platform) -> Call;

/// The functions bhyve implements: id, name, handler.
const FUNCTIONS: &[(u32, &str, Handler)] = &[
    (func::PSCI_VERSION, "PSCI_VERSION", |_, _| Call::Return(VERSION_1_0)),
    (func::CPU_OFF, "CPU_OFF", |_, _| Call::CpuOff),
    (func::CPU_ON_32, "CPU_ON", cpu_on),
    (func::CPU_ON_64, "CPU_ON", cpu_on),
    (func::AFFINITY_INFO_32, "AFFINITY_INFO", affinity_info),
    (func::AFFINITY_INFO_64, "AFFINITY_INFO", affinity_info),
    (func::MIGRATE_INFO_TYPE, "MIGRATE_INFO_TYPE", |_, _| Call::Return(NO_TRUSTED_OS)),
    (func::SYSTEM_OFF, "SYSTEM_OFF", |_, _| Call::SystemOff),
    (func::SYSTEM_RESET, "SYSTEM_RESET", |_, _| Call::SystemReset),
    (func::PSCI_FEATURES, "PSCI_FEATURES", features),
    (func::SMCCC_VERSION, "SMCCC_VERSION", |_, _| Call::Return(SMCCC_VERSION_1_1)),
];

fn lookup(id: u64) -> Option<&'static (u32, &'static str, Handler)> {
    // SMCCC passes the function id in w0: the upper half of x0 is not part of it.
    FUNCTIONS.iter().find(|(f, _, _)| *f == id as u32)
}

/// `CPU_ON(target_cpu, entry_point_address, context_id)`. The target and
/// the address are checked here, in PSCI's order (parameters, then
/// address); whether the target is off is for the caller.
fn cpu_on(args: &[u64; 7], p: &Platform) -> Call {
    let [mpidr, entry, context_id, ..] = *args;
    match p.vcpu_of(mpidr) {
        None => Call::Return(INVALID_PARAMETERS),
        Some(_) if !p.is_entry_point(entry) => Call::Return(INVALID_ADDRESS),
        Some(target) => Call::CpuOn { target, entry, context_id },
    }
}

/// `AFFINITY_INFO(target_affinity, lowest_affinity_level)`: level 0 only,
/// the level of single vCPUs (PSCI 1.0 makes the others optional).
fn affinity_info(args: &[u64; 7], p: &Platform) -> Call {
    let [mpidr, level, ..] = *args;
    match p.vcpu_of(mpidr) {
        Some(target) if level == 0 => Call::AffinityInfo { target },
        _ => Call::Return(INVALID_PARAMETERS),
    }
}

/// `PSCI_FEATURES(x1)`: 0 for the functions in the table (the PSCI ones and
/// `SMCCC_VERSION`), else NOT_SUPPORTED.
fn features(args: &[u64; 7], _: &Platform) -> Call {
    Call::Return(match lookup(args[0]) {
        Some(_) => SUCCESS,
        None => NOT_SUPPORTED,
    })
}

/// Decides a call of function `func_id` with x1..x7 in `args`.
pub fn handle(func_id: u64, args: &[u64; 7], platform: &Platform) -> Call {
    match lookup(func_id) {
        Some(&(id, _, handler)) => {
            // SMC32 arguments are w1..w7: the upper halves are not the caller's.
            let args = if id & SMC64 == 0 { args.map(|a| a as u32 as u64) } else { *args };
            handler(&args, platform)
        }
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
    const RAM: u64 = 0x4000_0000;
    /// 4 vCPUs, 64 MiB of RAM.
    const P: Platform = Platform { vcpus: 4, ram_base: RAM, ram_size: 64 << 20 };

    fn call(id: u64, args: &[u64]) -> Call {
        let mut a = [0u64; 7];
        a[..args.len()].copy_from_slice(args);
        handle(id, &a, &P)
    }

    #[test]
    fn version_is_1_0() {
        assert_eq!(handle(0x8400_0000, &NO_ARGS, &P), Call::Return(0x10000));
        assert_eq!(name(0x8400_0000), Some("PSCI_VERSION"));
    }

    #[test]
    fn return_codes_are_64_bit_twos_complement() {
        assert_eq!(NOT_SUPPORTED, u64::MAX);
        assert_eq!(INVALID_PARAMETERS, 0xffff_ffff_ffff_fffe);
        assert_eq!(ALREADY_ON, 0xffff_ffff_ffff_fffc);
        assert_eq!(ON_PENDING, 0xffff_ffff_ffff_fffb);
        assert_eq!(INVALID_ADDRESS, 0xffff_ffff_ffff_fff7);
    }

    #[test]
    fn system_off_and_reset() {
        assert_eq!(handle(0x8400_0008, &NO_ARGS, &P), Call::SystemOff);
        assert_eq!(handle(0x8400_0009, &NO_ARGS, &P), Call::SystemReset);
        assert_eq!(handle(0xffff_ffff_8400_0008, &NO_ARGS, &P), Call::SystemOff, "only w0 counts");
    }

    #[test]
    fn anything_else_is_not_supported() {
        // CPU_SUSPEND, CPU_OFF as SMC64 (no such function), MIGRATE, SMCCC_ARCH_FEATURES...
        for id in [0x8400_0001, 0xC400_0001, 0xC400_0002, 0x8400_0005, 0xC400_0006, 0x8400_000B, 0x8000_0001, 0] {
            assert_eq!(handle(id, &NO_ARGS, &P), Call::Return(NOT_SUPPORTED), "{id:#x}");
        }
        assert_eq!(handle(u64::MAX, &NO_ARGS, &P), Call::Return(NOT_SUPPORTED));
        assert_eq!(name(0xC400_0002), None);
    }

    #[test]
    fn features_lists_the_table() {
        let q = |f: u64| call(0x8400_000A, &[f]);
        for f in [
            0x8400_0000,
            0x8400_0002,
            0x8400_0003,
            0xC400_0003,
            0x8400_0004,
            0xC400_0004,
            0x8400_0006,
            0x8400_0008,
            0x8400_0009,
            0x8400_000A,
        ] {
            assert_eq!(q(f), Call::Return(SUCCESS), "{f:#x}");
        }
        assert_eq!(q(0x8400_0001), Call::Return(NOT_SUPPORTED), "CPU_SUSPEND");
        assert_eq!(q(0x8000_0000), Call::Return(SUCCESS), "SMCCC 1.1: PSCI_FEATURES reports SMCCC_VERSION");
        assert_eq!(q(0x8000_0001), Call::Return(NOT_SUPPORTED), "SMCCC_ARCH_FEATURES is found through SMCCC_VERSION");
        assert_eq!(handle(0x8000_0000, &NO_ARGS, &P), Call::Return(0x1_0001), "SMCCC_VERSION: 1.1");
        assert_eq!(q(0x1_8400_0002), Call::Return(SUCCESS), "w1 only: PSCI_FEATURES is SMC32");
    }

    #[test]
    fn mpidrs_are_the_kernels() {
        assert_eq!(Platform::mpidr_of(0), 0x8000_0000);
        assert_eq!(Platform::mpidr_of(15), 0x8000_000f);
        assert_eq!(Platform::mpidr_of(16), 0x8000_0100);
        assert_eq!(Platform::mpidr_of(31), 0x8000_010f);
        let all = Platform { vcpus: 32, ..P };
        for id in 0..32 {
            assert_eq!(all.vcpu_of(Platform::mpidr_of(id)), Some(id));
            assert_eq!(all.vcpu_of(Platform::mpidr_of(id) & 0xffff), Some(id), "bit 31 is not affinity");
        }
        assert_eq!(all.vcpu_of(1 << 30 | 1 << 24 | 3), Some(3), "U and MT are not affinity");
        assert_eq!(all.vcpu_of(0x10), None, "Aff0 counts to 15");
        assert_eq!(all.vcpu_of(0x200), None, "Aff1 = 2: vCPU 32");
        assert_eq!(all.vcpu_of(0x1_0000), None, "Aff2");
        assert_eq!(all.vcpu_of(0x1_0000_0000), None, "Aff3");
        assert_eq!(all.vcpu_of(1 << 40), Some(0), "bits above Aff3 are not affinity");
        assert_eq!(P.vcpu_of(0x8000_0003), Some(3));
        assert_eq!(P.vcpu_of(0x8000_0004), None, "only 4 vCPUs");
        assert_eq!(P.vcpu_of(0x100), None);
    }

    #[test]
    fn cpu_on_smc64() {
        assert_eq!(
            call(0xC400_0003, &[0x8000_0002, RAM + 0x8_0000, 0x1234_5678_9abc_def0]),
            Call::CpuOn { target: 2, entry: RAM + 0x8_0000, context_id: 0x1234_5678_9abc_def0 }
        );
        assert_eq!(name(0xC400_0003), Some("CPU_ON"));
        // The checks, parameters first.
        assert_eq!(call(0xC400_0003, &[4, RAM]), Call::Return(INVALID_PARAMETERS), "vCPU 4 of 4");
        assert_eq!(call(0xC400_0003, &[0x1_0001, RAM]), Call::Return(INVALID_PARAMETERS), "Aff2");
        assert_eq!(call(0xC400_0003, &[0x1_0000_0001, RAM]), Call::Return(INVALID_PARAMETERS), "Aff3");
        assert_eq!(call(0xC400_0003, &[4, 2]), Call::Return(INVALID_PARAMETERS), "before the address");
        for entry in [RAM + 2, RAM + 1, RAM - 4, 0, RAM + (64 << 20), !3, 0x1_4000_0000] {
            assert_eq!(call(0xC400_0003, &[1, entry]), Call::Return(INVALID_ADDRESS), "{entry:#x}");
        }
        let last = RAM + (64 << 20) - 4;
        assert_eq!(call(0xC400_0003, &[1, last]), Call::CpuOn { target: 1, entry: last, context_id: 0 });
    }

    #[test]
    fn cpu_on_smc32_takes_the_low_halves() {
        assert_eq!(
            call(0x8400_0003, &[0xdead_0000_8000_0001, 0xffff_ffff_4000_1000, 0xffff_ffff_8765_4321]),
            Call::CpuOn { target: 1, entry: 0x4000_1000, context_id: 0x8765_4321 }
        );
        // Only the low half of x1 either: Aff3 cannot be named.
        assert_eq!(call(0x8400_0003, &[0x1_0000_0001, RAM, 0]), Call::CpuOn { target: 1, entry: RAM, context_id: 0 });
        assert_eq!(call(0x8400_0003, &[1, 0x1_0000_0000 | 8]), Call::Return(INVALID_ADDRESS), "entry 8");
    }

    #[test]
    fn cpu_off_and_migrate_info_type() {
        assert_eq!(call(0x8400_0002, &[]), Call::CpuOff);
        assert_eq!(call(0x8400_0006, &[]), Call::Return(2));
    }

    #[test]
    fn affinity_info() {
        for id in [0x8400_0004, 0xC400_0004] {
            assert_eq!(call(id, &[0x8000_0003, 0]), Call::AffinityInfo { target: 3 }, "{id:#x}");
            assert_eq!(call(id, &[3, 1]), Call::Return(INVALID_PARAMETERS), "level 1");
            assert_eq!(call(id, &[3, 3]), Call::Return(INVALID_PARAMETERS), "level 3");
            assert_eq!(call(id, &[4, 0]), Call::Return(INVALID_PARAMETERS), "no vCPU 4");
            assert_eq!(call(id, &[0x100, 0]), Call::Return(INVALID_PARAMETERS), "no vCPU 16");
        }
        assert_eq!(
            call(0x8400_0004, &[0xffff_ffff_0000_0001, 0xffff_ffff_0000_0000]),
            Call::AffinityInfo { target: 1 }
        );
        assert_eq!(call(0xC400_0004, &[0xffff_ffff_0000_0001, 0]), Call::Return(INVALID_PARAMETERS));
        assert_eq!([PowerState::On, PowerState::Off, PowerState::OnPending].map(PowerState::affinity_info), [0, 1, 2]);
    }

    #[test]
    fn cpu_on_answers() {
        assert_eq!(cpu_on_result(Ok(())), 0);
        assert_eq!(cpu_on_result(Err(CpuOnRefused::AlreadyOn)), -4i64 as u64);
        assert_eq!(cpu_on_result(Err(CpuOnRefused::OnPending)), -5i64 as u64);
    }
}
