//! The node's watch list: every transaction and output LDK asked to hear about through
//! `chain::Filter` (funding transactions, commitment and HTLC outputs, outputs being swept). A
//! block that holds none of them has nothing for LDK but its height, which lets a catch-up skip it.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use bitcoin::{Block, OutPoint, Script, Txid};
use lightning::chain::{Filter, WatchedOutput};

/// What LDK registered, kept in memory (LDK registers it all again at every start).
#[derive(Debug, Default)]
pub struct WatchList {
    watched: Mutex<Watched>,
}

#[derive(Debug, Default)]
struct Watched {
    txids: HashSet<Txid>,
    outpoints: HashSet<OutPoint>,
}

impl WatchList {
    /// Whether `block` holds a watched transaction or spends a watched output.
    pub fn concerns(&self, block: &Block) -> bool {
        let watched = self.lock();
        block.txdata.iter().any(|tx| {
            tx.input
                .iter()
                .any(|input| watched.outpoints.contains(&input.previous_output))
                || watched.txids.contains(&tx.compute_txid())
        })
    }

    /// How many transactions and outputs are watched.
    pub fn len(&self) -> usize {
        let watched = self.lock();
        watched.txids.len() + watched.outpoints.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Watched> {
        // Only ever inserted into: a poisoned set is still a valid set.
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Filter for WatchList {
    fn register_tx(&self, txid: &Txid, _script_pubkey: &Script) {
        self.lock().txids.insert(*txid);
    }

    fn register_output(&self, output: WatchedOutput) {
        self.lock()
            .outpoints
            .insert(output.outpoint.into_bitcoin_outpoint());
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::absolute::LockTime;
    use bitcoin::block::{Header, Version};
    use bitcoin::hash_types::TxMerkleNode;
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version as TxVersion;
    use bitcoin::{
        Amount, BlockHash, CompactTarget, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
    };

    use super::*;

    fn tx(spends: Vec<OutPoint>, value_sat: u64) -> Transaction {
        Transaction {
            version: TxVersion::TWO,
            lock_time: LockTime::ZERO,
            input: spends
                .into_iter()
                .map(|previous_output| TxIn {
                    previous_output,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: vec![TxOut {
                value: Amount::from_sat(value_sat),
                script_pubkey: ScriptBuf::new(),
            }],
        }
    }

    fn block(txdata: Vec<Transaction>) -> Block {
        Block {
            header: Header {
                version: Version::TWO,
                prev_blockhash: BlockHash::all_zeros(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: 0,
                bits: CompactTarget::from_consensus(0x207fffff),
                nonce: 0,
            },
            txdata,
        }
    }

    #[test]
    fn a_block_concerns_ldk_when_it_holds_a_watched_transaction_or_spends_a_watched_output() {
        let list = WatchList::default();
        let funding = tx(vec![], 1_000_000);
        let unrelated = tx(vec![OutPoint::new(Txid::all_zeros(), 7)], 5_000);
        assert!(!list.concerns(&block(vec![funding.clone(), unrelated.clone()])));

        list.register_tx(&funding.compute_txid(), &ScriptBuf::new());
        assert!(list.concerns(&block(vec![unrelated.clone(), funding.clone()])));
        assert!(!list.concerns(&block(vec![unrelated.clone()])));

        let commitment_output = OutPoint::new(funding.compute_txid(), 0);
        list.register_output(WatchedOutput {
            block_hash: None,
            outpoint: lightning::chain::transaction::OutPoint {
                txid: commitment_output.txid,
                index: 0,
            },
            script_pubkey: ScriptBuf::new(),
        });
        let spend = tx(vec![commitment_output], 990_000);
        assert!(list.concerns(&block(vec![unrelated, spend])));
        assert_eq!(list.len(), 2);
    }
}
