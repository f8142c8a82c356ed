//! Synthetic 80-byte headers that let LDK follow Qtum.
//!
//! LDK takes Bitcoin headers and checks only that each one's `prev_blockhash` is the hash of the
//! header before (design.md, "The chain abstraction"; ldk-study §3). Qtum headers are longer
//! and hash differently, so every Qtum block gets a synthetic header instead:
//!
//! - `prev_blockhash`: the synthetic hash of the parent block;
//! - `merkle_root`: the real block hash (its 32 bytes in internal order), so no two Qtum blocks
//!   share a synthetic header;
//! - `time`: the real block time (LDK dates invoices and channel updates with it);
//! - `version` 1, `bits` `0x207fffff`, `nonce` 0: fixed.
//!
//! The recursion needs a start. The genesis block's parent is the all-zero hash, so its
//! synthetic header is `prev_blockhash` = zero; a node that starts at the tip of a long chain
//! does not replay millions of blocks but anchors at the first block it records, whose
//! `prev_blockhash` is then its real parent's hash (for genesis the same zero). Everything above
//! the anchor links synthetically.
//!
//! Synthetic headers are recorded per height (`height → real hash, synthetic header`) in the
//! node's store, namespace `qtum_headers`, so a block gets the same header after a restart and
//! forever after: LDK treats a new hash at a known height as a reorg and panics when a
//! transaction is re-confirmed under a new hash. Only blocks of the node's best chain are
//! recorded. When the block at a height changes (a reorg), the new block is recorded there and
//! every record above it is dropped: their synthetic hashes descend from the replaced one. Blocks
//! off the best chain are answered without being recorded, from their recorded ancestors, and so
//! get the header they had while they were in the best chain.

use async_trait::async_trait;
use bitcoin::block::{Header, Version};
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use ln_core::store::{Namespace, SledStore};
use ln_core::ChainSourceError;

/// The store namespace of the records.
pub const NAMESPACE: &str = "qtum_headers";

/// Layout version of a record: `[version][real hash: 32][synthetic header: 80]`.
const RECORD_VERSION: u8 = 1;
const RECORD_LEN: usize = 1 + 32 + 80;

/// The most parents looked up to link one block. Qtum refuses reorgs deeper than its 2000-block
/// sync-checkpoint span (qtum-facts §9), so a longer walk means something else is wrong.
pub const MAX_PARENT_WALK: usize = 4032;

/// `nBits` of every synthetic header: the easiest regtest target, meaning nothing.
const SYNTHETIC_BITS: u32 = 0x207f_ffff;

/// What a synthetic header is made of: a real block's height, hash, parent and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RealBlock {
    /// Height above genesis.
    pub height: u32,
    /// The block's real hash.
    pub hash: BlockHash,
    /// The real hash of its parent (all zeros for genesis).
    pub prev_hash: BlockHash,
    /// The block's time.
    pub time: u32,
}

/// Where [`SyntheticHeaders`] looks up parents it has no record of (the chain node).
#[async_trait]
pub trait RealBlockLookup: Send + Sync {
    /// The block with real hash `hash`, and whether it is in the node's best chain.
    async fn real_block(&self, hash: &BlockHash) -> Result<(RealBlock, bool), ChainSourceError>;
}

/// A recorded best-chain block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedHeader {
    /// Its height.
    pub height: u32,
    /// Its real hash.
    pub real_hash: BlockHash,
    /// The synthetic header LDK is given for it.
    pub header: Header,
}

impl RecordedHeader {
    /// The synthetic block hash (what LDK knows the block as).
    pub fn synthetic_hash(&self) -> BlockHash {
        self.header.block_hash()
    }
}

/// The synthetic header of `block` given its parent's synthetic hash (or, for an anchor, its
/// real parent hash).
pub fn synthetic_header(block: &RealBlock, prev_blockhash: BlockHash) -> Header {
    Header {
        version: Version::ONE,
        prev_blockhash,
        merkle_root: TxMerkleNode::from_byte_array(block.hash.to_byte_array()),
        time: block.time,
        bits: CompactTarget::from_consensus(SYNTHETIC_BITS),
        nonce: 0,
    }
}

/// The persisted map `height → (real hash, synthetic header)` of the best chain.
pub struct SyntheticHeaders {
    records: Namespace,
    /// One resolution at a time: a resolution reads, walks the node and writes.
    resolving: tokio::sync::Mutex<()>,
}

/// How the parent's synthetic hash of a block is found.
enum Parent {
    /// Known: this is the parent's synthetic hash (or the anchor's real parent hash).
    Known(BlockHash),
    /// Not recorded but within the records: link the parent first.
    Unlinked,
}

impl SyntheticHeaders {
    /// The map in `store`'s namespace [`NAMESPACE`].
    pub fn open(store: &SledStore) -> Result<Self, ChainSourceError> {
        let records = store
            .namespace(NAMESPACE)
            .map_err(|e| ChainSourceError::Backend(format!("synthetic headers: {e}")))?;
        Ok(Self {
            records,
            resolving: tokio::sync::Mutex::new(()),
        })
    }

    /// The recorded best-chain block at `height`, if any.
    pub fn recorded(&self, height: u32) -> Result<Option<RecordedHeader>, ChainSourceError> {
        let value = self
            .records
            .get(&height.to_be_bytes())
            .map_err(|e| store_error("read", height, e))?;
        value.map(|bytes| decode_record(height, &bytes)).transpose()
    }

    /// The synthetic header of `block`; `in_best_chain` says whether the node has it in its best
    /// chain (then it is recorded). Parents without a record are looked up through `lookup`.
    pub async fn header_for(
        &self,
        block: RealBlock,
        in_best_chain: bool,
        lookup: &dyn RealBlockLookup,
    ) -> Result<Header, ChainSourceError> {
        let _resolving = self.resolving.lock().await;
        if let Some(recorded) = self.recorded(block.height)? {
            if recorded.real_hash == block.hash {
                return Ok(recorded.header);
            }
        }
        let lowest = self.lowest_recorded_height()?;
        // Blocks whose parents are not linked yet, newest first.
        let mut unlinked = vec![(block, in_best_chain)];
        let mut prev_blockhash = loop {
            let Some((newest, _)) = unlinked.last().copied() else {
                return Err(ChainSourceError::Backend(
                    "synthetic headers: empty walk".into(),
                ));
            };
            match self.parent_of(&newest, lowest)? {
                Parent::Known(hash) => break hash,
                Parent::Unlinked => {
                    if unlinked.len() > MAX_PARENT_WALK {
                        return Err(ChainSourceError::Backend(format!(
                            "synthetic headers: block {} at height {} is more than {MAX_PARENT_WALK} blocks from any recorded ancestor",
                            block.hash, block.height
                        )));
                    }
                    unlinked.push(self.parent(&newest, lookup).await?);
                }
            }
        };
        let mut header = None;
        while let Some((real, best)) = unlinked.pop() {
            let synthetic = synthetic_header(&real, prev_blockhash);
            // Never record below the anchor: those blocks would not link to it.
            if best && lowest.is_none_or(|lowest| real.height >= lowest) {
                self.record(&real, &synthetic)?;
            }
            prev_blockhash = synthetic.block_hash();
            header = Some(synthetic);
        }
        header.ok_or_else(|| ChainSourceError::Backend("synthetic headers: empty walk".into()))
    }

    fn parent_of(
        &self,
        block: &RealBlock,
        lowest: Option<u32>,
    ) -> Result<Parent, ChainSourceError> {
        let Some(parent_height) = block.height.checked_sub(1) else {
            // Genesis: its real parent hash is all zeros, and so is its synthetic one.
            return Ok(Parent::Known(block.prev_hash));
        };
        match self.recorded(parent_height)? {
            Some(parent) if parent.real_hash == block.prev_hash => {
                Ok(Parent::Known(parent.synthetic_hash()))
            }
            _ if lowest.is_some_and(|lowest| parent_height >= lowest) => Ok(Parent::Unlinked),
            // Nothing recorded at or below the parent: this block is the anchor.
            _ => Ok(Parent::Known(block.prev_hash)),
        }
    }

    async fn parent(
        &self,
        child: &RealBlock,
        lookup: &dyn RealBlockLookup,
    ) -> Result<(RealBlock, bool), ChainSourceError> {
        let (parent, best) = lookup.real_block(&child.prev_hash).await?;
        if parent.hash != child.prev_hash || parent.height.checked_add(1) != Some(child.height) {
            return Err(ChainSourceError::InvalidResponse {
                method: "getblockheader".to_owned(),
                reason: format!(
                    "asked for the parent {} of block {} at height {}, got block {} at height {}",
                    child.prev_hash, child.hash, child.height, parent.hash, parent.height
                ),
            });
        }
        Ok((parent, best))
    }

    /// Records `real` at its height; a different block recorded there is replaced, and every
    /// record above it dropped.
    fn record(&self, real: &RealBlock, synthetic: &Header) -> Result<(), ChainSourceError> {
        let height = real.height;
        let previous = self.recorded(height)?;
        if previous.is_some_and(|previous| previous.real_hash == real.hash) {
            return Ok(());
        }
        if let Some(above) = height.checked_add(1) {
            self.records
                .remove_range_from(&above.to_be_bytes())
                .map_err(|e| store_error("drop records above", height, e))?;
        }
        if let Some(previous) = previous {
            tracing::info!(
                height,
                replaced_block_hash = %previous.real_hash,
                block_hash = %real.hash,
                "synthetic header replaced by a reorg"
            );
        }
        let mut value = Vec::with_capacity(RECORD_LEN);
        value.push(RECORD_VERSION);
        value.extend_from_slice(real.hash.as_byte_array());
        value.extend_from_slice(&encode::serialize(synthetic));
        self.records
            .put(&height.to_be_bytes(), &value)
            .map_err(|e| store_error("write", height, e))
    }

    fn lowest_recorded_height(&self) -> Result<Option<u32>, ChainSourceError> {
        let first = self
            .records
            .first()
            .map_err(|e| ChainSourceError::Backend(format!("synthetic headers: {e}")))?;
        first
            .map(|(key, _)| {
                <[u8; 4]>::try_from(key.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| corrupt(0, "a key is not a 4-byte height"))
            })
            .transpose()
    }
}

fn decode_record(height: u32, bytes: &[u8]) -> Result<RecordedHeader, ChainSourceError> {
    if bytes.len() != RECORD_LEN {
        return Err(corrupt(height, "wrong record length"));
    }
    let (version, rest) = bytes
        .split_first()
        .ok_or_else(|| corrupt(height, "empty"))?;
    if *version != RECORD_VERSION {
        return Err(corrupt(height, "unknown record version"));
    }
    let (hash, header) = rest
        .split_at_checked(32)
        .ok_or_else(|| corrupt(height, "short"))?;
    let real_hash = BlockHash::from_slice(hash).map_err(|_| corrupt(height, "bad real hash"))?;
    let header: Header =
        encode::deserialize(header).map_err(|_| corrupt(height, "bad synthetic header"))?;
    Ok(RecordedHeader {
        height,
        real_hash,
        header,
    })
}

fn corrupt(height: u32, what: &str) -> ChainSourceError {
    ChainSourceError::Backend(format!(
        "synthetic header record at height {height} is corrupt ({what}); the store namespace `{NAMESPACE}` was damaged"
    ))
}

fn store_error(
    operation: &str,
    height: u32,
    error: ln_core::store::StoreError,
) -> ChainSourceError {
    ChainSourceError::Backend(format!(
        "synthetic headers: cannot {operation} the record at height {height}: {error}"
    ))
}

#[cfg(test)]
mod tests;
