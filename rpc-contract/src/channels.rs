//! Channels: `fundchannel`, `listchannels`, `close`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{ChannelRef, ChannelSelector, Index, Msat, NodeId, Sat, Uint};
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
    /// Feerate of the current commitment transactions, sat per 1000 weight units; `null` before
    /// the peer accepted the channel. The opener updates it as the chain's fees move.
    pub commitment_feerate_sat_per_kw: Option<u32>,
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
    /// What we charge per payment (HTLC) we forward out over it, msat. LDK's default is 1000; `setchannel` changes it.
    pub fee_base_msat: Option<u32>,
    /// What we charge per million msat forwarded out over it (ppm). LDK's default is 0.
    pub fee_proportional_millionths: Option<u32>,
    /// The blocks we ask between the expiry of an HTLC we receive and the one we forward over it: 72 on Bitcoin, 145 on Qtum by default.
    pub cltv_expiry_delta: Option<u16>,
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
the chain node, or after 30 s (10 s with `force`) without it; the close goes on either way. A
peer online when we force-close publishes its own commitment too: if the chain node got the
peer's first, ours is refused and `txid` is null. The channel then closes with the peer's
commitment, and our balance in it is ours after one block, not after the delay above.

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

method!(
    /// `setchannel`.
    SetChannel = "setchannel", SetChannelParams => SetChannelResult,
    "Set the forwarding policy (fees, CLTV delta) of one channel, of every channel with a peer, or of all channels; only the fields given change. Checked before anything changes, kept across restarts and announced in a new channel_update.

What this node charges to forward a payment out over a channel (a base fee per payment plus a part
per million of the amount), and the CLTV delta it asks for. Core Lightning's `setchannel` and LND's
`updatechanpolicy` do the same. With no field given, `setchannel` changes nothing and shows the
current policy.

Everything is checked before anything changes: a refused call changes no channel. The new
policy is kept by LDK with the channel state (it survives restarts), applies at once to new
forwards (LDK still accepts the previous fee and delta for about five minutes, for payers that have
not heard of the change yet), and is announced in a new `channel_update` for a public channel (sent
to the peer alone for a private one), so other nodes' routes use it once gossip reaches them
(`listgraphchannels` on another node shows it). When `id` names channels with several peers, each
peer's channels change in one step; should a channel close between the check and the change, the
channels of the peers before it keep their new policy and the error names the peer.

The CLTV delta range comes from the chain: LDK refuses less than 48 blocks, two thirds of its
default of 72, which leaves time to get a claim confirmed on chain. On a chain with faster blocks
the default delta is longer in blocks (145 on Qtum, about 77 minutes) and the least allowed stays
two thirds of it (97 blocks on Qtum), never less than LDK's 48. The largest leaves room, within
the 1008 blocks of total CLTV an LDK payer accepts for a route, for the final delta of a payee on
this chain (48 on Bitcoin, 145 on Qtum).

Examples: `xln-cli setchannel all fee_base_msat=1000 fee_proportional_millionths=100`,
`xln-cli setchannel 103x1x0 0 250` (base 0, 250 ppm), `xln-cli setchannel <peer id> cltv_expiry_delta=80`.

Errors: -32602 (a value out of range, `htlc_minimum_msat` or `htlc_maximum_msat` given, the
channel is closing; the message says which and that nothing was changed), 100 (no channel matches
`id`, or LDK no longer has one of them)."
);

/// The params of `setchannel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SetChannelParams {
    /// Channel id, short channel id (BLOCKxTXxOUT), peer id (all its channels) or "all" (every channel that is not closing).
    pub id: ChannelSelector,
    /// Fee per forwarded HTLC, msat (0 to 4294967295).
    pub fee_base_msat: Option<Uint<{ u32::MAX as u64 }>>,
    /// Fee per million msat forwarded, ppm (0 to 4294967295): 1000 is 0.1 %.
    pub fee_proportional_millionths: Option<Uint<{ u32::MAX as u64 }>>,
    /// Blocks between an incoming HTLC's expiry and the forwarded one's; 48 to 960 on Bitcoin, 97 to 863 on Qtum.
    pub cltv_expiry_delta: Option<Uint<{ u16::MAX as u64 }>>,
    /// Refused: LDK fixes the smallest HTLC when a channel opens.
    pub htlc_minimum_msat: Option<Index>,
    /// Refused: LDK announces 90% of the capacity or the peer's in-flight limit, whichever is smaller.
    pub htlc_maximum_msat: Option<Index>,
}

/// The result of `setchannel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SetChannelResult {
    /// Each channel changed, with its policy now.
    pub channels: Vec<ChannelPolicy>,
}

/// The forwarding policy of one of our channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelPolicy {
    /// Channel id.
    pub channel_id: String,
    /// `BLOCKxTXxOUT`; `null` until confirmed.
    pub short_channel_id: Option<String>,
    /// The peer's node id.
    pub peer_id: String,
    /// Fee per forwarded HTLC, msat, as set.
    pub fee_base_msat: u32,
    /// Fee per million msat forwarded, as set.
    pub fee_proportional_millionths: u32,
    /// CLTV delta, blocks, as set.
    pub cltv_expiry_delta: u16,
    /// The smallest HTLC the peer accepts on it, as we announce it (fixed at open; `null` until known).
    pub htlc_minimum_msat: Option<u64>,
    /// The largest HTLC our last `channel_update` of it announced; `null` for a channel not in our gossip graph (private, or not announced yet).
    pub htlc_maximum_msat: Option<u64>,
}
