//! The take-over against a simulated EL2 that behaves like Linux's hyp stub,
//! like our vectors once installed, or like another hypervisor.

use super::*;
use std::cell::{Cell, RefCell};

const STUB_VBAR: u64 = 0xdead_0000;
const CODE_PA: u64 = 0x4_0000_0000;
const PROBE_OFF: u64 = 0x800;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Vbar {
    Stub,
    Code,
    Kvm,
    Other(u64),
}

struct SimEl2 {
    el: u8,
    has_el2: bool,
    vbar: Cell<Vbar>,
    tpidr: Cell<u64>,
    hvcs: Cell<usize>,
    log: RefCell<Vec<u64>>,
    mmu_on: Cell<bool>,
    mmfr3: Cell<u64>,
}

impl SimEl2 {
    fn new() -> Self {
        Self {
            el: 1,
            has_el2: true,
            vbar: Cell::new(Vbar::Stub),
            tpidr: Cell::new(0x1234),
            hvcs: Cell::new(0),
            log: RefCell::new(vec![]),
            mmu_on: Cell::new(false),
            mmfr3: Cell::new(0),
        }
    }
    /// What a CPU looks like after hotplug or a deep idle state: the kernel's
    /// boot path put the stub back, EL2 registers are junk.
    fn reset(&self) {
        self.vbar.set(Vbar::Stub);
        self.tpidr.set(0x5555);
        self.mmu_on.set(false);
    }
}

impl El2 for SimEl2 {
    fn current_el(&self) -> u8 {
        self.el
    }
    fn id_reg(&self, crm: u32, op2: u32) -> u64 {
        if (crm, op2) == (7, 3) {
            self.mmfr3.get()
        } else {
            0
        }
    }
    fn el2_implemented(&self) -> bool {
        self.has_el2
    }
    fn hvc(&self, a: [u64; 4]) -> [u64; 4] {
        assert!(self.has_el2 && self.el == 1, "hvc issued where it is undefined or wrong");
        self.hvcs.set(self.hvcs.get() + 1);
        self.log.borrow_mut().push(a[0]);
        match self.vbar.get() {
            Vbar::Stub => match a[0] {
                HVC_SET_VECTORS => {
                    self.vbar.set(if a[1] == CODE_PA { Vbar::Code } else { Vbar::Other(a[1]) });
                    [0, a[1], a[2], a[3]]
                }
                HVC_SOFT_RESTART => {
                    // The stub branches to x1 with x0 = x2, x1 = x3: only our probe is modelled.
                    assert_eq!(a[1], CODE_PA + PROBE_OFF, "soft restart into something not our probe");
                    let page = a[2] as *mut u64;
                    // SAFETY: tests pass the address of a live, aligned u64 buffer as page_pa.
                    unsafe { page.add(HYP_PAGE_STUB_VBAR / 8).write(STUB_VBAR) };
                    assert_eq!(a[3], a[2] + 4096, "EL2 stack top must be the page's end");
                    self.tpidr.set(a[2]);
                    [PROBE_MAGIC, STUB_VBAR, 0, 0]
                }
                HVC_RESET_VECTORS => [0, a[1], a[2], a[3]],
                _ => [HVC_STUB_ERR, a[1], a[2], a[3]],
            },
            Vbar::Code => match a[0] {
                HVC_SET_VECTORS => {
                    self.vbar.set(Vbar::Other(a[1]));
                    [0, 0, 0, 0]
                }
                HVC_RESET_VECTORS => {
                    // SAFETY: tpidr is the page address the probe recorded.
                    let stub = unsafe { (self.tpidr.get() as *const u64).read() };
                    assert_eq!(stub, STUB_VBAR);
                    self.vbar.set(Vbar::Stub);
                    self.mmu_on.set(false);
                    [0, 0, 0, 0]
                }
                VMM_HC_MMU_ON => {
                    assert_eq!(a[3], crate::mm::el2map::MAIR_EL2);
                    assert_ne!(a[1], 0, "a translation table");
                    self.mmu_on.set(true);
                    [0, 0, 0, 0]
                }
                VMM_HC_PING => [EL2_MAGIC, 8, CODE_PA, self.tpidr.get()],
                _ => [HVC_STUB_ERR, 0, 0, 0],
            },
            // KVM's nVHE host handler answers SMCCC NOT_SUPPORTED.
            Vbar::Kvm => [u64::MAX, 0, 0, 0],
            Vbar::Other(_) => [0x77, 0, 0, 0],
        }
    }
    fn dcache_clean_inval_poc(&self, _va: *const u8, _len: usize) {}
}

fn cpu(page: &mut [u64; 512]) -> CpuHyp {
    CpuHyp {
        page_va: page.as_mut_ptr() as *mut u8,
        page_pa: page.as_ptr() as u64,
        code_pa: CODE_PA,
        probe_offset: PROBE_OFF,
        mmu: MmuConfig { ttbr0: 0x8000_0000, tcr: 0x8080_3518, mair: crate::mm::el2map::MAIR_EL2 },
    }
}

#[test]
fn takes_el2_from_the_stub_and_gives_it_back() {
    let hw = SimEl2::new();
    let mut page = [0u64; 512];
    let c = cpu(&mut page);
    assert_eq!(owner(&hw, &c), Owner::Stub);
    install(&hw, &c, HostMode::Nvhe).unwrap();
    assert_eq!(hw.vbar.get(), Vbar::Code);
    assert!(hw.mmu_on.get(), "the EL2 MMU is on after installation");
    assert_eq!(owner(&hw, &c), Owner::Us);
    assert_eq!(page[0], STUB_VBAR, "probe recorded the stub's vectors");
    assert!(uninstall(&hw, &c, HostMode::Nvhe));
    assert_eq!(hw.vbar.get(), Vbar::Stub);
    // And again: reload works.
    install(&hw, &c, HostMode::Nvhe).unwrap();
    assert!(uninstall(&hw, &c, HostMode::Nvhe));
}

#[test]
fn install_is_idempotent() {
    let hw = SimEl2::new();
    let mut page = [0u64; 512];
    let c = cpu(&mut page);
    install(&hw, &c, HostMode::Nvhe).unwrap();
    let n = hw.hvcs.get();
    install(&hw, &c, HostMode::Nvhe).unwrap();
    assert_eq!(hw.hvcs.get(), n + 1, "a CPU already ours costs one ping");
}

#[test]
fn refuses_when_another_hypervisor_holds_el2() {
    let hw = SimEl2::new();
    hw.vbar.set(Vbar::Kvm);
    let mut page = [0u64; 512];
    let c = cpu(&mut page);
    assert_eq!(install(&hw, &c, HostMode::Nvhe), Err(Refusal::NotStub(u64::MAX)));
    assert_eq!(hw.vbar.get(), Vbar::Kvm, "nothing was changed");
    assert_eq!(*hw.log.borrow(), vec![VMM_HC_PING], "only the question was asked");
}

#[test]
fn refuses_missing_el2_without_any_hvc() {
    let mut page = [0u64; 512];
    let c = cpu(&mut page);
    let mut hw = SimEl2::new();
    hw.has_el2 = false;
    assert_eq!(install(&hw, &c, HostMode::Nvhe), Err(Refusal::NoEl2));
    assert_eq!(check_cpu(&hw, || false), Err(Refusal::NoEl2));
    assert_eq!(hw.hvcs.get(), 0);
}

/// A kernel at EL2 (VHE): nothing to take, never an `hvc` (it would call
/// the kernel's own vectors); refused only when KVM is on.
#[test]
fn a_vhe_kernel_is_used_as_it_is() {
    let mut page = [0u64; 512];
    let c = cpu(&mut page);
    let mut hw = SimEl2::new();
    hw.el = 2;
    assert_eq!(check_cpu(&hw, || false), Ok(HostMode::Vhe));
    assert_eq!(check_cpu(&hw, || true), Err(Refusal::KvmOn));
    assert!(Refusal::KvmOn.to_string().contains("kvm-arm.mode=none"));
    assert_eq!(install(&hw, &c, HostMode::Vhe), Ok(()));
    assert!(uninstall(&hw, &c, HostMode::Vhe));
    let st = HypState::new();
    st.init(HostMode::Vhe, 2, &[0u8; 0x900], PROBE_OFF as usize, &[(0x4000_0000, 0x8000_0000)], 4, |_, _| {}).unwrap();
    assert_eq!(st.mode(), HostMode::Vhe);
    assert!(st.page_va(1).is_some() && st.page_va(2).is_none());
    st.cpu_online(&hw, 1).unwrap();
    assert!(st.answers(&hw, 1));
    assert!(st.cpu_offline(&hw, 1));
    assert!(st.release());
    assert_eq!(hw.hvcs.get(), 0, "no hvc under VHE");
}

#[test]
fn refuses_cpus_with_el1_state_it_does_not_switch() {
    let mut page = [0u64; 512];
    let c = cpu(&mut page);
    let hw = SimEl2::new();
    // ID_AA64MMFR3_EL1 with TCRX and SCTLRX only (HCRX_EL2 traps them): taken.
    hw.mmfr3.set(0x11);
    assert_eq!(check_cpu(&hw, || false), Ok(HostMode::Nvhe));
    // S1PIE (bits 11:8): refused before any hvc.
    hw.mmfr3.set(0x111);
    let e = install(&hw, &c, HostMode::Nvhe).unwrap_err();
    assert_eq!(e, Refusal::UnswitchedState("FEAT_S1PIE (PIR_EL1, PIRE0_EL1)"));
    assert!(e.to_string().contains("FEAT_S1PIE"), "{e}");
    assert_eq!(hw.hvcs.get(), 0);
    assert_eq!(unswitched_feature(1 << 16, 0), Some("FEAT_S1POE (POR_EL1, POR_EL0)"));
    assert_eq!(unswitched_feature(0, 1 << 48), Some("FEAT_THE (RCWMASK_EL1, RCWSMASK_EL1)"));
}

#[test]
fn uninstall_leaves_a_cpu_we_do_not_hold_alone() {
    let hw = SimEl2::new();
    let mut page = [0u64; 512];
    let c = cpu(&mut page);
    assert!(uninstall(&hw, &c, HostMode::Nvhe));
    assert_eq!(*hw.log.borrow(), vec![VMM_HC_PING, VMM_HC_PING]);
}

#[test]
fn state_retakes_a_cpu_after_hotplug_or_idle() {
    let hw = SimEl2::new();
    let st = HypState::new();
    let blob = [0u8; 0x900];
    st.init(HostMode::Nvhe, 2, &blob, PROBE_OFF as usize, &[(0x4000_0000, 0x8000_0000)], 4, |_, _| {}).unwrap();
    // The sim's addresses are the mock's page addresses; make the code PA match.
    let code_pa = st.code_pa();
    let hw = SimWithCode { sim: hw, code_pa };
    st.cpu_online(&hw, 1).unwrap();
    assert!(st.answers(&hw, 1));
    assert!(!st.release(), "no freeing while a CPU runs our vectors");
    hw.sim.reset();
    assert!(!st.answers(&hw, 1), "after a CPU reset the stub is back");
    st.cpu_resume(&hw, 1).unwrap();
    assert!(st.answers(&hw, 1));
    assert!(st.cpu_offline(&hw, 1));
    assert!(!st.is_installed(1));
    st.cpu_resume(&hw, 1).unwrap();
    assert!(!st.is_installed(1), "resume does not take a CPU we gave back");
    assert!(st.release());
}

#[test]
fn state_rejects_bad_setup() {
    let st = HypState::new();
    let ram = [(0x4000_0000, 0x8000_0000)];
    assert!(st.init(HostMode::Nvhe, 0, &[0; 16], 8, &ram, 4, |_, _| {}).is_err());
    assert!(st.init(HostMode::Nvhe, 1, &[0; 9000], 8, &ram, 4, |_, _| {}).is_err());
    assert!(st.init(HostMode::Nvhe, vmm_uapi::VMM_MAX_CPUS + 1, &[0; 16], 8, &ram, 4, |_, _| {}).is_err());
    assert!(st.init(HostMode::Nvhe, 1, &[0; 16], 16, &ram, 4, |_, _| {}).is_err());
    assert!(SimEl2::new().vbar.get() == Vbar::Stub);
}

/// The simulated EL2 with the code address of a real HypState.
struct SimWithCode {
    sim: SimEl2,
    code_pa: u64,
}

impl El2 for SimWithCode {
    fn current_el(&self) -> u8 {
        1
    }
    fn id_reg(&self, crm: u32, op2: u32) -> u64 {
        self.sim.id_reg(crm, op2)
    }
    fn el2_implemented(&self) -> bool {
        true
    }
    fn hvc(&self, mut a: [u64; 4]) -> [u64; 4] {
        // Translate between the state's code address and the sim's fixed one.
        if a[1] == self.code_pa + PROBE_OFF {
            a[1] = CODE_PA + PROBE_OFF;
        } else if a[1] == self.code_pa {
            a[1] = CODE_PA;
        }
        let mut r = self.sim.hvc(a);
        if r[0] == EL2_MAGIC {
            r[2] = self.code_pa;
        }
        r
    }
    fn dcache_clean_inval_poc(&self, _va: *const u8, _len: usize) {}
}
