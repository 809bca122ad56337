use super::*;

fn p(args: &[&str]) -> Result<Options, Exit> {
    parse(std::iter::once("bhyve").chain(args.iter().copied()).map(OsString::from))
}

fn err(args: &[&str]) -> String {
    p(args).unwrap_err().usage_error_line(USAGE)
}

#[test]
fn defaults() {
    assert_eq!(
        p(&["g"]).unwrap(),
        Options {
            name: "g".into(),
            cpus: 1,
            mem_size: None,
            console: ConsoleKind::Auto,
            testdev: None,
            fp_check: true,
            sandbox: true,
            sandbox_user: None,
            devices: vec![],
            bootrom: None,
        }
    );
}

#[test]
fn bhyve_spelling() {
    let o = p(&["-c", "1", "-m", "64M", "-o", "console=stdio", "g"]).unwrap();
    assert_eq!((o.cpus, o.mem_size, o.console), (1, Some(64 << 20), ConsoleKind::Stdio));
    assert_eq!(p(&["-c", "cpus=1", "g"]).unwrap().cpus, 1);
    assert_eq!(p(&["-c1", "-m1g", "g"]).unwrap().mem_size, Some(1 << 30));
}

#[test]
fn testdev_options() {
    assert_eq!(p(&["-o", "testdev", "g"]).unwrap().testdev, Some(0));
    assert_eq!(p(&["-o", "testdev.param=42", "g"]).unwrap().testdev, Some(42));
    assert_eq!(p(&["-o", "testdev", "-o", "testdev.param=0xfeed", "g"]).unwrap().testdev, Some(0xfeed));
    assert_eq!(p(&["-o", "testdev.param=18446744073709551615", "g"]).unwrap().testdev, Some(u64::MAX));
    assert_eq!(p(&["-o", "testdev=true", "g"]).unwrap().testdev, Some(0));
    assert_eq!(p(&["-o", "testdev=off", "g"]).unwrap().testdev, None);
    assert_eq!(p(&["-o", "testdev.param=1", "-o", "testdev=false", "g"]).unwrap().testdev, None);
    assert!(p(&["-o", "testdev", "g"]).unwrap().fp_check);
    assert!(!p(&["-o", "testdev.fpcheck=false", "-o", "testdev", "g"]).unwrap().fp_check);
    assert!(p(&["-o", "testdev.fpcheck=maybe", "g"]).is_err());
}

#[test]
fn bad_o_keys_are_named() {
    assert_eq!(err(&["-o", "frob=1", "g"]), "bhyve: unknown -o key 'frob'");
    assert_eq!(err(&["-o", "frob", "g"]), "bhyve: unknown -o key 'frob'");
    assert_eq!(
        err(&["-o", "console=tcp", "g"]),
        "bhyve: -o console=tcp: the console is 'stdio' (the PL011) or 'virtio' (a virtio-console port)"
    );
    assert_eq!(err(&["-o", "testdev.param=x", "g"]), "bhyve: -o testdev.param=x: not a number");
    assert_eq!(err(&["-o", "testdev.param", "g"]), "bhyve: -o testdev.param: needs a value (testdev.param=N)");
    assert!(err(&["-o", "testdev=maybe", "g"]).contains("true or false"));
}

#[test]
fn cpu_counts() {
    assert_eq!(p(&["-c", "2", "g"]).unwrap().cpus, 2);
    assert_eq!(p(&["-c", "cpus=4", "g"]).unwrap().cpus, 4);
    assert_eq!(p(&["-c32", "g"]).unwrap().cpus, 32);
    assert_eq!(MAX_VCPUS, 32);
    assert_eq!(err(&["-c", "33", "g"]), "bhyve: -c 33: at most 32 vCPUs (VM_MAXCPU)");
    assert_eq!(err(&["-c", "cpus=64", "g"]), "bhyve: -c cpus=64: at most 32 vCPUs (VM_MAXCPU)");
    assert_eq!(err(&["-c", "0", "g"]), "bhyve: -c 0: a VM needs at least 1 vCPU");
    assert_eq!(err(&["-c", "cpus=0", "g"]), "bhyve: -c cpus=0: a VM needs at least 1 vCPU");
    assert!(err(&["-c", "-1", "g"]).contains("-1"));
    assert!(err(&["-c", "two", "g"]).starts_with("bhyve: -c two: 'two' is not a number"));
    assert!(err(&["-c", "sockets=1", "g"]).contains("unknown key 'sockets'"));
}

#[test]
fn bad_flags_are_named() {
    assert_eq!(err(&["-x", "g"]), "bhyve: unknown flag '-x'");
    assert_eq!(err(&[]), "bhyve: missing <NAME>");
    assert_eq!(err(&["g", "-m"]), "bhyve: flag '-m <SIZE>' needs a value");
    assert_eq!(err(&["-m", "12x", "g"]), "bhyve: -m 12x: unknown unit 'x' (use K, M, G or T)");
    assert_eq!(err(&["-m", "0", "g"]), "bhyve: -m 0: must not be zero");
    assert!(err(&["g", "h"]).contains("'h'"));
}

fn blk(path: &str) -> BlkOptions {
    BlkOptions { path: path.into(), ..Default::default() }
}

#[test]
fn slots_as_bhyve_spells_them() {
    let o = p(&["-s", "0,hostbridge", "-s", "31,lpc", "-s", "1,virtio-blk,/d.img", "-s", "2,virtio-rnd", "g"]).unwrap();
    assert_eq!(
        o.devices,
        [DeviceSpec { slot: 1, kind: DeviceKind::Blk(blk("/d.img")) }, DeviceSpec { slot: 2, kind: DeviceKind::Rng }]
    );
    let o = p(&["-s", "3,virtio-blk,/d,ro,nocache,direct,nodelete,sectorsize=4096/16384,ser=DISK7", "g"]).unwrap();
    let want = BlkOptions {
        path: "/d".into(),
        read_only: true,
        nocache: true,
        direct: true,
        nodelete: true,
        sectorsize: SectorSize { logical: 4096, physical: 16384 },
        serial: Some("DISK7".into()),
    };
    assert_eq!(o.devices, [DeviceSpec { slot: 3, kind: DeviceKind::Blk(want.clone()) }]);
    let o = p(&[
        "-o",
        "pci.0.3.0.device=virtio-blk",
        "-o",
        "pci.0.3.0.path=/d",
        "-o",
        "pci.0.3.0.ro=true",
        "-o",
        "pci.0.3.0.nocache=true",
        "-o",
        "pci.0.3.0.sync=true",
        "-o",
        "pci.0.3.0.nodelete=true",
        "-o",
        "pci.0.3.0.sectorsize=4096/16384",
        "-o",
        "pci.0.3.0.ser=DISK7",
        "g",
    ])
    .unwrap();
    assert_eq!(o.devices, [DeviceSpec { slot: 3, kind: DeviceKind::Blk(want) }], "the same through keys");
    let o = p(&["-s", "4,virtio-blk,/d", "-o", "pci.0.4.0.ro=true", "-o", "pci.0.4.0.ro=false", "g"]).unwrap();
    assert_eq!(o.devices[0].kind, DeviceKind::Blk(blk("/d")), "a later key wins");
    assert_eq!(p(&["-s", "5,virtio-blk,/d,sectorsize=512", "g"]).unwrap().devices[0].kind, DeviceKind::Blk(blk("/d")));
}

#[test]
fn slot_errors_are_named() {
    assert_eq!(
        err(&["-s", "1:0,virtio-blk,/d", "g"]),
        "bhyve: -s 1:0,virtio-blk,/d: '1:0': only plain slots exist (0 to 31), no bus or function"
    );
    assert!(err(&["-s", "0:1:0,virtio-rnd", "g"]).contains("only plain slots exist"));
    assert_eq!(
        err(&["-s", "32,virtio-rnd", "g"]),
        "bhyve: -s 32,virtio-rnd: slot 32: there are 32 slots, 0 to 31 (one virtio-mmio transport each)"
    );
    assert_eq!(err(&["-s", "x,virtio-rnd", "g"]), "bhyve: -s x,virtio-rnd: 'x' is not a slot number");
    assert_eq!(err(&["-s", "1", "g"]), "bhyve: -s 1: needs an emulation (SLOT,EMULATION)");
    assert_eq!(
        err(&["-s", "1,virtio-rnd", "-s", "1,virtio-rnd", "g"]),
        "bhyve: -s 1,virtio-rnd: slot 1 is given twice"
    );
    assert_eq!(
        err(&["-s", "1,virtio-rnd", "-o", "pci.0.1.0.device=virtio-blk", "g"]),
        "bhyve: -o pci.0.1.0.device=virtio-blk: slot 1 is given twice"
    );
    assert_eq!(
        err(&["-s", "2,virtio-gpu", "g"]),
        "bhyve: slot 2: unknown emulation 'virtio-gpu' (virtio-blk, virtio-rnd, virtio-net, virtio-console, virtio-9p)"
    );
    assert_eq!(
        err(&["-s", "2,virtio-blk", "g"]),
        "bhyve: -s 2,virtio-blk: virtio-blk needs a path (SLOT,virtio-blk,PATH)"
    );
    assert_eq!(err(&["-s", "2,virtio-blk,/d,frob", "g"]), "bhyve: slot 2: virtio-blk has no option 'frob'");
    assert_eq!(err(&["-s", "2,virtio-blk,/d,ro=maybe", "g"]), "bhyve: slot 2: ro=maybe: expected true or false");
    assert_eq!(
        err(&["-s", "2,virtio-blk,/d,sectorsize=1000", "g"]),
        "bhyve: slot 2: sectorsize=1000: 1000 is not a power of two from 512 to 65536"
    );
    assert_eq!(
        err(&["-s", "2,virtio-blk,/d,sectorsize=4096/512", "g"]),
        "bhyve: slot 2: sectorsize=4096/512: the physical size 512 is smaller than the logical 4096"
    );
    assert!(err(&["-s", "2,virtio-blk,/d,sectorsize=256", "g"]).contains("256 is not a power of two from 512"));
    assert!(err(&["-s", "2,virtio-blk,/d,ser=012345678901234567890", "g"]).contains("at most 20 printable"));
    assert_eq!(err(&["-s", "2,virtio-rnd,x", "g"]), "bhyve: -s 2,virtio-rnd,x: virtio-rnd takes no options");
    assert_eq!(err(&["-o", "pci.0.2.0.path=/d", "g"]), "bhyve: slot 2: settings but no device (pci.0.N.0.device=)");
    assert_eq!(
        err(&["-o", "pci.1.2.0.device=virtio-rnd", "g"]),
        "bhyve: -o pci.1.2.0.device=virtio-rnd: only bus 0 and function 0 exist (plain slots 0 to 31)"
    );
    assert!(err(&["-o", "pci.0.2.device=virtio-rnd", "g"]).contains("expected pci.0.SLOT.0.KEY"));
    assert!(err(&["-o", "pci.0.2.0.device=virtio-rnd", "-o", "pci.0.2.0.path=/x", "g"])
        .contains("virtio-rnd has no option 'path'"));
}

#[test]
fn help_exits_zero_on_stdout() {
    let e = p(&["--help"]).unwrap_err();
    assert_eq!(e.code, 0);
    assert!(e.out.contains("testdev.param=N") && e.out.contains("-c <[cpus=]N>"));
    assert!(e.out.contains("1 to 32 (the kernel's VM_MAXCPU)"), "{}", e.out);
    assert!(e.out.contains("CPU_ON, CPU_OFF, AFFINITY_INFO"));
    assert!(e.out.contains("virtio-blk,PATH[,ro]") && e.out.contains("pci.0.SLOT.0.device"), "{}", e.out);
    assert!(e.out.contains("virtio-9p,SHARENAME=PATH[,ro]"), "{}", e.out);
    assert!(e.out.contains("bootrom=FILE") && e.out.contains("virtio-net,TAP"), "{}", e.out);
    assert!(e.err.is_empty());
}

#[test]
fn network_cards() {
    let o = p(&["-s", "3,virtio-net,tap0", "-s", "4,virtio-net,tap1,mac=02:00:00:00:00:07", "vm1"]).unwrap();
    assert_eq!(
        o.devices,
        [
            DeviceSpec {
                slot: 3,
                kind: DeviceKind::Net(NetOptions { tap: "tap0".into(), mac: Mac::derived("vm1", 3) })
            },
            DeviceSpec {
                slot: 4,
                kind: DeviceKind::Net(NetOptions { tap: "tap1".into(), mac: Mac([2, 0, 0, 0, 0, 7]) })
            },
        ]
    );
    let k = p(&[
        "-o",
        "pci.0.4.0.device=virtio-net",
        "-o",
        "pci.0.4.0.backend=tap1",
        "-o",
        "pci.0.4.0.mac=02:00:00:00:00:07",
        "vm1",
    ])
    .unwrap();
    assert_eq!(k.devices[..], o.devices[1..], "the same through keys");
    assert_eq!(
        err(&["-s", "3,virtio-net,tap0,mac=01:00:00:00:00:01", "g"]),
        "bhyve: slot 3: mac=01:00:00:00:00:01: 01:00:00:00:00:01 is a multicast address, not a card's"
    );
    assert_eq!(
        err(&["-s", "3,virtio-net,tap0,mac=02:00", "g"]),
        "bhyve: slot 3: mac=02:00: '02:00' is not a MAC address (xx:xx:xx:xx:xx:xx)"
    );
    assert_eq!(
        err(&["-s", "3,virtio-net", "g"]),
        "bhyve: -s 3,virtio-net: virtio-net needs a tap (SLOT,virtio-net,TAP)"
    );
    assert_eq!(
        err(&["-s", "3,virtio-net,a/b", "g"]),
        "bhyve: slot 3: 'a/b' is not an interface name (no '/', ':', '%' or white space)"
    );
    assert_eq!(err(&["-s", "3,virtio-net,tap0,frob", "g"]), "bhyve: slot 3: virtio-net has no option 'frob'");
}

#[test]
fn consoles() {
    let o = p(&["-s", "2,virtio-console,zeta=/run/z.sock,alpha=/run/a.sock", "g"]).unwrap();
    let ports = vec![("zeta".to_string(), PathBuf::from("/run/z.sock")), ("alpha".to_string(), "/run/a.sock".into())];
    assert_eq!(
        o.devices,
        [DeviceSpec { slot: 2, kind: DeviceKind::Console(ConsoleOptions { stdio: false, ports: ports.clone() }) }]
    );
    assert_eq!(o.console, ConsoleKind::Auto);
    let k = p(&[
        "-o",
        "pci.0.2.0.device=virtio-console",
        "-o",
        "pci.0.2.0.port.zeta.path=/run/z.sock",
        "-o",
        "pci.0.2.0.port.alpha.path=/run/a.sock",
        "g",
    ])
    .unwrap();
    assert_eq!(k.devices, o.devices, "the same through keys, in the same order");
    let o = p(&["-s", "5,virtio-console,stdio,log=/l", "g"]).unwrap();
    assert_eq!(o.console, ConsoleKind::Virtio, "a stdio port makes the console virtio");
    assert!(matches!(&o.devices[0].kind, DeviceKind::Console(c) if c.stdio));
    assert_eq!(p(&["-o", "console=virtio", "g"]).unwrap().console, ConsoleKind::Virtio);
    assert_eq!(p(&["-o", "console=stdio", "g"]).unwrap().console, ConsoleKind::Stdio);
    assert_eq!(
        err(&["-o", "console=stdio", "-s", "5,virtio-console,stdio", "g"]),
        "bhyve: -o console=stdio gives stdio to the PL011: no virtio-console can have it"
    );
    assert_eq!(
        err(&["-s", "5,virtio-console,stdio", "-s", "6,virtio-console,stdio", "g"]),
        "bhyve: only one virtio-console can have its console on stdio"
    );
    assert_eq!(
        err(&["-s", "5,virtio-console", "g"]),
        "bhyve: slot 5: virtio-console needs a port (stdio or NAME=PATH)"
    );
    assert_eq!(
        err(&["-s", "5,virtio-console,a b=/x", "g"]),
        "bhyve: -s 5,virtio-console,a b=/x: 'a b' is not a port name (1 to 64 letters, digits, '_' or '-')"
    );
    assert_eq!(
        err(&["-s", "5,virtio-console,a=/x,a=/y", "g"]),
        "bhyve: -s 5,virtio-console,a=/x,a=/y: slot 5: port.a.path is given twice"
    );
    assert_eq!(
        err(&["-s", "5,virtio-console,tty", "g"]),
        "bhyve: -s 5,virtio-console,tty: virtio-console: 'tty' is neither stdio nor NAME=PATH"
    );
    assert_eq!(err(&["-s", "5,virtio-console,a=", "g"]), "bhyve: slot 5: port a needs a socket path");
}

#[test]
fn the_stdio_console_goes_to_the_first_free_slot() {
    let mut o = p(&["-s", "0,virtio-rnd", "-s", "2,virtio-blk,/d", "g"]).unwrap();
    o.add_stdio_console().unwrap();
    assert_eq!(o.devices.iter().map(|d| d.slot).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(matches!(&o.devices[1].kind, DeviceKind::Console(c) if c.stdio && c.ports.is_empty()));
    o.add_stdio_console().unwrap();
    assert_eq!(o.devices.len(), 3, "once");
    let mut full = p(&["g"]).unwrap();
    for s in 0..SLOTS {
        full.devices.push(DeviceSpec { slot: s, kind: DeviceKind::Rng });
    }
    assert!(full.add_stdio_console().is_err());
}

#[test]
fn which_console_the_command_line_wants() {
    assert!(wants_virtio_console("console=hvc0 earlycon=pl011,0x9000000 panic=-1"));
    assert!(wants_virtio_console("console=ttyAMA0 console=hvc0"));
    assert!(!wants_virtio_console("console=hvc0 console=ttyAMA0"), "the last one is /dev/console");
    assert!(!wants_virtio_console("earlycon panic=-1"));
    assert!(!wants_virtio_console(""));
    assert!(!wants_virtio_console("xconsole=hvc0"));
}

fn share(name: &str, path: &str, read_only: bool) -> DeviceKind {
    DeviceKind::P9(P9Options { sharename: name.into(), path: path.into(), read_only })
}

#[test]
fn virtio_9p_as_bhyve_spells_it() {
    assert_eq!(
        p(&["-s", "3,virtio-9p,host=/srv/share", "g"]).unwrap().devices[0].kind,
        share("host", "/srv/share", false)
    );
    assert_eq!(p(&["-s", "3,virtio-9p,ro,host=/srv", "g"]).unwrap().devices[0].kind, share("host", "/srv", true));
    let o = p(&[
        "-o",
        "pci.0.4.0.device=virtio-9p",
        "-o",
        "pci.0.4.0.sharename=t",
        "-o",
        "pci.0.4.0.path=/p",
        "-o",
        "pci.0.4.0.ro=true",
        "g",
    ])
    .unwrap();
    assert_eq!(o.devices, [DeviceSpec { slot: 4, kind: share("t", "/p", true) }]);
    let tag = "t".repeat(254);
    assert_eq!(p(&["-s", &format!("5,virtio-9p,{tag}=/p"), "g"]).unwrap().devices[0].kind, share(&tag, "/p", false));
}

#[test]
fn virtio_9p_errors_are_named() {
    assert_eq!(
        err(&["-s", "3,virtio-9p", "g"]),
        "bhyve: slot 3: virtio-9p needs a share (SLOT,virtio-9p,SHARENAME=PATH)"
    );
    assert_eq!(
        err(&["-s", "3,virtio-9p,a=/a,b=/b", "g"]),
        "bhyve: -s 3,virtio-9p,a=/a,b=/b: virtio-9p takes one share (SHARENAME=PATH)"
    );
    assert_eq!(err(&["-s", "3,virtio-9p,=/a", "g"]), "bhyve: slot 3: sharename=: the share name is empty");
    assert_eq!(err(&["-s", "3,virtio-9p,a=", "g"]), "bhyve: slot 3: virtio-9p needs a path (SHARENAME=PATH)");
    assert_eq!(
        err(&["-s", &format!("3,virtio-9p,{}=/a", "t".repeat(255)), "g"]),
        format!("bhyve: slot 3: sharename={}: the share name is 255 bytes long; at most 254 fit", "t".repeat(255))
    );
    assert_eq!(err(&["-s", "3,virtio-9p,a=/a,rw", "g"]), "bhyve: slot 3: virtio-9p has no option 'rw'");
    assert_eq!(
        err(&["-o", "pci.0.3.0.device=virtio-9p", "-o", "pci.0.3.0.sharename=a", "-o", "pci.0.3.0.ro=2", "g"]),
        "bhyve: slot 3: virtio-9p needs a path (SHARENAME=PATH)"
    );
    assert_eq!(
        err(&[
            "-o",
            "pci.0.3.0.device=virtio-9p",
            "-o",
            "pci.0.3.0.sharename=a",
            "-o",
            "pci.0.3.0.path=/a",
            "-o",
            "pci.0.3.0.ro=2",
            "g"
        ]),
        "bhyve: slot 3: ro=2: expected true or false"
    );
}

#[test]
fn boot_roms_as_bhyve_spells_them() {
    let rom = |r: &str, v: Option<&str>, t: Option<&str>| {
        Some(BootRom { rom: r.into(), vars: v.map(Into::into), template: t.map(Into::into) })
    };
    assert_eq!(p(&["-o", "bootrom=/fw.fd", "g"]).unwrap().bootrom, rom("/fw.fd", None, None));
    assert_eq!(
        p(&["-o", "bootrom=/fw.fd", "-o", "bootvars=/v.fd", "g"]).unwrap().bootrom,
        rom("/fw.fd", Some("/v.fd"), None)
    );
    assert_eq!(
        p(&["-o", "lpc.bootrom=/a", "-o", "lpc.bootvars=/b", "-o", "bootvars.template=/t", "g"]).unwrap().bootrom,
        rom("/a", Some("/b"), Some("/t"))
    );
    assert_eq!(p(&["-l", "bootrom,/fw.fd", "g"]).unwrap().bootrom, rom("/fw.fd", None, None));
    assert_eq!(
        p(&["-l", "bootrom,/fw.fd,/v.fd", "-l", "com1,stdio", "g"]).unwrap().bootrom,
        rom("/fw.fd", Some("/v.fd"), None)
    );
    assert_eq!(err(&["-l", "bootrom", "g"]), "bhyve: -l bootrom: expected bootrom,FILE[,VARSFILE]");
    assert_eq!(err(&["-l", "bootrom,/a,", "g"]), "bhyve: -l bootrom,/a,: expected bootrom,FILE[,VARSFILE]");
    assert_eq!(
        err(&["-l", "com2,stdio", "g"]),
        "bhyve: -l com2,stdio: only bootrom,FILE[,VARSFILE] and com1,stdio exist"
    );
    assert_eq!(err(&["-o", "bootrom=", "g"]), "bhyve: -o bootrom=: needs a file");
    assert_eq!(err(&["-o", "bootvars=/v", "g"]), "bhyve: bootvars needs a bootrom (-o bootrom=FILE)");
}
