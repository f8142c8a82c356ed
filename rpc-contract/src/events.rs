//! The event journal: `waitanyinvoice`, `listevents`, and the WebSocket subscriptions
//! `subscribe_<stream>` (listed in [`SUBSCRIPTIONS`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::invoices::Invoice;
use crate::method;
use crate::types::{Index, Uint};

/// The most events one `listevents` call returns.
pub const MAX_EVENTS_PER_CALL: u64 = 1000;

method!(
    /// `waitanyinvoice`.
    WaitAnyInvoice = "waitanyinvoice", WaitAnyInvoiceParams => PaidInvoice,
    "Wait for the next invoice paid after lastpay_index (Core Lightning's semantics): returns at once if one was paid since, so a program that remembers the last pay_index it handled misses none, even across restarts.

Returns the invoice, with the fields of one `listinvoices` entry, and its `pay_index`. See
[events.md](events.md).

Errors: -32602, 101 (none paid when the time ran out), 701."
);

/// The params of `waitanyinvoice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitAnyInvoiceParams {
    /// The pay_index of the last paid invoice handled (default 0: the first invoice ever paid).
    pub lastpay_index: Option<Index>,
    /// Give up after this many seconds (default: wait until one is paid; at most a year).
    pub timeout_secs: Option<Uint<{ 365 * 24 * 3600 }>>,
}

/// A paid invoice and its place in the order of payments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaidInvoice {
    /// The invoice, as in `listinvoices`.
    #[serde(flatten)]
    pub invoice: Invoice,
    /// 1 for the first invoice ever paid, one more for each next one.
    pub pay_index: u64,
}

method!(
    /// `listevents`.
    ListEvents = "listevents", ListEventsParams => ListEventsResult,
    "Stored events of one stream (invoices, payments, htlcs, channels, peers, blocks, intercepted_htlcs) after an index: what subscribe_<stream> sends over WebSocket, for clients that poll.

See [events.md](events.md).

Errors: -32602 (unknown stream), 701."
);

/// One stream of the event journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStream {
    /// Invoices: `created`, `held`, `paid`, `canceled`, `expired`; `data` is the invoice.
    Invoices,
    /// Outgoing payments: `pending`, `succeeded`, `failed`; `data` is the payment.
    Payments,
    /// Forwarded HTLCs: `settled`, `failed`; `data` is the forward.
    Htlcs,
    /// Channels: `pending`, `ready`, `closing`, `closed`.
    Channels,
    /// Peers: `connected`, `disconnected`.
    Peers,
    /// The chain tip: `connected`, `reorg`.
    Blocks,
    /// HTLCs held for an intercept SCID: `intercepted`, `forwarded`, `failed`; `data` is the HTLC.
    InterceptedHtlcs,
}

/// The params of `listevents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListEventsParams {
    /// invoices, payments, htlcs, channels, peers, blocks or intercepted_htlcs.
    pub stream: EventStream,
    /// Only events with an index above this (default 0).
    pub since_index: Option<Index>,
    /// At most this many events (default and maximum 1000).
    pub limit: Option<Uint<MAX_EVENTS_PER_CALL>>,
}

/// The result of `listevents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListEventsResult {
    /// The events, in index order.
    pub events: Vec<Event>,
    /// The index of the stream's last event now.
    pub last_index: u64,
}

/// One event of a stream, as `listevents` returns it and a subscription sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Position in its stream: 1 for the first event, one more for each next one.
    pub index: u64,
    /// The stream.
    pub stream: EventStream,
    /// What happened (the values of each stream are listed at `listevents`' `stream`).
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was recorded.
    pub timestamp: u64,
    /// The subject after the event: the invoice, payment or forward record; for channels, peers and blocks the object named in the subscription's description.
    pub data: serde_json::Value,
}

/// One WebSocket subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Its stream.
    pub stream: EventStream,
    /// The subscribe method.
    pub subscribe: &'static str,
    /// The unsubscribe method.
    pub unsubscribe: &'static str,
    /// The method name of its notifications.
    pub notification: &'static str,
    /// What it sends.
    pub description: &'static str,
}

/// What a subscription's one parameter, `since_index`, means.
pub const SINCE_INDEX_DESCRIPTION: &str = "send the stored events with an index above this first \
    (0: all of them); left out: only events from now on";

/// Every subscription, one per stream.
pub const SUBSCRIPTIONS: [Subscription; 7] = [
    Subscription {
        stream: EventStream::Invoices,
        subscribe: "subscribe_invoices",
        unsubscribe: "unsubscribe_invoices",
        notification: "invoices_event",
        description: "Invoice events: created, held, paid, canceled, expired; data is the invoice as in listinvoices.",
    },
    Subscription {
        stream: EventStream::Payments,
        subscribe: "subscribe_payments",
        unsubscribe: "unsubscribe_payments",
        notification: "payments_event",
        description: "Outgoing payment events: pending (each attempt), succeeded (with preimage and fee_msat), failed (with failure_reason); data is the payment as in listpayments.",
    },
    Subscription {
        stream: EventStream::Htlcs,
        subscribe: "subscribe_htlcs",
        unsubscribe: "unsubscribe_htlcs",
        notification: "htlcs_event",
        description: "Forwarded HTLC events: settled (with fee_msat) and failed (with failure_reason); data is the forward as in listforwards.",
    },
    Subscription {
        stream: EventStream::Channels,
        subscribe: "subscribe_channels",
        unsubscribe: "unsubscribe_channels",
        notification: "channels_event",
        description: "Channel events: pending, ready, closing, closed (with reason); data: channel_id, peer_id and what the event adds.",
    },
    Subscription {
        stream: EventStream::Peers,
        subscribe: "subscribe_peers",
        unsubscribe: "unsubscribe_peers",
        notification: "peers_event",
        description: "Peer events: connected, disconnected; data: peer_id, address.",
    },
    Subscription {
        stream: EventStream::Blocks,
        subscribe: "subscribe_blocks",
        unsubscribe: "unsubscribe_blocks",
        notification: "blocks_event",
        description: "Chain tip events: connected, or reorg when blocks were disconnected; data: height, block_hash, blocks_connected, blocks_disconnected.",
    },
    Subscription {
        stream: EventStream::InterceptedHtlcs,
        subscribe: "subscribe_intercepted_htlcs",
        unsubscribe: "unsubscribe_intercepted_htlcs",
        notification: "intercepted_htlcs_event",
        description: "HTLCs held for an intercept SCID: intercepted (answer with resolvehtlc), forwarded, failed (with failure_reason); data is the HTLC as in listinterceptedhtlcs.",
    },
];

/// The params of every `subscribe_<stream>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubscribeParams {
    /// Send the stored events with an index above this first (0: all of them); left out: only events from now on.
    pub since_index: Option<Index>,
}
