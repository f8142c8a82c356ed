//! HTLC interception for LSPs and gateways: `intercept_scid`, `listinterceptedhtlcs`,
//! `resolvehtlc` (also served as `resolve_htlc`). See docs/lsp.md.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{Hash32, NodeId, Uint, MAX_MSAT};
use crate::{method, NoParams};

method!(
    /// `intercept_scid`.
    InterceptScid = "intercept_scid", NoParams => InterceptScidResult,
    "A fresh intercept short channel id for a client's invoice route hint (LSPs, gateways): HTLCs sent to it are held until resolvehtlc, and failed back after intercept_timeout_secs.

The id is LDK's `get_intercept_scid`: a fake one that no channel has. An HTLC whose onion asks this
node to forward it to such an id is not forwarded or failed by itself: it is held, recorded
(`listinterceptedhtlcs`), and waits for `resolvehtlc`, at most `intercept_timeout_secs` (default
120 s, see [configuration.md](configuration.md)). Every call gives a new id; they cost nothing and
never run out. Put `route_hint` in the client's invoice (`invoice`'s `route_hint`). How an LSP
uses them: [lsp.md](lsp.md).

Errors: none of its own."
);

/// The result of `intercept_scid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InterceptScidResult {
    /// The intercept short channel id, `BLOCKxTXxOUT`.
    pub short_channel_id: String,
    /// This node's id: the route hint's source node.
    pub node_id: String,
    /// The base fee to put in the hint, msat: our forwarding fee. Payers add it for us; LDK does not check it for intercepted HTLCs.
    pub fee_base_msat: u32,
    /// The proportional fee to put in the hint, millionths.
    pub fee_proportional_millionths: u32,
    /// The CLTV delta to put in the hint, blocks: our forwarding delta (72 on Bitcoin, 145 on Qtum; LDK needs at least 48).
    pub cltv_expiry_delta: u16,
    /// Confirmations a channel this node opens needs before it can carry the HTLC (6 on Bitcoin, 29 on Qtum). A client whose channel is opened just in time adds these, plus 2, to its invoice's `min_final_cltv_expiry_delta`.
    pub confirmation_blocks: u32,
    /// The route hint as `invoice`'s `route_hint` takes it:
    /// `node_id:short_channel_id:fee_base_msat:fee_proportional_millionths:cltv_expiry_delta`.
    pub route_hint: String,
}

method!(
    /// `listinterceptedhtlcs`.
    ListInterceptedHtlcs = "listinterceptedhtlcs", ListInterceptedHtlcsParams => ListInterceptedHtlcsResult,
    "HTLCs held for an intercept SCID, oldest first, pending or resolved.

They are kept in the store and survive restarts. The records follow what LDK holds. LDK keeps
pending intercepted HTLCs across restarts, so they are listed and can be resolved after a restart.
A pending record whose HTLC LDK no longer holds is marked failed within about a minute (right
after a restart LDK may take an HTLC in again a moment later, so it waits that long). A record
resolved just before xlnd stopped, whose resolution never reached LDK's saved state, is pending
again.

Errors: -32602 (an unknown `status`), 701."
);

/// The params of `listinterceptedhtlcs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListInterceptedHtlcsParams {
    /// Only pending, forwarded or failed ones.
    pub status: Option<InterceptStatus>,
}

/// Where an intercepted HTLC stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InterceptStatus {
    /// Held, waiting for `resolvehtlc`.
    Pending,
    /// Forwarded on.
    Forwarded,
    /// Failed back to the previous hop.
    Failed,
}

/// The result of `listinterceptedhtlcs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListInterceptedHtlcsResult {
    /// The HTLCs, oldest first.
    pub intercepted_htlcs: Vec<InterceptedHtlc>,
}

/// One intercepted HTLC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InterceptedHtlc {
    /// LDK's id of the intercepted HTLC, 64 hex characters: what `resolvehtlc` takes.
    pub intercept_id: String,
    /// The intercept SCID the payer's onion asked for, `BLOCKxTXxOUT`.
    pub requested_next_hop_scid: String,
    /// Payment hash.
    pub payment_hash: String,
    /// What the incoming HTLC carries, msat.
    pub inbound_amount_msat: u64,
    /// What the onion asks us to forward, msat: `inbound_amount_msat` less our hint's fee.
    pub expected_outbound_amount_msat: u64,
    /// The channel the HTLC came in on, when one of our channels is the only one with an incoming HTLC of this payment hash and amount (LDK does not say); else `null`.
    pub incoming_channel_id: Option<String>,
    /// That HTLC's CLTV expiry, a block height, when it is the only such HTLC; else `null`. LDK fails the HTLC back by itself 39 blocks before the expiry of the HTLC it would send on, which is at least 48 blocks below this.
    pub incoming_cltv_expiry: Option<u32>,
    /// When the node recorded it, Unix seconds.
    pub received_at: u64,
    /// `pending` (waits for `resolvehtlc`), `forwarded` (handed to the next channel; whether the payee then settled it shows in `listforwards`) or `failed` (failed back).
    pub status: InterceptStatus,
    /// For a pending one under a time limit: the node fails it back once the clock is past this, Unix seconds; `null` otherwise.
    pub timeout_at: Option<u64>,
    /// When it was forwarded or failed, Unix seconds.
    pub resolved_at: Option<u64>,
    /// For a forwarded one: the channel it went out on.
    pub outgoing_channel_id: Option<String>,
    /// For a forwarded one: the amount sent on, msat.
    pub outbound_amount_msat: Option<u64>,
    /// For a failed one: why: the operator's `reason` (default `failed by the operator`), `not resolved within N s (intercept_timeout_secs); failed back`, `LDK failed it back: …` (e.g. `ForwardExpiryBuffer`: its CLTV expiry came near), or `LDK no longer holds it …`.
    pub failure_reason: Option<String>,
}

/// The description `resolvehtlc` and `resolve_htlc` share.
const RESOLVE_DESCRIPTION: &str = "Forward or fail a pending intercepted HTLC (settle with a preimage is not possible with LDK 0.2.7: use a hold invoice).

Also served as `resolve_htlc`. A refused call changes nothing. Give `channel_id` or `peer_id` for
`forward`, not both. Sending less than expected keeps the difference as a fee, but an xln payee
refuses an HTLC below its invoice's amount.

`settle` is always refused (error 102): LDK 0.2.7 can only forward or fail an intercepted HTLC
(`ChannelManager::forward_intercepted_htlc` and `fail_intercepted_htlc`); it has no way to claim
one with a preimage. A gateway that settles payments itself issues a hold invoice instead
(`invoice <amount_msat> <description> payment_hash=<hash>`) and settles it with `settleinvoice
<preimage>`.

The result is the HTLC, as in `listinterceptedhtlcs`, now `forwarded` or `failed`. `forwarded`
means LDK took it for the channel; the payment's outcome shows in `listforwards` (and at the
payer).

Errors: -32602 (a malformed `id`, `channel_id`, `peer_id` or `preimage`; an unknown `action`;
`forward` without `channel_id` or `peer_id`, or with both; a parameter of another action;
`amount_msat` 0 or above `inbound_amount_msat`), 100 (no intercepted HTLC with this id; no open
channel with this id, or with this peer), 303 (the channel cannot carry it now: not confirmed yet,
peer offline, closing, or too little outbound capacity; the message says which), 504 (already
forwarded or failed, with how; or LDK does not hold it now), 102 (`settle`), 701.";

method!(
    /// `resolvehtlc`.
    ResolveHtlc = "resolvehtlc", ResolveHtlcParams => InterceptedHtlc,
    RESOLVE_DESCRIPTION
);

method!(
    /// `resolve_htlc`: `resolvehtlc` under the name some clients use.
    ResolveHtlcAlias = "resolve_htlc", ResolveHtlcParams => InterceptedHtlc,
    "The same as resolvehtlc, under the name some clients use: forward or fail a pending intercepted HTLC."
);

/// What `resolvehtlc` does with the HTLC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResolveAction {
    /// Send it on.
    Forward,
    /// Fail it back.
    Fail,
    /// Claim it with a preimage (refused: LDK 0.2.7 cannot).
    Settle,
}

/// The params of `resolvehtlc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResolveHtlcParams {
    /// intercept_id from listinterceptedhtlcs (64 hex characters).
    pub id: Hash32,
    /// forward, fail or settle.
    pub action: ResolveAction,
    /// forward: the channel to forward over (channel id, 64 hex characters).
    pub channel_id: Option<Hash32>,
    /// forward: the peer to forward to, over its usable channel that can carry the amount and the most besides.
    pub peer_id: Option<NodeId>,
    /// forward: amount to send on, msat (default expected_outbound_amount_msat; at most inbound_amount_msat).
    pub amount_msat: Option<Uint<MAX_MSAT>>,
    /// fail: why, kept in the record (the payer only sees unknown_next_peer); at most 256 bytes.
    pub reason: Option<String>,
    /// settle: hex preimage, 64 characters (always refused, error 102).
    pub preimage: Option<Hash32>,
}
