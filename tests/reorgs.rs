//! Reorgs of 1, 3 and 6 blocks around a channel's life, on a regtest bitcoind and on the shared
//! qtumd, through real `xlnd` processes and `xln-cli` (issue 16, "Reorgs (Q)"):
//! - under a funding transaction before channel_ready (at most channel depth − 2 blocks: 4 on
//!   Bitcoin): the channel waits and re-confirms; above it after channel_ready: it stays usable
//!   and pays;
//! - under a cooperative close: it confirms again and both wallets end as they were;
//! - under a force close's commitment, then under the sweep of the other end's output: the sweep
//!   confirms again and the wallet ends as it was (up to a fee bump of the sweep);
//! - under an HTLC claimed on chain with its preimage: the claim confirms again, the claimer's
//!   wallet holds its output, the payer's payment stays succeeded.
//!
//! The A-B channel the set-up opens is closed first, so every payment takes the channel under test.
//!
//! Each reorg `invalidateblock`s the top blocks and waits until the nodes stand at the fork point
//! (their transactions back in the chain node's mempool), checks that no wallet shows an output the
//! chain does not have, then mines one block more than it took away. After each, every output a
//! wallet lists is checked against the chain's UTXO set, and every transaction the nodes
//! broadcast was relayed (or lost to a conflicting one that confirmed, or was a sweep refused
//! while a 6-block reorg had put its parent back into the mempool, and swept on chain after).

use anyhow::{ensure, Context, Result};
use ln_core::node::ChannelPolicy;
use serde_json::Value;
use xln_tests::steps::{
    answer, at_height, channel, cli_in_background, closed_and_confirmed, confirmed_sat,
    force_close, fund_channel, height, hold_invoice, mine, mine_until, new_address,
    relayed_through_reorgs, settled, usable, WAIT,
};
use xln_tests::three_nodes::{TestChain, ThreeNodes, BOB, CAROL};
use xln_tests::xlnd::Xlnd;
use xln_tests::Bitcoind;

/// The reorg depths the issue names.
const DEPTHS: [u32; 3] = [1, 3, 6];

/// Takes the top `depth` blocks away, waits for `nodes` at the fork point, checks their wallets
/// against the shorter chain, then mines `depth + 1` new blocks (the chain node puts the old
/// blocks' transactions into the first) and waits for `nodes` there. The new blocks pay carol,
/// not the burn address the old ones paid: a block mined again in the same second with the same
/// transactions and coinbase would be the old, invalidated block.
fn reorg(net: &ThreeNodes, depth: u32, nodes: &[&Xlnd]) -> Result<()> {
    let chain = &net.chain_node;
    let tip = height(chain)?;
    let fork = tip - u64::from(depth);
    let first_gone = chain.cli(&["getblockhash", &(fork + 1).to_string()])?;
    chain.cli(&["invalidateblock", &first_gone])?;
    at_height(nodes, fork, "the fork point", WAIT)?;
    for node in nodes {
        no_phantom_outputs(chain, node).context("at the fork point")?;
    }
    chain.mine_to_address(depth + 1, &new_address(&net.nodes[CAROL])?)?;
    at_height(nodes, height(chain)?, "the new branch", WAIT)?;
    for node in nodes {
        no_phantom_outputs(chain, node).context("on the new branch")?;
    }
    Ok(())
}

/// Every output `node`'s wallet lists exists on `chain` with its amount: a confirmed one in the
/// UTXO set of the chain's blocks, an unconfirmed one in the mempool's.
fn no_phantom_outputs(chain: &Bitcoind, node: &Xlnd) -> Result<()> {
    let funds = node.cli(&["listfunds"])?;
    let outputs = funds["outputs"]
        .as_array()
        .context("listfunds without outputs")?;
    for output in outputs {
        let txid = output["txid"].as_str().context("an output without txid")?;
        let vout = output["vout"].as_u64().context("an output without vout")?;
        let confirmed = output["confirmations"].as_u64().unwrap_or(0) > 0;
        let include_mempool = if confirmed { "false" } else { "true" };
        let found = chain.cli(&["gettxout", txid, &vout.to_string(), include_mempool])?;
        ensure!(
            !found.is_empty(),
            "the wallet lists {txid}:{vout} ({} confirmations) but the chain has no such unspent \
             output{}: {funds}",
            output["confirmations"],
            if confirmed {
                " in its blocks"
            } else {
                " in its blocks or mempool"
            }
        );
        let found: Value = serde_json::from_str(&found)?;
        let chain_sat = (found["value"].as_f64().unwrap_or(-1.0) * 1e8).round() as i64;
        let listed_sat = output["amount_sat"].as_i64().unwrap_or(-2);
        ensure!(
            chain_sat == listed_sat,
            "{txid}:{vout} holds {chain_sat} sat on chain, the wallet says {listed_sat}"
        );
    }
    Ok(())
}

/// What `node` lists as on its way back from closed channels.
fn pending_sweep_sat(node: &Xlnd) -> Result<u64> {
    node.cli(&["listfunds"])?["pending_sweep_sat"]
        .as_u64()
        .context("listfunds without pending_sweep_sat")
}

fn is_usable(node: &Xlnd, channel_id: &str) -> Result<bool> {
    Ok(channel(&node.cli(&["listchannels"])?, channel_id).is_some_and(|c| c["is_usable"] == true))
}

/// alice opens a channel to bob; a reorg of `depth` blocks takes its funding block away before
/// channel_ready (fewer blocks where the chain's channel depth is that shallow: Bitcoin's 6); the
/// channel waits, re-confirms and becomes usable on both ends. Then, after channel_ready, a reorg
/// of `depth` blocks above the funding leaves it usable, and it pays.
///
/// (A reorg that takes the funding away *after* channel_ready makes LDK force-close the channel:
/// "Funding transaction was un-confirmed"; its funds then come back as after any force close.)
fn open_through_reorgs(net: &ThreeNodes, depth: u32) -> Result<String> {
    let [alice, bob, _] = &net.nodes;
    let chain = &net.chain_node;
    let min_depth = ChannelPolicy::for_chain(&net.params).minimum_depth;
    let (channel_id, funding_txid) = fund_channel(alice, &net.ids[BOB], net.capacity_sat, false)?;
    // The reorg mines one block more than it takes: the funding then has before_ready + 1
    // confirmations, still short of channel_ready.
    let before_ready = depth.min(min_depth - 2);
    mine(chain, before_ready, &[alice, bob])?;
    reorg(net, before_ready, &[alice, bob])?;
    let funding = chain.cli_json(&["getrawtransaction", &funding_txid, "1"])?;
    ensure!(
        funding["confirmations"].as_u64() == Some(u64::from(before_ready) + 1),
        "the funding transaction is not in the new branch's first block: {funding}"
    );
    ensure!(
        !is_usable(alice, &channel_id)? && !is_usable(bob, &channel_id)?,
        "the channel is usable at {} confirmations, before its {min_depth}",
        before_ready + 1
    );
    mine(chain, min_depth - before_ready - 1, &[alice, bob])?;
    for node in [alice, bob] {
        node.wait_cli(
            &["listchannels"],
            "the channel usable after the reorg",
            WAIT,
            |list| (channel(list, &channel_id)?["is_usable"] == true).then_some(()),
        )?;
    }
    mine(chain, depth, &[alice, bob])?;
    reorg(net, depth, &[alice, bob])?;
    for node in [alice, bob] {
        ensure!(
            is_usable(node, &channel_id)?,
            "the channel is not usable after a {depth}-block reorg above its funding"
        );
    }
    let sent = alice.cli(&[
        "keysend",
        &net.ids[BOB],
        &(net.capacity_sat * 100).to_string(), // a tenth of the channel, in msat
    ])?;
    ensure!(
        sent["status"] == "succeeded",
        "the keysend after the reorg: {sent}"
    );
    settled(alice, &channel_id)?;
    settled(bob, &channel_id)?;
    Ok(channel_id)
}

/// alice and bob close cooperatively; a reorg of `depth` blocks takes the close's block away; it
/// confirms again and both wallets end exactly as they were before the reorg.
fn close_through_a_reorg(net: &ThreeNodes, channel_id: &str, depth: u32) -> Result<()> {
    let [alice, bob, _] = &net.nodes;
    let chain = &net.chain_node;
    // Earlier force closes of this test may still have outputs on their way back (bob's own
    // commitment output waits for to_self_delay): a cooperative close adds nothing to them.
    let sweeps_before = [pending_sweep_sat(alice)?, pending_sweep_sat(bob)?];
    let closed = alice.cli(&["close", channel_id])?;
    // `close` returns once the closing transaction is in the chain node's mempool.
    let close_txid = closed["txid"]
        .as_str()
        .context("a cooperative close without txid")?;
    mine(chain, depth, &[alice, bob])?;
    for (node, sweeps_before) in [alice, bob].into_iter().zip(sweeps_before) {
        node.wait_cli(&["listfunds"], "the close confirmed", WAIT, |funds| {
            (closed_and_confirmed(funds, channel_id)
                && funds["pending_sweep_sat"].as_u64() == Some(sweeps_before))
            .then_some(())
        })?;
    }
    let before = [confirmed_sat(alice)?, confirmed_sat(bob)?];
    reorg(net, depth, &[alice, bob])?;
    let close = chain.cli_json(&["getrawtransaction", close_txid, "1"])?;
    ensure!(
        close["confirmations"].as_u64() == Some(u64::from(depth) + 1),
        "the close is not in the new branch's first block: {close}"
    );
    let after = [confirmed_sat(alice)?, confirmed_sat(bob)?];
    ensure!(
        after == before,
        "confirmed balances (alice, bob) were {before:?} before the {depth}-block reorg under the \
         close and are {after:?} after it"
    );
    Ok(())
}

/// bob force-closes a channel alice opened and paid into; a reorg of `depth` blocks takes the
/// commitment's block away, it confirms again, alice sweeps her output; a second reorg of
/// `depth` blocks takes the sweep's block away and alice's wallet ends as it was.
fn force_close_through_reorgs(net: &ThreeNodes, channel_id: &str, depth: u32) -> Result<()> {
    let [alice, bob, _] = &net.nodes;
    let chain = &net.chain_node;
    let sweeps_before = pending_sweep_sat(alice)?;
    let commitment = &force_close(bob, channel_id)?;
    mine(chain, depth, &[alice, bob])?;
    reorg(net, depth, &[alice, bob])?;
    let confirmed = chain.cli_json(&["getrawtransaction", commitment, "1"])?;
    ensure!(
        confirmed["confirmations"].as_u64() == Some(u64::from(depth) + 1),
        "bob's commitment is not in the new branch's first block: {confirmed}"
    );
    // alice's own output of the commitment goes through the sweeper: done when her pending
    // sweeps are back to what they were before the close and the sweep is confirmed.
    mine_until(chain, &[alice, bob], 1, 60, "alice's sweep", || {
        let funds = alice.cli(&["listfunds"])?;
        Ok(closed_and_confirmed(&funds, channel_id)
            && funds["pending_sweep_sat"].as_u64() == Some(sweeps_before))
    })?;
    let before = confirmed_sat(alice)?;
    mine(chain, depth.saturating_sub(1), &[alice, bob])?;
    reorg(net, depth, &[alice, bob])?;
    let after = alice.wait_cli(&["listfunds"], "the sweep confirmed again", WAIT, |funds| {
        (closed_and_confirmed(funds, channel_id)
            && funds["pending_sweep_sat"].as_u64() == Some(sweeps_before))
        .then(|| funds["onchain_confirmed_sat"].as_u64())
        .flatten()
    })?;
    // The sweeper may have replaced its sweep with a higher fee while it was unconfirmed.
    let fee_bump_allowance = net.capacity_sat / 200;
    ensure!(
        after <= before && before - after <= fee_bump_allowance,
        "alice's confirmed balance was {before} sat before the {depth}-block reorg under her \
         sweep and is {after} sat after it"
    );
    // `force_close` disconnected alice, and no channel is left between them to bring the
    // connection back by itself.
    alice.cli(&["connect", &bob.uri()?])?;
    Ok(())
}

/// The transaction among `txs` (decoded, as `getblock <hash> 2` or `getrawtransaction <txid> 1`
/// give them) that spends an output of `commitment` with `preimage` in its witness: an HTLC
/// claimed on chain with its preimage.
fn preimage_claim<'a>(
    txs: impl IntoIterator<Item = &'a Value>,
    commitment: &str,
    preimage: &str,
) -> Option<&'a Value> {
    txs.into_iter().find(|tx| {
        tx["vin"].as_array().is_some_and(|inputs| {
            inputs.iter().any(|input| {
                input["txid"] == commitment
                    && input["txinwitness"]
                        .as_array()
                        .is_some_and(|items| items.iter().any(|item| item == preimage))
            })
        })
    })
}

/// The output of `tx` that `node`'s wallet lists, and its amount, once it does.
fn wallet_output(node: &Xlnd, txid: &str) -> Result<u64> {
    node.wait_cli(&["listfunds"], "the claim in the wallet", WAIT, |funds| {
        funds["outputs"]
            .as_array()?
            .iter()
            .find(|output| output["txid"] == txid && output["confirmations"].as_u64() > Some(0))?
            ["amount_sat"]
            .as_u64()
    })
}

/// alice pays a hold invoice of bob's over a new channel, and force-closes it while bob holds
/// the HTLC; bob then settles, so his ChannelMonitor claims the HTLC from alice's commitment with
/// the preimage, on chain, and alice's payment succeeds from the preimage she reads there. A reorg
/// of `depth` blocks takes the claim's block away: a claim of the same output confirms again, bob's
/// wallet holds its output (up to a fee bump), `pending_sweep_sat` does not count it a second
/// time, and neither end's view of the payment changes.
fn htlc_claim_through_a_reorg(net: &ThreeNodes, depth: u32) -> Result<()> {
    let [alice, bob, _] = &net.nodes;
    let chain = &net.chain_node;
    let min_depth = ChannelPolicy::for_chain(&net.params).minimum_depth;
    let (channel_id, _) = fund_channel(alice, &net.ids[BOB], net.capacity_sat, false)?;
    mine(chain, min_depth, &[alice, bob])?;
    for node in [alice, bob] {
        usable(node, &channel_id, WAIT)?;
    }
    let amount_msat = net.capacity_sat * 100; // a tenth of the channel
    let n = u8::try_from(100 + depth)?;
    let (preimage, hash, bolt11) = hold_invoice(bob, n, amount_msat)?;
    let payer = cli_in_background(alice, &["pay", &bolt11, "timeout_secs=900"]);
    bob.wait_cli(&["listinvoices", &hash], "the HTLC held", WAIT, |list| {
        (list["invoices"][0]["status"] == "held").then_some(())
    })?;
    ensure!(
        channel(&alice.cli(&["listchannels"])?, &channel_id)
            .is_some_and(|c| c["pending_htlcs"] == 1),
        "the HTLC is not on the channel alice is about to close"
    );
    // `force_close` disconnects bob first: offline, he does not hear of the close and cannot
    // race alice's commitment with his own. He reconnects within seconds (a closed channel's
    // peer is not reconnected to by itself: alice connects again at the end).
    let bob_sweeps_before = pending_sweep_sat(bob)?;
    let commitment = force_close(alice, &channel_id)?;
    mine(chain, 1, &[alice, bob])?;
    bob.cli(&["settleinvoice", &preimage])?;

    // bob's claim goes to the chain node's mempool; one block confirms it.
    let claim = {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let mempool: Vec<Value> = chain
                .cli_json(&["getrawmempool"])?
                .as_array()
                .context("getrawmempool without a list")?
                .iter()
                .filter_map(Value::as_str)
                .map(|txid| chain.cli_json(&["getrawtransaction", txid, "1"]))
                .collect::<Result<_, _>>()?;
            if let Some(tx) = preimage_claim(&mempool, &commitment, &preimage) {
                break tx.clone();
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "bob's preimage claim of alice's commitment {commitment} is not in the mempool \
                 after {WAIT:?}: {mempool:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    };
    // bob's wallet holds the claim's output, which is not also on its way back.
    let claim_counted_once = |txid: &str| -> Result<u64> {
        let claimed_sat = wallet_output(bob, txid)?;
        bob.wait_cli(&["listfunds"], "the claim counted once", WAIT, |funds| {
            (funds["pending_sweep_sat"].as_u64() == Some(bob_sweeps_before)).then_some(())
        })?;
        Ok(claimed_sat)
    };
    let claim_txid = claim["txid"].as_str().context("a claim without txid")?;
    mine(chain, 1, &[alice, bob])?;
    let claimed_sat = claim_counted_once(claim_txid)?;
    ensure!(
        claimed_sat <= amount_msat / 1000 && claimed_sat > amount_msat / 1000 * 9 / 10,
        "bob's claim of a {} sat HTLC gave him {claimed_sat} sat",
        amount_msat / 1000
    );
    let sent = answer(payer)?;
    ensure!(
        sent["status"] == "succeeded" && sent["preimage"] == preimage.as_str(),
        "alice's payment after bob's claim on chain: {sent}"
    );

    mine(chain, depth - 1, &[alice, bob])?;
    let fork = height(chain)? - u64::from(depth);
    reorg(net, depth, &[alice, bob])?;
    let first_new = chain.cli(&["getblockhash", &(fork + 1).to_string()])?;
    let block = chain.cli_json(&["getblock", &first_new, "2"])?;
    let again = preimage_claim(
        block["tx"].as_array().context("a block without tx")?,
        &commitment,
        &preimage,
    )
    .with_context(|| {
        format!("no preimage claim of {commitment} in the new branch's first block: {block}")
    })?;
    let again_txid = again["txid"].as_str().context("a claim without txid")?;
    let again_sat = claim_counted_once(again_txid)?;
    let fee_bump_allowance = net.capacity_sat / 200;
    ensure!(
        again_sat <= claimed_sat && claimed_sat - again_sat <= fee_bump_allowance,
        "bob's claim gave him {claimed_sat} sat before the {depth}-block reorg under it and \
         {again_sat} sat after it"
    );
    let invoice = bob.cli(&["listinvoices", &hash])?;
    ensure!(
        invoice["invoices"][0]["status"] == "paid",
        "bob's invoice after the reorg: {invoice}"
    );
    let payment = alice.cli(&["listpayments", &hash])?;
    ensure!(
        payment["payments"][0]["status"] == "succeeded",
        "alice's payment after the reorg: {payment}"
    );
    // No channel is left between them to bring the connection back by itself.
    alice.cli(&["connect", &bob.uri()?])?;
    Ok(())
}

fn channels_live_through_reorgs(chain: TestChain, test: &str) -> Result<()> {
    let Some(net) = ThreeNodes::start(chain, test, [&[], &[], &[]])? else {
        return Ok(());
    };
    let [alice, bob, _] = &net.nodes;
    // Every payment of this test must take the channel under test: close the A-B channel the
    // set-up opened, so that LDK has no other way from alice to bob.
    alice.cli(&["close", &net.channels[0].0])?;
    mine(&net.chain_node, 1, &[alice, bob])?;
    for depth in DEPTHS {
        let cooperative = open_through_reorgs(&net, depth)?;
        close_through_a_reorg(&net, &cooperative, depth)?;
        let forced = open_through_reorgs(&net, depth)?;
        force_close_through_reorgs(&net, &forced, depth)?;
        htlc_claim_through_a_reorg(&net, depth)?;
        eprintln!(
            "reorgs: {depth}-block reorgs under funding (before and after channel_ready), a \
             cooperative close, a commitment, a sweep and an HTLC claimed on chain: ok"
        );
    }
    let checked = relayed_through_reorgs(&net.chain_node, alice)?
        + relayed_through_reorgs(&net.chain_node, bob)?;
    eprintln!(
        "reorgs: {} reorgs, {checked} broadcasts checked, every wallet output on chain",
        DEPTHS.len() * 8
    );
    Ok(())
}

#[test]
fn channels_live_through_reorgs_of_1_3_and_6_blocks_on_bitcoin() -> Result<()> {
    channels_live_through_reorgs(TestChain::Bitcoin, "reorgs_bitcoin")
}

#[test]
fn channels_live_through_reorgs_of_1_3_and_6_blocks_on_qtum() -> Result<()> {
    channels_live_through_reorgs(TestChain::Qtum, "reorgs_qtum")
}
