//! The poller's persisted view of the chain: the blocks it has connected (best chain and recent
//! stale branches), so reorgs and listeners left behind on a stale branch can be walked back.

use std::collections::HashMap;

use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

/// One block the poller has connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncedBlock {
    /// Real height.
    pub height: u32,
    /// The chain's real block hash.
    pub real_hash: BlockHash,
    /// Hash of the header LDK was given for this block.
    pub ldk_hash: BlockHash,
    /// `ldk_hash` of the parent block.
    pub parent_ldk_hash: BlockHash,
}

/// Version byte of the serialized state, so a future layout can be told apart.
const STATE_VERSION: u8 = 1;
const RECORD_LEN: usize = 4 + 32 * 3;

/// Every block within the retention window, plus which one is the tip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SyncState {
    pub(crate) tip: Option<BlockHash>,
    pub(crate) blocks: Vec<SyncedBlock>,
}

impl SyncState {
    pub(crate) fn by_ldk_hash(&self, ldk_hash: &BlockHash) -> Option<SyncedBlock> {
        self.blocks
            .iter()
            .find(|b| b.ldk_hash == *ldk_hash)
            .copied()
    }

    pub(crate) fn tip_block(&self) -> Option<SyncedBlock> {
        self.tip.and_then(|tip| self.by_ldk_hash(&tip))
    }

    /// The best chain from the tip down, as far back as the window reaches.
    pub(crate) fn best_chain_descending(&self) -> Vec<SyncedBlock> {
        // One index for the whole walk: looking each parent up by scanning would make this
        // quadratic in the window (2016 blocks).
        let by_hash: HashMap<BlockHash, SyncedBlock> = self
            .blocks
            .iter()
            .map(|block| (block.ldk_hash, *block))
            .collect();
        let mut chain = Vec::new();
        let mut next = self.tip.and_then(|tip| by_hash.get(&tip).copied());
        while let Some(block) = next {
            chain.push(block);
            next = by_hash.get(&block.parent_ldk_hash).copied();
        }
        chain
    }

    /// The best-chain block at `height`, if still inside the window.
    #[cfg(test)]
    pub(crate) fn best_at_height(&self, height: u32) -> Option<SyncedBlock> {
        self.best_chain_descending()
            .into_iter()
            .find(|b| b.height == height)
    }

    /// Makes `block` the tip (adding it if new) and forgets blocks older than `retained_blocks`;
    /// returns the blocks forgotten.
    pub(crate) fn set_tip(&mut self, block: SyncedBlock, retained_blocks: u32) -> Vec<SyncedBlock> {
        if self.by_ldk_hash(&block.ldk_hash).is_none() {
            self.blocks.push(block);
        }
        self.tip = Some(block.ldk_hash);
        let oldest_kept = block.height.saturating_sub(retained_blocks);
        let (kept, forgotten) = self.blocks.drain(..).partition(|b| b.height >= oldest_kept);
        self.blocks = kept;
        forgotten
    }

    /// The version-1 layout: the whole window in one value. Nodes now store one record per block
    /// ([`SyncedBlock::encode`]); this stays to write old states in tests.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 32 + 4 + self.blocks.len() * RECORD_LEN);
        out.push(STATE_VERSION);
        out.extend_from_slice(self.tip.unwrap_or(BlockHash::all_zeros()).as_byte_array());
        out.extend_from_slice(&(self.blocks.len() as u32).to_be_bytes());
        for block in &self.blocks {
            out.extend_from_slice(&block.encode());
        }
        out
    }

    /// Reads the version-1 layout (the whole window in one value), which older nodes wrote.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut reader = Reader { bytes, position: 0 };
        let version = reader.take::<1>()?[0];
        if version != STATE_VERSION {
            return Err(format!("unknown chain-sync state version {version}"));
        }
        let tip = BlockHash::from_byte_array(reader.take::<32>()?);
        let count = u32::from_be_bytes(reader.take::<4>()?) as usize;
        let mut blocks = Vec::with_capacity(count.min(bytes.len() / RECORD_LEN));
        for _ in 0..count {
            blocks.push(SyncedBlock::decode(&reader.take::<RECORD_LEN>()?)?);
        }
        if reader.position != bytes.len() {
            return Err("trailing bytes after chain-sync state".to_owned());
        }
        let tip = (tip != BlockHash::all_zeros()).then_some(tip);
        Ok(Self { tip, blocks })
    }
}

impl SyncedBlock {
    /// One block's record, as stored under its LDK hash.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_LEN);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(self.real_hash.as_byte_array());
        out.extend_from_slice(self.ldk_hash.as_byte_array());
        out.extend_from_slice(self.parent_ldk_hash.as_byte_array());
        out
    }

    /// Reads what [`Self::encode`] wrote.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut reader = Reader { bytes, position: 0 };
        let block = SyncedBlock {
            height: u32::from_be_bytes(reader.take::<4>()?),
            real_hash: BlockHash::from_byte_array(reader.take::<32>()?),
            ldk_hash: BlockHash::from_byte_array(reader.take::<32>()?),
            parent_ldk_hash: BlockHash::from_byte_array(reader.take::<32>()?),
        };
        if reader.position != bytes.len() {
            return Err("trailing bytes after a chain-sync block record".to_owned());
        }
        Ok(block)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.position + N;
        let slice = self
            .bytes
            .get(self.position..end)
            .ok_or("truncated chain-sync state")?;
        self.position = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> BlockHash {
        BlockHash::from_byte_array([n; 32])
    }

    fn block(height: u32, id: u8, parent: u8) -> SyncedBlock {
        SyncedBlock {
            height,
            real_hash: hash(id + 100),
            ldk_hash: hash(id),
            parent_ldk_hash: hash(parent),
        }
    }

    #[test]
    fn state_round_trips_and_rejects_corruption() {
        let mut state = SyncState::default();
        state.set_tip(block(1, 1, 0), 10);
        state.set_tip(block(2, 2, 1), 10);
        let bytes = state.encode();
        assert_eq!(SyncState::decode(&bytes), Ok(state));
        for cut in [0, 1, 20, bytes.len() - 1] {
            assert!(
                SyncState::decode(bytes.get(..cut).unwrap_or_default()).is_err(),
                "cut at {cut}"
            );
        }
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert!(SyncState::decode(&wrong_version).is_err());
    }

    #[test]
    fn block_records_round_trip_and_reject_corruption() {
        let record = block(7, 7, 6);
        let bytes = record.encode();
        assert_eq!(bytes.len(), RECORD_LEN);
        assert_eq!(SyncedBlock::decode(&bytes), Ok(record));
        assert!(SyncedBlock::decode(&bytes[..RECORD_LEN - 1]).is_err());
        assert!(SyncedBlock::decode(&[bytes.clone(), vec![0]].concat()).is_err());
    }

    #[test]
    fn best_chain_follows_parents_and_window_prunes_old_blocks() {
        let mut state = SyncState::default();
        let mut forgotten = Vec::new();
        for height in 1..=5u8 {
            forgotten.extend(state.set_tip(block(u32::from(height), height, height - 1), 3));
        }
        assert_eq!(forgotten, vec![block(1, 1, 0)]);
        let heights: Vec<u32> = state
            .best_chain_descending()
            .iter()
            .map(|b| b.height)
            .collect();
        assert_eq!(heights, vec![5, 4, 3, 2]);
        // A competing block at height 5 becomes tip; the old 5 stays known as stale.
        state.set_tip(block(5, 55, 4), 3);
        assert_eq!(state.best_at_height(5).map(|b| b.ldk_hash), Some(hash(55)));
        assert!(state.by_ldk_hash(&hash(5)).is_some());
    }
}
