//! Gives the shared library its soname: C programs linked against
//! `libvmmapi.so` then load `libvmmapi.so.0`, the name that changes only
//! when the C ABI breaks.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvmmapi.so.0");
}
