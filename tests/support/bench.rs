//! The workloads of `xln-bench` (issue 15): payments through xlnd's JSON-RPC API as a program
//! calls it, with latency percentiles, failures and throughput; memory; restart and catch-up.
//!
//! Everything runs on real processes: three `xlnd` nodes (alice - bob - carol) on a regtest
//! bitcoind or qtumd ([`ThreeNodes`]), called over HTTP with kept-alive connections. Nothing here
//! asserts a speed: the numbers are printed, to be compared across commits
//! (`xln-bench --json`). `tests/bench.rs` runs it with tiny counts to show it works.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};
use serde::Serialize;
use serde_json::{json, Value};

use crate::steps::{height, mine};
use crate::three_nodes::{TestChain, ThreeNodes, BOB, CAROL};
use crate::xlnd::Xlnd;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Payments per workload and level of concurrency.
    pub payments: usize,
    /// The numbers of payments in flight at once to measure keysends over one channel at.
    pub concurrency: Vec<usize>,
    /// Payments per workload for the invoice and two-hop workloads; `None`: as many as
    /// `payments`, 0 skips them.
    pub other_payments: Option<usize>,
    /// The amount of each payment, msat. Small, so that every workload fits in the channel.
    pub amount_msat: u64,
    /// Blocks mined while carol is stopped, to time her catching up (0: skip).
    pub sync_blocks: u32,
    /// Extra `xlnd` arguments for all three nodes (e.g. `--htlc-batching=ldk`).
    pub xlnd_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            payments: 1000,
            concurrency: vec![1, 25, 100, 400],
            other_payments: None,
            amount_msat: 1_000_000,
            sync_blocks: 2000,
            xlnd_args: Vec::new(),
        }
    }
}

/// One workload's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentFigures {
    /// What was paid, how: e.g. `keysend alice->bob`.
    pub workload: String,
    /// Payments in flight at once.
    pub in_flight: usize,
    /// Payments started.
    pub payments: usize,
    /// Payments that did not end `succeeded` (an error, or a failed payment).
    pub failed: usize,
    /// Succeeded payments per second of wall time.
    pub payments_per_sec: f64,
    /// Latency percentiles of succeeded payments, from the call to its answer, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// The first failure's text, if any.
    pub first_failure: Option<String>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `bitcoin` or `qtum`.
    pub chain: String,
    /// The profile xlnd was built with.
    pub xlnd_profile: &'static str,
    /// The extra arguments every xlnd ran with.
    pub xlnd_args: Vec<String>,
    /// CPUs this machine has.
    pub cpus: usize,
    /// p50 of 200 4-KiB write+fsync rounds in the nodes' directory, µs: the floor under every
    /// durable step of a payment.
    pub fsync_p50_us: f64,
    /// The payment workloads.
    pub payments: Vec<PaymentFigures>,
    /// alice's and bob's resident memory before the payments, KiB.
    pub rss_idle_kib: [u64; 2],
    /// The same after them.
    pub rss_after_kib: [u64; 2],
    /// alice's and bob's data directories after the payments, KiB: channel monitors grow with
    /// every commitment.
    pub datadir_after_kib: [u64; 2],
    /// From starting bob's xlnd again (2 channels) to its first RPC answer, ms.
    pub restart_ms: f64,
    /// Blocks carol caught up after a restart, and how fast.
    pub catch_up_blocks: u32,
    /// Blocks per second of that catch-up (0 when skipped).
    pub catch_up_blocks_per_sec: f64,
}

/// A JSON-RPC client of one node over HTTP, authenticated with its cookie; clones share the
/// kept-alive connections.
#[derive(Clone)]
pub struct RpcClient {
    client: Arc<HttpClient>,
}

impl RpcClient {
    /// Connects to `node`.
    pub fn new(node: &Xlnd) -> Result<Self> {
        let url = std::fs::read_to_string(node.datadir().join("rpc.url"))
            .context("reading rpc.url")?
            .trim()
            .to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(
            "Authorization",
            HeaderValue::from_str(&node.cookie_auth()?)?,
        );
        let client = HttpClientBuilder::default()
            .set_headers(headers)
            .request_timeout(Duration::from_secs(600))
            .max_concurrent_requests(4096)
            .build(url)
            .context("building the HTTP JSON-RPC client")?;
        Ok(Self {
            client: Arc::new(client),
        })
    }

    /// Calls `method` with named `params`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        let Value::Object(params) = params else {
            bail!("params of {method} must be an object");
        };
        self.client
            .request::<Value, _>(method, params)
            .await
            .with_context(|| method.to_owned())
    }
}

/// The payment a workload makes, over and over.
#[derive(Clone)]
enum Payment {
    Keysend {
        destination: String,
    },
    /// Pays invoices made beforehand (not timed), one each.
    Invoices(Arc<Vec<String>>),
}

/// Makes `options.payments` payments from `payer`, `in_flight` at a time.
async fn pay_many(
    payer: &RpcClient,
    payment: Payment,
    amount_msat: u64,
    payments: usize,
    in_flight: usize,
    workload: &str,
) -> PaymentFigures {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..in_flight.max(1) {
        let (payer, payment, next) = (payer.clone(), payment.clone(), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut results: Vec<std::result::Result<Duration, String>> = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= payments {
                    return results;
                }
                let (method, params) = match &payment {
                    Payment::Keysend { destination } => (
                        "keysend",
                        json!({"destination": destination, "amount_msat": amount_msat}),
                    ),
                    Payment::Invoices(invoices) => ("pay", json!({"bolt11": invoices[index]})),
                };
                let call = Instant::now();
                let outcome = match payer.call(method, params).await {
                    Ok(paid) if paid["status"] == "succeeded" => Ok(call.elapsed()),
                    Ok(paid) => Err(format!(
                        "{}: {}",
                        paid["status"],
                        paid["failure_reason"].as_str().unwrap_or("")
                    )),
                    Err(error) => Err(format!("{error:#}")),
                };
                results.push(outcome);
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut first_failure = None;
    for worker in workers {
        let results = worker.await.unwrap_or_default();
        for result in results {
            match result {
                Ok(latency) => latencies.push(latency),
                Err(failure) => {
                    failed += 1;
                    first_failure.get_or_insert(failure);
                }
            }
        }
    }
    let wall = started.elapsed();
    latencies.sort();
    PaymentFigures {
        workload: workload.to_owned(),
        in_flight,
        payments,
        failed,
        payments_per_sec: latencies.len() as f64 / wall.as_secs_f64().max(1e-9),
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        first_failure,
    }
}

/// The `p`th percentile (nearest rank) of sorted `latencies`, ms.
fn percentile_ms(latencies: &[Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1e3
}

/// p50 of 200 rounds of writing 4 KiB and fsyncing it in `dir`, µs.
fn fsync_floor_us(dir: &std::path::Path) -> Result<f64> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0u8; 4096];
    let mut rounds = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        rounds.push(start.elapsed());
    }
    let _ = std::fs::remove_file(&path);
    rounds.sort();
    Ok(rounds[rounds.len() / 2].as_secs_f64() * 1e6)
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &std::path::Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Invoices of `amount_msat` from `payee`, `count` of them.
async fn invoices(payee: &RpcClient, count: usize, amount_msat: u64) -> Result<Vec<String>> {
    let mut made = Vec::with_capacity(count);
    for n in 0..count {
        let invoice = payee
            .call(
                "invoice",
                json!({"amount_msat": amount_msat, "description": format!("bench {n}")}),
            )
            .await?;
        made.push(
            invoice["bolt11"]
                .as_str()
                .context("invoice without bolt11")?
                .to_owned(),
        );
    }
    Ok(made)
}

/// Sets up alice - bob - carol on `chain` and measures everything `options` asks for; `progress`
/// hears of each step as it starts.
pub fn run(chain: TestChain, options: &Options, progress: &dyn Fn(&str)) -> Result<Report> {
    progress("starting the chain node and alice, bob and carol; funding and opening A-B and B-C");
    let xlnd_args: Vec<&str> = options.xlnd_args.iter().map(String::as_str).collect();
    let net = ThreeNodes::start(chain, "xln-bench", [&xlnd_args, &xlnd_args, &xlnd_args])?
        .context("no qtumd found (set QTUMD, or see docs/qtum.md)")?;
    progress("waiting for alice to learn B-C from gossip");
    net.wait_for_gossip()?;
    let [alice, bob, carol] = &net.nodes;
    let fsync_p50_us = fsync_floor_us(alice.datadir())?;
    let rss_idle_kib = [alice.rss_kib()?, bob.rss_kib()?];

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let figures = runtime.block_on(async {
        let alice_rpc = RpcClient::new(alice)?;
        let bob_rpc = RpcClient::new(bob)?;
        let to_bob = Payment::Keysend {
            destination: net.ids[BOB].clone(),
        };
        let to_carol = Payment::Keysend {
            destination: net.ids[CAROL].clone(),
        };
        let amount = options.amount_msat;
        let n = options.payments;
        progress("warming up: 20 keysends alice -> bob");
        pay_many(&alice_rpc, to_bob.clone(), amount, 20, 1, "warm-up").await;
        let mut figures = Vec::new();
        for &k in &options.concurrency {
            progress(&format!(
                "keysend alice -> bob: {n} payments, {k} in flight"
            ));
            figures.push(pay_many(&alice_rpc, to_bob.clone(), amount, n, k, "keysend A->B").await);
        }
        let n = options.other_payments.unwrap_or(n);
        for k in [1, 25].into_iter().filter(|_| n > 0) {
            progress(&format!(
                "invoices of bob paid by alice: {n}, {k} in flight"
            ));
            let bolt11s = Arc::new(invoices(&bob_rpc, n, amount).await?);
            figures.push(
                pay_many(
                    &alice_rpc,
                    Payment::Invoices(bolt11s),
                    amount,
                    n,
                    k,
                    "pay A->B",
                )
                .await,
            );
        }
        for k in [1, 25].into_iter().filter(|_| n > 0) {
            progress(&format!(
                "keysend alice -> bob -> carol: {n}, {k} in flight"
            ));
            figures.push(
                pay_many(
                    &alice_rpc,
                    to_carol.clone(),
                    amount,
                    n,
                    k,
                    "keysend A->B->C",
                )
                .await,
            );
        }
        anyhow::Ok(figures)
    })?;
    let rss_after_kib = [alice.rss_kib()?, bob.rss_kib()?];
    let datadir_after_kib = [
        dir_size(alice.datadir())? / 1024,
        dir_size(bob.datadir())? / 1024,
    ];

    progress("restarting bob");
    bob.stop()?;
    let restart = Instant::now();
    bob.restart()?;
    let restart_ms = restart.elapsed().as_secs_f64() * 1e3;

    let mut catch_up_blocks_per_sec = 0.0;
    if options.sync_blocks > 0 {
        progress(&format!(
            "carol stopped while {} blocks are mined, then catching up",
            options.sync_blocks
        ));
        carol.stop()?;
        mine(&net.chain_node, options.sync_blocks, &[alice, bob])?;
        let tip = height(&net.chain_node)?;
        let catch_up = Instant::now();
        carol.restart()?;
        carol.wait_cli(
            &["getinfo"],
            "carol caught up",
            Duration::from_secs(3600),
            |info| (info["block_height"].as_u64() == Some(tip)).then_some(()),
        )?;
        catch_up_blocks_per_sec =
            f64::from(options.sync_blocks) / catch_up.elapsed().as_secs_f64().max(1e-9);
    }
    Ok(Report {
        chain: match chain {
            TestChain::Bitcoin => "bitcoin",
            TestChain::Qtum => "qtum",
        }
        .to_owned(),
        xlnd_profile: crate::xlnd::XLND_PROFILE,
        xlnd_args: options.xlnd_args.clone(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        fsync_p50_us,
        payments: figures,
        rss_idle_kib,
        rss_after_kib,
        datadir_after_kib,
        restart_ms,
        catch_up_blocks: options.sync_blocks,
        catch_up_blocks_per_sec,
    })
}

/// `report` as the table `xln-bench` prints.
pub fn table(report: &Report) -> String {
    let mut out = format!(
        "xln-bench on {} ({} xlnd{}, {} CPUs; write+fsync of 4 KiB here: p50 {:.0} µs)\n\n",
        report.chain,
        report.xlnd_profile,
        if report.xlnd_args.is_empty() {
            String::new()
        } else {
            format!(" {}", report.xlnd_args.join(" "))
        },
        report.cpus,
        report.fsync_p50_us
    );
    out.push_str(&format!(
        "{:<18} {:>9} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
        "workload", "in flight", "payments", "failed", "pay/s", "p50 ms", "p99 ms", "max ms"
    ));
    for f in &report.payments {
        out.push_str(&format!(
            "{:<18} {:>9} {:>8} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1}\n",
            f.workload,
            f.in_flight,
            f.payments,
            f.failed,
            f.payments_per_sec,
            f.p50_ms,
            f.p99_ms,
            f.max_ms
        ));
    }
    for f in report.payments.iter().filter(|f| f.failed > 0) {
        out.push_str(&format!(
            "  {} at {} in flight, first failure: {}\n",
            f.workload,
            f.in_flight,
            f.first_failure.as_deref().unwrap_or("?")
        ));
    }
    out.push_str(&format!(
        "\nRSS alice/bob: idle {} / {} KiB, after the payments {} / {} KiB\n",
        report.rss_idle_kib[0],
        report.rss_idle_kib[1],
        report.rss_after_kib[0],
        report.rss_after_kib[1]
    ));
    out.push_str(&format!(
        "data directories alice/bob after the payments: {} / {} KiB\n",
        report.datadir_after_kib[0], report.datadir_after_kib[1]
    ));
    out.push_str(&format!(
        "restart of bob (2 channels) to its first RPC answer: {:.0} ms\n",
        report.restart_ms
    ));
    if report.catch_up_blocks > 0 {
        out.push_str(&format!(
            "catching up {} blocks: {:.1} blocks/s\n",
            report.catch_up_blocks, report.catch_up_blocks_per_sec
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&ms, 50.0), 50.0);
        assert_eq!(percentile_ms(&ms, 99.0), 99.0);
        assert_eq!(percentile_ms(&ms[..1], 99.0), 1.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }
}
