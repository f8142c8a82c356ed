//! The HTLC interception methods: `intercept_scid`, `listinterceptedhtlcs` and `resolvehtlc`.

use jsonrpsee::types::ErrorObjectOwned;
use ln_core::node::{
    format_short_channel_id, InterceptStatus, InterceptedHtlcRecord, NextHop, Node, Resolution,
};
use serde_json::{json, Value};

use super::{parse_node_id, rpc_error, MAX_MSAT};
use crate::methods::{invalid, Args};

/// The longest `reason` kept in a record, bytes.
const MAX_REASON_BYTES: usize = 256;

/// `intercept_scid`: a fresh intercept SCID and the route hint a client puts in its invoice.
pub fn intercept_scid(node: &Node) -> Value {
    let scid = node.intercept_scid();
    json!({
        "short_channel_id": format_short_channel_id(scid.short_channel_id),
        "node_id": scid.node_id.to_string(),
        "fee_base_msat": scid.fee_base_msat,
        "fee_proportional_millionths": scid.fee_proportional_millionths,
        "cltv_expiry_delta": scid.cltv_expiry_delta,
        "confirmation_blocks": scid.confirmation_blocks,
        "route_hint": scid.route_hint(),
    })
}

/// `listinterceptedhtlcs [status]`.
pub fn list_intercepted_htlcs(node: &Node, args: &Args) -> Result<Value, ErrorObjectOwned> {
    let status = match args.str("status")? {
        Some(text) => Some(text.parse::<InterceptStatus>().map_err(invalid)?),
        None => None,
    };
    let records = node.list_intercepted_htlcs(status).map_err(rpc_error)?;
    let timeout_secs = node.intercept_timeout().map(|t| t.as_secs());
    Ok(json!({
        "intercepted_htlcs": records
            .iter()
            .map(|record| intercepted_htlc_json(record, timeout_secs))
            .collect::<Vec<_>>(),
    }))
}

/// `resolvehtlc id action [channel_id] [peer_id] [amount_msat] [reason] [preimage]`.
pub async fn resolve_htlc(node: &Node, args: &Args) -> Result<Value, ErrorObjectOwned> {
    let id = args.req_str("id")?;
    let action = args.req_str("action")?;
    let channel_id = args.str("channel_id")?;
    let peer_id = args.str("peer_id")?;
    let amount_msat = args.uint("amount_msat", MAX_MSAT)?;
    let reason = args.str("reason")?;
    let preimage = args.str("preimage")?;
    let only_for = |name: &str, value: bool, action: &str| {
        if value {
            Err(invalid(format!("{name} goes with action {action} only")))
        } else {
            Ok(())
        }
    };
    let resolution = match action.as_str() {
        "forward" => {
            only_for("reason", reason.is_some(), "fail")?;
            only_for("preimage", preimage.is_some(), "settle")?;
            let next_hop = match (channel_id, peer_id) {
                (Some(channel_id), None) => NextHop::Channel(channel_id),
                (None, Some(peer_id)) => NextHop::Peer(parse_node_id(&peer_id)?),
                _ => {
                    return Err(invalid(
                        "forward needs the next hop: give channel_id or peer_id (one of them)",
                    ))
                }
            };
            Resolution::Forward {
                next_hop,
                amount_msat,
            }
        }
        "fail" => {
            only_for("channel_id", channel_id.is_some(), "forward")?;
            only_for("peer_id", peer_id.is_some(), "forward")?;
            only_for("amount_msat", amount_msat.is_some(), "forward")?;
            only_for("preimage", preimage.is_some(), "settle")?;
            if reason.as_ref().is_some_and(|r| r.len() > MAX_REASON_BYTES) {
                return Err(invalid(format!(
                    "reason is at most {MAX_REASON_BYTES} bytes"
                )));
            }
            Resolution::Fail { reason }
        }
        "settle" => {
            only_for("channel_id", channel_id.is_some(), "forward")?;
            only_for("peer_id", peer_id.is_some(), "forward")?;
            only_for("amount_msat", amount_msat.is_some(), "forward")?;
            only_for("reason", reason.is_some(), "fail")?;
            let preimage =
                preimage.ok_or_else(|| invalid("settle needs preimage (64 hex characters)"))?;
            Resolution::Settle { preimage }
        }
        other => {
            return Err(invalid(format!(
                "action {other:?} is not one of forward, fail, settle"
            )))
        }
    };
    let record = node
        .resolve_intercepted_htlc(&id, resolution)
        .await
        .map_err(rpc_error)?;
    Ok(intercepted_htlc_json(
        &record,
        node.intercept_timeout().map(|t| t.as_secs()),
    ))
}

/// One entry of `listinterceptedhtlcs`; `timeout_secs` is the node's time limit, if any.
fn intercepted_htlc_json(record: &InterceptedHtlcRecord, timeout_secs: Option<u64>) -> Value {
    json!({
        "intercept_id": record.intercept_id,
        "requested_next_hop_scid": format_short_channel_id(record.requested_next_hop_scid),
        "payment_hash": record.payment_hash,
        "inbound_amount_msat": record.inbound_amount_msat,
        "expected_outbound_amount_msat": record.expected_outbound_amount_msat,
        "incoming_channel_id": record.incoming_channel_id,
        "incoming_cltv_expiry": record.incoming_cltv_expiry,
        "received_at": record.received_at,
        "status": record.status.as_str(),
        "timeout_at": timeout_secs
            .filter(|_| record.is_pending())
            .map(|secs| record.deadline(secs)),
        "resolved_at": record.resolved_at,
        "outgoing_channel_id": record.outgoing_channel_id,
        "outbound_amount_msat": record.outbound_amount_msat,
        "failure_reason": record.failure_reason,
    })
}
