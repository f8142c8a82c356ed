//! Read access to the gossip graph: known nodes and public channels, with the forwarding
//! policy each end announced for its direction.

use lightning::routing::gossip::ChannelUpdateInfo;

use crate::node::Node;

/// A node known from gossip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    /// Node id, hex.
    pub node_id: String,
    /// Alias from its announcement.
    pub alias: Option<String>,
    /// Addresses from its announcement.
    pub addresses: Vec<String>,
    /// Announcement timestamp.
    pub last_update: Option<u32>,
    /// Public channels it has.
    pub num_channels: usize,
}

/// A public channel known from gossip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphChannel {
    /// Short channel id.
    pub short_channel_id: u64,
    /// One end.
    pub node_one: String,
    /// The other end.
    pub node_two: String,
    /// Capacity, sat, if known.
    pub capacity_sat: Option<u64>,
    /// Direction one→two is enabled and announced.
    pub one_to_two_enabled: bool,
    /// Direction two→one is enabled and announced.
    pub two_to_one_enabled: bool,
    /// What node one announced for forwarding to node two (none until its `channel_update`).
    pub one_to_two: Option<DirectionPolicy>,
    /// What node two announced for forwarding to node one.
    pub two_to_one: Option<DirectionPolicy>,
}

/// One direction of a public channel as its sending end last announced it (`channel_update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectionPolicy {
    /// Fee per HTLC forwarded, msat.
    pub fee_base_msat: u32,
    /// Fee per million msat forwarded.
    pub fee_proportional_millionths: u32,
    /// CLTV delta, blocks.
    pub cltv_expiry_delta: u16,
    /// Smallest HTLC, msat.
    pub htlc_minimum_msat: u64,
    /// Largest HTLC, msat.
    pub htlc_maximum_msat: u64,
    /// The update's timestamp.
    pub last_update: u32,
}

impl From<&ChannelUpdateInfo> for DirectionPolicy {
    fn from(update: &ChannelUpdateInfo) -> Self {
        Self {
            fee_base_msat: update.fees.base_msat,
            fee_proportional_millionths: update.fees.proportional_millionths,
            cltv_expiry_delta: update.cltv_expiry_delta,
            htlc_minimum_msat: update.htlc_minimum_msat,
            htlc_maximum_msat: update.htlc_maximum_msat,
            last_update: update.last_update,
        }
    }
}

impl GraphChannel {
    /// Whether the direction out of `node_id`, one of the two ends, is announced and enabled:
    /// what a route through that node over this channel needs. Each end announces its own
    /// direction, so a node may know one direction before the other.
    pub fn enabled_from(&self, node_id: &str) -> bool {
        if node_id == self.node_one {
            self.one_to_two_enabled
        } else if node_id == self.node_two {
            self.two_to_one_enabled
        } else {
            false
        }
    }
}

impl Node {
    /// Every node in the gossip graph.
    pub fn graph_nodes(&self) -> Vec<GraphNode> {
        let graph = self.inner.graph.read_only();
        graph
            .nodes()
            .unordered_iter()
            .map(|(id, info)| {
                let announcement = info.announcement_info.as_ref();
                GraphNode {
                    node_id: id.to_string(),
                    alias: announcement.map(|a| a.alias().to_string()),
                    addresses: announcement
                        .map(|a| a.addresses().iter().map(|s| s.to_string()).collect())
                        .unwrap_or_default(),
                    last_update: announcement.map(|a| a.last_update()),
                    num_channels: info.channels.len(),
                }
            })
            .collect()
    }

    /// Every public channel in the gossip graph.
    pub fn graph_channels(&self) -> Vec<GraphChannel> {
        let graph = self.inner.graph.read_only();
        let mut channels: Vec<GraphChannel> = graph
            .channels()
            .unordered_iter()
            .map(|(scid, info)| GraphChannel {
                short_channel_id: *scid,
                node_one: info.node_one.to_string(),
                node_two: info.node_two.to_string(),
                capacity_sat: info.capacity_sats,
                one_to_two_enabled: info.one_to_two.as_ref().is_some_and(|d| d.enabled),
                two_to_one_enabled: info.two_to_one.as_ref().is_some_and(|d| d.enabled),
                one_to_two: info.one_to_two.as_ref().map(DirectionPolicy::from),
                two_to_one: info.two_to_one.as_ref().map(DirectionPolicy::from),
            })
            .collect();
        channels.sort_by_key(|c| c.short_channel_id);
        channels
    }
}

#[cfg(test)]
mod tests {
    use super::GraphChannel;

    #[test]
    fn enabled_from_reads_the_direction_out_of_the_given_end() {
        let channel = GraphChannel {
            short_channel_id: 1,
            node_one: "02aa".to_owned(),
            node_two: "03bb".to_owned(),
            capacity_sat: Some(1_000_000),
            one_to_two_enabled: false,
            two_to_one_enabled: true,
            one_to_two: None,
            two_to_one: None,
        };
        assert!(!channel.enabled_from("02aa"));
        assert!(channel.enabled_from("03bb"));
        assert!(!channel.enabled_from("02cc"), "a node that is not an end");
    }
}
