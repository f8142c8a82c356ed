//! One handler per RPC method, one file per area: typed params of the contract in
//! (`rpc-contract`), an `ln_core::node::Node` call, the contract's typed result out. [`register`]
//! puts each of them on the JSON-RPC module under its method name.

mod channels;
pub mod events;
mod graph;
mod intercepts;
mod invoices;
mod node;
mod onchain;
mod payments;
mod peers;

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use jsonrpsee::server::RpcModule;
use jsonrpsee::types::{ErrorObjectOwned, Params, ResponsePayload};
use ln_core::node::{Error, Node};
use rpc_contract::describe::method_doc;
use rpc_contract::{Method, ParamError};
use serde_json::json;
use tokio::sync::watch;

/// What every handler gets.
#[derive(Clone)]
pub struct Context {
    /// The node.
    pub node: Node,
    /// Set to true to stop the daemon.
    pub shutdown: watch::Sender<bool>,
}

/// What a handler returns.
pub type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// A node error as a JSON-RPC error with the node's stable code, and its kind (and the
/// variant's fields) in `data`.
pub fn node_error(error: Error) -> ErrorObjectOwned {
    let data = match &error {
        Error::InvalidParameter(_) => json!({"kind": "invalid_parameter", "param": null}),
        Error::NotFound(_) => json!({"kind": "not_found"}),
        Error::PeerNotConnected(_) => json!({"kind": "peer_not_connected"}),
        Error::ConnectionFailed(_) => json!({"kind": "connection_failed"}),
        Error::InsufficientFunds(_) => json!({"kind": "insufficient_funds"}),
        Error::ChannelOpenFailed(_) => json!({"kind": "channel_open_failed"}),
        Error::ChannelCloseFailed(_) => json!({"kind": "channel_close_failed"}),
        Error::ChannelNotUsable(_) => json!({"kind": "channel_not_usable"}),
        Error::InvalidInvoice(_) => json!({"kind": "invalid_invoice"}),
        Error::InvoiceWrongChain { expected, found } => {
            json!({"kind": "invoice_wrong_chain", "expected": expected, "found": found})
        }
        Error::InvoiceExpired { expired_at } => {
            json!({"kind": "invoice_expired", "expired_at": expired_at})
        }
        Error::InvoiceCreationFailed(_) => json!({"kind": "invoice_creation_failed"}),
        Error::InvoiceState(_) => json!({"kind": "invoice_state"}),
        Error::DuplicatePayment(_) => json!({"kind": "duplicate_payment"}),
        Error::RouteNotFound(_) => json!({"kind": "route_not_found"}),
        Error::PaymentFailed(_) => json!({"kind": "payment_failed"}),
        Error::HtlcNotPending(_) => json!({"kind": "htlc_not_pending"}),
        Error::SendQueue(_) => json!({"kind": "send_queue"}),
        Error::AmountBelowHtlcMinimum {
            amount_msat,
            minimum_msat,
        } => json!({
            "kind": "amount_below_htlc_minimum",
            "amount_msat": amount_msat,
            "minimum_msat": minimum_msat,
        }),
        Error::Wallet(_) => json!({"kind": "wallet"}),
        Error::ChainSource(_) => json!({"kind": "chain_source"}),
        Error::Store(_) => json!({"kind": "store"}),
        Error::ShuttingDown => json!({"kind": "shutting_down"}),
        Error::Timeout(_) => json!({"kind": "timeout"}),
        Error::Unsupported(_) => json!({"kind": "unsupported"}),
    };
    ErrorObjectOwned::owned(error.code(), error.to_string(), Some(data))
}

/// [`node_error`] for a call whose invalid-parameter errors can only be about `param`.
pub fn node_error_about(param: &'static str) -> impl Fn(Error) -> ErrorObjectOwned {
    move |error| match error {
        Error::InvalidParameter(_) => invalid_param(param, error.to_string()),
        other => node_error(other),
    }
}

/// JSON-RPC error -32602 about `param`.
pub fn invalid_param(param: &str, message: impl Into<String>) -> ErrorObjectOwned {
    params_error(ParamError::of(param, message))
}

/// A refusal of the params as JSON-RPC error -32602, naming the parameter in `data`.
pub fn params_error(error: ParamError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, error.message.clone(), Some(error.data()))
}

/// The call's params as method `M`'s params struct.
pub fn parse_params<M: Method>(params: &Params<'_>) -> Result<M::Params, ParamError> {
    let value = rpc_contract::params::params_value(params.as_str())?;
    rpc_contract::params::parse(method_doc::<M>(), value)
}

/// Registers `handler` as method `M`: its params parsed into `M::Params` (a refusal is -32602
/// naming the parameter), its answer logged.
fn register<M, F, Fut>(module: &mut RpcModule<Context>, handler: F) -> Result<()>
where
    M: Method,
    F: Fn(Arc<Context>, M::Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = RpcResult<M::Result>> + Send + 'static,
{
    module
        .register_async_method(M::NAME, move |params, ctx, _| {
            let handler = handler.clone();
            async move {
                let started = std::time::Instant::now();
                let result = match parse_params::<M>(&params) {
                    Ok(params) => handler(ctx, params).await,
                    Err(error) => Err(params_error(error)),
                };
                match result {
                    Ok(answer) => {
                        tracing::debug!(
                            method = M::NAME,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "rpc ok"
                        );
                        ResponsePayload::success(answer)
                    }
                    Err(error) => {
                        tracing::info!(
                            method = M::NAME,
                            code = error.code(),
                            message = error.message(),
                            "rpc error"
                        );
                        ResponsePayload::error(error)
                    }
                }
            }
        })
        .with_context(|| format!("registering {}", M::NAME))?;
    Ok(())
}

/// Registers every method of the contract on `module`, and checks that none is left out.
pub fn register_all(module: &mut RpcModule<Context>) -> Result<()> {
    use rpc_contract::{channels::*, events::*, graph::*, intercepts::*, invoices::*, node::*};
    use rpc_contract::{onchain::*, payments::*, peers::*};

    register::<GetInfo, _, _>(module, node::getinfo)?;
    register::<Help, _, _>(module, node::help)?;
    register::<Discover, _, _>(module, node::discover)?;
    register::<Stop, _, _>(module, node::stop)?;
    register::<SignMessage, _, _>(module, node::signmessage)?;
    register::<CheckMessage, _, _>(module, node::checkmessage)?;

    register::<NewAddr, _, _>(module, onchain::newaddr)?;
    register::<ListFunds, _, _>(module, onchain::listfunds)?;
    register::<Withdraw, _, _>(module, onchain::withdraw)?;
    register::<ListBroadcasts, _, _>(module, onchain::listbroadcasts)?;

    register::<Connect, _, _>(module, peers::connect)?;
    register::<Disconnect, _, _>(module, peers::disconnect)?;
    register::<ListPeers, _, _>(module, peers::listpeers)?;

    register::<FundChannel, _, _>(module, channels::fundchannel)?;
    register::<ListChannels, _, _>(module, channels::listchannels)?;
    register::<Close, _, _>(module, channels::close)?;
    register::<SetChannel, _, _>(module, channels::setchannel)?;

    register::<InvoiceMethod, _, _>(module, invoices::invoice)?;
    register::<SettleInvoice, _, _>(module, invoices::settleinvoice)?;
    register::<CancelInvoice, _, _>(module, invoices::cancelinvoice)?;
    register::<ListInvoices, _, _>(module, invoices::listinvoices)?;
    register::<WaitInvoice, _, _>(module, invoices::waitinvoice)?;
    register::<Decode, _, _>(module, invoices::decode)?;

    register::<WaitAnyInvoice, _, _>(module, events::waitanyinvoice)?;
    register::<ListEvents, _, _>(module, events::listevents)?;

    register::<Pay, _, _>(module, payments::pay)?;
    register::<Keysend, _, _>(module, payments::keysend)?;
    register::<ListPayments, _, _>(module, payments::listpayments)?;
    register::<GetRoute, _, _>(module, payments::getroute)?;
    register::<ListForwards, _, _>(module, payments::listforwards)?;

    register::<InterceptScid, _, _>(module, intercepts::intercept_scid)?;
    register::<ListInterceptedHtlcs, _, _>(module, intercepts::listinterceptedhtlcs)?;
    register::<ResolveHtlc, _, _>(module, intercepts::resolvehtlc)?;
    register::<ResolveHtlcAlias, _, _>(module, intercepts::resolvehtlc)?;

    register::<ListNodes, _, _>(module, graph::listnodes)?;
    register::<ListGraphChannels, _, _>(module, graph::listgraphchannels)?;

    let served: Vec<&str> = module.method_names().collect();
    for method in rpc_contract::method_docs() {
        anyhow::ensure!(
            served.contains(&method.name.as_str()),
            "method {} of the contract has no handler",
            method.name
        );
    }
    Ok(())
}

/// A node id of the contract as a public key, or -32602 naming `param`.
pub fn public_key(
    param: &str,
    node_id: rpc_contract::types::NodeId,
) -> RpcResult<bitcoin::secp256k1::PublicKey> {
    bitcoin::secp256k1::PublicKey::from_slice(&node_id.0).map_err(|_| {
        invalid_param(
            param,
            format!("{param} {node_id} is not a node id (not a point on the curve)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use rpc_contract::channels::{Close, FundChannel};
    use rpc_contract::events::{EventStream, ListEvents};
    use rpc_contract::invoices::InvoiceMethod;
    use rpc_contract::node::GetInfo;
    use rpc_contract::onchain::Withdraw;
    use rpc_contract::payments::{GetRoute, Pay};
    use rpc_contract::types::{ChannelRef, Destination, MsatOrAny, SatOrAll};
    use serde_json::Value;

    use super::*;

    fn parse<M: Method>(json: &str) -> Result<M::Params, ErrorObjectOwned> {
        parse_params::<M>(&Params::new(Some(json))).map_err(params_error)
    }

    /// The `param` of a -32602 error's data.
    fn param_of(error: &ErrorObjectOwned) -> Option<String> {
        assert_eq!(error.code(), -32602, "{error:?}");
        let data: Value = error
            .data()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or(Value::Null);
        data["param"].as_str().map(str::to_owned)
    }

    fn node_id() -> String {
        format!("02{}", "11".repeat(32))
    }

    #[test]
    fn params_by_position_and_by_name_give_the_same_struct() -> Result<(), ErrorObjectOwned> {
        let by_position = parse::<InvoiceMethod>(r#"[1000, "coffee"]"#)?;
        let by_name = parse::<InvoiceMethod>(r#"{"description": "coffee", "amount_msat": 1000}"#)?;
        assert_eq!(by_position, by_name);
        assert_eq!(by_position.amount_msat, MsatOrAny::Msat(1000));
        assert_eq!(by_position.expiry_secs, None);
        let any = parse::<InvoiceMethod>(r#"["any", "tip", "60", null]"#)?;
        assert_eq!(any.amount_msat, MsatOrAny::Any);
        assert_eq!(any.expiry_secs.map(|e| e.get()), Some(60));
        Ok(())
    }

    #[test]
    fn no_params_null_and_empty_forms_are_the_same() -> Result<(), ErrorObjectOwned> {
        parse_params::<GetInfo>(&Params::new(None)).map_err(params_error)?;
        parse::<GetInfo>("[]")?;
        parse::<GetInfo>("{}")?;
        let error = parse::<GetInfo>("[1]").err();
        assert!(error.is_some_and(|e| e.message().contains("takes at most 0 params")));
        Ok(())
    }

    #[test]
    fn integers_accept_digit_strings_and_words_and_refuse_the_rest() -> Result<(), ErrorObjectOwned>
    {
        let all = parse::<Withdraw>(r#"["bcrt1q", "all", "5"]"#)?;
        assert_eq!(all.amount_sat, SatOrAll::All);
        assert_eq!(all.feerate_sat_per_vb.map(|f| f.get()), Some(5));
        for (params, param, words) in [
            (
                r#"["bcrt1q", -1]"#,
                "amount_sat",
                "non-negative integer or \"all\"",
            ),
            (
                r#"["bcrt1q", 1, 2000000]"#,
                "feerate_sat_per_vb",
                "too large",
            ),
            (
                r#"{"amount_msat": true, "description": "x"}"#,
                "amount_msat",
                "not true",
            ),
            (r#"["lots", "x"]"#, "amount_msat", "\"lots\""),
        ] {
            let error = if param == "amount_msat" {
                parse::<InvoiceMethod>(params).err()
            } else {
                parse::<Withdraw>(params).err()
            };
            let error = error.unwrap_or_else(|| ErrorObjectOwned::owned(0, "accepted", None::<()>));
            assert_eq!(param_of(&error).as_deref(), Some(param), "{params}");
            assert!(error.message().starts_with(param), "{}", error.message());
            assert!(error.message().contains(words), "{}", error.message());
        }
        Ok(())
    }

    #[test]
    fn ids_are_parsed_at_the_edge_and_bad_ones_name_their_param() -> Result<(), ErrorObjectOwned> {
        let fund = parse::<FundChannel>(&format!(r#"["{}", "100000", 0, true]"#, node_id()))?;
        assert_eq!(fund.id.to_string(), node_id());
        assert_eq!(fund.announce, Some(true));
        let error = parse::<FundChannel>(r#"["02aaaa", 100000]"#).err();
        let error = error.unwrap_or_else(|| ErrorObjectOwned::owned(0, "accepted", None::<()>));
        assert_eq!(param_of(&error).as_deref(), Some("id"));
        assert!(
            error.message().contains("66 hex characters"),
            "{}",
            error.message()
        );
        let error = parse::<FundChannel>(&format!(r#"["{}", 1, 0, "maybe"]"#, node_id())).err();
        let error = error.unwrap_or_else(|| ErrorObjectOwned::owned(0, "accepted", None::<()>));
        assert_eq!(param_of(&error).as_deref(), Some("announce"));

        let close = parse::<Close>(r#"{"id": "103x1x0", "force": true}"#)?;
        assert!(matches!(close.id, ChannelRef::ShortChannelId(_)));
        let route = parse::<GetRoute>(&format!(r#"["{}", 5000]"#, node_id()))?;
        assert!(matches!(route.destination, Destination::Node(_)));
        let route = parse::<GetRoute>(r#"["lnbcrt1xyz"]"#)?;
        assert!(matches!(route.destination, Destination::Invoice(_)));
        let events = parse::<ListEvents>(r#"["payments", "7"]"#)?;
        assert_eq!(events.stream, EventStream::Payments);
        let error = parse::<ListEvents>(r#"["coins"]"#).err();
        let error = error.unwrap_or_else(|| ErrorObjectOwned::owned(0, "accepted", None::<()>));
        assert_eq!(param_of(&error).as_deref(), Some("stream"));
        Ok(())
    }

    #[test]
    fn shapes_that_do_not_fit_are_refused_with_a_usage_line() {
        let missing = parse::<InvoiceMethod>("[1000]").err();
        let missing = missing.unwrap_or_else(|| ErrorObjectOwned::owned(0, "accepted", None::<()>));
        assert_eq!(param_of(&missing).as_deref(), Some("description"));
        assert_eq!(
            missing.message(),
            "missing param description; usage: invoice amount_msat description [expiry_secs] [payment_hash] [route_hint] [min_final_cltv_expiry_delta]"
        );
        let unknown =
            parse::<InvoiceMethod>(r#"{"amount_msat": 1, "description": "x", "colour": 1}"#).err();
        let unknown = unknown.unwrap_or_else(|| ErrorObjectOwned::owned(0, "accepted", None::<()>));
        assert_eq!(param_of(&unknown).as_deref(), Some("colour"));
        let scalar = parse::<Pay>(r#""lnbc""#).err();
        let scalar = scalar.unwrap_or_else(|| ErrorObjectOwned::owned(0, "accepted", None::<()>));
        assert_eq!(param_of(&scalar), None);
        assert!(scalar.message().contains("array or an object"));
    }

    #[test]
    fn every_node_error_code_is_in_the_documented_table() -> std::io::Result<()> {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/rpc.md"),
        )?;
        let errors = docs.split("## Errors").nth(1).unwrap_or_default();
        let all = [
            Error::InvalidParameter(String::new()),
            Error::NotFound(String::new()),
            Error::Timeout(String::new()),
            Error::PeerNotConnected(String::new()),
            Error::ConnectionFailed(String::new()),
            Error::InsufficientFunds(String::new()),
            Error::ChannelOpenFailed(String::new()),
            Error::ChannelCloseFailed(String::new()),
            Error::InvalidInvoice(String::new()),
            Error::InvoiceWrongChain {
                expected: String::new(),
                found: String::new(),
            },
            Error::InvoiceExpired { expired_at: 0 },
            Error::InvoiceCreationFailed(String::new()),
            Error::InvoiceState(String::new()),
            Error::DuplicatePayment(String::new()),
            Error::RouteNotFound(String::new()),
            Error::PaymentFailed(String::new()),
            Error::SendQueue(String::new()),
            Error::AmountBelowHtlcMinimum {
                amount_msat: 0,
                minimum_msat: 0,
            },
            Error::Wallet(String::new()),
            Error::ChainSource(String::new()),
            Error::Store(String::new()),
            Error::ShuttingDown,
        ];
        for error in all {
            let object = node_error(error.clone());
            let data: Value = object
                .data()
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .unwrap_or(Value::Null);
            let kind = data["kind"].as_str().unwrap_or_default().to_owned();
            assert!(!kind.is_empty(), "{error:?} has no kind in its data");
            assert!(
                errors.contains(&format!("| {} | `{kind}` |", error.code())),
                "docs/rpc.md's error table lacks the row of code {} (kind `{kind}`)",
                error.code()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod forwarding_tests {
    use rpc_contract::channels::SetChannel;
    use rpc_contract::payments::{ForwardStatus, ListForwards};
    use rpc_contract::types::ChannelSelector;
    use serde_json::Value;

    use super::*;

    fn parse<M: Method>(json: &str) -> Result<M::Params, ErrorObjectOwned> {
        parse_params::<M>(&Params::new(Some(json))).map_err(params_error)
    }

    #[test]
    fn setchannel_help_gives_each_chains_cltv_range() {
        let description = method_doc::<SetChannel>()
            .param("cltv_expiry_delta")
            .map(|p| p.description.clone())
            .unwrap_or_default();
        for (chain, params) in [
            ("Bitcoin", ln_core::ChainParams::bitcoin_mainnet()),
            ("Qtum", ln_core::ChainParams::qtum_mainnet()),
        ] {
            let policy = ln_core::node::ChannelPolicy::for_chain(&params);
            let range = format!(
                "{} to {} on {chain}",
                policy.min_cltv_expiry_delta(),
                policy.max_cltv_expiry_delta()
            );
            assert!(description.contains(&range), "{description} lacks {range}");
        }
    }

    #[test]
    fn setchannel_params_are_range_checked_before_the_node_sees_them(
    ) -> Result<(), ErrorObjectOwned> {
        let parsed = parse::<SetChannel>(
            r#"{"id": "all", "fee_base_msat": 1000, "cltv_expiry_delta": "80"}"#,
        )?;
        assert_eq!(parsed.id, ChannelSelector::All);
        assert_eq!(parsed.fee_base_msat.map(|v| v.get()), Some(1000));
        assert_eq!(parsed.cltv_expiry_delta.map(|v| v.get()), Some(80));
        let positional = parse::<SetChannel>(r#"["103x1x0", 0, 250]"#)?;
        assert_eq!(
            positional.fee_proportional_millionths.map(|v| v.get()),
            Some(250)
        );
        for (bad, param) in [
            (
                r#"{"id": "all", "fee_base_msat": 4294967296}"#,
                "fee_base_msat",
            ),
            (
                r#"{"id": "all", "fee_proportional_millionths": -1}"#,
                "fee_proportional_millionths",
            ),
            (
                r#"{"id": "all", "cltv_expiry_delta": 65536}"#,
                "cltv_expiry_delta",
            ),
            (
                r#"{"id": "all", "htlc_minimum_msat": "lots"}"#,
                "htlc_minimum_msat",
            ),
            (r#"{"id": "everything"}"#, "id"),
        ] {
            let error = parse::<SetChannel>(bad).err();
            let data: Value = error
                .as_ref()
                .and_then(|e| e.data())
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .unwrap_or(Value::Null);
            assert_eq!(error.map(|e| e.code()), Some(-32602), "{bad}");
            assert_eq!(data["param"], param, "{bad}");
        }
        Ok(())
    }

    #[test]
    fn listforwards_status_must_be_settled_or_failed() -> Result<(), ErrorObjectOwned> {
        let filter = parse::<ListForwards>(r#"{"status": "failed", "since": 5}"#)?;
        assert_eq!(filter.status, Some(ForwardStatus::Failed));
        assert_eq!(filter.since.map(|v| v.get()), Some(5));
        let error = parse::<ListForwards>(r#"{"status": "offered"}"#).err();
        assert_eq!(error.map(|e| e.code()), Some(-32602));
        Ok(())
    }
}
