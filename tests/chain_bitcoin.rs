//! `chain-bitcoin` against a real regtest bitcoind: what `ChainSource` answers must be what
//! bitcoind itself (through `bitcoin-cli`) says.

use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, OutPoint, Txid};
use chain_bitcoin::{BitcoindAuth, BitcoindChainSource};
use lightning::chain::chaininterface::ConfirmationTarget;
use ln_core::chain::fees::ALL_CONFIRMATION_TARGETS;
use ln_core::{ChainParams, ChainSource, ChainSourceError, ShortChannelIdOutput};
use xln_tests::test_key::{fund, TestKey};
use xln_tests::{init_test_logging, pay_to_burn, regtest_chain_source, Bitcoind};

/// Starts bitcoind, mines `blocks` so it leaves initial block download, and connects to it.
async fn node_with_blocks(blocks: u32) -> Result<(Bitcoind, BitcoindChainSource)> {
    init_test_logging();
    let bitcoind = Bitcoind::start()?;
    bitcoind.mine(blocks)?;
    let source = regtest_chain_source(&bitcoind).await?;
    Ok((bitcoind, source))
}

fn block_hash(hex: &str) -> Result<BlockHash> {
    BlockHash::from_str(hex.trim()).with_context(|| format!("bad block hash {hex:?}"))
}

#[tokio::test]
async fn tip_and_blocks_match_bitcoin_cli() -> Result<()> {
    let (bitcoind, source) = node_with_blocks(12).await?;

    let tip = source.best_tip().await?;
    assert_eq!(
        tip.height,
        bitcoind.cli(&["getblockcount"])?.parse::<u32>()?
    );
    assert_eq!(tip.hash, block_hash(&bitcoind.cli(&["getbestblockhash"])?)?);

    for height in [0u32, 1, 7, 12] {
        let expected_hash = block_hash(&bitcoind.cli(&["getblockhash", &height.to_string()])?)?;
        let header = bitcoind.cli_json(&["getblockheader", &expected_hash.to_string()])?;
        let block = source
            .block_at_height(height)
            .await?
            .ok_or_else(|| anyhow!("no block {height}"))?;

        assert_eq!(block.height, height);
        assert_eq!(block.hash, expected_hash);
        assert_eq!(
            block.ldk_header.block_hash(),
            expected_hash,
            "LDK sees the real header on Bitcoin"
        );
        assert_eq!(
            u64::from(block.time),
            header["time"].as_u64().unwrap_or_default()
        );
        assert_eq!(
            block.transactions.len() as u64,
            header["nTx"].as_u64().unwrap_or_default()
        );
        if height > 0 {
            let parent = block_hash(&bitcoind.cli(&["getblockhash", &(height - 1).to_string()])?)?;
            assert_eq!(block.prev_hash, parent);
        }
        assert_eq!(source.block_by_hash(&expected_hash).await?, block);
    }

    assert_eq!(
        source.block_hash_at_height(13).await?,
        None,
        "above the tip"
    );
    assert_eq!(source.block_at_height(13).await?, None);
    let unknown = BlockHash::all_zeros();
    assert!(matches!(
        source.block_by_hash(&unknown).await,
        Err(ChainSourceError::BlockNotFound(_))
    ));
    Ok(())
}

#[tokio::test]
async fn reorg_by_invalidateblock_is_seen_with_correct_fork_point() -> Result<()> {
    let (bitcoind, source) = node_with_blocks(10).await?;
    let fork_parent = source
        .block_at_height(7)
        .await?
        .ok_or_else(|| anyhow!("no block 7"))?;
    let stale = source
        .block_at_height(8)
        .await?
        .ok_or_else(|| anyhow!("no block 8"))?;

    bitcoind.cli(&["invalidateblock", &stale.hash.to_string()])?;
    // Mine to another address so the replacement blocks cannot be identical to the stale ones.
    let other =
        ChainParams::bitcoin_regtest().address_for_script(&TestKey::new(3)?.script_pubkey)?;
    bitcoind.mine_to_address(4, &other)?;

    let tip = source.best_tip().await?;
    assert_eq!(tip.height, 11, "7 + 4 new blocks");
    let replacement = source
        .block_at_height(8)
        .await?
        .ok_or_else(|| anyhow!("no new block 8"))?;
    assert_ne!(
        replacement.hash, stale.hash,
        "a different block now sits at height 8"
    );
    assert_eq!(
        replacement.prev_hash, fork_parent.hash,
        "the chains fork right after block 7"
    );
    assert_eq!(
        source.block_hash_at_height(7).await?,
        Some(fork_parent.hash),
        "block 7 is common"
    );

    // The stale block stays readable by hash, with its height, so a poller can walk back from it.
    let stale_again = source.block_by_hash(&stale.hash).await?;
    assert_eq!(
        (stale_again.height, stale_again.prev_hash),
        (8, fork_parent.hash)
    );
    Ok(())
}

#[tokio::test]
async fn broadcast_accepts_valid_transaction_and_reports_bitcoinds_reason_for_invalid() -> Result<()>
{
    let (bitcoind, source) = node_with_blocks(1).await?;
    let key = TestKey::new(1)?;
    let (coin, value) = fund(&bitcoind, &source, &key).await?;

    let fee = Amount::from_sat(10_000);
    let spend = key.spend(coin, value, pay_to_burn(value - fee))?;
    let txid = source.broadcast(&spend).await?;
    assert_eq!(txid, spend.compute_txid());
    let mempool = bitcoind.cli_json(&["getrawmempool"])?;
    assert!(mempool
        .as_array()
        .is_some_and(|txids| txids.iter().any(|t| t == &txid.to_string())));
    assert_eq!(
        source.broadcast(&spend).await?,
        txid,
        "re-broadcasting a mempool tx is not an error"
    );

    // A conflicting spend of the same coin, without RBF fee bump: refused.
    let conflict = key.spend(coin, value, pay_to_burn(value - fee - Amount::from_sat(1)))?;
    let error = source
        .broadcast(&conflict)
        .await
        .err()
        .ok_or_else(|| anyhow!("conflict accepted"))?;
    let ChainSourceError::TransactionRejected {
        txid: rejected,
        reason,
    } = &error
    else {
        bail!("expected a rejection, got {error}");
    };
    assert_eq!(*rejected, conflict.compute_txid());
    assert!(
        reason.contains("insufficient fee"),
        "bitcoind's reason: {reason}"
    );

    // Spending a coin that does not exist: bitcoind's own reason comes back verbatim.
    let missing = OutPoint {
        txid: Txid::all_zeros(),
        vout: 0,
    };
    let orphan = key.spend(missing, value, pay_to_burn(value - fee))?;
    match source.broadcast(&orphan).await {
        Err(ChainSourceError::TransactionRejected { reason, .. }) => {
            assert!(
                reason.contains("bad-txns-inputs-missingorspent"),
                "reason: {reason}"
            );
        }
        other => bail!("expected a rejection, got {other:?}"),
    }

    // Once confirmed, broadcasting again still succeeds.
    bitcoind.mine(1)?;
    assert_eq!(source.broadcast(&spend).await?, txid);
    Ok(())
}

#[tokio::test]
async fn fee_estimates_are_never_below_the_floor_and_use_fallbacks_without_data() -> Result<()> {
    let (_bitcoind, source) = node_with_blocks(1).await?;
    let params = source.params().clone();
    for target in ALL_CONFIRMATION_TARGETS {
        let rate = source.fee_rate(target).await?;
        assert!(
            rate >= params.fee_floor(),
            "{target:?}: {rate} below the floor"
        );
    }
    // A fresh regtest chain has no fee history, so the documented fallbacks apply.
    let fallbacks = params.fallback_feerates;
    assert_eq!(
        source
            .fee_rate(ConfirmationTarget::UrgentOnChainSweep)
            .await?,
        fallbacks.urgent
    );
    assert_eq!(
        source
            .fee_rate(ConfirmationTarget::NonAnchorChannelFee)
            .await?,
        fallbacks.normal
    );
    assert_eq!(
        source
            .fee_rate(ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee)
            .await?,
        params.fee_floor()
    );
    Ok(())
}

#[tokio::test]
async fn utxo_lookup_tells_unspent_from_spent_and_missing() -> Result<()> {
    let (bitcoind, source) = node_with_blocks(1).await?;
    let key = TestKey::new(2)?;
    let (coin, value) = fund(&bitcoind, &source, &key).await?;
    let funding_height = 2; // node_with_blocks mined block 1, fund() block 2.

    let unspent = source
        .unspent_output(&coin)
        .await?
        .ok_or_else(|| anyhow!("coin not found"))?;
    assert_eq!(
        (unspent.value, &unspent.script_pubkey),
        (value, &key.script_pubkey)
    );
    let vout = u16::try_from(coin.vout)?;
    assert_eq!(
        source
            .output_by_short_channel_id(funding_height, 0, vout)
            .await?,
        ShortChannelIdOutput::Unspent(unspent)
    );

    let spend = key.spend(coin, value, pay_to_burn(value - Amount::from_sat(10_000)))?;
    source.broadcast(&spend).await?;
    assert_eq!(
        source.unspent_output(&coin).await?,
        None,
        "a mempool spend counts as spent"
    );
    bitcoind.mine(1)?;
    assert_eq!(source.unspent_output(&coin).await?, None);
    assert_eq!(
        source
            .output_by_short_channel_id(funding_height, 0, vout)
            .await?,
        ShortChannelIdOutput::Spent
    );

    for (height, tx_index, output_index) in [
        (funding_height, 0, 40),
        (funding_height, 5, 0),
        (50_000, 0, 0),
    ] {
        assert_eq!(
            source
                .output_by_short_channel_id(height, tx_index, output_index)
                .await?,
            ShortChannelIdOutput::NotFound,
            "{height}x{tx_index}x{output_index}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn connect_accepts_a_fresh_regtest_chain_and_gives_clear_errors_for_wrong_network_bad_auth_and_no_node(
) -> Result<()> {
    init_test_logging();
    let bitcoind = Bitcoind::start()?;
    let url = bitcoind.rpc_url();
    let cookie = BitcoindAuth::CookieFile(bitcoind.cookie_file());

    // A fresh regtest node with only the genesis block reports initial block download. On
    // regtest that only means an old tip, so the source connects (the refusal on other networks
    // is a unit test in chain-qtum, on a stand-in node).
    let chain = bitcoind.cli_json(&["getblockchaininfo"])?;
    assert_eq!(chain["initialblockdownload"], true, "{chain}");
    let fresh =
        BitcoindChainSource::connect(ChainParams::bitcoin_regtest(), &url, cookie.clone()).await?;
    assert_eq!(fresh.best_tip().await?.height, 0);

    let error = BitcoindChainSource::connect(ChainParams::bitcoin_mainnet(), &url, cookie.clone())
        .await
        .err()
        .ok_or_else(|| anyhow!("mainnet params accepted a regtest node"))?;
    assert!(
        matches!(error, ChainSourceError::WrongNetwork { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("another chain or network"),
        "{error}"
    );

    let wrong_password = BitcoindAuth::UserPassword {
        user: "__cookie__".into(),
        password: "nope".into(),
    };
    let error =
        BitcoindChainSource::connect(ChainParams::bitcoin_regtest(), &url, wrong_password).await;
    assert!(
        matches!(error, Err(ChainSourceError::AuthenticationFailed { .. })),
        "{:?}",
        error.err()
    );

    let port = bitcoind.rpc_port();
    bitcoind.stop()?;
    let error = BitcoindChainSource::connect(ChainParams::bitcoin_regtest(), &url, cookie).await;
    assert!(
        matches!(error, Err(ChainSourceError::Unreachable { .. })),
        "cookie gone: {:?}",
        error.err()
    );
    let closed = BitcoindAuth::UserPassword {
        user: "u".into(),
        password: "p".into(),
    };
    let error = BitcoindChainSource::connect(
        ChainParams::bitcoin_regtest(),
        &format!("http://127.0.0.1:{port}"),
        closed,
    )
    .await;
    let error = error
        .err()
        .ok_or_else(|| anyhow!("connected to a stopped node"))?;
    assert!(
        matches!(error, ChainSourceError::Unreachable { .. }),
        "{error}"
    );
    assert!(error.is_transient());
    Ok(())
}
