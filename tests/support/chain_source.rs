//! xln's Bitcoin backend connected to a test node, as every end-to-end test needs it.

use chain_bitcoin::{BitcoindAuth, BitcoindChainSource};
use ln_core::{ChainParams, ChainSourceError};

use crate::Bitcoind;

/// A [`BitcoindChainSource`] for `bitcoind`'s regtest chain, authenticated with its cookie.
pub async fn regtest_chain_source(
    bitcoind: &Bitcoind,
) -> Result<BitcoindChainSource, ChainSourceError> {
    let auth = BitcoindAuth::CookieFile(bitcoind.cookie_file());
    BitcoindChainSource::connect(ChainParams::bitcoin_regtest(), &bitcoind.rpc_url(), auth).await
}
