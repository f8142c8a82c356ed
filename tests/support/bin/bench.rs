//! `xln-bench`: how fast xln pays, measured on real processes (issue 15).
//!
//! Starts a regtest chain node (bitcoind, built from source on first use, or qtumd) and four
//! xlnd nodes alice - bob - carol - dave with public channels A-B, B-C and C-D, then pays
//! through xlnd's JSON-RPC API as a program would (HTTP, kept-alive connections) and prints payments/s,
//! p50/p99/max latency and failures per workload, memory, restart time and catch-up speed.
//! It runs the same payments on four LDK Node nodes in this process, on the same bitcoind, and
//! prints xln / LDK Node ratios. `--json` prints the same as one JSON document, to compare
//! commits.

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use xln_tests::bench::{run, table, Options};
use xln_tests::three_nodes::TestChain;

/// The chain to measure on.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Chain {
    /// A regtest bitcoind, built from source on first use.
    Bitcoin,
    /// A regtest qtumd: `$QTUMD`, else `../shared/qtum/bin/qtumd` beside the checkout, else
    /// `qtumd` on `PATH`.
    Qtum,
}

/// Measure xln's payments (beside LDK Node's), memory, restart and chain catch-up on real
/// processes.
#[derive(Parser)]
#[command(
    version,
    long_about = "Measure xln on real processes: a regtest chain node and four xlnd nodes \
        alice - bob - carol - dave (public channels A-B, B-C and C-D), paid through xlnd's \
        JSON-RPC API.\n\n\
        Prints, per workload, payments/s, p50/p99/max latency (from the call to its answer) and \
        failures. At each --concurrency in turn: keysends alice -> bob, invoices of bob paid by \
        alice, keysends alice -> bob -> carol -> dave and invoices of dave paid by alice (three \
        hops). The workloads over one channel are then made again through xln's Rust API: two \
        ln_core::Node's in the bench's process, called without HTTP or JSON (rows \"xln Rust \
        API\"; --no-node-api skips them). Then alice's and bob's RSS, bob's restart time, the restart time of a fifth node, \
        erin, with --restart-channels channels to bob, and carol's catch-up speed over \
        --sync-blocks blocks; last, with --sustained-minutes, a row per minute of keysends alice -> bob that do not stop.\n\n\
        The same payments are then made on LDK Node (the ldk-node crate, in this process): four \
        nodes A - B - C - D on the same bitcoind, with announced channels A-B, B-C and C-D, \
        paid the same amounts as xln's, its default SQLite store, called through its API; a payment's \
        latency runs from the send call to its PaymentSuccessful or PaymentFailed event. LDK Node \
        holds each HTLC for LDK's random forwarding delay (median 50 ms) before it forwards or \
        settles it: --xlnd-arg=--htlc-batching=ldk has xlnd do the same. It accepts channels of \
        at most 16,777,215 sat, so its channels are that large where xln's are larger. Each \
        workload gets an LDK Node row and the ratios xln / LDK Node of payments/s (above 1: xln \
        pays faster) and p50 (below 1: xln answers sooner). LDK Node allows 50 HTLCs in flight \
        per channel (LDK's default, which it does not let one change), so it refuses payments \
        beyond 50 in flight, and they count as failures. --no-ldk-node skips it; on --chain qtum \
        it cannot run (it knows only Bitcoin's networks) and is skipped.\n\n\
        Run it as `cargo run --release -p xln-tests --bin xln-bench`: xlnd is built in the \
        profile the bench was built in. The first line shows this disk's write+fsync time, the \
        floor under every durable step of a payment."
)]
struct Args {
    /// The chain to run on.
    #[arg(long, value_enum, default_value_t = Chain::Bitcoin)]
    chain: Chain,
    /// Payments per workload.
    #[arg(long, default_value_t = 1000)]
    payments: usize,
    /// Payments in flight at once, comma-separated: every workload runs at each.
    #[arg(long, value_delimiter = ',', default_value = "1,25,100,400")]
    concurrency: Vec<usize>,
    /// Payments per workload for all but the keysends alice -> bob (the invoices and the
    /// three-hop workloads) [default: half of --payments]; 0 skips them.
    #[arg(long)]
    other_payments: Option<usize>,
    /// Amount of each payment, msat [default: 1000000, or the chain's HTLC minimum where that
    /// is more: 200000000 on qtum]. The channels are opened large enough for all the payments.
    #[arg(long)]
    amount_msat: Option<u64>,
    /// Blocks carol catches up after a restart (0: skip).
    #[arg(long, default_value_t = 2000)]
    sync_blocks: u32,
    /// An extra argument for every xlnd, e.g. `--xlnd-arg=--htlc-batching=ldk`; repeatable.
    #[arg(long = "xlnd-arg", allow_hyphen_values = true)]
    xlnd_args: Vec<String>,
    /// After everything else, keep paying keysends alice -> bob at one in flight for this many
    /// minutes (fractions allowed) and print a row of figures per minute (xln only; 0: skip).
    /// A node that never stops paying keeps every payment it sent for 7-8 minutes (LDK's
    /// protection against paying the same payment id twice) and writes them all with each
    /// batch of channel updates: this shows what that costs.
    #[arg(long, default_value_t = 0.0, value_parser = minutes)]
    sustained_minutes: f64,
    /// Channels a fifth node, erin, opens to bob (four confirmed per block) before
    /// her restart is timed: start-up with that many channel monitors (0: skip).
    #[arg(long, default_value_t = 100)]
    restart_channels: u32,
    /// Measure xln only: skip the same workloads on LDK Node.
    #[arg(long)]
    no_ldk_node: bool,
    /// Skip the workloads over one channel through xln's in-process `Node` API (two nodes in
    /// the bench's process).
    #[arg(long)]
    no_node_api: bool,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// A number of minutes: finite, not negative, at most a week.
fn minutes(text: &str) -> std::result::Result<f64, String> {
    let minutes: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of minutes"))?;
    if (0.0..=7.0 * 24.0 * 60.0).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(format!("{text} minutes: give 0 to 10080"))
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Progress and logs go to stderr, so that stdout holds only the figures (`--json`).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let options = Options {
        payments: args.payments,
        concurrency: args.concurrency,
        other_payments: args.other_payments,
        amount_msat: args.amount_msat,
        sync_blocks: args.sync_blocks,
        xlnd_args: args.xlnd_args,
        ldk_node: !args.no_ldk_node,
        node_api: !args.no_node_api,
        sustained: Duration::from_secs_f64(args.sustained_minutes * 60.0),
        restart_channels: args.restart_channels,
    };
    let chain = match args.chain {
        Chain::Bitcoin => TestChain::Bitcoin,
        Chain::Qtum => TestChain::Qtum,
    };
    let report = run(chain, &options, &|step| eprintln!("xln-bench: {step}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}
