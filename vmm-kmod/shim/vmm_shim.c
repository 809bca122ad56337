// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vmm: the C shim of the bhyve-style hypervisor module for arm64 Linux hosts.
 *
 * Only what must be C lives here: module init/exit, the control device
 * /dev/vmmctl and the per-VM nodes /dev/vmm/NAME, file operations, CPU
 * hotplug and PM notifiers, and thin wrappers of kernel services for the
 * Rust core (vmm_core.o), which holds all the logic.
 */
#define pr_fmt(fmt) "vmm: " fmt

#include <linux/bitops.h>
#include <linux/cdev.h>
#include <linux/cpu.h>
#include <linux/cpu_pm.h>
#include <linux/cpuhotplug.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/hrtimer.h>
#include <linux/interrupt.h>
#include <linux/of.h>
#include <linux/of_irq.h>
#include <linux/percpu.h>
#include <linux/io.h>
#include <linux/miscdevice.h>
#include <linux/ioport.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/ratelimit.h>
#include <linux/sched/signal.h>
#include <linux/sched/stat.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/uaccess.h>
#include <linux/wait.h>
#include <linux/version.h>
#include <asm/cpufeature.h>
#include <asm/neon.h>
#include <asm/sysreg.h>

#include "vmm_shim.h"

static unsigned int max_vms = 32;
module_param(max_vms, uint, 0444);
MODULE_PARM_DESC(max_vms, "most VMs that may exist at once (1-255, default 32)");

static DEFINE_MUTEX(vmm_ctl_mutex);
static dev_t vmm_devt;
/*
 * Every minor of the major: a VM's minor is its slot plus a count of the
 * slot's uses (registry.rs), so a node of a destroyed VM never opens the VM
 * that took its slot.
 */
#define VMM_MINORS (MINORMASK + 1)
static struct cdev vmm_cdev;
static bool vmm_cdev_added;
static struct class *vmm_class;
static struct device **vmm_nodes;
static int vmm_cpuhp_state = -1;

/* ---- services for the Rust core ---------------------------------------- */

void vmm_shim_log(u32 level, const char *msg, size_t len)
{
	int n = (int)min_t(size_t, len, 1024);

	switch (level) {
	case 3:
		pr_err("%.*s\n", n, msg);
		break;
	case 4:
		pr_warn("%.*s\n", n, msg);
		break;
	default:
		pr_info("%.*s\n", n, msg);
		break;
	}
}

/* ---- allocation: counted, and failed on request (tests) ------------------ */

/*
 * What the module holds, for leak tests (VMMCTL_GET_HYP_STATUS): objects
 * from kzalloc/kmalloc, pages of tables and state, guest pages.
 */
static atomic64_t vmm_objects = ATOMIC64_INIT(0);
static atomic64_t vmm_pages = ATOMIC64_INIT(0);
static atomic64_t vmm_guest_pages = ATOMIC64_INIT(0);

/* A vCPU in WFI whose timer is due within this spins for it rather than sleep. */
static unsigned int halt_poll_ns = 200000;
module_param(halt_poll_ns, uint, 0644);
MODULE_PARM_DESC(halt_poll_ns, "a vCPU in WFI whose timer is due within this many ns spins for it instead of sleeping (0: never)");

/*
 * Guest pages belong to the module, not to a process: the OOM killer
 * cannot free them by killing anyone, and a host that gave them its last
 * pages deadlocks (it kills every process, then panics). So a guest page is
 * allocated only while the host keeps this much available memory
 * (MemAvailable); past it the VM that wanted the page stops with an error.
 * -1: 1/32 of RAM, at least 64 MiB and at most 1 GiB.
 */
static int host_reserve_mb = -1;
module_param(host_reserve_mb, int, 0644);
MODULE_PARM_DESC(host_reserve_mb, "MiB of available memory no guest page may take from the host (-1: 1/32 of RAM, 64 MiB to 1 GiB)");

static unsigned long vmm_reserve_pages(void)
{
	int mb = READ_ONCE(host_reserve_mb);

	if (mb < 0)
		return clamp(totalram_pages() / 32, 64UL << (20 - PAGE_SHIFT), 1UL << (30 - PAGE_SHIFT));
	return (unsigned long)mb << (20 - PAGE_SHIFT);
}

/*
 * Tests only (the reference kernel has no failslab): with fault_inject = N,
 * the Nth allocation of the module from then on fails, once.
 */
static int fault_inject;
module_param(fault_inject, int, 0644);
MODULE_PARM_DESC(fault_inject, "tests only: make the Nth allocation from now fail, once (0: none)");

static bool vmm_fault(void)
{
	int n = READ_ONCE(fault_inject);

	while (n > 0) {
		int seen = cmpxchg(&fault_inject, n, n - 1);

		if (seen == n)
			return n == 1;
		n = seen;
	}
	return false;
}

/*
 * Whether KVM is initialised: it then holds the misc minor of /dev/kvm
 * (KVM_MINOR, 232), so a probe device asking for that minor gets EBUSY.
 * Only asked on VHE hosts, where KVM and vmm would share EL2's state.
 */
bool vmm_shim_kvm_on(void)
{
	static struct miscdevice probe = { .minor = 232, .name = "vmm-kvm-probe" };
	int ret = misc_register(&probe);

	if (ret == 0) {
		misc_deregister(&probe);
		return false;
	}
	return ret == -EBUSY;
}

void vmm_shim_counters(u64 *objects, u64 *pages, u64 *guest_pages)
{
	*objects = atomic64_read(&vmm_objects);
	*pages = atomic64_read(&vmm_pages);
	*guest_pages = atomic64_read(&vmm_guest_pages);
}

void *vmm_shim_kzalloc(size_t size)
{
	void *p = vmm_fault() ? NULL : kzalloc(size, GFP_KERNEL);

	if (p)
		atomic64_inc(&vmm_objects);
	return p;
}

void vmm_shim_kfree(void *p)
{
	if (p)
		atomic64_dec(&vmm_objects);
	kfree(p);
}

void *vmm_shim_alloc_page(void)
{
	void *p = vmm_fault() ? NULL : (void *)get_zeroed_page(GFP_KERNEL);

	if (p)
		atomic64_inc(&vmm_pages);
	return p;
}

void vmm_shim_free_page(void *p)
{
	if (p)
		atomic64_dec(&vmm_pages);
	free_page((unsigned long)p);
}

void *vmm_shim_alloc_pages(u32 order)
{
	void *p = vmm_fault() ? NULL : (void *)__get_free_pages(GFP_KERNEL | __GFP_ZERO, order);

	if (p)
		atomic64_add(1L << order, &vmm_pages);
	return p;
}

void vmm_shim_free_pages(void *p, u32 order)
{
	if (p)
		atomic64_sub(1L << order, &vmm_pages);
	free_pages((unsigned long)p, order);
}

u64 vmm_shim_virt_to_phys(const void *p)
{
	return virt_to_phys((void *)p);
}

void *vmm_shim_phys_to_virt(u64 pa)
{
	return phys_to_virt(pa);
}

void vmm_shim_log_ratelimited(u32 level, const char *msg, size_t len)
{
	static DEFINE_RATELIMIT_STATE(rs, 5 * HZ, 10);

	if (__ratelimit(&rs))
		vmm_shim_log(level, msg, len);
}

void *vmm_shim_mutex_create(void)
{
	struct mutex *m = vmm_shim_kzalloc(sizeof(*m));

	if (m)
		mutex_init(m);
	return m;
}

void vmm_shim_mutex_destroy(void *m)
{
	mutex_destroy(m);
	vmm_shim_kfree(m);
}

void vmm_shim_mutex_lock(void *m)
{
	mutex_lock(m);
}

void vmm_shim_mutex_unlock(void *m)
{
	mutex_unlock(m);
}

/*
 * Guest RAM: zeroed, charged to the caller's memory cgroup, and allowed to
 * fail rather than invoke the OOM killer (the VM then stops with an error),
 * and never from the host's reserve (host_reserve_mb).
 * A page allocated ahead of need (the rest of a userspace fault's run, see
 * vmm_vm_fault_op) is not one fault_inject fails: its failure would only
 * shorten the run, and the test counts failures that someone must see.
 */
void *vmm_shim_alloc_guest_page(bool ahead)
{
	struct page *page;

	if (!ahead && vmm_fault())
		return NULL;
	if (si_mem_available() < (long)vmm_reserve_pages())
		return NULL;
	page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO | __GFP_RETRY_MAYFAIL | __GFP_NOWARN);
	if (!page)
		return NULL;
	atomic64_inc(&vmm_guest_pages);
	return page_address(page);
}

/*
 * Guest RAM in 2 MiB chunks, which the guest maps with one stage-2 block
 * (one fault, one TLB entry) instead of 512 pages. Only if one is free
 * without reclaim or compaction (__GFP_NORETRY): the caller falls back to
 * pages, so a fragmented host costs faults, not latency. The chunk is split
 * into 512 pages of their own (refcount 1 each, charged to the memory
 * cgroup each), so userspace mmap faults insert them one by one as any
 * other guest page and a page still mapped by a process outlives the VM's
 * reference alone. Not failed by fault_inject: the fallback absorbs it, and
 * the test counts failures someone must see (s2_blocks=0 tests the pages).
 */
static bool s2_blocks = true;
module_param(s2_blocks, bool, 0644);
MODULE_PARM_DESC(s2_blocks, "give guests their RAM in 2 MiB chunks mapped by stage-2 blocks where the host can (default: on)");

#define VMM_BLOCK_ORDER 9

void *vmm_shim_alloc_guest_block(void)
{
	struct page *page;

	if (!READ_ONCE(s2_blocks))
		return NULL;
	if (si_mem_available() < (long)(vmm_reserve_pages() + (1UL << VMM_BLOCK_ORDER)))
		return NULL;
	page = alloc_pages(GFP_KERNEL_ACCOUNT | __GFP_ZERO | __GFP_NORETRY | __GFP_NOWARN, VMM_BLOCK_ORDER);
	if (!page)
		return NULL;
	split_page(page, VMM_BLOCK_ORDER);
	atomic64_add(1L << VMM_BLOCK_ORDER, &vmm_guest_pages);
	return page_address(page);
}

void vmm_shim_put_block(void *p)
{
	unsigned long pfn = PHYS_PFN(virt_to_phys(p));
	int i;

	atomic64_sub(1L << VMM_BLOCK_ORDER, &vmm_guest_pages);
	for (i = 0; i < 1 << VMM_BLOCK_ORDER; i++)
		put_page(pfn_to_page(pfn + i));
}

/*
 * The kernel's system-wide value of an ID register (S3_0_C0_C<crm>_<op2>):
 * the lowest common denominator of every CPU's, with the command line's
 * overrides applied. Only for registers the kernel tracks.
 */
u64 vmm_shim_sanitised_id_reg(u32 crm, u32 op2)
{
	return read_sanitised_ftr_reg(sys_reg(3, 0, 0, crm, op2));
}

void vmm_shim_put_page(void *p)
{
	atomic64_dec(&vmm_guest_pages);
	put_page(virt_to_page(p));
}

u64 vmm_shim_totalram_bytes(void)
{
	return (u64)totalram_pages() << PAGE_SHIFT;
}

/* A vCPU spinning in WFI gives way to anything else this CPU could run. */
bool vmm_shim_poll_should_stop(void)
{
	return need_resched() || signal_pending(current) || !single_task_running();
}

u32 vmm_shim_halt_poll_ns(void)
{
	return READ_ONCE(halt_poll_ns);
}

bool vmm_shim_signal_pending(void)
{
	return signal_pending(current);
}

void vmm_shim_cond_resched(void)
{
	cond_resched();
}

/*
 * Around one entry into a guest. When the guest uses FP/SIMD (fp), the
 * current task's FP/SIMD (and SVE/SME) state is saved by the kernel and
 * reloaded on return to userspace, so EL2 only loads and saves the guest's
 * registers; otherwise CPTR_EL2 traps the guest's FP and the task's state
 * stays in the registers. Interrupts stay masked until the guest has
 * exited; one that arrived meanwhile is taken in vmm_shim_guest_exit.
 */
u32 vmm_shim_guest_enter(bool fp)
{
	if (fp)
		kernel_neon_begin();
	local_irq_disable();
	return smp_processor_id();
}

void vmm_shim_guest_exit(bool fp)
{
	local_irq_enable();
	if (fp)
		kernel_neon_end();
}

static void vmm_kick_ipi(void *unused)
{
}

/* The interrupt itself makes a guest on that CPU exit; nothing else to do. */
void vmm_shim_kick_cpu(u32 cpu)
{
	if (cpu < nr_cpu_ids && cpu_online(cpu))
		smp_call_function_single(cpu, vmm_kick_ipi, NULL, 0);
}

int vmm_shim_copy_from_user(void *dst, u64 src, size_t len)
{
	return copy_from_user(dst, u64_to_user_ptr(src), len) ? -EFAULT : 0;
}

int vmm_shim_copy_to_user(u64 dst, const void *src, size_t len)
{
	return copy_to_user(u64_to_user_ptr(dst), src, len) ? -EFAULT : 0;
}

void vmm_shim_ctl_lock(void)
{
	mutex_lock(&vmm_ctl_mutex);
}

void vmm_shim_ctl_unlock(void)
{
	mutex_unlock(&vmm_ctl_mutex);
}

/* Called with vmm_ctl_mutex held. The node's name is the VM's (no '/'). */
int vmm_shim_vm_node_create(u32 slot, u32 minor, const char *name, size_t len)
{
	struct device *dev;

	if (slot >= max_vms || vmm_nodes[slot] || minor >= VMM_MINORS)
		return -EINVAL;
	dev = device_create(vmm_class, NULL, MKDEV(MAJOR(vmm_devt), minor), NULL,
			    "%.*s", (int)len, name);
	if (IS_ERR(dev))
		return PTR_ERR(dev);
	vmm_nodes[slot] = dev;
	return 0;
}

/* Called with vmm_ctl_mutex held. */
void vmm_shim_vm_node_destroy(u32 slot)
{
	if (slot >= max_vms || !vmm_nodes[slot])
		return;
	device_destroy(vmm_class, vmm_nodes[slot]->devt);
	vmm_nodes[slot] = NULL;
}

void vmm_shim_module_get(void)
{
	__module_get(THIS_MODULE);
}

void vmm_shim_module_put(void)
{
	module_put(THIS_MODULE);
}

void vmm_shim_online_cpus(u64 *mask, size_t words)
{
	unsigned int cpu;

	memset(mask, 0, words * sizeof(u64));
	for_each_online_cpu(cpu)
		if (cpu < words * 64)
			mask[cpu / 64] |= 1ULL << (cpu % 64);
}

struct vmm_ping {
	u64 *mask;
	size_t words;
};

static void vmm_ping_ipi(void *arg)
{
	struct vmm_ping *p = arg;
	unsigned int cpu = smp_processor_id();

	if (cpu < p->words * 64 && vmm_core_cpu_ping(cpu))
		set_bit(cpu, (unsigned long *)p->mask);
}

void vmm_shim_ping_cpus(u64 *mask, size_t words)
{
	struct vmm_ping p = { .mask = mask, .words = words };

	memset(mask, 0, words * sizeof(u64));
	cpus_read_lock();
	on_each_cpu(vmm_ping_ipi, &p, 1);
	cpus_read_unlock();
}

void __noreturn vmm_shim_bug(void)
{
	BUG();
}

/*
 * Where a vCPU thread sleeps in WFI: a wake flag, a wait queue, and a
 * timer that wakes it at the guest's next timer deadline. The timer is a
 * hard-irq timer pinned to the CPU that arms it, so when that CPU is
 * running the guest, the timer interrupt itself makes the guest exit.
 */
struct vmm_waiter {
	wait_queue_head_t wq;
	atomic_t woken;
	struct hrtimer timer;
};

static enum hrtimer_restart vmm_waiter_timer_fn(struct hrtimer *t)
{
	struct vmm_waiter *w = container_of(t, struct vmm_waiter, timer);

	atomic_set(&w->woken, 1);
	wake_up_interruptible(&w->wq);
	return HRTIMER_NORESTART;
}

void *vmm_shim_waiter_create(void)
{
	struct vmm_waiter *w = vmm_shim_kzalloc(sizeof(*w));

	if (!w)
		return NULL;
	init_waitqueue_head(&w->wq);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
	hrtimer_setup(&w->timer, vmm_waiter_timer_fn, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_HARD);
#else
	hrtimer_init(&w->timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_HARD);
	w->timer.function = vmm_waiter_timer_fn;
#endif
	return w;
}

void vmm_shim_waiter_destroy(void *p)
{
	struct vmm_waiter *w = p;

	hrtimer_cancel(&w->timer);
	vmm_shim_kfree(w);
}

void vmm_shim_waiter_arm(void *p, u64 ns)
{
	struct vmm_waiter *w = p;

	hrtimer_start(&w->timer, ns_to_ktime(ns), HRTIMER_MODE_REL_PINNED_HARD);
}

bool vmm_shim_waiter_woken(void *p)
{
	struct vmm_waiter *w = p;

	return atomic_read(&w->woken);
}

bool vmm_shim_waiter_queued(void *p)
{
	struct vmm_waiter *w = p;

	return hrtimer_is_queued(&w->timer);
}

void vmm_shim_waiter_disarm(void *p)
{
	struct vmm_waiter *w = p;

	hrtimer_try_to_cancel(&w->timer);
}

void vmm_shim_waiter_clear(void *p)
{
	struct vmm_waiter *w = p;

	atomic_set(&w->woken, 0);
}

/* 0 when woken, -ERESTARTSYS when a signal is pending. */
int vmm_shim_waiter_wait(void *p)
{
	struct vmm_waiter *w = p;

	return wait_event_interruptible(w->wq, atomic_read(&w->woken));
}

void vmm_shim_waiter_wake(void *p)
{
	struct vmm_waiter *w = p;

	atomic_set(&w->woken, 1);
	wake_up_interruptible(&w->wq);
}

/* ---- ioctls -------------------------------------------------------------- */

/*
 * Copies the argument in (for _IOW), lets Rust handle it on the kernel copy,
 * and copies it out (for _IOR). Rust checks that size and command agree.
 */
static long vmm_ioctl_call(void *vm, struct file *f, unsigned int cmd, unsigned long uarg)
{
	size_t size = _IOC_SIZE(cmd);
	u8 stackbuf[256];
	u8 *buf = stackbuf;
	long ret;

	if (size > sizeof(stackbuf)) {
		buf = vmm_fault() ? NULL : kzalloc(size, GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
	} else {
		memset(buf, 0, size);
	}
	if ((_IOC_DIR(cmd) & _IOC_WRITE) && copy_from_user(buf, (void __user *)uarg, size)) {
		ret = -EFAULT;
		goto out;
	}
	if (vm)
		ret = vmm_vm_ioctl(vm, f, cmd, buf, size);
	else
		ret = vmm_ctl_ioctl(cmd, buf, size);
	if (ret >= 0 && (_IOC_DIR(cmd) & _IOC_READ) && copy_to_user((void __user *)uarg, buf, size))
		ret = -EFAULT;
out:
	if (buf != stackbuf)
		kfree(buf);
	return ret;
}

static long vmmctl_unlocked_ioctl(struct file *f, unsigned int cmd, unsigned long uarg)
{
	return vmm_ioctl_call(NULL, NULL, cmd, uarg);
}

static const struct file_operations vmmctl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = vmmctl_unlocked_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice vmmctl_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vmmctl",
	.fops = &vmmctl_fops,
	.mode = 0600,
};

static int vmm_vm_fop_open(struct inode *inode, struct file *f)
{
	void *vm = NULL;
	int ret = vmm_vm_open(iminor(inode), &vm);

	if (ret)
		return ret;
	f->private_data = vm;
	return nonseekable_open(inode, f);
}

static int vmm_vm_fop_release(struct inode *inode, struct file *f)
{
	vmm_vm_release(f->private_data, f);
	return 0;
}

static long vmm_vm_fop_ioctl(struct file *f, unsigned int cmd, unsigned long uarg)
{
	return vmm_ioctl_call(f->private_data, f, cmd, uarg);
}

/*
 * Guest memory mapped by userspace: pages come from the VM on first touch.
 * No page (the host is out of memory, or the caller's memory cgroup at its
 * limit) is SIGBUS, as for hugetlbfs: VM_FAULT_OOM would only make the
 * kernel retry the fault for ever, since guest pages never invoke the OOM
 * killer.
 *
 * One fault maps a run of pages, up to VMM_FAULT_RUN from the faulting one
 * on (within the mapping and guest memory), with vm_insert_pages: writing
 * a kernel into guest memory then costs a fault per 64 KiB, not per page.
 * The kernel's own fault-around does this for read faults of page-cache
 * files only; these are writes, mostly. The pages are ordinary, counted
 * pages as before (O_DIRECT and the like still work on them). In a
 * writable mapping the run's entries are then made dirty, as a write
 * fault's own entry is: otherwise the first write to each would fault
 * again to set the dirty bit (on CPUs that do not manage dirty bits, such
 * as the Cortex-A57), for pages that no one writes back anyway.
 */
#define VMM_FAULT_RUN 16

/*
 * Under the page-table lock (apply_to_existing_page_range takes it). Only
 * the dirty state changes, so set_pte_at's extra work for a new entry (cache
 * and MTE tag upkeep, done when the entry was made) is not needed.
 */
static int vmm_pte_mkdirty(pte_t *pte, unsigned long addr, void *data)
{
	pte_t old = ptep_get(pte);

	if (pte_present(old) && pte_write(old) && !pte_dirty(old))
		set_pte(pte, pte_mkdirty(old));
	return 0;
}

static vm_fault_t vmm_vm_fault_op(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	void *vm = vma->vm_file->private_data;
	unsigned long addr = vmf->address & PAGE_MASK;
	u32 n = min_t(unsigned long, VMM_FAULT_RUN, (vma->vm_end - addr) >> PAGE_SHIFT);
	u64 gpa = (u64)vmf->pgoff << PAGE_SHIFT;
	struct page *pages[VMM_FAULT_RUN];
	u64 pa[VMM_FAULT_RUN];
	unsigned long left;
	int i, got, err;

	got = vmm_vm_fault(vm, gpa, pa, n);
	if (got == -ENOMEM)
		pr_warn_ratelimited("no memory for a guest page at %#llx mapped by %s[%d]: SIGBUS\n",
				    gpa, current->comm, task_pid_nr(current));
	if (got <= 0)
		return VM_FAULT_SIGBUS;
	for (i = 0; i < got; i++)
		pages[i] = pfn_to_page(PHYS_PFN(pa[i]));
	left = got;
	err = vm_insert_pages(vma, addr, pages, &left);
	/*
	 * -EBUSY: a page of the run is mapped already (another thread's fault,
	 * or an earlier run); those before it are in, and the faulting page is
	 * mapped either way.
	 */
	if (err && err != -EBUSY)
		return vmf_error(err);
	if ((vma->vm_flags & VM_WRITE) && left < got)
		apply_to_existing_page_range(vma->vm_mm, addr, (got - left) << PAGE_SHIFT, vmm_pte_mkdirty, NULL);
	return VM_FAULT_NOPAGE;
}

static const struct vm_operations_struct vmm_vm_vmops = {
	.fault = vmm_vm_fault_op,
};

/* mmap of /dev/vmm/NAME at offset = guest physical address, shared only. */
static int vmm_vm_fop_mmap(struct file *f, struct vm_area_struct *vma)
{
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT;
	int ret = vmm_vm_mmap(f->private_data, off, vma->vm_end - vma->vm_start, vma->vm_flags & VM_SHARED);

	if (ret)
		return ret;
	/* VM_MIXEDMAP lets the fault handler vm_insert_pages (mmap_lock read-held). */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP | VM_MIXEDMAP);
#else
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP | VM_MIXEDMAP;
#endif
	vma->vm_ops = &vmm_vm_vmops;
	return 0;
}

static const struct file_operations vmm_vm_fops = {
	.owner = THIS_MODULE,
	.open = vmm_vm_fop_open,
	.release = vmm_vm_fop_release,
	.unlocked_ioctl = vmm_vm_fop_ioctl,
	.mmap = vmm_vm_fop_mmap,
	.llseek = no_llseek,
};

/* /dev/vmm/NAME, root only. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
static char *vmm_devnode(const struct device *dev, umode_t *mode)
#else
static char *vmm_devnode(struct device *dev, umode_t *mode)
#endif
{
	if (mode)
		*mode = 0600;
	return kasprintf(GFP_KERNEL, "vmm/%s", dev_name(dev));
}

/*
 * The GICv3 maintenance interrupt (a PPI, from the host GIC's device-tree
 * node). While a guest runs it is routed to EL2 like every interrupt, so
 * its only job is to make the guest exit: when list registers drain with
 * more interrupts waiting (ICH_HCR_EL2.UIE), or when the guest EOIs a
 * level-sensitive one that must be looked at again. EL2 turns the virtual
 * interface off on exit, which lowers it again; the handler has nothing
 * left to do. Without a device tree (ACPI hosts) it is not used, and such
 * interrupts wait for the vCPU's next exit.
 */
static int vmm_maint_irq;
static DEFINE_PER_CPU(u8, vmm_maint_cookie);

static irqreturn_t vmm_maint_handler(int irq, void *cookie)
{
	return IRQ_HANDLED;
}

static void vmm_maint_setup(void)
{
	struct device_node *gic = of_find_compatible_node(NULL, NULL, "arm,gic-v3");
	int irq = gic ? irq_of_parse_and_map(gic, 0) : 0;

	of_node_put(gic);
	if (irq <= 0)
		return;
	if (request_percpu_irq(irq, vmm_maint_handler, "vmm-gic-maintenance", &vmm_maint_cookie)) {
		pr_warn("GIC maintenance interrupt unavailable: interrupts beyond the list registers wait for the next exit\n");
		return;
	}
	vmm_maint_irq = irq;
}

static void vmm_maint_teardown(void)
{
	if (vmm_maint_irq > 0)
		free_percpu_irq(vmm_maint_irq, &vmm_maint_cookie);
	vmm_maint_irq = 0;
}

/* ---- CPU hotplug and PM: EL2 is lost when a CPU goes down ---------------- */

static int vmm_cpu_online(unsigned int cpu)
{
	int ret;

	if (WARN_ON_ONCE(cpu != raw_smp_processor_id()))
		return -EINVAL;
	ret = vmm_core_cpu_online(cpu);
	if (!ret && vmm_maint_irq > 0)
		enable_percpu_irq(vmm_maint_irq, IRQ_TYPE_NONE);
	return ret;
}

static int vmm_cpu_offline(unsigned int cpu)
{
	if (WARN_ON_ONCE(cpu != raw_smp_processor_id()))
		return 0;
	if (vmm_maint_irq > 0)
		disable_percpu_irq(vmm_maint_irq);
	vmm_core_cpu_offline(cpu);
	return 0;
}

static int vmm_cpu_pm_notify(struct notifier_block *nb, unsigned long action, void *v)
{
	if (action == CPU_PM_EXIT || action == CPU_PM_ENTER_FAILED)
		vmm_core_cpu_pm_exit(smp_processor_id());
	return NOTIFY_OK;
}

static struct notifier_block vmm_cpu_pm_nb = {
	.notifier_call = vmm_cpu_pm_notify,
};

/* ---- module init/exit ---------------------------------------------------- */

static void vmm_teardown(void)
{
	vmm_core_destroy_vms();
	if (vmm_cpuhp_state >= 0) {
		cpu_pm_unregister_notifier(&vmm_cpu_pm_nb);
		cpuhp_remove_state(vmm_cpuhp_state);
		vmm_cpuhp_state = -1;
	}
	vmm_maint_teardown();
	if (vmm_cdev_added)
		cdev_del(&vmm_cdev);
	vmm_cdev_added = false;
	if (!IS_ERR_OR_NULL(vmm_class))
		class_destroy(vmm_class);
	vmm_class = NULL;
	if (vmm_devt)
		unregister_chrdev_region(vmm_devt, VMM_MINORS);
	vmm_devt = 0;
	kfree(vmm_nodes);
	vmm_nodes = NULL;
	vmm_core_exit();
}

/* The host's RAM, for the EL2 identity map (device memory is never mapped). */
#define VMM_MAX_RAM_RANGES 128
struct vmm_ram {
	u64 range[VMM_MAX_RAM_RANGES][2];
	size_t n;
	bool overflow;
};

static int vmm_add_ram(struct resource *res, void *arg)
{
	struct vmm_ram *ram = arg;

	if (ram->n == VMM_MAX_RAM_RANGES) {
		ram->overflow = true;
		return 0;
	}
	ram->range[ram->n][0] = res->start;
	ram->range[ram->n][1] = res->end + 1;
	ram->n++;
	return 0;
}

static int __init vmm_init(void)
{
	struct vmm_ram *ram = kzalloc(sizeof(*ram), GFP_KERNEL);
	int ret;

	if (!ram)
		return -ENOMEM;
	/* What walk_system_ram_res() walks; that one is not exported. */
	walk_iomem_res_desc(IORES_DESC_NONE, IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY, 0, U64_MAX, ram, vmm_add_ram);
	if (ram->overflow || !ram->n) {
		pr_err("cannot load: %s RAM ranges to map at EL2\n", ram->n ? "too many" : "no");
		kfree(ram);
		return -ENODEV;
	}
	vmm_kick_init();
	ret = vmm_core_init(nr_cpu_ids, max_vms, (const u64 (*)[2])ram->range, ram->n);
	kfree(ram);
	if (ret)
		return ret;

	ret = -ENOMEM;
	vmm_nodes = kcalloc(max_vms, sizeof(*vmm_nodes), GFP_KERNEL);
	if (!vmm_nodes)
		goto fail;
	ret = alloc_chrdev_region(&vmm_devt, 0, VMM_MINORS, "vmm");
	if (ret)
		goto fail;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	vmm_class = class_create("vmm");
#else
	vmm_class = class_create(THIS_MODULE, "vmm");
#endif
	if (IS_ERR(vmm_class)) {
		ret = PTR_ERR(vmm_class);
		goto fail;
	}
	vmm_class->devnode = vmm_devnode;
	cdev_init(&vmm_cdev, &vmm_vm_fops);
	vmm_cdev.owner = THIS_MODULE;
	ret = cdev_add(&vmm_cdev, vmm_devt, VMM_MINORS);
	if (ret)
		goto fail;
	vmm_cdev_added = true;

	vmm_maint_setup();
	/* Take EL2 on every online CPU now, and on every CPU that comes online. */
	ret = cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "vmm:online", vmm_cpu_online, vmm_cpu_offline);
	if (ret < 0) {
		ret = -ENODEV;
		goto fail;
	}
	vmm_cpuhp_state = ret;
	ret = cpu_pm_register_notifier(&vmm_cpu_pm_nb);
	if (ret)
		goto fail;

	ret = misc_register(&vmmctl_misc);
	if (ret)
		goto fail;
	if (vmm_core_vhe())
		pr_info("ready: VHE, guests run from the kernel at EL2 on %u CPUs, up to %u VMs\n",
			num_online_cpus(), max_vms);
	else
		pr_info("ready: EL2 held on %u CPUs, up to %u VMs\n", num_online_cpus(), max_vms);
	return 0;
fail:
	vmm_teardown();
	return ret;
}

static void __exit vmm_exit(void)
{
	misc_deregister(&vmmctl_misc);
	vmm_teardown();
	vmm_kick_sync();
	pr_info("unloaded%s\n", vmm_core_vhe() ? "" : ": EL2 given back to the hyp stub");
}

module_init(vmm_init);
module_exit(vmm_exit);
MODULE_LICENSE("Dual BSD/GPL");
MODULE_DESCRIPTION("bhyve-style hypervisor for arm64 Linux hosts (EL2, stage 2, VMs)");
