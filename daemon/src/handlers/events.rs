//! `waitanyinvoice`, `listevents`, and the mapping between the contract's and the journal's
//! streams and events that the WebSocket subscriptions share.

use std::sync::Arc;
use std::time::Duration;

use ln_core::node::journal::{JournalEvent, Stream};
use ln_core::node::EVENTS_PER_READ;
use rpc_contract::events::{
    Event, EventStream, ListEventsParams, ListEventsResult, PaidInvoice, WaitAnyInvoiceParams,
};

use super::invoices::invoice_of;
use super::{node_error, Context, RpcResult};

/// How long `waitanyinvoice` waits without `timeout_secs`: "until one is paid" is a year, long
/// enough and no overflow.
const WAIT_FOREVER_SECS: u64 = 365 * 24 * 3600;

/// `waitanyinvoice`.
pub async fn waitanyinvoice(
    ctx: Arc<Context>,
    params: WaitAnyInvoiceParams,
) -> RpcResult<PaidInvoice> {
    let lastpay_index = params.lastpay_index.map_or(0, |i| i.get());
    let timeout = params.timeout_secs.map_or(WAIT_FOREVER_SECS, |t| t.get());
    let paid = ctx
        .node
        .wait_any_invoice(lastpay_index, Duration::from_secs(timeout))
        .await
        .map_err(node_error)?;
    Ok(PaidInvoice {
        invoice: invoice_of(&paid.invoice),
        pay_index: paid.pay_index,
    })
}

/// `listevents`.
pub async fn listevents(
    ctx: Arc<Context>,
    params: ListEventsParams,
) -> RpcResult<ListEventsResult> {
    let stream = journal_stream(params.stream);
    let since_index = params.since_index.map_or(0, |i| i.get());
    let limit = params.limit.map_or(EVENTS_PER_READ, |l| {
        usize::try_from(l.get()).unwrap_or(EVENTS_PER_READ)
    });
    let events = ctx
        .node
        .events(stream, since_index, limit)
        .map_err(node_error)?;
    Ok(ListEventsResult {
        events: events.into_iter().map(event_of).collect(),
        last_index: ctx.node.last_event_index(stream),
    })
}

/// The journal's stream of the contract's.
pub fn journal_stream(stream: EventStream) -> Stream {
    match stream {
        EventStream::Invoices => Stream::Invoices,
        EventStream::Payments => Stream::Payments,
        EventStream::Htlcs => Stream::Htlcs,
        EventStream::Channels => Stream::Channels,
        EventStream::Peers => Stream::Peers,
        EventStream::Blocks => Stream::Blocks,
        EventStream::InterceptedHtlcs => Stream::InterceptedHtlcs,
    }
}

fn contract_stream(stream: Stream) -> EventStream {
    match stream {
        Stream::Invoices => EventStream::Invoices,
        Stream::Payments => EventStream::Payments,
        Stream::Htlcs => EventStream::Htlcs,
        Stream::Channels => EventStream::Channels,
        Stream::Peers => EventStream::Peers,
        Stream::Blocks => EventStream::Blocks,
        Stream::InterceptedHtlcs => EventStream::InterceptedHtlcs,
    }
}

/// The contract's event from the journal's.
pub fn event_of(event: JournalEvent) -> Event {
    Event {
        index: event.index,
        stream: contract_stream(event.stream),
        kind: event.kind,
        timestamp: event.timestamp,
        data: event.data,
    }
}
