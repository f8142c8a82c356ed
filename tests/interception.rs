//! HTLC interception for an LSP, end to end on real `xlnd` processes driven by `xln-cli`, on
//! bitcoind and on qtumd.
//!
//! carol, the LSP's client, has no channel. bob, the LSP, hands out intercept SCIDs, and carol
//! puts one in her invoice's route hint. alice pays over her channel to bob:
//!
//! 1. bob sees the HTLC in `listinterceptedhtlcs`, opens a channel to carol, and forwards the
//!    HTLC over it once it is usable: alice's payment succeeds and carol is paid.
//! 2. bob is killed (`kill -9`) while an HTLC is intercepted; after the restart it is still
//!    listed, every bad `resolvehtlc` is refused with its error code and changes nothing, and
//!    it is forwarded.
//! 3. bob ignores one: his time limit (`intercept_timeout_secs`, 10 s here) fails it back,
//!    alice's payment ends failed and the A-B channel stays open.
//! 4. with no time limit, LDK fails an ignored one back on the block 39 blocks before the
//!    outgoing HTLC's expiry (not one block earlier), far from the incoming HTLC's expiry: the
//!    record says why, alice's payment ends failed and the A-B channel stays open.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use ln_core::node::ChannelPolicy;
use ln_core::ChainParams;
use serde_json::Value;
use xln_tests::qtumd::{qtum_core_or_skip, start_qtumd};
use xln_tests::steps::{channel, fund, height, id, mine, open, settled, WAIT};
use xln_tests::three_nodes::{NodesDir, TestChain};
use xln_tests::xlnd::Xlnd;
use xln_tests::{init_test_logging, Bitcoind};

/// bob's time limit on intercepted HTLCs in the last scenario, seconds.
const SHORT_TIMEOUT_SECS: u64 = 10;

/// How long alice's `pay` waits for an intercepted payment's outcome, seconds.
const PAY_TIMEOUT_SECS: &str = "timeout_secs=240";

/// alice (payer), bob (LSP) and carol (client, no channel yet), and the A-B channel.
struct LspNet {
    // Declared (so dropped) first: the nodes stop before their chain node and directory go.
    nodes: [Xlnd; 3],
    ids: [String; 3],
    ab: String,
    capacity_sat: u64,
    amount_msat: u64,
    policy: ChannelPolicy,
    chain_node: Bitcoind,
    _dir: NodesDir,
}

impl LspNet {
    /// Starts the chain node and the three nodes, funds alice and bob, and opens a private
    /// channel from alice to bob. `None` when the test is skipped for want of a qtumd.
    fn start(chain: TestChain, test: &str) -> Result<Option<Self>> {
        init_test_logging();
        let (chain_node, params, chain_args) = match chain {
            TestChain::Bitcoin => (Bitcoind::start()?, ChainParams::bitcoin_regtest(), vec![]),
            TestChain::Qtum => {
                let Some(binaries) = qtum_core_or_skip(test)? else {
                    return Ok(None);
                };
                (
                    start_qtumd(binaries)?,
                    ChainParams::qtum_regtest(),
                    vec!["--chain=qtum"],
                )
            }
        };
        let policy = ChannelPolicy::for_chain(&params);
        let capacity_sat = policy.min_funding_sat.max(1_000_000) * 50;
        let dir = NodesDir::new(tempfile::tempdir()?);
        let start = |name: &str| {
            Xlnd::start_with_args(&chain_node, &dir.path().join(name), name, &chain_args)
        };
        let nodes = [start("alice")?, start("bob")?, start("carol")?];
        let [alice, bob, carol] = &nodes;
        fund(&chain_node, &params, alice, &[bob, carol])?;
        fund(&chain_node, &params, bob, &[alice, carol])?;
        let ab = open(&chain_node, &params, alice, bob, capacity_sat, false)?;
        let ids = [id(alice)?, id(bob)?, id(carol)?];
        Ok(Some(Self {
            nodes,
            ids,
            ab,
            capacity_sat,
            amount_msat: (capacity_sat * 10).max(policy.htlc_minimum_msat),
            policy,
            chain_node,
            _dir: dir,
        }))
    }

    /// A fresh intercept SCID of bob's, checked against his policy.
    fn intercept_scid(&self) -> Result<Value> {
        let scid = self.nodes[1].cli(&["intercept_scid"])?;
        ensure!(scid["node_id"] == self.ids[1].as_str(), "{scid}");
        ensure!(
            scid["cltv_expiry_delta"] == self.policy.cltv_expiry_delta,
            "{scid}"
        );
        ensure!(
            scid["confirmation_blocks"] == self.policy.minimum_depth,
            "{scid}"
        );
        let hint = scid["route_hint"].as_str().context("route_hint")?;
        let scid_text = scid["short_channel_id"].as_str().context("scid")?;
        ensure!(
            hint.starts_with(&format!("{}:{scid_text}:", self.ids[1])),
            "{scid}"
        );
        Ok(scid)
    }

    /// carol's invoice for the test amount with a route hint through bob's `scid`, with room in
    /// its final CLTV delta for bob to open a channel first. Returns the BOLT11 string and the
    /// payment hash.
    fn client_invoice(&self, scid: &Value, description: &str) -> Result<(String, String)> {
        let extra_blocks = scid["confirmation_blocks"].as_u64().context("blocks")? + 2;
        let final_cltv = u64::from(self.policy.min_final_cltv_expiry_delta) + extra_blocks;
        let created = self.nodes[2].cli(&[
            "invoice",
            &self.amount_msat.to_string(),
            description,
            &format!(
                "route_hint={}",
                scid["route_hint"].as_str().unwrap_or_default()
            ),
            &format!("min_final_cltv_expiry_delta={final_cltv}"),
        ])?;
        let bolt11 = created["bolt11"].as_str().context("bolt11")?.to_owned();
        let hash = created["payment_hash"].as_str().context("hash")?.to_owned();
        let decoded = self.nodes[0].cli(&["decode", &bolt11])?;
        ensure!(
            decoded["min_final_cltv_expiry_delta"].as_u64() >= Some(final_cltv),
            "{decoded}"
        );
        Ok((bolt11, hash))
    }

    /// What bob's hint asks alice to pay him on top of the amount, msat.
    fn hint_fee_msat(&self, scid: &Value) -> u64 {
        let base = scid["fee_base_msat"].as_u64().unwrap_or_default();
        let ppm = scid["fee_proportional_millionths"]
            .as_u64()
            .unwrap_or_default();
        base + self.amount_msat * ppm / 1_000_000
    }

    /// bob's pending record of the HTLC to `scid` for `payment_hash`, once it is there, checked
    /// against what alice sent.
    fn intercepted(&self, scid: &Value, payment_hash: &str) -> Result<Value> {
        let bob = &self.nodes[1];
        let record = bob.wait_cli(
            &["listinterceptedhtlcs", "pending"],
            "the intercepted HTLC",
            WAIT,
            |list| {
                list["intercepted_htlcs"]
                    .as_array()?
                    .iter()
                    .find(|r| r["payment_hash"] == payment_hash)
                    .cloned()
            },
        )?;
        ensure!(record["status"] == "pending", "{record}");
        ensure!(
            record["requested_next_hop_scid"] == scid["short_channel_id"],
            "{record}"
        );
        ensure!(
            record["expected_outbound_amount_msat"] == self.amount_msat,
            "{record}"
        );
        ensure!(
            record["inbound_amount_msat"] == self.amount_msat + self.hint_fee_msat(scid),
            "{record}"
        );
        ensure!(
            record["incoming_channel_id"] == self.ab.as_str(),
            "{record}"
        );
        ensure!(
            record["incoming_cltv_expiry"].as_u64().is_some(),
            "{record}"
        );
        Ok(record)
    }

    /// Waits until `channel_id` is usable at every node of `ends`.
    fn usable(&self, channel_id: &str, ends: &[usize]) -> Result<()> {
        for end in ends {
            self.nodes[*end].wait_cli(&["listchannels"], "a usable channel", WAIT, |list| {
                (channel(list, channel_id)?["is_usable"] == true).then_some(())
            })?;
        }
        Ok(())
    }

    /// carol's invoice `payment_hash` is paid the test amount.
    fn carol_paid(&self, payment_hash: &str) -> Result<()> {
        let invoices = self.nodes[2].cli(&["listinvoices", payment_hash])?;
        let invoice = &invoices["invoices"][0];
        ensure!(
            invoice["status"] == "paid" && invoice["amount_received_msat"] == self.amount_msat,
            "{invoices}"
        );
        Ok(())
    }
}

/// The id of an intercepted HTLC's record.
fn intercept_id(record: &Value) -> Result<String> {
    Ok(record["intercept_id"]
        .as_str()
        .context("intercept_id")?
        .to_owned())
}

/// Runs `work` while alice pays `bolt11` in another thread; returns alice's payment.
fn while_alice_pays(
    alice: &Xlnd,
    bolt11: &str,
    work: impl FnOnce() -> Result<()>,
) -> Result<Value> {
    std::thread::scope(|scope| {
        let paying = scope.spawn(|| alice.cli(&["pay", bolt11, PAY_TIMEOUT_SECS]));
        let worked = work();
        let paid = paying
            .join()
            .map_err(|_| anyhow::anyhow!("the payer panicked"))?;
        worked?;
        paid
    })
}

/// Scenario 1: bob opens a channel to carol just in time and forwards over it. Returns the
/// channel's id.
fn jit_channel_carries_the_first_payment(net: &LspNet) -> Result<String> {
    let [alice, bob, carol] = &net.nodes;
    let scid = net.intercept_scid()?;
    let (bolt11, hash) = net.client_invoice(&scid, "first payment to a new client")?;
    let mut bc = String::new();
    let paid = while_alice_pays(alice, &bolt11, || {
        let record = net.intercepted(&scid, &hash)?;
        let id = intercept_id(&record)?;
        ensure!(
            record["timeout_at"].as_u64() == record["received_at"].as_u64().map(|at| at + 120),
            "the default time limit is 120 s: {record}"
        );
        bob.cli(&["connect", &carol.uri()?])?;
        let opened = bob.cli(&[
            "fundchannel",
            &net.ids[2],
            &net.capacity_sat.to_string(),
            "announce=false",
        ])?;
        bc = opened["channel_id"]
            .as_str()
            .context("channel_id")?
            .to_owned();
        // Not usable before its confirmations: refused, and still pending.
        let (_, early) =
            bob.cli_error(&["resolvehtlc", &id, "forward", &format!("channel_id={bc}")])?;
        ensure!(
            early.contains("error 303") && early.contains("confirmations"),
            "{early}"
        );
        mine(
            &net.chain_node,
            net.policy.minimum_depth,
            &[alice, bob, carol],
        )?;
        net.usable(&bc, &[1, 2])?;
        let forwarded = bob.cli(&["resolvehtlc", &id, "forward", &format!("channel_id={bc}")])?;
        ensure!(
            forwarded["status"] == "forwarded"
                && forwarded["outgoing_channel_id"] == bc.as_str()
                && forwarded["outbound_amount_msat"] == net.amount_msat
                && forwarded["timeout_at"].is_null(),
            "{forwarded}"
        );
        Ok(())
    })?;
    ensure!(paid["status"] == "succeeded", "alice's payment: {paid}");
    net.carol_paid(&hash)?;
    settled(alice, &net.ab)?;
    // Resolved once only: both actions are refused now, with the record unchanged.
    let forwarded = bob.cli(&["listinterceptedhtlcs", "forwarded"])?;
    let record = forwarded["intercepted_htlcs"][0].clone();
    let id = intercept_id(&record)?;
    let to_carol = format!("peer_id={}", net.ids[2]);
    for call in [
        vec!["resolvehtlc", &id, "fail"],
        vec!["resolvehtlc", &id, "forward", &to_carol],
    ] {
        let (_, again) = bob.cli_error(&call)?;
        ensure!(
            again.contains("error 504") && again.contains("already forwarded"),
            "{again}"
        );
    }
    ensure!(
        bob.cli(&["listinterceptedhtlcs", "forwarded"])?["intercepted_htlcs"][0] == record,
        "a refused resolution changed the record"
    );
    // The same story in bob's event stream, once each: intercepted, then forwarded.
    let events = bob.cli(&["listevents", "intercepted_htlcs"])?;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .context("events")?
        .iter()
        .filter(|e| e["data"]["intercept_id"] == id.as_str())
        .filter_map(|e| e["type"].as_str())
        .collect();
    ensure!(
        kinds == ["intercepted", "forwarded"],
        "bob's intercepted_htlcs events: {kinds:?}"
    );
    Ok(bc)
}

/// Scenario 2: bob is killed while an HTLC is intercepted; after the restart it is listed,
/// refused resolutions change nothing, and it is forwarded to carol (by peer).
fn intercepted_htlc_survives_a_restart(net: &LspNet, bc: &str) -> Result<()> {
    let [alice, bob, _] = &net.nodes;
    let scid = net.intercept_scid()?;
    let (bolt11, hash) = net.client_invoice(&scid, "paid across a restart of the LSP")?;
    let paid = while_alice_pays(alice, &bolt11, || {
        let record = net.intercepted(&scid, &hash)?;
        let id = intercept_id(&record)?;
        bob.kill9()?;
        bob.restart()?;
        let listed = bob.cli(&["listinterceptedhtlcs", "pending"])?;
        ensure!(
            listed["intercepted_htlcs"]
                .as_array()
                .is_some_and(|all| all.iter().any(|r| r["intercept_id"] == id.as_str())),
            "the intercepted HTLC is not listed after the restart: {listed}"
        );
        refusals_change_nothing(net, &id)?;
        net.usable(bc, &[1])?;
        let forwarded = bob.cli(&[
            "resolvehtlc",
            &id,
            "forward",
            &format!("peer_id={}", net.ids[2]),
        ])?;
        ensure!(
            forwarded["status"] == "forwarded" && forwarded["outgoing_channel_id"] == bc,
            "{forwarded}"
        );
        Ok(())
    })?;
    ensure!(paid["status"] == "succeeded", "alice's payment: {paid}");
    net.carol_paid(&hash)?;
    settled(alice, &net.ab)?;
    Ok(())
}

/// Every bad `resolvehtlc` of the pending HTLC `id` gets its error code, and the record stays
/// as it was.
fn refusals_change_nothing(net: &LspNet, id: &str) -> Result<()> {
    let bob = &net.nodes[1];
    let record = |bob: &Xlnd| -> Result<Value> {
        let list = bob.cli(&["listinterceptedhtlcs"])?;
        list["intercepted_htlcs"]
            .as_array()
            .and_then(|all| all.iter().find(|r| r["intercept_id"] == id).cloned())
            .context("the record")
    };
    let before = record(bob)?;
    let stranger = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";
    let inbound = before["inbound_amount_msat"].as_u64().context("inbound")?;
    let zeros = "00".repeat(32);
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec![zeros.clone(), "fail".into()],
            "error 100",
            "no intercepted HTLC",
        ),
        (
            vec![id.into(), "jump".into()],
            "error -32602",
            "forward, fail, settle",
        ),
        (
            vec![id.into(), "forward".into()],
            "error -32602",
            "channel_id or peer_id",
        ),
        (
            vec![id.into(), "forward".into(), format!("peer_id={stranger}")],
            "error 100",
            "no open channel with peer",
        ),
        (
            vec![
                id.into(),
                "forward".into(),
                format!("channel_id={}", "ff".repeat(32)),
            ],
            "error 100",
            "no open channel",
        ),
        (
            vec![
                id.into(),
                "forward".into(),
                format!("peer_id={}", net.ids[2]),
                format!("amount_msat={}", inbound + 1),
            ],
            "error -32602",
            "more than",
        ),
        (
            vec![id.into(), "fail".into(), format!("channel_id={}", net.ab)],
            "error -32602",
            "goes with action forward",
        ),
        (
            vec![id.into(), "settle".into(), format!("preimage={zeros}")],
            "error 102",
            "hold invoice",
        ),
        (vec!["xyz".into(), "fail".into()], "error -32602", "64 hex"),
    ];
    for (args, code, words) in cases {
        let mut call = vec!["resolvehtlc"];
        call.extend(args.iter().map(String::as_str));
        let (_, refused) = bob.cli_error(&call)?;
        ensure!(
            refused.contains(code) && refused.contains(words),
            "{call:?} answered {refused}, not {code} with {words:?}"
        );
    }
    ensure!(
        record(bob)? == before,
        "a refused resolution changed the record"
    );
    Ok(())
}

/// Scenario 3: bob, now with a 10-second time limit, ignores an HTLC: it is failed back in
/// time, alice's payment ends failed, and the A-B channel stays open.
fn an_ignored_htlc_is_failed_back_by_the_time_limit(net: &LspNet) -> Result<()> {
    let [alice, bob, carol] = &net.nodes;
    bob.stop()?;
    bob.restart_with_env(&[(
        "XLN_INTERCEPT_TIMEOUT_SECS",
        &SHORT_TIMEOUT_SECS.to_string(),
    )])?;
    net.usable(&net.ab, &[0, 1])?;
    let scid = net.intercept_scid()?;
    let (bolt11, hash) = net.client_invoice(&scid, "ignored by the LSP")?;
    let started = Instant::now();
    let paid = alice.cli(&["pay", &bolt11, PAY_TIMEOUT_SECS])?;
    let waited = started.elapsed();
    ensure!(paid["status"] == "failed", "alice's payment: {paid}");
    ensure!(
        waited >= Duration::from_secs(SHORT_TIMEOUT_SECS)
            && waited < Duration::from_secs(SHORT_TIMEOUT_SECS + 50),
        "alice's payment failed after {waited:?}, not soon after bob's {SHORT_TIMEOUT_SECS} s"
    );
    eprintln!(
        "interception: the ignored HTLC failed back and alice's payment ended after {:.1} s",
        waited.as_secs_f64()
    );
    let failed = bob.cli(&["listinterceptedhtlcs", "failed"])?;
    let record = failed["intercepted_htlcs"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["payment_hash"] == hash.as_str()))
        .cloned()
        .context("bob's failed record")?;
    ensure!(
        record["failure_reason"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("not resolved within {SHORT_TIMEOUT_SECS} s"))),
        "{record}"
    );
    let unpaid = carol.cli(&["listinvoices", &hash])?;
    ensure!(unpaid["invoices"][0]["status"] == "unpaid", "{unpaid}");
    settled(alice, &net.ab)?;
    for end in [0, 1] {
        let ab = channel(&net.nodes[end].cli(&["listchannels"])?, &net.ab)
            .cloned()
            .context("A-B is gone")?;
        ensure!(
            ab["is_usable"] == true && ab["state"] == "active",
            "{}'s A-B: {ab}",
            net.nodes[end].name
        );
    }
    Ok(())
}

/// Scenario 4: bob, now with no time limit, ignores an HTLC: LDK fails it back on the block
/// 39 blocks (`HTLC_FAIL_BACK_BUFFER`) before the expiry of the HTLC it would have sent on, at
/// least 87 blocks before the incoming HTLC expires.
fn ldk_fails_an_unanswered_htlc_back_long_before_it_expires(net: &LspNet) -> Result<()> {
    let [alice, bob, carol] = &net.nodes;
    bob.stop()?;
    bob.restart_with_env(&[("XLN_INTERCEPT_TIMEOUT_SECS", "0")])?;
    net.usable(&net.ab, &[0, 1])?;
    let scid = net.intercept_scid()?;
    let delta = scid["cltv_expiry_delta"].as_u64().context("delta")?;
    let (bolt11, hash) = net.client_invoice(&scid, "left unanswered with no time limit")?;
    let failed_record = |bob: &Xlnd| -> Result<Option<Value>> {
        let failed = bob.cli(&["listinterceptedhtlcs", "failed"])?;
        Ok(failed["intercepted_htlcs"]
            .as_array()
            .and_then(|all| all.iter().find(|r| r["payment_hash"] == hash.as_str()))
            .cloned())
    };
    let mut expiry = 0;
    let paid = while_alice_pays(alice, &bolt11, || {
        let record = net.intercepted(&scid, &hash)?;
        ensure!(record["timeout_at"].is_null(), "no time limit: {record}");
        expiry = record["incoming_cltv_expiry"].as_u64().context("expiry")?;
        // The payer's onion gives the intercept hop exactly the hint's delta.
        let fail_height = expiry - delta - 39;
        let now = height(&net.chain_node)?;
        ensure!(
            fail_height > now + 1,
            "expiry {expiry} is too close at {now}"
        );
        let before = u32::try_from(fail_height - 1 - now)?;
        mine(&net.chain_node, before, &[alice, bob, carol])?;
        std::thread::sleep(Duration::from_secs(2));
        ensure!(
            failed_record(bob)?.is_none(),
            "failed back before block {fail_height}"
        );
        mine(&net.chain_node, 1, &[alice, bob, carol])?;
        let failed = bob.wait_cli(
            &["listinterceptedhtlcs", "failed"],
            "LDK's fail-back",
            WAIT,
            |list| {
                list["intercepted_htlcs"]
                    .as_array()?
                    .iter()
                    .find(|r| r["payment_hash"] == hash.as_str())
                    .cloned()
            },
        )?;
        ensure!(
            failed["failure_reason"].as_str().is_some_and(
                |r| r.contains("LDK failed it back") && r.contains("ForwardExpiryBuffer")
            ),
            "{failed}"
        );
        eprintln!(
            "interception: LDK failed the HTLC back at block {fail_height}, {} blocks before the incoming HTLC's expiry {expiry}",
            expiry - fail_height
        );
        Ok(())
    })?;
    ensure!(paid["status"] == "failed", "alice's payment: {paid}");
    ensure!(expiry >= height(&net.chain_node)? + 87);
    settled(alice, &net.ab)?;
    for end in [0, 1] {
        let ab = channel(&net.nodes[end].cli(&["listchannels"])?, &net.ab)
            .cloned()
            .context("A-B is gone")?;
        ensure!(
            ab["is_usable"] == true,
            "{}'s A-B: {ab}",
            net.nodes[end].name
        );
    }
    Ok(())
}

fn an_lsp_intercepts_forwards_and_fails_htlcs(chain: TestChain, test: &str) -> Result<()> {
    let started = Instant::now();
    let Some(net) = LspNet::start(chain, test)? else {
        return Ok(());
    };
    let mut lap = started;
    let mut report = |what: &str| {
        eprintln!(
            "interception on {chain:?}: {what} in {:.1} s",
            lap.elapsed().as_secs_f64()
        );
        lap = Instant::now();
    };
    report("set-up (funding, A-B)");
    let bc = jit_channel_carries_the_first_payment(&net)?;
    report("JIT channel and forward");
    intercepted_htlc_survives_a_restart(&net, &bc)?;
    report("restart while intercepted");
    an_ignored_htlc_is_failed_back_by_the_time_limit(&net)?;
    report("time limit");
    ldk_fails_an_unanswered_htlc_back_long_before_it_expires(&net)?;
    report("LDK's fail-back near the CLTV expiry");
    eprintln!(
        "interception on {chain:?}: all in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn an_lsp_forwards_over_a_jit_channel_survives_a_restart_and_fails_ignored_htlcs_on_bitcoin(
) -> Result<()> {
    an_lsp_intercepts_forwards_and_fails_htlcs(TestChain::Bitcoin, "interception on bitcoind")
}

#[test]
fn an_lsp_forwards_over_a_jit_channel_survives_a_restart_and_fails_ignored_htlcs_on_qtum(
) -> Result<()> {
    an_lsp_intercepts_forwards_and_fails_htlcs(
        TestChain::Qtum,
        "an_lsp_forwards_over_a_jit_channel_survives_a_restart_and_fails_ignored_htlcs_on_qtum",
    )
}
