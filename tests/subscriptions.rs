//! A Lightning gateway built on xlnd through its WebSocket API only: it subscribes to invoice
//! events, makes a HOLD invoice, sees the payer's HTLC held, dies, comes back with the last index
//! it handled (while it was away the node itself was killed and restarted), gets exactly what it
//! missed, settles with the preimage and sees the payer's payment succeed. On a real regtest
//! bitcoind and on the shared qtumd.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use xln_tests::steps::{answer, cli_in_background, hold_invoice, settled};
use xln_tests::three_nodes::{TestChain, ThreeNodes, ALICE, CAROL};
use xln_tests::ws::{self, call, events_until, next_event, subscribe};
use xln_tests::xlnd::xln_binaries;

fn index(event: &Value) -> Result<u64> {
    event["index"].as_u64().context("an event without index")
}

/// The indexes of `events` are consecutive, starting right after `after`.
fn consecutive_after(after: u64, events: &[Value]) -> Result<()> {
    for (position, event) in events.iter().enumerate() {
        ensure!(
            index(event)? == after + 1 + position as u64,
            "events are not consecutive after {after}: {events:?}"
        );
    }
    Ok(())
}

fn a_gateway_follows_invoices_and_payments_over_websocket(
    chain: TestChain,
    test: &str,
) -> Result<()> {
    let Some(net) = ThreeNodes::start(chain, test, [&[], &[], &[]])? else {
        return Ok(());
    };
    let [alice, _bob, carol] = &net.nodes;
    let runtime = tokio::runtime::Runtime::new()?;
    let amount_msat = net.capacity_sat * 10;
    let (preimage, hash, _) = hold_invoice(carol, 1, amount_msat)?;
    // The gateway makes its own hold invoice over WebSocket; the one above only shows that
    // events written before the subscription are sent first.
    let (gateway_preimage, gateway_hash) = {
        use bitcoin::hashes::{sha256, Hash};
        use bitcoin::hex::DisplayHex;
        let preimage = [7u8; 32];
        let hash = sha256::Hash::hash(&preimage).to_byte_array();
        (preimage.to_lower_hex_string(), hash.to_lower_hex_string())
    };

    // Without credentials the WebSocket handshake is refused like an HTTP call.
    let refused = runtime.block_on(ws::connect_without_credentials(carol));
    ensure!(
        refused.is_err(),
        "a WebSocket without credentials was let in"
    );

    let (held_index, bolt11, payer_thread) = runtime.block_on(async {
        let gateway = ws::connect(carol).await?;
        let mut invoices = subscribe(&gateway, "invoices", Some(0)).await?;
        let first = next_event(&mut invoices).await?;
        ensure!(
            first["index"] == 1 && first["type"] == "created" && first["data"]["payment_hash"] == hash.as_str(),
            "the stored event did not come first: {first}"
        );
        let created = call(
            &gateway,
            "invoice",
            json!({"amount_msat": amount_msat, "description": "gateway", "payment_hash": gateway_hash}),
        )
        .await?;
        let bolt11 = created["bolt11"].as_str().context("bolt11")?.to_owned();
        let read = events_until(&mut invoices, "created", &gateway_hash).await?;
        consecutive_after(1, &read)?;

        // The payer's own program follows its payments.
        let payer = ws::connect(alice).await?;
        let mut payments = subscribe(&payer, "payments", None).await?;
        let payer_thread = cli_in_background(alice, &["pay", &bolt11, "timeout_secs=600"]);
        let pending = events_until(&mut payments, "pending", &gateway_hash).await?;
        ensure!(pending.len() == 1, "{pending:?}");

        let held = events_until(&mut invoices, "held", &gateway_hash).await?;
        consecutive_after(2, &held)?;
        let held_index = index(held.last().context("held")?)?;
        Ok::<_, anyhow::Error>((held_index, bolt11, payer_thread))
    })?;

    // The gateway dies here (its connection is gone). While it is away carol makes another
    // invoice, and carol's xlnd is killed and restarted with the HTLC still held: LDK replays
    // the held payment to the new process, which must not repeat its event.
    let (_, missed_hash, _) = hold_invoice(carol, 2, amount_msat)?;
    carol.kill9()?;
    carol.restart()?;
    carol.wait_cli(
        &["listinvoices", &gateway_hash],
        "the payment held again",
        ws::EVENT_WAIT,
        |list| (list["invoices"][0]["status"] == "held").then_some(()),
    )?;

    runtime.block_on(async {
        let gateway = ws::connect(carol).await?;
        let mut invoices = subscribe(&gateway, "invoices", Some(held_index)).await?;
        let missed = next_event(&mut invoices).await?;
        ensure!(
            index(&missed)? == held_index + 1
                && missed["type"] == "created"
                && missed["data"]["payment_hash"] == missed_hash.as_str(),
            "after reconnecting the gateway got {missed} instead of the invoice it missed"
        );

        // Settled with the preimage: paid on the gateway's stream, succeeded on the payer's.
        let payer = ws::connect(alice).await?;
        let payments_before = call(&payer, "listevents", json!({"stream": "payments"})).await?;
        let payments_since = payments_before["last_index"]
            .as_u64()
            .context("last_index")?
            - 1;
        let mut payments = subscribe(&payer, "payments", Some(payments_since)).await?;
        call(
            &gateway,
            "settleinvoice",
            json!({ "preimage": gateway_preimage }),
        )
        .await?;
        let paid = next_event(&mut invoices).await?;
        ensure!(
            index(&paid)? == held_index + 2
                && paid["type"] == "paid"
                && paid["data"]["payment_hash"] == gateway_hash.as_str(),
            "the next event was not the payment: {paid}"
        );
        let succeeded = events_until(&mut payments, "succeeded", &gateway_hash).await?;
        let succeeded = succeeded.last().context("succeeded")?;
        ensure!(
            succeeded["data"]["preimage"] == gateway_preimage.as_str()
                && succeeded["data"]["fee_msat"].as_u64().is_some(),
            "the payer's event lacks preimage or fee: {succeeded}"
        );
        Ok::<_, anyhow::Error>(())
    })?;
    let paid = answer(payer_thread)?;
    ensure!(paid["status"] == "succeeded", "{paid}");
    settled(alice, &net.channels[0].0)?;

    // Without WebSocket: waitanyinvoice finds the paid invoice from index 0, and times out
    // after it; the other hold invoice is canceled.
    let any = carol.cli(&["waitanyinvoice", "0", "timeout_secs=5"])?;
    ensure!(
        any["payment_hash"] == gateway_hash.as_str() && any["status"] == "paid",
        "{any}"
    );
    let pay_index = any["pay_index"].as_u64().context("pay_index")?;
    let (code, message) =
        carol.cli_error(&["waitanyinvoice", &pay_index.to_string(), "timeout_secs=1"])?;
    ensure!(code == 1 && message.contains("101"), "{code}: {message}");
    carol.cli(&["cancelinvoice", &hash])?;
    carol.cli(&["cancelinvoice", &missed_hash])?;
    drop((preimage, bolt11));

    // xln-cli subscribe prints the same events, one JSON object per line.
    let (_, cli) = xln_binaries()?;
    let mut child = Command::new(cli)
        .arg(format!("--datadir={}", carol.datadir().display()))
        .args(["subscribe", "invoices", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let lines: Vec<Value> = BufReader::new(stdout)
        .lines()
        .take(6)
        .map(|line| Ok(serde_json::from_str(&line?)?))
        .collect::<Result<_>>()?;
    let _ = child.kill();
    let _ = child.wait();
    let kinds: Vec<&str> = lines.iter().filter_map(|e| e["type"].as_str()).collect();
    ensure!(
        kinds == ["created", "created", "held", "created", "paid", "canceled"],
        "xln-cli subscribe printed {kinds:?}"
    );
    consecutive_after(0, &lines)?;

    // The other streams: alice's channel A-B went pending then ready, her peers connected,
    // and the chain tip moved.
    let channels = alice.cli(&["listevents", "channels"])?;
    let kinds: Vec<&str> = channels["events"]
        .as_array()
        .context("events")?
        .iter()
        .filter(|e| e["data"]["channel_id"] == net.channels[0].0.as_str())
        .filter_map(|e| e["type"].as_str())
        .collect();
    ensure!(kinds == ["pending", "ready"], "A-B's events: {kinds:?}");
    let peers = alice.cli(&["listevents", "peers"])?;
    ensure!(
        peers["events"]
            .as_array()
            .context("events")?
            .iter()
            .any(|e| e["type"] == "connected" && e["data"]["peer_id"] == net.ids[1].as_str()),
        "no connected event for bob: {peers}"
    );
    let blocks = alice.cli(&["listevents", "blocks"])?;
    ensure!(blocks["last_index"].as_u64() > Some(0), "{blocks}");
    let bad = alice.cli_error(&["listevents", "block"])?;
    ensure!(bad.1.contains("invoices, payments, htlcs"), "{bad:?}");
    ensure!(net.ids[CAROL] != net.ids[ALICE]);
    Ok(())
}

#[test]
fn a_gateway_follows_invoices_and_payments_over_websocket_on_bitcoin() -> Result<()> {
    a_gateway_follows_invoices_and_payments_over_websocket(TestChain::Bitcoin, "gateway_bitcoin")
}

#[test]
fn a_gateway_follows_invoices_and_payments_over_websocket_on_qtum() -> Result<()> {
    a_gateway_follows_invoices_and_payments_over_websocket(TestChain::Qtum, "gateway_qtum")
}
