//! LDK's synchronous chain interfaces (`FeeEstimator`, `BroadcasterInterface`) over the async
//! [`ChainSource`].
//!
//! LDK asks for feerates from inside its own locks and cannot wait for an RPC, so
//! [`ChainFeeEstimator`] answers from a table that [`ChainFeeEstimator::refresh`] fills (at start
//! and on every poll). Until the first refresh it answers the chain's fallbacks, never below the
//! floor. [`ChainBroadcaster`] hands transactions to a tokio task so LDK is never blocked on the
//! node; rejections are logged with the node's reason (LDK rebroadcasts what matters), and the
//! last outcomes are kept ([`ChainBroadcaster::recent_broadcasts`]) for callers that wait for a
//! broadcast and for checks that every transaction relays. A refusal that only means something at
//! least as good is already spending the same outputs (LDK rebroadcasts its claims) is logged at
//! debug level, so a healthy force close does not warn every minute.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use bitcoin::Transaction;
use lightning::chain::chaininterface::{BroadcasterInterface, ConfirmationTarget, FeeEstimator};

use crate::chain::fees::{self, ALL_CONFIRMATION_TARGETS};
use crate::chain::{ChainSource, ChainSourceError};

/// LDK's `FeeEstimator`, answered from a table refreshed from the [`ChainSource`].
pub struct ChainFeeEstimator {
    source: Arc<dyn ChainSource>,
    sat_per_kw: RwLock<[u32; ALL_CONFIRMATION_TARGETS.len()]>,
    fee_spike_file: Option<PathBuf>,
}

impl ChainFeeEstimator {
    /// An estimator that answers the chain's fallback feerates until the first [`Self::refresh`].
    pub fn new(source: Arc<dyn ChainSource>) -> Self {
        let params = source.params();
        let fallbacks = ALL_CONFIRMATION_TARGETS
            .map(|target| to_sat_per_kw(fees::finalize(params, target, None)));
        Self {
            source,
            sat_per_kw: RwLock::new(fallbacks),
            fee_spike_file: None,
        }
    }

    /// Multiplies every estimate of the chain's node by the whole number written in `file`, while
    /// that file exists (read at each refresh): a fee spike for tests of how channels ride one
    /// out. Targets held at the relay floor ([`fees::follows_estimate`]) stay there, as in a
    /// real spike. Never set it in normal operation.
    pub fn with_fee_spike_file(mut self, file: Option<PathBuf>) -> Self {
        self.fee_spike_file = file;
        self
    }

    /// The factor of the test-only fee spike: 1 without one.
    fn spike_factor(&self) -> u64 {
        let Some(file) = &self.fee_spike_file else {
            return 1;
        };
        match std::fs::read_to_string(file) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(factor) if factor >= 1 => factor,
                _ => {
                    tracing::warn!(file = %file.display(), content = %text.trim(), "the fee spike file does not hold a whole number of at least 1; ignoring it");
                    1
                }
            },
            Err(_) => 1,
        }
    }

    /// Asks the chain's node for every target. On error the previous table is kept.
    pub async fn refresh(&self) -> Result<(), ChainSourceError> {
        let spike = self.spike_factor();
        let params = self.source.params();
        let mut fresh = [0u32; ALL_CONFIRMATION_TARGETS.len()];
        for (slot, target) in fresh.iter_mut().zip(ALL_CONFIRMATION_TARGETS) {
            let rate = self.source.fee_rate(target).await?;
            let factor = if fees::follows_estimate(params, target) {
                spike
            } else {
                1
            };
            *slot = to_sat_per_kw(rate.checked_mul(factor).unwrap_or(bitcoin::FeeRate::MAX));
        }
        match self.sat_per_kw.write() {
            Ok(mut table) => *table = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }
}

fn to_sat_per_kw(rate: bitcoin::FeeRate) -> u32 {
    u32::try_from(rate.to_sat_per_kwu()).unwrap_or(u32::MAX)
}

impl FeeEstimator for ChainFeeEstimator {
    fn get_est_sat_per_1000_weight(&self, confirmation_target: ConfirmationTarget) -> u32 {
        let index = ALL_CONFIRMATION_TARGETS
            .iter()
            .position(|t| *t == confirmation_target);
        let table = match self.sat_per_kw.read() {
            Ok(table) => *table,
            Err(poisoned) => *poisoned.into_inner(),
        };
        let floor = to_sat_per_kw(fees::floor(self.source.params(), confirmation_target));
        index
            .and_then(|i| table.get(i).copied())
            .unwrap_or(floor)
            .max(floor)
    }
}

/// LDK's `BroadcasterInterface`, publishing through the [`ChainSource`] on a tokio runtime.
pub struct ChainBroadcaster {
    source: Arc<dyn ChainSource>,
    runtime: tokio::runtime::Handle,
    outcomes: Arc<BroadcastOutcomes>,
    /// The last [`HANDED_OVER_KEPT`] txids LDK handed over, noted as it hands them (their
    /// outcomes come later): whether LDK published a transaction at all.
    handed_over: std::sync::Mutex<std::collections::VecDeque<bitcoin::Txid>>,
}

/// How many txids [`ChainBroadcaster::was_handed_over`] remembers.
const HANDED_OVER_KEPT: usize = 256;

/// What the chain node answered when one transaction was handed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastOutcome {
    /// The chain node has the transaction: it entered the mempool now, or was already in the
    /// mempool or in a block.
    Accepted,
    /// The chain node refused the transaction; `reason` is its own text, e.g.
    /// `min relay fee not met` or `bad-txns-inputs-missingorspent`.
    Rejected {
        /// The chain node's reject reason.
        reason: String,
    },
    /// The chain node could not be asked (unreachable, or another RPC failure).
    NotSent {
        /// What went wrong.
        error: String,
    },
}

/// One broadcast of a transaction and its outcome, as [`ChainBroadcaster::recent_broadcasts`]
/// lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastRecord {
    /// Position among all broadcasts since the broadcaster was created (0, 1, 2, ...): a reader
    /// that polls the bounded list can tell from a gap that it missed some.
    pub sequence: u64,
    /// The transaction's id. LDK rebroadcasts, so one txid can appear many times.
    pub txid: bitcoin::Txid,
    /// The transaction itself: a rejected one is nowhere else to be found, and its inputs tell
    /// what it conflicted with.
    pub transaction: Transaction,
    /// What the chain node answered.
    pub outcome: BroadcastOutcome,
}

/// The results of recent broadcasts, for callers that must wait until a transaction is out.
#[derive(Default)]
struct BroadcastOutcomes {
    records: std::sync::Mutex<BroadcastLog>,
    changed: tokio::sync::Notify,
}

/// The last [`REMEMBERED_OUTCOMES`] broadcasts and the sequence number of the next one.
#[derive(Default)]
struct BroadcastLog {
    recent: std::collections::VecDeque<BroadcastRecord>,
    next_sequence: u64,
}

/// How many broadcast results are remembered.
const REMEMBERED_OUTCOMES: usize = 256;

impl BroadcastOutcomes {
    fn record(&self, transaction: Transaction, outcome: BroadcastOutcome) {
        let txid = transaction.compute_txid();
        if let Ok(mut log) = self.records.lock() {
            if log.recent.len() >= REMEMBERED_OUTCOMES {
                log.recent.pop_front();
            }
            let sequence = log.next_sequence;
            log.next_sequence += 1;
            log.recent.push_back(BroadcastRecord {
                sequence,
                txid,
                transaction,
                outcome,
            });
        }
        self.changed.notify_waiters();
    }

    fn newest(&self, matches: impl Fn(&BroadcastRecord) -> bool) -> Option<BroadcastRecord> {
        let log = self.records.lock().ok()?;
        log.recent
            .iter()
            .rev()
            .find(|record| matches(record))
            .cloned()
    }

    fn recent(&self) -> Vec<BroadcastRecord> {
        match self.records.lock() {
            Ok(log) => log.recent.iter().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().recent.iter().cloned().collect(),
        }
    }
}

impl From<Result<bitcoin::Txid, ChainSourceError>> for BroadcastOutcome {
    fn from(result: Result<bitcoin::Txid, ChainSourceError>) -> Self {
        match result {
            Ok(_) => BroadcastOutcome::Accepted,
            Err(ChainSourceError::TransactionRejected { reason, .. }) => {
                BroadcastOutcome::Rejected { reason }
            }
            Err(other) => BroadcastOutcome::NotSent {
                error: other.to_string(),
            },
        }
    }
}

impl ChainBroadcaster {
    /// A broadcaster that runs its RPC calls on `runtime`.
    pub fn new(source: Arc<dyn ChainSource>, runtime: tokio::runtime::Handle) -> Self {
        Self {
            source,
            runtime,
            outcomes: Arc::default(),
            handed_over: std::sync::Mutex::default(),
        }
    }

    /// Whether LDK handed `txid` over to be published (among the last 256 it handed over),
    /// whatever the chain node answers.
    pub fn was_handed_over(&self, txid: &bitcoin::Txid) -> bool {
        self.handed_over
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(txid)
    }

    /// Publishes one transaction of the node's own (a withdrawal) now, and records the outcome
    /// with LDK's broadcasts, so [`Self::recent_broadcasts`] lists everything the node published.
    pub async fn broadcast_now(
        &self,
        transaction: &Transaction,
    ) -> Result<bitcoin::Txid, ChainSourceError> {
        let result = self.source.broadcast(transaction).await;
        self.outcomes
            .record(transaction.clone(), BroadcastOutcome::from(result.clone()));
        result
    }

    /// Waits until LDK's broadcast of `txid` has been answered by the chain node (at most
    /// `timeout`): the latest outcome for it, or `None` if it was not broadcast in time.
    pub async fn wait_for_broadcast(
        &self,
        txid: bitcoin::Txid,
        timeout: std::time::Duration,
    ) -> Option<BroadcastOutcome> {
        self.wait_for_record(timeout, |record| record.txid == txid)
            .await
            .map(|record| record.outcome)
    }

    /// Waits (at most `timeout`) until the chain node accepted a transaction spending `outpoint`
    /// (a channel's funding output: its closing or commitment transaction) and returns its id.
    pub async fn wait_for_accepted_spend(
        &self,
        outpoint: bitcoin::OutPoint,
        timeout: std::time::Duration,
    ) -> Option<bitcoin::Txid> {
        self.wait_for_record(timeout, |record| {
            record.outcome == BroadcastOutcome::Accepted
                && record
                    .transaction
                    .input
                    .iter()
                    .any(|input| input.previous_output == outpoint)
        })
        .await
        .map(|record| record.txid)
    }

    /// The newest remembered broadcast `matches` accepts, waiting for one up to `timeout`.
    async fn wait_for_record(
        &self,
        timeout: std::time::Duration,
        matches: impl Fn(&BroadcastRecord) -> bool,
    ) -> Option<BroadcastRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.outcomes.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(record) = self.outcomes.newest(&matches) {
                return Some(record);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }

    /// The last broadcasts (at most 256), oldest first, with what the chain node answered: every
    /// transaction LDK published (funding, commitments, HTLC claims, sweeps), rebroadcasts
    /// included. For operators and tests checking that the node's transactions relay.
    pub fn recent_broadcasts(&self) -> Vec<BroadcastRecord> {
        self.outcomes.recent()
    }

    /// Publishes `transactions` (a single transaction, or a child with its parents in any order)
    /// parents first, and returns each transaction, in that order, with its result.
    pub async fn broadcast_package(
        source: &dyn ChainSource,
        transactions: Vec<Transaction>,
    ) -> Vec<(Transaction, Result<bitcoin::Txid, ChainSourceError>)> {
        let mut results = Vec::with_capacity(transactions.len());
        for transaction in parents_first(transactions) {
            let result = source.broadcast(&transaction).await;
            if let Err(error) = &result {
                let txid = transaction.compute_txid();
                match error {
                    ChainSourceError::TransactionRejected { reason, .. } => {
                        log_refusal(txid, error, Refusal::of(reason))
                    }
                    _ => tracing::warn!(%txid, %error, "broadcast failed"),
                }
            }
            results.push((transaction, result));
        }
        results
    }
}

impl BroadcasterInterface for ChainBroadcaster {
    fn broadcast_transactions(&self, txs: &[&Transaction]) {
        {
            let mut handed_over = self
                .handed_over
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for tx in txs {
                if handed_over.len() >= HANDED_OVER_KEPT {
                    handed_over.pop_front();
                }
                handed_over.push_back(tx.compute_txid());
            }
        }
        let transactions: Vec<Transaction> = txs.iter().map(|tx| (*tx).clone()).collect();
        let source = Arc::clone(&self.source);
        let outcomes = Arc::clone(&self.outcomes);
        self.runtime.spawn(async move {
            let results = ChainBroadcaster::broadcast_package(source.as_ref(), transactions).await;
            for (transaction, result) in results {
                outcomes.record(transaction, BroadcastOutcome::from(result));
            }
        });
    }
}

/// Why the chain node refused one of our transactions, as far as it matters to an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Another transaction already spends an input, in a block or in a mempool that does not
    /// let it be replaced (Core's `bad-txns-inputs-missingorspent`, `txn-mempool-conflict`):
    /// LDK repeats its claims every block until they are deep, also after the peer's transaction
    /// or our own earlier one spent the same output.
    InputsSpent,
    /// A replacement that pays no more than what already spends its inputs in the mempool
    /// (`rejecting replacement …; new feerate … <= old feerate …`, `less fees than conflicting
    /// txs`): the same claim rebuilt at the same feerate (LDK re-signs its force-close package
    /// and its fee-bumping child every 30 s), or the other end's commitment at the same feerate.
    /// Either way something at least as good is already on its way.
    NotBetter,
    /// A replacement that pays more, but less more than the chain node's incremental relay fee
    /// asks (`not enough additional fees to relay`): the claim stays at the feerate already in
    /// the mempool until LDK bumps it by more.
    BumpTooSmall,
    /// A transaction whose relative or absolute timelock is not met yet (`non-BIP68-final`,
    /// `non-final`): after a reorg as deep as LDK's 6-block `ANTI_REORG_DELAY`, the sweep of an
    /// output locked by `OP_CHECKSEQUENCEVERIFY` whose parent went back into the mempool. LDK sends
    /// it again with the next blocks, and the chain node takes it once the parent is deep enough.
    NotFinalYet,
    /// Anything else (fee floor, dust, non-standard, invalid): a real problem.
    Other,
}

impl Refusal {
    /// Reads Bitcoin Core's (and qtumd's) reject reason.
    fn of(reason: &str) -> Self {
        if reason.contains("missingorspent") || reason.contains("txn-mempool-conflict") {
            Self::InputsSpent
        } else if reason.contains("rejecting replacement")
            && (reason.contains("<= old feerate") || reason.contains("less fees than conflicting"))
        {
            Self::NotBetter
        } else if reason.contains("rejecting replacement")
            && reason.contains("not enough additional fees")
        {
            Self::BumpTooSmall
        } else if reason.contains("non-BIP68-final") || reason.contains("non-final") {
            Self::NotFinalYet
        } else {
            Self::Other
        }
    }
}

/// Logs a refused broadcast at the level it deserves: a healthy close is quiet (debug), a claim
/// held back by the chain's relay rules or a policy refusal is a warning.
fn log_refusal(txid: bitcoin::Txid, error: &ChainSourceError, refusal: Refusal) {
    match refusal {
        Refusal::InputsSpent => {
            tracing::debug!(%txid, %error, "broadcast of a transaction whose inputs are already spent");
        }
        Refusal::NotBetter => {
            tracing::debug!(%txid, %error, "rebroadcast not needed: a transaction paying at least as much already spends the same outputs");
        }
        Refusal::BumpTooSmall => {
            tracing::warn!(%txid, %error, "a fee bump was refused: it raises the fee by less than the chain node's incremental relay fee; the earlier transaction stays in the mempool until LDK bumps by more");
        }
        Refusal::NotFinalYet => {
            tracing::info!(%txid, %error, "broadcast refused until its timelock is met (after a deep reorg, its parent may be back in the mempool); it is sent again with the next blocks");
        }
        Refusal::Other => tracing::warn!(%txid, %error, "broadcast refused"),
    }
}

/// Orders a package so every transaction comes after the ones it spends from. Bitcoin Core's
/// `submitpackage` would also let a child pay for a parent below the relay floor; xln's channels
/// do not rely on that (see docs), so sequential broadcast in this order is enough.
fn parents_first(transactions: Vec<Transaction>) -> Vec<Transaction> {
    let mut pending: Vec<(bitcoin::Txid, Transaction)> = transactions
        .into_iter()
        .map(|tx| (tx.compute_txid(), tx))
        .collect();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|(_, candidate)| {
            candidate.input.iter().all(|input| {
                !pending
                    .iter()
                    .any(|(txid, _)| *txid == input.previous_output.txid)
            })
        });
        // A cycle is impossible for valid transactions; keep the given order if one appears.
        ordered.push(pending.remove(ready.unwrap_or(0)).1);
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{
        absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Txid, Witness,
    };

    fn spending(previous: Txid, tag: u64) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint {
                    txid: previous,
                    vout: 0,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(tag),
                script_pubkey: ScriptBuf::new(),
            }],
        }
    }

    #[test]
    fn recent_broadcasts_keep_the_last_outcomes_numbered_without_gaps() {
        let outcomes = BroadcastOutcomes::default();
        let transaction = |n: u64| spending(Txid::all_zeros(), n);
        let txid = |n: u64| transaction(n).compute_txid();
        let total = REMEMBERED_OUTCOMES as u64 + 10;
        for n in 0..total {
            let outcome = if n % 2 == 0 {
                BroadcastOutcome::Accepted
            } else {
                BroadcastOutcome::Rejected {
                    reason: format!("reason {n}"),
                }
            };
            outcomes.record(transaction(n), outcome);
        }
        let recent = outcomes.recent();
        assert_eq!(recent.len(), REMEMBERED_OUTCOMES);
        let sequences: Vec<u64> = recent.iter().map(|r| r.sequence).collect();
        let expected: Vec<u64> = (10..total).collect();
        assert_eq!(sequences, expected);
        assert_eq!(recent.last().map(|r| r.txid), Some(txid(total - 1)));
        let outcome_of = |id| {
            outcomes
                .newest(|record| record.txid == id)
                .map(|record| record.outcome)
        };
        assert_eq!(outcome_of(txid(0)), None, "the oldest were forgotten");
        assert_eq!(
            outcome_of(txid(11)),
            Some(BroadcastOutcome::Rejected {
                reason: "reason 11".to_owned()
            })
        );
    }

    #[test]
    fn refusals_are_told_apart_by_core_reject_reasons() {
        let cases = [
            ("bad-txns-inputs-missingorspent", Refusal::InputsSpent),
            ("txn-mempool-conflict", Refusal::InputsSpent),
            // qtumd 27.1, on a commitment racing the other end's identical-feerate commitment.
            (
                "insufficient fee, rejecting replacement e93c13532cfe46b645c3a2767e6c914d32b5d86cbfdbe4981643c5a84b93e2cf; new feerate 0.00442444 QTUM/kvB <= old feerate 0.00442444 QTUM/kvB",
                Refusal::NotBetter,
            ),
            (
                "insufficient fee, rejecting replacement 3b1c…, less fees than conflicting txs; 0.00001000 < 0.00002000",
                Refusal::NotBetter,
            ),
            (
                "insufficient fee, rejecting replacement 3b1c…, not enough additional fees to relay; 0.00000253 < 0.00000375",
                Refusal::BumpTooSmall,
            ),
            // bitcoind, on a sweep of an anchor channel's `to_remote` output (one block of
            // `OP_CHECKSEQUENCEVERIFY`) whose commitment a 6-block reorg put back into the mempool.
            ("non-BIP68-final", Refusal::NotFinalYet),
            ("non-final", Refusal::NotFinalYet),
            ("min relay fee not met, 100 < 400", Refusal::Other),
            ("dust", Refusal::Other),
            ("insufficient fee", Refusal::Other),
        ];
        for (reason, expected) in cases {
            assert_eq!(Refusal::of(reason), expected, "{reason}");
        }
    }

    #[test]
    fn only_the_chain_nodes_refusals_count_as_rejections() {
        let txid = Txid::all_zeros();
        assert_eq!(BroadcastOutcome::from(Ok(txid)), BroadcastOutcome::Accepted);
        let refused = Err(ChainSourceError::TransactionRejected {
            txid,
            reason: "min relay fee not met".to_owned(),
        });
        assert_eq!(
            BroadcastOutcome::from(refused),
            BroadcastOutcome::Rejected {
                reason: "min relay fee not met".to_owned()
            }
        );
        let unreachable = Err(ChainSourceError::Rpc {
            method: "sendrawtransaction".to_owned(),
            message: "connection refused".to_owned(),
        });
        assert!(matches!(
            BroadcastOutcome::from(unreachable),
            BroadcastOutcome::NotSent { .. }
        ));
    }

    #[test]
    fn package_is_ordered_parents_first_whatever_order_ldk_gives() {
        let grandparent = spending(Txid::all_zeros(), 1);
        let parent = spending(grandparent.compute_txid(), 2);
        let child = spending(parent.compute_txid(), 3);
        let ordered = parents_first(vec![child.clone(), grandparent.clone(), parent.clone()]);
        assert_eq!(ordered, vec![grandparent, parent, child]);
    }
}
