//! The C API (`include/vmmapi.h`): bhyve's libvmmapi names and signatures.
//! Failures return -1 or NULL with `errno` set, as in FreeBSD.

use crate::Vm;
use std::ffi::{c_char, c_int, CStr, CString};

/// An open VM, opaque to C.
pub struct VmCtx {
    vm: Vm,
    cname: CString,
}

fn set_errno(e: nix::errno::Errno) {
    nix::errno::Errno::set_raw(e as i32);
}

/// # Safety
/// `name` is null or a NUL-terminated string.
unsafe fn name_arg<'a>(name: *const c_char) -> Option<&'a str> {
    if name.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(name) }.to_str().ok()
}

/// `int vm_create(const char *name)`: 0, or -1 with errno.
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vm_create(name: *const c_char) -> c_int {
    // SAFETY: the caller's contract.
    let Some(name) = (unsafe { name_arg(name) }) else {
        set_errno(nix::errno::Errno::EINVAL);
        return -1;
    };
    match Vm::create(name) {
        Ok(()) => 0,
        Err(e) => {
            set_errno(e.errno());
            -1
        }
    }
}

/// `struct vmctx *vm_open(const char *name)`: a handle, or NULL with errno.
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vm_open(name: *const c_char) -> *mut VmCtx {
    // SAFETY: the caller's contract.
    let Some(name) = (unsafe { name_arg(name) }) else {
        set_errno(nix::errno::Errno::EINVAL);
        return std::ptr::null_mut();
    };
    match Vm::open(name) {
        Ok(vm) => {
            let cname = CString::new(name).unwrap_or_default();
            Box::into_raw(Box::new(VmCtx { vm, cname }))
        }
        Err(e) => {
            set_errno(e.errno());
            std::ptr::null_mut()
        }
    }
}

/// `void vm_close(struct vmctx *ctx)`: closes the handle; the VM lives on.
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vm_close(ctx: *mut VmCtx) {
    if !ctx.is_null() {
        // SAFETY: the caller's contract: ours, from Box::into_raw.
        drop(unsafe { Box::from_raw(ctx) });
    }
}

/// `void vm_destroy(struct vmctx *ctx)`: destroys the VM and closes the
/// handle. On failure errno is set (the handle is closed either way).
///
/// # Safety
/// `ctx` is null or came from `vm_open` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vm_destroy(ctx: *mut VmCtx) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: the caller's contract.
    let ctx = unsafe { Box::from_raw(ctx) };
    if let Err(e) = ctx.vm.destroy() {
        set_errno(e.errno());
    }
}

/// `const char *vm_get_name(struct vmctx *ctx)`: valid until `vm_close`.
///
/// # Safety
/// `ctx` came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_get_name(ctx: *const VmCtx) -> *const c_char {
    if ctx.is_null() {
        return std::ptr::null();
    }
    // SAFETY: the caller's contract.
    unsafe { &*ctx }.cname.as_ptr()
}

/// `int vm_get_device_fd(struct vmctx *ctx)`: the fd of `/dev/vmm/NAME`.
///
/// # Safety
/// `ctx` came from `vm_open` and is still open.
#[no_mangle]
pub unsafe extern "C" fn vm_get_device_fd(ctx: *const VmCtx) -> c_int {
    if ctx.is_null() {
        set_errno(nix::errno::Errno::EINVAL);
        return -1;
    }
    // SAFETY: the caller's contract.
    unsafe { &*ctx }.vm.fd()
}
