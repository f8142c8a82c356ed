//! `invoice`, `settleinvoice`, `cancelinvoice`, `listinvoices`, `waitinvoice`, `decode`.

use std::sync::Arc;
use std::time::Duration;

use ln_core::node::{parse_route_hint, InvoiceRecord, InvoiceRequest, InvoiceStatus as NodeStatus};
use rpc_contract::invoices::{
    CancelInvoiceParams, DecodeParams, DecodeResult, Invoice, InvoiceParams, InvoiceResult,
    InvoiceStatus, ListInvoicesParams, ListInvoicesResult, SettleInvoiceParams, WaitInvoiceParams,
};
use rpc_contract::Empty;

use super::{node_error, node_error_about, Context, RpcResult};

/// How long `waitinvoice` waits without `timeout_secs`.
const DEFAULT_WAIT_SECS: u64 = 600;

/// `invoice`.
pub async fn invoice(ctx: Arc<Context>, params: InvoiceParams) -> RpcResult<InvoiceResult> {
    let expiry_secs = params
        .expiry_secs
        .map(|secs| u32::try_from(secs.get()).unwrap_or(u32::MAX));
    let route_hint = match &params.route_hint {
        Some(text) => Some(parse_route_hint(text).map_err(node_error_about("route_hint"))?),
        None => None,
    };
    let min_final_cltv_expiry_delta = params
        .min_final_cltv_expiry_delta
        .map(|delta| u16::try_from(delta.get()).unwrap_or(u16::MAX));
    let created = ctx
        .node
        .create_invoice_with(InvoiceRequest {
            amount_msat: params.amount_msat.msat(),
            description: params.description,
            expiry_secs,
            payment_hash: params.payment_hash.map(|hash| hash.0),
            route_hint,
            min_final_cltv_expiry_delta,
        })
        .map_err(node_error)?;
    Ok(InvoiceResult {
        bolt11: created.bolt11,
        payment_hash: created.payment_hash,
        expires_at: created.expires_at,
    })
}

/// `settleinvoice`.
pub async fn settleinvoice(ctx: Arc<Context>, params: SettleInvoiceParams) -> RpcResult<Empty> {
    ctx.node
        .settle_invoice(&params.preimage.to_string())
        .map_err(node_error_about("preimage"))?;
    Ok(Empty {})
}

/// `cancelinvoice`.
pub async fn cancelinvoice(ctx: Arc<Context>, params: CancelInvoiceParams) -> RpcResult<Empty> {
    ctx.node
        .cancel_invoice(&params.payment_hash.to_string())
        .map_err(node_error_about("payment_hash"))?;
    Ok(Empty {})
}

/// `listinvoices`.
pub async fn listinvoices(
    ctx: Arc<Context>,
    params: ListInvoicesParams,
) -> RpcResult<ListInvoicesResult> {
    let hash = params.payment_hash.map(|hash| hash.to_string());
    let invoices = ctx
        .node
        .list_invoices(hash.as_deref())
        .map_err(node_error_about("payment_hash"))?;
    Ok(ListInvoicesResult {
        invoices: invoices.iter().map(invoice_of).collect(),
    })
}

/// `waitinvoice`.
pub async fn waitinvoice(ctx: Arc<Context>, params: WaitInvoiceParams) -> RpcResult<Invoice> {
    let timeout = params.timeout_secs.map_or(DEFAULT_WAIT_SECS, |t| t.get());
    let invoice = ctx
        .node
        .wait_invoice(
            &params.payment_hash.to_string(),
            Duration::from_secs(timeout),
        )
        .await
        .map_err(node_error)?;
    Ok(invoice_of(&invoice))
}

/// `decode`.
pub async fn decode(ctx: Arc<Context>, params: DecodeParams) -> RpcResult<DecodeResult> {
    let decoded = ctx
        .node
        .decode_invoice(&params.bolt11)
        .map_err(node_error)?;
    Ok(DecodeResult {
        chain: decoded.chain,
        network: decoded.network,
        payee: decoded.payee.to_string(),
        amount_msat: decoded.amount_msat,
        payment_hash: decoded.payment_hash,
        description: decoded.description,
        expiry_secs: decoded.expiry_secs,
        min_final_cltv_expiry_delta: decoded.min_final_cltv_expiry_delta,
        created_at: decoded.created_at,
    })
}

/// The contract's invoice from the node's record.
pub fn invoice_of(record: &InvoiceRecord) -> Invoice {
    Invoice {
        payment_hash: record.payment_hash.clone(),
        bolt11: record.bolt11.clone(),
        description: record.description.clone(),
        status: match record.status {
            NodeStatus::Unpaid => InvoiceStatus::Unpaid,
            NodeStatus::Held => InvoiceStatus::Held,
            NodeStatus::Paid => InvoiceStatus::Paid,
            NodeStatus::Canceled => InvoiceStatus::Canceled,
            NodeStatus::Expired => InvoiceStatus::Expired,
        },
        amount_msat: record.amount_msat,
        amount_received_msat: record.amount_received_msat,
        is_hold: record.is_hold,
        created_at: record.created_at,
        expires_at: record.expires_at,
        paid_at: record.paid_at,
    }
}
