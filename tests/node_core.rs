//! The node core end to end: `ln_core::Node`s (each its own store, seed, wallet, P2P listener and
//! LDK stack) on a real regtest bitcoind, talking Lightning to each other over TCP.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bitcoin::hashes::Hash;
use ln_core::node::{ChannelInfo, InvoiceStatus, PaymentStatus};
use xln_tests::ln_node::{mine_and_sync, wait_for, TestNode};
use xln_tests::{init_test_logging, Bitcoind};

const WAIT: Duration = Duration::from_secs(120);

/// Opens a channel from `from` to `to` and mines until both can use it.
async fn open_channel(
    bitcoind: &Bitcoind,
    from: &TestNode,
    to: &TestNode,
    amount_sat: u64,
    announce: bool,
) -> Result<ChannelInfo> {
    from.node.connect_uri(&to.uri()?).await?;
    let opened = from
        .node
        .open_channel(to.node.node_id(), amount_sat, 0, announce)
        .await?;
    let mempool = bitcoind.cli_json(&["getrawmempool"])?;
    ensure!(
        mempool
            .to_string()
            .contains(&opened.funding_txid.to_string()),
        "funding transaction {} is not in the mempool after open_channel returned",
        opened.funding_txid
    );
    mine_and_sync(bitcoind, 6, &[from, to]).await?;
    let channel = from.usable_channel_with(to, WAIT).await?;
    to.usable_channel_with(from, WAIT).await?;
    ensure!(channel.channel_id == opened.channel_id);
    Ok(channel)
}

/// A regtest bitcoind out of initial block download.
fn start_bitcoind() -> Result<Bitcoind> {
    init_test_logging();
    let bitcoind = Bitcoind::start()?;
    bitcoind.mine(1)?;
    Ok(bitcoind)
}

async fn onchain_confirmed(node: &TestNode) -> u64 {
    node.node.list_funds().onchain_confirmed_sat
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_open_pay_keysend_and_close_cooperatively() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let alice = TestNode::start(&bitcoind, &dir.path().join("alice"), "alice").await?;
    let bob = TestNode::start(&bitcoind, &dir.path().join("bob"), "bob").await?;

    let mined_sat = alice.fund_by_mining(&bitcoind).await?;
    let funds = alice.node.list_funds();
    assert_eq!(funds.onchain_confirmed_sat, mined_sat);
    assert_eq!(funds.outputs.len(), 1);
    assert!(funds.outputs[0].address.starts_with("bcrt1q"));

    let capacity_sat = 1_000_000;
    let channel = open_channel(&bitcoind, &alice, &bob, capacity_sat, false).await?;
    assert_eq!(channel.capacity_sat, capacity_sat);
    assert!(!channel.is_public);
    let funding_fee_sat = mined_sat - capacity_sat - onchain_confirmed(&alice).await;
    assert!(
        funding_fee_sat > 0 && funding_fee_sat < 10_000,
        "funding fee {funding_fee_sat}"
    );

    // Bob's invoice, paid by Alice over the direct channel: no routing fee.
    let invoice = bob
        .node
        .create_invoice(Some(100_000_000), "coffee", None, None)?;
    assert!(
        invoice.bolt11.starts_with("lnbcrt1m1"),
        "{}",
        invoice.bolt11
    );
    let payment = alice
        .node
        .pay_invoice(&invoice.bolt11, None, None, None)
        .await?;
    assert_eq!(payment.status, PaymentStatus::Succeeded, "{payment:?}");
    assert_eq!(payment.amount_msat, 100_000_000);
    assert_eq!(payment.fee_msat, Some(0));
    assert_eq!(payment.payment_hash, invoice.payment_hash);
    let received = bob.paid_invoice(&invoice.payment_hash, WAIT).await?;
    assert_eq!(received.amount_received_msat, Some(100_000_000));
    // Paying the same invoice again sends nothing and returns that payment.
    let again = alice
        .node
        .pay_invoice(&invoice.bolt11, None, None, None)
        .await?;
    assert_eq!(again, payment);

    // Keysend back from Bob to Alice, once the received payment is irrevocably his.
    wait_for("bob's outbound capacity", WAIT, || async {
        let channel = bob.node.list_channels().into_iter().next()?;
        (channel.outbound_capacity_msat >= 10_000_000).then_some(())
    })
    .await?;
    let keysend = bob
        .node
        .keysend(alice.node.node_id(), 10_000_000, None, None)
        .await?;
    assert_eq!(keysend.status, PaymentStatus::Succeeded, "{keysend:?}");
    alice.paid_invoice(&keysend.payment_hash, WAIT).await?;

    let bob_channel = bob.usable_channel_with(&alice, WAIT).await?;
    assert_eq!(bob_channel.local_balance_msat, 90_000_000);

    // Cooperative close: Bob gets exactly his 90,000 sat (the funder pays the closing fee).
    let closed = alice.node.close_channel(&channel.channel_id, false).await?;
    assert_eq!(closed.close_type, ln_core::node::CloseType::Mutual);
    wait_for("the closing transaction", WAIT, || async {
        let mempool = bitcoind.cli_json(&["getrawmempool"]).ok()?;
        (mempool.as_array()?.len() == 1).then_some(())
    })
    .await?;
    mine_and_sync(&bitcoind, 1, &[&alice, &bob]).await?;
    wait_for("both channel lists empty", WAIT, || async {
        (alice.node.list_channels().is_empty() && bob.node.list_channels().is_empty()).then_some(())
    })
    .await?;
    let bob_sat = wait_for("bob's closing output", WAIT, || async {
        let sat = onchain_confirmed(&bob).await;
        (sat > 0).then_some(sat)
    })
    .await?;
    assert_eq!(bob_sat, 90_000);
    let alice_sat = onchain_confirmed(&alice).await;
    let alice_expected = mined_sat - funding_fee_sat - 90_000;
    assert!(
        alice_sat < alice_expected && alice_sat > alice_expected - 10_000,
        "alice has {alice_sat} sat, expected {alice_expected} minus a closing fee"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_routes_through_a_forwarding_node_after_gossip() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let alice = TestNode::start(&bitcoind, &dir.path().join("alice"), "alice").await?;
    let bob = TestNode::start(&bitcoind, &dir.path().join("bob"), "bob").await?;
    let carol = TestNode::start(&bitcoind, &dir.path().join("carol"), "carol").await?;
    alice.fund_by_mining(&bitcoind).await?;
    bob.fund_by_mining(&bitcoind).await?;
    carol.node.wait_synced(WAIT).await?;

    let ab = open_channel(&bitcoind, &alice, &bob, 2_000_000, true).await?;
    let bc = open_channel(&bitcoind, &bob, &carol, 1_000_000, true).await?;
    let bc_scid = bc
        .short_channel_id
        .context("bob-carol has no short channel id")?;
    // Alice needs bob's side of bob-carol to route through bob. Carol's side may come later: see
    // `steps::gossiped`.
    let bob_id = bob.node.node_id().to_string();
    wait_for(
        "alice learning bob's side of bob-carol from gossip",
        WAIT,
        || async {
            alice
                .node
                .graph_channels()
                .into_iter()
                .find(|c| c.short_channel_id == bc_scid && c.enabled_from(&bob_id))
        },
    )
    .await?;
    assert!(ab.is_public);

    let invoice = carol
        .node
        .create_invoice(Some(50_000_000), "via bob", None, None)?;
    let payment = alice
        .node
        .pay_invoice(&invoice.bolt11, None, None, None)
        .await?;
    assert_eq!(payment.status, PaymentStatus::Succeeded, "{payment:?}");
    let fee_msat = payment.fee_msat.context("no fee recorded")?;
    assert!(fee_msat > 0, "a forwarded payment pays bob a fee");

    let forward = wait_for("bob's forward record", WAIT, || async {
        bob.node.list_forwards().ok()?.into_iter().next()
    })
    .await?;
    assert_eq!(forward.fee_msat, Some(fee_msat));
    assert_eq!(forward.out_amount_msat, Some(50_000_000));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_keeps_channel_balances_and_payment_history_and_pays_again() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let alice = TestNode::start(&bitcoind, &dir.path().join("alice"), "alice").await?;
    let bob = TestNode::start(&bitcoind, &dir.path().join("bob"), "bob").await?;
    alice.fund_by_mining(&bitcoind).await?;
    open_channel(&bitcoind, &alice, &bob, 1_000_000, false).await?;
    let invoice = bob
        .node
        .create_invoice(Some(20_000_000), "before restart", None, None)?;
    let paid = alice
        .node
        .pay_invoice(&invoice.bolt11, None, None, None)
        .await?;
    assert_eq!(paid.status, PaymentStatus::Succeeded);

    let channels_before = alice.node.list_channels();
    let payments_before = alice.node.list_payments(None)?;
    let funds_before = alice.node.list_funds().onchain_confirmed_sat;
    let node_id = alice.node.node_id();

    let alice = alice.restart(&bitcoind).await?;
    assert_eq!(alice.node.node_id(), node_id);
    assert_eq!(alice.node.list_payments(None)?, payments_before);
    assert_eq!(alice.node.list_funds().onchain_confirmed_sat, funds_before);
    let channels_after = alice.node.list_channels();
    assert_eq!(channels_after.len(), 1);
    assert_eq!(channels_after[0].channel_id, channels_before[0].channel_id);
    assert_eq!(
        channels_after[0].local_balance_msat,
        channels_before[0].local_balance_msat
    );

    // The node reconnects to its channel peer by itself, and pays again.
    alice.usable_channel_with(&bob, WAIT).await?;
    let invoice = bob
        .node
        .create_invoice(Some(30_000_000), "after restart", None, None)?;
    let paid = alice
        .node
        .pay_invoice(&invoice.bolt11, None, None, None)
        .await?;
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert_eq!(alice.node.list_payments(None)?.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reorg_replacing_the_funding_block_is_followed() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let alice = TestNode::start(&bitcoind, &dir.path().join("alice"), "alice").await?;
    let bob = TestNode::start(&bitcoind, &dir.path().join("bob"), "bob").await?;
    alice.fund_by_mining(&bitcoind).await?;
    alice.node.connect_uri(&bob.uri()?).await?;
    let opened = alice
        .node
        .open_channel(bob.node.node_id(), 500_000, 0, false)
        .await?;
    let funding_block = bitcoind.mine(1)?.remove(0);
    mine_and_sync(&bitcoind, 0, &[&alice, &bob]).await?;
    wait_for("one confirmation", WAIT, || async {
        alice
            .node
            .list_channels()
            .first()?
            .confirmations
            .filter(|c| *c == 1)
    })
    .await?;

    // Replace the funding block: the funding transaction goes back to the mempool and is mined
    // again in the new branch.
    bitcoind.cli(&["invalidateblock", &funding_block])?;
    let mempool = bitcoind.cli_json(&["getrawmempool"])?;
    assert!(mempool
        .to_string()
        .contains(&opened.funding_txid.to_string()));
    // Mined to another address, so the new block differs from the invalidated one.
    bitcoind.mine_to_address(2, &bob.node.new_address()?)?;
    mine_and_sync(&bitcoind, 0, &[&alice, &bob]).await?;
    let info = alice.node.info();
    assert!(info.synced_to_chain);
    assert_ne!(info.block_hash.to_string(), funding_block);
    mine_and_sync(&bitcoind, 6, &[&alice, &bob]).await?;
    let channel = alice.usable_channel_with(&bob, WAIT).await?;
    assert_eq!(channel.funding_txid, Some(opened.funding_txid));
    let invoice = bob
        .node
        .create_invoice(Some(1_000_000), "after reorg", None, None)?;
    let paid = alice
        .node
        .pay_invoice(&invoice.bolt11, None, None, None)
        .await?;
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_restored_from_the_seed_finds_its_onchain_funds() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let original = TestNode::start(&bitcoind, &dir.path().join("original"), "original").await?;
    let mined_sat = original.fund_by_mining(&bitcoind).await?;
    let words = original.node.seed_words()?;
    original.node.stop().await;
    drop(original);

    // A new data directory holding only the seed restored from the words.
    let restored_dir = dir.path().join("restored");
    std::fs::create_dir_all(&restored_dir)?;
    let seed = ln_core::seed::NodeSeed::from_mnemonic(&words)?;
    ln_core::seed::restore_to(&restored_dir.join("seed"), &seed)?;
    let restored = TestNode::start(&bitcoind, &restored_dir, "restored").await?;
    assert_eq!(restored.node.list_funds().onchain_confirmed_sat, mined_sat);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_close_with_an_htlc_in_flight_sweeps_funds_to_both_wallets() -> Result<()> {
    let bitcoind = start_bitcoind()?;
    let dir = tempfile::tempdir()?;
    let alice = TestNode::start(&bitcoind, &dir.path().join("alice"), "alice").await?;
    let bob = TestNode::start(&bitcoind, &dir.path().join("bob"), "bob").await?;
    let mined_sat = alice.fund_by_mining(&bitcoind).await?;
    let channel = open_channel(&bitcoind, &alice, &bob, 1_000_000, false).await?;
    let invoice = bob
        .node
        .create_invoice(Some(200_000_000), "settled", None, None)?;
    let paid = alice
        .node
        .pay_invoice(&invoice.bolt11, None, None, None)
        .await?;
    assert_eq!(paid.status, PaymentStatus::Succeeded);

    wait_for("the first payment settled in the channel", WAIT, || async {
        let channel = alice.node.list_channels().into_iter().next()?;
        (channel.pending_htlcs == 0 && channel.outbound_capacity_msat >= 100_000_000).then_some(())
    })
    .await?;

    // A hold invoice keeps an HTLC of 100,000 sat in flight.
    let preimage = [7u8; 32];
    let hash = bitcoin::hashes::sha256::Hash::hash(&preimage).to_byte_array();
    let hold = bob
        .node
        .create_invoice(Some(100_000_000), "held", None, Some(hash))?;
    let payer = alice.node.clone();
    let bolt11 = hold.bolt11.clone();
    let in_flight = tokio::spawn(async move {
        payer
            .pay_invoice(&bolt11, None, None, Some(Duration::from_secs(900)))
            .await
    });
    wait_for("bob holding the HTLC", WAIT, || async {
        let invoices = bob.node.list_invoices(Some(&hold.payment_hash)).ok()?;
        invoices
            .into_iter()
            .find(|i| i.status == InvoiceStatus::Held)
    })
    .await?;
    assert_eq!(alice.node.list_channels()[0].pending_htlcs, 1);

    let closed = alice.node.close_channel(&channel.channel_id, true).await?;
    assert_eq!(closed.close_type, ln_core::node::CloseType::Unilateral);

    // Mine through to_self_delay and the HTLC's expiry until both wallets hold everything.
    let mut mined = 0;
    loop {
        mine_and_sync(&bitcoind, 6, &[&alice, &bob]).await?;
        mined += 6;
        // LDK's sweeper runs on a 30 s timer: give it time to broadcast between batches.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let a = alice.node.list_funds();
        let b = bob.node.list_funds();
        let settled = a.channels.is_empty()
            && b.channels.is_empty()
            && a.pending_sweep_sat == 0
            && b.pending_sweep_sat == 0
            && a.onchain_unconfirmed_sat == 0
            && b.onchain_unconfirmed_sat == 0
            && b.onchain_confirmed_sat > 0;
        if settled {
            break;
        }
        ensure!(
            mined < 1200,
            "funds not swept after {mined} blocks: alice {a:?} bob {b:?}"
        );
    }
    let bob_sat = onchain_confirmed(&bob).await;
    assert!(
        (190_000..200_000).contains(&bob_sat),
        "bob has {bob_sat} sat: 200,000 less sweep fees expected"
    );
    let alice_sat = onchain_confirmed(&alice).await;
    let alice_expected = mined_sat - 200_000;
    assert!(
        alice_sat < alice_expected && alice_sat > alice_expected - 50_000,
        "alice has {alice_sat} sat, expected {alice_expected} less on-chain fees (the HTLC came back)"
    );
    let outcome = in_flight.await??;
    assert_eq!(outcome.status, PaymentStatus::Failed, "{outcome:?}");
    Ok(())
}
