//! The module's EL2 resources: the code page and one hyp page per CPU, and
//! which CPUs run our vectors.

use super::{install, uninstall, CpuHyp, El2, HostMode, MmuConfig, Owner, Refusal};
use crate::errno::{Errno, EINVAL, ENOMEM};
use crate::kernel::{KernelTables, Page};
use crate::mm::el2map::{El2Map, MAIR_EL2};
use crate::mm::stage2::Geometry;
use crate::mm::TableAlloc;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use vmm_uapi::{CPU_MASK_WORDS, VMM_MAX_CPUS};

/// The EL2 code's pages: 2^order, contiguous (the code may not fit one).
const EL2_CODE_ORDER: u32 = 1;
/// Their size.
pub const EL2_CODE_SIZE: usize = 4096 << EL2_CODE_ORDER;

/// EL2 state shared by every CPU.
pub struct HypState {
    code: AtomicPtr<u8>,
    code_pa: AtomicU64,
    probe_offset: AtomicU64,
    pages: [AtomicPtr<u8>; VMM_MAX_CPUS],
    page_pas: [AtomicU64; VMM_MAX_CPUS],
    installed: [AtomicU64; CPU_MASK_WORDS],
    nr_cpus: AtomicUsize,
    mmu_ttbr0: AtomicU64,
    mmu_tcr: AtomicU64,
    map: AtomicPtr<El2Map>,
    parange: AtomicU64,
    vhe: AtomicBool,
}

/// The module's one instance.
pub static HYP: HypState = HypState::new();

impl HypState {
    /// Nothing allocated, nothing installed.
    pub const fn new() -> Self {
        Self {
            code: AtomicPtr::new(null_mut()),
            code_pa: AtomicU64::new(0),
            probe_offset: AtomicU64::new(0),
            pages: [const { AtomicPtr::new(null_mut()) }; VMM_MAX_CPUS],
            page_pas: [const { AtomicU64::new(0) }; VMM_MAX_CPUS],
            installed: [const { AtomicU64::new(0) }; CPU_MASK_WORDS],
            nr_cpus: AtomicUsize::new(0),
            mmu_ttbr0: AtomicU64::new(0),
            mmu_tcr: AtomicU64::new(0),
            map: AtomicPtr::new(null_mut()),
            parange: AtomicU64::new(0),
            vhe: AtomicBool::new(false),
        }
    }

    /// How the host uses EL2 (set by [`HypState::init`]).
    pub fn mode(&self) -> HostMode {
        if self.vhe.load(Ordering::Relaxed) {
            HostMode::Vhe
        } else {
            HostMode::Nvhe
        }
    }

    /// Kernel address of CPU `cpu`'s hyp page.
    pub fn page_va(&self, cpu: usize) -> Option<*mut u8> {
        let p = self.pages.get(cpu)?.load(Ordering::Acquire);
        (!p.is_null()).then_some(p)
    }

    /// Allocates a hyp page for each of `nr_cpus` possible CPUs and, without
    /// VHE, the EL2 code page (a copy of `blob`, which must fit a page and
    /// starts with the vector table) and the EL2 identity map of `ram`
    /// (physical ranges `[start, end)`) for a CPU of PA range `parange`
    /// (ID_AA64MMFR0_EL1.PARange). `publish` makes the copied code visible
    /// to EL2 (cache maintenance). Under VHE the kernel's own mappings serve.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        &self,
        mode: HostMode,
        nr_cpus: usize,
        blob: &[u8],
        probe_offset: usize,
        ram: &[(u64, u64)],
        parange: u64,
        publish: impl Fn(*const u8, usize),
    ) -> Result<(), Errno> {
        if nr_cpus == 0 || nr_cpus > VMM_MAX_CPUS || blob.len() > EL2_CODE_SIZE || probe_offset >= blob.len() {
            return Err(EINVAL);
        }
        self.parange.store(parange, Ordering::Relaxed);
        self.vhe.store(mode == HostMode::Vhe, Ordering::Relaxed);
        if mode == HostMode::Vhe {
            self.nr_cpus.store(nr_cpus, Ordering::Relaxed);
            return self.alloc_pages(nr_cpus);
        }
        let mut tables = KernelTables;
        let mut map = El2Map::new(&mut tables, Geometry::parange_bits(parange)).map_err(|_| ENOMEM)?;
        for &(start, end) in ram {
            if map.map_identity(&mut tables, start & !0xfff, (end + 0xfff) & !0xfff).is_err() {
                map.free(&mut tables);
                return Err(ENOMEM);
            }
        }
        self.mmu_ttbr0.store(map.ttbr0(), Ordering::Relaxed);
        self.mmu_tcr.store(map.tcr(parange), Ordering::Relaxed);
        let map = crate::kernel::KBox::try_new(map)?;
        self.map.store(crate::kernel::KBox::into_raw(map), Ordering::Release);
        self.nr_cpus.store(nr_cpus, Ordering::Relaxed);
        let (code, code_pa) = KernelTables.alloc(EL2_CODE_ORDER).ok_or(ENOMEM)?;
        let code = code as *mut u8;
        // SAFETY: the pages hold EL2_CODE_SIZE bytes, blob.len() <= that,
        // and they are fresh, distinct from the blob.
        unsafe { core::ptr::copy_nonoverlapping(blob.as_ptr(), code, blob.len()) };
        publish(code, EL2_CODE_SIZE);
        self.code_pa.store(code_pa, Ordering::Relaxed);
        self.probe_offset.store(probe_offset as u64, Ordering::Relaxed);
        self.code.store(code, Ordering::Release);
        self.alloc_pages(nr_cpus)
    }

    /// A hyp page for each of `nr_cpus` CPUs.
    fn alloc_pages(&self, nr_cpus: usize) -> Result<(), Errno> {
        for cpu in 0..nr_cpus {
            let page = Page::alloc().map_err(|_| ENOMEM)?;
            self.page_pas[cpu].store(page.pa(), Ordering::Relaxed);
            self.pages[cpu].store(page.va(), Ordering::Release);
            core::mem::forget(page);
        }
        Ok(())
    }

    /// Physical address of the EL2 code.
    pub fn code_pa(&self) -> u64 {
        self.code_pa.load(Ordering::Relaxed)
    }

    /// Number of possible CPUs given to [`HypState::init`].
    pub fn nr_cpus(&self) -> usize {
        self.nr_cpus.load(Ordering::Relaxed)
    }

    fn cpu(&self, cpu: usize) -> Option<CpuHyp> {
        if cpu >= self.nr_cpus() {
            return None;
        }
        let page_va = self.pages[cpu].load(Ordering::Acquire);
        if page_va.is_null() || (self.mode() == HostMode::Nvhe && self.code.load(Ordering::Acquire).is_null()) {
            return None;
        }
        Some(CpuHyp {
            page_va,
            page_pa: self.page_pas[cpu].load(Ordering::Relaxed),
            code_pa: self.code_pa.load(Ordering::Relaxed),
            probe_offset: self.probe_offset.load(Ordering::Relaxed),
            mmu: MmuConfig {
                ttbr0: self.mmu_ttbr0.load(Ordering::Relaxed),
                tcr: self.mmu_tcr.load(Ordering::Relaxed),
                mair: MAIR_EL2,
            },
        })
    }

    /// ID_AA64MMFR0_EL1.PARange of the host.
    pub fn parange(&self) -> u64 {
        self.parange.load(Ordering::Relaxed)
    }

    /// Takes EL2 on the calling CPU, `cpu`.
    pub fn cpu_online(&self, hw: &impl El2, cpu: usize) -> Result<(), Refusal> {
        let Some(c) = self.cpu(cpu) else {
            return Err(Refusal::UnexpectedEl(0xff));
        };
        install(hw, &c, self.mode())?;
        self.installed[cpu / 64].fetch_or(1 << (cpu % 64), Ordering::AcqRel);
        Ok(())
    }

    /// Gives EL2 back on the calling CPU, `cpu`; whether the stub answers now.
    pub fn cpu_offline(&self, hw: &impl El2, cpu: usize) -> bool {
        let Some(c) = self.cpu(cpu) else { return true };
        let ok = uninstall(hw, &c, self.mode());
        self.installed[cpu / 64].fetch_and(!(1 << (cpu % 64)), Ordering::AcqRel);
        ok
    }

    /// After a low-power state the CPU comes back with the stub's vectors:
    /// take EL2 again if we held it before.
    pub fn cpu_resume(&self, hw: &impl El2, cpu: usize) -> Result<(), Refusal> {
        if !self.is_installed(cpu) {
            return Ok(());
        }
        self.cpu_online(hw, cpu)
    }

    /// Whether our vectors answer on the calling CPU, `cpu`.
    pub fn answers(&self, hw: &impl El2, cpu: usize) -> bool {
        match self.cpu(cpu) {
            Some(_) if self.mode() == HostMode::Vhe => self.is_installed(cpu),
            Some(c) => self.is_installed(cpu) && super::owner(hw, &c) == Owner::Us,
            None => false,
        }
    }

    /// Whether the module believes it holds EL2 on `cpu`.
    pub fn is_installed(&self, cpu: usize) -> bool {
        cpu < VMM_MAX_CPUS && self.installed[cpu / 64].load(Ordering::Acquire) & (1 << (cpu % 64)) != 0
    }

    /// The installed-CPU bitmap.
    pub fn installed_mask(&self) -> [u64; CPU_MASK_WORDS] {
        core::array::from_fn(|i| self.installed[i].load(Ordering::Acquire))
    }

    /// Frees everything. EL2 memory is leaked, not freed, while any CPU may
    /// still vector into it; returns false then.
    pub fn release(&self) -> bool {
        if self.installed_mask().iter().any(|&w| w != 0) {
            return false;
        }
        let map = self.map.swap(null_mut(), Ordering::AcqRel);
        if !map.is_null() {
            // SAFETY: from KBox::into_raw in init; no CPU uses the map now.
            let map = unsafe { crate::kernel::KBox::from_raw(map) };
            // SAFETY: KBox owns a valid El2Map; read it out before the box is freed.
            let map = unsafe { core::ptr::read(&*map) };
            map.free(&mut KernelTables);
        }
        let code = self.code.swap(null_mut(), Ordering::AcqRel);
        if !code.is_null() {
            // The pages came from KernelTables.alloc with this order; no CPU uses them.
            KernelTables.free(code as *mut u64, EL2_CODE_ORDER);
        }
        for slot in &self.pages {
            let p = slot.swap(null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: as above.
                drop(unsafe { Page::from_raw(p) });
            }
        }
        true
    }
}

impl Default for HypState {
    fn default() -> Self {
        Self::new()
    }
}
