//! The RPC method table: names, parameters in positional order, and help text. The daemon
//! validates parameters against it and serves it through `help`, which `xln-cli` uses for its own
//! help and for converting command-line arguments.

use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde::Serialize;
use serde_json::{Map, Value};

/// One parameter.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ParamSpec {
    /// Name (also its key in by-name calls).
    pub name: &'static str,
    /// `string`, `integer`, `boolean`, `integer|all` or `integer|any`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Must be given.
    pub required: bool,
    /// What it is.
    pub description: &'static str,
}

/// One method.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MethodSpec {
    /// Name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Parameters, in positional order.
    pub params: &'static [ParamSpec],
    /// The result's fields.
    pub result: &'static str,
}

const fn req(name: &'static str, kind: &'static str, description: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind,
        required: true,
        description,
    }
}
const fn opt(name: &'static str, kind: &'static str, description: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind,
        required: false,
        description,
    }
}

/// Every method the daemon serves.
pub const METHODS: &[MethodSpec] = &[
    MethodSpec { name: "getinfo", description: "Node id, alias, chain, sync state, peer and channel counts.", params: &[],
        result: "id, alias, chain (bitcoin/qtum), network, block_height, block_hash, synced_to_chain, num_peers, num_active_channels, num_pending_channels, num_inactive_channels, p2p_addresses, version" },
    MethodSpec { name: "newaddr", description: "A fresh on-chain receive address of the node's wallet.", params: &[], result: "address" },
    MethodSpec { name: "listfunds", description: "On-chain wallet outputs and balances, and the node's balance in each channel.", params: &[],
        result: "onchain_confirmed_sat, onchain_unconfirmed_sat, onchain_immature_sat, pending_sweep_sat, outputs [txid, vout, amount_sat, address, confirmations], channels [channel_id, peer_id, our_amount_msat, capacity_sat, state]" },
    MethodSpec { name: "withdraw", description: "Send on-chain funds from the wallet to an address.", params: &[
        req("address", "string", "destination address in this chain's encoding"),
        req("amount_sat", "integer|all", "amount in satoshis, or \"all\" to empty the wallet"),
        opt("feerate_sat_per_vb", "integer", "fee rate in sat/vB (default: the node's estimate for confirmation within about 2 hours); at least 1 on Bitcoin, 402 on Qtum; raised to the chain's fee floor (253 sat per 1000 weight units on Bitcoin) if below it")], result: "txid" },
    MethodSpec { name: "connect", description: "Connect to a Lightning peer; returns once the Lightning handshake is done.", params: &[
        req("id", "string", "node id, or node_id@host:port"),
        opt("host", "string", "host, if not in id"),
        opt("port", "integer", "port, if not in id (default: the chain's Lightning port)")], result: "id" },
    MethodSpec { name: "disconnect", description: "Disconnect from a connected peer (channels stay open, and xlnd reconnects to channel peers within seconds).", params: &[
        req("id", "string", "node id")], result: "{}" },
    MethodSpec { name: "listpeers", description: "Connected peers and peers we have channels with.", params: &[], result: "peers [id, connected, address]" },
    MethodSpec { name: "fundchannel", description: "Open a channel to a connected peer; returns once the funding transaction is broadcast.", params: &[
        req("id", "string", "peer node id"),
        req("amount_sat", "integer", "channel capacity in satoshis"),
        opt("push_msat", "integer", "amount given to the peer at open, msat (default 0)"),
        opt("announce", "boolean", "announce the channel to the network (default true)")], result: "channel_id, funding_txid, funding_output" },
    MethodSpec { name: "listchannels", description: "The node's channels with balances and state.", params: &[],
        result: "channels [channel_id, short_channel_id, peer_id, state (pending/active/inactive/closing), is_usable, is_public, is_outbound, capacity_sat, local_balance_msat, outbound_capacity_msat, inbound_capacity_msat, funding_txid, funding_output, confirmations, confirmations_required, pending_htlcs, has_anchors, our_reserve_sat, their_reserve_sat, inbound_htlc_minimum_msat, outbound_htlc_minimum_msat, next_outbound_htlc_limit_msat, next_outbound_htlc_minimum_msat, next_outbound_htlc_limit_reason, peer_max_htlc_value_in_flight_msat, outbound_htlcs_in_flight, fee_base_msat, fee_proportional_millionths, cltv_expiry_delta]" },
    MethodSpec { name: "setchannel", description: "Set the forwarding policy (fees, CLTV delta) of one channel, of every channel with a peer, or of all channels; only the fields given change. Checked before anything changes, kept across restarts and announced in a new channel_update.", params: &[
        req("id", "string", "channel id, short channel id (BLOCKxTXxOUT), peer id (all its channels) or \"all\""),
        opt("fee_base_msat", "integer", "fee per forwarded HTLC, msat (0 to 4294967295)"),
        opt("fee_proportional_millionths", "integer", "fee per million msat forwarded, ppm (0 to 4294967295)"),
        opt("cltv_expiry_delta", "integer", "blocks between an incoming HTLC's expiry and the forwarded one's; 48 to 960 on Bitcoin, 97 to 863 on Qtum"),
        opt("htlc_minimum_msat", "integer", "refused: LDK fixes the smallest HTLC when a channel opens"),
        opt("htlc_maximum_msat", "integer", "refused: LDK announces 90% of the capacity or the peer's in-flight limit, whichever is smaller")],
        result: "channels [channel_id, short_channel_id, peer_id, fee_base_msat, fee_proportional_millionths, cltv_expiry_delta, htlc_minimum_msat, htlc_maximum_msat]" },
    MethodSpec { name: "close", description: "Close a channel cooperatively, or unilaterally with force.", params: &[
        req("id", "string", "channel id, short channel id (BLOCKxTXxOUT) or peer id"),
        opt("force", "boolean", "broadcast our commitment transaction instead of negotiating (default false)")], result: "type (mutual/unilateral), channel_id, txid of the closing or commitment transaction (null if not published within 30 s, 10 s with force)" },
    MethodSpec { name: "invoice", description: "Create a BOLT11 invoice. With payment_hash it is a hold invoice: payments are held until settleinvoice or cancelinvoice.", params: &[
        req("amount_msat", "integer|any", "amount in millisatoshis, or \"any\""),
        req("description", "string", "description shown to the payer"),
        opt("expiry_secs", "integer", "seconds until it expires (default 3600)"),
        opt("payment_hash", "string", "hex payment hash for a hold invoice"),
        opt("route_hint", "string", "a route hint to add, as intercept_scid's route_hint: node_id:short_channel_id:fee_base_msat:fee_proportional_millionths:cltv_expiry_delta (an LSP's intercept SCID)"),
        opt("min_final_cltv_expiry_delta", "integer", "blocks the payment must have left when it reaches us (default: the chain's policy, 48 on Bitcoin; about a day for a hold invoice); for a channel opened just in time add the LSP's confirmation_blocks plus 2")], result: "bolt11, payment_hash, expires_at" },
    MethodSpec { name: "settleinvoice", description: "Settle a held hold-invoice payment with its preimage.", params: &[
        req("preimage", "string", "hex preimage of the invoice's payment hash")], result: "{}" },
    MethodSpec { name: "cancelinvoice", description: "Cancel an unpaid or held invoice; held payments are failed back.", params: &[
        req("payment_hash", "string", "hex payment hash")], result: "{}" },
    MethodSpec { name: "listinvoices", description: "Invoices issued and keysend payments received.", params: &[
        opt("payment_hash", "string", "only this one")],
        result: "invoices [payment_hash, bolt11, description, status (unpaid/held/paid/canceled/expired), amount_msat, amount_received_msat, is_hold, created_at, expires_at, paid_at]" },
    MethodSpec { name: "waitinvoice", description: "Wait until an invoice is held, paid, canceled or expired.", params: &[
        req("payment_hash", "string", "hex payment hash"),
        opt("timeout_secs", "integer", "give up after this many seconds (default 600)")], result: "the invoice, as in listinvoices" },
    MethodSpec { name: "waitanyinvoice", description: "Wait for the next invoice paid after lastpay_index (Core Lightning's semantics): returns at once if one was paid since, so a program that remembers the last pay_index it handled misses none, even across restarts.", params: &[
        opt("lastpay_index", "integer", "the pay_index of the last paid invoice handled (default 0: the first invoice ever paid)"),
        opt("timeout_secs", "integer", "give up after this many seconds (default: wait until one is paid)")],
        result: "the invoice, as in listinvoices, with pay_index" },
    MethodSpec { name: "listevents", description: "Stored events of one stream (invoices, payments, htlcs, channels, peers, blocks, intercepted_htlcs) after an index: what subscribe_<stream> sends over WebSocket, for clients that poll.", params: &[
        req("stream", "string", "invoices, payments, htlcs, channels, peers, blocks or intercepted_htlcs"),
        opt("since_index", "integer", "only events with an index above this (default 0)"),
        opt("limit", "integer", "at most this many events (default and maximum 1000)")],
        result: "events [index, stream, type, timestamp, data], last_index (of the stream now)" },
    MethodSpec { name: "pay", description: "Pay a BOLT11 invoice and wait for the result; paying an invoice again joins or returns its payment.", params: &[
        req("bolt11", "string", "the invoice"),
        opt("amount_msat", "integer", "amount for an invoice without one"),
        opt("max_fee_msat", "integer", "most routing fees to pay (default: 1% of the amount plus 50000 msat)"),
        opt("timeout_secs", "integer", "stop waiting after this many seconds (default 90; the payment may still complete)")],
        result: "payment_hash, status (succeeded/failed), preimage, amount_msat, fee_msat, failure_reason, last_path_failure, destination, bolt11, created_at, attempts" },
    MethodSpec { name: "keysend", description: "Send a payment without an invoice (keysend) and wait for the result.", params: &[
        req("destination", "string", "payee node id"),
        req("amount_msat", "integer", "amount in millisatoshis"),
        opt("max_fee_msat", "integer", "most routing fees to pay (default: 1% of the amount plus 50000 msat)"),
        opt("timeout_secs", "integer", "stop waiting after this many seconds (default 90; the payment may still complete)")], result: "as pay, with bolt11 null" },
    MethodSpec { name: "listpayments", description: "Outgoing payments.", params: &[
        opt("payment_hash", "string", "only this one")],
        result: "payments [payment_hash, status (pending/succeeded/failed), amount_msat, fee_msat, preimage, destination, bolt11, failure_reason, last_path_failure, created_at, attempts]" },
    MethodSpec { name: "getroute", description: "The route a payment would take now, with fees, CLTV and success probability; or why there is none.", params: &[
        req("destination", "string", "payee node id, or a BOLT11 invoice"),
        opt("amount_msat", "integer", "amount (for a node id, or an invoice without one)")],
        result: "amount_msat, total_fee_msat, total_cltv_expiry_delta, success_probability, hops [node_id, short_channel_id, amount_msat, fee_msat, cltv_expiry_delta, success_probability]" },
    MethodSpec { name: "listforwards", description: "Payments this node forwarded (and failed back), the fees it earned, and their totals.", params: &[
        opt("status", "string", "only \"settled\" or only \"failed\" forwards"),
        opt("since", "integer", "only forwards resolved at or after this Unix time, seconds"),
        opt("until", "integer", "only forwards resolved before this Unix time, seconds")],
        result: "forwards [in_channel_id, out_channel_id, in_msat, out_msat, fee_msat, claimed_on_chain, resolved_at, status (settled/failed), failure_reason], count, total_fee_msat, total_out_msat" },
    MethodSpec { name: "intercept_scid", description: "A fresh intercept short channel id for a client's invoice route hint (LSPs, gateways): HTLCs sent to it are held until resolvehtlc, and failed back after intercept_timeout_secs.", params: &[],
        result: "short_channel_id (BLOCKxTXxOUT), node_id, fee_base_msat, fee_proportional_millionths, cltv_expiry_delta (blocks), confirmation_blocks (blocks a channel this node opens needs), route_hint (for invoice's route_hint)" },
    MethodSpec { name: "listinterceptedhtlcs", description: "HTLCs held for an intercept SCID, oldest first, pending or resolved.", params: &[
        opt("status", "string", "only pending, forwarded or failed ones")],
        result: "intercepted_htlcs [intercept_id, requested_next_hop_scid, payment_hash, inbound_amount_msat, expected_outbound_amount_msat, incoming_channel_id, incoming_cltv_expiry (block height), received_at, status (pending/forwarded/failed), timeout_at (pending only), resolved_at, outgoing_channel_id, outbound_amount_msat, failure_reason]" },
    MethodSpec { name: "resolvehtlc", description: "Forward or fail a pending intercepted HTLC (settle with a preimage is not possible with LDK 0.2.7: use a hold invoice).", params: &[
        req("id", "string", "intercept_id from listinterceptedhtlcs (64 hex characters)"),
        req("action", "string", "forward, fail or settle"),
        opt("channel_id", "string", "forward: the channel to forward over"),
        opt("peer_id", "string", "forward: the peer to forward to, over its usable channel that can carry the most"),
        opt("amount_msat", "integer", "forward: amount to send on, msat (default expected_outbound_amount_msat; at most inbound_amount_msat)"),
        opt("reason", "string", "fail: why, kept in the record (the payer only sees unknown_next_peer)"),
        opt("preimage", "string", "settle: hex preimage (always refused, error 102)")],
        result: "the HTLC, as in listinterceptedhtlcs" },
    MethodSpec { name: "resolve_htlc", description: "The same as resolvehtlc (the name issue-style clients use): forward or fail a pending intercepted HTLC (settle with a preimage is not possible with LDK 0.2.7: use a hold invoice).", params: &[
        req("id", "string", "intercept_id from listinterceptedhtlcs (64 hex characters)"),
        req("action", "string", "forward, fail or settle"),
        opt("channel_id", "string", "forward: the channel to forward over"),
        opt("peer_id", "string", "forward: the peer to forward to, over its usable channel that can carry the most"),
        opt("amount_msat", "integer", "forward: amount to send on, msat (default expected_outbound_amount_msat; at most inbound_amount_msat)"),
        opt("reason", "string", "fail: why, kept in the record (the payer only sees unknown_next_peer)"),
        opt("preimage", "string", "settle: hex preimage (always refused, error 102)")],
        result: "the HTLC, as in listinterceptedhtlcs" },
    MethodSpec { name: "listbroadcasts", description: "The node's last 256 transaction broadcasts (funding, closes, claims, sweeps, withdrawals, rebroadcasts included), oldest first, with the chain node's answer.", params: &[],
        result: "broadcasts [sequence, txid, outcome (accepted|rejected|not_sent), reason, tx_hex]" },
    MethodSpec { name: "decode", description: "Decode a BOLT11 invoice of this node's chain.", params: &[
        req("bolt11", "string", "the invoice")],
        result: "chain, network, payee, amount_msat, payment_hash, description, expiry_secs, min_final_cltv_expiry_delta, created_at" },
    MethodSpec { name: "listnodes", description: "Nodes known from gossip.", params: &[], result: "nodes [id, alias, addresses, last_update, num_channels]" },
    MethodSpec { name: "listgraphchannels", description: "Public channels known from gossip.", params: &[],
        result: "channels [short_channel_id, node1, node2, capacity_sat, node1_to_node2_enabled, node2_to_node1_enabled, node1_to_node2 and node2_to_node1 (each null or {fee_base_msat, fee_proportional_millionths, cltv_expiry_delta, htlc_minimum_msat, htlc_maximum_msat, last_update})]" },
    MethodSpec { name: "signmessage", description: "Sign a message with the node key, in the zbase32 format LND and Core Lightning use.", params: &[
        req("message", "string", "the message (at most 65535 bytes)")],
        result: "zbase (the signature to give out), signature (hex, 64 bytes), recid (hex, 1 byte)" },
    MethodSpec { name: "checkmessage", description: "Check a zbase32 message signature: against pubkey, or without it, that the signer is a node of our gossip graph.", params: &[
        req("message", "string", "the message signed"),
        req("zbase", "string", "the zbase32 signature"),
        opt("pubkey", "string", "the node id that should have signed it")],
        result: "pubkey (the signer's key, recovered from the signature; null if none recovers), verified" },
    MethodSpec { name: "help", description: "This table: every method with its parameters.", params: &[
        opt("method", "string", "only this method (an unknown one is error -32601)")], result: "methods [name, description, params [name, type, required, description], result]" },
    MethodSpec { name: "stop", description: "Shut the daemon down cleanly.", params: &[], result: "{}" },
];

/// The spec of `name`.
pub fn spec(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

/// An "invalid params" error (JSON-RPC code -32602) with a message saying what to do.
pub fn invalid(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, message.into(), None::<()>)
}

/// The call's parameters as a by-name map, checked against the method's spec: positional
/// arrays are mapped in order; unknown names, too many values and missing required ones are
/// refused.
pub fn named(
    spec: &MethodSpec,
    params: &Params<'_>,
) -> Result<Map<String, Value>, ErrorObjectOwned> {
    let usage = || {
        let names: Vec<String> = spec
            .params
            .iter()
            .map(|p| {
                if p.required {
                    p.name.to_owned()
                } else {
                    format!("[{}]", p.name)
                }
            })
            .collect();
        format!("usage: {} {}", spec.name, names.join(" "))
    };
    let value: Value = if params.as_str().is_none() {
        Value::Null
    } else {
        params
            .parse()
            .map_err(|_| invalid(format!("params must be an array or an object; {}", usage())))?
    };
    let mut map = Map::new();
    match value {
        Value::Null => {}
        Value::Array(values) => {
            if values.len() > spec.params.len() {
                return Err(invalid(format!(
                    "{} takes at most {} params; {}",
                    spec.name,
                    spec.params.len(),
                    usage()
                )));
            }
            for (param, value) in spec.params.iter().zip(values) {
                if !value.is_null() {
                    map.insert(param.name.to_owned(), value);
                }
            }
        }
        Value::Object(object) => {
            for (key, value) in object {
                if !spec.params.iter().any(|p| p.name == key) {
                    return Err(invalid(format!(
                        "{} has no param {key:?}; {}",
                        spec.name,
                        usage()
                    )));
                }
                if !value.is_null() {
                    map.insert(key, value);
                }
            }
        }
        _ => {
            return Err(invalid(format!(
                "params must be an array or an object; {}",
                usage()
            )))
        }
    }
    for param in spec.params {
        if param.required && !map.contains_key(param.name) {
            return Err(invalid(format!(
                "missing param {}; {}",
                param.name,
                usage()
            )));
        }
    }
    Ok(map)
}

/// Typed access to a checked param map.
pub struct Args(pub Map<String, Value>);

impl Args {
    /// A string param.
    pub fn str(&self, name: &str) -> Result<Option<String>, ErrorObjectOwned> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(format!("{name} must be a string, not {other}"))),
        }
    }

    /// A required string param (presence was checked by [`named`]).
    pub fn req_str(&self, name: &str) -> Result<String, ErrorObjectOwned> {
        self.str(name)?
            .ok_or_else(|| invalid(format!("missing param {name}")))
    }

    /// A non-negative integer param, at most `max`.
    pub fn uint(&self, name: &str, max: u64) -> Result<Option<u64>, ErrorObjectOwned> {
        match self.0.get(name) {
            None => Ok(None),
            Some(value) => uint_value(name, value, max).map(Some),
        }
    }

    /// A boolean param.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ErrorObjectOwned> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(invalid(format!(
                "{name} must be true or false, not {other}"
            ))),
        }
    }

    /// An integer param that may instead be the literal word `keyword` (`all`, `any`).
    pub fn uint_or(
        &self,
        name: &str,
        keyword: &str,
        max: u64,
    ) -> Result<Option<Option<u64>>, ErrorObjectOwned> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s == keyword => Ok(Some(None)),
            Some(value) => uint_value(name, value, max)
                .map(|v| Some(Some(v)))
                .map_err(|_| {
                    invalid(format!(
                        "{name} must be a non-negative integer or \"{keyword}\", not {value}"
                    ))
                }),
        }
    }
}

fn uint_value(name: &str, value: &Value, max: u64) -> Result<u64, ErrorObjectOwned> {
    let number = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    match number {
        Some(n) if n <= max => Ok(n),
        Some(_) => Err(invalid(format!(
            "{name} {value} is too large (at most {max})"
        ))),
        None => Err(invalid(format!(
            "{name} must be a non-negative integer, not {value}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str, json: &str) -> Result<Map<String, Value>, ErrorObjectOwned> {
        let spec = spec(method).ok_or_else(|| invalid("no such method"))?;
        named(spec, &Params::new(Some(json)))
    }

    #[test]
    fn positional_and_named_params_give_the_same_map() -> Result<(), ErrorObjectOwned> {
        let by_position = parse("invoice", r#"[1000, "coffee"]"#)?;
        let by_name = parse(
            "invoice",
            r#"{"description": "coffee", "amount_msat": 1000}"#,
        )?;
        assert_eq!(by_position, by_name);
        Ok(())
    }

    #[test]
    fn bad_shapes_are_invalid_params() {
        assert!(parse("invoice", r#"[1000]"#).is_err());
        assert!(parse(
            "invoice",
            r#"{"amount_msat": 1, "description": "x", "colour": 1}"#
        )
        .is_err());
        assert!(parse("getinfo", r#"[1]"#).is_err());
        assert!(parse("pay", r#""lnbc""#).is_err());
    }

    #[test]
    fn integers_are_checked() {
        let args = Args(
            serde_json::from_str(r#"{"a": -5, "b": 1.5, "c": "12", "d": 99, "e": "all"}"#)
                .unwrap_or_default(),
        );
        assert!(args.uint("a", 100).is_err());
        assert!(args.uint("b", 100).is_err());
        assert_eq!(args.uint("c", 100).ok(), Some(Some(12)));
        assert!(args.uint("d", 50).is_err());
        assert_eq!(args.uint_or("e", "all", 100).ok(), Some(Some(None)));
        assert!(args.uint_or("a", "all", 100).is_err());
    }

    #[test]
    fn setchannel_help_gives_each_chains_cltv_range() {
        let description = spec("setchannel")
            .and_then(|m| m.params.iter().find(|p| p.name == "cltv_expiry_delta"))
            .map(|p| p.description)
            .unwrap_or_default();
        for (chain, params) in [
            ("Bitcoin", ln_core::ChainParams::bitcoin_mainnet()),
            ("Qtum", ln_core::ChainParams::qtum_mainnet()),
        ] {
            let policy = ln_core::node::ChannelPolicy::for_chain(&params);
            let range = format!(
                "{} to {} on {chain}",
                policy.min_cltv_expiry_delta(),
                policy.max_cltv_expiry_delta()
            );
            assert!(description.contains(&range), "{description} lacks {range}");
        }
    }

    #[test]
    fn every_method_is_documented() {
        for method in METHODS {
            assert!(!method.description.is_empty(), "{}", method.name);
            for param in method.params {
                assert!(
                    !param.description.is_empty(),
                    "{}.{}",
                    method.name,
                    param.name
                );
            }
        }
    }
}
