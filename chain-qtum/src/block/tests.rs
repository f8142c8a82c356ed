//! The parser against real Qtum blocks: public mainnet/testnet blocks and qtumd 27.1 regtest
//! captures (`fixtures/`), plus malformed variants of them.

// Only `serde_json::Value` is indexed here, which yields `Null` for what is missing.
#![allow(clippy::indexing_slicing)]

use std::str::FromStr;

use bitcoin::consensus::encode::serialize;
use bitcoin::hex::DisplayHex;
use bitcoin::{Txid, Wtxid};
use serde_json::Value;

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MAINNET_POW_HASH: &str = "0000fd3c4ed0b6dcb008b2669a3321de220d5b0716cc2984893d25111cbf5e51";
const MAINNET_POW_HEX: &str = include_str!(
    "../../../fixtures/qtum-public/mainnet_block_0000fd3c4ed0b6dcb008b2669a3321de220d5b0716cc2984893d25111cbf5e51.hex"
);
const TESTNET_POS_HASH: &str = "1d4dbf11b2f51d129e8d8f8ac33474432dd1fc10d8bcc77567830a0f123e397e";
const TESTNET_POS_RAW: &[u8] = include_bytes!(
    "../../../fixtures/qtum-public/testnet_block_1d4dbf11b2f51d129e8d8f8ac33474432dd1fc10d8bcc77567830a0f123e397e.raw"
);
const BLOCKS_POW: &str = include_str!("../../../fixtures/qtum-regtest/blocks-pow.json");
const BLOCK_WITH_SPEND: &str = include_str!("../../../fixtures/qtum-regtest/block-with-spend.json");
const REORG: &str = include_str!("../../../fixtures/qtum-regtest/reorg.json");

fn mainnet_pow_block() -> Result<QtumBlock, BlockParseError> {
    QtumBlock::from_hex(MAINNET_POW_HEX)
}

fn testnet_pos_block() -> Result<QtumBlock, BlockParseError> {
    QtumBlock::from_bytes(TESTNET_POS_RAW)
}

/// A 32-byte root as qtumd displays it (byte-reversed hex).
fn displayed(root: &[u8; 32]) -> String {
    let mut reversed = *root;
    reversed.reverse();
    reversed.to_lower_hex_string()
}

fn str_field<'a>(value: &'a Value, field: &str) -> Result<&'a str, String> {
    value[field]
        .as_str()
        .ok_or_else(|| format!("no string field {field}"))
}

#[test]
fn mainnet_proof_of_work_block_hashes_to_its_published_hash() -> TestResult {
    let block = mainnet_pow_block()?;
    assert_eq!(block.block_hash(), BlockHash::from_str(MAINNET_POW_HASH)?);
    assert!(!block.header.is_proof_of_stake());
    assert!(block.header.prevout_stake.is_null());
    assert!(block.header.block_signature.is_empty());
    assert_eq!(serialize(&block.header).len(), 181);
    assert_eq!(block.transactions.len(), 1);
    assert!(block.coinstake().is_none());
    // A proof-of-work coinbase pays the miner in its first output (here 20,000 QTUM, the subsidy
    // up to height 5000).
    let coinbase = block.coinbase().ok_or("no coinbase")?;
    let first = coinbase.output.first().ok_or("no output")?;
    assert!(!is_empty_output(first));
    assert_eq!(first.value.to_sat(), 20_000 * 100_000_000);
    Ok(())
}

#[test]
fn testnet_proof_of_stake_block_hashes_over_its_signature() -> TestResult {
    let block = testnet_pos_block()?;
    assert_eq!(block.block_hash(), BlockHash::from_str(TESTNET_POS_HASH)?);
    let header = &block.header;
    assert!(header.is_proof_of_stake());
    let state_root = displayed(&header.hash_state_root);
    assert!(state_root.starts_with("d497a9b6") && state_root.ends_with("3073"));
    let utxo_root = displayed(&header.hash_utxo_root);
    assert!(utxo_root.starts_with("4c9e7660") && utxo_root.ends_with("1124"));
    let stake = header.prevout_stake.to_string();
    assert!(
        stake.starts_with("a7d5affe") && stake.ends_with("984a:1"),
        "{stake}"
    );
    // A 70-byte DER signature `30440220 4449e9de…a587`.
    let signature = header.block_signature.to_lower_hex_string();
    assert_eq!(header.block_signature.len(), 70);
    assert!(signature.starts_with("304402204449e9de") && signature.ends_with("a587"));
    assert_eq!(serialize(header).len(), 181 + 70);

    // Without the signature the hash would be another one: the signature is hashed.
    let unsigned = QtumHeader {
        block_signature: Vec::new(),
        ..header.clone()
    };
    assert_ne!(unsigned.block_hash(), block.block_hash());
    Ok(())
}

#[test]
fn proof_of_stake_block_has_an_empty_coinbase_output_and_a_coinstake() -> TestResult {
    let block = testnet_pos_block()?;
    assert_eq!(block.transactions.len(), 2);
    let coinbase = block.coinbase().ok_or("no coinbase")?;
    assert!(coinbase.is_coinbase());
    assert!(is_empty_output(coinbase.output.first().ok_or("no output")?));
    let coinstake = block.coinstake().ok_or("no coinstake")?;
    assert!(coinstake.output.len() >= 2);
    assert!(is_empty_output(
        coinstake.output.first().ok_or("no output")?
    ));
    let staked = coinstake.input.first().ok_or("no input")?.previous_output;
    assert_eq!(staked, block.header.prevout_stake);
    Ok(())
}

#[test]
fn every_regtest_block_and_header_hash_equals_qtumds() -> TestResult {
    let blocks: Value = serde_json::from_str(BLOCKS_POW)?;
    let blocks = blocks.as_array().ok_or("not a list")?;
    assert_eq!(blocks.len(), 7);
    for entry in blocks {
        let hash = BlockHash::from_str(str_field(entry, "hash")?)?;
        let header = QtumHeader::from_hex(str_field(entry, "header_hex")?)?;
        assert_eq!(header.block_hash(), hash);
        let block = QtumBlock::from_hex(str_field(entry, "block_hex")?)?;
        assert_eq!(block.block_hash(), hash);
        assert_eq!(block.header, header);

        let json = &entry["header_json"];
        assert_eq!(json["time"].as_u64(), Some(u64::from(header.time)));
        assert_eq!(json["nonce"].as_u64(), Some(u64::from(header.nonce)));
        assert_eq!(
            json["version"].as_i64(),
            Some(i64::from(header.version.to_consensus()))
        );
        let bits = format!("{:08x}", header.bits.to_consensus());
        assert_eq!(json["bits"].as_str(), Some(bits.as_str()));
        assert_eq!(
            str_field(json, "merkleroot")?,
            header.merkle_root.to_string()
        );
        assert_eq!(
            str_field(json, "hashStateRoot")?,
            displayed(&header.hash_state_root)
        );
        assert_eq!(
            str_field(json, "hashUTXORoot")?,
            displayed(&header.hash_utxo_root)
        );
        assert_eq!(str_field(json, "flags")?, "proof-of-work");
        match json["previousblockhash"].as_str() {
            Some(prev) => assert_eq!(header.prev_blockhash, BlockHash::from_str(prev)?),
            None => assert_eq!(header.prev_blockhash, BlockHash::all_zeros()),
        }

        let txids: Vec<Txid> = block
            .transactions
            .iter()
            .map(|tx| tx.compute_txid())
            .collect();
        let expected: Vec<Txid> = entry["block_json"]["tx"]
            .as_array()
            .ok_or("no tx list")?
            .iter()
            .filter_map(Value::as_str)
            .map(Txid::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(txids, expected, "height {}", entry["height"]);
    }
    Ok(())
}

#[test]
fn block_with_a_segwit_spend_gives_qtumds_txids_and_wtxids() -> TestResult {
    let fixture: Value = serde_json::from_str(BLOCK_WITH_SPEND)?;
    let block = QtumBlock::from_hex(str_field(&fixture, "block_hex")?)?;
    assert_eq!(
        block.block_hash(),
        BlockHash::from_str(str_field(&fixture, "block_hash")?)?
    );
    let json_txs = fixture["block_json"]["tx"].as_array().ok_or("no txs")?;
    assert_eq!(block.transactions.len(), json_txs.len());
    for (tx, json) in block.transactions.iter().zip(json_txs) {
        assert_eq!(tx.compute_txid(), Txid::from_str(str_field(json, "txid")?)?);
        assert_eq!(
            tx.compute_wtxid(),
            Wtxid::from_str(str_field(json, "hash")?)?
        );
        assert_eq!(serialize(tx).to_lower_hex_string(), str_field(json, "hex")?);
    }
    let spend = block.transactions.get(1).ok_or("no spend")?;
    assert_eq!(
        spend.compute_txid(),
        Txid::from_str(str_field(&fixture, "txid")?)?
    );
    assert!(spend.input.iter().all(|input| !input.witness.is_empty()));
    Ok(())
}

#[test]
fn reorg_fixture_headers_hash_to_the_hashes_qtumd_reported() -> TestResult {
    let fixture: Value = serde_json::from_str(REORG)?;
    for key in ["replaced", "new_at_height", "new_tip"] {
        let entry = &fixture[key];
        let header = QtumHeader::from_hex(str_field(entry, "header_hex")?)?;
        assert_eq!(
            header.block_hash(),
            BlockHash::from_str(str_field(entry, "hash")?)?
        );
    }
    Ok(())
}

#[test]
fn every_truncation_of_a_real_block_is_an_error_not_a_panic() -> TestResult {
    let pow = Vec::<u8>::from_hex(MAINNET_POW_HEX.trim())?;
    for block in [pow.as_slice(), TESTNET_POS_RAW] {
        for length in 0..block.len() {
            let truncated = block.get(..length).ok_or("length out of range")?;
            assert!(QtumBlock::from_bytes(truncated).is_err(), "length {length}");
        }
    }
    assert_eq!(
        QtumBlock::from_bytes(&[]),
        Err(BlockParseError::Truncated(BlockPart::Header))
    );
    let header_only = TESTNET_POS_RAW.get(..251).ok_or("short fixture")?;
    assert_eq!(
        QtumBlock::from_bytes(header_only),
        Err(BlockParseError::Truncated(BlockPart::TransactionCount))
    );
    Ok(())
}

#[test]
fn every_flipped_byte_of_a_real_block_is_caught_or_changes_its_hash() -> TestResult {
    let original = testnet_pos_block()?;
    let mut bytes = TESTNET_POS_RAW.to_vec();
    for index in 0..bytes.len() {
        let Some(byte) = bytes.get_mut(index) else {
            break;
        };
        *byte ^= 0x01;
        // Header fields outside the merkle root, and witness data, may change and still parse;
        // then it is another block, or other transactions with the same txids.
        if let Ok(block) = QtumBlock::from_bytes(&bytes) {
            assert!(
                block.block_hash() != original.block_hash()
                    || block.transactions != original.transactions,
                "byte {index}"
            );
        }
        if let Some(byte) = bytes.get_mut(index) {
            *byte ^= 0x01;
        }
    }
    Ok(())
}

#[test]
fn trailing_bytes_and_bad_hex_are_refused() -> TestResult {
    let mut bytes = TESTNET_POS_RAW.to_vec();
    bytes.push(0);
    assert_eq!(
        QtumBlock::from_bytes(&bytes),
        Err(BlockParseError::TrailingBytes { extra_bytes: 1 })
    );
    assert!(matches!(
        QtumBlock::from_hex("not hex"),
        Err(BlockParseError::NotHex(_))
    ));
    let header = TESTNET_POS_RAW.get(..251).ok_or("short fixture")?;
    assert!(QtumHeader::from_bytes(header).is_ok());
    assert_eq!(
        QtumHeader::from_bytes(TESTNET_POS_RAW),
        Err(BlockParseError::TrailingBytes {
            extra_bytes: TESTNET_POS_RAW.len() - 251
        })
    );
    Ok(())
}

#[test]
fn absurd_lengths_are_errors_without_huge_allocations() -> TestResult {
    // A signature length of 2^32-1 (CompactSize 0xfe ffffffff) where the 70-byte one was.
    let mut signature_length = TESTNET_POS_RAW.get(..180).ok_or("short")?.to_vec();
    signature_length.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff]);
    signature_length.extend_from_slice(TESTNET_POS_RAW.get(181..).ok_or("short")?);
    assert!(matches!(
        QtumBlock::from_bytes(&signature_length),
        Err(BlockParseError::Malformed {
            part: BlockPart::Header,
            ..
        }) | Err(BlockParseError::Truncated(BlockPart::Header))
    ));
    // A transaction count of 2^64-1: the real transactions, then the data ends.
    let mut count = TESTNET_POS_RAW.get(..251).ok_or("short")?.to_vec();
    count.push(0xff);
    count.extend_from_slice(&[0xff; 8]);
    count.extend_from_slice(TESTNET_POS_RAW.get(252..).ok_or("short")?);
    assert_eq!(
        QtumBlock::from_bytes(&count),
        Err(BlockParseError::Truncated(BlockPart::Transaction {
            index: 2
        }))
    );
    Ok(())
}

#[test]
fn structurally_wrong_blocks_are_typed_errors() -> TestResult {
    let pos = testnet_pos_block()?;
    let encode_block = |header: &QtumHeader, transactions: &[Transaction]| {
        let mut bytes = serialize(header);
        bytes.extend(serialize(&VarInt(transactions.len() as u64)));
        for tx in transactions {
            bytes.extend(serialize(tx));
        }
        bytes
    };
    assert_eq!(
        QtumBlock::from_bytes(&encode_block(&pos.header, &[])),
        Err(BlockParseError::NoTransactions)
    );
    let coinstake_first: Vec<Transaction> = pos.transactions.iter().skip(1).cloned().collect();
    assert_eq!(
        QtumBlock::from_bytes(&encode_block(&pos.header, &coinstake_first)),
        Err(BlockParseError::FirstIsNotCoinbase)
    );
    let pow = mainnet_pow_block()?;
    let claims_stake = QtumHeader {
        prevout_stake: pos.header.prevout_stake,
        ..pow.header.clone()
    };
    assert_eq!(
        QtumBlock::from_bytes(&encode_block(&claims_stake, &pow.transactions)),
        Err(BlockParseError::MissingCoinstake {
            stake: pos.header.prevout_stake
        })
    );
    let wrong_root = QtumHeader {
        merkle_root: TxMerkleNode::all_zeros(),
        ..pow.header.clone()
    };
    assert!(matches!(
        QtumBlock::from_bytes(&encode_block(&wrong_root, &pow.transactions)),
        Err(BlockParseError::MerkleRootMismatch { .. })
    ));
    Ok(())
}
