//! The parts of Bitcoin Core's RPC answers we read. Unknown fields are ignored, so newer and older
//! Core versions (and forks such as Qtum Core) parse as long as these fields keep their meaning.

use serde::Deserialize;

/// `getblockchaininfo`.
#[derive(Debug, Deserialize)]
pub(crate) struct BlockchainInfo {
    pub chain: String,
    pub blocks: u64,
    pub headers: u64,
    pub bestblockhash: String,
    pub initialblockdownload: bool,
    pub verificationprogress: f64,
}

/// `getblockheader <hash> true`.
#[derive(Debug, Deserialize)]
pub(crate) struct BlockHeaderInfo {
    pub height: u32,
}

/// `getblock <hash> 1`: only the transaction ids.
#[derive(Debug, Deserialize)]
pub(crate) struct BlockTxids {
    pub tx: Vec<String>,
}

/// `estimatesmartfee`.
#[derive(Debug, Deserialize)]
pub(crate) struct SmartFeeEstimate {
    /// BTC per 1000 virtual bytes; absent when the node has no estimate.
    pub feerate: Option<f64>,
}

/// `gettxout`.
#[derive(Debug, Deserialize)]
pub(crate) struct TxOutInfo {
    /// In whole coins.
    pub value: f64,
    #[serde(rename = "scriptPubKey")]
    pub script_pubkey: ScriptPubKeyInfo,
}

/// The `scriptPubKey` object of `gettxout`.
#[derive(Debug, Deserialize)]
pub(crate) struct ScriptPubKeyInfo {
    pub hex: String,
}
