//! `xlnd` end to end: real daemon processes on a real regtest bitcoind, driven through the real
//! `xln-cli` (and raw HTTP where the test must send what the CLI never would).

use anyhow::{ensure, Context, Result};
use ln_core::ChainParams;
use serde_json::Value;
use xln_tests::steps::{
    channel, confirmed_sat, fund, gossiped, hold_invoice, id, invoice, mine, mine_until, open, pay,
    settled, swept, WAIT,
};
use xln_tests::xlnd::Xlnd;
use xln_tests::{init_test_logging, Bitcoind};

fn start_bitcoind() -> Result<Bitcoind> {
    init_test_logging();
    let bitcoind = Bitcoind::start()?;
    bitcoind.mine(1)?;
    Ok(bitcoind)
}

/// Funds alice's wallet and opens an unannounced channel of `amount_sat` from her to bob.
fn fund_and_open(bitcoind: &Bitcoind, alice: &Xlnd, bob: &Xlnd, amount_sat: u64) -> Result<String> {
    let bitcoin = ChainParams::bitcoin_regtest();
    fund(bitcoind, &bitcoin, alice, &[bob])?;
    open(bitcoind, &bitcoin, alice, bob, amount_sat, false)
}

/// A fresh regtest chain has only its genesis block and reports initial block download. xlnd
/// starts on it anyway (with a warning), so its first coins can be mined to its own address.
#[test]
fn xlnd_starts_on_a_fresh_regtest_chain_and_is_funded_by_mining_to_it() -> Result<()> {
    init_test_logging();
    let bitcoind = Bitcoind::start()?;
    let chain = bitcoind.cli_json(&["getblockchaininfo"])?;
    ensure!(
        chain["blocks"] == 0 && chain["initialblockdownload"] == true,
        "not a fresh chain: {chain}"
    );
    let dir = tempfile::tempdir()?;
    let alice = Xlnd::start(&bitcoind, &dir.path().join("alice"), "alice")?;
    let info = alice.cli(&["getinfo"])?;
    assert_eq!(info["block_height"], 0, "{info}");
    ensure!(
        alice.log_tail().contains("reports initial block download"),
        "no warning about the chain's state: {}",
        alice.log_tail()
    );

    let funded_sat = fund(&bitcoind, &ChainParams::bitcoin_regtest(), &alice, &[])?;
    assert_eq!(funded_sat, 5_000_000_000, "the first coinbase, 50 BTC");
    assert_eq!(alice.cli(&["getinfo"])?["block_height"], 101);
    Ok(())
}

#[test]
fn cli_pays_keysends_survives_restart_and_kill_9_and_closes() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let alice = Xlnd::start(&bitcoind, &dir.path().join("alice"), "alice")?;
    let bob = Xlnd::start(&bitcoind, &dir.path().join("bob"), "bob")?;
    let info = alice.cli(&["getinfo"])?;
    assert_eq!(info["chain"], "bitcoin");
    assert_eq!(info["network"], "regtest");
    let channel_id = fund_and_open(&bitcoind, &alice, &bob, 1_000_000)?;
    let opened = channel(&alice.cli(&["listchannels"])?, &channel_id)
        .cloned()
        .context("the channel")?;
    assert_eq!(opened["has_anchors"], true, "{opened}");
    assert_eq!(
        opened["their_reserve_sat"], 10_000,
        "1 % of the channel: {opened}"
    );

    let bolt11 = invoice(&bob, 50_000_000, "first")?;
    let decoded = alice.cli(&["decode", &bolt11])?;
    assert_eq!(decoded["amount_msat"], 50_000_000);
    assert_eq!(decoded["payee"], id(&bob)?.as_str());
    let paid = pay(&alice, &bolt11)?;
    assert_eq!(paid["fee_msat"], 0);
    settled(&bob, &channel_id)?;
    let keysend = bob.cli(&["keysend", &id(&alice)?, "5000000"])?;
    assert_eq!(keysend["status"], "succeeded", "{keysend}");
    settled(&alice, &channel_id)?;

    // Clean stop and restart: same channel, balance and history; paying works again.
    let channels_before = alice.cli(&["listchannels"])?;
    let payments_before = alice.cli(&["listpayments"])?;
    alice.stop()?;
    alice.restart()?;
    assert_eq!(alice.cli(&["listpayments"])?, payments_before);
    let balance =
        |list: &Value| channel(list, &channel_id).map(|c| c["local_balance_msat"].clone());
    assert_eq!(
        balance(&alice.cli(&["listchannels"])?),
        balance(&channels_before)
    );
    alice.wait_cli(
        &["listchannels"],
        "the channel usable again",
        WAIT,
        |list| (channel(list, &channel_id)?["is_usable"] == true).then_some(()),
    )?;
    pay(&alice, &invoice(&bob, 10_000_000, "after restart")?)?;
    settled(&alice, &channel_id)?;

    // kill -9 right after a payment succeeded: nothing of it is lost.
    let paid = pay(&alice, &invoice(&bob, 7_000_000, "before kill")?)?;
    let balance_at_kill = balance(&alice.cli(&["listchannels"])?);
    alice.kill9()?;
    alice.restart()?;
    let after = alice.cli(&[
        "listpayments",
        paid["payment_hash"].as_str().context("hash")?,
    ])?;
    assert_eq!(after["payments"][0]["status"], "succeeded", "{after}");
    assert_eq!(
        alice.cli(&["listpayments"])?["payments"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    alice.wait_cli(
        &["listchannels"],
        "the channel usable after kill -9",
        WAIT,
        |list| (channel(list, &channel_id)?["is_usable"] == true).then_some(()),
    )?;
    assert_eq!(balance(&alice.cli(&["listchannels"])?), balance_at_kill);
    pay(&alice, &invoice(&bob, 3_000_000, "after kill")?)?;
    settled(&alice, &channel_id)?;

    // Cooperative close: bob's wallet gets exactly his channel balance.
    let bob_msat = channel(&bob.cli(&["listchannels"])?, &channel_id)
        .and_then(|c| c["local_balance_msat"].as_u64())
        .context("bob's balance")?;
    let closed = alice.cli(&["close", &channel_id])?;
    assert_eq!(closed["type"], "mutual");
    let closing_txid = closed["txid"].as_str().context("no closing txid")?;
    alice.wait_cli(&["listchannels"], "the channel gone", WAIT, |list| {
        list["channels"].as_array()?.is_empty().then_some(())
    })?;
    let mempool = bitcoind.cli_json(&["getrawmempool"])?;
    ensure!(
        mempool.to_string().contains(closing_txid),
        "closing transaction {closing_txid} not in the mempool: {mempool}"
    );
    mine(&bitcoind, 1, &[&alice, &bob])?;
    let bob_sat = bob.wait_cli(&["listfunds"], "bob's closing output", WAIT, |funds| {
        funds["onchain_confirmed_sat"]
            .as_u64()
            .filter(|sat| *sat > 0)
    })?;
    assert_eq!(bob_sat * 1000, bob_msat);
    Ok(())
}

#[test]
fn hold_invoices_settle_cancel_and_survive_a_restart() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let alice = Xlnd::start(&bitcoind, &dir.path().join("alice"), "alice")?;
    let bob = Xlnd::start(&bitcoind, &dir.path().join("bob"), "bob")?;
    let channel_id = fund_and_open(&bitcoind, &alice, &bob, 1_000_000)?;

    let hold = |n: u8| hold_invoice(&bob, n, 20_000_000);

    // Settled: the payer's pay blocks until bob settles.
    let (preimage, hash, bolt11) = hold(1)?;
    let payer = std::thread::scope(|scope| -> Result<Value> {
        let paying = scope.spawn(|| alice.cli(&["pay", &bolt11]));
        let held = bob.cli(&["waitinvoice", &hash, "60"])?;
        assert_eq!(held["status"], "held", "{held}");
        assert!(
            !paying.is_finished(),
            "pay returned before the hold invoice was settled"
        );
        bob.cli(&["settleinvoice", &preimage])?;
        paying
            .join()
            .map_err(|_| anyhow::anyhow!("pay thread panicked"))?
    })?;
    assert_eq!(payer["status"], "succeeded", "{payer}");
    assert_eq!(payer["preimage"], preimage.as_str());
    settled(&alice, &channel_id)?;

    // Cancelled: the payer sees failed.
    let (_, hash, bolt11) = hold(2)?;
    let payer = std::thread::scope(|scope| -> Result<Value> {
        let paying = scope.spawn(|| alice.cli(&["pay", &bolt11]));
        let held = bob.cli(&["waitinvoice", &hash, "60"])?;
        assert_eq!(held["status"], "held");
        bob.cli(&["cancelinvoice", &hash])?;
        paying
            .join()
            .map_err(|_| anyhow::anyhow!("pay thread panicked"))?
    })?;
    assert_eq!(payer["status"], "failed", "{payer}");
    assert_eq!(
        bob.cli(&["listinvoices", &hash])?["invoices"][0]["status"],
        "canceled"
    );
    settled(&alice, &channel_id)?;

    // Held across a restart of bob, then settled.
    let (preimage, hash, bolt11) = hold(3)?;
    let payer = std::thread::scope(|scope| -> Result<Value> {
        let paying = scope.spawn(|| alice.cli(&["pay", &bolt11, "timeout_secs=300"]));
        let held = bob.cli(&["waitinvoice", &hash, "60"])?;
        assert_eq!(held["status"], "held");
        bob.stop()?;
        bob.restart()?;
        assert_eq!(
            bob.cli(&["listinvoices", &hash])?["invoices"][0]["status"],
            "held"
        );
        bob.wait_cli(&["listpeers"], "alice reconnected", WAIT, |peers| {
            peers["peers"]
                .as_array()?
                .iter()
                .any(|p| p["connected"] == true)
                .then_some(())
        })?;
        bob.cli(&["settleinvoice", &preimage])?;
        paying
            .join()
            .map_err(|_| anyhow::anyhow!("pay thread panicked"))?
    })?;
    assert_eq!(payer["status"], "succeeded", "{payer}");
    bob.wait_cli(&["listinvoices", &hash], "paid", WAIT, |list| {
        (list["invoices"][0]["status"] == "paid").then_some(())
    })?;
    Ok(())
}

/// A BOLT11 example invoice of Bitcoin mainnet (from the BOLT 11 specification).
const MAINNET_INVOICE: &str = "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh";

/// bob lets alice have 2 HTLCs in flight towards him (`--max-accepted-htlcs=2`), and two held
/// payments take both. A keysend that finds no slot waits in alice's send queue instead of
/// failing with "no route": with a short timeout it ends with error 505 and a failed record,
/// nothing sent; with time it goes as soon as bob settles one of the held payments.
#[test]
fn payments_wait_in_turn_for_htlc_slots_our_own_payments_hold() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let alice = Xlnd::start(&bitcoind, &dir.path().join("alice"), "alice")?;
    let bob = Xlnd::start_with_args(
        &bitcoind,
        &dir.path().join("bob"),
        "bob",
        &["--max-accepted-htlcs=2"],
    )?;
    let channel_id = fund_and_open(&bitcoind, &alice, &bob, 1_000_000)?;
    let bob_id = id(&bob)?;
    let holds = [
        hold_invoice(&bob, 1, 10_000_000)?,
        hold_invoice(&bob, 2, 10_000_000)?,
    ];
    std::thread::scope(|scope| -> Result<()> {
        let held: Vec<_> = holds
            .iter()
            .map(|(_, _, bolt11)| scope.spawn(|| alice.cli(&["pay", bolt11, "timeout_secs=300"])))
            .collect();
        for (_, hash, _) in &holds {
            let invoice = bob.cli(&["waitinvoice", hash, "60"])?;
            ensure!(invoice["status"] == "held", "{invoice}");
        }
        let channel = channel(&alice.cli(&["listchannels"])?, &channel_id)
            .cloned()
            .context("alice's channel")?;
        ensure!(channel["outbound_htlcs_in_flight"] == 2, "{channel}");

        // No slot comes within 3 s: 505, and the payment is recorded as failed.
        let (code, message) =
            alice.cli_error(&["keysend", &bob_id, "1000000", "timeout_secs=3"])?;
        ensure!(
            message.contains("error 505") && message.contains("send queue"),
            "code {code}: {message}"
        );
        let payments = alice.cli(&["listpayments"])?;
        let failed: Vec<_> = payments["payments"]
            .as_array()
            .context("payments")?
            .iter()
            .filter(|p| p["status"] == "failed")
            .collect();
        ensure!(
            failed.len() == 1 && failed[0]["amount_msat"] == 1_000_000,
            "{payments}"
        );

        // Given time, it waits for a slot and goes once bob settles one held payment.
        let queued =
            scope.spawn(|| alice.cli(&["keysend", &bob_id, "2000000", "timeout_secs=120"]));
        std::thread::sleep(std::time::Duration::from_secs(2));
        ensure!(!queued.is_finished(), "the keysend did not wait for a slot");
        bob.cli(&["settleinvoice", &holds[0].0])?;
        let sent = queued
            .join()
            .map_err(|_| anyhow::anyhow!("keysend thread panicked"))??;
        ensure!(sent["status"] == "succeeded", "{sent}");
        bob.cli(&["settleinvoice", &holds[1].0])?;
        for payer in held {
            let paid = payer
                .join()
                .map_err(|_| anyhow::anyhow!("pay thread panicked"))??;
            ensure!(paid["status"] == "succeeded", "{paid}");
        }
        Ok(())
    })?;
    settled(&alice, &channel_id)?;
    Ok(())
}

#[test]
fn bad_input_gets_a_documented_error_and_changes_nothing() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let alice = Xlnd::start(&bitcoind, &dir.path().join("alice"), "alice")?;
    let state = || -> Result<Value> {
        Ok(serde_json::json!([
            alice.cli(&["listinvoices"])?,
            alice.cli(&["listpayments"])?,
            alice.cli(&["listchannels"])?,
            alice.cli(&["listfunds"])?["onchain_confirmed_sat"],
        ]))
    };
    let before = state()?;
    let expect = |args: &[&str], code: i64| -> Result<()> {
        let (exit, stderr) = alice.cli_error(args)?;
        ensure!(exit != 0);
        ensure!(
            stderr.contains(&format!("error {code}")),
            "`xln-cli {}` should fail with code {code}, said: {stderr}",
            args.join(" ")
        );
        Ok(())
    };
    expect(&["pay", "lnbcrt1notaninvoice"], 400)?;
    expect(&["decode", "hello"], 400)?;
    expect(&["pay", MAINNET_INVOICE], 401)?;
    expect(&["decode", MAINNET_INVOICE], 401)?;
    expect(&["invoice", "-5", "negative"], -32602)?;
    expect(&["invoice", "lots", "not a number"], -32602)?;
    expect(&["invoice", "99999999999999999999999", "too large"], -32602)?;
    expect(
        &[
            "withdraw",
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
            "-1",
        ],
        -32602,
    )?;
    expect(&["withdraw", "not-an-address", "1000"], -32602)?;
    expect(&["fundchannel", "02aaaa", "100000"], -32602)?;
    expect(&["close", "00".repeat(32).as_str()], 100)?;
    expect(&["settleinvoice", "11".repeat(32).as_str()], 100)?;
    expect(
        &["fundchannel", &id(&alice)?, "100000", "announce=maybe"],
        -32602,
    )?;

    // Raw JSON-RPC: an unknown method, and params of the wrong type.
    let auth = alice.cookie_auth()?;
    let (status, body) = alice.rpc_raw(
        r#"{"jsonrpc":"2.0","id":1,"method":"frobnicate"}"#,
        Some(&auth),
    )?;
    assert_eq!(status, 200);
    assert!(body.contains("-32601"), "{body}");
    let (_, body) = alice.rpc_raw(
        r#"{"jsonrpc":"2.0","id":1,"method":"invoice","params":{"amount_msat":true,"description":"x"}}"#,
        Some(&auth),
    )?;
    assert!(body.contains("-32602"), "{body}");
    // No credentials, or wrong ones: HTTP 401, and nothing runs.
    let (status, _) = alice.rpc_raw(r#"{"jsonrpc":"2.0","id":1,"method":"stop"}"#, None)?;
    assert_eq!(status, 401);
    let (status, _) = alice.rpc_raw(
        r#"{"jsonrpc":"2.0","id":1,"method":"stop"}"#,
        Some("Basic X19jb29raWVfXzp3cm9uZw=="),
    )?;
    assert_eq!(status, 401);
    // A second daemon on the same data directory refuses to start.
    let (status, stderr) = alice.run_second_instance()?;
    assert!(!status.success());
    assert!(
        stderr.contains("another xlnd is already running"),
        "{stderr}"
    );
    assert_eq!(state()?, before, "bad input changed the node's state");
    alice
        .cli(&["getinfo"])
        .context("the daemon stopped on an unauthenticated stop")?;
    Ok(())
}

#[test]
fn cli_forwards_through_three_nodes_and_force_close_sweeps_to_both_wallets() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let alice = Xlnd::start(&bitcoind, &dir.path().join("alice"), "alice")?;
    // The forwarding node keeps LDK's random forward delay (every other test forwards at once),
    // so that both ways of moving HTLCs on are tested end to end.
    let bob = Xlnd::start_with_args(
        &bitcoind,
        &dir.path().join("bob"),
        "bob",
        &["--htlc-batching=ldk"],
    )?;
    let carol = Xlnd::start(&bitcoind, &dir.path().join("carol"), "carol")?;
    let bitcoin = ChainParams::bitcoin_regtest();
    fund(&bitcoind, &bitcoin, &alice, &[&bob, &carol])?;
    fund(&bitcoind, &bitcoin, &bob, &[&alice, &carol])?;
    let ab = open(&bitcoind, &bitcoin, &alice, &bob, 2_000_000, true)?;
    open(&bitcoind, &bitcoin, &bob, &carol, 1_000_000, true)?;
    let bc_scid = bob.cli(&["listchannels"])?["channels"]
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|c| c["peer_id"] == id(&carol).ok().unwrap_or_default().as_str())
        })
        .and_then(|c| c["short_channel_id"].as_str().map(str::to_owned))
        .context("bob-carol short channel id")?;
    gossiped(&alice, &bc_scid, &id(&bob)?, "bob-carol in alice's graph")?;

    let paid = pay(&alice, &invoice(&carol, 40_000_000, "via bob")?)?;
    let fee_msat = paid["fee_msat"].as_u64().context("fee")?;
    assert!(fee_msat > 0);
    let forward = bob.wait_cli(&["listforwards"], "bob's forward", WAIT, |list| {
        list["forwards"].as_array()?.first().cloned()
    })?;
    assert_eq!(forward["fee_msat"].as_u64(), Some(fee_msat));
    assert_eq!(forward["out_msat"].as_u64(), Some(40_000_000));
    settled(&alice, &ab)?;

    // Alice force-closes her channel to bob; both get their balances back after to_self_delay.
    let alice_before = confirmed_sat(&alice)?;
    let bob_before = confirmed_sat(&bob)?;
    let bob_in_channel_sat = channel(&bob.cli(&["listchannels"])?, &ab)
        .and_then(|c| c["local_balance_msat"].as_u64())
        .context("bob's balance")?
        / 1000;
    let commitment_txid = &xln_tests::steps::force_close(&alice, &ab)?;
    ensure!(
        bitcoind
            .cli_json(&["getrawmempool"])?
            .to_string()
            .contains(commitment_txid),
        "commitment transaction {commitment_txid} not in the mempool"
    );
    mine_until(
        &bitcoind,
        &[&alice, &bob],
        6,
        600,
        "both wallets swept",
        || {
            let a = alice.cli(&["listfunds"])?;
            let b = bob.cli(&["listfunds"])?;
            Ok(swept(&a, &ab)
                && swept(&b, &ab)
                && b["onchain_confirmed_sat"].as_u64() > Some(bob_before))
        },
    )?;
    let bob_gain = confirmed_sat(&bob)? - bob_before;
    assert!(
        bob_gain <= bob_in_channel_sat && bob_gain + 2_000 > bob_in_channel_sat,
        "bob got {bob_gain} sat back of {bob_in_channel_sat}"
    );
    let alice_after = confirmed_sat(&alice)?;
    assert!(
        alice_after > alice_before,
        "alice's channel balance came back to her wallet"
    );
    Ok(())
}
