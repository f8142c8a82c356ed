//! `listnodes`, `listgraphchannels`.

use std::sync::Arc;

use ln_core::node::{format_short_channel_id, DirectionPolicy};
use rpc_contract::graph::{
    ChannelDirection, GraphChannel, GraphNode, ListGraphChannelsResult, ListNodesResult,
};
use rpc_contract::NoParams;

use super::{Context, RpcResult};

/// `listnodes`.
pub async fn listnodes(ctx: Arc<Context>, _: NoParams) -> RpcResult<ListNodesResult> {
    Ok(ListNodesResult {
        nodes: ctx
            .node
            .graph_nodes()
            .into_iter()
            .map(|n| GraphNode {
                id: n.node_id,
                alias: n.alias,
                addresses: n.addresses,
                last_update: n.last_update,
                num_channels: n.num_channels as u64,
            })
            .collect(),
    })
}

/// `listgraphchannels`.
pub async fn listgraphchannels(
    ctx: Arc<Context>,
    _: NoParams,
) -> RpcResult<ListGraphChannelsResult> {
    Ok(ListGraphChannelsResult {
        channels: ctx
            .node
            .graph_channels()
            .into_iter()
            .map(|c| GraphChannel {
                short_channel_id: format_short_channel_id(c.short_channel_id),
                node1: c.node_one,
                node2: c.node_two,
                capacity_sat: c.capacity_sat,
                node1_to_node2_enabled: c.one_to_two_enabled,
                node2_to_node1_enabled: c.two_to_one_enabled,
                node1_to_node2: c.one_to_two.as_ref().map(direction),
                node2_to_node1: c.two_to_one.as_ref().map(direction),
            })
            .collect(),
    })
}

/// One direction of a gossiped channel, as its sending end announced it.
fn direction(policy: &DirectionPolicy) -> ChannelDirection {
    ChannelDirection {
        fee_base_msat: policy.fee_base_msat,
        fee_proportional_millionths: policy.fee_proportional_millionths,
        cltv_expiry_delta: policy.cltv_expiry_delta,
        htlc_minimum_msat: policy.htlc_minimum_msat,
        htlc_maximum_msat: policy.htlc_maximum_msat,
        last_update: policy.last_update,
    }
}
