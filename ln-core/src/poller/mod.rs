//! The one chain poller, for every chain: follows a [`ChainSource`] block by block and feeds
//! `chain::Listen` implementations (ChannelManager, ChainMonitor, OutputSweeper, the wallet).
//! The node's chain loop drives it, calling [`ChainPoller::poll_once`] at every poll interval.
//!
//! Crash safety rests on one ordering rule: the poller persists its new position *before* it tells
//! the listeners. After a crash every listener is therefore at or behind the poller, never ahead,
//! and [`ChainPoller::catch_up_listener`] brings each one from its own best block (even one on a
//! branch that was reorged away meanwhile) to the poller's tip on restart.
//!
//! Reorgs are detected by a changed hash at a height we connected (or a new block whose parent is
//! not our tip). The poller then walks its best chain back to the highest block the node still
//! has, tells every listener `blocks_disconnected(fork point)`, and connects the new branch.
//! LDK is always given the header the `ChainSource` provides (`ChainBlock::ldk_header`), and the
//! poller checks that each header's `prev_blockhash` is the previous one's hash.

mod state;

use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::hashes::Hash;
use bitcoin::Block;
use lightning::chain::{BestBlock, Listen};
use lightning::util::persist::KVStoreSync;

use state::SyncState;
pub use state::SyncedBlock;

use crate::chain::{ChainBlock, ChainSource, ChainSourceError};

/// A consumer of connected and disconnected blocks.
pub type ChainListener = Arc<dyn Listen + Send + Sync>;

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
        })
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
        match self.listeners.lock() {
            Ok(mut listeners) => listeners.push(listener),
            Err(poisoned) => poisoned.into_inner().push(listener),
        }
    }

    /// Brings a listener from its own best block (e.g. a ChannelManager read from disk) to the
    /// poller's tip: disconnects a stale branch if needed, then connects the missing blocks.
    pub async fn catch_up_listener(
        &self,
        listener: &(dyn Listen + Send + Sync),
        listener_best: BestBlock,
    ) -> Result<u32, PollerError> {
        let (path, fork) = {
            let state = self.lock_state();
            let tip = state.tip_block().ok_or(PollerError::NotInitialized)?;
            let unknown = PollerError::UnknownListenerBlock {
                hash: listener_best.block_hash,
                height: listener_best.height,
            };
            let mut cursor = state
                .by_ldk_hash(&listener_best.block_hash)
                .ok_or(unknown)?;
            // Walk the listener's branch back until it meets our best chain.
            let best = state.best_chain_descending();
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
            let path: Vec<SyncedBlock> = best
                .into_iter()
                .rev()
                .filter(|b| b.height > cursor.height && b.height <= tip.height)
                .collect();
            (path, disconnect_to)
        };
        if let Some(fork) = fork {
            tracing::info!(
                fork_height = fork.height,
                "disconnecting a listener's stale branch"
            );
            listener.blocks_disconnected(BestBlock::new(fork.ldk_hash, fork.height));
        }
        for synced in &path {
            let block = self.source.block_by_hash(&synced.real_hash).await?;
            listener.block_connected(&to_ldk_block(block), synced.height);
        }
        Ok(u32::try_from(path.len()).unwrap_or(u32::MAX))
    }

    /// Brings every listener to the node's current tip, handling reorgs on the way.
    pub async fn poll_once(&self) -> Result<PollOutcome, PollerError> {
        let mut outcome = PollOutcome::default();
        'restart: loop {
            let our_tip = self.tip().ok_or(PollerError::NotInitialized)?;
            let node_tip = self.source.best_tip().await?;
            if node_tip.hash == our_tip.real_hash {
                return Ok(outcome);
            }
            if self.source.block_hash_at_height(our_tip.height).await? != Some(our_tip.real_hash) {
                outcome.disconnected += self.disconnect_to_fork_point(our_tip).await?;
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

    async fn disconnect_to_fork_point(&self, our_tip: SyncedBlock) -> Result<u32, PollerError> {
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
        match self.listeners.lock() {
            Ok(listeners) => listeners.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, SyncState> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
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
