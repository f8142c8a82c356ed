//! `intercept_scid`, `listinterceptedhtlcs`, `resolvehtlc` (and its other name `resolve_htlc`).

use std::sync::Arc;

use ln_core::node::{
    format_short_channel_id, InterceptStatus as NodeStatus, InterceptedHtlcRecord, NextHop,
    Resolution,
};
use rpc_contract::intercepts::{
    InterceptScidResult, InterceptStatus, InterceptedHtlc, ListInterceptedHtlcsParams,
    ListInterceptedHtlcsResult, ResolveAction, ResolveHtlcParams,
};
use rpc_contract::NoParams;

use super::{invalid_param, node_error, public_key, Context, RpcResult};

/// The longest `reason` kept in a record, bytes.
const MAX_REASON_BYTES: usize = 256;

/// `intercept_scid`.
pub async fn intercept_scid(ctx: Arc<Context>, _: NoParams) -> RpcResult<InterceptScidResult> {
    let scid = ctx.node.intercept_scid();
    Ok(InterceptScidResult {
        short_channel_id: format_short_channel_id(scid.short_channel_id),
        node_id: scid.node_id.to_string(),
        fee_base_msat: scid.fee_base_msat,
        fee_proportional_millionths: scid.fee_proportional_millionths,
        cltv_expiry_delta: scid.cltv_expiry_delta,
        confirmation_blocks: scid.confirmation_blocks,
        route_hint: scid.route_hint(),
    })
}

/// `listinterceptedhtlcs`.
pub async fn listinterceptedhtlcs(
    ctx: Arc<Context>,
    params: ListInterceptedHtlcsParams,
) -> RpcResult<ListInterceptedHtlcsResult> {
    let status = params.status.map(|status| match status {
        InterceptStatus::Pending => NodeStatus::Pending,
        InterceptStatus::Forwarded => NodeStatus::Forwarded,
        InterceptStatus::Failed => NodeStatus::Failed,
    });
    let records = ctx
        .node
        .list_intercepted_htlcs(status)
        .map_err(node_error)?;
    let timeout_secs = ctx.node.intercept_timeout().map(|t| t.as_secs());
    Ok(ListInterceptedHtlcsResult {
        intercepted_htlcs: records
            .iter()
            .map(|record| intercepted_htlc_of(record, timeout_secs))
            .collect(),
    })
}

/// `resolvehtlc`, and `resolve_htlc`.
pub async fn resolvehtlc(
    ctx: Arc<Context>,
    params: ResolveHtlcParams,
) -> RpcResult<InterceptedHtlc> {
    let resolution = resolution_of(&params)?;
    let record = ctx
        .node
        .resolve_intercepted_htlc(&params.id.to_string(), resolution)
        .await
        .map_err(node_error)?;
    Ok(intercepted_htlc_of(
        &record,
        ctx.node.intercept_timeout().map(|t| t.as_secs()),
    ))
}

/// What `params` ask for, refusing params that go with another action.
fn resolution_of(params: &ResolveHtlcParams) -> RpcResult<Resolution> {
    let action = params.action;
    let only_for = |name: &str, given: bool, action: &str| {
        if given {
            Err(invalid_param(
                name,
                format!("{name} goes with action {action} only"),
            ))
        } else {
            Ok(())
        }
    };
    let forward_params = [
        ("channel_id", params.channel_id.is_some()),
        ("peer_id", params.peer_id.is_some()),
        ("amount_msat", params.amount_msat.is_some()),
    ];
    if action != ResolveAction::Forward {
        for (name, given) in forward_params {
            only_for(name, given, "forward")?;
        }
    }
    if action != ResolveAction::Fail {
        only_for("reason", params.reason.is_some(), "fail")?;
    }
    if action != ResolveAction::Settle {
        only_for("preimage", params.preimage.is_some(), "settle")?;
    }
    Ok(match action {
        ResolveAction::Forward => {
            let next_hop = match (params.channel_id, params.peer_id) {
                (Some(channel_id), None) => NextHop::Channel(channel_id.to_string()),
                (None, Some(peer_id)) => NextHop::Peer(public_key("peer_id", peer_id)?),
                _ => {
                    return Err(invalid_param(
                        "channel_id",
                        "forward needs the next hop: give channel_id or peer_id (one of them)",
                    ))
                }
            };
            Resolution::Forward {
                next_hop,
                amount_msat: params.amount_msat.map(|msat| msat.get()),
            }
        }
        ResolveAction::Fail => {
            let reason = params.reason.clone();
            if reason.as_ref().is_some_and(|r| r.len() > MAX_REASON_BYTES) {
                return Err(invalid_param(
                    "reason",
                    format!("reason is at most {MAX_REASON_BYTES} bytes"),
                ));
            }
            Resolution::Fail { reason }
        }
        ResolveAction::Settle => {
            let preimage = params.preimage.ok_or_else(|| {
                invalid_param("preimage", "settle needs preimage (64 hex characters)")
            })?;
            Resolution::Settle {
                preimage: preimage.to_string(),
            }
        }
    })
}

/// One entry of `listinterceptedhtlcs`; `timeout_secs` is the node's time limit, if any.
fn intercepted_htlc_of(
    record: &InterceptedHtlcRecord,
    timeout_secs: Option<u64>,
) -> InterceptedHtlc {
    InterceptedHtlc {
        intercept_id: record.intercept_id.clone(),
        requested_next_hop_scid: format_short_channel_id(record.requested_next_hop_scid),
        payment_hash: record.payment_hash.clone(),
        inbound_amount_msat: record.inbound_amount_msat,
        expected_outbound_amount_msat: record.expected_outbound_amount_msat,
        incoming_channel_id: record.incoming_channel_id.clone(),
        incoming_cltv_expiry: record.incoming_cltv_expiry,
        received_at: record.received_at,
        status: match record.status {
            NodeStatus::Pending => InterceptStatus::Pending,
            NodeStatus::Forwarded => InterceptStatus::Forwarded,
            NodeStatus::Failed => InterceptStatus::Failed,
        },
        timeout_at: timeout_secs
            .filter(|_| record.is_pending())
            .map(|secs| record.deadline(secs)),
        resolved_at: record.resolved_at,
        outgoing_channel_id: record.outgoing_channel_id.clone(),
        outbound_amount_msat: record.outbound_amount_msat,
        failure_reason: record.failure_reason.clone(),
    }
}
