//! The RPC contract end to end: a real xlnd on a real regtest bitcoind answers every method it
//! lists in `rpc.discover`, by name and by position, and each successful answer validates
//! against that method's result schema from the same document.

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, ensure, Context, Result};
use ln_core::ChainParams;
use serde_json::{json, Value};
use xln_tests::steps::{channel, fund, id, open, settled, WAIT};
use xln_tests::xlnd::Xlnd;
use xln_tests::{init_test_logging, Bitcoind};

/// A JSON-RPC answer.
#[derive(Debug, Clone)]
enum Answer {
    /// The result.
    Result(Value),
    /// The error's code and data.
    Error(i64, Value),
}

/// Calls `method` with `params` over raw HTTP JSON-RPC.
fn call(node: &Xlnd, method: &str, params: Value) -> Result<Answer> {
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let (status, body) = node.rpc_raw(&request.to_string(), Some(&node.cookie_auth()?))?;
    ensure!(status == 200, "{method}: HTTP {status}: {body}");
    let answer: Value =
        serde_json::from_str(&body).with_context(|| format!("{method}: not JSON: {body}"))?;
    match (answer.get("result"), answer.get("error")) {
        (Some(result), None) => Ok(Answer::Result(result.clone())),
        (None, Some(error)) => Ok(Answer::Error(
            error["code"].as_i64().unwrap_or_default(),
            error.get("data").cloned().unwrap_or(Value::Null),
        )),
        _ => bail!("{method}: neither result nor error: {body}"),
    }
}

/// The OpenRPC document, and a checker of each method's results against it.
struct Contract {
    document: Value,
}

impl Contract {
    fn method(&self, name: &str) -> Result<&Value> {
        self.document["methods"]
            .as_array()
            .and_then(|methods| methods.iter().find(|m| m["name"] == name))
            .ok_or_else(|| anyhow!("rpc.discover has no method {name}"))
    }

    fn names(&self) -> BTreeSet<String> {
        self.document["methods"]
            .as_array()
            .map(|methods| {
                methods
                    .iter()
                    .filter_map(|m| m["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Checks that `result` of `method` validates against its result schema.
    fn check(&self, method: &str, result: &Value) -> Result<()> {
        let schema = json!({
            "allOf": [self.method(method)?["result"]["schema"]],
            "components": self.document["components"],
        });
        let validator = jsonschema::draft7::new(&schema)
            .map_err(|e| anyhow!("{method}: the result schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(result)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        ensure!(
            errors.is_empty(),
            "{method}'s answer does not fit its schema: {errors:?}\n{result}"
        );
        Ok(())
    }
}

/// Calls `method` by name with `by_name` and by position with `by_position`; each answer must
/// be a result valid against the schema, or an error whose code is in `allowed_errors`.
/// Returns the answers.
fn both_ways(
    node: &Xlnd,
    contract: &Contract,
    called: &mut BTreeSet<String>,
    method: &str,
    by_name: Value,
    by_position: Value,
    allowed_errors: &[i64],
) -> Result<(Answer, Answer)> {
    called.insert(method.to_owned());
    let mut answers = Vec::new();
    for params in [by_name, by_position] {
        let answer = call(node, method, params.clone())?;
        match &answer {
            Answer::Result(result) => contract.check(method, result)?,
            Answer::Error(code, data) => {
                ensure!(
                    allowed_errors.contains(code),
                    "{method} {params}: error {code} ({data}), expected a result or one of {allowed_errors:?}"
                );
                ensure!(
                    data.is_object(),
                    "{method} {params}: error {code} without a data object"
                );
            }
        }
        answers.push(answer);
    }
    let by_position = answers.pop().context("two answers")?;
    let by_name = answers.pop().context("two answers")?;
    Ok((by_name, by_position))
}

fn result_of(answer: &Answer, what: &str) -> Result<Value> {
    match answer {
        Answer::Result(result) => Ok(result.clone()),
        Answer::Error(code, data) => bail!("{what}: error {code} {data}"),
    }
}

#[test]
fn every_method_answers_by_name_and_by_position_within_its_published_schema() -> Result<()> {
    init_test_logging();
    let bitcoind = Bitcoind::start()?;
    bitcoind.mine(1)?;
    let dir = tempfile::tempdir()?;
    let alice = Xlnd::start(&bitcoind, &dir.path().join("alice"), "alice")?;
    let bob = Xlnd::start(&bitcoind, &dir.path().join("bob"), "bob")?;
    let bitcoin = ChainParams::bitcoin_regtest();
    fund(&bitcoind, &bitcoin, &alice, &[&bob])?;
    let channel_id = open(&bitcoind, &bitcoin, &alice, &bob, 1_000_000, false)?;
    let bob_id = id(&bob)?;

    let document = result_of(&call(&alice, "rpc.discover", json!([]))?, "rpc.discover")?;
    ensure!(document["openrpc"] == "1.2.6", "{}", document["openrpc"]);
    let contract = Contract { document };
    let mut called = BTreeSet::new();
    let run = &mut called;
    let (a, c) = (&alice, &contract);

    // Reads.
    for method in [
        "getinfo",
        "newaddr",
        "listfunds",
        "listbroadcasts",
        "listpeers",
        "listchannels",
        "listnodes",
        "listgraphchannels",
        "rpc.discover",
        "help",
    ] {
        both_ways(a, c, run, method, json!({}), json!([]), &[])?;
    }
    both_ways(
        a,
        c,
        run,
        "help",
        json!({"method": "pay"}),
        json!(["pay"]),
        &[],
    )?;
    let help = result_of(&call(a, "help", json!([]))?, "help")?;
    let help_names: BTreeSet<String> = help["methods"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        help_names == contract.names(),
        "help and rpc.discover list different methods"
    );

    // On chain: a small withdrawal each way.
    let address = xln_tests::burn_address();
    both_ways(
        a,
        c,
        run,
        "withdraw",
        json!({"address": address, "amount_sat": 10_000}),
        json!([address, "10000", 2]),
        &[],
    )?;

    // Peers: bob is connected through the channel; disconnect and connect each way.
    let bob_uri = bob.uri()?;
    let (host_port, port) = bob_uri
        .split_once('@')
        .and_then(|(_, hp)| hp.rsplit_once(':').map(|(_, port)| (hp, port)))
        .context("bob's uri")?;
    let port: u64 = port.parse()?;
    ensure!(host_port.starts_with("127.0.0.1"), "{host_port}");
    for (by_name, by_position) in [(true, false), (false, true)] {
        let disconnect = if by_name {
            json!({"id": bob_id})
        } else {
            json!([bob_id])
        };
        run.insert("disconnect".to_owned());
        let answer = call(a, "disconnect", disconnect)?;
        match answer {
            Answer::Result(result) => c.check("disconnect", &result)?,
            // xlnd may still be reconnecting to its channel peer after the last disconnect.
            Answer::Error(200, _) => {}
            other => bail!("disconnect: {other:?}"),
        }
        let connect = if by_position {
            json!([bob_uri])
        } else {
            json!({"id": bob_id, "host": "127.0.0.1", "port": port})
        };
        run.insert("connect".to_owned());
        let connected = result_of(&call(a, "connect", connect)?, "connect")?;
        c.check("connect", &connected)?;
    }
    alice.wait_cli(
        &["listchannels"],
        "the channel usable again",
        WAIT,
        |list| (channel(list, &channel_id)?["is_usable"] == true).then_some(()),
    )?;

    // Channels: a second open by name (refused for its size), one by position (bad node id).
    both_ways(
        a,
        c,
        run,
        "fundchannel",
        json!({"id": bob_id, "amount_sat": 1000, "push_msat": 0, "announce": false}),
        json!(["02aaaa", 100_000]),
        &[-32602, 301],
    )?;

    // Invoices on bob; alice pays one each way (the second pay returns the same payment).
    let (made, made_any) = both_ways(
        &bob,
        c,
        run,
        "invoice",
        json!({"amount_msat": 20_000_000, "description": "by name", "expiry_secs": 600}),
        json!(["any", "by position"]),
        &[],
    )?;
    let bolt11 = result_of(&made, "invoice")?["bolt11"]
        .as_str()
        .context("bolt11")?
        .to_owned();
    let any_hash = result_of(&made_any, "invoice")?["payment_hash"]
        .as_str()
        .context("payment_hash")?
        .to_owned();
    both_ways(
        a,
        c,
        run,
        "decode",
        json!({"bolt11": bolt11}),
        json!([bolt11]),
        &[],
    )?;
    both_ways(
        a,
        c,
        run,
        "getroute",
        json!({"destination": bob_id, "amount_msat": 1_000_000}),
        json!([bolt11]),
        &[],
    )?;
    let (paid, _) = both_ways(
        a,
        c,
        run,
        "pay",
        json!({"bolt11": bolt11, "timeout_secs": 60}),
        json!([bolt11, null, null, "60"]),
        &[],
    )?;
    ensure!(
        result_of(&paid, "pay")?["status"] == "succeeded",
        "{paid:?}"
    );
    settled(a, &channel_id)?;
    both_ways(
        a,
        c,
        run,
        "keysend",
        json!({"destination": bob_id, "amount_msat": 1_000_000, "timeout_secs": 60}),
        json!([bob_id, 1_000_000]),
        &[],
    )?;
    settled(a, &channel_id)?;
    both_ways(
        a,
        c,
        run,
        "listpayments",
        json!({"payment_hash": null}),
        json!([]),
        &[],
    )?;
    both_ways(
        &bob,
        c,
        run,
        "listinvoices",
        json!({}),
        json!([any_hash]),
        &[],
    )?;
    both_ways(
        &bob,
        c,
        run,
        "waitanyinvoice",
        json!({"lastpay_index": 0, "timeout_secs": 5}),
        json!([0, 5]),
        &[],
    )?;
    both_ways(
        &bob,
        c,
        run,
        "listevents",
        json!({"stream": "invoices", "since_index": 0, "limit": 10}),
        json!(["payments"]),
        &[],
    )?;
    // Cancel the any-amount invoice (canceling again succeeds), then wait for it: it is final.
    both_ways(
        &bob,
        c,
        run,
        "cancelinvoice",
        json!({"payment_hash": any_hash}),
        json!([any_hash]),
        &[],
    )?;
    let (waited, _) = both_ways(
        &bob,
        c,
        run,
        "waitinvoice",
        json!({"payment_hash": any_hash, "timeout_secs": 5}),
        json!([any_hash]),
        &[],
    )?;
    ensure!(result_of(&waited, "waitinvoice")?["status"] == "canceled");
    let unknown = "11".repeat(32);
    both_ways(
        &bob,
        c,
        run,
        "settleinvoice",
        json!({"preimage": unknown}),
        json!([unknown]),
        &[100],
    )?;

    // Forwarding policy and forwards.
    both_ways(
        a,
        c,
        run,
        "setchannel",
        json!({"id": channel_id, "fee_base_msat": 1000}),
        json!(["all", 0, "250"]),
        &[],
    )?;
    both_ways(
        a,
        c,
        run,
        "listforwards",
        json!({"status": "settled"}),
        json!([]),
        &[],
    )?;

    // Interception: alice's intercept SCID goes into an invoice of bob's; no HTLC is held, so
    // resolving an unknown one is error 100 under either name.
    let (scid, _) = both_ways(a, c, run, "intercept_scid", json!({}), json!([]), &[])?;
    let route_hint = result_of(&scid, "intercept_scid")?["route_hint"]
        .as_str()
        .context("route_hint")?
        .to_owned();
    let hinted = call(
        &bob,
        "invoice",
        json!({"amount_msat": 1000, "description": "via an LSP", "route_hint": route_hint,
               "min_final_cltv_expiry_delta": 200}),
    )?;
    c.check("invoice", &result_of(&hinted, "invoice with a route hint")?)?;
    both_ways(
        a,
        c,
        run,
        "listinterceptedhtlcs",
        json!({"status": "pending"}),
        json!([]),
        &[],
    )?;
    for name in ["resolvehtlc", "resolve_htlc"] {
        both_ways(
            a,
            c,
            run,
            name,
            json!({"id": unknown, "action": "fail", "reason": "no client"}),
            json!([unknown, "fail"]),
            &[100],
        )?;
    }

    // Signed messages: alice signs, and checks her own signature each way.
    let (signed, _) = both_ways(
        a,
        c,
        run,
        "signmessage",
        json!({"message": "hello"}),
        json!(["hello"]),
        &[],
    )?;
    let zbase = result_of(&signed, "signmessage")?["zbase"]
        .as_str()
        .context("zbase")?
        .to_owned();
    let alice_id = id(a)?;
    let (checked, _) = both_ways(
        a,
        c,
        run,
        "checkmessage",
        json!({"message": "hello", "zbase": zbase, "pubkey": alice_id}),
        json!(["hello", zbase]),
        &[],
    )?;
    ensure!(
        result_of(&checked, "checkmessage")?["verified"] == true,
        "{checked:?}"
    );

    // Close: an unknown channel by position, the real one by name with force.
    both_ways(
        a,
        c,
        run,
        "close",
        json!({"id": channel_id, "force": true}),
        json!(["00".repeat(32)]),
        &[100],
    )?;

    // Unknown methods are -32601 with data; no method of the contract is.
    let unknown = call(a, "frobnicate", json!([]))?;
    ensure!(
        matches!(&unknown, Answer::Error(-32601, data) if data["method"] == "frobnicate"),
        "{unknown:?}"
    );

    // Stop, by name on bob and by position on alice.
    run.insert("stop".to_owned());
    for (node, params) in [(&bob, json!({})), (&alice, json!([]))] {
        let stopped = result_of(&call(node, "stop", params)?, "stop")?;
        c.check("stop", &stopped)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !node.has_exited()? {
            ensure!(
                std::time::Instant::now() < deadline,
                "{} did not stop",
                node.name
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    ensure!(
        called == contract.names(),
        "rpc.discover lists {:?}, the test called {:?}",
        contract.names(),
        called
    );
    Ok(())
}
