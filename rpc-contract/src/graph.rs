//! The gossip graph: `listnodes`, `listgraphchannels`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{method, NoParams};

method!(
    /// `listnodes`.
    ListNodes = "listnodes", NoParams => ListNodesResult,
    "Nodes known from gossip.

Errors: none of its own."
);

/// The result of `listnodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListNodesResult {
    /// Every node in the gossip graph.
    pub nodes: Vec<GraphNode>,
}

/// One node of the gossip graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GraphNode {
    /// Its node id.
    pub id: String,
    /// Its alias; `null` for a node that has not announced itself.
    pub alias: Option<String>,
    /// The addresses it announced.
    pub addresses: Vec<String>,
    /// Time of its announcement; `null` for a node that has not announced itself.
    pub last_update: Option<u32>,
    /// Its public channels.
    pub num_channels: u64,
}

method!(
    /// `listgraphchannels`.
    ListGraphChannels = "listgraphchannels", NoParams => ListGraphChannelsResult,
    "Public channels known from gossip.

Sorted by short channel id. Our own channels are here too once announced, with what we announced:
after a `setchannel` the new policy shows here, on our node at once and on other nodes when the
gossip reaches them.

Errors: none of its own."
);

/// The result of `listgraphchannels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListGraphChannelsResult {
    /// Every public channel in the gossip graph, sorted by short channel id.
    pub channels: Vec<GraphChannel>,
}

/// One public channel of the gossip graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GraphChannel {
    /// `BLOCKxTXxOUT`.
    pub short_channel_id: String,
    /// One end's node id.
    pub node1: String,
    /// The other end's node id.
    pub node2: String,
    /// Capacity; `null` if unknown.
    pub capacity_sat: Option<u64>,
    /// Enabled in the direction from node1 to node2.
    pub node1_to_node2_enabled: bool,
    /// Enabled in the direction from node2 to node1.
    pub node2_to_node1_enabled: bool,
    /// What node1 last announced for forwarding towards node2; `null` until its `channel_update` arrived.
    pub node1_to_node2: Option<ChannelDirection>,
    /// What node2 last announced for forwarding towards node1; `null` until its `channel_update` arrived.
    pub node2_to_node1: Option<ChannelDirection>,
}

/// One direction of a gossiped channel, as its sending end announced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelDirection {
    /// Fee per forwarded HTLC, msat.
    pub fee_base_msat: u32,
    /// Fee per million msat forwarded.
    pub fee_proportional_millionths: u32,
    /// CLTV delta, blocks.
    pub cltv_expiry_delta: u16,
    /// Smallest HTLC forwarded.
    pub htlc_minimum_msat: u64,
    /// Largest HTLC forwarded.
    pub htlc_maximum_msat: u64,
    /// The update's timestamp.
    pub last_update: u32,
}
