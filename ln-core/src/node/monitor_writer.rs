//! Channel monitor persistence that never lets a `ChannelMonitor` on disk get ahead of the
//! `ChannelManager` on disk, so that a crash can never make LDK find a stale manager and
//! force-close the channel ("A ChannelManager is stale compared to the current ChannelMonitor").
//!
//! This is LDK's asynchronous monitor persistence, driven by one writer thread:
//!
//! 1. LDK hands every monitor write to [`MonitorWriter`]'s `Persist` implementation. It queues
//!    the `ChannelMonitorUpdate` LDK gives (small), or every [`FULL_MONITOR_EVERY`] updates and
//!    for writes without an update (a new channel, a block) a snapshot of the whole monitor, and
//!    returns `InProgress`. By then the `ChannelManager` has already recorded the update as in
//!    flight (LDK records it, under the channel's peer lock, before it calls the `ChainMonitor`).
//! 2. The writer thread serializes the `ChannelManager` and takes everything queued at LDK's
//!    first write into that serialization, before LDK reads any channel (so the manager lists
//!    every queued update as applied or in flight) and while LDK's consistency lock is held (so
//!    an update LDK is making meanwhile joins the batch). It writes the manager together with
//!    the queued updates and monitor snapshots as one store transaction, made durable with one
//!    fsync: after a crash the store holds all of them or none of them.
//! 3. Only after that fsync does it tell LDK the updates are done
//!    (`ChainMonitor::channel_monitor_updated`); until then LDK holds back every message and claim
//!    that depends on them.
//!
//! Updates and monitors are stored as LDK's `MonitorUpdatingPersister` stores them (a monitor,
//! prefixed with its sentinel, under `monitors/`; its later updates under
//! `monitor_updates/<monitor>/<update id>`), and the node reads them back with its reader, which
//! applies a monitor's stored updates in order. Serializing the whole monitor at every update
//! cost more with every payment the channel had claimed (a monitor keeps them): it was a quarter
//! of the node's CPU at 400 payments in flight.
//!
//! Every `ChannelManager` write in the node serializes and writes under one lock, so a manager
//! write never replaces a newer one. The background processor's writes of it are routed by
//! [`LdkStore`] to the writer thread as a request ([`MonitorWriter::request_manager_write`]),
//! which the thread's next batch answers, or a write of the manager alone if none is queued: so
//! the processor never waits for the disk, and a batch (a peer waiting on it) never waits behind
//! a manager write of the processor's.
//!
//! Hence, at every instant, each monitor on disk is at or behind the state the manager on disk
//! knows (applied, or in flight and replayed by LDK on restart), and no monitor update is
//! acknowledged before it is durable. A monitor is never rolled back: each one's snapshots are
//! written in the order LDK made them, by the one writer. A crash before the fsync leaves the
//! store as the previous batch left it: this batch's updates were never acknowledged, so no peer
//! saw their effect. A crash after it leaves updates that LDK finds already applied and
//! completes. A channel whose very first monitor was written but never reported (LDK does not reconcile that case on its own, ldk-node issue #1081) is completed at
//! start-up by the node builder, which reports every monitor it loaded as durable.
//!
//! If a write fails (disk full, I/O error), the writer retries until it succeeds, logging why;
//! nothing is acknowledged meanwhile, so the affected channels pause instead of running ahead of
//! their durable state. Only a stopping node gives up, after a minute.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::channel_signer::NodeChannelSigner;
use lightning::chain::chainmonitor::Persist;
use lightning::chain::channelmonitor::{ChannelMonitor, ChannelMonitorUpdate};
use lightning::chain::ChannelMonitorUpdateStatus;
use lightning::io;
use lightning::ln::types::ChannelId;
use lightning::util::persist::{
    KVStoreSync, MonitorName, ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
    ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE, CHANNEL_MANAGER_PERSISTENCE_KEY,
    CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
    CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
    CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
    MONITOR_UPDATING_PERSISTER_PREPEND_SENTINEL, SCORER_PERSISTENCE_KEY,
    SCORER_PERSISTENCE_PRIMARY_NAMESPACE, SCORER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::{Writeable, Writer};

use super::types::{ChainMonitor, ChannelManager};
use crate::store::SledStore;

/// A point where the writer stops the process on purpose, as `kill -9` would there, for tests
/// that must crash at an exact moment. Never set in normal operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Right after the writer's `n`th `ChannelManager` write (counting from 1) is durable. The
    /// writer writes the manager and its batch's monitors as one transaction, so this is also
    /// after those monitors, before LDK is told: the point where a manager written on its own
    /// would be ahead of them no longer exists.
    AfterManagerWrite(u64),
    /// Right after the `n`th batch of monitor writes is durable, before LDK is told.
    AfterMonitorWrite(u64),
}

impl FromStr for CrashPoint {
    type Err = String;

    /// `manager-write:<n>` or `monitor-write:<n>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = || format!("{text:?} is not manager-write:<n> or monitor-write:<n> (n >= 1)");
        let (point, count) = text.split_once(':').ok_or_else(usage)?;
        let count: u64 = count.parse().ok().filter(|n| *n > 0).ok_or_else(usage)?;
        match point {
            "manager-write" => Ok(Self::AfterManagerWrite(count)),
            "monitor-write" => Ok(Self::AfterMonitorWrite(count)),
            _ => Err(usage()),
        }
    }
}

/// A monitor is written whole at every update whose id is a multiple of this, and its stored
/// updates up to there are dropped; in between only the updates are written. So a restart
/// applies at most this many updates per monitor, and a whole monitor is serialized once per
/// this many updates instead of at each. LDK's sample node stores updates the same way with a
/// bound of 1,000; 100 keeps what a restart replays short.
pub const FULL_MONITOR_EVERY: u64 = 100;

/// Reads a stored monitor by its key, with its stored updates applied, and serializes it whole
/// (no sentinel): what the archive keeps. The node builder makes it from LDK's reader.
pub type ReadWholeMonitor = Box<dyn Fn(&str) -> Result<Vec<u8>, io::Error> + Send + Sync>;

/// One queued persistence operation.
enum Op {
    /// Store this snapshot of a whole monitor (sentinel first), whose latest update is
    /// `latest_update_id`; report `update_id` done once it is durable.
    Write {
        key: String,
        channel_id: ChannelId,
        snapshot: Vec<u8>,
        latest_update_id: u64,
        update_id: Option<u64>,
    },
    /// Store this `ChannelMonitorUpdate` of a monitor; report it done once it is durable.
    Update {
        key: String,
        channel_id: ChannelId,
        update_id: u64,
        update: Vec<u8>,
    },
    /// Move the monitor to the archive (LDK is done with it).
    Archive { key: String },
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    /// When the background processor asked for a manager write that no batch taken since has
    /// made (the first such request).
    manager_requested: Option<Instant>,
    stopping: bool,
}

/// The LDK objects the writer serializes and reports to; set once both exist.
struct Ldk {
    manager: Weak<ChannelManager>,
    chain_monitor: Weak<ChainMonitor>,
}

struct Shared {
    store: Arc<SledStore>,
    read_whole_monitor: ReadWholeMonitor,
    queue: Mutex<Queue>,
    queued: Condvar,
    ldk: OnceLock<Ldk>,
    /// Held while the manager is serialized and written, so writes land in serialization order.
    manager_write: Mutex<()>,
    crash_point: Option<CrashPoint>,
    /// The writer's own manager writes and monitor batches so far, for [`CrashPoint`].
    manager_writes: AtomicU64,
    monitor_batches: AtomicU64,
    /// The size of the last manager serialized, bytes: the next one's buffer starts this large.
    /// A payer's manager keeps every payment it sent for 7-8 minutes (LDK's idempotency), so it
    /// reaches megabytes under sustained payments; grown from empty, each batch's buffer was
    /// copied some 20 times over and faulted in fresh pages every time.
    manager_bytes_hint: AtomicUsize,
    /// How long the last manager serialization took, µs, with its wait for LDK's lock (while
    /// LDK is busy that wait is longer, and a write alone waits longer for a batch to carry it):
    /// what sets [`Self::manager_write_delay`].
    manager_serialize_us: AtomicU64,
    /// Told after each batch is reported to LDK: what LDK held back for it can go out now.
    batch_done: Arc<tokio::sync::Notify>,
    /// Run after each batch is reported to LDK: on the writer thread before `batch_done` when
    /// nothing else is queued, else on the sender thread.
    after_batch: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Runs `after_batch` instead of the writer when more writes are already queued.
    sender: Sender,
}

/// A thread that runs the writer's `after_batch` for it when the writer has more to write.
///
/// Sending what a batch released signs the commitments it lets out, a signature per HTLC in
/// flight on the channel: with hundreds in flight, milliseconds. On the writer's thread the
/// next batch, already queued, waited behind that; here the two run side by side. With nothing
/// queued the writer sends itself, which saves a wake-up on every step of a lone payment.
#[derive(Default)]
struct Sender {
    state: Mutex<SenderState>,
    woken: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct SenderState {
    /// A batch completed since the thread last began sending.
    wanted: bool,
    stopping: bool,
}

impl Sender {
    fn wake(&self) {
        lock(&self.state).wanted = true;
        self.woken.notify_one();
    }

    /// Sends each time it is woken, once per wake-up however many came meanwhile, until
    /// stopped.
    fn run(&self, send: &(dyn Fn() + Send + Sync)) {
        let mut state = lock(&self.state);
        loop {
            if state.wanted {
                state.wanted = false;
                drop(state);
                send();
                state = lock(&self.state);
                continue;
            }
            if state.stopping {
                return;
            }
            state = self
                .woken
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn stop(&self) {
        lock(&self.state).stopping = true;
        self.woken.notify_all();
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the monitor writer's sender thread panicked");
            }
        }
    }
}

/// What one of the writer's batches wrote.
enum Written {
    /// The manager and these updates (in the order LDK made them), now durable.
    Batch(Vec<(ChannelId, u64)>),
    /// Nothing was queued: the manager alone, as the background processor asked.
    ManagerAlone,
    /// The store gave up while the node stops; nothing of the batch is acknowledged.
    GaveUp,
}

/// LDK's monitor persister for the node (see the module documentation).
pub struct MonitorWriter {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// How long a manager write the background processor asked for waits for a monitor batch to
/// carry it, before the writer makes it on its own. LDK asks after nearly every message, and at
/// once after each batch (its updates completed): written at once, each request cost an fsync
/// that the next batch, a peer waiting on it, queued behind. LDK needs no manager write before
/// any message goes out (only monitor writes, and each batch writes the manager with them), so
/// this only makes the manager on disk at most this much older after a crash, as if the crash
/// had come a moment earlier.
///
/// This is the delay for a small manager; a large one waits longer, see
/// [`MANAGER_SERIALIZATIONS_PER_DELAY`].
const MANAGER_WRITE_DELAY: Duration = Duration::from_millis(10);

/// A requested manager write waits at least this many times as long as the last serialization
/// of the manager took (up to [`MAX_MANAGER_WRITE_DELAY`]), so that writes of the manager alone
/// hold LDK at most a tenth of the time. LDK serializes the manager under its lock on every
/// channel, and a payer's manager keeps each payment it sent for 7-8 minutes: after 8,000
/// keysends it was a megabyte that took 5-10 ms, and with requests expiring after 10 ms, writes
/// alone stopped the payer for 1.55 s of the 12.5 s its last 4,000 payments took, as long as the
/// batches' writes, which the guarantee needs. A batch carries a request made in the meantime.
const MANAGER_SERIALIZATIONS_PER_DELAY: u32 = 10;

/// The longest a requested manager write waits for a batch to carry it: the most by which a
/// crash can find the manager older than it would have.
const MAX_MANAGER_WRITE_DELAY: Duration = Duration::from_millis(500);

/// How long the writer waits before retrying a failed write, at most.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

impl MonitorWriter {
    /// Starts the writer thread on `store`. Nothing is written until [`Self::attach`] names the
    /// manager and the chain monitor. `read_whole_monitor` is used to archive a monitor.
    pub fn start(
        store: Arc<SledStore>,
        read_whole_monitor: ReadWholeMonitor,
        crash_point: Option<CrashPoint>,
    ) -> Result<Arc<Self>, io::Error> {
        let shared = Arc::new(Shared {
            store,
            read_whole_monitor,
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            ldk: OnceLock::new(),
            manager_write: Mutex::new(()),
            crash_point,
            manager_writes: AtomicU64::new(0),
            monitor_batches: AtomicU64::new(0),
            manager_bytes_hint: AtomicUsize::new(0),
            manager_serialize_us: AtomicU64::new(0),
            batch_done: Arc::new(tokio::sync::Notify::new()),
            after_batch: OnceLock::new(),
            sender: Sender::default(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("monitor-writer".to_owned())
            .spawn(move || thread_shared.run())?;
        if let Some(point) = crash_point {
            tracing::warn!(
                ?point,
                "fault injection: the node will abort itself at this point"
            );
        }
        Ok(Arc::new(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Notified (one permit, so none is missed) each time a batch of monitor writes is durable
    /// and reported to LDK: the messages, forwards and claims LDK held back for it are ready.
    pub fn batch_done(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.shared.batch_done)
    }

    /// Has `send` run after each batch the writer reports to LDK. The node sends there the
    /// messages LDK held back for the batch (a revocation, a commitment, a claim). When nothing
    /// else is queued, the writer runs it itself before it notifies [`Self::batch_done`]: from
    /// the thread that just completed the batch, rather than from a task that thread would
    /// wake, which on every step of a payment cost a wake-up and a switch to another thread.
    /// When more writes are queued, it wakes its sender thread to run it and goes on to the
    /// next batch (see [`Sender`]). Later calls are ignored.
    pub fn send_after_each_batch(&self, send: impl Fn() + Send + Sync + 'static) {
        if self.shared.after_batch.set(Box::new(send)).is_err() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("monitor-sender".to_owned())
            .spawn(move || {
                if let Some(send) = shared.after_batch.get() {
                    shared.sender.run(send.as_ref());
                }
            });
        match spawned {
            Ok(thread) => *lock(&self.shared.sender.thread) = Some(thread),
            // The writer then sends after every batch itself.
            Err(e) => {
                tracing::warn!(error = %e, "could not start the monitor writer's sender thread")
            }
        }
    }

    /// Names the manager to write before monitors and the chain monitor to report completed
    /// updates to. Later calls are ignored.
    pub fn attach(&self, manager: &Arc<ChannelManager>, chain_monitor: &Arc<ChainMonitor>) {
        let attached = self.shared.ldk.set(Ldk {
            manager: Arc::downgrade(manager),
            chain_monitor: Arc::downgrade(chain_monitor),
        });
        if attached.is_ok() {
            // Writes queued before now were waiting for the manager.
            self.shared.queued.notify_all();
        }
    }

    /// Has the writer thread serialize the `ChannelManager` and make it durable, with its next
    /// batch or on its own if none is queued, and returns at once: what LDK's background
    /// processor writes through. LDK asks for a manager write after nearly every message; done
    /// on the processor's thread, each one held up its next events by an fsync, and the
    /// writer's next batch (a message to a peer waiting on it) behind the manager lock. A write
    /// the thread makes is serialized after this call, so it holds every change before it, and
    /// the thread retries a failed write until it lands. Once the writer is stopping, the write
    /// is made here and now, as [`Self::persist_manager_until_written`] makes it.
    pub fn request_manager_write(&self) -> Result<(), io::Error> {
        let mut queue = lock(&self.shared.queue);
        if !queue.stopping && self.shared.ldk.get().is_some() {
            queue.manager_requested.get_or_insert_with(Instant::now);
            drop(queue);
            self.shared.queued.notify_one();
            return Ok(());
        }
        drop(queue);
        // Waiting for the disk must not hold up the runtime the background processor runs on.
        crate::store::outside_the_runtime(|| self.persist_manager_until_written())
    }

    /// Serializes the `ChannelManager` now and makes it durable, retrying a failed write until
    /// it lands or the node stops.
    pub fn persist_manager_until_written(&self) -> Result<(), io::Error> {
        match self.shared.ldk.get().and_then(|ldk| ldk.manager.upgrade()) {
            Some(manager) => {
                if self.shared.write_manager_until_written(&manager) {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::Other,
                        "the channel manager could not be written and the node is stopping",
                    ))
                }
            }
            None => Err(io::Error::new(
                io::ErrorKind::Other,
                "the channel manager is not attached yet",
            )),
        }
    }

    /// Serializes the `ChannelManager` now and makes it durable (one attempt). Every write of
    /// the manager goes through here.
    pub fn persist_manager(&self) -> Result<(), io::Error> {
        match self.shared.ldk.get().and_then(|ldk| ldk.manager.upgrade()) {
            Some(manager) => self.shared.write_manager(&manager),
            None => Ok(()),
        }
    }

    /// Writes everything queued, then stops the thread. Later writes are refused (they would
    /// never be acknowledged), which LDK only attempts after the node has stopped.
    pub fn stop(&self) {
        lock(&self.shared.queue).stopping = true;
        self.shared.queued.notify_all();
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the monitor writer thread panicked");
            }
        }
        self.shared.sender.stop();
    }

    fn enqueue(&self, op: Op) -> ChannelMonitorUpdateStatus {
        let mut queue = lock(&self.shared.queue);
        if queue.stopping {
            // Not acknowledged, so LDK keeps the channel paused; the node is shutting down.
            tracing::warn!("a channel monitor write came after the node stopped; it is not made");
            return ChannelMonitorUpdateStatus::InProgress;
        }
        queue.ops.push(op);
        drop(queue);
        self.shared.queued.notify_one();
        ChannelMonitorUpdateStatus::InProgress
    }

    fn enqueue_write(
        &self,
        name: MonitorName,
        monitor: &ChannelMonitor<NodeChannelSigner>,
        update_id: Option<u64>,
    ) -> ChannelMonitorUpdateStatus {
        let mut snapshot = MONITOR_UPDATING_PERSISTER_PREPEND_SENTINEL.to_vec();
        serialize_into(monitor, &mut snapshot);
        self.enqueue(Op::Write {
            key: name.to_string(),
            channel_id: monitor.channel_id(),
            snapshot,
            latest_update_id: monitor.get_latest_update_id(),
            update_id,
        })
    }
}

impl Persist<NodeChannelSigner> for MonitorWriter {
    fn persist_new_channel(
        &self,
        name: MonitorName,
        monitor: &ChannelMonitor<NodeChannelSigner>,
    ) -> ChannelMonitorUpdateStatus {
        self.enqueue_write(name, monitor, Some(monitor.get_latest_update_id()))
    }

    /// An update is stored on its own, except every [`FULL_MONITOR_EVERY`]th, which writes the
    /// whole monitor. Chain-sync writes (no update, also what LDK sends after an update failed
    /// to apply) write the whole monitor; they are queued like the others, so that they too
    /// land after a manager write that knows every update they contain; LDK expects no report
    /// of them.
    fn update_persisted_channel(
        &self,
        name: MonitorName,
        update: Option<&ChannelMonitorUpdate>,
        monitor: &ChannelMonitor<NodeChannelSigner>,
    ) -> ChannelMonitorUpdateStatus {
        match update {
            // LDK before 0.1 numbered every update after a close u64::MAX; stored as an update,
            // it would be read back as the monitor's next one forever.
            Some(update)
                if update.update_id % FULL_MONITOR_EVERY != 0 && update.update_id != u64::MAX =>
            {
                self.enqueue(Op::Update {
                    key: name.to_string(),
                    channel_id: monitor.channel_id(),
                    update_id: update.update_id,
                    update: serialize(update),
                })
            }
            _ => self.enqueue_write(name, monitor, update.map(|update| update.update_id)),
        }
    }

    fn archive_persisted_channel(&self, name: MonitorName) {
        self.enqueue(Op::Archive {
            key: name.to_string(),
        });
    }
}

impl Shared {
    fn run(self: Arc<Self>) {
        while let Some(ldk) = self.wait_for_work() {
            let Some(manager) = ldk.manager.upgrade() else {
                tracing::warn!("the channel manager is gone; monitor writes stop");
                return;
            };
            let written = self.write_batch(&manager);
            drop(manager);
            let completed = match written {
                Written::Batch(completed) => completed,
                // Only the background processor's request: nothing waits on it but the store.
                Written::ManagerAlone => continue,
                Written::GaveUp => return,
            };
            self.crash_if(CrashPoint::AfterManagerWrite, &self.manager_writes);
            self.crash_if(CrashPoint::AfterMonitorWrite, &self.monitor_batches);
            match ldk.chain_monitor.upgrade() {
                Some(chain_monitor) => {
                    for (channel_id, update_id) in completed {
                        if let Err(e) = chain_monitor.channel_monitor_updated(channel_id, update_id)
                        {
                            tracing::debug!(%channel_id, update_id, error = ?e, "monitor update done for a channel LDK no longer watches");
                        }
                    }
                }
                None => tracing::warn!("the chain monitor is gone; monitor updates not reported"),
            }
            if let Some(send) = self.after_batch.get() {
                let sender_running = lock(&self.sender.thread).is_some();
                if !sender_running || lock(&self.queue).ops.is_empty() {
                    send();
                } else {
                    self.sender.wake();
                }
            }
            self.batch_done.notify_one();
        }
    }

    /// Waits for queued operations once LDK is attached, or for a requested manager write to
    /// be [`Self::manager_write_delay`] old; `None` once stopped with nothing left. The operations
    /// stay queued: [`Self::write_batch`] takes them. Every batch writes the manager, so
    /// starting one answers a pending request too.
    fn wait_for_work(&self) -> Option<&Ldk> {
        let mut queue = lock(&self.queue);
        loop {
            // How much longer a requested manager write may wait for a batch to carry it.
            let delay = self.manager_write_delay();
            let manager_wait = queue.manager_requested.and_then(|requested| {
                let due = requested + delay;
                due.checked_duration_since(Instant::now())
                    .filter(|_| !queue.stopping)
            });
            let work = !queue.ops.is_empty()
                || (queue.manager_requested.is_some() && manager_wait.is_none());
            if let Some(ldk) = self.ldk.get().filter(|_| work) {
                queue.manager_requested = None;
                return Some(ldk);
            }
            if queue.stopping {
                if !queue.ops.is_empty() {
                    tracing::warn!(
                        ops = queue.ops.len(),
                        "stopping before the channel manager existed; queued monitor writes dropped"
                    );
                }
                return None;
            }
            queue = match manager_wait {
                Some(wait) => {
                    self.queued
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
                None => self
                    .queued
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
        }
    }

    /// How long a requested manager write waits for a batch to carry it: see
    /// [`MANAGER_SERIALIZATIONS_PER_DELAY`].
    fn manager_write_delay(&self) -> Duration {
        manager_write_delay(Duration::from_micros(
            self.manager_serialize_us.load(Ordering::Relaxed),
        ))
    }

    /// Notes the size and serialization time of the manager just serialized, for the next
    /// buffer and the next delay, and returns that time.
    fn serialized(&self, bytes: usize, started: Instant) -> Duration {
        let took = started.elapsed();
        self.manager_bytes_hint.store(bytes, Ordering::Relaxed);
        self.manager_serialize_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
        took
    }

    /// An empty buffer for a manager's serialization, as large as the last one and an eighth.
    fn manager_buffer(&self) -> Vec<u8> {
        let last = self.manager_bytes_hint.load(Ordering::Relaxed);
        Vec::with_capacity(last + last / 8)
    }

    /// Writes the manager, retrying until it lands; false only if the store gave up while the
    /// node stops (see [`Self::retry`]).
    fn write_manager_until_written(&self, manager: &ChannelManager) -> bool {
        self.retry("write the channel manager", || self.write_manager(manager))
    }

    fn write_manager(&self, manager: &ChannelManager) -> Result<(), io::Error> {
        let _serialized_in_order = lock(&self.manager_write);
        let started = Instant::now();
        let mut bytes = self.manager_buffer();
        serialize_into(manager, &mut bytes);
        let took = self.serialized(bytes.len(), started);
        // The store logs the write's own time.
        tracing::trace!(
            manager_bytes = bytes.len(),
            serialize_us = took.as_micros() as u64,
            "channel manager serialized for a write of its own"
        );
        self.store.write(
            CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
            CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
            CHANNEL_MANAGER_PERSISTENCE_KEY,
            bytes,
        )
    }

    /// Writes the `ChannelManager` together with every queued update and monitor, as one
    /// transaction and with one fsync: after a crash either all of them are found or none, so
    /// no monitor state is ever on disk ahead of the manager. A whole monitor supersedes what
    /// the batch holds of that monitor before it (it contains all of it), so only the newest
    /// snapshot and the updates after it are written. Then the updates the written monitors
    /// contain are dropped, and the batch's archives made.
    ///
    /// The queue is taken inside the manager's serialization, before LDK reads any channel
    /// (see [`TakeOnFirstWrite`]), so the manager written knows every update taken, as applied
    /// or in flight. Taking it there also groups what LDK makes of one read from a peer: a
    /// revocation and the commitment signed after it in the same packet each make an update,
    /// and the second one's handler holds LDK's lock while the writer waits for it. Taken when
    /// the writer woke, the first update went alone and the second waited a whole batch.
    ///
    /// Returns the updates now durable, in the order LDK made them.
    fn write_batch(&self, manager: &ChannelManager) -> Written {
        let mut in_order = Some(lock(&self.manager_write));
        let started = Instant::now();
        let mut sink = TakeOnFirstWrite {
            manager,
            queue: &self.queue,
            bytes: self.manager_buffer(),
            taken: None,
        };
        serialize_into(manager, &mut sink);
        let took = self.serialized(sink.bytes.len(), started);
        // Nothing taken only if LDK wrote nothing: what is queued waits for the next batch.
        let batch = sink.taken.unwrap_or_default();
        // The store logs the transaction's own time.
        tracing::trace!(
            ops = batch.len(),
            manager_bytes = sink.bytes.len(),
            serialize_us = took.as_micros() as u64,
            "channel manager serialized for a monitor batch"
        );
        let mut serialized = Some(sink.bytes);
        let mut completed = Vec::new();
        // (primary, secondary, key, value) of each monitor entry to write.
        let mut monitor_entries: Vec<(&str, &str, String, &[u8])> = Vec::new();
        // (monitor key, its latest update id) of each whole monitor written.
        let mut whole_monitors: Vec<(&str, u64)> = Vec::new();
        for (index, op) in batch.iter().enumerate() {
            let key = match op {
                Op::Write {
                    key,
                    channel_id,
                    update_id,
                    ..
                } => {
                    completed.extend(update_id.map(|id| (*channel_id, id)));
                    key
                }
                Op::Update {
                    key,
                    channel_id,
                    update_id,
                    ..
                } => {
                    completed.push((*channel_id, *update_id));
                    key
                }
                Op::Archive { .. } => continue,
            };
            let superseded = batch[index + 1..]
                .iter()
                .any(|later| matches!(later, Op::Write { key: later_key, .. } if later_key == key));
            if superseded {
                continue;
            }
            match op {
                Op::Write {
                    key,
                    snapshot,
                    latest_update_id,
                    ..
                } => {
                    monitor_entries.push((
                        CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
                        CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
                        key.clone(),
                        snapshot,
                    ));
                    whole_monitors.push((key, *latest_update_id));
                }
                Op::Update {
                    key,
                    update_id,
                    update,
                    ..
                } => monitor_entries.push((
                    CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
                    key,
                    update_id.to_string(),
                    update,
                )),
                Op::Archive { .. } => {}
            }
        }
        let what = if batch.is_empty() {
            "write the channel manager"
        } else {
            "write the channel manager and channel monitors"
        };
        let written = self.retry(what, || {
            // A retry serializes the manager again, under the lock again: it still knows
            // every update of the batch, and no newer manager write can land before it.
            let _serialized_in_order = in_order.take().unwrap_or_else(|| lock(&self.manager_write));
            let manager = serialized.take().unwrap_or_else(|| serialize(manager));
            let mut entries: Vec<(&str, &str, &str, &[u8])> =
                Vec::with_capacity(1 + monitor_entries.len());
            entries.push((
                CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
                CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
                CHANNEL_MANAGER_PERSISTENCE_KEY,
                &manager,
            ));
            entries.extend(
                monitor_entries
                    .iter()
                    .map(|(primary, secondary, key, value)| {
                        (*primary, *secondary, key.as_str(), *value)
                    }),
            );
            self.store.write_all_durably(&entries)
        });
        if !written {
            return Written::GaveUp;
        }
        if batch.is_empty() {
            return Written::ManagerAlone;
        }
        for (key, latest_update_id) in whole_monitors {
            self.drop_updates(key, |update_id| update_id <= latest_update_id);
        }
        for op in &batch {
            if let Op::Archive { key } = op {
                self.archive(key);
            }
        }
        Written::Batch(completed)
    }

    /// Removes a monitor's stored updates whose id `matches`, without waiting for the disk: an
    /// update at or below its monitor's latest is never read again (LDK's reader applies only
    /// the ones after it), so one left behind by a crash is only space, and goes at the
    /// monitor's next whole write.
    fn drop_updates(&self, key: &str, matches: impl Fn(u64) -> bool) {
        let primary = CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE;
        let stored = match self.store.list(primary, key) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(monitor = key, error = %e, "cannot list a channel monitor's stored updates to drop the old ones");
                return;
            }
        };
        for name in stored {
            if name.parse::<u64>().is_ok_and(&matches) {
                if let Err(e) = self.store.remove(primary, key, &name, true) {
                    tracing::warn!(monitor = key, update = %name, error = %e, "cannot drop an old channel monitor update");
                }
            }
        }
    }

    /// What LDK's own persister does: copy the whole monitor (its stored updates applied) to
    /// the archive, then drop it and its updates from the live ones.
    fn archive(&self, key: &str) {
        let monitor = match (self.read_whole_monitor)(key) {
            Ok(monitor) => monitor,
            Err(e) => {
                tracing::warn!(monitor = key, error = %e, "cannot read a channel monitor to archive it");
                return;
            }
        };
        let archived = self.store.write(
            ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
            ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
            key,
            monitor,
        );
        if let Err(e) = archived.and_then(|()| {
            self.store.remove(
                CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
                CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
                key,
                true,
            )
        }) {
            tracing::warn!(monitor = key, error = %e, "cannot archive a channel monitor; it stays live");
        } else {
            self.drop_updates(key, |_| true);
            tracing::info!(monitor = key, "archived a fully resolved channel monitor");
        }
    }

    /// Runs `write` until it succeeds, and returns true: nothing after it may happen before it
    /// is durable. Logs the first failure and then every minute. Only when the node is stopping
    /// does it give up (after a minute of failures) and return false: what was not written was
    /// never acknowledged, so the state on disk is the one a crash at that moment would leave.
    fn retry(&self, what: &str, mut write: impl FnMut() -> Result<(), io::Error>) -> bool {
        let mut delay = Duration::from_millis(50);
        let mut failures = 0u32;
        let first_failure = std::time::Instant::now();
        let mut last_logged: Option<std::time::Instant> = None;
        while let Err(error) = write() {
            failures += 1;
            if last_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                tracing::error!(%error, failures, "cannot {what}; the affected channels are paused until the store accepts it");
                last_logged = Some(std::time::Instant::now());
            }
            if lock(&self.queue).stopping && first_failure.elapsed() >= Duration::from_secs(60) {
                tracing::error!(failures, "gave up: cannot {what} and the node is stopping; nothing of it was acknowledged");
                return false;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
        if failures > 0 {
            tracing::info!(failures, "could {what} again");
        }
        true
    }

    /// Counts one more of the writer's own steps of this kind, and aborts if that is the
    /// crash point.
    fn crash_if(&self, point: fn(u64) -> CrashPoint, counter: &AtomicU64) {
        let count = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if self.crash_point == Some(point(count)) {
            tracing::error!(point = ?point(count), "fault injection: aborting the process here");
            std::process::abort();
        }
    }
}

/// The buffer a `ChannelManager` is serialized into for a batch, which takes the writer's queue
/// at LDK's first write to it: the version prefix, written before LDK reads any channel.
/// LDK numbers an update in its channel before it hands it to the writer, so every update
/// taken is known to the manager being written, as it was when the queue was taken just
/// before the serialization. The difference is the wait: `ChannelManager::write` takes LDK's
/// consistency lock before that first write, and every call that makes monitor updates (a
/// peer's message, a payment, a claim) holds it for reading, so an update being made when the
/// writer wakes joins the batch instead of waiting for the next one.
///
/// It also clears LDK's flag that the manager needs persisting, at the same first write: every
/// change flagged before then is in this serialization, and a change made after sets the flag
/// again. So LDK's background processor serializes the manager (twice, in `encode`, under the
/// lock peers' messages wait for) only for what no batch carried, instead of after nearly every
/// message: the writer already writes the manager with every batch.
struct TakeOnFirstWrite<'a> {
    manager: &'a ChannelManager,
    queue: &'a Mutex<Queue>,
    bytes: Vec<u8>,
    /// What was queued at the first write; `None` before it.
    taken: Option<Vec<Op>>,
}

// LDK's `Writer` itself rather than `io::Write` (which LDK's blanket `Writer` wraps in
// `write_all`'s loop): a manager is written as thousands of small fields. Profiled under sustained
// payments, that wrapping and this write took 8 % of the payer's CPU, as much as LDK's encoding of
// the payments the manager holds.
impl Writer for TakeOnFirstWrite<'_> {
    fn write_all(&mut self, buf: &[u8]) -> Result<(), io::Error> {
        if self.taken.is_none() {
            self.manager.get_and_clear_needs_persistence();
            self.taken = Some(std::mem::take(&mut lock(self.queue).ops));
        }
        self.bytes.extend_from_slice(buf);
        Ok(())
    }
}

/// How long a requested manager write waits for a batch to carry it, when serializing the
/// manager last took `serialization`.
fn manager_write_delay(serialization: Duration) -> Duration {
    serialization
        .saturating_mul(MANAGER_SERIALIZATIONS_PER_DELAY)
        .clamp(MANAGER_WRITE_DELAY, MAX_MANAGER_WRITE_DELAY)
}

/// `value` serialized. LDK's `encode` serializes twice (once only to size its buffer): for a
/// channel manager or monitor that nearly doubles the CPU a write costs.
fn serialize(value: &impl Writeable) -> Vec<u8> {
    let mut bytes = Vec::new();
    serialize_into(value, &mut bytes);
    bytes
}

fn serialize_into(value: &impl Writeable, bytes: &mut impl Writer) {
    // Writing to memory cannot fail.
    let _ = value.write(bytes);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The store LDK's background processor and output sweeper persist through: the
/// `ChannelManager` is written by [`MonitorWriter::persist_manager`] from a fresh serialization
/// (the processor's own bytes may be older than a manager the writer has written since); every
/// other entry goes to the store as is.
pub struct LdkStore {
    store: Arc<SledStore>,
    writer: Arc<MonitorWriter>,
}

impl LdkStore {
    /// `store`, with the `ChannelManager` written by `writer`.
    pub fn new(store: Arc<SledStore>, writer: Arc<MonitorWriter>) -> Self {
        Self { store, writer }
    }
}

impl KVStoreSync for LdkStore {
    fn read(&self, primary: &str, secondary: &str, key: &str) -> Result<Vec<u8>, io::Error> {
        self.store.read(primary, secondary, key)
    }

    fn write(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), io::Error> {
        if (primary, secondary, key)
            == (
                CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
                CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
                CHANNEL_MANAGER_PERSISTENCE_KEY,
            )
        {
            // The writer thread makes the write, with its next batch if one is queued, and
            // retries it until it lands (LDK's background processor stops for good on an error
            // here).
            return self.writer.request_manager_write();
        }
        if (primary, secondary, key)
            == (
                SCORER_PERSISTENCE_PRIMARY_NAMESPACE,
                SCORER_PERSISTENCE_SECONDARY_NAMESPACE,
                SCORER_PERSISTENCE_KEY,
            )
        {
            // The background processor writes the scorer after every payment, before it hands
            // out the next event, and on a runtime thread. An fsync there held up the payer's
            // next events; the scorer's estimates are worth no fsync (a crash loses at most
            // the last moments of them, which only route less well for a while).
            return self.store.write_lazily(primary, secondary, key, value);
        }
        self.store.write(primary, secondary, key, value)
    }

    fn remove(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        lazy: bool,
    ) -> Result<(), io::Error> {
        self.store.remove(primary, secondary, key, lazy)
    }

    fn list(&self, primary: &str, secondary: &str) -> Result<Vec<String>, io::Error> {
        self.store.list(primary, secondary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manager_that_takes_long_to_serialize_is_written_alone_less_often() {
        let ms = Duration::from_millis;
        // A small manager: the write a request asked for is made 10 ms later at the latest.
        assert_eq!(manager_write_delay(Duration::ZERO), ms(10));
        assert_eq!(manager_write_delay(Duration::from_micros(400)), ms(10));
        // A megabyte of payments kept for LDK's idempotency: a tenth of the time at most.
        assert_eq!(manager_write_delay(ms(8)), ms(80));
        // Never more than half a second behind what a crash would have found otherwise.
        assert_eq!(manager_write_delay(ms(200)), ms(500));
        assert_eq!(manager_write_delay(Duration::MAX), ms(500));
    }

    #[test]
    fn crash_points_parse_from_their_names() {
        assert_eq!(
            "manager-write:3".parse::<CrashPoint>(),
            Ok(CrashPoint::AfterManagerWrite(3))
        );
        assert_eq!(
            "monitor-write:1".parse::<CrashPoint>(),
            Ok(CrashPoint::AfterMonitorWrite(1))
        );
        for bad in [
            "monitor-write:0",
            "monitor-write",
            "disk:1",
            "monitor-write:x",
        ] {
            assert!(bad.parse::<CrashPoint>().is_err(), "{bad}");
        }
    }
}
