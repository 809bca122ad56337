//! Each tree is parsed back with the `fdt` crate and checked node by node,
//! property by property; the exact set of nodes and of each node's
//! properties is checked too, so that nothing unasked-for slips in.

use super::*;
use crate::devmgr::Slot;
use crate::layout::PL011_BASE;
use fdt::Fdt;

const MIB: u64 = 1 << 20;
const INITRD: Range<u64> = 0x5000_0000..0x5012_3456;
const CMDLINE: &str = "console=ttyAMA0 earlycon root=/dev/ram0";

fn seed() -> [u8; RNG_SEED_LEN] {
    std::array::from_fn(|i| i as u8 ^ 0xa5)
}

/// 2 vCPUs, 512 MiB, an initrd and a command line.
fn config() -> FdtConfig {
    FdtConfig {
        ram_base: 0x4000_0000,
        ram_size: 512 * MIB,
        vcpus: 2,
        cmdline: CMDLINE.into(),
        initrd: Some(INITRD),
        rng_seed: seed(),
        kaslr_seed: 0x0123_4567_89ab_cdef,
        devices: vec![Slot::Pl011.placement().unwrap(), Slot::Pl031.placement().unwrap()],
    }
}

/// The value of property `name` of the node at `path`.
fn prop<'a>(fdt: &Fdt<'a>, path: &str, name: &str) -> &'a [u8] {
    let node = fdt.find_node(path).unwrap_or_else(|| panic!("no node {path}"));
    // find_node ignores a missing unit address: make sure it found this one.
    if let Some((_, name)) = path.rsplit_once('/').filter(|(_, n)| !n.is_empty()) {
        assert_eq!(node.name, name, "found another node for {path}");
    }
    node.property(name).unwrap_or_else(|| panic!("{path} has no {name}")).value
}

fn cells(v: &[u8]) -> Vec<u32> {
    assert_eq!(v.len() % 4, 0);
    v.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect()
}

fn u64s(v: &[u8]) -> Vec<u64> {
    assert_eq!(v.len() % 8, 0);
    v.chunks(8).map(|c| u64::from_be_bytes(c.try_into().unwrap())).collect()
}

/// A string list (one string is a list of one).
fn strings(v: &[u8]) -> Vec<&str> {
    assert_eq!(v.last(), Some(&0), "NUL-terminated");
    v[..v.len() - 1].split(|&b| b == 0).map(|s| std::str::from_utf8(s).unwrap()).collect()
}

fn u32_of(fdt: &Fdt, path: &str, name: &str) -> u32 {
    match cells(prop(fdt, path, name))[..] {
        [v] => v,
        ref other => panic!("{path} {name}: {other:x?} is not one cell"),
    }
}

/// The properties of the node at `path`, by name, sorted.
fn prop_names(fdt: &Fdt, path: &str) -> Vec<String> {
    let mut v: Vec<String> = fdt.find_node(path).unwrap().properties().map(|p| p.name.to_string()).collect();
    v.sort();
    v
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn two_vcpus_512m_with_initrd() {
    let blob = create_fdt(&config()).unwrap();
    assert!(blob.len() as u64 <= DTB_MAX);
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(fdt.total_size(), blob.len());

    // Exactly these nodes.
    let mut nodes: Vec<&str> = fdt.all_nodes().map(|n| n.name).collect();
    nodes.sort();
    let mut want = vec![
        "/",
        "chosen",
        "memory@40000000",
        "cpus",
        "cpu@0",
        "cpu@1",
        "psci",
        "intc@8000000",
        "timer",
        "apb-pclk",
        "pl011@9000000",
        "pl031@9010000",
    ];
    want.sort();
    assert_eq!(nodes, want);

    // Root.
    assert_eq!(
        prop_names(&fdt, "/"),
        sorted(&["#address-cells", "#size-cells", "compatible", "model", "interrupt-parent"])
    );
    assert_eq!(u32_of(&fdt, "/", "#address-cells"), 2);
    assert_eq!(u32_of(&fdt, "/", "#size-cells"), 2);
    assert_eq!(strings(prop(&fdt, "/", "compatible")), ["linux,dummy-virt"]);
    assert_eq!(strings(prop(&fdt, "/", "model")), ["bhyve-arm64"]);
    assert_eq!(u32_of(&fdt, "/", "interrupt-parent"), PHANDLE_GIC);
    assert_eq!(fdt.find_phandle(PHANDLE_GIC).unwrap().name, "intc@8000000");
    assert_eq!(fdt.find_phandle(PHANDLE_CLK).unwrap().name, "apb-pclk");

    // chosen.
    let chosen = ["bootargs", "stdout-path", "linux,initrd-start", "linux,initrd-end", "rng-seed", "kaslr-seed"];
    assert_eq!(prop_names(&fdt, "/chosen"), sorted(&chosen));
    assert_eq!(fdt.chosen().bootargs(), Some(CMDLINE));
    assert_eq!(strings(prop(&fdt, "/chosen", "stdout-path")), ["/pl011@9000000"]);
    assert_eq!(fdt.chosen().stdout().unwrap().name, "pl011@9000000", "stdout-path names a node");
    assert_eq!(u64s(prop(&fdt, "/chosen", "linux,initrd-start")), [0x5000_0000]);
    assert_eq!(u64s(prop(&fdt, "/chosen", "linux,initrd-end")), [0x5012_3456]);
    assert_eq!(prop(&fdt, "/chosen", "rng-seed"), seed());
    assert_eq!(u64s(prop(&fdt, "/chosen", "kaslr-seed")), [0x0123_4567_89ab_cdef]);

    // Memory.
    let mem = "/memory@40000000";
    assert_eq!(prop_names(&fdt, mem), sorted(&["device_type", "reg"]));
    assert_eq!(strings(prop(&fdt, mem, "device_type")), ["memory"]);
    assert_eq!(u64s(prop(&fdt, mem, "reg")), [0x4000_0000, 0x2000_0000]);
    let region = fdt.memory().regions().next().unwrap();
    assert_eq!((region.starting_address as u64, region.size), (0x4000_0000, Some(512 << 20)));

    // CPUs.
    assert_eq!(prop_names(&fdt, "/cpus"), sorted(&["#address-cells", "#size-cells"]));
    assert_eq!(u32_of(&fdt, "/cpus", "#address-cells"), 1);
    assert_eq!(u32_of(&fdt, "/cpus", "#size-cells"), 0);
    for (id, path) in ["/cpus/cpu@0", "/cpus/cpu@1"].into_iter().enumerate() {
        assert_eq!(prop_names(&fdt, path), sorted(&["device_type", "compatible", "reg", "enable-method"]));
        assert_eq!(strings(prop(&fdt, path, "device_type")), ["cpu"]);
        assert_eq!(strings(prop(&fdt, path, "compatible")), ["arm,armv8"]);
        assert_eq!(u32_of(&fdt, path, "reg"), id as u32);
        assert_eq!(strings(prop(&fdt, path, "enable-method")), ["psci"]);
    }
    assert_eq!(fdt.cpus().map(|c| c.ids().first()).collect::<Vec<_>>(), [0, 1]);

    // PSCI.
    assert_eq!(prop_names(&fdt, "/psci"), sorted(&["compatible", "method"]));
    assert_eq!(strings(prop(&fdt, "/psci", "compatible")), ["arm,psci-1.0", "arm,psci-0.2"]);
    assert_eq!(strings(prop(&fdt, "/psci", "method")), ["hvc"]);

    // GIC.
    let gic = "/intc@8000000";
    let gic_props = [
        "compatible",
        "#interrupt-cells",
        "interrupt-controller",
        "#address-cells",
        "#size-cells",
        "ranges",
        "reg",
        "#redistributor-regions",
        "interrupts",
        "phandle",
    ];
    assert_eq!(prop_names(&fdt, gic), sorted(&gic_props));
    assert_eq!(strings(prop(&fdt, gic, "compatible")), ["arm,gic-v3"]);
    assert_eq!(u32_of(&fdt, gic, "#interrupt-cells"), 3);
    assert_eq!(prop(&fdt, gic, "interrupt-controller"), b"");
    assert_eq!(u32_of(&fdt, gic, "#address-cells"), 2);
    assert_eq!(u32_of(&fdt, gic, "#size-cells"), 2);
    assert_eq!(prop(&fdt, gic, "ranges"), b"");
    assert_eq!(u64s(prop(&fdt, gic, "reg")), [0x0800_0000, 0x1_0000, 0x080A_0000, 2 * 0x2_0000]);
    assert_eq!(u32_of(&fdt, gic, "#redistributor-regions"), 1);
    assert_eq!(cells(prop(&fdt, gic, "interrupts")), [1, 9, 4]);
    assert_eq!(u32_of(&fdt, gic, "phandle"), PHANDLE_GIC);

    // Timer.
    assert_eq!(prop_names(&fdt, "/timer"), sorted(&["compatible", "interrupts", "always-on"]));
    assert_eq!(strings(prop(&fdt, "/timer", "compatible")), ["arm,armv8-timer"]);
    assert_eq!(cells(prop(&fdt, "/timer", "interrupts")), [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]);
    assert_eq!(prop(&fdt, "/timer", "always-on"), b"");

    // Clock.
    let clk = "/apb-pclk";
    assert_eq!(
        prop_names(&fdt, clk),
        sorted(&["compatible", "#clock-cells", "clock-frequency", "clock-output-names", "phandle"])
    );
    assert_eq!(strings(prop(&fdt, clk, "compatible")), ["fixed-clock"]);
    assert_eq!(u32_of(&fdt, clk, "#clock-cells"), 0);
    assert_eq!(u32_of(&fdt, clk, "clock-frequency"), 24_000_000);
    assert_eq!(strings(prop(&fdt, clk, "clock-output-names")), ["clk24mhz"]);
    assert_eq!(u32_of(&fdt, clk, "phandle"), PHANDLE_CLK);

    // PL011.
    let uart = "/pl011@9000000";
    assert_eq!(prop_names(&fdt, uart), sorted(&["compatible", "reg", "interrupts", "clocks", "clock-names"]));
    assert_eq!(strings(prop(&fdt, uart, "compatible")), ["arm,pl011", "arm,primecell"]);
    assert_eq!(u64s(prop(&fdt, uart, "reg")), [0x0900_0000, 0x1000]);
    assert_eq!(cells(prop(&fdt, uart, "interrupts")), [0, 1, 4], "SPI 1 = INTID 33");
    assert_eq!(cells(prop(&fdt, uart, "clocks")), [PHANDLE_CLK, PHANDLE_CLK]);
    assert_eq!(strings(prop(&fdt, uart, "clock-names")), ["uartclk", "apb_pclk"]);

    // PL031: no interrupt, as the device has no alarm.
    let rtc = "/pl031@9010000";
    assert_eq!(prop_names(&fdt, rtc), sorted(&["compatible", "reg", "clocks", "clock-names"]));
    assert_eq!(strings(prop(&fdt, rtc, "compatible")), ["arm,pl031", "arm,primecell"]);
    assert_eq!(u64s(prop(&fdt, rtc, "reg")), [0x0901_0000, 0x1000]);
    assert_eq!(cells(prop(&fdt, rtc, "clocks")), [PHANDLE_CLK]);
    assert_eq!(strings(prop(&fdt, rtc, "clock-names")), ["apb_pclk"]);
}

#[test]
fn thirty_two_vcpus() {
    let blob = create_fdt(&FdtConfig { vcpus: 32, ..config() }).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let cpus: Vec<_> = fdt.find_node("/cpus").unwrap().children().collect();
    assert_eq!(cpus.len(), 32);
    for (id, cpu) in cpus.iter().enumerate() {
        let reg = ((id % 16) | ((id / 16) << 8)) as u32;
        assert_eq!(cpu.name, format!("cpu@{reg:x}"));
        assert_eq!(cells(cpu.property("reg").unwrap().value), [reg]);
        assert_eq!(reg as u64, Platform::mpidr_of(id) & MPIDR_AFFINITY);
    }
    assert_eq!(u32_of(&fdt, "/cpus/cpu@101", "reg"), 0x101, "vCPU 17: Aff1 1, Aff0 1");
    assert_eq!(u32_of(&fdt, "/cpus/cpu@f", "reg"), 0xf);
    assert_eq!(u32_of(&fdt, "/cpus/cpu@10f", "reg"), 0x10f);
    let gic_reg = u64s(prop(&fdt, "/intc@8000000", "reg"));
    assert_eq!(gic_reg, [0x0800_0000, 0x1_0000, 0x080A_0000, 0x40_0000]);
    assert!(gic_reg[2] + gic_reg[3] <= PL011_BASE, "the redistributors end below the UART");
}

#[test]
fn no_initrd_no_initrd_properties() {
    let blob = create_fdt(&FdtConfig { initrd: None, cmdline: String::new(), ..config() }).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(prop_names(&fdt, "/chosen"), sorted(&["stdout-path", "rng-seed", "kaslr-seed"]), "no command line");
}

/// With the flash (a firmware boot): one node for both banks, as QEMU's.
#[test]
fn the_flash_as_qemu_describes_it() {
    let mut devices = config().devices;
    devices.push(Slot::Flash.placement().unwrap());
    let blob = create_fdt(&FdtConfig { devices, initrd: None, cmdline: String::new(), ..config() }).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(strings(prop(&fdt, "/flash@0", "compatible")), ["cfi-flash"]);
    assert_eq!(u64s(prop(&fdt, "/flash@0", "reg")), [0, 64 * MIB, 64 * MIB, 64 * MIB]);
    assert_eq!(u32_of(&fdt, "/flash@0", "bank-width"), 4);
    assert_eq!(prop_names(&fdt, "/flash@0"), sorted(&["compatible", "reg", "bank-width"]));
}

#[test]
fn memory_node_follows_the_ram() {
    let blob = create_fdt(&FdtConfig { ram_size: 6 << 30, ..config() }).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(u64s(prop(&fdt, "/memory@40000000", "reg")), [0x4000_0000, 6 << 30]);
}

#[test]
fn refusals() {
    for n in [0, VM_MAXCPU + 1] {
        let e = create_fdt(&FdtConfig { vcpus: n, ..config() }).unwrap_err();
        assert!(matches!(e, FdtError::Vcpus(v) if v == n), "{e:?}");
    }
    assert_eq!(FdtError::Vcpus(0).to_string(), "0 vCPUs: a VM has 1 to 32");

    let e = create_fdt(&FdtConfig { cmdline: "a\0b".into(), ..config() }).unwrap_err();
    assert!(matches!(e, FdtError::Write(vm_fdt::Error::InvalidString)), "{e:?}");

    let e = create_fdt(&FdtConfig { cmdline: "x".repeat(DTB_MAX as usize), ..config() }).unwrap_err();
    let FdtError::TooBig { len } = e else { panic!("{e:?}") };
    assert!(len as u64 > DTB_MAX);
    assert_eq!(e.to_string(), format!("it would take {len} bytes, more than the 2M it has"));
    // The same, a little shorter, fits.
    assert!(create_fdt(&FdtConfig { cmdline: "x".repeat(DTB_MAX as usize - 4096), ..config() }).is_ok());
}

/// `dtc`, where it is installed, reads the trees back without a warning.
#[test]
fn dtc_has_no_warnings() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut flash = config().devices;
    flash.push(Slot::Flash.placement().unwrap());
    let configs = [
        config(),
        FdtConfig { vcpus: 32, initrd: None, ..config() },
        FdtConfig { vcpus: 1, ..config() },
        FdtConfig { devices: flash, cmdline: String::new(), initrd: None, ..config() },
    ];
    for cfg in configs {
        let blob = create_fdt(&cfg).unwrap();
        let child = Command::new("dtc")
            .args(["-I", "dtb", "-O", "dts", "-o", "/dev/null", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("dtc is not installed: not checked");
            return;
        };
        child.stdin.take().unwrap().write_all(&blob).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "dtc failed for {} vCPUs: {stderr}", cfg.vcpus);
        assert_eq!(stderr, "", "dtc warnings for {} vCPUs", cfg.vcpus);
    }
}

/// Writes the tree of [`two_vcpus_512m_with_initrd`] to
/// `/tmp/bhyve-test.dtb`, to read with `dtc -I dtb -O dts`:
/// `cargo test -p bhyve fdt::tests::write_example -- --ignored`.
#[test]
#[ignore = "writes /tmp/bhyve-test.dtb"]
fn write_example() {
    std::fs::write("/tmp/bhyve-test.dtb", create_fdt(&config()).unwrap()).unwrap();
}

/// With the device manager's devices: the tree has a node for each device
/// on the bus (the test device excepted), at its window with its interrupt,
/// and nothing for the transports that have no device.
#[test]
fn nodes_match_the_bus() {
    use crate::bus::BusDevice;
    use crate::devmgr::DeviceManager;
    use std::sync::Arc;
    struct Nothing;
    impl BusDevice for Nothing {
        fn read(&self, _: u64, _: u64, _: &mut [u8]) {}
        fn write(&self, _: u64, _: u64, _: &[u8]) {}
    }
    let mut m = DeviceManager::new();
    for s in [Slot::Pl011, Slot::Pl031, Slot::TestDev, Slot::VirtioMmio(0), Slot::VirtioMmio(5), Slot::VirtioMmio(31)] {
        m.add(s, Arc::new(Nothing)).unwrap();
    }
    let blob = create_fdt(&FdtConfig { devices: m.placements().to_vec(), ..config() }).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let mut with_reg = 0;
    for node in fdt.all_nodes() {
        let Some(reg) = node.property("reg").filter(|r| r.value.len() == 16) else { continue };
        let r = u64s(reg.value);
        if node.name.starts_with("memory@") || node.name.starts_with("intc@") {
            continue;
        }
        with_reg += 1;
        let (range, _) = m.bus().get(r[0]).unwrap_or_else(|| panic!("{} is not on the bus", node.name));
        assert_eq!((range.base, range.len), (r[0], r[1]), "{}", node.name);
        let p = m.placements().iter().find(|p| p.base == r[0]).unwrap();
        match node.property("interrupts") {
            Some(i) => assert_eq!(Some(cells(i.value)[1] + 32), p.intid(), "{}", node.name),
            None => assert_eq!(p.intid(), None, "{}", node.name),
        }
    }
    assert_eq!(with_reg, 5, "PL011, PL031 and three transports");
    for n in [0u64, 5, 31] {
        let path = format!("/virtio_mmio@{:x}", 0x0a00_0000 + n * 0x200);
        assert_eq!(strings(prop(&fdt, &path, "compatible")), ["virtio,mmio"]);
        assert_eq!(cells(prop(&fdt, &path, "interrupts")), [0, 16 + n as u32, 1], "SPI 16+n, rising edge");
        assert!(prop(&fdt, &path, "dma-coherent").is_empty());
        assert_eq!(prop_names(&fdt, &path), sorted(&["compatible", "reg", "interrupts", "dma-coherent"]));
    }
    assert!(fdt.find_node("/virtio_mmio@a000200").is_none());
}
