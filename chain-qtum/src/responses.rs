//! The parts of qtumd's RPC answers only chain-qtum reads. Qtum Core 27.1 answers like Bitcoin
//! Core 27 with extra fields (`moneysupply`, `hashStateRoot`, `flags`, `proofhash`, `coinstake`,
//! ...; qtum-facts §6); unknown fields are ignored. The answers it shares with Bitcoin Core are
//! read with [`chain_bitcoin::core_rpc::responses`]; the tests below check that they parse
//! qtumd's captures.

use serde::Deserialize;

/// `getblockheader <hash> true`, with what synthetic headers need: the parent, the time and whether
/// the block is in the best chain (chain-bitcoin reads only the height).
#[derive(Debug, Deserialize)]
pub(crate) struct BlockHeaderInfo {
    pub hash: String,
    pub height: u32,
    /// -1 for a block off the best chain.
    pub confirmations: i64,
    pub time: u32,
    /// Absent for the genesis block.
    pub previousblockhash: Option<String>,
}

impl BlockHeaderInfo {
    /// Whether the block is in the node's best chain.
    pub fn in_best_chain(&self) -> bool {
        self.confirmations >= 1
    }
}

#[cfg(test)]
mod tests {
    use chain_bitcoin::core_rpc::responses::{
        BlockTxids, BlockchainInfo, SmartFeeEstimate, TxOutInfo,
    };
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const CHAIN_INFO: &str = include_str!("../../fixtures/qtum-regtest/chain-info.json");
    const BLOCKS_POW: &str = include_str!("../../fixtures/qtum-regtest/blocks-pow.json");
    const BLOCK_WITH_SPEND: &str =
        include_str!("../../fixtures/qtum-regtest/block-with-spend.json");

    fn result_of<T: DeserializeOwned>(
        fixture: &str,
        method: &str,
    ) -> Result<T, Box<dyn std::error::Error>> {
        let entries: Value = serde_json::from_str(fixture)?;
        let entry = entries
            .as_array()
            .and_then(|list| list.iter().find(|e| e["method"] == method))
            .ok_or_else(|| format!("no {method} in fixture"))?;
        Ok(serde_json::from_value(entry["result"].clone())?)
    }

    #[test]
    fn qtumd_blockchain_info_parses_despite_extra_fields() -> TestResult {
        let info: BlockchainInfo = result_of(CHAIN_INFO, "getblockchaininfo")?;
        assert_eq!(info.chain, "regtest");
        assert_eq!((info.blocks, info.headers), (0, 0));
        assert_eq!(
            info.bestblockhash,
            "665ed5b402ac0b44efc37d8926332994363e8a7278b7ee9a58fb972efadae943"
        );
        assert!(info.initialblockdownload);
        Ok(())
    }

    #[test]
    fn estimatesmartfee_without_data_is_no_estimate() -> TestResult {
        let estimate: SmartFeeEstimate = result_of(CHAIN_INFO, "estimatesmartfee")?;
        assert_eq!(estimate.feerate, None);
        assert_eq!(estimate.errors, ["Insufficient data or no feerate found"]);
        let with_data: SmartFeeEstimate =
            serde_json::from_str(r#"{"feerate": 0.004, "blocks": 2}"#)?;
        assert_eq!(with_data.feerate, Some(0.004));
        Ok(())
    }

    #[test]
    fn qtumd_block_headers_and_txid_lists_parse() -> TestResult {
        let blocks: Value = serde_json::from_str(BLOCKS_POW)?;
        for entry in blocks.as_array().ok_or("not a list")? {
            let header: BlockHeaderInfo = serde_json::from_value(entry["header_json"].clone())?;
            assert_eq!(Some(header.hash.as_str()), entry["hash"].as_str());
            assert_eq!(Some(u64::from(header.height)), entry["height"].as_u64());
            assert!(header.in_best_chain());
            assert_eq!(header.previousblockhash.is_none(), header.height == 0);
            let block: BlockTxids = serde_json::from_value(entry["block_json"].clone())?;
            assert_eq!(block.tx.len(), 1);
        }
        let spend: Value = serde_json::from_str(BLOCK_WITH_SPEND)?;
        let header: BlockHeaderInfo = serde_json::from_value(spend["block_json"].clone())?;
        assert_eq!(header.height, 2011);
        Ok(())
    }

    #[test]
    fn stale_block_header_is_off_the_best_chain() -> TestResult {
        let header: BlockHeaderInfo = serde_json::from_str(
            r#"{"hash": "17a97e8968599672f37545cf2433114495fd638cdf8245edf3058fe252026cdd",
                "confirmations": -1, "height": 2011, "time": 1795221884,
                "previousblockhash": "03e6442ee9540009255026b2a76b1e58f56a00d301edbcc0b9378b5fd3b6a029",
                "flags": "proof-of-work"}"#,
        )?;
        assert!(!header.in_best_chain());
        Ok(())
    }

    #[test]
    fn gettxout_with_qtums_coinstake_field_parses() -> TestResult {
        let out: TxOutInfo = serde_json::from_str(
            r#"{"bestblock": "56bcd2fd82a80be13b8abc3213816ee6d7ad30c90e8bf65a5707bb66a8fef275",
                "confirmations": 2, "value": 1.5,
                "scriptPubKey": {"asm": "0 1ad966b66ac50919eef4b9fe146a83124aae3273",
                    "desc": "addr(qcrt1qrtvkddn2c5y3nmh5h8lpg65rzf92uvnnjer6lt)#yz3eqkqe",
                    "hex": "00141ad966b66ac50919eef4b9fe146a83124aae3273",
                    "address": "qcrt1qrtvkddn2c5y3nmh5h8lpg65rzf92uvnnjer6lt",
                    "type": "witness_v0_keyhash"},
                "coinbase": false, "coinstake": false}"#,
        )?;
        assert_eq!(out.value, 1.5);
        assert_eq!(
            out.script_pubkey.hex,
            "00141ad966b66ac50919eef4b9fe146a83124aae3273"
        );
        Ok(())
    }
}
