//! Proof that every transaction some nodes published was accepted by the chain node's mempool and
//! confirmed, and that none of them has a dust output or pays less than the relay floor.
//!
//! The evidence is the nodes' own broadcast logs ([`Node::recent_broadcasts`], collected into a
//! [`BroadcastLog`] often enough that nothing is lost) checked against every block of the chain
//! ([`ChainTransactions`]). Blocks are mined from the mempool, so a confirmed transaction is one
//! the mempool accepted. LDK rebroadcasts: a rejection is tolerated only if it is a duplicate of a
//! transaction that confirmed, or a conflict with one that did (a double spend of something
//! already resolved, which LDK documents as normal), and never for a policy reason such as
//! `min relay fee not met` or `dust`. Since the mempool never judged such a transaction, it is
//! checked here against the same dust threshold and relay floor as the confirmed ones.
//!
//! [`Node::recent_broadcasts`]: ln_core::node::Node::recent_broadcasts

use std::collections::HashMap;

use anyhow::{anyhow, ensure, Context, Result};
use bitcoin::{Amount, OutPoint, Transaction, Txid};
use ln_core::ldk_adapters::{BroadcastOutcome, BroadcastRecord};
use ln_core::{ChainParams, ChainSource};

use crate::ln_node::TestNode;

/// Reject reasons that say the chain node already has the transaction itself.
const DUPLICATE_REASONS: [&str; 5] = [
    "txn-already-in-mempool",
    "txn-already-known",
    "txn-same-nonwitness-data-in-mempool",
    "already in block chain",
    "already in utxo set",
];

/// Reject reasons that say an input is already spent (in a block or by a mempool transaction
/// that this one could not replace) or not there yet. Bitcoin Core checks these before the fee,
/// and checks dust before all of them.
const CONFLICT_REASONS: [&str; 5] = [
    "inputs missing or spent",
    "bad-txns-inputs-missingorspent",
    "missing-inputs",
    "txn-mempool-conflict",
    "rejecting replacement",
];

/// Every broadcast of some nodes, in each node's order.
#[derive(Debug, Default)]
pub struct BroadcastLog {
    nodes: Vec<NodeBroadcasts>,
}

#[derive(Debug)]
struct NodeBroadcasts {
    name: String,
    records: Vec<BroadcastRecord>,
    next_sequence: u64,
}

impl BroadcastLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds what `node` broadcast since the last call. Fails if some broadcasts were already
    /// forgotten by the node (it keeps only the last ones): then call this more often.
    pub fn collect(&mut self, node: &TestNode) -> Result<()> {
        let index = match self.nodes.iter().position(|n| n.name == node.name) {
            Some(index) => index,
            None => {
                self.nodes.push(NodeBroadcasts {
                    name: node.name.clone(),
                    records: Vec::new(),
                    next_sequence: 0,
                });
                self.nodes.len() - 1
            }
        };
        let entry = self
            .nodes
            .get_mut(index)
            .ok_or_else(|| anyhow!("log entry of {} missing", node.name))?;
        for record in node.node.recent_broadcasts() {
            if record.sequence < entry.next_sequence {
                continue;
            }
            ensure!(
                record.sequence == entry.next_sequence,
                "{}: broadcasts {}..{} were forgotten before they were collected",
                entry.name,
                entry.next_sequence,
                record.sequence
            );
            entry.next_sequence += 1;
            entry.records.push(record);
        }
        Ok(())
    }

    /// Every record, with the name of the node that broadcast it.
    pub fn records(&self) -> impl Iterator<Item = (&str, &BroadcastRecord)> {
        self.nodes
            .iter()
            .flat_map(|n| n.records.iter().map(move |r| (n.name.as_str(), r)))
    }

    /// How many broadcasts (rebroadcasts included) were collected.
    pub fn len(&self) -> usize {
        self.nodes.iter().map(|n| n.records.len()).sum()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A transaction in a block of the best chain.
#[derive(Debug, Clone)]
pub struct MinedTransaction {
    /// Height of its block.
    pub height: u32,
    /// Whether it is the block's coinbase.
    pub is_coinbase: bool,
    /// The transaction.
    pub transaction: Transaction,
}

/// Every transaction of the best chain, indexed by txid and by the outputs they spend.
#[derive(Debug, Default)]
pub struct ChainTransactions {
    by_txid: HashMap<Txid, MinedTransaction>,
    spender_of: HashMap<OutPoint, Txid>,
}

impl ChainTransactions {
    /// Reads every block from height 1 to the tip.
    pub async fn read(source: &dyn ChainSource) -> Result<Self> {
        let tip = source.best_tip().await?.height;
        let mut chain = Self::default();
        for height in 1..=tip {
            let block = source
                .block_at_height(height)
                .await?
                .with_context(|| format!("block {height} missing below the tip {tip}"))?;
            for (index, transaction) in block.transactions.into_iter().enumerate() {
                chain.insert(height, index == 0, transaction);
            }
        }
        Ok(chain)
    }

    fn insert(&mut self, height: u32, is_coinbase: bool, transaction: Transaction) {
        let txid = transaction.compute_txid();
        if !is_coinbase {
            for input in &transaction.input {
                self.spender_of.insert(input.previous_output, txid);
            }
        }
        let mined = MinedTransaction {
            height,
            is_coinbase,
            transaction,
        };
        self.by_txid.insert(txid, mined);
    }

    /// The transaction `txid`, if it is in a block.
    pub fn get(&self, txid: &Txid) -> Option<&MinedTransaction> {
        self.by_txid.get(txid)
    }

    /// The transaction in a block that spends `outpoint`.
    pub fn spender_of(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spender_of.get(outpoint).copied()
    }

    /// The output `outpoint`, if the transaction holding it is in a block.
    pub fn output(&self, outpoint: &OutPoint) -> Option<&bitcoin::TxOut> {
        let vout = usize::try_from(outpoint.vout).ok()?;
        self.by_txid
            .get(&outpoint.txid)?
            .transaction
            .output
            .get(vout)
    }

    /// What `transaction` pays in fees, if every output it spends is in a block.
    pub fn fee(&self, transaction: &Transaction) -> Option<Amount> {
        let mut spent = Amount::ZERO;
        for input in &transaction.input {
            spent = spent.checked_add(self.output(&input.previous_output)?.value)?;
        }
        let paid: Amount = transaction.output.iter().map(|o| o.value).sum();
        spent.checked_sub(paid)
    }

    /// Every transaction in a block except coinbases.
    pub fn non_coinbase(&self) -> impl Iterator<Item = (&Txid, &MinedTransaction)> {
        self.by_txid.iter().filter(|(_, mined)| !mined.is_coinbase)
    }
}

/// A transaction a node published that confirmed.
#[derive(Debug, Clone)]
pub struct ConfirmedTransaction {
    /// The node that published it.
    pub publisher: String,
    /// Its txid.
    pub txid: Txid,
    /// The height of its block.
    pub height: u32,
    /// Its fee.
    pub fee: Amount,
    /// Its virtual size, vbytes.
    pub vsize: u64,
    /// The transaction.
    pub transaction: Transaction,
}

impl ConfirmedTransaction {
    /// Its feerate in sat/vB, rounded down.
    pub fn sat_per_vb(&self) -> u64 {
        self.fee.to_sat() / self.vsize.max(1)
    }
}

/// A rejected broadcast that did no harm, and why.
#[derive(Debug, Clone)]
pub struct ToleratedRejection {
    /// The node that broadcast it.
    pub publisher: String,
    /// The transaction rejected.
    pub txid: Txid,
    /// The chain node's reason.
    pub reason: String,
    /// Why it did no harm.
    pub resolution: String,
    /// How many times this transaction was rejected so.
    pub times: usize,
}

/// The verdict on everything some nodes published.
#[derive(Debug, Default)]
pub struct Audit {
    /// Every transaction the nodes published that confirmed, by height.
    pub confirmed: Vec<ConfirmedTransaction>,
    /// Rejected rebroadcasts of, or conflicts with, transactions that confirmed.
    pub tolerated: Vec<ToleratedRejection>,
    /// Everything that breaks the rule that each published transaction relays and confirms.
    pub problems: Vec<String>,
}

/// Checks every broadcast in `log` against `chain`: see the module documentation for the rules.
pub fn audit(log: &BroadcastLog, chain: &ChainTransactions, params: &ChainParams) -> Audit {
    let mut verdict = Audit::default();
    let mut publishers: HashMap<Txid, String> = HashMap::new();
    for (node, record) in log.records() {
        let confirmed = chain.get(&record.txid).is_some();
        match &record.outcome {
            BroadcastOutcome::Accepted => {
                publishers
                    .entry(record.txid)
                    .or_insert_with(|| node.to_owned());
                if !confirmed {
                    let replaced_by = conflicting_spender(chain, record);
                    verdict.problems.push(format!(
                        "{node}: {} was accepted but never confirmed (spent instead by {replaced_by:?})",
                        record.txid
                    ));
                }
            }
            BroadcastOutcome::NotSent { error } => verdict.problems.push(format!(
                "{node}: {} could not be handed to bitcoind: {error}",
                record.txid
            )),
            BroadcastOutcome::Rejected { reason } => {
                match tolerated_rejection(chain, record, reason) {
                    Some(resolution) => {
                        if let Err(problem) = check_policy(chain, params, node, &record.transaction)
                        {
                            verdict.problems.push(problem);
                        }
                        verdict.tolerate(node, record.txid, reason, resolution);
                    }
                    None => verdict
                        .problems
                        .push(format!("{node}: {} was rejected: {reason}", record.txid)),
                }
            }
        }
    }
    for (txid, mined) in chain.non_coinbase() {
        let Some(publisher) = publishers.get(txid) else {
            verdict.problems.push(format!(
                "{txid} (block {}) confirmed but no node's log shows it accepted",
                mined.height
            ));
            continue;
        };
        match confirmed_transaction(chain, params, publisher, mined) {
            Ok(confirmed) => verdict.confirmed.push(confirmed),
            Err(problem) => verdict.problems.push(problem),
        }
    }
    verdict
        .confirmed
        .sort_by_key(|c| (c.height, c.publisher.clone(), c.txid));
    // LDK rebroadcasts: say each problem once.
    let mut seen = std::collections::HashSet::new();
    verdict
        .problems
        .retain(|problem| seen.insert(problem.clone()));
    verdict
}

impl Audit {
    fn tolerate(&mut self, publisher: &str, txid: Txid, reason: &str, resolution: String) {
        let same = |t: &&mut ToleratedRejection| {
            t.publisher == publisher && t.txid == txid && t.reason == reason
        };
        match self.tolerated.iter_mut().find(same) {
            Some(earlier) => earlier.times += 1,
            None => self.tolerated.push(ToleratedRejection {
                publisher: publisher.to_owned(),
                txid,
                reason: reason.to_owned(),
                resolution,
                times: 1,
            }),
        }
    }
}

/// Why a rejection did no harm, or `None` if it did (or might have).
fn tolerated_rejection(
    chain: &ChainTransactions,
    record: &BroadcastRecord,
    reason: &str,
) -> Option<String> {
    let reason = reason.to_lowercase();
    let confirmed = chain.get(&record.txid).is_some();
    if DUPLICATE_REASONS.iter().any(|r| reason.contains(r)) {
        return confirmed.then(|| "the same transaction confirmed".to_owned());
    }
    if CONFLICT_REASONS.iter().any(|r| reason.contains(r)) {
        if confirmed {
            return Some("the same transaction confirmed".to_owned());
        }
        return conflicting_spender(chain, record)
            .map(|spender| format!("its input was spent by {spender}, which confirmed"));
    }
    None
}

/// A confirmed transaction other than `record`'s that spends one of its inputs.
fn conflicting_spender(chain: &ChainTransactions, record: &BroadcastRecord) -> Option<Txid> {
    record
        .transaction
        .input
        .iter()
        .filter_map(|input| chain.spender_of(&input.previous_output))
        .find(|spender| *spender != record.txid)
}

/// The audited form of a confirmed transaction, or what is wrong with it (see [`check_policy`]).
fn confirmed_transaction(
    chain: &ChainTransactions,
    params: &ChainParams,
    publisher: &str,
    mined: &MinedTransaction,
) -> Result<ConfirmedTransaction, String> {
    let transaction = &mined.transaction;
    let (fee, vsize) = check_policy(chain, params, publisher, transaction)?;
    Ok(ConfirmedTransaction {
        publisher: publisher.to_owned(),
        txid: transaction.compute_txid(),
        height: mined.height,
        fee,
        vsize,
        transaction: transaction.clone(),
    })
}

/// The fee and vsize of `transaction`, or what in it breaks the chain's relay policy: an output
/// below the dust threshold, or a fee below the minimum relay feerate.
fn check_policy(
    chain: &ChainTransactions,
    params: &ChainParams,
    publisher: &str,
    transaction: &Transaction,
) -> Result<(Amount, u64), String> {
    let txid = transaction.compute_txid();
    for (vout, output) in transaction.output.iter().enumerate() {
        let dust = params.dust_threshold(&output.script_pubkey);
        if output.value < dust {
            return Err(format!(
                "{publisher}: output {txid}:{vout} of {} is below the dust threshold of {dust}",
                output.value
            ));
        }
    }
    let fee = chain
        .fee(transaction)
        .ok_or_else(|| format!("{publisher}: {txid} spends outputs not in the chain"))?;
    let vsize = u64::try_from(transaction.vsize()).unwrap_or(u64::MAX);
    let minimum = params
        .relay_policy
        .min_relay_feerate
        .fee_vb(vsize)
        .unwrap_or(Amount::MAX);
    if fee < minimum {
        return Err(format!(
            "{publisher}: {txid} pays {fee} for {vsize} vB, below the relay minimum of {minimum}"
        ));
    }
    Ok((fee, vsize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{absolute, transaction, ScriptBuf, Sequence, TxIn, TxOut, WPubkeyHash, Witness};

    /// Qtum's numbers: 400 sat/vB floor, 39,200-sat P2WPKH dust threshold.
    fn params() -> ChainParams {
        ChainParams::qtum_regtest()
    }

    fn paying(previous: OutPoint, values_sat: &[u64]) -> Transaction {
        let script = ScriptBuf::new_p2wpkh(&WPubkeyHash::all_zeros());
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: previous,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: values_sat
                .iter()
                .map(|sat| TxOut {
                    value: Amount::from_sat(*sat),
                    script_pubkey: script.clone(),
                })
                .collect(),
        }
    }

    /// A chain with a 1,000,000-sat coinbase output at height 1, and that output's outpoint.
    fn chain_with_a_coin() -> (ChainTransactions, OutPoint) {
        let mut chain = ChainTransactions::default();
        let coinbase = paying(OutPoint::null(), &[1_000_000]);
        let coin = OutPoint {
            txid: coinbase.compute_txid(),
            vout: 0,
        };
        chain.insert(1, true, coinbase);
        (chain, coin)
    }

    fn log_of(records: Vec<(Transaction, BroadcastOutcome)>) -> BroadcastLog {
        let records = records
            .into_iter()
            .enumerate()
            .map(|(sequence, (transaction, outcome))| BroadcastRecord {
                sequence: sequence as u64,
                txid: transaction.compute_txid(),
                transaction,
                outcome,
            })
            .collect();
        BroadcastLog {
            nodes: vec![NodeBroadcasts {
                name: "alice".to_owned(),
                records,
                next_sequence: 0,
            }],
        }
    }

    fn rejected(reason: &str) -> BroadcastOutcome {
        BroadcastOutcome::Rejected {
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn a_confirmed_transaction_and_its_rejected_rebroadcasts_pass() {
        let (mut chain, coin) = chain_with_a_coin();
        let claim = paying(coin, &[900_000]);
        chain.insert(2, false, claim.clone());
        let log = log_of(vec![
            (claim.clone(), BroadcastOutcome::Accepted),
            (claim.clone(), rejected("txn-already-in-mempool")),
            (claim, rejected("bad-txns-inputs-missingorspent")),
        ]);
        let verdict = audit(&log, &chain, &params());
        assert!(verdict.problems.is_empty(), "{:?}", verdict.problems);
        assert_eq!(verdict.confirmed.len(), 1);
        assert_eq!(verdict.confirmed[0].fee, Amount::from_sat(100_000));
        assert_eq!(verdict.tolerated.len(), 2);
    }

    #[test]
    fn a_conflict_passes_only_when_what_it_conflicts_with_confirmed() {
        let (mut chain, coin) = chain_with_a_coin();
        let winner = paying(coin, &[900_000]);
        let loser = paying(coin, &[850_000]);
        let log = log_of(vec![
            (winner.clone(), BroadcastOutcome::Accepted),
            (loser, rejected("insufficient fee, rejecting replacement")),
        ]);
        let before_confirmation = audit(&log, &chain, &params());
        assert_eq!(before_confirmation.problems.len(), 2, "neither confirmed");
        chain.insert(2, false, winner);
        let verdict = audit(&log, &chain, &params());
        assert!(verdict.problems.is_empty(), "{:?}", verdict.problems);
        assert_eq!(verdict.tolerated.len(), 1);
    }

    #[test]
    fn policy_rejections_fail_even_when_something_else_confirmed() {
        let (mut chain, coin) = chain_with_a_coin();
        let winner = paying(coin, &[900_000]);
        chain.insert(2, false, winner.clone());
        for reason in ["min relay fee not met, 100 < 44000", "dust", "non-final"] {
            let log = log_of(vec![
                (winner.clone(), BroadcastOutcome::Accepted),
                (paying(coin, &[999_000]), rejected(reason)),
            ]);
            let verdict = audit(&log, &chain, &params());
            assert_eq!(
                verdict.problems.len(),
                1,
                "{reason}: {:?}",
                verdict.problems
            );
        }
    }

    #[test]
    fn dust_outputs_and_fees_below_the_floor_fail_in_confirmed_and_tolerated_transactions() {
        let (mut chain, coin) = chain_with_a_coin();
        let with_dust = paying(coin, &[900_000, 39_199]);
        chain.insert(2, false, with_dust.clone());
        let verdict = audit(
            &log_of(vec![(with_dust, BroadcastOutcome::Accepted)]),
            &chain,
            &params(),
        );
        assert!(
            verdict.problems.iter().any(|p| p.contains("dust")),
            "{:?}",
            verdict.problems
        );

        let (mut chain, coin) = chain_with_a_coin();
        let winner = paying(coin, &[900_000]);
        chain.insert(2, false, winner.clone());
        let cheap_loser = paying(coin, &[999_000]);
        let log = log_of(vec![
            (winner, BroadcastOutcome::Accepted),
            (cheap_loser, rejected("bad-txns-inputs-missingorspent")),
        ]);
        let verdict = audit(&log, &chain, &params());
        assert!(
            verdict
                .problems
                .iter()
                .any(|p| p.contains("below the relay minimum")),
            "{:?}",
            verdict.problems
        );
    }

    #[test]
    fn accepted_but_unconfirmed_and_confirmed_but_unlogged_transactions_fail() {
        let (mut chain, coin) = chain_with_a_coin();
        let logged = paying(coin, &[900_000]);
        let unlogged = paying(coin, &[800_000]);
        chain.insert(2, false, unlogged);
        let verdict = audit(
            &log_of(vec![(logged, BroadcastOutcome::Accepted)]),
            &chain,
            &params(),
        );
        assert_eq!(verdict.problems.len(), 2, "{:?}", verdict.problems);
    }
}
