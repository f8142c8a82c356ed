//! A throwaway regtest `bitcoind` for one test.
//!
//! [`Bitcoind::start`] gives the node its own temporary data directory and free ports, waits until
//! its RPC answers and hands back a guard; dropping the guard (also while a failing test unwinds)
//! stops the node and deletes the directory. Authentication is by cookie file, so nothing about the
//! node needs configuring by the test. Set `XLN_KEEP_TEST_DIRS=1` to keep the data directories for
//! inspection; their paths are printed.

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bitcoin::{Address, Amount, Network, ScriptBuf, TxOut};
use tempfile::TempDir;

use crate::bitcoin_core::{bitcoin_core_binaries, BitcoinCoreBinaries};
use crate::command::{command_line, run_for_stdout, tail_of_file};
use crate::error::TestEnvError;
use crate::watchdog::Watchdog;

/// How long bitcoind may take until its RPC answers.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long bitcoind may take to exit after `stop` before it is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// How often startup and shutdown are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often to retry with new ports when another process took ours between choosing and binding.
const START_ATTEMPTS: usize = 3;
/// How many lines of `debug.log` an error shows.
const LOG_TAIL_LINES: usize = 30;
/// Environment variable that, set to `1`, keeps test data directories.
pub const KEEP_TEST_DIRS_ENV: &str = "XLN_KEEP_TEST_DIRS";

/// `OP_TRUE`: a script anyone can satisfy, with an empty witness besides the script itself.
const OP_TRUE: u8 = 0x51;

/// The regtest address [`Bitcoind::mine`] pays to: P2WSH of `OP_TRUE`.
///
/// Coins sent here belong to nobody in particular; a test can still spend them by providing the
/// one-byte witness script `51`.
pub fn burn_address() -> String {
    Address::p2wsh(&ScriptBuf::from(vec![OP_TRUE]), Network::Regtest).to_string()
}

/// The output script of [`burn_address`], for building transactions that pay there.
pub fn burn_script() -> ScriptBuf {
    ScriptBuf::new_p2wsh(&ScriptBuf::from(vec![OP_TRUE]).wscript_hash())
}

/// A single output paying `value` to [`burn_address`].
pub fn pay_to_burn(value: Amount) -> Vec<TxOut> {
    vec![TxOut {
        value,
        script_pubkey: burn_script(),
    }]
}

/// How to start a [`Bitcoind`] beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct BitcoindOptions {
    /// Extra command-line arguments, e.g. `-blockfilterindex=1`; appended after ours, so they
    /// override them.
    pub extra_args: Vec<String>,
    /// Run these binaries instead of the Bitcoin Core build: another node of Bitcoin Core's family
    /// that takes the same command line, such as qtumd and qtum-cli ([`crate::qtumd`]).
    pub binaries: Option<BitcoinCoreBinaries>,
    /// Where [`Bitcoind::mine`] pays its coinbases (default: [`burn_address`], a `bcrt1` address);
    /// another chain needs an address in its own encoding.
    pub mining_address: Option<String>,
}

/// A running regtest bitcoind; stopped and its data directory deleted on drop.
#[derive(Debug)]
pub struct Bitcoind {
    binaries: BitcoinCoreBinaries,
    datadir: PathBuf,
    /// `None` once released (deleted or kept) by shutdown.
    temp_dir: Option<TempDir>,
    rpc_port: u16,
    p2p_port: u16,
    mining_address: String,
    /// `None` once stopped.
    process: Option<Child>,
    watchdog: Option<Watchdog>,
}

impl Bitcoind {
    /// Starts a node with the default options.
    pub fn start() -> Result<Self, TestEnvError> {
        Self::start_with(BitcoindOptions::default())
    }

    /// Starts a node, building Bitcoin Core first if this machine has never done so.
    pub fn start_with(options: BitcoindOptions) -> Result<Self, TestEnvError> {
        let binaries = match &options.binaries {
            Some(binaries) => binaries.clone(),
            None => bitcoin_core_binaries()?,
        };
        let mut attempt = 1;
        loop {
            match Self::start_once(&binaries, &options) {
                Err(error) if attempt < START_ATTEMPTS && is_port_conflict(&error) => {
                    tracing::debug!(%error, attempt, "bitcoind could not bind its ports; retrying");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(
        binaries: &BitcoinCoreBinaries,
        options: &BitcoindOptions,
    ) -> Result<Self, TestEnvError> {
        let temp_dir = tempfile::Builder::new()
            .prefix("xln-bitcoind-")
            .tempdir()
            .map_err(|e| TestEnvError::io("creating a temporary bitcoind datadir", e))?;
        let datadir = temp_dir.path().to_owned();
        let (rpc_port, p2p_port) = free_port_pair()?;
        let stderr_path = datadir.join("bitcoind.stderr");
        let stderr = File::create(&stderr_path)
            .map_err(|e| TestEnvError::io(format!("creating {}", stderr_path.display()), e))?;

        let mut command = Command::new(&binaries.bitcoind);
        command
            .args(node_args(&datadir, rpc_port, p2p_port))
            .args(&options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let process = command
            .spawn()
            .map_err(|e| TestEnvError::io(format!("starting `{}`", command_line(&command)), e))?;
        let watchdog = Watchdog::guard(process.id(), "bitcoind");
        // From here on, `Drop` cleans up if anything fails.
        let mut node = Bitcoind {
            binaries: binaries.clone(),
            datadir,
            temp_dir: Some(temp_dir),
            rpc_port,
            p2p_port,
            mining_address: options.mining_address.clone().unwrap_or_else(burn_address),
            process: Some(process),
            watchdog,
        };
        node.wait_for_rpc()?;
        tracing::info!(rpc_port, p2p_port, datadir = %node.datadir.display(), "bitcoind started");
        Ok(node)
    }

    /// Polls the RPC until it answers, the process exits, or [`STARTUP_TIMEOUT`] passes.
    fn wait_for_rpc(&mut self) -> Result<(), TestEnvError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status()? {
                return Err(self.exited_error(status));
            }
            let last_error = match self.cli(&["getblockchaininfo"]) {
                Ok(_) => return Ok(()),
                // Not ready yet: no cookie file, connection refused, or "warming up".
                Err(error @ TestEnvError::CommandFailed { .. }) => error,
                Err(other) => return Err(other),
            };
            if started.elapsed() >= STARTUP_TIMEOUT {
                return Err(TestEnvError::Timeout {
                    what: format!(
                        "bitcoind's RPC on port {} (last error: {last_error})",
                        self.rpc_port
                    ),
                    waited: started.elapsed(),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn exit_status(&mut self) -> Result<Option<ExitStatus>, TestEnvError> {
        match self.process.as_mut() {
            Some(process) => process
                .try_wait()
                .map_err(|e| TestEnvError::io("checking whether bitcoind is running", e)),
            None => Ok(None),
        }
    }

    fn exited_error(&self, status: ExitStatus) -> TestEnvError {
        let debug_log = self.datadir.join("regtest").join("debug.log");
        TestEnvError::NodeExited {
            status: status.to_string(),
            stderr: tail_of_file(&self.datadir.join("bitcoind.stderr"), LOG_TAIL_LINES),
            log_tail: tail_of_file(&debug_log, LOG_TAIL_LINES),
            debug_log,
        }
    }

    /// The JSON-RPC endpoint, `http://127.0.0.1:<rpc_port>`.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// The port the JSON-RPC server listens on (127.0.0.1 only).
    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// The port the peer-to-peer server listens on (127.0.0.1 only).
    pub fn p2p_port(&self) -> u16 {
        self.p2p_port
    }

    /// The RPC cookie file (`<datadir>/regtest/.cookie`, `user:password` on one line); it exists
    /// while the node runs.
    pub fn cookie_file(&self) -> PathBuf {
        self.datadir.join("regtest").join(".cookie")
    }

    /// The node's data directory.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The programs this node runs with.
    pub fn binaries(&self) -> &BitcoinCoreBinaries {
        &self.binaries
    }

    fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binaries.bitcoin_cli);
        command
            .arg("-regtest")
            .arg(format!("-datadir={}", self.datadir.display()))
            .arg(format!("-rpcport={}", self.rpc_port))
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs `bitcoin-cli <args>` against this node and returns its trimmed stdout.
    ///
    /// Note that bitcoin-cli prints string results bare (without JSON quotes).
    pub fn cli(&self, args: &[&str]) -> Result<String, TestEnvError> {
        run_for_stdout(&mut self.cli_command(args))
    }

    /// Runs `bitcoin-cli <args>` and parses the output as JSON; for RPCs returning objects, arrays,
    /// numbers or booleans (bare strings are not JSON: use [`cli`](Self::cli) for those).
    pub fn cli_json(&self, args: &[&str]) -> Result<serde_json::Value, TestEnvError> {
        let mut command = self.cli_command(args);
        let stdout = run_for_stdout(&mut command)?;
        serde_json::from_str(&stdout).map_err(|e| TestEnvError::UnexpectedOutput {
            command: command_line(&command),
            reason: format!("not JSON ({e}): {stdout}"),
        })
    }

    /// Mines `blocks` blocks paying to `address` and returns their hashes, oldest first.
    pub fn mine_to_address(&self, blocks: u32, address: &str) -> Result<Vec<String>, TestEnvError> {
        let args = ["generatetoaddress", &blocks.to_string(), address];
        let hashes = self.cli_json(&args)?;
        serde_json::from_value(hashes).map_err(|e| TestEnvError::UnexpectedOutput {
            command: command_line(&self.cli_command(&args)),
            reason: format!("expected an array of block hashes: {e}"),
        })
    }

    /// Mines `blocks` blocks paying to [`burn_address`] (or the chain's address set in
    /// [`BitcoindOptions::mining_address`]) and returns their hashes, oldest first.
    pub fn mine(&self, blocks: u32) -> Result<Vec<String>, TestEnvError> {
        self.mine_to_address(blocks, &self.mining_address)
    }

    /// Stops the node and deletes its data directory, reporting what went wrong (dropping does the
    /// same but can only log).
    pub fn stop(mut self) -> Result<(), TestEnvError> {
        self.shutdown()
    }

    /// Idempotent: stops the process, disarms the watchdog and releases the data directory.
    fn shutdown(&mut self) -> Result<(), TestEnvError> {
        let stopped = match self.process.take() {
            Some(process) => self.stop_process(process),
            None => Ok(()),
        };
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        self.release_datadir();
        stopped
    }

    /// Asks bitcoind to stop over RPC, and kills it if it does not exit in time.
    fn stop_process(&self, mut process: Child) -> Result<(), TestEnvError> {
        if let Ok(Some(status)) = process.try_wait() {
            tracing::warn!(%status, "bitcoind had already exited before it was stopped");
            return Ok(());
        }
        let started = Instant::now();
        let outcome = match self.cli(&["stop"]) {
            Ok(_) => wait_for_exit(&mut process, SHUTDOWN_TIMEOUT),
            Err(error) => Err(error),
        };
        if outcome.is_err() {
            // Errors here mean the process is already gone.
            let _ = process.kill();
            let _ = process.wait();
        }
        let elapsed = started.elapsed();
        tracing::debug!(?elapsed, rpc_port = self.rpc_port, "bitcoind stopped");
        outcome
    }

    /// Deletes the data directory, or keeps it (printing where) if `XLN_KEEP_TEST_DIRS=1`.
    fn release_datadir(&mut self) {
        let Some(temp_dir) = self.temp_dir.take() else {
            return;
        };
        // `writeln!` to stderr instead of `eprintln!`, which would panic (here possibly inside a
        // panic, aborting the test binary) if stderr is closed.
        let mut stderr = std::io::stderr();
        if keep_test_dirs() {
            let kept = temp_dir.keep();
            let _ = writeln!(
                stderr,
                "xln-tests: kept bitcoind datadir {}",
                kept.display()
            );
            return;
        }
        if std::thread::panicking() {
            let _ = writeln!(
                stderr,
                "xln-tests: deleting bitcoind datadir {}; set {KEEP_TEST_DIRS_ENV}=1 to keep it",
                self.datadir.display()
            );
        }
        if let Err(e) = temp_dir.close() {
            tracing::warn!(datadir = %self.datadir.display(), error = %e, "could not delete the bitcoind datadir");
        }
    }
}

impl Drop for Bitcoind {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::warn!(%error, "bitcoind did not stop cleanly");
        }
    }
}

/// Our command line for bitcoind, before the caller's extra arguments.
fn node_args(datadir: &Path, rpc_port: u16, p2p_port: u16) -> Vec<String> {
    vec![
        "-regtest".to_owned(),
        format!("-datadir={}", datadir.display()),
        format!("-rpcport={rpc_port}"),
        format!("-port={p2p_port}"),
        "-bind=127.0.0.1".to_owned(),
        "-rpcbind=127.0.0.1".to_owned(),
        "-rpcallowip=127.0.0.1".to_owned(),
        "-listen=1".to_owned(),
        "-listenonion=0".to_owned(),
        "-dnsseed=0".to_owned(),
        "-fixedseeds=0".to_owned(),
        "-txindex=1".to_owned(),
        // A wallet option; builds without a wallet accept it as a hidden no-op, and it keeps the
        // command line right for a bitcoind that has one (e.g. from $BITCOIND).
        "-fallbackfee=0.0002".to_owned(),
        "-printtoconsole=0".to_owned(),
        "-server=1".to_owned(),
        // Several xln nodes poll one test bitcoind; the default queue of 16 overflows into HTTP 503.
        "-rpcworkqueue=256".to_owned(),
        "-rpcthreads=16".to_owned(),
    ]
}

/// Two distinct ports that were free a moment ago (both are held while the second is chosen).
fn free_port_pair() -> Result<(u16, u16), TestEnvError> {
    let bind = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| Ok((listener.local_addr()?.port(), listener)))
            .map_err(|e| TestEnvError::io("finding a free port on 127.0.0.1", e))
    };
    let (first, _first_listener) = bind()?;
    let (second, _second_listener) = bind()?;
    Ok((first, second))
}

/// Whether bitcoind failed because another process took a port between our choosing and its binding.
fn is_port_conflict(error: &TestEnvError) -> bool {
    match error {
        TestEnvError::NodeExited {
            stderr, log_tail, ..
        } => [stderr, log_tail]
            .iter()
            .any(|text| text.contains("Unable to bind")),
        _ => false,
    }
}

fn wait_for_exit(process: &mut Child, timeout: Duration) -> Result<(), TestEnvError> {
    let started = Instant::now();
    loop {
        match process.try_wait() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if started.elapsed() >= timeout => {
                return Err(TestEnvError::Timeout {
                    what: "bitcoind to exit after `stop` (killed it)".to_owned(),
                    waited: started.elapsed(),
                })
            }
            Ok(None) => std::thread::sleep(POLL_INTERVAL),
            Err(e) => return Err(TestEnvError::io("waiting for bitcoind to exit", e)),
        }
    }
}

/// Whether `XLN_KEEP_TEST_DIRS=1` asks to keep test data directories.
pub fn keep_test_dirs() -> bool {
    std::env::var_os(KEEP_TEST_DIRS_ENV).is_some_and(|value| value == "1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn burn_script_is_the_script_of_burn_address() {
        let address = burn_address();
        let parsed = Address::from_str(&address).map(|a| a.assume_checked().script_pubkey());
        assert_eq!(parsed.ok(), Some(burn_script()));
    }

    #[test]
    fn burn_address_is_a_regtest_p2wsh_address() {
        let address = burn_address();
        assert!(address.starts_with("bcrt1q"), "{address}");
        // P2WSH: version 0 with a 32-byte program, 62 characters with the `bcrt` prefix.
        assert_eq!(address.len(), 64, "{address}");
    }

    #[test]
    fn free_port_pair_returns_two_different_ports() {
        let (rpc_port, p2p_port) = free_port_pair().expect("binding to 127.0.0.1:0 works in tests");
        assert_ne!(rpc_port, p2p_port);
    }

    #[test]
    fn node_args_point_bitcoind_at_its_datadir_and_ports() {
        let args = node_args(Path::new("/d"), 1, 2);
        assert_eq!(args.first().map(String::as_str), Some("-regtest"));
        assert!(args.contains(&"-datadir=/d".to_owned()));
        assert!(args.contains(&"-rpcport=1".to_owned()) && args.contains(&"-port=2".to_owned()));
    }

    /// Needs the Bitcoin Core binaries (built on first use, which takes long): run with
    /// `cargo test -p xln-tests --lib -- --ignored`.
    #[test]
    #[ignore = "starts a real bitcoind; builds Bitcoin Core on first use"]
    fn node_mines_blocks_and_leaves_no_datadir_behind() -> Result<(), TestEnvError> {
        crate::init_test_logging();
        let node = Bitcoind::start()?;
        let datadir = node.datadir().to_owned();
        assert!(node.cookie_file().is_file());

        let hashes = node.mine(5)?;
        assert_eq!(hashes.len(), 5);
        assert_eq!(node.cli(&["getblockcount"])?.parse::<u64>().ok(), Some(5));
        assert_eq!(
            node.cli(&["getbestblockhash"])?,
            hashes.last().cloned().unwrap_or_default()
        );
        let chain = node.cli_json(&["getblockchaininfo"])?;
        assert_eq!(chain["chain"], "regtest");

        drop(node);
        if !keep_test_dirs() {
            assert!(!datadir.exists(), "{} still exists", datadir.display());
        }
        Ok(())
    }
}
