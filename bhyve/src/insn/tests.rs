//! Emulation against a register file, a bus with a recording device and
//! guest memory holding the instructions (and, with the MMU on, the tables).

use super::*;
use crate::bus::BusDevice;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use vmm_uapi::hyp_reason;
use vmmapi::vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const DEV: u64 = 0x0900_0000;
const PC: u64 = 0x4000_1000;

/// Reads give bytes `0x10 + offset`; writes are recorded.
#[derive(Default)]
struct Recorder(Mutex<Vec<(u64, Vec<u8>)>>);

impl BusDevice for Recorder {
    fn read(&self, _: u64, offset: u64, data: &mut [u8]) {
        for (i, d) in data.iter_mut().enumerate() {
            *d = 0x10u8.wrapping_add(offset as u8).wrapping_add(i as u8);
        }
    }
    fn write(&self, _: u64, offset: u64, data: &[u8]) {
        self.0.lock().unwrap().push((offset, data.to_vec()));
    }
}

#[derive(Default)]
struct Regs {
    file: HashMap<VmReg, u64>,
    sets: Vec<(VmReg, u64)>,
    fail: bool,
}

impl Registers for Regs {
    fn get_registers(&mut self, regs: &[VmReg]) -> vmmapi::Result<Vec<u64>> {
        Ok(regs.iter().map(|r| self.file.get(r).copied().unwrap_or(0)).collect())
    }
    fn set_registers(&mut self, regs: &[(VmReg, u64)]) -> vmmapi::Result<()> {
        if self.fail {
            return Err(vmmapi::Error::Vcpu {
                name: "g".into(),
                vcpu: 0,
                op: "set registers",
                errno: vmmapi::Errno::ENXIO,
            });
        }
        self.sets.extend_from_slice(regs);
        Ok(())
    }
}

struct Rig {
    bus: Bus,
    dev: Arc<Recorder>,
    mem: GuestMemory,
    regs: Regs,
}

impl Rig {
    /// `insn` at PC, EL1h, MMU off.
    fn new(insn: u32) -> Rig {
        let mut bus = Bus::new();
        let dev = Arc::new(Recorder::default());
        bus.insert(dev.clone(), DEV, 0x1000).unwrap();
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(RAM), 1 << 20)]).unwrap();
        mem.write_obj(insn, GuestAddress(PC)).unwrap();
        let mut regs = Regs::default();
        regs.file.insert(VmReg::PC, PC);
        regs.file.insert(VmReg::CPSR, 0x3c5);
        Rig { bus, dev, mem, regs }
    }

    fn set(&mut self, r: VmReg, v: u64) {
        self.regs.file.insert(r, v);
    }

    /// Emulates the access as the kernel reported it faulting at `far`
    /// (= the IPA: MMU off or identity-mapped).
    fn run(&mut self, far: u64) -> Result<(), Failure> {
        self.run_at(far, far)
    }

    /// The same, faulting at virtual address `far`, which is `ipa`.
    fn run_at(&mut self, far: u64, ipa: u64) -> Result<(), Failure> {
        let exit = HypExit {
            exception_nr: hyp_reason::DABT_NO_SYNDROME,
            esr_el2: 0x9200_0046,
            far_el2: far,
            hpfar_el2: (ipa >> 12) << 4,
        };
        emulate(&mut self.regs, 0, &self.bus, &self.mem, &exit)
    }

    fn error(&mut self, far: u64) -> String {
        match self.run(far) {
            Err(Failure::Guest(e)) => e.to_string(),
            other => panic!("expected a guest error, got {other:?}"),
        }
    }

    fn writes(&self) -> Vec<(u64, Vec<u8>)> {
        self.dev.0.lock().unwrap().clone()
    }
}

#[test]
fn a_load_pair_with_writeback_from_a_device() {
    // ldp x0, x1, [x2, #16]!
    let mut r = Rig::new(0xa9c10440);
    r.set(VmReg::x(2), DEV + 0x10);
    r.run(DEV + 0x20).unwrap();
    let want = [
        (VmReg::x(0), u64::from_le_bytes([0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37])),
        (VmReg::x(1), u64::from_le_bytes([0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f])),
        (VmReg::x(2), DEV + 0x20),
        (VmReg::PC, PC + 4),
    ];
    assert_eq!(r.regs.sets, want);
}

#[test]
fn a_store_pair_to_the_stack_pointer_in_el1h() {
    // stp x3, x4, [sp, #-32]!
    let mut r = Rig::new(0xa9be13e3);
    r.set(VmReg::SP, DEV + 0x40);
    r.set(VmReg::SP_EL0, 0xdead);
    r.set(VmReg::x(3), 0x1111_2222_3333_4444);
    r.set(VmReg::x(4), 0x5555_6666_7777_8888);
    r.run(DEV + 0x20).unwrap();
    assert_eq!(
        r.writes(),
        [
            (0x20, 0x1111_2222_3333_4444u64.to_le_bytes().to_vec()),
            (0x28, 0x5555_6666_7777_8888u64.to_le_bytes().to_vec())
        ]
    );
    assert_eq!(r.regs.sets, [(VmReg::SP, DEV + 0x20), (VmReg::PC, PC + 4)]);
    // In EL1t the stack pointer is SP_EL0.
    let mut r = Rig::new(0xa9be13e3);
    r.set(VmReg::CPSR, 0x3c4);
    r.set(VmReg::SP_EL0, DEV + 0x40);
    r.run(DEV + 0x20).unwrap();
    assert_eq!(r.regs.sets[0], (VmReg::SP_EL0, DEV + 0x20));
}

#[test]
fn narrow_and_signed_accesses() {
    // ldrsb w12, [x13, #1]!: sign-extended to 32 bits, upper half clear.
    let mut r = Rig::new(0x38c01dac);
    r.set(VmReg::x(13), DEV + 0x6f); // reads 0x10 + 0x70 = 0x80
    r.run(DEV + 0x70).unwrap();
    assert_eq!(r.regs.sets[..2], [(VmReg::x(12), 0xffff_ff80), (VmReg::x(13), DEV + 0x70)]);
    // strh w10, [x11, #-2]!: two bytes.
    let mut r = Rig::new(0x781fed6a);
    r.set(VmReg::x(10), 0xabcd_1234);
    r.set(VmReg::x(11), DEV + 2);
    r.run(DEV).unwrap();
    assert_eq!(r.writes(), [(0, vec![0x34, 0x12])]);
    // stp xzr, xzr, [x0, #16]: zeros, no writeback.
    let mut r = Rig::new(0xa9017c1f);
    r.set(VmReg::x(0), DEV);
    r.run(DEV + 0x10).unwrap();
    assert_eq!(r.writes(), [(0x10, vec![0; 8]), (0x18, vec![0; 8])]);
    assert_eq!(r.regs.sets, [(VmReg::PC, PC + 4)]);
}

#[test]
fn where_no_device_is_guest_memory_is_used() {
    // ldp w6, w7, [x8], #4 across the end of the device into... RAM here.
    let mut r = Rig::new(0x28c09d06);
    r.mem.write_obj(0x1234_5678u32, GuestAddress(RAM + 0x100)).unwrap();
    r.mem.write_obj(0x9abc_def0u32, GuestAddress(RAM + 0x104)).unwrap();
    r.set(VmReg::x(8), RAM + 0x100);
    r.run(RAM + 0x100).unwrap();
    assert_eq!(r.regs.sets[..3], [(VmReg::x(6), 0x1234_5678), (VmReg::x(7), 0x9abc_def0), (VmReg::x(8), RAM + 0x104)]);
}

#[test]
fn with_the_mmu_on_the_pc_and_other_pages_are_walked() {
    // 4 KiB granule, 39-bit. VA 4 GiB + 0x1000 holds the instruction (at
    // PC); VA 4 GiB + 0x10000 and + 0x11000 map the device's two pages the
    // other way round, so a pair across them reads offset 0x1ff8, then 0.
    let (l1, l2, l3) = (RAM + 0x8_0000, RAM + 0x8_1000, RAM + 0x8_2000);
    let mut r = Rig::new(0xa9c10440); // ldp x0, x1, [x2, #16]!
    let w = |a: u64, v: u64| r.mem.write_obj(v, GuestAddress(a)).unwrap();
    w(l1 + 8 * 4, l2 | 3);
    w(l2, l3 | 3);
    w(l3 + 8, (PC & !0xfff) | 3 | 1 << 10);
    w(l3 + 8 * 0x10, (DEV + 0x1000) | 3 | 1 << 10);
    w(l3 + 8 * 0x11, DEV | 3 | 1 << 10);
    let mut bus = Bus::new();
    bus.insert(Arc::new(Recorder::default()), DEV, 0x2000).unwrap();
    r.bus = bus;
    r.set(VmReg::PC, 0x1_0000_1000);
    r.set(VmReg::SCTLR_EL1, 1);
    r.set(VmReg::TCR_EL1, 25);
    r.set(VmReg::TTBR0_EL1, l1);
    let va = 0x1_0001_0ff8;
    r.set(VmReg::x(2), va - 16);
    // The first access's page comes from the syndrome registers, the second's from the walk.
    r.run_at(va, DEV + 0x1ff8).unwrap();
    let first = u64::from_le_bytes(std::array::from_fn(|i| 0x10u8.wrapping_add(0xf8 + i as u8)));
    let second = u64::from_le_bytes(std::array::from_fn(|i| 0x10 + i as u8));
    assert_eq!(
        r.regs.sets,
        [(VmReg::x(0), first), (VmReg::x(1), second), (VmReg::x(2), va), (VmReg::PC, 0x1_0000_1004)]
    );
    // A PC that does not translate is reported.
    r.set(VmReg::PC, 0x2_0000_0000);
    let e = r.error(DEV);
    assert!(e.contains("its instruction cannot be read: the PC does not translate: its level 1 table entry"), "{e}");
}

#[test]
fn what_is_not_emulated_stops_with_a_description() {
    let mut r = Rig::new(0xc85f7c20); // ldxr x0, [x1]
    assert_eq!(
        r.error(DEV),
        "vCPU 0 stopped: data abort without a valid syndrome at 0x09000000, pc 0x40001000: the instruction \
         0xc85f7c20 is a load/store exclusive or ordered (acquire/release), which bhyve does not emulate \
         (ESR 0x92000046)"
    );
    let mut r = Rig::new(0xa9c10440);
    r.set(VmReg::CPSR, 0x10);
    assert!(r.error(DEV).contains("AArch32 code"));
    let mut r = Rig::new(0xa9c10440);
    r.set(VmReg::PC, 0x10);
    assert!(r.error(DEV).contains("its instruction cannot be read: 0x10 is not guest memory"));
    // An access nothing claims: the usual message, with the pair's address.
    let mut r = Rig::new(0xa9400440); // ldp x0, x1, [x2]
    r.set(VmReg::x(2), 0x0c00_0000);
    assert_eq!(
        r.error(0x0c00_0000),
        "unhandled read of 8 bytes at 0x0c000000 (no device there), pc 0x40001000 on vCPU 0"
    );
    // Registers that cannot be written are the vCPU's failure, not the guest's.
    let mut r = Rig::new(0xa9400440);
    r.set(VmReg::x(2), DEV);
    r.regs.fail = true;
    assert!(matches!(r.run(DEV), Err(Failure::Vmm(_))));
}
