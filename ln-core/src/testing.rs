//! Test doubles shared by ln-core's own tests and the end-to-end tests in `tests/` (enabled there
//! through the `test-utils` feature). Not part of the node.

use std::sync::Mutex;

use bitcoin::block::Header;
use bitcoin::BlockHash;
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Confirm, Listen};

/// One notification a [`RecordingListener`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// `block_connected` at this height, with the hash of the header LDK was given.
    Connected(u32, BlockHash),
    /// `blocks_disconnected` back to this fork point (height, header hash).
    Disconnected(u32, BlockHash),
    /// `Confirm::best_block_updated` to this block (height, header hash).
    BestBlock(u32, BlockHash),
    /// `Confirm::transactions_confirmed` of a block (height, header hash, how many transactions).
    Confirmed(u32, BlockHash, usize),
}

/// A `chain::Listen` and `chain::Confirm` that records what it is told, in order.
#[derive(Debug, Default)]
pub struct RecordingListener(Mutex<Vec<Seen>>);

impl RecordingListener {
    /// Everything recorded since the last call.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn record(&self, seen: Seen) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
    }
}

impl Listen for RecordingListener {
    fn filtered_block_connected(&self, header: &Header, _: &TransactionData, height: u32) {
        self.record(Seen::Connected(height, header.block_hash()));
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        self.record(Seen::Disconnected(fork_point.height, fork_point.block_hash));
    }
}

impl Confirm for RecordingListener {
    fn transactions_confirmed(&self, header: &Header, txdata: &TransactionData, height: u32) {
        self.record(Seen::Confirmed(height, header.block_hash(), txdata.len()));
    }

    fn transaction_unconfirmed(&self, _: &bitcoin::Txid) {}

    fn best_block_updated(&self, header: &Header, height: u32) {
        self.record(Seen::BestBlock(height, header.block_hash()));
    }

    fn get_relevant_txids(&self) -> Vec<(bitcoin::Txid, u32, Option<BlockHash>)> {
        Vec::new()
    }
}
