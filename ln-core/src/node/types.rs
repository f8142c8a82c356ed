//! The concrete LDK types one xln node is made of, named once so the rest of the crate can say
//! `ChannelManager` instead of a ten-parameter generic.

use std::sync::{Arc, RwLock};

use super::channel_signer::NodeChannelSigner;
use lightning::chain::Filter;
use lightning::events::bump_transaction::sync::{BumpTransactionEventHandlerSync, WalletSync};
use lightning::ln::peer_handler::IgnoringMessageHandler;
use lightning::onion_message::messenger::DefaultMessageRouter;
use lightning::routing::gossip::NetworkGraph as LdkNetworkGraph;
use lightning::routing::router::DefaultRouter;
use lightning::routing::scoring::{ProbabilisticScorer, ProbabilisticScoringFeeParameters};

use super::keys::NodeKeys;
use lightning::util::sweep::OutputSweeperSync;
use lightning_net_tokio::SocketDescriptor;

use super::monitor_writer::{LdkStore, MonitorWriter};
use crate::gossip_verifier::{GossipSync as VerifiedGossipSync, GossipVerifier};
use crate::ldk_adapters::{ChainBroadcaster, ChainFeeEstimator};
use crate::logging::TracingLogger;
use crate::wallet::OnchainWallet;

/// LDK's logger, routed to `tracing`.
pub(crate) type Logger = Arc<TracingLogger>;

/// The public channel graph learnt from gossip.
pub type NetworkGraph = LdkNetworkGraph<Logger>;

/// The chain-watching half of every channel: holds and persists the `ChannelMonitor`s.
pub type ChainMonitor = lightning::chain::chainmonitor::ChainMonitor<
    NodeChannelSigner,
    Arc<dyn Filter + Send + Sync>,
    Arc<ChainBroadcaster>,
    Arc<ChainFeeEstimator>,
    Logger,
    Arc<MonitorWriter>,
    Arc<NodeKeys>,
>;

/// The `chain::Watch` the channel manager is given: the [`ChainMonitor`], with monitor updates
/// applied strictly in order.
pub type OrderedChainMonitor = super::ordered_updates::OrderedMonitorUpdates<Arc<ChainMonitor>>;

/// The payment-path scorer, persisted by the background processor.
pub type Scorer = ProbabilisticScorer<Arc<NetworkGraph>, Logger>;

/// The router the channel manager finds payment paths with.
pub type Router = DefaultRouter<
    Arc<NetworkGraph>,
    Logger,
    Arc<NodeKeys>,
    Arc<RwLock<Scorer>>,
    ProbabilisticScoringFeeParameters,
    Scorer,
>;

/// The router for onion messages (BOLT12, async payments).
pub type MessageRouter = DefaultMessageRouter<Arc<NetworkGraph>, Logger, Arc<NodeKeys>>;

/// The channel state machine of every channel.
pub type ChannelManager = lightning::ln::channelmanager::ChannelManager<
    Arc<OrderedChainMonitor>,
    Arc<ChainBroadcaster>,
    Arc<NodeKeys>,
    Arc<NodeKeys>,
    Arc<NodeKeys>,
    Arc<ChainFeeEstimator>,
    Arc<Router>,
    Arc<MessageRouter>,
    Logger,
>;

/// Gossip handling with channel announcements verified against our chain.
pub type GossipSync = VerifiedGossipSync<Logger>;

/// The peer manager's gossip handler: the gossip sync, keeping `channel_update`s that overtake
/// their channel's announcement.
pub type GossipHandler = crate::gossip_handler::GossipHandler<Logger>;

/// The gossip verifier (UTXO look-ups through the `ChainSource`).
pub type GossipUtxoVerifier = GossipVerifier<Logger>;

/// Onion-message routing and handling.
pub type OnionMessenger = lightning::onion_message::messenger::OnionMessenger<
    Arc<NodeKeys>,
    Arc<NodeKeys>,
    Logger,
    Arc<ChannelManager>,
    Arc<MessageRouter>,
    Arc<ChannelManager>,
    Arc<ChannelManager>,
    IgnoringMessageHandler,
    IgnoringMessageHandler,
>;

/// The Lightning peer-to-peer layer over tokio sockets.
pub type PeerManager = lightning::ln::peer_handler::PeerManager<
    SocketDescriptor,
    Arc<ChannelManager>,
    Arc<GossipHandler>,
    Arc<OnionMessenger>,
    Logger,
    IgnoringMessageHandler,
    Arc<NodeKeys>,
    Arc<ChainMonitor>,
>;

/// Sweeps outputs of closed channels back into the wallet.
pub type OutputSweeper = OutputSweeperSync<
    Arc<ChainBroadcaster>,
    Arc<OnchainWallet>,
    Arc<ChainFeeEstimator>,
    Arc<dyn Filter + Send + Sync>,
    Arc<LdkStore>,
    Logger,
    Arc<NodeKeys>,
>;

/// Pays anchor-channel fees (CPFP of commitments, HTLC claims) from the wallet.
pub type BumpHandler = BumpTransactionEventHandlerSync<
    Arc<ChainBroadcaster>,
    Arc<WalletSync<Arc<OnchainWallet>, Logger>>,
    Arc<NodeKeys>,
    Logger,
>;
