//! The chain poller following a real regtest bitcoind: new blocks, a reorg made with
//! `invalidateblock`, and a restart after blocks were mined while the node was down.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use bitcoin::block::Header;
use bitcoin::hashes::Hash as _;
use bitcoin::BlockHash;
use chain_bitcoin::{BitcoindAuth, BitcoindChainSource};
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};
use ln_core::poller::{ChainPoller, PollOutcome};
use ln_core::store::SledStore;
use ln_core::{ChainParams, ChainSource};
use xln_tests::{init_test_logging, Bitcoind};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Connected(u32, BlockHash),
    Disconnected(u32, BlockHash),
}

#[derive(Default)]
struct RecordingListener(Mutex<Vec<Seen>>);

impl RecordingListener {
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Listen for RecordingListener {
    fn filtered_block_connected(&self, header: &Header, _: &TransactionData, height: u32) {
        let seen = Seen::Connected(height, header.block_hash());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
    }
    fn blocks_disconnected(&self, fork_point: BestBlock) {
        let seen = Seen::Disconnected(fork_point.height, fork_point.block_hash);
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
    }
}

fn hash_at(bitcoind: &Bitcoind, height: u32) -> Result<BlockHash> {
    Ok(BlockHash::from_str(
        &bitcoind.cli(&["getblockhash", &height.to_string()])?,
    )?)
}

fn connected(bitcoind: &Bitcoind, heights: std::ops::RangeInclusive<u32>) -> Result<Vec<Seen>> {
    heights
        .map(|h| Ok(Seen::Connected(h, hash_at(bitcoind, h)?)))
        .collect()
}

async fn source(bitcoind: &Bitcoind) -> Result<Arc<dyn ChainSource>> {
    let auth = BitcoindAuth::CookieFile(bitcoind.cookie_file());
    Ok(Arc::new(
        BitcoindChainSource::connect(ChainParams::bitcoin_regtest(), &bitcoind.rpc_url(), auth)
            .await?,
    ))
}

#[tokio::test]
async fn poller_follows_blocks_reorgs_and_catches_up_after_restart() -> Result<()> {
    init_test_logging();
    let bitcoind = Bitcoind::start()?;
    bitcoind.mine(3)?;
    let store_dir = tempfile::tempdir()?;
    let chain: Arc<dyn ChainSource> = source(&bitcoind).await?;

    {
        let store = Arc::new(SledStore::open(store_dir.path())?);
        let poller = ChainPoller::load(chain.clone(), store)?;
        let start = poller.initialize().await?;
        assert_eq!(
            (start.height, start.block_hash),
            (3, hash_at(&bitcoind, 3)?)
        );
        let listener = Arc::new(RecordingListener::default());
        poller.add_listener(listener.clone());

        bitcoind.mine(5)?;
        assert_eq!(
            poller.poll_once().await?,
            PollOutcome {
                connected: 5,
                disconnected: 0
            }
        );
        assert_eq!(listener.take(), connected(&bitcoind, 4..=8)?);

        // Replace blocks 6..8 with a longer branch.
        let fork_point = hash_at(&bitcoind, 5)?;
        bitcoind.cli(&["invalidateblock", &hash_at(&bitcoind, 6)?.to_string()])?;
        let other = ChainParams::bitcoin_regtest().address_for_script(
            &bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([5; 20])),
        )?;
        bitcoind.mine_to_address(4, &other)?;
        assert_eq!(
            poller.poll_once().await?,
            PollOutcome {
                connected: 4,
                disconnected: 3
            }
        );
        let mut expected = vec![Seen::Disconnected(5, fork_point)];
        expected.extend(connected(&bitcoind, 6..=9)?);
        assert_eq!(listener.take(), expected);
    }

    // Node down: two blocks arrive. On restart the poller resumes from its persisted tip.
    bitcoind.mine(2)?;
    let store = Arc::new(SledStore::open(store_dir.path())?);
    let poller = ChainPoller::load(chain, store)?;
    let tip = poller
        .tip()
        .ok_or_else(|| anyhow!("position lost across restart"))?;
    assert_eq!((tip.height, tip.real_hash), (9, hash_at(&bitcoind, 9)?));
    let listener = Arc::new(RecordingListener::default());
    poller.add_listener(listener.clone());
    assert_eq!(
        poller.poll_once().await?,
        PollOutcome {
            connected: 2,
            disconnected: 0
        }
    );
    assert_eq!(listener.take(), connected(&bitcoind, 10..=11)?);
    Ok(())
}
