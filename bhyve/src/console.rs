//! The stdio console: the guest's UART output goes to stdout (the UART
//! writes it itself); a thread reads stdin and feeds the UART's receive FIFO.
//!
//! When stdin is a terminal it is put in raw mode, so that every key goes to
//! the guest as typed (Ctrl-C included, as with bhyve), and restored when the
//! [`Console`] is dropped or [`Console::restore`]d: on every way out of bhyve.

use crate::signals;
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{IsTerminal, Read};
use std::sync::{Arc, Mutex, OnceLock};

/// The terminal's settings before raw mode, for [`restore_from_signal`].
static SAVED_RAW: OnceLock<libc::termios> = OnceLock::new();

/// Puts the terminal back from a signal handler (async-signal-safe: one
/// ioctl), if raw mode was ever set.
pub fn restore_from_signal() {
    if let Some(t) = SAVED_RAW.get() {
        // SAFETY: tcsetattr reads one termios that lives for the process.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
    }
}

/// Where console input goes: a UART's receive FIFO.
pub trait ConsoleInput: Send + Sync {
    /// Takes as many of `bytes` as there is room for; returns how many.
    fn push(&self, bytes: &[u8]) -> usize;
    /// Blocks until there is room for at least one byte.
    fn wait_for_room(&self);
}

/// The console; dropping it restores the terminal.
pub struct Console {
    /// The terminal settings to put back, while raw mode is on.
    saved: Mutex<Option<Termios>>,
}

impl Console {
    /// Puts a terminal stdin in raw mode and starts the thread feeding `input`.
    pub fn start(input: Arc<dyn ConsoleInput>) -> Result<Console, String> {
        let stdin = std::io::stdin();
        let saved = if stdin.is_terminal() {
            let orig =
                termios::tcgetattr(&stdin).map_err(|e| format!("cannot read the terminal's settings: {}", e.desc()))?;
            let _ = SAVED_RAW.set(orig.clone().into());
            let mut raw = orig.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)
                .map_err(|e| format!("cannot put the terminal in raw mode: {}", e.desc()))?;
            Some(orig)
        } else {
            None
        };
        let console = Console { saved: Mutex::new(saved) };
        // From here on, an error return drops `console`, which restores the
        // terminal.
        signals::with_stop_signals_blocked(|| {
            std::thread::Builder::new().name("console".into()).spawn(move || pump(std::io::stdin(), &*input))
        })
        .map_err(|e| format!("cannot block signals: {}", e.desc()))?
        .map_err(|e| format!("cannot start the input thread: {e}"))?;
        Ok(console)
    }

    /// Puts the terminal back as it was (once; later calls do nothing).
    pub fn restore(&self) {
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = saved {
            // Nothing useful to do if the terminal is gone.
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &t);
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Copies `reader` into `input` until end of file or an error, waiting for
/// room rather than dropping input: the guest may be slower than a pipe.
pub fn pump<R: Read>(mut reader: R, input: &dyn ConsoleInput) {
    let mut buf = [0u8; 64];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Nothing can be read any more: the guest just gets no more input.
            Err(_) => return,
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let took = input.push(rest);
            rest = &rest[took..];
            if !rest.is_empty() {
                input.wait_for_room();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;

    /// A FIFO of 3 bytes drained by another thread.
    #[derive(Default)]
    struct Small {
        fifo: Mutex<Vec<u8>>,
        room: Condvar,
    }

    impl ConsoleInput for Small {
        fn push(&self, bytes: &[u8]) -> usize {
            let mut f = self.fifo.lock().unwrap();
            let n = bytes.len().min(3 - f.len());
            f.extend_from_slice(&bytes[..n]);
            n
        }
        fn wait_for_room(&self) {
            let f = self.fifo.lock().unwrap();
            let _f = self.room.wait_while(f, |f| f.len() >= 3).unwrap();
        }
    }

    #[test]
    fn pump_waits_for_room_and_loses_nothing() {
        let sink = Arc::new(Small::default());
        let input: Vec<u8> = (0..200u8).collect();
        let s = sink.clone();
        let drain = std::thread::spawn(move || {
            let mut got = vec![];
            while got.len() < 200 {
                let mut f = s.fifo.lock().unwrap();
                got.append(&mut f);
                s.room.notify_all();
                drop(f);
                std::thread::yield_now();
            }
            got
        });
        pump(&input[..], &*sink);
        assert_eq!(drain.join().unwrap(), input);
    }

    #[test]
    fn pump_stops_at_end_of_file() {
        let sink = Small::default();
        pump(&b""[..], &sink);
        pump(&b"ab"[..], &sink);
        assert_eq!(*sink.fifo.lock().unwrap(), b"ab");
    }

    #[test]
    fn restore_without_a_terminal_does_nothing() {
        let c = Console { saved: Mutex::new(None) };
        c.restore();
        c.restore();
    }
}
