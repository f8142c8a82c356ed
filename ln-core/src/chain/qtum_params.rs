//! Qtum's [`ChainParams`]: mainnet, testnet and regtest as Qtum Core 27.1 defines them.
//!
//! Every number cites its source the way `research/qtum-facts.md` does: `qtum:` is
//! qtumproject/qtum at `a3956895fa` (Qtum Core 27.1), `qln-sync:` the 2019 Qtum fork of
//! c-lightning, `ecl:` the 2019 Qtum fork of Eclair. Qtum has no signet in use, so
//! [`ChainParams::for_chain`] refuses it.

use std::time::Duration;

use bitcoin::constants::ChainHash;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, FeeRate};

use super::params::{
    AddressEncoding, Chain, ChainParams, FallbackFeerates, MinAllowedRemoteFeerate, Network,
    RelayPolicy,
};

/// Genesis block hashes as qtumd displays them (qtum: src/kernel/chainparams.cpp:151-153,
/// 305-307, 616-618), turned into internal byte order at compile time.
const QTUM_MAINNET_GENESIS: [u8; 32] =
    display_hex_to_internal("000075aef83cf2853580f8ae8ce6f8c3096cfa21d98334d6e3f95e5582ed986c");
const QTUM_TESTNET_GENESIS: [u8; 32] =
    display_hex_to_internal("0000e803ee215c0684ca0d2f9220594d3f828617972aad66feb2ba51f5e14222");
const QTUM_REGTEST_GENESIS: [u8; 32] =
    display_hex_to_internal("665ed5b402ac0b44efc37d8926332994363e8a7278b7ee9a58fb972efadae943");

/// Base58 prefixes of testnet and regtest, which share them (qtum: chainparams.cpp:315-321,
/// 672-678); only the bech32 HRP tells the two apart.
const QTUM_TEST_ADDRESSES: AddressEncoding = AddressEncoding {
    bech32_hrp: "tq",
    p2pkh_prefix: 120,
    p2sh_prefix: 110,
    wif_prefix: 239,
};

impl ChainParams {
    /// Qtum mainnet.
    pub fn qtum_mainnet() -> Self {
        Self::qtum(
            Network::Mainnet,
            QTUM_MAINNET_GENESIS,
            // Qtum mainnet's extended keys are Bitcoin mainnet's xpub/xprv (qtum:
            // chainparams.cpp:166-172), so the wallet's keys derive as on Bitcoin mainnet.
            bitcoin::Network::Bitcoin,
            // qtum: chainparams.cpp:166-172.
            AddressEncoding {
                bech32_hrp: "qc",
                p2pkh_prefix: 58,
                p2sh_prefix: 50,
                wif_prefix: 128,
            },
            "lnqc",
            // qtum: src/chainparamsbase.cpp:42-43.
            3889,
        )
    }

    /// Qtum testnet.
    pub fn qtum_testnet() -> Self {
        Self::qtum(
            Network::Testnet,
            QTUM_TESTNET_GENESIS,
            // tpub/tprv, as on Bitcoin's test networks (qtum: chainparams.cpp:315-321).
            bitcoin::Network::Testnet,
            QTUM_TEST_ADDRESSES,
            "lntq",
            // qtum: chainparamsbase.cpp:44-45.
            13889,
        )
    }

    /// Qtum regtest.
    pub fn qtum_regtest() -> Self {
        Self::qtum(
            Network::Regtest,
            QTUM_REGTEST_GENESIS,
            // tpub/tprv (qtum: chainparams.cpp:672-678).
            bitcoin::Network::Regtest,
            AddressEncoding {
                bech32_hrp: "qcrt",
                ..QTUM_TEST_ADDRESSES
            },
            "lnqcrt",
            // The same port as testnet's (qtum: chainparamsbase.cpp:48-49): a regtest and a
            // testnet qtumd on one machine need an explicit `-rpcport`.
            13889,
        )
    }

    /// What every Qtum network shares. `ldk_network` is only a stand-in for LDK, which knows
    /// Bitcoin's networks alone: the node replaces the chain hash in LDK's objects with
    /// [`ChainParams::chain_hash`] (design.md, "Chain hash").
    fn qtum(
        network: Network,
        genesis_internal_bytes: [u8; 32],
        ldk_network: bitcoin::Network,
        address_encoding: AddressEncoding,
        bolt11_prefix: &'static str,
        default_node_rpc_port: u16,
    ) -> Self {
        let genesis_block_hash = BlockHash::from_byte_array(genesis_internal_bytes);
        Self {
            chain: Chain::Qtum,
            network,
            genesis_block_hash,
            chain_hash: ChainHash::from_genesis_block_hash(genesis_block_hash),
            ldk_network,
            address_encoding,
            // `lnqc`/`lntq`/`lnqcrt`: "ln" + the bech32 HRP, as the Qtum forks of c-lightning
            // (qln-sync: common/bolt11.c:504-510), Eclair (ecl: PaymentRequest.scala:112-115)
            // and Electrum (qel: electrum/lnaddr.py:183-187) all write them.
            bolt11_prefix,
            // nRBTPowTargetSpacing, in force since nReduceBlocktimeHeight (main 845000, testnet
            // 806600, regtest 0) (qtum: chainparams.cpp:102, 115, 261, 274, 548, 561).
            target_block_interval: Duration::from_secs(32),
            // COINBASE_MATURITY after the block-time reduction, for coinbase and coinstake
            // outputs alike (qtum: chainparams.cpp:214-215, 361-362, 653-654; consensus/params.h:
            // 242-245). With the wallet rule `tip >= height + maturity`, a regtest node needs
            // 2001 blocks before its first coinbase is spendable (Bitcoin: 101).
            coinbase_maturity: 2000,
            // qtum: src/policy/policy.h:35, 55, 57 (DEFAULT_INCREMENTAL_RELAY_FEE 10000,
            // DUST_RELAY_TX_FEE 400000, DEFAULT_MIN_RELAY_TX_FEE 400000 sat/kvB).
            relay_policy: RelayPolicy {
                min_relay_feerate: FeeRate::from_sat_per_vb_u32(400),
                dust_relay_feerate: FeeRate::from_sat_per_vb_u32(400),
                incremental_relay_feerate: FeeRate::from_sat_per_vb_u32(10),
            },
            // Qtum's floor is 100,000 sat/kW, but a feerate exactly at it relays only for
            // weights divisible by 4 (qtumd charges whole vbytes); every fallback is at least
            // 100,749 sat/kW, which relays at any weight from 400 up (qtum-facts §5).
            fallback_feerates: FallbackFeerates {
                // The top of the Qtum Eclair fork's defaults, 1,200,000 sat/kB (ecl:
                // eclair-core/src/main/resources/reference.conf).
                maximum: FeeRate::from_sat_per_kwu(300_000),
                urgent: FeeRate::from_sat_per_kwu(150_000),
                normal: FeeRate::from_sat_per_kwu(110_000),
                // The Qtum c-lightning fork's FEERATE_FLOOR (qln-sync: bitcoin/feerate.h:10, 34).
                background: FeeRate::from_sat_per_kwu(101_000),
            },
            // LDK force-closes a channel whose peer feerate stays below this for 144 blocks:
            // 77 minutes at 32 s a block, on a chain whose fee market sits at the relay floor
            // and whose non-anchor commitments cannot be bumped (ldk-study §2).
            min_allowed_remote_feerate: MinAllowedRemoteFeerate::Floor,
            // Qtum Core's own wallets derive m/{44,49,84,86}'/88'/0' on every network (qtum:
            // src/wallet/scriptpubkeyman.cpp:2312-2352), so the same seed gives the same
            // addresses in qtumd. (SLIP-44 registers 2301, which Qtum's wallets do not use.)
            bip32_coin_type: 88,
            default_node_rpc_port,
            // BOLT 1's default; Qtum's Lightning forks kept it.
            default_lightning_port: 9735,
        }
    }
}

/// The 32 bytes of a hash written in RPC display order (byte-reversed hex), in internal order.
/// Only called for constants, so a malformed literal fails the build instead of the node.
const fn display_hex_to_internal(display_hex: &str) -> [u8; 32] {
    let digits = display_hex.as_bytes();
    assert!(digits.len() == 64, "a hash is 64 hex digits");
    let mut bytes = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        let high = hex_digit_value(digits[2 * i]);
        let low = hex_digit_value(digits[2 * i + 1]);
        bytes[31 - i] = (high << 4) | low;
        i += 1;
    }
    bytes
}

const fn hex_digit_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => panic!("not a lower-case hex digit"),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use bitcoin::{Amount, PubkeyHash, ScriptBuf, Transaction, WPubkeyHash, WScriptHash};
    use serde_json::Value;

    use super::*;
    use crate::chain::AddressError;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const CHAIN_INFO: &str = include_str!("../../../fixtures/qtum-regtest/chain-info.json");
    const ADDRESSES: &str = include_str!("../../../fixtures/qtum-regtest/addresses.json");
    const POLICY: &str = include_str!("../../../fixtures/qtum-regtest/policy.json");
    const BLOCKS_POW: &str = include_str!("../../../fixtures/qtum-regtest/blocks-pow.json");

    fn all_qtum_params() -> [ChainParams; 3] {
        [
            ChainParams::qtum_mainnet(),
            ChainParams::qtum_testnet(),
            ChainParams::qtum_regtest(),
        ]
    }

    /// The `result` of the fixture entry for `method`.
    fn rpc_result<'a>(entries: &'a Value, method: &str) -> Option<&'a Value> {
        entries
            .as_array()?
            .iter()
            .find(|entry| entry["method"] == method)
            .map(|entry| &entry["result"])
    }

    fn coins_per_kvb_as_feerate(value: &Value) -> Option<FeeRate> {
        let coins = value.as_f64()?;
        let sat_per_kvb = Amount::from_btc(coins).ok()?.to_sat();
        Some(FeeRate::from_sat_per_kwu(sat_per_kvb / 4))
    }

    #[test]
    fn genesis_hashes_are_qtum_cores() {
        let expected = [
            "000075aef83cf2853580f8ae8ce6f8c3096cfa21d98334d6e3f95e5582ed986c",
            "0000e803ee215c0684ca0d2f9220594d3f828617972aad66feb2ba51f5e14222",
            "665ed5b402ac0b44efc37d8926332994363e8a7278b7ee9a58fb972efadae943",
        ];
        for (params, genesis) in all_qtum_params().iter().zip(expected) {
            assert_eq!(params.genesis_block_hash.to_string(), genesis);
        }
    }

    #[test]
    fn bolt_chain_hash_is_the_genesis_hash_in_internal_byte_order() {
        // The internal-order column of qtum-facts §1 (equal to rust-qtum's ChainHash constants).
        let expected = [
            "6c98ed82555ef9e3d63483d921fa6c09c3f8e68caef8803585f23cf8ae750000",
            "2242e1f551bab2fe66ad2a971786823f4d5920922f0dca84065c21ee03e80000",
            "43e9dafa2e97fb589aeeb778728a3e3694293326897dc3ef440bac02b4d55e66",
        ];
        for (params, chain_hash) in all_qtum_params().iter().zip(expected) {
            assert_eq!(params.chain_hash.to_string(), chain_hash);
            assert_ne!(
                params.chain_hash,
                ChainHash::using_genesis_block(params.ldk_network)
            );
        }
    }

    #[test]
    fn regtest_genesis_equals_the_one_qtumd_reports() -> TestResult {
        let chain_info: Value = serde_json::from_str(CHAIN_INFO)?;
        let blockchain_info = rpc_result(&chain_info, "getblockchaininfo").ok_or("no entry")?;
        assert_eq!(blockchain_info["blocks"], 0);
        let best = blockchain_info["bestblockhash"].as_str().ok_or("no hash")?;
        let params = ChainParams::qtum_regtest();
        assert_eq!(params.genesis_block_hash, BlockHash::from_str(best)?);

        let blocks: Value = serde_json::from_str(BLOCKS_POW)?;
        let genesis = blocks
            .as_array()
            .and_then(|blocks| blocks.iter().find(|block| block["height"] == 0))
            .ok_or("no genesis in blocks-pow.json")?;
        assert_eq!(
            genesis["hash"].as_str(),
            Some(params.genesis_block_hash.to_string().as_str())
        );
        Ok(())
    }

    #[test]
    fn for_chain_returns_the_qtum_constructors() {
        let cases = [
            (Network::Mainnet, ChainParams::qtum_mainnet()),
            (Network::Testnet, ChainParams::qtum_testnet()),
            (Network::Regtest, ChainParams::qtum_regtest()),
        ];
        for (network, params) in cases {
            assert_eq!(ChainParams::for_chain(Chain::Qtum, network), Ok(params));
        }
    }

    #[test]
    fn encodings_and_ports_are_qtums() {
        let [mainnet, testnet, regtest] = all_qtum_params();
        let hrps = [&mainnet, &testnet, &regtest].map(|p| p.address_encoding.bech32_hrp);
        assert_eq!(hrps, ["qc", "tq", "qcrt"]);
        let invoices = [&mainnet, &testnet, &regtest].map(|p| p.bolt11_prefix);
        assert_eq!(invoices, ["lnqc", "lntq", "lnqcrt"]);
        let ports = [&mainnet, &testnet, &regtest].map(|p| p.default_node_rpc_port);
        assert_eq!(ports, [3889, 13889, 13889]);
        for params in [&mainnet, &testnet, &regtest] {
            assert_eq!(params.bip32_coin_type, 88);
            assert_eq!(params.coinbase_maturity, 2000);
            assert_eq!(params.target_block_interval, Duration::from_secs(32));
        }
    }

    #[test]
    fn relay_floor_is_400_sat_per_vbyte_and_own_fees_cover_whole_vbytes() {
        for params in all_qtum_params() {
            assert_eq!(
                params.relay_feerate_floor(),
                FeeRate::from_sat_per_kwu(100_000)
            );
            assert_eq!(
                params.relay_feerate_floor(),
                FeeRate::from_sat_per_vb_u32(400)
            );
            // qtum-facts §5: the lowest sat/kW that relays at every weight from 400 WU.
            assert_eq!(params.fee_floor(), FeeRate::from_sat_per_kwu(100_749));
        }
    }

    #[test]
    fn fallback_feerates_relay_at_every_weight() {
        // The lowest sat/kW whose fee, rounded down as BOLT 3 does, meets 400 sat per whole
        // vbyte at any weight from 400 WU up (qtum-facts §5: 100,749).
        let relays_everywhere = |rate: FeeRate| {
            (400u64..2_000)
                .all(|weight| rate.to_sat_per_kwu() * weight / 1000 >= 400 * weight.div_ceil(4))
        };
        assert!(!relays_everywhere(FeeRate::from_sat_per_kwu(100_748)));
        assert!(relays_everywhere(FeeRate::from_sat_per_kwu(100_749)));
        for params in all_qtum_params() {
            let f = params.fallback_feerates;
            for rate in [f.maximum, f.urgent, f.normal, f.background] {
                assert!(rate >= params.fee_floor());
                assert!(relays_everywhere(rate), "{rate:?}");
            }
            assert!(f.maximum >= f.urgent && f.urgent >= f.normal && f.normal >= f.background);
        }
    }

    #[test]
    fn relay_policy_equals_what_qtumd_reports() -> TestResult {
        let chain_info: Value = serde_json::from_str(CHAIN_INFO)?;
        let mempool = rpc_result(&chain_info, "getmempoolinfo").ok_or("no getmempoolinfo")?;
        let network = rpc_result(&chain_info, "getnetworkinfo").ok_or("no getnetworkinfo")?;
        let policy = ChainParams::qtum_regtest().relay_policy;
        for value in [&mempool["minrelaytxfee"], &network["relayfee"]] {
            assert_eq!(
                coins_per_kvb_as_feerate(value),
                Some(policy.min_relay_feerate)
            );
        }
        for value in [&mempool["incrementalrelayfee"], &network["incrementalfee"]] {
            assert_eq!(
                coins_per_kvb_as_feerate(value),
                Some(policy.incremental_relay_feerate)
            );
        }
        Ok(())
    }

    #[test]
    fn dust_thresholds_are_qtums() {
        let params = ChainParams::qtum_regtest();
        let dust = |script: ScriptBuf| params.dust_threshold(&script).to_sat();
        let taproot = ScriptBuf::from_hex(
            "51200101010101010101010101010101010101010101010101010101010101010101",
        )
        .unwrap_or_default();
        assert_eq!(
            dust(ScriptBuf::new_p2wpkh(&WPubkeyHash::all_zeros())),
            39_200
        );
        assert_eq!(
            dust(ScriptBuf::new_p2wsh(&WScriptHash::all_zeros())),
            44_000
        );
        assert_eq!(dust(taproot), 44_000);
        assert_eq!(dust(ScriptBuf::new_p2pkh(&PubkeyHash::all_zeros())), 72_800);
    }

    /// A transaction and qtumd's reject reason for it (`None`: accepted).
    type PolicyCase = (Transaction, Option<String>);

    /// Each `testmempoolaccept` of policy.json: the transaction and qtumd's verdict.
    fn policy_cases() -> Result<Vec<PolicyCase>, Box<dyn std::error::Error>> {
        let entries: Value = serde_json::from_str(POLICY)?;
        let mut cases = Vec::new();
        for entry in entries.as_array().ok_or("not a list")? {
            if entry["method"] != "testmempoolaccept" {
                continue;
            }
            let hex = entry["params"][0][0].as_str().ok_or("no tx hex")?;
            let tx: Transaction = bitcoin::consensus::encode::deserialize_hex(hex)?;
            let verdict = &entry["result"][0];
            assert_eq!(
                verdict["txid"].as_str(),
                Some(tx.compute_txid().to_string().as_str())
            );
            let reject = verdict["reject-reason"].as_str().map(str::to_owned);
            cases.push((tx, reject));
        }
        Ok(cases)
    }

    #[test]
    fn dust_threshold_agrees_with_qtumd_on_every_policy_fixture() -> TestResult {
        let params = ChainParams::qtum_regtest();
        let has_dust = |tx: &Transaction| {
            tx.output
                .iter()
                .any(|out| out.value < params.dust_threshold(&out.script_pubkey))
        };
        let cases = policy_cases()?;
        assert_eq!(cases.len(), 4);
        for (tx, reject) in &cases {
            match reject.as_deref() {
                Some("dust") => assert!(has_dust(tx), "{}", tx.compute_txid()),
                // Rejected for its fee, or accepted: either way no output is dust.
                Some("min relay fee not met") | None => assert!(!has_dust(tx)),
                Some(other) => panic!("unexpected verdict {other}"),
            }
        }
        // The pair that pins the threshold: 39,199 sat P2WPKH is dust, 39,200 sat is not.
        let p2wpkh_values: Vec<u64> = cases
            .iter()
            .filter_map(|(tx, _)| tx.output.get(1))
            .filter(|out| out.script_pubkey.is_p2wpkh())
            .map(|out| out.value.to_sat())
            .collect();
        assert_eq!(p2wpkh_values, [39_199, 39_200]);
        Ok(())
    }

    /// `(address, scriptPubKey hex)` of every address in addresses.json.
    fn fixture_addresses() -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
        let entries: Value = serde_json::from_str(ADDRESSES)?;
        let mut pairs = Vec::new();
        for entry in entries.as_array().ok_or("not a list")? {
            let result = &entry["result"];
            let address = result["address"].as_str().ok_or("no address")?;
            let script = result["scriptPubKey"].as_str().ok_or("no scriptPubKey")?;
            pairs.push((address.to_owned(), script.to_owned()));
        }
        Ok(pairs)
    }

    #[test]
    fn qtumd_regtest_addresses_decode_and_encode_back() -> TestResult {
        let params = ChainParams::qtum_regtest();
        let pairs = fixture_addresses()?;
        assert_eq!(pairs.len(), 2);
        for (address, script_hex) in pairs {
            let script = params.script_for_address(&address)?;
            assert_eq!(script.to_hex_string(), script_hex);
            assert_eq!(params.address_for_script(&script)?, address);
        }
        Ok(())
    }

    #[test]
    fn addresses_of_bitcoin_and_other_qtum_networks_are_refused() -> TestResult {
        let regtest = ChainParams::qtum_regtest();
        let mainnet = ChainParams::qtum_mainnet();
        let testnet = ChainParams::qtum_testnet();
        let p2wpkh = ScriptBuf::from_hex("00141ad966b66ac50919eef4b9fe146a83124aae3273")?;
        let p2pkh = ScriptBuf::from_hex("76a914ff9b91f678085f060fcec4cb7e7392d1f42d48c188ac")?;
        let mut foreign = Vec::new();
        for script in [&p2wpkh, &p2pkh] {
            for network in [
                bitcoin::Network::Bitcoin,
                bitcoin::Network::Testnet,
                bitcoin::Network::Regtest,
            ] {
                foreign.push(bitcoin::Address::from_script(script, network)?.to_string());
            }
            foreign.push(mainnet.address_for_script(script)?);
        }
        foreign.push(testnet.address_for_script(&p2wpkh)?);
        for address in &foreign {
            let refused = regtest.script_for_address(address);
            assert!(
                matches!(refused, Err(AddressError::WrongNetwork { .. })),
                "{address}: {refused:?}"
            );
        }
        for (address, _) in fixture_addresses()? {
            let refused = mainnet.script_for_address(&address);
            assert!(matches!(refused, Err(AddressError::WrongNetwork { .. })));
        }
        Ok(())
    }

    #[test]
    fn testnet_and_regtest_share_base58_addresses_like_qtumd() -> TestResult {
        // Only bech32 tells Qtum testnet from regtest; qtumd itself accepts the other's base58.
        let p2pkh = ScriptBuf::from_hex("76a914ff9b91f678085f060fcec4cb7e7392d1f42d48c188ac")?;
        let testnet_address = ChainParams::qtum_testnet().address_for_script(&p2pkh)?;
        assert_eq!(testnet_address, "qgruq9pB4tBEFTpFGtRvbEwLNfpVre3ukv");
        let mainnet_address = ChainParams::qtum_mainnet().address_for_script(&p2pkh)?;
        assert!(mainnet_address.starts_with('Q'), "{mainnet_address}");
        let p2sh = ScriptBuf::new_p2sh(&bitcoin::ScriptHash::all_zeros());
        let mainnet_p2sh = ChainParams::qtum_mainnet().address_for_script(&p2sh)?;
        assert!(mainnet_p2sh.starts_with('M'), "{mainnet_p2sh}");
        Ok(())
    }

    #[test]
    fn an_hour_is_113_qtum_blocks() {
        let params = ChainParams::qtum_mainnet();
        assert_eq!(params.blocks_for(Duration::from_secs(3600)), 113);
        assert_eq!(params.blocks_for(Duration::from_secs(32)), 1);
    }
}
