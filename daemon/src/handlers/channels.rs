//! `fundchannel`, `listchannels`, `close`.

use std::sync::Arc;

use ln_core::node::{format_short_channel_id, ChannelInfo};
use ln_core::node::{ChannelForwardingPolicy, ForwardingPolicyUpdate};
use rpc_contract::channels::{
    Channel, ChannelPolicy, ChannelState, CloseParams, CloseResult, CloseType, FundChannelParams,
    FundChannelResult, ListChannelsResult, SetChannelParams, SetChannelResult,
};
use rpc_contract::NoParams;

use super::{node_error, node_error_about, public_key, Context, RpcResult};

/// `fundchannel`.
pub async fn fundchannel(
    ctx: Arc<Context>,
    params: FundChannelParams,
) -> RpcResult<FundChannelResult> {
    let id = public_key("id", params.id)?;
    let push_msat = params.push_msat.map_or(0, |msat| msat.get());
    let announce = params.announce.unwrap_or(true);
    let opened = ctx
        .node
        .open_channel(id, params.amount_sat.get(), push_msat, announce)
        .await
        .map_err(node_error)?;
    Ok(FundChannelResult {
        channel_id: opened.channel_id,
        funding_txid: opened.funding_txid.to_string(),
        funding_output: opened.funding_output,
    })
}

/// The contract's state of a channel from ln-core's word for it.
pub fn channel_state(state: &str) -> ChannelState {
    match state {
        "pending" => ChannelState::Pending,
        "active" => ChannelState::Active,
        "closing" => ChannelState::Closing,
        // ln-core says `inactive` for the last of its four states.
        _ => ChannelState::Inactive,
    }
}

/// `listchannels`.
pub async fn listchannels(ctx: Arc<Context>, _: NoParams) -> RpcResult<ListChannelsResult> {
    Ok(ListChannelsResult {
        channels: ctx.node.list_channels().iter().map(channel).collect(),
    })
}

fn channel(c: &ChannelInfo) -> Channel {
    let next = &c.next_outbound_htlc;
    Channel {
        channel_id: c.channel_id.clone(),
        short_channel_id: c.short_channel_id.map(format_short_channel_id),
        peer_id: c.peer_id.to_string(),
        state: channel_state(c.state),
        is_usable: c.is_usable,
        is_public: c.is_public,
        is_outbound: c.is_outbound,
        capacity_sat: c.capacity_sat,
        local_balance_msat: c.local_balance_msat,
        outbound_capacity_msat: c.outbound_capacity_msat,
        inbound_capacity_msat: c.inbound_capacity_msat,
        funding_txid: c.funding_txid.map(|txid| txid.to_string()),
        funding_output: c.funding_output,
        confirmations: c.confirmations,
        confirmations_required: c.confirmations_required,
        pending_htlcs: c.pending_htlcs as u64,
        has_anchors: c.has_anchors,
        commitment_feerate_sat_per_kw: c.commitment_feerate_sat_per_kw,
        our_reserve_sat: c.reserve_sat,
        their_reserve_sat: c.counterparty_reserve_sat,
        inbound_htlc_minimum_msat: c.inbound_htlc_minimum_msat,
        outbound_htlc_minimum_msat: c.outbound_htlc_minimum_msat,
        next_outbound_htlc_limit_msat: next.limit_msat,
        next_outbound_htlc_minimum_msat: next.minimum_msat,
        next_outbound_htlc_limit_reason: next.cause.clone(),
        peer_max_htlc_value_in_flight_msat: next.peer_in_flight_cap_msat,
        outbound_htlcs_in_flight: next.htlcs_in_flight as u64,
        fee_base_msat: c.fee_base_msat,
        fee_proportional_millionths: c.fee_proportional_millionths,
        cltv_expiry_delta: c.cltv_expiry_delta,
    }
}

/// `close`.
pub async fn close(ctx: Arc<Context>, params: CloseParams) -> RpcResult<CloseResult> {
    let force = params.force.unwrap_or(false);
    let closed = ctx
        .node
        .close_channel(&params.id.to_string(), force)
        .await
        .map_err(node_error_about("id"))?;
    Ok(CloseResult {
        close_type: match closed.close_type {
            ln_core::node::CloseType::Mutual => CloseType::Mutual,
            ln_core::node::CloseType::Unilateral => CloseType::Unilateral,
        },
        channel_id: closed.channel_id,
        txid: closed.txid.map(|txid| txid.to_string()),
    })
}

/// `setchannel`: the node checks every value against the chain's policy before changing any.
pub async fn setchannel(
    ctx: Arc<Context>,
    params: SetChannelParams,
) -> RpcResult<SetChannelResult> {
    let narrow = |value: Option<u64>| value.and_then(|v| u32::try_from(v).ok());
    let update = ForwardingPolicyUpdate {
        fee_base_msat: narrow(params.fee_base_msat.map(|v| v.get())),
        fee_proportional_millionths: narrow(params.fee_proportional_millionths.map(|v| v.get())),
        cltv_expiry_delta: params
            .cltv_expiry_delta
            .and_then(|v| u16::try_from(v.get()).ok()),
        htlc_minimum_msat: params.htlc_minimum_msat.map(|v| v.get()),
        htlc_maximum_msat: params.htlc_maximum_msat.map(|v| v.get()),
    };
    let policies = ctx
        .node
        .set_forwarding_policy(&params.id.to_string(), &update)
        .map_err(node_error)?;
    Ok(SetChannelResult {
        channels: policies.iter().map(channel_policy).collect(),
    })
}

fn channel_policy(policy: &ChannelForwardingPolicy) -> ChannelPolicy {
    ChannelPolicy {
        channel_id: policy.channel_id.clone(),
        short_channel_id: policy.short_channel_id.map(format_short_channel_id),
        peer_id: policy.peer_id.to_string(),
        fee_base_msat: policy.fee_base_msat,
        fee_proportional_millionths: policy.fee_proportional_millionths,
        cltv_expiry_delta: policy.cltv_expiry_delta,
        htlc_minimum_msat: policy.htlc_minimum_msat,
        htlc_maximum_msat: policy.htlc_maximum_msat,
    }
}
