//! `xlnd --chain qtum` end to end against a real qtumd (Qtum Core) in regtest, driven through the
//! real `xln-cli`.
//!
//! There is no Qtum Core package in our registries, so the suite needs `QTUMD` to name a qtumd
//! binary (`qtum-cli` beside it, or `QTUM_CLI`); without it `cargo test` lists the test as
//! ignored with that reason (see `build.rs`). Run it with
//! `QTUMD=/path/to/qtumd cargo test -p xln-tests --test qtum -- --nocapture`.

use anyhow::{bail, ensure, Context, Result};
use ln_core::node::ChannelPolicy;
use ln_core::ChainParams;
use xln_tests::qtumd::{qtum_core_binaries, start_qtumd, QTUMD_ENV};
use xln_tests::steps::{
    channel, confirmed_sat, fund, gossiped, id, invoice, mine, mine_until, open, pay, settled,
    swept, WAIT,
};
use xln_tests::xlnd::Xlnd;
use xln_tests::{init_test_logging, Bitcoind};

/// A BOLT11 example invoice of Bitcoin mainnet (from the BOLT 11 specification).
const BITCOIN_INVOICE: &str = "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh";

/// The regtest qtumd `QTUMD` names, out of initial block download (qtumd reports it until its
/// first block).
fn start_regtest_qtumd() -> Result<Bitcoind> {
    init_test_logging();
    let Some(binaries) = qtum_core_binaries() else {
        bail!("{QTUMD_ENV} is not set: it must name a qtumd binary to run the Qtum suite");
    };
    let qtumd = start_qtumd(binaries)?;
    qtumd.mine(1)?;
    Ok(qtumd)
}

fn start_qtum_node(qtumd: &Bitcoind, dir: &std::path::Path, name: &str) -> Result<Xlnd> {
    Xlnd::start_with_args(qtumd, &dir.join(name), name, &["--chain=qtum"])
}

#[test]
#[cfg_attr(
    not(qtumd),
    ignore = "needs a real qtumd: set QTUMD=/path/to/qtumd (and QTUM_CLI if qtum-cli is elsewhere)"
)]
fn two_qtum_nodes_pay_keysend_close_and_force_close_with_sweep() -> Result<()> {
    let params = ChainParams::qtum_regtest();
    let policy = ChannelPolicy::for_chain(&params);
    let qtumd = start_regtest_qtumd()?;
    let dir = tempfile::tempdir()?;
    let alice = start_qtum_node(&qtumd, dir.path(), "alice")?;
    let bob = start_qtum_node(&qtumd, dir.path(), "bob")?;

    let info = alice.cli(&["getinfo"])?;
    assert_eq!(info["chain"], "qtum", "{info}");
    assert_eq!(info["network"], "regtest", "{info}");
    let address = bob.cli(&["newaddr"])?["address"]
        .as_str()
        .context("newaddr without address")?
        .to_owned();
    ensure!(
        address.starts_with("qcrt1q"),
        "not a Qtum address: {address}"
    );

    // 2001 blocks: Qtum's coinbase maturity is 2000 on regtest.
    let funded_sat = fund(&qtumd, &params, &alice, &[&bob])?;
    tracing::info!(funded_sat, "alice's wallet is funded");
    let funds = alice.cli(&["listfunds"])?;
    let outputs = funds["outputs"].as_array().context("listfunds outputs")?;
    ensure!(
        outputs.iter().all(|o| o["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("qcrt1"))),
        "{funds}"
    );

    // On-chain payment to bob's qcrt1 address.
    let withdraw_sat = 5_000_000u64;
    let withdrawn = alice.cli(&["withdraw", &address, &withdraw_sat.to_string()])?;
    tracing::info!(txid = %withdrawn["txid"], "withdrawal sent");
    mine(&qtumd, 1, &[&alice, &bob])?;
    bob.wait_cli(&["listfunds"], "bob's withdrawal", WAIT, |f| {
        (f["onchain_confirmed_sat"].as_u64() == Some(withdraw_sat)).then_some(())
    })?;

    // A channel big enough for Qtum's reserves, confirmed as deep as the policy asks.
    let channel_sat = 50_000_000;
    ensure!(channel_sat >= policy.min_funding_sat);
    let channel_id = open(&qtumd, &params, &alice, &bob, channel_sat, true)?;
    // The channel follows Qtum's policy on both ends.
    for node in [&alice, &bob] {
        let list = node.cli(&["listchannels"])?;
        let info = channel(&list, &channel_id).context("the channel")?;
        ensure!(info["has_anchors"] == false, "{info}");
        ensure!(
            info["our_reserve_sat"].as_u64() >= Some(policy.min_reserve_sat),
            "{info}"
        );
        ensure!(
            info["their_reserve_sat"].as_u64() >= Some(policy.min_reserve_sat),
            "{info}"
        );
        for direction in ["inbound_htlc_minimum_msat", "outbound_htlc_minimum_msat"] {
            ensure!(
                info[direction].as_u64() == Some(policy.htlc_minimum_msat),
                "{info}"
            );
        }
    }
    // The channel is public: after its announcement each end has it in its graph, with the
    // direction the other end announced.
    let scid = channel(&alice.cli(&["listchannels"])?, &channel_id)
        .and_then(|c| c["short_channel_id"].as_str().map(str::to_owned))
        .context("short channel id")?;
    mine(&qtumd, 6, &[&alice, &bob])?;
    gossiped(
        &alice,
        &scid,
        &id(&bob)?,
        "bob's side of the channel in alice's graph",
    )?;
    gossiped(
        &bob,
        &scid,
        &id(&alice)?,
        "alice's side of the channel in bob's graph",
    )?;

    let bolt11 = invoice(&bob, 2_000_000_000, "qtum coffee")?;
    ensure!(
        bolt11.starts_with("lnqcrt"),
        "not a Qtum regtest invoice: {bolt11}"
    );
    let decoded = alice.cli(&["decode", &bolt11])?;
    assert_eq!(decoded["amount_msat"], 2_000_000_000u64);
    assert_eq!(decoded["payee"], id(&bob)?.as_str());
    let paid = pay(&alice, &bolt11)?;
    assert_eq!(paid["fee_msat"], 0);
    settled(&bob, &channel_id)?;

    // Bitcoin's invoices are another chain's.
    let (_, stderr) = alice.cli_error(&["decode", BITCOIN_INVOICE])?;
    ensure!(stderr.contains("error 401"), "{stderr}");

    // Keysend back, above the HTLC minimum; one below it is refused.
    let keysend_msat = policy.htlc_minimum_msat * 2;
    let sent = bob.cli(&["keysend", &id(&alice)?, &keysend_msat.to_string()])?;
    assert_eq!(sent["status"], "succeeded", "{sent}");
    settled(&alice, &channel_id)?;
    let too_small = (policy.htlc_minimum_msat / 2).to_string();
    let (exit, stderr) = alice.cli_error(&["keysend", &id(&bob)?, &too_small])?;
    ensure!(exit != 0, "a keysend below the HTLC minimum was accepted");
    ensure!(stderr.contains("error 503"), "{stderr}");
    tracing::info!(%stderr, "keysend below the HTLC minimum refused");

    // Cooperative close: bob's wallet gets his channel balance.
    let bob_before = confirmed_sat(&bob)?;
    let bob_in_channel_sat = channel(&bob.cli(&["listchannels"])?, &channel_id)
        .and_then(|c| c["local_balance_msat"].as_u64())
        .context("bob's channel balance")?
        / 1000;
    assert_eq!(bob_in_channel_sat, 2_000_000 - keysend_msat / 1000);
    let closed = alice.cli(&["close", &channel_id])?;
    assert_eq!(closed["type"], "mutual", "{closed}");
    ensure!(closed["txid"].is_string(), "no closing txid: {closed}");
    mine_until(&qtumd, &[&alice, &bob], 6, 600, "the mutual close", || {
        Ok(swept(&bob.cli(&["listfunds"])?, &channel_id) && confirmed_sat(&bob)? > bob_before)
    })?;
    assert_eq!(confirmed_sat(&bob)? - bob_before, bob_in_channel_sat);

    // Force close: alice's side comes back after to_self_delay (2016 blocks), bob's at once.
    let channel_id = open(&qtumd, &params, &alice, &bob, channel_sat, false)?;
    pay(
        &alice,
        &invoice(&bob, 3_000_000_000, "before the force close")?,
    )?;
    settled(&alice, &channel_id)?;
    let alice_before = confirmed_sat(&alice)?;
    let bob_before = confirmed_sat(&bob)?;
    let closed = alice.cli(&["close", &channel_id, "force=true"])?;
    assert_eq!(closed["type"], "unilateral", "{closed}");
    ensure!(closed["txid"].is_string(), "no commitment txid: {closed}");
    let mined = mine_until(
        &qtumd,
        &[&alice, &bob],
        50,
        u32::from(policy.to_self_delay) + 1_000,
        "both wallets swept",
        || {
            Ok(swept(&alice.cli(&["listfunds"])?, &channel_id)
                && swept(&bob.cli(&["listfunds"])?, &channel_id)
                && confirmed_sat(&alice)? > alice_before)
        },
    )?;
    let bob_gain = confirmed_sat(&bob)? - bob_before;
    let alice_gain = confirmed_sat(&alice)? - alice_before;
    tracing::info!(mined, bob_gain, alice_gain, "force close swept");
    // Bob pays the fee of sweeping his output; alice paid the commitment's and her sweep's.
    ensure!(
        bob_gain <= 3_000_000 && bob_gain > 3_000_000 - 100_000,
        "bob got {bob_gain} sat back of 3,000,000"
    );
    ensure!(
        alice_gain < channel_sat - 3_000_000 && alice_gain > channel_sat - 3_000_000 - 300_000,
        "alice got {alice_gain} sat back"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(qtumd),
    ignore = "needs a real qtumd: set QTUMD=/path/to/qtumd (and QTUM_CLI if qtum-cli is elsewhere)"
)]
fn bitcoin_and_qtum_nodes_refuse_each_other() -> Result<()> {
    let qtumd = start_regtest_qtumd()?;
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
