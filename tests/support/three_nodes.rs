//! alice - bob - carol: three real `xlnd` processes on a regtest bitcoind or qtumd, with public
//! channels A-B (alice's) and B-C (bob's), for the end-to-end tests that need a forwarding node.

use anyhow::{Context, Result};
use ln_core::node::ChannelPolicy;
use ln_core::ChainParams;

use crate::qtumd::{qtum_core_or_skip, start_qtumd};
use crate::steps::{channel, fund, gossiped, id, mine, open};
use crate::xlnd::Xlnd;
use crate::{init_test_logging, Bitcoind};

/// The chain a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestChain {
    /// A regtest bitcoind.
    Bitcoin,
    /// A regtest qtumd (found as `qtumd::qtum_core_binaries` says).
    Qtum,
}

impl TestChain {
    /// The regtest parameters of this chain, as its xlnd nodes run with them.
    pub fn params(self) -> ChainParams {
        match self {
            Self::Bitcoin => ChainParams::bitcoin_regtest(),
            Self::Qtum => ChainParams::qtum_regtest(),
        }
    }

    /// The argument that has an xlnd run on this chain, if it needs one (Bitcoin is xlnd's
    /// default).
    pub fn xlnd_chain_arg(self) -> Option<&'static str> {
        match self {
            Self::Bitcoin => None,
            Self::Qtum => Some("--chain=qtum"),
        }
    }
}

/// Index of alice in [`ThreeNodes::nodes`].
pub const ALICE: usize = 0;
/// Index of bob, the forwarding node.
pub const BOB: usize = 1;
/// Index of carol.
pub const CAROL: usize = 2;

/// The three nodes and their two channels.
pub struct ThreeNodes {
    // Declared (so dropped) first: the nodes stop before their chain node and directory go.
    /// alice, bob, carol.
    pub nodes: [Xlnd; 3],
    /// Their node ids (asked once: a node may be down when they are needed).
    pub ids: [String; 3],
    /// `(channel id, its two ends as indexes into nodes)`: A-B, then B-C.
    pub channels: [(String, [usize; 2]); 2],
    /// Capacity of each channel, sat.
    pub capacity_sat: u64,
    /// The chain's parameters.
    pub params: ChainParams,
    /// The chain node.
    pub chain_node: Bitcoind,
    _dir: NodesDir,
}

/// The nodes' data directories: deleted at the end, or kept (and named) with
/// `XLN_KEEP_TEST_DIRS=1`, to read the nodes' logs after a failure.
pub struct NodesDir(Option<tempfile::TempDir>);

impl NodesDir {
    /// Takes over `dir`.
    pub fn new(dir: tempfile::TempDir) -> Self {
        Self(Some(dir))
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        self.0
            .as_ref()
            .map_or(std::path::Path::new(""), |dir| dir.path())
    }
}

impl Drop for NodesDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if crate::bitcoind::keep_test_dirs() {
                let kept = dir.keep();
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    format!(
                        "xln-tests: kept the nodes' directories in {}\n",
                        kept.display()
                    )
                    .as_bytes(),
                );
            }
        }
    }
}

impl ThreeNodes {
    /// Starts the chain node and the three nodes (each with its `extra_args`), funds alice and
    /// bob by mining, opens A-B and B-C as large as the chain's reserves need (50 times the
    /// smallest channel, at least 0.5 coin) and confirms them as deep as the policy asks, plus
    /// the 6 blocks after which channels are announced. `None` when the test is skipped for
    /// want of a qtumd. Gossip may still be arriving when it returns ([`Self::wait_for_gossip`]).
    pub fn start(chain: TestChain, test: &str, extra_args: [&[&str]; 3]) -> Result<Option<Self>> {
        Self::start_with_capacity(chain, test, extra_args, None)
    }

    /// Like [`Self::start`], with channels of `capacity_sat` if given instead of the default
    /// size: e.g. larger, for a workload that pays more than the default carries.
    pub fn start_with_capacity(
        chain: TestChain,
        test: &str,
        extra_args: [&[&str]; 3],
        capacity_sat: Option<u64>,
    ) -> Result<Option<Self>> {
        init_test_logging();
        let chain_node = match chain {
            TestChain::Bitcoin => Bitcoind::start()?,
            TestChain::Qtum => {
                let Some(binaries) = qtum_core_or_skip(test)? else {
                    return Ok(None);
                };
                start_qtumd(binaries)?
            }
        };
        let (params, chain_arg) = (chain.params(), chain.xlnd_chain_arg());
        let policy = ChannelPolicy::for_chain(&params);
        let capacity_sat = capacity_sat.unwrap_or_else(|| Self::default_capacity_sat(&policy));
        let dir = tempfile::tempdir()?;
        let start = |name: &str, extra: &[&str]| {
            let args: Vec<&str> = chain_arg.into_iter().chain(extra.iter().copied()).collect();
            Xlnd::start_with_args(&chain_node, &dir.path().join(name), name, &args)
        };
        let nodes = [
            start("alice", extra_args[ALICE])?,
            start("bob", extra_args[BOB])?,
            start("carol", extra_args[CAROL])?,
        ];
        let [alice, bob, carol] = &nodes;
        fund(&chain_node, &params, alice, &[bob, carol])?;
        fund(&chain_node, &params, bob, &[alice, carol])?;
        let ab = open(&chain_node, &params, alice, bob, capacity_sat, true)?;
        let bc = open(&chain_node, &params, bob, carol, capacity_sat, true)?;
        mine(&chain_node, 6, &[alice, bob, carol])?;
        let ids = [id(alice)?, id(bob)?, id(carol)?];
        Ok(Some(Self {
            nodes,
            ids,
            channels: [(ab, [ALICE, BOB]), (bc, [BOB, CAROL])],
            capacity_sat,
            params,
            chain_node,
            _dir: NodesDir::new(dir),
        }))
    }

    /// The channels' size unless told otherwise: as large as the chain's reserves need (50 times
    /// the smallest channel, at least 0.5 coin).
    pub fn default_capacity_sat(policy: &ChannelPolicy) -> u64 {
        policy.min_funding_sat.max(1_000_000) * 50
    }

    /// Waits until alice can route through bob to carol and carol through bob to alice.
    pub fn wait_for_gossip(&self) -> Result<()> {
        let [alice, _, carol] = &self.nodes;
        let bob_id = &self.ids[BOB];
        let (ab, bc) = (&self.channels[0].0, &self.channels[1].0);
        gossiped(
            alice,
            &self.short_channel_id(BOB, bc)?,
            bob_id,
            "B-C in alice's graph",
        )?;
        gossiped(
            carol,
            &self.short_channel_id(BOB, ab)?,
            bob_id,
            "A-B in carol's graph",
        )?;
        Ok(())
    }

    /// The three nodes' log tails, each under its name: what to print when a step fails.
    pub fn log_tails(&self) -> String {
        let logs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("--- {}:\n{}", n.name, n.log_tail()))
            .collect();
        logs.join("\n")
    }

    /// The short channel id of `channel_id` as `node` lists it.
    pub fn short_channel_id(&self, node: usize, channel_id: &str) -> Result<String> {
        channel(&self.nodes[node].cli(&["listchannels"])?, channel_id)
            .and_then(|c| c["short_channel_id"].as_str().map(str::to_owned))
            .context("short channel id")
    }

    /// `node`'s side of `channel_id` as `listchannels` shows it.
    pub fn channel(&self, node: usize, channel_id: &str) -> Result<serde_json::Value> {
        channel(&self.nodes[node].cli(&["listchannels"])?, channel_id)
            .cloned()
            .with_context(|| format!("{} has no channel {channel_id}", self.nodes[node].name))
    }

    /// The sum of both ends' balances of each channel.
    pub fn channel_sums(&self) -> Result<[u64; 2]> {
        let mut sums = [0; 2];
        for (sum, (channel_id, ends)) in sums.iter_mut().zip(&self.channels) {
            for end in ends {
                *sum += self.channel(*end, channel_id)?["local_balance_msat"]
                    .as_u64()
                    .context("local_balance_msat")?;
            }
        }
        Ok(sums)
    }
}
