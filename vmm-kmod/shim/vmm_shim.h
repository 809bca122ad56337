/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The interface between the C shim and the Rust core of the vmm module.
 * Rust implements vmm_core_* and vmm_{ctl,vm}_*; the shim implements vmm_shim_*.
 */
#ifndef VMM_SHIM_H
#define VMM_SHIM_H

#include <linux/types.h>

/* Rust core */
int vmm_core_init(u32 nr_cpus, u32 max_vms, const u64 (*ram)[2], size_t nr_ram);
void vmm_core_exit(void);
void vmm_core_destroy_vms(void);
int vmm_core_cpu_online(u32 cpu);
void vmm_core_cpu_offline(u32 cpu);
int vmm_core_cpu_pm_exit(u32 cpu);
bool vmm_core_cpu_ping(u32 cpu);
long vmm_ctl_ioctl(u32 cmd, void *buf, size_t len);
int vmm_vm_open(u32 minor, void **out);
void vmm_vm_release(void *vm, const void *owner);
long vmm_vm_ioctl(void *vm, const void *owner, u32 cmd, void *buf, size_t len);
int vmm_vm_mmap(void *vm, u64 offset, u64 len, bool shared);
int vmm_vm_fault(void *vm, u64 gpa, u64 *pa, u32 n);
void vmm_irqfd_fire(void *vm, u32 spi, bool level);

/* C shim services */
void vmm_shim_log(u32 level, const char *msg, size_t len);
void *vmm_shim_kzalloc(size_t size);
void vmm_shim_kfree(void *p);
void *vmm_shim_alloc_page(void);
void vmm_shim_free_page(void *p);
void *vmm_shim_alloc_pages(u32 order);
void vmm_shim_free_pages(void *p, u32 order);
u64 vmm_shim_virt_to_phys(const void *p);
void *vmm_shim_phys_to_virt(u64 pa);
void vmm_shim_log_ratelimited(u32 level, const char *msg, size_t len);
void *vmm_shim_mutex_create(void);
void vmm_shim_mutex_destroy(void *m);
void vmm_shim_mutex_lock(void *m);
void vmm_shim_mutex_unlock(void *m);
void *vmm_shim_alloc_guest_page(bool ahead);
u64 vmm_shim_sanitised_id_reg(u32 crm, u32 op2);
void vmm_shim_put_page(void *p);
void *vmm_shim_alloc_guest_block(void);
void vmm_shim_put_block(void *p);
void vmm_shim_counters(u64 *objects, u64 *pages, u64 *guest_pages);
bool vmm_shim_kvm_on(void);
bool vmm_core_vhe(void);
u64 vmm_shim_totalram_bytes(void);
bool vmm_shim_signal_pending(void);
void vmm_shim_cond_resched(void);
u32 vmm_shim_guest_enter(bool fp);
void vmm_shim_guest_exit(bool fp);
void vmm_shim_kick_cpu(u32 cpu);
int vmm_shim_copy_from_user(void *dst, u64 src, size_t len);
int vmm_shim_copy_to_user(u64 dst, const void *src, size_t len);
void *vmm_shim_waiter_create(void);
void vmm_shim_waiter_destroy(void *w);
void vmm_shim_waiter_arm(void *w, u64 ns);
bool vmm_shim_waiter_queued(void *w);
bool vmm_shim_waiter_woken(void *w);
bool vmm_shim_poll_should_stop(void);
u32 vmm_shim_halt_poll_ns(void);
void vmm_shim_waiter_disarm(void *w);
void vmm_shim_waiter_clear(void *w);
int vmm_shim_waiter_wait(void *w);
void vmm_shim_waiter_wake(void *w);
void vmm_shim_ctl_lock(void);
void vmm_shim_ctl_unlock(void);
int vmm_shim_vm_node_create(u32 slot, u32 minor, const char *name, size_t len);
void vmm_shim_vm_node_destroy(u32 slot);
void vmm_shim_module_get(void);
void vmm_shim_module_put(void);
void vmm_shim_online_cpus(u64 *mask, size_t words);
void vmm_shim_ping_cpus(u64 *mask, size_t words);
void __noreturn vmm_shim_bug(void);
void vmm_shim_kick_cpu_atomic(u32 cpu);

/* Shim-internal (vmm_shim_eventfd.c for vmm_shim.c) */
void vmm_kick_init(void);
void vmm_kick_sync(void);

/* C shim services: eventfds and their locks */
void *vmm_shim_rwlock_create(void);
void vmm_shim_rwlock_destroy(void *l);
void vmm_shim_rwlock_read_lock(void *l);
void vmm_shim_rwlock_read_unlock(void *l);
void vmm_shim_rwlock_write_lock(void *l);
void vmm_shim_rwlock_write_unlock(void *l);
int vmm_shim_eventfd_get(int fd, void **ctx);
void vmm_shim_eventfd_signal(void *ctx);
void vmm_shim_eventfd_put(void *ctx);
int vmm_shim_irqfd_new(int fd, void *vm, u32 spi, bool level, void **hook, void **ctx);
void vmm_shim_irqfd_arm(void *hook);
bool vmm_shim_irqfd_dead(void *hook);
void vmm_shim_irqfd_free(void *hook);

#endif
