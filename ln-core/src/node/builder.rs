//! [`NodeBuilder`]: reads (or creates) every piece of a node from its data directory, brings them
//! all to the chain tip, and starts the node's tasks.
//!
//! Start-up order follows LDK's rules: read the monitors, then the channel manager; bring both
//! (and the sweeper and wallet) to the poller's tip; only then hand the monitors to the
//! `ChainMonitor` and start following the chain. Nothing runs before every listener is at the tip.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::channel_signer::NodeChannelSigner;
use bitcoin::constants::ChainHash;
use bitcoin::BlockHash;
use lightning::chain::channelmonitor::ChannelMonitor;
use lightning::chain::{BestBlock, Confirm, Filter, Listen};
use lightning::events::bump_transaction::sync::{BumpTransactionEventHandlerSync, WalletSync};
use lightning::ln::channelmanager::{ChainParameters, ChannelManagerReadArgs};
use lightning::ln::msgs::ChannelMessageHandler;
use lightning::ln::peer_handler::{IgnoringMessageHandler, MessageHandler};
use lightning::routing::scoring::{
    ProbabilisticScorer, ProbabilisticScoringDecayParameters, ProbabilisticScoringFeeParameters,
};
use lightning::sign::{EntropySource, NodeSigner};
use lightning::util::persist::{
    KVStoreSync, MonitorUpdatingPersister, CHANNEL_MANAGER_PERSISTENCE_KEY,
    CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
    NETWORK_GRAPH_PERSISTENCE_KEY, NETWORK_GRAPH_PERSISTENCE_PRIMARY_NAMESPACE,
    NETWORK_GRAPH_PERSISTENCE_SECONDARY_NAMESPACE, OUTPUT_SWEEPER_PERSISTENCE_KEY,
    OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE, OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
    SCORER_PERSISTENCE_KEY, SCORER_PERSISTENCE_PRIMARY_NAMESPACE,
    SCORER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::{ReadableArgs, Writeable};
use tokio::sync::watch;

use super::keys::NodeKeys;
use super::types::*;
use super::{Node, NodeInner, Notifications};
use crate::chain::{ChainParams, ChainSource};
use crate::gossip_verifier::GossipVerifier;
use crate::ldk_adapters::{ChainBroadcaster, ChainFeeEstimator};
use crate::logging::TracingLogger;
use crate::node::monitor_writer::{
    CrashPoint, LdkStore, MonitorWriter, ReadWholeMonitor, FULL_MONITOR_EVERY,
};
use crate::node::policy::ChannelPolicy;
use crate::node::records::Records;
use crate::poller::{ChainPoller, PollerError, WatchList, WatchingListener};
use crate::seed::{self, SeedOrigin};
use crate::store::SledStore;
use crate::wallet::OnchainWallet;

/// Why a node could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The data directory could not be created or used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The store could not be opened (another node may be using this data directory).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The seed could not be read or created.
    #[error(transparent)]
    Seed(#[from] crate::seed::SeedError),
    /// The wallet could not be loaded.
    #[error("wallet: {0}")]
    Wallet(#[from] crate::wallet::WalletError),
    /// Stored LDK state could not be read.
    #[error("reading stored {what}: {reason}")]
    ReadState {
        /// Which object.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The stored state belongs to another chain.
    #[error("the stored {what} is for chain {found}, but this node runs {expected}; use the data directory of that chain")]
    WrongChain {
        /// Which object.
        what: &'static str,
        /// This node's chain hash.
        expected: ChainHash,
        /// The stored one.
        found: ChainHash,
    },
    /// The chain could not be followed.
    #[error("chain sync: {0}")]
    Chain(#[from] PollerError),
    /// The P2P listener could not be bound.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds a [`Node`] from a data directory, its chain's [`ChainParams`] and a [`ChainSource`].
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    data_dir: PathBuf,
    params: ChainParams,
    listen_addresses: Vec<SocketAddr>,
    announced_addresses: Vec<SocketAddr>,
    alias: String,
    poll_interval: Duration,
    wallet_rescan_from_height: u32,
    /// The store, once opened by [`Self::store`].
    store: Option<SledStore>,
    crash_point: Option<CrashPoint>,
    slow_disk: Option<Duration>,
    full_disk_flag: Option<PathBuf>,
    fee_spike_file: Option<PathBuf>,
    max_inbound_htlc_in_flight_percent: u8,
    max_accepted_htlcs: u16,
    anchor_reserve_per_channel_sat: Option<u64>,
    intercept_timeout: Option<Duration>,
    htlc_batching: super::HtlcBatching,
}

impl NodeBuilder {
    /// A builder for the node in `data_dir` on `params`' chain. By default it does not listen,
    /// polls the chain every 2 s and has no alias.
    pub fn new(data_dir: impl Into<PathBuf>, params: ChainParams) -> Self {
        Self {
            data_dir: data_dir.into(),
            params,
            listen_addresses: Vec::new(),
            announced_addresses: Vec::new(),
            alias: String::new(),
            poll_interval: Duration::from_secs(2),
            wallet_rescan_from_height: 0,
            store: None,
            crash_point: None,
            slow_disk: None,
            full_disk_flag: None,
            fee_spike_file: None,
            max_inbound_htlc_in_flight_percent: 100,
            max_accepted_htlcs: super::policy::MAX_ACCEPTED_HTLCS,
            anchor_reserve_per_channel_sat: None,
            intercept_timeout: Some(super::DEFAULT_INTERCEPT_TIMEOUT),
            htlc_batching: super::HtlcBatching::None,
        }
    }

    /// When received HTLCs are forwarded or offered to the payee (default
    /// [`HtlcBatching::None`](super::HtlcBatching::None): at once).
    pub fn htlc_batching(mut self, batching: super::HtlcBatching) -> Self {
        self.htlc_batching = batching;
        self
    }

    /// How long an intercepted HTLC may wait for a decision before it is failed back (default
    /// [`DEFAULT_INTERCEPT_TIMEOUT`](super::DEFAULT_INTERCEPT_TIMEOUT), 120 s). `None`: no time
    /// limit, only LDK's own fail-back 39 blocks before the CLTV expiry of the HTLC it would
    /// send on.
    pub fn intercept_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.intercept_timeout = timeout;
        self
    }

    /// How much of a channel a peer may have in HTLCs in flight towards us, in percent (1 to
    /// 100; default 100, as LND and Core Lightning; LDK's and LDK Node's default is 10). Applies
    /// to channels opened from now on.
    pub fn max_inbound_htlc_in_flight_percent(mut self, percent: u8) -> Self {
        self.max_inbound_htlc_in_flight_percent = percent.clamp(1, 100);
        self
    }

    /// How many HTLCs a peer may have in flight towards us at once, 1 to 483 (default 483,
    /// as LND; LDK's default is 50). Applies to channels opened from now on.
    pub fn max_accepted_htlcs(mut self, htlcs: u16) -> Self {
        self.max_accepted_htlcs = htlcs.clamp(1, super::policy::MAX_ACCEPTED_HTLCS);
        self
    }

    /// On-chain coins the wallet keeps per anchor channel (for at most ten) to pay the fee bumps
    /// of force closes (default
    /// [`DEFAULT_ANCHOR_RESERVE_PER_CHANNEL_SAT`](super::policy::DEFAULT_ANCHOR_RESERVE_PER_CHANNEL_SAT)
    /// where channels have anchors, as LND). 0 keeps nothing: a force close whose commitment
    /// pays too little then waits, unbumped, until the wallet has a confirmed coin.
    pub fn anchor_reserve_per_channel_sat(mut self, sat: u64) -> Self {
        self.anchor_reserve_per_channel_sat = Some(sat);
        self
    }

    /// Makes every flush of the node's store wait `delay` first, one at a time: a slow disk, for
    /// tests that the node keeps answering while its disk is slow. Never set it in normal
    /// operation. Takes effect when the store is opened.
    pub fn slow_disk(mut self, delay: Option<Duration>) -> Self {
        self.slow_disk = delay;
        self
    }

    /// Makes every store flush fail, as on a full disk, while the file `flag` exists: for tests
    /// of disk trouble. Never set it in normal operation. Takes effect when the store is opened.
    pub fn full_disk_flag(mut self, flag: Option<PathBuf>) -> Self {
        self.full_disk_flag = flag;
        self
    }

    /// Multiplies the chain node's fee estimates by the whole number in the file `file` while it
    /// exists: for tests of fee spikes. Never set it in normal operation.
    pub fn fee_spike_file(mut self, file: Option<PathBuf>) -> Self {
        self.fee_spike_file = file;
        self
    }

    /// Makes the node abort itself at `point`, as `kill -9` would there: for tests that must
    /// crash at an exact moment of monitor persistence. Never set it in normal operation.
    pub fn crash_point(mut self, point: Option<CrashPoint>) -> Self {
        self.crash_point = point;
        self
    }

    /// Accepts Lightning peers on these addresses (port 0 picks a free port).
    pub fn listen_on(mut self, addresses: Vec<SocketAddr>) -> Self {
        self.listen_addresses = addresses;
        self
    }

    /// Addresses announced to the network in our node announcement.
    pub fn announce_addresses(mut self, addresses: Vec<SocketAddr>) -> Self {
        self.announced_addresses = addresses;
        self
    }

    /// The node's alias (at most 32 bytes are announced).
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = alias.into();
        self
    }

    /// How often the chain node is asked for new blocks.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Where a wallet restored from an existing seed starts scanning the chain for its funds
    /// (default: the genesis block). A node whose seed is brand new never scans.
    pub fn wallet_rescan_from_height(mut self, height: u32) -> Self {
        self.wallet_rescan_from_height = height;
        self
    }

    /// The node's store (`<data_dir>/store`), opened now and kept for [`Self::build`]. A
    /// [`ChainSource`] that keeps state of its own in the node's store (Qtum's synthetic header
    /// map) is given this before the node is built: sled allows one open store per directory.
    pub fn store(&mut self) -> Result<SledStore, BuildError> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        create_private_dir(&self.data_dir)?;
        let mut store = SledStore::open(&self.data_dir.join("store"))?;
        if let Some(delay) = self.slow_disk {
            store = store.with_slow_disk(delay);
        }
        if let Some(flag) = self.full_disk_flag.clone() {
            store = store.with_full_disk_flag(flag);
        }
        self.store = Some(store.clone());
        Ok(store)
    }

    /// Builds the node and starts it: chain following, the P2P listener and LDK's background
    /// processing. Must be called inside a tokio runtime.
    pub async fn build(mut self, source: Arc<dyn ChainSource>) -> Result<Node, BuildError> {
        let params = self.params.clone();
        let store = Arc::new(self.store()?);
        let (node_seed, seed_origin) = seed::load_or_create(&self.data_dir.join("seed"))?;
        if seed_origin == SeedOrigin::Created {
            tracing::warn!(path = %self.data_dir.join("seed").display(), "created a new node seed; back up this file: it is the only way to recover the node's on-chain funds");
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();

        let logger: Logger = Arc::new(TracingLogger);
        let runtime = tokio::runtime::Handle::current();
        let chain_policy = ChannelPolicy::for_chain(&params);
        let policy = ChannelPolicy {
            max_inbound_htlc_in_flight_percent: self.max_inbound_htlc_in_flight_percent,
            max_accepted_htlcs: self.max_accepted_htlcs,
            anchor_reserve_per_channel_sat: self
                .anchor_reserve_per_channel_sat
                .unwrap_or(chain_policy.anchor_reserve_per_channel_sat),
            ..chain_policy
        };

        let fee_estimator = Arc::new(
            ChainFeeEstimator::new(Arc::clone(&source))
                .with_fee_spike_file(self.fee_spike_file.clone()),
        );
        if let Err(error) = fee_estimator.refresh().await {
            tracing::warn!(%error, "no fee estimates yet; using the chain's fallback feerates");
        }
        let broadcaster = Arc::new(ChainBroadcaster::new(Arc::clone(&source), runtime.clone()));

        let kv: Arc<dyn KVStoreSync + Send + Sync> = store.clone();
        // What LDK watches on chain; lets a catch-up skip the blocks that hold none of it.
        let watch_list = Arc::new(WatchList::default());
        let poller = Arc::new(
            ChainPoller::load(Arc::clone(&source), kv)?.with_watch_list(watch_list.clone()),
        );
        let poller_tip = poller.initialize().await?;

        let wallet = Arc::new(OnchainWallet::load_or_create(&node_seed, &params, &store)?);
        let keys = Arc::new(NodeKeys::new(node_seed.keys_manager(now), wallet.clone()));

        // The monitor writer stores updates between whole monitors as LDK's
        // `MonitorUpdatingPersister` does; its reader applies them.
        let monitor_reader = Arc::new(MonitorUpdatingPersister::new(
            store.clone(),
            logger.clone(),
            FULL_MONITOR_EVERY,
            keys.clone(),
            keys.clone(),
            broadcaster.clone(),
            fee_estimator.clone(),
        ));
        let mut monitors = monitor_reader
            .read_all_channel_monitors_with_updates()
            .map_err(|e| read_error("channel monitors", e))?;
        for (_, monitor) in &monitors {
            // With LDK's own debug lines ("Replaying ChannelMonitorUpdate …"), this says which
            // updates a restart replays onto which monitor.
            tracing::debug!(
                channel_id = %monitor.channel_id(),
                latest_update_id = monitor.get_latest_update_id(),
                "channel monitor loaded"
            );
            // Its outputs go on the watch list before any catch-up: the list decides which
            // blocks of a catch-up concern LDK.
            monitor.load_outputs_to_watch(&watch_list, &logger);
        }

        let graph = Arc::new(read_graph(&store, &params, &logger)?);
        let scorer = Arc::new(RwLock::new(read_scorer(&store, &graph, &logger)?));
        let router = Arc::new(Router::new(
            graph.clone(),
            logger.clone(),
            keys.clone(),
            scorer.clone(),
            ProbabilisticScoringFeeParameters::default(),
        ));
        let message_router = Arc::new(MessageRouter::new(graph.clone(), keys.clone()));

        let read_whole_monitor: ReadWholeMonitor = Box::new(move |key| {
            let (_, monitor) = monitor_reader.read_channel_monitor_with_updates(key)?;
            Ok(monitor.encode())
        });
        let monitor_writer =
            MonitorWriter::start(store.clone(), read_whole_monitor, self.crash_point).map_err(
                |e| read_error("monitor writer", format!("cannot start its thread: {e}")),
            )?;
        let ldk_store = Arc::new(LdkStore::new(store.clone(), monitor_writer.clone()));
        let chain_monitor: Arc<ChainMonitor> = Arc::new(ChainMonitor::new(
            Some(watch_list.clone() as Arc<dyn Filter + Send + Sync>),
            broadcaster.clone(),
            logger.clone(),
            fee_estimator.clone(),
            monitor_writer.clone(),
            keys.clone(),
            keys.get_peer_storage_key(),
        ));

        // The manager's view of the monitors: LDK can pass a monitor update before the one it
        // follows at start-up, which would panic at every start (see `ordered_updates`).
        let ordered_chain_monitor = Arc::new(OrderedChainMonitor::new(chain_monitor.clone()));

        let config = policy.user_config();
        let parts = ManagerParts {
            keys: &keys,
            fee_estimator: &fee_estimator,
            chain_monitor: &ordered_chain_monitor,
            broadcaster: &broadcaster,
            router: &router,
            message_router: &message_router,
            logger: &logger,
        };
        let (manager_best, channel_manager) = match read_or_none(
            store.as_ref(),
            CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
            CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
            CHANNEL_MANAGER_PERSISTENCE_KEY,
        )? {
            Some(bytes) => {
                let monitor_refs = monitors.iter().map(|(_, m)| m).collect();
                let (best_hash, manager) = parts.read(&bytes, config.clone(), monitor_refs)?;
                let height = manager.current_best_block().height;
                (BestBlock::new(best_hash, height), manager)
            }
            None => (
                poller_tip,
                parts.create(&params, poller_tip, config.clone())?,
            ),
        };
        let found = channel_manager
            .get_chain_hashes()
            .and_then(|hashes| hashes.first().copied());
        if found != Some(params.chain_hash) {
            return Err(BuildError::WrongChain {
                what: "channel manager",
                expected: params.chain_hash,
                found: found.unwrap_or(ChainHash::from([0; 32])),
            });
        }
        let channel_manager = Arc::new(channel_manager);
        monitor_writer.attach(&channel_manager, &chain_monitor);

        let sweeper = Arc::new(read_or_create_sweeper(
            &ldk_store,
            &watch_list,
            poller_tip,
            &parts,
            &wallet,
        )?);

        // Bring every listener to the poller's tip before anything runs; the monitors together,
        // so that a block is read once for all of them.
        let monitor_catch_ups: Vec<(MonitorCatchUp, BestBlock)> = monitors
            .iter()
            .map(|(monitor_best_hash, monitor)| {
                let catch_up = MonitorCatchUp {
                    monitor,
                    broadcaster: &broadcaster,
                    fee_estimator: &fee_estimator,
                    logger: &logger,
                };
                let best = BestBlock::new(*monitor_best_hash, monitor.current_best_block().height);
                (catch_up, best)
            })
            .collect();
        let listeners: Vec<(&dyn WatchingListener, BestBlock)> = monitor_catch_ups
            .iter()
            .map(|(catch_up, best)| (catch_up as &dyn WatchingListener, *best))
            .collect();
        poller.catch_up_watching_listeners(&listeners).await?;
        drop(listeners);
        drop(monitor_catch_ups);
        poller
            .catch_up_watching_listener(channel_manager.as_ref(), manager_best)
            .await?;
        poller
            .catch_up_watching_listener(sweeper.as_ref(), sweeper.current_best_block())
            .await?;
        sync_wallet(
            &poller,
            source.as_ref(),
            &wallet,
            seed_origin,
            self.wallet_rescan_from_height,
        )
        .await?;

        for (_, monitor) in monitors.drain(..) {
            let channel_id = monitor.channel_id();
            let latest_update_id = monitor.get_latest_update_id();
            if chain_monitor
                .load_existing_monitor(channel_id, monitor)
                .is_err()
            {
                return Err(BuildError::ReadState {
                    what: "channel monitors",
                    reason: format!("monitor of channel {channel_id} could not be loaded"),
                });
            }
            // Every monitor read from the store is durable. A crash after a monitor write and
            // before LDK heard of it leaves the manager waiting for that write: in flight (LDK
            // sees it applied and completes it) or, for a channel's first monitor, not tracked
            // at all (LDK would wait forever). Reporting it done completes both; LDK ignores it
            // for a channel that waits for nothing or for updates the monitor lacks.
            let _ = chain_monitor.channel_monitor_updated(channel_id, latest_update_id);
        }
        poller.add_watching_listener(channel_manager.clone());
        poller.add_watching_listener(chain_monitor.clone());
        poller.add_watching_listener(sweeper.clone());
        poller.add_listener(wallet.clone());

        let verifier = Arc::new(GossipVerifier::new(
            Arc::clone(&source),
            runtime.clone(),
            graph.clone(),
        ));
        let gossip_sync = Arc::new(GossipSync::new(
            graph.clone(),
            Some(verifier.clone()),
            logger.clone(),
        ));
        verifier.set_gossip_sync(&gossip_sync);
        let gossip_handler = Arc::new(GossipHandler::new(
            gossip_sync.clone(),
            graph.clone(),
            params.chain_hash,
        ));

        let onion_messenger: Arc<OnionMessenger> = Arc::new(OnionMessenger::new(
            keys.clone(),
            keys.clone(),
            logger.clone(),
            channel_manager.clone(),
            message_router.clone(),
            channel_manager.clone(),
            channel_manager.clone(),
            IgnoringMessageHandler {},
            IgnoringMessageHandler {},
        ));
        let ephemeral_bytes = keys.get_secure_random_bytes();
        let peer_manager: Arc<PeerManager> = Arc::new(PeerManager::new(
            MessageHandler {
                chan_handler: channel_manager.clone(),
                route_handler: gossip_handler,
                onion_message_handler: onion_messenger.clone(),
                custom_message_handler: IgnoringMessageHandler {},
                send_only_message_handler: chain_monitor.clone(),
            },
            u32::try_from(now.as_secs()).unwrap_or(u32::MAX),
            &ephemeral_bytes,
            logger.clone(),
            keys.clone(),
        ));
        // Sends what LDK queued for peers while the peer manager exists. The gossip verifier
        // calls it when a lookup ends; the monitor writer after each batch, which reports the
        // completed updates to the channels: their messages go out at once (from the writer's
        // thread, or its sender thread when the next batch is waiting), and their HTLCs are
        // queued for the HTLC pump.
        let process_events = {
            let weak_peer_manager = Arc::downgrade(&peer_manager);
            move || {
                if let Some(peer_manager) = weak_peer_manager.upgrade() {
                    peer_manager.process_events();
                }
            }
        };
        verifier.set_process_events(process_events.clone());
        monitor_writer.send_after_each_batch(process_events);

        let wallet_source = Arc::new(WalletSync::new(wallet.clone(), logger.clone()));
        let bump_handler: Arc<BumpHandler> = Arc::new(BumpTransactionEventHandlerSync::new(
            broadcaster.clone(),
            wallet_source,
            keys.clone(),
            logger.clone(),
        ));

        let mut listeners = Vec::new();
        for address in &self.listen_addresses {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|source| BuildError::Listen {
                    address: *address,
                    source,
                })?;
            listeners.push(listener);
        }
        let bound_addresses = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect::<Vec<_>>();
        let node_id = keys
            .get_node_id(lightning::sign::Recipient::Node)
            .map_err(|()| read_error("node key", "the keys manager has no node key"))?;

        let (stop_sender, _) = watch::channel(false);
        let inner = Arc::new(NodeInner {
            node_id,
            seed_path: self.data_dir.join("seed"),
            params,
            policy,
            alias: self.alias,
            // 0.0.0.0 is where we listen, not an address a peer can reach.
            announced_addresses: if self.announced_addresses.is_empty() {
                bound_addresses
                    .iter()
                    .filter(|a| !a.ip().is_unspecified())
                    .copied()
                    .collect()
            } else {
                self.announced_addresses
            },
            bound_addresses,
            records: Records::open(&store)?,
            known_peers: store.namespace("peers")?,
            monitor_writer,
            ldk_store,
            keys,
            source,
            poller,
            fee_estimator,
            broadcaster,
            chain_monitor,
            channel_manager,
            graph,
            router,
            gossip_verifier: verifier,
            started_at: std::time::Instant::now(),
            gossip_sync,
            scorer,
            onion_messenger,
            peer_manager,
            sweeper,
            wallet,
            bump_handler,
            logger,
            notifications: Notifications::default(),
            intercepts: super::intercepts::Intercepts::new(self.intercept_timeout),
            payment_starts: std::sync::Mutex::new(()),
            stop_sender,
            tasks: std::sync::Mutex::new(Vec::new()),
            synced_to_chain: std::sync::atomic::AtomicBool::new(false),
            poll_interval: self.poll_interval,
            htlc_batching: self.htlc_batching,
            send_queue: super::send_queue::SendQueue::new(
                super::send_queue::DEFAULT_SEND_QUEUE_LIMIT,
            ),
        });
        let node = Node { inner };
        node.start(listeners);
        Ok(node)
    }
}

/// Creates `path` (and parents) with owner-only permissions.
fn create_private_dir(path: &Path) -> Result<(), BuildError> {
    let error = |source| BuildError::DataDir {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path).map_err(error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(error)?;
    }
    Ok(())
}

fn read_error(what: &'static str, reason: impl std::fmt::Display) -> BuildError {
    BuildError::ReadState {
        what,
        reason: reason.to_string(),
    }
}

fn read_or_none(
    store: &impl KVStoreSync,
    primary: &str,
    secondary: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, BuildError> {
    match KVStoreSync::read(store, primary, secondary, key) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == lightning::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error("store entry", format!("{primary}/{key}: {e}"))),
    }
}

/// Offset of the chain hash in a serialized `ChannelManager` or `NetworkGraph`: right after the
/// two version bytes (proved by `research/ldk-probe`).
const CHAIN_HASH_RANGE: std::ops::Range<usize> = 2..34;

/// LDK derives the chain hash from `bitcoin::Network` only. When our chain's hash differs from
/// the one LDK picked, serialize the fresh object, put our hash in its place and read it back;
/// from then on LDK uses (and persists) our hash in every message.
fn patch_chain_hash(bytes: &mut [u8], chain_hash: &ChainHash) -> Result<(), BuildError> {
    let slot = bytes
        .get_mut(CHAIN_HASH_RANGE)
        .ok_or_else(|| read_error("serialized LDK object", "shorter than its header"))?;
    slot.copy_from_slice(chain_hash.as_bytes());
    Ok(())
}

/// Everything a `ChannelManager` is built from besides its configuration and monitors, for the
/// three ways the node gets one: read from the store, created, or created and re-read with our
/// chain hash.
struct ManagerParts<'a> {
    keys: &'a Arc<NodeKeys>,
    fee_estimator: &'a Arc<ChainFeeEstimator>,
    chain_monitor: &'a Arc<OrderedChainMonitor>,
    broadcaster: &'a Arc<ChainBroadcaster>,
    router: &'a Arc<Router>,
    message_router: &'a Arc<MessageRouter>,
    logger: &'a Logger,
}

impl ManagerParts<'_> {
    /// Reads a serialized manager; returns it with the hash of its best block.
    fn read(
        &self,
        bytes: &[u8],
        config: lightning::util::config::UserConfig,
        monitors: Vec<&ChannelMonitor<NodeChannelSigner>>,
    ) -> Result<(BlockHash, ChannelManager), BuildError> {
        let read_args = ChannelManagerReadArgs::new(
            self.keys.clone(),
            self.keys.clone(),
            self.keys.clone(),
            self.fee_estimator.clone(),
            self.chain_monitor.clone(),
            self.broadcaster.clone(),
            self.router.clone(),
            self.message_router.clone(),
            self.logger.clone(),
            config,
            monitors,
        );
        <(BlockHash, ChannelManager)>::read(&mut lightning::io::Cursor::new(bytes), read_args)
            .map_err(|e| read_error("channel manager", e))
    }

    /// A new manager at `best_block` carrying `params`' chain hash.
    fn create(
        &self,
        params: &ChainParams,
        best_block: BestBlock,
        config: lightning::util::config::UserConfig,
    ) -> Result<ChannelManager, BuildError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let manager = ChannelManager::new(
            self.fee_estimator.clone(),
            self.chain_monitor.clone(),
            self.broadcaster.clone(),
            self.router.clone(),
            self.message_router.clone(),
            self.logger.clone(),
            self.keys.clone(),
            self.keys.clone(),
            self.keys.clone(),
            config.clone(),
            ChainParameters {
                network: params.ldk_network,
                best_block,
            },
            u32::try_from(now.as_secs()).unwrap_or(u32::MAX),
        );
        if ChainHash::using_genesis_block(params.ldk_network) == params.chain_hash {
            return Ok(manager);
        }
        let mut bytes = manager.encode();
        drop(manager);
        patch_chain_hash(&mut bytes, &params.chain_hash)?;
        let (_, manager) = self.read(&bytes, config, Vec::new())?;
        Ok(manager)
    }
}

fn read_graph(
    store: &SledStore,
    params: &ChainParams,
    logger: &Logger,
) -> Result<NetworkGraph, BuildError> {
    let stored = read_or_none(
        store,
        NETWORK_GRAPH_PERSISTENCE_PRIMARY_NAMESPACE,
        NETWORK_GRAPH_PERSISTENCE_SECONDARY_NAMESPACE,
        NETWORK_GRAPH_PERSISTENCE_KEY,
    )?;
    let graph = match stored {
        Some(bytes) => <NetworkGraph as ReadableArgs<Logger>>::read(
            &mut lightning::io::Cursor::new(&bytes),
            logger.clone(),
        )
        .map_err(|e| read_error("network graph", format!("{e:?}")))?,
        None => {
            let fresh = NetworkGraph::new(params.ldk_network, logger.clone());
            if fresh.get_chain_hash() == params.chain_hash {
                fresh
            } else {
                let mut bytes = fresh.encode();
                patch_chain_hash(&mut bytes, &params.chain_hash)?;
                <NetworkGraph as ReadableArgs<Logger>>::read(
                    &mut lightning::io::Cursor::new(&bytes),
                    logger.clone(),
                )
                .map_err(|e| read_error("network graph", format!("{e:?}")))?
            }
        }
    };
    if graph.get_chain_hash() != params.chain_hash {
        return Err(BuildError::WrongChain {
            what: "network graph",
            expected: params.chain_hash,
            found: graph.get_chain_hash(),
        });
    }
    Ok(graph)
}

fn read_scorer(
    store: &SledStore,
    graph: &Arc<NetworkGraph>,
    logger: &Logger,
) -> Result<Scorer, BuildError> {
    let decay = ProbabilisticScoringDecayParameters::default();
    let stored = read_or_none(
        store,
        SCORER_PERSISTENCE_PRIMARY_NAMESPACE,
        SCORER_PERSISTENCE_SECONDARY_NAMESPACE,
        SCORER_PERSISTENCE_KEY,
    )?;
    match stored {
        Some(bytes) => ProbabilisticScorer::read(
            &mut lightning::io::Cursor::new(&bytes),
            (decay, graph.clone(), logger.clone()),
        )
        .map_err(|e| read_error("scorer", format!("{e:?}"))),
        None => Ok(ProbabilisticScorer::new(
            decay,
            graph.clone(),
            logger.clone(),
        )),
    }
}

fn read_or_create_sweeper(
    store: &Arc<LdkStore>,
    watch_list: &Arc<WatchList>,
    best_block: BestBlock,
    parts: &ManagerParts<'_>,
    wallet: &Arc<OnchainWallet>,
) -> Result<OutputSweeper, BuildError> {
    let ManagerParts {
        broadcaster,
        fee_estimator,
        keys,
        logger,
        ..
    } = *parts;
    let stored = read_or_none(
        store.as_ref(),
        OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE,
        OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
        OUTPUT_SWEEPER_PERSISTENCE_KEY,
    )?;
    match stored {
        Some(bytes) => {
            let args = (
                broadcaster.clone(),
                fee_estimator.clone(),
                Some(watch_list.clone() as Arc<dyn Filter + Send + Sync>),
                keys.clone(),
                wallet.clone(),
                store.clone(),
                logger.clone(),
            );
            let (_, sweeper) =
                <(BestBlock, OutputSweeper)>::read(&mut lightning::io::Cursor::new(&bytes), args)
                    .map_err(|e| read_error("output sweeper", format!("{e:?}")))?;
            Ok(sweeper)
        }
        None => Ok(OutputSweeper::new(
            best_block,
            broadcaster.clone(),
            fee_estimator.clone(),
            Some(watch_list.clone() as Arc<dyn Filter + Send + Sync>),
            keys.clone(),
            wallet.clone(),
            store.clone(),
            logger.clone(),
        )),
    }
}

/// Brings the wallet to the poller's tip. A wallet that has never seen a block either belongs to
/// a brand-new seed (nothing to find: start at the tip) or to a restored one, which scans the
/// chain from the configured height so its funds are found from the seed alone.
async fn sync_wallet(
    poller: &ChainPoller,
    source: &dyn ChainSource,
    wallet: &OnchainWallet,
    seed_origin: SeedOrigin,
    rescan_from_height: u32,
) -> Result<(), BuildError> {
    let wallet_tip = wallet.best_block();
    if wallet_tip.height > 0 {
        poller.catch_up_listener(wallet, wallet_tip).await?;
        return Ok(());
    }
    let Some(tip) = poller.tip() else {
        return Ok(());
    };
    if seed_origin == SeedOrigin::Created {
        // A brand-new seed has nothing on chain: follow the chain from the poller's tip.
        wallet.start_at(BestBlock::new(tip.ldk_hash, tip.height))?;
        return Ok(());
    }
    let first = rescan_from_height.max(1);
    if first < tip.height {
        tracing::info!(
            from_height = first,
            to_height = tip.height,
            "scanning the chain for the wallet's funds"
        );
    }
    for height in first..=tip.height {
        let block = source
            .block_at_height(height)
            .await
            .map_err(PollerError::from)?
            .ok_or(PollerError::NotInitialized)?;
        if height % 1000 == 0 {
            tracing::info!(height, to_height = tip.height, "wallet scan progress");
        }
        wallet.block_connected(&crate::poller::to_ldk_block(block), height);
    }
    Ok(())
}

/// Feeds one `ChannelMonitor` blocks before it is handed to the `ChainMonitor`.
struct MonitorCatchUp<'a> {
    monitor: &'a ChannelMonitor<NodeChannelSigner>,
    broadcaster: &'a Arc<ChainBroadcaster>,
    fee_estimator: &'a Arc<ChainFeeEstimator>,
    logger: &'a Logger,
}

impl Listen for MonitorCatchUp<'_> {
    fn filtered_block_connected(
        &self,
        header: &bitcoin::block::Header,
        txdata: &lightning::chain::transaction::TransactionData,
        height: u32,
    ) {
        let _ = self.monitor.block_connected(
            header,
            txdata,
            height,
            &**self.broadcaster,
            &**self.fee_estimator,
            self.logger,
        );
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        self.monitor.blocks_disconnected(
            fork_point,
            &**self.broadcaster,
            &**self.fee_estimator,
            self.logger,
        );
    }
}

impl MonitorCatchUp<'_> {
    /// The monitor with what it needs to act on chain data, as LDK's own `Confirm` for a
    /// monitor takes it.
    fn with_chain_parts(
        &self,
    ) -> (
        &ChannelMonitor<NodeChannelSigner>,
        &ChainBroadcaster,
        &ChainFeeEstimator,
        &TracingLogger,
    ) {
        (
            self.monitor,
            self.broadcaster,
            self.fee_estimator,
            self.logger,
        )
    }
}

impl Confirm for MonitorCatchUp<'_> {
    fn transactions_confirmed(
        &self,
        header: &bitcoin::block::Header,
        txdata: &lightning::chain::transaction::TransactionData,
        height: u32,
    ) {
        self.with_chain_parts()
            .transactions_confirmed(header, txdata, height);
    }

    fn transaction_unconfirmed(&self, txid: &bitcoin::Txid) {
        self.with_chain_parts().transaction_unconfirmed(txid);
    }

    fn best_block_updated(&self, header: &bitcoin::block::Header, height: u32) {
        self.with_chain_parts().best_block_updated(header, height);
    }

    fn get_relevant_txids(&self) -> Vec<(bitcoin::Txid, u32, Option<bitcoin::BlockHash>)> {
        self.monitor.get_relevant_txids()
    }
}
