//! A crash never closes a channel: real `xlnd` processes, driven through `xln-cli`, killed with
//! SIGKILL at random moments of a payment storm (keysends both ways through a forwarding node),
//! and aborted by the fault injector (`XLN_DEV_CRASH_AT`) at exact moments of channel-monitor
//! persistence. After every restart no channel is closed, every payment has ended once the peers
//! are back, and each channel's two balances add up to the msat to what they did before.
//!
//! The storm runs 50 rounds on bitcoind and on qtumd (the shared Qtum Core, found as in
//! `tests/qtum.rs`); `XLN_STORM_ROUNDS=500` runs the long variant, `XLN_STORM_SEED=<n>` repeats
//! the moments of an earlier run (each run prints its seed).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ln_core::node::ChannelPolicy;
use serde_json::Value;
use xln_tests::steps::channel;
use xln_tests::three_nodes::{TestChain, ThreeNodes, ALICE, BOB, CAROL};

/// How long the network may take to settle after a restart: reconnection, then every HTLC
/// resolved.
const SETTLE: Duration = Duration::from_secs(180);

/// Storm rounds when `XLN_STORM_ROUNDS` is not set.
const CI_ROUNDS: u32 = 50;

/// Keysends started in each direction per round.
const PAYMENTS_PER_DIRECTION: usize = 3;

/// alice - bob - carol ([`ThreeNodes`]), with carol holding enough of B-C to pay back.
struct Network {
    net: ThreeNodes,
    /// What each storm keysend pays: 1 % of a channel.
    payment_msat: u64,
}

const ROLES: [&str; 3] = [
    "alice (payer and payee)",
    "bob (forwarder)",
    "carol (payer and payee)",
];

impl std::ops::Deref for Network {
    type Target = ThreeNodes;
    fn deref(&self) -> &ThreeNodes {
        &self.net
    }
}

impl Network {
    fn start(chain: TestChain, test: &str) -> Result<Option<Self>> {
        // LDK's debug lines say which monitor updates a restart replays: what to read when a
        // restart fails (xlnd's log tail shows them).
        let logs: &[&str] = &["--log-level=info,ldk=debug,ln_core::node::builder=debug"];
        let Some(net) = ThreeNodes::start(chain, test, [logs, logs, logs])? else {
            return Ok(None);
        };
        net.wait_for_gossip()?;
        let policy = ChannelPolicy::for_chain(&net.params);
        let capacity_sat = net.capacity_sat;
        let payment_msat = (capacity_sat * 10).max(policy.htlc_minimum_msat);
        let network = Network { net, payment_msat };
        // Carol gets a quarter of B-C to pay back with, in payments under the peers' in-flight
        // caps.
        for _ in 0..5 {
            network.keysend(ALICE, CAROL, capacity_sat * 50)?;
        }
        network.settled("after the first payments")?;
        tracing::info!(
            ?chain,
            capacity_sat,
            payment_msat,
            "alice - bob - carol ready"
        );
        Ok(Some(network))
    }

    fn keysend(&self, from: usize, to: usize, amount_msat: u64) -> Result<Value> {
        let sent = self.nodes[from]
            .cli(&["keysend", &self.ids[to], &amount_msat.to_string()])
            .and_then(|sent| {
                ensure!(sent["status"] == "succeeded", "keysend failed: {sent}");
                Ok(sent)
            });
        // The nodes' logs say why a set-up keysend failed: a peer that went away, a disabled
        // channel, or (with xlnd's "no route" diagnosis) what alice's router saw.
        sent.with_context(|| {
            format!(
                "{} keysend to {}; the nodes' logs end:\n{}",
                self.nodes[from].name,
                self.nodes[to].name,
                self.log_tails()
            )
        })
    }

    /// Waits until every channel is usable at both ends with no HTLC in flight and no payment
    /// of alice or carol is pending; fails at once if a channel is gone (closed).
    fn settled(&self, when: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            let unsettled = self.unsettled()?;
            let Some(reason) = unsettled else {
                return Ok(());
            };
            if started.elapsed() > SETTLE {
                bail!(
                    "{when}: not settled after {:?}: {reason}\n{}",
                    started.elapsed(),
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What keeps the network from being settled, or `None`.
    fn unsettled(&self) -> Result<Option<String>> {
        for (channel_id, ends) in &self.channels {
            for end in ends {
                let node = &self.nodes[*end];
                let Ok(list) = node.cli(&["listchannels"]) else {
                    return Ok(Some(format!("{} does not answer yet", node.name)));
                };
                let Some(found) = channel(&list, channel_id) else {
                    bail!(
                        "{} has no channel {channel_id} any more: it was closed\n{list}\n{}",
                        node.name,
                        node.log_tail()
                    );
                };
                if found["is_usable"] != true || found["pending_htlcs"] != 0 {
                    return Ok(Some(format!("{}: {found}", node.name)));
                }
            }
        }
        for payer in [ALICE, CAROL] {
            let node = &self.nodes[payer];
            let payments = node.cli(&["listpayments"])?;
            let pending = payments["payments"]
                .as_array()
                .context("listpayments without payments")?
                .iter()
                .find(|p| p["status"] == "pending");
            if let Some(pending) = pending {
                return Ok(Some(format!(
                    "{} has a pending payment: {pending}",
                    node.name
                )));
            }
        }
        Ok(None)
    }

    /// Fails if any node ever found its channel manager stale (LDK's words for the crash this
    /// test hunts).
    fn no_stale_manager(&self) -> Result<()> {
        for node in &self.nodes {
            let log = std::fs::read_to_string(node.datadir.join("stderr.log"))?;
            ensure!(
                !log.contains("is stale compared to"),
                "{} found a stale ChannelManager or ChannelMonitor:\n{}",
                node.name,
                log.lines()
                    .filter(|line| line.contains("stale"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        Ok(())
    }
}

/// xorshift64*: the moments of a storm, repeatable from the printed seed.
struct Moments(u64);

impl Moments {
    fn new() -> Self {
        let seed = std::env::var("XLN_STORM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            .max(1);
        eprintln!("storm seed: XLN_STORM_SEED={seed}");
        Self(seed)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

/// What the storm's keysends came to, as their callers saw them.
#[derive(Debug, Default)]
struct Tally {
    succeeded: u32,
    failed: u32,
    /// The call itself broke: its node was killed while it waited.
    cut_off: u32,
}

fn storm(chain: TestChain, test: &str) -> Result<()> {
    let Some(network) = Network::start(chain, test)? else {
        return Ok(());
    };
    let rounds = std::env::var("XLN_STORM_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(CI_ROUNDS);
    let mut moments = Moments::new();
    let before = network.channel_sums()?;
    let mut kills = [0u32; 3];
    let mut tally = Tally::default();
    let started = Instant::now();
    for round in 0..rounds {
        // Every role in turn, at a random moment of the payments.
        let victim = usize::try_from(round % 3)?;
        let kill_after = Duration::from_millis(moments.below(1500));
        let down_for = Duration::from_millis(moments.below(500));
        let outcomes = std::thread::scope(|scope| -> Result<Vec<Result<Value>>> {
            let mut payers = Vec::new();
            for _ in 0..PAYMENTS_PER_DIRECTION {
                for (from, to) in [(ALICE, CAROL), (CAROL, ALICE)] {
                    let network = &network;
                    payers.push(scope.spawn(move || {
                        network.nodes[from].cli(&[
                            "keysend",
                            &network.ids[to],
                            &network.payment_msat.to_string(),
                        ])
                    }));
                }
            }
            std::thread::sleep(kill_after);
            network.nodes[victim].kill9()?;
            std::thread::sleep(down_for);
            network.nodes[victim].restart()?;
            Ok(payers
                .into_iter()
                .map(|payer| {
                    payer
                        .join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("payer thread panicked")))
                })
                .collect())
        })?;
        kills[victim] += 1;
        for outcome in outcomes {
            match outcome {
                Ok(sent) if sent["status"] == "succeeded" => tally.succeeded += 1,
                Ok(_) => tally.failed += 1,
                Err(_) => tally.cut_off += 1,
            }
        }
        network
            .settled(&format!("round {round}, after killing {}", ROLES[victim]))
            .with_context(|| format!("storm on {chain:?}"))?;
        let after = network.channel_sums()?;
        ensure!(
            after == before,
            "round {round}: the channels' balances add up to {after:?} msat, before the storm {before:?}"
        );
        if round % 10 == 9 {
            tracing::info!(?chain, rounds = round + 1, ?kills, ?tally, "storm progress");
        }
    }
    network.no_stale_manager()?;
    eprintln!(
        "storm on {chain:?}: {rounds} rounds in {:.0} s; kills: alice {}, bob {}, carol {}; keysends: {} succeeded, {} failed, {} cut off by the kill; both channels add up to {:?} msat as before",
        started.elapsed().as_secs_f64(),
        kills[ALICE],
        kills[BOB],
        kills[CAROL],
        tally.succeeded,
        tally.failed,
        tally.cut_off,
        before
    );
    Ok(())
}

#[test]
fn a_payment_storm_with_kill_9_closes_no_channel_and_loses_no_msat_on_bitcoin() -> Result<()> {
    storm(TestChain::Bitcoin, "storm on bitcoind")
}

#[test]
fn a_payment_storm_with_kill_9_closes_no_channel_and_loses_no_msat_on_qtum() -> Result<()> {
    storm(
        TestChain::Qtum,
        "a_payment_storm_with_kill_9_closes_no_channel_on_qtum",
    )
}

/// The fault injector aborts xlnd right after its n-th channel-manager write (monitors of that
/// batch not yet written) or right after its n-th durable batch of monitor writes (LDK not yet
/// told): the moments a crash used to leave a monitor ahead of the manager.
#[test]
fn a_crash_at_each_step_of_monitor_persistence_closes_no_channel() -> Result<()> {
    let Some(network) = Network::start(TestChain::Bitcoin, "crash points")? else {
        return Ok(());
    };
    let before = network.channel_sums()?;
    let mut crashes = 0;
    for point in [
        "monitor-write:1",
        "manager-write:1",
        "monitor-write:4",
        "manager-write:3",
    ] {
        for victim in [ALICE, BOB, CAROL] {
            let node = &network.nodes[victim];
            node.kill9()?;
            node.restart_with_env(&[("XLN_DEV_CRASH_AT", point)])?;
            network.settled(&format!("{} restarted to crash at {point}", node.name))?;
            // Payments both ways until the injector fires.
            let mut sent = 0;
            while !node.has_exited()? {
                ensure!(
                    sent < 40,
                    "{} did not abort at {point} after {sent} keysends",
                    node.name
                );
                let (from, to) = if sent % 2 == 0 {
                    (ALICE, CAROL)
                } else {
                    (CAROL, ALICE)
                };
                // A payment through a node that just aborted waits for it: do not wait long.
                let _ = network.nodes[from].cli(&[
                    "keysend",
                    &network.ids[to],
                    &network.payment_msat.to_string(),
                    "timeout_secs=5",
                ]);
                sent += 1;
            }
            ensure!(
                node.log_tail()
                    .contains("fault injection: aborting the process here"),
                "{} exited, but not at the crash point:\n{}",
                node.name,
                node.log_tail()
            );
            crashes += 1;
            node.restart()?;
            network.settled(&format!(
                "{} restarted after crashing at {point}",
                node.name
            ))?;
            let after = network.channel_sums()?;
            ensure!(
                after == before,
                "after {} crashed at {point}: balances add up to {after:?} msat, before {before:?}",
                node.name
            );
        }
    }
    network.no_stale_manager()?;
    eprintln!("{crashes} crashes at exact persistence points; no channel closed; balances {before:?} msat as before");
    Ok(())
}
