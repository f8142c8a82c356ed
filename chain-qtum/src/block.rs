//! Qtum blocks and headers in their consensus serialization (`getblock <hash> 0`,
//! `getblockheader <hash> false`).
//!
//! A Qtum header is Bitcoin's 80 bytes followed by `hashStateRoot` (32), `hashUTXORoot` (32),
//! `prevoutStake` (32-byte txid + 4-byte index) and `vchBlockSigDlgt`, a CompactSize-prefixed
//! signature: 181 bytes for a proof-of-work block, about 246-311 for a proof-of-stake one
//! (qtum: src/primitives/block.h:24-42; qtum-facts §3). The block hash is the double SHA-256 of the
//! whole header, signature included (qtum: src/primitives/block.cpp:59-62). Transactions are
//! byte-identical to Bitcoin's, segwit included, and are decoded with rust-bitcoin.
//!
//! Parsing never panics: every malformed input is a [`BlockParseError`].

#![deny(clippy::indexing_slicing)]

use std::fmt;

use bitcoin::block::Version;
use bitcoin::consensus::encode::{self, Decodable, Encodable, VarInt};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::hex::FromHex;
use bitcoin::{io, BlockHash, CompactTarget, OutPoint, Transaction, TxMerkleNode, TxOut};

/// The part of a block a parse error is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockPart {
    /// The header (Bitcoin's 80 bytes and Qtum's extension).
    Header,
    /// The CompactSize transaction count after the header.
    TransactionCount,
    /// The transaction at this position (0 = coinbase).
    Transaction {
        /// Position in the block.
        index: u64,
    },
}

impl fmt::Display for BlockPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockPart::Header => f.write_str("header"),
            BlockPart::TransactionCount => f.write_str("transaction count"),
            BlockPart::Transaction { index } => write!(f, "transaction {index}"),
        }
    }
}

/// Why bytes are not a Qtum block or header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockParseError {
    /// The text is not hex.
    #[error("not hex: {0}")]
    NotHex(String),
    /// The bytes end inside this part.
    #[error("the data ends inside the block's {0}")]
    Truncated(BlockPart),
    /// This part is not a valid serialization.
    #[error("malformed {part}: {reason}")]
    Malformed {
        /// Where.
        part: BlockPart,
        /// What rust-bitcoin's decoder reported.
        reason: String,
    },
    /// Bytes follow the last transaction (or the header, when parsing a header alone).
    #[error("{extra_bytes} unexpected bytes after the end")]
    TrailingBytes {
        /// How many.
        extra_bytes: usize,
    },
    /// The block declares no transactions; every block starts with its coinbase.
    #[error("the block has no transactions")]
    NoTransactions,
    /// The first transaction does not spend the null outpoint.
    #[error("the block's first transaction is not a coinbase")]
    FirstIsNotCoinbase,
    /// The header stakes an output but the second transaction is not a coinstake.
    #[error("proof-of-stake block (stake {stake}) whose second transaction is not a coinstake")]
    MissingCoinstake {
        /// The header's `prevoutStake`.
        stake: OutPoint,
    },
    /// The transactions do not hash to the header's merkle root.
    #[error("merkle root mismatch: the header has {in_header}, the transactions give {computed}")]
    MerkleRootMismatch {
        /// `hashMerkleRoot` of the header.
        in_header: TxMerkleNode,
        /// Root computed from the decoded transactions.
        computed: TxMerkleNode,
    },
}

/// A Qtum block header (qtum: src/primitives/block.h:24-42).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QtumHeader {
    /// `nVersion`.
    pub version: Version,
    /// Real hash of the parent block.
    pub prev_blockhash: BlockHash,
    /// Merkle root of the transactions' txids, as on Bitcoin.
    pub merkle_root: TxMerkleNode,
    /// Block time, seconds since the Unix epoch.
    pub time: u32,
    /// `nBits`. Proof-of-stake block hashes do not meet it (qtum-facts §3).
    pub bits: CompactTarget,
    /// `nNonce`.
    pub nonce: u32,
    /// Root of the EVM state trie, in internal byte order (qtumd displays it reversed).
    pub hash_state_root: [u8; 32],
    /// Root of the contract-UTXO trie, in internal byte order.
    pub hash_utxo_root: [u8; 32],
    /// The staked output; null (zero txid, index `0xffffffff`) in proof-of-work blocks.
    pub prevout_stake: OutPoint,
    /// `vchBlockSigDlgt`: empty in proof-of-work blocks; the staker's signature (65 bytes compact
    /// or ~70-72 DER), followed by a 65-byte proof of delegation for offline staking.
    pub block_signature: Vec<u8>,
}

impl QtumHeader {
    /// Parses one serialized header, with nothing after it (`getblockheader <hash> false`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlockParseError> {
        let mut reader = bytes;
        let header = decode_part(&mut reader, BlockPart::Header)?;
        ensure_consumed(reader)?;
        Ok(header)
    }

    /// [`Self::from_bytes`] on hex text.
    pub fn from_hex(hex: &str) -> Result<Self, BlockParseError> {
        Self::from_bytes(&hex_bytes(hex)?)
    }

    /// The block hash: double SHA-256 of the whole serialized header, signature included.
    pub fn block_hash(&self) -> BlockHash {
        let serialized = encode::serialize(self);
        BlockHash::from_raw_hash(sha256d::Hash::hash(&serialized))
    }

    /// Whether the block is proof-of-stake (it stakes an output).
    pub fn is_proof_of_stake(&self) -> bool {
        !self.prevout_stake.is_null()
    }
}

impl Encodable for QtumHeader {
    fn consensus_encode<W: io::Write + ?Sized>(&self, writer: &mut W) -> Result<usize, io::Error> {
        let mut written = self.version.consensus_encode(writer)?;
        written += self.prev_blockhash.consensus_encode(writer)?;
        written += self.merkle_root.consensus_encode(writer)?;
        written += self.time.consensus_encode(writer)?;
        written += self.bits.consensus_encode(writer)?;
        written += self.nonce.consensus_encode(writer)?;
        written += self.hash_state_root.consensus_encode(writer)?;
        written += self.hash_utxo_root.consensus_encode(writer)?;
        written += self.prevout_stake.consensus_encode(writer)?;
        written += self.block_signature.consensus_encode(writer)?;
        Ok(written)
    }
}

impl Decodable for QtumHeader {
    fn consensus_decode<R: io::Read + ?Sized>(reader: &mut R) -> Result<Self, encode::Error> {
        Ok(Self {
            version: Decodable::consensus_decode(reader)?,
            prev_blockhash: Decodable::consensus_decode(reader)?,
            merkle_root: Decodable::consensus_decode(reader)?,
            time: Decodable::consensus_decode(reader)?,
            bits: Decodable::consensus_decode(reader)?,
            nonce: Decodable::consensus_decode(reader)?,
            hash_state_root: Decodable::consensus_decode(reader)?,
            hash_utxo_root: Decodable::consensus_decode(reader)?,
            prevout_stake: Decodable::consensus_decode(reader)?,
            // rust-bitcoin bounds the length (and rejects non-minimal CompactSizes, as qtumd does).
            block_signature: Decodable::consensus_decode(reader)?,
        })
    }
}

/// A Qtum block: its header and its transactions in block order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QtumBlock {
    /// The header.
    pub header: QtumHeader,
    /// The transactions; the first is the coinbase, the second the coinstake in a
    /// proof-of-stake block.
    pub transactions: Vec<Transaction>,
}

impl QtumBlock {
    /// Parses a serialized block (`getblock <hash> 0`) and checks what parsing can check: the
    /// first transaction is a coinbase, a proof-of-stake block has its coinstake, and the
    /// transactions hash to the header's merkle root.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlockParseError> {
        let mut reader = bytes;
        let header: QtumHeader = decode_part(&mut reader, BlockPart::Header)?;
        let VarInt(count) = decode_part(&mut reader, BlockPart::TransactionCount)?;
        // Never trust the count for allocation: a transaction takes at least 60 bytes.
        let plausible = reader.len() / 60;
        let mut transactions =
            Vec::with_capacity(usize::try_from(count).map_or(0, |n| n.min(plausible)));
        for index in 0..count {
            transactions.push(decode_part(&mut reader, BlockPart::Transaction { index })?);
        }
        ensure_consumed(reader)?;
        let block = Self {
            header,
            transactions,
        };
        block.check_structure()?;
        Ok(block)
    }

    /// [`Self::from_bytes`] on hex text.
    pub fn from_hex(hex: &str) -> Result<Self, BlockParseError> {
        Self::from_bytes(&hex_bytes(hex)?)
    }

    /// The block's (real) hash.
    pub fn block_hash(&self) -> BlockHash {
        self.header.block_hash()
    }

    /// The coinbase transaction.
    pub fn coinbase(&self) -> Option<&Transaction> {
        self.transactions.first()
    }

    /// The coinstake transaction of a proof-of-stake block; `None` for proof-of-work blocks.
    pub fn coinstake(&self) -> Option<&Transaction> {
        if !self.header.is_proof_of_stake() {
            return None;
        }
        self.transactions.get(1).filter(|tx| is_coinstake(tx))
    }

    fn check_structure(&self) -> Result<(), BlockParseError> {
        let coinbase = self.coinbase().ok_or(BlockParseError::NoTransactions)?;
        if !coinbase.is_coinbase() {
            return Err(BlockParseError::FirstIsNotCoinbase);
        }
        if self.header.is_proof_of_stake() && self.coinstake().is_none() {
            return Err(BlockParseError::MissingCoinstake {
                stake: self.header.prevout_stake,
            });
        }
        let txids = self
            .transactions
            .iter()
            .map(|tx| tx.compute_txid().to_raw_hash());
        let computed = bitcoin::merkle_tree::calculate_root(txids).map(TxMerkleNode::from_raw_hash);
        match computed {
            Some(computed) if computed == self.header.merkle_root => Ok(()),
            Some(computed) => Err(BlockParseError::MerkleRootMismatch {
                in_header: self.header.merkle_root,
                computed,
            }),
            None => Err(BlockParseError::NoTransactions),
        }
    }
}

/// Qtum's `IsCoinStake` (qtum: src/primitives/transaction.h:175-184): spends a real output, has
/// at least two outputs, and the first is empty.
pub fn is_coinstake(tx: &Transaction) -> bool {
    let spends_real_output = tx
        .input
        .first()
        .is_some_and(|input| !input.previous_output.is_null());
    spends_real_output && tx.output.len() >= 2 && tx.output.first().is_some_and(is_empty_output)
}

/// Qtum's `CTxOut::IsEmpty`: zero value and an empty script, the marker output of coinstakes and
/// of proof-of-stake coinbases.
pub fn is_empty_output(output: &TxOut) -> bool {
    output.value.to_sat() == 0 && output.script_pubkey.is_empty()
}

fn decode_part<T: Decodable>(reader: &mut &[u8], part: BlockPart) -> Result<T, BlockParseError> {
    T::consensus_decode(reader).map_err(|error| match error {
        encode::Error::Io(io_error) if io_error.kind() == io::ErrorKind::UnexpectedEof => {
            BlockParseError::Truncated(part)
        }
        other => BlockParseError::Malformed {
            part,
            reason: describe(&other),
        },
    })
}

fn ensure_consumed(rest: &[u8]) -> Result<(), BlockParseError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(BlockParseError::TrailingBytes {
            extra_bytes: rest.len(),
        })
    }
}

fn hex_bytes(hex: &str) -> Result<Vec<u8>, BlockParseError> {
    Vec::<u8>::from_hex(hex.trim()).map_err(|e| BlockParseError::NotHex(e.to_string()))
}

/// An error with its sources, since rust-bitcoin keeps the detail in `source()`.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
