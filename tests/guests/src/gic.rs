//! GICv3 with affinity routing and one security state, everything in
//! Group 1: the distributor, this CPU's redistributor, the CPU interface
//! (ICC_* system registers), and the IRQ path.
//!
//! Use: the boot CPU calls [`init_distributor`] once; every CPU that takes
//! interrupts calls [`init_cpu`]; guests [`set_handler`], [`enable`] their
//! INTIDs (SPIs also [`route_to_self`]) and [`irq_unmask`]. An IRQ then
//! goes through [`__irq_vectors`] to [`dispatch`], which acknowledges it,
//! calls its handler and ends it; handlers run with IRQs masked.
//!
//! Registers are accessed 32 bits at a time (GICR_TYPER and GICD_IROUTER:
//! 64), through [`mmio`].

use crate::{mmio, name, println, smccc, timer, Shared};
use core::arch::{asm, global_asm};

/// The distributor.
pub const GICD_BASE: usize = 0x0800_0000;
/// The first redistributor: an RD frame, then an SGI frame.
pub const GICR_BASE: usize = 0x080A_0000;
/// Size of one redistributor (both frames).
const GICR_STRIDE: usize = 0x2_0000;
/// The SGI frame's offset in a redistributor.
const SGI_FRAME: usize = 0x1_0000;
/// End of the redistributor region (the UART follows): no walk goes past.
const GICR_END: usize = 0x0900_0000;

/// INTIDs below this are private to a CPU (SGIs 0-15, PPIs 16-31) and
/// configured in its redistributor's SGI frame; SPIs in the distributor.
pub const FIRST_SPI: u32 = 32;
/// What ICC_IAR1_EL1 reads when nothing can be acknowledged.
pub const SPURIOUS: u32 = 1023;
/// Priority every interrupt starts with (lower is more urgent).
pub const DEFAULT_PRIORITY: u8 = 0xa0;
/// Handlers can be registered for INTIDs below this.
pub const MAX_INTID: u32 = 64;

// Distributor registers.
const GICD_CTLR: usize = 0x0000;
const GICD_TYPER: usize = 0x0004;
const GICD_IROUTER: usize = 0x6000;
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_RWP: u32 = 1 << 31;

// Redistributor RD frame registers.
const GICR_CTLR: usize = 0x0000;
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
const GICR_CTLR_RWP: u32 = 1 << 3;
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

// Per-INTID registers, at these offsets in both the distributor and the SGI
// frame (which has only the first of each, for INTIDs 0-31).
const IGROUPR: usize = 0x0080;
const ISENABLER: usize = 0x0100;
const ICENABLER: usize = 0x0180;
const ISPENDR: usize = 0x0200;
const ICPENDR: usize = 0x0280;
const ISACTIVER: usize = 0x0300;
const ICACTIVER: usize = 0x0380;
const IPRIORITYR: usize = 0x0400;
const ICFGR: usize = 0x0c00;

/// An interrupt handler, called with the INTID it was registered for.
pub type Handler = fn(intid: u32);

/// Handlers by INTID, shared by all CPUs.
static HANDLERS: [Shared<Option<Handler>>; MAX_INTID as usize] = [const { Shared::new(None) }; MAX_INTID as usize];

/// Each CPU's redistributor (RD frame address), by [`this_cpu`]; 0 until
/// the CPU ran [`init_cpu`].
static REDISTRIBUTORS: [Shared<usize>; MAX_CPUS] = [const { Shared::new(0) }; MAX_CPUS];
/// CPUs [`init_cpu`] can set up (the hypervisor's limit).
const MAX_CPUS: usize = 32;

fn read(addr: usize) -> u32 {
    // SAFETY: GIC registers, MMIO outside RAM, aligned by construction.
    unsafe { mmio::ldr_w(addr) as u32 }
}

fn write(addr: usize, v: u32) {
    // SAFETY: as in `read`.
    unsafe { mmio::str_w(addr, v.into()) }
}

fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reads MPIDR_EL1, no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// This CPU's number as the platform counts vCPUs: Aff1 * 16 + Aff0.
pub fn this_cpu() -> usize {
    let m = mpidr();
    ((m >> 8) & 0xff) as usize * 16 + (m & 0xff) as usize
}

/// Waits (at most a second) for `bit` of the register at `addr` to clear.
fn wait_clear(addr: usize, bit: u32, what: &str) {
    if !timer::poll_for(1000, || read(addr) & bit == 0) {
        panic!("{what} still set after 1 s");
    }
}

// ---- The distributor ----

/// Sets the distributor up, once, before any CPU's [`init_cpu`]: every SPI
/// in Group 1, disabled, not pending or active, level-sensitive, at
/// [`DEFAULT_PRIORITY`]; then affinity routing and Group 1 on.
pub fn init_distributor() {
    write(GICD_BASE + GICD_CTLR, 0);
    wait_clear(GICD_BASE + GICD_CTLR, GICD_CTLR_RWP, "GICD_CTLR.RWP");
    // GICD_TYPER.ITLinesNumber: INTIDs up to 32 * (N + 1) - 1.
    let end = (32 * ((read(GICD_BASE + GICD_TYPER) & 0x1f) + 1)).min(1020) as usize;
    let spis = FIRST_SPI as usize..end;
    // Each word's offset in an array of 1, 8 or 2 bits per INTID.
    for offset in spis.clone().step_by(32).map(|intid| intid / 8) {
        write(GICD_BASE + IGROUPR + offset, !0);
        write(GICD_BASE + ICENABLER + offset, !0);
        write(GICD_BASE + ICPENDR + offset, !0);
        write(GICD_BASE + ICACTIVER + offset, !0);
    }
    for offset in spis.clone().step_by(4) {
        write(GICD_BASE + IPRIORITYR + offset, u32::from(DEFAULT_PRIORITY) * 0x0101_0101);
    }
    for offset in spis.step_by(16).map(|intid| intid / 4) {
        write(GICD_BASE + ICFGR + offset, 0);
    }
    wait_clear(GICD_BASE + GICD_CTLR, GICD_CTLR_RWP, "GICD_CTLR.RWP");
    write(GICD_BASE + GICD_CTLR, GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1);
    wait_clear(GICD_BASE + GICD_CTLR, GICD_CTLR_RWP, "GICD_CTLR.RWP");
}

/// Routes SPI `intid` to the calling CPU (GICD_IROUTER = its affinity).
pub fn route_to_self(intid: u32) {
    assert!(intid >= FIRST_SPI, "INTID {intid} is not an SPI");
    // Aff3 (bits 39:32), Aff2, Aff1, Aff0 as in MPIDR; Interrupt_Routing_Mode 0.
    let route = mpidr() & 0xff_00ff_ffff;
    // SAFETY: GICD_IROUTER<intid>, 64-bit and aligned.
    unsafe { mmio::str_x(GICD_BASE + GICD_IROUTER + 8 * intid as usize, route) };
}

// ---- The redistributor ----

/// This CPU's affinity as GICR_TYPER[63:32] shows it: Aff3.Aff2.Aff1.Aff0.
fn affinity() -> u64 {
    let m = mpidr();
    (m & 0xff_ffff) | ((m >> 32) & 0xff) << 24
}

/// Finds this CPU's redistributor: the frame whose GICR_TYPER affinity is
/// ours, walking from the first until one has GICR_TYPER.Last.
fn find_redistributor() -> usize {
    let me = affinity();
    let mut rd = GICR_BASE;
    while rd < GICR_END {
        // SAFETY: GICR_TYPER, 64-bit and aligned.
        let typer = unsafe { mmio::ldr_x(rd + GICR_TYPER) };
        if typer >> 32 == me {
            return rd;
        }
        if typer & GICR_TYPER_LAST != 0 {
            break;
        }
        rd += GICR_STRIDE;
    }
    panic!("no redistributor with affinity {me:#x}");
}

/// Wakes a redistributor: clears ProcessorSleep, waits for ChildrenAsleep
/// to clear.
fn wake(rd: usize) {
    let waker = read(rd + GICR_WAKER);
    write(rd + GICR_WAKER, waker & !GICR_WAKER_PROCESSOR_SLEEP);
    wait_clear(rd + GICR_WAKER, GICR_WAKER_CHILDREN_ASLEEP, "GICR_WAKER.ChildrenAsleep");
}

/// Finds, records and wakes this CPU's redistributor, and sets its SGIs and
/// PPIs up as [`init_distributor`] does the SPIs (their trigger modes stay).
fn init_redistributor() {
    let cpu = this_cpu();
    assert!(cpu < MAX_CPUS, "cpu{cpu}: too many CPUs");
    let rd = find_redistributor();
    REDISTRIBUTORS[cpu].set(rd);
    wake(rd);
    let sgi = rd + SGI_FRAME;
    write(sgi + IGROUPR, !0);
    write(sgi + ICENABLER, !0);
    write(sgi + ICPENDR, !0);
    write(sgi + ICACTIVER, !0);
    for offset in (0..32).step_by(4) {
        write(sgi + IPRIORITYR + offset, u32::from(DEFAULT_PRIORITY) * 0x0101_0101);
    }
    wait_clear(rd + GICR_CTLR, GICR_CTLR_RWP, "GICR_CTLR.RWP");
}

/// This CPU's redistributor, found by [`init_cpu`].
fn redistributor() -> usize {
    let rd = REDISTRIBUTORS.get(this_cpu()).map_or(0, Shared::get);
    assert!(rd != 0, "gic::init_cpu has not run on cpu{}", this_cpu());
    rd
}

// ---- Per-INTID configuration ----

/// The frame configuring `intid`: this CPU's SGI frame, or the distributor.
fn frame(intid: u32) -> usize {
    if intid < FIRST_SPI {
        redistributor() + SGI_FRAME
    } else {
        GICD_BASE
    }
}

/// The register at `offset` of a one-bit-per-INTID array holding `intid`'s
/// bit, and that bit.
fn bit_of(offset: usize, intid: u32) -> (usize, u32) {
    (frame(intid) + offset + 4 * (intid / 32) as usize, 1 << (intid % 32))
}

/// Enables `intid` (ISENABLER).
pub fn enable(intid: u32) {
    let (reg, bit) = bit_of(ISENABLER, intid);
    write(reg, bit);
}

/// Disables `intid` (ICENABLER) and waits until the GIC says it took effect.
pub fn disable(intid: u32) {
    let (reg, bit) = bit_of(ICENABLER, intid);
    write(reg, bit);
    if intid < FIRST_SPI {
        wait_clear(redistributor() + GICR_CTLR, GICR_CTLR_RWP, "GICR_CTLR.RWP");
    } else {
        wait_clear(GICD_BASE + GICD_CTLR, GICD_CTLR_RWP, "GICD_CTLR.RWP");
    }
}

/// Makes `intid` pending (ISPENDR).
pub fn set_pending(intid: u32) {
    let (reg, bit) = bit_of(ISPENDR, intid);
    write(reg, bit);
}

/// Clears `intid`'s pending state (ICPENDR).
pub fn clear_pending(intid: u32) {
    let (reg, bit) = bit_of(ICPENDR, intid);
    write(reg, bit);
}

/// Whether `intid` is pending (ISPENDR).
pub fn is_pending(intid: u32) -> bool {
    let (reg, bit) = bit_of(ISPENDR, intid);
    read(reg) & bit != 0
}

/// Whether `intid` is active (ISACTIVER).
pub fn is_active(intid: u32) -> bool {
    let (reg, bit) = bit_of(ISACTIVER, intid);
    read(reg) & bit != 0
}

/// Sets `intid`'s priority (its byte of IPRIORITYR, by read-modify-write of
/// the word).
pub fn set_priority(intid: u32, priority: u8) {
    let reg = frame(intid) + IPRIORITYR + (intid & !3) as usize;
    let shift = 8 * (intid % 4);
    write(reg, read(reg) & !(0xff << shift) | u32::from(priority) << shift);
}

// ---- The CPU interface ----

/// Turns the CPU interface on: system register access (SRE), every priority
/// unmasked, the finest priority grouping, EOI both drops the priority and
/// deactivates (EOImode 0), Group 1 enabled.
fn init_cpu_interface() {
    // SAFETY: ICC_* writes configuring this CPU's interface only. PSTATE.I
    // is still set, so nothing is taken yet.
    unsafe {
        asm!(
            "mrs {t}, icc_sre_el1",
            "orr {t}, {t}, #1",
            "msr icc_sre_el1, {t}",
            "isb",
            "mov {t}, #0xff",
            "msr icc_pmr_el1, {t}",
            "msr icc_bpr1_el1, xzr",
            "msr icc_ctlr_el1, xzr",
            "mov {t}, #1",
            "msr icc_igrpen1_el1, {t}",
            "isb",
            t = out(reg) _,
            options(nostack),
        )
    };
}

/// Sets ICC_PMR_EL1: only interrupts with a priority below (more urgent
/// than) `mask` are signalled.
pub fn set_pmr(mask: u8) {
    // SAFETY: changes which priorities this CPU takes, nothing else.
    unsafe { asm!("msr icc_pmr_el1, {}", "isb", in(reg) u64::from(mask), options(nostack)) };
}

/// Sends SGI `intid` (0-15) to the CPUs with Aff0 in `targets` (bit n: the
/// CPU with Aff0 n; Aff3-1 are 0). Earlier memory writes are visible to them
/// first.
pub fn send_sgi(intid: u32, targets: u16) {
    let v = u64::from(intid & 0xf) << 24 | u64::from(targets);
    // SAFETY: generates an SGI; the `dsb` orders earlier stores before it.
    unsafe { asm!("dsb sy", "msr icc_sgi1r_el1, {}", "isb", in(reg) v, options(nostack)) };
}

/// Acknowledges the most urgent pending interrupt that may preempt the
/// running priority (ICC_IAR1_EL1): returns its INTID, now active, or
/// [`SPURIOUS`].
pub fn ack() -> u32 {
    let v: u64;
    // SAFETY: acknowledging changes only GIC state; the `dsb` keeps later
    // device accesses after it.
    unsafe { asm!("mrs {}, icc_iar1_el1", "dsb sy", out(reg) v, options(nostack)) };
    (v & 0xff_ffff) as u32
}

/// Ends an interrupt acknowledged by [`ack`] (ICC_EOIR1_EL1): drops the
/// running priority and deactivates it. Earlier device writes (such as
/// lowering a level-sensitive line) complete first.
pub fn eoi(intid: u32) {
    // SAFETY: ends an interrupt this CPU acknowledged.
    unsafe { asm!("dsb sy", "msr icc_eoir1_el1, {}", "isb", in(reg) u64::from(intid), options(nostack)) };
}

// ---- The IRQ path ----

/// Sets up this CPU for interrupts: its redistributor, its CPU interface,
/// and [`__irq_vectors`] in VBAR_EL1. IRQs stay masked ([`irq_unmask`]).
pub fn init_cpu() {
    init_redistributor();
    init_cpu_interface();
    install_vectors();
}

/// Registers `handler` for `intid` (replacing any earlier one).
pub fn set_handler(intid: u32, handler: Handler) {
    assert!(intid < MAX_INTID, "no handler slot for INTID {intid}");
    HANDLERS[intid as usize].set(Some(handler));
}

/// Clears PSTATE.I: IRQs are taken.
pub fn irq_unmask() {
    // SAFETY: the vectors are installed; the `isb` takes a pending IRQ here.
    unsafe { asm!("msr daifclr, #2", "isb", options(nostack)) };
}

/// Sets PSTATE.I: IRQs wait.
pub fn irq_mask() {
    // SAFETY: only masks IRQs. Not `nomem`: memory accesses stay on their side.
    unsafe { asm!("msr daifset, #2", options(nostack)) };
}

/// Waits in WFI until `done()` holds, taking interrupts meanwhile (they
/// are what makes it hold). `done` is checked with IRQs masked, so an
/// interrupt arriving between the check and the WFI still ends the WFI.
/// Returns with IRQs unmasked.
pub fn wait_until(mut done: impl FnMut() -> bool) {
    loop {
        irq_mask();
        if done() {
            break;
        }
        wfi();
        irq_unmask();
    }
    irq_unmask();
}

/// Waits for an interrupt (WFI): returns once one is pending, masked or not.
pub fn wfi() {
    // SAFETY: WFI only waits. Not `nomem`: handlers may change memory.
    unsafe { asm!("wfi", options(nostack)) };
}

fn install_vectors() {
    // SAFETY: a 2 KiB aligned table whose IRQ entry preserves the
    // interrupted state and whose other entries report and power off.
    unsafe { asm!("msr vbar_el1, {}", "isb", in(reg) __irq_vectors as *const () as u64, options(nostack)) };
}

/// Called by [`__irq_vectors`] for an IRQ: acknowledges it, calls its
/// handler and ends it. A spurious acknowledgement (nothing pending any
/// more) is ignored; an interrupt without a handler ends the run.
extern "C" fn dispatch() {
    let intid = ack();
    if intid >= 1020 {
        return;
    }
    match HANDLERS.get(intid as usize).and_then(Shared::get) {
        Some(handler) => handler(intid),
        None => {
            println!("{}: unexpected interrupt, INTID {intid}", name());
            smccc::system_off()
        }
    }
    eoi(intid);
}

extern "C" {
    /// The vector table: the IRQ entry (current EL with SP_ELx, offset
    /// 0x280) calls [`dispatch`]; the others go to
    /// [`unexpected_exception`](crate::unexpected_exception).
    pub fn __irq_vectors();
}

// The IRQ entry saves what a call may change: x0-x18 and x30 (the AAPCS64
// caller-saved registers), all of q0-q31 (a callee keeps only the low
// halves of v8-v15), FPCR and FPSR; and ELR_EL1 and SPSR_EL1, so that a
// handler may unmask IRQs. 0xc0 bytes of general and system registers,
// then 0x200 of q registers.
crate::vector_table!(__irq_vectors, 5 => __irq_entry);
global_asm!(
    r#"
    .section .text.irq_entry, "ax"
    .global __irq_entry
__irq_entry:
    sub     sp, sp, #0x2c0
    stp     x0, x1, [sp, #0x00]
    stp     x2, x3, [sp, #0x10]
    stp     x4, x5, [sp, #0x20]
    stp     x6, x7, [sp, #0x30]
    stp     x8, x9, [sp, #0x40]
    stp     x10, x11, [sp, #0x50]
    stp     x12, x13, [sp, #0x60]
    stp     x14, x15, [sp, #0x70]
    stp     x16, x17, [sp, #0x80]
    stp     x18, x30, [sp, #0x90]
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x0, x1, [sp, #0xa0]
    mrs     x0, fpcr
    mrs     x1, fpsr
    stp     x0, x1, [sp, #0xb0]
    stp     q0, q1, [sp, #0xc0]
    stp     q2, q3, [sp, #0xe0]
    stp     q4, q5, [sp, #0x100]
    stp     q6, q7, [sp, #0x120]
    stp     q8, q9, [sp, #0x140]
    stp     q10, q11, [sp, #0x160]
    stp     q12, q13, [sp, #0x180]
    stp     q14, q15, [sp, #0x1a0]
    stp     q16, q17, [sp, #0x1c0]
    stp     q18, q19, [sp, #0x1e0]
    stp     q20, q21, [sp, #0x200]
    stp     q22, q23, [sp, #0x220]
    stp     q24, q25, [sp, #0x240]
    stp     q26, q27, [sp, #0x260]
    stp     q28, q29, [sp, #0x280]
    stp     q30, q31, [sp, #0x2a0]

    bl      {dispatch}

    ldp     q0, q1, [sp, #0xc0]
    ldp     q2, q3, [sp, #0xe0]
    ldp     q4, q5, [sp, #0x100]
    ldp     q6, q7, [sp, #0x120]
    ldp     q8, q9, [sp, #0x140]
    ldp     q10, q11, [sp, #0x160]
    ldp     q12, q13, [sp, #0x180]
    ldp     q14, q15, [sp, #0x1a0]
    ldp     q16, q17, [sp, #0x1c0]
    ldp     q18, q19, [sp, #0x1e0]
    ldp     q20, q21, [sp, #0x200]
    ldp     q22, q23, [sp, #0x220]
    ldp     q24, q25, [sp, #0x240]
    ldp     q26, q27, [sp, #0x260]
    ldp     q28, q29, [sp, #0x280]
    ldp     q30, q31, [sp, #0x2a0]
    ldp     x0, x1, [sp, #0xb0]
    msr     fpcr, x0
    msr     fpsr, x1
    ldp     x0, x1, [sp, #0xa0]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x0, x1, [sp, #0x00]
    ldp     x2, x3, [sp, #0x10]
    ldp     x4, x5, [sp, #0x20]
    ldp     x6, x7, [sp, #0x30]
    ldp     x8, x9, [sp, #0x40]
    ldp     x10, x11, [sp, #0x50]
    ldp     x12, x13, [sp, #0x60]
    ldp     x14, x15, [sp, #0x70]
    ldp     x16, x17, [sp, #0x80]
    ldp     x18, x30, [sp, #0x90]
    add     sp, sp, #0x2c0
    eret
"#,
    dispatch = sym dispatch,
);
