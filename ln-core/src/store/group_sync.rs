//! Group commit: callers that want their writes durable at about the same time share one flush.
//!
//! Every durable write in the store ends with sled's flush (which hands the log's buffer to one
//! of sled's I/O threads, writes it and waits for `sync_file_range`) and an `fdatasync` of the
//! log. With many payments in flight, the monitor writer's batches and the payment records of
//! concurrent `pay` calls each made their own, one after the other, though one would have
//! covered them all: sled's I/O threads and the syncs were a quarter of each node's CPU at 400
//! payments in flight. Here a caller whose write is already covered by a sync that began after
//! it waits for that sync instead of making another.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Shares syncs among the callers of one database. See the module's documentation.
#[derive(Debug, Default)]
pub(crate) struct SyncGroup {
    state: Mutex<State>,
    synced: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Tickets handed out: one per call, taken after the caller's writes are in sled.
    tickets: u64,
    /// Every ticket up to this one is durable: a sync that succeeded began after it was taken.
    durable: u64,
    /// A sync is running.
    syncing: bool,
}

impl SyncGroup {
    /// Returns once every write the caller made before this call is durable: when a sync that
    /// began after this call has succeeded, run by this caller (with `sync`) or by another one.
    /// A failed sync fails only the caller that ran it; the others covered by it try again, each
    /// with a sync of its own or of a later caller, so every error reaches a caller whose writes
    /// it left unsynced.
    pub(crate) fn sync<E>(&self, sync: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        let mut state = self.lock();
        state.tickets += 1;
        let ticket = state.tickets;
        loop {
            if state.durable >= ticket {
                return Ok(());
            }
            if !state.syncing {
                state.syncing = true;
                let covers = state.tickets;
                drop(state);
                let mut running = Running {
                    group: self,
                    durable: None,
                };
                let result = sync();
                if result.is_ok() {
                    running.durable = Some(covers);
                }
                drop(running);
                return result;
            }
            state = self
                .synced
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sync in progress. Dropping it ends it, also when the sync panics, so that waiters never
/// wait forever.
struct Running<'a> {
    group: &'a SyncGroup,
    /// The tickets the sync made durable, once it succeeded.
    durable: Option<u64>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self.group.lock();
        state.syncing = false;
        if let Some(durable) = self.durable {
            state.durable = state.durable.max(durable);
        }
        drop(state);
        self.group.synced.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::SyncGroup;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn callers_arriving_during_a_sync_share_the_next_one() {
        let group = Arc::new(SyncGroup::default());
        let syncs = Arc::new(AtomicUsize::new(0));
        let count_sync = |syncs: &AtomicUsize| {
            syncs.fetch_add(1, Ordering::SeqCst);
            Ok::<(), ()>(())
        };
        // The first caller's sync runs until eight more callers have come and are waiting.
        let first = {
            let (group, syncs) = (group.clone(), syncs.clone());
            std::thread::spawn(move || {
                group.sync(|| {
                    while group.lock().tickets < 9 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    count_sync(&syncs)
                })
            })
        };
        while group.lock().tickets < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let later: Vec<_> = (0..8)
            .map(|_| {
                let (group, syncs) = (group.clone(), syncs.clone());
                std::thread::spawn(move || group.sync(|| count_sync(&syncs)))
            })
            .collect();
        assert_eq!(first.join().ok(), Some(Ok(())));
        for caller in later {
            assert_eq!(caller.join().ok(), Some(Ok(())));
        }
        // The first sync began before the others came, so it covers none of them; the next
        // one, by whichever of them ran it, covers all eight.
        assert_eq!(syncs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_caller_after_a_sync_is_not_covered_by_it() {
        let group = SyncGroup::default();
        let syncs = AtomicUsize::new(0);
        for _ in 0..3 {
            group
                .sync(|| {
                    syncs.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), ()>(())
                })
                .ok();
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_failed_sync_fails_its_caller_and_the_next_caller_syncs_again() {
        let group = SyncGroup::default();
        assert_eq!(group.sync(|| Err("disk full")), Err("disk full"));
        let mut ran = false;
        assert_eq!(
            group.sync(|| {
                ran = true;
                Ok::<(), &str>(())
            }),
            Ok(())
        );
        assert!(ran, "the failed sync was taken as covering the next caller");
    }

    #[test]
    fn a_panicking_sync_does_not_leave_others_waiting() {
        let group = Arc::new(SyncGroup::default());
        let panicked = {
            let group = group.clone();
            std::thread::spawn(move || group.sync(|| -> Result<(), ()> { panic!("sync panicked") }))
                .join()
        };
        assert!(panicked.is_err());
        assert_eq!(group.sync(|| Ok::<(), ()>(())), Ok(()));
    }
}
