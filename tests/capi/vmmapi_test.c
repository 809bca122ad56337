/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A C program against vmmapi.h and libvmmapi.a, run in the emulated host by
 * scripts/test (scenario capi). Prints one line per check; exits 0 only if
 * all passed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <vmmapi.h>

static int failures;

static void check(int ok, const char *what)
{
	printf("capi: %s %s\n", ok ? "PASS" : "FAIL", what);
	if (!ok)
		failures++;
}

int main(void)
{
	struct vmctx *ctx;
	struct stat st;
	int e;

	check(vm_create("capi-vm") == 0, "vm_create(\"capi-vm\")");
	check(stat("/dev/vmm/capi-vm", &st) == 0 && S_ISCHR(st.st_mode), "/dev/vmm/capi-vm is a character device");

	e = vm_create("capi-vm") == -1 ? errno : 0;
	check(e == EEXIST, "a second vm_create fails with EEXIST");
	e = vm_create("bad/name") == -1 ? errno : 0;
	check(e == EINVAL, "vm_create(\"bad/name\") fails with EINVAL");

	ctx = vm_open("capi-vm");
	check(ctx != NULL, "vm_open(\"capi-vm\")");
	if (ctx) {
		check(strcmp(vm_get_name(ctx), "capi-vm") == 0, "vm_get_name");
		check(vm_get_device_fd(ctx) >= 0, "vm_get_device_fd");
		vm_close(ctx);
	}

	ctx = vm_open("no-such-vm");
	e = ctx == NULL ? errno : 0;
	check(e == ENOENT, "vm_open of an unknown VM fails with ENOENT");

	ctx = vm_open("capi-vm");
	if (ctx) {
		errno = 0;
		vm_destroy(ctx);
		check(errno == 0, "vm_destroy");
	}
	check(stat("/dev/vmm/capi-vm", &st) == -1 && errno == ENOENT, "the node is gone after vm_destroy");

	printf("capi: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}
