//! The one chain poller, for every chain: follows a [`ChainSource`] block by block and feeds
//! `chain::Listen` implementations (ChannelManager, ChainMonitor, OutputSweeper, the wallet).
//! The node's chain loop drives it, calling [`ChainPoller::poll_once`] at every poll interval.
//!
//! Crash safety rests on one ordering rule: the poller persists its new position *before* it tells
//! the listeners. After a crash every listener is therefore at or behind the poller, never ahead,
//! and [`ChainPoller::catch_up_listener`] brings each one from its own best block (even one on a
//! branch that was reorged away meanwhile) to the poller's tip on restart.
//!
//! LDK's objects (ChannelManager, ChainMonitor, OutputSweeper: [`WatchingListener`]s) are told of
//! every block while the node follows the tip, but a catch-up over many blocks (a node back after
//! a while) tells them only of the blocks that concern them (a transaction on the [`WatchList`])
//! and of the tip, through LDK's `Confirm`, which allows skipping the others. Told of every block,
//! LDK bumps the fee of a pending claim (a justice transaction, say) every 15 blocks as if that
//! much time were passing while it waits for confirmation; over a 2,000-block catch-up that
//! multiplied a justice transaction's feerate by 1.25 about 130 times. The wallet is told of every
//! block.
//!
//! Reorgs are detected by a changed hash at a height we connected (or a new block whose parent is
//! not our tip). The poller then walks its best chain back to the highest block the node still
//! has, tells every listener `blocks_disconnected(fork point)`, and connects the new branch.
//! LDK is always given the header the `ChainSource` provides (`ChainBlock::ldk_header`), and the
//! poller checks that each header's `prev_blockhash` is the previous one's hash.

mod state;
mod watch_list;

use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::Block;
use lightning::chain::{BestBlock, Confirm, Listen};
use lightning::util::persist::KVStoreSync;

use state::SyncState;
pub use state::SyncedBlock;
pub use watch_list::WatchList;

use crate::chain::{ChainBlock, ChainSource, ChainSourceError};

/// A consumer of connected and disconnected blocks, told of every block.
pub type ChainListener = Arc<dyn Listen + Send + Sync>;

/// An LDK object that follows the chain through `Confirm` as well as `Listen`: told of every
/// block at the tip, but during a catch-up only of the blocks on the node's [`WatchList`] and of
/// the last one (see the module's documentation).
pub trait WatchingListener: Confirm + Listen + Send + Sync {}

impl<T: Confirm + Listen + Send + Sync + ?Sized> WatchingListener for T {}

/// The poller's namespace in the node's store.
const STATE_NAMESPACE: &str = "chain_sync";
/// The LDK hash of the tip (32 bytes), under [`STATE_NAMESPACE`].
const TIP_KEY: &str = "poller_tip";
/// Secondary namespace with one record per remembered block, keyed by its LDK hash in hex: a new
/// block writes about 100 bytes, not the whole window.
const BLOCKS_NAMESPACE: &str = "poller_blocks";
/// Where version-1 nodes kept the whole window in one value; read once and converted.
const LEGACY_STATE_KEY: &str = "poller_state";

/// How many blocks back the poller remembers; a reorg deeper than this stops the node with
/// [`PollerError::ReorgTooDeep`] instead of guessing.
pub const RETAINED_BLOCKS: u32 = 2016;

/// Why the poller could not follow the chain.
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    /// The chain node failed; usually transient (see [`ChainSourceError::is_transient`]).
    #[error(transparent)]
    Source(#[from] ChainSourceError),
    /// The poller's position could not be read or written.
    #[error("chain-sync state: {0}")]
    Store(String),
    /// The node's chain forked below everything the poller remembers.
    #[error("the chain reorganised deeper than the {RETAINED_BLOCKS} blocks xln keeps (our tip: height {our_height}); restore from a backup or resync")]
    ReorgTooDeep {
        /// Height of our tip when the reorg was found.
        our_height: u32,
    },
    /// A listener's best block is unknown to the poller.
    #[error("a chain listener is at block {hash} (height {height}), which the chain poller does not know; its state is older than the poller's memory")]
    UnknownListenerBlock {
        /// The listener's best-block hash (as LDK saw it).
        hash: bitcoin::BlockHash,
        /// The listener's best-block height.
        height: u32,
    },
    /// The chain source gave a header that does not chain onto the previous one.
    #[error("chain source broke header continuity at height {height}: header's prev {header_prev} != our tip {our_tip}")]
    BrokenHeaderChain {
        /// Height of the offending block.
        height: u32,
        /// `prev_blockhash` of the offending header.
        header_prev: bitcoin::BlockHash,
        /// Hash of the header we gave LDK for the parent.
        our_tip: bitcoin::BlockHash,
    },
    /// `initialize` was not called before polling.
    #[error("the chain poller has no starting block; call initialize first")]
    NotInitialized,
}

/// What one [`ChainPoller::poll_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Blocks connected.
    pub connected: u32,
    /// Blocks disconnected by reorgs.
    pub disconnected: u32,
}

/// Follows one [`ChainSource`] and notifies every registered [`ChainListener`].
pub struct ChainPoller {
    source: Arc<dyn ChainSource>,
    store: Arc<dyn KVStoreSync + Send + Sync>,
    state: Mutex<SyncState>,
    listeners: Mutex<Vec<ChainListener>>,
    watching: Mutex<Vec<Arc<dyn WatchingListener>>>,
    watch_list: Option<Arc<WatchList>>,
}

impl ChainPoller {
    /// A poller with the position persisted in `store` (none on a node's first start).
    pub fn load(
        source: Arc<dyn ChainSource>,
        store: Arc<dyn KVStoreSync + Send + Sync>,
    ) -> Result<Self, PollerError> {
        let state = read_state(store.as_ref())?;
        Ok(Self {
            source,
            store,
            state: Mutex::new(state),
            listeners: Mutex::new(Vec::new()),
            watching: Mutex::new(Vec::new()),
            watch_list: None,
        })
    }

    /// Lets catch-ups skip, for [`WatchingListener`]s, the blocks that concern nothing on
    /// `watch_list` (the `chain::Filter` given to LDK). Without one they are told of every block.
    pub fn with_watch_list(mut self, watch_list: Arc<WatchList>) -> Self {
        self.watch_list = Some(watch_list);
        self
    }

    /// The block the poller has connected last, if any.
    pub fn tip(&self) -> Option<SyncedBlock> {
        self.lock_state().tip_block()
    }

    /// The best block to create new LDK objects at: the poller's tip. On a node's first start
    /// the poller begins at the chain's current tip (nothing older concerns a new node).
    pub async fn initialize(&self) -> Result<BestBlock, PollerError> {
        if let Some(tip) = self.tip() {
            return Ok(BestBlock::new(tip.ldk_hash, tip.height));
        }
        let tip_ref = self.source.best_tip().await?;
        let block = self.source.block_by_hash(&tip_ref.hash).await?;
        let synced = synced(&block);
        self.persist_tip(synced)?;
        tracing::info!(height = synced.height, block_hash = %synced.real_hash, "chain poller starts at the current tip");
        Ok(BestBlock::new(synced.ldk_hash, synced.height))
    }

    /// Registers a listener that is already at the poller's tip (see
    /// [`Self::catch_up_listener`] for one that is not).
    pub fn add_listener(&self, listener: ChainListener) {
        lock_list(&self.listeners).push(listener);
    }

    /// Registers an LDK object that is already at the poller's tip (see
    /// [`Self::catch_up_watching_listener`] for one that is not).
    pub fn add_watching_listener(&self, listener: Arc<dyn WatchingListener>) {
        lock_list(&self.watching).push(listener);
    }

    /// Brings a listener from its own best block (e.g. a wallet read from disk) to the poller's
    /// tip, telling it of every block: disconnects a stale branch if needed, then connects the
    /// missing blocks.
    pub async fn catch_up_listener(
        &self,
        listener: &(dyn Listen + Send + Sync),
        listener_best: BestBlock,
    ) -> Result<u32, PollerError> {
        self.walk_catch_up(listener_best, listener, |block, height, _| {
            listener.block_connected(block, height)
        })
        .await
    }

    /// Brings an LDK object (a ChannelManager or a ChannelMonitor read from disk) from its own
    /// best block to the poller's tip, telling it only of the blocks that concern it and of the
    /// tip; returns how many blocks it was brought over.
    pub async fn catch_up_watching_listener(
        &self,
        listener: &dyn WatchingListener,
        listener_best: BestBlock,
    ) -> Result<u32, PollerError> {
        self.catch_up_watching_listeners(&[(listener, listener_best)])
            .await
    }

    /// [`Self::catch_up_watching_listener`] for many LDK objects at once (a node's
    /// ChannelMonitors), reading each block once however many of them need it; returns how many
    /// blocks were read. Each monitor is written at its own blocks, so at start-up they stand at
    /// different heights a few blocks behind the tip; caught up one by one, a node with 100
    /// channels read each of those blocks up to 100 times from the chain node, which was most of
    /// its start-up.
    pub async fn catch_up_watching_listeners(
        &self,
        listeners: &[(&dyn WatchingListener, BestBlock)],
    ) -> Result<u32, PollerError> {
        struct Walk<'l, 'w> {
            listener: &'l dyn WatchingListener,
            path: Vec<CatchUpStep>,
            /// Index in `path` of the next block to tell it of.
            next: usize,
            /// The LDK hash of the block it was last brought to.
            parent: bitcoin::BlockHash,
            feed: SparseFeed<'w>,
        }
        let mut walks = Vec::with_capacity(listeners.len());
        for &(listener, listener_best) in listeners {
            let (path, fork) = self.catch_up_path(listener_best).await?;
            if let Some(fork) = fork {
                listener.blocks_disconnected(fork);
            }
            walks.push(Walk {
                listener,
                path,
                next: 0,
                parent: fork.unwrap_or(listener_best).block_hash,
                feed: SparseFeed::new(self.watch_list.as_deref()),
            });
        }
        let mut read = 0u32;
        // Every path runs up the node's best chain to the poller's tip, so the walks that are
        // at the same height next need the same block: read the lowest one, tell each of them.
        while let Some(height) = walks
            .iter()
            .filter_map(|walk| walk.path.get(walk.next).map(CatchUpStep::height))
            .min()
        {
            let at_height =
                |walk: &Walk| walk.path.get(walk.next).map(CatchUpStep::height) == Some(height);
            let Some(first) = walks.iter().find(|walk| at_height(walk)) else {
                break;
            };
            let block = self
                .catch_up_block(&first.path[first.next], first.parent)
                .await?;
            read += 1;
            let hash = block.header.block_hash();
            let mut told = 0usize;
            let mut skipped = 0usize;
            for walk in walks.iter_mut().filter(|walk| at_height(walk)) {
                let expected = walk.path[walk.next].ldk_hash();
                if block.header.prev_blockhash != walk.parent
                    || expected.is_some_and(|expected| expected != hash)
                {
                    return Err(PollerError::BrokenHeaderChain {
                        height,
                        header_prev: block.header.prev_blockhash,
                        our_tip: walk.parent,
                    });
                }
                walk.next += 1;
                let last = walk.next == walk.path.len();
                let listener = walk.listener;
                if walk.feed.feed(&[listener], &block, height, last) {
                    told += 1;
                } else {
                    skipped += 1;
                }
                walk.parent = hash;
            }
            tracing::trace!(
                height,
                told,
                skipped,
                "a block of a catch-up: told to the LDK objects it concerns or ends the walk of"
            );
        }
        if read > 0 {
            tracing::debug!(
                listeners = listeners.len(),
                blocks = read,
                "caught up LDK objects, each told only of its blocks that concern it and of the tip"
            );
        }
        Ok(read)
    }

    /// Disconnects `listener` from a stale branch if it is on one, then hands `connect` every
    /// block from its best block to the poller's tip (with whether it is the last); returns how
    /// many blocks there were.
    async fn walk_catch_up(
        &self,
        listener_best: BestBlock,
        listener: &(impl Listen + ?Sized),
        mut connect: impl FnMut(&Block, u32, bool),
    ) -> Result<u32, PollerError> {
        let (path, fork) = self.catch_up_path(listener_best).await?;
        if let Some(fork) = fork {
            listener.blocks_disconnected(fork);
        }
        let mut parent = fork.unwrap_or(listener_best).block_hash;
        let last = path.last().map(CatchUpStep::height);
        for step in &path {
            let block = self.catch_up_block(step, parent).await?;
            parent = block.header.block_hash();
            connect(&block, step.height(), Some(step.height()) == last);
        }
        Ok(u32::try_from(path.len()).unwrap_or(u32::MAX))
    }

    /// The blocks from a listener's best block to the poller's tip, and the fork point to
    /// disconnect it to first if it is on a stale branch. A listener older than the poller's
    /// memory (e.g. a ChannelMonitor that LDK last persisted many blocks ago) is accepted if its
    /// block is still on the node's best chain at its height; the blocks up to the poller's
    /// memory are then read by height.
    async fn catch_up_path(
        &self,
        listener_best: BestBlock,
    ) -> Result<(Vec<CatchUpStep>, Option<BestBlock>), PollerError> {
        let unknown = PollerError::UnknownListenerBlock {
            hash: listener_best.block_hash,
            height: listener_best.height,
        };
        let best = {
            let state = self.lock_state();
            let tip = state.tip_block().ok_or(PollerError::NotInitialized)?;
            let best = state.best_chain_descending();
            match state.by_ldk_hash(&listener_best.block_hash) {
                Some(mut cursor) => {
                    // Walk the listener's branch back until it meets our best chain.
                    let mut disconnect_to = None;
                    while !best.contains(&cursor) {
                        let parent = state.by_ldk_hash(&cursor.parent_ldk_hash).ok_or(
                            PollerError::UnknownListenerBlock {
                                hash: cursor.ldk_hash,
                                height: cursor.height,
                            },
                        )?;
                        disconnect_to = Some(parent);
                        cursor = parent;
                    }
                    let path: Vec<CatchUpStep> = best
                        .into_iter()
                        .rev()
                        .filter(|b| b.height > cursor.height && b.height <= tip.height)
                        .map(CatchUpStep::Remembered)
                        .collect();
                    let fork = disconnect_to.map(|f| BestBlock::new(f.ldk_hash, f.height));
                    if let Some(fork) = &fork {
                        tracing::info!(
                            fork_height = fork.height,
                            "disconnecting a listener's stale branch"
                        );
                    }
                    return Ok((path, fork));
                }
                None => best,
            }
        };
        // Older than our memory: only if it is on the best chain and below what we remember.
        let Some(oldest) = best.last().copied() else {
            return Err(unknown);
        };
        if listener_best.height >= oldest.height {
            return Err(unknown);
        }
        let on_best_chain = match self.source.block_at_height(listener_best.height).await? {
            Some(block) => block.ldk_header.block_hash() == listener_best.block_hash,
            None => false,
        };
        if !on_best_chain {
            return Err(unknown);
        }
        tracing::info!(
            from_height = listener_best.height,
            remembered_from = oldest.height,
            "catching up a listener older than the chain poller's memory"
        );
        let path = (listener_best.height + 1..oldest.height)
            .map(CatchUpStep::AtHeight)
            .chain(best.into_iter().rev().map(CatchUpStep::Remembered))
            .collect();
        Ok((path, None))
    }

    /// Reads one block of a catch-up, checking it builds on `parent` (its LDK hash).
    async fn catch_up_block(
        &self,
        step: &CatchUpStep,
        parent: bitcoin::BlockHash,
    ) -> Result<Block, PollerError> {
        let block = match step {
            CatchUpStep::Remembered(synced) => self.source.block_by_hash(&synced.real_hash).await?,
            CatchUpStep::AtHeight(height) => self
                .source
                .block_at_height(*height)
                .await?
                .ok_or(PollerError::NotInitialized)?,
        };
        if block.ldk_header.prev_blockhash != parent {
            return Err(PollerError::BrokenHeaderChain {
                height: step.height(),
                header_prev: block.ldk_header.prev_blockhash,
                our_tip: parent,
            });
        }
        Ok(to_ldk_block(block))
    }

    /// Brings every listener to the node's current tip, handling reorgs on the way.
    pub async fn poll_once(&self) -> Result<PollOutcome, PollerError> {
        let watching = self.watching_listeners();
        let mut feed = SparseFeed::new(self.watch_list.as_deref());
        let result = self.connect_to_node_tip(&watching, &mut feed).await;
        // However the pass ended, LDK's objects end at the poller's tip.
        crate::store::outside_the_runtime(|| feed.catch_up(&watching));
        result
    }

    async fn connect_to_node_tip(
        &self,
        watching: &[Arc<dyn WatchingListener>],
        feed: &mut SparseFeed<'_>,
    ) -> Result<PollOutcome, PollerError> {
        let mut outcome = PollOutcome::default();
        'restart: loop {
            // A reorg is told to listeners that stand at our tip.
            crate::store::outside_the_runtime(|| feed.catch_up(watching));
            let our_tip = self.tip().ok_or(PollerError::NotInitialized)?;
            let node_tip = self.source.best_tip().await?;
            if node_tip.hash == our_tip.real_hash {
                return Ok(outcome);
            }
            if self.source.block_hash_at_height(our_tip.height).await? != Some(our_tip.real_hash) {
                outcome.disconnected += self.disconnect_to_fork_point(our_tip, watching).await?;
                continue 'restart;
            }
            let mut tip = our_tip;
            for height in our_tip.height + 1..=node_tip.height {
                let Some(block) = self.source.block_at_height(height).await? else {
                    continue 'restart; // the node's tip moved back meanwhile
                };
                if block.prev_hash != tip.real_hash {
                    continue 'restart; // a reorg while we were connecting
                }
                if block.ldk_header.prev_blockhash != tip.ldk_hash {
                    return Err(PollerError::BrokenHeaderChain {
                        height,
                        header_prev: block.ldk_header.prev_blockhash,
                        our_tip: tip.ldk_hash,
                    });
                }
                tip = synced(&block);
                self.persist_tip(tip)?;
                let ldk_block = to_ldk_block(block);
                // The listeners work through the block and make their changes durable: a
                // blocking section, off the runtime's worker threads.
                crate::store::outside_the_runtime(|| {
                    feed.feed(watching, &ldk_block, height, height == node_tip.height);
                    for listener in self.listeners() {
                        listener.block_connected(&ldk_block, height);
                    }
                });
                tracing::debug!(height, block_hash = %tip.real_hash, "block connected");
                outcome.connected += 1;
            }
            return Ok(outcome);
        }
    }

    async fn disconnect_to_fork_point(
        &self,
        our_tip: SyncedBlock,
        watching: &[Arc<dyn WatchingListener>],
    ) -> Result<u32, PollerError> {
        let best = self.lock_state().best_chain_descending();
        for candidate in best {
            if self.source.block_hash_at_height(candidate.height).await?
                == Some(candidate.real_hash)
            {
                let depth = our_tip.height - candidate.height;
                tracing::warn!(
                    fork_height = candidate.height,
                    depth,
                    "chain reorganisation"
                );
                self.persist_tip(candidate)?;
                let fork_point = BestBlock::new(candidate.ldk_hash, candidate.height);
                crate::store::outside_the_runtime(|| {
                    for listener in watching {
                        listener.blocks_disconnected(fork_point);
                    }
                    for listener in self.listeners() {
                        listener.blocks_disconnected(fork_point);
                    }
                });
                return Ok(depth);
            }
        }
        Err(PollerError::ReorgTooDeep {
            our_height: our_tip.height,
        })
    }

    /// Records `block` (if new) and makes it the tip, in that order, so a crash in between leaves
    /// at most one extra remembered block; then forgets what fell out of the window.
    fn persist_tip(&self, block: SyncedBlock) -> Result<(), PollerError> {
        let mut state = self.lock_state();
        if state.by_ldk_hash(&block.ldk_hash).is_none() {
            write_block(self.store.as_ref(), &block)?;
        }
        write_tip(self.store.as_ref(), &block.ldk_hash)?;
        for old in state.set_tip(block, RETAINED_BLOCKS) {
            self.store
                .remove(STATE_NAMESPACE, BLOCKS_NAMESPACE, &block_key(&old), false)
                .map_err(|e| store_error("forgetting an old block", e))?;
        }
        Ok(())
    }

    fn listeners(&self) -> Vec<ChainListener> {
        lock_list(&self.listeners).clone()
    }

    fn watching_listeners(&self) -> Vec<Arc<dyn WatchingListener>> {
        lock_list(&self.watching).clone()
    }

    fn lock_state(&self) -> MutexGuard<'_, SyncState> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn lock_list<T>(list: &Mutex<Vec<T>>) -> MutexGuard<'_, Vec<T>> {
    // Only ever pushed to: a poisoned list is still a valid list.
    list.lock().unwrap_or_else(|p| p.into_inner())
}

/// One block of a listener's catch-up.
enum CatchUpStep {
    /// A block in the poller's memory.
    Remembered(SyncedBlock),
    /// A block older than the poller's memory, read by height from the node's best chain.
    AtHeight(u32),
}

impl CatchUpStep {
    fn height(&self) -> u32 {
        match self {
            Self::Remembered(block) => block.height,
            Self::AtHeight(height) => *height,
        }
    }

    /// The LDK hash the block must have, when the poller knows it.
    fn ldk_hash(&self) -> Option<bitcoin::BlockHash> {
        match self {
            Self::Remembered(block) => Some(block.ldk_hash),
            Self::AtHeight(_) => None,
        }
    }
}

/// Gives blocks to [`WatchingListener`]s, leaving out those that concern nothing on the watch
/// list unless told to give one (the last block of a pass).
struct SparseFeed<'a> {
    watch_list: Option<&'a WatchList>,
    /// The newest block left out since the listeners were last told of one.
    skipped: Option<(Header, u32)>,
}

impl<'a> SparseFeed<'a> {
    fn new(watch_list: Option<&'a WatchList>) -> Self {
        Self {
            watch_list,
            skipped: None,
        }
    }

    /// Tells `listeners` of `block` if it concerns them or `last` is set, and says whether it
    /// did. A block right after the one they were told of last goes whole through `Listen`, as at
    /// the tip; after a gap it goes through `Confirm`: first the new best block (a
    /// ChannelMonitor takes transactions only at or below its best block), then its
    /// transactions.
    fn feed<L, W>(&mut self, listeners: &[L], block: &Block, height: u32, last: bool) -> bool
    where
        L: std::ops::Deref<Target = W>,
        W: WatchingListener + ?Sized,
    {
        // `last` first: at the tip every block is the last, and needs no look at its transactions.
        let tell = last || self.watch_list.is_none_or(|list| list.concerns(block));
        if !tell {
            self.skipped = Some((block.header, height));
            return false;
        }
        if self.skipped.take().is_none() {
            for listener in listeners {
                listener.block_connected(block, height);
            }
        } else {
            let txdata: Vec<_> = block.txdata.iter().enumerate().collect();
            for listener in listeners {
                listener.best_block_updated(&block.header, height);
                listener.transactions_confirmed(&block.header, &txdata, height);
            }
        }
        true
    }

    /// Tells `listeners` of the newest block left out, as their best block (it holds nothing
    /// of theirs), so that they stand at the poller's tip.
    fn catch_up<L, W>(&mut self, listeners: &[L])
    where
        L: std::ops::Deref<Target = W>,
        W: WatchingListener + ?Sized,
    {
        if let Some((header, height)) = self.skipped.take() {
            for listener in listeners {
                listener.best_block_updated(&header, height);
            }
        }
    }
}

fn store_error(what: &str, error: impl std::fmt::Display) -> PollerError {
    PollerError::Store(format!("{what}: {error}"))
}

fn block_key(block: &SyncedBlock) -> String {
    block.ldk_hash.to_string()
}

fn write_block(
    store: &(dyn KVStoreSync + Send + Sync),
    block: &SyncedBlock,
) -> Result<(), PollerError> {
    store
        .write(
            STATE_NAMESPACE,
            BLOCKS_NAMESPACE,
            &block_key(block),
            block.encode(),
        )
        .map_err(|e| store_error("writing a block", e))
}

fn write_tip(
    store: &(dyn KVStoreSync + Send + Sync),
    ldk_hash: &bitcoin::BlockHash,
) -> Result<(), PollerError> {
    store
        .write(
            STATE_NAMESPACE,
            "",
            TIP_KEY,
            ldk_hash.to_byte_array().to_vec(),
        )
        .map_err(|e| store_error("writing the tip", e))
}

fn is_not_found(error: &lightning::io::Error) -> bool {
    error.kind() == lightning::io::ErrorKind::NotFound
}

/// The persisted state: the tip and one record per block, or a version-1 state (converted to
/// records here), or nothing on a node's first start.
fn read_state(store: &(dyn KVStoreSync + Send + Sync)) -> Result<SyncState, PollerError> {
    match store.read(STATE_NAMESPACE, "", TIP_KEY) {
        Ok(tip) => {
            let tip: [u8; 32] = tip
                .try_into()
                .map_err(|_| PollerError::Store("the stored tip is not a block hash".to_owned()))?;
            let keys = store
                .list(STATE_NAMESPACE, BLOCKS_NAMESPACE)
                .map_err(|e| store_error("listing blocks", e))?;
            let mut blocks = Vec::with_capacity(keys.len());
            for key in keys {
                let bytes = store
                    .read(STATE_NAMESPACE, BLOCKS_NAMESPACE, &key)
                    .map_err(|e| store_error("reading a block", e))?;
                blocks.push(SyncedBlock::decode(&bytes).map_err(PollerError::Store)?);
            }
            Ok(SyncState {
                tip: Some(bitcoin::BlockHash::from_byte_array(tip)),
                blocks,
            })
        }
        Err(e) if is_not_found(&e) => match store.read(STATE_NAMESPACE, "", LEGACY_STATE_KEY) {
            Ok(bytes) => {
                let state = SyncState::decode(&bytes).map_err(PollerError::Store)?;
                for block in &state.blocks {
                    write_block(store, block)?;
                }
                if let Some(tip) = &state.tip {
                    write_tip(store, tip)?;
                }
                store
                    .remove(STATE_NAMESPACE, "", LEGACY_STATE_KEY, false)
                    .map_err(|e| store_error("removing the version-1 state", e))?;
                tracing::info!(
                    blocks = state.blocks.len(),
                    "chain-sync state converted to one record per block"
                );
                Ok(state)
            }
            Err(e) if is_not_found(&e) => Ok(SyncState::default()),
            Err(e) => Err(store_error("reading the version-1 state", e)),
        },
        Err(e) => Err(store_error("reading the tip", e)),
    }
}

fn synced(block: &ChainBlock) -> SyncedBlock {
    SyncedBlock {
        height: block.height,
        real_hash: block.hash,
        ldk_hash: block.ldk_header.block_hash(),
        parent_ldk_hash: block.ldk_header.prev_blockhash,
    }
}

pub(crate) fn to_ldk_block(block: ChainBlock) -> Block {
    Block {
        header: block.ldk_header,
        txdata: block.transactions,
    }
}

#[cfg(test)]
mod tests;
