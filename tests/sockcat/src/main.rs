//! `sockcat [-w SECONDS] PATH`: connects to the unix stream socket PATH
//! (waiting up to SECONDS for it to accept, default 0) and copies stdin to
//! it and it to stdout. At the end of stdin the sending side is shut down;
//! sockcat exits when the socket's side ends. The tests use it to talk to
//! bhyve's virtio-console ports, as busybox's nc has no `-U`.
//! Exit status: 0, or 1 with one line on stderr.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (wait, path) = match &args[..] {
        [w, s, p] if w == "-w" => match s.parse::<u64>() {
            Ok(s) => (s, p.clone()),
            Err(_) => fail(&format!("-w {s}: not a number of seconds")),
        },
        [p] if !p.starts_with('-') => (0, p.clone()),
        _ => fail("usage: sockcat [-w SECONDS] PATH"),
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    let sock = loop {
        match UnixStream::connect(&path) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => fail(&format!("cannot connect to {path}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let mut to_sock = sock.try_clone().unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_sock.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_sock.shutdown(Shutdown::Write);
    });
    let mut from = sock;
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 4096];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => fail(&format!("{path}: {e}")),
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("sockcat: {msg}");
    std::process::exit(1);
}
