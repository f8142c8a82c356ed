//! A WebSocket JSON-RPC client of a real xlnd, as a program built on it (a gateway, an LSP, a
//! dashboard) connects: same port as HTTP, the cookie's credentials on the upgrade request.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use jsonrpsee::core::client::{ClientT, Subscription, SubscriptionClientT};
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::ws_client::{HeaderMap, HeaderValue, WsClient, WsClientBuilder};
use serde_json::Value;

use crate::xlnd::Xlnd;

/// How long a test waits for one event.
pub const EVENT_WAIT: Duration = Duration::from_secs(120);

/// A WebSocket client of `node`, authenticated with its cookie.
pub async fn connect(node: &Xlnd) -> Result<WsClient> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&node.cookie_auth()?)?,
    );
    let url = node.ws_url()?;
    WsClientBuilder::default()
        .set_headers(headers)
        .build(&url)
        .await
        .with_context(|| format!("WebSocket to {url}"))
}

/// A WebSocket client of `node` with no credentials (to see it refused).
pub async fn connect_without_credentials(node: &Xlnd) -> Result<WsClient> {
    let url = node.ws_url()?;
    Ok(WsClientBuilder::default().build(&url).await?)
}

/// Calls `method` with named `params` (a JSON object).
pub async fn call(client: &WsClient, method: &str, params: Value) -> Result<Value> {
    let mut object = ObjectParams::new();
    if let Value::Object(map) = params {
        for (key, value) in map {
            object.insert(&key, value)?;
        }
    }
    client
        .request(method, object)
        .await
        .with_context(|| format!("{method} over WebSocket"))
}

/// Subscribes to `stream` (`invoices`, `payments`, ...) from `since_index` (none: new only).
pub async fn subscribe(
    client: &WsClient,
    stream: &str,
    since_index: Option<u64>,
) -> Result<Subscription<Value>> {
    let mut params = ObjectParams::new();
    if let Some(since) = since_index {
        params.insert("since_index", since)?;
    }
    client
        .subscribe(
            &format!("subscribe_{stream}"),
            params,
            &format!("unsubscribe_{stream}"),
        )
        .await
        .with_context(|| format!("subscribe_{stream}"))
}

/// The next event of `subscription`, waiting at most [`EVENT_WAIT`].
pub async fn next_event(subscription: &mut Subscription<Value>) -> Result<Value> {
    match tokio::time::timeout(EVENT_WAIT, subscription.next()).await {
        Ok(Some(event)) => Ok(event?),
        Ok(None) => bail!("the subscription ended"),
        Err(_) => Err(anyhow!("no event within {} s", EVENT_WAIT.as_secs())),
    }
}

/// Reads events until one of `kind` whose data has `payment_hash`; returns every event read.
pub async fn events_until(
    subscription: &mut Subscription<Value>,
    kind: &str,
    payment_hash: &str,
) -> Result<Vec<Value>> {
    let mut read = Vec::new();
    loop {
        let event = next_event(subscription).await.with_context(|| {
            format!("waiting for {kind} of {payment_hash}; read so far: {read:?}")
        })?;
        let found = event["type"] == kind && event["data"]["payment_hash"] == payment_hash;
        read.push(event);
        if found {
            return Ok(read);
        }
    }
}
