//! A tiny shell process that kills a node the tests started (`bitcoind`, `qtumd`, `xlnd`) if the
//! test binary or `xln-bench` dies without dropping its handle: killed by a signal (`kill`,
//! `timeout`, CI's time limit), aborted by a panic in a destructor, or exiting with the node still
//! held in a `static`. Without it the node outlives the run, holding its ports and its CPU.
//!
//! The watchdog blocks reading a pipe whose only writer is the test process. However the test
//! process ends, the kernel closes that pipe, the read returns end-of-file and the watchdog sends
//! `SIGKILL` to the node. On an orderly shutdown we kill the watchdog first, so it never fires.
//! (`PR_SET_PDEATHSIG` would need `unsafe`, which the workspace forbids, and fires when the
//! spawning *thread* exits, which in a test harness is far too early.)

use std::process::{Child, ChildStdin, Command, Stdio};

/// Runs as `sh -c SCRIPT xln-watchdog <pid>`; `$1` is the pid to kill.
const SCRIPT: &str = r#"while read -r _; do :; done; kill -KILL "$1" 2>/dev/null"#;

/// A running watchdog guarding one node process.
#[derive(Debug)]
pub(crate) struct Watchdog {
    process: Child,
    /// Our end of the pipe; never written, only kept open.
    _pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts a watchdog for the process `pid` (`what` names it in a warning); `None` (with the
    /// warning) if `sh` cannot be started, in which case only `Drop` protects against a leaked
    /// node. Disarm it once the process is reaped: its pid may be reused.
    pub(crate) fn guard(pid: u32, what: &str) -> Option<Self> {
        let spawned = Command::new("sh")
            .args(["-c", SCRIPT, "xln-watchdog", &pid.to_string()])
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
                tracing::warn!(error = %e, pid, what, "could not start the watchdog of a node");
                None
            }
        }
    }

    /// Stops the watchdog without letting it fire.
    pub(crate) fn disarm(mut self) {
        // Errors mean it already exited, which is what we want.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Whether `child` exits within `wait`.
    fn exits_within(child: &mut Child, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if child.try_wait().ok().flatten().is_some() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_watchdog_kills_its_process_when_its_pipe_closes_and_not_once_disarmed() {
        let mut guarded = Command::new("sleep").arg("60").spawn().expect("sleep");
        let watchdog = Watchdog::guard(guarded.id(), "sleep").expect("sh");
        // What the kernel does for a test process that dies: it closes our end of the pipe.
        drop(watchdog);
        assert!(exits_within(&mut guarded, Duration::from_secs(10)));

        let mut spared = Command::new("sleep").arg("60").spawn().expect("sleep");
        Watchdog::guard(spared.id(), "sleep").expect("sh").disarm();
        assert!(!exits_within(&mut spared, Duration::from_millis(300)));
        let _ = spared.kill();
        let _ = spared.wait();
    }
}
