//! Entry points for fuzzing what chain-bitcoin reads from bitcoind (and from qtumd, which answers
//! alike): the JSON answers [`CoreNode`](crate::core_rpc::CoreNode) reads, decoded as the RPC
//! client decodes them and then turned into our types by [`crate::core_rpc::parse`].
//!
//! A panic in one is a bug: every answer must become a value or a typed [`ChainSourceError`].
//! The cargo-fuzz targets under `fuzz/` call them (feature `fuzz`), and so do the bounded property
//! tests in `cargo test -p chain-bitcoin fuzz` (`XLN_PROPTEST_CASES` raises their number of cases).
//! Never compiled into the node.

use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};
use ln_core::chain::fees::{self, ALL_CONFIRMATION_TARGETS};
use ln_core::{ChainParams, ChainSourceError};
use serde::de::DeserializeOwned;

use crate::core_rpc::parse::{
    chain_info_from, expect_block, feerate_from_coins_per_kvb, invalid, parse_hash, tip_from,
    tx_out_from, txid_at,
};
use crate::core_rpc::responses::{BlockTxids, BlockchainInfo, SmartFeeEstimate, TxOutInfo};
use crate::core_rpc::CoreBlock;

/// Reads `json` as the answer to every call [`CoreNode`](crate::core_rpc::CoreNode) makes:
/// `getblockchaininfo`, `getblockhash`, `getblock` (verbosity 0 and 1), `estimatesmartfee` and
/// `gettxout`. `index` is the transaction position a short channel id look-up asks for.
pub fn rpc_answer(json: &str, index: u32) {
    if let Some(info) = answer::<BlockchainInfo>("getblockchaininfo", json) {
        if let Some(info) = outcome(chain_info_from(info)) {
            outcome(tip_from(&info));
        }
    }
    if let Some(hex) = answer::<String>("getblockhash", json) {
        outcome(parse_hash("getblockhash", &hex));
        let asked = BlockHash::all_zeros();
        if let Some(block) = outcome(<Block as CoreBlock>::from_rpc_hex(&asked, &hex)) {
            outcome(expect_block(
                "getblock",
                &asked,
                &CoreBlock::block_hash(&block),
            ));
        }
    }
    if let Some(block) = answer::<BlockTxids>("getblock", json) {
        outcome(txid_at(&block, index));
    }
    if let Some(estimate) = answer::<SmartFeeEstimate>("estimatesmartfee", json) {
        let rate = estimate.feerate.and_then(feerate_from_coins_per_kvb);
        for params in [ChainParams::bitcoin_mainnet(), ChainParams::qtum_mainnet()] {
            for target in ALL_CONFIRMATION_TARGETS {
                let _ = fees::estimate_request(&params, target);
                let final_rate = fees::finalize(&params, target, rate);
                assert!(final_rate.to_sat_per_kwu() > 0);
            }
        }
    }
    if let Some(Some(info)) = answer::<Option<TxOutInfo>>("gettxout", json) {
        outcome(tx_out_from("gettxout", &info));
    }
}

/// `json` as the RPC client reads a result of type `T`; an answer of the wrong shape becomes the
/// [`ChainSourceError::InvalidResponse`] the client would report.
fn answer<T: DeserializeOwned>(method: &str, json: &str) -> Option<T> {
    outcome(serde_json::from_str::<T>(json).map_err(|e| invalid(method, e)))
}

/// The value, or `None` after writing the error's message (as logs and the RPC would).
fn outcome<T>(result: Result<T, ChainSourceError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            let _ = (error.to_string(), error.is_transient());
            None
        }
    }
}

#[cfg(test)]
mod tests;
