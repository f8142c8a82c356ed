//! In-process xln nodes (`ln_core::Node`) on a test bitcoind (or qtumd), for the node-core
//! end-to-end tests and the bench's Rust API half, and the waits they need (with progress in
//! the log while they wait).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use ln_core::node::{Node, NodeBuilder};
use ln_core::{Chain, ChainParams, ChainSource};

use crate::chain_source::{qtum_regtest_chain_source, regtest_chain_source_with};
use crate::Bitcoind;

/// One node of a test: its data directory and the running [`Node`].
pub struct TestNode {
    /// The running node.
    pub node: Node,
    /// Its data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// A name for logs.
    pub name: String,
    /// The chain parameters the node runs with (kept across restarts).
    pub params: ChainParams,
}

impl TestNode {
    /// Starts a node in `data_dir` (created if missing) on `bitcoind`'s chain, listening on a
    /// free local port.
    pub async fn start(bitcoind: &Bitcoind, data_dir: &Path, name: &str) -> Result<Self> {
        Self::start_with_params(bitcoind, data_dir, name, ChainParams::bitcoin_regtest()).await
    }

    /// Like [`TestNode::start`], with the node following `params` instead of Bitcoin regtest's
    /// own. Bitcoin's must keep Bitcoin regtest's genesis block, which is the chain `bitcoind`
    /// serves; with [`ChainParams::qtum_regtest`], `chain_node` is a regtest qtumd.
    pub async fn start_with_params(
        chain_node: &Bitcoind,
        data_dir: &Path,
        name: &str,
        params: ChainParams,
    ) -> Result<Self> {
        let mut builder = NodeBuilder::new(data_dir, params.clone())
            .listen_on(vec!["127.0.0.1:0".parse()?])
            .alias(name)
            .poll_interval(Duration::from_millis(200));
        let source: Arc<dyn ChainSource> = match params.chain {
            Chain::Bitcoin => {
                Arc::new(regtest_chain_source_with(chain_node, params.clone()).await?)
            }
            Chain::Qtum => {
                // As xlnd does: Qtum's synthetic headers live in the node's own store.
                let store = builder.store().context("opening the node's store")?;
                Arc::new(qtum_regtest_chain_source(chain_node, &store).await?)
            }
        };
        let node = builder
            .build(source)
            .await
            .with_context(|| format!("starting node {name}"))?;
        Ok(Self {
            node,
            data_dir: data_dir.to_owned(),
            name: name.to_owned(),
            params,
        })
    }

    /// Stops the node cleanly and starts it again from the same directory, with the same
    /// parameters.
    pub async fn restart(self, bitcoind: &Bitcoind) -> Result<Self> {
        self.node.stop().await;
        let Self {
            data_dir,
            name,
            node,
            params,
        } = self;
        drop(node);
        // The store's directory lock goes with the last handle; give tasks a moment to drop theirs.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match Self::start_with_params(bitcoind, &data_dir, &name, params.clone()).await {
                Ok(node) => return Ok(node),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "restart: store still locked, retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `pubkey@127.0.0.1:port` of this node.
    pub fn uri(&self) -> Result<String> {
        let address = self
            .node
            .listening_addresses()
            .first()
            .copied()
            .ok_or_else(|| anyhow!("{} does not listen", self.name))?;
        Ok(format!("{}@{address}", self.node.node_id()))
    }

    /// Waits up to `timeout` until this node has a usable channel with `peer`, and returns it.
    pub async fn usable_channel_with(
        &self,
        peer: &TestNode,
        timeout: Duration,
    ) -> Result<ln_core::node::ChannelInfo> {
        let peer_id = peer.node.node_id();
        wait_for(
            &format!("{} to see a usable channel with {}", self.name, peer.name),
            timeout,
            || async {
                self.node
                    .list_channels()
                    .into_iter()
                    .find(|c| c.peer_id == peer_id && c.is_usable)
            },
        )
        .await
    }

    /// Waits up to `timeout` until this node's invoice `payment_hash` is paid, and returns it.
    pub async fn paid_invoice(
        &self,
        payment_hash: &str,
        timeout: Duration,
    ) -> Result<ln_core::node::InvoiceRecord> {
        wait_for(
            &format!("{}'s invoice {payment_hash} paid", self.name),
            timeout,
            || async {
                let invoices = self.node.list_invoices(Some(payment_hash)).ok()?;
                invoices
                    .into_iter()
                    .find(|i| i.status == ln_core::node::InvoiceStatus::Paid)
            },
        )
        .await
    }

    /// Mines a coinbase to this node's wallet and then enough blocks for it to mature; returns
    /// the coinbase value in sat.
    pub async fn fund_by_mining(&self, bitcoind: &Bitcoind) -> Result<u64> {
        let address = self.node.new_address()?;
        let hashes = bitcoind.mine_to_address(1, &address)?;
        let block = bitcoind.cli_json(&["getblock", &hashes[0], "2"])?;
        let value_btc = block["tx"][0]["vout"][0]["value"]
            .as_f64()
            .ok_or_else(|| anyhow!("coinbase without value"))?;
        bitcoind.mine(100)?;
        self.node.wait_synced(Duration::from_secs(60)).await?;
        Ok((value_btc * 100_000_000.0).round() as u64)
    }
}

/// Waits up to `timeout` for `check` to return `Some`, polling every 200 ms and logging `what`
/// every 10 s.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    let mut next_log = Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        let waited = start.elapsed();
        if waited >= timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        if waited >= next_log {
            tracing::info!(waited_secs = waited.as_secs(), "still waiting for {what}");
            next_log += Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Mines `blocks` blocks and waits until every node has processed them.
pub async fn mine_and_sync(bitcoind: &Bitcoind, blocks: u32, nodes: &[&TestNode]) -> Result<()> {
    bitcoind.mine(blocks)?;
    for node in nodes {
        node.node
            .wait_synced(Duration::from_secs(60))
            .await
            .with_context(|| format!("{} syncing", node.name))?;
    }
    Ok(())
}
