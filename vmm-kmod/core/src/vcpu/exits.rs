//! What the kernel does with a guest exit: handle it here and resume (the
//! host-kernel tier), or describe it for userspace (`VM_RUN` returns).
//! Pure logic over the saved context, tested with real syndromes.

use super::cache;
use super::context::{Context, Sys, EXIT_FIQ, EXIT_IRQ, EXIT_SERROR, EXIT_SYNC};
use super::debug;
use super::idregs;
use super::stats::{Stat, Stats};
use super::timer::Timer;
use vmm_uapi::esr::{ec, DataAbort, Esr};
use vmm_uapi::{hyp_reason, HypExit, InstEmul, VmExit};

/// SMCCC_VERSION.
pub const SMCCC_VERSION: u64 = 0x8000_0000;
/// SMCCC_ARCH_FEATURES.
pub const SMCCC_ARCH_FEATURES: u64 = 0x8000_0001;
/// The SMCCC version we implement: 1.1.
pub const SMCCC_VERSION_1_1: u64 = 0x1_0001;
/// SMCCC NOT_SUPPORTED (-1).
pub const SMCCC_RET_NOT_SUPPORTED: u64 = u64::MAX;

/// A system register or instruction's encoding: (op0, op1, CRn, CRm, op2).
pub type Encoding = (u32, u32, u32, u32, u32);

/// What the exit handler needs of the VM around the vCPU.
pub trait Env {
    /// Whether `ipa` is guest RAM.
    fn is_ram(&self, ipa: u64) -> bool;
    /// Whether `ipa` is guest memory mapped read-only (a boot ROM): guest
    /// writes to it are emulated by userspace.
    fn is_read_only(&self, ipa: u64) -> bool;
    /// Maps the page at `ipa` for the guest; false when the host has no memory.
    fn fault_in(&mut self, ipa: u64) -> bool;
    /// An access the kernel emulates itself (the vGIC's frames):
    /// `Some(value read)` (0 for a write) if handled, `None` if not ours.
    fn kernel_mmio(&mut self, ipa: u64, size: u8, write: bool, data: u64) -> Option<u64>;
    /// A guest write of `size` bytes of `value` to `ipa`: true if an
    /// ioeventfd took it (signalled; the write is complete).
    fn ioeventfd(&mut self, ipa: u64, size: u8, value: u64) -> bool;
    /// The guest wrote `value` to ICC_SGI1R_EL1 (or its siblings).
    fn send_sgi(&mut self, value: u64);
    /// The physical count (CNTPCT) now, for the emulated physical timer.
    fn counter(&self) -> u64;
    /// The guest's view of ID register S3_0_C0_C`crm`_`op2`
    /// ([`idregs::sanitise`] of the host's).
    fn id_reg(&self, crm: u32, op2: u32) -> u64;
    /// Cleans and invalidates every page the guest has mapped to the point
    /// of coherency (what a set/way flush of all caches would achieve).
    fn clean_guest_memory(&mut self);
}

/// What the run loop does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Enter the guest again.
    Resume,
    /// Give the CPU away, then enter again (WFE).
    Yield,
    /// Sleep until an interrupt is pending, then enter again (WFI).
    Wfi,
    /// Return to userspace with the exit filled in.
    ToUser,
    /// The guest's first FP/SIMD instruction since its registers were last
    /// the host's: switch them in and run it again.
    FpFirstUse,
}

/// What must happen when userspace runs the vCPU again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pending {
    /// Nothing.
    #[default]
    None,
    /// Write the value userspace read into the register, step the PC past
    /// the load (of this many bytes: 2 for a 16-bit T32 one).
    MmioRead(DataAbort, u64),
    /// Step the PC past the emulated store (of this many bytes).
    MmioWrite(u64),
}

/// The IPA of a stage-2 abort: HPFAR_EL2.FIPA gives bits [51:12], FAR the page offset.
pub fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar >> 4) << 12) | (far & 0xfff)
}

/// Handles the exit recorded in `ctx.exit`. For [`Outcome::ToUser`] the
/// exit is in `out`; `pending` says what the next run must finish.
pub fn handle(
    ctx: &mut Context,
    mem: &mut impl Env,
    stats: &Stats,
    out: &mut VmExit,
    pending: &mut Pending,
) -> Outcome {
    stats.inc(Stat::Exits);
    match ctx.exit.kind {
        EXIT_IRQ | EXIT_FIQ => {
            stats.inc(Stat::HostIrq);
            Outcome::Resume
        }
        EXIT_SERROR => {
            stats.inc(Stat::Serror);
            hyp(ctx, out, hyp_reason::SERROR)
        }
        EXIT_SYNC => handle_sync(ctx, mem, stats, out, pending),
        _ => hyp(ctx, out, hyp_reason::SYNC),
    }
}

fn hyp(ctx: &Context, out: &mut VmExit, reason: u32) -> Outcome {
    out.pc = ctx.pc;
    out.inst_length = 4;
    out.set_hyp(&HypExit {
        exception_nr: reason,
        esr_el2: ctx.exit.esr,
        far_el2: ctx.exit.far,
        hpfar_el2: ctx.exit.hpfar,
    });
    Outcome::ToUser
}

fn handle_sync(
    ctx: &mut Context,
    mem: &mut impl Env,
    stats: &Stats,
    out: &mut VmExit,
    pending: &mut Pending,
) -> Outcome {
    let esr = Esr(ctx.exit.esr);
    match esr.ec() {
        ec::HVC64 => {
            stats.inc(Stat::Hvc);
            smccc(ctx, stats, out, esr)
        }
        ec::SMC64 => {
            // A trapped SMC returns to itself: step over it first.
            stats.inc(Stat::Smc);
            ctx.skip(4);
            smccc(ctx, stats, out, esr)
        }
        ec::DABT_LOW => data_abort(ctx, mem, stats, out, pending, esr),
        ec::IABT_LOW => {
            stats.inc(Stat::InstAbort);
            let ipa = fault_ipa(ctx.exit.hpfar, ctx.exit.far);
            match (mem.is_ram(ipa), esr.is_translation_fault()) {
                (true, true) => fault_in(ctx, mem, stats, out, ipa),
                // A fetch from memory mapped without execute permission.
                (true, false) => hyp(ctx, out, hyp_reason::SYNC),
                (false, _) => hyp(ctx, out, hyp_reason::IABT_OUTSIDE_MEMORY),
            }
        }
        ec::SYS64 => {
            stats.inc(Stat::Sysreg);
            sysreg(ctx, mem, stats, esr)
        }
        ec::WFX => {
            stats.inc(Stat::Wfx);
            // From AArch32 EL0 a WFE may be 16 bits long, and conditional.
            ctx.skip(esr.insn_len());
            if !esr.condition_passed(ctx.pstate) {
                return Outcome::Resume;
            }
            // ISS bit 0: WFE (1) or WFI (0).
            if esr.iss() & 1 == 0 {
                Outcome::Wfi
            } else {
                Outcome::Yield
            }
        }
        // CPTR_EL2 traps FP/SIMD until the guest uses it (see run.rs).
        ec::FP_ASIMD => {
            stats.inc(Stat::FpFirstUse);
            Outcome::FpFirstUse
        }
        // Features the guest is not given: SVE, pointer authentication.
        ec::SVE | ec::PAC => {
            inject_undef(ctx);
            stats.inc(Stat::Undef);
            Outcome::Resume
        }
        _ => {
            stats.inc(Stat::Other);
            hyp(ctx, out, hyp_reason::SYNC)
        }
    }
}

/// An SMCCC call: the kernel answers the SMCCC discovery calls itself;
/// everything else (PSCI, vendor calls) is for userspace.
fn smccc(ctx: &mut Context, stats: &Stats, out: &mut VmExit, esr: Esr) -> Outcome {
    let func = ctx.x[0];
    // SMCCC calls use immediate 0; anything else is not a call we know.
    if esr.iss() & 0xffff != 0 {
        ctx.x[0] = SMCCC_RET_NOT_SUPPORTED;
        return Outcome::Resume;
    }
    match func & 0xffff_ffff {
        SMCCC_VERSION => {
            ctx.x[0] = SMCCC_VERSION_1_1;
            stats.inc(Stat::SmcccInKernel);
            Outcome::Resume
        }
        SMCCC_ARCH_FEATURES => {
            // Only the discovery calls themselves are implemented; the
            // Spectre workaround calls are not offered.
            ctx.x[0] = match ctx.x[1] & 0xffff_ffff {
                SMCCC_VERSION | SMCCC_ARCH_FEATURES => 0,
                _ => SMCCC_RET_NOT_SUPPORTED,
            };
            stats.inc(Stat::SmcccInKernel);
            Outcome::Resume
        }
        _ => {
            let mut args = [0; 7];
            args.copy_from_slice(&ctx.x[1..8]);
            out.pc = ctx.pc;
            out.inst_length = 4;
            out.set_smccc(func, &args);
            Outcome::ToUser
        }
    }
}

fn fault_in(ctx: &Context, mem: &mut impl Env, stats: &Stats, out: &mut VmExit, ipa: u64) -> Outcome {
    if mem.fault_in(ipa) {
        stats.inc(Stat::MemFault);
        Outcome::Resume
    } else {
        hyp(ctx, out, hyp_reason::NO_MEMORY)
    }
}

fn data_abort(
    ctx: &mut Context,
    mem: &mut impl Env,
    stats: &Stats,
    out: &mut VmExit,
    pending: &mut Pending,
    esr: Esr,
) -> Outcome {
    let ipa = fault_ipa(ctx.exit.hpfar, ctx.exit.far);
    // A write to read-only memory (a boot ROM, a flash bank in read-array
    // mode) is the device's to handle, like MMIO: a flash command. Cache
    // maintenance also reads as a write here; it is skipped below.
    let rom_write = esr.wnr() && !esr.s1ptw() && mem.is_read_only(ipa);
    if mem.is_ram(ipa) && !rom_write {
        if esr.is_translation_fault() {
            return fault_in(ctx, mem, stats, out, ipa);
        }
        return hyp(ctx, out, hyp_reason::SYNC);
    }
    // Outside memory: MMIO, unless the guest's own page tables point there.
    if esr.s1ptw() {
        return hyp(ctx, out, hyp_reason::S1PTW_OUTSIDE_MEMORY);
    }
    // FAR not valid (FnV): the exact address is unknown.
    if esr.iss() & (1 << 10) != 0 {
        return hyp(ctx, out, hyp_reason::DABT_NO_SYNDROME);
    }
    if esr.cache_maintenance() {
        // Cache maintenance by address on MMIO does nothing: skip it.
        ctx.skip(esr.insn_len());
        return Outcome::Resume;
    }
    let Some(da) = esr.data_abort() else {
        // No instruction syndrome: the access cannot be emulated safely.
        return hyp(ctx, out, hyp_reason::DABT_NO_SYNDROME);
    };
    let data = if da.write { da.write_value(ctx.reg(da.reg)) } else { 0 };
    if da.write && mem.ioeventfd(ipa, da.size, data) {
        ctx.skip(esr.insn_len());
        stats.inc(Stat::Ioeventfd);
        return Outcome::Resume;
    }
    if let Some(v) = mem.kernel_mmio(ipa, da.size, da.write, data) {
        if !da.write {
            ctx.set_reg(da.reg, da.read_value(v));
        }
        ctx.skip(esr.insn_len());
        stats.inc(Stat::KernelMmio);
        return Outcome::Resume;
    }
    stats.inc(Stat::Mmio);
    out.pc = ctx.pc;
    out.inst_length = esr.insn_len() as u32;
    out.set_inst_emul(&InstEmul {
        gpa: ipa,
        esr_el2: esr.0,
        access_size: da.size,
        sign_extend: da.sign_extend,
        write: da.write,
        sf: da.sf,
        reg: da.reg,
        data,
    });
    let len = esr.insn_len();
    *pending = if da.write { Pending::MmioWrite(len) } else { Pending::MmioRead(da, len) };
    Outcome::ToUser
}

/// Ends a system register access the kernel emulated: counted, stepped over.
pub fn sysreg_done(ctx: &mut Context, stats: &Stats) -> Outcome {
    stats.inc(Stat::SysregEmulated);
    ctx.skip(4);
    Outcome::Resume
}

/// Finishes an access userspace emulated: for a read, the value goes into
/// the register as the hardware would have put it; then the PC steps over
/// the instruction. Without data for a pending read, the instruction is
/// simply executed again (it traps again).
pub fn complete(ctx: &mut Context, pending: &mut Pending, mmio_data: Option<u64>) {
    match core::mem::take(pending) {
        Pending::None => {}
        Pending::MmioWrite(len) => ctx.skip(len),
        Pending::MmioRead(da, len) => {
            if let Some(data) = mmio_data {
                ctx.set_reg(da.reg, da.read_value(data));
                ctx.skip(len);
            }
        }
    }
}

/// A trapped system register access (ISS: Op0, Op2, Op1, CRn, Rt, CRm, direction).
fn sysreg(ctx: &mut Context, env: &mut impl Env, stats: &Stats, esr: Esr) -> Outcome {
    let iss = esr.iss();
    let op0 = (iss >> 20) & 3;
    let op2 = (iss >> 17) & 7;
    let op1 = (iss >> 14) & 7;
    let crn = (iss >> 10) & 0xf;
    let crm = (iss >> 1) & 0xf;
    let rt = (iss >> 5) & 0x1f;
    let read = iss & 1 != 0;
    // ICC_SGI1R_EL1, ICC_ASGI1R_EL1, ICC_SGI0R_EL1 (op0 3, CRn 12, CRm 11):
    // writes trap while interrupts are virtualised.
    if op0 == 3 && crn == 12 && crm == 11 && matches!((op1, op2), (0, 5) | (1, 6) | (2, 7)) {
        if !read {
            env.send_sgi(ctx.reg(rt));
        }
        return sysreg_done(ctx, stats);
    }
    // Set/way cache maintenance (HCR_EL2.TSW) and, while a sequence of it
    // is under way, writes to the virtual memory controls (HCR_EL2.TVM).
    if let Some(outcome) = cache::sysreg(ctx, env, stats, (op0, op1, crn, crm, op2), rt, read) {
        return outcome;
    }
    // The ID registers (HCR_EL2.TID3): the host's, less what we do not
    // virtualise. They are read-only: a write is undefined, as on hardware.
    if idregs::is_id_space(op0, op1, crn, crm) {
        if !read {
            inject_undef(ctx);
            stats.inc(Stat::Undef);
            return Outcome::Resume;
        }
        ctx.set_reg(rt, env.id_reg(crm, op2));
        return sysreg_done(ctx, stats);
    }
    // CNTP_TVAL_EL0, CNTP_CTL_EL0, CNTP_CVAL_EL0 (op0 3, op1 3, CRn 14,
    // CRm 2): the physical timer is the host's; the guest gets its own.
    if op0 == 3 && op1 == 3 && crn == 14 && crm == 2 && op2 <= 2 {
        let count = env.counter();
        let mut t = Timer { ctl: ctx.ptimer[0], cval: ctx.ptimer[1] };
        match (op2, read) {
            (0, true) => ctx.set_reg(rt, t.read_tval(count)),
            (0, false) => t.write_tval(ctx.reg(rt), count),
            (1, true) => ctx.set_reg(rt, t.read_ctl(count)),
            (1, false) => t.write_ctl(ctx.reg(rt)),
            (_, true) => ctx.set_reg(rt, t.cval),
            (_, false) => t.cval = ctx.reg(rt),
        }
        ctx.ptimer = [t.ctl, t.cval];
        return sysreg_done(ctx, stats);
    }
    // The debug registers (MDCR_EL2.TDA, TDOSA, TDRA): the guest's own.
    if let Some(outcome) = debug::sysreg(ctx, stats, (op0, op1, crn, crm, op2), rt, read) {
        return outcome;
    }
    // Registers that read as zero and ignore writes:
    // - ACTLR_EL1 (op0 3, op1 0, CRn 1, CRm 0, op2 1): implementation defined;
    // - the RAS error records (ERRIDR_EL1: none; ERRSELR_EL1, ERX*_EL1; op0
    //   3, op1 0, CRn 5, CRm 3..5), trapped by HCR_EL2.TERR on CPUs with RAS;
    // - the PMU (op0 3, op1 3, CRn 9, CRm 12..14: PMCR_EL0 to PMUSERENR_EL0;
    //   CRn 14, CRm 8..15: event counters and types) and PMINTENSET/CLR_EL1
    //   (op1 0, CRn 9, CRm 14, op2 1..2): no PMU is virtualised (PMCR.N = 0,
    //   and the ID registers say none), but Linux resets PMUSERENR_EL0 at
    //   boot on CPUs that have one and must not take an UNDEF for it.
    let actlr = op0 == 3 && op1 == 0 && crn == 1 && crm == 0 && op2 == 1;
    let ras = op0 == 3 && op1 == 0 && crn == 5 && (3..=5).contains(&crm);
    let pmu = op0 == 3
        && ((op1 == 3 && crn == 9 && (12..=14).contains(&crm))
            || (op1 == 3 && crn == 14 && crm >= 8)
            || (op1 == 0 && crn == 9 && crm == 14 && (1..=2).contains(&op2)));
    if actlr || ras || pmu {
        if read {
            ctx.set_reg(rt, 0);
        }
        return sysreg_done(ctx, stats);
    }
    // Implementation-defined and anything else trapped: undefined, and said
    // in the host's log (rate limited: a guest could loop on it).
    crate::klog_ratelimited!(
        Warning,
        "guest {} unemulated system register S{}_{}_C{}_C{}_{} at pc {:#x}: UNDEF injected",
        if read { "read of" } else { "write to" },
        op0,
        op1,
        crn,
        crm,
        op2,
        ctx.pc
    );
    inject_undef(ctx);
    stats.inc(Stat::Undef);
    Outcome::Resume
}

/// Delivers an Undefined Instruction exception to the guest's EL1, as the
/// hardware would for an instruction that does not exist.
pub fn inject_undef(ctx: &mut Context) {
    const PSTATE_M_MASK: u64 = 0x1f;
    const EL1T: u64 = 0b00100;
    const EL1H: u64 = 0b00101;
    // Vector offset by where the exception came from.
    let offset = match ctx.pstate & PSTATE_M_MASK {
        EL1T => 0x000,
        EL1H => 0x200,
        m if m & 0x10 != 0 => 0x600, // EL0, AArch32
        _ => 0x400,                  // EL0, AArch64
    };
    ctx.set_sys(Sys::Elr, ctx.pc);
    ctx.set_sys(Sys::Spsr, ctx.pstate);
    ctx.set_sys(Sys::Esr, (ec::UNKNOWN as u64) << 26 | 1 << 25);
    ctx.pc = ctx.sys(Sys::Vbar) + offset;
    // EL1h with D, A, I, F masked.
    ctx.pstate = 0x3c0 | EL1H;
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_uapi::exitcode;

    struct Mem {
        ram: (u64, u64),
        faults: Vec<u64>,
        full: bool,
        mmio: Vec<(u64, bool, u64)>,
        sgis: Vec<u64>,
        cleans: usize,
    }

    impl Env for Mem {
        fn is_ram(&self, ipa: u64) -> bool {
            ipa >= self.ram.0 && ipa < self.ram.1 || self.is_read_only(ipa)
        }
        fn is_read_only(&self, ipa: u64) -> bool {
            ipa < 0x0400_0000 // a boot ROM at 0
        }
        fn fault_in(&mut self, ipa: u64) -> bool {
            self.faults.push(ipa);
            !self.full
        }
        fn kernel_mmio(&mut self, ipa: u64, _size: u8, write: bool, data: u64) -> Option<u64> {
            (ipa >> 16 == 0x0800).then(|| {
                self.mmio.push((ipa, write, data));
                0x30
            })
        }
        fn ioeventfd(&mut self, ipa: u64, size: u8, value: u64) -> bool {
            (ipa, size, value) == (0x0a00_0050, 4, 1)
        }
        fn send_sgi(&mut self, value: u64) {
            self.sgis.push(value);
        }
        fn counter(&self) -> u64 {
            1_000_000
        }
        fn id_reg(&self, crm: u32, op2: u32) -> u64 {
            idregs::sanitise(crm, op2, crate::arch::id_reg(crm, op2))
        }
        fn clean_guest_memory(&mut self) {
            self.cleans += 1;
        }
    }

    fn mem() -> Mem {
        Mem { ram: (0x4000_0000, 0x4400_0000), faults: vec![], full: false, mmio: vec![], sgis: vec![], cleans: 0 }
    }

    fn exit(esr: u64, far: u64, ipa: u64) -> Context {
        let mut c = Context::zeroed();
        c.pc = 0x4000_1000;
        c.pstate = 0x3c5;
        c.exit.kind = EXIT_SYNC;
        c.exit.esr = esr;
        c.exit.far = far;
        c.exit.hpfar = (ipa >> 12) << 4;
        c
    }

    /// A trapped MRS (`read`) or MSR of S<op0>_<op1>_C<crn>_C<crm>_<op2> with Xt = `rt`.
    fn sys(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64, rt: u64, read: bool) -> Context {
        let iss = op0 << 20 | op2 << 17 | op1 << 14 | crn << 10 | rt << 5 | crm << 1 | read as u64;
        exit((ec::SYS64 as u64) << 26 | 1 << 25 | iss, 0, 0)
    }

    #[test]
    fn pmu_reads_as_zero_and_ignores_writes() {
        // MSR PMUSERENR_EL0, x3 (Linux's boot path); MRS x4, PMCR_EL0.
        let mut c = sys(3, 3, 9, 14, 0, 3, false);
        c.set_reg(3, 0xf);
        let (o, _, _) = run(&mut c, &mut mem());
        assert!(matches!(o, Outcome::Resume));
        assert_eq!(c.pc, 0x4000_1004, "stepped over, no UNDEF");
        let mut c = sys(3, 3, 9, 12, 0, 4, true);
        c.set_reg(4, 0xdead);
        run(&mut c, &mut mem());
        assert_eq!((c.reg(4), c.pc), (0, 0x4000_1004));
        // PMEVTYPER5_EL0 (CRn 14, CRm 12, op2 5) and PMINTENSET_EL1.
        let mut c = sys(3, 3, 14, 12, 5, 1, true);
        run(&mut c, &mut mem());
        assert_eq!(c.pc, 0x4000_1004);
        let mut c = sys(3, 0, 9, 14, 1, 1, false);
        run(&mut c, &mut mem());
        assert_eq!(c.pc, 0x4000_1004);
    }

    #[test]
    fn completed_instructions_end_a_single_step() {
        // MRS x5, ID_AA64PFR0_EL1 stepped by a guest debugger (PSTATE.SS set):
        // emulated, stepped over, SS cleared so the step exception comes next.
        let mut c = sys(3, 0, 0, 4, 0, 5, true);
        c.pstate |= 1 << 21;
        run(&mut c, &mut mem());
        assert_eq!((c.pc, c.pstate & 1 << 21), (0x4000_1004, 0));
    }

    #[test]
    fn ras_error_records_read_as_zero() {
        // MRS x2, ERRIDR_EL1 (no records); MSR ERXSTATUS_EL1 (S3_0_C5_C4_2), x2.
        let mut c = sys(3, 0, 5, 3, 0, 2, true);
        c.x[2] = 0xff;
        let (o, _, _) = run(&mut c, &mut mem());
        assert_eq!((o, c.x[2], c.pc), (Outcome::Resume, 0, 0x4000_1004));
        let mut c = sys(3, 0, 5, 4, 2, 2, false);
        run(&mut c, &mut mem());
        assert_eq!(c.pc, 0x4000_1004, "ignored, no UNDEF");
    }

    #[test]
    fn id_registers_are_sanitised_and_read_only() {
        // MRS x5, ID_AA64DFR0_EL1: the PMU is hidden.
        let mut c = sys(3, 0, 0, 5, 0, 5, true);
        run(&mut c, &mut mem());
        assert_eq!((c.reg(5), c.pc), (0xf0_1030_5006, 0x4000_1004), "no PMU, no double lock");
        // MRS x1, ID_AA64ZFR0_EL1 (no SVE) and an unallocated one.
        let mut c = sys(3, 0, 0, 4, 4, 1, true);
        c.set_reg(1, 7);
        run(&mut c, &mut mem());
        assert_eq!(c.reg(1), 0);
        let mut c = sys(3, 0, 0, 7, 7, 1, true);
        c.set_reg(1, 7);
        run(&mut c, &mut mem());
        assert_eq!(c.reg(1), 0);
        // MSR ID_AA64PFR0_EL1, x0: UNDEF.
        let mut c = sys(3, 0, 0, 4, 0, 0, false);
        c.set_sys(Sys::Vbar, 0x4008_0000);
        run(&mut c, &mut mem());
        assert_eq!(c.pc, 0x4008_0200);
    }

    #[test]
    fn implementation_defined_registers_are_undefined() {
        // MRS x0, S3_1_C15_C2_0 (Cortex-A57's CPUACTLR_EL1).
        let mut c = sys(3, 1, 15, 2, 0, 0, true);
        c.set_sys(Sys::Vbar, 0x4008_0000);
        run(&mut c, &mut mem());
        assert_eq!(c.pc, 0x4008_0200, "to the guest's current-EL sync vector");
        assert_eq!(c.sys(Sys::Elr), 0x4000_1000);
        assert_eq!(c.sys(Sys::Esr) >> 26, ec::UNKNOWN as u64);
        let logged = crate::kernel::mock::LOG.with(|l| {
            l.borrow().iter().any(|(_, m)| {
                m == "guest read of unemulated system register S3_1_C15_C2_0 at pc 0x40001000: UNDEF injected"
            })
        });
        assert!(logged, "a host log line names the register");
    }

    fn run(c: &mut Context, m: &mut Mem) -> (Outcome, VmExit, Pending) {
        let stats = Stats::new();
        let mut out = VmExit::default();
        let mut p = Pending::None;
        let o = handle(c, m, &stats, &mut out, &mut p);
        (o, out, p)
    }

    #[test]
    fn smccc_version_is_answered_in_the_kernel() {
        let mut c = exit(0x5a00_0000, 0, 0);
        c.x[0] = SMCCC_VERSION;
        assert_eq!(run(&mut c, &mut mem()).0, Outcome::Resume);
        assert_eq!(c.x[0], 0x1_0001);
        c.x[0] = SMCCC_ARCH_FEATURES;
        c.x[1] = 0x8000_8000; // ARCH_WORKAROUND_1
        assert_eq!(run(&mut c, &mut mem()).0, Outcome::Resume);
        assert_eq!(c.x[0], u64::MAX);
    }

    #[test]
    fn other_smccc_calls_go_to_userspace() {
        let mut c = exit(0x5a00_0000, 0, 0);
        c.x[0] = 0x8400_0008;
        c.x[1] = 11;
        c.x[7] = 77;
        let (o, out, _) = run(&mut c, &mut mem());
        assert_eq!(o, Outcome::ToUser);
        assert_eq!(out.exitcode, exitcode::SMCCC);
        assert_eq!(out.smccc(), (0x8400_0008, [11, 0, 0, 0, 0, 0, 77]));
        // A trapped SMC steps over itself; an HVC already has.
        let mut c = exit(0x5e00_0000, 0, 0);
        c.x[0] = 0x8400_0000;
        run(&mut c, &mut mem());
        assert_eq!(c.pc, 0x4000_1004);
    }

    #[test]
    fn ram_faults_are_handled_in_the_kernel() {
        let mut m = mem();
        let mut c = exit(0x9300_0007, 0x1234_5678, 0x4000_5678); // translation fault L3
        assert_eq!(run(&mut c, &mut m).0, Outcome::Resume);
        assert_eq!(m.faults, vec![0x4000_5678]);
        assert_eq!(c.pc, 0x4000_1000, "the access is retried");
        let mut c = exit(0x8200_0007, 0, 0x4000_2000); // instruction abort, translation
        assert_eq!(run(&mut c, &mut m).0, Outcome::Resume);
        m.full = true;
        let (o, out, _) = run(&mut c, &mut m);
        assert_eq!((o, out.hyp().exception_nr), (Outcome::ToUser, hyp_reason::NO_MEMORY));
    }

    #[test]
    fn mmio_reads_and_writes_are_decoded_and_completed() {
        // ldrsh x19, [MMIO]
        let mut c = exit(0x9373_8007, 0x0b00_0000, 0x0b00_0000);
        let (o, out, mut p) = run(&mut c, &mut mem());
        assert_eq!(o, Outcome::ToUser);
        let ie = out.inst_emul();
        assert_eq!((ie.gpa, ie.access_size, ie.sign_extend, ie.write, ie.reg), (0x0b00_0000, 2, true, false, 19));
        complete(&mut c, &mut p, Some(0x9687));
        assert_eq!(c.x[19], 0xffff_ffff_ffff_9687);
        assert_eq!(c.pc, 0x4000_1004);
        assert_eq!(p, Pending::None);
        // str x2, [MMIO]
        let mut c = exit(0x93c2_8046, 0x0900_0000, 0x0900_0000);
        c.x[2] = 0xabcd;
        let (_, out, mut p) = run(&mut c, &mut mem());
        assert_eq!((out.inst_emul().write, out.inst_emul().data), (true, 0xabcd));
        complete(&mut c, &mut p, None);
        assert_eq!(c.pc, 0x4000_1004);
    }

    #[test]
    fn a_notify_write_with_an_ioeventfd_stays_in_the_kernel() {
        // str w2, [0x0a000050] (ISV, word, SRT 2, write) with w2 = 1: matched.
        let mut c = exit(0x9382_0046, 0x0a00_0050, 0x0a00_0050);
        c.x[2] = 0xffff_ffff_0000_0001;
        let stats = Stats::new();
        let (mut out, mut p) = (VmExit::default(), Pending::None);
        assert_eq!(handle(&mut c, &mut mem(), &stats, &mut out, &mut p), Outcome::Resume);
        assert_eq!((c.pc, p), (0x4000_1004, Pending::None), "stepped, nothing pending");
        assert_eq!((stats.get(Stat::Ioeventfd as usize), stats.get(Stat::Mmio as usize)), (1, 0));
        // Another value, or a read of the address: userspace's.
        c.x[2] = 2;
        c.pc = 0x4000_1000;
        assert_eq!(run(&mut c, &mut mem()).0, Outcome::ToUser);
        let mut c = exit(0x9380_0006, 0x0a00_0050, 0x0a00_0050);
        assert_eq!(run(&mut c, &mut mem()).0, Outcome::ToUser);
    }

    #[test]
    fn writes_to_read_only_memory_go_to_userspace() {
        let mut m = mem();
        // str w2, [0x1000] with the page mapped read-only (permission fault, L3).
        let mut c = exit(0x9382_004f, 0x1000, 0x1000);
        c.x[2] = 0x98;
        let (o, out, mut p) = run(&mut c, &mut m);
        assert_eq!((o, out.exitcode), (Outcome::ToUser, exitcode::INST_EMUL));
        let ie = out.inst_emul();
        assert_eq!((ie.gpa, ie.write, ie.data, ie.access_size), (0x1000, true, 0x98, 4));
        complete(&mut c, &mut p, None);
        assert_eq!(c.pc, 0x4000_1004);
        // Not yet mapped (translation fault): the same, nothing faulted in.
        let mut c = exit(0x9382_0047, 0x2000, 0x2000);
        assert_eq!(run(&mut c, &mut m).1.exitcode, exitcode::INST_EMUL);
        assert!(m.faults.is_empty());
        // Reads and fetches fault the page in, as RAM.
        let mut c = exit(0x9380_0007, 0x3000, 0x3000); // ldr w0 (translation)
        assert_eq!(run(&mut c, &mut m).0, Outcome::Resume);
        let mut c = exit(0x8200_0007, 0, 0x4000); // fetch
        assert_eq!(run(&mut c, &mut m).0, Outcome::Resume);
        assert_eq!(m.faults, vec![0x3000, 0x4000]);
        // A store pair (ISV=0) to it: userspace decodes it from the instruction.
        let mut c = exit(0x9200_004f, 0x1000, 0x1000);
        assert_eq!(run(&mut c, &mut m).1.hyp().exception_nr, hyp_reason::DABT_NO_SYNDROME);
        // dc ivac (CM, WnR): skipped.
        let mut c = exit(0x9200_014f, 0x1000, 0x1000);
        assert_eq!((run(&mut c, &mut m).0, c.pc), (Outcome::Resume, 0x4000_1004));
        // A write to RAM that faults for permission is still not for userspace.
        let mut c = exit(0x9382_004f, 0x4000_0000, 0x4000_0000);
        assert_eq!(run(&mut c, &mut m).1.hyp().exception_nr, hyp_reason::SYNC);
    }

    #[test]
    fn a_read_without_data_is_retried_not_invented() {
        let mut c = exit(0x9373_8007, 0x0b00_0000, 0x0b00_0000);
        c.x[19] = 5;
        let (_, _, mut p) = run(&mut c, &mut mem());
        complete(&mut c, &mut p, None);
        assert_eq!((c.x[19], c.pc), (5, 0x4000_1000));
    }

    #[test]
    fn no_syndrome_no_emulation() {
        let mut c = exit(0x9200_0006, 0x0b00_0000, 0x0b00_0000); // ldp: ISV=0
        let (o, out, p) = run(&mut c, &mut mem());
        assert_eq!(o, Outcome::ToUser);
        assert_eq!(out.exitcode, exitcode::HYP);
        assert_eq!(out.hyp().exception_nr, hyp_reason::DABT_NO_SYNDROME);
        assert_eq!(p, Pending::None);
        let mut c = exit(0x8200_0007, 0, 0x4400_0000); // fetch beyond RAM
        assert_eq!(run(&mut c, &mut mem()).1.hyp().exception_nr, hyp_reason::IABT_OUTSIDE_MEMORY);
    }

    #[test]
    fn aarch32_el0_steps_by_instruction_length() {
        // T32 "ldr r1, [r0]" (16 bits: IL clear) from the PL011: ISV, word, SRT 1.
        let mut c = exit(0x9000_0000 | 1 << 24 | 2 << 22 | 1 << 16 | 0x06, 0x0900_0018, 0x0900_0018);
        c.pstate = 0x10 | 0x20; // User, T32
        let (o, out, p) = run(&mut c, &mut mem());
        assert_eq!((o, out.inst_length), (Outcome::ToUser, 2));
        let mut pending = p;
        complete(&mut c, &mut pending, Some(0x90));
        assert_eq!((c.x[1], c.pc), (0x90, 0x4000_1002));
        // T32 "wfe" (16 bits) and A32 "wfeeq" with Z clear: stepped, no wait.
        let mut c = exit(0x0400_0001, 0, 0);
        c.pstate = 0x30;
        assert_eq!(run(&mut c, &mut mem()).0, Outcome::Yield);
        assert_eq!(c.pc, 0x4000_1002);
        let mut c = exit(0x0600_0001 | 1 << 24, 0, 0);
        c.pstate = 0x10;
        assert_eq!(run(&mut c, &mut mem()).0, Outcome::Resume, "condition failed: not a WFE");
        assert_eq!(c.pc, 0x4000_1004);
        // An UNDEF injected for AArch32 EL0 goes to the lower-EL AArch32 vector.
        c.set_sys(Sys::Vbar, 0x8000);
        inject_undef(&mut c);
        assert_eq!(c.pc, 0x8600);
    }

    #[test]
    fn trapped_registers() {
        // mrs x0, s3_0_c15_c0_0 (implementation defined, CRn 15): UNDEF injected.
        let iss = 3 << 20 | 15 << 10 | 1;
        let mut c = exit(0x6200_0000 | iss, 0, 0);
        c.sys[Sys::Vbar as usize] = 0x4000_8000;
        assert_eq!(run(&mut c, &mut mem()).0, Outcome::Resume);
        assert_eq!(c.pc, 0x4000_8200);
        assert_eq!(c.sys(Sys::Elr), 0x4000_1000);
        assert_eq!(c.sys(Sys::Esr) >> 26, 0);
        assert_eq!(c.pstate, 0x3c5);
        // mrs x3, mdscr_el1 (op0 2, op1 0, CRn 0, CRm 2, op2 2): the guest's copy.
        let iss = 2 << 20 | 2 << 17 | 3 << 5 | 2 << 1 | 1;
        let mut c = exit(0x6200_0000 | iss, 0, 0);
        c.x[3] = 99;
        c.debug.mdscr = 1 << 15;
        run(&mut c, &mut mem());
        assert_eq!((c.x[3], c.pc), (1 << 15, 0x4000_1004));
    }

    #[test]
    fn gic_sgis_timers_and_wfi() {
        let mut m = mem();
        // ldr w0, [GICD + 0xffe8]: emulated in the kernel, not userspace.
        let mut c = exit(0x9380_0006, 0x0800_ffe8, 0x0800_ffe8);
        assert_eq!(run(&mut c, &mut m).0, Outcome::Resume);
        assert_eq!((c.x[0], c.pc), (0x30, 0x4000_1004));
        assert_eq!(m.mmio, vec![(0x0800_ffe8, false, 0)]);
        // msr icc_sgi1r_el1, x2 (op0 3, op1 0, CRn 12, CRm 11, op2 5, write)
        let iss = 3 << 20 | 5 << 17 | 12 << 10 | 2 << 5 | 11 << 1;
        let mut c = exit(0x6200_0000 | iss, 0, 0);
        c.x[2] = 1 << 24 | 0b10;
        assert_eq!(run(&mut c, &mut m).0, Outcome::Resume);
        assert_eq!(m.sgis, vec![1 << 24 | 0b10]);
        // msr cntp_tval_el0, x3 then mrs x4, cntp_cval_el0
        let tval = 3 << 20 | 3 << 14 | 14 << 10 | 3 << 5 | 2 << 1;
        let mut c = exit(0x6200_0000 | tval, 0, 0);
        c.x[3] = 62_500;
        run(&mut c, &mut m);
        assert_eq!(c.ptimer[1], 1_062_500);
        c.exit.esr = 0x6200_0000 | 3 << 20 | 2 << 17 | 3 << 14 | 14 << 10 | 4 << 5 | 2 << 1 | 1;
        run(&mut c, &mut m);
        assert_eq!(c.x[4], 1_062_500);
        // WFI blocks, WFE yields; both step over the instruction.
        let mut c = exit(0x0600_0000, 0, 0);
        assert_eq!(run(&mut c, &mut m).0, Outcome::Wfi);
        assert_eq!(c.pc, 0x4000_1004);
        let mut c = exit(0x0600_0001, 0, 0);
        assert_eq!(run(&mut c, &mut m).0, Outcome::Yield);
    }

    #[test]
    fn interrupts_resume_and_unknown_exits_go_to_userspace() {
        let mut c = exit(0, 0, 0);
        c.exit.kind = EXIT_IRQ;
        assert_eq!(run(&mut c, &mut mem()).0, Outcome::Resume);
        let mut c = exit(0xf200_0000, 0, 0); // BRK
        let (o, out, _) = run(&mut c, &mut mem());
        assert_eq!((o, out.exitcode), (Outcome::ToUser, exitcode::HYP));
        let mut c = exit(0, 0, 0);
        c.exit.kind = EXIT_SERROR;
        assert_eq!(run(&mut c, &mut mem()).1.hyp().exception_nr, hyp_reason::SERROR);
    }
}
