//! [`BitcoindChainSource`]: the [`ChainSource`] of a Bitcoin node.

use async_trait::async_trait;
use bitcoin::consensus::encode;
use bitcoin::{Block, BlockHash, FeeRate, OutPoint, Transaction, TxOut, Txid};
use lightning::chain::chaininterface::ConfirmationTarget;
use ln_core::{
    BlockRef, ChainBlock, ChainParams, ChainSource, ChainSourceError, ShortChannelIdOutput,
};
use serde::Deserialize;

use crate::core_rpc::parse::invalid;
use crate::core_rpc::{CoreBlock, CoreNode, NodeChainInfo};
use crate::rpc::BitcoindAuth;

/// A [`ChainSource`] backed by Bitcoin Core's JSON-RPC.
pub struct BitcoindChainSource {
    node: CoreNode,
}

/// `getblockheader <hash> true`: a Bitcoin block carries its header, so only the height is read.
#[derive(Debug, Deserialize)]
struct BlockHeight {
    height: u32,
}

impl BitcoindChainSource {
    /// Connects to bitcoind at `rpc_url` and checks it is usable: reachable, accepting `auth`, on the
    /// chain of `params` (same genesis block) and past its initial block download, which on
    /// regtest is only a warning ([`CoreNode::check_usable`](crate::core_rpc::CoreNode::check_usable)).
    pub async fn connect(
        params: ChainParams,
        rpc_url: &str,
        auth: BitcoindAuth,
    ) -> Result<Self, ChainSourceError> {
        let node = CoreNode::new("bitcoind", params, rpc_url, auth)?;
        node.check_usable().await?;
        Ok(Self { node })
    }

    /// The node's view of its chain.
    pub async fn chain_info(&self) -> Result<NodeChainInfo, ChainSourceError> {
        self.node.chain_info().await
    }

    async fn block_height(&self, hash: &BlockHash) -> Result<u32, ChainSourceError> {
        let header: BlockHeight = self.node.block_header(hash).await?;
        Ok(header.height)
    }
}

/// Bitcoin blocks are what `getblock` serializes.
impl CoreBlock for Block {
    fn from_rpc_hex(_hash: &BlockHash, hex: &str) -> Result<Self, ChainSourceError> {
        encode::deserialize_hex(hex).map_err(|e| invalid("getblock", e))
    }

    fn block_hash(&self) -> BlockHash {
        Block::block_hash(self)
    }

    fn transactions(&self) -> &[Transaction] {
        &self.txdata
    }
}

#[async_trait]
impl ChainSource for BitcoindChainSource {
    fn params(&self) -> &ChainParams {
        self.node.params()
    }

    async fn best_tip(&self) -> Result<BlockRef, ChainSourceError> {
        self.node.best_tip().await
    }

    async fn block_hash_at_height(
        &self,
        height: u32,
    ) -> Result<Option<BlockHash>, ChainSourceError> {
        self.node.block_hash_at_height(height).await
    }

    async fn block_by_hash(&self, hash: &BlockHash) -> Result<ChainBlock, ChainSourceError> {
        let height = self.block_height(hash).await?;
        let block = self.node.block(hash).await?;
        Ok(chain_block(height, *hash, block))
    }

    /// Overrides the default to skip `getblockheader`: the height is already known, and a hash from
    /// `getblockhash` names one block whatever reorg happens before `getblock` runs.
    async fn block_at_height(&self, height: u32) -> Result<Option<ChainBlock>, ChainSourceError> {
        let Some(hash) = self.block_hash_at_height(height).await? else {
            return Ok(None);
        };
        let block = self.node.block(&hash).await?;
        Ok(Some(chain_block(height, hash, block)))
    }

    async fn broadcast(&self, transaction: &Transaction) -> Result<Txid, ChainSourceError> {
        self.node.broadcast(transaction).await
    }

    async fn fee_rate(&self, target: ConfirmationTarget) -> Result<FeeRate, ChainSourceError> {
        self.node.fee_rate(target).await
    }

    async fn unspent_output(&self, outpoint: &OutPoint) -> Result<Option<TxOut>, ChainSourceError> {
        self.node.unspent_output(outpoint).await
    }

    async fn output_by_short_channel_id(
        &self,
        block_height: u32,
        transaction_index: u32,
        output_index: u16,
    ) -> Result<ShortChannelIdOutput, ChainSourceError> {
        self.node
            .output_by_short_channel_id::<Block>(block_height, transaction_index, output_index)
            .await
    }
}

/// A Bitcoin block as the core consumes it: on Bitcoin, LDK gets the real header.
fn chain_block(height: u32, hash: BlockHash, block: Block) -> ChainBlock {
    ChainBlock {
        height,
        hash,
        prev_hash: block.header.prev_blockhash,
        time: block.header.time,
        ldk_header: block.header,
        transactions: block.txdata,
    }
}
