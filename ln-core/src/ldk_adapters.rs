//! LDK's synchronous chain interfaces (`FeeEstimator`, `BroadcasterInterface`) over the async
//! [`ChainSource`].
//!
//! LDK asks for feerates from inside its own locks and cannot wait for an RPC, so
//! [`ChainFeeEstimator`] answers from a table that [`ChainFeeEstimator::refresh`] fills (at start
//! and on every poll). Until the first refresh it answers the chain's fallbacks, never below the
//! floor. [`ChainBroadcaster`] hands transactions to a tokio task so LDK is never blocked on the
//! node; rejections are logged with the node's reason (LDK rebroadcasts what matters).

use std::sync::{Arc, RwLock};

use bitcoin::Transaction;
use lightning::chain::chaininterface::{BroadcasterInterface, ConfirmationTarget, FeeEstimator};

use crate::chain::fees::{self, ALL_CONFIRMATION_TARGETS};
use crate::chain::{ChainSource, ChainSourceError};

/// LDK's `FeeEstimator`, answered from a table refreshed from the [`ChainSource`].
pub struct ChainFeeEstimator {
    source: Arc<dyn ChainSource>,
    sat_per_kw: RwLock<[u32; ALL_CONFIRMATION_TARGETS.len()]>,
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
        }
    }

    /// Asks the chain's node for every target. On error the previous table is kept.
    pub async fn refresh(&self) -> Result<(), ChainSourceError> {
        let mut fresh = [0u32; ALL_CONFIRMATION_TARGETS.len()];
        for (slot, target) in fresh.iter_mut().zip(ALL_CONFIRMATION_TARGETS) {
            *slot = to_sat_per_kw(self.source.fee_rate(target).await?);
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
        let params = self.source.params();
        // The `MinAllowed*` targets bound the peer's feerate, not ours: the relay floor suffices.
        let floor = match confirmation_target {
            ConfirmationTarget::MinAllowedAnchorChannelRemoteFee
            | ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => {
                to_sat_per_kw(params.relay_feerate_floor())
            }
            _ => to_sat_per_kw(params.fee_floor()),
        };
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
}

/// The results of recent broadcasts, for callers that must wait until a transaction is out.
#[derive(Default)]
struct BroadcastOutcomes {
    results: std::sync::Mutex<std::collections::VecDeque<(bitcoin::Txid, Result<(), String>)>>,
    changed: tokio::sync::Notify,
}

/// How many broadcast results are remembered.
const REMEMBERED_OUTCOMES: usize = 256;

impl BroadcastOutcomes {
    fn record(&self, txid: bitcoin::Txid, result: Result<(), String>) {
        if let Ok(mut results) = self.results.lock() {
            if results.len() >= REMEMBERED_OUTCOMES {
                results.pop_front();
            }
            results.push_back((txid, result));
        }
        self.changed.notify_waiters();
    }

    fn find(&self, txid: &bitcoin::Txid) -> Option<Result<(), String>> {
        let results = self.results.lock().ok()?;
        results
            .iter()
            .rev()
            .find(|(t, _)| t == txid)
            .map(|(_, r)| r.clone())
    }
}

impl ChainBroadcaster {
    /// A broadcaster that runs its RPC calls on `runtime`.
    pub fn new(source: Arc<dyn ChainSource>, runtime: tokio::runtime::Handle) -> Self {
        Self {
            source,
            runtime,
            outcomes: Arc::default(),
        }
    }

    /// Waits until LDK's broadcast of `txid` has been answered by the chain node (at most
    /// `timeout`): `Ok` once the node has it, the node's reason if it refused, `None` if it was
    /// not broadcast in time.
    pub async fn wait_for_broadcast(
        &self,
        txid: bitcoin::Txid,
        timeout: std::time::Duration,
    ) -> Option<Result<(), String>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.outcomes.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(result) = self.outcomes.find(&txid) {
                return Some(result);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }

    /// Publishes `transactions` (a single transaction, or a child with its parents in any order)
    /// parents first, and returns each result. Used by the LDK interface and by tests.
    pub async fn broadcast_package(
        source: &dyn ChainSource,
        transactions: Vec<Transaction>,
    ) -> Vec<Result<bitcoin::Txid, ChainSourceError>> {
        let mut results = Vec::with_capacity(transactions.len());
        for transaction in parents_first(transactions) {
            let result = source.broadcast(&transaction).await;
            if let Err(error) = &result {
                // A double spend of something already confirmed is normal for LDK (see its docs).
                tracing::warn!(txid = %transaction.compute_txid(), %error, "broadcast failed");
            }
            results.push(result);
        }
        results
    }
}

impl BroadcasterInterface for ChainBroadcaster {
    fn broadcast_transactions(&self, txs: &[&Transaction]) {
        let transactions: Vec<Transaction> = txs.iter().map(|tx| (*tx).clone()).collect();
        let source = Arc::clone(&self.source);
        let outcomes = Arc::clone(&self.outcomes);
        self.runtime.spawn(async move {
            let txids: Vec<bitcoin::Txid> = parents_first(transactions.clone())
                .iter()
                .map(Transaction::compute_txid)
                .collect();
            let results = ChainBroadcaster::broadcast_package(source.as_ref(), transactions).await;
            for (txid, result) in txids.into_iter().zip(results) {
                outcomes.record(txid, result.map(drop).map_err(|e| e.to_string()));
            }
        });
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
    fn package_is_ordered_parents_first_whatever_order_ldk_gives() {
        let grandparent = spending(Txid::all_zeros(), 1);
        let parent = spending(grandparent.compute_txid(), 2);
        let child = spending(parent.compute_txid(), 3);
        let ordered = parents_first(vec![child.clone(), grandparent.clone(), parent.clone()]);
        assert_eq!(ordered, vec![grandparent, parent, child]);
    }
}
