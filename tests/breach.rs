//! A cheater loses everything: alice keeps a copy of her datadir, pays bob, and later restores the
//! copy and force-closes with the old (revoked) commitment while bob is offline. Bob comes back
//! just before alice's `to_self_delay` runs out, and his justice transaction takes alice's whole
//! side of the channel. On a real regtest bitcoind and on the shared qtumd.

use std::process::Command;

use anyhow::{ensure, Context, Result};
use ln_core::node::ChannelPolicy;
use serde_json::Value;
use xln_tests::steps::{
    channel, confirmed_sat, invoice, mine, mine_until, pay, relayed, settled, swept,
};
use xln_tests::three_nodes::{TestChain, ThreeNodes, ALICE, BOB};

/// Blocks left of alice's `to_self_delay` when bob comes back: enough for bob to catch up,
/// broadcast and confirm his justice transaction.
const MARGIN_BLOCKS: u32 = 12;

fn local_sat(list: &Value, channel_id: &str) -> Result<u64> {
    Ok(
        channel(list, channel_id).context("the channel")?["local_balance_msat"]
            .as_u64()
            .context("local_balance_msat")?
            / 1000,
    )
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    ensure!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
    Ok(())
}

fn a_revoked_commitment_loses_the_cheaters_whole_balance(
    chain: TestChain,
    test: &str,
) -> Result<()> {
    let Some(net) = ThreeNodes::start(chain, test, [&[], &[], &[]])? else {
        return Ok(());
    };
    let [alice, bob, carol] = &net.nodes;
    let ab = net.channels[0].0.clone();
    let capacity_sat = net.capacity_sat;
    let policy = ChannelPolicy::for_chain(&net.params);

    // State 1: alice has paid bob a tenth. Alice copies her datadir (stopped, so the copy is
    // consistent, as an operator's backup would be).
    pay(
        alice,
        &invoice(bob, capacity_sat * 100, "before the backup")?,
    )?;
    settled(alice, &ab)?;
    alice.stop()?;
    let backup = tempfile::tempdir()?;
    let backup_dir = backup.path().join("alice");
    copy_dir(alice.datadir(), &backup_dir)?;
    alice.restart()?;
    let old_alice_sat = local_sat(&alice.cli(&["listchannels"])?, &ab)?;

    // State 2: alice pays bob three tenths more; the backup's commitment is now revoked.
    alice.wait_cli(
        &["listchannels"],
        "the channel usable again",
        xln_tests::steps::WAIT,
        |list| (channel(list, &ab)?["is_usable"] == true).then_some(()),
    )?;
    pay(
        alice,
        &invoice(bob, capacity_sat * 300, "after the backup")?,
    )?;
    settled(alice, &ab)?;
    let fair_bob_sat = local_sat(&bob.cli(&["listchannels"])?, &ab)?;
    let bob_onchain_before = confirmed_sat(bob)?;

    // Bob goes offline. Alice restores the backup and publishes the revoked commitment.
    bob.stop()?;
    alice.stop()?;
    std::fs::remove_dir_all(alice.datadir())?;
    copy_dir(&backup_dir, alice.datadir())?;
    alice.restart()?;
    let restored = local_sat(&alice.cli(&["listchannels"])?, &ab)?;
    ensure!(
        restored == old_alice_sat,
        "the backup shows {restored} sat, not {old_alice_sat}"
    );
    let alice_onchain_before = confirmed_sat(alice)?;
    let closed = alice.cli(&["close", &ab, "force=true"])?;
    let commitment = closed["txid"]
        .as_str()
        .context("the revoked commitment's txid")?;
    mine(&net.chain_node, 1, &[alice, carol])?;
    let tip = net.chain_node.cli(&["getbestblockhash"])?;
    let block = net.chain_node.cli_json(&["getblock", tip.trim(), "1"])?;
    ensure!(
        block["tx"]
            .as_array()
            .is_some_and(|txs| txs.iter().any(|t| t == commitment)),
        "the revoked commitment {commitment} did not confirm: {block}"
    );
    alice.stop()?;

    // Bob stays away for all of alice's to_self_delay but the margin.
    let away = u32::from(policy.to_self_delay) - 1 - MARGIN_BLOCKS;
    tracing::info!(away, "bob is offline while blocks are mined");
    mine(&net.chain_node, away, &[carol])?;
    bob.restart()?;
    let tip = xln_tests::steps::height(&net.chain_node)?;
    bob.wait_cli(
        &["getinfo"],
        "bob caught up",
        std::time::Duration::from_secs(900),
        |info| (info["block_height"].as_u64() == Some(tip)).then_some(()),
    )?;

    // Bob's justice transaction takes alice's old balance; bob ends with the whole channel
    // less fees, far more than his fair share.
    mine_until(
        &net.chain_node,
        &[bob, carol],
        1,
        MARGIN_BLOCKS + 20,
        "bob's justice",
        || {
            let funds = bob.cli(&["listfunds"])?;
            tracing::info!(%funds, "bob's funds");
            Ok(swept(&funds, &ab))
        },
    )?;
    let gained = confirmed_sat(bob)? - bob_onchain_before;
    // The cheater loses: bob gets back more than his own balance (alice's output is his).
    ensure!(
        gained > fair_bob_sat,
        "bob got {gained} sat back from a {capacity_sat}-sat channel (his fair share {fair_bob_sat}, \
         alice's revoked balance {old_alice_sat})"
    );
    // What bob paid in fees: the justice transaction and the sweep of his own output (the
    // commitment's fee came from alice's side). Back after nearly all of to_self_delay, bob's
    // node catches up thousands of blocks at once; LDK hears of the block with the revoked
    // commitment and of the tip, not of every block between, so it bumps the justice claim once
    // or twice, not every 15 blocks (docs/architecture.md, "Catch-ups tell LDK only what
    // concerns it"). Before that, bob paid a fifth of the channel in fees on Qtum.
    let fees_sat = capacity_sat.saturating_sub(gained);
    eprintln!(
        "breach: bob was away {away} blocks; got back {gained} of {capacity_sat} sat \
         ({fees_sat} sat in fees, {:.2} %)",
        fees_sat as f64 * 100.0 / capacity_sat as f64
    );
    ensure!(
        fees_sat * 50 <= capacity_sat,
        "bob paid {fees_sat} sat in fees to take back a {capacity_sat}-sat channel: more than 2 %"
    );
    let checked = relayed(&net.chain_node, bob)?;
    tracing::info!(gained, fair_bob_sat, old_alice_sat, checked, "justice done");

    // Alice gets nothing of the channel back, also once her to_self_delay is over: the output
    // she would sweep is bob's now. Nor does her node count it as on its way back any longer:
    // LDK hands it over to be swept when her to_self_delay is over, and xlnd sees it is spent
    // already. (Until then LDK's monitor of the revoked commitment lists it as awaiting its
    // delay: it does not know the output was taken.)
    alice.restart()?;
    mine(&net.chain_node, MARGIN_BLOCKS + 6, &[alice, bob, carol])?;
    let alice_onchain_after = confirmed_sat(alice)?;
    ensure!(
        alice_onchain_after <= alice_onchain_before,
        "alice got {} sat back from the channel she cheated in",
        alice_onchain_after - alice_onchain_before
    );
    alice.wait_cli(
        &["listfunds"],
        "nothing of the cheated channel in alice's pending_sweep_sat",
        xln_tests::steps::WAIT,
        |funds| (funds["pending_sweep_sat"].as_u64() == Some(0)).then_some(()),
    )?;
    ensure!(net.ids[ALICE] != net.ids[BOB]);
    Ok(())
}

#[test]
fn a_revoked_commitment_loses_the_cheaters_whole_balance_on_bitcoin() -> Result<()> {
    a_revoked_commitment_loses_the_cheaters_whole_balance(TestChain::Bitcoin, "breach_bitcoin")
}

#[test]
fn a_revoked_commitment_loses_the_cheaters_whole_balance_on_qtum() -> Result<()> {
    a_revoked_commitment_loses_the_cheaters_whole_balance(TestChain::Qtum, "breach_qtum")
}
