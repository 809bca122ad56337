//! Proof that bhyve's own FP/SIMD state survives running the guest (used with
//! `-o testdev`, for the `fp` test).
//!
//! Each `VM_RUN` is issued from inline assembly (`svc #0`) with v0..v31 loaded
//! from a pattern that changes every run, FPCR set to a non-default rounding
//! mode and FPSR.QC set; right after the call the registers are stored and
//! compared with what went in. The guest runs in between with its own FP
//! state, so any register the kernel fails to save and restore shows as a
//! mismatch. The compiler cannot help or hide anything here: the values live
//! only in the registers across the call.
//!
//! The comparison is plain Rust, tested on any host; only [`FpCheck::run`] is
//! arm64-specific.

/// FPCR during the check: RMode (bits 23:22) = 0b01, round towards plus
/// infinity; FZ (bit 24) and DN (bit 25) clear, so host arithmetic stays IEEE.
pub const FPCR_TEST: u64 = 0b01 << 22;
/// FPSR during the check: QC (bit 27), the saturation flag, set.
pub const FPSR_TEST: u64 = 1 << 27;

/// The 32 SIMD registers, as stored by `stp q`.
pub type VRegs = [u128; 32];

/// A pattern for run number `seed`: every register different, every run
/// different, no register zero (a zeroed register must not pass).
pub fn pattern(seed: u64) -> VRegs {
    // splitmix64: cheap and well mixed.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED_F00D_0000_0000;
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut v = [0u128; 32];
    for (i, r) in v.iter_mut().enumerate() {
        *r = ((next() as u128) << 64 | next() as u128) | 1 << i;
    }
    v
}

/// Registers that did not survive: each differing v register, FPCR and
/// FPSR count one.
pub fn mismatches(expected: &VRegs, got: &VRegs, fpcr: u64, fpsr: u64) -> u64 {
    let v = expected.iter().zip(got).filter(|(a, b)| a != b).count() as u64;
    v + (fpcr != FPCR_TEST) as u64 + (fpsr != FPSR_TEST) as u64
}

/// The FP check's state: run count and mismatches so far.
#[derive(Debug, Default)]
pub struct FpCheck {
    // Counts runs, which seeds each run's pattern (arm64 only).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    runs: u64,
    mismatches: u64,
}

impl FpCheck {
    /// A check, where the architecture has one (arm64 only).
    pub fn new() -> Option<Self> {
        cfg!(target_arch = "aarch64").then(Self::default)
    }

    /// Register mismatches seen so far.
    pub fn mismatches(&self) -> u64 {
        self.mismatches
    }

    /// Issues `VM_RUN` on `fd` with `run` as its argument, checking the FP
    /// registers around it. Returns the syscall's result: 0, or a negative
    /// errno.
    #[cfg(target_arch = "aarch64")]
    pub fn run(&mut self, fd: std::os::fd::RawFd, run: &mut vmm_uapi::VmRun) -> i64 {
        self.runs += 1;
        let load = pattern(self.runs);
        let mut store: VRegs = [0; 32];
        let ret: i64;
        let fpcr_after: u64;
        let fpsr_after: u64;
        // SAFETY: this is the ioctl(2) system call (number 29 on arm64) on
        // an open VM's fd with `run`, a live, exclusively borrowed VmRun of
        // the size VM_RUN encodes, which the kernel reads and writes. `load`
        // and `store` are 512-byte arrays read and written by ldp/stp. Every
        // v register is declared clobbered; general registers the syscall
        // could change (x0) are outputs; FPCR and FPSR are put back as they
        // were before the block ends. No stack is used.
        unsafe {
            core::arch::asm!(
                "mrs {saved_fpcr}, fpcr",
                "mrs {saved_fpsr}, fpsr",
                "ldp q0, q1, [{load}, #0]",
                "ldp q2, q3, [{load}, #32]",
                "ldp q4, q5, [{load}, #64]",
                "ldp q6, q7, [{load}, #96]",
                "ldp q8, q9, [{load}, #128]",
                "ldp q10, q11, [{load}, #160]",
                "ldp q12, q13, [{load}, #192]",
                "ldp q14, q15, [{load}, #224]",
                "ldp q16, q17, [{load}, #256]",
                "ldp q18, q19, [{load}, #288]",
                "ldp q20, q21, [{load}, #320]",
                "ldp q22, q23, [{load}, #352]",
                "ldp q24, q25, [{load}, #384]",
                "ldp q26, q27, [{load}, #416]",
                "ldp q28, q29, [{load}, #448]",
                "ldp q30, q31, [{load}, #480]",
                "msr fpcr, {test_fpcr}",
                "msr fpsr, {test_fpsr}",
                "svc #0",
                "mrs {fpcr_after}, fpcr",
                "mrs {fpsr_after}, fpsr",
                "stp q0, q1, [{store}, #0]",
                "stp q2, q3, [{store}, #32]",
                "stp q4, q5, [{store}, #64]",
                "stp q6, q7, [{store}, #96]",
                "stp q8, q9, [{store}, #128]",
                "stp q10, q11, [{store}, #160]",
                "stp q12, q13, [{store}, #192]",
                "stp q14, q15, [{store}, #224]",
                "stp q16, q17, [{store}, #256]",
                "stp q18, q19, [{store}, #288]",
                "stp q20, q21, [{store}, #320]",
                "stp q22, q23, [{store}, #352]",
                "stp q24, q25, [{store}, #384]",
                "stp q26, q27, [{store}, #416]",
                "stp q28, q29, [{store}, #448]",
                "stp q30, q31, [{store}, #480]",
                "msr fpcr, {saved_fpcr}",
                "msr fpsr, {saved_fpsr}",
                load = in(reg) load.as_ptr(),
                store = in(reg) store.as_mut_ptr(),
                test_fpcr = in(reg) FPCR_TEST,
                test_fpsr = in(reg) FPSR_TEST,
                // Plain outs: never share a register with an input, so they
                // cannot overwrite `store` or the test values.
                saved_fpcr = out(reg) _,
                saved_fpsr = out(reg) _,
                fpcr_after = out(reg) fpcr_after,
                fpsr_after = out(reg) fpsr_after,
                inlateout("x0") fd as i64 => ret,
                in("x1") vmm_uapi::VM_RUN as u64,
                in("x2") run as *mut vmm_uapi::VmRun,
                in("x8") 29u64,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v8") _, out("v9") _, out("v10") _, out("v11") _,
                out("v12") _, out("v13") _, out("v14") _, out("v15") _,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _,
                out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                out("v24") _, out("v25") _, out("v26") _, out("v27") _,
                out("v28") _, out("v29") _, out("v30") _, out("v31") _,
                options(nostack),
            );
        }
        self.mismatches += mismatches(&load, &store, fpcr_after, fpsr_after);
        ret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_differ_by_register_and_run() {
        let a = pattern(1);
        let b = pattern(2);
        assert!(a.iter().all(|&r| r != 0));
        for i in 0..32 {
            assert_ne!(a[i], b[i], "run to run");
            for j in i + 1..32 {
                assert_ne!(a[i], a[j], "register to register");
            }
        }
        assert_eq!(pattern(7), pattern(7));
    }

    #[test]
    fn counts_each_register_that_changed() {
        let p = pattern(3);
        assert_eq!(mismatches(&p, &p, FPCR_TEST, FPSR_TEST), 0);
        let mut q = p;
        q[0] ^= 1;
        q[31] = 0;
        assert_eq!(mismatches(&p, &q, FPCR_TEST, FPSR_TEST), 2);
        assert_eq!(mismatches(&p, &p, 0, FPSR_TEST), 1, "FPCR back at its default");
        assert_eq!(mismatches(&p, &p, FPCR_TEST, 0), 1, "QC lost");
        assert_eq!(mismatches(&p, &[0; 32], 0, 0), 34);
    }

    #[test]
    fn test_values() {
        assert_eq!((FPCR_TEST >> 22) & 3, 1, "round towards plus infinity");
        assert_eq!(FPCR_TEST & (1 << 24 | 1 << 25), 0, "FZ and DN clear");
        assert_eq!(FPSR_TEST, 0x0800_0000);
    }

    /// The assembly path with a real system call: an ioctl /dev/null does
    /// not know fails (ENOTTY; ENOSYS under qemu-user), and the registers
    /// come back intact.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn registers_survive_a_real_syscall() {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open("/dev/null").unwrap();
        let mut check = FpCheck::new().unwrap();
        let mut run = vmm_uapi::VmRun::default();
        for _ in 0..3 {
            let ret = check.run(f.as_raw_fd(), &mut run);
            assert!(ret == -(libc::ENOTTY as i64) || ret == -(libc::ENOSYS as i64), "{ret}");
        }
        assert_eq!(check.mismatches(), 0);
        assert_eq!(check.runs, 3);
        // FPCR is back to what it was: default rounding for Rust code.
        assert_eq!(std::hint::black_box(1.0f64) / std::hint::black_box(3.0f64), 1.0 / 3.0);
    }

    #[test]
    fn available_on_arm64_only() {
        assert_eq!(FpCheck::new().is_some(), cfg!(target_arch = "aarch64"));
    }
}
