//! The queue between what arrives for this node (link readers, our own publishes) and its handler dispatcher.
//!
//! A link reader hands over a run's events in one item rather than one queue operation each (a queue operation, its
//! permit and its wake-up cost about as much as decoding a small event). The bound is on events, not items, so a
//! queue of runs cannot hold more than a queue of single events would.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::node::Received;

/// Events handed to the dispatcher together.
#[derive(Debug)]
pub enum Delivery {
    One(Received),
    Many(Vec<Received>),
}

impl Delivery {
    pub fn len(&self) -> usize {
        match self {
            Delivery::One(_) => 1,
            Delivery::Many(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each event, in order.
    pub fn for_each(self, mut each: impl FnMut(Received)) {
        match self {
            Delivery::One(r) => each(r),
            Delivery::Many(v) => v.into_iter().for_each(each),
        }
    }
}

/// The sending side, shared by every link reader and publisher of the node.
pub struct LocalQueue {
    tx: mpsc::Sender<Delivery>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The dispatcher's side.
pub struct LocalReceiver {
    rx: mpsc::Receiver<Delivery>,
    queued: Arc<AtomicUsize>,
}

/// A queue that holds at most `limit` events.
pub fn channel(limit: usize) -> (LocalQueue, LocalReceiver) {
    let (tx, rx) = mpsc::channel(limit.max(1));
    let queued = Arc::new(AtomicUsize::new(0));
    (LocalQueue { tx, queued: Arc::clone(&queued), limit }, LocalReceiver { rx, queued })
}

impl LocalQueue {
    /// Queues the events, or refuses all of them when they would take the queue past its bound (the caller counts
    /// them as dropped: overload never blocks a link reader or a publisher).
    pub fn push(&self, d: Delivery) -> Result<(), Delivery> {
        let n = d.len();
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > self.limit {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(d);
        }
        self.tx.try_send(d).map_err(|e| {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d) => d,
            }
        })
    }
}

impl LocalReceiver {
    /// Waits for deliveries and takes up to `max` of them; 0 when every sender is gone.
    pub async fn recv_many(&mut self, buf: &mut Vec<Delivery>, max: usize) -> usize {
        let before = buf.len();
        let n = self.rx.recv_many(buf, max).await;
        let events: usize = buf[before..].iter().map(Delivery::len).sum();
        self.queued.fetch_sub(events, Ordering::AcqRel);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Event, Header};

    fn received(n: u64) -> Received {
        Received::new(Header::new("t", "w"), Event::new("T::n", vec![crate::cluster::Data::Count(n)]))
    }

    #[tokio::test]
    async fn the_bound_counts_events_not_deliveries_and_frees_what_the_dispatcher_took() {
        let (queue, mut rx) = channel(4);
        queue.push(Delivery::Many((0..3).map(received).collect())).unwrap();
        let refused = queue.push(Delivery::Many((3..5).map(received).collect())).unwrap_err();
        assert_eq!(refused.len(), 2, "3 + 2 events would pass the bound of 4: all refused, none lost silently");
        queue.push(Delivery::One(received(5))).unwrap();
        let mut taken = Vec::new();
        assert_eq!(rx.recv_many(&mut taken, 16).await, 2);
        let mut counts = Vec::new();
        for d in taken {
            d.for_each(|r| counts.extend(r.event.args[0].as_count()));
        }
        assert_eq!(counts, [0, 1, 2, 5], "in order");
        queue.push(Delivery::Many((6..10).map(received).collect())).unwrap();
    }
}
