//! Payments an operator can trust, end to end on real `xlnd` processes driven by `xln-cli`, on
//! bitcoind and on qtumd: idempotent `pay`, failures that name their cause and the largest
//! amount that would go, `getroute`, payments right after channels are announced, failed
//! forwards in `listforwards`; and (on bitcoind) read-only calls answered while the store's disk
//! is slow.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use ln_core::node::ChannelPolicy;
use serde_json::Value;
use xln_tests::steps::{hold_invoice, invoice, settled, WAIT};
use xln_tests::three_nodes::{TestChain, ThreeNodes, ALICE, BOB, CAROL};
use xln_tests::xlnd::Xlnd;
use xln_tests::{init_test_logging, Bitcoind};

/// bob's cap on the value of HTLCs alice may have in flight towards him, in percent of A-B: LDK
/// Node's default.
const BOB_IN_FLIGHT_CAP_PERCENT: u64 = 10;

fn local_msat(net: &ThreeNodes, node: usize, channel: usize) -> Result<u64> {
    net.channel(node, &net.channels[channel].0)?["local_balance_msat"]
        .as_u64()
        .context("local_balance_msat")
}

/// The number after `label` in `text`, e.g. the amount in "... would go now is 123 msat".
fn number_after(text: &str, label: &str) -> Option<u64> {
    let rest = &text[text.find(label)? + label.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn payments_an_operator_can_trust(chain: TestChain, test: &str) -> Result<()> {
    let cap_arg = format!("--max-inbound-htlc-in-flight-percent={BOB_IN_FLIGHT_CAP_PERCENT}");
    let Some(net) = ThreeNodes::start(chain, test, [&[], &[cap_arg.as_str()], &[]])? else {
        return Ok(());
    };
    let [alice, bob, carol] = &net.nodes;
    let policy = ChannelPolicy::for_chain(&net.params);
    let (ab, bc) = (net.channels[0].0.clone(), net.channels[1].0.clone());
    let amount_msat = (net.capacity_sat * 10).max(policy.htlc_minimum_msat);

    // Right after the channels were announced, gossip is still arriving: A->B->C goes, and the
    // keysend back C->B->A goes on its first call (each waits for a route if it must).
    // (5 % of a channel, so that carol has more than her 1 % reserve to pay back with.)
    let paid = alice.cli(&["pay", &invoice(carol, amount_msat * 5, "first")?])?;
    ensure!(paid["status"] == "succeeded", "{paid}");
    let back = carol.cli(&[
        "keysend",
        &net.ids[ALICE],
        &(amount_msat / 2).max(policy.htlc_minimum_msat).to_string(),
    ])?;
    ensure!(
        back["status"] == "succeeded",
        "the first keysend back failed: {back}"
    );
    settled(alice, &ab)?;

    // Ten concurrent `pay` calls of one invoice: one payment, the same outcome for every caller.
    let bolt11 = invoice(carol, amount_msat, "once")?;
    let alice_before = local_msat(&net, ALICE, 0)?;
    let outcomes: Vec<Result<Value>> = std::thread::scope(|scope| {
        let payers: Vec<_> = (0..10)
            .map(|_| scope.spawn(|| alice.cli(&["pay", &bolt11])))
            .collect();
        payers
            .into_iter()
            .map(|p| {
                p.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("payer panicked")))
            })
            .collect()
    });
    let mut preimages = Vec::new();
    for outcome in outcomes {
        let paid = outcome?;
        ensure!(paid["status"] == "succeeded", "{paid}");
        preimages.push(paid["preimage"].clone());
    }
    ensure!(preimages.windows(2).all(|w| w[0] == w[1]), "{preimages:?}");
    settled(alice, &ab)?;
    let hash = alice.cli(&["decode", &bolt11])?["payment_hash"]
        .as_str()
        .context("payment hash")?
        .to_owned();
    let record = alice.cli(&["listpayments", &hash])?;
    ensure!(
        record["payments"].as_array().map(Vec::len) == Some(1),
        "{record}"
    );
    ensure!(record["payments"][0]["attempts"] == 1, "{record}");
    let fee_msat = record["payments"][0]["fee_msat"].as_u64().context("fee")?;
    let alice_after = local_msat(&net, ALICE, 0)?;
    ensure!(
        alice_before - alice_after == amount_msat + fee_msat,
        "alice's balance dropped by {} msat for one payment of {amount_msat} msat plus {fee_msat} msat fee",
        alice_before - alice_after
    );
    let received = carol.cli(&["listinvoices", &hash])?;
    ensure!(
        received["invoices"][0]["status"] == "paid"
            && received["invoices"][0]["amount_received_msat"] == amount_msat,
        "{received}"
    );
    // Paying it again returns that payment and sends nothing.
    let again = alice.cli(&["pay", &bolt11])?;
    ensure!(
        again["status"] == "succeeded" && again["preimage"] == preimages[0],
        "{again}"
    );
    ensure!(local_msat(&net, ALICE, 0)? == alice_after);

    // What limits alice's next HTLC to bob: bob's cap on HTLCs in flight.
    let channel = net.channel(ALICE, &ab)?;
    let cap_msat = net.capacity_sat * 10 * BOB_IN_FLIGHT_CAP_PERCENT;
    ensure!(
        channel["peer_max_htlc_value_in_flight_msat"] == cap_msat,
        "{channel}"
    );
    ensure!(
        channel["next_outbound_htlc_limit_msat"] == cap_msat,
        "{channel}"
    );
    ensure!(channel["outbound_htlcs_in_flight"] == 0, "{channel}");
    ensure!(
        channel["next_outbound_htlc_minimum_msat"]
            .as_u64()
            .is_some(),
        "{channel}"
    );
    let reason = channel["next_outbound_htlc_limit_reason"]
        .as_str()
        .unwrap_or_default();
    ensure!(reason.contains("cap on HTLC value in flight"), "{channel}");

    // A payment over the cap is refused with the cap and the largest amount that would go,
    // which then goes.
    let over = (cap_msat + policy.htlc_minimum_msat).to_string();
    let (_, refused) = alice.cli_error(&["keysend", &net.ids[BOB], &over])?;
    ensure!(refused.contains("error 501"), "{refused}");
    ensure!(
        refused.contains(&format!("cap on HTLC value in flight: {cap_msat} msat")),
        "{refused}"
    );
    let largest = number_after(&refused, "the largest amount that would go now is")
        .with_context(|| format!("no largest amount in: {refused}"))?;
    ensure!(
        largest <= cap_msat && largest >= cap_msat - 1_000,
        "{refused}"
    );
    let sent = alice.cli(&["keysend", &net.ids[BOB], &largest.to_string()])?;
    ensure!(
        sent["status"] == "succeeded",
        "the largest amount did not go: {sent}"
    );
    settled(alice, &ab)?;
    // The route query gives the same reason, and a route within the cap.
    let (_, no_route) = alice.cli_error(&["getroute", &net.ids[BOB], &over])?;
    ensure!(
        no_route.contains("error 501") && no_route.contains("cap on HTLC value in flight"),
        "{no_route}"
    );

    // A payee our graph does not know.
    let stranger = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";
    let (_, unknown) = alice.cli_error(&["keysend", stranger, &amount_msat.to_string()])?;
    ensure!(
        unknown.contains("error 501") && unknown.contains("not in our network graph"),
        "{unknown}"
    );

    // getroute to carol: over bob, his fee and CLTV delta, a probability from the scorer.
    let route = alice.cli(&["getroute", &net.ids[CAROL], &amount_msat.to_string()])?;
    let hops = route["hops"].as_array().context("hops")?;
    ensure!(hops.len() == 2, "{route}");
    ensure!(
        hops[0]["node_id"] == net.ids[BOB].as_str()
            && hops[1]["node_id"] == net.ids[CAROL].as_str(),
        "{route}"
    );
    let fee = route["total_fee_msat"].as_u64().context("total_fee_msat")?;
    ensure!(fee > 0 && hops[0]["fee_msat"] == fee, "{route}");
    ensure!(
        hops[0]["amount_msat"] == amount_msat + fee && hops[1]["amount_msat"] == amount_msat,
        "{route}"
    );
    let probability = route["success_probability"]
        .as_f64()
        .context("probability")?;
    ensure!(probability > 0.0 && probability <= 1.0, "{route}");
    ensure!(
        route["total_cltv_expiry_delta"].as_u64()
            > Some(u64::from(policy.min_final_cltv_expiry_delta)),
        "{route}"
    );
    let by_invoice = alice.cli(&["getroute", &invoice(carol, amount_msat, "route")?])?;
    ensure!(
        by_invoice["hops"].as_array().map(Vec::len) == Some(2),
        "{by_invoice}"
    );

    // A forward that fails downstream is in bob's listforwards with its reason.
    let (_, hash, bolt11) = hold_invoice(carol, 7, amount_msat)?;
    std::thread::scope(|scope| -> Result<()> {
        let paying = scope.spawn(|| alice.cli(&["pay", &bolt11]));
        let held = carol.cli(&["waitinvoice", &hash, "60"])?;
        ensure!(held["status"] == "held", "{held}");
        carol.cli(&["cancelinvoice", &hash])?;
        let paid = paying
            .join()
            .map_err(|_| anyhow::anyhow!("payer panicked"))??;
        ensure!(paid["status"] == "failed", "{paid}");
        let reason = paid["failure_reason"].as_str().unwrap_or_default();
        ensure!(
            reason.contains("payee"),
            "the failure does not name the payee: {paid}"
        );
        Ok(())
    })?;
    let failed = bob.wait_cli(&["listforwards"], "bob's failed forward", WAIT, |list| {
        list["forwards"]
            .as_array()?
            .iter()
            .find(|f| f["status"] == "failed")
            .cloned()
    })?;
    ensure!(
        failed["in_channel_id"] == ab.as_str() && failed["out_channel_id"] == bc.as_str(),
        "{failed}"
    );
    ensure!(
        failed["failure_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{failed}"
    );

    // With bob gone, alice has no usable channel, and says so.
    bob.kill9()?;
    let (_, offline) = alice.cli_error(&[
        "keysend",
        &net.ids[CAROL],
        &amount_msat.to_string(),
        "timeout_secs=5",
    ])?;
    ensure!(
        offline.contains("no usable channel") && offline.contains("not connected"),
        "{offline}"
    );
    bob.restart()?;
    Ok(())
}

#[test]
fn pay_is_idempotent_and_failures_name_the_limit_and_the_largest_amount_on_bitcoin() -> Result<()> {
    payments_an_operator_can_trust(TestChain::Bitcoin, "payments on bitcoind")
}

#[test]
fn pay_is_idempotent_and_failures_name_the_limit_and_the_largest_amount_on_qtum() -> Result<()> {
    payments_an_operator_can_trust(
        TestChain::Qtum,
        "pay_is_idempotent_and_failures_name_the_limit_on_qtum",
    )
}

/// While every store flush takes 200 ms, one at a time (a saturated disk), 100 invoice
/// creations and 100 read-only calls are sent at once: the reads do not wait behind the writes
/// (store I/O never holds up the runtime's worker threads).
#[test]
fn read_only_calls_are_answered_while_the_disk_is_slow() -> Result<()> {
    init_test_logging();
    let bitcoind = Bitcoind::start()?;
    let dir = tempfile::tempdir()?;
    let node = Xlnd::start(&bitcoind, &dir.path().join("alice"), "alice")?;
    node.kill9()?;
    node.restart_with_env(&[("XLN_DEV_STORE_WRITE_DELAY_MS", "200")])?;
    let auth = node.cookie_auth()?;
    let finished = AtomicUsize::new(0);
    let call = |method: &str, params: &str| -> Result<usize> {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
        let (status, answer) = node.rpc_raw(&body, Some(&auth))?;
        ensure!(
            status == 200 && answer.contains("\"result\""),
            "{method}: {status} {answer}"
        );
        Ok(finished.fetch_add(1, Ordering::SeqCst))
    };
    let reads = [
        "getinfo",
        "listchannels",
        "listpeers",
        "listpayments",
        "listinvoices",
    ];
    let (write_order, read_order) =
        std::thread::scope(|scope| -> Result<(Vec<usize>, Vec<usize>)> {
            let writes: Vec<_> = (0..100)
                .map(|n| {
                    let call = &call;
                    scope.spawn(move || {
                        call(
                            "invoice",
                            &format!(r#"{{"amount_msat":1000000,"description":"slow {n}"}}"#),
                        )
                    })
                })
                .collect();
            // The writes are queued at the disk before the reads come.
            std::thread::sleep(Duration::from_millis(500));
            let read_calls: Vec<_> = (0..100)
                .map(|n| {
                    let call = &call;
                    scope.spawn(move || call(reads[n % reads.len()], "{}"))
                })
                .collect();
            let join = |handles: Vec<std::thread::ScopedJoinHandle<'_, Result<usize>>>| {
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("caller panicked")))
                    })
                    .collect::<Result<Vec<usize>>>()
            };
            Ok((join(writes)?, join(read_calls)?))
        })?;
    // Serialized at the disk, the writes take 20 s; the reads must all be done while most of
    // them still wait.
    let mut write_order = write_order;
    write_order.sort_unstable();
    let median_write = write_order[write_order.len() / 2];
    let last_read = read_order.iter().copied().max().unwrap_or_default();
    ensure!(
        last_read < median_write,
        "the last read-only call finished {last_read}th, after half the writes ({median_write}th): reads waited behind the slow disk"
    );
    eprintln!("100 reads all answered before the {median_write}th of 200 calls, while 100 slow writes queued at the disk");
    Ok(())
}
