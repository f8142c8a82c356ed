//! A throwaway regtest `qtumd` (Qtum Core) for the Qtum end-to-end suite.
//!
//! qtumd is a Bitcoin Core fork and takes the same command line, so it runs under [`Bitcoind`]
//! with other binaries, `-staking=0` (a regtest wallet would otherwise mint proof-of-stake blocks
//! of its own, qtum-facts §5), no wallet and coinbases paid to a `qcrt1` address.
//!
//! No Qtum Core package exists in our registries, so [`qtum_core_binaries`] looks for qtumd the
//! way an operator would point at one: `$QTUMD` (and `$QTUM_CLI`), then the Qtum Core 27.1 build
//! in `../shared/qtum/bin/` beside the checkout, then `PATH`. A machine with none of them (a
//! user's fresh clone) skips the Qtum tests with one line saying how to get qtumd, unless
//! `$XLN_REQUIRE_QTUMD` is set: CI sets it whenever the shared build is there, so there a missing
//! qtumd fails the run instead of passing it quietly ([`qtum_core_or_skip`]).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use ln_core::ChainParams;

use crate::bitcoin_core::BitcoinCoreBinaries;
use crate::bitcoind::{Bitcoind, BitcoindOptions};
use crate::command::is_executable;
use crate::error::TestEnvError;

/// Environment variable naming the qtumd binary to use before any other.
pub const QTUMD_ENV: &str = "QTUMD";
/// Environment variable naming qtum-cli (default: `qtum-cli` beside qtumd).
pub const QTUM_CLI_ENV: &str = "QTUM_CLI";
/// Environment variable that turns "no qtumd found, test skipped" into a test failure.
pub const REQUIRE_QTUMD_ENV: &str = "XLN_REQUIRE_QTUMD";

/// Where the Qtum Core 27.1 build shared beside the checkout keeps its programs
/// (`<checkout>/../shared/qtum/bin`).
pub fn shared_qtum_bin_dir() -> PathBuf {
    // The tests crate is `<checkout>/tests`, and `shared/` sits beside `<checkout>`.
    let tests_crate = Path::new(env!("CARGO_MANIFEST_DIR"));
    match tests_crate.parent().and_then(Path::parent) {
        Some(beside_checkout) => beside_checkout.join("shared/qtum/bin"),
        None => tests_crate.join("../../shared/qtum/bin"),
    }
}

/// The qtumd and qtum-cli to run: `$QTUMD` (with `$QTUM_CLI`, or the qtum-cli beside it), else
/// the shared build beside the checkout ([`shared_qtum_bin_dir`]), else the first directory on
/// `PATH` that has both. `None` when there is none of them.
pub fn qtum_core_binaries() -> Option<BitcoinCoreBinaries> {
    let from_env = std::env::var_os(QTUMD_ENV).filter(|path| !path.is_empty());
    find_qtum_core(
        from_env.map(PathBuf::from),
        std::env::var_os(QTUM_CLI_ENV)
            .filter(|path| !path.is_empty())
            .map(PathBuf::from),
        &shared_qtum_bin_dir(),
        std::env::var_os("PATH"),
    )
}

/// [`qtum_core_binaries`] with its inputs passed in, for testing the order.
fn find_qtum_core(
    qtumd_env: Option<PathBuf>,
    qtum_cli_env: Option<PathBuf>,
    shared_bin_dir: &Path,
    path: Option<OsString>,
) -> Option<BitcoinCoreBinaries> {
    if let Some(qtumd) = qtumd_env {
        // An explicit choice is used as given: a wrong path fails loudly when qtumd starts
        // instead of being replaced by another qtumd without a word.
        let qtum_cli = qtum_cli_env.unwrap_or_else(|| qtumd.with_file_name("qtum-cli"));
        return Some(BitcoinCoreBinaries {
            bitcoind: qtumd,
            bitcoin_cli: qtum_cli,
        });
    }
    let in_dir = |dir: &Path| {
        let qtumd = dir.join("qtumd");
        let qtum_cli = qtum_cli_env.clone().unwrap_or_else(|| dir.join("qtum-cli"));
        (is_executable(&qtumd) && is_executable(&qtum_cli)).then_some(BitcoinCoreBinaries {
            bitcoind: qtumd,
            bitcoin_cli: qtum_cli,
        })
    };
    in_dir(shared_bin_dir).or_else(|| {
        path.as_deref()
            .into_iter()
            .flat_map(std::env::split_paths)
            .find_map(|dir| in_dir(&dir))
    })
}

/// The qtumd to run `test` against, or `None` after writing one line that the test was skipped
/// because no qtumd was found, and how to get one. With `$XLN_REQUIRE_QTUMD` set, a missing qtumd
/// is an error instead.
pub fn qtum_core_or_skip(test: &str) -> Result<Option<BitcoinCoreBinaries>, TestEnvError> {
    if let Some(binaries) = qtum_core_binaries() {
        return Ok(Some(binaries));
    }
    let shared = shared_qtum_bin_dir();
    if std::env::var_os(REQUIRE_QTUMD_ENV).is_some_and(|v| !v.is_empty()) {
        return Err(TestEnvError::BadEnvVar {
            name: REQUIRE_QTUMD_ENV.to_owned(),
            reason: format!(
                "{test} needs a qtumd and none was found: not in ${QTUMD_ENV}, {}, or PATH",
                shared.display()
            ),
        });
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests, and a
    // skip must be seen.
    let line = format!(
        "SKIPPED {test}: no qtumd found (${QTUMD_ENV}, {}, PATH); see docs/qtum.md to get Qtum Core 27.1\n",
        shared.display()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    Ok(None)
}

/// The regtest address qtumd's test blocks pay to: P2WSH of `OP_TRUE` in Qtum's encoding
/// (`qcrt1…`), the same burn script as [`crate::burn_address`] on Bitcoin.
pub fn qtum_burn_address() -> Result<String, TestEnvError> {
    ChainParams::qtum_regtest()
        .address_for_script(&crate::burn_script())
        .map_err(|e| TestEnvError::UnexpectedOutput {
            command: "encoding the Qtum burn address".to_owned(),
            reason: e.to_string(),
        })
}

/// Starts qtumd in regtest with `binaries` (see [`qtum_core_binaries`]), on a chain of nothing
/// but its genesis block.
pub fn start_qtumd(binaries: BitcoinCoreBinaries) -> Result<Bitcoind, TestEnvError> {
    Bitcoind::start_with(BitcoindOptions {
        // xlnd keeps its own wallet: qtumd needs none, and without one its wallet options
        // (like the -fallbackfee every test node gets) are never checked.
        extra_args: vec!["-staking=0".to_owned(), "-disablewallet=1".to_owned()],
        binaries: Some(binaries),
        mining_address: Some(qtum_burn_address()?),
    })
}

/// Qtum's proof-of-stake timestamps are multiples of 16 seconds (`STAKE_TIMESTAMP_MASK` + 1), so a
/// staker makes at most one block per 16-second slot.
pub const STAKE_SLOT_SECS: u64 = 16;

/// A second regtest qtumd that stakes: it has a wallet (`stake`) and `-staking=1`, and is
/// connected to the node the Lightning nodes use, so its proof-of-stake blocks reach them as
/// they would on mainnet, where only staked blocks are made.
///
/// Its coins must mature first (2000 blocks, mined to [`StakingQtumd::address`] by the test).
/// Quickly mined blocks run ahead of the clock and a staker waits for the clock to pass its tip,
/// so both nodes run on a mock clock (`setmocktime`) that [`StakingQtumd::stake`] moves one
/// stake slot per block: every block is staked by qtumd's own staker, when the test wants it.
pub struct StakingQtumd {
    /// The staking node.
    pub node: Bitcoind,
    /// A legacy (P2PKH) address of its wallet, the kind Qtum stakes with.
    pub address: String,
    mock_time: std::cell::Cell<u64>,
}

impl StakingQtumd {
    /// Starts the staker, connected to `peer`, and creates its wallet.
    pub fn start(binaries: BitcoinCoreBinaries, peer: &Bitcoind) -> Result<Self, TestEnvError> {
        let node = Bitcoind::start_with(BitcoindOptions {
            extra_args: vec![
                "-staking=1".to_owned(),
                format!("-connect=127.0.0.1:{}", peer.p2p_port()),
            ],
            binaries: Some(binaries),
            mining_address: Some(qtum_burn_address()?),
        })?;
        node.cli(&["createwallet", "stake"])?;
        let address = node.cli(&["getnewaddress", "", "legacy"])?;
        Ok(StakingQtumd {
            node,
            address,
            mock_time: std::cell::Cell::new(0),
        })
    }

    /// Lets the staker make `blocks` proof-of-stake blocks, one per stake slot of the mock clock
    /// of both it and `peer`, and waits until `peer` has each. Returns their hashes, oldest first.
    pub fn stake(&self, peer: &Bitcoind, blocks: u32) -> Result<Vec<String>, TestEnvError> {
        let mut hashes = Vec::new();
        // The staker first has every block the peer has (the mined ones arrive over P2P).
        wait_for("the staker synced to its peer", || {
            Ok(
                (self.node.cli(&["getbestblockhash"])? == peer.cli(&["getbestblockhash"])?)
                    .then_some(()),
            )
        })?;
        for _ in 0..blocks {
            let tip = self
                .node
                .cli_json(&["getblockheader", &self.node.cli(&["getbestblockhash"])?])?;
            let tip_height = tip["height"].as_u64().unwrap_or_default();
            let tip_time = tip["time"].as_u64().unwrap_or_default();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let mut slot = (self.mock_time.get().max(tip_time).max(now) / STAKE_SLOT_SECS + 1)
                * STAKE_SLOT_SECS;
            // The staker picks its coins and the stake times it tries (the next few seconds of
            // its clock) once, and again only when the tip changes or its clock passes them
            // (qtum: src/node/miner.cpp, StakeMiner::IsCachedDataOld): on the frozen mock clock
            // a try that made no block (its wallet a moment behind the chain it just synced,
            // say) is never made again. One CI run waited 180 s in vain so. A slot that brought
            // no block within a few of the staker's looks is followed by the next one, 16 s
            // on, past the times it tried: the staker then picks afresh.
            let started = std::time::Instant::now();
            let hash = loop {
                self.mock_time.set(slot);
                for node in [peer, &self.node] {
                    node.cli(&["setmocktime", &slot.to_string()])?;
                }
                let staked = wait_for_within(
                    &format!("a staked block above height {tip_height} in slot {slot}"),
                    STAKE_SLOT_WAIT,
                    || {
                        let info = self.node.cli_json(&["getblockchaininfo"])?;
                        Ok((info["blocks"].as_u64() > Some(tip_height))
                            .then(|| info["bestblockhash"].as_str().map(str::to_owned))
                            .flatten())
                    },
                );
                match staked {
                    Ok(hash) => break hash,
                    Err(TestEnvError::Timeout { .. }) if started.elapsed() < STAKED_BLOCK_WAIT => {
                        tracing::warn!(
                            slot,
                            tip_height,
                            "the staker made no block in this slot; offering it the next"
                        );
                        slot += STAKE_SLOT_SECS;
                    }
                    Err(TestEnvError::Timeout { what, .. }) => {
                        return Err(TestEnvError::Timeout {
                            what,
                            waited: started.elapsed(),
                        })
                    }
                    Err(other) => return Err(other),
                }
            };
            let block = self.node.cli_json(&["getblock", &hash])?;
            if block["flags"] != "proof-of-stake" {
                return Err(TestEnvError::UnexpectedOutput {
                    command: format!("getblock {hash}"),
                    reason: format!(
                        "the staker's block is not proof-of-stake: {}",
                        block["flags"]
                    ),
                });
            }
            wait_for(&format!("block {hash} on the peer"), || {
                Ok((peer.cli(&["getbestblockhash"])? == hash).then_some(()))
            })?;
            hashes.push(hash);
        }
        Ok(hashes)
    }

    /// Hands `peer`'s mempool transaction `txid` to the staker, so its next block can include it.
    /// (Peers announce transactions on timers that run on the mock clock, which only moves when a
    /// block is staked.)
    pub fn take_transaction(&self, peer: &Bitcoind, txid: &str) -> Result<(), TestEnvError> {
        let raw = peer.cli(&["getrawtransaction", txid])?;
        self.node.cli(&["sendrawtransaction", &raw])?;
        Ok(())
    }

    /// A reorg: both the staker and `peer` forget `block` and the blocks above it (their
    /// transactions go back to the mempools), so the staker's next blocks replace them.
    pub fn invalidate(&self, peer: &Bitcoind, block: &str) -> Result<(), TestEnvError> {
        let header = self.node.cli_json(&["getblockheader", block])?;
        let parent = header["previousblockhash"].as_str().unwrap_or_default();
        let parent_time = self.node.cli_json(&["getblockheader", parent])?["time"]
            .as_u64()
            .unwrap_or_default();
        // Back to the parent's time, so the staker does not build on the parent at once: the
        // next block comes when [`Self::stake`] asks for it, in a slot no block has used.
        self.node.cli(&["setmocktime", &parent_time.to_string()])?;
        for node in [&self.node, peer] {
            node.cli(&["invalidateblock", block])?;
        }
        Ok(())
    }
}

/// How long [`StakingQtumd::stake`] waits for each staked block, over all the slots it offers.
const STAKED_BLOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(180);

/// How long [`StakingQtumd::stake`] waits for a block in one stake slot before it offers the
/// next: about three of the staker's looks.
const STAKE_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(50);

/// Polls `ready` every 100 ms for up to a minute.
fn wait_for<T>(
    what: &str,
    ready: impl FnMut() -> Result<Option<T>, TestEnvError>,
) -> Result<T, TestEnvError> {
    wait_for_within(what, std::time::Duration::from_secs(60), ready)
}

/// Polls `ready` every 100 ms for up to `limit`.
fn wait_for_within<T>(
    what: &str,
    limit: std::time::Duration,
    mut ready: impl FnMut() -> Result<Option<T>, TestEnvError>,
) -> Result<T, TestEnvError> {
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = ready()? {
            return Ok(value);
        }
        if started.elapsed() > limit {
            return Err(TestEnvError::Timeout {
                what: what.to_owned(),
                waited: started.elapsed(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_address_is_a_qtum_regtest_address_of_the_burn_script() -> Result<(), TestEnvError> {
        let address = qtum_burn_address()?;
        assert!(address.starts_with("qcrt1q"), "{address}");
        let script = ChainParams::qtum_regtest().script_for_address(&address);
        assert_eq!(script.ok(), Some(crate::burn_script()));
        Ok(())
    }

    fn fake_qtum_core(dir: &Path) -> BitcoinCoreBinaries {
        use std::os::unix::fs::PermissionsExt;
        for name in ["qtumd", "qtum-cli"] {
            let path = dir.join(name);
            std::fs::write(&path, "#!/bin/sh\n").ok();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).ok();
        }
        BitcoinCoreBinaries {
            bitcoind: dir.join("qtumd"),
            bitcoin_cli: dir.join("qtum-cli"),
        }
    }

    #[test]
    fn qtumd_is_looked_for_in_the_environment_then_beside_the_checkout_then_on_path() {
        let shared = tempfile::tempdir().ok();
        let on_path = tempfile::tempdir().ok();
        let (Some(shared), Some(on_path)) = (shared, on_path) else {
            panic!("no temporary directories");
        };
        let empty = tempfile::tempdir().ok();
        let Some(empty) = empty else {
            panic!("no temporary directory")
        };
        let shared_core = fake_qtum_core(shared.path());
        let path_core = fake_qtum_core(on_path.path());
        let path = std::env::join_paths([empty.path(), on_path.path()]).ok();

        let chosen = find_qtum_core(
            Some(PathBuf::from("/opt/qtum/qtumd")),
            None,
            shared.path(),
            path.clone(),
        );
        assert_eq!(
            chosen,
            Some(BitcoinCoreBinaries {
                bitcoind: PathBuf::from("/opt/qtum/qtumd"),
                bitcoin_cli: PathBuf::from("/opt/qtum/qtum-cli"),
            })
        );
        assert_eq!(
            find_qtum_core(None, None, shared.path(), path.clone()),
            Some(shared_core)
        );
        assert_eq!(
            find_qtum_core(None, None, empty.path(), path),
            Some(path_core)
        );
        assert_eq!(find_qtum_core(None, None, empty.path(), None), None);
    }
}
