//! Qtum's relay policy on a Bitcoin regtest node: how to test xln's Qtum channel policy against
//! a real mempool without a qtumd.
//!
//! A bitcoind started with [`QTUM_RELAY_POLICY_ARGS`] judges transactions by Qtum Core's relay
//! numbers (400 sat/vB minimum relay, dust and block-minimum feerates, 10 sat/vB increments),
//! and nodes built with [`qtum_policy_on_bitcoin_regtest`] compute their channel policy, fees and
//! timelocks from the same numbers, while still talking Bitcoin regtest to that bitcoind.

use anyhow::{bail, ensure, Context, Result};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, FeeRate, OutPoint, ScriptBuf, Transaction, TxOut, WPubkeyHash, WScriptHash};
use ln_core::{ChainParams, ChainSource};
use serde_json::Value;

use crate::test_key::{fund, TestKey};
use crate::{Bitcoind, BitcoindOptions};

/// bitcoind flags for Qtum Core's default relay policy: `-minrelaytxfee`, `-dustrelayfee` and
/// `-blockmintxfee` of 400,000 sat/kvB (Qtum's `DEFAULT_MIN_RELAY_TX_FEE`, `DUST_RELAY_TX_FEE`
/// and `DEFAULT_BLOCK_MIN_TX_FEE`) and `-incrementalrelayfee` of 10,000 sat/kvB.
pub const QTUM_RELAY_POLICY_ARGS: [&str; 4] = [
    "-minrelaytxfee=0.004",
    "-dustrelayfee=0.004",
    "-blockmintxfee=0.004",
    "-incrementalrelayfee=0.0001",
];

/// Options for a [`Bitcoind`] running Qtum's relay policy.
pub fn qtum_relay_policy_bitcoind_options() -> BitcoindOptions {
    BitcoindOptions {
        extra_args: QTUM_RELAY_POLICY_ARGS.map(str::to_owned).to_vec(),
        ..BitcoindOptions::default()
    }
}

/// Chain parameters for a node on Bitcoin regtest that uses Qtum's policy numbers.
///
/// From [`ChainParams::bitcoin_regtest`], because the bitcoind enforces them or the node needs
/// them to talk to it: the genesis block and chain hash (checked against the bitcoind on start
/// and put in every Lightning message), `bcrt` addresses and `lnbcrt` invoices, the base58
/// prefixes and BIP32 coin type, the coinbase maturity of 100 blocks (bitcoind's consensus rule:
/// Qtum's 2000 would make the wallet wait for blocks bitcoind does not require), the
/// `bitcoin::Network` LDK is built with, and the default ports.
///
/// From [`ChainParams::qtum_regtest`], because they are what the channel policy, the fees and
/// the timelocks are computed from: `relay_policy` (the dust threshold and the fee floor, which
/// a bitcoind started with [`QTUM_RELAY_POLICY_ARGS`] enforces), `fallback_feerates` (what the
/// node pays while regtest has no fee estimates), `min_allowed_remote_feerate`, and
/// `target_block_interval` (32 s blocks: `minimum_depth`, CLTV deltas and fee targets in blocks).
pub fn qtum_policy_on_bitcoin_regtest() -> ChainParams {
    let qtum = ChainParams::qtum_regtest();
    ChainParams {
        relay_policy: qtum.relay_policy,
        fallback_feerates: qtum.fallback_feerates,
        min_allowed_remote_feerate: qtum.min_allowed_remote_feerate,
        target_block_interval: qtum.target_block_interval,
        ..ChainParams::bitcoin_regtest()
    }
}

/// Checks that `chain_node` (a bitcoind started with Qtum's relay policy, or a real qtumd)
/// enforces `source`'s relay policy, and fails saying where it does not.
///
/// Its RPC must report the policy's minimum relay and incremental feerates, and its mempool must
/// draw the lines where the policy puts them (asked with `testmempoolaccept`, so nothing is
/// published): a P2WPKH or P2WSH output one satoshi below [`ChainParams::dust_threshold`] is
/// `dust` and one at it is not; a fee one satoshi below the minimum relay feerate times the vsize
/// is `min relay fee not met` and the exact fee is not. Mines a coinbase to a test key (and the
/// blocks it needs to mature) to have something to spend.
pub async fn check_chain_node_enforces_relay_policy(
    chain_node: &Bitcoind,
    source: &dyn ChainSource,
) -> Result<()> {
    let policy = source.params().relay_policy;
    let network = chain_node.cli_json(&["getnetworkinfo"])?;
    let mempool = chain_node.cli_json(&["getmempoolinfo"])?;
    let reported = [
        (
            "getnetworkinfo relayfee",
            &network["relayfee"],
            policy.min_relay_feerate,
        ),
        (
            "getmempoolinfo minrelaytxfee",
            &mempool["minrelaytxfee"],
            policy.min_relay_feerate,
        ),
        (
            "getnetworkinfo incrementalfee",
            &network["incrementalfee"],
            policy.incremental_relay_feerate,
        ),
        (
            "getmempoolinfo incrementalrelayfee",
            &mempool["incrementalrelayfee"],
            policy.incremental_relay_feerate,
        ),
    ];
    for (what, value, expected) in reported {
        let found = coins_per_kvb(value).with_context(|| format!("{what}: {value}"))?;
        ensure!(
            found == expected,
            "{what} is {found:?}, expected {expected:?}"
        );
    }

    let key = TestKey::new(0x5a)?;
    let (coin, value) = fund(chain_node, source, &key).await?;
    let params = source.params();
    let p2wpkh = ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([7; 20]));
    let p2wsh = ScriptBuf::new_p2wsh(&WScriptHash::from_byte_array([7; 32]));
    let generous = |vsize: u64| FeeRate::from_sat_per_vb_u32(1000).fee_vb(vsize);
    let at_floor = |vsize: u64| policy.min_relay_feerate.fee_vb(vsize);
    let below_floor = |vsize: u64| at_floor(vsize).and_then(|fee| fee.checked_sub(Amount::ONE_SAT));
    let payment = Amount::from_sat(1_000_000);
    let mut cases = Vec::new();
    for script in [&p2wpkh, &p2wsh] {
        let dust = params.dust_threshold(script);
        let just_dust = dust
            .checked_sub(Amount::ONE_SAT)
            .context("zero dust threshold")?;
        cases.push((
            script,
            just_dust,
            &generous as &dyn Fn(u64) -> Option<Amount>,
            Some("dust"),
        ));
        cases.push((script, dust, &generous, None));
    }
    cases.push((
        &p2wpkh,
        payment,
        &below_floor,
        Some("min relay fee not met"),
    ));
    cases.push((&p2wpkh, payment, &at_floor, None));
    for (script, paid, fee_for, expected_reject) in cases {
        let output = TxOut {
            value: paid,
            script_pubkey: script.clone(),
        };
        let probe = probe_transaction(&key, coin, value, output, fee_for)?;
        let verdict = test_mempool_accept(chain_node, &probe)?;
        let reject = verdict["reject-reason"].as_str();
        ensure!(
            verdict["allowed"].as_bool() == Some(expected_reject.is_none())
                && reject == expected_reject,
            "paying {paid} to {script} with a fee of {:?} for {} vB: the chain node answered {verdict}, expected {expected_reject:?}",
            fee_for(u64::try_from(probe.vsize())?),
            probe.vsize()
        );
        tracing::info!(%script, paid_sat = paid.to_sat(), vsize = probe.vsize(), verdict = ?expected_reject, "the chain node drew the line where the policy says");
    }
    Ok(())
}

/// A feerate given in coins per 1000 vbytes, as Bitcoin Core's RPC reports them.
fn coins_per_kvb(value: &Value) -> Result<FeeRate> {
    let coins = value.as_f64().context("not a number")?;
    let sat_per_kvb = Amount::from_btc(coins)?.to_sat();
    ensure!(
        sat_per_kvb % 4 == 0,
        "{sat_per_kvb} sat/kvB is not a whole sat/kwu"
    );
    Ok(FeeRate::from_sat_per_kwu(sat_per_kvb / 4))
}

/// A transaction spending `coin` to `output` and change back to `key`, with the fee `fee_for`
/// its own vsize: signatures vary in length, so the fee is recomputed until it matches.
fn probe_transaction(
    key: &TestKey,
    coin: OutPoint,
    value: Amount,
    output: TxOut,
    fee_for: &dyn Fn(u64) -> Option<Amount>,
) -> Result<Transaction> {
    let mut fee = Amount::ZERO;
    for _ in 0..10 {
        let change = value
            .checked_sub(output.value)
            .and_then(|rest| rest.checked_sub(fee))
            .context("the coin is too small for the probe")?;
        let change_output = TxOut {
            value: change,
            script_pubkey: key.script_pubkey.clone(),
        };
        let probe = key.spend(coin, value, vec![output.clone(), change_output])?;
        let wanted = fee_for(u64::try_from(probe.vsize())?).context("fee overflow")?;
        if wanted == fee {
            return Ok(probe);
        }
        fee = wanted;
    }
    bail!("no stable fee for the probe transaction")
}

/// The chain node's `testmempoolaccept` verdict on `transaction`.
fn test_mempool_accept(chain_node: &Bitcoind, transaction: &Transaction) -> Result<Value> {
    let hex = bitcoin::consensus::encode::serialize_hex(transaction);
    let verdicts = chain_node.cli_json(&["testmempoolaccept", &format!("[\"{hex}\"]")])?;
    verdicts
        .get(0)
        .cloned()
        .with_context(|| format!("testmempoolaccept answered {verdicts}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ln_core::node::ChannelPolicy;

    #[test]
    fn nodes_get_qtums_channel_policy_on_bitcoin_regtests_chain() {
        let params = qtum_policy_on_bitcoin_regtest();
        let bitcoin = ChainParams::bitcoin_regtest();
        assert_eq!(params.chain_hash, bitcoin.chain_hash);
        assert_eq!(params.bolt11_prefix, "lnbcrt");
        assert_eq!(params.coinbase_maturity, 100);
        let policy = ChannelPolicy::for_chain(&params);
        assert_eq!(
            policy,
            ChannelPolicy::for_chain(&ChainParams::qtum_regtest())
        );
        // (ln-core's policy tests pin what that policy is.)
        assert!(!policy.anchors);
    }
}
