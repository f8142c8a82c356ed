//! Fee spikes: the chain's fee estimates jump 20x while channels are open (issue 16, item 5).
//!
//! Real xlnd processes on a real regtest bitcoind and qtumd. Regtest has no fee market, so the
//! spike is the test-only `XLN_DEV_FEE_SPIKE_FILE` (docs/faults.md): while the file exists, every
//! estimate a node gets from its chain node is multiplied by the number in it. Each node has its
//! own file, so the nodes can disagree, as two implementations with different estimators do.
//!
//! alice - bob - carol, alice opened A-B and bob B-C (the opener sets the commitment feerate):
//! 1. only alice sees the spike: she raises A-B's commitment feerate; bob, who does not see it,
//!    accepts it and keeps the channel;
//! 2. everyone sees it: bob raises B-C's too; payments flow both ways over both channels; a day
//!    of blocks passes (LDK's window for a peer whose feerate stays too low) and nothing closes;
//! 3. bob force-closes B-C in the middle of the spike: the commitment (with the wallet's CPFP of
//!    its anchor on Bitcoin; at the raised feerate itself on Qtum, which has no anchors) confirms,
//!    carol sweeps her output and bob lists his as waiting for its delay;
//! 4. the spike ends: alice lowers A-B's feerate again and A-B still pays.
//!
//! And xlnd beside an LDK Node peer (Bitcoin only), each opening a channel to the other, with
//! only xlnd seeing the spike for a day: nothing closes
//! (`no_force_close_from_a_fee_spike_with_an_ldk_node_peer`).
//!
//! LDK closes a channel whose opener keeps its feerate below the lowest `MinAllowed*` estimate
//! of the last 144 blocks it was told of one by one, so the day of blocks is mined one block at
//! a time, each taken in before the next (`mine_one_at_a_time`), with xlnd polling every 200 ms.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use ldk_node::Event;
use ln_core::node::ChannelPolicy;
use ln_core::ChainParams;
use serde_json::Value;
use xln_tests::ldk_node_peer::LdkNodePeer;
use xln_tests::steps::{
    channel, closed_and_confirmed, force_close, fund, fund_channel, id, invoice, mine,
    mine_one_at_a_time, mine_until, pay, relayed, swept, usable,
};
use xln_tests::three_nodes::{NodesDir, TestChain, ThreeNodes, ALICE, BOB, CAROL};
use xln_tests::xlnd::Xlnd;
use xln_tests::Bitcoind;

const SPIKE_FACTOR: u64 = 20;
/// xlnd takes in one new block per poll; a day of blocks mined one at a time takes 144 polls.
const FAST_BLOCK_POLLS: &str = "--block-poll-interval-ms=200";
/// A commitment feerate update waits for LDK's next timer tick (every minute) after the fee
/// refresh of the next block.
const FEERATE_WAIT: Duration = Duration::from_secs(180);
const WAIT: Duration = Duration::from_secs(120);

fn feerate(node: &Xlnd, channel_id: &str) -> Result<u64> {
    channel(&node.cli(&["listchannels"])?, channel_id)
        .and_then(|c| c["commitment_feerate_sat_per_kw"].as_u64())
        .with_context(|| format!("{} lists no feerate of {channel_id}", node.name))
}

/// Waits until both ends of `channel_id` list a commitment feerate that `holds`.
fn both_ends_at(
    ends: [&Xlnd; 2],
    channel_id: &str,
    what: &str,
    holds: impl Fn(u64) -> bool,
) -> Result<u64> {
    let mut rate = 0;
    for node in ends {
        rate = node.wait_cli(&["listchannels"], what, FEERATE_WAIT, |list| {
            channel(list, channel_id)?["commitment_feerate_sat_per_kw"]
                .as_u64()
                .filter(|rate| holds(*rate))
        })?;
    }
    Ok(rate)
}

/// Fails unless both ends of each of `channels` (of `net`'s two) list it as usable.
fn all_channels_usable(net: &ThreeNodes, channels: &[&str]) -> Result<()> {
    for (channel_id, ends) in &net.channels {
        if channels.contains(&channel_id.as_str()) {
            for end in ends {
                usable(&net.nodes[*end], channel_id, WAIT)?;
            }
        }
    }
    Ok(())
}

fn spike(file: &Path, factor: u64) -> Result<()> {
    std::fs::write(file, factor.to_string()).context("writing the fee spike file")
}

fn payments_flow_both_ways(net: &ThreeNodes, amount_msat: u64, what: &str) -> Result<()> {
    let [alice, _, carol] = &net.nodes;
    pay(alice, &invoice(carol, amount_msat, what)?)
        .with_context(|| format!("alice pays carol {what}"))?;
    // carol's side holds what alice paid her, less the channel reserve (1 % of the channel).
    pay(carol, &invoice(alice, amount_msat / 4, what)?)
        .with_context(|| format!("carol pays alice {what}"))?;
    Ok(())
}

fn channels_ride_out_a_fee_spike(chain: TestChain, test: &str) -> Result<()> {
    let fast_polls: &[&str] = &[FAST_BLOCK_POLLS];
    let Some(net) = ThreeNodes::start(chain, test, [fast_polls; 3])? else {
        return Ok(());
    };
    let [alice, bob, carol] = &net.nodes;
    let (ab, bc) = (net.channels[0].0.clone(), net.channels[1].0.clone());
    let spikes = tempfile::tempdir()?;
    let files = ["alice", "bob", "carol"].map(|name| spikes.path().join(name));
    for (node, file) in net.nodes.iter().zip(&files) {
        node.stop()?;
        let file = file.display().to_string();
        node.restart_with_env(&[("XLN_DEV_FEE_SPIKE_FILE", file.as_str())])?;
    }
    all_channels_usable(&net, &[&ab, &bc])?;
    net.wait_for_gossip()?;
    let amount_msat = net.capacity_sat * 1000 / 50;
    payments_flow_both_ways(&net, amount_msat, "before the spike")?;
    let ab_before = feerate(alice, &ab)?;
    let bc_before = feerate(bob, &bc)?;
    tracing::info!(
        ?chain,
        ab_before,
        bc_before,
        "commitment feerates before the spike, sat/kw"
    );

    // 1. Only alice, A-B's opener, sees the spike.
    spike(&files[ALICE], SPIKE_FACTOR)?;
    mine(&net.chain_node, 1, &[alice, bob, carol])?;
    let ab_spiked = both_ends_at([alice, bob], &ab, "A-B's feerate raised by alice", |rate| {
        rate >= ab_before * (SPIKE_FACTOR / 2)
    })?;
    tracing::info!(
        ?chain,
        ab_spiked,
        "alice raised A-B's feerate; bob does not see the spike"
    );
    ensure!(
        feerate(bob, &bc)? == bc_before,
        "B-C's feerate moved although bob, its opener, sees no spike"
    );
    all_channels_usable(&net, &[&ab, &bc])?;
    pay(
        alice,
        &invoice(bob, amount_msat, "alice alone sees the spike")?,
    )?;

    // 2. Everyone sees it.
    spike(&files[BOB], SPIKE_FACTOR)?;
    spike(&files[CAROL], SPIKE_FACTOR)?;
    mine(&net.chain_node, 1, &[alice, bob, carol])?;
    let bc_spiked = both_ends_at([bob, carol], &bc, "B-C's feerate raised by bob", |rate| {
        rate >= bc_before * (SPIKE_FACTOR / 2)
    })?;
    tracing::info!(?chain, bc_spiked, "bob raised B-C's feerate");
    payments_flow_both_ways(&net, amount_msat, "during the spike")?;
    // LDK closes a channel whose opener keeps the feerate below the minimum it saw over the last
    // 144 blocks (blocks, on either chain); 150 blocks at the spike must close nothing.
    mine_one_at_a_time(&net.chain_node, 150, &[alice, bob, carol])?;
    all_channels_usable(&net, &[&ab, &bc])?;
    payments_flow_both_ways(&net, amount_msat, "a day into the spike")?;

    // 3. bob force-closes B-C at the spike. carol's output is hers at once (after 1 block on an
    // anchor channel) and her node sweeps it; bob's waits for his to_self_delay (the sweep of such
    // an output is tested in tests/breach.rs and tests/faults.rs), so his must only be listed.
    let commitment = force_close(bob, &bc)?;
    let mined = mine_until(
        &net.chain_node,
        &[alice, bob, carol],
        1,
        60,
        "bob's commitment confirmed and carol's output swept",
        || {
            let confirmed = net
                .chain_node
                .cli_json(&["getrawtransaction", &commitment, "1"])
                .ok()
                .and_then(|tx: Value| tx["confirmations"].as_u64())
                .is_some();
            Ok(confirmed && swept(&carol.cli(&["listfunds"])?, &bc))
        },
    )?;
    let tx = net
        .chain_node
        .cli_json(&["getrawtransaction", &commitment, "2"])?;
    let fee_sat = tx["fee"]
        .as_f64()
        .map(|coins| (coins * 1e8).round() as u64)
        .context("getrawtransaction without fee")?;
    let vsize = tx["vsize"]
        .as_u64()
        .context("getrawtransaction without vsize")?;
    let bob_funds = bob.wait_cli(&["listfunds"], "B-C closed on bob's side", WAIT, |funds| {
        closed_and_confirmed(funds, &bc).then(|| funds.clone())
    })?;
    ensure!(
        bob_funds["pending_sweep_sat"].as_u64().unwrap_or(0) > 0,
        "bob lists nothing waiting to be swept of his force-closed B-C: {bob_funds}"
    );
    tracing::info!(
        ?chain,
        %commitment,
        mined,
        fee_sat,
        vsize,
        sat_per_vb = fee_sat / vsize.max(1),
        bob_pending_sweep_sat = %bob_funds["pending_sweep_sat"],
        "bob's commitment confirmed during the spike and carol swept her output"
    );
    for node in [bob, carol] {
        relayed(&net.chain_node, node)
            .with_context(|| format!("{} broadcast something the chain refused", node.name))?;
    }
    all_channels_usable(&net, &[&ab])?;

    // 4. The spike ends.
    for file in &files {
        std::fs::remove_file(file).context("ending the fee spike")?;
    }
    mine(&net.chain_node, 1, &[alice, bob, carol])?;
    let ab_after = both_ends_at(
        [alice, bob],
        &ab,
        "A-B's feerate lowered by alice",
        |rate| rate * 2 <= ab_spiked,
    )?;
    tracing::info!(
        ?chain,
        ab_after,
        "alice lowered A-B's feerate after the spike"
    );
    pay(alice, &invoice(bob, amount_msat, "after the spike")?)?;
    all_channels_usable(&net, &[&ab])?;
    Ok(())
}

#[test]
fn channels_ride_out_a_20x_fee_spike_on_bitcoin() -> Result<()> {
    channels_ride_out_a_fee_spike(
        TestChain::Bitcoin,
        "channels_ride_out_a_20x_fee_spike_on_bitcoin",
    )
}

#[test]
fn channels_ride_out_a_20x_fee_spike_on_qtum() -> Result<()> {
    channels_ride_out_a_fee_spike(TestChain::Qtum, "channels_ride_out_a_20x_fee_spike_on_qtum")
}

/// How long LDK Node is given to take in blocks and messages at each step.
const LDK_NODE_WAIT: Duration = Duration::from_secs(180);

/// Channels with an LDK Node peer, each end opening one; only xlnd sees the spike (regtest
/// bitcoind gives LDK Node no estimate, so it stays at its fallback feerates: the two
/// implementations disagree by 20x for a day):
/// 1. xlnd raises the channel it opened and LDK Node accepts the new feerate;
/// 2. LDK Node keeps the channel it opened at its own feerate, 20x below what xlnd now expects,
///    for 150 blocks: LDK's window for a peer whose feerate stays too low; nothing closes and
///    payments flow both ways;
/// 3. the spike ends: xlnd lowers its channel's feerate, LDK Node accepts, payments flow.
///
/// Bitcoin only: LDK Node knows no other chain.
#[test]
fn no_force_close_from_a_fee_spike_with_an_ldk_node_peer() -> Result<()> {
    xln_tests::init_test_logging();
    let chain = Bitcoind::start()?;
    let params = ChainParams::bitcoin_regtest();
    let dir = NodesDir::new(tempfile::tempdir()?);
    let spike_file = dir.path().join("spike");
    let alice = Xlnd::start_with_args(
        &chain,
        &dir.path().join("alice"),
        "alice",
        &[FAST_BLOCK_POLLS],
    )?;
    alice.stop()?;
    alice.restart_with_env(&[(
        "XLN_DEV_FEE_SPIKE_FILE",
        spike_file.display().to_string().as_str(),
    )])?;
    let ldk = LdkNodePeer::start(&chain, "ldk")?;

    // Funds for both: LDK Node accepts an anchor channel only with coins for its reserve.
    let ldk_address = ldk.node().onchain_payment().new_address()?;
    chain.mine_to_address(1, &ldk_address.to_string())?;
    fund(&chain, &params, &alice, &[])?;
    ldk.sync()?;
    ldk.wait_for("mature coins", LDK_NODE_WAIT, || {
        Ok((ldk.node().list_balances().spendable_onchain_balance_sats > 0).then_some(()))
    })?;

    // Each opens one channel to the other.
    let capacity_sat = 2_000_000;
    alice.cli(&["connect", &ldk.uri()?])?;
    let (from_alice, _) = fund_channel(&alice, &ldk.id().to_string(), capacity_sat, false)?;
    let alice_address = alice
        .uri()?
        .split_once('@')
        .map(|(_, address)| address.to_owned())
        .context("alice's uri has no address")?;
    ldk.node().open_channel(
        PublicKey::from_str(&id(&alice)?)?,
        SocketAddress::from_str(&alice_address).map_err(|e| anyhow!("{e:?}"))?,
        capacity_sat,
        None,
        None,
    )?;
    let from_ldk = ldk.wait_for(
        "a funding transaction of its channel",
        LDK_NODE_WAIT,
        || {
            Ok(ldk
                .node()
                .list_channels()
                .into_iter()
                .find(|channel| channel.is_outbound && channel.funding_txo.is_some())
                .map(|channel| channel.channel_id.to_string()))
        },
    )?;
    for channel_id in [&from_alice, &from_ldk] {
        alice.wait_cli(&["listchannels"], "the funding transaction", WAIT, |list| {
            channel(list, channel_id)?["funding_txid"]
                .as_str()
                .map(drop)
        })?;
    }
    // LDK Node asks 6 confirmations of a channel it did not open.
    let depth = ChannelPolicy::for_chain(&params).minimum_depth.max(6);
    mine(&chain, depth, &[&alice])?;
    let both_usable = |when: &str| -> Result<()> {
        ldk.sync()?;
        for channel_id in [&from_alice, &from_ldk] {
            usable(&alice, channel_id, WAIT).with_context(|| format!("alice's channel {when}"))?;
            ldk.wait_for(
                &format!("usable {channel_id} {when}"),
                LDK_NODE_WAIT,
                || Ok(ldk.channel(channel_id).filter(|c| c.is_usable).map(drop)),
            )?;
        }
        let closed: Vec<_> = ldk
            .events()
            .into_iter()
            .filter(|event| matches!(event, Event::ChannelClosed { .. }))
            .collect();
        ensure!(
            closed.is_empty(),
            "LDK Node saw channels close {when}: {closed:?}"
        );
        Ok(())
    };
    both_usable("after opening")?;
    let ldk_feerate = |channel_id: &str| -> Result<u64> {
        ldk.channel(channel_id)
            .map(|c| u64::from(c.feerate_sat_per_1000_weight))
            .with_context(|| format!("LDK Node lists no channel {channel_id}"))
    };
    for channel_id in [&from_alice, &from_ldk] {
        let listed = channel(&alice.cli(&["listchannels"])?, channel_id)
            .cloned()
            .context("alice lost a channel")?;
        ensure!(
            listed["has_anchors"] == true,
            "{channel_id} with LDK Node is not an anchor channel: {listed}"
        );
    }
    let payments = |when: &str| -> Result<()> {
        pay_ldk_node(&alice, &ldk, 50_000_000, when)?;
        ldk_node_pays(&ldk, &alice, 20_000_000, when)
    };
    payments("before the spike")?;
    let (alice_before, ldk_before) = (feerate(&alice, &from_alice)?, ldk_feerate(&from_ldk)?);
    tracing::info!(
        alice_before,
        ldk_before,
        "commitment feerates before the spike, sat/kw: of the channel alice opened, of LDK Node's"
    );

    // 1. alice sees the spike and raises her channel; LDK Node accepts.
    spike(&spike_file, SPIKE_FACTOR)?;
    mine(&chain, 1, &[&alice])?;
    let alice_spiked = alice.wait_cli(
        &["listchannels"],
        "alice raising her channel's feerate",
        FEERATE_WAIT,
        |list| {
            channel(list, &from_alice)?["commitment_feerate_sat_per_kw"]
                .as_u64()
                .filter(|rate| *rate >= alice_before * (SPIKE_FACTOR / 2))
        },
    )?;
    ldk.wait_for("the raised feerate", LDK_NODE_WAIT, || {
        Ok((ldk_feerate(&from_alice)? == alice_spiked).then_some(()))
    })?;
    ensure!(
        ldk_feerate(&from_ldk)? == ldk_before,
        "LDK Node moved the feerate of its channel although it sees no spike"
    );
    tracing::info!(
        alice_spiked,
        "alice raised her channel's feerate; LDK Node accepted it"
    );
    payments("at the spike")?;

    // 2. A day of blocks with LDK Node's channel 20x below alice's estimates.
    for _ in 0..3 {
        mine_one_at_a_time(&chain, 50, &[&alice])?;
        both_usable("during a day at the spike")?;
    }
    ensure!(
        feerate(&alice, &from_ldk)? == ldk_before,
        "LDK Node's channel changed feerate"
    );
    payments("a day into the spike")?;

    // 3. The spike ends.
    std::fs::remove_file(&spike_file).context("ending the fee spike")?;
    mine(&chain, 1, &[&alice])?;
    let alice_after = alice.wait_cli(
        &["listchannels"],
        "alice lowering her channel's feerate",
        FEERATE_WAIT,
        |list| {
            channel(list, &from_alice)?["commitment_feerate_sat_per_kw"]
                .as_u64()
                .filter(|rate| rate * 2 <= alice_spiked)
        },
    )?;
    ldk.wait_for("the lowered feerate", LDK_NODE_WAIT, || {
        Ok((ldk_feerate(&from_alice)? == alice_after).then_some(()))
    })?;
    both_usable("after the spike")?;
    payments("after the spike")?;
    relayed(&chain, &alice).context("alice broadcast something the chain refused")?;
    tracing::info!(
        alice_before,
        alice_spiked,
        alice_after,
        ldk_before,
        "no force close with LDK Node through a 20x spike seen by alice alone"
    );
    ldk.stop()?;
    alice.stop()
}

/// alice pays an invoice of LDK Node's.
fn pay_ldk_node(alice: &Xlnd, ldk: &LdkNodePeer, amount_msat: u64, when: &str) -> Result<()> {
    let description = Description::new(format!("from alice {when}"))?;
    let invoice = ldk.node().bolt11_payment().receive(
        amount_msat,
        &Bolt11InvoiceDescription::Direct(description),
        3600,
    )?;
    pay(alice, &invoice.to_string()).with_context(|| format!("alice paying LDK Node {when}"))?;
    Ok(())
}

/// LDK Node pays an invoice of alice's and waits for its `PaymentSuccessful`.
fn ldk_node_pays(ldk: &LdkNodePeer, alice: &Xlnd, amount_msat: u64, when: &str) -> Result<()> {
    let bolt11 = invoice(alice, amount_msat, &format!("from LDK Node {when}"))?;
    let invoice = Bolt11Invoice::from_str(&bolt11).map_err(|e| anyhow!("{e}"))?;
    let payment_id = ldk.node().bolt11_payment().send(&invoice, None)?;
    ldk.wait_for(
        &format!("its payment to alice {when}"),
        LDK_NODE_WAIT,
        || {
            for event in ldk.events() {
                match event {
                    Event::PaymentSuccessful {
                        payment_id: Some(id),
                        ..
                    } if id == payment_id => return Ok(Some(())),
                    Event::PaymentFailed {
                        payment_id: Some(id),
                        reason,
                        ..
                    } if id == payment_id => {
                        bail!("LDK Node's payment to alice {when} failed: {reason:?}")
                    }
                    _ => {}
                }
            }
            Ok(None)
        },
    )
}
