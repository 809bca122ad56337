//! Per-vCPU exit counters (`VM_STATS`, `VM_STAT_DESC`).

use core::sync::atomic::{AtomicU64, Ordering};

/// The counters, in `VM_STATS` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stat {
    /// Every exit from the guest.
    Exits = 0,
    /// Returns of `VM_RUN` to userspace.
    ToUser,
    /// Host interrupts taken while the guest ran.
    HostIrq,
    /// HVC instructions.
    Hvc,
    /// SMC instructions.
    Smc,
    /// SMCCC calls answered in the kernel.
    SmcccInKernel,
    /// MMIO accesses sent to userspace.
    Mmio,
    /// MMIO accesses emulated in the kernel (the vGIC).
    KernelMmio,
    /// Stage-2 faults on guest memory (pages mapped).
    MemFault,
    /// Instruction aborts.
    InstAbort,
    /// System register traps.
    Sysreg,
    /// System register accesses emulated in the kernel.
    SysregEmulated,
    /// Undefined instruction exceptions injected.
    Undef,
    /// WFI and WFE.
    Wfx,
    /// SErrors.
    Serror,
    /// Other exits.
    Other,
    /// Data cache maintenance by set/way (DC ISW, CSW, CISW) trapped.
    SetWay,
    /// Whole-VM cleans of guest memory to the point of coherency (set/way
    /// emulation and cache on/off toggles after it).
    MemoryClean,
    /// MMIO writes completed in the kernel by an ioeventfd.
    Ioeventfd,
    /// Hypercalls answered at EL2, without leaving it (SMCCC discovery).
    El2Hvc,
    /// First uses of FP/SIMD by the guest since its last sleep or return
    /// to userspace (the registers are switched only from then on).
    FpFirstUse,
}

/// Number of counters.
pub const STAT_COUNT: usize = 21;

/// Names, as `bhyvectl --get-stats` prints them.
pub const STAT_NAMES: [&str; STAT_COUNT] = [
    "total exits",
    "exits to userspace",
    "host interrupts while running",
    "hvc instructions",
    "smc instructions",
    "smccc calls answered in the kernel",
    "mmio accesses to userspace",
    "mmio accesses emulated in the kernel",
    "stage-2 faults on guest memory",
    "instruction aborts",
    "system register traps",
    "system registers emulated in the kernel",
    "undefined instruction exceptions injected",
    "wfi/wfe",
    "serror exits",
    "other exits",
    "set/way cache operations",
    "guest memory cleaned to poc",
    "mmio writes completed by ioeventfd",
    "hypercalls answered at el2",
    "fp/simd first uses trapped",
];

/// One vCPU's counters.
pub struct Stats([AtomicU64; STAT_COUNT]);

impl Stats {
    /// All zero.
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; STAT_COUNT])
    }

    /// Counts one.
    pub fn inc(&self, s: Stat) {
        self.0[s as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n`.
    pub fn add(&self, s: Stat, n: u64) {
        if n != 0 {
            self.0[s as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The value of counter `i`.
    pub fn get(&self, i: usize) -> u64 {
        self.0.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}
