//! The console's control messages (virtio 1.2, 5.3.6.2): a 32-bit port id,
//! a 16-bit event and a 16-bit value, little-endian, then for a port's name
//! the name itself.

use std::collections::VecDeque;

/// The events of the control protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Driver: it is ready (value 1) or failed (0).
    DeviceReady,
    /// Device: a port exists.
    DeviceAdd,
    /// Device: a port is gone.
    DeviceRemove,
    /// Driver: a port is ready (1) or failed (0).
    PortReady,
    /// Device: this port is a console.
    ConsolePort,
    /// Device: the console's size changed.
    Resize,
    /// Both: the sender's side of the port opened (1) or closed (0).
    PortOpen,
    /// Device: the port's name follows.
    PortName,
}

impl Event {
    fn code(self) -> u16 {
        self as u16
    }

    fn from_code(c: u16) -> Option<Event> {
        use Event::*;
        [DeviceReady, DeviceAdd, DeviceRemove, PortReady, ConsolePort, Resize, PortOpen, PortName]
            .get(c as usize)
            .copied()
    }
}

/// Bytes of a message without its payload.
pub const HEADER: usize = 8;

/// Decodes a driver's message: (port id, event, value); `None` if it is
/// too short or of an unknown event.
pub fn decode(b: &[u8]) -> Option<(u32, Event, u16)> {
    let b: &[u8; HEADER] = b.get(..HEADER)?.try_into().ok()?;
    let id = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let event = Event::from_code(u16::from_le_bytes([b[4], b[5]]))?;
    Some((id, event, u16::from_le_bytes([b[6], b[7]])))
}

/// The device's messages waiting for the driver's buffers.
#[derive(Debug, Default)]
pub struct Control {
    out: VecDeque<Vec<u8>>,
}

impl Control {
    /// Queues a message.
    pub fn push(&mut self, id: u32, event: Event, value: u16, payload: &[u8]) {
        let mut m = Vec::with_capacity(HEADER + payload.len());
        m.extend_from_slice(&id.to_le_bytes());
        m.extend_from_slice(&event.code().to_le_bytes());
        m.extend_from_slice(&value.to_le_bytes());
        m.extend_from_slice(payload);
        self.out.push_back(m);
    }

    /// The next message to send.
    pub fn peek(&self) -> Option<&[u8]> {
        self.out.front().map(|m| &m[..])
    }

    /// The next message was sent.
    pub fn pop(&mut self) {
        self.out.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode() {
        let mut c = Control::default();
        c.push(3, Event::PortName, 1, b"ab");
        assert_eq!(c.peek().unwrap(), [3, 0, 0, 0, 7, 0, 1, 0, b'a', b'b']);
        assert_eq!(decode(c.peek().unwrap()), Some((3, Event::PortName, 1)));
        c.pop();
        assert!(c.peek().is_none());
        assert_eq!(decode(&[0, 0, 0, 0, 0, 0, 1, 0]), Some((0, Event::DeviceReady, 1)));
        assert_eq!(decode(&[0, 0, 0, 0, 8, 0, 1, 0]), None, "unknown event");
        assert_eq!(decode(&[0, 0, 0, 0, 0, 0, 1]), None, "short");
    }
}
