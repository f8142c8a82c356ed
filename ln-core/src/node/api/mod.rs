//! The typed API of [`Node`](super::Node): one file per area (peers, channels, payments,
//! on-chain wallet, gossip graph). The daemon maps these calls one to one onto JSON-RPC methods.

mod channels;
mod forwarding;
mod graph;
mod intercepts;
mod journal;
mod messages;
mod onchain;
mod payments;
mod peers;
mod routes;

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;

pub use channels::{format_short_channel_id, ChannelInfo, CloseType, ClosedChannel, OpenedChannel};
pub use forwarding::{
    ChannelForwardingPolicy, ForwardFilter, ForwardHistory, ForwardingPolicyUpdate,
};
pub use graph::{DirectionPolicy, GraphChannel, GraphNode};
pub use intercepts::{parse_route_hint, InterceptScid, NextHop, Resolution};
pub use journal::{PaidInvoice, EVENTS_PER_READ};
pub use messages::{recover_signer, sign_message, MessageCheck, SignedMessage, MAX_MESSAGE_BYTES};
pub use onchain::{Funds, WalletOutputInfo};
pub use payments::{
    CreatedInvoice, DecodedInvoice, InvoiceRequest, DEFAULT_INVOICE_EXPIRY_SECS,
    DEFAULT_PAYMENT_TIMEOUT, MAX_FINAL_CLTV_EXPIRY_DELTA,
};
pub use peers::PeerInfo;
pub(crate) use peers::{connect_peer, known_peer_address, resolve_socket_address};
pub use routes::{HtlcLimit, RouteHopInfo, RouteInfo, GOSSIP_SETTLING};

use super::{Error, Node, NodeInner};

/// What `getinfo` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Our node id.
    pub node_id: bitcoin::secp256k1::PublicKey,
    /// Our alias.
    pub alias: String,
    /// Chain name (`bitcoin`, `qtum`).
    pub chain: String,
    /// Network name (`mainnet`, `testnet`, `signet`, `regtest`).
    pub network: String,
    /// Height of the last block the node processed.
    pub block_height: u32,
    /// Hash of that block (the chain's real hash).
    pub block_hash: bitcoin::BlockHash,
    /// The last poll of the chain node succeeded and every block was processed.
    pub synced_to_chain: bool,
    /// Connected peers.
    pub num_peers: usize,
    /// Channels ready and with the peer connected.
    pub num_active_channels: usize,
    /// Channels waiting for funding confirmations.
    pub num_pending_channels: usize,
    /// Ready channels whose peer is offline.
    pub num_inactive_channels: usize,
    /// Addresses peers can reach us on.
    pub p2p_addresses: Vec<String>,
    /// xln version.
    pub version: String,
}

impl Node {
    /// Our node id (public key).
    pub fn node_id(&self) -> bitcoin::secp256k1::PublicKey {
        self.inner.node_id
    }

    /// The chain this node runs on.
    pub fn chain_params(&self) -> &crate::chain::ChainParams {
        &self.inner.params
    }

    /// The channel policy in force on this chain.
    pub fn channel_policy(&self) -> &super::ChannelPolicy {
        &self.inner.policy
    }

    /// The P2P addresses the node actually listens on.
    pub fn listening_addresses(&self) -> Vec<std::net::SocketAddr> {
        self.inner.bound_addresses.clone()
    }

    /// Node id, chain position, peer and channel counts.
    pub fn info(&self) -> NodeInfo {
        let inner = &self.inner;
        let tip = inner.poller.tip();
        let channels = inner.channel_manager.list_channels();
        let num_active_channels = channels.iter().filter(|c| c.is_usable).count();
        let num_pending_channels = channels.iter().filter(|c| !c.is_channel_ready).count();
        let num_inactive_channels = channels
            .iter()
            .filter(|c| c.is_channel_ready && !c.is_usable)
            .count();
        NodeInfo {
            node_id: inner.node_id,
            alias: inner.alias.clone(),
            chain: inner.params.chain.to_string(),
            network: inner.params.network.to_string(),
            block_height: tip.map(|t| t.height).unwrap_or(0),
            block_hash: tip
                .map(|t| t.real_hash)
                .unwrap_or(inner.params.genesis_block_hash),
            synced_to_chain: inner
                .synced_to_chain
                .load(std::sync::atomic::Ordering::SeqCst),
            num_peers: inner.peer_manager.list_peers().len(),
            num_active_channels,
            num_pending_channels,
            num_inactive_channels,
            p2p_addresses: if inner.announced_addresses.is_empty() {
                &inner.bound_addresses
            } else {
                &inner.announced_addresses
            }
            .iter()
            .map(|a| format!("{}@{a}", inner.node_id))
            .collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// Waits until the node has processed the chain node's current tip, or `timeout` passes.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let best = self
                .inner
                .source
                .best_tip()
                .await
                .map_err(|e| Error::ChainSource(e.to_string()))?;
            if self.inner.poller.tip().map(|t| t.real_hash) == Some(best.hash) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "the node has not reached block {} yet",
                    best.height
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits until `check` returns a value, re-checking whenever `notify` fires, for at most
/// `timeout`. `None` on timeout or when the node stops.
pub(crate) async fn wait_until<T, F, Fut>(
    inner: &NodeInner,
    notify: &Notify,
    timeout: Duration,
    mut check: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(value) = check().await {
            return Some(value);
        }
        if inner.stopping() {
            return None;
        }
        // Also re-check now and then: some changes (chain progress) have no notification.
        let slice = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_millis(500));
        if slice.is_zero() {
            return None;
        }
        let _ = tokio::time::timeout(slice, notified).await;
    }
}

/// Parses a 32-byte hex value (payment hash, preimage).
pub(crate) fn parse_hex32(what: &str, value: &str) -> Result<[u8; 32], Error> {
    let bytes: Vec<u8> = bitcoin::hex::FromHex::from_hex(value)
        .map_err(|_| Error::InvalidParameter(format!("{what} must be 64 hex characters")))?;
    bytes.try_into().map_err(|_| {
        Error::InvalidParameter(format!("{what} must be 32 bytes (64 hex characters)"))
    })
}

/// Parses a node id.
pub(crate) fn parse_node_id(value: &str) -> Result<bitcoin::secp256k1::PublicKey, Error> {
    value.parse().map_err(|_| {
        Error::InvalidParameter(format!(
            "{value:?} is not a node id (66 hex characters, a compressed public key)"
        ))
    })
}

/// Runs `work` (store writes: blocking I/O) on tokio's blocking pool, so that no runtime worker
/// waits on the disk. A panic in `work` is resumed here.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(Error::ShuttingDown),
    }
}
