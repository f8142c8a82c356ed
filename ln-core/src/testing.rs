//! Test doubles shared by ln-core's own tests and the end-to-end tests in `tests/` (enabled there
//! through the `test-utils` feature). Not part of the node.

use std::sync::Mutex;

use bitcoin::block::Header;
use bitcoin::BlockHash;
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};

/// One notification a [`RecordingListener`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// `block_connected` at this height, with the hash of the header LDK was given.
    Connected(u32, BlockHash),
    /// `blocks_disconnected` back to this fork point (height, header hash).
    Disconnected(u32, BlockHash),
}

/// A `chain::Listen` that records what it is told, in order.
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
