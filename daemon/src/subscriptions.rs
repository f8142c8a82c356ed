//! Live event streams over WebSocket: `subscribe_<stream>` for every stream of the node's
//! journal, on the RPC port with the same credentials.
//!
//! A subscription first sends every stored event after `since_index` (all of them for 0, none
//! if the parameter is left out), then each new one as it is written, in index order, one
//! notification per event. Events are read from the journal, never from a buffer in memory, so a
//! slow client is never skipped ahead: it is sent what comes next once it has read what came
//! before, and a client that reconnects with the last index it handled misses nothing.

use anyhow::{Context as _, Result};
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::server::RpcModule;
use jsonrpsee::PendingSubscriptionSink;
use ln_core::node::journal::Stream;
use ln_core::node::EVENTS_PER_READ;

use crate::handlers::{rpc_error, Context};
use crate::methods::{named, Args, MethodSpec, ParamSpec};

/// The parameters every subscription takes.
const SUBSCRIPTION_PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "since_index",
    kind: "integer",
    required: false,
    description: "send the stored events with an index above this first (0: all of them); \
                  left out: only events from now on",
}];

/// One subscription method per stream: `(stream, subscribe method, its spec)`.
pub fn subscriptions() -> Vec<(Stream, MethodSpec)> {
    Stream::ALL
        .into_iter()
        .map(|stream| {
            let (name, description): (&'static str, &'static str) = match stream {
                Stream::Invoices => ("subscribe_invoices", "Invoice events: created, held, paid, canceled, expired; data is the invoice as in listinvoices."),
                Stream::Payments => ("subscribe_payments", "Outgoing payment events: pending (each attempt), succeeded (with preimage and fee_msat), failed (with failure_reason); data is the payment as in listpayments."),
                Stream::Htlcs => ("subscribe_htlcs", "Forwarded HTLC events: settled (with fee_msat) and failed (with failure_reason); data is the forward as in listforwards."),
                Stream::Channels => ("subscribe_channels", "Channel events: pending, ready, closing, closed (with reason); data: channel_id, peer_id and what the event adds."),
                Stream::Peers => ("subscribe_peers", "Peer events: connected, disconnected; data: peer_id, address."),
                Stream::Blocks => ("subscribe_blocks", "Chain tip events: connected, or reorg when blocks were disconnected; data: height, block_hash, blocks_connected, blocks_disconnected."),
                Stream::InterceptedHtlcs => ("subscribe_intercepted_htlcs", "HTLCs held for an intercept SCID: intercepted (answer with resolvehtlc), forwarded, failed (with failure_reason); data is the HTLC as in listinterceptedhtlcs."),
            };
            let spec = MethodSpec {
                name,
                description,
                params: SUBSCRIPTION_PARAMS,
                result: "notifications <stream>_event: index, stream, type, timestamp, data",
            };
            (stream, spec)
        })
        .collect()
}

/// The notification method name of `stream`'s events, and its unsubscribe method.
fn names(stream: Stream) -> (&'static str, &'static str) {
    match stream {
        Stream::Invoices => ("invoices_event", "unsubscribe_invoices"),
        Stream::Payments => ("payments_event", "unsubscribe_payments"),
        Stream::Htlcs => ("htlcs_event", "unsubscribe_htlcs"),
        Stream::Channels => ("channels_event", "unsubscribe_channels"),
        Stream::Peers => ("peers_event", "unsubscribe_peers"),
        Stream::Blocks => ("blocks_event", "unsubscribe_blocks"),
        Stream::InterceptedHtlcs => ("intercepted_htlcs_event", "unsubscribe_intercepted_htlcs"),
    }
}

/// Registers every subscription on `module`.
pub fn register(module: &mut RpcModule<Context>) -> Result<()> {
    for (stream, spec) in subscriptions() {
        let (notification, unsubscribe) = names(stream);
        let spec: &'static MethodSpec = Box::leak(Box::new(spec));
        module
            .register_subscription(
                spec.name,
                notification,
                unsubscribe,
                move |params, pending, ctx, _| async move {
                    serve(stream, spec, params, pending, &ctx).await
                },
            )
            .with_context(|| format!("registering {}", spec.name))?;
    }
    Ok(())
}

async fn serve(
    stream: Stream,
    spec: &'static MethodSpec,
    params: jsonrpsee::types::Params<'static>,
    pending: PendingSubscriptionSink,
    ctx: &Context,
) -> SubscriptionResult {
    let since = match named(spec, &params).and_then(|args| Args(args).uint("since_index", u64::MAX))
    {
        Ok(since) => since,
        Err(error) => {
            pending.reject(error).await;
            return Ok(());
        }
    };
    let node = &ctx.node;
    let mut changes = node.watch_events(stream);
    let mut after = since.unwrap_or_else(|| node.last_event_index(stream));
    let sink = pending.accept().await?;
    tracing::debug!(stream = stream.name(), after, "subscription started");
    loop {
        // Marked seen before reading: an event written during the read wakes the wait below.
        changes.borrow_and_update();
        loop {
            let events = node
                .events(stream, after, EVENTS_PER_READ)
                .map_err(rpc_error)?;
            let Some(last) = events.last() else { break };
            let last = last.index;
            for event in events {
                let message = serde_json::value::to_raw_value(&event)?;
                sink.send(message).await?;
            }
            after = last;
        }
        tokio::select! {
            _ = sink.closed() => return Ok(()),
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
