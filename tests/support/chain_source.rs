//! xln's chain backends connected to a test node, as end-to-end tests need them.

use chain_bitcoin::{BitcoindAuth, BitcoindChainSource};
use chain_qtum::{QtumdAuth, QtumdChainSource};
use ln_core::store::SledStore;
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

/// A [`QtumdChainSource`] for `qtumd`'s regtest chain, authenticated with its cookie, keeping its
/// synthetic headers in `store`.
pub async fn qtum_regtest_chain_source(
    qtumd: &Bitcoind,
    store: &SledStore,
) -> Result<QtumdChainSource, ChainSourceError> {
    let auth = QtumdAuth::CookieFile(qtumd.cookie_file());
    QtumdChainSource::connect(ChainParams::qtum_regtest(), &qtumd.rpc_url(), auth, store).await
}
