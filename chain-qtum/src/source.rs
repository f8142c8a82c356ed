//! [`QtumdChainSource`]: the [`ChainSource`] of a Qtum node.

use std::str::FromStr;

use async_trait::async_trait;
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, FeeRate, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use lightning::chain::chaininterface::ConfirmationTarget;
use ln_core::chain::fees;
use ln_core::store::SledStore;
use ln_core::{
    BlockRef, ChainBlock, ChainParams, ChainSource, ChainSourceError, ShortChannelIdOutput,
};
use serde_json::json;

use crate::block::QtumBlock;
use crate::responses::{BlockHeaderInfo, BlockTxids, BlockchainInfo, SmartFeeEstimate, TxOutInfo};
use crate::synthetic::{RealBlock, RealBlockLookup, SyntheticHeaders};
use crate::QtumdAuth;
use chain_bitcoin::rpc::{
    CallError, RpcClient, RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER,
    RPC_VERIFY_ALREADY_IN_CHAIN,
};

/// What qtumd says about its chain (`getblockchaininfo`), for status displays.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeChainInfo {
    /// Qtum Core's name of the network (`main`, `test`, `signet`, `regtest`).
    pub chain: String,
    /// Height of the best validated block.
    pub blocks: u64,
    /// Height of the best known header.
    pub headers: u64,
    /// Real hash of the best validated block.
    pub best_block_hash: BlockHash,
    /// Whether the node is still in initial block download (qtumd also says so after 12 hours
    /// without a block, qtum-facts §4).
    pub initial_block_download: bool,
    /// Verification progress, 0.0 to 1.0.
    pub verification_progress: f64,
}

/// A [`ChainSource`] backed by Qtum Core's JSON-RPC. Blocks carry their real Qtum hashes and a
/// synthetic 80-byte header for LDK ([`crate::synthetic`]).
pub struct QtumdChainSource {
    params: ChainParams,
    rpc: RpcClient,
    headers: SyntheticHeaders,
}

impl QtumdChainSource {
    /// Connects to qtumd at `rpc_url` and checks it is usable: reachable, accepting `auth`, on the
    /// chain of `params` (same genesis block) and past its initial block download. Synthetic
    /// headers are kept in `store` (the node's store).
    pub async fn connect(
        params: ChainParams,
        rpc_url: &str,
        auth: QtumdAuth,
        store: &SledStore,
    ) -> Result<Self, ChainSourceError> {
        let source = Self {
            params,
            rpc: RpcClient::new(rpc_url, auth)?,
            headers: SyntheticHeaders::open(store)?,
        };
        let genesis = source.block_hash_at_height(0).await?.ok_or_else(|| {
            ChainSourceError::InvalidResponse {
                method: "getblockhash".to_owned(),
                reason: "the node has no genesis block".to_owned(),
            }
        })?;
        if genesis != source.params.genesis_block_hash {
            return Err(ChainSourceError::WrongNetwork {
                url: rpc_url.to_owned(),
                expected: source.params.genesis_block_hash,
                found: genesis,
            });
        }
        let info = source.chain_info().await?;
        if info.initial_block_download {
            return Err(ChainSourceError::InitialBlockDownload {
                blocks: info.blocks,
                headers: info.headers,
                progress_percent: info.verification_progress * 100.0,
            });
        }
        tracing::info!(
            url = rpc_url,
            chain = %info.chain,
            height = info.blocks,
            best_block_hash = %info.best_block_hash,
            "connected to qtumd"
        );
        Ok(source)
    }

    /// The node's view of its chain.
    pub async fn chain_info(&self) -> Result<NodeChainInfo, ChainSourceError> {
        let method = "getblockchaininfo";
        let info: BlockchainInfo = self
            .rpc
            .call(method, vec![])
            .await
            .map_err(|e| e.into_chain_error(method))?;
        Ok(NodeChainInfo {
            best_block_hash: parse_hash(method, &info.bestblockhash)?,
            chain: info.chain,
            blocks: info.blocks,
            headers: info.headers,
            initial_block_download: info.initialblockdownload,
            verification_progress: info.verificationprogress,
        })
    }

    /// The synthetic headers this source gives LDK, as recorded per height.
    pub fn synthetic_headers(&self) -> &SyntheticHeaders {
        &self.headers
    }

    async fn header_info(&self, hash: &BlockHash) -> Result<BlockHeaderInfo, ChainSourceError> {
        let method = "getblockheader";
        let info: BlockHeaderInfo = self
            .rpc
            .call(method, vec![json!(hash.to_string()), json!(true)])
            .await
            .map_err(|e| {
                not_found_or(e, method, || {
                    ChainSourceError::BlockNotFound(hash.to_string())
                })
            })?;
        if parse_hash(method, &info.hash)? != *hash {
            return Err(invalid(
                method,
                format!("asked for block {hash}, got {}", info.hash),
            ));
        }
        Ok(info)
    }

    async fn raw_block(&self, hash: &BlockHash) -> Result<QtumBlock, ChainSourceError> {
        let method = "getblock";
        let hex: String = self
            .rpc
            .call(method, vec![json!(hash.to_string()), json!(0)])
            .await
            .map_err(|e| {
                not_found_or(e, method, || {
                    ChainSourceError::BlockNotFound(hash.to_string())
                })
            })?;
        parse_block(hash, &hex)
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

    async fn raw_estimate(
        &self,
        target: ConfirmationTarget,
    ) -> Result<Option<FeeRate>, ChainSourceError> {
        let method = "estimatesmartfee";
        let request = fees::estimate_request(&self.params, target);
        let estimate: SmartFeeEstimate = self
            .rpc
            .call(
                method,
                vec![json!(request.blocks), json!(request.mode.as_rpc_str())],
            )
            .await
            .map_err(|e| e.into_chain_error(method))?;
        if estimate.feerate.is_none() {
            tracing::debug!(
                target = fees::target_name(target),
                blocks = request.blocks,
                errors = ?estimate.errors,
                "qtumd has no fee estimate; using the fallback"
            );
        }
        Ok(estimate.feerate.and_then(feerate_from_coins_per_kvb))
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
        &self.params
    }

    async fn best_tip(&self) -> Result<BlockRef, ChainSourceError> {
        let info = self.chain_info().await?;
        let height = u32::try_from(info.blocks).map_err(|e| invalid("getblockchaininfo", e))?;
        Ok(BlockRef {
            height,
            hash: info.best_block_hash,
        })
    }

    async fn block_hash_at_height(
        &self,
        height: u32,
    ) -> Result<Option<BlockHash>, ChainSourceError> {
        let method = "getblockhash";
        match self.rpc.call::<String>(method, vec![json!(height)]).await {
            Ok(hex) => parse_hash(method, &hex).map(Some),
            Err(CallError::Node {
                code: RPC_INVALID_PARAMETER,
                ..
            }) => Ok(None),
            Err(other) => Err(other.into_chain_error(method)),
        }
    }

    async fn block_by_hash(&self, hash: &BlockHash) -> Result<ChainBlock, ChainSourceError> {
        let info = self.header_info(hash).await?;
        let block = self.raw_block(hash).await?;
        self.chain_block(info.height, block, info.in_best_chain())
            .await
    }

    /// Overrides the default to skip `getblockheader`: the height is already known, and a hash from
    /// `getblockhash` names one block of the best chain whatever reorg happens before `getblock`.
    async fn block_at_height(&self, height: u32) -> Result<Option<ChainBlock>, ChainSourceError> {
        let Some(hash) = self.block_hash_at_height(height).await? else {
            return Ok(None);
        };
        let block = self.raw_block(&hash).await?;
        self.chain_block(height, block, true).await.map(Some)
    }

    async fn broadcast(&self, transaction: &Transaction) -> Result<Txid, ChainSourceError> {
        let method = "sendrawtransaction";
        let txid = transaction.compute_txid();
        let hex = encode::serialize_hex(transaction);
        match self.rpc.call::<String>(method, vec![json!(hex)]).await {
            Ok(_) => {
                tracing::info!(%txid, "transaction broadcast");
                Ok(txid)
            }
            Err(CallError::Node {
                code: RPC_VERIFY_ALREADY_IN_CHAIN,
                ..
            }) => {
                tracing::debug!(%txid, "transaction already confirmed");
                Ok(txid)
            }
            Err(CallError::Node { message, .. }) => {
                tracing::warn!(%txid, reason = %message, "transaction rejected by qtumd");
                Err(ChainSourceError::TransactionRejected {
                    txid,
                    reason: message,
                })
            }
            Err(other) => Err(other.into_chain_error(method)),
        }
    }

    async fn fee_rate(&self, target: ConfirmationTarget) -> Result<FeeRate, ChainSourceError> {
        let estimate = self.raw_estimate(target).await?;
        Ok(fees::finalize(&self.params, target, estimate))
    }

    async fn unspent_output(&self, outpoint: &OutPoint) -> Result<Option<TxOut>, ChainSourceError> {
        let method = "gettxout";
        let args = vec![
            json!(outpoint.txid.to_string()),
            json!(outpoint.vout),
            json!(true),
        ];
        let answer: Option<TxOutInfo> = self
            .rpc
            .call(method, args)
            .await
            .map_err(|e| e.into_chain_error(method))?;
        answer.map(|info| tx_out_from(method, &info)).transpose()
    }

    async fn output_by_short_channel_id(
        &self,
        block_height: u32,
        transaction_index: u32,
        output_index: u16,
    ) -> Result<ShortChannelIdOutput, ChainSourceError> {
        let Some(block_hash) = self.block_hash_at_height(block_height).await? else {
            return Ok(ShortChannelIdOutput::NotFound);
        };
        let method = "getblock";
        let block: BlockTxids = self
            .rpc
            .call(method, vec![json!(block_hash.to_string()), json!(1)])
            .await
            .map_err(|e| e.into_chain_error(method))?;
        let Some(txid_hex) = usize::try_from(transaction_index)
            .ok()
            .and_then(|i| block.tx.get(i))
        else {
            return Ok(ShortChannelIdOutput::NotFound);
        };
        let txid = Txid::from_str(txid_hex).map_err(|e| invalid(method, e))?;
        let outpoint = OutPoint {
            txid,
            vout: u32::from(output_index),
        };
        match self.unspent_output(&outpoint).await? {
            Some(output) => Ok(ShortChannelIdOutput::Unspent(output)),
            None => {
                // gettxout cannot tell "spent" from "never existed"; the block can.
                let full_block = self.raw_block(&block_hash).await?;
                let exists = usize::try_from(transaction_index)
                    .ok()
                    .and_then(|i| full_block.transactions.get(i))
                    .is_some_and(|tx| tx.output.len() > usize::from(output_index));
                Ok(if exists {
                    ShortChannelIdOutput::Spent
                } else {
                    ShortChannelIdOutput::NotFound
                })
            }
        }
    }
}

/// `getblock <hash> 0` hex as a Qtum block, checked to be the block asked for.
fn parse_block(hash: &BlockHash, hex: &str) -> Result<QtumBlock, ChainSourceError> {
    let method = "getblock";
    let block =
        QtumBlock::from_hex(hex).map_err(|e| invalid(method, format!("block {hash}: {e}")))?;
    if block.block_hash() != *hash {
        return Err(invalid(
            method,
            format!("asked for block {hash}, got {}", block.block_hash()),
        ));
    }
    Ok(block)
}

fn real_block_from(info: &BlockHeaderInfo) -> Result<RealBlock, ChainSourceError> {
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

fn tx_out_from(method: &str, info: &TxOutInfo) -> Result<TxOut, ChainSourceError> {
    // QTUM has 10^8 satoshis per coin, like BTC.
    let value = Amount::from_btc(info.value).map_err(|e| invalid(method, e))?;
    let script_pubkey =
        ScriptBuf::from_hex(&info.script_pubkey.hex).map_err(|e| invalid(method, e))?;
    Ok(TxOut {
        value,
        script_pubkey,
    })
}

/// `estimatesmartfee`'s coins per 1000 vbytes as a feerate in sat per 1000 weight units
/// (1 vbyte = 4 weight units); `None` for values that are not a usable feerate.
fn feerate_from_coins_per_kvb(coins_per_kvb: f64) -> Option<FeeRate> {
    const SAT_PER_COIN: f64 = 100_000_000.0;
    const MAX_SAT_PER_KWU: f64 = u32::MAX as f64;
    if !coins_per_kvb.is_finite() || coins_per_kvb <= 0.0 {
        return None;
    }
    let sat_per_kwu = (coins_per_kvb * SAT_PER_COIN / 4.0)
        .round()
        .min(MAX_SAT_PER_KWU);
    Some(FeeRate::from_sat_per_kwu(sat_per_kwu as u64))
}

fn parse_hash(method: &str, hex: &str) -> Result<BlockHash, ChainSourceError> {
    BlockHash::from_str(hex).map_err(|e| invalid(method, e))
}

fn invalid(method: &str, reason: impl ToString) -> ChainSourceError {
    ChainSourceError::InvalidResponse {
        method: method.to_owned(),
        reason: reason.to_string(),
    }
}

fn not_found_or(
    error: CallError,
    method: &str,
    not_found: impl FnOnce() -> ChainSourceError,
) -> ChainSourceError {
    match error {
        CallError::Node {
            code: RPC_INVALID_ADDRESS_OR_KEY,
            ..
        } => not_found(),
        other => other.into_chain_error(method),
    }
}

#[cfg(test)]
mod tests;
