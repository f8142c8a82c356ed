//! The steps end-to-end tests take with [`Xlnd`] processes on a chain node, through `xln-cli`:
//! mine and wait for the nodes, fund a wallet, open a channel, invoice, pay, wait for HTLCs to
//! settle. Chain numbers (coinbase maturity, channel depth) come from the chain's [`ChainParams`],
//! so the same steps serve the Bitcoin and the Qtum suites.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use ln_core::node::ChannelPolicy;
use ln_core::ChainParams;
use serde_json::Value;

use crate::xlnd::Xlnd;
use crate::Bitcoind;

/// How long a step waits for the nodes.
pub const WAIT: Duration = Duration::from_secs(120);

/// The chain node's block count.
pub fn height(chain: &Bitcoind) -> Result<u64> {
    Ok(chain.cli(&["getblockcount"])?.parse()?)
}

/// Mines `blocks` and waits until `nodes` report the new height (longer for many blocks: Qtum's
/// 2000-block coinbase maturity is mined in one go).
pub fn mine(chain: &Bitcoind, blocks: u32, nodes: &[&Xlnd]) -> Result<()> {
    chain.mine(blocks)?;
    let target = height(chain)?;
    at_height(
        nodes,
        target,
        "the new block",
        WAIT + Duration::from_millis(50) * blocks,
    )
}

/// Mines `blocks` one at a time, each taken in by `nodes` before the next is mined: blocks as a
/// live network brings them. A node catching up on many blocks at once tells LDK only of those
/// that concern its channels and of the tip, so what LDK counts in blocks it was told of (the
/// 144 blocks of feerates after which it closes a channel whose peer keeps too low a feerate)
/// moves on only with blocks mined this way.
pub fn mine_one_at_a_time(chain: &Bitcoind, blocks: u32, nodes: &[&Xlnd]) -> Result<()> {
    for _ in 0..blocks {
        mine(chain, 1, nodes)?;
    }
    Ok(())
}

/// Waits until every one of `nodes` reports `target` as its block height (`getinfo`).
pub fn at_height(nodes: &[&Xlnd], target: u64, what: &str, wait: Duration) -> Result<()> {
    for node in nodes {
        node.wait_cli(&["getinfo"], what, wait, |info| {
            (info["block_height"].as_u64() == Some(target)).then_some(())
        })?;
    }
    Ok(())
}

/// A fresh receive address of `node`'s wallet.
pub fn new_address(node: &Xlnd) -> Result<String> {
    Ok(node.cli(&["newaddr"])?["address"]
        .as_str()
        .context("newaddr without address")?
        .to_owned())
}

/// Mines a coinbase to `node`'s wallet and matures it (the chain's coinbase maturity); returns
/// the confirmed balance.
pub fn fund(chain: &Bitcoind, params: &ChainParams, node: &Xlnd, others: &[&Xlnd]) -> Result<u64> {
    chain.mine_to_address(1, &new_address(node)?)?;
    let mut all = others.to_vec();
    all.push(node);
    mine(chain, params.coinbase_maturity, &all)?;
    node.wait_cli(&["listfunds"], "mature funds", WAIT, |funds| {
        funds["onchain_confirmed_sat"]
            .as_u64()
            .filter(|sat| *sat > 0)
    })
}

/// `node`'s public key.
pub fn id(node: &Xlnd) -> Result<String> {
    Ok(node.cli(&["getinfo"])?["id"]
        .as_str()
        .context("no id")?
        .to_owned())
}

/// alice opens `amount_sat` to bob and the chain confirms it as deep as the chain's channel
/// policy asks; returns the channel id once both can use it.
pub fn open(
    chain: &Bitcoind,
    params: &ChainParams,
    alice: &Xlnd,
    bob: &Xlnd,
    amount_sat: u64,
    announce: bool,
) -> Result<String> {
    alice.cli(&["connect", &bob.uri()?])?;
    let (channel_id, _) = fund_channel(alice, &id(bob)?, amount_sat, announce)?;
    let depth = ChannelPolicy::for_chain(params).minimum_depth;
    mine(chain, depth, &[alice, bob])?;
    for node in [alice, bob] {
        usable(node, &channel_id, WAIT)?;
    }
    Ok(channel_id)
}

/// `opener` opens `amount_sat` to the connected peer `peer_id` with `fundchannel`; returns the
/// channel id and the funding transaction id (broadcast, not yet confirmed).
pub fn fund_channel(
    opener: &Xlnd,
    peer_id: &str,
    amount_sat: u64,
    announce: bool,
) -> Result<(String, String)> {
    let opened = opener.cli(&[
        "fundchannel",
        peer_id,
        &amount_sat.to_string(),
        &format!("announce={announce}"),
    ])?;
    let field = |name: &str| {
        opened[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("fundchannel answered without {name}: {opened}"))
    };
    Ok((field("channel_id")?, field("funding_txid")?))
}

/// Waits up to `wait` until `node` lists `channel_id` as usable.
pub fn usable(node: &Xlnd, channel_id: &str, wait: Duration) -> Result<()> {
    node.wait_cli(&["listchannels"], "a usable channel", wait, |list| {
        channel(list, channel_id)
            .filter(|c| c["is_usable"] == true)
            .map(drop)
    })
    .with_context(|| format!("{}'s channel {channel_id} is not usable", node.name))
}

/// The channel `channel_id` in a `listchannels` answer.
pub fn channel<'a>(list: &'a Value, channel_id: &str) -> Option<&'a Value> {
    list["channels"]
        .as_array()?
        .iter()
        .find(|c| c["channel_id"] == channel_id)
}

/// Waits until `node`'s gossip graph has the public channel `short_channel_id` with both ends'
/// `channel_update`s and the direction out of `from` (one end's node id) enabled: what `node`
/// needs to route through `from` over that channel. LDK's router passes over a channel until it
/// knows both directions (`ChannelInfo::as_directed_to`), as a sign that both ends are online.
pub fn gossiped(node: &Xlnd, short_channel_id: &str, from: &str, what: &str) -> Result<()> {
    node.wait_cli(&["listgraphchannels"], what, WAIT, |graph| {
        graph["channels"]
            .as_array()?
            .iter()
            .find(|c| {
                let enabled = if c["node1"] == from {
                    &c["node1_to_node2_enabled"]
                } else if c["node2"] == from {
                    &c["node2_to_node1_enabled"]
                } else {
                    return false;
                };
                let both_directions =
                    !c["node1_to_node2"].is_null() && !c["node2_to_node1"].is_null();
                c["short_channel_id"] == short_channel_id && *enabled == true && both_directions
            })
            .map(drop)
    })
}

/// Pays `bolt11` and checks the payment succeeded.
pub fn pay(payer: &Xlnd, bolt11: &str) -> Result<Value> {
    let paid = payer.cli(&["pay", bolt11])?;
    ensure!(paid["status"] == "succeeded", "payment failed: {paid}");
    Ok(paid)
}

/// A new invoice of `node` for `amount_msat`; returns its BOLT11 string.
pub fn invoice(node: &Xlnd, amount_msat: u64, description: &str) -> Result<String> {
    let created = node.cli(&["invoice", &amount_msat.to_string(), description])?;
    Ok(created["bolt11"].as_str().context("no bolt11")?.to_owned())
}

/// A hold invoice of `node` for `amount_msat` whose preimage is `[n; 32]`: returns the preimage,
/// the payment hash (both hex) and the BOLT11 string.
pub fn hold_invoice(node: &Xlnd, n: u8, amount_msat: u64) -> Result<(String, String, String)> {
    use bitcoin::hashes::{sha256, Hash};
    use bitcoin::hex::DisplayHex;
    let preimage = [n; 32];
    let hash_hex = sha256::Hash::hash(&preimage)
        .to_byte_array()
        .to_lower_hex_string();
    let created = node.cli(&[
        "invoice",
        &amount_msat.to_string(),
        &format!("hold {n}"),
        &format!("payment_hash={hash_hex}"),
    ])?;
    let bolt11 = created["bolt11"].as_str().context("bolt11")?.to_owned();
    Ok((preimage.to_lower_hex_string(), hash_hex, bolt11))
}

/// Runs `xln-cli <args>` for `node` on a thread of its own, for a call that waits (a payment
/// to a hold invoice, one resolved on chain, one held up by a fault); [`answer`] joins it.
pub fn cli_in_background(node: &Xlnd, args: &[&str]) -> std::thread::JoinHandle<Result<Value>> {
    let datadir = node.datadir().to_owned();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    std::thread::spawn(move || -> Result<Value> {
        let (_, cli) = crate::xlnd::xln_binaries()?;
        let output = std::process::Command::new(cli)
            .arg(format!("--datadir={}", datadir.display()))
            .args(&args)
            .output()
            .with_context(|| format!("running xln-cli {}", args.join(" ")))?;
        serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "xln-cli {} answered no JSON: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    })
}

/// The answer of a call of [`cli_in_background`], once it has ended.
pub fn answer(call: std::thread::JoinHandle<Result<Value>>) -> Result<Value> {
    call.join()
        .map_err(|_| anyhow::anyhow!("the xln-cli thread panicked"))?
}

/// Waits until `node`'s channel has no HTLC in flight.
pub fn settled(node: &Xlnd, channel_id: &str) -> Result<()> {
    node.wait_cli(&["listchannels"], "no HTLCs in flight", WAIT, |list| {
        (channel(list, channel_id)?["pending_htlcs"] == 0).then_some(())
    })
}

/// `node`'s confirmed on-chain balance.
pub fn confirmed_sat(node: &Xlnd) -> Result<u64> {
    node.cli(&["listfunds"])?["onchain_confirmed_sat"]
        .as_u64()
        .context("listfunds without onchain_confirmed_sat")
}

/// Whether a `listfunds` answer shows nothing left to settle of `channel_id`: the channel is gone,
/// no output waits for the sweeper and nothing is unconfirmed.
pub fn swept(funds: &Value, channel_id: &str) -> bool {
    funds["pending_sweep_sat"] == 0 && closed_and_confirmed(funds, channel_id)
}

/// Whether `channel_id` is gone from a `listfunds` answer and nothing is unconfirmed, whatever
/// still waits for the sweeper.
pub fn closed_and_confirmed(funds: &Value, channel_id: &str) -> bool {
    funds["onchain_unconfirmed_sat"] == 0
        && funds["channels"]
            .as_array()
            .is_some_and(|c| c.iter().all(|c| c["channel_id"] != channel_id))
}

/// Mines `batch` blocks at a time, letting `nodes` catch up after each batch, until `done`
/// says so; fails after `max_blocks`. Returns how many blocks it mined.
pub fn mine_until(
    chain: &Bitcoind,
    nodes: &[&Xlnd],
    batch: u32,
    max_blocks: u32,
    what: &str,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<u32> {
    let mut mined = 0;
    loop {
        mine(chain, batch, nodes)?;
        mined += batch;
        // The sweeper broadcasts on the block it sees; give the broadcast a moment to land.
        std::thread::sleep(Duration::from_secs(1));
        if done()? {
            return Ok(mined);
        }
        ensure!(mined < max_blocks, "{what}: not done after {mined} blocks");
        if mined % (batch * 10) == 0 {
            tracing::info!(mined, "still mining until {what}");
        }
    }
}

/// Fails on the first transaction in `node`'s `listbroadcasts` that `chain` refused or that
/// could not be sent, with the chain node's reason; returns how many broadcasts it checked.
///
/// One kind of refusal is not a refusal of the transaction: losing to a conflicting transaction
/// that `chain` has confirmed. LDK repeats its claims every block until they are deep, also after
/// the peer's transaction (or our own earlier one) spent the same output, and after a force close
/// both ends publish their own commitment, of which only one can win (the loser is refused as a
/// replacement that pays no more, or as spending a spent output). Such a refusal passes only if
/// one of the refused transaction's inputs is spent in a block of `chain`.
pub fn relayed(chain: &Bitcoind, node: &Xlnd) -> Result<usize> {
    check_broadcasts(chain, node, &[])
}

/// [`relayed`] for a node that lived through reorgs as deep as LDK's `ANTI_REORG_DELAY` (6
/// blocks): a spend refused as `non-BIP68-final` also passes if the output it spends is spent in
/// a block now.
///
/// LDK hands an output to its sweeper once the transaction that made it is 6 blocks deep, and
/// the sweeper takes it as settled. A 6-block reorg under that transaction puts it back into the
/// chain node's mempool, and the sweep (the `to_remote` output of an anchor channel is locked for
/// one block by `OP_CHECKSEQUENCEVERIFY`) is then refused until its parent confirms again; the
/// sweeper sends it again with the next block. CI saw one such refusal, the sweep confirmed
/// after it. What counts, the output swept on chain, is what this checks.
pub fn relayed_through_reorgs(chain: &Bitcoind, node: &Xlnd) -> Result<usize> {
    check_broadcasts(chain, node, &["non-BIP68-final"])
}

/// [`relayed`], where a refusal with one of `transient` in its reason also passes if one of the
/// refused transaction's inputs is spent in a block.
fn check_broadcasts(chain: &Bitcoind, node: &Xlnd, transient: &[&str]) -> Result<usize> {
    let list = node.cli(&["listbroadcasts"])?;
    let broadcasts = list["broadcasts"]
        .as_array()
        .context("listbroadcasts without broadcasts")?;
    for broadcast in broadcasts {
        if broadcast["outcome"] == "accepted" {
            continue;
        }
        let reason = broadcast["reason"].as_str().unwrap_or_default();
        let tx_hex = broadcast["tx_hex"].as_str().unwrap_or_default();
        let refused_for_a_passing_reason = broadcast["outcome"] == "rejected"
            && [
                "missingorspent",
                "txn-mempool-conflict",
                "rejecting replacement",
            ]
            .iter()
            .chain(transient)
            .any(|conflict| reason.contains(conflict));
        ensure!(
            refused_for_a_passing_reason && spends_a_confirmed_spent_output(chain, tx_hex)?,
            "{}'s transaction {} was {}: {reason}\n{tx_hex}",
            node.name,
            broadcast["txid"],
            broadcast["outcome"],
        );
    }
    Ok(broadcasts.len())
}

/// Whether one of the inputs of the transaction `tx_hex` is spent by a transaction in a block.
fn spends_a_confirmed_spent_output(chain: &Bitcoind, tx_hex: &str) -> Result<bool> {
    let tx: bitcoin::Transaction = bitcoin::consensus::encode::deserialize_hex(tx_hex)
        .with_context(|| {
            format!("listbroadcasts gave a transaction that does not decode: {tx_hex}")
        })?;
    for input in &tx.input {
        let outpoint = input.previous_output;
        // Without the mempool: empty when no block's UTXO set has the output any more.
        let unspent = chain.cli(&[
            "gettxout",
            &outpoint.txid.to_string(),
            &outpoint.vout.to_string(),
            "false",
        ])?;
        if unspent.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Force-closes `channel_id` from `node`, offline from its peer, and returns the txid of the
/// commitment it published.
///
/// The peer is disconnected first. Told of the close, it would publish its own commitment at the
/// same feerate at once, and whichever reaches the chain node's mempool first wins: the other is
/// refused as a replacement that pays no more. CI saw `close` answer `txid: null`; reproduced
/// here, bitcoind had taken carol's commitment first, the two answers 55 µs apart. The peer
/// reconnects within seconds if it still has the channel; a test that needs the connection
/// without a channel reconnects itself. A null txid fails here with `node`'s broadcasts and
/// the end of its log.
pub fn force_close(node: &Xlnd, channel_id: &str) -> Result<String> {
    let listed = node.cli(&["listchannels"])?;
    let (peer, funding_txid) = channel(&listed, channel_id)
        .and_then(|c| Some((c["peer_id"].as_str()?, c["funding_txid"].as_str()?)))
        .with_context(|| format!("{} lists no funded channel {channel_id}", node.name))?;
    let connected = node.cli(&["listpeers"])?["peers"]
        .as_array()
        .is_some_and(|peers| {
            peers
                .iter()
                .any(|p| p["id"] == peer && p["connected"] == true)
        });
    if connected {
        node.cli(&["disconnect", peer])?;
    }
    let closed = node.cli(&["close", channel_id, "force=true"])?;
    ensure!(
        closed["type"] == "unilateral",
        "a force close answered {closed}"
    );
    if let Some(txid) = closed["txid"].as_str() {
        return Ok(txid.to_owned());
    }
    let broadcasts: Vec<String> = node
        .cli(&["listbroadcasts"])
        .ok()
        .and_then(|list| list["broadcasts"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .rev()
        .take(8)
        .map(|b| {
            let spends_funding = b["tx_hex"]
                .as_str()
                .is_some_and(|hex| spends(hex, funding_txid));
            format!(
                "{} {} {}{}",
                b["txid"],
                b["outcome"],
                b["reason"],
                if spends_funding {
                    " (spends the funding output)"
                } else {
                    ""
                }
            )
        })
        .collect();
    bail!(
        "{}'s force close of {channel_id} published no commitment: {closed}\n{}'s last \
         broadcasts, newest first:\n{}\n{}'s log ends:\n{}",
        node.name,
        node.name,
        broadcasts.join("\n"),
        node.name,
        node.log_tail()
    )
}

/// Whether the transaction `tx_hex` spends an output of `txid`.
fn spends(tx_hex: &str, txid: &str) -> bool {
    bitcoin::consensus::encode::deserialize_hex::<bitcoin::Transaction>(tx_hex).is_ok_and(|tx| {
        tx.input
            .iter()
            .any(|input| input.previous_output.txid.to_string() == txid)
    })
}
