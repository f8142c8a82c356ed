//! Channel policy, accounting and message signing end to end, on real `xlnd` processes on a
//! regtest bitcoind driven by `xln-cli`: bob sets the fee of his channel to carol with
//! `setchannel`, alice sees it in her graph and in her route's fee, pays through it, bob's
//! `listforwards` shows exactly that fee (and filters by time), and all of it survives bob's
//! restart; bad `setchannel` calls change nothing; alice's signed message checks out at carol.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use xln_tests::steps::{channel, invoice, pay, settled, WAIT};
use xln_tests::three_nodes::{TestChain, ThreeNodes, ALICE, BOB, CAROL};
use xln_tests::xlnd::Xlnd;

/// bob's fee on B-C: a base fee per HTLC and a proportional part.
const FEE_BASE_MSAT: u64 = 2_000;
const FEE_PPM: u64 = 1_500;
/// bob's CLTV delta on B-C, blocks (LDK's default is 72).
const CLTV_EXPIRY_DELTA: u64 = 100;
/// What alice pays carol each time.
const AMOUNT_MSAT: u64 = 40_000_000;
/// bob's fee for forwarding `AMOUNT_MSAT` over B-C.
const EXPECTED_FEE_MSAT: u64 = FEE_BASE_MSAT + AMOUNT_MSAT * FEE_PPM / 1_000_000;

fn unix_now() -> Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

/// The three policy fields of each of `node`'s channels, by channel id.
fn policies(node: &Xlnd) -> Result<Vec<(String, Value, Value, Value)>> {
    let list = node.cli(&["listchannels"])?;
    Ok(list["channels"]
        .as_array()
        .context("channels")?
        .iter()
        .map(|c| {
            (
                c["channel_id"].as_str().unwrap_or_default().to_owned(),
                c["fee_base_msat"].clone(),
                c["fee_proportional_millionths"].clone(),
                c["cltv_expiry_delta"].clone(),
            )
        })
        .collect())
}

/// Runs `xln-cli args` on `node` expecting error `code`; returns the message.
fn refused(node: &Xlnd, args: &[&str], code: i64) -> Result<String> {
    let (_, stderr) = node.cli_error(args)?;
    ensure!(
        stderr.contains(&format!("error {code}")),
        "`xln-cli {}` should fail with {code}: {stderr}",
        args.join(" ")
    );
    Ok(stderr)
}

/// bob's direction of channel `scid` in `node`'s gossip graph, once it announces `fee_base_msat`.
fn gossiped_policy(node: &Xlnd, scid: &str, bob_id: &str, fee_base_msat: u64) -> Result<Value> {
    node.wait_cli(
        &["listgraphchannels"],
        "bob's new fee in the graph",
        WAIT,
        |graph| {
            let c = graph["channels"]
                .as_array()?
                .iter()
                .find(|c| c["short_channel_id"] == scid)?;
            let direction = if c["node1"] == bob_id {
                &c["node1_to_node2"]
            } else {
                &c["node2_to_node1"]
            };
            (direction["fee_base_msat"] == fee_base_msat).then(|| direction.clone())
        },
    )
}

#[test]
fn setchannel_fee_is_announced_charged_listed_and_kept_across_a_restart() -> Result<()> {
    let net = ThreeNodes::start(TestChain::Bitcoin, "policy on bitcoind", [&[], &[], &[]])?
        .context("bitcoind tests are never skipped")?;
    net.wait_for_gossip()?;
    let [alice, bob, carol] = &net.nodes;
    let (ab, bc) = (net.channels[0].0.clone(), net.channels[1].0.clone());
    let bc_scid = net.short_channel_id(BOB, &bc)?;
    let bob_id = net.ids[BOB].clone();

    // Bad calls are refused with what is wrong, and change nothing on any channel.
    let before = policies(bob)?;
    let message = refused(bob, &["setchannel", &bc, "htlc_minimum_msat=5000"], -32602)?;
    ensure!(message.contains("LDK fixes the smallest HTLC"), "{message}");
    let message = refused(bob, &["setchannel", &bc, "htlc_maximum_msat=5000"], -32602)?;
    ensure!(message.contains("cannot be set"), "{message}");
    let message = refused(
        bob,
        &[
            "setchannel",
            "all",
            "fee_base_msat=5",
            "cltv_expiry_delta=47",
        ],
        -32602,
    )?;
    ensure!(message.contains("48..=960"), "{message}");
    refused(bob, &["setchannel", "999x1x0", "fee_base_msat=5"], 100)?;
    let (_, typo) = bob.cli_error(&["setchannel", "all", "fee_ppm=5"])?;
    ensure!(typo.contains("no parameter `fee_ppm`"), "{typo}");
    ensure!(
        policies(bob)? == before,
        "a refused setchannel changed a channel"
    );
    // With no field, `setchannel all` shows the policy of every channel and changes nothing.
    let shown = bob.cli(&["setchannel", "all"])?;
    ensure!(
        shown["channels"].as_array().map(Vec::len) == Some(2),
        "{shown}"
    );
    ensure!(policies(bob)? == before);

    // Fees by peer id, then the CLTV delta alone by short channel id: only B-C changes.
    bob.cli(&[
        "setchannel",
        &net.ids[CAROL],
        &format!("fee_base_msat={FEE_BASE_MSAT}"),
        &format!("fee_proportional_millionths={FEE_PPM}"),
    ])?;
    let set = bob.cli(&[
        "setchannel",
        &bc_scid,
        &format!("cltv_expiry_delta={CLTV_EXPIRY_DELTA}"),
    ])?;
    let changed = &set["channels"];
    ensure!(
        changed.as_array().map(Vec::len) == Some(1)
            && changed[0]["channel_id"] == bc.as_str()
            && changed[0]["short_channel_id"] == bc_scid.as_str()
            && changed[0]["fee_base_msat"] == FEE_BASE_MSAT
            && changed[0]["fee_proportional_millionths"] == FEE_PPM
            && changed[0]["cltv_expiry_delta"] == CLTV_EXPIRY_DELTA,
        "{set}"
    );
    let listed = net.channel(BOB, &bc)?;
    ensure!(
        listed["fee_base_msat"] == FEE_BASE_MSAT
            && listed["fee_proportional_millionths"] == FEE_PPM
            && listed["cltv_expiry_delta"] == CLTV_EXPIRY_DELTA,
        "{listed}"
    );
    let untouched = before.iter().find(|(id, ..)| *id == ab);
    ensure!(
        policies(bob)?.iter().find(|(id, ..)| *id == ab) == untouched,
        "A-B changed too"
    );

    // The new channel_update reaches alice's graph, and her route to carol pays bob's fee.
    let announced = gossiped_policy(alice, &bc_scid, &bob_id, FEE_BASE_MSAT)?;
    ensure!(
        announced["fee_proportional_millionths"] == FEE_PPM
            && announced["cltv_expiry_delta"] == CLTV_EXPIRY_DELTA,
        "{announced}"
    );
    let route = alice.cli(&["getroute", &net.ids[CAROL], &AMOUNT_MSAT.to_string()])?;
    ensure!(
        route["total_fee_msat"] == EXPECTED_FEE_MSAT
            && route["hops"][0]["node_id"] == bob_id.as_str()
            && route["hops"][0]["fee_msat"] == EXPECTED_FEE_MSAT
            && route["hops"][0]["cltv_expiry_delta"] == CLTV_EXPIRY_DELTA,
        "{route}"
    );

    // alice pays carol through bob; bob earned exactly his fee.
    let since = unix_now()?;
    let paid = pay(alice, &invoice(carol, AMOUNT_MSAT, "through bob")?)?;
    ensure!(paid["fee_msat"] == EXPECTED_FEE_MSAT, "{paid}");
    settled(alice, &ab)?;
    let forwards = bob.wait_cli(&["listforwards"], "bob's forward", WAIT, |list| {
        (list["count"] == 1).then(|| list.clone())
    })?;
    let forward = &forwards["forwards"][0];
    ensure!(
        forward["status"] == "settled"
            && forward["fee_msat"] == EXPECTED_FEE_MSAT
            && forward["in_msat"] == AMOUNT_MSAT + EXPECTED_FEE_MSAT
            && forward["out_msat"] == AMOUNT_MSAT
            && forward["in_channel_id"] == ab.as_str()
            && forward["out_channel_id"] == bc.as_str(),
        "{forwards}"
    );
    ensure!(
        forwards["total_fee_msat"] == EXPECTED_FEE_MSAT
            && forwards["total_out_msat"] == AMOUNT_MSAT,
        "{forwards}"
    );
    let resolved_at = forward["resolved_at"].as_u64().context("resolved_at")?;
    ensure!(resolved_at >= since, "{forward}");

    // The time and status filters.
    let count = |args: &[&str]| -> Result<u64> {
        let mut all = vec!["listforwards"];
        all.extend_from_slice(args);
        bob.cli(&all)?["count"].as_u64().context("count")
    };
    let (since_arg, until_arg) = (format!("since={since}"), format!("until={since}"));
    let window = [
        format!("since={resolved_at}"),
        format!("until={}", resolved_at + 1),
    ];
    ensure!(count(&[&since_arg])? == 1);
    ensure!(count(&[&until_arg])? == 0);
    ensure!(count(&[&window[0], &window[1]])? == 1);
    ensure!(count(&["status=settled", &since_arg])? == 1);
    ensure!(count(&["status=failed"])? == 0);
    refused(bob, &["listforwards", "status=offered"], -32602)?;
    refused(
        bob,
        &[
            "listforwards",
            &window[1],
            &format!("since={}", resolved_at + 1),
        ],
        -32602,
    )?;

    // bob restarts: the policy and the history are still there, and the fee is still charged.
    bob.stop()?;
    bob.restart()?;
    let listed = net.channel(BOB, &bc)?;
    ensure!(
        listed["fee_base_msat"] == FEE_BASE_MSAT
            && listed["fee_proportional_millionths"] == FEE_PPM
            && listed["cltv_expiry_delta"] == CLTV_EXPIRY_DELTA,
        "the policy was lost in the restart: {listed}"
    );
    ensure!(
        bob.cli(&["listforwards"])?["total_fee_msat"] == EXPECTED_FEE_MSAT,
        "the forward was lost in the restart"
    );
    for channel_id in [&ab, &bc] {
        bob.wait_cli(&["listchannels"], "bob's channels usable", WAIT, |list| {
            (channel(list, channel_id)?["is_usable"] == true).then_some(())
        })?;
    }
    let again = alice.cli(&["pay", &invoice(carol, AMOUNT_MSAT, "after restart")?])?;
    ensure!(
        again["status"] == "succeeded" && again["fee_msat"] == EXPECTED_FEE_MSAT,
        "{again}"
    );
    let totals = bob.wait_cli(&["listforwards"], "bob's second forward", WAIT, |list| {
        (list["count"] == 2).then(|| list.clone())
    })?;
    ensure!(
        totals["total_fee_msat"] == 2 * EXPECTED_FEE_MSAT,
        "{totals}"
    );

    // alice signs; carol checks, with alice's node id and without it (alice is in carol's graph).
    let text = "alice's channel policy is set";
    let signed = alice.cli(&["signmessage", text])?;
    let zbase = signed["zbase"].as_str().context("zbase")?;
    ensure!(
        signed["signature"].as_str().map(str::len) == Some(128)
            && signed["recid"].as_str().map(str::len) == Some(2),
        "{signed}"
    );
    let alice_id = net.ids[ALICE].as_str();
    let with_key = carol.cli(&["checkmessage", text, zbase, alice_id])?;
    ensure!(
        with_key["verified"] == true && with_key["pubkey"] == alice_id,
        "{with_key}"
    );
    let without_key = carol.cli(&["checkmessage", text, zbase])?;
    ensure!(
        without_key["verified"] == true && without_key["pubkey"] == alice_id,
        "{without_key}"
    );
    let other_text = carol.cli(&["checkmessage", "another message", zbase, alice_id])?;
    ensure!(other_text["verified"] == false, "{other_text}");
    let wrong_key = carol.cli(&["checkmessage", text, zbase, &net.ids[CAROL]])?;
    ensure!(wrong_key["verified"] == false, "{wrong_key}");
    refused(carol, &["checkmessage", text, "not-zbase32!"], -32602)?;
    Ok(())
}
