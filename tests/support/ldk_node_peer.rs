//! LDK Node as another implementation beside xlnd: built and run in this process on the test's
//! bitcoind, for end-to-end tests of xln against an LDK Node peer (issue 16) and for the LDK Node
//! half of `xln-bench` (issue 15).
//!
//! [`build`] makes a node as a program embeds LDK Node: its default SQLite store, Bitcoin Core's
//! RPC as its chain source, gossip from its peers, anchor channels and LDK's default channel
//! limits, listening on localhost. [`LdkNodePeer`] is one such node with a thread that takes every
//! event off its queue and keeps it, for a test to look at.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::bitcoin::Network;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::logger::LogLevel;
use ldk_node::{Builder, ChannelDetails, Event, Node};
use tokio::sync::watch;

use crate::three_nodes::NodesDir;
use crate::Bitcoind;

/// How often [`LdkNodePeer::wait_for`] looks again.
const POLL: Duration = Duration::from_millis(100);

/// Builds (does not start) an LDK Node called `name` on `chain`, storing into `dir/name`: an
/// announced-capable node (a listening address on 127.0.0.1 and an alias) that logs at info.
pub fn build(chain: &Bitcoind, dir: &Path, name: &str) -> Result<Node> {
    let cookie = std::fs::read_to_string(chain.cookie_file())
        .with_context(|| format!("reading {}", chain.cookie_file().display()))?;
    let (rpc_user, rpc_password) = cookie
        .trim()
        .split_once(':')
        .context("bitcoind's cookie is not user:password")?;
    let mut builder = Builder::new();
    builder
        .set_network(Network::Regtest)
        .set_storage_dir_path(dir.join(name).to_string_lossy().into_owned())
        // Info, as xlnd in the tests and the bench: LDK Node's default, debug, writes many lines
        // a payment.
        .set_filesystem_logger(None, Some(LogLevel::Info))
        .set_chain_source_bitcoind_rpc(
            "127.0.0.1".to_owned(),
            chain.rpc_port(),
            rpc_user.to_owned(),
            rpc_password.to_owned(),
        )
        .set_gossip_source_p2p();
    // A listening address and an alias: LDK Node opens announced channels only with both.
    builder
        .set_listening_addresses(vec![SocketAddress::TcpIpV4 {
            addr: [127, 0, 0, 1],
            port: free_port()?,
        }])
        .context("setting LDK Node's listening address")?;
    builder
        .set_node_alias(format!("xln-tests-ldk-node-{name}"))
        .context("setting LDK Node's alias")?;
    builder
        .build()
        .with_context(|| format!("building LDK Node {name}"))
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// A thread that takes each event off an LDK Node's queue, hands it to a handler and marks it
/// handled (as a program must, or LDK Node raises it again). Stopped and joined on drop.
pub struct EventThread {
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl EventThread {
    /// Starts the thread for `node` (called `name` in the thread's name); `on_stop` hears why
    /// it stopped if an error stopped it.
    pub fn spawn(
        name: &str,
        node: Arc<Node>,
        mut handle: impl FnMut(Event) + Send + 'static,
        on_stop: impl FnOnce(&anyhow::Error) + Send + 'static,
    ) -> Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name(format!("ldk-node-{name}-events"))
            .spawn(move || {
                let pumped = pump_events(&node, &mut handle, stopped);
                if let Err(error) = &pumped {
                    on_stop(error);
                }
                pumped
            })
            .context("starting an LDK Node event thread")?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it; its error, if it stopped on one.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            // An error means the thread has ended already.
            let _ = stop.send(true);
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow!("an LDK Node event thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for EventThread {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::warn!(error = %format!("{error:#}"), "LDK Node event thread");
        }
    }
}

/// The event thread's loop, until `stopped` says so.
fn pump_events(
    node: &Node,
    handle: &mut dyn FnMut(Event),
    mut stopped: watch::Receiver<bool>,
) -> Result<()> {
    // A runtime of its own to wait on the queue and the stop signal at once. `event_handled`
    // is called outside it: it blocks on LDK Node's own runtime.
    let waiter = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("building the event thread's runtime")?;
    loop {
        let next = waiter.block_on(async {
            tokio::select! {
                event = node.next_event_async() => Some(event),
                _ = stopped.changed() => None,
            }
        });
        let Some(event) = next else {
            return Ok(());
        };
        handle(event);
        node.event_handled()
            .context("LDK Node could not mark an event handled")?;
    }
}

/// One running LDK Node with every event it raised kept in order.
pub struct LdkNodePeer {
    // Declared (so dropped) first: the event thread holds the node.
    events_thread: EventThread,
    node: Arc<Node>,
    events: Arc<Mutex<Vec<Event>>>,
    name: String,
    dir: NodesDir,
}

impl LdkNodePeer {
    /// Builds and starts an LDK Node called `name` on `chain`.
    pub fn start(chain: &Bitcoind, name: &str) -> Result<Self> {
        let dir = NodesDir::new(
            tempfile::Builder::new()
                .prefix("xln-ldk-node-")
                .tempdir()
                .context("creating LDK Node's storage directory")?,
        );
        let node = Arc::new(build(chain, dir.path(), name)?);
        node.start()
            .with_context(|| format!("starting LDK Node {name}"))?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&events);
        let events_thread = EventThread::spawn(
            name,
            Arc::clone(&node),
            move |event| {
                tracing::debug!(?event, "LDK Node event");
                kept.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(event);
            },
            |_| {},
        )?;
        Ok(Self {
            events_thread,
            node,
            events,
            name: name.to_owned(),
            dir,
        })
    }

    /// The node, to call LDK Node's API.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Its public key.
    pub fn id(&self) -> PublicKey {
        self.node.node_id()
    }

    /// `pubkey@127.0.0.1:port`, for xlnd's `connect`.
    pub fn uri(&self) -> Result<String> {
        let address = self
            .node
            .listening_addresses()
            .and_then(|addresses| addresses.first().cloned())
            .with_context(|| format!("LDK Node {} listens nowhere", self.name))?;
        Ok(format!("{}@{address}", self.id()))
    }

    /// Every event the node raised so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The node's channel whose id is `channel_id` (hex, as xlnd lists it), if it has it.
    pub fn channel(&self, channel_id: &str) -> Option<ChannelDetails> {
        self.node
            .list_channels()
            .into_iter()
            .find(|channel| channel.channel_id.to_string() == channel_id)
    }

    /// Has the node take in the chain's new blocks now, not at its next poll.
    pub fn sync(&self) -> Result<()> {
        self.node
            .sync_wallets()
            .with_context(|| format!("LDK Node {} syncing to the chain", self.name))
    }

    /// Polls `ready` until it gives a value, for up to `wait`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        wait: Duration,
        mut ready: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        loop {
            if let Some(value) = ready()? {
                return Ok(value);
            }
            if started.elapsed() > wait {
                bail!(
                    "LDK Node {}: no {what} after {wait:?} (its log: {})",
                    self.name,
                    self.log_path().display()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Its log file (kept after the test with `XLN_KEEP_TEST_DIRS=1`).
    pub fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join(&self.name).join("ldk_node.log")
    }

    /// Stops the event thread, then the node.
    pub fn stop(mut self) -> Result<()> {
        let events = self.events_thread.stop();
        self.node
            .stop()
            .map_err(|error| anyhow!("stopping LDK Node {}: {error}", self.name))?;
        events
    }
}

impl Drop for LdkNodePeer {
    fn drop(&mut self) {
        if let Err(error) = self.events_thread.stop() {
            tracing::warn!(error = %format!("{error:#}"), "LDK Node's event thread");
        }
        // Stopping a node that was stopped already only says so.
        let _ = self.node.stop();
    }
}
