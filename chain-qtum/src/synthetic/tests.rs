//! Synthetic headers: linking, stability across restarts, reorgs, anchoring, and qtumd's own
//! reorg capture.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;

use serde_json::Value;

use super::*;
use crate::block::QtumHeader;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BLOCKS_POW: &str = include_str!("../../../fixtures/qtum-regtest/blocks-pow.json");
const REORG: &str = include_str!("../../../fixtures/qtum-regtest/reorg.json");

/// A fake chain node: blocks by hash, each in or out of the best chain; counts look-ups.
#[derive(Default)]
struct FakeNode {
    blocks: HashMap<BlockHash, (RealBlock, bool)>,
    lookups: Mutex<u32>,
}

impl FakeNode {
    fn add(&mut self, blocks: &[RealBlock], in_best_chain: bool) {
        for block in blocks {
            self.blocks.insert(block.hash, (*block, in_best_chain));
        }
    }

    fn lookups(&self) -> u32 {
        self.lookups.lock().map(|count| *count).unwrap_or_default()
    }
}

#[async_trait]
impl RealBlockLookup for FakeNode {
    async fn real_block(&self, hash: &BlockHash) -> Result<(RealBlock, bool), ChainSourceError> {
        if let Ok(mut count) = self.lookups.lock() {
            *count += 1;
        }
        self.blocks
            .get(hash)
            .copied()
            .ok_or_else(|| ChainSourceError::BlockNotFound(hash.to_string()))
    }
}

/// Blocks `first..=last` on top of `parent` (or from genesis), hashes tagged by `branch`.
fn branch(parent: Option<&RealBlock>, last: u32, branch: u8) -> Vec<RealBlock> {
    let mut blocks = Vec::new();
    let mut prev = parent.copied();
    let first = parent.map_or(0, |p| p.height + 1);
    for height in first..=last {
        let mut hash = [0u8; 32];
        hash[0] = branch;
        hash[1..5].copy_from_slice(&height.to_be_bytes());
        let block = RealBlock {
            height,
            hash: BlockHash::from_byte_array(hash),
            prev_hash: prev.map_or(BlockHash::all_zeros(), |p| p.hash),
            time: 1_700_000_000 + height * 32,
        };
        blocks.push(block);
        prev = Some(block);
    }
    blocks
}

fn open(dir: &tempfile::TempDir) -> Result<(SledStore, SyntheticHeaders), ChainSourceError> {
    let store =
        SledStore::open(dir.path()).map_err(|e| ChainSourceError::Backend(e.to_string()))?;
    let headers = SyntheticHeaders::open(&store)?;
    Ok((store, headers))
}

async fn connect_all(
    headers: &SyntheticHeaders,
    blocks: &[RealBlock],
    node: &FakeNode,
) -> Result<Vec<Header>, ChainSourceError> {
    let mut connected = Vec::new();
    for block in blocks {
        connected.push(headers.header_for(*block, true, node).await?);
    }
    Ok(connected)
}

fn assert_links(headers: &[Header]) {
    for pair in headers.windows(2) {
        assert_eq!(pair[1].prev_blockhash, pair[0].block_hash());
    }
}

#[tokio::test]
async fn synthetic_headers_form_a_chain_carrying_real_hash_and_time() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_store, headers) = open(&dir)?;
    let blocks = branch(None, 20, 1);
    let mut node = FakeNode::default();
    node.add(&blocks, true);
    let synthetic = connect_all(&headers, &blocks, &node).await?;
    assert_links(&synthetic);
    assert_eq!(synthetic[0].prev_blockhash, BlockHash::all_zeros());
    for (header, real) in synthetic.iter().zip(&blocks) {
        assert_eq!(
            header.merkle_root.to_byte_array(),
            real.hash.to_byte_array()
        );
        assert_eq!(header.time, real.time);
        let recorded = headers.recorded(real.height)?.ok_or("not recorded")?;
        assert_eq!((recorded.real_hash, recorded.header), (real.hash, *header));
    }
    assert_eq!(node.lookups(), 0, "blocks given in order need no look-ups");
    Ok(())
}

#[tokio::test]
async fn genesis_synthetic_header_is_the_same_in_every_store() -> TestResult {
    let blocks: Value = serde_json::from_str(BLOCKS_POW)?;
    let genesis_hex = blocks[0]["header_hex"].as_str().ok_or("no genesis")?;
    let genesis = QtumHeader::from_hex(genesis_hex)?;
    let real = RealBlock {
        height: 0,
        hash: genesis.block_hash(),
        prev_hash: genesis.prev_blockhash,
        time: genesis.time,
    };
    let node = FakeNode::default();
    let mut hashes = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir()?;
        let (_store, headers) = open(&dir)?;
        let header = headers.header_for(real, true, &node).await?;
        assert_eq!(header.prev_blockhash, BlockHash::all_zeros());
        assert_eq!(header.version, Version::ONE);
        assert_eq!(header.bits.to_consensus(), 0x207f_ffff);
        assert_eq!(header.nonce, 0);
        hashes.push(header.block_hash());
    }
    assert_eq!(hashes[0], hashes[1]);
    // Pinned: a change here would give every existing Qtum regtest node a new chain.
    assert_eq!(
        hashes[0].to_string(),
        "aba19fd7f4eea8a89d0b184af36e6ea8f39c84457337e2d7dc232f99ab5672dd"
    );
    Ok(())
}

#[tokio::test]
async fn reopened_store_gives_identical_headers_without_asking_the_node() -> TestResult {
    let dir = tempfile::tempdir()?;
    let blocks = branch(None, 30, 1);
    let mut node = FakeNode::default();
    node.add(&blocks, true);
    let before = {
        let (_store, headers) = open(&dir)?;
        connect_all(&headers, &blocks, &node).await?
    };
    let (_store, headers) = open(&dir)?;
    let empty_node = FakeNode::default();
    // Newest first: a recomputation would need the node.
    for (block, header) in blocks.iter().zip(&before).rev() {
        assert_eq!(
            headers.header_for(*block, true, &empty_node).await?,
            *header
        );
    }
    assert_eq!(empty_node.lookups(), 0);
    Ok(())
}

#[tokio::test]
async fn reorg_at_a_height_changes_that_height_and_above_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_store, headers) = open(&dir)?;
    let old = branch(None, 10, 1);
    let new = branch(Some(&old[5]), 11, 2);
    let mut node = FakeNode::default();
    node.add(&old[..6], true);
    node.add(&old[6..], false);
    node.add(&new, true);
    let old_headers = connect_all(&headers, &old, &node).await?;

    let new_headers = connect_all(&headers, &new[..1], &node).await?;
    for height in 0..=5 {
        let recorded = headers
            .recorded(height)?
            .ok_or("lost a record below the fork")?;
        assert_eq!(recorded.header, old_headers[height as usize]);
    }
    assert_ne!(new_headers[0], old_headers[6]);
    assert_eq!(new_headers[0].prev_blockhash, old_headers[5].block_hash());
    for height in 7..=10 {
        assert_eq!(
            headers.recorded(height)?,
            None,
            "stale record above the fork"
        );
    }

    let new_headers = connect_all(&headers, &new, &node).await?;
    assert_links(&new_headers);
    for (block, header) in new.iter().zip(&new_headers) {
        let recorded = headers.recorded(block.height)?.ok_or("not recorded")?;
        assert_eq!((recorded.real_hash, recorded.header), (block.hash, *header));
    }

    // A block of the old branch still gets the header it had, and changes nothing.
    let stale = headers.header_for(old[8], false, &node).await?;
    assert_eq!(stale, old_headers[8]);
    let recorded = headers.recorded(8)?.ok_or("record lost")?;
    assert_eq!(recorded.real_hash, new[2].hash);
    Ok(())
}

#[tokio::test]
async fn first_block_seen_anchors_the_chain_and_older_blocks_are_not_recorded() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_store, headers) = open(&dir)?;
    let blocks = branch(None, 1010, 1);
    let mut node = FakeNode::default();
    node.add(&blocks, true);
    let anchor = &blocks[1000];
    let synthetic = connect_all(&headers, &blocks[1000..], &node).await?;
    assert_eq!(synthetic[0].prev_blockhash, anchor.prev_hash);
    assert_links(&synthetic);

    let below = headers.header_for(blocks[999], true, &node).await?;
    assert_eq!(below.prev_blockhash, blocks[998].hash);
    assert_eq!(headers.recorded(999)?, None);
    assert_eq!(node.lookups(), 0);
    Ok(())
}

#[tokio::test]
async fn a_block_above_a_gap_links_through_its_looked_up_parents() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_store, headers) = open(&dir)?;
    let blocks = branch(None, 9, 1);
    let mut node = FakeNode::default();
    node.add(&blocks, true);
    connect_all(&headers, &blocks[..=5], &node).await?;
    let tip = headers.header_for(blocks[9], true, &node).await?;
    assert_eq!(node.lookups(), 3);
    let mut chain = Vec::new();
    for height in 0..=9 {
        chain.push(headers.recorded(height)?.ok_or("gap left")?.header);
    }
    assert_links(&chain);
    assert_eq!(chain[9], tip);
    Ok(())
}

#[tokio::test]
async fn a_parent_walk_is_bounded() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_store, headers) = open(&dir)?;
    let blocks = branch(None, 5000, 1);
    let mut node = FakeNode::default();
    node.add(&blocks, true);
    headers.header_for(blocks[0], true, &node).await?;
    let far = headers.header_for(blocks[5000], true, &node).await;
    assert!(matches!(far, Err(ChainSourceError::Backend(_))), "{far:?}");
    assert_eq!(headers.recorded(5000)?, None);
    Ok(())
}

#[tokio::test]
async fn a_wrong_parent_from_the_node_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_store, headers) = open(&dir)?;
    let blocks = branch(None, 4, 1);
    let mut node = FakeNode::default();
    node.add(&blocks[..3], true);
    // The node answers the look-up of block 3 with block 2.
    node.blocks.insert(blocks[3].hash, (blocks[2], true));
    connect_all(&headers, &blocks[..2], &node).await?;
    let refused = headers.header_for(blocks[4], true, &node).await;
    assert!(
        matches!(refused, Err(ChainSourceError::InvalidResponse { .. })),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_damaged_record_is_a_backend_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, headers) = open(&dir)?;
    store
        .namespace(NAMESPACE)?
        .put(&7u32.to_be_bytes(), b"junk")?;
    assert!(matches!(
        headers.recorded(7),
        Err(ChainSourceError::Backend(_))
    ));
    Ok(())
}

/// The real blocks of reorg.json: 2010 (from blocks-pow.json), the replaced 2011, its
/// replacement and the new tip 2012.
fn qtumd_reorg_blocks() -> Result<[RealBlock; 4], Box<dyn std::error::Error>> {
    let blocks: Value = serde_json::from_str(BLOCKS_POW)?;
    let reorg: Value = serde_json::from_str(REORG)?;
    let parent_hex = blocks
        .as_array()
        .and_then(|list| list.iter().find(|b| b["height"] == 2010))
        .and_then(|b| b["header_hex"].as_str())
        .ok_or("no block 2010")?;
    let real = |hex: &str, height: u32| -> Result<RealBlock, Box<dyn std::error::Error>> {
        let header = QtumHeader::from_hex(hex)?;
        Ok(RealBlock {
            height,
            hash: header.block_hash(),
            prev_hash: header.prev_blockhash,
            time: header.time,
        })
    };
    let hex = |key: &str| {
        reorg[key]["header_hex"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    Ok([
        real(parent_hex, 2010)?,
        real(&hex("replaced"), 2011)?,
        real(&hex("new_at_height"), 2011)?,
        real(&hex("new_tip"), 2012)?,
    ])
}

#[tokio::test]
async fn qtumds_invalidateblock_reorg_replaces_exactly_the_reorged_height() -> TestResult {
    let [parent, replaced, replacement, new_tip] = qtumd_reorg_blocks()?;
    assert_eq!(
        replaced.hash,
        BlockHash::from_str("17a97e8968599672f37545cf2433114495fd638cdf8245edf3058fe252026cdd")?
    );
    assert_eq!(replacement.prev_hash, parent.hash);
    assert_eq!(new_tip.prev_hash, replacement.hash);
    let dir = tempfile::tempdir()?;
    let (_store, headers) = open(&dir)?;
    let mut node = FakeNode::default();
    node.add(&[parent, replacement, new_tip], true);
    node.add(&[replaced], false);

    let before = connect_all(&headers, &[parent, replaced], &node).await?;
    let after = connect_all(&headers, &[replacement, new_tip], &node).await?;
    assert_eq!(headers.recorded(2010)?.map(|r| r.header), Some(before[0]));
    assert_ne!(after[0].block_hash(), before[1].block_hash());
    assert_eq!(after[0].prev_blockhash, before[0].block_hash());
    assert_eq!(after[1].prev_blockhash, after[0].block_hash());
    assert_eq!(headers.header_for(replaced, false, &node).await?, before[1]);
    Ok(())
}
