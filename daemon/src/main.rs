//! `xlnd`: reads its configuration, opens the node in its data directory, follows the chain
//! node, and serves the JSON-RPC API until SIGINT, SIGTERM or the `stop` method.

// Doc comments of the command-line types are clap's --help text for terminals, where
// `<datadir>` is a placeholder, not an HTML tag.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod chain_wait;
mod config;
#[cfg(test)]
mod fuzz;
mod handlers;
mod rpc;
mod subscriptions;

use std::fs::File;
use std::sync::Arc;

use anyhow::{Context, Result};
use chain_bitcoin::{BitcoindAuth, BitcoindChainSource};
use chain_qtum::QtumdChainSource;
use clap::Parser;
use ln_core::node::monitor_writer::CrashPoint;
use ln_core::node::NodeBuilder;
use ln_core::{Chain, ChainSource};
use tokio::sync::watch;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use chain_wait::connect_when_ready;
use config::{Config, Flags, NodeRpcAuth};

fn main() -> std::process::ExitCode {
    keep_large_allocations_out_of_the_heap();
    let flags = Flags::parse();
    abort_on_panic();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("xlnd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("xlnd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves allocations of 128 KiB and more with their own mappings, returned to the system when
/// freed, as glibc does until the first such block is freed: glibc then raises its threshold to
/// that block's size, and the payer's manager serializations and LDK's payment table (up to
/// megabytes each at hundreds of payments in flight) came from its heaps and stayed there. Over
/// `xln-bench`'s 2,000 payments alice's RSS ended at 160-210 MB for about 55 MB of live heap;
/// with this threshold it ended at 118-127 MB, at the same speed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn keep_large_allocations_out_of_the_heap() {
    // SAFETY: mallopt only sets a tunable of glibc's allocator, which takes its own lock; it is
    // called first thing in main, before any thread of ours exists.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    // mallopt returns 1 on success; on failure glibc's default (a rising threshold) stays.
    if set != 1 {
        eprintln!("xlnd: glibc refused the mmap threshold; memory freed by large payments may stay reserved");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_out_of_the_heap() {}

async fn run(flags: Flags) -> Result<()> {
    let config = Config::resolve(flags)?;
    std::fs::create_dir_all(&config.datadir)
        .with_context(|| format!("creating the data directory {}", config.datadir.display()))?;
    // Lock first, so a second xlnd on this datadir never writes to the first one's log.
    let _lock = lock_datadir(&config)?;
    init_logging(&config)?;
    tracing::info!(datadir = %config.datadir.display(), chain = %config.params.chain, network = %config.params.network, "xlnd starting");

    let auth = match &config.node_rpc_auth {
        NodeRpcAuth::Cookie(path) => BitcoindAuth::CookieFile(path.clone()),
        NodeRpcAuth::UserPassword(user, password) => BitcoindAuth::UserPassword {
            user: user.clone(),
            password: password.clone(),
        },
    };
    let mut builder = NodeBuilder::new(&config.datadir, config.params.clone())
        .listen_on(vec![config.listen])
        .alias(config.alias.clone())
        .max_inbound_htlc_in_flight_percent(config.max_inbound_htlc_in_flight_percent)
        .max_accepted_htlcs(config.max_accepted_htlcs)
        .intercept_timeout(config.intercept_timeout)
        .htlc_batching(config.htlc_batching)
        .poll_interval(config.block_poll_interval)
        .crash_point(dev_crash_point()?)
        .slow_disk(dev_slow_disk()?)
        .full_disk_flag(dev_file("XLN_DEV_FULL_DISK_FLAG"))
        .fee_spike_file(dev_file("XLN_DEV_FEE_SPIKE_FILE"));
    if let Some(sat) = config.anchor_reserve_per_channel_sat {
        builder = builder.anchor_reserve_per_channel_sat(sat);
    }
    let params = config.params.clone();
    let url = config.node_rpc_url.as_str();
    let source: Arc<dyn ChainSource> = match params.chain {
        Chain::Bitcoin => Arc::new(
            connect_when_ready("bitcoind", || {
                BitcoindChainSource::connect(params.clone(), url, auth.clone())
            })
            .await
            .with_context(|| format!("connecting to bitcoind at {url}"))?,
        ),
        Chain::Qtum => {
            // Qtum's synthetic-header map lives in the node's own store.
            let store = builder.store().context("opening the node's store")?;
            Arc::new(
                connect_when_ready("qtumd", || {
                    QtumdChainSource::connect(params.clone(), url, auth.clone(), &store)
                })
                .await
                .with_context(|| format!("connecting to qtumd at {url}"))?,
            )
        }
    };
    let node = builder.build(source).await.context("starting the node")?;

    let (shutdown, mut shutdown_requested) = watch::channel(false);
    let cookie = rpc::write_cookie(&config.datadir)?;
    let mut credentials = vec![(rpc::COOKIE_USER.to_owned(), cookie)];
    credentials.extend(config.rpc_credentials.clone());
    let context = handlers::Context {
        node: node.clone(),
        shutdown,
    };
    let (rpc_address, server) = rpc::start(config.rpc_listen, &credentials, context).await?;
    let url_path = config.datadir.join("rpc.url");
    std::fs::write(&url_path, format!("http://{rpc_address}\n"))
        .with_context(|| format!("writing {}", url_path.display()))?;
    tracing::info!(rpc = %rpc_address, p2p = ?node.listening_addresses(), node_id = %node.node_id(), "xlnd ready");

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = sigterm.recv() => tracing::info!("SIGTERM received"),
        _ = shutdown_requested.changed() => tracing::info!("stop requested over RPC"),
    }
    // Let the `stop` call's answer go out before the server goes away.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let _ = server.stop();
    server.stopped().await;
    node.stop().await;
    let _ = std::fs::remove_file(config.datadir.join("rpc.cookie"));
    let _ = std::fs::remove_file(&url_path);
    tracing::info!("xlnd stopped");
    Ok(())
}

/// Makes a panic on any thread end the process, after it is logged to stderr and `xlnd.log`.
///
/// tokio catches a panic in a task and carries on, so without this one panicking RPC call or
/// peer message would leave xlnd running with a lock of LDK's poisoned: every later call that
/// takes the lock panics too and the node answers nothing. Every acknowledged state change is
/// already on disk (ChannelMonitors before LDK is told they are written), so ending the process
/// loses nothing, and a supervisor (systemd's `Restart=on-failure`) brings the node back in a
/// known state. The default hook's text (with a backtrace when `RUST_BACKTRACE` asks for one)
/// comes first; one `panicked` line through `tracing` ends it, so the last lines of stderr or
/// of `xlnd.log` say what happened and where.
fn abort_on_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        let thread = std::thread::current();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            %location,
            "xlnd panicked, stopping so a supervisor restarts it in a known state: {message}"
        );
        std::process::abort();
    }));
}

/// Logs to stderr and `<datadir>/xlnd.log`.
fn init_logging(config: &Config) -> Result<()> {
    let log_path = config.datadir.join("xlnd.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("log-level {:?}", config.log_level))?;
    let file = Arc::new(file);
    let writer = std::io::stderr.and(move || FileWriter(Arc::clone(&file)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the logger: {e}"))?;
    Ok(())
}

struct FileWriter(Arc<File>);

impl std::io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// Holds `<datadir>/xlnd.lock` for the life of the process, so a second xlnd on the same data
/// directory stops with a clear message instead of corrupting it.
fn lock_datadir(config: &Config) -> Result<File> {
    let path = config.datadir.join("xlnd.lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another xlnd is already running with data directory {}; stop it first (xln-cli --datadir {} stop)",
            config.datadir.display(),
            config.datadir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The test-only fault injector: `XLN_DEV_CRASH_AT=manager-write:<n>|monitor-write:<n>` makes
/// xlnd abort itself at that moment of channel-monitor persistence, as `kill -9` would there
/// (tests/crash.rs). Unset in normal operation.
fn dev_crash_point() -> anyhow::Result<Option<CrashPoint>> {
    match std::env::var("XLN_DEV_CRASH_AT") {
        Ok(point) if !point.is_empty() => point
            .parse()
            .map(Some)
            .map_err(|reason: String| anyhow::anyhow!("XLN_DEV_CRASH_AT: {reason}")),
        _ => Ok(None),
    }
}

/// The file a test-only fault injector names in the environment variable `name`, if set:
/// `XLN_DEV_FULL_DISK_FLAG=<file>` makes every store flush fail as on a full disk while that file
/// exists (tests/faults.rs); `XLN_DEV_FEE_SPIKE_FILE=<file>` multiplies every fee estimate of the
/// chain's node by the number in that file while it exists (tests/fee_spikes.rs). Unset in normal
/// operation.
fn dev_file(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os(name)
        .filter(|file| !file.is_empty())
        .map(std::path::PathBuf::from)
}

/// The test-only slow disk: `XLN_DEV_STORE_WRITE_DELAY_MS=<ms>` makes every store flush wait
/// that long, one at a time (tests/daemon.rs checks that read-only calls are still answered).
/// Unset in normal operation.
fn dev_slow_disk() -> anyhow::Result<Option<std::time::Duration>> {
    match std::env::var("XLN_DEV_STORE_WRITE_DELAY_MS") {
        Ok(ms) if !ms.is_empty() => ms
            .parse()
            .map(|ms| Some(std::time::Duration::from_millis(ms)))
            .map_err(|e| anyhow::anyhow!("XLN_DEV_STORE_WRITE_DELAY_MS: {e}")),
        _ => Ok(None),
    }
}
