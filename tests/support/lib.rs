//! Support code shared by xln's end-to-end tests: real Bitcoin Core nodes, started and stopped per
//! test.
//!
//! - [`bitcoin_core`] finds `bitcoind` and `bitcoin-cli` (from `$BITCOIND`/`$BITCOIN_CLI`, or a
//!   per-user cache), building them once per machine from the Bitcoin Core source that the pinned
//!   `libbitcoinkernel-sys` crate ships, so the tests need nothing preinstalled but a C++ toolchain.
//! - [`bitcoind`] runs a regtest node in a temporary directory for one test and cleans up after it,
//!   also when the test panics.
//! - [`qtumd`] finds Qtum Core's qtumd (`$QTUMD`, the shared build beside the checkout, `PATH`)
//!   and runs it the same way, also as a second, staking node.
//! - [`ln_node`] runs in-process xln nodes on such a bitcoind, and [`qtum_policy`] gives both
//!   Qtum's relay policy and Qtum's policy numbers, to test the Qtum channel policy on bitcoind;
//!   [`broadcast_audit`] proves that every transaction the nodes published relayed and confirmed.
//! - [`ldk_node_peer`] runs LDK Node in-process on such a bitcoind: another implementation as
//!   xlnd's peer, and the bench's yardstick.
//! - [`error`] holds the one error type, [`TestEnvError`].
//!
//! ```no_run
//! # fn main() -> Result<(), xln_tests::TestEnvError> {
//! let node = xln_tests::Bitcoind::start()?;
//! node.mine(101)?;
//! assert_eq!(node.cli(&["getblockcount"])?, "101");
//! # Ok(())
//! # }
//! ```

pub mod bench;
pub mod bitcoin_core;
pub mod bitcoind;
pub mod broadcast_audit;
pub mod chain_source;
mod command;
pub mod error;
pub mod ldk_node_peer;
pub mod ln_node;
pub mod qtum_policy;
pub mod qtumd;
pub mod steps;
pub mod test_key;
pub mod three_nodes;
mod watchdog;
pub mod ws;
pub mod xlnd;

pub use bitcoin_core::{bitcoin_core_binaries, BitcoinCoreBinaries};
pub use bitcoind::{burn_address, burn_script, pay_to_burn, Bitcoind, BitcoindOptions};
pub use chain_source::{
    qtum_regtest_chain_source, regtest_chain_source, regtest_chain_source_with,
};
pub use error::TestEnvError;

/// Sends `tracing` output to the test harness (shown for failing tests, or all with
/// `--nocapture`), filtered by `RUST_LOG` (default `info`).
///
/// Safe to call from every test: only the first call in a process installs the subscriber.
pub fn init_test_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Fails only if a subscriber is already installed, which is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
