//! Poller tests against an in-memory chain (a test double; the real-bitcoind test is in `tests/`).

use lightning::io;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bitcoin::block::{Header, Version};
use bitcoin::hash_types::TxMerkleNode;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, CompactTarget, FeeRate, OutPoint, Transaction, TxOut, Txid};
use lightning::chain::chaininterface::ConfirmationTarget;
use lightning::chain::BestBlock;
use lightning::util::persist::KVStoreSync;

use super::{
    ChainPoller, PollOutcome, PollerError, WatchList, BLOCKS_NAMESPACE, LEGACY_STATE_KEY,
    RETAINED_BLOCKS, STATE_NAMESPACE,
};
use crate::chain::{
    BlockRef, ChainBlock, ChainParams, ChainSource, ChainSourceError, ShortChannelIdOutput,
};
use crate::testing::{RecordingListener, Seen};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A chain held in memory; `fork_at` replaces everything above a height with new blocks.
struct FakeChain {
    params: ChainParams,
    best: Mutex<Vec<ChainBlock>>,
    all: Mutex<HashMap<BlockHash, ChainBlock>>,
    /// Blocks read by hash so far.
    blocks_read: std::sync::atomic::AtomicU32,
}

impl FakeChain {
    fn new() -> Arc<Self> {
        let chain = Arc::new(Self {
            params: ChainParams::bitcoin_regtest(),
            best: Mutex::new(Vec::new()),
            all: Mutex::new(HashMap::new()),
            blocks_read: std::sync::atomic::AtomicU32::new(0),
        });
        chain.push(0);
        chain
    }

    /// Appends a block; `salt` makes competing blocks at the same height differ.
    fn push(&self, salt: u8) -> BlockHash {
        self.push_holding(salt, Vec::new())
    }

    /// Appends a block holding `transactions`.
    fn push_holding(&self, salt: u8, transactions: Vec<Transaction>) -> BlockHash {
        let mut best = self.best.lock().unwrap_or_else(|p| p.into_inner());
        let height = best.len() as u32;
        let prev = best
            .last()
            .map(|b| b.hash)
            .unwrap_or_else(BlockHash::all_zeros);
        let header = Header {
            version: Version::TWO,
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::from_byte_array([salt; 32]),
            time: 1_700_000_000 + height,
            bits: CompactTarget::from_consensus(0x207fffff),
            nonce: height,
        };
        let block = ChainBlock {
            height,
            hash: header.block_hash(),
            prev_hash: prev,
            time: header.time,
            ldk_header: header,
            transactions,
        };
        self.all
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(block.hash, block.clone());
        best.push(block);
        header.block_hash()
    }

    fn extend(&self, blocks: u32, salt: u8) {
        for _ in 0..blocks {
            self.push(salt);
        }
    }

    /// Drops every block above `height` from the best chain.
    fn rewind_to(&self, height: u32) {
        self.best
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .truncate(height as usize + 1);
    }

    fn hash_at(&self, height: u32) -> BlockHash {
        let best = self.best.lock().unwrap_or_else(|p| p.into_inner());
        best.get(height as usize)
            .map(|b| b.hash)
            .unwrap_or_else(BlockHash::all_zeros)
    }
}

fn unsupported() -> ChainSourceError {
    ChainSourceError::Rpc {
        method: "test".into(),
        message: "not part of the fake chain".into(),
    }
}

#[async_trait]
impl ChainSource for FakeChain {
    fn params(&self) -> &ChainParams {
        &self.params
    }
    async fn best_tip(&self) -> Result<BlockRef, ChainSourceError> {
        let best = self.best.lock().unwrap_or_else(|p| p.into_inner());
        best.last()
            .map(ChainBlock::block_ref)
            .ok_or_else(unsupported)
    }
    async fn block_hash_at_height(
        &self,
        height: u32,
    ) -> Result<Option<BlockHash>, ChainSourceError> {
        let best = self.best.lock().unwrap_or_else(|p| p.into_inner());
        Ok(best.get(height as usize).map(|b| b.hash))
    }
    async fn block_by_hash(&self, hash: &BlockHash) -> Result<ChainBlock, ChainSourceError> {
        self.blocks_read
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        all.get(hash)
            .cloned()
            .ok_or_else(|| ChainSourceError::BlockNotFound(hash.to_string()))
    }
    async fn broadcast(&self, _: &Transaction) -> Result<Txid, ChainSourceError> {
        Err(unsupported())
    }
    async fn fee_rate(&self, _: ConfirmationTarget) -> Result<FeeRate, ChainSourceError> {
        Err(unsupported())
    }
    async fn unspent_output(&self, _: &OutPoint) -> Result<Option<TxOut>, ChainSourceError> {
        Err(unsupported())
    }
    async fn output_by_short_channel_id(
        &self,
        _: u32,
        _: u32,
        _: u16,
    ) -> Result<ShortChannelIdOutput, ChainSourceError> {
        Err(unsupported())
    }
}

#[derive(Default)]
struct MemoryStore(Mutex<HashMap<String, Vec<u8>>>);

impl KVStoreSync for MemoryStore {
    fn read(&self, p: &str, s: &str, k: &str) -> Result<Vec<u8>, io::Error> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&format!("{p}/{s}/{k}"))
            .cloned()
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }
    fn write(&self, p: &str, s: &str, k: &str, buf: Vec<u8>) -> Result<(), io::Error> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(format!("{p}/{s}/{k}"), buf);
        Ok(())
    }
    fn remove(&self, p: &str, s: &str, k: &str, _: bool) -> Result<(), io::Error> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&format!("{p}/{s}/{k}"));
        Ok(())
    }
    fn list(&self, p: &str, s: &str) -> Result<Vec<String>, io::Error> {
        let prefix = format!("{p}/{s}/");
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map
            .keys()
            .filter_map(|key| key.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }
}

struct Setup {
    chain: Arc<FakeChain>,
    store: Arc<MemoryStore>,
    poller: ChainPoller,
    listener: Arc<RecordingListener>,
}

async fn setup() -> Result<Setup, PollerError> {
    let chain = FakeChain::new();
    let store = Arc::new(MemoryStore::default());
    let poller = ChainPoller::load(chain.clone(), store.clone())?;
    poller.initialize().await?;
    let listener = Arc::new(RecordingListener::default());
    poller.add_listener(listener.clone());
    Ok(Setup {
        chain,
        store,
        poller,
        listener,
    })
}

fn connected(chain: &FakeChain, heights: std::ops::RangeInclusive<u32>) -> Vec<Seen> {
    heights
        .map(|h| Seen::Connected(h, chain.hash_at(h)))
        .collect()
}

#[tokio::test]
async fn new_blocks_are_connected_in_order_and_position_survives_restart() -> TestResult {
    let Setup {
        chain,
        store,
        poller,
        listener,
    } = setup().await?;
    chain.extend(5, 0);
    assert_eq!(
        poller.poll_once().await?,
        PollOutcome {
            connected: 5,
            disconnected: 0
        }
    );
    assert_eq!(listener.take(), connected(&chain, 1..=5));
    assert_eq!(
        poller.poll_once().await?,
        PollOutcome::default(),
        "nothing new"
    );

    let reloaded = ChainPoller::load(chain.clone(), store)?;
    assert_eq!(
        reloaded.tip().map(|t| (t.height, t.real_hash)),
        Some((5, chain.hash_at(5)))
    );
    Ok(())
}

#[tokio::test]
async fn reorg_disconnects_to_the_fork_point_then_connects_the_new_branch() -> TestResult {
    let Setup {
        chain,
        poller,
        listener,
        ..
    } = setup().await?;
    chain.extend(5, 0);
    poller.poll_once().await?;
    listener.take();

    let fork_hash = chain.hash_at(3);
    chain.rewind_to(3);
    chain.extend(3, 7); // 4', 5', 6'
    assert_eq!(
        poller.poll_once().await?,
        PollOutcome {
            connected: 3,
            disconnected: 2
        }
    );
    let mut expected = vec![Seen::Disconnected(3, fork_hash)];
    expected.extend(connected(&chain, 4..=6));
    assert_eq!(listener.take(), expected);
    Ok(())
}

#[tokio::test]
async fn same_height_reorg_is_seen() -> TestResult {
    let Setup {
        chain,
        poller,
        listener,
        ..
    } = setup().await?;
    chain.extend(2, 0);
    poller.poll_once().await?;
    listener.take();
    chain.rewind_to(1);
    chain.extend(1, 9); // a competing block 2
    assert_eq!(
        poller.poll_once().await?,
        PollOutcome {
            connected: 1,
            disconnected: 1
        }
    );
    assert_eq!(
        listener.take(),
        vec![
            Seen::Disconnected(1, chain.hash_at(1)),
            Seen::Connected(2, chain.hash_at(2))
        ]
    );
    Ok(())
}

#[tokio::test]
async fn listener_left_behind_catches_up_from_its_own_best_block() -> TestResult {
    let Setup { chain, poller, .. } = setup().await?;
    chain.extend(5, 0);
    poller.poll_once().await?;

    let late = RecordingListener::default();
    let caught_up = poller
        .catch_up_listener(&late, BestBlock::new(chain.hash_at(2), 2))
        .await?;
    assert_eq!(caught_up, 3);
    assert_eq!(late.take(), connected(&chain, 3..=5));
    Ok(())
}

#[tokio::test]
async fn listener_on_a_stale_branch_is_rewound_then_caught_up() -> TestResult {
    let Setup { chain, poller, .. } = setup().await?;
    chain.extend(5, 0);
    poller.poll_once().await?;
    let stale_tip = BestBlock::new(chain.hash_at(5), 5);
    let fork_hash = chain.hash_at(3);
    chain.rewind_to(3);
    chain.extend(3, 7);
    poller.poll_once().await?;

    // E.g. a ChannelManager persisted before the reorg, read back after a restart.
    let stale = RecordingListener::default();
    poller.catch_up_listener(&stale, stale_tip).await?;
    let mut expected = vec![Seen::Disconnected(3, fork_hash)];
    expected.extend(connected(&chain, 4..=6));
    assert_eq!(stale.take(), expected);
    Ok(())
}

#[tokio::test]
async fn unknown_listener_block_is_a_clear_error() -> TestResult {
    let Setup { poller, .. } = setup().await?;
    let stranger = RecordingListener::default();
    let unknown = BestBlock::new(BlockHash::from_byte_array([42; 32]), 7);
    let result = poller.catch_up_listener(&stranger, unknown).await;
    assert!(matches!(
        result,
        Err(PollerError::UnknownListenerBlock { height: 7, .. })
    ));
    assert!(stranger.take().is_empty(), "nothing delivered");
    Ok(())
}

#[tokio::test]
async fn the_store_keeps_one_record_per_block_of_the_window_and_a_restart_reads_them() -> TestResult
{
    let Setup {
        chain,
        store,
        poller,
        ..
    } = setup().await?;
    let blocks = RETAINED_BLOCKS + 10;
    chain.extend(blocks, 0);
    poller.poll_once().await?;
    let records = store.list(STATE_NAMESPACE, BLOCKS_NAMESPACE)?;
    // The window, its lower edge included; nothing older stays behind.
    assert_eq!(records.len(), RETAINED_BLOCKS as usize + 1);

    let reloaded = ChainPoller::load(chain.clone(), store)?;
    assert_eq!(
        reloaded.tip().map(|t| (t.height, t.real_hash)),
        Some((blocks, chain.hash_at(blocks)))
    );
    assert_eq!(
        reloaded.lock_state().best_chain_descending().len(),
        RETAINED_BLOCKS as usize + 1
    );
    Ok(())
}

#[tokio::test]
async fn a_version_1_state_is_converted_to_block_records() -> TestResult {
    let Setup {
        chain,
        store,
        poller,
        ..
    } = setup().await?;
    chain.extend(5, 0);
    poller.poll_once().await?;
    let state = poller.lock_state().clone();
    // What a version-1 node left: the whole window in one value, no per-block records.
    let legacy = Arc::new(MemoryStore::default());
    legacy.write(STATE_NAMESPACE, "", LEGACY_STATE_KEY, state.encode())?;
    drop(store);

    let converted = ChainPoller::load(chain.clone(), legacy.clone())?;
    assert_eq!(
        converted.tip().map(|t| (t.height, t.real_hash)),
        Some((5, chain.hash_at(5)))
    );
    assert_eq!(converted.lock_state().best_chain_descending().len(), 6);
    assert!(legacy.read(STATE_NAMESPACE, "", LEGACY_STATE_KEY).is_err());
    let again = ChainPoller::load(chain.clone(), legacy)?;
    assert_eq!(again.tip(), converted.tip());
    Ok(())
}

/// A transaction unlike any other of the fake chain's (`n` sets its output's value).
fn transaction(n: u64) -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: Vec::new(),
        output: vec![TxOut {
            value: bitcoin::Amount::from_sat(n),
            script_pubkey: bitcoin::ScriptBuf::new(),
        }],
    }
}

/// A poller with a watch list, an LDK-like listener and a wallet-like one, at the genesis block.
async fn watching_setup() -> Result<(Setup, Arc<WatchList>, Arc<RecordingListener>), PollerError> {
    let chain = FakeChain::new();
    let store = Arc::new(MemoryStore::default());
    let watch_list = Arc::new(WatchList::default());
    let poller =
        ChainPoller::load(chain.clone(), store.clone())?.with_watch_list(watch_list.clone());
    poller.initialize().await?;
    let listener = Arc::new(RecordingListener::default());
    poller.add_listener(listener.clone());
    let ldk = Arc::new(RecordingListener::default());
    poller.add_watching_listener(ldk.clone());
    let setup = Setup {
        chain,
        store,
        poller,
        listener,
    };
    Ok((setup, watch_list, ldk))
}

#[tokio::test]
async fn a_catch_up_tells_ldk_only_of_the_blocks_it_watches_and_of_the_tip() -> TestResult {
    use lightning::chain::Filter;
    let (
        Setup {
            chain,
            poller,
            listener,
            ..
        },
        watch_list,
        ldk,
    ) = watching_setup().await?;
    let funding = transaction(1);
    watch_list.register_tx(&funding.compute_txid(), &bitcoin::ScriptBuf::new());
    chain.extend(3, 0);
    chain.push_holding(0, vec![transaction(2), funding]); // height 4
    chain.extend(6, 0); // up to 10

    assert_eq!(poller.poll_once().await?.connected, 10);
    assert_eq!(
        listener.take(),
        connected(&chain, 1..=10),
        "the wallet sees every block"
    );
    assert_eq!(
        ldk.take(),
        vec![
            Seen::BestBlock(4, chain.hash_at(4)),
            Seen::Confirmed(4, chain.hash_at(4), 2),
            Seen::BestBlock(10, chain.hash_at(10)),
            Seen::Confirmed(10, chain.hash_at(10), 0),
        ],
        "LDK hears of the block with its funding transaction, then of the tip"
    );

    // At the tip, one block at a time, every block goes whole, as LDK's `Listen` expects.
    for _ in 11..=13 {
        chain.extend(1, 0);
        poller.poll_once().await?;
    }
    assert_eq!(ldk.take(), connected(&chain, 11..=13));
    assert_eq!(listener.take(), connected(&chain, 11..=13));
    Ok(())
}

#[tokio::test]
async fn a_reorg_after_a_catch_up_finds_ldk_at_the_tip() -> TestResult {
    let (Setup { chain, poller, .. }, _, ldk) = watching_setup().await?;
    chain.extend(8, 0);
    poller.poll_once().await?;
    ldk.take();
    let fork_hash = chain.hash_at(5);
    chain.rewind_to(5);
    chain.extend(4, 3); // 6' to 9'
    assert_eq!(
        poller.poll_once().await?,
        PollOutcome {
            connected: 4,
            disconnected: 3
        }
    );
    assert_eq!(
        ldk.take(),
        vec![
            Seen::Disconnected(5, fork_hash),
            Seen::BestBlock(9, chain.hash_at(9)),
            Seen::Confirmed(9, chain.hash_at(9), 0),
        ]
    );
    Ok(())
}

/// A poller at height 7 of a chain whose block 6 holds the only transaction on its watch list.
async fn a_watched_transaction_at_height_6_of_7() -> Result<Setup, PollerError> {
    use lightning::chain::Filter;
    let (setup, watch_list, _) = watching_setup().await?;
    let commitment = transaction(3);
    watch_list.register_tx(&commitment.compute_txid(), &bitcoin::ScriptBuf::new());
    setup.chain.extend(5, 0);
    setup.chain.push_holding(0, vec![commitment]); // height 6
    setup.chain.extend(1, 0); // 7
    setup.poller.poll_once().await?;
    Ok(setup)
}

#[tokio::test]
async fn an_ldk_object_read_from_disk_catches_up_over_the_blocks_it_watches() -> TestResult {
    let Setup { chain, poller, .. } = a_watched_transaction_at_height_6_of_7().await?;

    let monitor = RecordingListener::default();
    let blocks = poller
        .catch_up_watching_listener(&monitor, BestBlock::new(chain.hash_at(2), 2))
        .await?;
    assert_eq!(blocks, 5);
    assert_eq!(
        monitor.take(),
        vec![
            Seen::BestBlock(6, chain.hash_at(6)),
            Seen::Confirmed(6, chain.hash_at(6), 1),
            Seen::Connected(7, chain.hash_at(7)),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn ldk_objects_caught_up_together_read_each_block_once_and_see_what_each_alone_would(
) -> TestResult {
    let Setup { chain, poller, .. } = a_watched_transaction_at_height_6_of_7().await?;

    // Two monitors written at different blocks, and one at the tip.
    let (behind, further_behind, at_tip) = (
        RecordingListener::default(),
        RecordingListener::default(),
        RecordingListener::default(),
    );
    let read_before = chain.blocks_read.load(std::sync::atomic::Ordering::Relaxed);
    let blocks = poller
        .catch_up_watching_listeners(&[
            (&behind, BestBlock::new(chain.hash_at(4), 4)),
            (&further_behind, BestBlock::new(chain.hash_at(2), 2)),
            (&at_tip, BestBlock::new(chain.hash_at(7), 7)),
        ])
        .await?;
    let read = chain.blocks_read.load(std::sync::atomic::Ordering::Relaxed) - read_before;
    // Heights 3 to 7, each once (alone, the first two would have read 3 + 5).
    assert_eq!((blocks, read), (5, 5));
    let caught_up_from_6 = vec![
        Seen::BestBlock(6, chain.hash_at(6)),
        Seen::Confirmed(6, chain.hash_at(6), 1),
        Seen::Connected(7, chain.hash_at(7)),
    ];
    assert_eq!(behind.take(), caught_up_from_6);
    assert_eq!(further_behind.take(), caught_up_from_6);
    assert_eq!(at_tip.take(), vec![]);
    Ok(())
}

#[tokio::test]
async fn a_listener_older_than_the_pollers_memory_catches_up_if_its_block_is_on_the_best_chain(
) -> TestResult {
    let Setup { chain, poller, .. } = setup().await?;
    let tip = RETAINED_BLOCKS + 20;
    chain.extend(tip, 0);
    poller.poll_once().await?;

    let old = RecordingListener::default();
    let blocks = poller
        .catch_up_listener(&old, BestBlock::new(chain.hash_at(3), 3))
        .await?;
    assert_eq!(blocks, tip - 3);
    assert_eq!(old.take(), connected(&chain, 4..=tip));

    let stranger = RecordingListener::default();
    let elsewhere = BestBlock::new(BlockHash::from_byte_array([7; 32]), 3);
    assert!(matches!(
        poller.catch_up_listener(&stranger, elsewhere).await,
        Err(PollerError::UnknownListenerBlock { height: 3, .. })
    ));
    assert!(stranger.take().is_empty());
    Ok(())
}
