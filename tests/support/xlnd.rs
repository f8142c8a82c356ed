//! Real `xlnd` processes for end-to-end tests, driven through the real `xln-cli` (or raw HTTP
//! JSON-RPC where a test needs to send what the CLI never would).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::watchdog::Watchdog;
use crate::Bitcoind;

/// The cargo profile [`xln_binaries`] builds xlnd with: the one this code was built with, so
/// `cargo run --release --bin xln-bench` measures a release xlnd and `cargo test` a debug one.
pub const XLND_PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// Paths of the `xlnd` and `xln-cli` binaries of this workspace, built once per test process
/// (`cargo build` is a no-op when they are fresh), in [`XLND_PROFILE`].
pub fn xln_binaries() -> Result<&'static (PathBuf, PathBuf)> {
    static BINARIES: OnceLock<std::result::Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    BINARIES
        .get_or_init(|| build_binaries().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

fn build_binaries() -> Result<(PathBuf, PathBuf)> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the tests crate has no parent directory")?
        .to_owned();
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "-p", "xln-daemon", "-p", "xln-cli", "--bins"])
        .args(if XLND_PROFILE == "release" {
            &["--release"][..]
        } else {
            &[]
        })
        .status()
        .context("running cargo build for xlnd and xln-cli")?;
    if !status.success() {
        bail!("building xlnd and xln-cli failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let bin = target.join(XLND_PROFILE);
    Ok((bin.join("xlnd"), bin.join("xln-cli")))
}

/// One running `xlnd` on a test bitcoind. Its process can be killed and restarted through a
/// shared reference, so that other threads can drive it meanwhile (a crash during a payment).
pub struct Xlnd {
    child: Mutex<Option<Running>>,
    /// Its data directory.
    pub datadir: PathBuf,
    /// A name for messages.
    pub name: String,
    args: Vec<String>,
}

impl Xlnd {
    /// Starts `xlnd` in `datadir` on `bitcoind`, P2P and RPC on free local ports, and waits
    /// until its RPC answers.
    pub fn start(bitcoind: &Bitcoind, datadir: &Path, name: &str) -> Result<Self> {
        Self::start_with_args(bitcoind, datadir, name, &[])
    }

    /// [`Self::start`] with more `xlnd` arguments (e.g. `--chain=qtum`), which come after the
    /// defaults and so override them.
    pub fn start_with_args(
        bitcoind: &Bitcoind,
        datadir: &Path,
        name: &str,
        extra_args: &[&str],
    ) -> Result<Self> {
        std::fs::create_dir_all(datadir)?;
        let mut args = vec![
            format!("--datadir={}", datadir.display()),
            "--network=regtest".to_owned(),
            format!("--node-rpc-url={}", bitcoind.rpc_url()),
            format!("--node-rpc-cookie={}", bitcoind.cookie_file().display()),
            // A fixed port, so peers can reconnect after a restart.
            format!("--listen=127.0.0.1:{}", free_port()?),
            "--rpc-listen=127.0.0.1:0".to_owned(),
            format!("--alias={name}"),
        ];
        if !extra_args.iter().any(|arg| arg.starts_with("--log-level=")) {
            args.push("--log-level=info,ldk=warn".to_owned());
        }
        args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
        let xlnd = Self {
            child: Mutex::new(None),
            datadir: datadir.to_owned(),
            name: name.to_owned(),
            args,
        };
        xlnd.spawn(&[])?;
        Ok(xlnd)
    }

    fn spawn(&self, env: &[(&str, &str)]) -> Result<()> {
        let (xlnd, _) = xln_binaries()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.datadir.join("stderr.log"))?;
        let child = Command::new(xlnd)
            .args(&self.args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting xlnd for {}", self.name))?;
        *self.process() = Some(Running {
            watchdog: Watchdog::guard(child.id(), "xlnd"),
            child,
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let exited = match self.process().as_mut() {
                Some(running) => running.child.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                if let Some(running) = self.process().take() {
                    // Already reaped by `try_wait`: this returns its status at once.
                    running.into_child().wait()?;
                }
                bail!(
                    "xlnd {} exited at start ({status}): {}",
                    self.name,
                    self.log_tail()
                );
            }
            if self.datadir.join("rpc.url").exists() && self.cli(&["getinfo"]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "xlnd {} did not answer within 60 s: {}",
                    self.name,
                    self.log_tail()
                );
            }
            // Short: the bench times restarts by this loop.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs a second xlnd with this one's settings (same data directory) to completion and
    /// returns its exit status and stderr; it is expected to refuse to start.
    pub fn run_second_instance(&self) -> Result<(std::process::ExitStatus, String)> {
        let (xlnd, _) = xln_binaries()?;
        let output = Command::new(xlnd)
            .args(&self.args)
            .stdin(Stdio::null())
            .output()
            .context("running a second xlnd")?;
        Ok((
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    /// The last lines xlnd wrote to stderr.
    ///
    /// A panic's first lines (where and why) come before its backtrace, which alone can fill
    /// the last 30 lines: any line that tells of a panic, and the one after it, are put first.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.datadir.join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail_start = lines.len().saturating_sub(30);
        let mut panics: Vec<&str> = Vec::new();
        for (index, line) in lines[..tail_start].iter().enumerate() {
            if line.contains("panicked") {
                panics.push(line);
                if let Some(next) = lines.get(index + 1) {
                    panics.push(next);
                }
            }
        }
        // What a restart replayed onto which monitor (logged at debug level, see
        // `tests/crash.rs`): the last 40 such lines.
        let replays: Vec<&str> = lines[..tail_start]
            .iter()
            .filter(|line| {
                line.contains("channel monitor loaded")
                    || line.contains("Replaying ChannelMonitorUpdate")
                    || line.contains("completed after ChannelManager was last serialized")
            })
            .copied()
            .collect();
        // The last "no route" diagnosis before the tail (one multi-line record, see
        // `log_no_route_diagnosis`): what the router saw when a payment found no route.
        let diagnosis: Vec<&str> = lines[..tail_start]
            .iter()
            .rposition(|line| line.contains("no route found; the router saw:"))
            .map(|at| {
                let body = lines[at + 1..tail_start]
                    .iter()
                    .take_while(|line| line.starts_with("  "))
                    .count();
                lines[at..=at + body].to_vec()
            })
            .unwrap_or_default();
        let mut shown = Vec::new();
        if !diagnosis.is_empty() {
            shown.push("the last \"no route\" diagnosis, before the tail:");
            shown.extend(&diagnosis);
        }
        if !replays.is_empty() {
            shown.push("monitors and replays at the last starts, before the tail:");
            shown.extend(&replays[replays.len().saturating_sub(40)..]);
        }
        if !panics.is_empty() {
            shown.push("panics, before the tail:");
            shown.extend(panics.iter().take(20));
            shown.push("the tail:");
        }
        shown.extend(&lines[tail_start..]);
        shown.join("\n")
    }

    /// Runs `xln-cli --datadir <datadir> <args>` and parses its JSON output.
    pub fn cli(&self, args: &[&str]) -> Result<Value> {
        let output = self.cli_output(args)?;
        if !output.status.success() {
            bail!(
                "xln-cli {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        serde_json::from_slice(&output.stdout)
            .with_context(|| format!("xln-cli {} printed no JSON", args.join(" ")))
    }

    /// Runs xln-cli expecting failure; returns its exit code and stderr.
    pub fn cli_error(&self, args: &[&str]) -> Result<(i32, String)> {
        let output = self.cli_output(args)?;
        if output.status.success() {
            bail!(
                "xln-cli {} unexpectedly succeeded: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        Ok((
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    fn cli_output(&self, args: &[&str]) -> Result<std::process::Output> {
        let (_, cli) = xln_binaries()?;
        Command::new(cli)
            .arg(format!("--datadir={}", self.datadir.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running xln-cli {}", args.join(" ")))
    }

    /// Posts `body` to the RPC with the given `Authorization` header value; returns the HTTP
    /// status and response body.
    pub fn rpc_raw(&self, body: &str, authorization: Option<&str>) -> Result<(u16, String)> {
        let url = std::fs::read_to_string(self.datadir.join("rpc.url"))?;
        let address = url
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let mut stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("no HTTP status in {response:?}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// The URL of xlnd's RPC (from `<datadir>/rpc.url`), for WebSocket clients `ws://...`.
    pub fn ws_url(&self) -> Result<String> {
        let url = std::fs::read_to_string(self.datadir.join("rpc.url"))?;
        let url = url.trim();
        Ok(match url.split_once("://") {
            Some((_, rest)) => format!("ws://{rest}"),
            None => format!("ws://{url}"),
        })
    }

    /// Its resident memory now (VmRSS of the running process, from /proc), KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmRSS for xlnd {} (pid {pid})", self.name))
    }

    /// The CPU time its process has used so far, all threads, user and system.
    pub fn cpu_time(&self) -> Result<Duration> {
        let pid = self.pid()?;
        process_cpu_time(pid)
    }

    /// Its process id, while it runs.
    fn pid(&self) -> Result<u32> {
        self.process()
            .as_ref()
            .map(|running| running.child.id())
            .with_context(|| format!("xlnd {} is not running", self.name))
    }

    /// Its data directory.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The `Authorization` header value of the current cookie.
    pub fn cookie_auth(&self) -> Result<String> {
        let cookie = std::fs::read_to_string(self.datadir.join("rpc.cookie"))?;
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(cookie.trim());
        Ok(format!("Basic {encoded}"))
    }

    /// Stops xlnd with the `stop` method and waits for it to exit.
    pub fn stop(&self) -> Result<()> {
        if self.has_exited()? {
            // Stopped by itself (e.g. a terminal's Ctrl-C reached it too).
            return Ok(());
        }
        self.cli(&["stop"])?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let child = self.process().take().map(Running::into_child);
        if let Some(mut child) = child {
            loop {
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        bail!(
                            "xlnd {} exited with {status}: {}",
                            self.name,
                            self.log_tail()
                        );
                    }
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    bail!("xlnd {} did not stop within 60 s", self.name);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Kills xlnd with SIGKILL: no shutdown code runs.
    pub fn kill9(&self) -> Result<()> {
        let child = self.process().take().map(Running::into_child);
        if let Some(mut child) = child {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts xlnd again with the same settings.
    pub fn restart(&self) -> Result<()> {
        self.spawn(&[])
    }

    /// Starts xlnd again with the same settings and, for this run only, the environment
    /// variables `env` (e.g. the fault injector `XLN_DEV_CRASH_AT`).
    pub fn restart_with_env(&self, env: &[(&str, &str)]) -> Result<()> {
        self.spawn(env)
    }

    /// Whether the process has exited (by itself, e.g. aborted by the fault injector); reaps it.
    pub fn has_exited(&self) -> Result<bool> {
        let mut process = self.process();
        let exited = match process.as_mut() {
            Some(running) => running.child.try_wait()?.is_some(),
            None => true,
        };
        if exited {
            if let Some(running) = process.take() {
                // Already reaped by `try_wait`: this returns its status at once.
                running.into_child().wait()?;
            }
        }
        Ok(exited)
    }

    fn process(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `node_id@127.0.0.1:port` from getinfo.
    pub fn uri(&self) -> Result<String> {
        let info = self.cli(&["getinfo"])?;
        info["p2p_addresses"][0]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{} has no p2p address: {info}", self.name))
    }

    /// Waits until `check` on the JSON of `xln-cli <args>` returns `Some`.
    pub fn wait_cli<T>(
        &self,
        args: &[&str],
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Value) -> Option<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < timeout {
            if let Ok(value) = self.cli(args) {
                if let Some(found) = check(&value) {
                    return Ok(found);
                }
                last = value;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "{}: timed out waiting for {what}; last `{}`: {last}\n{}'s log ends:\n{}",
            self.name,
            args.join(" "),
            self.name,
            self.log_tail()
        )
    }
}

impl Drop for Xlnd {
    fn drop(&mut self) {
        if let Some(mut child) = self.process().take().map(Running::into_child) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `xlnd`, with the watchdog that kills it should this process die without reaping it
/// (`kill` of a test binary or of `xln-bench`): dropping the handle runs no destructor then.
struct Running {
    child: Child,
    watchdog: Option<Watchdog>,
}

impl Running {
    /// The process, its watchdog stopped: once the process is reaped its pid may be reused, and
    /// a watchdog left running would kill whatever then has it. (Dropped instead of stopped,
    /// the watchdog fires and kills the process.)
    fn into_child(mut self) -> Child {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        self.child
    }
}

/// A TCP port nothing listens on right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The CPU time process `pid` has used so far, all threads, user and system, from
/// `/proc/<pid>/stat` (in clock ticks of 10 ms, which Linux reports at 100 per second whatever the
/// kernel's own tick).
pub fn process_cpu_time(pid: u32) -> Result<Duration> {
    const TICKS_PER_SEC: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name, in parentheses, may hold spaces; utime and stime are the 12th and 13th
    // fields after it.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("/proc/{pid}/stat has no command name"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> Result<u64> {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .with_context(|| format!("/proc/{pid}/stat has no field {}", index + 3))
    };
    let ticks = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
}
