//! [`QtumdChainSource`]: the [`ChainSource`] of a Qtum node.

use async_trait::async_trait;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, FeeRate, OutPoint, Transaction, TxOut, Txid};
use chain_bitcoin::core_rpc::parse::{expect_block, invalid, parse_hash};
use chain_bitcoin::core_rpc::{CoreBlock, CoreNode};
use chain_bitcoin::NodeChainInfo;
use lightning::chain::chaininterface::ConfirmationTarget;
use ln_core::store::SledStore;
use ln_core::{
    BlockRef, ChainBlock, ChainParams, ChainSource, ChainSourceError, ShortChannelIdOutput,
};

use crate::block::QtumBlock;
use crate::responses::BlockHeaderInfo;
use crate::synthetic::{RealBlock, RealBlockLookup, SyntheticHeaders};
use crate::QtumdAuth;

/// A [`ChainSource`] backed by Qtum Core's JSON-RPC. Blocks carry their real Qtum hashes and a
/// synthetic 80-byte header for LDK ([`crate::synthetic`]).
pub struct QtumdChainSource {
    node: CoreNode,
    headers: SyntheticHeaders,
}

impl QtumdChainSource {
    /// Connects to qtumd at `rpc_url` and checks it is usable: reachable, accepting `auth`, on the
    /// chain of `params` (same genesis block) and past its initial block download (on regtest
    /// only a warning, as for bitcoind). Synthetic
    /// headers are kept in `store` (the node's store).
    pub async fn connect(
        params: ChainParams,
        rpc_url: &str,
        auth: QtumdAuth,
        store: &SledStore,
    ) -> Result<Self, ChainSourceError> {
        let source = Self {
            node: CoreNode::new("qtumd", params, rpc_url, auth)?,
            headers: SyntheticHeaders::open(store)?,
        };
        source.node.check_usable().await?;
        Ok(source)
    }

    /// The node's view of its chain.
    pub async fn chain_info(&self) -> Result<NodeChainInfo, ChainSourceError> {
        self.node.chain_info().await
    }

    /// The synthetic headers this source gives LDK, as recorded per height.
    pub fn synthetic_headers(&self) -> &SyntheticHeaders {
        &self.headers
    }

    async fn header_info(&self, hash: &BlockHash) -> Result<BlockHeaderInfo, ChainSourceError> {
        let method = "getblockheader";
        let info: BlockHeaderInfo = self.node.block_header(hash).await?;
        expect_block(method, hash, &parse_hash(method, &info.hash)?)?;
        Ok(info)
    }

    /// Builds the [`ChainBlock`], with the block's synthetic header.
    async fn chain_block(
        &self,
        height: u32,
        block: QtumBlock,
        in_best_chain: bool,
    ) -> Result<ChainBlock, ChainSourceError> {
        let real = RealBlock {
            height,
            hash: block.block_hash(),
            prev_hash: block.header.prev_blockhash,
            time: block.header.time,
        };
        let ldk_header = self.headers.header_for(real, in_best_chain, self).await?;
        Ok(ChainBlock {
            height,
            hash: real.hash,
            prev_hash: real.prev_hash,
            time: real.time,
            ldk_header,
            transactions: block.transactions,
        })
    }
}

#[async_trait]
impl RealBlockLookup for QtumdChainSource {
    async fn real_block(&self, hash: &BlockHash) -> Result<(RealBlock, bool), ChainSourceError> {
        let info = self.header_info(hash).await?;
        Ok((real_block_from(&info)?, info.in_best_chain()))
    }
}

#[async_trait]
impl ChainSource for QtumdChainSource {
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
        let info = self.header_info(hash).await?;
        let block = self.node.block(hash).await?;
        self.chain_block(info.height, block, info.in_best_chain())
            .await
    }

    /// Overrides the default to skip `getblockheader`: the height is already known, and a hash from
    /// `getblockhash` names one block of the best chain whatever reorg happens before `getblock`.
    async fn block_at_height(&self, height: u32) -> Result<Option<ChainBlock>, ChainSourceError> {
        let Some(hash) = self.block_hash_at_height(height).await? else {
            return Ok(None);
        };
        let block = self.node.block(&hash).await?;
        self.chain_block(height, block, true).await.map(Some)
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
            .output_by_short_channel_id::<QtumBlock>(block_height, transaction_index, output_index)
            .await
    }
}

/// Qtum blocks as qtumd's `getblock` serializes them ([`crate::block`]).
impl CoreBlock for QtumBlock {
    fn from_rpc_hex(hash: &BlockHash, hex: &str) -> Result<Self, ChainSourceError> {
        QtumBlock::from_hex(hex).map_err(|e| invalid("getblock", format!("block {hash}: {e}")))
    }

    fn block_hash(&self) -> BlockHash {
        QtumBlock::block_hash(self)
    }

    fn transactions(&self) -> &[Transaction] {
        &self.transactions
    }
}

pub(crate) fn real_block_from(info: &BlockHeaderInfo) -> Result<RealBlock, ChainSourceError> {
    let method = "getblockheader";
    let prev_hash = match &info.previousblockhash {
        Some(hex) => parse_hash(method, hex)?,
        None if info.height == 0 => BlockHash::all_zeros(),
        None => {
            return Err(invalid(
                method,
                format!("block {} has no parent", info.hash),
            ))
        }
    };
    Ok(RealBlock {
        height: info.height,
        hash: parse_hash(method, &info.hash)?,
        prev_hash,
        time: info.time,
    })
}

#[cfg(test)]
mod tests;
