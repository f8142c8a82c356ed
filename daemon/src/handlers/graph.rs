//! `listnodes`, `listgraphchannels`.

use std::sync::Arc;

use ln_core::node::format_short_channel_id;
use rpc_contract::graph::{GraphChannel, GraphNode, ListGraphChannelsResult, ListNodesResult};
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
            })
            .collect(),
    })
}
