//! The parts of Bitcoin Core's RPC answers we read, shared with the forks that answer alike
//! (Qtum Core 27.1 answers like Bitcoin Core 27 with extra fields such as `moneysupply`,
//! `flags` or `coinstake`). Unknown fields are ignored, so newer and older Core versions and
//! the forks parse as long as these fields keep their meaning.

use serde::Deserialize;

/// `getblockchaininfo`.
#[derive(Debug, Deserialize)]
pub struct BlockchainInfo {
    /// Core's name of the network (`main`, `test`, `signet`, `regtest`).
    pub chain: String,
    /// Height of the best validated block.
    pub blocks: u64,
    /// Height of the best known header.
    pub headers: u64,
    /// Hash of the best validated block, in hex.
    pub bestblockhash: String,
    /// Whether the node is still in initial block download.
    pub initialblockdownload: bool,
    /// Verification progress, 0.0 to 1.0.
    pub verificationprogress: f64,
}

/// `getblock <hash> 1`: only the transaction ids.
#[derive(Debug, Deserialize)]
pub struct BlockTxids {
    /// The block's transaction ids in block order, in hex.
    pub tx: Vec<String>,
}

/// `estimatesmartfee`.
#[derive(Debug, Deserialize)]
pub struct SmartFeeEstimate {
    /// Coins (BTC, QTUM) per 1000 virtual bytes; absent when the node has no estimate.
    pub feerate: Option<f64>,
    /// Why there is no estimate (e.g. "Insufficient data or no feerate found").
    #[serde(default)]
    pub errors: Vec<String>,
}

/// `gettxout`.
#[derive(Debug, Deserialize)]
pub struct TxOutInfo {
    /// In whole coins (BTC, QTUM: both 10^8 satoshis).
    pub value: f64,
    /// The output's script.
    #[serde(rename = "scriptPubKey")]
    pub script_pubkey: ScriptPubKeyInfo,
}

/// The `scriptPubKey` object of `gettxout`.
#[derive(Debug, Deserialize)]
pub struct ScriptPubKeyInfo {
    /// The script, in hex.
    pub hex: String,
}
