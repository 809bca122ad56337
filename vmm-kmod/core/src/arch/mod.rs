//! The hardware layer: the only code that reads or writes system registers,
//! issues `hvc`, maintains caches, or runs at EL2. On the build machine the
//! few entry points the VM logic needs have inert stand-ins, so that logic
//! is unit-tested there.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;

/// Runs the guest of context `ctx` on this CPU, `cpu`, until it exits
/// (interrupts masked by the caller). Returns false if EL2 did not run it
/// (the CPU is not ours).
pub fn run_guest(ctx: &mut crate::vcpu::context::Context, cpu: u32) -> bool {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    return aarch64::run_guest(ctx, cpu);
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    {
        let _ = (ctx, cpu);
        false
    }
}

/// Invalidates the TLB entries of the VMID in `vttbr` on every CPU.
pub fn tlbi_vmid(vttbr: u64) {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    aarch64::tlbi_vmid(vttbr);
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    let _ = vttbr;
}

/// MIDR_EL1 of this CPU (what guests are shown).
pub fn midr() -> u64 {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    return aarch64::midr();
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    0x410f_d070
}

/// The physical count (CNTPCT_EL0, which the host sees as CNTVCT_EL0).
pub fn counter() -> u64 {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    return aarch64::counter();
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    0
}

/// ID_AA64MMFR0_EL1.PARange.
pub fn parange() -> u64 {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    return aarch64::parange();
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    2
}

/// How many GICv3 list registers each CPU has (ICH_VTR_EL2.ListRegs + 1),
/// 0 if guests cannot be given a GICv3 on this host.
pub fn gic_list_registers() -> usize {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        let vtr = aarch64::gic_vtr();
        if vtr == 0 {
            0
        } else {
            (vtr & 0x1f) as usize + 1
        }
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    4
}

/// The counter's frequency (CNTFRQ_EL0) in Hz.
pub fn counter_freq() -> u64 {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    return aarch64::counter_freq();
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    62_500_000
}

/// The host's ID register S3_0_C0_C`crm`_`op2` (see `aarch64::id_reg`).
pub fn id_reg(crm: u32, op2: u32) -> u64 {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    return aarch64::id_reg(crm, op2);
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    match (crm, op2) {
        (4, 0) => 0x0100_2222, // QEMU's Cortex-A57
        (5, 0) => 0x1030_5106,
        _ => 0,
    }
}
