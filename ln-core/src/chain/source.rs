//! [`ChainSource`]: how the Lightning core reads the chain and writes to it, on any chain.

use async_trait::async_trait;
use bitcoin::block::Header;
use bitcoin::{BlockHash, FeeRate, OutPoint, Transaction, TxOut, Txid};
use lightning::chain::chaininterface::ConfirmationTarget;

use super::params::ChainParams;

/// A block identified by its height and (real) hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Height above genesis (genesis is 0).
    pub height: u32,
    /// The block's hash as the chain's node reports it.
    pub hash: BlockHash,
}

/// A full block, in the shape the Lightning core consumes on every chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBlock {
    /// Height above genesis.
    pub height: u32,
    /// The block's real hash, as the chain's node reports it.
    pub hash: BlockHash,
    /// The real hash of the parent block.
    pub prev_hash: BlockHash,
    /// The block's timestamp (seconds since the Unix epoch).
    pub time: u32,
    /// The 80-byte header LDK is given for this block. On Bitcoin this is the real header, so
    /// `ldk_header.block_hash() == hash`. Chains whose headers are not Bitcoin's provide a stable
    /// synthetic header instead (see the design); it never changes for the same block.
    pub ldk_header: Header,
    /// The block's transactions in block order.
    pub transactions: Vec<Transaction>,
}

impl ChainBlock {
    /// The block's height and hash.
    pub fn block_ref(&self) -> BlockRef {
        BlockRef {
            height: self.height,
            hash: self.hash,
        }
    }
}

/// The answer to a gossip-verification look-up of a short channel id's funding output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShortChannelIdOutput {
    /// The output exists and is unspent.
    Unspent(TxOut),
    /// The output existed but has been spent (the channel is closed).
    Spent,
    /// No such block, transaction or output.
    NotFound,
}

/// Errors of a [`ChainSource`]. The message always says what went wrong and, where the operator can
/// fix it, how.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChainSourceError {
    /// The node could not be reached at all.
    #[error(
        "cannot reach the chain node at {url}: {reason} (is it running, and is the RPC URL right?)"
    )]
    Unreachable {
        /// The RPC URL we tried.
        url: String,
        /// What the transport reported.
        reason: String,
    },
    /// The node refused our credentials.
    #[error("the chain node at {url} refused our RPC credentials: check the cookie file or user/password")]
    AuthenticationFailed {
        /// The RPC URL we tried.
        url: String,
    },
    /// The node follows another chain or network than the one we were started for.
    #[error("the chain node at {url} is on another chain or network: expected genesis block {expected}, the node has {found}")]
    WrongNetwork {
        /// The RPC URL we tried.
        url: String,
        /// The genesis hash of the chain we were configured for.
        expected: BlockHash,
        /// The genesis hash of the node's chain.
        found: BlockHash,
    },
    /// The node has not finished its initial block download, so its view of the chain is not usable.
    #[error("the chain node is still in initial block download ({blocks} of {headers} blocks, {progress_percent:.1}% verified); wait until it has synced")]
    InitialBlockDownload {
        /// Blocks the node has validated.
        blocks: u64,
        /// Headers the node knows.
        headers: u64,
        /// Verification progress in percent.
        progress_percent: f64,
    },
    /// The node is up but still starting: loading its block index, verifying blocks
    /// (`RPC_IN_WARMUP`). It answers once that is done.
    #[error("the chain node is starting up: {message}")]
    WarmingUp {
        /// The node's own words, e.g. `Loading block index…`.
        message: String,
    },
    /// The requested block is unknown to the node.
    #[error("block {0} is not known to the chain node")]
    BlockNotFound(String),
    /// The node refused to accept a transaction; `reason` is the node's own rejection text.
    #[error("the chain node rejected transaction {txid}: {reason}")]
    TransactionRejected {
        /// The rejected transaction.
        txid: Txid,
        /// The node's reason, e.g. `bad-txns-inputs-missingorspent`.
        reason: String,
    },
    /// An RPC call failed for another reason.
    #[error("chain node RPC `{method}` failed: {message}")]
    Rpc {
        /// The RPC method.
        method: String,
        /// The node's or the transport's message.
        message: String,
    },
    /// The node answered, but not with something we can use.
    #[error("chain node RPC `{method}` returned data we cannot use: {reason}")]
    InvalidResponse {
        /// The RPC method.
        method: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// The backend's own records (for example chain-qtum's synthetic-header map in the node's
    /// store) could not be read or written, or contradict the node.
    #[error("chain backend: {0}")]
    Backend(String),
}

impl ChainSourceError {
    /// Whether retrying later may succeed (node down, busy or still syncing), as opposed to a
    /// configuration mistake or a refused transaction.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ChainSourceError::Unreachable { .. }
                | ChainSourceError::InitialBlockDownload { .. }
                | ChainSourceError::WarmingUp { .. }
                | ChainSourceError::Rpc { .. }
        )
    }
}

/// Read access to a chain and the means to publish on it, as the Lightning core needs them.
///
/// Implementations talk to one full node of one chain (`chain-bitcoin`: bitcoind; `chain-qtum`:
/// qtumd) and must check on construction that the node is on the chain of [`ChainSource::params`].
#[async_trait]
pub trait ChainSource: Send + Sync {
    /// The chain this source reads.
    fn params(&self) -> &ChainParams;

    /// The node's current best block.
    async fn best_tip(&self) -> Result<BlockRef, ChainSourceError>;

    /// Hash of the block at `height` in the node's best chain, or `None` above the tip.
    async fn block_hash_at_height(
        &self,
        height: u32,
    ) -> Result<Option<BlockHash>, ChainSourceError>;

    /// A block by hash. Also answers for blocks that are no longer in the best chain, so a reorg can
    /// be walked back.
    async fn block_by_hash(&self, hash: &BlockHash) -> Result<ChainBlock, ChainSourceError>;

    /// The block at `height` in the node's best chain, or `None` above the tip.
    async fn block_at_height(&self, height: u32) -> Result<Option<ChainBlock>, ChainSourceError> {
        match self.block_hash_at_height(height).await? {
            Some(hash) => self.block_by_hash(&hash).await.map(Some),
            None => Ok(None),
        }
    }

    /// Hands a transaction to the node for relay. Returns its txid, or
    /// [`ChainSourceError::TransactionRejected`] with the node's reason. A transaction the node
    /// already has counts as success.
    async fn broadcast(&self, transaction: &Transaction) -> Result<Txid, ChainSourceError>;

    /// The feerate to use for `target`: the node's estimate or the chain's documented fallback,
    /// never below [`ChainParams::fee_floor`].
    async fn fee_rate(&self, target: ConfirmationTarget) -> Result<FeeRate, ChainSourceError>;

    /// The output at `outpoint` if it exists and is unspent (mempool spends count as spent).
    async fn unspent_output(&self, outpoint: &OutPoint) -> Result<Option<TxOut>, ChainSourceError>;

    /// The output a short channel id points at (block height, transaction index in that block,
    /// output index), for gossip verification.
    async fn output_by_short_channel_id(
        &self,
        block_height: u32,
        transaction_index: u32,
        output_index: u16,
    ) -> Result<ShortChannelIdOutput, ChainSourceError>;
}
