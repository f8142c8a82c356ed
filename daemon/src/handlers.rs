//! One handler per RPC method: checked params in, `ln_core::node::Node` call, JSON out. Newer
//! methods have a module per area with typed params and results (`forwarding`, `messages`).

mod forwarding;
mod messages;

mod intercepts;

use std::time::Duration;

use bitcoin::Amount;
use jsonrpsee::types::ErrorObjectOwned;
use ln_core::node::journal::Stream;
use ln_core::node::{
    format_short_channel_id, Error, InvoiceRecord, InvoiceRequest, Node, PaymentRecord,
    EVENTS_PER_READ,
};
use ln_core::wallet::SendAmount;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::methods::{invalid, spec, Args, METHODS};

/// At most 21 million coins, in satoshis.
const MAX_SAT: u64 = 21_000_000 * 100_000_000;
/// The same in millisatoshis.
const MAX_MSAT: u64 = MAX_SAT * 1000;

/// What every handler gets.
#[derive(Clone)]
pub struct Context {
    /// The node.
    pub node: Node,
    /// Set to true to stop the daemon.
    pub shutdown: watch::Sender<bool>,
}

/// A node error as a JSON-RPC error with the node's stable code.
pub fn rpc_error(error: Error) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(error.code(), error.to_string(), None::<()>)
}

/// `result` as the JSON of an answer.
fn to_json(result: &impl serde::Serialize) -> Result<Value, ErrorObjectOwned> {
    serde_json::to_value(result).map_err(|e| {
        ErrorObjectOwned::owned(
            -32603,
            format!("the answer could not be written: {e}"),
            None::<()>,
        )
    })
}

/// Runs method `name` with checked `args`.
pub async fn dispatch(name: &str, args: Args, ctx: &Context) -> Result<Value, ErrorObjectOwned> {
    let node = &ctx.node;
    match name {
        "getinfo" => {
            let info = node.info();
            Ok(json!({
                "id": info.node_id.to_string(),
                "alias": info.alias,
                "chain": info.chain,
                "network": info.network,
                "block_height": info.block_height,
                "block_hash": info.block_hash.to_string(),
                "synced_to_chain": info.synced_to_chain,
                "num_peers": info.num_peers,
                "num_active_channels": info.num_active_channels,
                "num_pending_channels": info.num_pending_channels,
                "num_inactive_channels": info.num_inactive_channels,
                "p2p_addresses": info.p2p_addresses,
                "version": info.version,
            }))
        }
        "newaddr" => Ok(json!({ "address": node.new_address().map_err(rpc_error)? })),
        "listfunds" => {
            let funds = node.list_funds();
            Ok(json!({
                "onchain_confirmed_sat": funds.onchain_confirmed_sat,
                "onchain_unconfirmed_sat": funds.onchain_unconfirmed_sat,
                "onchain_immature_sat": funds.onchain_immature_sat,
                "pending_sweep_sat": funds.pending_sweep_sat,
                "outputs": funds.outputs.iter().map(|o| json!({
                    "txid": o.txid.to_string(), "vout": o.vout, "amount_sat": o.amount_sat,
                    "address": o.address, "confirmations": o.confirmations,
                })).collect::<Vec<_>>(),
                "channels": funds.channels.iter().map(|c| json!({
                    "channel_id": c.channel_id, "peer_id": c.peer_id.to_string(),
                    "our_amount_msat": c.local_balance_msat, "capacity_sat": c.capacity_sat,
                    "state": c.state,
                })).collect::<Vec<_>>(),
            }))
        }
        "withdraw" => {
            let address = args.req_str("address")?;
            let amount = match args.uint_or("amount_sat", "all", MAX_SAT)? {
                Some(Some(sat)) => SendAmount::Exact(Amount::from_sat(sat)),
                _ => SendAmount::All,
            };
            let feerate = args.uint("feerate_sat_per_vb", 1_000_000)?;
            let txid = node
                .withdraw(&address, amount, feerate)
                .await
                .map_err(rpc_error)?;
            Ok(json!({ "txid": txid.to_string() }))
        }
        "connect" => {
            let id = args.req_str("id")?;
            let host = args.str("host")?;
            let port = args.uint("port", u64::from(u16::MAX))?;
            let uri = match (id.contains('@'), host) {
                (true, Some(_)) => {
                    return Err(invalid(
                        "give the address either in id or as host, not both",
                    ))
                }
                (true, None) => id,
                (false, Some(host)) => {
                    let port =
                        port.unwrap_or(u64::from(node.chain_params().default_lightning_port));
                    format!("{id}@{host}:{port}")
                }
                (false, None) if port.is_some() => {
                    return Err(invalid("port needs host (or give id as node_id@host:port)"))
                }
                (false, None) => id,
            };
            let node_id = node.connect_uri(&uri).await.map_err(rpc_error)?;
            Ok(json!({ "id": node_id.to_string() }))
        }
        "disconnect" => {
            let id = parse_node_id(&args.req_str("id")?)?;
            node.disconnect(id).map_err(rpc_error)?;
            Ok(json!({}))
        }
        "listpeers" => Ok(json!({
            "peers": node.list_peers().iter().map(|p| json!({
                "id": p.node_id.to_string(), "connected": p.connected, "address": p.address,
            })).collect::<Vec<_>>()
        })),
        "fundchannel" => {
            let id = parse_node_id(&args.req_str("id")?)?;
            let amount_sat = args.uint("amount_sat", MAX_SAT)?.unwrap_or(0);
            let push_msat = args.uint("push_msat", MAX_MSAT)?.unwrap_or(0);
            let announce = args.bool("announce")?.unwrap_or(true);
            let opened = node
                .open_channel(id, amount_sat, push_msat, announce)
                .await
                .map_err(rpc_error)?;
            Ok(json!({
                "channel_id": opened.channel_id,
                "funding_txid": opened.funding_txid.to_string(),
                "funding_output": opened.funding_output,
            }))
        }
        "listchannels" => Ok(json!({
            "channels": node.list_channels().iter().map(|c| json!({
                "channel_id": c.channel_id,
                "short_channel_id": c.short_channel_id.map(format_short_channel_id),
                "peer_id": c.peer_id.to_string(),
                "state": c.state,
                "is_usable": c.is_usable,
                "is_public": c.is_public,
                "is_outbound": c.is_outbound,
                "capacity_sat": c.capacity_sat,
                "local_balance_msat": c.local_balance_msat,
                "outbound_capacity_msat": c.outbound_capacity_msat,
                "inbound_capacity_msat": c.inbound_capacity_msat,
                "funding_txid": c.funding_txid.map(|t| t.to_string()),
                "funding_output": c.funding_output,
                "confirmations": c.confirmations,
                "confirmations_required": c.confirmations_required,
                "pending_htlcs": c.pending_htlcs,
                "has_anchors": c.has_anchors,
                "our_reserve_sat": c.reserve_sat,
                "their_reserve_sat": c.counterparty_reserve_sat,
                "inbound_htlc_minimum_msat": c.inbound_htlc_minimum_msat,
                "outbound_htlc_minimum_msat": c.outbound_htlc_minimum_msat,
                "next_outbound_htlc_limit_msat": c.next_outbound_htlc.limit_msat,
                "next_outbound_htlc_minimum_msat": c.next_outbound_htlc.minimum_msat,
                "next_outbound_htlc_limit_reason": c.next_outbound_htlc.cause,
                "peer_max_htlc_value_in_flight_msat": c.next_outbound_htlc.peer_in_flight_cap_msat,
                "outbound_htlcs_in_flight": c.next_outbound_htlc.htlcs_in_flight,
                "fee_base_msat": c.fee_base_msat,
                "fee_proportional_millionths": c.fee_proportional_millionths,
                "cltv_expiry_delta": c.cltv_expiry_delta,
            })).collect::<Vec<_>>()
        })),
        "setchannel" => forwarding::setchannel(node, &args),
        "close" => {
            let id = args.req_str("id")?;
            let force = args.bool("force")?.unwrap_or(false);
            let closed = node.close_channel(&id, force).await.map_err(rpc_error)?;
            Ok(json!({
                "type": match closed.close_type {
                    ln_core::node::CloseType::Mutual => "mutual",
                    ln_core::node::CloseType::Unilateral => "unilateral",
                },
                "channel_id": closed.channel_id,
                "txid": closed.txid.map(|t| t.to_string()),
            }))
        }
        "invoice" => {
            let amount = args.uint_or("amount_msat", "any", MAX_MSAT)?.flatten();
            let description = args.req_str("description")?;
            let expiry = args
                .uint("expiry_secs", u64::from(u32::MAX))?
                .map(|e| e as u32);
            let hash = match args.str("payment_hash")? {
                Some(hash) => Some(parse_hash("payment_hash", &hash)?),
                None => None,
            };
            let route_hint = match args.str("route_hint")? {
                Some(text) => Some(ln_core::node::parse_route_hint(&text).map_err(rpc_error)?),
                None => None,
            };
            let min_final_cltv_expiry_delta = args
                .uint("min_final_cltv_expiry_delta", u64::from(u16::MAX))?
                .map(|delta| delta as u16);
            let created = node
                .create_invoice_with(InvoiceRequest {
                    amount_msat: amount,
                    description,
                    expiry_secs: expiry,
                    payment_hash: hash,
                    route_hint,
                    min_final_cltv_expiry_delta,
                })
                .map_err(rpc_error)?;
            Ok(json!({
                "bolt11": created.bolt11,
                "payment_hash": created.payment_hash,
                "expires_at": created.expires_at,
            }))
        }
        "settleinvoice" => {
            node.settle_invoice(&args.req_str("preimage")?)
                .map_err(rpc_error)?;
            Ok(json!({}))
        }
        "cancelinvoice" => {
            node.cancel_invoice(&args.req_str("payment_hash")?)
                .map_err(rpc_error)?;
            Ok(json!({}))
        }
        "listinvoices" => {
            let hash = args.str("payment_hash")?;
            let invoices = node.list_invoices(hash.as_deref()).map_err(rpc_error)?;
            Ok(json!({ "invoices": invoices.iter().map(invoice_json).collect::<Vec<_>>() }))
        }
        "waitinvoice" => {
            let hash = args.req_str("payment_hash")?;
            let timeout = args.uint("timeout_secs", 86_400)?.unwrap_or(600);
            let invoice = node
                .wait_invoice(&hash, Duration::from_secs(timeout))
                .await
                .map_err(rpc_error)?;
            Ok(invoice_json(&invoice))
        }
        "waitanyinvoice" => {
            let lastpay_index = args.uint("lastpay_index", u64::MAX)?.unwrap_or(0);
            // Waiting "until one is paid" is a year: long enough, and no overflow.
            let timeout_secs = args.uint("timeout_secs", 365 * 24 * 3600)?;
            let timeout = Duration::from_secs(timeout_secs.unwrap_or(365 * 24 * 3600));
            let paid = node
                .wait_any_invoice(lastpay_index, timeout)
                .await
                .map_err(rpc_error)?;
            let mut answer = invoice_json(&paid.invoice);
            answer["pay_index"] = json!(paid.pay_index);
            Ok(answer)
        }
        "listevents" => {
            let stream: Stream = args
                .req_str("stream")?
                .parse()
                .map_err(|message: String| invalid(message))?;
            let since_index = args.uint("since_index", u64::MAX)?.unwrap_or(0);
            let limit = args.uint("limit", EVENTS_PER_READ as u64)?;
            let limit = limit.map_or(EVENTS_PER_READ, |l| l as usize);
            let events = node.events(stream, since_index, limit).map_err(rpc_error)?;
            Ok(json!({ "events": events, "last_index": node.last_event_index(stream) }))
        }
        "pay" => {
            let bolt11 = args.req_str("bolt11")?;
            let amount = args.uint("amount_msat", MAX_MSAT)?;
            let max_fee = args.uint("max_fee_msat", MAX_MSAT)?;
            let timeout = args.uint("timeout_secs", 86_400)?.map(Duration::from_secs);
            let payment = node
                .pay_invoice(&bolt11, amount, max_fee, timeout)
                .await
                .map_err(rpc_error)?;
            Ok(payment_json(&payment))
        }
        "keysend" => {
            let destination = parse_node_id(&args.req_str("destination")?)?;
            let amount = args.uint("amount_msat", MAX_MSAT)?.unwrap_or(0);
            let max_fee = args.uint("max_fee_msat", MAX_MSAT)?;
            let timeout = args.uint("timeout_secs", 86_400)?.map(Duration::from_secs);
            let payment = node
                .keysend(destination, amount, max_fee, timeout)
                .await
                .map_err(rpc_error)?;
            Ok(payment_json(&payment))
        }
        "getroute" => {
            let target = args.req_str("destination")?;
            let amount = args.uint("amount_msat", MAX_MSAT)?;
            let route = if target.len() == 66 && target.chars().all(|c| c.is_ascii_hexdigit()) {
                let destination = parse_node_id(&target)?;
                let amount = amount.ok_or_else(|| {
                    invalid("amount_msat is required for a node id (it is optional only for an invoice without an amount)")
                })?;
                node.route_to_node(destination, amount)
            } else {
                node.route_for_invoice(&target, amount)
            }
            .map_err(rpc_error)?;
            Ok(json!({
                "amount_msat": route.amount_msat,
                "total_fee_msat": route.total_fee_msat,
                "total_cltv_expiry_delta": route.total_cltv_expiry_delta,
                "success_probability": route.success_probability,
                "hops": route.hops.iter().map(|hop| json!({
                    "node_id": hop.node_id.to_string(),
                    "short_channel_id": hop.short_channel_id,
                    "amount_msat": hop.amount_msat,
                    "fee_msat": hop.fee_msat,
                    "cltv_expiry_delta": hop.cltv_expiry_delta,
                    "success_probability": hop.success_probability,
                })).collect::<Vec<_>>(),
            }))
        }
        "listpayments" => {
            let hash = args.str("payment_hash")?;
            let payments = node.list_payments(hash.as_deref()).map_err(rpc_error)?;
            Ok(json!({ "payments": payments.iter().map(payment_json).collect::<Vec<_>>() }))
        }
        "listforwards" => forwarding::listforwards(node, &args),
        "intercept_scid" => Ok(intercepts::intercept_scid(node)),
        "listinterceptedhtlcs" => intercepts::list_intercepted_htlcs(node, &args),
        "resolvehtlc" | "resolve_htlc" => intercepts::resolve_htlc(node, &args).await,
        "listbroadcasts" => Ok(json!({
            "broadcasts": node.recent_broadcasts().iter().map(broadcast_json).collect::<Vec<_>>()
        })),
        "decode" => {
            let decoded = node
                .decode_invoice(&args.req_str("bolt11")?)
                .map_err(rpc_error)?;
            Ok(json!({
                "chain": decoded.chain,
                "network": decoded.network,
                "payee": decoded.payee.to_string(),
                "amount_msat": decoded.amount_msat,
                "payment_hash": decoded.payment_hash,
                "description": decoded.description,
                "expiry_secs": decoded.expiry_secs,
                "min_final_cltv_expiry_delta": decoded.min_final_cltv_expiry_delta,
                "created_at": decoded.created_at,
            }))
        }
        "listnodes" => Ok(json!({ "nodes": node.graph_nodes().iter().map(|n| json!({
            "id": n.node_id, "alias": n.alias, "addresses": n.addresses,
            "last_update": n.last_update, "num_channels": n.num_channels,
        })).collect::<Vec<_>>() })),
        "listgraphchannels" => Ok(
            json!({ "channels": node.graph_channels().iter().map(|c| json!({
            "short_channel_id": format_short_channel_id(c.short_channel_id),
            "node1": c.node_one, "node2": c.node_two, "capacity_sat": c.capacity_sat,
            "node1_to_node2_enabled": c.one_to_two_enabled, "node2_to_node1_enabled": c.two_to_one_enabled,
            "node1_to_node2": c.one_to_two.as_ref().map(direction_json),
            "node2_to_node1": c.two_to_one.as_ref().map(direction_json),
        })).collect::<Vec<_>>() }),
        ),
        "signmessage" => messages::signmessage(node, &args),
        "checkmessage" => messages::checkmessage(node, &args),
        "help" => match args.str("method")? {
            Some(method) => {
                let spec = spec(&method).ok_or_else(|| {
                    ErrorObjectOwned::owned(
                        -32601,
                        format!("no method {method:?}; see help"),
                        None::<()>,
                    )
                })?;
                Ok(json!({ "methods": [spec] }))
            }
            None => Ok(json!({ "methods": METHODS })),
        },
        "stop" => {
            ctx.shutdown.send_replace(true);
            Ok(json!({}))
        }
        other => Err(ErrorObjectOwned::owned(
            -32601,
            format!("no method {other:?}"),
            None::<()>,
        )),
    }
}

fn parse_node_id(value: &str) -> Result<bitcoin::secp256k1::PublicKey, ErrorObjectOwned> {
    value
        .parse()
        .map_err(|_| invalid(format!("{value:?} is not a node id (66 hex characters)")))
}

fn parse_hash(name: &str, value: &str) -> Result<[u8; 32], ErrorObjectOwned> {
    let bytes: Vec<u8> = bitcoin::hex::FromHex::from_hex(value)
        .map_err(|_| invalid(format!("{name} must be 64 hex characters")))?;
    bytes
        .try_into()
        .map_err(|_| invalid(format!("{name} must be 32 bytes (64 hex characters)")))
}

/// One direction of a gossiped channel, as its sending end announced it.
fn direction_json(policy: &ln_core::node::DirectionPolicy) -> Value {
    json!({
        "fee_base_msat": policy.fee_base_msat,
        "fee_proportional_millionths": policy.fee_proportional_millionths,
        "cltv_expiry_delta": policy.cltv_expiry_delta,
        "htlc_minimum_msat": policy.htlc_minimum_msat,
        "htlc_maximum_msat": policy.htlc_maximum_msat,
        "last_update": policy.last_update,
    })
}

fn invoice_json(i: &InvoiceRecord) -> Value {
    json!({
        "payment_hash": i.payment_hash,
        "bolt11": i.bolt11,
        "description": i.description,
        "status": serde_json::to_value(i.status).unwrap_or(Value::Null),
        "amount_msat": i.amount_msat,
        "amount_received_msat": i.amount_received_msat,
        "is_hold": i.is_hold,
        "created_at": i.created_at,
        "expires_at": i.expires_at,
        "paid_at": i.paid_at,
    })
}

/// One entry of `listbroadcasts`.
fn broadcast_json(record: &ln_core::ldk_adapters::BroadcastRecord) -> Value {
    use ln_core::ldk_adapters::BroadcastOutcome;
    let (outcome, reason) = match &record.outcome {
        BroadcastOutcome::Accepted => ("accepted", None),
        BroadcastOutcome::Rejected { reason } => ("rejected", Some(reason.as_str())),
        BroadcastOutcome::NotSent { error } => ("not_sent", Some(error.as_str())),
    };
    json!({
        "sequence": record.sequence,
        "txid": record.txid.to_string(),
        "outcome": outcome,
        "reason": reason,
        "tx_hex": bitcoin::consensus::encode::serialize_hex(&record.transaction),
    })
}

fn payment_json(p: &PaymentRecord) -> Value {
    json!({
        "payment_hash": p.payment_hash,
        "status": serde_json::to_value(p.status).unwrap_or(Value::Null),
        "amount_msat": p.amount_msat,
        "fee_msat": p.fee_msat,
        "preimage": p.preimage,
        "destination": p.destination,
        "bolt11": p.bolt11,
        "failure_reason": p.failure_reason,
        "last_path_failure": p.last_path_failure,
        "created_at": p.created_at,
        "attempts": p.attempts,
    })
}
