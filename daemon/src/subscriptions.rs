//! Live event streams over WebSocket: `subscribe_<stream>` for every stream of the node's
//! journal, on the RPC port with the same credentials. Their names, params and events are the
//! contract's ([`rpc_contract::events::SUBSCRIPTIONS`]).
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
use rpc_contract::describe::{MethodDoc, ParamDoc};
use rpc_contract::events::{SubscribeParams, Subscription, SINCE_INDEX_DESCRIPTION, SUBSCRIPTIONS};
use serde_json::Value;

use crate::handlers::events::{event_of, journal_stream};
use crate::handlers::{node_error, params_error, Context};

/// The parameter list of a subscription, for parsing its params like a method's.
fn subscription_doc(subscription: &Subscription) -> MethodDoc {
    MethodDoc {
        name: subscription.subscribe.to_owned(),
        description: subscription.description.to_owned(),
        params: vec![ParamDoc {
            name: "since_index".to_owned(),
            param_type: "integer".to_owned(),
            required: false,
            description: SINCE_INDEX_DESCRIPTION.to_owned(),
            schema: Value::Bool(true),
        }],
        result_schema: Value::Bool(true),
        result_text: String::new(),
    }
}

/// Registers every subscription on `module`.
pub fn register(module: &mut RpcModule<Context>) -> Result<()> {
    for subscription in SUBSCRIPTIONS {
        let doc: &'static MethodDoc = Box::leak(Box::new(subscription_doc(&subscription)));
        let stream = journal_stream(subscription.stream);
        module
            .register_subscription(
                subscription.subscribe,
                subscription.notification,
                subscription.unsubscribe,
                move |params, pending, ctx, _| async move {
                    serve(stream, doc, params, pending, &ctx).await
                },
            )
            .with_context(|| format!("registering {}", subscription.subscribe))?;
    }
    Ok(())
}

async fn serve(
    stream: Stream,
    doc: &'static MethodDoc,
    params: jsonrpsee::types::Params<'static>,
    pending: PendingSubscriptionSink,
    ctx: &Context,
) -> SubscriptionResult {
    let value = params
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok());
    let since = match rpc_contract::params::parse::<SubscribeParams>(doc, value) {
        Ok(params) => params.since_index.map(|i| i.get()),
        Err(error) => {
            pending.reject(params_error(error)).await;
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
                .map_err(node_error)?;
            let Some(last) = events.last() else { break };
            let last = last.index;
            for event in events {
                let message = serde_json::value::to_raw_value(&event_of(event))?;
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
