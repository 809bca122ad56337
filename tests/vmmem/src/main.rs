//! `vmmem NAME check GPA LEN BYTE` counts the bytes of `[GPA, GPA+LEN)` that
//! are not BYTE; `vmmem NAME fill GPA LEN BYTE` writes BYTE there; `vmmem
//! NAME diff GPA LEN FILE` counts the bytes there that differ from FILE's
//! (a flash bank against its variable store). They go through libvmmapi's
//! mapping of the VM's memory (any segment, also a flash bank the guest
//! has unmapped), which must show exactly the bytes the guest sees.
//! Test-only (system tests in the emulated host).

use std::process::ExitCode;
use vmmapi::vm_memory::{Bytes, MemoryRegionAddress};

fn num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn main() -> ExitCode {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if let [name, op, gpa, len, file] = a.as_slice() {
        if op == "dump" {
            return match num(gpa).zip(num(len)) {
                Some((g, l)) => dump(name, g, l, file),
                None => usage(),
            };
        }
        if op == "diff" {
            return match num(gpa).zip(num(len)) {
                Some((g, l)) => diff(name, g, l, file),
                None => usage(),
            };
        }
    }
    let parsed = match a.as_slice() {
        [name, op, gpa, len, byte] if op == "check" || op == "fill" => {
            num(gpa).zip(num(len)).zip(num(byte).filter(|b| *b < 256)).map(|((g, l), b)| (name, op, g, l, b as u8))
        }
        _ => None,
    };
    let Some((name, op, gpa, len, byte)) = parsed else { return usage() };
    let Some((region, base)) = map(name, gpa, len) else { return ExitCode::from(1) };
    let mut buf = vec![0u8; 1 << 20];
    let (mut at, end) = (gpa, gpa.saturating_add(len));
    let mut bad = 0u64;
    while at < end {
        let n = ((end - at) as usize).min(buf.len());
        let chunk = &mut buf[..n];
        let off = MemoryRegionAddress(at - base);
        let ok = if op == "fill" {
            chunk.fill(byte);
            region.write_slice(chunk, off)
        } else {
            region.read_slice(chunk, off).map(|()| bad += chunk.iter().filter(|&&b| b != byte).count() as u64)
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

fn usage() -> ExitCode {
    eprintln!("usage: vmmem NAME check|fill GPA LEN BYTE | vmmem NAME diff|dump GPA LEN FILE");
    ExitCode::from(2)
}

/// Counts the bytes of `[gpa, gpa+len)` that differ from `file`'s first
/// `len` (bytes the file lacks count as different).
fn diff(name: &str, gpa: u64, len: u64, file: &str) -> ExitCode {
    let Some((region, base)) = map(name, gpa, len) else { return ExitCode::from(1) };
    let want = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("vmmem: {file}: {e}");
            return ExitCode::from(1);
        }
    };
    let mut have = vec![0u8; len as usize];
    if region.read_slice(&mut have, MemoryRegionAddress(gpa - base)).is_err() {
        eprintln!("vmmem: cannot read [{gpa:#x}, +{len:#x})");
        return ExitCode::from(1);
    }
    let short = (len as usize).saturating_sub(want.len());
    let bad = have.iter().zip(&want).filter(|(a, b)| a != b).count() + short;
    println!("vmmem: {name}: {bad} bytes of [{gpa:#x}, +{len:#x}) differ from {file}");
    ExitCode::from(u8::from(bad != 0))
}

/// Writes the bytes of `[gpa, gpa+len)` to `file` (`-`: 32-bit words in hex on stdout).
fn dump(name: &str, gpa: u64, len: u64, file: &str) -> ExitCode {
    let region = match vmmapi::Vm::open(name)
        .and_then(|vm| vm.map_region(gpa & !0xfff, (len + (gpa & 0xfff) + 0xfff) & !0xfff))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vmmem: {e}");
            return ExitCode::from(1);
        }
    };
    let mut have = vec![0u8; len as usize];
    if region.read_slice(&mut have, vmmapi::vm_memory::MemoryRegionAddress(gpa & 0xfff)).is_err() {
        eprintln!("vmmem: cannot read [{gpa:#x}, +{len:#x})");
        return ExitCode::from(1);
    }
    if file == "-" {
        for (i, w) in have.chunks(4).enumerate() {
            let v = w.iter().rev().fold(0u32, |v, &b| v << 8 | b as u32);
            println!("{:#x}: {v:08x}", gpa + 4 * i as u64);
        }
        return ExitCode::SUCCESS;
    }
    match std::fs::write(file, &have) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmmem: {file}: {e}");
            ExitCode::from(1)
        }
    }
}

/// Maps the pages holding `[gpa, gpa+len)` of VM `name` (any segment, mapped
/// for the guest or not): the region and the address it starts at.
fn map(name: &str, gpa: u64, len: u64) -> Option<(vmmapi::GuestRegion, u64)> {
    let base = gpa & !0xfff;
    let end = gpa.checked_add(len)?.checked_add(0xfff)? & !0xfff;
    match vmmapi::Vm::open(name).and_then(|vm| vm.map_region(base, end - base)) {
        Ok(r) => Some((r, base)),
        Err(e) => {
            eprintln!("vmmem: {e}");
            None
        }
    }
}
