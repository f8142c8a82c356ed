//! `xln-sandbox`: a two-node Lightning network on a throw-away regtest bitcoind (or, with
//! `--chain qtum`, qtumd), for trying xln.
//!
//! Builds bitcoind from source on first use (cached afterwards; Qtum's qtumd is found as the
//! tests find it) and xlnd/xln-cli with cargo, starts the chain node and two daemons `alice` and
//! `bob` in a temporary directory, funds alice's wallet, opens a channel alice → bob, prints
//! copy-paste `xln-cli` commands for each node, and keeps running until Ctrl-C, when it stops
//! everything and deletes the directory.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use ln_core::node::ChannelPolicy;
use ln_core::ChainParams;
use xln_tests::qtumd::{qtum_burn_address, qtum_core_binaries, shared_qtum_bin_dir, start_qtumd};
use xln_tests::steps::{fund, open};
use xln_tests::xlnd::{xln_binaries, Xlnd};
use xln_tests::Bitcoind;

/// The chain the sandbox runs on.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Chain {
    /// A regtest bitcoind, built from source on first use.
    Bitcoin,
    /// A regtest qtumd: `$QTUMD`, else `../shared/qtum/bin/qtumd` beside the checkout, else
    /// `qtumd` on `PATH` (see docs/qtum.md).
    Qtum,
}

/// Start a regtest chain node and two xlnd nodes, alice and bob, with a funded channel between
/// them.
#[derive(Parser)]
#[command(
    version,
    long_about = "Start a throw-away regtest chain node (bitcoind, or qtumd with --chain qtum) and \
        two xlnd nodes, alice and bob, with a funded channel alice -> bob, and print xln-cli \
        commands to drive them.\n\n\
        On Bitcoin the first run builds bitcoind from source (10-20 minutes on two cores) and \
        caches it in ~/.cache/xln. On Qtum it runs the qtumd named by $QTUMD, else the one in \
        ../shared/qtum/bin beside the checkout, else qtumd on PATH. Everything runs in a \
        temporary directory that is deleted on Ctrl-C."
)]
struct Args {
    /// The chain to run on.
    #[arg(long, value_enum, default_value_t = Chain::Bitcoin)]
    chain: Chain,
    /// Set everything up, print the commands, then stop and clean up at once.
    #[arg(long)]
    once: bool,
    /// Channel capacity in satoshis [default: 1000000 on Bitcoin, 50000000 (0.5 QTUM) on Qtum,
    /// where each side keeps a 300000-sat reserve].
    #[arg(long)]
    channel_sat: Option<u64>,
}

/// What differs between the chains, for the sandbox.
struct ChainSetup {
    params: ChainParams,
    /// The chain's name, for messages.
    name: &'static str,
    /// `--chain=…` for xlnd.
    chain_arg: &'static str,
    default_channel_sat: u64,
    /// Where the printed "mine blocks" command sends the coinbase.
    burn_address: String,
}

impl ChainSetup {
    fn for_chain(chain: Chain) -> Result<Self> {
        Ok(match chain {
            Chain::Bitcoin => ChainSetup {
                params: ChainParams::bitcoin_regtest(),
                name: "Bitcoin",
                chain_arg: "--chain=bitcoin",
                default_channel_sat: 1_000_000,
                burn_address: xln_tests::burn_address(),
            },
            Chain::Qtum => ChainSetup {
                params: ChainParams::qtum_regtest(),
                name: "Qtum",
                chain_arg: "--chain=qtum",
                default_channel_sat: 50_000_000,
                burn_address: qtum_burn_address()?,
            },
        })
    }
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
    let setup = ChainSetup::for_chain(args.chain)?;
    let params = &setup.params;
    let channel_sat = args.channel_sat.unwrap_or(setup.default_channel_sat);

    step("building xlnd and xln-cli (cargo)…");
    let (_, cli) = xln_binaries()?;
    let chain_node = match args.chain {
        Chain::Bitcoin => {
            step("starting a regtest bitcoind (the first run builds it from source, 10-20 min)…");
            Bitcoind::start().context("starting bitcoind")?
        }
        Chain::Qtum => {
            let Some(binaries) = qtum_core_binaries() else {
                bail!(
                    "no qtumd found: not in $QTUMD, {}, or PATH. Get Qtum Core 27.1 as \
                     docs/qtum.md says, then set QTUMD=/path/to/qtumd",
                    shared_qtum_bin_dir().display()
                );
            };
            step(&format!(
                "starting a regtest qtumd ({})…",
                binaries.bitcoind.display()
            ));
            start_qtumd(binaries).context("starting qtumd")?
        }
    };
    let dir = tempfile::Builder::new().prefix("xln-sandbox-").tempdir()?;
    step("starting xlnd alice and bob…");
    let start = |name: &str| {
        Xlnd::start_with_args(
            &chain_node,
            &dir.path().join(name),
            name,
            &[setup.chain_arg],
        )
    };
    let alice = start("alice")?;
    let bob = start("bob")?;

    step(&format!(
        "funding alice's wallet (mining {} blocks: the chain's coinbase maturity)…",
        params.coinbase_maturity + 1
    ));
    fund(&chain_node, params, &alice, &[&bob])?;

    let policy = ChannelPolicy::for_chain(params);
    step(&format!(
        "opening a {channel_sat} sat channel alice -> bob and confirming it ({} blocks)…",
        policy.minimum_depth
    ));
    open(&chain_node, params, &alice, &bob, channel_sat, false)?;

    let cli = cli.display();
    let cli_of = |node: &Xlnd| format!("{cli} --datadir {}", node.datadir.display());
    let (alice_cli, bob_cli) = (cli_of(&alice), cli_of(&bob));
    // An amount every chain's policy lets through: Qtum's HTLC minimum is 200,000 sat.
    let invoice_msat = policy.htlc_minimum_msat.max(50_000_000);
    println!(
        "\nThe sandbox is ready on {} regtest: alice has a {channel_sat} sat channel to bob.\n\n\
         alice:  {alice_cli} getinfo\n\
         bob:    {bob_cli} getinfo\n\n\
         Try a payment:\n  \
           {bob_cli} invoice {invoice_msat} coffee\n  \
           {alice_cli} pay <the bolt11 it printed>\n  \
           {alice_cli} listchannels\n\n\
         Mine blocks:  {} -regtest -datadir={} -rpcport={} generatetoaddress 1 {}\n\
         See all methods:  {alice_cli} help\n",
        setup.name,
        chain_node.binaries().bitcoin_cli.display(),
        chain_node.datadir().display(),
        chain_node.rpc_port(),
        setup.burn_address,
    );
    if !args.once {
        println!("Press Ctrl-C to stop everything and clean up.");
        wait_for_ctrl_c()?;
    }
    step("stopping…");
    // Ctrl-C in a terminal reaches the daemons too, so they may be stopping already.
    std::thread::sleep(Duration::from_millis(500));
    for node in [&alice, &bob] {
        if let Err(e) = node.stop() {
            eprintln!("xln-sandbox: stopping {}: {e:#}", node.name);
        }
    }
    if let Err(e) = chain_node.stop() {
        eprintln!("xln-sandbox: stopping the chain node: {e}");
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
