//! The chain poller following a real regtest bitcoind: new blocks, a reorg made with
//! `invalidateblock`, and a restart after blocks were mined while the node was down.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use bitcoin::hashes::Hash as _;
use bitcoin::BlockHash;
use ln_core::poller::{ChainPoller, PollOutcome};
use ln_core::store::SledStore;
use ln_core::testing::{RecordingListener, Seen};
use ln_core::{ChainParams, ChainSource};
use xln_tests::{init_test_logging, regtest_chain_source, Bitcoind};

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

#[tokio::test]
async fn poller_follows_blocks_reorgs_and_catches_up_after_restart() -> Result<()> {
    init_test_logging();
    let bitcoind = Bitcoind::start()?;
    bitcoind.mine(3)?;
    let store_dir = tempfile::tempdir()?;
    let chain: Arc<dyn ChainSource> = Arc::new(regtest_chain_source(&bitcoind).await?);

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
