//! Gossip verification: LDK's `UtxoLookup` answered from the [`ChainSource`].
//!
//! A `channel_announcement` is only accepted if its short channel id points at an unspent output
//! on our chain. LDK asks synchronously; the lookup needs RPC calls, so it answers
//! `UtxoResult::Async` and resolves the future from a tokio task with a tight timeout (LDK pauses
//! gossip processing while checks are pending). The `P2PGossipSync` that owns this lookup is
//! handed back with [`GossipVerifier::set_gossip_sync`] once it exists, so validated messages are
//! forwarded to peers, and the peer manager's event processing with
//! [`GossipVerifier::set_process_events`], so they are forwarded at once.
//!
//! "At once" matters: between the graph accepting a channel and the announcement leaving for our
//! peers, a `channel_update` for that channel arriving from its other end is forwarded straight
//! away, reaches our peers before the announcement, and is dropped by them. LDK rebroadcasts
//! only every 6 blocks, so that direction of the channel stayed unknown to them for up to an
//! hour. LDK's `UtxoFuture::resolve` asks its callers to process events right after it.

use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bitcoin::constants::ChainHash;
use bitcoin::TxOut;
use lightning::routing::gossip::{NetworkGraph, P2PGossipSync};
use lightning::routing::utxo::{UtxoFuture, UtxoLookup, UtxoLookupError, UtxoResult};
use lightning::util::logger::Logger;
use lightning::util::scid_utils::{block_from_scid, tx_index_from_scid, vout_from_scid};

use crate::chain::{ChainSource, ShortChannelIdOutput};

/// How long a look-up (with retries) may take before the announcement is treated as unverifiable.
const LOOKUP_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between retries after a transient chain-node failure.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The gossip sync type this verifier serves.
pub type GossipSync<L> = P2PGossipSync<Arc<NetworkGraph<L>>, Arc<GossipVerifier<L>>, L>;

/// LDK's `UtxoLookup` over a [`ChainSource`].
pub struct GossipVerifier<L: Deref + Clone + Send + Sync + 'static>
where
    L::Target: Logger,
{
    source: Arc<dyn ChainSource>,
    runtime: tokio::runtime::Handle,
    graph: Arc<NetworkGraph<L>>,
    /// Weak: the gossip sync owns this verifier, so a strong reference back would keep both
    /// alive forever.
    gossip_sync: OnceLock<Weak<GossipSync<L>>>,
    /// Runs the peer manager's event processing, so that what a resolved look-up queued (the
    /// announcement, its updates) goes out to peers now rather than at the next wake-up.
    process_events: OnceLock<ProcessEvents>,
    /// When a channel announcement last entered the graph: its channel updates follow, so a
    /// payer that finds no route then may find one a moment later.
    last_verified: Arc<Mutex<Option<Instant>>>,
}

/// A hook that runs the peer manager's `process_events`.
type ProcessEvents = Arc<dyn Fn() + Send + Sync>;

impl<L: Deref + Clone + Send + Sync + 'static> GossipVerifier<L>
where
    L::Target: Logger,
{
    /// A verifier that checks announcements for `graph` on `runtime`.
    pub fn new(
        source: Arc<dyn ChainSource>,
        runtime: tokio::runtime::Handle,
        graph: Arc<NetworkGraph<L>>,
    ) -> Self {
        Self {
            source,
            runtime,
            graph,
            gossip_sync: OnceLock::new(),
            process_events: OnceLock::new(),
            last_verified: Arc::default(),
        }
    }

    /// When a channel announcement last passed verification (and entered the graph).
    pub fn last_announcement_verified_at(&self) -> Option<Instant> {
        *self
            .last_verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Completes the wiring once the gossip sync that owns this verifier exists. Before that, or
    /// once the gossip sync is dropped, verified messages update the graph but are not forwarded.
    pub fn set_gossip_sync(&self, gossip_sync: &Arc<GossipSync<L>>) {
        let _ = self.gossip_sync.set(Arc::downgrade(gossip_sync));
    }

    /// Completes the wiring once the peer manager exists: `process_events` is run after every
    /// look-up resolves. It should hold the peer manager weakly, since the peer manager owns the
    /// gossip sync that owns this verifier.
    pub fn set_process_events(&self, process_events: impl Fn() + Send + Sync + 'static) {
        let _ = self.process_events.set(Arc::new(process_events));
    }
}

/// The answer for one short channel id: the funding output if it is unspent on our chain.
pub async fn verify_short_channel_id(
    source: &dyn ChainSource,
    chain_hash: &ChainHash,
    short_channel_id: u64,
) -> Result<TxOut, UtxoLookupError> {
    if *chain_hash != source.params().chain_hash {
        return Err(UtxoLookupError::UnknownChain);
    }
    // A busy node (HTTP 503, a slow answer) must not make us drop a valid announcement for good:
    // peers send it only once. Transient failures are retried until the deadline.
    let deadline = tokio::time::Instant::now() + LOOKUP_DEADLINE;
    loop {
        let lookup = source.output_by_short_channel_id(
            block_from_scid(short_channel_id),
            tx_index_from_scid(short_channel_id),
            vout_from_scid(short_channel_id),
        );
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, lookup).await {
            Ok(Ok(ShortChannelIdOutput::Unspent(output))) => return Ok(output),
            Ok(Ok(ShortChannelIdOutput::Spent | ShortChannelIdOutput::NotFound)) => {
                return Err(UtxoLookupError::UnknownTx)
            }
            Ok(Err(error)) if error.is_transient() && remaining > RETRY_PAUSE => {
                tracing::debug!(short_channel_id, %error, "gossip look-up failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Ok(Err(error)) => {
                tracing::info!(short_channel_id, %error, "gossip look-up failed; announcement dropped");
                return Err(UtxoLookupError::UnknownTx);
            }
            Err(_elapsed) => {
                tracing::info!(
                    short_channel_id,
                    "gossip look-up timed out; announcement dropped"
                );
                return Err(UtxoLookupError::UnknownTx);
            }
        }
    }
}

impl<L: Deref + Clone + Send + Sync + 'static> UtxoLookup for GossipVerifier<L>
where
    L::Target: Logger,
{
    fn get_utxo(&self, chain_hash: &ChainHash, short_channel_id: u64) -> UtxoResult {
        let future = UtxoFuture::new();
        let pending = future.clone();
        let source = Arc::clone(&self.source);
        let graph = Arc::clone(&self.graph);
        let gossip_sync = self.gossip_sync.get().and_then(Weak::upgrade);
        let process_events = self.process_events.get().cloned();
        let chain_hash = *chain_hash;
        let last_verified = Arc::clone(&self.last_verified);
        self.runtime.spawn(async move {
            let result =
                verify_short_channel_id(source.as_ref(), &chain_hash, short_channel_id).await;
            if result.is_ok() {
                *last_verified
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
            }
            match gossip_sync {
                Some(gossip_sync) => pending.resolve(&graph, gossip_sync, result),
                None => pending.resolve_without_forwarding(&graph, result),
            }
            if let Some(process_events) = process_events {
                process_events();
            }
        });
        UtxoResult::Async(future)
    }
}
