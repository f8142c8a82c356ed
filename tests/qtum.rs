//! `xlnd --chain qtum` end to end against a real qtumd (Qtum Core 27.1) in regtest, with its own
//! (Qtum) relay policy, driven through the real `xln-cli` only.
//!
//! qtumd is found as `tests/support/qtumd.rs` says: `$QTUMD`, then `../shared/qtum/bin/` beside
//! the checkout, then `PATH`. Without any, each test prints one `SKIPPED` line and passes (CI sets
//! `XLN_REQUIRE_QTUMD`, so there a missing qtumd fails). Every transaction the nodes broadcast is
//! checked against qtumd's answer ([`relayed`]): the first refusal fails the test with its reason.

use anyhow::{ensure, Context, Result};
use ln_core::node::ChannelPolicy;
use ln_core::store::SledStore;
use ln_core::ChainParams;
use serde_json::Value;
use xln_tests::qtum_policy::check_chain_node_enforces_relay_policy;
use xln_tests::qtumd::{qtum_core_or_skip, start_qtumd, StakingQtumd};
use xln_tests::steps::{
    channel, confirmed_sat, fund_channel, gossiped, height, hold_invoice, id, invoice, mine,
    mine_until, open, pay, relayed, settled, swept, WAIT,
};
use xln_tests::xlnd::Xlnd;
use xln_tests::{init_test_logging, qtum_regtest_chain_source, Bitcoind};

/// A BOLT11 example invoice of Bitcoin mainnet (from the BOLT 11 specification).
const BITCOIN_INVOICE: &str = "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh";

/// A regtest qtumd on a chain of nothing but its genesis block (the state docs/qtum.md's quick
/// start begins from), or `None` when the test is skipped for want of qtumd.
fn start_fresh_qtumd(test: &str) -> Result<Option<Bitcoind>> {
    init_test_logging();
    let Some(binaries) = qtum_core_or_skip(test)? else {
        return Ok(None);
    };
    let qtumd = start_qtumd(binaries)?;
    ensure!(height(&qtumd)? == 0, "qtumd did not start on a fresh chain");
    Ok(Some(qtumd))
}

fn start_qtum_node(qtumd: &Bitcoind, dir: &std::path::Path, name: &str) -> Result<Xlnd> {
    Xlnd::start_with_args(qtumd, &dir.join(name), name, &["--chain=qtum"])
}

fn new_address(node: &Xlnd) -> Result<String> {
    let address = node.cli(&["newaddr"])?["address"]
        .as_str()
        .context("newaddr without address")?
        .to_owned();
    ensure!(
        address.starts_with("qcrt1q"),
        "not a Qtum address: {address}"
    );
    Ok(address)
}

/// Mines one coinbase to each of `funded` and matures them all at once (Qtum's 2000 blocks);
/// returns each one's confirmed balance.
fn fund_each(
    qtumd: &Bitcoind,
    params: &ChainParams,
    funded: &[&Xlnd],
    all: &[&Xlnd],
) -> Result<Vec<u64>> {
    for node in funded {
        qtumd.mine_to_address(1, &new_address(node)?)?;
    }
    mine(qtumd, params.coinbase_maturity, all)?;
    funded
        .iter()
        .map(|node| {
            node.wait_cli(&["listfunds"], "mature funds", WAIT, |funds| {
                funds["onchain_confirmed_sat"]
                    .as_u64()
                    .filter(|sat| *sat > 0)
            })
        })
        .collect()
}

/// Checks every broadcast of every node relayed ([`relayed`]), saying after which step.
fn all_relayed(qtumd: &Bitcoind, nodes: &[&Xlnd], after: &str) -> Result<()> {
    for node in nodes {
        let checked = relayed(qtumd, node).with_context(|| format!("after {after}"))?;
        tracing::debug!(node = %node.name, checked, after, "broadcasts relayed");
    }
    Ok(())
}

fn local_sat(node: &Xlnd, channel_id: &str) -> Result<u64> {
    Ok(channel(&node.cli(&["listchannels"])?, channel_id)
        .and_then(|c| c["local_balance_msat"].as_u64())
        .context("the channel's local balance")?
        / 1000)
}

fn short_channel_id(node: &Xlnd, channel_id: &str) -> Result<String> {
    channel(&node.cli(&["listchannels"])?, channel_id)
        .and_then(|c| c["short_channel_id"].as_str().map(str::to_owned))
        .context("short channel id")
}

/// `payer` pays the hold invoice `bolt11` of `payee`; once `payee` holds it, `decide` settles or
/// cancels it. Returns what `pay` answered.
fn pay_held(
    payer: &Xlnd,
    payee: &Xlnd,
    hash: &str,
    bolt11: &str,
    decide: impl FnOnce() -> Result<()>,
) -> Result<Value> {
    std::thread::scope(|scope| -> Result<Value> {
        let paying = scope.spawn(|| payer.cli(&["pay", bolt11]));
        let held = payee.cli(&["waitinvoice", hash, "60"])?;
        ensure!(held["status"] == "held", "{held}");
        ensure!(
            !paying.is_finished(),
            "pay returned before the hold invoice was decided"
        );
        decide()?;
        paying
            .join()
            .map_err(|_| anyhow::anyhow!("pay thread panicked"))?
    })
}

/// Every scenario of the Bitcoin suite, on Qtum: three nodes on a fresh regtest qtumd, funded by
/// mining, with channels A-B and B-C; direct, two-hop, keysend and hold-invoice payments;
/// `kill -9`; a withdrawal; a cooperative and a force close swept back to both wallets.
#[test]
fn three_qtum_nodes_pay_forward_hold_survive_kill_9_and_close_both_ways() -> Result<()> {
    let Some(qtumd) = start_fresh_qtumd("three_qtum_nodes_pay_forward_hold_survive_kill_9")? else {
        return Ok(());
    };
    let params = ChainParams::qtum_regtest();
    let policy = ChannelPolicy::for_chain(&params);
    let dir = tempfile::tempdir()?;
    let alice = start_qtum_node(&qtumd, dir.path(), "alice")?;
    let bob = start_qtum_node(&qtumd, dir.path(), "bob")?;
    let carol = start_qtum_node(&qtumd, dir.path(), "carol")?;
    let info = alice.cli(&["getinfo"])?;
    ensure!(info["chain"] == "qtum", "{info}");
    ensure!(info["network"] == "regtest", "{info}");
    ensure!(info["block_height"] == 0, "{info}");

    let all = [&alice, &bob, &carol];
    let funded = fund_each(&qtumd, &params, &[&alice, &bob], &all)?;
    tracing::info!(?funded, "alice's and bob's wallets are funded");
    let funds = alice.cli(&["listfunds"])?;
    let outputs = funds["outputs"].as_array().context("listfunds outputs")?;
    ensure!(
        !outputs.is_empty()
            && outputs.iter().all(|o| o["address"]
                .as_str()
                .is_some_and(|a| a.starts_with("qcrt1"))),
        "{funds}"
    );

    // On-chain payment to carol's qcrt1 address.
    let withdraw_sat = 5_000_000u64;
    let withdrawn = alice.cli(&["withdraw", &new_address(&carol)?, &withdraw_sat.to_string()])?;
    let withdraw_txid = withdrawn["txid"].as_str().context("withdraw txid")?;
    ensure!(
        qtumd
            .cli_json(&["getrawmempool"])?
            .to_string()
            .contains(withdraw_txid),
        "the withdrawal {withdraw_txid} is not in qtumd's mempool"
    );
    mine(&qtumd, 1, &all)?;
    carol.wait_cli(&["listfunds"], "carol's withdrawal", WAIT, |f| {
        (f["onchain_confirmed_sat"].as_u64() == Some(withdraw_sat)).then_some(())
    })?;
    all_relayed(&qtumd, &all, "the withdrawal")?;

    // Public channels A-B and B-C, as large as Qtum's reserves need, confirmed as deep as the
    // policy asks.
    let channel_sat = 50_000_000;
    ensure!(channel_sat >= policy.min_funding_sat);
    let ab = open(&qtumd, &params, &alice, &bob, channel_sat, true)?;
    let bc = open(&qtumd, &params, &bob, &carol, channel_sat, true)?;
    all_relayed(&qtumd, &all, "the funding transactions")?;
    for node in [&alice, &bob] {
        let info = channel(&node.cli(&["listchannels"])?, &ab)
            .cloned()
            .context("the channel A-B")?;
        ensure!(info["has_anchors"] == false, "{info}");
        for reserve in ["our_reserve_sat", "their_reserve_sat"] {
            ensure!(
                info[reserve].as_u64() >= Some(policy.min_reserve_sat),
                "{info}"
            );
        }
        for direction in ["inbound_htlc_minimum_msat", "outbound_htlc_minimum_msat"] {
            ensure!(
                info[direction].as_u64() == Some(policy.htlc_minimum_msat),
                "{info}"
            );
        }
    }
    let ab_scid = short_channel_id(&alice, &ab)?;
    let bc_scid = short_channel_id(&bob, &bc)?;
    mine(&qtumd, 6, &all)?;
    gossiped(&alice, &bc_scid, &id(&bob)?, "B-C in alice's graph")?;
    gossiped(&carol, &ab_scid, &id(&bob)?, "A-B in carol's graph")?;

    // Direct payment of an lnqcrt invoice.
    let bolt11 = invoice(&bob, 2_000_000_000, "qtum coffee")?;
    ensure!(
        bolt11.starts_with("lnqcrt"),
        "not a Qtum regtest invoice: {bolt11}"
    );
    let decoded = alice.cli(&["decode", &bolt11])?;
    ensure!(decoded["amount_msat"] == 2_000_000_000u64, "{decoded}");
    ensure!(decoded["payee"] == id(&bob)?.as_str(), "{decoded}");
    let paid = pay(&alice, &bolt11)?;
    ensure!(paid["fee_msat"] == 0, "{paid}");
    settled(&bob, &ab)?;
    let (_, stderr) = alice.cli_error(&["decode", BITCOIN_INVOICE])?;
    ensure!(stderr.contains("error 401"), "{stderr}");

    // Two hops, A -> B -> C: bob earns the fee.
    let paid = pay(&alice, &invoice(&carol, 3_000_000_000, "via bob")?)?;
    let fee_msat = paid["fee_msat"].as_u64().context("fee")?;
    ensure!(fee_msat > 0, "{paid}");
    let forward = bob.wait_cli(&["listforwards"], "bob's forward", WAIT, |list| {
        list["forwards"].as_array()?.first().cloned()
    })?;
    ensure!(forward["fee_msat"].as_u64() == Some(fee_msat), "{forward}");
    ensure!(
        forward["out_msat"].as_u64() == Some(3_000_000_000),
        "{forward}"
    );
    settled(&alice, &ab)?;
    settled(&carol, &bc)?;

    // Keysend back, C -> B -> A, above the HTLC minimum; one below it is refused.
    let keysend_msat = policy.htlc_minimum_msat * 2;
    let sent = carol.cli(&["keysend", &id(&alice)?, &keysend_msat.to_string()])?;
    ensure!(sent["status"] == "succeeded", "{sent}");
    settled(&alice, &ab)?;
    let received = alice.cli(&["listinvoices"])?;
    ensure!(
        received["invoices"]
            .as_array()
            .is_some_and(|list| list.iter().any(|i| i["status"] == "paid"
                && i["amount_received_msat"].as_u64() == Some(keysend_msat))),
        "alice does not list carol's keysend: {received}"
    );
    let too_small = (policy.htlc_minimum_msat / 2).to_string();
    let (exit, stderr) = alice.cli_error(&["keysend", &id(&bob)?, &too_small])?;
    ensure!(exit != 0, "a keysend below the HTLC minimum was accepted");
    ensure!(stderr.contains("error 503"), "{stderr}");

    // Hold invoices: settled, then canceled.
    let hold_msat = policy.htlc_minimum_msat + 100_000_000;
    let (preimage, hash, bolt11) = hold_invoice(&bob, 1, hold_msat)?;
    let payer = pay_held(&alice, &bob, &hash, &bolt11, || {
        bob.cli(&["settleinvoice", &preimage]).map(drop)
    })?;
    ensure!(payer["status"] == "succeeded", "{payer}");
    ensure!(payer["preimage"] == preimage.as_str(), "{payer}");
    settled(&alice, &ab)?;
    let (_, hash, bolt11) = hold_invoice(&bob, 2, hold_msat)?;
    let payer = pay_held(&alice, &bob, &hash, &bolt11, || {
        bob.cli(&["cancelinvoice", &hash]).map(drop)
    })?;
    ensure!(payer["status"] == "failed", "{payer}");
    let canceled = bob.cli(&["listinvoices", &hash])?;
    ensure!(
        canceled["invoices"][0]["status"] == "canceled",
        "{canceled}"
    );
    settled(&alice, &ab)?;

    // kill -9 right after a payment: nothing of it is lost, and paying works again.
    let paid = pay(&alice, &invoice(&bob, 700_000_000, "before kill")?)?;
    let balance_at_kill = local_sat(&alice, &ab)?;
    let payments_at_kill = alice.cli(&["listpayments"])?;
    alice.kill9()?;
    alice.restart()?;
    let hash = paid["payment_hash"].as_str().context("payment hash")?;
    let after = alice.cli(&["listpayments", hash])?;
    ensure!(after["payments"][0]["status"] == "succeeded", "{after}");
    ensure!(
        alice.cli(&["listpayments"])? == payments_at_kill,
        "listpayments changed across kill -9"
    );
    alice.wait_cli(
        &["listchannels"],
        "A-B usable after kill -9",
        WAIT,
        |list| (channel(list, &ab)?["is_usable"] == true).then_some(()),
    )?;
    ensure!(local_sat(&alice, &ab)? == balance_at_kill);
    pay(&alice, &invoice(&bob, 300_000_000, "after kill")?)?;
    settled(&alice, &ab)?;
    let all = [&alice, &bob, &carol];

    // Cooperative close of A-B: bob's wallet gets exactly his channel balance.
    let bob_before = confirmed_sat(&bob)?;
    let bob_in_channel_sat = local_sat(&bob, &ab)?;
    let closed = alice.cli(&["close", &ab])?;
    ensure!(closed["type"] == "mutual", "{closed}");
    let closing_txid = closed["txid"].as_str().context("no closing txid")?;
    ensure!(
        qtumd
            .cli_json(&["getrawmempool"])?
            .to_string()
            .contains(closing_txid),
        "closing transaction {closing_txid} not in qtumd's mempool"
    );
    mine_until(&qtumd, &all, 6, 600, "the mutual close", || {
        Ok(swept(&bob.cli(&["listfunds"])?, &ab) && confirmed_sat(&bob)? > bob_before)
    })?;
    ensure!(confirmed_sat(&bob)? - bob_before == bob_in_channel_sat);
    all_relayed(&qtumd, &all, "the cooperative close")?;

    // Force close of B-C by bob: carol's side comes back at once, bob's after to_self_delay
    // (2016 blocks on Qtum); both are swept to the wallets.
    let bob_before = confirmed_sat(&bob)?;
    let carol_before = confirmed_sat(&carol)?;
    let bob_in_channel_sat = local_sat(&bob, &bc)?;
    let carol_in_channel_sat = local_sat(&carol, &bc)?;
    let commitment_txid = &xln_tests::steps::force_close(&bob, &bc)?;
    ensure!(
        qtumd
            .cli_json(&["getrawmempool"])?
            .to_string()
            .contains(commitment_txid),
        "commitment transaction {commitment_txid} not in qtumd's mempool"
    );
    let mined = mine_until(
        &qtumd,
        &all,
        50,
        u32::from(policy.to_self_delay) + 1_000,
        "both wallets swept",
        || {
            Ok(swept(&bob.cli(&["listfunds"])?, &bc)
                && swept(&carol.cli(&["listfunds"])?, &bc)
                && confirmed_sat(&bob)? > bob_before
                && confirmed_sat(&carol)? > carol_before)
        },
    )?;
    ensure!(
        mined >= u32::from(policy.to_self_delay),
        "bob's output came back after {mined} blocks, before to_self_delay"
    );
    all_relayed(&qtumd, &all, "the force close and its sweeps")?;
    let bob_gain = confirmed_sat(&bob)? - bob_before;
    let carol_gain = confirmed_sat(&carol)? - carol_before;
    tracing::info!(mined, bob_gain, carol_gain, "force close swept");
    // Carol pays the fee of sweeping her output; bob the commitment's and his sweep's.
    ensure!(
        carol_gain <= carol_in_channel_sat && carol_gain + 100_000 > carol_in_channel_sat,
        "carol got {carol_gain} sat back of {carol_in_channel_sat}"
    );
    ensure!(
        bob_gain < bob_in_channel_sat && bob_gain + 300_000 > bob_in_channel_sat,
        "bob got {bob_gain} sat back of {bob_in_channel_sat}"
    );
    Ok(())
}

/// Qtum mainnet makes only proof-of-stake blocks: a channel funded, announced, used and closed
/// on blocks a second qtumd stakes, with reorgs (`invalidateblock` on both qtumds, then fresh
/// staked blocks) under the funding transaction before the channel is usable and under the
/// cooperative close. The funding and the closing transaction confirm (twice) in staked blocks;
/// blocks that only add depth are mined, as the staker makes one block per 20 s on regtest.
#[test]
fn a_channel_lives_on_staked_blocks_through_reorgs_under_its_funding_and_its_close() -> Result<()> {
    let Some(qtumd) = start_fresh_qtumd("a_channel_lives_on_staked_blocks_through_reorgs")? else {
        return Ok(());
    };
    let binaries = qtumd.binaries().clone();
    let staker = StakingQtumd::start(binaries, &qtumd)?;
    let params = ChainParams::qtum_regtest();
    let policy = ChannelPolicy::for_chain(&params);
    let dir = tempfile::tempdir()?;
    let alice = start_qtum_node(&qtumd, dir.path(), "alice")?;
    let bob = start_qtum_node(&qtumd, dir.path(), "bob")?;
    let both = [&alice, &bob];

    // Alice's coinbase and the staker's coins mature together (a staker needs mature coins).
    qtumd.mine_to_address(1, &new_address(&alice)?)?;
    qtumd.mine_to_address(params.coinbase_maturity + 100, &staker.address)?;
    mine(&qtumd, 0, &both)?;
    alice.wait_cli(&["listfunds"], "alice's mature funds", WAIT, |funds| {
        funds["onchain_confirmed_sat"]
            .as_u64()
            .filter(|sat| *sat > 0)
    })?;
    let stake = |blocks: u32| -> Result<Vec<String>> {
        let hashes = staker.stake(&qtumd, blocks)?;
        mine(&qtumd, 0, &both)?;
        tracing::info!(blocks, "staked");
        Ok(hashes)
    };
    stake(2)?;

    // The funding transaction confirms in a staked block...
    alice.cli(&["connect", &bob.uri()?])?;
    let channel_sat = 20_000_000;
    let (channel_id, funding_txid) = fund_channel(&alice, &id(&bob)?, channel_sat, true)?;
    staker.take_transaction(&qtumd, &funding_txid)?;
    let first = stake(2)?;
    let confirmed_in = |txid: &str| -> Result<Option<String>> {
        let tx = qtumd.cli_json(&["getrawtransaction", txid, "true"])?;
        Ok(tx["blockhash"].as_str().map(str::to_owned))
    };
    ensure!(
        confirmed_in(&funding_txid)?.as_deref() == first.first().map(String::as_str),
        "the funding transaction is not in the first staked block"
    );
    alice.wait_cli(&["listchannels"], "2 confirmations", WAIT, |list| {
        (channel(list, &channel_id)?["confirmations"] == 2).then_some(())
    })?;

    // ...which a reorg takes away: the channel waits, then re-confirms on fresh staked blocks.
    staker.invalidate(&qtumd, &first[0])?;
    mine(&qtumd, 0, &both)?;
    alice.wait_cli(&["listchannels"], "the funding unconfirmed", WAIT, |list| {
        let c = channel(list, &channel_id)?;
        (c["confirmations"] == 0 && c["is_usable"] == false).then_some(())
    })?;
    staker.take_transaction(&qtumd, &funding_txid)?;
    let fresh = stake(3)?;
    ensure!(
        confirmed_in(&funding_txid)?.as_deref() == fresh.first().map(String::as_str),
        "the funding transaction did not confirm again in the first fresh block"
    );
    // The rest of the channel's depth is mined: on regtest qtumd's staker tries once every 20 s
    // (its minimum-difficulty polling period), and a chain mixing both kinds of blocks is
    // followed the same way.
    mine(&qtumd, policy.minimum_depth - 3, &both)?;
    tracing::info!("the channel is deep enough");
    for node in both {
        node.wait_cli(&["listchannels"], "a usable channel", WAIT, |list| {
            (channel(list, &channel_id)?["is_usable"] == true).then_some(())
        })?;
    }
    // The announcement was checked against the funding output in a staked block: a channel
    // enters a node's graph only once that look-up succeeded. Each node's own direction is what
    // it broadcast itself; the peer's direction can lose the race against the announcement (see
    // `steps::gossiped`) and is not what this test is about.
    let scid = short_channel_id(&alice, &channel_id)?;
    gossiped(&alice, &scid, &id(&alice)?, "the channel in alice's graph")?;
    gossiped(&bob, &scid, &id(&bob)?, "the channel in bob's graph")?;

    let paid = pay(&alice, &invoice(&bob, 5_000_000_000, "staked")?)?;
    ensure!(paid["fee_msat"] == 0, "{paid}");
    settled(&bob, &channel_id)?;

    // The cooperative close confirms in a staked block, is reorged out, and confirms again.
    let alice_before = confirmed_sat(&alice)?;
    let bob_before = confirmed_sat(&bob)?;
    let alice_in_channel_sat = local_sat(&alice, &channel_id)?;
    let bob_in_channel_sat = local_sat(&bob, &channel_id)?;
    let closed = alice.cli(&["close", &channel_id])?;
    ensure!(closed["type"] == "mutual", "{closed}");
    let closing_txid = closed["txid"].as_str().context("closing txid")?.to_owned();
    staker.take_transaction(&qtumd, &closing_txid)?;
    let closed_in = stake(1)?;
    ensure!(confirmed_in(&closing_txid)?.as_deref() == closed_in.first().map(String::as_str));
    bob.wait_cli(&["listfunds"], "bob's closing output", WAIT, |f| {
        (f["onchain_confirmed_sat"].as_u64() == Some(bob_before + bob_in_channel_sat)).then_some(())
    })?;
    staker.invalidate(&qtumd, &closed_in[0])?;
    mine(&qtumd, 0, &both)?;
    bob.wait_cli(&["listfunds"], "the close unconfirmed", WAIT, |f| {
        (f["onchain_confirmed_sat"].as_u64() == Some(bob_before)).then_some(())
    })?;
    staker.take_transaction(&qtumd, &closing_txid)?;
    let fresh = stake(2)?;
    ensure!(confirmed_in(&closing_txid)?.as_deref() == fresh.first().map(String::as_str));
    mine(&qtumd, 6, &both)?;
    for (node, before, in_channel) in [
        (&bob, bob_before, bob_in_channel_sat),
        (&alice, alice_before, alice_in_channel_sat),
    ] {
        let funds = node.wait_cli(&["listfunds"], "the close swept", WAIT, |f| {
            swept(f, &channel_id).then(|| f.clone())
        })?;
        let gain = funds["onchain_confirmed_sat"].as_u64().unwrap_or_default() - before;
        // The funder (alice) pays the closing fee.
        ensure!(
            gain <= in_channel && gain + 100_000 > in_channel,
            "{} got {gain} sat of {in_channel} back: {funds}",
            node.name
        );
    }
    ensure!(confirmed_sat(&bob)? == bob_before + bob_in_channel_sat);
    all_relayed(&qtumd, &both, "the staked channel's life")?;
    Ok(())
}

/// The numbers xln computes Qtum channels from are Qtum Core's: a real regtest qtumd reports
/// the relay and incremental feerates of `ChainParams::qtum_regtest`, and refuses exactly the
/// outputs below its dust thresholds and the fees below its floor.
#[tokio::test]
async fn qtumd_draws_the_dust_and_fee_lines_where_xlns_qtum_params_put_them() -> Result<()> {
    let Some(qtumd) = start_fresh_qtumd("qtumd_draws_the_dust_and_fee_lines")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let source = qtum_regtest_chain_source(&qtumd, &store).await?;
    check_chain_node_enforces_relay_policy(&qtumd, &source).await
}

#[test]
fn bitcoin_and_qtum_nodes_refuse_each_other() -> Result<()> {
    let Some(qtumd) = start_fresh_qtumd("bitcoin_and_qtum_nodes_refuse_each_other")? else {
        return Ok(());
    };
    let bitcoind = Bitcoind::start()?;
    bitcoind.mine(1)?;
    let dir = tempfile::tempdir()?;
    let qtum_node = start_qtum_node(&qtumd, dir.path(), "qtum")?;
    let bitcoin_node = Xlnd::start(&bitcoind, &dir.path().join("bitcoin"), "bitcoin")?;
    // Every Lightning `init` carries the node's chain hash; peers without one in common part.
    for (from, to) in [(&bitcoin_node, &qtum_node), (&qtum_node, &bitcoin_node)] {
        let connected = from.cli(&["connect", &to.uri()?]);
        std::thread::sleep(std::time::Duration::from_secs(2));
        let peers = from.cli(&["listpeers"])?;
        let to_id = id(to)?;
        let listed = peers["peers"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| p["id"] == to_id.as_str() && p["connected"] == true)
        });
        ensure!(
            connected.is_err() || !listed,
            "{} stayed connected to {}: {peers}",
            from.name,
            to.name
        );
    }
    Ok(())
}
