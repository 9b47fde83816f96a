//! A queue between threads that share a core: senders append under a
//! mutex, the receiver takes everything queued at once by swapping buffers.
//!
//! Why not a channel: the shards' changes went to the committer through a
//! bounded crossbeam channel, whose receiver spins (no yield, no sleep)
//! while a sender has claimed a slot and not yet filled it. With the
//! server on one core, a shard preempted inside `send` (the committer's
//! timer firing) left the committer spinning until the scheduler took the
//! core from it: 4.6–5.2 ms with every reply held up, about once a second
//! at 86k leases/s (`perf sched`; `perf record` put the committer in
//! crossbeam's `start_recv` for all of it). A mutex whose holder is
//! preempted puts the waiter to sleep instead, and the holder runs at once.
//!
//! Swapping keeps both buffers' capacity: after warm-up nothing is
//! allocated, on either side.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// What [`Mailbox::recv_into`] brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// At least one item.
    Items,
    /// Nothing before the deadline.
    TimedOut,
    /// Nothing, and the mailbox is closed: nothing more will come.
    Closed,
}

/// A multi-producer, single-consumer queue; see the module doc.
pub struct Mailbox<T> {
    state: Mutex<State<T>>,
    /// The receiver waits here for items.
    ready: Condvar,
    /// Senders wait here while the mailbox is full.
    space: Condvar,
    bound: usize,
}

struct State<T> {
    items: VecDeque<T>,
    receiver_waits: bool,
    senders_wait: usize,
    closed: bool,
}

impl<T> Mailbox<T> {
    /// A mailbox that holds at most `bound` items (senders wait beyond
    /// it), with room for `capacity` allocated now.
    pub fn new(bound: usize, capacity: usize) -> Self {
        Mailbox {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity),
                receiver_waits: false,
                senders_wait: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            space: Condvar::new(),
            bound: bound.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every critical section leaves the state whole: a panic in one
        // (out of memory) poisons nothing that matters.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item`, waiting while the mailbox is full; gives it back
    /// once the mailbox is closed.
    pub fn send(&self, item: T) -> Result<(), T> {
        let mut s = self.lock();
        while s.items.len() >= self.bound && !s.closed {
            s.senders_wait += 1;
            s = self.space.wait(s).unwrap_or_else(PoisonError::into_inner);
            s.senders_wait -= 1;
        }
        if s.closed {
            return Err(item);
        }
        s.items.push_back(item);
        self.sent(s);
        Ok(())
    }

    /// Moves all of `items` to the mailbox, whatever its bound (the
    /// caller must not wait); false, leaving `items` alone, once closed.
    pub fn send_all(&self, items: &mut Vec<T>) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        s.items.extend(items.drain(..));
        self.sent(s);
        true
    }

    /// Wakes the receiver if it waits (a system call only then).
    fn sent(&self, s: MutexGuard<'_, State<T>>) {
        let wake = s.receiver_waits;
        drop(s);
        if wake {
            self.ready.notify_one();
        }
    }

    /// Takes everything queued into `into` (empty, its buffer becomes the
    /// mailbox's), waiting until something is queued, `deadline` passes
    /// (never, when `None`) or the mailbox is closed.
    pub fn recv_into(&self, into: &mut VecDeque<T>, deadline: Option<Instant>) -> Received {
        debug_assert!(into.is_empty());
        let mut s = self.lock();
        while s.items.is_empty() {
            if s.closed {
                return Received::Closed;
            }
            s.receiver_waits = true;
            s = match deadline {
                None => self.ready.wait(s).unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        s.receiver_waits = false;
                        return Received::TimedOut;
                    }
                    self.ready.wait_timeout(s, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
            s.receiver_waits = false;
        }
        self.take(s, into);
        Received::Items
    }

    /// Takes everything queued into `into` (empty) without waiting; false
    /// when nothing was queued.
    pub fn try_recv_into(&self, into: &mut VecDeque<T>) -> bool {
        debug_assert!(into.is_empty());
        let s = self.lock();
        if s.items.is_empty() {
            return false;
        }
        self.take(s, into);
        true
    }

    fn take(&self, mut s: MutexGuard<'_, State<T>>, into: &mut VecDeque<T>) {
        std::mem::swap(&mut s.items, into);
        let wake = s.senders_wait > 0;
        drop(s);
        if wake {
            self.space.notify_all();
        }
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// No more items: senders get theirs back, the receiver gets what is
    /// queued, then [`Received::Closed`].
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        drop(s);
        self.ready.notify_all();
        self.space.notify_all();
    }
}

/// Closes a mailbox when dropped: the receiving thread's end, even by a
/// panic, lets no sender wait for ever.
pub struct CloseOnDrop<'a, T>(pub &'a Mailbox<T>);

impl<T> Drop for CloseOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn items_arrive_in_order_and_whole() {
        let m = Arc::new(Mailbox::new(8, 8));
        let sender = {
            let m = m.clone();
            std::thread::spawn(move || (0..10_000u32).for_each(|n| m.send(n).unwrap()))
        };
        let mut got = Vec::new();
        let mut into = VecDeque::new();
        while got.len() < 10_000 {
            assert_eq!(m.recv_into(&mut into, Some(Instant::now() + Duration::from_secs(10))), Received::Items);
            got.extend(into.drain(..));
        }
        sender.join().unwrap();
        assert!(got.iter().copied().eq(0..10_000), "out of order or lost");
    }

    #[test]
    fn a_full_mailbox_holds_its_sender_until_the_receiver_takes() {
        let m = Arc::new(Mailbox::new(2, 2));
        m.send(1).unwrap();
        m.send(2).unwrap();
        let sender = {
            let m = m.clone();
            std::thread::spawn(move || m.send(3))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!sender.is_finished(), "sent past the bound");
        let mut into = VecDeque::new();
        assert!(m.try_recv_into(&mut into));
        assert_eq!(into, [1, 2]);
        sender.join().unwrap().unwrap();
        into.clear();
        assert!(m.try_recv_into(&mut into));
        assert_eq!(into, [3]);
    }

    #[test]
    fn a_wait_ends_at_its_deadline_and_at_close() {
        let m = Arc::new(Mailbox::<u8>::new(4, 4));
        let mut into = VecDeque::new();
        let started = Instant::now();
        assert_eq!(m.recv_into(&mut into, Some(started + Duration::from_millis(30))), Received::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(!m.try_recv_into(&mut into));

        let closer = {
            let m = m.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                m.send(7).unwrap();
                m.close();
            })
        };
        // What was queued before the close still arrives, then the close.
        let mut got = Vec::new();
        loop {
            match m.recv_into(&mut into, None) {
                Received::Items => got.extend(into.drain(..)),
                Received::Closed => break,
                Received::TimedOut => unreachable!("no deadline"),
            }
        }
        closer.join().unwrap();
        assert_eq!(got, [7]);
        assert_eq!(m.send(8), Err(8));
        assert!(!m.send_all(&mut vec![9]));
    }

    #[test]
    fn a_sender_held_by_a_full_mailbox_gets_its_item_back_at_close() {
        let m = Arc::new(Mailbox::new(1, 1));
        m.send(1).unwrap();
        let sender = {
            let m = m.clone();
            std::thread::spawn(move || m.send(2))
        };
        std::thread::sleep(Duration::from_millis(30));
        drop(CloseOnDrop(&*m));
        assert_eq!(sender.join().unwrap(), Err(2));
    }

    #[test]
    fn send_all_ignores_the_bound_and_swapping_keeps_capacity() {
        let m = Mailbox::new(1, 16);
        let mut batch: Vec<u32> = (0..100).collect();
        assert!(m.send_all(&mut batch));
        assert!(batch.is_empty());
        let mut into = VecDeque::with_capacity(16);
        assert!(m.try_recv_into(&mut into));
        assert_eq!(into.len(), 100);
        assert!(into.capacity() >= 100);
        // The receiver's old buffer went to the mailbox: refilled without
        // growing it past what it had.
        let before = m.lock().items.capacity();
        assert!(before >= 16);
        m.send(1).unwrap();
        assert_eq!(m.lock().items.capacity(), before);
    }
}
