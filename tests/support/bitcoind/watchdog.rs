//! A tiny shell process that kills `bitcoind` if the test binary dies without dropping its
//! [`Bitcoind`](super::Bitcoind) — killed by a signal, aborted by a panic in a destructor, or exiting
//! with the node still held in a `static`.
//!
//! The watchdog blocks reading a pipe whose only writer is the test process. However the test
//! process ends, the kernel closes that pipe, the read returns end-of-file and the watchdog sends
//! `SIGKILL` to bitcoind. On an orderly shutdown we kill the watchdog first, so it never fires.
//! (`PR_SET_PDEATHSIG` would need `unsafe`, which the workspace forbids, and fires when the
//! spawning *thread* exits, which in a test harness is far too early.)

use std::process::{Child, ChildStdin, Command, Stdio};

/// Runs as `sh -c SCRIPT xln-bitcoind-watchdog <pid>`; `$1` is the pid to kill.
const SCRIPT: &str = r#"while read -r _; do :; done; kill -KILL "$1" 2>/dev/null"#;

/// A running watchdog guarding one bitcoind process.
#[derive(Debug)]
pub(super) struct Watchdog {
    process: Child,
    /// Our end of the pipe; never written, only kept open.
    _pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts a watchdog for the process `pid`; `None` (with a warning) if `sh` cannot be started,
    /// in which case only `Drop` protects against a leaked node.
    pub(super) fn guard(pid: u32) -> Option<Self> {
        let spawned = Command::new("sh")
            .args(["-c", SCRIPT, "xln-bitcoind-watchdog", &pid.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(mut process) => {
                let pipe = process.stdin.take();
                Some(Watchdog {
                    process,
                    _pipe: pipe,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, pid, "could not start the bitcoind watchdog");
                None
            }
        }
    }

    /// Stops the watchdog without letting it fire.
    pub(super) fn disarm(mut self) {
        // Errors mean it already exited, which is what we want.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
