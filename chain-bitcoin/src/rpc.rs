//! A thin async wrapper over `bitcoincore-rpc`'s blocking client: runs calls on tokio's blocking
//! pool, re-reads the cookie file when the node was restarted, and turns transport and node errors
//! into [`ChainSourceError`]s (keeping the node's error code where callers need it).
//!
//! Private to this crate: Bitcoin Core's forks reach it through [`crate::core_rpc::CoreNode`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bitcoincore_rpc::jsonrpc::{self, simple_http};
use bitcoincore_rpc::{Auth, Client, RpcApi};
use ln_core::ChainSourceError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How to authenticate to bitcoind's RPC (or a fork's, such as qtumd's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitcoindAuth {
    /// The `.cookie` file bitcoind writes into its data directory on every start.
    CookieFile(PathBuf),
    /// A fixed `rpcuser`/`rpcpassword` (or `rpcauth`) pair.
    UserPassword {
        /// The RPC user name.
        user: String,
        /// The RPC password.
        password: String,
    },
}

impl BitcoindAuth {
    fn to_rpc_auth(&self) -> Auth {
        match self {
            BitcoindAuth::CookieFile(path) => Auth::CookieFile(path.clone()),
            BitcoindAuth::UserPassword { user, password } => {
                Auth::UserPass(user.clone(), password.clone())
            }
        }
    }
}

/// Why one call failed.
#[derive(Debug)]
pub enum CallError {
    /// The node answered with a JSON-RPC error.
    Node {
        /// The node's error code (see the `RPC_*` constants).
        code: i32,
        /// The node's message.
        message: String,
    },
    /// Anything else, already in its final form.
    Other(ChainSourceError),
}

impl CallError {
    /// The error as callers outside this module see it.
    pub fn into_chain_error(self, method: &str) -> ChainSourceError {
        match self {
            CallError::Node {
                code: RPC_IN_WARMUP,
                message,
            } => ChainSourceError::WarmingUp { message },
            CallError::Node { code, message } => ChainSourceError::Rpc {
                method: method.to_owned(),
                message: format!("{message} (code {code})"),
            },
            CallError::Other(error) => error,
        }
    }
}

/// bitcoind's `RPC_INVALID_ADDRESS_OR_KEY`, returned for unknown blocks and transactions.
pub const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
/// bitcoind's `RPC_INVALID_PARAMETER`, returned e.g. for a block height above the tip.
pub const RPC_INVALID_PARAMETER: i32 = -8;
/// bitcoind's `RPC_IN_WARMUP`: the node is still loading its block index or verifying blocks.
pub const RPC_IN_WARMUP: i32 = -28;
/// bitcoind's `RPC_VERIFY_ALREADY_IN_CHAIN`: the transaction is already confirmed.
pub const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;

/// An RPC connection to one bitcoind (or qtumd).
pub struct RpcClient {
    url: String,
    auth: BitcoindAuth,
    client: Mutex<Arc<Client>>,
}

impl RpcClient {
    /// A client for `url`. Reads the cookie file now, so a missing file (node not running) is
    /// reported at once.
    pub fn new(url: &str, auth: BitcoindAuth) -> Result<Self, ChainSourceError> {
        let client = Self::build_client(url, &auth)?;
        Ok(Self {
            url: url.to_owned(),
            auth,
            client: Mutex::new(Arc::new(client)),
        })
    }

    /// The URL this client calls.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn build_client(url: &str, auth: &BitcoindAuth) -> Result<Client, ChainSourceError> {
        Client::new(url, auth.to_rpc_auth()).map_err(|error| {
            let reason = match auth {
                BitcoindAuth::CookieFile(path) => {
                    format!(
                        "cannot read the RPC cookie file {}: {error}",
                        path.display()
                    )
                }
                BitcoindAuth::UserPassword { .. } => error.to_string(),
            };
            ChainSourceError::Unreachable {
                url: url.to_owned(),
                reason,
            }
        })
    }

    fn current_client(&self) -> Arc<Client> {
        match self.client.lock() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Calls `method` and parses the result as `T`.
    pub async fn call<T>(&self, method: &'static str, args: Vec<Value>) -> Result<T, CallError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        // Shared, not cloned, with the one retry below.
        let args: Arc<[Value]> = args.into();
        match self.call_once(method, Arc::clone(&args)).await {
            Err(CallError::Other(ChainSourceError::AuthenticationFailed { .. }))
                if matches!(self.auth, BitcoindAuth::CookieFile(_)) =>
            {
                // bitcoind writes a new cookie on every start: re-read it once and retry.
                let fresh = Self::build_client(&self.url, &self.auth).map_err(CallError::Other)?;
                if let Ok(mut guard) = self.client.lock() {
                    *guard = Arc::new(fresh);
                }
                self.call_once(method, args).await
            }
            other => other,
        }
    }

    async fn call_once<T>(&self, method: &'static str, args: Arc<[Value]>) -> Result<T, CallError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let client = self.current_client();
        let url = self.url.clone();
        let joined = tokio::task::spawn_blocking(move || client.call::<T>(method, &args)).await;
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(classify(&url, method, error)),
            Err(join_error) => Err(CallError::Other(ChainSourceError::Rpc {
                method: method.to_owned(),
                message: format!("the RPC task failed: {join_error}"),
            })),
        }
    }
}

fn classify(url: &str, method: &str, error: bitcoincore_rpc::Error) -> CallError {
    use bitcoincore_rpc::Error as E;
    match error {
        E::JsonRpc(jsonrpc::Error::Rpc(rpc)) => CallError::Node {
            code: rpc.code,
            message: rpc.message,
        },
        E::JsonRpc(jsonrpc::Error::Transport(transport)) => {
            let http = transport.downcast_ref::<simple_http::Error>();
            let error = match http {
                Some(simple_http::Error::HttpErrorCode(401 | 403)) => {
                    ChainSourceError::AuthenticationFailed {
                        url: url.to_owned(),
                    }
                }
                Some(simple_http::Error::SocketError(_))
                | Some(simple_http::Error::InvalidUrl { .. }) => ChainSourceError::Unreachable {
                    url: url.to_owned(),
                    reason: transport.to_string(),
                },
                _ => ChainSourceError::Rpc {
                    method: method.to_owned(),
                    message: transport.to_string(),
                },
            };
            CallError::Other(error)
        }
        E::JsonRpc(jsonrpc::Error::Json(json)) | E::Json(json) => {
            CallError::Other(ChainSourceError::InvalidResponse {
                method: method.to_owned(),
                reason: json.to_string(),
            })
        }
        other => CallError::Other(ChainSourceError::Rpc {
            method: method.to_owned(),
            message: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoincore_rpc::jsonrpc::error::RpcError;

    const URL: &str = "http://127.0.0.1:1";

    fn transport(error: simple_http::Error) -> bitcoincore_rpc::Error {
        bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Transport(Box::new(error)))
    }

    #[test]
    fn node_errors_keep_their_code_and_message() {
        let rpc = RpcError {
            code: -26,
            message: "min relay fee not met".into(),
            data: None,
        };
        let error = classify(
            URL,
            "sendrawtransaction",
            bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(rpc)),
        );
        assert!(
            matches!(error, CallError::Node { code: -26, ref message } if message == "min relay fee not met")
        );
    }

    #[test]
    fn warm_up_answers_mean_the_node_is_starting() {
        let error = CallError::Node {
            code: RPC_IN_WARMUP,
            message: "Loading block index…".into(),
        }
        .into_chain_error("getblockhash");
        assert_eq!(
            error,
            ChainSourceError::WarmingUp {
                message: "Loading block index…".into()
            }
        );
        assert!(error.is_transient());
        assert_eq!(
            error.to_string(),
            "the chain node is starting up: Loading block index…"
        );
    }

    #[test]
    fn http_401_is_an_authentication_failure() {
        let error = classify(
            URL,
            "getblockcount",
            transport(simple_http::Error::HttpErrorCode(401)),
        );
        assert!(matches!(
            error,
            CallError::Other(ChainSourceError::AuthenticationFailed { .. })
        ));
    }

    #[test]
    fn refused_connection_is_unreachable_and_transient() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = classify(
            URL,
            "getblockcount",
            transport(simple_http::Error::SocketError(refused)),
        );
        match error {
            CallError::Other(error @ ChainSourceError::Unreachable { .. }) => {
                assert!(error.is_transient())
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }

    #[test]
    fn unparsable_answer_is_an_invalid_response() {
        let json = serde_json::from_str::<u32>("\"x\"").err();
        let Some(json) = json else {
            panic!("\"x\" parsed as a number")
        };
        let error = classify(URL, "getblockcount", bitcoincore_rpc::Error::Json(json));
        assert!(matches!(
            error,
            CallError::Other(ChainSourceError::InvalidResponse { .. })
        ));
    }

    #[test]
    fn missing_cookie_file_says_which_file() {
        let auth = BitcoindAuth::CookieFile("/nonexistent/xln/.cookie".into());
        match RpcClient::new(URL, auth) {
            Err(ChainSourceError::Unreachable { reason, .. }) => {
                assert!(reason.contains("/nonexistent/xln/.cookie"), "{reason}");
            }
            Err(other) => panic!("expected Unreachable, got {other}"),
            Ok(_) => panic!("a missing cookie file was accepted"),
        }
    }
}
