//! Locating — and if necessary building — the `bitcoind` and `bitcoin-cli` programs the
//! end-to-end tests run.
//!
//! In order of preference:
//! 1. `$BITCOIND` and `$BITCOIN_CLI`, if both are set (e.g. a release download on a developer's
//!    machine or in CI);
//! 2. binaries previously built into the per-user cache,
//!    `<cache>/bitcoin-core/libbitcoinkernel-sys-<VERSION>/bin/`, where `<cache>` is
//!    `$XLN_CACHE_DIR`, else `$XDG_CACHE_HOME/xln`, else `$HOME/.cache/xln`;
//! 3. a build from the Bitcoin Core source that the `libbitcoinkernel-sys` crate ships, which
//!    happens once per machine (see the private `build` module for how concurrent test processes
//!    coordinate).
//!
//! The result is memoised, so one test binary resolves the binaries only once.

mod build;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::command::is_executable;
use crate::error::TestEnvError;

/// The version of the `libbitcoinkernel-sys` crate whose bundled Bitcoin Core source we build.
///
/// It must equal the `=` version pinned for the (never enabled) `libbitcoinkernel-sys` dependency
/// in `tests/Cargo.toml`: that pin is what makes cargo download exactly this source into the local
/// registry, where the build finds it through `cargo metadata`. The version is also part of the
/// cache directory name, so bumping the pin in both places builds a fresh bitcoind next to the old
/// one instead of mixing the two.
pub const BITCOIN_CORE_SOURCE_CRATE_VERSION: &str = "0.4.1";

/// The name of the crate that ships the Bitcoin Core source.
const BITCOIN_CORE_SOURCE_CRATE: &str = "libbitcoinkernel-sys";

/// Environment variable naming a `bitcoind` to use instead of the cached build.
pub const BITCOIND_ENV: &str = "BITCOIND";
/// Environment variable naming a `bitcoin-cli` to use instead of the cached build.
pub const BITCOIN_CLI_ENV: &str = "BITCOIN_CLI";
/// Environment variable overriding the xln cache directory.
pub const CACHE_DIR_ENV: &str = "XLN_CACHE_DIR";

/// Paths of the two Bitcoin Core programs the tests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitcoinCoreBinaries {
    /// The node daemon.
    pub bitcoind: PathBuf,
    /// The RPC command-line client.
    pub bitcoin_cli: PathBuf,
}

impl BitcoinCoreBinaries {
    /// The binaries inside `bin_dir`, whether or not they exist.
    fn in_dir(bin_dir: &Path) -> Self {
        BitcoinCoreBinaries {
            bitcoind: bin_dir.join("bitcoind"),
            bitcoin_cli: bin_dir.join("bitcoin-cli"),
        }
    }

    /// Whether both binaries exist and are executable.
    fn are_installed(&self) -> bool {
        is_executable(&self.bitcoind) && is_executable(&self.bitcoin_cli)
    }
}

/// Finds `bitcoind` and `bitcoin-cli`, building them from source the first time (which takes
/// tens of minutes on a small machine and prints progress to stderr).
///
/// Memoised: the first call in a process does the work, later calls (from any thread) return the
/// same answer, including the same error.
pub fn bitcoin_core_binaries() -> Result<BitcoinCoreBinaries, TestEnvError> {
    static RESOLVED: OnceLock<Result<BitcoinCoreBinaries, TestEnvError>> = OnceLock::new();
    RESOLVED.get_or_init(resolve_binaries).clone()
}

fn resolve_binaries() -> Result<BitcoinCoreBinaries, TestEnvError> {
    if let Some(binaries) = binaries_from_env(|name| std::env::var_os(name))? {
        tracing::info!(bitcoind = %binaries.bitcoind.display(), "using Bitcoin Core from the environment");
        return Ok(binaries);
    }
    let cache_dir = bitcoin_core_cache_dir()?;
    let binaries = BitcoinCoreBinaries::in_dir(&cache_dir.join("bin"));
    if binaries.are_installed() {
        tracing::debug!(bitcoind = %binaries.bitcoind.display(), "using cached Bitcoin Core");
        return Ok(binaries);
    }
    build::build_into_cache(&cache_dir)
}

/// The binaries named by `$BITCOIND` and `$BITCOIN_CLI`, `None` if neither is set.
fn binaries_from_env(
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<Option<BitcoinCoreBinaries>, TestEnvError> {
    let non_empty = |name: &str| {
        lookup(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    let (bitcoind, bitcoin_cli) = match (non_empty(BITCOIND_ENV), non_empty(BITCOIN_CLI_ENV)) {
        (None, None) => return Ok(None),
        (Some(bitcoind), Some(bitcoin_cli)) => (bitcoind, bitcoin_cli),
        (Some(_), None) => return Err(only_one_binary_set(BITCOIND_ENV, BITCOIN_CLI_ENV)),
        (None, Some(_)) => return Err(only_one_binary_set(BITCOIN_CLI_ENV, BITCOIND_ENV)),
    };
    for (name, path) in [(BITCOIND_ENV, &bitcoind), (BITCOIN_CLI_ENV, &bitcoin_cli)] {
        if !is_executable(path) {
            return Err(TestEnvError::BadEnvVar {
                name: name.to_owned(),
                reason: format!("{} is not an executable file", path.display()),
            });
        }
    }
    Ok(Some(BitcoinCoreBinaries {
        bitcoind,
        bitcoin_cli,
    }))
}

fn only_one_binary_set(set: &str, unset: &str) -> TestEnvError {
    TestEnvError::BadEnvVar {
        name: unset.to_owned(),
        reason: format!(
            "{set} is set but {unset} is not; set both, or neither to use the cached build"
        ),
    }
}

/// The xln cache directory: `$XLN_CACHE_DIR`, else `$XDG_CACHE_HOME/xln`, else
/// `$HOME/.cache/xln`.
pub fn cache_dir() -> Result<PathBuf, TestEnvError> {
    cache_dir_from(|name| std::env::var_os(name))
}

/// Where the Bitcoin Core build for [`BITCOIN_CORE_SOURCE_CRATE_VERSION`] lives:
/// `<cache>/bitcoin-core/libbitcoinkernel-sys-<VERSION>`.
pub fn bitcoin_core_cache_dir() -> Result<PathBuf, TestEnvError> {
    Ok(bitcoin_core_cache_dir_in(&cache_dir()?))
}

fn bitcoin_core_cache_dir_in(cache_dir: &Path) -> PathBuf {
    cache_dir.join("bitcoin-core").join(format!(
        "{BITCOIN_CORE_SOURCE_CRATE}-{BITCOIN_CORE_SOURCE_CRATE_VERSION}"
    ))
}

fn cache_dir_from(lookup: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, TestEnvError> {
    // Empty values count as unset, as the XDG base directory spec asks.
    let non_empty = |name: &str| {
        lookup(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = non_empty(CACHE_DIR_ENV) {
        if !dir.is_absolute() {
            return Err(TestEnvError::BadEnvVar {
                name: CACHE_DIR_ENV.to_owned(),
                reason: format!("{} is not an absolute path", dir.display()),
            });
        }
        return Ok(dir);
    }
    // The spec says relative XDG paths are invalid and must be ignored.
    if let Some(xdg_cache) = non_empty("XDG_CACHE_HOME").filter(|dir| dir.is_absolute()) {
        return Ok(xdg_cache.join("xln"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(home.join(".cache").join("xln")),
        None => Err(TestEnvError::BadEnvVar {
            name: "HOME".to_owned(),
            reason: format!("not set, and neither is {CACHE_DIR_ENV} or XDG_CACHE_HOME"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.into())
        }
    }

    #[test]
    fn cache_dir_prefers_xln_cache_dir_then_xdg_then_home() {
        let all = [
            ("XLN_CACHE_DIR", "/xln"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(cache_dir_from(env(&all)).ok(), Some(PathBuf::from("/xln")));
        assert_eq!(
            cache_dir_from(env(&all[1..])).ok(),
            Some(PathBuf::from("/xdg/xln"))
        );
        assert_eq!(
            cache_dir_from(env(&all[2..])).ok(),
            Some(PathBuf::from("/home/u/.cache/xln"))
        );
    }

    #[test]
    fn cache_dir_ignores_empty_and_relative_xdg_values() {
        let vars = [
            ("XLN_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "rel"),
            ("HOME", "/h"),
        ];
        assert_eq!(
            cache_dir_from(env(&vars)).ok(),
            Some(PathBuf::from("/h/.cache/xln"))
        );
    }

    #[test]
    fn cache_dir_rejects_relative_xln_cache_dir_and_missing_home() {
        assert!(matches!(
            cache_dir_from(env(&[("XLN_CACHE_DIR", "rel")])),
            Err(TestEnvError::BadEnvVar { .. })
        ));
        assert!(matches!(
            cache_dir_from(env(&[])),
            Err(TestEnvError::BadEnvVar { .. })
        ));
    }

    #[test]
    fn bitcoin_core_cache_dir_is_named_after_the_source_crate_version() {
        assert_eq!(
            bitcoin_core_cache_dir_in(Path::new("/c")),
            PathBuf::from("/c/bitcoin-core/libbitcoinkernel-sys-0.4.1")
        );
    }

    #[test]
    fn binaries_from_env_needs_both_variables() {
        assert_eq!(binaries_from_env(env(&[])).ok(), Some(None));
        let only_bitcoind = binaries_from_env(env(&[("BITCOIND", "/bin/sh")]));
        assert!(
            matches!(&only_bitcoind, Err(TestEnvError::BadEnvVar { name, .. }) if name == "BITCOIN_CLI"),
            "{only_bitcoind:?}"
        );
    }

    #[test]
    fn binaries_from_env_checks_the_files_exist() {
        let missing = binaries_from_env(env(&[("BITCOIND", "/bin/sh"), ("BITCOIN_CLI", "/nope")]));
        assert!(
            matches!(&missing, Err(TestEnvError::BadEnvVar { name, .. }) if name == "BITCOIN_CLI"),
            "{missing:?}"
        );
        let both = binaries_from_env(env(&[("BITCOIND", "/bin/sh"), ("BITCOIN_CLI", "/bin/sh")]));
        assert_eq!(
            both.ok().flatten().map(|b| b.bitcoin_cli),
            Some(PathBuf::from("/bin/sh"))
        );
    }
}
