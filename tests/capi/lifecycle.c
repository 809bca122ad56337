/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A whole guest's life through the C API alone (vmmapi.h, libvmmapi): create
 * a VM, give it memory, load a raw test guest, set its registers, run it to
 * power-off while emulating the PL011 it writes to and answering its PSCI
 * calls, read the counters, destroy it. Along the way, the errnos of calls
 * given bad arguments. Run in the emulated host by scripts/test (scenario
 * capi), linked statically and against libvmmapi.so.0.
 *
 *   lifecycle GUEST.bin [VMNAME]
 *
 * Prints "uart: LINE" for each line the guest writes, one "lifecycle: PASS"
 * or "lifecycle: FAIL" line per check, and exits 0 only if all passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vmmapi.h>

#define MEM_SIZE (64UL << 20)
#define UART_BASE 0x09000000UL
#define UART_DR 0x00
#define UART_FR 0x18
#define PSCI_VERSION 0x84000000UL
#define PSCI_SYSTEM_OFF 0x84000008UL
#define SMCCC_NOT_SUPPORTED ((uint64_t)-1)
#define MAX_EXITS 1000000

static int failures;

static void check(int ok, const char *what)
{
	printf("lifecycle: %s %s\n", ok ? "PASS" : "FAIL", what);
	if (!ok)
		failures++;
}

/* The call failed with errno `want`. */
static int fails_with(int rc, int want)
{
	return rc == -1 && errno == want;
}

static size_t load(struct vmctx *ctx, const char *path)
{
	struct stat st;
	char *dst;
	size_t done = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
		fprintf(stderr, "lifecycle: cannot read %s: %s\n", path, strerror(errno));
		exit(2);
	}
	dst = vm_map_gpa(ctx, VM_SYSMEM_BASE, (size_t)st.st_size);
	if (dst == NULL) {
		fprintf(stderr, "lifecycle: %s does not fit in guest memory\n", path);
		exit(2);
	}
	while (done < (size_t)st.st_size) {
		n = read(fd, dst + done, (size_t)st.st_size - done);
		if (n <= 0) {
			fprintf(stderr, "lifecycle: reading %s: %s\n", path, strerror(errno));
			exit(2);
		}
		done += (size_t)n;
	}
	close(fd);
	return done;
}

struct guest_io {
	char line[256];
	size_t len;
	unsigned long mmio_exits;
	unsigned long smccc_exits;
	int bad_access;
};

static void uart_byte(struct guest_io *io, char c)
{
	if (c == '\n' || io->len == sizeof(io->line) - 1) {
		io->line[io->len] = '\0';
		printf("uart: %s\n", io->line);
		io->len = 0;
		if (c == '\n')
			return;
	}
	io->line[io->len++] = c;
}

/*
 * One MMIO access: the PL011's data register takes bytes, its flag
 * register reads 0 (transmit FIFO never full). Returns the value of a read.
 */
static uint64_t mmio(struct guest_io *io, const struct vm_exit_inst_emul *e)
{
	io->mmio_exits++;
	if (e->gpa == UART_BASE + UART_DR && e->vie.dir == VM_DIR_WRITE) {
		uart_byte(io, (char)e->data);
		return 0;
	}
	if (e->gpa == UART_BASE + UART_FR && e->vie.dir == VM_DIR_READ)
		return 0;
	fprintf(stderr, "lifecycle: unexpected %s of %u bytes at 0x%" PRIx64 "\n",
	    e->vie.dir == VM_DIR_WRITE ? "write" : "read", e->vie.access_size, e->gpa);
	io->bad_access = 1;
	return 0;
}

/* Runs vCPU 0 until the VM is suspended; returns how, or -1. */
static int run_guest(struct vmctx *ctx, struct vcpu *vcpu, struct guest_io *io)
{
	struct vm_exit vme;
	struct vm_run vmrun;
	uint64_t x0;
	int n;

	memset(&vmrun, 0, sizeof(vmrun));
	vmrun.vm_exit = &vme;
	for (n = 0; n < MAX_EXITS; n++) {
		if (vm_run(vcpu, &vmrun) != 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "lifecycle: vm_run: %s\n", strerror(errno));
			return -1;
		}
		vmrun.flags = 0;
		switch (vme.exitcode) {
		case VM_EXITCODE_BOGUS:
			break;
		case VM_EXITCODE_INST_EMUL:
			vmrun.mmio_data = mmio(io, &vme.u.inst_emul);
			if (vme.u.inst_emul.vie.dir == VM_DIR_READ)
				vmrun.flags = VM_RUN_F_MMIO_DATA;
			if (io->bad_access)
				return -1;
			break;
		case VM_EXITCODE_SMCCC:
			io->smccc_exits++;
			if (vme.u.smccc_call.func_id == PSCI_SYSTEM_OFF) {
				if (vm_suspend(ctx, VM_SUSPEND_POWEROFF) != 0)
					return -1;
				break;
			}
			x0 = vme.u.smccc_call.func_id == PSCI_VERSION ? 0x10000 : SMCCC_NOT_SUPPORTED;
			if (vm_set_register(vcpu, VM_REG_GUEST_X0, x0) != 0)
				return -1;
			break;
		case VM_EXITCODE_SUSPENDED:
			return vme.u.suspended.how;
		default:
			fprintf(stderr, "lifecycle: exit %d at pc 0x%" PRIx64 " (esr 0x%" PRIx64 ")\n",
			    vme.exitcode, vme.pc, vme.u.hyp.esr_el2);
			return -1;
		}
	}
	fprintf(stderr, "lifecycle: still running after %d exits\n", MAX_EXITS);
	return -1;
}

/* vCPU 0's registers before the guest runs, and exception injection. */
static void registers(struct vcpu *vcpu)
{
	const int regs[] = { VM_REG_GUEST_X0, VM_REG_GUEST_X1, VM_REG_GUEST_X19, VM_REG_GUEST_PC };
	uint64_t vals[] = { 0, 0, 0xc0ffee, VM_SYSMEM_BASE };
	const int inj[] = { VM_REG_GUEST_PC, VM_REG_GUEST_ESR_EL1, VM_REG_GUEST_FAR_EL1,
		VM_REG_GUEST_ELR_EL1, VM_REG_GUEST_SPSR_EL1, VM_REG_GUEST_CPSR };
	uint64_t got[6], cpsr = 0, v = 0;

	check(vm_get_register(vcpu, VM_REG_GUEST_CPSR, &cpsr) == 0 && cpsr == 0x3c5,
	    "an activated vCPU is at EL1h with D, A, I, F masked (cpsr 0x3c5)");
	check(vm_set_register_set(vcpu, 4, regs, vals) == 0, "vm_set_register_set of x0, x1, x19, pc");
	memset(got, 0xff, sizeof(got));
	check(vm_get_register_set(vcpu, 4, regs, got) == 0 && got[0] == 0 && got[1] == 0 &&
	    got[2] == 0xc0ffee && got[3] == VM_SYSMEM_BASE, "vm_get_register_set reads them back");
	check(fails_with(vm_set_register(vcpu, VM_REG_LAST, 1), EINVAL),
	    "vm_set_register of VM_REG_LAST fails with EINVAL");
	check(fails_with(vm_set_register(vcpu, VM_REG_GUEST_CPSR, 0x3c9), EINVAL),
	    "a cpsr at EL2 fails with EINVAL");

	/* An exception taken from EL1h goes to VBAR_EL1 + 0x200. */
	check(vm_set_register(vcpu, VM_REG_GUEST_VBAR_EL1, 0x40010000) == 0, "vm_set_register of vbar_el1");
	check(vm_inject_exception(vcpu, 0x96000045, 0x12345678) == 0, "vm_inject_exception");
	check(vm_get_register_set(vcpu, 6, inj, got) == 0 && got[0] == 0x40010200 && got[1] == 0x96000045 &&
	    got[2] == 0x12345678 && got[3] == VM_SYSMEM_BASE && got[4] == 0x3c5 && got[5] == 0x3c5,
	    "the exception: pc at the vector, esr, far, elr and spsr as the CPU sets them");
	/* Back to the entry point for the real run. */
	check(vm_set_register(vcpu, VM_REG_GUEST_PC, VM_SYSMEM_BASE) == 0 &&
	    vm_get_register(vcpu, VM_REG_GUEST_PC, &v) == 0 && v == VM_SYSMEM_BASE, "pc back at the entry");
}

static void capabilities(struct vcpu *vcpu)
{
	int v = -1;

	check(vm_get_capability(vcpu, VM_CAP_UNRESTRICTED_GUEST, &v) == 0 && v == 1,
	    "VM_CAP_UNRESTRICTED_GUEST is 1");
	check(vm_get_capability(vcpu, VM_CAP_HALT_EXIT, &v) == 0 && v == 0, "VM_CAP_HALT_EXIT is 0");
	check(vm_set_capability(vcpu, VM_CAP_HALT_EXIT, 0) == 0, "setting VM_CAP_HALT_EXIT to 0 is accepted");
	check(fails_with(vm_set_capability(vcpu, VM_CAP_HALT_EXIT, 1), ENOTSUP),
	    "setting VM_CAP_HALT_EXIT to 1 fails with ENOTSUP");
	check(fails_with(vm_get_capability(vcpu, VM_CAP_MAX, &v), ENOENT), "VM_CAP_MAX fails with ENOENT");
	check(fails_with(vm_suspend_cpu(vcpu), ENOTSUP), "vm_suspend_cpu fails with ENOTSUP");
	check(fails_with(vm_resume_cpu(vcpu), ENOTSUP), "vm_resume_cpu fails with ENOTSUP");
}

static void interrupts(struct vmctx *ctx)
{
	int efd = eventfd(0, EFD_CLOEXEC);

	check(vm_attach_vgic(ctx, VGIC_DIST_BASE, VGIC_DIST_SIZE, VGIC_REDIST_BASE, VGIC_REDIST_SIZE) == 0,
	    "vm_attach_vgic at QEMU virt's addresses");
	check(fails_with(vm_attach_vgic(ctx, VGIC_DIST_BASE, VGIC_DIST_SIZE, VGIC_REDIST_BASE,
	    VGIC_REDIST_SIZE), EEXIST), "a second vm_attach_vgic fails with EEXIST");
	check(vm_assert_irq(ctx, 40) == 0 && vm_deassert_irq(ctx, 40) == 0, "vm_assert_irq, vm_deassert_irq of SPI 40");
	check(fails_with(vm_assert_irq(ctx, 27), EINVAL), "vm_assert_irq of a PPI fails with EINVAL");
	check(fails_with(vm_raise_msi(ctx, 0x08020040, 48, 0, 1, 0), ENOTSUP), "vm_raise_msi fails with ENOTSUP");
	check(efd >= 0 && vm_add_irqfd(ctx, 48, efd, -1) == 0, "vm_add_irqfd for SPI 48");
	check(fails_with(vm_add_irqfd(ctx, 49, efd, -1), EEXIST), "the same eventfd again fails with EEXIST");
	check(vm_remove_irqfd(ctx, 48, efd) == 0, "vm_remove_irqfd");
	check(fails_with(vm_remove_irqfd(ctx, 48, efd), ENOENT), "removing it again fails with ENOENT");
	check(vm_add_ioeventfd(ctx, 0x0a000050, 4, VM_IOEVENTFD_F_DATAMATCH, 0, efd) == 0,
	    "vm_add_ioeventfd with a data match");
	check(fails_with(vm_add_ioeventfd(ctx, VM_SYSMEM_BASE, 4, 0, 0, efd), EINVAL),
	    "an ioeventfd in guest RAM fails with EINVAL");
	check(vm_remove_ioeventfd(ctx, 0x0a000050, 4, VM_IOEVENTFD_F_DATAMATCH, 0, efd) == 0,
	    "vm_remove_ioeventfd");
	check(fails_with(vm_add_irqfd(ctx, 48, -1, -1), EBADF), "an irqfd of fd -1 fails with EBADF");
	close(efd);
}

/* Guest memory: vm_setup_memory and what it made. */
static void memory(struct vmctx *ctx)
{
	vm_paddr_t gpa = 0;
	vm_ooffset_t off = -1;
	size_t len = 0;
	int segid = -1, prot = 0, flags = -1;
	char name[VM_MAX_SUFFIXLEN + 1] = "x";
	char *p;

	check(vm_setup_memory(ctx, MEM_SIZE, VM_MMAP_ALL) == 0, "vm_setup_memory of 64 MiB, VM_MMAP_ALL");
	check(vm_setup_memory(ctx, MEM_SIZE, VM_MMAP_ALL) == 0, "again, the same size: kept");
	check(fails_with(vm_setup_memory(ctx, 2 * MEM_SIZE, VM_MMAP_ALL), EINVAL),
	    "again with another size fails with EINVAL");
	check(vm_get_memseg(ctx, VM_SYSMEM, &len, name, sizeof(name)) == 0 && len == MEM_SIZE && name[0] == '\0',
	    "vm_get_memseg: VM_SYSMEM of 64 MiB, no name");
	check(vm_get_memseg(ctx, 1, &len, name, sizeof(name)) == 0 && len == 0, "vm_get_memseg: segment 1 absent");
	check(vm_mmap_getnext(ctx, &gpa, &segid, &off, &len, &prot, &flags) == 0 && gpa == VM_SYSMEM_BASE &&
	    segid == VM_SYSMEM && off == 0 && len == MEM_SIZE && prot == VM_PROT_ALL && flags == 0,
	    "vm_mmap_getnext: VM_SYSMEM at 0x40000000, rwx");
	gpa += len;
	check(fails_with(vm_mmap_getnext(ctx, &gpa, &segid, &off, &len, &prot, &flags), ENOENT),
	    "vm_mmap_getnext past it fails with ENOENT");
	check(vm_mmap_memseg(ctx, VM_SYSMEM_BASE, VM_SYSMEM, 0, MEM_SIZE, VM_PROT_ALL) == 0,
	    "vm_mmap_memseg of the same mapping: kept");
	check(fails_with(vm_alloc_memseg(ctx, VM_MAX_MEMSEGS, 4096, NULL), EINVAL),
	    "vm_alloc_memseg of segment VM_MAX_MEMSEGS fails with EINVAL");
	p = vm_map_gpa(ctx, VM_SYSMEM_BASE, MEM_SIZE);
	check(p != NULL, "vm_map_gpa of all guest memory");
	check(vm_map_gpa(ctx, UART_BASE, 4) == NULL, "vm_map_gpa of the UART is NULL");
	check(vm_map_gpa(ctx, VM_SYSMEM_BASE + MEM_SIZE - 8, 16) == NULL, "vm_map_gpa across the end is NULL");
	check(p != NULL && vm_rev_map_gpa(ctx, p + 0x1234) == VM_SYSMEM_BASE + 0x1234, "vm_rev_map_gpa");
}

static int listed(const char *vm)
{
	char names[64][VM_NAMEBUF_SIZE];
	int i, n = vm_list(names, 64);

	for (i = 0; i < n && i < 64; i++)
		if (strcmp(names[i], vm) == 0)
			return 1;
	return 0;
}

static void counters(struct vmctx *ctx, struct vcpu *vcpu, const struct guest_io *io)
{
	struct timeval tv = { 0, 0 };
	uint64_t *stats;
	const char *desc;
	int i, n = 0, mmio_seen = 0;

	stats = vm_get_stats(vcpu, &tv, &n);
	check(stats != NULL && n > 0 && tv.tv_sec > 0, "vm_get_stats");
	for (i = 0; stats != NULL && i < n; i++) {
		desc = vm_get_stat_desc(ctx, i);
		if (desc == NULL)
			break;
		if (stats[i] != 0)
			printf("stat: %-40s %" PRIu64 "\n", desc, stats[i]);
		if (strcmp(desc, "mmio accesses to userspace") == 0)
			mmio_seen = stats[i] == io->mmio_exits;
	}
	check(stats != NULL && i == n, "vm_get_stat_desc names every counter");
	check(mmio_seen, "the kernel counted as many MMIO exits as this program handled");
	check(vm_get_stat_desc(ctx, n) == NULL && errno == EINVAL, "vm_get_stat_desc past the last fails with EINVAL");
}

int main(int argc, char **argv)
{
	const char *vm = argc > 2 ? argv[2] : "capi";
	struct vmm_hyp_status hs;
	struct guest_io io;
	struct vmctx *ctx;
	struct vcpu *vcpu;
	struct vm_exit vme;
	struct vm_run vmrun;
	struct stat st;
	cpuset_t cpus;
	char path[64];
	size_t size;
	int how;

	if (argc < 2) {
		fprintf(stderr, "usage: lifecycle GUEST.bin [VMNAME]\n");
		return 2;
	}
	memset(&io, 0, sizeof(io));
	snprintf(path, sizeof(path), "/dev/vmm/%s", vm);

	check(vm_create(vm) == 0, "vm_create");
	check(fails_with(vm_create(vm), EEXIST), "a second vm_create fails with EEXIST");
	check(fails_with(vm_create("bad/name"), EINVAL), "vm_create(\"bad/name\") fails with EINVAL");
	check(vm_open("no-such-vm") == NULL && errno == ENOENT, "vm_open of an unknown VM fails with ENOENT");
	ctx = vm_open(vm);
	check(ctx != NULL, "vm_open");
	if (ctx == NULL)
		return 1;
	check(strcmp(vm_get_name(ctx), vm) == 0 && vm_get_device_fd(ctx) >= 0, "vm_get_name, vm_get_device_fd");
	check(listed(vm), "vm_list names it");
	check(vm_get_hyp_status(&hs) == 0 && hs.nr_cpus > 0 && hs.nr_vms >= 1 && (hs.answering[0] & 1),
	    "vm_get_hyp_status: EL2 answers on cpu0");

	memory(ctx);
	size = load(ctx, argv[1]);
	printf("lifecycle: loaded %s, %zu bytes, at 0x%lx\n", argv[1], size, (unsigned long)VM_SYSMEM_BASE);

	check(vm_vcpu_open(ctx, VM_MAXCPU) == NULL && errno == EINVAL, "vm_vcpu_open of VM_MAXCPU fails with EINVAL");
	vcpu = vm_vcpu_open(ctx, 0);
	check(vcpu != NULL && vcpu_id(vcpu) == 0, "vm_vcpu_open of vCPU 0");
	if (vcpu == NULL)
		return 1;
	memset(&vmrun, 0, sizeof(vmrun));
	vmrun.vm_exit = &vme;
	check(fails_with(vm_run(vcpu, &vmrun), EINVAL), "vm_run before vm_activate_cpu fails with EINVAL");
	check(vm_activate_cpu(vcpu) == 0, "vm_activate_cpu");
	check(vm_active_cpus(ctx, &cpus) == 0 && cpus.__bits[0] == 1, "vm_active_cpus: vCPU 0");
	check(vm_suspended_cpus(ctx, &cpus) == 0 && cpus.__bits[0] == 0, "vm_suspended_cpus: none");
	registers(vcpu);
	capabilities(vcpu);
	interrupts(ctx);

	how = run_guest(ctx, vcpu, &io);
	check(how == VM_SUSPEND_POWEROFF, "the guest ran to power-off (PSCI SYSTEM_OFF)");
	printf("lifecycle: %lu MMIO exits, %lu SMCCC exits\n", io.mmio_exits, io.smccc_exits);
	check(vm_run(vcpu, &vmrun) == 0 && vme.exitcode == VM_EXITCODE_SUSPENDED,
	    "vm_run of a suspended VM returns VM_EXITCODE_SUSPENDED");
	counters(ctx, vcpu, &io);

	check(vm_reinit(ctx) == 0, "vm_reinit");
	check(vm_active_cpus(ctx, &cpus) == 0 && cpus.__bits[0] == 0, "after vm_reinit no vCPU is active");
	check(fails_with(vm_suspend(ctx, VM_SUSPEND_NONE), EINVAL), "vm_suspend(VM_SUSPEND_NONE) fails with EINVAL");

	vm_vcpu_close(vcpu);
	errno = 0;
	vm_destroy(ctx);
	check(errno == 0, "vm_destroy");
	check(stat(path, &st) == -1 && errno == ENOENT, "the node is gone after vm_destroy");
	check(!listed(vm), "vm_list no longer names it");

	printf("lifecycle: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}
