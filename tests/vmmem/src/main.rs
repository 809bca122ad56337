//! `vmmem NAME check GPA LEN BYTE` counts the bytes of `[GPA, GPA+LEN)` that
//! are not BYTE; `vmmem NAME fill GPA LEN BYTE` writes BYTE there. Both go
//! through libvmmapi's mapping of the VM's memory, which must show exactly
//! the bytes the guest sees. Test-only (system tests in the emulated host).

use std::process::ExitCode;
use vmmapi::vm_memory::{Bytes, GuestAddress};

fn num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn main() -> ExitCode {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match a.as_slice() {
        [name, op, gpa, len, byte] if op == "check" || op == "fill" => {
            num(gpa).zip(num(len)).zip(num(byte).filter(|b| *b < 256)).map(|((g, l), b)| (name, op, g, l, b as u8))
        }
        _ => None,
    };
    let Some((name, op, gpa, len, byte)) = parsed else {
        eprintln!("usage: vmmem NAME check|fill GPA LEN BYTE");
        return ExitCode::from(2);
    };
    let mem = match vmmapi::Vm::open(name).and_then(|vm| vm.map_memory()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("vmmem: {e}");
            return ExitCode::from(1);
        }
    };
    let mut buf = vec![0u8; 1 << 20];
    let (mut at, end) = (gpa, gpa.saturating_add(len));
    let mut bad = 0u64;
    while at < end {
        let n = ((end - at) as usize).min(buf.len());
        let chunk = &mut buf[..n];
        let ok = if op == "fill" {
            chunk.fill(byte);
            mem.write_slice(chunk, GuestAddress(at))
        } else {
            mem.read_slice(chunk, GuestAddress(at)).map(|()| bad += chunk.iter().filter(|&&b| b != byte).count() as u64)
        };
        if ok.is_err() {
            eprintln!("vmmem: {at:#x} is outside the VM's memory");
            return ExitCode::from(1);
        }
        at += n as u64;
    }
    if op == "check" {
        println!("vmmem: {name}: {bad} bytes differ from {byte:#04x} in [{gpa:#x}, {end:#x})");
        return ExitCode::from(u8::from(bad != 0));
    }
    println!("vmmem: {name}: filled [{gpa:#x}, {end:#x}) with {byte:#04x}");
    ExitCode::SUCCESS
}
