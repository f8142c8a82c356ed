//! The JSON-RPC server: jsonrpsee over HTTP and WebSocket, every request authenticated with HTTP Basic auth
//! (the per-start cookie, or fixed credentials) before anything runs.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use anyhow::{Context, Result};
use base64::Engine;
use jsonrpsee::core::middleware::{Batch, Notification, RpcServiceT};
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{
    HttpBody, HttpRequest, HttpResponse, MethodResponse, RpcModule, Server, ServerHandle,
};
use jsonrpsee::types::{ErrorObjectOwned, Request};
use tower::{Layer, Service};

use crate::handlers::{self, Context as HandlerContext};

/// User name of cookie authentication.
pub const COOKIE_USER: &str = "__cookie__";

/// The accepted `Authorization` header values.
#[derive(Clone)]
struct Credentials(Arc<Vec<String>>);

impl Credentials {
    fn new(pairs: &[(String, String)]) -> Self {
        let engine = base64::engine::general_purpose::STANDARD;
        Self(Arc::new(
            pairs
                .iter()
                .map(|(user, password)| {
                    format!("Basic {}", engine.encode(format!("{user}:{password}")))
                })
                .collect(),
        ))
    }

    fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(header) = header else { return false };
        // Constant-time comparison, so the secret does not leak through timing.
        self.0.iter().any(|expected| {
            let expected = expected.as_bytes();
            expected.len() == header.len()
                && expected
                    .iter()
                    .zip(header)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }
}

#[derive(Clone)]
struct AuthLayer(Credentials);

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            credentials: self.0.clone(),
        }
    }
}

/// Answers HTTP 401 to every request without valid credentials.
#[derive(Clone)]
struct Auth<S> {
    inner: S,
    credentials: Credentials,
}

impl<S, B> Service<HttpRequest<B>> for Auth<S>
where
    S: Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if self.credentials.accepts(header) {
            let future = self.inner.call(request);
            Box::pin(async move { future.await.map_err(Into::into) })
        } else {
            tracing::debug!("RPC request without valid credentials refused");
            Box::pin(async { Ok(unauthorized()) })
        }
    }
}

fn unauthorized() -> HttpResponse {
    http::Response::builder()
        .status(http::StatusCode::UNAUTHORIZED)
        .header(http::header::WWW_AUTHENTICATE, "Basic realm=\"xlnd\"")
        .body(HttpBody::from(
            "authentication required: use the credentials in <datadir>/rpc.cookie\n".to_owned(),
        ))
        .unwrap_or_else(|_| http::Response::new(HttpBody::from(String::new())))
}

/// Writes a fresh random cookie (mode 0600) and returns it.
pub fn write_cookie(datadir: &Path) -> Result<String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| anyhow::anyhow!("randomness for the RPC cookie: {e}"))?;
    let password = bitcoin::hex::DisplayHex::to_lower_hex_string(&secret[..]);
    let path = datadir.join("rpc.cookie");
    let _ = std::fs::remove_file(&path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{COOKIE_USER}:{password}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(password)
}

/// Starts the server on `address`, accepting `credentials`.
pub async fn start(
    address: SocketAddr,
    credentials: &[(String, String)],
    context: HandlerContext,
) -> Result<(SocketAddr, ServerHandle)> {
    let middleware = tower::ServiceBuilder::new().layer(AuthLayer(Credentials::new(credentials)));
    let known_methods = Arc::new(known_method_names());
    let rpc_middleware =
        jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new().layer_fn(move |service| {
            KnownMethods {
                service,
                names: Arc::clone(&known_methods),
            }
        });
    let server = Server::builder()
        .set_rpc_middleware(rpc_middleware)
        .set_config(
            // HTTP for calls, WebSocket (same port, same credentials on the upgrade request)
            // for calls and subscriptions.
            jsonrpsee::server::ServerConfig::builder()
                // Graph listings of a large network exceed the 10 MB default.
                .max_response_body_size(512 * 1024 * 1024)
                // Programs (gateways, dashboards) keep many calls open at once, `pay` and
                // `waitinvoice` for minutes; jsonrpsee's default is 100 connections.
                .max_connections(1024)
                .build(),
        )
        .set_http_middleware(middleware)
        .build(address)
        .await
        .with_context(|| format!("binding the JSON-RPC server to {address}"))?;
    let bound = server.local_addr().context("the RPC server's address")?;
    let mut module = RpcModule::new(context);
    handlers::register_all(&mut module)?;
    crate::subscriptions::register(&mut module)?;
    Ok((bound, server.start(module)))
}

/// Every method name the server answers: the contract's methods and the subscriptions.
fn known_method_names() -> HashSet<&'static str> {
    let mut names: HashSet<&'static str> = rpc_contract::method_docs()
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    for subscription in rpc_contract::events::SUBSCRIPTIONS {
        names.insert(subscription.subscribe);
        names.insert(subscription.unsubscribe);
    }
    names
}

/// Answers a call of an unknown method with -32601 and a `data` object naming it, like every
/// other error of the API (jsonrpsee's own answer has no data).
#[derive(Clone)]
struct KnownMethods<S> {
    service: S,
    names: Arc<HashSet<&'static str>>,
}

impl<S> RpcServiceT for KnownMethods<S>
where
    S: RpcServiceT<MethodResponse = MethodResponse> + Send + Sync + Clone + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        let known = self.names.contains(request.method_name());
        let service = self.service.clone();
        async move {
            if known {
                return service.call(request).await;
            }
            let name = request.method_name().to_owned();
            tracing::info!(method = %name, code = -32601, "rpc error");
            MethodResponse::error(
                request.id(),
                ErrorObjectOwned::owned(
                    -32601,
                    format!("unknown method {name}; help lists the methods"),
                    Some(serde_json::json!({"kind": "method_not_found", "method": name})),
                ),
            )
        }
    }

    fn batch<'a>(
        &self,
        requests: Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        self.service.batch(requests)
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.service.notification(notification)
    }
}
