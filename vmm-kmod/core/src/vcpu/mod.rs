//! vCPUs: register context, reset state, register access, running, and
//! exit handling.

pub mod cache;
pub mod context;
pub mod debug;
pub mod exits;
pub mod idregs;
pub mod run;
pub mod stats;
pub mod timer;

use crate::errno::{Errno, EBUSY, EINVAL};
use crate::hyp::HostMode;
use context::{Context, Sys};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use exits::Pending;
use stats::Stats;
use vmm_uapi::VmReg;

/// HCR_EL2 while a guest runs: stage 2 (VM), physical interrupts and
/// SErrors to EL2 (IMO, FMO, AMO), set/way invalidation as clean+invalidate
/// (SWIO), protected table walks (PTW), guest TLB and cache maintenance
/// broadcast (FB, BSU inner shareable), traps of WFI/WFE (TWI, TWE), SMC
/// (TSC), ID registers (TID3: the guest reads sanitised values, see
/// `idregs`), data cache maintenance by set/way (TSW, see `cache`),
/// implementation-defined registers (TIDCP), ACTLR_EL1 (TACR) and
/// LORegions (TLOR); AArch64 EL1 (RW). Pointer authentication and MTE stay
/// disabled for the guest (API, APK, ATA clear), so their keys and tags
/// are never the guest's to touch.
pub const GUEST_HCR: u64 = 1 << 0
    | 1 << 1
    | 1 << 2
    | 1 << 3
    | 1 << 4
    | 1 << 5
    | 1 << 9
    | 1 << 10
    | 1 << 13
    | 1 << 14
    | 1 << 18
    | 1 << 19
    | 1 << 20
    | 1 << 21
    | cache::HCR_TSW
    | 1 << 31
    | 1 << 35;
/// HCR_EL2.TERR: trap the RAS error record registers (on CPUs with RAS,
/// where they would reach the host's records; they read as zero).
pub const HCR_TERR: u64 = 1 << 36;

/// HCR_EL2.E2H: EL2 is the host kernel's (VHE); it stays set while the
/// guest runs (clearing it would change the regime the kernel runs in).
pub const HCR_E2H: u64 = 1 << 34;

/// HCR_EL2 for a guest on this host: [`GUEST_HCR`], TERR where the CPU has
/// RAS (the bit is RES0 elsewhere), E2H on a VHE host. `pfr0` is
/// ID_AA64PFR0_EL1.
pub fn guest_hcr(pfr0: u64, mode: HostMode) -> u64 {
    let mut hcr = GUEST_HCR;
    if (pfr0 >> 28) & 0xf != 0 {
        hcr |= HCR_TERR;
    }
    if mode == HostMode::Vhe {
        hcr |= HCR_E2H;
    }
    hcr
}

/// CPTR_EL2 while a guest runs, without VHE: RES1 bits with SVE (TZ, bit
/// 8) and SME (TSM) trapped, trace (TTA) and activity monitors (TAM)
/// trapped, FP/SIMD free.
pub const GUEST_CPTR: u64 = 0x33ff | 1 << 20 | 1 << 30;
/// The same with E2H set, where CPTR_EL2 has CPACR_EL1's layout: FP/SIMD
/// free (FPEN 0b11), SVE (ZEN) and SME (SMEN) trapped (0b00), trace (TTA,
/// bit 28) and activity monitors (TAM) trapped.
pub const GUEST_CPTR_VHE: u64 = 3 << 20 | 1 << 28 | 1 << 30;

/// CPTR_EL2 for a guest on a host of `mode`, with its FP/SIMD registers
/// switched in (`fp`) or trapped until it first uses them (TFP without
/// E2H; FPEN 0b00 with it).
pub fn guest_cptr(mode: HostMode, fp: bool) -> u64 {
    match (mode, fp) {
        (HostMode::Nvhe, true) => GUEST_CPTR,
        (HostMode::Nvhe, false) => GUEST_CPTR | 1 << 10,
        (HostMode::Vhe, true) => GUEST_CPTR_VHE,
        (HostMode::Vhe, false) => GUEST_CPTR_VHE & !(3 << 20),
    }
}
/// MDCR_EL2 traps while a guest runs: PMU (TPM, TPMCR), SPE (TPMS), debug
/// registers, OS lock and ROM (TDA, TDOSA, TDRA), trace filter (TTRF).
pub const GUEST_MDCR: u64 = 1 << 5 | 1 << 6 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 14 | 1 << 19;
/// SCTLR_EL1 at reset: its RES1 bits; MMU, caches and alignment checks off.
pub const RESET_SCTLR: u64 = 0x30d0_0800;
/// PSTATE at reset: EL1h with D, A, I, F masked (Linux's boot protocol).
pub const RESET_PSTATE: u64 = 0x3c5;

/// PSTATE bits a guest may hold: NZCV, DIT, UAO, PAN, SS, IL, SSBS, DAIF, M.
const PSTATE_ALLOWED: u64 = 0xf000_0000 | 1 << 24 | 1 << 23 | 1 << 22 | 1 << 21 | 1 << 20 | 1 << 12 | 0x3c0 | 0x1f;

/// MPIDR of vCPU `id`: Aff0 = id mod 16, Aff1 = id / 16 (GICv3 target lists
/// address 16 CPUs per Aff1), bit 31 RES1.
pub fn mpidr_of(id: usize) -> u64 {
    1 << 31 | (id as u64 & 0xf) | ((id as u64 >> 4) & 0xff) << 8
}

/// A vCPU's state, owned by whoever holds the vCPU (running it or
/// accessing its registers).
pub struct VcpuState {
    /// Registers.
    pub ctx: Context,
    /// What the next run must finish.
    pub pending: Pending,
    /// Activated (`VM_ACTIVATE_CPU`).
    pub active: bool,
    /// The host CPU it last ran on (-1: never).
    pub last_cpu: i32,
    /// How many list registers the last entry filled (to read back).
    pub listed: usize,
    /// The (physical count, host CPU) its waiter's timer was last set for
    /// on entry, so the next entry need not set it again.
    pub armed: (u64, i32),
    /// What its last list-register flush found (see `Vm::vgic_flush`).
    pub quiet: crate::vm::Quiet,
    /// The guest used FP/SIMD since it last slept or returned to
    /// userspace: its registers are switched on each entry. Until then
    /// they trap (CPTR_EL2), and an entry costs no FP switch and no save of
    /// the host task's FP state.
    pub fp_used: bool,
}

/// A vCPU.
pub struct Vcpu {
    /// Its number.
    pub id: usize,
    busy: AtomicBool,
    /// The host CPU it is running on now, or -1.
    pub running_on: AtomicI32,
    state: UnsafeCell<VcpuState>,
    /// Exit counters.
    pub stats: Stats,
    /// Where its thread sleeps in WFI.
    pub waiter: crate::kernel::Waiter,
}

/// vCPUs that exist, in all VMs (for leak tests: `VMMCTL_GET_HYP_STATUS`).
pub static LIVE: AtomicU32 = AtomicU32::new(0);

impl Drop for Vcpu {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

// SAFETY: `state` is only reached through a VcpuGuard, which `busy` makes exclusive.
unsafe impl Sync for Vcpu {}
// SAFETY: plain data.
unsafe impl Send for Vcpu {}

/// Exclusive access to a vCPU's state.
pub struct VcpuGuard<'a> {
    vcpu: &'a Vcpu,
}

impl Vcpu {
    /// vCPU `id`, not yet active, with the EL2 setup of its VM.
    pub fn new(id: usize, vttbr: u64, vtcr: u64, cntvoff: u64, midr: u64) -> Result<Self, Errno> {
        let mut ctx = Context::zeroed();
        let mode = crate::hyp::HYP.mode();
        ctx.el2.hcr = guest_hcr(crate::kernel::sanitised_id_reg(4, 0), mode);
        ctx.el2.vttbr = vttbr;
        ctx.el2.vtcr = vtcr;
        ctx.el2.cntvoff = cntvoff;
        ctx.el2.vpidr = midr;
        ctx.el2.vmpidr = mpidr_of(id);
        ctx.el2.cptr = guest_cptr(mode, false);
        ctx.el2.mdcr = GUEST_MDCR;
        // Breakpoint counts every CPU has: EL2 switches that many on any.
        debug::init(&mut ctx, crate::kernel::sanitised_id_reg(5, 0));
        // HCRX_EL2 where every CPU has it (ID_AA64MMFR1_EL1.HCX).
        if (crate::kernel::sanitised_id_reg(7, 1) >> 40) & 0xf != 0 {
            ctx.el2.flags = context::EL2_FLAG_HCRX;
        }
        let waiter = crate::kernel::Waiter::new()?;
        LIVE.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            id,
            busy: AtomicBool::new(false),
            running_on: AtomicI32::new(-1),
            state: UnsafeCell::new(VcpuState {
                ctx,
                pending: Pending::None,
                active: false,
                last_cpu: -1,
                listed: 0,
                quiet: Default::default(),
                armed: run::NOT_ARMED,
                fp_used: false,
            }),
            stats: Stats::new(),
            waiter,
        })
    }

    /// Makes it notice a change: wakes its thread from WFI and interrupts
    /// the CPU it runs on, if it runs.
    pub fn kick(&self) {
        self.waiter.wake();
        let cpu = self.running_on.load(Ordering::SeqCst);
        if cpu >= 0 {
            crate::kernel::kick_cpu(cpu as u32);
        }
    }

    /// Like [`Vcpu::kick`], from any context: interrupts off and spinlocks
    /// held included (an irqfd's callback).
    pub fn kick_atomic(&self) {
        self.waiter.wake();
        let cpu = self.running_on.load(Ordering::SeqCst);
        if cpu >= 0 {
            crate::kernel::kick_cpu_atomic(cpu as u32);
        }
    }

    /// Takes the vCPU, or `EBUSY` if it is running or being accessed.
    pub fn try_lock(&self) -> Result<VcpuGuard<'_>, Errno> {
        if self.busy.swap(true, Ordering::Acquire) {
            return Err(EBUSY);
        }
        Ok(VcpuGuard { vcpu: self })
    }
}

impl core::ops::Deref for VcpuGuard<'_> {
    type Target = VcpuState;
    fn deref(&self) -> &VcpuState {
        // SAFETY: the guard is the only holder (busy flag).
        unsafe { &*self.vcpu.state.get() }
    }
}

impl core::ops::DerefMut for VcpuGuard<'_> {
    fn deref_mut(&mut self) -> &mut VcpuState {
        // SAFETY: as above, borrowed mutably.
        unsafe { &mut *self.vcpu.state.get() }
    }
}

impl Drop for VcpuGuard<'_> {
    fn drop(&mut self) {
        self.vcpu.busy.store(false, Ordering::Release);
    }
}

impl VcpuGuard<'_> {
    /// The vCPU.
    pub fn vcpu(&self) -> &Vcpu {
        self.vcpu
    }

    /// Puts the vCPU in the reset state of Linux's arm64 boot protocol and
    /// marks it active.
    pub fn reset(&mut self) {
        let (el2, debug) = (self.ctx.el2, self.ctx.debug);
        self.ctx = Context::zeroed();
        self.ctx.el2 = el2;
        self.ctx.el2.flags &= context::EL2_FLAG_HCRX;
        // No set/way sequence under way (see `cache`).
        self.ctx.el2.hcr &= !cache::HCR_TVM;
        self.ctx.debug = debug;
        debug::reset(&mut self.ctx);
        self.ctx.vgic = Default::default();
        self.listed = 0;
        self.quiet = Default::default();
        self.fp_used = false;
        self.ctx.pstate = RESET_PSTATE;
        self.ctx.set_sys(Sys::Sctlr, RESET_SCTLR);
        self.pending = Pending::None;
        self.active = true;
    }

    /// Reads a register.
    pub fn get(&self, r: VmReg) -> Result<u64, Errno> {
        let c = &self.ctx;
        Ok(match r.0 {
            0..=30 => c.x[r.0 as usize],
            _ => match r {
                VmReg::SP => c.sys(Sys::SpEl1),
                VmReg::PC => c.pc,
                VmReg::CPSR => c.pstate,
                VmReg::MPIDR_EL1 => c.el2.vmpidr,
                VmReg::FPCR => c.fp.fpcr,
                VmReg::FPSR => c.fp.fpsr,
                VmReg::CNTV_CTL_EL0 => c.timer[0],
                VmReg::CNTV_CVAL_EL0 => c.timer[1],
                VmReg::MDSCR_EL1 => c.debug.mdscr,
                _ => c.sys(sys_of(r).ok_or(EINVAL)?),
            },
        })
    }

    /// Writes a register. PSTATE must describe AArch64 EL0 or EL1 (never
    /// EL2); MPIDR keeps its RES1 bit.
    pub fn set(&mut self, r: VmReg, v: u64) -> Result<(), Errno> {
        let c = &mut self.ctx;
        match r.0 {
            0..=30 => c.x[r.0 as usize] = v,
            _ => match r {
                VmReg::SP => c.set_sys(Sys::SpEl1, v),
                VmReg::PC => c.pc = v,
                VmReg::CPSR => {
                    let m = v & 0x1f;
                    if v & !PSTATE_ALLOWED != 0 || !matches!(m, 0b00000 | 0b00100 | 0b00101) {
                        return Err(EINVAL);
                    }
                    c.pstate = v;
                }
                VmReg::MPIDR_EL1 => c.el2.vmpidr = v & 0xff_00ff_ffff | 1 << 31,
                VmReg::FPCR => c.fp.fpcr = v,
                VmReg::FPSR => c.fp.fpsr = v,
                VmReg::CNTV_CTL_EL0 => c.timer[0] = v,
                VmReg::CNTV_CVAL_EL0 => c.timer[1] = v,
                VmReg::MDSCR_EL1 => debug::set_mdscr(c, v),
                _ => c.set_sys(sys_of(r).ok_or(EINVAL)?, v),
            },
        }
        // Userspace changed the state: an emulation in flight no longer applies.
        self.pending = Pending::None;
        Ok(())
    }
}

/// The [`Sys`] slot of an EL1 register number.
fn sys_of(r: VmReg) -> Option<Sys> {
    Some(match r {
        VmReg::SCTLR_EL1 => Sys::Sctlr,
        VmReg::TTBR0_EL1 => Sys::Ttbr0,
        VmReg::TTBR1_EL1 => Sys::Ttbr1,
        VmReg::TCR_EL1 => Sys::Tcr,
        VmReg::MAIR_EL1 => Sys::Mair,
        VmReg::AMAIR_EL1 => Sys::Amair,
        VmReg::VBAR_EL1 => Sys::Vbar,
        VmReg::ESR_EL1 => Sys::Esr,
        VmReg::FAR_EL1 => Sys::Far,
        VmReg::ELR_EL1 => Sys::Elr,
        VmReg::SPSR_EL1 => Sys::Spsr,
        VmReg::SP_EL0 => Sys::SpEl0,
        VmReg::TPIDR_EL0 => Sys::TpidrEl0,
        VmReg::TPIDR_EL1 => Sys::TpidrEl1,
        VmReg::TPIDRRO_EL0 => Sys::TpidrroEl0,
        VmReg::CONTEXTIDR_EL1 => Sys::Contextidr,
        VmReg::CPACR_EL1 => Sys::Cpacr,
        VmReg::AFSR0_EL1 => Sys::Afsr0,
        VmReg::AFSR1_EL1 => Sys::Afsr1,
        VmReg::PAR_EL1 => Sys::Par,
        VmReg::CNTKCTL_EL1 => Sys::Cntkctl,
        VmReg::CSSELR_EL1 => Sys::Csselr,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_state_follows_the_boot_protocol() {
        let v = Vcpu::new(3, 0x1_0000_0000_1000, 0x8001_3558, 77, 0x410f_d070).unwrap();
        let mut g = v.try_lock().unwrap();
        g.ctx.x[5] = 9;
        g.reset();
        assert!(g.active);
        assert_eq!(g.get(VmReg::CPSR), Ok(0x3c5));
        assert_eq!(g.get(VmReg::SCTLR_EL1), Ok(0x30d0_0800), "MMU and caches off");
        assert_eq!(g.get(VmReg::x(5)), Ok(0));
        assert_eq!(g.get(VmReg::MPIDR_EL1), Ok(0x8000_0003));
        assert_eq!(g.ctx.el2.cntvoff, 77, "EL2 setup survives a reset");
        // Debug: the CPU's breakpoint counts survive, the guest's state does not.
        let counts = (g.ctx.debug.nbrp, g.ctx.debug.nwrp);
        assert!(counts.0 >= 2 && counts.1 >= 2);
        g.set(VmReg::MDSCR_EL1, 0xffff_ffff).unwrap();
        assert_eq!(g.get(VmReg::MDSCR_EL1), Ok(0xb001), "SS, TDCC, KDE, MDE");
        g.ctx.el2.hcr |= cache::HCR_TVM;
        g.reset();
        assert_eq!((g.ctx.debug.nbrp, g.ctx.debug.nwrp), counts);
        assert_eq!((g.get(VmReg::MDSCR_EL1), g.ctx.debug.os_lock), (Ok(0), 1));
        assert_eq!(g.ctx.el2.hcr & cache::HCR_TVM, 0, "no set/way sequence carried over");
        assert_eq!(guest_hcr(0x1000_2222, HostMode::Nvhe) & HCR_TERR, HCR_TERR, "RAS: records trapped");
        assert_eq!(guest_hcr(0x0000_0000_0000_2222, HostMode::Nvhe), GUEST_HCR);
        assert_eq!(guest_hcr(0x2222, HostMode::Vhe), GUEST_HCR | HCR_E2H, "VHE: E2H stays set");
        assert_eq!(guest_hcr(0x2222, HostMode::Vhe) & (1 << 27), 0, "TGE clear: the guest's EL1&0 regime");
        assert_eq!(mpidr_of(17), 0x8000_0101);
    }

    #[test]
    fn registers_round_trip_and_pstate_is_checked() {
        let v = Vcpu::new(0, 0, 0, 0, 0).unwrap();
        let mut g = v.try_lock().unwrap();
        for r in VmReg::all() {
            if r == VmReg::CPSR || r == VmReg::MPIDR_EL1 || r == VmReg::MDSCR_EL1 {
                continue;
            }
            g.set(r, 0x1000 + r.0 as u64).unwrap();
        }
        for r in VmReg::all() {
            if r == VmReg::CPSR || r == VmReg::MPIDR_EL1 || r == VmReg::MDSCR_EL1 {
                continue;
            }
            assert_eq!(g.get(r), Ok(0x1000 + r.0 as u64), "{}", r.name());
        }
        assert_eq!(g.set(VmReg::CPSR, 0x3c9), Err(EINVAL), "EL2h is never a guest's");
        assert_eq!(g.set(VmReg::CPSR, 0x3c8), Err(EINVAL), "EL2t neither");
        assert_eq!(g.set(VmReg::CPSR, 0x3d3), Err(EINVAL), "AArch32");
        g.set(VmReg::CPSR, 0x6000_03c4).unwrap();
        g.set(VmReg::CPSR, 0).unwrap();
        assert_eq!(g.set(VmReg(99), 0), Err(EINVAL));
        assert_eq!(g.get(VmReg(-1)), Err(EINVAL));
        g.set(VmReg::MPIDR_EL1, 0x0102).unwrap();
        assert_eq!(g.get(VmReg::MPIDR_EL1), Ok(0x8000_0102));
    }

    #[test]
    fn one_holder_at_a_time() {
        let v = Vcpu::new(0, 0, 0, 0, 0).unwrap();
        let g = v.try_lock().unwrap();
        assert_eq!(v.try_lock().err(), Some(EBUSY));
        drop(g);
        assert!(v.try_lock().is_ok());
    }
}

#[cfg(test)]
mod cptr_tests {
    use super::*;

    /// The two layouts of CPTR_EL2 trap the same things: FP free, SVE, SME,
    /// trace and activity monitors trapped.
    #[test]
    fn cptr_traps_the_same_in_both_layouts() {
        // Without E2H: TFP (10) clear, TZ (8), TSM (12), TTA (20), TAM (30) set.
        let n = guest_cptr(HostMode::Nvhe, true);
        assert_eq!((n >> 10) & 1, 0);
        assert_eq!((n >> 8) & 1, 1);
        assert_eq!((n >> 12) & 1, 1);
        assert_eq!((n >> 20) & 1, 1);
        assert_eq!((n >> 30) & 1, 1);
        // With E2H: FPEN (21:20) 0b11, ZEN (17:16) and SMEN (25:24) 0b00, TTA (28), TAM (30).
        let v = guest_cptr(HostMode::Vhe, true);
        assert_eq!((v >> 20) & 3, 3);
        assert_eq!((v >> 16) & 3, 0);
        assert_eq!((v >> 24) & 3, 0);
        assert_eq!((v >> 28) & 1, 1);
        assert_eq!((v >> 30) & 1, 1);
        // Until the guest's first use, FP traps too, nothing else changes.
        assert_eq!(guest_cptr(HostMode::Nvhe, false), n | 1 << 10);
        assert_eq!(guest_cptr(HostMode::Vhe, false), v & !(3 << 20));
    }
}
