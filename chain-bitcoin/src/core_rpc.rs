//! What Bitcoin Core and the forks that speak its RPC (Qtum Core) answer alike, in one place:
//! the connect-time checks, `getblockchaininfo`, block hashes by height, fee estimates, broadcast
//! and UTXO look-ups. [`CoreNode`] makes these calls; each chain's
//! [`ChainSource`](ln_core::ChainSource) adds only what differs: how its blocks are serialized
//! ([`CoreBlock`]) and how they become [`ChainBlock`](ln_core::ChainBlock)s.

pub mod parse;
pub mod responses;

use bitcoin::consensus::encode;
use bitcoin::{BlockHash, FeeRate, OutPoint, Transaction, TxOut, Txid};
use lightning::chain::chaininterface::ConfirmationTarget;
use ln_core::chain::fees;
use ln_core::chain::Network;
use ln_core::{BlockRef, ChainParams, ChainSourceError, ShortChannelIdOutput};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::rpc::{
    BitcoindAuth, CallError, RpcClient, RPC_INVALID_PARAMETER, RPC_VERIFY_ALREADY_IN_CHAIN,
};
use parse::{
    chain_info_from, expect_block, feerate_from_coins_per_kvb, invalid, not_found_or, parse_hash,
    tip_from, tx_out_from, txid_at,
};
use responses::{BlockTxids, BlockchainInfo, SmartFeeEstimate, TxOutInfo};

/// What the node says about its chain (`getblockchaininfo`), for status displays.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeChainInfo {
    /// Core's name of the network (`main`, `test`, `signet`, `regtest`).
    pub chain: String,
    /// Height of the best validated block.
    pub blocks: u64,
    /// Height of the best known header.
    pub headers: u64,
    /// Hash of the best validated block (on Qtum its real hash, not a synthetic one).
    pub best_block_hash: BlockHash,
    /// Whether the node is still in initial block download (qtumd also says so after 12 hours
    /// without a block, qtum-facts §4).
    pub initial_block_download: bool,
    /// Verification progress, 0.0 to 1.0.
    pub verification_progress: f64,
}

/// A block as a Bitcoin Core-family node serializes it: the one thing the chains differ in (a Qtum
/// header is longer than Bitcoin's and hashes differently).
pub trait CoreBlock: Sized {
    /// Parses the hex answer of `getblock <hash> 0` for block `hash`.
    fn from_rpc_hex(hash: &BlockHash, hex: &str) -> Result<Self, ChainSourceError>;

    /// The block's hash, as the node names it.
    fn block_hash(&self) -> BlockHash;

    /// The block's transactions, in block order.
    fn transactions(&self) -> &[Transaction];
}

/// One Bitcoin Core-family node (bitcoind, qtumd) on the chain of its [`ChainParams`].
pub struct CoreNode {
    /// The node's name in logs (`bitcoind`, `qtumd`).
    name: &'static str,
    params: ChainParams,
    rpc: RpcClient,
}

impl CoreNode {
    /// A node called `name` in logs, at `rpc_url`, for the chain of `params`. Makes no call yet;
    /// [`CoreNode::check_usable`] does.
    pub fn new(
        name: &'static str,
        params: ChainParams,
        rpc_url: &str,
        auth: BitcoindAuth,
    ) -> Result<Self, ChainSourceError> {
        Ok(Self {
            name,
            params,
            rpc: RpcClient::new(rpc_url, auth)?,
        })
    }

    /// The chain this node must be on.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Checks that the node is usable: reachable, accepting our credentials, on the chain of
    /// [`CoreNode::params`] (same genesis block) and past its initial block download.
    ///
    /// On regtest, initial block download only means that the tip is older than the node's
    /// maximum tip age (24 h on Bitcoin Core, 12 h on qtumd): a fresh chain with only its genesis
    /// block, or one nobody mined on overnight. The node's view is complete either way, and the
    /// first blocks are often mined to an address of ours, so there it is a warning, not an error.
    pub async fn check_usable(&self) -> Result<(), ChainSourceError> {
        let genesis = self
            .block_hash_at_height(0)
            .await?
            .ok_or_else(|| invalid("getblockhash", "the node has no genesis block"))?;
        if genesis != self.params.genesis_block_hash {
            return Err(ChainSourceError::WrongNetwork {
                url: self.rpc.url().to_owned(),
                expected: self.params.genesis_block_hash,
                found: genesis,
            });
        }
        let info = self.chain_info().await?;
        if info.initial_block_download {
            if self.params.network != Network::Regtest {
                return Err(ChainSourceError::InitialBlockDownload {
                    blocks: info.blocks,
                    headers: info.headers,
                    progress_percent: info.verification_progress * 100.0,
                });
            }
            tracing::warn!(
                height = info.blocks,
                "the regtest {} reports initial block download: no block was mined within its \
                 maximum tip age; carrying on, as on regtest this only means the tip is old",
                self.name
            );
        }
        tracing::info!(
            url = self.rpc.url(),
            chain = %info.chain,
            height = info.blocks,
            best_block_hash = %info.best_block_hash,
            "connected to {}",
            self.name
        );
        Ok(())
    }

    /// The node's view of its chain.
    pub async fn chain_info(&self) -> Result<NodeChainInfo, ChainSourceError> {
        let method = "getblockchaininfo";
        let info: BlockchainInfo = self
            .rpc
            .call(method, vec![])
            .await
            .map_err(|e| e.into_chain_error(method))?;
        chain_info_from(info)
    }

    /// [`ChainSource::best_tip`](ln_core::ChainSource::best_tip).
    pub async fn best_tip(&self) -> Result<BlockRef, ChainSourceError> {
        tip_from(&self.chain_info().await?)
    }

    /// [`ChainSource::block_hash_at_height`](ln_core::ChainSource::block_hash_at_height).
    pub async fn block_hash_at_height(
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

    /// `getblockheader <hash> true`, read as `T` (each chain reads the fields it needs); an
    /// unknown block is [`ChainSourceError::BlockNotFound`].
    pub async fn block_header<T>(&self, hash: &BlockHash) -> Result<T, ChainSourceError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let method = "getblockheader";
        self.rpc
            .call(method, vec![json!(hash.to_string()), json!(true)])
            .await
            .map_err(|e| not_found_or(e, method, || block_not_found(hash)))
    }

    /// `getblock <hash> 0`, parsed the chain's way and checked to be the block asked for; an
    /// unknown block is [`ChainSourceError::BlockNotFound`].
    pub async fn block<B: CoreBlock>(&self, hash: &BlockHash) -> Result<B, ChainSourceError> {
        let method = "getblock";
        let hex: String = self
            .rpc
            .call(method, vec![json!(hash.to_string()), json!(0)])
            .await
            .map_err(|e| not_found_or(e, method, || block_not_found(hash)))?;
        let block = B::from_rpc_hex(hash, &hex)?;
        expect_block(method, hash, &block.block_hash())?;
        Ok(block)
    }

    /// [`ChainSource::broadcast`](ln_core::ChainSource::broadcast): a transaction already in the
    /// chain counts as broadcast, a rejection carries the node's reason.
    pub async fn broadcast(&self, transaction: &Transaction) -> Result<Txid, ChainSourceError> {
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
                // The caller knows whether a rejection matters (LDK rebroadcasts claims whose
                // inputs are long spent); it logs at the level that fits.
                tracing::debug!(%txid, reason = %message, "transaction rejected by {}", self.name);
                Err(ChainSourceError::TransactionRejected {
                    txid,
                    reason: message,
                })
            }
            Err(other) => Err(other.into_chain_error(method)),
        }
    }

    /// [`ChainSource::fee_rate`](ln_core::ChainSource::fee_rate): the node's estimate for
    /// `target`, made usable for the chain by [`fees::finalize`].
    pub async fn fee_rate(&self, target: ConfirmationTarget) -> Result<FeeRate, ChainSourceError> {
        let estimate = self.raw_estimate(target).await?;
        Ok(fees::finalize(&self.params, target, estimate))
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
                "{} has no fee estimate; using the fallback",
                self.name
            );
        }
        Ok(estimate.feerate.and_then(feerate_from_coins_per_kvb))
    }

    /// [`ChainSource::unspent_output`](ln_core::ChainSource::unspent_output) (`gettxout`).
    pub async fn unspent_output(
        &self,
        outpoint: &OutPoint,
    ) -> Result<Option<TxOut>, ChainSourceError> {
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

    /// [`ChainSource::output_by_short_channel_id`](ln_core::ChainSource::output_by_short_channel_id),
    /// on a chain whose blocks are `B`s.
    pub async fn output_by_short_channel_id<B: CoreBlock>(
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
        let Some(txid) = txid_at(&block, transaction_index)? else {
            return Ok(ShortChannelIdOutput::NotFound);
        };
        let outpoint = OutPoint {
            txid,
            vout: u32::from(output_index),
        };
        match self.unspent_output(&outpoint).await? {
            Some(output) => Ok(ShortChannelIdOutput::Unspent(output)),
            None => {
                // gettxout cannot tell "spent" from "never existed"; the block can.
                let full_block: B = self.block(&block_hash).await?;
                let exists = usize::try_from(transaction_index)
                    .ok()
                    .and_then(|i| full_block.transactions().get(i))
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

fn block_not_found(hash: &BlockHash) -> ChainSourceError {
    ChainSourceError::BlockNotFound(hash.to_string())
}
