//! Calls to xlnd over JSON-RPC 2.0 on HTTP, with Basic auth, named params, a timeout fitting the
//! method, and every way a call can fail turned into a [`Failure`] that knows its exit code.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::anyhow;
use jsonrpsee::core::client::{ClientT, Error as ClientError};
use jsonrpsee::http_client::transport::Error as TransportError;
use jsonrpsee::http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};
use jsonrpsee::types::ErrorObjectOwned;
use rpc_contract::Method;
use serde_json::{Map, Value};

use crate::connection::{CredentialsOrigin, DaemonEndpoint};
use crate::help_table::{HelpTable, MethodHelp};
use crate::output;
use crate::params::ParamsError;

/// How long an ordinary call may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a call that waits for the network (a payment, a funding) may take.
pub const LONG_REQUEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Methods that wait for peers or the chain before answering: they get [`LONG_REQUEST_TIMEOUT`]
/// and a progress line. `keysend` waits for its payment like `pay`.
pub const LONG_WAITING_METHODS: [&str; 5] = [
    <rpc_contract::payments::Pay as Method>::NAME,
    <rpc_contract::payments::Keysend as Method>::NAME,
    <rpc_contract::channels::FundChannel as Method>::NAME,
    <rpc_contract::invoices::WaitInvoice as Method>::NAME,
    <rpc_contract::events::WaitAnyInvoice as Method>::NAME,
];
/// Methods whose `timeout_secs` left out means "wait as long as it takes".
const UNBOUNDED_WAITING_METHODS: [&str; 1] =
    [<rpc_contract::events::WaitAnyInvoice as Method>::NAME];
/// How much longer than the call's own `timeout_secs` xln-cli waits for the daemon's answer.
const TIMEOUT_SECS_MARGIN: Duration = Duration::from_secs(60);
/// A `timeout_secs` beyond this does not lengthen the request timeout further.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Graph listings of a large network are big; jsonrpsee's default cap (10 MiB) is too small.
const MAX_RESPONSE_BYTES: u32 = 512 * 1024 * 1024;

/// Why xln-cli could not print a result. Each kind has its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The daemon answered with a JSON-RPC error object.
    Rpc {
        /// The error object.
        error: ErrorObjectOwned,
        /// Advice printed after it.
        hint: Option<String>,
    },
    /// The command-line parameters do not fit the method (found before sending).
    Params {
        /// The method called.
        method: String,
        /// What does not fit.
        error: ParamsError,
    },
    /// The daemon's help table has no such method.
    UnknownMethod(String),
    /// xln-cli could not find, reach, authenticate to or understand the daemon.
    Connection(anyhow::Error),
    /// The result could not be written to stdout.
    Output(std::io::Error),
}

impl Failure {
    /// The process exit code: 1 when the call was refused (by the daemon, or by its parameter
    /// table before sending), 2 when there was no usable conversation with the daemon.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Rpc { .. } | Failure::Params { .. } | Failure::UnknownMethod(_) => 1,
            Failure::Connection(_) | Failure::Output(_) => 2,
        }
    }

    /// The text printed on stderr.
    pub fn message(&self) -> String {
        match self {
            Failure::Rpc { error, hint } => {
                let data = error
                    .data()
                    .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
                let text = output::rpc_error_text(error.code(), error.message(), data.as_ref());
                match hint {
                    Some(hint) => format!("{text}\n{hint}"),
                    None => text,
                }
            }
            Failure::Params { method, error } => {
                format!("error: {error}\n`xln-cli help {method}` shows its parameters")
            }
            Failure::UnknownMethod(method) => {
                format!("error: xlnd has no method `{method}`; `xln-cli help` lists its methods")
            }
            Failure::Connection(error) => format!("error: {error:#}"),
            Failure::Output(error) => format!("error: cannot write the result: {error}"),
        }
    }
}

/// The request timeout for `method` called with `params`: long for methods that wait, and longer
/// than the call's own `timeout_secs`, so that the daemon's answer arrives before xln-cli gives up.
pub fn request_timeout(method: &str, params: &Map<String, Value>) -> Duration {
    let base = if LONG_WAITING_METHODS.contains(&method) {
        LONG_REQUEST_TIMEOUT
    } else {
        DEFAULT_REQUEST_TIMEOUT
    };
    let asked = match params.get("timeout_secs").and_then(Value::as_u64) {
        Some(secs) => Duration::from_secs(secs).saturating_add(TIMEOUT_SECS_MARGIN),
        None if UNBOUNDED_WAITING_METHODS.contains(&method) => MAX_REQUEST_TIMEOUT,
        None => Duration::ZERO,
    };
    base.max(asked).min(MAX_REQUEST_TIMEOUT)
}

/// The JSON-RPC client of one daemon.
#[derive(Debug)]
pub struct DaemonRpc {
    endpoint: DaemonEndpoint,
    headers: HeaderMap,
}

impl DaemonRpc {
    /// A client for `endpoint`.
    pub fn new(endpoint: DaemonEndpoint) -> Result<Self, Failure> {
        let mut authorization = HeaderValue::from_str(
            &endpoint.credentials.authorization_header_value(),
        )
        .map_err(|e| {
            Failure::Connection(anyhow!(
                "the RPC credentials do not fit in an HTTP header: {e}"
            ))
        })?;
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("authorization", authorization);
        Ok(DaemonRpc { endpoint, headers })
    }

    /// Calls `method` with named `params`; shows progress on a terminal for methods that wait.
    pub async fn call(&self, method: &str, params: Map<String, Value>) -> Result<Value, Failure> {
        let timeout = request_timeout(method, &params);
        let show_progress =
            LONG_WAITING_METHODS.contains(&method) && std::io::stderr().is_terminal();
        let client = self.client(timeout)?;
        let call = client.request::<Value, _>(method, params);
        output::wait_with_progress(method, call, show_progress)
            .await
            .map_err(|error| self.failure(error, timeout))
    }

    /// The whole help table.
    pub async fn help_table(&self) -> Result<HelpTable, Failure> {
        self.fetch_help(Map::new()).await
    }

    /// The help entry of `method`: how to call it.
    pub async fn method_help(&self, method: &str) -> Result<MethodHelp, Failure> {
        let mut params = Map::new();
        params.insert("method".to_owned(), Value::String(method.to_owned()));
        let table = match self.fetch_help(params).await {
            Err(Failure::Rpc { error, .. }) => {
                let hint = Some("`xln-cli help` lists the methods of xlnd".to_owned());
                return Err(Failure::Rpc { error, hint });
            }
            answer => answer?,
        };
        table
            .method(method)
            .cloned()
            .ok_or_else(|| Failure::UnknownMethod(method.to_owned()))
    }

    async fn fetch_help(&self, params: Map<String, Value>) -> Result<HelpTable, Failure> {
        let answer = self.call("help", params).await?;
        serde_json::from_value(answer).map_err(|e| {
            Failure::Connection(anyhow!(
                "xlnd at {} answered `help` with something other than its method table: {e}",
                self.endpoint.url
            ))
        })
    }

    /// Subscribes to the event stream `stream` over WebSocket (the RPC URL with `ws://`) and
    /// hands each event to `on_event` until the daemon closes the connection.
    pub async fn subscribe(
        &self,
        stream: &str,
        params: Map<String, Value>,
        mut on_event: impl FnMut(Value) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        use jsonrpsee::core::client::SubscriptionClientT;
        let url = &self.endpoint.url;
        let origin = &self.endpoint.url_origin;
        let ws_url = match url.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some((_, rest)) => format!("ws://{rest}"),
            None => format!("ws://{url}"),
        };
        let client = jsonrpsee::ws_client::WsClientBuilder::default()
            .set_headers(self.headers.clone())
            .max_response_size(MAX_RESPONSE_BYTES)
            .build(&ws_url)
            .await
            .map_err(|e| {
                Failure::Connection(anyhow!(
                    "cannot open a WebSocket to xlnd at {ws_url} ({origin}): {e}{}",
                    if e.to_string().contains("401") {
                        format!("; {}", self.authentication_failed_message())
                    } else {
                        String::new()
                    }
                ))
            })?;
        let method = format!("subscribe_{stream}");
        let unsubscribe = format!("unsubscribe_{stream}");
        let mut subscription = client
            .subscribe::<Value, _>(&method, params, &unsubscribe)
            .await
            .map_err(|error| self.failure(error, DEFAULT_REQUEST_TIMEOUT))?;
        while let Some(event) = subscription.next().await {
            let event = event.map_err(|e| {
                Failure::Connection(anyhow!("xlnd sent an event that is not JSON: {e}"))
            })?;
            on_event(event)?;
        }
        Err(Failure::Connection(anyhow!(
            "xlnd at {url} closed the subscription (it stopped?); subscribe again with \
             since_index=<the last index printed> to continue where this one ended"
        )))
    }

    fn client(&self, timeout: Duration) -> Result<HttpClient, Failure> {
        HttpClientBuilder::default()
            .set_headers(self.headers.clone())
            .request_timeout(timeout)
            .max_response_size(MAX_RESPONSE_BYTES)
            .build(&self.endpoint.url)
            .map_err(|e| {
                let origin = &self.endpoint.url_origin;
                Failure::Connection(anyhow!(
                    "cannot use the RPC URL {} ({origin}): {e}",
                    self.endpoint.url
                ))
            })
    }

    fn failure(&self, error: ClientError, timeout: Duration) -> Failure {
        let url = &self.endpoint.url;
        let origin = &self.endpoint.url_origin;
        match error {
            ClientError::Call(error) => Failure::Rpc { error, hint: None },
            ClientError::Transport(transport) => match transport.downcast_ref::<TransportError>() {
                Some(TransportError::Rejected { status_code: 401 }) => {
                    Failure::Connection(anyhow!(self.authentication_failed_message()))
                }
                Some(TransportError::Rejected { status_code }) => Failure::Connection(anyhow!(
                    "xlnd at {url} ({origin}) refused the request with HTTP status {status_code}"
                )),
                _ => Failure::Connection(anyhow!(
                    "cannot reach xlnd at {url} ({origin}): {}\nIs xlnd running? If it runs with another \
                     datadir or RPC address, point xln-cli at it with --datadir or --rpc-url.",
                    error_chain(transport.as_ref())
                )),
            },
            ClientError::RequestTimeout => Failure::Connection(anyhow!(
                "xlnd at {url} did not answer within {}s; the call may still complete in the daemon",
                timeout.as_secs()
            )),
            other => Failure::Connection(anyhow!("talking to xlnd at {url} ({origin}): {other}")),
        }
    }

    fn authentication_failed_message(&self) -> String {
        let url = &self.endpoint.url;
        match &self.endpoint.credentials_origin {
            CredentialsOrigin::CookieFile(cookie_path) => format!(
                "authentication failed: the cookie is stale or wrong; xlnd at {url} did not accept {}. \
                 xlnd writes a new rpc.cookie each time it starts: point xln-cli at the datadir of the \
                 xlnd listening there (--datadir), or give its cookie (--rpc-cookie) or the \
                 --rpc-user/--rpc-password it was started with",
                cookie_path.display()
            ),
            CredentialsOrigin::FixedUser => format!(
                "authentication failed: xlnd at {url} did not accept user `{}` with that password; \
                 give the --rpc-user/--rpc-password xlnd was started with, or leave them out to use \
                 the cookie in its datadir",
                self.endpoint.credentials.user
            ),
        }
    }
}

/// `error: its source: its source's source`, without repeating a message already shown.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let message = error.to_string();
        if !messages.iter().any(|shown| shown.contains(&message)) {
            messages.push(message);
        }
        next = error.source();
    }
    messages.join(": ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("test expectation is not an object: {other}"),
        }
    }

    #[test]
    fn ordinary_methods_get_the_default_timeout() {
        assert_eq!(
            request_timeout("getinfo", &Map::new()),
            DEFAULT_REQUEST_TIMEOUT
        );
    }

    #[test]
    fn waiting_methods_get_the_long_timeout() {
        for method in ["pay", "fundchannel", "waitinvoice", "keysend"] {
            assert_eq!(
                request_timeout(method, &Map::new()),
                LONG_REQUEST_TIMEOUT,
                "{method}"
            );
        }
    }

    #[test]
    fn timeout_secs_beyond_the_long_timeout_lengthens_the_wait() {
        let params = object(json!({"payment_hash": "00", "timeout_secs": 3600}));
        assert_eq!(
            request_timeout("waitinvoice", &params),
            Duration::from_secs(3660)
        );
        let huge = object(json!({"timeout_secs": u64::MAX}));
        assert_eq!(request_timeout("pay", &huge), MAX_REQUEST_TIMEOUT);
        let not_a_number = object(json!({"timeout_secs": "soon"}));
        assert_eq!(request_timeout("pay", &not_a_number), LONG_REQUEST_TIMEOUT);
    }

    #[test]
    fn exit_codes_separate_refused_calls_from_failed_conversations() {
        let rpc = Failure::Rpc {
            error: ErrorObjectOwned::owned(-1, "no route", None::<()>),
            hint: None,
        };
        assert_eq!(rpc.exit_code(), 1);
        assert_eq!(rpc.message(), "error -1: no route");
        let params = Failure::Params {
            method: "pay".to_owned(),
            error: ParamsError::MissingRequired {
                method: "pay".to_owned(),
                missing: vec!["bolt11".to_owned()],
            },
        };
        assert_eq!(params.exit_code(), 1);
        assert_eq!(
            params.message(),
            "error: `pay` needs parameter `bolt11`\n`xln-cli help pay` shows its parameters"
        );
        assert_eq!(Failure::UnknownMethod("payy".to_owned()).exit_code(), 1);
        assert_eq!(Failure::Connection(anyhow!("refused")).exit_code(), 2);
    }

    #[test]
    fn rpc_error_data_is_printed_after_the_message() {
        let failure = Failure::Rpc {
            error: ErrorObjectOwned::owned(
                -32602,
                "invalid params",
                Some(json!({"param": "amount_msat"})),
            ),
            hint: Some("see help".to_owned()),
        };
        assert_eq!(
            failure.message(),
            "error -32602: invalid params\n{\n  \"param\": \"amount_msat\"\n}\nsee help"
        );
    }
}
