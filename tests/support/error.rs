//! The one error type of the test-support library.
//!
//! Every variant carries what a developer needs to fix the problem without rerunning under a
//! debugger: the command line and its stderr, the log file and its last lines, the exact `apt-get`
//! command to run. `Debug` prints the same readable text as `Display` (plus the source chain), so a
//! test that ends in `.expect(..)` or returns `Result<(), TestEnvError>` shows a useful message.
//!
//! The error is `Clone` (I/O errors are kept behind an `Arc`) because the result of locating the
//! Bitcoin Core binaries is memoised per process and handed to every test that asks for it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why setting up or driving the test environment failed.
#[derive(Clone, thiserror::Error)]
pub enum TestEnvError {
    /// Programs or libraries needed to build Bitcoin Core are not installed and could not be
    /// installed automatically.
    #[error("missing build tools: {}; install them with `{install_command}`", missing.join(", "))]
    MissingTools {
        /// What is missing, e.g. `cmake` or `boost headers (/usr/include/boost/version.hpp)`.
        missing: Vec<String>,
        /// The command that installs everything in `missing`.
        install_command: String,
    },

    /// The Bitcoin Core source shipped in the `libbitcoinkernel-sys` crate could not be found.
    #[error("Bitcoin Core source not found: {reason}")]
    SourceNotFound {
        /// What was looked for and where.
        reason: String,
    },

    /// Configuring or compiling Bitcoin Core failed.
    #[error(
        "building Bitcoin Core failed: {reason}\nfull log: {}\n--- last lines of the log ---\n{log_tail}",
        log_path.display()
    )]
    BuildFailed {
        /// Which step failed and how.
        reason: String,
        /// The complete output of cmake.
        log_path: PathBuf,
        /// The last lines of `log_path`.
        log_tail: String,
    },

    /// A file-system or process operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, with the paths involved.
        context: String,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// An external command ran but exited unsuccessfully.
    #[error("command `{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line, as it could be pasted into a shell.
        command: String,
        /// The exit status, e.g. `exit status: 1`.
        status: String,
        /// What the command wrote to stderr, trimmed.
        stderr: String,
    },

    /// An external command succeeded but its output could not be understood.
    #[error("unexpected output from `{command}`: {reason}")]
    UnexpectedOutput {
        /// The command line.
        command: String,
        /// What was wrong with the output.
        reason: String,
    },

    /// `bitcoind` exited while it was expected to be running.
    #[error(
        "bitcoind exited unexpectedly ({status})\n--- stderr ---\n{stderr}\n--- last lines of {} ---\n{log_tail}",
        debug_log.display()
    )]
    NodeExited {
        /// The exit status.
        status: String,
        /// What bitcoind wrote to stderr (argument errors end up here).
        stderr: String,
        /// The node's `debug.log`.
        debug_log: PathBuf,
        /// The last lines of `debug_log`.
        log_tail: String,
    },

    /// Something did not happen within the time allowed.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        waited: Duration,
    },

    /// An environment variable has a value that cannot be used.
    #[error("environment variable {name}: {reason}")]
    BadEnvVar {
        /// The variable's name.
        name: String,
        /// What is wrong with its value.
        reason: String,
    },
}

impl TestEnvError {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TestEnvError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

impl fmt::Debug for TestEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\ncaused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_readable_and_includes_the_cause() {
        let error = TestEnvError::io(
            "reading /nowhere",
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        );
        assert_eq!(
            format!("{error:?}"),
            "reading /nowhere\ncaused by: no such file"
        );
    }
}
