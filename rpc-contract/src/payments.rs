//! Outgoing payments and forwards: `pay`, `keysend`, `listpayments`, `getroute`, `listforwards`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::method;
use crate::types::{Destination, Hash32, Index, Msat, NodeId, Uint, MAX_WAIT_SECS};

method!(
    /// `pay`.
    Pay = "pay", PayParams => Payment,
    "Pay a BOLT11 invoice and wait for the result; paying an invoice again joins or returns its payment.

LDK retries other routes for up to 60 seconds. `pay` is idempotent per invoice: while a payment of
the invoice is in flight, another `pay` of it sends nothing and waits for that payment's outcome
(every caller gets the same result); once the invoice is paid, `pay` returns that payment again
(with its `preimage`). After a failed payment, `pay` makes a new attempt, recorded under the same
payment hash with `attempts` one higher.

The result has `status` `succeeded` or `failed`. A payment that was sent but failed is a result
with `status: \"failed\"` and a `failure_reason`, not an error. To a hold invoice, `pay` waits until
the payee settles or cancels; give a larger `timeout_secs`.

When no route is found, `pay` (and `keysend`) do not fail at once in two cases, but look again every
half second until `timeout_secs`: while gossip is still arriving (the node started, or a channel
announcement entered its graph, in the last 60 seconds) and our channels could carry the amount; and
while HTLCs of our channels are being settled (a payment we received a moment ago frees its balance
only once both sides have signed). The error after the timeout says it waited.

A payment that finds our own payments' HTLCs filling a channel (the peer's HTLC slots, or its cap
on value in flight) waits in the send queue instead of failing: in the order they came, each goes
as soon as one of ours ends. Error 505 when 1,000 payments wait already, or when `timeout_secs`
runs out in the queue; nothing was sent then.

Errors: 400 (not a valid invoice), 401 (invoice for another chain or network), 402 (expired),
-32602 (`amount_msat` given for an invoice that has an amount, or missing for one that has none;
amount 0; our own invoice), 503 (amount below the smallest HTLC), 500 (a payment of another
invoice or amount with the same payment hash is in flight or done), 501 (no route: the message
names the limiting fact and the largest amount that would go now), 502 (LDK could not send it),
505 (the send queue was full, or the payment waited in it until `timeout_secs`), 101 (still pending when `timeout_secs` ran out: see `listpayments`), 701.

Error 501 names what stops the payment, first of: no channels; no usable channel (each channel's
state: confirmations to go, peer not connected, closing); the amount is more than one HTLC (or, for
an invoice that allows multi-part payments, all our channels) can carry now, naming the channel
and its limit's cause (our balance within the reserve, the commitment fee we keep as funder, the
peer's cap on HTLC value in flight, its HTLC slots); the amount is below the smallest HTLC our peers
accept; the payee is not in our network graph and the invoice has no route hints; our graph has no
path with enough capacity. It ends with the largest amount that would go now (found with the
router), or says that none would."
);

/// The params of `pay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PayParams {
    /// The invoice (a `lightning:` prefix is allowed).
    pub bolt11: String,
    /// Amount, only for an invoice without one.
    pub amount_msat: Option<Msat>,
    /// The most routing fees to pay (default: 1% of the amount plus 50000 msat).
    pub max_fee_msat: Option<Msat>,
    /// Stop waiting after this many seconds (default 90, at most 86,400; the payment may still complete).
    pub timeout_secs: Option<Uint<MAX_WAIT_SECS>>,
}

/// State of an outgoing payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// HTLCs are in flight (only in `listpayments`).
    Pending,
    /// The payee released the preimage.
    Succeeded,
    /// Abandoned; no HTLC is left in flight.
    Failed,
}

/// One outgoing payment (BOLT11 or keysend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Payment {
    /// Payment hash.
    pub payment_hash: String,
    /// `pending`, `succeeded` or `failed` (`pending` only appears in `listpayments`).
    pub status: PaymentStatus,
    /// Amount delivered to the payee.
    pub amount_msat: u64,
    /// Routing fees paid, once succeeded.
    pub fee_msat: Option<u64>,
    /// Proof of payment, once succeeded.
    pub preimage: Option<String>,
    /// Payee node id.
    pub destination: Option<String>,
    /// The invoice; `null` for keysend.
    pub bolt11: Option<String>,
    /// Why it failed: LDK's reason in words (the payee rejected it, every route failed, ...), with the last path failure.
    pub failure_reason: Option<String>,
    /// The last failure one of its paths met: the failing channel, between which nodes, and the onion error's network update.
    pub last_path_failure: Option<String>,
    /// When it was started (the latest attempt).
    pub created_at: u64,
    /// Which attempt this is: 1, and one more each time a failed payment of the invoice is paid again.
    pub attempts: u32,
}

method!(
    /// `keysend`.
    Keysend = "keysend", KeysendParams => Payment,
    "Send a payment without an invoice (keysend) and wait for the result.

The payee must accept keysend payments. The result is as for `pay`, with `bolt11` `null`.

Errors: -32602 (bad node id, amount 0, our own node id), 503, 500, 501, 502, 505, 101, 701, as for `pay`."
);

/// The params of `keysend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeysendParams {
    /// Payee node id.
    pub destination: NodeId,
    /// Amount in millisatoshis.
    pub amount_msat: Msat,
    /// Most routing fees to pay (default: 1% of the amount plus 50000 msat).
    pub max_fee_msat: Option<Msat>,
    /// Stop waiting after this many seconds (default 90, at most 86,400; the payment may still complete).
    pub timeout_secs: Option<Uint<MAX_WAIT_SECS>>,
}

method!(
    /// `listpayments`.
    ListPayments = "listpayments", ListPaymentsParams => ListPaymentsResult,
    "Outgoing payments.

Oldest first; each with the fields of the `pay` result.

Errors: -32602 (bad hash), 701."
);

/// The params of `listpayments`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListPaymentsParams {
    /// Only this one (hex payment hash). An unknown hash gives an empty list.
    pub payment_hash: Option<Hash32>,
}

/// The result of `listpayments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListPaymentsResult {
    /// The payments, oldest first.
    pub payments: Vec<Payment>,
}

method!(
    /// `getroute`.
    GetRoute = "getroute", GetRouteParams => GetRouteResult,
    "The route a payment would take now, with fees, CLTV and success probability; or why there is none.

From our usable channels and gossip graph, as `pay` would find it. Nothing is sent.

Errors: as `pay` and `keysend` before sending: -32602 (also: `amount_msat` missing for a node id),
400, 401, 503, and 501 with the same reasons."
);

/// The params of `getroute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GetRouteParams {
    /// The payee's node id (a keysend), or a BOLT11 invoice.
    pub destination: Destination,
    /// Amount: required for a node id; for an invoice only when it has none.
    pub amount_msat: Option<Msat>,
}

/// The result of `getroute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GetRouteResult {
    /// What the payee receives.
    pub amount_msat: u64,
    /// Routing fees of the route.
    pub total_fee_msat: u64,
    /// CLTV of the route, blocks: the hops' deltas and the payee's final delta.
    pub total_cltv_expiry_delta: u32,
    /// The product of the hops' probabilities.
    pub success_probability: f64,
    /// From our peer to the payee.
    pub hops: Vec<RouteHop>,
}

/// One hop of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RouteHop {
    /// The node this hop reaches.
    pub node_id: String,
    /// The channel it takes, `BLOCKxTXxOUT`.
    pub short_channel_id: String,
    /// What the channel carries: the payment and the fees of later hops.
    pub amount_msat: u64,
    /// What this node charges to forward.
    pub fee_msat: u64,
    /// CLTV delta of this hop, blocks.
    pub cltv_expiry_delta: u32,
    /// The scorer's estimate for that channel and amount; 1 for our own channel.
    pub success_probability: f64,
}

method!(
    /// `listforwards`.
    ListForwards = "listforwards", ListForwardsParams => ListForwardsResult,
    "Payments this node forwarded (and failed back), the fees it earned, and their totals.

Oldest first. Like Core Lightning's `listforwards` with its `status` filter, and LND's
`fwdinghistory` with its time window.

Errors: -32602 (`status` is neither `settled` nor `failed`; `since` is not before `until`), 701."
);

/// The params of `listforwards`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListForwardsParams {
    /// Only "settled" or only "failed" forwards.
    pub status: Option<ForwardStatus>,
    /// Only forwards resolved at or after this Unix time, seconds.
    pub since: Option<Index>,
    /// Only forwards resolved before this Unix time, seconds: since=T until=T+86400 is one day.
    pub until: Option<Index>,
}

/// The result of `listforwards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListForwardsResult {
    /// The forwards selected, oldest first.
    pub forwards: Vec<Forward>,
    /// How many.
    pub count: u64,
    /// Fees earned by the settled ones among them.
    pub total_fee_msat: u64,
    /// What the settled ones forwarded out.
    pub total_out_msat: u64,
}

/// How a forward ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForwardStatus {
    /// The payee claimed it; we earned the fee.
    Settled,
    /// We failed it back to the previous hop.
    Failed,
}

/// One HTLC we forwarded or failed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Forward {
    /// Channel the payment came in on.
    pub in_channel_id: Option<String>,
    /// Channel it went out on; `null` when there was none (no such channel).
    pub out_channel_id: Option<String>,
    /// Amount that came in: `out_msat` plus `fee_msat`; `null` for a failed forward.
    pub in_msat: Option<u64>,
    /// Amount forwarded out; `null` for a failed forward.
    pub out_msat: Option<u64>,
    /// The same as `out_msat` (the name earlier versions used; kept for programs written against them).
    pub out_amount_msat: Option<u64>,
    /// Fee earned; `null` for a failed forward, and for a payment whose incoming channel was force-closed while it was in flight (LDK learns the fee only when its on-chain claim is done).
    pub fee_msat: Option<u64>,
    /// Settled on chain rather than in the channel.
    pub claimed_on_chain: bool,
    /// When it was resolved (the node's clock).
    pub resolved_at: u64,
    /// `settled`, or `failed` (we failed it back to the previous hop).
    pub status: ForwardStatus,
    /// Why, for a failed forward: the next channel or a later hop failed it, no such channel, an invalid onion, with LDK's reason.
    pub failure_reason: Option<String>,
}
