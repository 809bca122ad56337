/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vmmapi.h: the C API of libvmmapi for the vmm module on arm64 Linux hosts.
 * Names and signatures follow FreeBSD's libvmmapi. Link with libvmmapi.a
 * (and -lpthread -ldl -lm). On failure, calls return -1 or NULL and set errno.
 */
#ifndef _VMMAPI_H_
#define _VMMAPI_H_

#ifdef __cplusplus
extern "C" {
#endif

#define VM_MAX_NAMELEN 31

struct vmctx;

/* Create the VM `name` (1 to 31 printable ASCII characters, no '/').
 * errno: EINVAL bad name, EEXIST exists, ENOSPC module limit, EACCES not root. */
int vm_create(const char *name);
/* Open the existing VM `name`. errno: ENOENT no such VM, EACCES not root. */
struct vmctx *vm_open(const char *name);
/* Close the handle; the VM lives on in the kernel. */
void vm_close(struct vmctx *ctx);
/* Destroy the VM and close the handle (errno set if destroying failed). */
void vm_destroy(struct vmctx *ctx);
/* The VM's name, valid until vm_close or vm_destroy. */
const char *vm_get_name(struct vmctx *ctx);
/* The file descriptor of /dev/vmm/NAME. */
int vm_get_device_fd(struct vmctx *ctx);

#ifdef __cplusplus
}
#endif

#endif /* _VMMAPI_H_ */
