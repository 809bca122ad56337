//! Chains as a hostile driver writes them.

use super::*;
use crate::virtio::testring::{TestRing, BASE, DATA, LEN, NEXT, WRITE};
use virtio_queue::QueueOwnedT;

fn walk_next(r: &TestRing, q: &mut virtio_queue::Queue) -> Result<Chain, QueueError> {
    let c = q.iter(&r.mem).unwrap().next().expect("a chain is available");
    Chain::walk(c, &r.mem)
}

#[test]
fn a_good_chain() {
    let mut r = TestRing::new(16);
    let h = r.chain(&[(DATA, 16, false), (DATA + 0x100, 512, true), (DATA + 0x400, 1, true)]);
    r.publish(h);
    let mut q = r.queue(false);
    let c = walk_next(&r, &mut q).unwrap();
    assert_eq!(c.head, h);
    assert_eq!(c.readable, [Segment { addr: DATA, len: 16 }]);
    assert_eq!(c.writable.len(), 2);
    assert_eq!((c.readable_len(), c.writable_len()), (16, 513));
}

#[test]
fn garbage_is_named() {
    let mut q;
    // A loop: 0 -> 1 -> 0.
    let mut r = TestRing::new(16);
    r.set_desc(0, DATA, 16, NEXT, 1);
    r.set_desc(1, DATA, 16, NEXT, 0);
    r.publish(0);
    q = r.queue(false);
    assert_eq!(walk_next(&r, &mut q), Err(QueueError::Unterminated { head: 0 }));
    // A next index beyond the table.
    let mut r = TestRing::new(16);
    r.set_desc(0, DATA, 16, NEXT, 16);
    r.publish(0);
    q = r.queue(false);
    assert_eq!(walk_next(&r, &mut q), Err(QueueError::Unterminated { head: 0 }));
    // A head beyond the table.
    let mut r = TestRing::new(16);
    r.publish(300);
    q = r.queue(false);
    assert_eq!(walk_next(&r, &mut q), Err(QueueError::Unterminated { head: 300 }));
    // A buffer running past the end of guest memory, and one far outside.
    let mut r = TestRing::new(16);
    let end = BASE + LEN as u64;
    let h = r.chain(&[(end - 8, 16, false)]);
    r.publish(h);
    let h2 = r.chain(&[(0x1000, 16, true)]);
    r.publish(h2);
    q = r.queue(false);
    assert_eq!(walk_next(&r, &mut q), Err(QueueError::OutsideMemory { head: h, addr: end - 8, len: 16 }));
    assert_eq!(walk_next(&r, &mut q), Err(QueueError::OutsideMemory { head: h2, addr: 0x1000, len: 16 }));
    // Readable after writable.
    let mut r = TestRing::new(16);
    let h = r.chain(&[(DATA, 16, true), (DATA, 16, false)]);
    r.publish(h);
    q = r.queue(false);
    assert_eq!(walk_next(&r, &mut q), Err(QueueError::Order { head: h }));
    let _ = WRITE;
}

#[test]
fn sub_ranges_span_segments() {
    let segs = [Segment { addr: 0x1000, len: 10 }, Segment { addr: 0x2000, len: 6 }];
    assert_eq!(sub_range(&segs, 8, 4).unwrap(), [Segment { addr: 0x1008, len: 2 }, Segment { addr: 0x2000, len: 2 }]);
    assert_eq!(sub_range(&segs, 15, 1).unwrap(), [Segment { addr: 0x2005, len: 1 }]);
    assert_eq!(sub_range(&segs, 0, 0).unwrap(), []);
    assert!(sub_range(&segs, 10, 7).is_none());
}
