//! `xln-sandbox`: a two-node Lightning network on a throw-away regtest bitcoind, for trying xln.
//!
//! Builds bitcoind from source on first use (cached afterwards) and xlnd/xln-cli with cargo,
//! starts bitcoind and two daemons `alice` and `bob` in a temporary directory, funds alice's
//! wallet, opens a channel alice → bob, prints copy-paste `xln-cli` commands for each node, and
//! keeps running until Ctrl-C, when it stops everything and deletes the directory.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use xln_tests::xlnd::{xln_binaries, Xlnd};
use xln_tests::Bitcoind;

/// Start bitcoind (regtest) and two xlnd nodes, alice and bob, with a funded channel between them.
#[derive(Parser)]
#[command(
    version,
    long_about = "Start a throw-away regtest bitcoind and two xlnd nodes, alice and bob, with a \
        funded channel alice -> bob, and print xln-cli commands to drive them.\n\n\
        The first run builds bitcoind from source (10-20 minutes on two cores) and caches it in \
        ~/.cache/xln. Everything runs in a temporary directory that is deleted on Ctrl-C."
)]
struct Args {
    /// Set everything up, print the commands, then stop and clean up at once.
    #[arg(long)]
    once: bool,
    /// Channel capacity in satoshis.
    #[arg(long, default_value_t = 1_000_000)]
    channel_sat: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let step = |text: &str| eprintln!("xln-sandbox: {text}");

    step("building xlnd and xln-cli (cargo)…");
    let (_, cli) = xln_binaries()?;
    step("starting a regtest bitcoind (the first run builds it from source, 10-20 min)…");
    let bitcoind = Bitcoind::start().context("starting bitcoind")?;
    bitcoind.mine(1)?;
    let dir = tempfile::Builder::new().prefix("xln-sandbox-").tempdir()?;
    step("starting xlnd alice and bob…");
    let mut alice = Xlnd::start(&bitcoind, &dir.path().join("alice"), "alice")?;
    let mut bob = Xlnd::start(&bitcoind, &dir.path().join("bob"), "bob")?;

    step("funding alice's wallet (mining 101 blocks)…");
    let address = alice.cli(&["newaddr"])?["address"]
        .as_str()
        .context("newaddr")?
        .to_owned();
    bitcoind.mine_to_address(1, &address)?;
    bitcoind.mine(100)?;
    alice.wait_cli(
        &["listfunds"],
        "alice's funds",
        Duration::from_secs(120),
        |f| f["onchain_confirmed_sat"].as_u64().filter(|sat| *sat > 0),
    )?;

    step("opening a channel alice -> bob and confirming it…");
    alice.cli(&["connect", &bob.uri()?])?;
    let bob_id = bob.cli(&["getinfo"])?["id"]
        .as_str()
        .context("bob's id")?
        .to_owned();
    alice.cli(&["fundchannel", &bob_id, &args.channel_sat.to_string()])?;
    bitcoind.mine(6)?;
    for node in [&alice, &bob] {
        node.wait_cli(
            &["listchannels"],
            "a usable channel",
            Duration::from_secs(120),
            |l| {
                l["channels"][0]["is_usable"]
                    .as_bool()
                    .filter(|usable| *usable)
            },
        )?;
    }

    let cli = cli.display();
    let alice_cli = format!("{cli} --datadir {}", alice.datadir.display());
    let bob_cli = format!("{cli} --datadir {}", bob.datadir.display());
    println!(
        "\nThe sandbox is ready: alice has a {} sat channel to bob.\n\n\
         alice:  {alice_cli} getinfo\n\
         bob:    {bob_cli} getinfo\n\n\
         Try a payment:\n  \
           {bob_cli} invoice 50000000 coffee\n  \
           {alice_cli} pay <the bolt11 it printed>\n  \
           {alice_cli} listchannels\n\n\
         Mine blocks:  {} -regtest -datadir={} -rpcport={} generatetoaddress 1 {}\n\
         See all methods:  {alice_cli} help\n",
        args.channel_sat,
        bitcoind.binaries().bitcoin_cli.display(),
        bitcoind.datadir().display(),
        bitcoind.rpc_port(),
        xln_tests::burn_address(),
    );
    if !args.once {
        println!("Press Ctrl-C to stop everything and clean up.");
        wait_for_ctrl_c()?;
    }
    step("stopping…");
    // Ctrl-C in a terminal reaches the daemons too, so they may be stopping already.
    std::thread::sleep(Duration::from_millis(500));
    for node in [&mut alice, &mut bob] {
        if let Err(e) = node.stop() {
            eprintln!("xln-sandbox: stopping {}: {e:#}", node.name);
        }
    }
    if let Err(e) = bitcoind.stop() {
        eprintln!("xln-sandbox: stopping bitcoind: {e}");
    }
    step("done");
    Ok(())
}

fn wait_for_ctrl_c() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(tokio::signal::ctrl_c())?;
    Ok(())
}
