//! The node's durable key-value store: one sled database per data directory.
//!
//! LDK persists its state (channel manager, channel monitors, graph, scorer, sweeper) through
//! [`KVStoreSync`], which [`SledStore`] implements with one sled tree per namespace pair
//! (`ldk/<primary>/<secondary>`). xln's own records (payments, invoices, chain-sync state) live in
//! [`Namespace`]s (`xln/<name>`) of the same database. Every write returns only after sled has
//! flushed it and xln has `fdatasync`ed sled's files ([`disk_sync`]): LDK treats a returned
//! ChannelMonitor write as durable.

mod disk_sync;
mod group_sync;
mod namespace;
#[cfg(test)]
mod tests;

pub use namespace::{Entry, Namespace};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lightning::io;
use lightning::util::persist::{
    KVStoreSync, KVSTORE_NAMESPACE_KEY_ALPHABET, KVSTORE_NAMESPACE_KEY_MAX_LEN,
};

/// How long [`SledStore::open`] waits for a lock that a just-dropped handle still holds.
const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is locked: another process (or another open [`SledStore`] in this process)
    /// is using the data directory.
    #[error("another process is using the data directory {} (its store is locked)", .path.display())]
    Locked {
        /// The store's directory.
        path: PathBuf,
    },
    /// sled could not open the database (permissions, corruption, unsupported format, ...).
    #[error("cannot open the store in {}: {source}", .path.display())]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// What sled reported.
        source: sled::Error,
    },
    /// A read, write or flush of an open store failed.
    #[error("store failed to {context}: {source}")]
    Io {
        /// The operation and the tree/key it was on.
        context: String,
        /// What sled reported.
        source: sled::Error,
    },
    /// Stored data could not be decoded, or data to store could not be encoded.
    #[error("store data is unreadable: {context}")]
    Corrupt {
        /// What, and the decoder's words.
        context: String,
    },
}

impl From<StoreError> for io::Error {
    fn from(error: StoreError) -> Self {
        let kind = match &error {
            StoreError::Locked { .. } => std::io::ErrorKind::WouldBlock,
            StoreError::Open { source, .. } | StoreError::Io { source, .. } => match source {
                sled::Error::Io(inner) => inner.kind(),
                _ => std::io::ErrorKind::Other,
            },
            StoreError::Corrupt { .. } => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, error).into()
    }
}

/// The node's sled database. Cloning is cheap and shares the database.
#[derive(Clone, Debug)]
pub struct SledStore {
    db: sled::Db,
    durability: Durability,
}

/// How the store makes writes durable: sled's flush, then `fdatasync` of sled's files, never
/// holding up the async runtime, and, for tests of a slow disk, after an injected delay.
#[derive(Clone, Debug)]
pub(crate) struct Durability {
    /// The files sled's flush leaves unsynced for a power loss.
    disk: Arc<disk_sync::DiskSync>,
    /// Shares a flush among callers waiting at the same time (one per database).
    group: Arc<group_sync::SyncGroup>,
    slow_disk: Option<Arc<SlowDisk>>,
    /// While this file exists, every flush fails as on a full disk (fault injection).
    full_disk_flag: Option<Arc<PathBuf>>,
}

/// A disk whose every flush takes `delay`, one flush at a time (as a saturated disk does).
#[derive(Debug)]
struct SlowDisk {
    delay: Duration,
    one_at_a_time: Mutex<()>,
}

impl Durability {
    /// Makes every write made before this call durable: runs `flush` (sled's, of this
    /// database: any tree's flush writes the whole log) and then syncs sled's files, off the
    /// runtime's worker threads (see [`outside_the_runtime`]), or waits for a flush and sync
    /// of another caller that began after this call ([`group_sync`]).
    pub(crate) fn flush<T>(&self, flush: impl FnOnce() -> sled::Result<T>) -> sled::Result<()> {
        outside_the_runtime(|| {
            if let Some(flag) = &self.full_disk_flag {
                if flag.exists() {
                    return Err(sled::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        format!(
                            "no space left on device (fault injection: {} exists)",
                            flag.display()
                        ),
                    )));
                }
            }
            if let Some(slow) = &self.slow_disk {
                let _one_at_a_time = slow
                    .one_at_a_time
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                std::thread::sleep(slow.delay);
            }
            self.group.sync(|| {
                flush()?;
                self.disk.sync().map_err(sled::Error::Io)
            })
        })
    }
}

/// Runs blocking `work` (a flush: the disk's time, not ours) without holding up the async
/// runtime. On a worker thread of a multi-thread tokio runtime, tokio first hands that worker's
/// other tasks to another thread (`block_in_place`), so RPC calls and peers keep being served
/// while the disk works; on other threads (the monitor writer, tokio's blocking pool, a
/// current-thread test runtime) it just runs.
pub fn outside_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Locks `mutex`, a lock that its holders keep across a flush: when it is taken, the wait (the
/// disk's time) happens [`outside_the_runtime`]. Waiting for it on a worker thread would take
/// that thread from every other task, and two such waiters stop a 2-core node's RPC server and
/// peers until the disk is done. A poisoned lock is taken as it is: its data is only ever left
/// in a state its next holder checks.
pub fn lock_outside_the_runtime<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => outside_the_runtime(|| {
            mutex
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }),
    }
}

impl SledStore {
    /// Opens (creating if needed) the database in the directory `path`.
    ///
    /// sled takes an exclusive `flock` on `path/db`, so a second open of the same directory fails
    /// with [`StoreError::Locked`] until every handle of the first (clones, [`Namespace`]s) is
    /// dropped, whether the first open was in another process or in this one.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // sled releases its lock from its flusher thread a moment after the last handle is
        // dropped: a store reopened at once in the same process (a node restarted in place)
        // may find it still held, so a held lock is retried for a short while.
        let deadline = std::time::Instant::now() + LOCK_RELEASE_WAIT;
        // sled's default 512 KiB segments on purpose. Larger ones (8 MiB, so values up to 2 MiB
        // stay in the log instead of a file each under `blobs/`) halved the store's time for a
        // batch carrying a manager of 0.5-1 MB, but sled did not reclaim its log fast enough:
        // a node's data directory was 4.7 GiB after 3 minutes of steady payments, against
        // about 0.2 GiB with blobs.
        let db = loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => break db,
                Err(source) if is_lock_error(&source) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked { path: path.into() });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: path.into(),
                        source,
                    })
                }
            }
        };
        let disk = disk_sync::DiskSync::open(path).map_err(|e| StoreError::Open {
            path: path.into(),
            source: sled::Error::Io(e),
        })?;
        tracing::info!(path = %path.display(), "opened store");
        Ok(Self {
            db,
            durability: Durability {
                disk: Arc::new(disk),
                group: Arc::default(),
                slow_disk: None,
                full_disk_flag: None,
            },
        })
    }

    /// Makes every later flush of this store (and its clones and namespaces) fail, as on a full
    /// disk, while the file `flag` exists: for tests that the node pauses its channels, says
    /// why, acknowledges nothing it could not write, and resumes when the disk has room again.
    /// Never used in normal operation.
    pub fn with_full_disk_flag(mut self, flag: PathBuf) -> Self {
        tracing::warn!(flag = %flag.display(), "fault injection: store flushes fail while this file exists");
        self.durability.full_disk_flag = Some(Arc::new(flag));
        self
    }

    /// Makes every later flush of this store (and its clones and namespaces) wait `delay`
    /// first, one flush at a time: a slow disk, for tests that the node keeps answering while
    /// its disk is slow. Never used in normal operation.
    pub fn with_slow_disk(mut self, delay: Duration) -> Self {
        tracing::warn!(
            delay_ms = delay.as_millis() as u64,
            "fault injection: every store flush is delayed"
        );
        self.durability.slow_disk = Some(Arc::new(SlowDisk {
            delay,
            one_at_a_time: Mutex::new(()),
        }));
        self
    }

    /// The xln (non-LDK) namespace `name`, stored in the tree `xln/<name>`.
    pub fn namespace(&self, name: &'static str) -> Result<Namespace, StoreError> {
        Namespace::open(&self.db, name, self.durability.clone())
    }

    /// The tree of an LDK namespace pair, if it was ever written (reads and lists create nothing).
    fn existing_tree(&self, name: &str) -> Result<Option<sled::Tree>, sled::Error> {
        let names = self.db.tree_names();
        let exists = names.iter().any(|n| n.as_ref() == name.as_bytes());
        exists.then(|| self.db.open_tree(name)).transpose()
    }
}

impl SledStore {
    /// Writes an LDK entry without waiting for the disk: it becomes durable with the store's
    /// next flush (any durable write, or sled's own flush every 500 ms). [`KVStoreSync::write`]
    /// flushes after it; on its own it is for entries that may be lost in a crash at no cost,
    /// such as the scorer's estimates.
    pub fn write_lazily(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), io::Error> {
        check_names("write", primary, secondary, Some(key))?;
        let tree_name = ldk_tree_name(primary, secondary);
        self.db
            .open_tree(&tree_name)
            .and_then(|tree| tree.insert(key, value))
            .map(drop)
            .map_err(|e| store_failure(format!("write {tree_name}/{key}"), e))
    }

    /// Writes LDK entries `(primary, secondary, key, value)` as one sled transaction, so that
    /// after a crash either all of them or none are found, then makes them durable with one
    /// flush: for a writer whose entries must never be found without one another (a channel
    /// manager and the monitors it knows), at the cost of one fsync instead of one per entry.
    pub fn write_all_durably(
        &self,
        entries: &[(&str, &str, &str, &[u8])],
    ) -> Result<(), io::Error> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        let mut trees: Vec<sled::Tree> = Vec::new();
        let mut tree_names: Vec<String> = Vec::new();
        let mut placed = Vec::with_capacity(entries.len());
        for (primary, secondary, key, _) in entries {
            check_names("write", primary, secondary, Some(key))?;
            let tree_name = ldk_tree_name(primary, secondary);
            let index = match tree_names.iter().position(|name| *name == tree_name) {
                Some(index) => index,
                None => {
                    let tree = self
                        .db
                        .open_tree(&tree_name)
                        .map_err(|e| store_failure(format!("open {tree_name}"), e))?;
                    trees.push(tree);
                    tree_names.push(tree_name);
                    trees.len() - 1
                }
            };
            placed.push(index);
        }
        let started = std::time::Instant::now();
        trees
            .as_slice()
            .transaction(|views| {
                for (&index, (_, _, key, value)) in placed.iter().zip(entries) {
                    views[index].insert(*key, *value)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| {
                let source = match e {
                    TransactionError::Storage(source) => source,
                    TransactionError::Abort(()) => {
                        sled::Error::ReportableBug("a write-only transaction aborted".to_owned())
                    }
                };
                store_failure(format!("write {} entries at once", entries.len()), source)
            })?;
        let written = started.elapsed();
        self.flush()?;
        trace_durable(entries.len(), started, written);
        Ok(())
    }

    /// Makes every write so far durable (sled's flush, then `fdatasync` of sled's files).
    pub fn flush(&self) -> Result<(), io::Error> {
        self.durability
            .flush(|| self.db.flush())
            .map(drop)
            .map_err(|e| store_failure("flush".to_owned(), e))
    }
}

/// Logs at trace level where a durable write of `entries` entries, begun at `started`, spent its
/// time: `written` in sled, the rest in the flush (fsync) after it.
fn trace_durable(entries: usize, started: std::time::Instant, written: Duration) {
    tracing::trace!(
        entries,
        write_us = written.as_micros() as u64,
        fsync_us = (started.elapsed() - written).as_micros() as u64,
        "store write durable"
    );
}

/// sled 0.34 reports a held lock as `Io(Other, "could not acquire lock on ...: WouldBlock ...")`.
fn is_lock_error(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(e)
        if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock"))
}

fn ldk_tree_name(primary: &str, secondary: &str) -> String {
    format!("ldk/{primary}/{secondary}")
}

fn is_valid_name(s: &str) -> bool {
    s.len() <= KVSTORE_NAMESPACE_KEY_MAX_LEN
        && s.chars()
            .all(|c| KVSTORE_NAMESPACE_KEY_ALPHABET.contains(c))
}

/// LDK's rules for namespaces and keys (`lightning::util::persist::KVStoreSync` docs).
fn check_names(
    operation: &str,
    primary: &str,
    secondary: &str,
    key: Option<&str>,
) -> Result<(), io::Error> {
    let problem = if key.is_some_and(str::is_empty) {
        Some("the key is empty")
    } else if primary.is_empty() && !secondary.is_empty() {
        Some("a secondary namespace needs a primary namespace")
    } else if !is_valid_name(primary) || !is_valid_name(secondary) || !key.is_none_or(is_valid_name)
    {
        Some("namespaces and keys must be at most 120 characters of [A-Za-z0-9_-]")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => {
            let key = key.unwrap_or("");
            let msg = format!("cannot {operation} {primary:?}/{secondary:?}/{key:?}: {problem}");
            Err(io::Error::new(io::ErrorKind::InvalidInput, msg))
        }
    }
}

/// Logs a failed store operation and wraps it with its context.
fn store_failure(context: String, source: sled::Error) -> io::Error {
    tracing::error!(%context, error = %source, "store operation failed");
    StoreError::Io { context, source }.into()
}

impl KVStoreSync for SledStore {
    fn read(&self, primary: &str, secondary: &str, key: &str) -> Result<Vec<u8>, io::Error> {
        check_names("read", primary, secondary, Some(key))?;
        let tree_name = ldk_tree_name(primary, secondary);
        let value = self
            .existing_tree(&tree_name)
            .and_then(|tree| tree.map_or(Ok(None), |tree| tree.get(key)))
            .map_err(|e| store_failure(format!("read {tree_name}/{key}"), e))?;
        let not_found = || io::Error::new(io::ErrorKind::NotFound, format!("no {tree_name}/{key}"));
        value.map(|value| value.to_vec()).ok_or_else(not_found)
    }

    fn write(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        buf: Vec<u8>,
    ) -> Result<(), io::Error> {
        let started = std::time::Instant::now();
        self.write_lazily(primary, secondary, key, buf)?;
        let written = started.elapsed();
        self.flush()?;
        trace_durable(1, started, written);
        Ok(())
    }

    fn remove(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        lazy: bool,
    ) -> Result<(), io::Error> {
        check_names("remove", primary, secondary, Some(key))?;
        let tree_name = ldk_tree_name(primary, secondary);
        // Always flush a non-lazy remove: an earlier lazy remove of this key may still be unflushed.
        self.existing_tree(&tree_name)
            .and_then(|tree| tree.map_or(Ok(None), |tree| tree.remove(key)))
            .and_then(|_| {
                if lazy {
                    Ok(())
                } else {
                    self.durability.flush(|| self.db.flush())
                }
            })
            .map(drop)
            .map_err(|e| store_failure(format!("remove {tree_name}/{key}"), e))
    }

    fn list(&self, primary: &str, secondary: &str) -> Result<Vec<String>, io::Error> {
        check_names("list", primary, secondary, None)?;
        let tree_name = ldk_tree_name(primary, secondary);
        let tree = match self.existing_tree(&tree_name) {
            Ok(Some(tree)) => tree,
            Ok(None) => return Ok(Vec::new()),
            Err(e) => return Err(store_failure(format!("list {tree_name}"), e)),
        };
        tree.iter()
            .keys()
            .map(|key| {
                let key = key.map_err(|e| store_failure(format!("list {tree_name}"), e))?;
                String::from_utf8(key.to_vec()).map_err(|_| {
                    let msg = format!("list {tree_name}: a key is not UTF-8");
                    io::Error::new(io::ErrorKind::InvalidData, msg)
                })
            })
            .collect()
    }
}
