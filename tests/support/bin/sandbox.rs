//! `xln-sandbox`: a regtest bitcoind of its own, read through xln's `ChainSource`.
//!
//! Builds bitcoind from source on first use (cached afterwards), starts it on free ports in a
//! temporary directory, mines past coinbase maturity, and prints the chain as xln sees it. It then
//! follows the tip until Ctrl-C (mine more with the printed `bitcoin-cli` command and watch), and
//! cleans everything up. The daemon issue turns this into a two-node Lightning sandbox.

use std::time::Duration;

use anyhow::{Context, Result};
use chain_bitcoin::BitcoindChainSource;
use clap::Parser;
use ln_core::chain::fees::{target_name, ALL_CONFIRMATION_TARGETS};
use ln_core::{ChainParams, ChainSource};
use serde_json::{json, Map, Value};
use xln_tests::{burn_address, regtest_chain_source, Bitcoind};

/// Start a throw-away regtest bitcoind and show its chain through xln's Bitcoin backend.
#[derive(Parser)]
#[command(
    version,
    about = "Start a throw-away regtest bitcoind and show its chain through xln's Bitcoin backend.",
    long_about = "Start a throw-away regtest bitcoind and show its chain through xln's Bitcoin backend.\n\n\
        The first run builds bitcoind from source (10-20 minutes on two cores) and caches it in \
        ~/.cache/xln. The sandbox mines past coinbase maturity, prints the chain state as JSON, then \
        follows the tip until Ctrl-C, when it stops bitcoind and deletes its data directory."
)]
struct Args {
    /// Print the chain state once and exit instead of following the tip until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Blocks to mine at start [default: the chain's coinbase maturity + 1, so the first coinbase
    /// is spendable].
    #[arg(long)]
    blocks: Option<u32>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    eprintln!("xln-sandbox: starting a regtest bitcoind (the first run builds it from source, 10-20 min)…");
    let bitcoind = Bitcoind::start().context("starting bitcoind")?;
    let maturity = ChainParams::bitcoin_regtest().coinbase_maturity;
    bitcoind
        .mine(args.blocks.unwrap_or(maturity + 1))
        .context("mining the first blocks")?;

    let source = regtest_chain_source(&bitcoind)
        .await
        .context("connecting xln's Bitcoin backend to bitcoind")?;

    println!(
        "{}",
        serde_json::to_string_pretty(&chain_state(&bitcoind, &source).await?)?
    );
    if args.once {
        return Ok(());
    }

    let cli = bitcoind.binaries().bitcoin_cli.display().to_string();
    let datadir = bitcoind.datadir().display().to_string();
    eprintln!();
    eprintln!("bitcoind is running. Mine a block from another terminal with:");
    eprintln!(
        "  {cli} -regtest -datadir={datadir} -rpcport={} generatetoaddress 1 {}",
        bitcoind.rpc_port(),
        burn_address()
    );
    eprintln!("Following the tip; Ctrl-C stops bitcoind and removes its data directory.");

    follow_tip(&source).await?;
    eprintln!("stopping bitcoind…");
    bitcoind.stop().context("stopping bitcoind")?;
    Ok(())
}

/// The chain as xln's `ChainSource` reports it.
async fn chain_state(bitcoind: &Bitcoind, source: &BitcoindChainSource) -> Result<Value> {
    let params = source.params();
    let tip = source.best_tip().await?;
    let tip_block = source.block_by_hash(&tip.hash).await?;
    let mut fees = Map::new();
    for target in ALL_CONFIRMATION_TARGETS {
        let rate = source.fee_rate(target).await?;
        fees.insert(target_name(target).to_owned(), json!(rate.to_sat_per_kwu()));
    }
    Ok(json!({
        "chain": params.chain.as_str(),
        "network": params.network.as_str(),
        "genesis_block_hash": params.genesis_block_hash.to_string(),
        "bitcoind_rpc_url": bitcoind.rpc_url(),
        "bitcoind_datadir": bitcoind.datadir().display().to_string(),
        "block_height": tip.height,
        "block_hash": tip.hash.to_string(),
        "block_time": tip_block.time,
        "block_transactions": tip_block.transactions.len(),
        "fee_floor_sat_per_kw": params.fee_floor().to_sat_per_kwu(),
        "feerates_sat_per_kw": fees,
    }))
}

/// Prints every new tip until Ctrl-C.
async fn follow_tip(source: &BitcoindChainSource) -> Result<()> {
    let mut last = source.best_tip().await?;
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = poll.tick() => {
                let tip = source.best_tip().await?;
                if tip != last {
                    println!("{}", json!({ "block_height": tip.height, "block_hash": tip.hash.to_string() }));
                    last = tip;
                }
            }
        }
    }
}
