//! Building `bitcoind` and `bitcoin-cli` from the Bitcoin Core source shipped in the
//! `libbitcoinkernel-sys` crate, once per machine.
//!
//! Many test processes may start at once on a machine without binaries (`cargo test` runs test
//! binaries one after another, but developers run several `cargo test`s, and CI runs jobs side by
//! side). They coordinate through an exclusive file lock on `<dir>/build.lock`: the first one
//! builds, the others wait, then find the binaries installed and return them.
//!
//! Layout of `<dir>` (`<cache>/bitcoin-core/libbitcoinkernel-sys-<VERSION>`):
//! - `build.lock` — the lock file, never deleted (deleting lock files reintroduces the race);
//! - `build/` — the CMake build tree, deleted after a successful install because it takes GBs;
//! - `build.log` — everything CMake printed during the last build;
//! - `bin/bitcoind`, `bin/bitcoin-cli` — the installed binaries, each moved into place atomically
//!   so a reader never sees a half-copied file.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{BitcoinCoreBinaries, BITCOIN_CORE_SOURCE_CRATE, BITCOIN_CORE_SOURCE_CRATE_VERSION};
use crate::command::{command_line, find_on_path, run_for_stdout, tail_of_file};
use crate::error::TestEnvError;

/// How many lines of the build log a [`TestEnvError::BuildFailed`] shows.
const LOG_TAIL_LINES: usize = 30;
/// How often a still-running build says so on stderr.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(60);
/// How often the running CMake process is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Debian packages providing everything the build needs; this is also what the error message tells
/// a non-root user to install.
const APT_PACKAGES: &[&str] = &["cmake", "libboost-dev", "libevent-dev", "pkg-config"];

/// Builds the binaries into `<cache_dir>/bin` unless another process already did, and returns them.
pub(super) fn build_into_cache(cache_dir: &Path) -> Result<BitcoinCoreBinaries, TestEnvError> {
    fs::create_dir_all(cache_dir)
        .map_err(|e| TestEnvError::io(format!("creating {}", cache_dir.display()), e))?;
    let _lock = acquire_build_lock(&cache_dir.join("build.lock"))?;

    let binaries = BitcoinCoreBinaries::in_dir(&cache_dir.join("bin"));
    if binaries.are_installed() {
        // Another process finished the build while we waited for the lock.
        return Ok(binaries);
    }
    let source_dir = bitcoin_core_source_dir()?;
    ensure_build_tools()?;
    let build_dir = cache_dir.join("build");
    compile(&source_dir, &build_dir, &cache_dir.join("build.log"))?;
    install(&build_dir.join("bin"), &binaries)?;
    if let Err(e) = fs::remove_dir_all(&build_dir) {
        tracing::warn!(build_dir = %build_dir.display(), error = %e, "could not delete the Bitcoin Core build tree");
    }
    Ok(binaries)
}

/// Blocks until this process holds the exclusive build lock; released when the file is dropped
/// (or the process dies).
fn acquire_build_lock(lock_path: &Path) -> Result<File, TestEnvError> {
    let lock_error = |e| TestEnvError::io(format!("locking {}", lock_path.display()), e);
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .map_err(|e| TestEnvError::io(format!("opening {}", lock_path.display()), e))?;
    match lock_file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            eprintln!(
                "xln-tests: another process is building Bitcoin Core (lock: {}); waiting for it…",
                lock_path.display()
            );
            lock_file.lock().map_err(lock_error)?;
        }
        Err(TryLockError::Error(e)) => return Err(lock_error(e)),
    }
    Ok(lock_file)
}

/// The part of `cargo metadata` output we read.
#[derive(Deserialize)]
struct CargoMetadata {
    packages: Vec<CargoPackage>,
}

#[derive(Deserialize)]
struct CargoPackage {
    name: String,
    version: String,
    manifest_path: PathBuf,
}

/// The `bitcoin/` directory of the `libbitcoinkernel-sys` crate in the local cargo registry.
fn bitcoin_core_source_dir() -> Result<PathBuf, TestEnvError> {
    let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // `--all-features` because the dependency is optional and never enabled: without it cargo
    // leaves the package out of `packages` (and may not even download it).
    command.current_dir(&workspace_root).args([
        "metadata",
        "--format-version",
        "1",
        "--all-features",
    ]);
    let stdout = run_for_stdout(&mut command)?;
    let metadata: CargoMetadata =
        serde_json::from_str(&stdout).map_err(|e| TestEnvError::UnexpectedOutput {
            command: command_line(&command),
            reason: e.to_string(),
        })?;
    let package = metadata
        .packages
        .iter()
        .find(|p| p.name == BITCOIN_CORE_SOURCE_CRATE && p.version == BITCOIN_CORE_SOURCE_CRATE_VERSION)
        .ok_or_else(|| TestEnvError::SourceNotFound {
            reason: format!(
                "`{}` in {} lists no {BITCOIN_CORE_SOURCE_CRATE} {BITCOIN_CORE_SOURCE_CRATE_VERSION}; \
                 is it still pinned in tests/Cargo.toml?",
                command_line(&command),
                workspace_root.display()
            ),
        })?;
    let source_dir = package
        .manifest_path
        .parent()
        .map(|crate_dir| crate_dir.join("bitcoin"))
        .filter(|dir| dir.join("CMakeLists.txt").is_file())
        .ok_or_else(|| TestEnvError::SourceNotFound {
            reason: format!(
                "no bitcoin/CMakeLists.txt next to {}",
                package.manifest_path.display()
            ),
        })?;
    Ok(source_dir)
}

/// Something the build needs, how to detect it and which Debian package provides it.
struct Requirement {
    what: &'static str,
    apt_package: &'static str,
    is_present: fn() -> bool,
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        what: "cmake",
        apt_package: "cmake",
        is_present: || find_on_path("cmake").is_some(),
    },
    Requirement {
        what: "make",
        apt_package: "make",
        is_present: || find_on_path("make").is_some(),
    },
    Requirement {
        what: "a C++ compiler (c++)",
        apt_package: "g++",
        is_present: || find_on_path("c++").is_some() || find_on_path("g++").is_some(),
    },
    Requirement {
        what: "pkg-config",
        apt_package: "pkg-config",
        is_present: || find_on_path("pkg-config").is_some(),
    },
    Requirement {
        what: "boost headers (/usr/include/boost/version.hpp)",
        apt_package: "libboost-dev",
        is_present: || Path::new("/usr/include/boost/version.hpp").is_file(),
    },
    Requirement {
        what: "libevent",
        apt_package: "libevent-dev",
        is_present: libevent_is_present,
    },
];

fn libevent_is_present() -> bool {
    let pkg_config_knows_it = Command::new("pkg-config")
        .args(["--exists", "libevent"])
        .status()
        .is_ok_and(|status| status.success());
    pkg_config_knows_it || Path::new("/usr/include/event2/event.h").is_file()
}

/// Makes sure the compilers and libraries are installed, installing them with apt when we may.
fn ensure_build_tools() -> Result<(), TestEnvError> {
    let missing = missing_requirements();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = APT_PACKAGES.to_vec();
    for requirement in &missing {
        if !packages.contains(&requirement.apt_package) {
            packages.push(requirement.apt_package);
        }
    }
    let install_args: Vec<&str> = ["install", "-y", "--no-install-recommends"]
        .into_iter()
        .chain(packages.iter().copied())
        .collect();
    let install_command = format!("apt-get update && apt-get {}", install_args.join(" "));
    let missing_names =
        |missing: &[&Requirement]| missing.iter().map(|r| r.what.to_owned()).collect();

    if !(is_root() && find_on_path("apt-get").is_some()) {
        return Err(TestEnvError::MissingTools {
            missing: missing_names(&missing),
            install_command,
        });
    }
    eprintln!(
        "xln-tests: missing {}; running `{install_command}`",
        missing
            .iter()
            .map(|r| r.what)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for args in [vec!["update"], install_args] {
        run_for_stdout(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let still_missing = missing_requirements();
    if !still_missing.is_empty() {
        return Err(TestEnvError::MissingTools {
            missing: missing_names(&still_missing),
            install_command,
        });
    }
    Ok(())
}

fn missing_requirements() -> Vec<&'static Requirement> {
    REQUIREMENTS.iter().filter(|r| !(r.is_present)()).collect()
}

fn is_root() -> bool {
    run_for_stdout(Command::new("id").arg("-u")).is_ok_and(|uid| uid == "0")
}

/// Configures and compiles the two programs into `build_dir`, CMake's output going to `log_path`.
fn compile(source_dir: &Path, build_dir: &Path, log_path: &Path) -> Result<(), TestEnvError> {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(source_dir)
        .arg("-B")
        .arg(build_dir)
        .args([
            "-DCMAKE_BUILD_TYPE=Release",
            "-DENABLE_WALLET=OFF",
            "-DENABLE_IPC=OFF",
            "-DWITH_EMBEDDED_ASMAP=OFF",
            "-DBUILD_TESTS=OFF",
            "-DBUILD_BENCH=OFF",
            "-DBUILD_KERNEL_LIB=OFF",
            "-DBUILD_GUI=OFF",
        ]);
    let mut build = Command::new("cmake");
    build
        .arg("--build")
        .arg(build_dir)
        .args(["--target", "bitcoind", "bitcoin-cli"])
        .arg(format!("-j{jobs}"));

    File::create(log_path)
        .map_err(|e| TestEnvError::io(format!("creating {}", log_path.display()), e))?;
    eprintln!(
        "xln-tests: building bitcoind and bitcoin-cli from {} with {jobs} jobs; this takes a while \
         on first use (log: {})",
        source_dir.display(),
        log_path.display()
    );
    let started = Instant::now();
    run_logged(&mut configure, log_path, started)?;
    run_logged(&mut build, log_path, started)?;
    eprintln!(
        "xln-tests: built Bitcoin Core in {:.1} min",
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// Runs `command` with its output appended to `log_path`, printing a progress line every minute.
fn run_logged(
    command: &mut Command,
    log_path: &Path,
    started: Instant,
) -> Result<(), TestEnvError> {
    let log_error = |e| TestEnvError::io(format!("writing {}", log_path.display()), e);
    let mut log = OpenOptions::new()
        .append(true)
        .open(log_path)
        .map_err(log_error)?;
    writeln!(log, "$ {}", command_line(command)).map_err(log_error)?;
    let stdout = log.try_clone().map_err(log_error)?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .spawn()
        .map_err(|e| TestEnvError::io(format!("starting `{}`", command_line(command)), e))?;

    let mut next_report = started.elapsed() + PROGRESS_INTERVAL;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                return Err(TestEnvError::io(
                    format!("waiting for `{}`", command_line(command)),
                    e,
                ))
            }
        }
        if started.elapsed() >= next_report {
            eprintln!(
                "xln-tests: still building Bitcoin Core… {} min{}",
                started.elapsed().as_secs() / 60,
                build_percentage(log_path)
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            );
            next_report += PROGRESS_INTERVAL;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    if !status.success() {
        return Err(TestEnvError::BuildFailed {
            reason: format!("`{}` exited with {status}", command_line(command)),
            log_path: log_path.to_owned(),
            log_tail: tail_of_file(log_path, LOG_TAIL_LINES),
        });
    }
    Ok(())
}

/// The latest `[ 42%]` marker make printed to the log, if any.
fn build_percentage(log_path: &Path) -> Option<String> {
    latest_percentage(&tail_of_file(log_path, LOG_TAIL_LINES))
}

fn latest_percentage(log_tail: &str) -> Option<String> {
    log_tail.lines().rev().find_map(|line| {
        let marker = line.strip_prefix('[')?.split_once("%]")?.0.trim();
        marker
            .parse::<u8>()
            .ok()
            .map(|percent| format!("{percent}%"))
    })
}

/// Copies the built programs into place, each through a temporary file and an atomic rename.
fn install(built_bin_dir: &Path, binaries: &BitcoinCoreBinaries) -> Result<(), TestEnvError> {
    for installed in [&binaries.bitcoin_cli, &binaries.bitcoind] {
        let (Some(bin_dir), Some(name)) = (installed.parent(), installed.file_name()) else {
            continue;
        };
        let built = built_bin_dir.join(name);
        let temporary = bin_dir.join(format!("{}.tmp", name.to_string_lossy()));
        fs::create_dir_all(bin_dir)
            .map_err(|e| TestEnvError::io(format!("creating {}", bin_dir.display()), e))?;
        fs::copy(&built, &temporary).map_err(|e| {
            TestEnvError::io(
                format!("copying {} to {}", built.display(), temporary.display()),
                e,
            )
        })?;
        fs::rename(&temporary, installed).map_err(|e| {
            TestEnvError::io(
                format!(
                    "renaming {} to {}",
                    temporary.display(),
                    installed.display()
                ),
                e,
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_percentage_reads_the_last_make_marker() {
        let log = "[ 42%] Building CXX object a.o\n[ 43%] Building CXX object b.o\nwarning: x\n";
        assert_eq!(latest_percentage(log), Some("43%".to_owned()));
        assert_eq!(latest_percentage("-- Configuring done"), None);
    }
}
