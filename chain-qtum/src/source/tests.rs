//! [`QtumdChainSource`] against a stand-in qtumd that answers with a real qtumd's regtest captures.

mod mock_qtumd;
mod node_on_qtumd;

use std::str::FromStr;

use bitcoin::consensus::encode;
use bitcoin::hex::FromHex;
use bitcoin::Amount;
use ln_core::chain::fees::ALL_CONFIRMATION_TARGETS;
use serde_json::{json, Value};

use super::*;
use mock_qtumd::{MockQtumd, NodeState};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CHAIN_INFO: &str = include_str!("../../../fixtures/qtum-regtest/chain-info.json");
const BLOCKS_POW: &str = include_str!("../../../fixtures/qtum-regtest/blocks-pow.json");
const BLOCK_WITH_SPEND: &str = include_str!("../../../fixtures/qtum-regtest/block-with-spend.json");
const POLICY: &str = include_str!("../../../fixtures/qtum-regtest/policy.json");

const HASH_2010: &str = "03e6442ee9540009255026b2a76b1e58f56a00d301edbcc0b9378b5fd3b6a029";
const HASH_2011: &str = "17a97e8968599672f37545cf2433114495fd638cdf8245edf3058fe252026cdd";
const SPEND_TXID: &str = "de0aebdaf8468a89e0702311d496c2d7a666e104d292450762a04716afbccdea";

fn rpc_result(fixture: &str, method: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let entries: Value = serde_json::from_str(fixture)?;
    let entry = entries
        .as_array()
        .and_then(|list| list.iter().find(|e| e["method"] == method))
        .ok_or_else(|| format!("no {method} in fixture"))?;
    Ok(entry["result"].clone())
}

fn txids_of(block_json: &Value) -> Vec<String> {
    let txs = block_json["tx"].as_array().cloned().unwrap_or_default();
    txs.iter()
        .filter_map(|tx| tx.as_str().or_else(|| tx["txid"].as_str()))
        .map(str::to_owned)
        .collect()
}

/// qtumd as captured: blocks 0, 1, 2, 100, 2000, 2001, 2010 and 2011 (with a segwit spend), the
/// tip at 2011, no fee estimates yet.
fn regtest_qtumd() -> Result<NodeState, Box<dyn std::error::Error>> {
    let mut state = NodeState::default();
    let blocks: Value = serde_json::from_str(BLOCKS_POW)?;
    let spend: Value = serde_json::from_str(BLOCK_WITH_SPEND)?;
    let mut entries: Vec<(Value, Value, Value)> = blocks
        .as_array()
        .ok_or("not a list")?
        .iter()
        .map(|b| {
            (
                b["header_json"].clone(),
                b["block_hex"].clone(),
                b["block_json"].clone(),
            )
        })
        .collect();
    entries.push((
        spend["block_json"].clone(),
        spend["block_hex"].clone(),
        spend["block_json"].clone(),
    ));
    for (header, block_hex, block_json) in entries {
        let hash = header["hash"].as_str().ok_or("no hash")?.to_owned();
        let height = header["height"].as_u64().ok_or("no height")?;
        state.hash_by_height.insert(height, hash.clone());
        state
            .txids_by_hash
            .insert(hash.clone(), txids_of(&block_json));
        state
            .block_hex_by_hash
            .insert(hash.clone(), block_hex.as_str().ok_or("no hex")?.to_owned());
        state.header_by_hash.insert(hash, header);
    }
    let mut info = rpc_result(CHAIN_INFO, "getblockchaininfo")?;
    info["blocks"] = json!(2011);
    info["headers"] = json!(2011);
    info["bestblockhash"] = json!(HASH_2011);
    info["initialblockdownload"] = json!(false);
    state.blockchain_info = info;
    state.estimatesmartfee = rpc_result(CHAIN_INFO, "estimatesmartfee")?;
    Ok(state)
}

fn auth() -> QtumdAuth {
    QtumdAuth::UserPassword {
        user: "xln".into(),
        password: "test".into(),
    }
}

struct Fixture {
    mock: MockQtumd,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Result<Self, Box<dyn std::error::Error>> {
        Ok(Self {
            mock: MockQtumd::start(regtest_qtumd()?)?,
            dir: tempfile::tempdir()?,
        })
    }

    async fn connect(&self) -> Result<QtumdChainSource, Box<dyn std::error::Error>> {
        let store = SledStore::open(self.dir.path())?;
        let params = ChainParams::qtum_regtest();
        Ok(QtumdChainSource::connect(params, &self.mock.url, auth(), &store).await?)
    }
}

#[tokio::test]
async fn fresh_regtest_qtumd_in_initial_block_download_is_accepted() -> TestResult {
    // On regtest, initial block download only means an old tip: here the genesis block alone.
    let fixture = Fixture::start()?;
    let fresh = rpc_result(CHAIN_INFO, "getblockchaininfo")?;
    assert_eq!(fresh["initialblockdownload"], true);
    fixture
        .mock
        .with_state(|state| state.blockchain_info = fresh);
    fixture.connect().await?;
    Ok(())
}

#[tokio::test]
async fn testnet_qtumd_in_initial_block_download_is_refused() -> TestResult {
    let fixture = Fixture::start()?;
    let testnet = ChainParams::qtum_testnet();
    let mut syncing = rpc_result(CHAIN_INFO, "getblockchaininfo")?;
    syncing["chain"] = json!("test");
    syncing["headers"] = json!(5_000);
    syncing["verificationprogress"] = json!(0.25);
    fixture.mock.with_state(|state| {
        state.blockchain_info = syncing;
        state
            .hash_by_height
            .insert(0, testnet.genesis_block_hash.to_string());
    });
    let store = SledStore::open(fixture.dir.path())?;
    let refused = QtumdChainSource::connect(testnet, &fixture.mock.url, auth(), &store)
        .await
        .err();
    match refused {
        Some(error @ ChainSourceError::InitialBlockDownload { .. }) => {
            assert!(error.is_transient());
            assert_eq!(
                error.to_string(),
                "the chain node is still in initial block download (0 of 5000 blocks, 25.0% \
                 verified); wait until it has synced"
            );
        }
        other => panic!("expected InitialBlockDownload, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn qtumd_of_another_network_is_refused() -> TestResult {
    let fixture = Fixture::start()?;
    let store = SledStore::open(fixture.dir.path())?;
    let testnet = ChainParams::qtum_testnet();
    let refused =
        QtumdChainSource::connect(testnet.clone(), &fixture.mock.url, auth(), &store).await;
    match refused {
        Err(ChainSourceError::WrongNetwork {
            expected, found, ..
        }) => {
            assert_eq!(expected, testnet.genesis_block_hash);
            assert_eq!(found, ChainParams::qtum_regtest().genesis_block_hash);
        }
        other => panic!("expected WrongNetwork, got {:?}", other.err()),
    }
    Ok(())
}

#[tokio::test]
async fn blocks_carry_real_hashes_and_linked_synthetic_headers() -> TestResult {
    let fixture = Fixture::start()?;
    let source = fixture.connect().await?;
    let tip = source.best_tip().await?;
    assert_eq!(
        (tip.height, tip.hash),
        (2011, BlockHash::from_str(HASH_2011)?)
    );

    let parent = source.block_at_height(2010).await?.ok_or("no block 2010")?;
    let block = source.block_at_height(2011).await?.ok_or("no block 2011")?;
    assert_eq!(parent.hash, BlockHash::from_str(HASH_2010)?);
    assert_eq!(block.hash, BlockHash::from_str(HASH_2011)?);
    assert_eq!(block.prev_hash, parent.hash);
    assert_eq!(block.time, 1_795_221_884);
    assert_eq!(block.ldk_header.time, block.time);
    assert_eq!(
        block.ldk_header.prev_blockhash,
        parent.ldk_header.block_hash()
    );
    assert_eq!(
        block.ldk_header.merkle_root.to_byte_array(),
        block.hash.to_byte_array()
    );
    assert_ne!(block.ldk_header.block_hash(), block.hash);
    let txids: Vec<String> = block
        .transactions
        .iter()
        .map(|tx| tx.compute_txid().to_string())
        .collect();
    assert_eq!(txids.get(1).map(String::as_str), Some(SPEND_TXID));

    let by_hash = source.block_by_hash(&block.hash).await?;
    assert_eq!(by_hash, block);
    let recorded = source
        .synthetic_headers()
        .recorded(2011)?
        .ok_or("not recorded")?;
    assert_eq!(recorded.header, block.ldk_header);
    Ok(())
}

#[tokio::test]
async fn restarted_source_gives_the_same_synthetic_headers() -> TestResult {
    let fixture = Fixture::start()?;
    let first = {
        let source = fixture.connect().await?;
        source.block_at_height(2010).await?;
        source.block_at_height(2011).await?.ok_or("no block")?
    };
    let source = fixture.connect().await?;
    fixture.mock.with_state(|state| state.calls.clear());
    let again = source.block_by_hash(&first.hash).await?;
    assert_eq!(again.ldk_header, first.ldk_header);
    let calls = fixture.mock.with_state(|state| state.calls.clone());
    assert_eq!(calls, ["getblockheader", "getblock"], "no parent walk");
    Ok(())
}

#[tokio::test]
async fn a_block_off_the_best_chain_is_answered_but_not_recorded() -> TestResult {
    let fixture = Fixture::start()?;
    let source = fixture.connect().await?;
    let parent = source.block_at_height(2010).await?.ok_or("no block")?;
    fixture.mock.with_state(|state| {
        if let Some(header) = state.header_by_hash.get_mut(HASH_2011) {
            header["confirmations"] = json!(-1);
        }
    });
    let stale = source
        .block_by_hash(&BlockHash::from_str(HASH_2011)?)
        .await?;
    assert_eq!(
        stale.ldk_header.prev_blockhash,
        parent.ldk_header.block_hash()
    );
    assert_eq!(source.synthetic_headers().recorded(2011)?, None);
    Ok(())
}

#[tokio::test]
async fn heights_above_the_tip_and_unknown_blocks_are_none_and_not_found() -> TestResult {
    let fixture = Fixture::start()?;
    let source = fixture.connect().await?;
    assert_eq!(source.block_hash_at_height(3000).await?, None);
    assert_eq!(source.block_at_height(3000).await?, None);
    let unknown = BlockHash::from_byte_array([7; 32]);
    assert!(matches!(
        source.block_by_hash(&unknown).await,
        Err(ChainSourceError::BlockNotFound(_))
    ));
    Ok(())
}

#[tokio::test]
async fn getblock_answering_another_block_is_an_invalid_response() -> TestResult {
    let fixture = Fixture::start()?;
    let source = fixture.connect().await?;
    fixture.mock.with_state(|state| {
        let other = state
            .block_hex_by_hash
            .get(HASH_2010)
            .cloned()
            .unwrap_or_default();
        state.block_hex_by_hash.insert(HASH_2011.to_owned(), other);
    });
    let answer = source.block_at_height(2011).await;
    assert!(
        matches!(answer, Err(ChainSourceError::InvalidResponse { ref method, .. }) if method == "getblock"),
        "{answer:?}"
    );
    Ok(())
}

#[tokio::test]
async fn without_estimates_fees_are_the_fallbacks_and_the_remote_minimum_is_the_floor() -> TestResult
{
    let fixture = Fixture::start()?;
    let source = fixture.connect().await?;
    let rate = |sat_per_kw| FeeRate::from_sat_per_kwu(sat_per_kw);
    let expected = [
        (ConfirmationTarget::MaximumFeeEstimate, rate(300_000)),
        (ConfirmationTarget::UrgentOnChainSweep, rate(150_000)),
        (ConfirmationTarget::NonAnchorChannelFee, rate(110_000)),
        (ConfirmationTarget::ChannelCloseMinimum, rate(101_000)),
        (
            ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee,
            rate(100_000),
        ),
    ];
    for (target, feerate) in expected {
        assert_eq!(source.fee_rate(target).await?, feerate, "{target:?}");
    }
    Ok(())
}

#[tokio::test]
async fn estimates_are_used_above_the_floor_and_never_below_it() -> TestResult {
    let fixture = Fixture::start()?;
    let source = fixture.connect().await?;
    let floor = FeeRate::from_sat_per_kwu(100_000);
    // 0.008 QTUM/kvB = 800 sat/vB = 200,000 sat/kW.
    fixture
        .mock
        .with_state(|state| state.estimatesmartfee = json!({ "feerate": 0.008, "blocks": 2 }));
    let urgent = source
        .fee_rate(ConfirmationTarget::UrgentOnChainSweep)
        .await?;
    assert_eq!(urgent, FeeRate::from_sat_per_kwu(200_000));
    let remote = ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee;
    assert_eq!(source.fee_rate(remote).await?, floor);
    // Below Qtum's relay floor (a node configured lower than the network): raised to it.
    fixture
        .mock
        .with_state(|state| state.estimatesmartfee = json!({ "feerate": 0.001, "blocks": 2 }));
    for target in ALL_CONFIRMATION_TARGETS {
        assert!(source.fee_rate(target).await? >= floor, "{target:?}");
    }
    Ok(())
}

/// The transaction of policy.json's entry `index`.
fn policy_transaction(index: usize) -> Result<Transaction, Box<dyn std::error::Error>> {
    let entries: Value = serde_json::from_str(POLICY)?;
    let hex = entries[index]["params"][0][0].as_str().ok_or("no tx")?;
    Ok(encode::deserialize(&Vec::<u8>::from_hex(hex)?)?)
}

#[tokio::test]
async fn broadcast_reports_qtumds_rejection_reason() -> TestResult {
    let fixture = Fixture::start()?;
    let source = fixture.connect().await?;
    let accepted = policy_transaction(3)?;
    let txid = accepted.compute_txid();
    fixture
        .mock
        .with_state(|state| state.sendrawtransaction = Some(Ok(json!(txid.to_string()))));
    assert_eq!(source.broadcast(&accepted).await?, txid);

    let too_cheap = policy_transaction(0)?;
    fixture.mock.with_state(|state| {
        state.sendrawtransaction = Some(Err((-26, "min relay fee not met, 270 < 76400".into())))
    });
    match source.broadcast(&too_cheap).await {
        Err(ChainSourceError::TransactionRejected { txid, reason }) => {
            assert_eq!(txid, too_cheap.compute_txid());
            assert!(reason.starts_with("min relay fee not met"), "{reason}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    fixture.mock.with_state(|state| {
        state.sendrawtransaction = Some(Err((-27, "Transaction already in block chain".into())))
    });
    assert_eq!(source.broadcast(&accepted).await?, txid);
    Ok(())
}

#[tokio::test]
async fn short_channel_id_outputs_are_unspent_spent_or_not_found() -> TestResult {
    let fixture = Fixture::start()?;
    let source = fixture.connect().await?;
    let funding = json!({
        "bestblock": HASH_2011, "confirmations": 1, "value": 1.5,
        "scriptPubKey": {
            "asm": "0 1ad966b66ac50919eef4b9fe146a83124aae3273",
            "hex": "00141ad966b66ac50919eef4b9fe146a83124aae3273",
            "address": "qcrt1qrtvkddn2c5y3nmh5h8lpg65rzf92uvnnjer6lt",
            "type": "witness_v0_keyhash"
        },
        "coinbase": false, "coinstake": false
    });
    fixture
        .mock
        .with_state(|state| state.txouts.insert(format!("{SPEND_TXID}:1"), funding));

    let outpoint = OutPoint::new(Txid::from_str(SPEND_TXID)?, 1);
    let output = source.unspent_output(&outpoint).await?.ok_or("no output")?;
    assert_eq!(output.value, Amount::from_sat(150_000_000));
    assert!(output.script_pubkey.is_p2wpkh());
    assert_eq!(
        source.output_by_short_channel_id(2011, 1, 1).await?,
        ShortChannelIdOutput::Unspent(output)
    );
    // Output 0 exists but gettxout has nothing: spent.
    assert_eq!(
        source.output_by_short_channel_id(2011, 1, 0).await?,
        ShortChannelIdOutput::Spent
    );
    for (height, tx_index, vout) in [(2011, 1, 7), (2011, 9, 0), (3000, 0, 0)] {
        assert_eq!(
            source
                .output_by_short_channel_id(height, tx_index, vout)
                .await?,
            ShortChannelIdOutput::NotFound
        );
    }
    Ok(())
}

#[test]
fn genesis_header_without_a_parent_field_has_the_zero_parent() -> TestResult {
    let blocks: Value = serde_json::from_str(BLOCKS_POW)?;
    let genesis: BlockHeaderInfo = serde_json::from_value(blocks[0]["header_json"].clone())?;
    let real = real_block_from(&genesis)?;
    assert_eq!(real.prev_hash, BlockHash::all_zeros());
    let orphan = BlockHeaderInfo {
        height: 5,
        ..genesis
    };
    assert!(real_block_from(&orphan).is_err());
    Ok(())
}
