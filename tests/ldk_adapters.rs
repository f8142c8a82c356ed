//! LDK's `FeeEstimator` and `BroadcasterInterface` as xln implements them, against a real bitcoind.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use bitcoin::{Amount, OutPoint, TxOut};
use lightning::chain::chaininterface::{BroadcasterInterface, ConfirmationTarget, FeeEstimator};
use ln_core::chain::fees::{finalize, follows_estimate, ALL_CONFIRMATION_TARGETS};
use ln_core::ldk_adapters::{ChainBroadcaster, ChainFeeEstimator};
use ln_core::{ChainParams, ChainSource};
use xln_tests::test_key::{fund, TestKey};
use xln_tests::{init_test_logging, pay_to_burn, regtest_chain_source, Bitcoind};

async fn node() -> Result<(Bitcoind, Arc<dyn ChainSource>)> {
    init_test_logging();
    let bitcoind = Bitcoind::start()?;
    bitcoind.mine(1)?;
    let source = regtest_chain_source(&bitcoind).await?;
    Ok((bitcoind, Arc::new(source)))
}

#[tokio::test]
async fn fee_estimator_answers_every_target_at_or_above_the_floor_and_survives_node_loss(
) -> Result<()> {
    let (bitcoind, source) = node().await?;
    let params = source.params().clone();
    let floor = params.fee_floor().to_sat_per_kwu();
    let estimator = ChainFeeEstimator::new(source.clone());

    for target in ALL_CONFIRMATION_TARGETS {
        let before = u64::from(estimator.get_est_sat_per_1000_weight(target));
        assert_eq!(
            before,
            finalize(&params, target, None).to_sat_per_kwu(),
            "{target:?} before refresh"
        );
    }
    estimator.refresh().await?;
    let mut table = Vec::new();
    for target in ALL_CONFIRMATION_TARGETS {
        let answer = u64::from(estimator.get_est_sat_per_1000_weight(target));
        assert_eq!(
            answer,
            source.fee_rate(target).await?.to_sat_per_kwu(),
            "{target:?}"
        );
        assert!(answer >= floor, "{target:?}: {answer} < {floor}");
        table.push(answer);
    }

    // The node goes away: refreshing fails, and LDK keeps getting the last good answers.
    bitcoind.stop()?;
    assert!(estimator.refresh().await.is_err());
    let after: Vec<u64> = ALL_CONFIRMATION_TARGETS
        .iter()
        .map(|t| u64::from(estimator.get_est_sat_per_1000_weight(*t)))
        .collect();
    assert_eq!(after, table);
    Ok(())
}

#[tokio::test]
async fn a_fee_spike_multiplies_the_estimates_and_leaves_the_relay_floor_alone() -> Result<()> {
    let (_bitcoind, source) = node().await?;
    let params = source.params().clone();
    let spike = tempfile::NamedTempFile::new()?;
    std::fs::write(spike.path(), "20")?;
    let estimator =
        ChainFeeEstimator::new(source.clone()).with_fee_spike_file(Some(spike.path().to_owned()));
    estimator.refresh().await?;
    for target in ALL_CONFIRMATION_TARGETS {
        let unspiked = source.fee_rate(target).await?.to_sat_per_kwu();
        let expected = if follows_estimate(&params, target) {
            unspiked * 20
        } else {
            unspiked
        };
        let answer = u64::from(estimator.get_est_sat_per_1000_weight(target));
        assert_eq!(answer, expected, "{target:?}");
    }
    // An anchor channel's peer may keep any feerate that relays, spike or not.
    let anchor_minimum = ConfirmationTarget::MinAllowedAnchorChannelRemoteFee;
    assert_eq!(
        u64::from(estimator.get_est_sat_per_1000_weight(anchor_minimum)),
        params.relay_feerate_floor().to_sat_per_kwu()
    );
    Ok(())
}

#[tokio::test]
async fn broadcaster_publishes_a_package_handed_over_child_first() -> Result<()> {
    let (bitcoind, source) = node().await?;
    let key = TestKey::new(8)?;
    let (coin, value) = fund(&bitcoind, source.as_ref(), &key).await?;

    let fee = Amount::from_sat(5_000);
    let parent_value = value - fee;
    let parent = key.spend(
        coin,
        value,
        vec![TxOut {
            value: parent_value,
            script_pubkey: key.script_pubkey.clone(),
        }],
    )?;
    let parent_output = OutPoint {
        txid: parent.compute_txid(),
        vout: 0,
    };
    let child = key.spend(parent_output, parent_value, pay_to_burn(parent_value - fee))?;

    let broadcaster = ChainBroadcaster::new(source.clone(), tokio::runtime::Handle::current());
    broadcaster.broadcast_transactions(&[&child, &parent]);

    // The broadcast runs on a task; wait (bounded) until bitcoind's mempool has both.
    let wanted = [
        parent.compute_txid().to_string(),
        child.compute_txid().to_string(),
    ];
    for _ in 0..100 {
        let mempool = bitcoind.cli_json(&["getrawmempool"])?;
        let txids: Vec<String> = mempool
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        if wanted.iter().all(|w| txids.contains(w)) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("parent and child did not both reach the mempool");
}

#[tokio::test]
async fn gossip_verifier_accepts_only_unspent_outputs_on_our_chain() -> Result<()> {
    use lightning::routing::utxo::UtxoLookupError;
    use lightning::util::scid_utils::scid_from_parts;
    use ln_core::gossip_verifier::verify_short_channel_id;

    let (bitcoind, source) = node().await?;
    let key = TestKey::new(9)?;
    let (coin, value) = fund(&bitcoind, source.as_ref(), &key).await?;
    let chain_hash = source.params().chain_hash;
    // fund() mined the coin's block right after node()'s first block: height 2, coinbase, output.
    let scid = scid_from_parts(2, 0, u64::from(coin.vout)).map_err(|e| anyhow::anyhow!("{e:?}"))?;

    let output = verify_short_channel_id(source.as_ref(), &chain_hash, scid).await;
    assert!(
        matches!(&output, Ok(o) if o.value == value && o.script_pubkey == key.script_pubkey),
        "{output:?}"
    );

    let mainnet = ChainParams::bitcoin_mainnet().chain_hash;
    assert!(matches!(
        verify_short_channel_id(source.as_ref(), &mainnet, scid).await,
        Err(UtxoLookupError::UnknownChain)
    ));
    let nowhere = scid_from_parts(2, 7, 0).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(matches!(
        verify_short_channel_id(source.as_ref(), &chain_hash, nowhere).await,
        Err(UtxoLookupError::UnknownTx)
    ));

    // Once the output is spent and confirmed (the channel closed), the announcement is refused.
    let spend = key.spend(coin, value, pay_to_burn(value - Amount::from_sat(5_000)))?;
    source.broadcast(&spend).await?;
    bitcoind.mine(1)?;
    assert!(matches!(
        verify_short_channel_id(source.as_ref(), &chain_hash, scid).await,
        Err(UtxoLookupError::UnknownTx)
    ));
    Ok(())
}
