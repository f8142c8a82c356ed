//! xln's Bitcoin backend connected to a test node, as every end-to-end test needs it.

use chain_bitcoin::{BitcoindAuth, BitcoindChainSource};
use ln_core::{ChainParams, ChainSourceError};

use crate::Bitcoind;

/// A [`BitcoindChainSource`] for `bitcoind`'s regtest chain, authenticated with its cookie.
pub async fn regtest_chain_source(
    bitcoind: &Bitcoind,
) -> Result<BitcoindChainSource, ChainSourceError> {
    regtest_chain_source_with(bitcoind, ChainParams::bitcoin_regtest()).await
}

/// Like [`regtest_chain_source`], with the node following `params` (which must keep Bitcoin
/// regtest's genesis block, since that is the chain `bitcoind` serves), e.g. another chain's
/// relay policy and fee numbers.
pub async fn regtest_chain_source_with(
    bitcoind: &Bitcoind,
    params: ChainParams,
) -> Result<BitcoindChainSource, ChainSourceError> {
    let auth = BitcoindAuth::CookieFile(bitcoind.cookie_file());
    BitcoindChainSource::connect(params, &bitcoind.rpc_url(), auth).await
}
