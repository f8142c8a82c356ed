//! Entry points for fuzzing what chain-qtum reads from qtumd: serialized blocks and headers
//! ([`crate::block`]) and the `getblockheader` answers only this crate reads
//! ([`crate::responses`]).
//!
//! Each function runs the real parser on raw input and checks what must hold of its answer; a
//! panic in one is a bug. The cargo-fuzz targets under `fuzz/` call them (feature `fuzz`), and so
//! do the bounded property tests in `cargo test -p chain-qtum fuzz` (`XLN_PROPTEST_CASES` raises
//! their number of cases). Never compiled into the node.

use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::hex::FromHex;
use bitcoin::BlockHash;
use chain_bitcoin::core_rpc::CoreBlock;

use crate::block::{QtumBlock, QtumHeader};
use crate::responses::BlockHeaderInfo;
use crate::source::real_block_from;

const MAINNET_POW_HEX: &str = include_str!(
    "../../fixtures/qtum-public/mainnet_block_0000fd3c4ed0b6dcb008b2669a3321de220d5b0716cc2984893d25111cbf5e51.hex"
);
const TESTNET_POS_RAW: &[u8] = include_bytes!(
    "../../fixtures/qtum-public/testnet_block_1d4dbf11b2f51d129e8d8f8ac33474432dd1fc10d8bcc77567830a0f123e397e.raw"
);
const REGTEST_CAPTURES: [&str; 3] = [
    include_str!("../../fixtures/qtum-regtest/blocks-pow.json"),
    include_str!("../../fixtures/qtum-regtest/block-with-spend.json"),
    include_str!("../../fixtures/qtum-regtest/reorg.json"),
];

/// Parses `bytes` as a serialized block and as a header alone, as `getblock <hash> 0` and
/// `getblockheader <hash> false` are read. A header that parses serializes back to the same
/// bytes; a block that parses has its coinbase first and its header's hash.
pub fn block_bytes(bytes: &[u8]) {
    if let Ok(block) = QtumBlock::from_bytes(bytes) {
        assert!(block.coinbase().is_some_and(|tx| tx.is_coinbase()));
        assert_eq!(block.block_hash(), block.header.block_hash());
        let header_len = encode::serialize(&block.header).len();
        let header_bytes = bytes.get(..header_len);
        assert_eq!(
            header_bytes.map(QtumHeader::from_bytes),
            Some(Ok(block.header.clone())),
            "the block's first bytes are not its header"
        );
    }
    if let Ok(header) = QtumHeader::from_bytes(bytes) {
        assert_eq!(
            encode::serialize(&header),
            bytes,
            "a header does not round-trip"
        );
        let _ = header.is_proof_of_stake();
    }
}

/// Reads `text` as qtumd's hex answer to `getblock <hash> 0` (through [`CoreBlock::from_rpc_hex`],
/// as the chain source does) and to `getblockheader <hash> false`.
pub fn block_hex(text: &str) {
    let asked = BlockHash::all_zeros();
    if let Err(error) = <QtumBlock as CoreBlock>::from_rpc_hex(&asked, text) {
        drop(error.to_string());
    }
    if let Err(error) = QtumHeader::from_hex(text) {
        drop(error.to_string());
    }
}

/// Reads `json` as qtumd's answer to `getblockheader <hash> true`, as the synthetic headers read
/// it: an error or a block with a hash, a parent (zero only at height 0) and a time.
pub fn header_answer(json: &str) {
    let Ok(info) = serde_json::from_str::<BlockHeaderInfo>(json) else {
        return;
    };
    let _ = info.in_best_chain();
    match real_block_from(&info) {
        Ok(real) => {
            assert_eq!(real.height, info.height);
            if real.prev_hash == BlockHash::all_zeros() {
                assert!(info.height == 0 || info.previousblockhash.is_some());
            }
        }
        Err(error) => drop(error.to_string()),
    }
}

/// Every real block in `fixtures/`: a mainnet proof-of-work block, a testnet proof-of-stake block
/// and qtumd 27.1 regtest blocks, serialized. A seed corpus and the bases for mutations.
pub fn fixture_blocks() -> Vec<Vec<u8>> {
    let mut blocks = vec![TESTNET_POS_RAW.to_vec()];
    blocks.extend(Vec::<u8>::from_hex(MAINNET_POW_HEX.trim()).ok());
    for capture in REGTEST_CAPTURES {
        blocks.extend(long_hex_strings(capture).filter_map(|hex| Vec::from_hex(hex).ok()));
    }
    blocks
}

/// The JSON strings of `capture` that are long hex (raw blocks and headers), without parsing the
/// JSON: this module is also built for the fuzz targets, which need no JSON library for it.
fn long_hex_strings(capture: &str) -> impl Iterator<Item = &str> {
    capture.split('"').filter(|part| {
        part.len() >= 160 && part.len() % 2 == 0 && part.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests;
