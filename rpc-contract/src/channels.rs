//! Channels: `fundchannel`, `listchannels`, `close`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{ChannelRef, Msat, NodeId, Sat};
use crate::{method, NoParams};

method!(
    /// `fundchannel`.
    FundChannel = "fundchannel", FundChannelParams => FundChannelResult,
    "Open a channel to a connected peer; returns once the funding transaction is broadcast.

Returns once the peer has signed and the funding transaction is broadcast. The channel is usable
after 6 confirmations on Bitcoin (see `listchannels`). The funding transaction pays the node's fee
estimate and spends confirmed coins only.

Errors: -32602 (bad node id; amount outside the chain's limits; `push_msat` above the capacity, or
below the chain's minimum reserve where there is one), 200 (peer not connected), 300 (the confirmed
balance is below `amount_sat`), 301 (LDK or the peer refused, or the funding transaction could not
be built, or the chain node refused it; the message says which), 101 (the peer did not sign
within 60 seconds, or the funding transaction was not broadcast within 30 seconds after that;
see `listchannels`)."
);

/// The params of `fundchannel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FundChannelParams {
    /// Peer node id. The peer must be connected.
    pub id: NodeId,
    /// Channel capacity in satoshis. On Bitcoin from 20,000 to 100,000,000 (1 BTC).
    pub amount_sat: Sat,
    /// Amount given to the peer at open, msat (default 0). At most the capacity.
    pub push_msat: Option<Msat>,
    /// Announce the channel to the network, so others can route through it (default true).
    pub announce: Option<bool>,
}

/// The result of `fundchannel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FundChannelResult {
    /// Channel id.
    pub channel_id: String,
    /// Funding transaction id.
    pub funding_txid: String,
    /// The output index of the channel in the funding transaction.
    pub funding_output: u32,
}

method!(
    /// `listchannels`.
    ListChannels = "listchannels", NoParams => ListChannelsResult,
    "The node's channels with balances and state.

A closed channel leaves this list. Its funds then show in `listfunds` (`pending_sweep_sat` until
they reach the wallet).

Errors: none of its own."
);

/// The result of `listchannels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListChannelsResult {
    /// One entry per open, opening or closing channel.
    pub channels: Vec<Channel>,
}

/// State of one of our channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelState {
    /// Waiting for confirmations.
    Pending,
    /// Ready, peer connected.
    Active,
    /// Ready, peer offline.
    Inactive,
    /// Shutting down.
    Closing,
}

/// One of our channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Channel {
    /// Channel id.
    pub channel_id: String,
    /// `BLOCKxTXxOUT` once the funding transaction is confirmed, else `null`.
    pub short_channel_id: Option<String>,
    /// The peer's node id.
    pub peer_id: String,
    /// `pending` (waiting for confirmations), `active`, `inactive` (peer offline) or `closing`.
    pub state: ChannelState,
    /// Payments can go through it now.
    pub is_usable: bool,
    /// Announced to the network.
    pub is_public: bool,
    /// We opened it.
    pub is_outbound: bool,
    /// Channel capacity.
    pub capacity_sat: u64,
    /// Our balance, our channel reserve included, HTLCs in flight excluded.
    pub local_balance_msat: u64,
    /// What we can send through it now.
    pub outbound_capacity_msat: u64,
    /// What we can receive through it now.
    pub inbound_capacity_msat: u64,
    /// Funding transaction id.
    pub funding_txid: Option<String>,
    /// Its output index.
    pub funding_output: Option<u32>,
    /// Confirmations of the funding transaction.
    pub confirmations: Option<u32>,
    /// Confirmations needed before the channel is usable.
    pub confirmations_required: Option<u32>,
    /// Number of HTLCs (payments) in flight.
    pub pending_htlcs: u64,
    /// An anchor-output channel (on Bitcoin; never on Qtum, see qtum.md).
    pub has_anchors: bool,
    /// What the peer makes us keep in the channel, `null` until known.
    pub our_reserve_sat: Option<u64>,
    /// What we make the peer keep.
    pub their_reserve_sat: u64,
    /// Smallest payment we accept through it, `null` until known.
    pub inbound_htlc_minimum_msat: Option<u64>,
    /// Smallest payment we can send through it, `null` until known.
    pub outbound_htlc_minimum_msat: Option<u64>,
    /// The largest payment (one HTLC) we can send through it now: our balance after the reserve, less what the peer's limits leave.
    pub next_outbound_htlc_limit_msat: u64,
    /// The smallest HTLC we can send through it now.
    pub next_outbound_htlc_minimum_msat: u64,
    /// What limits `next_outbound_htlc_limit_msat`, in words: our balance after the reserve, the commitment fee we keep as funder, the peer's cap on HTLC value in flight, or its HTLC slots.
    pub next_outbound_htlc_limit_reason: String,
    /// The peer's cap on the value of our HTLCs in flight towards it (LDK Node's default: 10 % of the channel; xln's: 100 %), `null` until known.
    pub peer_max_htlc_value_in_flight_msat: Option<u64>,
    /// Our HTLCs in flight on it; each takes one of the peer's HTLC slots.
    pub outbound_htlcs_in_flight: u64,
}

method!(
    /// `close`.
    Close = "close", CloseParams => CloseResult,
    "Close a channel cooperatively, or unilaterally with force.

A cooperative close needs the peer online. Both sides get their balance when the closing
transaction confirms. After a forced close, the peer gets its balance soon after our commitment
transaction confirms; ours comes back only after a delay that the peer chose (144 blocks between
two xln nodes on Bitcoin). xlnd sweeps it to the wallet by itself; until then it shows as
`pending_sweep_sat` in `listfunds`.

The call returns once the closing transaction (for `force`, our commitment transaction) is with
the chain node, or after 30 s (10 s with `force`) without it; the close goes on either way.

Errors: 100 (no open channel with that id), -32602 (not a channel id, short channel id or node id;
the peer id matches several channels: name one by channel id), 200 (cooperative close with the peer
offline: wait for it, or use `force`), 302 (LDK refused; the message says why)."
);

/// The params of `close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CloseParams {
    /// Channel id, short channel id (BLOCKxTXxOUT, or its number), or the peer's node id if we have only one channel with that peer.
    pub id: ChannelRef,
    /// Broadcast our commitment transaction instead of negotiating with the peer (default false).
    pub force: Option<bool>,
}

/// How a channel is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CloseType {
    /// Negotiated with the peer.
    Mutual,
    /// Our commitment transaction, alone.
    Unilateral,
}

/// The result of `close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CloseResult {
    /// `mutual` or `unilateral`.
    #[serde(rename = "type")]
    pub close_type: CloseType,
    /// Channel id.
    pub channel_id: String,
    /// The closing or commitment transaction the chain node accepted; `null` if it was not published within the wait.
    pub txid: Option<String>,
}
