//! The node's event journal: what programs built on the node follow (invoices, payments,
//! forwarded HTLCs, channels, peers, blocks), numbered per stream and stored.
//!
//! Every event gets the next index of its stream (1, 2, 3, ...; never reused) and is written
//! durably before anyone can see it. A subscriber remembers the last index it handled and, after
//! a crash of either side, asks for what came after it: it gets every event it missed, in order,
//! once per index (LND's `add_index`/`settle_index`, Core Lightning's `wait` indexes).
//!
//! Exactly once per event, also across crashes: an event about a record (an invoice, a payment,
//! a forward) is written in the same store transaction as the record's new state, and only when
//! that state changed, so an LDK event replayed after a crash finds the state already there and
//! writes no second event; other events carry a key that is stored with them, and an event
//! whose key is already present is not written again.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use tokio::sync::watch;

use super::records::unix_now;
use crate::store::{lock_outside_the_runtime, Namespace, SledStore, StoreError};

/// One stream of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Invoices: `created`, `held`, `paid`, `canceled`, `expired`; `data` is the invoice record.
    Invoices,
    /// Outgoing payments: `pending` (each attempt), `succeeded` (with preimage and fee),
    /// `failed` (with reason); `data` is the payment record.
    Payments,
    /// HTLCs we forwarded: `settled` (with the fee earned) or `failed`; `data` is the forward
    /// record with both channel ids.
    Htlcs,
    /// Channels: `pending`, `ready`, `closing`, `closed` (with reason).
    Channels,
    /// Peers: `connected`, `disconnected`.
    Peers,
    /// The chain tip: `connected` for each new best block the node processed, `reorg` when
    /// blocks were disconnected on the way to it.
    Blocks,
    /// HTLCs held for an intercept SCID: `intercepted`, then `forwarded` or `failed`; data is
    /// the HTLC as in `listinterceptedhtlcs`.
    InterceptedHtlcs,
}

impl Stream {
    /// Every stream.
    pub const ALL: [Stream; 7] = [
        Stream::Invoices,
        Stream::Payments,
        Stream::Htlcs,
        Stream::Channels,
        Stream::Peers,
        Stream::Blocks,
        Stream::InterceptedHtlcs,
    ];

    /// The stream's name, as in `subscribe_<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Invoices => "invoices",
            Stream::Payments => "payments",
            Stream::Htlcs => "htlcs",
            Stream::Channels => "channels",
            Stream::Peers => "peers",
            Stream::Blocks => "blocks",
            Stream::InterceptedHtlcs => "intercepted_htlcs",
        }
    }

    /// The first byte of the stream's keys in the journal tree.
    fn tag(self) -> u8 {
        match self {
            Stream::Invoices => 1,
            Stream::Payments => 2,
            Stream::Htlcs => 3,
            Stream::Channels => 4,
            Stream::Peers => 5,
            Stream::Blocks => 6,
            Stream::InterceptedHtlcs => 7,
        }
    }

    fn position(self) -> usize {
        usize::from(self.tag() - 1)
    }
}

impl FromStr for Stream {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Stream::ALL
            .into_iter()
            .find(|stream| stream.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Stream::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown event stream {name:?}; the streams are {}",
                    names.join(", ")
                )
            })
    }
}

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEvent {
    /// Position in its stream: 1 for the first event, one more for each next one.
    pub index: u64,
    /// The stream.
    pub stream: Stream,
    /// What happened; the values of each stream are listed at [`Stream`].
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was recorded, Unix seconds.
    pub timestamp: u64,
    /// The subject after the event: the invoice, payment or forward record; for channels,
    /// peers and blocks the object named in `docs/rpc.md`.
    pub data: serde_json::Value,
}

/// What storing a record means for the journal, decided against the stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Store it; no event (nothing a subscriber follows changed).
    Quiet,
    /// Store it, with an event of this kind.
    Event(&'static str),
    /// Leave the stored value as it is (it moved on since the caller read it).
    Keep,
}

/// When a record written with its event must be durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Before the write returns: for what an operator or a program asked for (a payment about
    /// to be sent, an invoice handed out), which must survive a crash once it was answered.
    Now,
    /// Soon after the write returns, made durable together with the writes around it (group
    /// commit), and published to readers only then. For records of what LDK told the event
    /// handler (a payment's outcome, a claim): LDK's state that the event was handled is
    /// written to the same store after the handler returns, and every flush makes all that was
    /// stored before it durable (sled's log is one file, written in order), so a crash never
    /// keeps the handled event and loses its record. A crash before that flush loses both, and
    /// LDK hands the event again.
    Soon,
}

/// Flushes asked for by [`Flush::Soon`] writes: at most one runs at a time, and one that runs
/// covers every write stored before it began.
#[derive(Default)]
struct SoonFlusher {
    /// A write asked for a flush that has not begun yet.
    requested: AtomicBool,
    /// A flusher is running (on tokio's blocking pool).
    running: AtomicBool,
}

/// How often a [`Flush::Soon`] flusher tries a failing flush before it leaves the writes to the
/// next write's flush; one try a second, as long as the monitor writer keeps trying its own.
const SOON_FLUSH_TRIES: u32 = 60;

/// Per-stream state: the next index, and a watch of the last index written.
struct StreamState {
    /// Held while an event of this stream is stored (not while it is made durable), so indexes
    /// are stored in order.
    next: Mutex<u64>,
    /// The last index stored (durable or not yet): `next - 1`, readable without the lock.
    stored: AtomicU64,
    /// The last index whose event, and every one before it, is durable: what readers see.
    last_written: watch::Sender<u64>,
}

/// The journal: one store namespace holding every stream.
pub struct Journal {
    tree: Namespace,
    streams: [StreamState; 7],
    soon: SoonFlusher,
}

/// Keys of events: `[tag] ++ index (big-endian)`. Keys of dedup marks: `[0xff, tag] ++ key`.
fn event_key(stream: Stream, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = stream.tag();
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn mark_key(stream: Stream, key: &str) -> Vec<u8> {
    let mut mark = vec![0xff, stream.tag()];
    mark.extend_from_slice(key.as_bytes());
    mark
}

fn abort_on_json(error: serde_json::Error) -> ConflictableTransactionError<()> {
    tracing::error!(%error, "an event could not be encoded");
    ConflictableTransactionError::Abort(())
}

/// Inserts event `index` of `stream` into the journal tree of a transaction.
fn insert_event(
    journal: &TransactionalTree,
    stream: Stream,
    index: u64,
    kind: &str,
    data: &serde_json::Value,
) -> Result<(), ConflictableTransactionError<()>> {
    let event = JournalEvent {
        index,
        stream,
        kind: kind.to_owned(),
        timestamp: unix_now(),
        data: data.clone(),
    };
    let value = serde_json::to_vec(&event).map_err(abort_on_json)?;
    journal.insert(&event_key(stream, index), value)?;
    Ok(())
}

impl Journal {
    /// Opens the journal in `store`, continuing each stream after its last stored event.
    pub(crate) fn open(store: &SledStore) -> Result<Self, StoreError> {
        let tree = store.namespace("journal")?;
        let state = |stream: Stream| -> Result<StreamState, StoreError> {
            let last = match tree.last_with_prefix(&[stream.tag()])? {
                Some((key, _)) if key.len() == 9 => {
                    let mut index = [0u8; 8];
                    index.copy_from_slice(&key[1..]);
                    u64::from_be_bytes(index)
                }
                _ => 0,
            };
            Ok(StreamState {
                next: Mutex::new(last + 1),
                stored: AtomicU64::new(last),
                last_written: watch::Sender::new(last),
            })
        };
        Ok(Self {
            streams: [
                state(Stream::Invoices)?,
                state(Stream::Payments)?,
                state(Stream::Htlcs)?,
                state(Stream::Channels)?,
                state(Stream::Peers)?,
                state(Stream::Blocks)?,
                state(Stream::InterceptedHtlcs)?,
            ],
            tree,
            soon: SoonFlusher::default(),
        })
    }

    fn state(&self, stream: Stream) -> &StreamState {
        &self.streams[stream.position()]
    }

    /// The stream's next index, locked while an event is stored (a sled transaction, in
    /// memory): it is waited for off the runtime's worker threads all the same.
    fn lock_next(&self, stream: Stream) -> MutexGuard<'_, u64> {
        lock_outside_the_runtime(&self.state(stream).next)
    }

    /// Makes the write just stored durable, with every write stored before it, then publishes
    /// `index` (if an event was written) to readers. The flush is made after the stream's lock
    /// is released, so that writers of one stream (the payment records of many `pay` calls)
    /// share flushes instead of queueing for the lock one fsync each. An event is stored only
    /// after every lower index of its stream, so once its write is durable so are theirs;
    /// publishing never lowers the index, whichever writer's flush ends first.
    fn make_durable(&self, stream: Stream, index: Option<u64>) -> Result<(), StoreError> {
        self.tree.flush_durably()?;
        if let Some(index) = index {
            self.publish(stream, index);
        }
        Ok(())
    }

    /// Shows readers every event of `stream` up to `index`, all durable; never lowers what
    /// they see.
    fn publish(&self, stream: Stream, index: u64) {
        self.state(stream).last_written.send_if_modified(|last| {
            let later = index > *last;
            if later {
                *last = index;
            }
            later
        });
    }

    /// Has a flusher make every write stored so far durable soon and publish what it covers
    /// ([`Flush::Soon`]). Writes that come while it flushes are covered by its next round, so a
    /// burst of them shares one flush.
    fn flush_soon(self: &Arc<Self>) {
        self.soon.requested.store(true, Ordering::SeqCst);
        if self.soon.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let journal = Arc::clone(self);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || journal.run_soon_flusher())),
            Err(_) => journal.run_soon_flusher(),
        }
    }

    fn run_soon_flusher(&self) {
        loop {
            self.soon.requested.store(false, Ordering::SeqCst);
            // Read before the flush: every event up to these indexes was stored before it.
            let stored = Stream::ALL.map(|stream| self.state(stream).stored.load(Ordering::SeqCst));
            let mut tries = 0;
            while let Err(error) = self.tree.flush_durably() {
                tries += 1;
                if tries >= SOON_FLUSH_TRIES {
                    tracing::error!(%error, "records of LDK events are not durable yet; the next write's flush covers them");
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            if tries < SOON_FLUSH_TRIES {
                for (stream, index) in Stream::ALL.into_iter().zip(stored) {
                    self.publish(stream, index);
                }
            }
            self.soon.running.store(false, Ordering::SeqCst);
            // A write that came after `requested` was cleared either saw this flusher running
            // (and left its flush to it) or started a flusher of its own.
            if !self.soon.requested.load(Ordering::SeqCst)
                || self.soon.running.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    }

    /// Returns once every event of `stream` stored before this call is durable and shown to
    /// readers: for a caller that read a record written with [`Flush::Soon`] and is about to
    /// tell someone about it.
    pub(crate) async fn durable(&self, stream: Stream) {
        let target = self.state(stream).stored.load(Ordering::SeqCst);
        let mut published = self.watch(stream);
        // The sender lives as long as the journal, which outlives this borrow.
        let _ = published.wait_for(|last| *last >= target).await;
    }

    /// The index of the last event of `stream` (0 if none).
    pub fn last_index(&self, stream: Stream) -> u64 {
        *self.state(stream).last_written.borrow()
    }

    /// A receiver that changes whenever an event of `stream` was written.
    pub fn watch(&self, stream: Stream) -> watch::Receiver<u64> {
        self.state(stream).last_written.subscribe()
    }

    /// Up to `limit` events of `stream` with an index above `after`, in order: durable ones only
    /// (up to [`Self::last_index`]), never one that a crash could still take back.
    pub fn read(
        &self,
        stream: Stream,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JournalEvent>, StoreError> {
        let last = self.last_index(stream);
        if after >= last {
            return Ok(Vec::new());
        }
        let start = event_key(stream, after.saturating_add(1));
        let end = event_key(stream, last.saturating_add(1));
        self.tree
            .range(&start, &end, limit)?
            .into_iter()
            .map(|(_, value)| {
                serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
                    context: format!("a {} event is unreadable: {e}", stream.name()),
                })
            })
            .collect()
    }

    /// Writes an event of `stream` unless an event with `dedup_key` was written before; returns
    /// its index, or `None` if it was a repeat.
    pub(crate) fn append_once(
        &self,
        stream: Stream,
        dedup_key: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<Option<u64>, StoreError> {
        let mark = mark_key(stream, dedup_key);
        self.write(stream, |index, journal| {
            if journal.get(&mark)?.is_some() {
                return Ok(None);
            }
            journal.insert(mark.as_slice(), &index.to_be_bytes())?;
            insert_event(journal, stream, index, kind, &data)?;
            Ok(Some(index))
        })
    }

    /// Writes an event of `stream` (no dedup: for events that cannot be replayed).
    pub(crate) fn append(
        &self,
        stream: Stream,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<u64, StoreError> {
        let written = self.write(stream, |index, journal| {
            insert_event(journal, stream, index, kind, &data)?;
            Ok(Some(index))
        })?;
        Ok(written.unwrap_or_default())
    }

    /// Stores `record` under `key` in `records` and, in the same transaction, the event that
    /// `change` names for the change from the stored value (if any) to `record`, unless
    /// `change` says to keep the stored value. Returns the event's index, if one was written;
    /// `flush` says when the write is durable.
    pub(crate) fn write_record<T: Serialize>(
        self: &Arc<Self>,
        records: &Namespace,
        key: &[u8],
        record: &T,
        stream: Stream,
        change: impl Fn(Option<&[u8]>) -> Change,
        flush: Flush,
    ) -> Result<Option<u64>, StoreError> {
        let value = serde_json::to_vec(record).map_err(|e| StoreError::Corrupt {
            context: format!("a {} record could not be encoded: {e}", stream.name()),
        })?;
        let data = serde_json::to_value(record).map_err(|e| StoreError::Corrupt {
            context: format!("a {} record could not be encoded: {e}", stream.name()),
        })?;
        let mut next = self.lock_next(stream);
        let index = *next;
        let written = records.transaction_with_unflushed(&self.tree, |records, journal| {
            let previous = records.get(key)?;
            let kind = match change(previous.as_deref()) {
                Change::Keep => return Ok(None),
                Change::Quiet => {
                    records.insert(key, value.as_slice())?;
                    return Ok(None);
                }
                Change::Event(kind) => kind,
            };
            records.insert(key, value.as_slice())?;
            insert_event(journal, stream, index, kind, &data)?;
            Ok(Some(index))
        })?;
        self.stored(stream, &mut next, written);
        drop(next);
        match flush {
            Flush::Now => self.make_durable(stream, written)?,
            Flush::Soon => self.flush_soon(),
        }
        Ok(written)
    }

    /// Moves the stream on past `written`, the index of an event just stored (if one was).
    fn stored(&self, stream: Stream, next: &mut MutexGuard<'_, u64>, written: Option<u64>) {
        if let Some(index) = written {
            **next = index + 1;
            self.state(stream).stored.store(index, Ordering::SeqCst);
        }
    }

    /// Runs `write` with the stream's next index in a transaction on the journal; publishes the
    /// index if `write` wrote an event.
    fn write(
        &self,
        stream: Stream,
        write: impl Fn(u64, &TransactionalTree) -> Result<Option<u64>, ConflictableTransactionError<()>>,
    ) -> Result<Option<u64>, StoreError> {
        let mut next = self.lock_next(stream);
        let index = *next;
        let written = self
            .tree
            .transaction_unflushed(|journal| write(index, journal))?;
        self.stored(stream, &mut next, written);
        drop(next);
        self.make_durable(stream, written)?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn open(dir: &std::path::Path) -> Journal {
        let store = SledStore::open(dir).expect("store");
        Journal::open(&store).expect("journal")
    }

    #[test]
    fn indexes_count_per_stream_and_continue_after_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let journal = open(dir.path());
            assert_eq!(
                journal.append(Stream::Peers, "connected", json!({})).ok(),
                Some(1)
            );
            assert_eq!(
                journal
                    .append(Stream::Peers, "disconnected", json!({}))
                    .ok(),
                Some(2)
            );
            assert_eq!(
                journal.append(Stream::Blocks, "connected", json!({})).ok(),
                Some(1)
            );
            assert_eq!(journal.last_index(Stream::Peers), 2);
        }
        let journal = open(dir.path());
        assert_eq!(journal.last_index(Stream::Peers), 2);
        assert_eq!(
            journal.append(Stream::Peers, "connected", json!({})).ok(),
            Some(3)
        );
        let events = journal.read(Stream::Peers, 1, 10).expect("read");
        let kinds: Vec<(u64, &str)> = events.iter().map(|e| (e.index, e.kind.as_str())).collect();
        assert_eq!(kinds, vec![(2, "disconnected"), (3, "connected")]);
        assert_eq!(journal.read(Stream::Invoices, 0, 10).expect("read"), vec![]);
        assert_eq!(journal.read(Stream::Blocks, 0, 10).expect("read").len(), 1);
    }

    #[test]
    fn an_event_with_a_key_already_written_is_not_written_again() {
        let dir = tempfile::tempdir().expect("dir");
        let journal = open(dir.path());
        let first = journal.append_once(Stream::Channels, "ready/c1", "ready", json!({}));
        assert_eq!(first.ok(), Some(Some(1)));
        let again = journal.append_once(Stream::Channels, "ready/c1", "ready", json!({}));
        assert_eq!(again.ok(), Some(None));
        assert_eq!(journal.last_index(Stream::Channels), 1);
        assert_eq!(
            journal.read(Stream::Channels, 0, 10).expect("read").len(),
            1
        );
    }

    #[test]
    fn a_record_writes_an_event_only_when_its_state_changes() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SledStore::open(dir.path()).expect("store");
        let journal = Arc::new(Journal::open(&store).expect("journal"));
        let records = store.namespace("things").expect("records");
        let change = |new: &'static str| {
            move |old: Option<&[u8]>| match old {
                Some(old) if old == format!("\"{new}\"").as_bytes() => Change::Quiet,
                Some(b"\"paid\"") => Change::Keep,
                _ => Change::Event(new),
            }
        };
        let write = |state: &'static str| {
            journal.write_record(
                &records,
                b"k",
                &state,
                Stream::Invoices,
                change(state),
                Flush::Now,
            )
        };
        assert_eq!(write("unpaid").ok(), Some(Some(1)));
        assert_eq!(write("unpaid").ok(), Some(None));
        assert_eq!(write("paid").ok(), Some(Some(2)));
        // Paid is final here: a later write is refused and writes no event.
        assert_eq!(write("expired").ok(), Some(None));
        assert_eq!(records.get(b"k").ok().flatten(), Some(b"\"paid\"".to_vec()));
        let events = journal.read(Stream::Invoices, 0, 10).expect("read");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].kind, "paid");
        assert_eq!(events[1].data, json!("paid"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_flushed_soon_are_shown_to_readers_once_durable() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SledStore::open(dir.path()).expect("store");
        let journal = Arc::new(Journal::open(&store).expect("journal"));
        let records = store.namespace("things").expect("records");
        let writers: Vec<_> = (0..4u8)
            .map(|writer| {
                let (journal, records) = (journal.clone(), records.clone());
                tokio::task::spawn_blocking(move || {
                    for n in 0..25u8 {
                        journal
                            .write_record(
                                &records,
                                &[writer, n],
                                &"succeeded",
                                Stream::Payments,
                                |_| Change::Event("succeeded"),
                                Flush::Soon,
                            )
                            .expect("write");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        let durable = journal.durable(Stream::Payments);
        tokio::time::timeout(Duration::from_secs(10), durable)
            .await
            .expect("the writes were made durable and published");
        assert_eq!(journal.last_index(Stream::Payments), 100);
        let events = journal.read(Stream::Payments, 0, 200).expect("read");
        let indexes: Vec<u64> = events.iter().map(|e| e.index).collect();
        assert_eq!(indexes, (1..=100).collect::<Vec<u64>>());
        drop((journal, records, store));
        // Reopened, every event is there: what was published was durable.
        let reopened = open(dir.path());
        assert_eq!(reopened.last_index(Stream::Payments), 100);
    }

    #[test]
    fn stream_names_parse_and_unknown_ones_are_named() {
        assert_eq!("htlcs".parse::<Stream>(), Ok(Stream::Htlcs));
        let error = "htlc".parse::<Stream>().expect_err("unknown");
        assert!(error.contains("invoices, payments, htlcs"), "{error}");
    }
}
