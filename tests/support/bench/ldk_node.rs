//! The LDK Node half of `xln-bench` (issue 15): the same workloads as xln's, on four LDK Node
//! nodes A - B - C - D in this process, on the chain node xln's nodes use.
//!
//! Each node is LDK Node as a program embeds it: its default SQLite store, Bitcoin Core's RPC as
//! its chain source, gossip from its peers, anchor channels and LDK's default channel limits.
//! The channels are xln's: A-B, B-C and C-D, announced, paid the same amounts, and as large as xln's
//! up to [`MAX_CHANNEL_SAT`], the largest LDK Node accepts.
//! A payment's latency runs from the send call until its `PaymentSuccessful` or `PaymentFailed`
//! event. A node has one event queue, so one dispatcher thread per node takes its events off the
//! queue, marks them handled (as a program must, or the queue, rewritten to the store on every
//! event, grows) and wakes the payer waiting for that payment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use ldk_node::bitcoin::Txid;
use ldk_node::lightning::ln::channelmanager::PaymentId;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning::routing::gossip::NodeId;
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use ldk_node::{ChannelDetails, Event, Node, NodeError};
use ln_core::node::ChannelPolicy;
use ln_core::ChainParams;

use super::{PaymentFigures, Workload, WorkloadKind, WARM_UP};
use crate::ldk_node_peer::{self, EventThread};

use crate::three_nodes::{NodesDir, ALICE, BOB, CAROL};
use crate::xlnd::process_cpu_time;
use crate::Bitcoind;

/// How long setting up waits for the nodes at each step.
const WAIT: Duration = Duration::from_secs(120);
/// How often setting up looks again.
const POLL: Duration = Duration::from_millis(50);
/// How long A waits for a channel to reach her through B's gossip before she connects to its
/// two ends, which then send her their gossip of the last hour (LDK's `gossip_timestamp_filter`
/// at connection). Through B it takes seconds; one CI run waited 120 s for C-D in vain.
const GOSSIP_NUDGE: Duration = Duration::from_secs(20);
/// How long a payer waits for its payment's event: as long as xln's RPC client waits for an
/// answer.
const PAYMENT_TIMEOUT: Duration = Duration::from_secs(600);
/// Confirmations after which a channel is announced (BOLT 7), mined after the channels are
/// usable as xln's are.
const ANNOUNCEMENT_DEPTH: u32 = 6;
/// Seconds until the invoices expire: longer than any workload.
const INVOICE_EXPIRY_SECS: u32 = 3600;
/// The largest channel LDK Node accepts, sat: LDK's default `max_funding_satoshis` without
/// wumbo channels, which LDK Node does not let one change.
pub const MAX_CHANNEL_SAT: u64 = (1 << 24) - 1;
/// The nodes' names, by index ([`ALICE`], [`BOB`], [`CAROL`], [`DAVE`]).
const NAMES: [&str; 4] = ["A", "B", "C", "D"];
/// The three-hop workloads' payee, after [`ALICE`], [`BOB`] and [`CAROL`].
const DAVE: usize = 3;

/// The capacity of LDK Node's channels when xln's have `xln_capacity_sat`.
pub fn capacity_sat(xln_capacity_sat: u64) -> u64 {
    xln_capacity_sat.min(MAX_CHANNEL_SAT)
}

/// Fails unless A-B, of `capacity_sat`, can carry `workloads` of `amount_msat` payments and the
/// warm-up: A pays them all out of it, and LDK's channels keep 1 % in reserve.
pub fn ensure_workloads_fit(
    capacity_sat: u64,
    amount_msat: u64,
    workloads: &[Workload],
) -> Result<()> {
    let paid_sat = super::paid_out_of_a_b_sat(amount_msat, workloads);
    ensure!(
        paid_sat < capacity_sat / 10 * 9,
        "the workloads pay {paid_sat} sat out of A-B, too much for LDK Node's channel of \
         {capacity_sat} sat: fewer --payments or --other-payments, a smaller --amount-msat, \
         or --no-ldk-node"
    );
    Ok(())
}

/// Starts A, B, C and D on `chain`, funds them, opens A-B, B-C and C-D of `capacity_sat` each, and
/// measures `workloads` of `amount_msat` payments; `progress` hears of each step as it starts.
/// The nodes are stopped before it returns.
pub fn measure(
    chain: &Bitcoind,
    capacity_sat: u64,
    amount_msat: u64,
    workloads: &[Workload],
    progress: &dyn Fn(&str),
) -> Result<Vec<PaymentFigures>> {
    ensure_workloads_fit(capacity_sat, amount_msat, workloads)?;
    progress("LDK Node: starting A, B, C and D; funding them and opening A-B, B-C and C-D");
    let nodes = LdkNodes::start(chain)?;
    let figures = nodes
        .set_up(chain, capacity_sat, progress)
        .and_then(|()| nodes.pay_workloads(amount_msat, workloads, progress));
    progress("LDK Node: stopping A, B, C and D");
    let stopped = nodes.stop();
    let figures = figures?;
    stopped?;
    Ok(figures)
}

/// A, B, C and D, each with its event dispatcher.
struct LdkNodes {
    // Declared (so dropped) first: the dispatchers hold the nodes.
    dispatchers: Vec<EventThread>,
    /// A, B, C, D.
    nodes: [Arc<Node>; 4],
    /// How A's payments ended, from A's dispatcher.
    endings: Arc<Endings>,
    dir: NodesDir,
}

impl LdkNodes {
    /// Builds and starts the four nodes on `chain`, each in a directory of its own.
    fn start(chain: &Bitcoind) -> Result<Self> {
        let dir = NodesDir::new(
            tempfile::Builder::new()
                .prefix("xln-bench-ldk-node-")
                .tempdir()
                .context("creating LDK Node's storage directory")?,
        );
        let start = |name: &str| -> Result<Arc<Node>> {
            let node = ldk_node_peer::build(chain, dir.path(), name)?;
            node.start()
                .with_context(|| format!("starting LDK Node {name}"))?;
            Ok(Arc::new(node))
        };
        let nodes = [
            start(NAMES[ALICE])?,
            start(NAMES[BOB])?,
            start(NAMES[CAROL])?,
            start(NAMES[DAVE])?,
        ];
        let endings = Arc::new(Endings::default());
        let mut dispatchers = Vec::new();
        for (node, name) in nodes.iter().zip(NAMES) {
            // Only A pays; the others' events are taken off their queues all the same.
            let endings = if name == NAMES[ALICE] {
                Arc::clone(&endings)
            } else {
                Arc::new(Endings::default())
            };
            dispatchers.push(dispatcher(name, Arc::clone(node), endings)?);
        }
        Ok(Self {
            dispatchers,
            nodes,
            endings,
            dir,
        })
    }

    /// Funds the nodes by mining, opens A-B, B-C and C-D as xln's (announced, `capacity_sat`
    /// each, confirmed as deep as xln's), and waits until A can pay D through B and C.
    fn set_up(&self, chain: &Bitcoind, capacity_sat: u64, progress: &dyn Fn(&str)) -> Result<()> {
        let params = ChainParams::bitcoin_regtest();
        // B and D too: LDK Node accepts an anchor channel only with coins on chain for its
        // reserve.
        for node in &self.nodes {
            let address = node
                .onchain_payment()
                .new_address()
                .context("a new address of LDK Node")?;
            chain.mine_to_address(1, &address.to_string())?;
        }
        chain.mine(params.coinbase_maturity)?;
        self.sync()?;
        for (node, name) in self.nodes.iter().zip(NAMES) {
            self.wait_for(&format!("mature coins of {name}"), || {
                Ok((node.list_balances().spendable_onchain_balance_sats > 0).then_some(()))
            })?;
        }
        let funding_txids = [
            self.open(ALICE, BOB, capacity_sat)?,
            self.open(BOB, CAROL, capacity_sat)?,
            self.open(CAROL, DAVE, capacity_sat)?,
        ];
        for txid in funding_txids {
            let what = format!("funding transaction {txid} in the mempool");
            self.wait_for(&what, || Ok(in_mempool(chain, &txid)?.then_some(())))?;
        }
        chain.mine(ChannelPolicy::for_chain(&params).minimum_depth)?;
        self.sync()?;
        let ends = [ALICE, BOB, BOB, CAROL, CAROL, DAVE];
        for (node, peer) in ends
            .chunks(2)
            .flat_map(|end| [(end[0], end[1]), (end[1], end[0])])
        {
            let what = format!("usable channel {}-{}", NAMES[node], NAMES[peer]);
            self.wait_for(&what, || {
                Ok(self
                    .channel(node, peer)
                    .filter(|channel| channel.is_usable)
                    .map(drop))
            })?;
        }
        chain.mine(ANNOUNCEMENT_DEPTH)?;
        self.sync()?;
        progress("LDK Node: waiting for A to learn B-C and C-D from gossip");
        self.wait_for_route_through(BOB, CAROL, progress)?;
        self.wait_for_route_through(CAROL, DAVE, progress)
    }

    /// `opener` opens an announced channel of `capacity_sat` to `peer`; returns its funding
    /// transaction id once it has one.
    fn open(&self, opener: usize, peer: usize, capacity_sat: u64) -> Result<Txid> {
        let address = self.listening_address(peer)?;
        self.nodes[opener]
            .open_announced_channel(
                self.nodes[peer].node_id(),
                address,
                capacity_sat,
                None,
                None,
            )
            .with_context(|| {
                format!(
                    "LDK Node {} opening {capacity_sat} sat to {}",
                    NAMES[opener], NAMES[peer]
                )
            })?;
        let channel = format!("{}-{}", NAMES[opener], NAMES[peer]);
        self.wait_for(&format!("funding transaction of {channel}"), || match self
            .channel(opener, peer)
        {
            Some(opening) => Ok(opening.funding_txo.map(|funding| funding.txid)),
            None => bail!(
                "LDK Node: {channel} was closed while opening (the nodes' logs: {})",
                self.logs()
            ),
        })
    }

    /// Waits until A's graph has the channel `from`-`to` with both ends' updates and the
    /// direction out of `from` enabled: what A needs to route through `from` to `to`.
    /// If B's gossip has not brought it after [`GOSSIP_NUDGE`], A connects to its ends and says so
    /// through `progress`.
    fn wait_for_route_through(
        &self,
        from: usize,
        to: usize,
        progress: &dyn Fn(&str),
    ) -> Result<()> {
        let channel_name = format!("{}-{}", NAMES[from], NAMES[to]);
        let short_channel_id = self
            .channel(from, to)
            .and_then(|channel| channel.short_channel_id)
            .with_context(|| format!("{channel_name} has no short channel id"))?;
        let from_id = NodeId::from_pubkey(&self.nodes[from].node_id());
        let started = Instant::now();
        let mut nudged = false;
        self.wait_for(&format!("{channel_name} in A's graph"), || {
            let routable = self.alice_routes_through(short_channel_id, from_id);
            if routable.is_none() && !nudged && started.elapsed() > GOSSIP_NUDGE {
                nudged = true;
                progress(&format!(
                    "LDK Node: A has no {channel_name} from B's gossip after {GOSSIP_NUDGE:?}; \
                     connecting her to its ends"
                ));
                for end in [from, to].into_iter().filter(|end| *end != BOB) {
                    self.connect_alice_to(end)?;
                }
            }
            Ok(routable)
        })
    }

    /// Whether A's graph has the channel with both ends' updates and the direction out of
    /// `from` enabled.
    fn alice_routes_through(&self, short_channel_id: u64, from: NodeId) -> Option<()> {
        let channel = self.nodes[ALICE]
            .network_graph()
            .channel(short_channel_id)?;
        // LDK's router passes over a channel until it knows both directions.
        if channel.one_to_two.is_none() || channel.two_to_one.is_none() {
            return None;
        }
        let out_of_from = if channel.node_one == from {
            channel.one_to_two
        } else if channel.node_two == from {
            channel.two_to_one
        } else {
            None
        };
        out_of_from.filter(|update| update.enabled).map(drop)
    }

    /// Connects A to `node` (not remembered across restarts): the connection alone, no channel.
    fn connect_alice_to(&self, node: usize) -> Result<()> {
        let address = self.listening_address(node)?;
        self.nodes[ALICE]
            .connect(self.nodes[node].node_id(), address, false)
            .with_context(|| format!("LDK Node A connecting to {}", NAMES[node]))
    }

    /// Where `node` takes connections from its peers.
    fn listening_address(&self, node: usize) -> Result<SocketAddress> {
        self.nodes[node]
            .listening_addresses()
            .and_then(|addresses| addresses.first().cloned())
            .with_context(|| format!("LDK Node {} listens nowhere", NAMES[node]))
    }

    /// The warm-up, then `workloads` of `amount_msat` payments, in order.
    fn pay_workloads(
        &self,
        amount_msat: u64,
        workloads: &[Workload],
        progress: &dyn Fn(&str),
    ) -> Result<Vec<PaymentFigures>> {
        progress("LDK Node: warming up: 20 keysends A -> B");
        self.pay_many(&WARM_UP, amount_msat)?;
        workloads
            .iter()
            .map(|workload| {
                progress(&format!("LDK Node: {workload}"));
                self.pay_many(workload, amount_msat)
            })
            .collect()
    }

    /// Makes `workload.payments` payments of `amount_msat` from A, `workload.in_flight` at a
    /// time: as many payers, each sending its next payment when the last one ended.
    fn pay_many(&self, workload: &Workload, amount_msat: u64) -> Result<PaymentFigures> {
        let [alice, bob, _, dave] = &self.nodes;
        let invoices = match workload.kind {
            WorkloadKind::InvoicesOfBob => invoices(bob, workload.payments, amount_msat)?,
            WorkloadKind::InvoicesOfDave => invoices(dave, workload.payments, amount_msat)?,
            WorkloadKind::KeysendToBob | WorkloadKind::KeysendToDave => Vec::new(),
        };
        let send = |index: usize| match workload.kind {
            WorkloadKind::KeysendToBob => {
                alice
                    .spontaneous_payment()
                    .send(amount_msat, bob.node_id(), None)
            }
            WorkloadKind::KeysendToDave => {
                alice
                    .spontaneous_payment()
                    .send(amount_msat, dave.node_id(), None)
            }
            WorkloadKind::InvoicesOfBob | WorkloadKind::InvoicesOfDave => match invoices.get(index)
            {
                Some(invoice) => alice.bolt11_payment().send(invoice, None),
                None => Err(NodeError::InvalidInvoice),
            },
        };
        let next = AtomicUsize::new(0);
        let cpu_before = process_cpu_time(std::process::id())?;
        let started = Instant::now();
        let outcomes = std::thread::scope(|scope| -> Result<Vec<_>> {
            let mut payers = Vec::new();
            for _ in 0..workload.in_flight.max(1) {
                let payer = || {
                    let mut outcomes = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        if index >= workload.payments {
                            return outcomes;
                        }
                        let call = Instant::now();
                        outcomes.push(match send(index) {
                            Ok(payment_id) => self
                                .endings
                                .wait(payment_id)
                                .map(|ended_at| ended_at.duration_since(call)),
                            Err(refusal) => Err(self.refused(&refusal)),
                        });
                    }
                };
                payers.push(
                    std::thread::Builder::new()
                        .spawn_scoped(scope, payer)
                        .context("starting a payer thread")?,
                );
            }
            Ok(payers
                .into_iter()
                .flat_map(|payer| payer.join().unwrap_or_default())
                .collect())
        })?;
        let wall = started.elapsed();
        let cpu = process_cpu_time(std::process::id())?.saturating_sub(cpu_before);
        Ok(PaymentFigures::new(workload, outcomes, wall, cpu))
    }

    /// Why A refused to send a payment at once: LDK Node's error, and what A-B can carry in a
    /// new HTLC just after (0 while all the HTLC slots B allows are taken; a payment that ended
    /// meanwhile may have freed one).
    fn refused(&self, error: &NodeError) -> String {
        let limit = self
            .channel(ALICE, BOB)
            .map_or("no channel".to_owned(), |channel| {
                channel.next_outbound_htlc_limit_msat.to_string()
            });
        format!("refused: {error} (A-B's next_outbound_htlc_limit_msat just after: {limit})")
    }

    /// `node`'s channel with `peer`, if it has one.
    fn channel(&self, node: usize, peer: usize) -> Option<ChannelDetails> {
        let peer_id = self.nodes[peer].node_id();
        self.nodes[node]
            .list_channels()
            .into_iter()
            .find(|channel| channel.counterparty_node_id == peer_id)
    }

    /// Has every node take in the chain's new blocks now, not at its next poll.
    fn sync(&self) -> Result<()> {
        for (node, name) in self.nodes.iter().zip(NAMES) {
            node.sync_wallets()
                .with_context(|| format!("LDK Node {name} syncing to the chain"))?;
        }
        Ok(())
    }

    /// Polls `ready` until it gives a value, for up to [`WAIT`].
    fn wait_for<T>(&self, what: &str, mut ready: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        let started = Instant::now();
        loop {
            if let Some(value) = ready()? {
                return Ok(value);
            }
            if started.elapsed() > WAIT {
                bail!(
                    "LDK Node: no {what} after {WAIT:?} (the nodes' logs: {})",
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Where the nodes' logs are, for errors.
    fn logs(&self) -> String {
        format!(
            "{}/*/ldk_node.log; XLN_KEEP_TEST_DIRS=1 keeps them",
            self.dir.path().display()
        )
    }

    /// Stops the dispatchers, then the nodes.
    fn stop(mut self) -> Result<()> {
        let mut first_error = None;
        for dispatcher in &mut self.dispatchers {
            if let Err(error) = dispatcher.stop() {
                first_error.get_or_insert(error);
            }
        }
        for (node, name) in self.nodes.iter().zip(NAMES) {
            if let Err(error) = node.stop() {
                first_error.get_or_insert(anyhow!("stopping LDK Node {name}: {error}"));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// `count` invoices of `amount_msat` from `payee`.
fn invoices(payee: &Node, count: usize, amount_msat: u64) -> Result<Vec<Bolt11Invoice>> {
    (0..count)
        .map(|n| {
            let description = Description::new(format!("bench {n}"))?;
            payee
                .bolt11_payment()
                .receive(
                    amount_msat,
                    &Bolt11InvoiceDescription::Direct(description),
                    INVOICE_EXPIRY_SECS,
                )
                .context("LDK Node making an invoice")
        })
        .collect()
}

/// Whether `txid` is in `chain`'s mempool.
fn in_mempool(chain: &Bitcoind, txid: &Txid) -> Result<bool> {
    let txid = txid.to_string();
    let mempool = chain.cli_json(&["getrawmempool"])?;
    Ok(mempool
        .as_array()
        .is_some_and(|txids| txids.iter().any(|listed| *listed == txid.as_str())))
}

/// How A's payments ended, by payment id: the dispatcher reports each end, a payer waits for
/// its payment's, whichever comes first.
#[derive(Default)]
struct Endings {
    state: Mutex<EndingsState>,
}

#[derive(Default)]
struct EndingsState {
    payments: HashMap<PaymentId, Ending>,
    /// Set when the dispatcher stopped for good: why no payment can end any more.
    closed: Option<String>,
}

/// One payment's end, or the payer waiting for it.
enum Ending {
    /// The payer waits; the dispatcher sends the end through here.
    Awaited(mpsc::Sender<Ended>),
    /// It ended before its payer asked.
    Ended(Ended),
}

/// When a payment's event was taken off the queue, or why the payment failed.
type Ended = std::result::Result<Instant, String>;

impl Endings {
    fn lock(&self) -> MutexGuard<'_, EndingsState> {
        // A payer that panicked leaves the map as valid as before.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reports that `payment_id` ended.
    fn end(&self, payment_id: PaymentId, ended: Ended) {
        let mut state = self.lock();
        match state.payments.remove(&payment_id) {
            // A payer gone is a payer that timed out: nobody is left to tell.
            Some(Ending::Awaited(payer)) => drop(payer.send(ended)),
            _ => drop(state.payments.insert(payment_id, Ending::Ended(ended))),
        }
    }

    /// Waits until `payment_id` ended, for up to [`PAYMENT_TIMEOUT`].
    fn wait(&self, payment_id: PaymentId) -> Ended {
        let ending = {
            let mut state = self.lock();
            if let Some(Ending::Ended(ended)) = state.payments.remove(&payment_id) {
                return ended;
            }
            if let Some(why) = &state.closed {
                return Err(why.clone());
            }
            let (payer, ending) = mpsc::channel();
            state.payments.insert(payment_id, Ending::Awaited(payer));
            ending
        };
        ending.recv_timeout(PAYMENT_TIMEOUT).unwrap_or_else(|_| {
            Err(format!(
                "no PaymentSuccessful or PaymentFailed within {PAYMENT_TIMEOUT:?}"
            ))
        })
    }

    /// Fails every awaited payment, and every later wait, with `why`.
    fn close(&self, why: String) {
        let mut state = self.lock();
        for (_, ending) in state.payments.drain() {
            if let Ending::Awaited(payer) = ending {
                drop(payer.send(Err(why.clone())));
            }
        }
        state.closed = Some(why);
    }
}

/// One node's event dispatcher: reports payments' ends to its [`Endings`]; if it stops on an
/// error, every payment still awaited fails with it.
fn dispatcher(name: &str, node: Arc<Node>, endings: Arc<Endings>) -> Result<EventThread> {
    let closing = Arc::clone(&endings);
    EventThread::spawn(
        name,
        node,
        move |event| {
            let taken_at = Instant::now();
            match event {
                Event::PaymentSuccessful {
                    payment_id: Some(payment_id),
                    ..
                } => endings.end(payment_id, Ok(taken_at)),
                Event::PaymentFailed {
                    payment_id: Some(payment_id),
                    reason,
                    ..
                } => endings.end(payment_id, Err(format!("PaymentFailed: {reason:?}"))),
                _ => {}
            }
        },
        move |error| closing.close(format!("the event dispatcher stopped: {error:#}")),
    )
}
