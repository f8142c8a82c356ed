//! Qtum's channel policy against a real mempool.
//!
//! A regtest bitcoind runs Qtum Core's relay policy (`-minrelaytxfee=0.004 -dustrelayfee=0.004
//! -blockmintxfee=0.004 -incrementalrelayfee=0.0001`) and two in-process nodes use Qtum's policy
//! numbers on Bitcoin regtest's chain ([`qtum_policy_on_bitcoin_regtest`]): no anchors, a
//! 200,000-sat HTLC minimum, 300,000-sat reserves, a 2016-block `to_self_delay`. They open a
//! channel, pay both ways, refuse a payment below the HTLC minimum, and force-close with HTLCs in
//! flight both ways. Every transaction either node publishes must be accepted by that mempool and
//! confirm, none may have an output below Qtum's dust threshold, and the funds must come back to
//! both wallets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::{OutPoint, Transaction, Txid};
use chain_bitcoin::BitcoindChainSource;
use ln_core::node::{
    ChannelInfo, ChannelPolicy, Error, InvoiceStatus, PaymentRecord, PaymentStatus,
};
use ln_core::ChainParams;
use tokio::task::JoinHandle;
use xln_tests::broadcast_audit::{audit, Audit, BroadcastLog, ChainTransactions};
use xln_tests::ln_node::{mine_and_sync, wait_for, TestNode};
use xln_tests::qtum_policy::{
    check_chain_node_enforces_relay_policy, qtum_policy_on_bitcoin_regtest,
    qtum_relay_policy_bitcoind_options,
};
use xln_tests::{init_test_logging, regtest_chain_source_with, Bitcoind};

const WAIT: Duration = Duration::from_secs(120);
/// Blocks mined at a time while the channel resolves on chain. Fewer than LDK's 15-block
/// fee-bump interval for claims that are not urgent: a claim broadcast while a node catches up
/// with one batch confirms in the next batch before LDK would replace it with a bumped one, so
/// every transaction a node publishes can be required to confirm.
const BATCH_BLOCKS: u32 = 12;
/// Three turns of LDK's 30-second sweeper timer.
const SWEEPER_TURNS: Duration = Duration::from_secs(90);
/// The channel: large against Qtum's 1,000,000-sat minimum and 300,000-sat reserves.
const CAPACITY_SAT: u64 = 20_000_000;

/// What the test does with a held HTLC after the force close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The payee settles it after the close: claimed on chain with the preimage.
    SettledAfterClose,
    /// Nobody settles it: it goes back to the payer on chain after its expiry.
    TimesOut,
}

/// An HTLC held in flight by a hold invoice, and the payer's pending payment.
struct HeldHtlc {
    description: &'static str,
    payer: String,
    payee: String,
    amount_sat: u64,
    preimage: [u8; 32],
    payment_hash: String,
    fate: Fate,
    payment: JoinHandle<Result<PaymentRecord, Error>>,
}

impl HeldHtlc {
    fn preimage_hex(&self) -> String {
        self.preimage.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The node whose wallet the HTLC's value ends in.
    fn owner_in_the_end(&self) -> &str {
        match self.fate {
            Fate::SettledAfterClose => &self.payee,
            Fate::TimesOut => &self.payer,
        }
    }
}

/// The running test: bitcoind under Qtum's relay policy and two nodes with Qtum's numbers.
struct Setup {
    bitcoind: Bitcoind,
    /// A chain source of the test's own, to read the chain at the end.
    chain: BitcoindChainSource,
    params: ChainParams,
    policy: ChannelPolicy,
    alice: TestNode,
    bob: TestNode,
    _dir: tempfile::TempDir,
}

/// Starts bitcoind with Qtum's relay flags, checks it enforces them, and starts alice and bob.
async fn start() -> Result<Setup> {
    init_test_logging();
    let params = qtum_policy_on_bitcoin_regtest();
    let policy = ChannelPolicy::for_chain(&params);
    ensure!(!policy.anchors && policy.htlc_minimum_msat == 200_000_000);
    let bitcoind = Bitcoind::start_with(qtum_relay_policy_bitcoind_options())?;
    bitcoind.mine(1)?;
    let chain = regtest_chain_source_with(&bitcoind, params.clone()).await?;
    check_chain_node_enforces_relay_policy(&bitcoind, &chain).await?;
    // The numbers, as bitcoind reports them.
    let network = bitcoind.cli_json(&["getnetworkinfo"])?;
    ensure!(network["relayfee"].as_f64() == Some(0.004), "{network}");
    ensure!(
        network["incrementalfee"].as_f64() == Some(0.0001),
        "{network}"
    );

    let dir = tempfile::tempdir()?;
    let alice_dir = dir.path().join("alice");
    let alice = TestNode::start_with_params(&bitcoind, &alice_dir, "alice", params.clone()).await?;
    let bob_dir = dir.path().join("bob");
    let bob = TestNode::start_with_params(&bitcoind, &bob_dir, "bob", params.clone()).await?;
    ensure!(alice.node.channel_policy() == &policy && bob.node.channel_policy() == &policy);
    Ok(Setup {
        bitcoind,
        chain,
        params,
        policy,
        alice,
        bob,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_qtums_relay_policy_every_channel_transaction_relays_and_confirms_and_funds_return(
) -> Result<()> {
    let started = Instant::now();
    let setup = start().await?;
    let Setup {
        bitcoind,
        alice,
        bob,
        policy,
        ..
    } = &setup;
    let mut log = BroadcastLog::new();

    let mined_sat = alice.fund_by_mining(bitcoind).await?;
    bob.node.wait_synced(WAIT).await?;
    ensure!(CAPACITY_SAT >= policy.min_funding_sat && CAPACITY_SAT <= policy.max_funding_sat);
    let channel = open_channel(bitcoind, alice, bob, policy, &mut log).await?;
    let bob_balance_sat = pay_both_ways(alice, bob, policy).await?;
    refuse_payments_below_the_htlc_minimum(alice, bob, policy).await?;

    // HTLCs in flight both ways: two settled on chain after the close, two timed out.
    let held = [
        hold_htlc(alice, bob, 500_000, 1, Fate::TimesOut).await?,
        hold_htlc(bob, alice, 400_000, 2, Fate::TimesOut).await?,
        hold_htlc(bob, alice, 300_000, 3, Fate::SettledAfterClose).await?,
        hold_htlc(alice, bob, 250_000, 4, Fate::SettledAfterClose).await?,
    ];
    let sum = |f: &dyn Fn(&HeldHtlc) -> bool| -> u64 {
        held.iter().filter(|h| f(h)).map(|h| h.amount_sat).sum()
    };
    let bob_to_remote_sat = bob_balance_sat - sum(&|h| h.payer == "bob");
    let held_to_bob_sat = sum(&|h| h.owner_in_the_end() == "bob");
    wait_for("all four HTLCs in both channel views", WAIT, || async {
        let a = alice.node.list_channels().into_iter().next()?;
        let b = bob.node.list_channels().into_iter().next()?;
        (a.pending_htlcs == held.len()
            && b.pending_htlcs == held.len()
            && b.local_balance_msat == bob_to_remote_sat * 1000)
            .then_some(())
    })
    .await?;

    let alice_before_close = alice.node.list_funds();
    let bob_before_close = bob.node.list_funds();
    ensure!(alice_before_close.onchain_unconfirmed_sat == 0);
    let height_at_close: u32 = bitcoind.cli(&["getblockcount"])?.parse()?;
    let commitment = force_close_offline(&setup, &channel).await?;
    for htlc in held.iter().filter(|h| h.fate == Fate::SettledAfterClose) {
        let payee = if htlc.payee == "alice" { alice } else { bob };
        payee.node.settle_invoice(&htlc.preimage_hex())?;
    }

    let mined_after_close = mine_until_resolved(bitcoind, alice, bob, policy, &mut log).await?;
    for htlc in held {
        check_payment_outcome(alice, bob, htlc).await?;
    }
    let verdict = audit_everything_published(&setup, &mut log, &channel, &commitment).await?;
    let outcome = Outcome {
        verdict: &verdict,
        funding_txid: commitment.funding_txid,
        commitment_txid: commitment.commitment_txid,
        bob_to_remote_sat,
        held_to_bob_sat,
    };
    check_both_wallets(&outcome, alice, bob, &alice_before_close, &bob_before_close)?;
    let tip: u32 = bitcoind.cli(&["getblockcount"])?.parse()?;
    tracing::info!(
        mined_sat,
        commitment_owner = %commitment.commitment_owner,
        height_at_close,
        mined_after_close,
        tip,
        broadcasts = log.len(),
        confirmed_transactions = verdict.confirmed.len(),
        elapsed_secs = started.elapsed().as_secs(),
        "qtum policy test done"
    );
    alice.node.stop().await;
    bob.node.stop().await;
    Ok(())
}

/// Alice force-closes while disconnected from bob, so that bob cannot race her commitment with
/// his (he learns of the close when he reconnects, or from the chain); returns once a commitment
/// is in the mempool.
async fn force_close_offline(setup: &Setup, channel: &ChannelInfo) -> Result<ChannelTransactions> {
    let Setup {
        bitcoind,
        alice,
        bob,
        ..
    } = setup;
    let funding_outpoint = funding_outpoint(channel)?;
    alice.node.disconnect(bob.node.node_id())?;
    alice.node.close_channel(&channel.channel_id, true).await?;
    let (commitment_txid, commitment_owner) =
        wait_for("a commitment in the mempool", WAIT, || async {
            let mempool = bitcoind.cli_json(&["getrawmempool"]).ok()?.to_string();
            [alice, bob].into_iter().find_map(|node| {
                let spend = node.node.recent_broadcasts().into_iter().find(|r| {
                    let mut spent = r.transaction.input.iter().map(|i| i.previous_output);
                    spent.any(|o| o == funding_outpoint)
                })?;
                let in_mempool = mempool.contains(&spend.txid.to_string());
                in_mempool.then(|| (spend.txid, node.name.clone()))
            })
        })
        .await?;
    Ok(ChannelTransactions {
        funding_txid: funding_outpoint.txid,
        commitment_txid,
        commitment_owner,
    })
}

fn funding_outpoint(channel: &ChannelInfo) -> Result<OutPoint> {
    Ok(OutPoint {
        txid: channel.funding_txid.context("no funding txid")?,
        vout: channel.funding_output.context("no funding output")?,
    })
}

/// Checks every transaction either node published against the whole chain (see
/// [`xln_tests::broadcast_audit`]) and that the commitment first in the mempool confirmed; logs
/// them all with their fees.
async fn audit_everything_published(
    setup: &Setup,
    log: &mut BroadcastLog,
    channel: &ChannelInfo,
    commitment: &ChannelTransactions,
) -> Result<Audit> {
    log.collect(&setup.alice)?;
    log.collect(&setup.bob)?;
    let mempool = setup.bitcoind.cli_json(&["getrawmempool"])?;
    ensure!(
        mempool.as_array().is_some_and(Vec::is_empty),
        "mempool not empty: {mempool}"
    );
    let chain_transactions = ChainTransactions::read(&setup.chain).await?;
    let verdict = audit(log, &chain_transactions, &setup.params);
    print_transactions(&verdict, &chain_transactions, commitment);
    ensure!(
        verdict.problems.is_empty(),
        "transactions that did not relay and confirm as they should:\n{}",
        verdict.problems.join("\n")
    );
    // The other commitment, at the same feerate, cannot replace the first one in the mempool.
    let confirmed_commitment = chain_transactions
        .spender_of(&funding_outpoint(channel)?)
        .context("the funding output is unspent")?;
    ensure!(
        confirmed_commitment == commitment.commitment_txid,
        "{confirmed_commitment} confirmed instead of {}'s commitment {}",
        commitment.commitment_owner,
        commitment.commitment_txid
    );
    Ok(verdict)
}

/// Opens the channel alice → bob and mines exactly `minimum_depth` blocks until both can use it.
async fn open_channel(
    bitcoind: &Bitcoind,
    alice: &TestNode,
    bob: &TestNode,
    policy: &ChannelPolicy,
    log: &mut BroadcastLog,
) -> Result<ChannelInfo> {
    alice.node.connect_uri(&bob.uri()?).await?;
    let opened = alice
        .node
        .open_channel(bob.node.node_id(), CAPACITY_SAT, 0, false)
        .await?;
    log.collect(alice)?;
    let mempool = bitcoind.cli_json(&["getrawmempool"])?;
    ensure!(mempool
        .to_string()
        .contains(&opened.funding_txid.to_string()));

    let depth = policy.minimum_depth;
    mine_and_sync(bitcoind, depth - 1, &[alice, bob]).await?;
    for node in [alice, bob] {
        let channel = wait_for("the funding seen one block short", WAIT, || async {
            let channel = node.node.list_channels().into_iter().next()?;
            (channel.confirmations == Some(depth - 1)).then_some(channel)
        })
        .await?;
        ensure!(
            !channel.is_usable,
            "{}: usable before minimum_depth",
            node.name
        );
        ensure!(channel.confirmations_required == Some(depth), "{channel:?}");
    }
    mine_and_sync(bitcoind, 1, &[alice, bob]).await?;
    let channel = alice.usable_channel_with(bob, WAIT).await?;
    bob.usable_channel_with(alice, WAIT).await?;
    ensure!(channel.channel_id == opened.channel_id);
    for (node, peer) in [(alice, bob), (bob, alice)] {
        let info = node.usable_channel_with(peer, WAIT).await?;
        ensure!(info.capacity_sat == CAPACITY_SAT, "{info:?}");
        ensure!(
            !info.has_anchors,
            "{}: an anchor channel: {info:?}",
            node.name
        );
        ensure!(info.reserve_sat == Some(policy.min_reserve_sat), "{info:?}");
        ensure!(
            info.counterparty_reserve_sat == policy.min_reserve_sat,
            "{info:?}"
        );
        let minimum = Some(policy.htlc_minimum_msat);
        ensure!(info.inbound_htlc_minimum_msat == minimum, "{info:?}");
        ensure!(info.outbound_htlc_minimum_msat == minimum, "{info:?}");
    }
    Ok(channel)
}

/// Waits until no HTLC is in flight and bob's balance is `bob_sat`.
async fn settled_at(alice: &TestNode, bob: &TestNode, bob_sat: u64) -> Result<()> {
    wait_for(
        &format!("bob's balance settled at {bob_sat} sat"),
        WAIT,
        || async {
            let a = alice.node.list_channels().into_iter().next()?;
            let b = bob.node.list_channels().into_iter().next()?;
            (a.pending_htlcs == 0 && b.pending_htlcs == 0 && b.local_balance_msat == bob_sat * 1000)
                .then_some(())
        },
    )
    .await
}

/// Alice pays bob 1,000,000 sat by invoice and as much by keysend; bob pays back 300,000 sat by
/// invoice and exactly the HTLC minimum by keysend. Returns bob's balance, sat.
async fn pay_both_ways(alice: &TestNode, bob: &TestNode, policy: &ChannelPolicy) -> Result<u64> {
    let invoice = bob
        .node
        .create_invoice(Some(1_000_000_000), "first", None, None)?;
    ensure!(invoice.bolt11.starts_with("lnbcrt"), "{}", invoice.bolt11);
    let paid = alice
        .node
        .pay_invoice(&invoice.bolt11, None, None, None)
        .await?;
    ensure!(paid.status == PaymentStatus::Succeeded, "{paid:?}");
    ensure!(paid.fee_msat == Some(0), "{paid:?}");
    let keysend = alice
        .node
        .keysend(bob.node.node_id(), 1_000_000_000, None, None)
        .await?;
    ensure!(keysend.status == PaymentStatus::Succeeded, "{keysend:?}");
    settled_at(alice, bob, 2_000_000).await?;

    let invoice = alice
        .node
        .create_invoice(Some(300_000_000), "back", None, None)?;
    let paid = bob
        .node
        .pay_invoice(&invoice.bolt11, None, None, None)
        .await?;
    ensure!(paid.status == PaymentStatus::Succeeded, "{paid:?}");
    let keysend = bob
        .node
        .keysend(alice.node.node_id(), policy.htlc_minimum_msat, None, None)
        .await?;
    ensure!(keysend.status == PaymentStatus::Succeeded, "{keysend:?}");
    let bob_sat = 2_000_000 - 300_000 - policy.min_payment().to_sat();
    settled_at(alice, bob, bob_sat).await?;
    let received = alice.paid_invoice(&invoice.payment_hash, WAIT).await?;
    ensure!(
        received.amount_received_msat == Some(300_000_000),
        "{received:?}"
    );
    Ok(bob_sat)
}

/// Every way of paying less than the HTLC minimum is refused with the node's error for it, and
/// nothing changes: no payment recorded, no HTLC sent, balances as they were.
async fn refuse_payments_below_the_htlc_minimum(
    alice: &TestNode,
    bob: &TestNode,
    policy: &ChannelPolicy,
) -> Result<()> {
    let minimum_msat = policy.htlc_minimum_msat;
    let below_msat = minimum_msat / 2;
    let any_amount = bob.node.create_invoice(None, "any amount", None, None)?;
    let payments_before = (
        alice.node.list_payments(None)?,
        bob.node.list_payments(None)?,
    );
    let invoices_before = (
        alice.node.list_invoices(None)?,
        bob.node.list_invoices(None)?,
    );
    let channels_before = (alice.node.list_channels(), bob.node.list_channels());

    let refusals = [
        (
            "bob's invoice",
            bob.node
                .create_invoice(Some(below_msat), "small", None, None)
                .map(drop),
            below_msat,
        ),
        (
            "alice paying an any-amount invoice",
            alice
                .node
                .pay_invoice(&any_amount.bolt11, Some(below_msat), None, None)
                .await
                .map(drop),
            below_msat,
        ),
        (
            "alice's keysend",
            alice
                .node
                .keysend(bob.node.node_id(), below_msat, None, None)
                .await
                .map(drop),
            below_msat,
        ),
        (
            "bob's keysend one msat short",
            bob.node
                .keysend(alice.node.node_id(), minimum_msat - 1, None, None)
                .await
                .map(drop),
            minimum_msat - 1,
        ),
    ];
    for (what, result, amount_msat) in refusals {
        let expected = Error::AmountBelowHtlcMinimum {
            amount_msat,
            minimum_msat,
        };
        ensure!(
            result.as_ref().err() == Some(&expected),
            "{what}: {result:?}"
        );
        ensure!(expected.code() == 503);
        let message = expected.to_string();
        ensure!(message.contains(&minimum_msat.to_string()), "{message}");
        tracing::info!(what, %message, "refused below the HTLC minimum");
    }

    ensure!(
        (
            alice.node.list_payments(None)?,
            bob.node.list_payments(None)?
        ) == payments_before
    );
    ensure!(
        (
            alice.node.list_invoices(None)?,
            bob.node.list_invoices(None)?
        ) == invoices_before
    );
    let channels_after = (alice.node.list_channels(), bob.node.list_channels());
    ensure!(
        channels_after == channels_before,
        "channels changed: {channels_before:?} → {channels_after:?}"
    );
    ensure!(channels_after.0.iter().all(|c| c.pending_htlcs == 0));
    Ok(())
}

/// Has `payee` issue a hold invoice of `amount_sat` that `payer` pays; returns once the payee
/// holds the HTLC.
async fn hold_htlc(
    payer: &TestNode,
    payee: &TestNode,
    amount_sat: u64,
    preimage_byte: u8,
    fate: Fate,
) -> Result<HeldHtlc> {
    let preimage = [preimage_byte; 32];
    let hash = sha256::Hash::hash(&preimage).to_byte_array();
    let description = match fate {
        Fate::SettledAfterClose => "held, settled after the close",
        Fate::TimesOut => "held until it times out",
    };
    let invoice =
        payee
            .node
            .create_invoice(Some(amount_sat * 1000), description, None, Some(hash))?;
    let paying = payer.node.clone();
    let bolt11 = invoice.bolt11.clone();
    // Until well after the HTLC's expiry: the outcome comes from the chain.
    let payment = tokio::spawn(async move {
        paying
            .pay_invoice(&bolt11, None, None, Some(Duration::from_secs(3 * 3600)))
            .await
    });
    wait_for(
        &format!("{} holding {amount_sat} sat", payee.name),
        WAIT,
        || async {
            let invoices = payee.node.list_invoices(Some(&invoice.payment_hash)).ok()?;
            invoices
                .into_iter()
                .find(|i| i.status == InvoiceStatus::Held)
        },
    )
    .await?;
    Ok(HeldHtlc {
        description,
        payer: payer.name.clone(),
        payee: payee.name.clone(),
        amount_sat,
        preimage,
        payment_hash: invoice.payment_hash,
        fate,
        payment,
    })
}

/// Mines in batches of [`BATCH_BLOCKS`] until neither node has a channel, an output being
/// claimed or swept, or an unconfirmed wallet transaction, and the mempool is empty; collects
/// both broadcast logs after every batch. Returns the number of blocks mined.
async fn mine_until_resolved(
    bitcoind: &Bitcoind,
    alice: &TestNode,
    bob: &TestNode,
    policy: &ChannelPolicy,
    log: &mut BroadcastLog,
) -> Result<u32> {
    // to_self_delay on the commitment, then again on the second-stage HTLC output after the
    // hold invoices' expiry (at most 500 blocks, plus LDK's random offset), with room to spare.
    let block_limit = 2 * u32::from(policy.to_self_delay) + 1000;
    // LDK's sweeper runs on a 30-second timer, not per block: past the block limit, give it a
    // few turns before calling the close stuck, however fast blocks come.
    let mut past_block_limit_since = None;
    let mut mined = 0;
    loop {
        mine_and_sync(bitcoind, BATCH_BLOCKS, &[alice, bob]).await?;
        mined += BATCH_BLOCKS;
        log.collect(alice)?;
        log.collect(bob)?;
        let a = alice.node.list_funds();
        let b = bob.node.list_funds();
        let mempool = bitcoind.cli_json(&["getrawmempool"])?;
        let resolved = a.channels.is_empty()
            && b.channels.is_empty()
            && a.pending_sweep_sat == 0
            && b.pending_sweep_sat == 0
            && a.onchain_unconfirmed_sat == 0
            && b.onchain_unconfirmed_sat == 0
            && mempool.as_array().is_some_and(Vec::is_empty);
        if resolved {
            return Ok(mined);
        }
        if mined % 240 == 0 {
            tracing::info!(
                mined,
                alice_pending_sweep_sat = a.pending_sweep_sat,
                bob_pending_sweep_sat = b.pending_sweep_sat,
                alice_confirmed_sat = a.onchain_confirmed_sat,
                bob_confirmed_sat = b.onchain_confirmed_sat,
                "resolving the force close"
            );
        }
        if mined >= block_limit {
            let since = *past_block_limit_since.get_or_insert_with(Instant::now);
            ensure!(
                since.elapsed() < SWEEPER_TURNS,
                "not resolved after {mined} blocks: alice {a:?} bob {b:?} mempool {mempool}"
            );
        }
    }
}

/// The payer's payment of a held HTLC ends as its fate says, and a settled one is paid on the
/// payee's side.
async fn check_payment_outcome(alice: &TestNode, bob: &TestNode, htlc: HeldHtlc) -> Result<()> {
    let outcome = tokio::time::timeout(WAIT, htlc.payment)
        .await
        .map_err(|_| anyhow!("{}: the payment has no outcome", htlc.description))???;
    let expected = match htlc.fate {
        Fate::SettledAfterClose => PaymentStatus::Succeeded,
        Fate::TimesOut => PaymentStatus::Failed,
    };
    ensure!(
        outcome.status == expected,
        "{}: {outcome:?}",
        htlc.description
    );
    if htlc.fate == Fate::SettledAfterClose {
        let payee = if htlc.payee == "alice" { alice } else { bob };
        let invoice = payee.paid_invoice(&htlc.payment_hash, WAIT).await?;
        ensure!(invoice.amount_received_msat == Some(htlc.amount_sat * 1000));
    }
    tracing::info!(
        htlc = htlc.description,
        payer = %htlc.payer,
        amount_sat = htlc.amount_sat,
        status = ?outcome.status,
        "held HTLC resolved on chain"
    );
    Ok(())
}

/// What the close came to, for the wallet checks.
struct Outcome<'a> {
    verdict: &'a Audit,
    funding_txid: Txid,
    commitment_txid: Txid,
    /// Bob's balance on the commitment, sat.
    bob_to_remote_sat: u64,
    /// The held HTLCs that end up bob's: his own timed out, alice's settled by him.
    held_to_bob_sat: u64,
}

impl Outcome<'_> {
    /// Fees of the confirmed transactions `publisher` published after the commitment.
    fn fees_after_commitment_sat(&self, publisher: &str) -> u64 {
        self.verdict
            .confirmed
            .iter()
            .filter(|t| t.publisher == publisher)
            .filter(|t| t.txid != self.funding_txid && t.txid != self.commitment_txid)
            .map(|t| t.fee.to_sat())
            .sum()
    }

    fn fee_sat(&self, txid: Txid) -> Result<u64> {
        self.verdict
            .confirmed
            .iter()
            .find(|t| t.txid == txid)
            .map(|t| t.fee.to_sat())
            .with_context(|| format!("{txid} not confirmed"))
    }
}

/// Each wallet got exactly its side of the commitment back, less the fees of the transactions
/// it published: bob his balance and the HTLCs that ended his, alice the rest less the
/// commitment fee.
fn check_both_wallets(
    outcome: &Outcome,
    alice: &TestNode,
    bob: &TestNode,
    alice_before: &ln_core::node::Funds,
    bob_before: &ln_core::node::Funds,
) -> Result<()> {
    let alice_sat = alice.node.list_funds().onchain_confirmed_sat;
    let bob_sat = bob.node.list_funds().onchain_confirmed_sat;
    let bob_fees_sat = outcome.fees_after_commitment_sat("bob");
    let alice_fees_sat = outcome.fees_after_commitment_sat("alice");
    let commitment_fee_sat = outcome.fee_sat(outcome.commitment_txid)?;
    let bob_share_sat = outcome.bob_to_remote_sat + outcome.held_to_bob_sat;
    let alice_share_sat = CAPACITY_SAT - commitment_fee_sat - bob_share_sat;
    tracing::info!(
        alice_before_sat = alice_before.onchain_confirmed_sat,
        alice_after_sat = alice_sat,
        alice_share_sat,
        alice_fees_sat,
        bob_before_sat = bob_before.onchain_confirmed_sat,
        bob_after_sat = bob_sat,
        bob_share_sat,
        bob_fees_sat,
        commitment_fee_sat,
        "wallets after the force close"
    );
    ensure!(
        bob_sat == bob_before.onchain_confirmed_sat + bob_share_sat - bob_fees_sat,
        "bob has {bob_sat} sat, expected {} + {bob_share_sat} - {bob_fees_sat} fees",
        bob_before.onchain_confirmed_sat
    );
    ensure!(
        alice_sat == alice_before.onchain_confirmed_sat + alice_share_sat - alice_fees_sat,
        "alice has {alice_sat} sat, expected {} + {alice_share_sat} - {alice_fees_sat} fees",
        alice_before.onchain_confirmed_sat
    );
    // Fees must not eat a meaningful part of either side: each is a few transactions at
    // about the relay floor.
    ensure!(
        bob_fees_sat * 4 < bob_share_sat,
        "bob paid {bob_fees_sat} sat in fees"
    );
    ensure!(
        alice_fees_sat * 4 < alice_share_sat,
        "alice paid {alice_fees_sat} sat in fees"
    );
    Ok(())
}

/// The channel's funding and the commitment that closed it.
struct ChannelTransactions {
    funding_txid: Txid,
    commitment_txid: Txid,
    /// The node whose commitment it is.
    commitment_owner: String,
}

/// Logs every confirmed transaction of either node with its fee, and the tolerated rejections.
fn print_transactions(verdict: &Audit, chain: &ChainTransactions, ids: &ChannelTransactions) {
    let mut kinds: HashMap<Txid, String> = HashMap::new();
    for confirmed in &verdict.confirmed {
        let kind = transaction_kind(&confirmed.transaction, &confirmed.publisher, &kinds, ids);
        kinds.insert(confirmed.txid, kind.clone());
        let outputs: Vec<u64> = confirmed
            .transaction
            .output
            .iter()
            .map(|o| o.value.to_sat())
            .collect();
        tracing::info!(
            height = confirmed.height,
            publisher = %confirmed.publisher,
            %kind,
            txid = %confirmed.txid,
            vsize = confirmed.vsize,
            fee_sat = confirmed.fee.to_sat(),
            sat_per_vb = confirmed.sat_per_vb(),
            ?outputs,
            "confirmed"
        );
    }
    for tolerated in &verdict.tolerated {
        let confirmed = chain.get(&tolerated.txid).is_some();
        tracing::info!(
            publisher = %tolerated.publisher,
            txid = %tolerated.txid,
            reason = %tolerated.reason,
            resolution = %tolerated.resolution,
            times = tolerated.times,
            confirmed,
            "rejected rebroadcast or conflict (harmless)"
        );
    }
}

/// A name for what a channel transaction does, from what it spends and how (its witnesses).
fn transaction_kind(
    transaction: &Transaction,
    publisher: &str,
    kinds: &HashMap<Txid, String>,
    ids: &ChannelTransactions,
) -> String {
    if transaction.compute_txid() == ids.funding_txid {
        return "funding".to_owned();
    }
    let mut names: Vec<&str> = transaction
        .input
        .iter()
        .map(|input| {
            let parent = input.previous_output.txid;
            let witness: Vec<&[u8]> = input.witness.iter().collect();
            let second = witness.get(1).map_or(0, |w| w.len());
            let parent_kind = kinds.get(&parent).map(String::as_str).unwrap_or("");
            if parent == ids.funding_txid {
                "commitment"
            } else if parent == ids.commitment_txid {
                match (witness.len(), second) {
                    (5, _) if witness.get(3).is_some_and(|w| w.len() == 32) => "HTLC-success",
                    (5, _) => "HTLC-timeout",
                    (2, _) => "to_remote sweep",
                    (3, 32) => "HTLC claimed with preimage",
                    (3, _) if publisher == ids.commitment_owner => "to_local sweep",
                    (3, _) => "HTLC claimed after timeout",
                    _ => "commitment output spend",
                }
            } else if parent_kind.starts_with("HTLC-") {
                "second-stage HTLC output sweep"
            } else {
                "wallet spend"
            }
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(" + ")
}
