//! Runtime shared by the test guests: boot code, PL011 console, hypercalls,
//! MMIO accessors with known instructions, the testdev device, the timers,
//! the GICv3 with an IRQ path, and [`Shared`] values for handlers and CPUs.
//!
//! Each guest is a `src/bin/*.rs` with `#![no_std]`, `#![no_main]` and
//! `guests::entry!(main)`, where `main` is `fn() -> !`.

#![no_std]

mod boot;
pub mod gic;
pub mod mmio;
mod shared;
pub mod smccc;
pub mod testdev;
pub mod timer;
pub mod uart;

pub use boot::unexpected_exception;
pub use shared::Shared;

/// Start of guest RAM, where the guest is loaded and entered.
pub const RAM_BASE: usize = 0x4000_0000;

/// Top of the boot stack (`link.ld`): the image and stack lie below it.
pub const STACK_TOP: usize = 0x4010_0000;

/// Names the guest's `fn() -> !` main, called by `_start` once the stack,
/// FP/SIMD and `.bss` are ready. Also records the binary's name, which
/// prefixes the runtime's own messages (panics, unexpected exceptions).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        extern "C" fn __guest_main() -> ! {
            let main: fn() -> ! = $main;
            main()
        }

        #[no_mangle]
        static __GUEST_NAME: &str = env!("CARGO_BIN_NAME");
    };
}

/// Defines `$name`, a 2 KiB aligned EL1 vector table whose entry `$n`
/// (0..=15; 4: synchronous from the current EL with SP_ELx, 5: its IRQ,
/// 8: synchronous from a lower EL in AArch64, 12: in AArch32) branches to
/// the global symbol `$target`; every other entry reports an unexpected
/// exception with its offset and powers off.
#[macro_export]
macro_rules! vector_table {
    ($name:ident, $n:literal => $target:ident) => {
        ::core::arch::global_asm!(
            concat!(
                ".section .text.",
                stringify!($name),
                ", \"ax\"\n.balign 0x800\n.global ",
                stringify!($name),
                "\n",
                stringify!($name),
                ":\n.irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15\n.balign 0x80\n.if \\n == ",
                stringify!($n),
                "\nb ",
                stringify!($target),
                "\n.else\nmov x0, #(\\n * 0x80)\nb {unexpected}\n.endif\n.endr\n",
            ),
            unexpected = sym $crate::unexpected_exception,
        );
    };
}

/// Reads (`sysreg!(read "mdscr_el1")`) or writes (`sysreg!(write
/// "mdscr_el1", value)`, followed by an `isb`) an EL1 system register.
/// A write's soundness is the caller's to argue: it may change how the
/// guest runs (translation, exceptions, debug).
#[macro_export]
macro_rules! sysreg {
    (read $r:literal) => {{
        let v: u64;
        // SAFETY: reading an EL1 system register has no side effects.
        unsafe { ::core::arch::asm!(concat!("mrs {}, ", $r), out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }};
    (write $r:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: the guest's own EL1 state; see the macro's documentation.
        unsafe { ::core::arch::asm!(concat!("msr ", $r, ", {}"), "isb", in(reg) v, options(nostack, preserves_flags)) }
    }};
}

/// Defines `_secondary_start`, the entry point for secondary CPUs started
/// by PSCI CPU_ON with their number (1..=15) as the context id: it gives
/// each its own 16 KiB stack below the boot CPU's, turns FP/SIMD on,
/// installs the default vectors, and calls `$main(cpu)`. `.bss` was zeroed
/// by the boot CPU.
#[macro_export]
macro_rules! secondary_entry {
    ($main:path) => {
        core::arch::global_asm!(
            r#"
            .section .text, "ax"
            .global _secondary_start
        _secondary_start:
            mov     x1, #(3 << 20)
            msr     cpacr_el1, x1
            isb
            adrp    x1, __stack_bottom
            add     x1, x1, :lo12:__stack_bottom
            sub     x1, x1, x0, lsl #14
            add     x1, x1, #(1 << 14)
            mov     sp, x1
            adrp    x1, __default_vectors
            add     x1, x1, :lo12:__default_vectors
            msr     vbar_el1, x1
            isb
            bl      {main}
            udf     #0
            "#,
            main = sym $main,
        );
    };
}

extern "Rust" {
    /// Defined by [`entry!`] in the guest binary.
    static __GUEST_NAME: &'static str;
}

/// This guest's name (its binary's name).
pub fn name() -> &'static str {
    // SAFETY: every guest defines it with this type through `entry!`, and it
    // is never written.
    unsafe { __GUEST_NAME }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(l) => println!("{}: PANIC at {}:{}: {}", name(), l.file(), l.line(), info.message()),
        None => println!("{}: PANIC: {}", name(), info.message()),
    }
    smccc::system_off()
}
