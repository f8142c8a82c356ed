//! The routing-message handler our peer manager uses: LDK's `P2PGossipSync`, plus a short memory
//! of `channel_update`s that arrive before their channel's announcement.
//!
//! A node forwards a peer's `channel_update` as soon as it has read it, but sends its own
//! `channel_announcement` only when its channel manager's events are next processed. So a node
//! two hops from a new channel can get the far end's update before the channel exists for it.
//! LDK drops such an update ("Couldn't find channel for update") and rebroadcasts a channel's
//! gossip only every 6 blocks, while its router passes over a channel until it knows both ends'
//! updates. The new channel stayed unroutable for up to an hour: in CI, alice found no route
//! through bob for a minute after B-C was announced to her.
//!
//! LND keeps such premature updates and replays them once the announcement is in
//! (`prematureChannelUpdates` in its gossiper). This handler does the same: an update that fails
//! because its channel is not in our graph is kept (at most [`EARLY_UPDATES_KEPT`], for at most
//! [`EARLY_UPDATE_LIFETIME`]), and applied once the channel is, then forwarded like any other new
//! update.

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::constants::ChainHash;
use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::{
    BaseMessageHandler, ChannelAnnouncement, ChannelUpdate, Init, LightningError, MessageSendEvent,
    NodeAnnouncement, QueryChannelRange, QueryShortChannelIds, ReplyChannelRange,
    ReplyShortChannelIdsEnd, RoutingMessageHandler,
};
use lightning::routing::gossip::{NetworkGraph, NodeId};
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::logger::Logger;

use crate::gossip_verifier::GossipSync;

/// How many early `channel_update`s are kept at most, over all peers; the oldest go first. A
/// burst of new channels is far smaller; a peer sending updates for channels that never come
/// can only push out others' early updates, which LDK would have dropped anyway.
pub const EARLY_UPDATES_KEPT: usize = 1_000;

/// How long an early `channel_update` waits for its channel's announcement: the announcement
/// follows within seconds, or at the channel's next rebroadcast (6 blocks) with its own update.
pub const EARLY_UPDATE_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// LDK's gossip sync, with early `channel_update`s kept until their channel is in the graph.
pub struct GossipHandler<L: Deref + Clone + Send + Sync + 'static>
where
    L::Target: Logger,
{
    sync: Arc<GossipSync<L>>,
    graph: Arc<NetworkGraph<L>>,
    chain_hash: ChainHash,
    early_updates: Mutex<VecDeque<(Instant, ChannelUpdate)>>,
}

impl<L: Deref + Clone + Send + Sync + 'static> GossipHandler<L>
where
    L::Target: Logger,
{
    /// Wraps `sync`, whose graph is `graph`, on the chain `chain_hash`.
    pub fn new(
        sync: Arc<GossipSync<L>>,
        graph: Arc<NetworkGraph<L>>,
        chain_hash: ChainHash,
    ) -> Self {
        Self {
            sync,
            graph,
            chain_hash,
            early_updates: Mutex::new(VecDeque::new()),
        }
    }

    /// The gossip sync it wraps (the background processor prunes its graph).
    pub fn gossip_sync(&self) -> &Arc<GossipSync<L>> {
        &self.sync
    }

    /// How many early updates wait for their channel now.
    pub fn early_update_count(&self) -> usize {
        self.early_updates().len()
    }

    fn early_updates(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, ChannelUpdate)>> {
        self.early_updates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn knows_channel(&self, short_channel_id: u64) -> bool {
        self.graph.read_only().channel(short_channel_id).is_some()
    }

    /// Keeps `update` if it failed for want of its channel in our graph.
    fn keep_if_early(&self, update: &ChannelUpdate) {
        if update.contents.chain_hash != self.chain_hash
            || self.knows_channel(update.contents.short_channel_id)
        {
            return;
        }
        let mut early = self.early_updates();
        if early.len() >= EARLY_UPDATES_KEPT {
            early.pop_front();
        }
        early.push_back((Instant::now(), update.clone()));
    }

    /// Applies the early updates whose channel is now in our graph, and returns those that were
    /// news to it, for the peer manager to forward. Drops the ones that waited too long.
    fn replay_early_updates(&self) -> Vec<MessageSendEvent> {
        let ready: Vec<ChannelUpdate> = {
            let mut early = self.early_updates();
            if early.is_empty() {
                return Vec::new();
            }
            early.retain(|(kept_at, _)| kept_at.elapsed() < EARLY_UPDATE_LIFETIME);
            let graph = self.graph.read_only();
            let (ready, waiting): (Vec<_>, Vec<_>) = early
                .drain(..)
                .partition(|(_, update)| graph.channel(update.contents.short_channel_id).is_some());
            early.extend(waiting);
            ready.into_iter().map(|(_, update)| update).collect()
        };
        let mut forwards = Vec::new();
        for update in ready {
            // The graph checks the signature against the announced node ids, and refuses an
            // update no newer than the one it has (the duplicate case: LDK held this one while
            // the announcement was being verified, or the other end sent it again).
            match self.graph.update_channel(&update) {
                Ok(()) => {
                    tracing::debug!(
                        short_channel_id = update.contents.short_channel_id,
                        "applied a channel_update that arrived before its channel's announcement"
                    );
                    forwards.push(MessageSendEvent::BroadcastChannelUpdate { msg: update });
                }
                Err(error) => tracing::trace!(
                    short_channel_id = update.contents.short_channel_id,
                    error = %error.err,
                    "early channel_update not applied"
                ),
            }
        }
        forwards
    }
}

impl<L: Deref + Clone + Send + Sync + 'static> BaseMessageHandler for GossipHandler<L>
where
    L::Target: Logger,
{
    fn get_and_clear_pending_msg_events(&self) -> Vec<MessageSendEvent> {
        let mut events = self.sync.get_and_clear_pending_msg_events();
        events.extend(self.replay_early_updates());
        events
    }

    fn peer_disconnected(&self, their_node_id: PublicKey) {
        self.sync.peer_disconnected(their_node_id)
    }

    fn provided_node_features(&self) -> NodeFeatures {
        self.sync.provided_node_features()
    }

    fn provided_init_features(&self, their_node_id: PublicKey) -> InitFeatures {
        self.sync.provided_init_features(their_node_id)
    }

    fn peer_connected(
        &self,
        their_node_id: PublicKey,
        msg: &Init,
        inbound: bool,
    ) -> Result<(), ()> {
        self.sync.peer_connected(their_node_id, msg, inbound)
    }
}

impl<L: Deref + Clone + Send + Sync + 'static> RoutingMessageHandler for GossipHandler<L>
where
    L::Target: Logger,
{
    fn handle_node_announcement(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &NodeAnnouncement,
    ) -> Result<bool, LightningError> {
        self.sync.handle_node_announcement(their_node_id, msg)
    }

    fn handle_channel_announcement(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &ChannelAnnouncement,
    ) -> Result<bool, LightningError> {
        self.sync.handle_channel_announcement(their_node_id, msg)
    }

    fn handle_channel_update(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &ChannelUpdate,
    ) -> Result<bool, LightningError> {
        let handled = self.sync.handle_channel_update(their_node_id, msg);
        if handled.is_err() && their_node_id.is_some() {
            self.keep_if_early(msg);
        }
        handled
    }

    fn get_next_channel_announcement(
        &self,
        starting_point: u64,
    ) -> Option<(
        ChannelAnnouncement,
        Option<ChannelUpdate>,
        Option<ChannelUpdate>,
    )> {
        self.sync.get_next_channel_announcement(starting_point)
    }

    fn get_next_node_announcement(
        &self,
        starting_point: Option<&NodeId>,
    ) -> Option<NodeAnnouncement> {
        self.sync.get_next_node_announcement(starting_point)
    }

    fn handle_reply_channel_range(
        &self,
        their_node_id: PublicKey,
        msg: ReplyChannelRange,
    ) -> Result<(), LightningError> {
        self.sync.handle_reply_channel_range(their_node_id, msg)
    }

    fn handle_reply_short_channel_ids_end(
        &self,
        their_node_id: PublicKey,
        msg: ReplyShortChannelIdsEnd,
    ) -> Result<(), LightningError> {
        self.sync
            .handle_reply_short_channel_ids_end(their_node_id, msg)
    }

    fn handle_query_channel_range(
        &self,
        their_node_id: PublicKey,
        msg: QueryChannelRange,
    ) -> Result<(), LightningError> {
        self.sync.handle_query_channel_range(their_node_id, msg)
    }

    fn handle_query_short_channel_ids(
        &self,
        their_node_id: PublicKey,
        msg: QueryShortChannelIds,
    ) -> Result<(), LightningError> {
        self.sync.handle_query_short_channel_ids(their_node_id, msg)
    }

    fn processing_queue_high(&self) -> bool {
        self.sync.processing_queue_high()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::TracingLogger;
    use bitcoin::hashes::{sha256d, Hash};
    use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
    use bitcoin::Network;
    use lightning::ln::msgs::{UnsignedChannelAnnouncement, UnsignedChannelUpdate};
    use lightning::routing::gossip::P2PGossipSync;
    use lightning::types::features::ChannelFeatures;
    use lightning::util::ser::Writeable;

    type TestLogger = Arc<TracingLogger>;

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_slice(&[byte; 32]).expect("a valid key")
    }

    fn sign(bytes: &[u8], key: &SecretKey) -> bitcoin::secp256k1::ecdsa::Signature {
        let digest = sha256d::Hash::hash(bytes).to_byte_array();
        Secp256k1::new().sign_ecdsa(&Message::from_digest(digest), key)
    }

    fn public(key: &SecretKey) -> PublicKey {
        PublicKey::from_secret_key(&Secp256k1::new(), key)
    }

    fn regtest() -> ChainHash {
        ChainHash::using_genesis_block(Network::Regtest)
    }

    /// A channel `short_channel_id` between the nodes of keys 1 and 2, signed by all four keys.
    fn announcement(short_channel_id: u64) -> ChannelAnnouncement {
        let contents = UnsignedChannelAnnouncement {
            features: ChannelFeatures::empty(),
            chain_hash: regtest(),
            short_channel_id,
            node_id_1: NodeId::from_pubkey(&public(&key(1))),
            node_id_2: NodeId::from_pubkey(&public(&key(2))),
            bitcoin_key_1: NodeId::from_pubkey(&public(&key(11))),
            bitcoin_key_2: NodeId::from_pubkey(&public(&key(12))),
            excess_data: Vec::new(),
        };
        let bytes = contents.encode();
        ChannelAnnouncement {
            node_signature_1: sign(&bytes, &key(1)),
            node_signature_2: sign(&bytes, &key(2)),
            bitcoin_signature_1: sign(&bytes, &key(11)),
            bitcoin_signature_2: sign(&bytes, &key(12)),
            contents,
        }
    }

    /// Node 1's update of `short_channel_id` on `chain_hash`, signed with `signer`.
    fn update(short_channel_id: u64, chain_hash: ChainHash, signer: &SecretKey) -> ChannelUpdate {
        let contents = UnsignedChannelUpdate {
            chain_hash,
            short_channel_id,
            // LDK refuses updates more than two weeks old.
            timestamp: u32::try_from(crate::node::records::unix_now()).unwrap_or(u32::MAX),
            message_flags: 1,
            channel_flags: 0,
            cltv_expiry_delta: 72,
            htlc_minimum_msat: 1,
            htlc_maximum_msat: 1_000_000,
            fee_base_msat: 1_000,
            fee_proportional_millionths: 1,
            excess_data: Vec::new(),
        };
        ChannelUpdate {
            signature: sign(&contents.encode(), signer),
            contents,
        }
    }

    fn handler() -> (GossipHandler<TestLogger>, Arc<NetworkGraph<TestLogger>>) {
        let logger: TestLogger = Arc::new(TracingLogger);
        let graph = Arc::new(NetworkGraph::new(Network::Regtest, logger.clone()));
        let sync = Arc::new(P2PGossipSync::new(graph.clone(), None, logger));
        (GossipHandler::new(sync, graph.clone(), regtest()), graph)
    }

    fn forwarded_updates(events: &[MessageSendEvent]) -> Vec<&ChannelUpdate> {
        events
            .iter()
            .filter_map(|event| match event {
                MessageSendEvent::BroadcastChannelUpdate { msg } => Some(msg),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_update_that_overtakes_its_announcement_is_applied_and_forwarded_once_it_arrives() {
        let (handler, graph) = handler();
        let peer = public(&key(3));
        let early = update(42, regtest(), &key(1));
        assert!(handler.handle_channel_update(Some(peer), &early).is_err());
        assert_eq!(handler.early_update_count(), 1);
        assert!(forwarded_updates(&handler.get_and_clear_pending_msg_events()).is_empty());

        handler
            .handle_channel_announcement(Some(peer), &announcement(42))
            .expect("the announcement enters the graph");
        let events = handler.get_and_clear_pending_msg_events();
        assert_eq!(forwarded_updates(&events), vec![&early]);
        assert_eq!(handler.early_update_count(), 0);
        let direction = graph
            .read_only()
            .channel(42)
            .and_then(|channel| channel.one_to_two.clone())
            .expect("node 1's direction is known");
        assert_eq!(direction.fees.base_msat, 1_000);
        assert!(
            forwarded_updates(&handler.get_and_clear_pending_msg_events()).is_empty(),
            "forwarded once"
        );
    }

    #[test]
    fn an_early_update_with_a_bad_signature_is_dropped_unforwarded() {
        let (handler, graph) = handler();
        let peer = public(&key(3));
        let forged = update(42, regtest(), &key(9));
        assert!(handler.handle_channel_update(Some(peer), &forged).is_err());
        handler
            .handle_channel_announcement(Some(peer), &announcement(42))
            .expect("the announcement enters the graph");
        assert!(forwarded_updates(&handler.get_and_clear_pending_msg_events()).is_empty());
        assert_eq!(handler.early_update_count(), 0);
        assert!(graph
            .read_only()
            .channel(42)
            .is_some_and(|channel| channel.one_to_two.is_none()));
    }

    #[test]
    fn only_so_many_early_updates_are_kept_and_none_of_another_chain() {
        let (handler, _) = handler();
        let peer = public(&key(3));
        let bitcoin = ChainHash::using_genesis_block(Network::Bitcoin);
        assert!(handler
            .handle_channel_update(Some(peer), &update(1, bitcoin, &key(1)))
            .is_err());
        assert_eq!(handler.early_update_count(), 0, "another chain's update");
        for short_channel_id in 0..=EARLY_UPDATES_KEPT as u64 {
            let _ = handler
                .handle_channel_update(Some(peer), &update(short_channel_id, regtest(), &key(1)));
        }
        assert_eq!(handler.early_update_count(), EARLY_UPDATES_KEPT);
        let oldest_kept = handler.early_updates()[0].1.contents.short_channel_id;
        assert_eq!(oldest_kept, 1, "the oldest went first");
    }
}
