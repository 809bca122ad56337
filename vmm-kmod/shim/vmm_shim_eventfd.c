// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vmm: the C shim's part of the I/O fast paths: eventfds (ioeventfds are
 * signalled by the Rust core, irqfds watched through a wait-queue entry
 * whose callback calls vmm_irqfd_fire), the reader-writer lock of the
 * ioeventfd table, and kicks of vCPUs from atomic context.
 */
#define pr_fmt(fmt) "vmm: " fmt

#include <linux/atomic.h>
#include <linux/cpumask.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/percpu.h>
#include <linux/poll.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/spinlock.h>
#include <linux/version.h>
#include <linux/wait.h>

#include "vmm_shim.h"

/*
 * Kicks from atomic context (an irqfd's wake-up callback runs with the
 * eventfd's lock held and interrupts off, where smp_call_function_single
 * may not be used): one asynchronous call per CPU, whose IPI makes a guest
 * running there exit. While one is on its way to a CPU (busy), a second is
 * not needed: that IPI is still to be taken there, so no kick is lost.
 */
struct vmm_kick {
	call_single_data_t csd;
	atomic_t busy;
};

static DEFINE_PER_CPU(struct vmm_kick, vmm_kicks);

static void vmm_kick_fn(void *info)
{
	struct vmm_kick *k = info;

	atomic_set_release(&k->busy, 0);
}

void vmm_kick_init(void)
{
	unsigned int cpu;

	for_each_possible_cpu(cpu) {
		struct vmm_kick *k = per_cpu_ptr(&vmm_kicks, cpu);

		INIT_CSD(&k->csd, vmm_kick_fn, k);
		atomic_set(&k->busy, 0);
	}
}

void vmm_shim_kick_cpu_atomic(u32 cpu)
{
	struct vmm_kick *k;

	if (cpu >= nr_cpu_ids || !cpu_online(cpu))
		return;
	k = per_cpu_ptr(&vmm_kicks, cpu);
	if (atomic_xchg(&k->busy, 1))
		return;
	if (smp_call_function_single_async(cpu, &k->csd))
		atomic_set(&k->busy, 0);
}

/*
 * At unload (no VM left, so no new kicks): waits for the calls still on
 * their way, whose function is module code, then for any CPU still inside
 * one (IPI handlers run with interrupts off, which a grace period waits for).
 */
void vmm_kick_sync(void)
{
	unsigned int cpu;

	for_each_possible_cpu(cpu)
		while (atomic_read_acquire(&per_cpu_ptr(&vmm_kicks, cpu)->busy))
			cpu_relax();
	synchronize_rcu();
}

/* A reader-writer spinlock (the ioeventfd table, read on the exit path). */
void *vmm_shim_rwlock_create(void)
{
	rwlock_t *l = kmalloc(sizeof(*l), GFP_KERNEL);

	if (l)
		rwlock_init(l);
	return l;
}

void vmm_shim_rwlock_destroy(void *l)
{
	kfree(l);
}

void vmm_shim_rwlock_read_lock(void *l)
{
	read_lock(l);
}

void vmm_shim_rwlock_read_unlock(void *l)
{
	read_unlock(l);
}

void vmm_shim_rwlock_write_lock(void *l)
{
	write_lock(l);
}

void vmm_shim_rwlock_write_unlock(void *l)
{
	write_unlock(l);
}

/* ---- eventfds: ioeventfds and irqfds ------------------------------------- */

/* -EBADF for a descriptor that is not open, -EINVAL for one not an eventfd. */
int vmm_shim_eventfd_get(int fd, void **ctx)
{
	struct eventfd_ctx *c = eventfd_ctx_fdget(fd);

	if (IS_ERR(c))
		return PTR_ERR(c);
	*ctx = c;
	return 0;
}

void vmm_shim_eventfd_signal(void *ctx)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	eventfd_signal(ctx);
#else
	eventfd_signal(ctx, 1);
#endif
}

void vmm_shim_eventfd_put(void *ctx)
{
	eventfd_ctx_put(ctx);
}

/*
 * An irqfd: our entry on the eventfd's wait queue. Its callback runs for
 * every write (EPOLLIN) and when the eventfd is released (EPOLLHUP), with
 * the eventfd's wait-queue lock held and interrupts off.
 */
struct vmm_irqfd {
	wait_queue_entry_t wait;
	poll_table pt;
	struct eventfd_ctx *ctx;
	struct file *file;	/* held from new to arm, for vfs_poll */
	void *vm;
	u32 spi;
	bool level;
	bool armed;
	atomic_t dead;
};

static int vmm_irqfd_wakeup(wait_queue_entry_t *wait, unsigned int mode, int sync, void *key)
{
	struct vmm_irqfd *p = container_of(wait, struct vmm_irqfd, wait);
	__poll_t flags = key_to_poll(key);

	if (flags & EPOLLIN) {
		u64 cnt;

		/* Take the count, so the next write wakes us again. */
		eventfd_ctx_do_read(p->ctx, &cnt);
		vmm_irqfd_fire(p->vm, p->spi, p->level);
	}
	if (flags & EPOLLHUP) {
		/*
		 * Closed: stop watching now (the lock is held by our caller, who
		 * walks the list safely past us); the registration is reaped by
		 * the next VM_IRQFD, VM_REINIT or the VM's end.
		 */
		list_del_init(&wait->entry);
		atomic_set(&p->dead, 1);
	}
	return 0;
}

static void vmm_irqfd_queue(struct file *file, wait_queue_head_t *wqh, poll_table *pt)
{
	struct vmm_irqfd *p = container_of(pt, struct vmm_irqfd, pt);

	add_wait_queue(wqh, &p->wait);
}

int vmm_shim_irqfd_new(int fd, void *vm, u32 spi, bool level, void **hook, void **ctx)
{
	struct vmm_irqfd *p;
	struct eventfd_ctx *c;
	struct file *file = fget(fd);

	if (!file)
		return -EBADF;
	c = eventfd_ctx_fileget(file);
	if (IS_ERR(c)) {
		fput(file);
		return PTR_ERR(c);
	}
	p = kzalloc(sizeof(*p), GFP_KERNEL_ACCOUNT);
	if (!p) {
		eventfd_ctx_put(c);
		fput(file);
		return -ENOMEM;
	}
	p->ctx = c;
	p->file = file;
	p->vm = vm;
	p->spi = spi;
	p->level = level;
	INIT_LIST_HEAD(&p->wait.entry);
	init_waitqueue_func_entry(&p->wait, vmm_irqfd_wakeup);
	init_poll_funcptr(&p->pt, vmm_irqfd_queue);
	*hook = p;
	*ctx = c;
	return 0;
}

void vmm_shim_irqfd_arm(void *hook)
{
	struct vmm_irqfd *p = hook;
	__poll_t events;

	if (p->armed || !p->file)
		return;
	events = vfs_poll(p->file, &p->pt);
	p->armed = true;
	fput(p->file);
	p->file = NULL;
	/* Written before we watched: that write raises the interrupt now. */
	if (events & EPOLLIN)
		vmm_irqfd_fire(p->vm, p->spi, p->level);
}

bool vmm_shim_irqfd_dead(void *hook)
{
	struct vmm_irqfd *p = hook;

	return atomic_read(&p->dead);
}

/* After this no callback runs or will run: the removal takes the lock they run under. */
void vmm_shim_irqfd_free(void *hook)
{
	struct vmm_irqfd *p = hook;
	u64 cnt;

	if (p->armed)
		eventfd_ctx_remove_wait_queue(p->ctx, &p->wait, &cnt);
	if (p->file)
		fput(p->file);
	eventfd_ctx_put(p->ctx);
	kfree(p);
}
