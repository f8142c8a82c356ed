//! `pay`, `keysend`, `listpayments`, `getroute`, `listforwards`.

use std::sync::Arc;
use std::time::Duration;

use ln_core::node::{
    ForwardFilter, ForwardRecord, ForwardStatus as NodeForwardStatus, PaymentRecord,
    PaymentStatus as NodeStatus,
};
use rpc_contract::payments::{
    Forward, ForwardStatus, GetRouteParams, GetRouteResult, KeysendParams, ListForwardsParams,
    ListForwardsResult, ListPaymentsParams, ListPaymentsResult, PayParams, Payment, PaymentStatus,
    RouteHop,
};
use rpc_contract::types::Destination;

use super::{invalid_param, node_error, node_error_about, public_key, Context, RpcResult};

/// `pay`.
pub async fn pay(ctx: Arc<Context>, params: PayParams) -> RpcResult<Payment> {
    let payment = ctx
        .node
        .pay_invoice(
            &params.bolt11,
            params.amount_msat.map(|msat| msat.get()),
            params.max_fee_msat.map(|msat| msat.get()),
            params
                .timeout_secs
                .map(|secs| Duration::from_secs(secs.get())),
        )
        .await
        .map_err(node_error)?;
    Ok(payment_of(&payment))
}

/// `keysend`.
pub async fn keysend(ctx: Arc<Context>, params: KeysendParams) -> RpcResult<Payment> {
    let destination = public_key("destination", params.destination)?;
    let payment = ctx
        .node
        .keysend(
            destination,
            params.amount_msat.get(),
            params.max_fee_msat.map(|msat| msat.get()),
            params
                .timeout_secs
                .map(|secs| Duration::from_secs(secs.get())),
        )
        .await
        .map_err(node_error)?;
    Ok(payment_of(&payment))
}

/// `listpayments`.
pub async fn listpayments(
    ctx: Arc<Context>,
    params: ListPaymentsParams,
) -> RpcResult<ListPaymentsResult> {
    let hash = params.payment_hash.map(|hash| hash.to_string());
    let payments = ctx
        .node
        .list_payments(hash.as_deref())
        .map_err(node_error_about("payment_hash"))?;
    Ok(ListPaymentsResult {
        payments: payments.iter().map(payment_of).collect(),
    })
}

/// `getroute`.
pub async fn getroute(ctx: Arc<Context>, params: GetRouteParams) -> RpcResult<GetRouteResult> {
    let amount = params.amount_msat.map(|msat| msat.get());
    let route = match params.destination {
        Destination::Node(node_id) => {
            let destination = public_key("destination", node_id)?;
            let amount = amount.ok_or_else(|| {
                invalid_param(
                    "amount_msat",
                    "amount_msat is required for a node id (it is optional only for an invoice \
                     without an amount)",
                )
            })?;
            ctx.node.route_to_node(destination, amount)
        }
        Destination::Invoice(bolt11) => ctx.node.route_for_invoice(&bolt11, amount),
    }
    .map_err(node_error)?;
    Ok(GetRouteResult {
        amount_msat: route.amount_msat,
        total_fee_msat: route.total_fee_msat,
        total_cltv_expiry_delta: route.total_cltv_expiry_delta,
        success_probability: route.success_probability,
        hops: route
            .hops
            .iter()
            .map(|hop| RouteHop {
                node_id: hop.node_id.to_string(),
                short_channel_id: hop.short_channel_id.clone(),
                amount_msat: hop.amount_msat,
                fee_msat: hop.fee_msat,
                cltv_expiry_delta: hop.cltv_expiry_delta,
                success_probability: hop.success_probability,
            })
            .collect(),
    })
}

/// `listforwards`.
pub async fn listforwards(
    ctx: Arc<Context>,
    params: ListForwardsParams,
) -> RpcResult<ListForwardsResult> {
    let filter = ForwardFilter {
        status: params.status.map(|status| match status {
            ForwardStatus::Settled => NodeForwardStatus::Settled,
            ForwardStatus::Failed => NodeForwardStatus::Failed,
        }),
        since: params.since.map(|t| t.get()),
        until: params.until.map(|t| t.get()),
    };
    let history = ctx.node.forward_history(&filter).map_err(node_error)?;
    Ok(ListForwardsResult {
        count: history.forwards.len() as u64,
        forwards: history.forwards.iter().map(forward_of).collect(),
        total_fee_msat: history.total_fee_msat,
        total_out_msat: history.total_out_msat,
    })
}

fn forward_of(record: &ForwardRecord) -> Forward {
    Forward {
        in_channel_id: record.in_channel_id.clone(),
        out_channel_id: record.out_channel_id.clone(),
        in_msat: record.in_msat(),
        out_msat: record.out_amount_msat,
        out_amount_msat: record.out_amount_msat,
        fee_msat: record.fee_msat,
        claimed_on_chain: record.claimed_on_chain,
        resolved_at: record.resolved_at,
        status: match record.status {
            NodeForwardStatus::Settled => ForwardStatus::Settled,
            NodeForwardStatus::Failed => ForwardStatus::Failed,
        },
        failure_reason: record.failure_reason.clone(),
    }
}

/// The contract's payment from the node's record.
fn payment_of(record: &PaymentRecord) -> Payment {
    Payment {
        payment_hash: record.payment_hash.clone(),
        status: match record.status {
            NodeStatus::Pending => PaymentStatus::Pending,
            NodeStatus::Succeeded => PaymentStatus::Succeeded,
            NodeStatus::Failed => PaymentStatus::Failed,
        },
        amount_msat: record.amount_msat,
        fee_msat: record.fee_msat,
        preimage: record.preimage.clone(),
        destination: record.destination.clone(),
        bolt11: record.bolt11.clone(),
        failure_reason: record.failure_reason.clone(),
        last_path_failure: record.last_path_failure.clone(),
        created_at: record.created_at,
        attempts: record.attempts,
    }
}
