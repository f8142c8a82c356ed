//! Turning Core RPC answers into our types, and the [`ChainSourceError`]s for answers that do not
//! fit.

use std::str::FromStr;

use bitcoin::{Amount, BlockHash, FeeRate, ScriptBuf, TxOut, Txid};
use ln_core::{BlockRef, ChainSourceError};

use super::responses::{BlockTxids, BlockchainInfo, TxOutInfo};
use super::NodeChainInfo;
use crate::rpc::{CallError, RPC_INVALID_ADDRESS_OR_KEY};

/// A block hash in the hex the node writes.
pub fn parse_hash(method: &str, hex: &str) -> Result<BlockHash, ChainSourceError> {
    BlockHash::from_str(hex).map_err(|e| invalid(method, e))
}

/// An answer to `method` we cannot use, and why.
pub fn invalid(method: &str, reason: impl ToString) -> ChainSourceError {
    ChainSourceError::InvalidResponse {
        method: method.to_owned(),
        reason: reason.to_string(),
    }
}

/// The node's "unknown block or transaction" error (`RPC_INVALID_ADDRESS_OR_KEY`) as
/// `not_found()`, any other error as it is.
pub(crate) fn not_found_or(
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

/// Checks that `method` answered with the block asked for.
pub fn expect_block(
    method: &str,
    asked: &BlockHash,
    answered: &BlockHash,
) -> Result<(), ChainSourceError> {
    if answered == asked {
        Ok(())
    } else {
        Err(invalid(
            method,
            format!("asked for block {asked}, got {answered}"),
        ))
    }
}

/// A `getblockchaininfo` answer as [`NodeChainInfo`].
pub fn chain_info_from(info: BlockchainInfo) -> Result<NodeChainInfo, ChainSourceError> {
    Ok(NodeChainInfo {
        best_block_hash: parse_hash("getblockchaininfo", &info.bestblockhash)?,
        chain: info.chain,
        blocks: info.blocks,
        headers: info.headers,
        initial_block_download: info.initialblockdownload,
        verification_progress: info.verificationprogress,
    })
}

/// The node's best block, from its [`NodeChainInfo`]; a height beyond `u32` is an invalid answer.
pub fn tip_from(info: &NodeChainInfo) -> Result<BlockRef, ChainSourceError> {
    let height = u32::try_from(info.blocks).map_err(|e| invalid("getblockchaininfo", e))?;
    Ok(BlockRef {
        height,
        hash: info.best_block_hash,
    })
}

/// The txid at `index` of a `getblock <hash> 1` answer; `None` if the block has fewer.
pub fn txid_at(block: &BlockTxids, index: u32) -> Result<Option<Txid>, ChainSourceError> {
    let Some(hex) = usize::try_from(index).ok().and_then(|i| block.tx.get(i)) else {
        return Ok(None);
    };
    Txid::from_str(hex)
        .map(Some)
        .map_err(|e| invalid("getblock", e))
}

/// A `gettxout` answer as the output it describes.
pub fn tx_out_from(method: &str, info: &TxOutInfo) -> Result<TxOut, ChainSourceError> {
    // Bitcoin and its forks alike have 10^8 satoshis per coin.
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
pub fn feerate_from_coins_per_kvb(coins_per_kvb: f64) -> Option<FeeRate> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_fee_in_coins_per_kvb_becomes_sat_per_kw() {
        // 1000 sat/kvB = 1 sat/vB = 250 sat per 1000 weight units.
        assert_eq!(
            feerate_from_coins_per_kvb(0.00001),
            Some(FeeRate::from_sat_per_kwu(250))
        );
        // Qtum's floor, 0.004 coins/kvB, is 100,000 sat/kW.
        assert_eq!(
            feerate_from_coins_per_kvb(0.004),
            Some(FeeRate::from_sat_per_kwu(100_000))
        );
        assert_eq!(
            feerate_from_coins_per_kvb(0.00012345),
            Some(FeeRate::from_sat_per_kwu(3_086))
        );
    }

    #[test]
    fn unusable_smart_fee_values_mean_no_estimate() {
        for value in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(feerate_from_coins_per_kvb(value), None, "{value}");
        }
        let huge = feerate_from_coins_per_kvb(1e12).map(|rate| rate.to_sat_per_kwu());
        assert_eq!(huge, Some(u64::from(u32::MAX)), "capped, never wrapped");
    }

    #[test]
    fn a_different_block_in_the_answer_is_an_invalid_response() {
        let asked = BlockHash::from_str(&"11".repeat(32));
        let answered = BlockHash::from_str(&"22".repeat(32));
        let (Ok(asked), Ok(answered)) = (asked, answered) else {
            panic!("test hashes do not parse")
        };
        assert_eq!(expect_block("getblock", &asked, &asked), Ok(()));
        assert!(matches!(
            expect_block("getblock", &asked, &answered),
            Err(ChainSourceError::InvalidResponse { ref method, .. }) if method == "getblock"
        ));
    }
}
