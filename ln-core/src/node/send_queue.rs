//! Our own payments that wait, in order, for HTLC capacity our other payments hold.
//!
//! A channel carries at most the peer's `max_accepted_htlcs` HTLCs of ours, and at most its
//! cap on value in flight. LDK fails a send at once when no channel has room, and a node that
//! sends many payments at a time would see most of them fail with "no route" although each
//! would go a moment later. LND used to queue such HTLCs in its link's overflow queue. xln
//! queues the payments in front of LDK instead (LDK 0.2 cannot hold an HTLC back): a payment
//! that finds our own HTLCs filling a channel takes a place at the end of this queue, only the
//! first in line tries to send, and it tries again as soon as the channel has room. The queue is
//! bounded, and a payment waits at most until its call's deadline; either limit ends it with
//! [`Error::SendQueue`](super::Error::SendQueue) and nothing sent.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many payments may wait at once by default, as LND's mailbox held 1,000 HTLCs per link.
pub(crate) const DEFAULT_SEND_QUEUE_LIMIT: usize = 1_000;

/// The queue: a count of places, bounded, and a fair lock that admits them one at a time in
/// the order they came (tokio's mutex serves waiters first in, first out).
#[derive(Debug)]
pub(crate) struct SendQueue {
    first_in_line: tokio::sync::Mutex<()>,
    /// Held while one payment of ours is handed to LDK (see [`SendQueue::one_send_at_a_time`]).
    sending: std::sync::Mutex<()>,
    waiting: AtomicUsize,
    limit: usize,
}

/// A payment's place in the queue; leaving it (by drop) frees it for another payment.
#[derive(Debug)]
pub(crate) struct Place<'a> {
    queue: &'a SendQueue,
}

impl SendQueue {
    /// An empty queue with room for `limit` payments.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            first_in_line: tokio::sync::Mutex::new(()),
            sending: std::sync::Mutex::new(()),
            waiting: AtomicUsize::new(0),
            limit,
        }
    }

    /// How many payments wait now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// How many payments may wait at once.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Held while a payment of ours is handed to LDK, so that our sends find their route and
    /// add their HTLC one at a time: LDK routes a send over a channel's room as it is before the
    /// send, so two sends at once could both be routed over the last free slot; the second then
    /// failed when its HTLC was added, and LDK's retry, which avoids the channel that failed,
    /// found no route and gave the payment up ("Cannot send more than our next-HTLC maximum").
    /// One at a time, the second finds the channel full and waits in the queue instead. For
    /// blocking threads only (a send runs the router).
    pub(crate) fn one_send_at_a_time(&self) -> std::sync::MutexGuard<'_, ()> {
        self.sending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place at the end of the queue, or `None` when it is full.
    pub(crate) fn join(&self) -> Option<Place<'_>> {
        self.waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |waiting| {
                (waiting < self.limit).then_some(waiting + 1)
            })
            .ok()
            .map(|_| Place { queue: self })
    }
}

impl Place<'_> {
    /// Waits until every payment that joined before this one has left, or until `deadline`
    /// (then `None`). The guard keeps the others waiting while this payment tries to go.
    pub(crate) async fn first_in_line(
        &self,
        deadline: tokio::time::Instant,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        tokio::time::timeout_at(deadline, self.queue.first_in_line.lock())
            .await
            .ok()
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.queue.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_full_queue_takes_no_one_until_a_place_is_left() {
        let queue = SendQueue::new(2);
        let first = queue.join();
        let second = queue.join();
        assert!(first.is_some() && second.is_some());
        assert!(queue.join().is_none());
        assert_eq!(queue.waiting(), 2);
        drop(first);
        assert_eq!(queue.waiting(), 1);
        assert!(queue.join().is_some());
        assert_eq!(
            queue.waiting(),
            1,
            "the place taken and dropped above is free again"
        );
    }

    #[tokio::test]
    async fn payments_go_first_in_first_out_and_the_last_gives_up_at_its_deadline() {
        let queue = Arc::new(SendQueue::new(10));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = queue.first_in_line.lock().await;
        let mut waiters = Vec::new();
        for payment in 0..5 {
            let (queue, order) = (Arc::clone(&queue), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                let Some(place) = queue.join() else {
                    return;
                };
                let far = tokio::time::Instant::now() + Duration::from_secs(60);
                let first = place.first_in_line(far).await;
                if first.is_some() {
                    if let Ok(mut order) = order.lock() {
                        order.push(payment);
                    }
                }
                drop(first);
            }));
            // Each joins and starts waiting before the next.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let late = queue.join().expect("a place");
        let soon = tokio::time::Instant::now() + Duration::from_millis(50);
        assert!(
            late.first_in_line(soon).await.is_none(),
            "still behind the held lock"
        );
        drop(held);
        for waiter in waiters {
            waiter.await.expect("waiter");
        }
        assert_eq!(*order.lock().expect("order"), vec![0, 1, 2, 3, 4]);
        drop(late);
        assert_eq!(queue.waiting(), 0);
    }
}
