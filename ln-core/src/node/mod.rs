//! The xln node: LDK's channel machinery, the on-chain wallet, the store and the chain poller,
//! wired together by [`NodeBuilder`] and driven by tokio tasks, behind one typed API on [`Node`].

mod api;
mod builder;
pub mod channel_signer;
mod error;
mod events;
pub mod intercepts;
pub mod journal;
pub mod keys;
pub mod monitor_writer;
pub mod ordered_updates;
pub mod policy;
pub mod records;
mod send_queue;
pub mod types;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::PublicKey;
use keys::NodeKeys;
use lightning::ln::types::ChannelId;
use lightning_background_processor::{
    process_events_async_with_kv_store_sync, GossipSync as BackgroundGossipSync,
    NO_LIQUIDITY_MANAGER,
};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use api::*;
pub use builder::{BuildError, NodeBuilder};
pub use error::Error;
pub use intercepts::{InterceptStatus, InterceptedHtlcRecord, DEFAULT_INTERCEPT_TIMEOUT};
pub use policy::ChannelPolicy;
pub use records::{
    ForwardRecord, ForwardStatus, InvoiceRecord, InvoiceStatus, PaymentRecord, PaymentStatus,
};

use crate::chain::{ChainParams, ChainSource};
use crate::ldk_adapters::{ChainBroadcaster, ChainFeeEstimator};
use crate::poller::{ChainPoller, PollerError};
use crate::store::Namespace;
use crate::wallet::OnchainWallet;
use records::Records;
use types::*;

/// A running Lightning node. Cheap to clone; all clones are the same node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

/// What a channel open we started came to.
#[derive(Debug, Clone)]
pub(crate) enum OpenOutcome {
    /// The funding transaction was broadcast.
    Pending {
        channel_id: ChannelId,
        funding_txo: bitcoin::OutPoint,
    },
    /// The channel closed before that.
    Failed(String),
}

/// Wake-ups for callers waiting on events.
#[derive(Default)]
pub(crate) struct Notifications {
    pub(crate) payments: PaymentWakeups,
    pub(crate) invoices: Notify,
    pub(crate) channels: Notify,
    /// The outcome of each channel open an `open_channel` call is waiting for (`None` until it
    /// comes); entries exist only while their call waits.
    pub(crate) channel_opens: Mutex<HashMap<u128, Option<OpenOutcome>>>,
}

/// One wake-up per outgoing payment someone waits for, told when that payment's record changes.
/// With one wake-up for all of them, each change woke every waiting `pay` and `keysend`, and each
/// read its record again: at 400 payments in flight, a tenth of the node's CPU.
#[derive(Default)]
pub(crate) struct PaymentWakeups {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl PaymentWakeups {
    /// The wake-up for payment `hash`, held while the caller waits.
    pub(crate) fn watch(&self, hash: &str) -> PaymentWatch<'_> {
        let notify = lock_wakeups(&self.waiting)
            .entry(hash.to_owned())
            .or_default()
            .clone();
        PaymentWatch {
            wakeups: self,
            hash: hash.to_owned(),
            notify,
        }
    }

    /// Wakes whoever waits for payment `hash`.
    pub(crate) fn notify(&self, hash: &str) {
        if let Some(notify) = lock_wakeups(&self.waiting).get(hash) {
            notify.notify_waiters();
        }
    }
}

/// A caller's hold on a payment's wake-up; the last one dropped removes it.
pub(crate) struct PaymentWatch<'a> {
    wakeups: &'a PaymentWakeups,
    hash: String,
    notify: Arc<Notify>,
}

impl PaymentWatch<'_> {
    pub(crate) fn notified(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for PaymentWatch<'_> {
    fn drop(&mut self) {
        let mut waiting = lock_wakeups(&self.wakeups.waiting);
        // Clones are only made under this lock: 2 is the map's and ours.
        if Arc::strong_count(&self.notify) <= 2 {
            waiting.remove(&self.hash);
        }
    }
}

fn lock_wakeups<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) struct NodeInner {
    pub(crate) node_id: PublicKey,
    pub(crate) seed_path: std::path::PathBuf,
    pub(crate) params: ChainParams,
    pub(crate) policy: ChannelPolicy,
    pub(crate) alias: String,
    pub(crate) announced_addresses: Vec<SocketAddr>,
    pub(crate) bound_addresses: Vec<SocketAddr>,
    pub(crate) records: Records,
    pub(crate) known_peers: Namespace,
    pub(crate) monitor_writer: Arc<monitor_writer::MonitorWriter>,
    pub(crate) ldk_store: Arc<monitor_writer::LdkStore>,
    pub(crate) keys: Arc<NodeKeys>,
    pub(crate) source: Arc<dyn ChainSource>,
    pub(crate) poller: Arc<ChainPoller>,
    pub(crate) fee_estimator: Arc<ChainFeeEstimator>,
    pub(crate) broadcaster: Arc<ChainBroadcaster>,
    pub(crate) chain_monitor: Arc<ChainMonitor>,
    pub(crate) channel_manager: Arc<ChannelManager>,
    pub(crate) graph: Arc<NetworkGraph>,
    pub(crate) router: Arc<Router>,
    pub(crate) gossip_verifier: Arc<GossipUtxoVerifier>,
    /// When the node started: gossip from peers keeps arriving for a while after.
    pub(crate) started_at: std::time::Instant,
    pub(crate) gossip_sync: Arc<GossipSync>,
    pub(crate) scorer: Arc<RwLock<Scorer>>,
    pub(crate) onion_messenger: Arc<OnionMessenger>,
    pub(crate) peer_manager: Arc<PeerManager>,
    pub(crate) sweeper: Arc<OutputSweeper>,
    pub(crate) wallet: Arc<OnchainWallet>,
    pub(crate) bump_handler: Arc<BumpHandler>,
    pub(crate) logger: Logger,
    pub(crate) notifications: Notifications,
    /// Intercepted HTLCs waiting for a decision, and the time limit on them.
    pub(crate) intercepts: intercepts::Intercepts,
    /// Held while a `pay` call decides whether to send or to join a payment in flight.
    pub(crate) payment_starts: Mutex<()>,
    pub(crate) stop_sender: watch::Sender<bool>,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) synced_to_chain: AtomicBool,
    pub(crate) poll_interval: Duration,
    pub(crate) htlc_batching: HtlcBatching,
    /// Our payments waiting for HTLC capacity our other payments hold.
    pub(crate) send_queue: send_queue::SendQueue,
}

/// When received HTLCs are forwarded or offered to the payee.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HtlcBatching {
    /// As soon as they are irrevocably committed: a payment over one channel takes a few
    /// milliseconds instead of LDK's 50 ms median (up to 200 ms) per hop. The default, as in LND
    /// and Core Lightning, which forward at once.
    #[default]
    None,
    /// After LDK's random delay (log-normal, median 50 ms, at most 200 ms), which it chose so
    /// that HTLCs arriving close together leave together and an observer of a routing node
    /// cannot pair each incoming HTLC with its outgoing one by timing.
    Ldk,
}

impl NodeInner {
    fn stopping(&self) -> bool {
        *self.stop_sender.borrow()
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        match self.tasks.lock() {
            Ok(mut tasks) => tasks.push(handle),
            Err(poisoned) => poisoned.into_inner().push(handle),
        }
    }
}

impl Node {
    /// Starts the node's tasks: chain following, LDK's background processor, the P2P listeners,
    /// reconnection to known peers and node announcements.
    fn start(&self, listeners: Vec<tokio::net::TcpListener>) {
        let inner = &self.inner;
        inner.end_payments_lost_in_a_crash();
        inner.load_intercepts();
        inner.spawn(chain_loop(Arc::clone(inner)));
        inner.spawn(intercepts::intercept_loop(Arc::clone(inner)));
        inner.spawn(background_processor(Arc::clone(inner)));
        inner.spawn(htlc_pump(Arc::clone(inner)));
        for listener in listeners {
            inner.spawn(accept_loop(Arc::clone(inner), listener));
        }
        inner.spawn(reconnect_loop(Arc::clone(inner)));
        inner.spawn(announcement_loop(Arc::clone(inner)));
        inner.spawn(journal_loop(Arc::clone(inner)));
        tracing::info!(node_id = %inner.node_id, chain = %inner.params.chain, network = %inner.params.network, listen = ?inner.bound_addresses, "node started");
    }

    /// Stops the node: ends every task, disconnects peers and persists the channel manager,
    /// graph and scorer one last time. Safe to call more than once.
    pub async fn stop(&self) {
        if self.inner.stop_sender.send_replace(true) {
            return;
        }
        tracing::info!("node stopping");
        self.inner.peer_manager.disconnect_all_peers();
        let tasks: Vec<JoinHandle<()>> = match self.inner.tasks.lock() {
            Ok(mut tasks) => tasks.drain(..).collect(),
            Err(poisoned) => poisoned.into_inner().drain(..).collect(),
        };
        for task in tasks {
            if tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .is_err()
            {
                tracing::warn!("a node task did not stop within 30 s");
            }
        }
        // After the background processor's last manager write: monitors still queued are
        // written, behind a manager write of their own.
        self.inner.monitor_writer.stop();
        tracing::info!("node stopped");
    }
}

/// Polls the chain node; refreshes fee estimates whenever blocks arrive (and every minute).
async fn chain_loop(inner: Arc<NodeInner>) {
    let mut stop = inner.stop_sender.subscribe();
    let mut polls_since_fee_refresh = 0u32;
    let fee_refresh_every =
        (Duration::from_secs(60).as_millis() / inner.poll_interval.as_millis().max(1)) as u32;
    loop {
        match inner.poller.poll_once().await {
            Ok(outcome) => {
                inner.synced_to_chain.store(true, Ordering::SeqCst);
                polls_since_fee_refresh += 1;
                if outcome.connected > 0 || polls_since_fee_refresh >= fee_refresh_every {
                    polls_since_fee_refresh = 0;
                    if let Err(error) = inner.fee_estimator.refresh().await {
                        tracing::warn!(%error, "fee estimates not refreshed");
                    }
                }
                if outcome.connected > 0 || outcome.disconnected > 0 {
                    inner.notifications.channels.notify_waiters();
                    inner.journal_tip(outcome.connected, outcome.disconnected);
                }
            }
            Err(PollerError::Source(error)) if error.is_transient() => {
                inner.synced_to_chain.store(false, Ordering::SeqCst);
                tracing::warn!(%error, "chain node unavailable; retrying");
            }
            Err(error) => {
                inner.synced_to_chain.store(false, Ordering::SeqCst);
                tracing::error!(%error, "cannot follow the chain; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.poll_interval) => {}
            _ = stop.changed() => return,
        }
    }
}

impl NodeInner {
    /// Writes a `blocks` event for the tip the node just moved to.
    fn journal_tip(&self, connected: u32, disconnected: u32) {
        let best = self.channel_manager.current_best_block();
        let kind = if disconnected > 0 {
            "reorg"
        } else {
            "connected"
        };
        let data = serde_json::json!({
            "height": best.height,
            "block_hash": best.block_hash.to_string(),
            "blocks_connected": connected,
            "blocks_disconnected": disconnected,
        });
        let key = format!("{}/{}", best.height, best.block_hash);
        if let Err(error) =
            self.records
                .journal()
                .append_once(journal::Stream::Blocks, &key, kind, data)
        {
            tracing::warn!(%error, "recording a block event failed");
        }
    }
}

/// How often peers are compared and invoices checked for expiry, for the journal.
const JOURNAL_POLL: Duration = Duration::from_secs(1);
/// Invoices are checked for expiry every this many polls.
const EXPIRY_CHECK_POLLS: u32 = 5;

/// Writes the journal's events that no LDK event announces: peers connecting and
/// disconnecting, and invoices expiring.
async fn journal_loop(inner: Arc<NodeInner>) {
    let mut stop = inner.stop_sender.subscribe();
    let mut connected: HashMap<PublicKey, Option<String>> = HashMap::new();
    let mut polls = 0u32;
    loop {
        let now: HashMap<PublicKey, Option<String>> = inner
            .peer_manager
            .list_peers()
            .into_iter()
            .map(|peer| {
                let address = peer.socket_address.map(|a| a.to_string());
                (peer.counterparty_node_id, address)
            })
            .collect();
        let journal = inner.records.journal();
        for (peer, address) in &now {
            if !connected.contains_key(peer) {
                let data = serde_json::json!({ "peer_id": peer.to_string(), "address": address });
                if let Err(error) = journal.append(journal::Stream::Peers, "connected", data) {
                    tracing::warn!(%error, "recording a peer event failed");
                }
            }
        }
        for (peer, address) in &connected {
            if !now.contains_key(peer) {
                let data = serde_json::json!({ "peer_id": peer.to_string(), "address": address });
                if let Err(error) = journal.append(journal::Stream::Peers, "disconnected", data) {
                    tracing::warn!(%error, "recording a peer event failed");
                }
            }
        }
        connected = now;
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(EXPIRY_CHECK_POLLS) {
            inner.expire_invoices();
        }
        tokio::select! {
            _ = tokio::time::sleep(JOURNAL_POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn background_processor(inner: Arc<NodeInner>) {
    let stop = inner.stop_sender.subscribe();
    let handler_inner = Arc::clone(&inner);
    let event_handler = move |event| {
        let inner = Arc::clone(&handler_inner);
        async move { inner.handle_event(event).await }
    };
    let htlc_pump =
        (inner.htlc_batching == HtlcBatching::None).then(|| inner.monitor_writer.batch_done());
    let (manager, writer) = (
        Arc::clone(&inner.channel_manager),
        Arc::clone(&inner.monitor_writer),
    );
    let sleeper = move |duration: Duration| {
        if duration < SHORTEST_PROCESSOR_TIMER {
            if let Some(htlc_pump) = &htlc_pump {
                // The processor sleeps this short only with HTLCs waiting to be forwarded (for
                // LDK's random forwarding delay) or just after it forwarded some. They can wait
                // without the pump knowing: the writer wakes it after each batch, but when
                // another thread (this processor's pass, a peer's read) was first to apply the
                // batch's completion in LDK, the HTLCs became ready after the pump had looked.
                // They then waited for that delay, 50 ms at the median, on about 1 % of
                // payments. Only a hint: the pump forwards only what is waiting.
                htlc_pump.notify_one();
            }
        }
        let mut stop = stop.clone();
        let manager_write = ManagerWriteOnWake {
            manager: Arc::clone(&manager),
            writer: Arc::clone(&writer),
            stop: stop.clone(),
        };
        Box::pin(async move {
            let _manager_write = manager_write;
            tokio::select! {
                _ = tokio::time::sleep(duration) => *stop.borrow(),
                _ = stop.changed() => true,
            }
        })
    };
    let result = process_events_async_with_kv_store_sync(
        Arc::clone(&inner.ldk_store),
        event_handler,
        Arc::clone(&inner.chain_monitor),
        Arc::clone(&inner.channel_manager),
        Some(Arc::clone(&inner.onion_messenger)),
        BackgroundGossipSync::p2p(Arc::clone(&inner.gossip_sync)),
        Arc::clone(&inner.peer_manager),
        NO_LIQUIDITY_MANAGER,
        Some(Arc::clone(&inner.sweeper)),
        Arc::clone(&inner.logger),
        Some(Arc::clone(&inner.scorer)),
        sleeper,
        false,
        || SystemTime::now().duration_since(UNIX_EPOCH).ok(),
    )
    .await;
    if let Err(error) = result {
        tracing::error!(%error, "LDK background processing stopped with an error");
    }
}

/// Hands LDK's "the manager needs persisting" flag to the monitor writer when the background
/// processor stops waiting, so that the processor finds it clear and does not serialize the
/// manager itself.
///
/// The processor checks the flag right after its wait (a sleeper future of ours, dropped when
/// the wait ends) and, when set, serializes the whole manager twice (`encode` sizes its buffer
/// first), under the lock every peer message waits for, only for our store to turn the write
/// into a request to the monitor writer, which serializes a newer one. Traced over 3 minutes of
/// payments without a pause, that was 6.5 writes per payment on the payer and 8.2 on the payee,
/// of a payer's manager that holds every payment it sent in the last 7-8 minutes (LDK's
/// idempotency). The request made here is the one the processor's write would have made, and
/// the writer's next batch usually carries it. Should the processor check the flag before dropping
/// its sleeper, it would only write the manager as it did before.
struct ManagerWriteOnWake {
    manager: Arc<types::ChannelManager>,
    writer: Arc<monitor_writer::MonitorWriter>,
    stop: watch::Receiver<bool>,
}

impl Drop for ManagerWriteOnWake {
    fn drop(&mut self) {
        // Stopping, the processor writes the manager one last time itself.
        if *self.stop.borrow() || !self.manager.get_and_clear_needs_persistence() {
            return;
        }
        // It fails only if the writer is stopping and its own write failed, as the processor's
        // would have.
        if let Err(error) = self.writer.request_manager_write() {
            tracing::error!(%error, "writing the channel manager failed");
        }
    }
}

/// LDK's background processor's shortest periodic timers: its onion-message timer, and its peer
/// pings in a release build (30 s in a debug one). It asks for a shorter sleep only for
/// forwarding: the forwarding delay, or its start-up delay.
const SHORTEST_PROCESSOR_TIMER: Duration = Duration::from_secs(10);

/// Moves payments along as soon as a monitor write lets them, instead of at the background
/// processor's next pass: unless [`HtlcBatching::Ldk`] is chosen, forwards or offers to the payee
/// the HTLCs the write committed. (The messages LDK held back for the write were sent by the
/// writer already, or are being sent by its sender thread, see
/// [`monitor_writer::MonitorWriter::send_after_each_batch`]; forwarding decodes each
/// HTLC's onion, work kept off that thread so the next batch's fsync does not wait for it.)
///
/// It waits on the monitor writer's own signal, not on LDK's notifiers: those wake every waiter
/// once and then forget, so a second waiter could take a wake-up the background processor needs
/// to write the manager and hand out events. Every HTLC that becomes ready does so when a
/// monitor update completes (xln persists them asynchronously), but LDK applies a completion on
/// whichever thread asks first, which may come after the pump looked: so the background
/// processor's sleeper signals the pump too whenever the processor waits to forward (see
/// [`SHORTEST_PROCESSOR_TIMER`]). The processor's own timer still forwards as a backstop.
async fn htlc_pump(inner: Arc<NodeInner>) {
    let mut stop = inner.stop_sender.subscribe();
    let written = inner.monitor_writer.batch_done();
    loop {
        tokio::select! {
            _ = written.notified() => {}
            _ = stop.changed() => return,
        }
        if inner.htlc_batching == HtlcBatching::None
            && inner.channel_manager.needs_pending_htlc_processing()
        {
            inner.channel_manager.process_pending_htlc_forwards();
            inner.peer_manager.process_events();
        }
    }
}

async fn accept_loop(inner: Arc<NodeInner>, listener: tokio::net::TcpListener) {
    // Bound already, so a peer's connection waits in the listen queue rather than being refused.
    let mut stop = inner.stop_sender.subscribe();
    if !wait_for_the_first_chain_sync(&inner, &mut stop, "accepting peer connections").await {
        return;
    }
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, address)) => {
                let stream = match low_latency_stream(stream) {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::debug!(%address, %error, "inbound peer connection dropped");
                        continue;
                    }
                };
                tracing::debug!(%address, "inbound peer connection");
                let peer_manager = Arc::clone(&inner.peer_manager);
                tokio::spawn(lightning_net_tokio::setup_inbound(peer_manager, stream));
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a peer connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A peer connection made ready for lightning-net-tokio: Nagle's algorithm off. LDK writes each
/// message with its own `send`, and a commitment_signed right after a revoke_and_ack would
/// otherwise wait for the peer's delayed ACK (up to 40 ms on Linux) on every payment.
pub(crate) fn low_latency_stream(
    stream: tokio::net::TcpStream,
) -> std::io::Result<std::net::TcpStream> {
    stream.set_nodelay(true)?;
    stream.into_std()
}

/// How long a starting node waits for its first catch-up with the chain node before it lets
/// peers connect anyway: a chain node that is down must not keep channels from reestablishing.
const PEERS_WAIT_FOR_CHAIN: Duration = Duration::from_secs(60);

/// Waits until the chain loop has brought the node to the chain node's tip once since start, for
/// at most [`PEERS_WAIT_FOR_CHAIN`], as LND waits for its chain backend before it starts its
/// server. A restarted node then reestablishes its channels knowing what happened on chain while
/// it was away. It also keeps peers from connecting while LDK connects many blocks at once: LDK
/// queues a public channel's announcement for its peer every 6 blocks, connected or not, and a
/// peer that connects before that queue is drained trips an assertion in a debug build
/// (rust-lightning issue 4437); a release build drops the announcement.
///
/// `stop` is the caller's subscription, taken before the call: one taken after a stop would
/// never see it. Returns `false` when the node is stopping.
async fn wait_for_the_first_chain_sync(
    inner: &NodeInner,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    before: &str,
) -> bool {
    let deadline = tokio::time::Instant::now() + PEERS_WAIT_FOR_CHAIN;
    let mut told = false;
    while !inner.synced_to_chain.load(Ordering::SeqCst) {
        if inner.stopping() {
            return false;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                waited_secs = PEERS_WAIT_FOR_CHAIN.as_secs(),
                "not caught up with the chain node yet; {before} anyway"
            );
            return true;
        }
        if !std::mem::replace(&mut told, true) {
            tracing::info!("{before} once the node has caught up with the chain node");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => {}
        }
    }
    // What the catch-up queued for peers that were not connected goes out (or is dropped) now.
    inner.peer_manager.process_events();
    !inner.stopping()
}

/// Keeps connections to peers we share channels with: once the node has caught up with the
/// chain after a start (a restarted node's channels are idle until their peers are back), then
/// every 5 s.
async fn reconnect_loop(inner: Arc<NodeInner>) {
    let mut stop = inner.stop_sender.subscribe();
    if !wait_for_the_first_chain_sync(&inner, &mut stop, "reconnecting to channel peers").await {
        return;
    }
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = stop.changed() => return,
            }
        }
        let connected: Vec<PublicKey> = inner
            .peer_manager
            .list_peers()
            .into_iter()
            .map(|p| p.counterparty_node_id)
            .collect();
        let mut wanted: Vec<PublicKey> = inner
            .channel_manager
            .list_channels()
            .into_iter()
            .map(|c| c.counterparty.node_id)
            .filter(|id| !connected.contains(id))
            .collect();
        wanted.sort();
        wanted.dedup();
        if !wanted.is_empty() {
            // LDK queues a channel announcement for a channel's peer every 6 blocks, connected
            // or not (its rebroadcast), and expects that queue drained before the peer
            // connects: a debug build asserts it, a release build drops the announcement.
            // After a restart's catch-up of many blocks, or a peer's long absence, hand them
            // out first.
            inner.peer_manager.process_events();
        }
        for node_id in wanted {
            let Ok(Some(address)) = api::known_peer_address(&inner, &node_id) else {
                continue;
            };
            if let Err(error) = api::connect_peer(&inner, node_id, address).await {
                tracing::debug!(%node_id, %error, "reconnecting to channel peer failed");
            }
        }
    }
}

/// Announces our node (alias, addresses) once we have public channels, as LDK Node does.
async fn announcement_loop(inner: Arc<NodeInner>) {
    let mut stop = inner.stop_sender.subscribe();
    let mut interval = Duration::from_secs(10);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        inner
            .chain_monitor
            .archive_fully_resolved_channel_monitors();
        let has_public_channel = inner
            .channel_manager
            .list_channels()
            .iter()
            .any(|c| c.is_announced && c.is_usable);
        if !has_public_channel || inner.announced_addresses.is_empty() {
            continue;
        }
        let mut alias = [0u8; 32];
        let alias_bytes = inner.alias.as_bytes();
        let len = alias_bytes.len().min(32);
        alias[..len].copy_from_slice(&alias_bytes[..len]);
        let addresses = inner
            .announced_addresses
            .iter()
            .map(|a| lightning::ln::msgs::SocketAddress::from(*a))
            .collect();
        inner
            .peer_manager
            .broadcast_node_announcement([0, 0, 0], alias, addresses);
        interval = Duration::from_secs(600);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn peer_connections_send_without_waiting_for_acks() -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let connecting = tokio::net::TcpStream::connect(listener.local_addr()?);
        let (connected, accepted) = tokio::join!(connecting, listener.accept());
        for stream in [connected?, accepted?.0] {
            assert!(!stream.nodelay()?, "Nagle is on by default");
            assert!(low_latency_stream(stream)?.nodelay()?);
        }
        Ok(())
    }
}
