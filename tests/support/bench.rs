//! The workloads of `xln-bench` (issue 15): payments through xlnd's JSON-RPC API as a program
//! calls it, with latency percentiles, failures and throughput; memory; restart and catch-up.
//!
//! Everything runs on real processes: four `xlnd` nodes (alice - bob - carol - dave; the first
//! three are [`ThreeNodes`]) on a regtest bitcoind or qtumd, called over HTTP with kept-alive
//! connections. Nothing here asserts a speed: the numbers are printed, to be compared across
//! commits (`xln-bench --json`). `tests/bench.rs` runs it with tiny counts to show it works.
//!
//! [`ldk_node`] runs the same [`workloads`] on four LDK Node nodes on the same chain node, so
//! that the report can give xln / LDK Node ratios.

pub mod ldk_node;
pub mod node_api;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};
use ln_core::node::ChannelPolicy;
use serde::Serialize;
use serde_json::{json, Value};

use crate::steps::{fund_channel, gossiped, height, id, mine, new_address, open, usable, WAIT};
use crate::three_nodes::{NodesDir, TestChain, ThreeNodes, BOB, CAROL};
use crate::xlnd::Xlnd;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Payments per workload and level of concurrency.
    pub payments: usize,
    /// The numbers of payments in flight at once to measure every workload at.
    pub concurrency: Vec<usize>,
    /// Payments per workload for all but the keysends over one channel (the invoices and the
    /// three-hop workloads); `None`: half as many as `payments` (so that, with the defaults,
    /// everything alice pays fits in LDK Node's largest channel), 0 skips them.
    pub other_payments: Option<usize>,
    /// The amount of each payment, msat; `None`: [`DEFAULT_AMOUNT_MSAT`], or the chain's HTLC
    /// minimum where that is more (Qtum's).
    pub amount_msat: Option<u64>,
    /// Blocks mined while carol is stopped, to time her catching up (0: skip).
    pub sync_blocks: u32,
    /// Extra `xlnd` arguments for every node (e.g. `--htlc-batching=ldk`).
    pub xlnd_args: Vec<String>,
    /// Whether to run the same workloads on LDK Node too (on Bitcoin only).
    pub ldk_node: bool,
    /// Whether to run the workloads over one channel through the in-process `Node` API too
    /// ([`node_api`]).
    pub node_api: bool,
    /// How long to keep paying at one in flight after everything else (zero: skip), to see
    /// what a node that never stops paying turns into; see [`SustainedFigures`].
    pub sustained: Duration,
    /// Channels a fifth node, erin, opens to bob before her restart is timed (0: skip): a
    /// node's start-up with that many channel monitors to load.
    pub restart_channels: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            payments: 1000,
            concurrency: vec![1, 25, 100, 400],
            other_payments: None,
            amount_msat: None,
            sync_blocks: 2000,
            xlnd_args: Vec::new(),
            ldk_node: true,
            node_api: true,
            sustained: Duration::ZERO,
            restart_channels: 100,
        }
    }
}

/// The amount of each payment unless told otherwise, msat: small, so that every workload fits
/// in the channels.
pub const DEFAULT_AMOUNT_MSAT: u64 = 1_000_000;

/// What a workload pays, over and over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Keysends from alice to bob, over their channel.
    KeysendToBob,
    /// Invoices of bob, made beforehand (not timed), paid by alice, one each.
    InvoicesOfBob,
    /// Keysends from alice to dave over three channels: through bob, then carol.
    KeysendToDave,
    /// Invoices of dave, made beforehand (not timed), paid by alice through bob and carol.
    InvoicesOfDave,
}

impl WorkloadKind {
    /// Every kind, in the order each level of concurrency runs them.
    pub const ALL: [Self; 4] = [
        Self::KeysendToBob,
        Self::InvoicesOfBob,
        Self::KeysendToDave,
        Self::InvoicesOfDave,
    ];

    /// The workload's name in the figures: what was paid, how.
    pub fn name(self) -> &'static str {
        match self {
            Self::KeysendToBob => "keysend A->B",
            Self::InvoicesOfBob => "pay A->B",
            Self::KeysendToDave => "keysend A->B->C->D",
            Self::InvoicesOfDave => "pay A->B->C->D",
        }
    }
}

/// One measured run of payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// What is paid.
    pub kind: WorkloadKind,
    /// How many payments.
    pub payments: usize,
    /// How many of them are in flight at once.
    pub in_flight: usize,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} payments, {} in flight",
            self.kind.name(),
            self.payments,
            self.in_flight
        )
    }
}

/// The workloads `options` asks for, in the order xln and LDK Node both run them: at each level
/// of concurrency in turn, every [`WorkloadKind`].
///
/// The lowest concurrency comes first by default, so that the rows at one in flight follow the
/// fewest payments: LDK keeps each payment sent for 7-8 minutes and writes them all with every
/// batch of monitor updates, so a workload pays a little for the ones before it
/// ([`SustainedFigures`]).
pub fn workloads(options: &Options) -> Vec<Workload> {
    let others = options
        .other_payments
        .unwrap_or(options.payments.div_ceil(2));
    let mut workloads = Vec::new();
    for &in_flight in &options.concurrency {
        for kind in WorkloadKind::ALL {
            let payments = if kind == WorkloadKind::KeysendToBob {
                options.payments
            } else {
                others
            };
            if payments > 0 {
                workloads.push(Workload {
                    kind,
                    payments,
                    in_flight,
                });
            }
        }
    }
    workloads
}

/// The keysends before the measured workloads, on each node: the first payments over a channel
/// pay for things done once (routes, scorer, connections' buffers) that no workload should.
pub const WARM_UP: Workload = Workload {
    kind: WorkloadKind::KeysendToBob,
    payments: 20,
    in_flight: 1,
};

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
    /// CPU time the nodes used during the workload, per payment, ms: for xln the four xlnd
    /// processes' (not the bench's calls), for LDK Node this process's (its four nodes and the
    /// calls into them). Unlike payments/s it hardly depends on what else the machine runs.
    pub cpu_ms_per_payment: f64,
}

impl PaymentFigures {
    /// The figures of `workload` from each payment's outcome (its latency, or why it failed),
    /// made in `wall` time while the nodes used `cpu` time.
    pub fn new(
        workload: &Workload,
        outcomes: impl IntoIterator<Item = std::result::Result<Duration, String>>,
        wall: Duration,
        cpu: Duration,
    ) -> Self {
        let mut latencies = Vec::new();
        let mut failed = 0;
        let mut first_failure = None;
        for outcome in outcomes {
            match outcome {
                Ok(latency) => latencies.push(latency),
                Err(failure) => {
                    failed += 1;
                    first_failure.get_or_insert(failure);
                }
            }
        }
        // A payment that never reported back (a worker that died) failed too.
        let unreported = workload.payments.saturating_sub(latencies.len() + failed);
        if unreported > 0 {
            failed += unreported;
            first_failure.get_or_insert_with(|| format!("{unreported} payments never ended"));
        }
        latencies.sort();
        Self {
            workload: workload.kind.name().to_owned(),
            in_flight: workload.in_flight,
            payments: workload.payments,
            failed,
            payments_per_sec: latencies.len() as f64 / wall.as_secs_f64().max(1e-9),
            p50_ms: percentile_ms(&latencies, 50.0),
            p99_ms: percentile_ms(&latencies, 99.0),
            max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            first_failure,
            cpu_ms_per_payment: cpu.as_secs_f64() * 1e3 / workload.payments.max(1) as f64,
        }
    }
}

/// xln's figures of one workload divided by LDK Node's.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// The workload, as in [`PaymentFigures::workload`].
    pub workload: String,
    /// Payments in flight at once.
    pub in_flight: usize,
    /// xln's payments/s over LDK Node's: above 1, xln pays faster. `null` when either made no
    /// payment.
    pub payments_per_sec: Option<f64>,
    /// xln's p50 latency over LDK Node's: below 1, xln answers sooner. `null` when either made
    /// no payment.
    pub p50_ms: Option<f64>,
}

/// xln / LDK Node for each workload both measured.
pub fn ratios(xln: &[PaymentFigures], ldk_node: &[PaymentFigures]) -> Vec<Ratio> {
    let ratio = |xln: f64, ldk_node: f64| (xln > 0.0 && ldk_node > 0.0).then(|| xln / ldk_node);
    xln.iter()
        .filter_map(|x| {
            let l = ldk_node
                .iter()
                .find(|l| l.workload == x.workload && l.in_flight == x.in_flight)?;
            Some(Ratio {
                workload: x.workload.clone(),
                in_flight: x.in_flight,
                payments_per_sec: ratio(x.payments_per_sec, l.payments_per_sec),
                p50_ms: ratio(x.p50_ms, l.p50_ms),
            })
        })
        .collect()
}

/// One stretch of the sustained workload: keysends alice -> bob at one in flight, paid without
/// a pause since the workload began.
///
/// A node that keeps paying does not stay as fast as its first thousand payments: LDK keeps
/// each payment it sent for 7 to 8 minutes after it succeeded (to refuse the same payment id
/// twice), and the channel manager, which is written with every batch of monitor updates,
/// grows with them; the channel monitor grows with every commitment. These rows show how much
/// that costs, minute by minute.
#[derive(Debug, Clone, Serialize)]
pub struct SustainedFigures {
    /// Seconds from the workload's start to this stretch's end.
    pub until_sec: f64,
    /// This stretch's payments, as a workload's.
    pub figures: PaymentFigures,
    /// alice's resident memory at the stretch's end, KiB.
    pub alice_rss_kib: u64,
    /// alice's data directory at the stretch's end, KiB.
    pub alice_datadir_kib: u64,
}

/// The length of each stretch of the sustained workload: the last stretch may be shorter.
pub const SUSTAINED_STRETCH: Duration = Duration::from_secs(60);

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
    /// The amount of each payment, msat.
    pub amount_msat: u64,
    /// The capacity of each of xln's channels A-B, B-C and C-D, sat.
    pub channel_sat: u64,
    /// The capacity of each of LDK Node's channels, sat: xln's, or less if LDK Node does not
    /// accept that much (`null` when LDK Node was not measured).
    pub ldk_node_channel_sat: Option<u64>,
    /// The payment workloads, through xlnd's JSON-RPC API.
    pub payments: Vec<PaymentFigures>,
    /// The workloads over one channel through the `Node` API of two nodes in the bench's
    /// process ([`node_api`]); empty when skipped.
    pub node_api_payments: Vec<PaymentFigures>,
    /// The same workloads on four LDK Node nodes on the same chain node; empty when skipped.
    pub ldk_node_payments: Vec<PaymentFigures>,
    /// Why LDK Node was not measured, if it was not.
    pub ldk_node_skipped: Option<String>,
    /// xln (JSON-RPC API) / LDK Node for each workload.
    pub xln_over_ldk_node: Vec<Ratio>,
    /// xln (`Node` API) / LDK Node for each workload measured through the `Node` API.
    pub node_api_over_ldk_node: Vec<Ratio>,
    /// alice's and bob's resident memory before the payments, KiB.
    pub rss_idle_kib: [u64; 2],
    /// The same after them.
    pub rss_after_kib: [u64; 2],
    /// alice's and bob's data directories after the payments, KiB: channel monitors grow with
    /// every commitment.
    pub datadir_after_kib: [u64; 2],
    /// From starting bob's xlnd again (2 channels) to its first RPC answer, ms.
    pub restart_ms: f64,
    /// The channels erin had when her restart was timed (0: not measured).
    pub restart_channels: u32,
    /// From starting erin's xlnd again, with `restart_channels` channels, to its first RPC
    /// answer, ms (0 when not measured).
    pub restart_with_channels_ms: f64,
    /// Blocks carol caught up after a restart, and how fast.
    pub catch_up_blocks: u32,
    /// Blocks per second of that catch-up (0 when skipped).
    pub catch_up_blocks_per_sec: f64,
    /// The sustained workload, one entry per stretch (empty when skipped); xln only.
    pub sustained: Vec<SustainedFigures>,
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

/// One payment's latency, or why it failed.
type Outcome = std::result::Result<Duration, String>;

/// Makes payments `0..workload.payments` with `pay` (given each one's index),
/// `workload.in_flight` at a time: as many tasks, each making its next payment when its last one
/// ended. Returns their outcomes and the wall time they took.
async fn pay_in_flight<Pay, Paid>(workload: &Workload, pay: Pay) -> (Vec<Outcome>, Duration)
where
    Pay: Fn(usize) -> Paid + Clone + Send + 'static,
    Paid: std::future::Future<Output = Outcome> + Send,
{
    let payments = workload.payments;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..workload.in_flight.max(1) {
        let (pay, next) = (pay.clone(), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= payments {
                    return outcomes;
                }
                outcomes.push(pay(index).await);
            }
        }));
    }
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.unwrap_or_default());
    }
    (outcomes, started.elapsed())
}

/// Makes `workload.payments` payments from `payer`, `workload.in_flight` at a time.
async fn pay_many(
    nodes: &[&Xlnd],
    payer: &RpcClient,
    payment: Payment,
    amount_msat: u64,
    workload: &Workload,
) -> Result<PaymentFigures> {
    let cpu_before = nodes_cpu_time(nodes)?;
    let (payer, payment) = (payer.clone(), Arc::new(payment));
    let (outcomes, wall) = pay_in_flight(workload, move |index| {
        let (payer, payment) = (payer.clone(), Arc::clone(&payment));
        async move { pay_once(&payer, &payment, index, amount_msat).await }
    })
    .await;
    let cpu = nodes_cpu_time(nodes)?.saturating_sub(cpu_before);
    Ok(PaymentFigures::new(workload, outcomes, wall, cpu))
}

/// Makes the `index`th payment of `payment` and returns its latency, or why it failed.
async fn pay_once(payer: &RpcClient, payment: &Payment, index: usize, amount_msat: u64) -> Outcome {
    let (method, params) = match payment {
        Payment::Keysend { destination } => (
            "keysend",
            json!({"destination": destination, "amount_msat": amount_msat}),
        ),
        Payment::Invoices(invoices) => ("pay", json!({"bolt11": invoices[index]})),
    };
    let call = Instant::now();
    match payer.call(method, params).await {
        Ok(paid) if paid["status"] == "succeeded" => Ok(call.elapsed()),
        Ok(paid) => Err(format!(
            "{}: {}",
            paid["status"],
            paid["failure_reason"].as_str().unwrap_or("")
        )),
        Err(error) => Err(format!("{error:#}")),
    }
}

/// Keysends from alice to bob at one in flight for `options.sustained`, with figures for each
/// [`SUSTAINED_STRETCH`] of it; `progress` hears of each stretch's figures as it ends.
async fn pay_sustained(
    nodes: &[&Xlnd],
    alice: &RpcClient,
    to_bob: &Payment,
    amount_msat: u64,
    options: &Options,
    progress: &dyn Fn(&str),
) -> Result<Vec<SustainedFigures>> {
    let [alice_node, ..] = nodes else {
        bail!("no alice to measure");
    };
    let started = Instant::now();
    let end = started + options.sustained;
    let mut rows = Vec::new();
    let mut row_end = started;
    while row_end < end {
        row_end = (row_end + SUSTAINED_STRETCH).min(end);
        let cpu_before = nodes_cpu_time(nodes)?;
        let row_started = Instant::now();
        let mut outcomes = Vec::new();
        while Instant::now() < row_end {
            outcomes.push(pay_once(alice, to_bob, 0, amount_msat).await);
        }
        let workload = Workload {
            kind: WorkloadKind::KeysendToBob,
            payments: outcomes.len(),
            in_flight: 1,
        };
        let cpu = nodes_cpu_time(nodes)?.saturating_sub(cpu_before);
        let figures = PaymentFigures::new(&workload, outcomes, row_started.elapsed(), cpu);
        let stretch = SustainedFigures {
            until_sec: started.elapsed().as_secs_f64(),
            figures,
            alice_rss_kib: alice_node.rss_kib()?,
            alice_datadir_kib: dir_size(alice_node.datadir())? / 1024,
        };
        progress(&format!(
            "xln: sustained, {:.0} s: {:.1} payments/s, p50 {:.1} ms, {:.2} CPU ms/payment",
            stretch.until_sec,
            stretch.figures.payments_per_sec,
            stretch.figures.p50_ms,
            stretch.figures.cpu_ms_per_payment
        ));
        rows.push(stretch);
    }
    Ok(rows)
}

/// The CPU time `nodes` have used so far, together.
fn nodes_cpu_time(nodes: &[&Xlnd]) -> Result<Duration> {
    nodes.iter().map(|node| node.cpu_time()).sum()
}

/// The `p`th percentile (nearest rank) of sorted `latencies`, ms.
fn percentile_ms(latencies: &[Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1e3
}

/// Starts a fourth node, dave, in `dir`, at the end of a public channel C-D as large as the
/// others (carol opens it with a coin from alice), and waits until alice can route to him
/// through bob and carol: the three-hop workloads' payee.
fn start_dave(
    chain: TestChain,
    net: &ThreeNodes,
    dir: &NodesDir,
    options: &Options,
) -> Result<Xlnd> {
    let [alice, bob, carol] = &net.nodes;
    let args = extra_node_args(chain, &[], options);
    let dave = Xlnd::start_with_args(&net.chain_node, &dir.path().join("dave"), "dave", &args)?;
    // carol has no coins of her own: ThreeNodes funds alice and bob only.
    let coin_sat = net.capacity_sat + FUNDING_FEE_ALLOWANCE_SAT;
    alice
        .cli(&["withdraw", &new_address(carol)?, &coin_sat.to_string()])
        .context("alice sending carol the coin for C-D")?;
    mine(&net.chain_node, 1, &[alice, bob, carol, &dave])?;
    carol.wait_cli(&["listfunds"], "carol's coin from alice", WAIT, |funds| {
        (funds["onchain_confirmed_sat"].as_u64() >= Some(coin_sat)).then_some(())
    })?;
    let cd = open(
        &net.chain_node,
        &net.params,
        carol,
        &dave,
        net.capacity_sat,
        true,
    )?;
    // Announced after 6 confirmations (BOLT 7).
    mine(&net.chain_node, 6, &[alice, bob, carol, &dave])?;
    gossiped(
        alice,
        &net.short_channel_id(CAROL, &cd)?,
        &net.ids[CAROL],
        "C-D in alice's graph",
    )?;
    Ok(dave)
}

/// The arguments of an xlnd started beside [`ThreeNodes`]: its chain's, then `own`, then
/// `options.xlnd_args` (as every node of the bench gets them).
fn extra_node_args<'a>(chain: TestChain, own: &[&'a str], options: &'a Options) -> Vec<&'a str> {
    chain
        .xlnd_chain_arg()
        .into_iter()
        .chain(own.iter().copied())
        .chain(options.xlnd_args.iter().map(String::as_str))
        .collect()
}

/// What each of erin's channels may cost in fees to open, beyond its capacity, sat: more than
/// a funding transaction pays at any regtest fee rate (Qtum's floor, 402 sat/vB, included).
const FUNDING_FEE_ALLOWANCE_SAT: u64 = 200_000;

/// How many of erin's channels are opened per block: LDK refuses a fifth channel from one peer
/// while four are unconfirmed (`MAX_UNFUNDED_CHANS_PER_PEER`).
const OPENS_PER_BLOCK: u32 = 4;

/// Starts a fifth node, erin, has alice send her a coin per channel, has her open
/// `options.restart_channels` channels to bob one after another (a block mined after every
/// [`OPENS_PER_BLOCK`]), and times her restart: from starting her xlnd again to its first
/// RPC answer, ms. She is stopped again before this returns, so she takes no part in what
/// follows.
fn restart_with_channels(
    chain: TestChain,
    net: &ThreeNodes,
    options: &Options,
    progress: &dyn Fn(&str),
) -> Result<f64> {
    let channels = options.restart_channels;
    progress(&format!(
        "erin opens {channels} channels to bob, then restarts"
    ));
    let [alice, bob, _] = &net.nodes;
    let dir = NodesDir::new(tempfile::tempdir()?);
    // She polls the chain node often: her channels wait for her to see their blocks.
    let args = extra_node_args(chain, &["--block-poll-interval-ms=100"], options);
    let erin = Xlnd::start_with_args(&net.chain_node, &dir.path().join("erin"), "erin", &args)?;
    let policy = ChannelPolicy::for_chain(&net.params);
    let channel_sat = policy.min_funding_sat;
    // A coin of her own for each channel: a wallet funds channels from confirmed coins only.
    let coin_sat = channel_sat + FUNDING_FEE_ALLOWANCE_SAT;
    for sent in 1..=channels {
        alice
            .cli(&["withdraw", &new_address(&erin)?, &coin_sat.to_string()])
            .with_context(|| format!("alice sending erin coin {sent} of {channels}"))?;
        // Each withdrawal spends the change of the one before: the chain node's mempool takes
        // at most 25 unconfirmed transactions in a row.
        if sent % 20 == 0 || sent == channels {
            mine(&net.chain_node, 1, &[alice, &erin])?;
        }
    }
    let funding_sat = u64::from(channels) * coin_sat;
    erin.wait_cli(&["listfunds"], "erin's coins from alice", WAIT, |funds| {
        (funds["onchain_confirmed_sat"].as_u64() >= Some(funding_sat)).then_some(())
    })?;
    erin.cli(&["connect", &bob.uri()?])?;
    for opened in 1..=channels {
        fund_channel(&erin, &net.ids[BOB], channel_sat, false)
            .with_context(|| format!("erin opening channel {opened} of {channels} to bob"))?;
        if opened % OPENS_PER_BLOCK == 0 {
            mine(&net.chain_node, 1, &[&erin, bob])?;
        }
        if opened % 20 == 0 {
            progress(&format!("erin: {opened} of {channels} channels open"));
        }
    }
    mine(&net.chain_node, policy.minimum_depth, &[alice, bob, &erin])?;
    erin.wait_cli(
        &["listchannels"],
        "all of erin's channels usable",
        WAIT,
        |list| {
            let usable = list["channels"]
                .as_array()?
                .iter()
                .filter(|channel| channel["is_usable"] == true)
                .count();
            (usable == channels as usize).then_some(())
        },
    )?;
    let restart_ms = timed_restart(&erin)?;
    erin.stop()?;
    Ok(restart_ms)
}

/// Stops `node` and starts it again; returns the time from the start to its first RPC answer,
/// ms.
fn timed_restart(node: &Xlnd) -> Result<f64> {
    node.stop()?;
    let restart = Instant::now();
    node.restart()?;
    Ok(restart.elapsed().as_secs_f64() * 1e3)
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

/// Sets up alice - bob - carol - dave on `chain` and measures everything `options` asks for;
/// `progress` hears of each step as it starts.
pub fn run(chain: TestChain, options: &Options, progress: &dyn Fn(&str)) -> Result<Report> {
    let workloads = workloads(options);
    let policy = ChannelPolicy::for_chain(&chain.params());
    let amount_msat = options
        .amount_msat
        .unwrap_or(DEFAULT_AMOUNT_MSAT.max(policy.htlc_minimum_msat));
    ensure!(
        amount_msat >= policy.htlc_minimum_msat,
        "--amount-msat={amount_msat} is below this chain's HTLC minimum of {} msat: every \
         payment would fail",
        policy.htlc_minimum_msat
    );
    let capacity_sat = capacity_sat(&policy, amount_msat, &workloads)?;
    if ldk_node_skipped(chain, options).is_none() {
        // Before xln's half, not after it: LDK Node's channels are at most this large.
        ldk_node::ensure_workloads_fit(ldk_node::MAX_CHANNEL_SAT, amount_msat, &workloads)?;
    }
    progress("starting the chain node and alice, bob and carol; funding and opening A-B and B-C");
    let xlnd_args: Vec<&str> = options.xlnd_args.iter().map(String::as_str).collect();
    let net = ThreeNodes::start_with_capacity(
        chain,
        "xln-bench",
        [&xlnd_args, &xlnd_args, &xlnd_args],
        Some(capacity_sat),
    )?
    .context("no qtumd found (set QTUMD, or see docs/qtum.md)")?;
    progress("waiting for alice to learn B-C from gossip");
    net.wait_for_gossip()?;
    let [alice, bob, carol] = &net.nodes;
    progress("starting dave; carol opens C-D");
    let dave_dir = NodesDir::new(tempfile::tempdir()?);
    let dave = start_dave(chain, &net, &dave_dir, options)?;
    let dave_id = id(&dave)?;
    let payers = [alice, bob, carol, &dave];
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
        let dave_rpc = RpcClient::new(&dave)?;
        let to_dave = Payment::Keysend {
            destination: dave_id.clone(),
        };
        progress("xln: warming up: 20 keysends alice -> bob");
        pay_many(&payers, &alice_rpc, to_bob.clone(), amount_msat, &WARM_UP).await?;
        let mut figures = Vec::new();
        for workload in &workloads {
            progress(&format!("xln: {workload}"));
            let payment = match workload.kind {
                WorkloadKind::KeysendToBob => to_bob.clone(),
                WorkloadKind::InvoicesOfBob => Payment::Invoices(Arc::new(
                    invoices(&bob_rpc, workload.payments, amount_msat).await?,
                )),
                WorkloadKind::KeysendToDave => to_dave.clone(),
                WorkloadKind::InvoicesOfDave => Payment::Invoices(Arc::new(
                    invoices(&dave_rpc, workload.payments, amount_msat).await?,
                )),
            };
            figures.push(pay_many(&payers, &alice_rpc, payment, amount_msat, workload).await?);
        }
        anyhow::Ok(figures)
    })?;
    let rss_after_kib = [alice.rss_kib()?, bob.rss_kib()?];
    let datadir_after_kib = [
        dir_size(alice.datadir())? / 1024,
        dir_size(bob.datadir())? / 1024,
    ];
    // He is only the three-hop workloads' payee: stopped, he takes no part in what follows.
    dave.stop()?;

    let node_api_payments = if options.node_api {
        runtime.block_on(node_api::measure(
            &net.chain_node,
            &net.params,
            alice,
            net.capacity_sat,
            amount_msat,
            &workloads,
            progress,
        ))?
    } else {
        Vec::new()
    };

    // Before the catch-up below: LDK Node's nodes are funded by mining, and regtest's block
    // subsidy halves every 150 blocks, to almost nothing after 2,000.
    let (ldk_node_payments, ldk_node_skipped) = match ldk_node_skipped(chain, options) {
        Some(reason) => {
            progress(&format!("LDK Node: not measured: {reason}"));
            (Vec::new(), Some(reason))
        }
        None => (
            ldk_node::measure(
                &net.chain_node,
                ldk_node::capacity_sat(net.capacity_sat),
                amount_msat,
                &workloads,
                progress,
            )?,
            None,
        ),
    };

    progress("restarting bob");
    let restart_ms = timed_restart(bob)?;

    let restart_with_channels_ms = if options.restart_channels == 0 {
        0.0
    } else {
        restart_with_channels(chain, &net, options, progress)?
    };

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

    // Last, so that it changes none of the figures above: it leaves alice's manager and the
    // monitors larger than any other workload does.
    let sustained = if options.sustained.is_zero() {
        Vec::new()
    } else {
        // bob was restarted above: alice pays once she has him back.
        usable(alice, &net.channels[0].0, Duration::from_secs(60))?;
        progress(&format!(
            "xln: sustained: keysends alice -> bob at 1 in flight for {} s",
            options.sustained.as_secs()
        ));
        runtime.block_on(async {
            let to_bob = Payment::Keysend {
                destination: net.ids[BOB].clone(),
            };
            pay_sustained(
                &[alice, bob, carol],
                &RpcClient::new(alice)?,
                &to_bob,
                amount_msat,
                options,
                progress,
            )
            .await
        })?
    };
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
        xln_over_ldk_node: ratios(&figures, &ldk_node_payments),
        node_api_over_ldk_node: ratios(&node_api_payments, &ldk_node_payments),
        node_api_payments,
        amount_msat,
        channel_sat: net.capacity_sat,
        ldk_node_channel_sat: ldk_node_skipped
            .is_none()
            .then(|| ldk_node::capacity_sat(net.capacity_sat)),
        payments: figures,
        ldk_node_payments,
        ldk_node_skipped,
        rss_idle_kib,
        rss_after_kib,
        datadir_after_kib,
        restart_ms,
        restart_channels: options.restart_channels,
        restart_with_channels_ms,
        catch_up_blocks: options.sync_blocks,
        catch_up_blocks_per_sec,
        sustained,
    })
}

/// The size of each channel, sat: the default ([`ThreeNodes::default_capacity_sat`]), or more
/// where `workloads` of `amount_msat` payments and the warm-up, all paid out of A-B, need more
/// (a fifth more than they pay, for routing fees and the reserves). Fails if that is more than
/// the chain's largest channel.
fn capacity_sat(policy: &ChannelPolicy, amount_msat: u64, workloads: &[Workload]) -> Result<u64> {
    let paid_sat = paid_out_of_a_b_sat(amount_msat, workloads);
    let needed_sat = paid_sat.saturating_add(paid_sat / 5) + policy.min_reserve_sat;
    ensure!(
        needed_sat <= policy.max_funding_sat,
        "the workloads pay {paid_sat} sat out of one channel, more than this chain's largest \
         channel ({} sat) carries: fewer --payments or --other-payments, or a smaller \
         --amount-msat (at least {} msat here)",
        policy.max_funding_sat,
        policy.htlc_minimum_msat
    );
    Ok(ThreeNodes::default_capacity_sat(policy).max(needed_sat.next_multiple_of(1_000_000)))
}

/// What alice pays out of A-B, sat, in `workloads` of `amount_msat` payments and the warm-up
/// (routing fees left out).
fn paid_out_of_a_b_sat(amount_msat: u64, workloads: &[Workload]) -> u64 {
    let payments = WARM_UP.payments + workloads.iter().map(|w| w.payments).sum::<usize>();
    (payments as u64).saturating_mul(amount_msat.div_ceil(1000))
}

/// Why LDK Node is not to be measured in this run, if it is not.
fn ldk_node_skipped(chain: TestChain, options: &Options) -> Option<String> {
    if chain == TestChain::Qtum {
        Some("it knows only Bitcoin's networks, not qtum".to_owned())
    } else if !options.ldk_node {
        Some("--no-ldk-node".to_owned())
    } else {
        None
    }
}

/// `report` as the table `xln-bench` prints.
pub fn table(report: &Report) -> String {
    let mut out = format!(
        "xln-bench on {} ({} xlnd{}, {} CPUs; write+fsync of 4 KiB here: p50 {:.0} µs)\n\
         payments of {} msat over xln's channels of {} sat\n\n",
        report.chain,
        report.xlnd_profile,
        if report.xlnd_args.is_empty() {
            String::new()
        } else {
            format!(" {}", report.xlnd_args.join(" "))
        },
        report.cpus,
        report.fsync_p50_us,
        report.amount_msat,
        report.channel_sat
    );
    out.push_str(&payments_table(report));
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
    if report.restart_channels > 0 {
        out.push_str(&format!(
            "restart of erin ({} channels) to its first RPC answer: {:.0} ms\n",
            report.restart_channels, report.restart_with_channels_ms
        ));
    }
    if report.catch_up_blocks > 0 {
        out.push_str(&format!(
            "catching up {} blocks: {:.1} blocks/s\n",
            report.catch_up_blocks, report.catch_up_blocks_per_sec
        ));
    }
    if !report.sustained.is_empty() {
        out.push_str(&sustained_table(&report.sustained));
    }
    out
}

/// The sustained workload's figures, a row per stretch.
fn sustained_table(rows: &[SustainedFigures]) -> String {
    let mut out = format!(
        "\nsustained keysends A->B at 1 in flight (xln only), per stretch:\n{:>7} {:>8} {:>7} {:>9} {:>9} {:>9} {:>10} {:>14} {:>17}\n",
        "until s",
        "payments",
        "failed",
        "pay/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/pay",
        "alice RSS KiB",
        "alice datadir KiB"
    );
    for row in rows {
        let f = &row.figures;
        out.push_str(&format!(
            "{:>7.0} {:>8} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>10.2} {:>14} {:>17}\n",
            row.until_sec,
            f.payments,
            f.failed,
            f.payments_per_sec,
            f.p50_ms,
            f.p99_ms,
            f.cpu_ms_per_payment,
            row.alice_rss_kib,
            row.alice_datadir_kib
        ));
    }
    out
}

/// The payment figures: per workload a row for xln through its JSON-RPC API, one through its
/// Rust API when measured and one for LDK Node when measured, each xln row with its ratios to
/// LDK Node's; then the first failure of each workload that had failures.
fn payments_table(report: &Report) -> String {
    let measured_ldk_node = !report.ldk_node_payments.is_empty();
    let mut out = format!(
        "{:<18} {:>9} {:>8} {:<12} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "workload",
        "in flight",
        "payments",
        "node",
        "failed",
        "pay/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU ms/pay"
    );
    if measured_ldk_node {
        out.push_str(&format!(" {:>13} {:>11}", "xln/LDK pay/s", "xln/LDK p50"));
    }
    out.push('\n');
    let row = |node: &str, f: &PaymentFigures, ratios: Option<&[Ratio]>| {
        let mut line = format!(
            "{node:<12} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.2}",
            f.failed, f.payments_per_sec, f.p50_ms, f.p99_ms, f.max_ms, f.cpu_ms_per_payment
        );
        if let Some(ratios) = ratios {
            let ratio = ratios
                .iter()
                .find(|r| r.workload == f.workload && r.in_flight == f.in_flight);
            let shown = |ratio: Option<f64>| ratio.map_or("-".to_owned(), |r| format!("{r:.2}"));
            line.push_str(&format!(
                " {:>13} {:>11}",
                shown(ratio.and_then(|r| r.payments_per_sec)),
                shown(ratio.and_then(|r| r.p50_ms)),
            ));
        }
        line
    };
    let rpc_ratios = measured_ldk_node.then_some(report.xln_over_ldk_node.as_slice());
    let node_api_ratios = measured_ldk_node.then_some(report.node_api_over_ldk_node.as_slice());
    for xln in &report.payments {
        out.push_str(&format!(
            "{:<18} {:>9} {:>8} {}\n",
            xln.workload,
            xln.in_flight,
            xln.payments,
            row("xln RPC", xln, rpc_ratios)
        ));
        // The other rows of the workload, under its xln RPC row.
        let same = |f: &&PaymentFigures| f.workload == xln.workload && f.in_flight == xln.in_flight;
        if let Some(node_api) = report.node_api_payments.iter().find(same) {
            out.push_str(&format!(
                "{:<37} {}\n",
                "",
                row("xln Rust API", node_api, node_api_ratios)
            ));
        }
        if let Some(ldk_node) = report.ldk_node_payments.iter().find(same) {
            out.push_str(&format!("{:<37} {}\n", "", row("LDK Node", ldk_node, None)));
        }
    }
    let failures = [
        ("xln RPC", &report.payments),
        ("xln Rust API", &report.node_api_payments),
        ("LDK Node", &report.ldk_node_payments),
    ];
    for (node, payments) in failures {
        for f in payments.iter().filter(|f| f.failed > 0) {
            out.push_str(&format!(
                "  {node} {} at {} in flight, first failure: {}\n",
                f.workload,
                f.in_flight,
                f.first_failure.as_deref().unwrap_or("?")
            ));
        }
    }
    out.push_str(
        "xln RPC: through xlnd's JSON-RPC API, as a program calls it over HTTP; xln Rust API: \
         two ln_core::Nodes in this process, over one channel\n",
    );
    match &report.ldk_node_skipped {
        Some(reason) => out.push_str(&format!("LDK Node: not measured: {reason}\n")),
        None => out.push_str(&format!(
            "LDK Node: the same payments on four LDK Node nodes A - B - C - D in this process, \
             through its API,\n  on channels of {} sat (xln: {} sat). xln/LDK: pay/s above 1 \
             and p50 below 1 favour xln.\n",
            report.ldk_node_channel_sat.unwrap_or(0),
            report.channel_sat
        )),
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
