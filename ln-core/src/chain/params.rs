//! [`ChainParams`]: every number and encoding that differs between the chains xln runs on.
//!
//! The rule of the code base is that no chain-specific constant appears anywhere but in the
//! constructors of this file and, for Qtum, in the constructors beside them (`qtum_params.rs`).
//! Channel policy, fee floors, timelocks in blocks and address/invoice encodings are all computed
//! from here.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bitcoin::constants::{genesis_block, ChainHash};
use bitcoin::{Amount, BlockHash, FeeRate, Script};
use lightning::chain::chaininterface::FEERATE_FLOOR_SATS_PER_KW;

/// The blockchain a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chain {
    /// Bitcoin, through Bitcoin Core's RPC.
    Bitcoin,
    /// Qtum, through Qtum Core's (qtumd's) RPC.
    Qtum,
}

impl Chain {
    /// The lower-case name used on the command line, in configs and in RPC answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Chain::Bitcoin => "bitcoin",
            Chain::Qtum => "qtum",
        }
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Chain {
    type Err = UnsupportedChainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bitcoin" => Ok(Chain::Bitcoin),
            "qtum" => Ok(Chain::Qtum),
            other => Err(UnsupportedChainError::UnknownChain(other.to_owned())),
        }
    }
}

/// Which network of a chain a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// The production network.
    Mainnet,
    /// The public test network (for Bitcoin: testnet3, the one `bitcoind -testnet` follows).
    Testnet,
    /// The signet test network.
    Signet,
    /// A private regression-test network whose blocks are mined on demand.
    Regtest,
}

impl Network {
    /// The lower-case name used on the command line, in configs and in RPC answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = UnsupportedChainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mainnet" | "main" | "bitcoin" => Ok(Network::Mainnet),
            "testnet" | "test" => Ok(Network::Testnet),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            other => Err(UnsupportedChainError::UnknownNetwork(other.to_owned())),
        }
    }
}

/// A chain or network name we do not know, or a combination not supported yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedChainError {
    /// The chain name is not one of `bitcoin`, `qtum`.
    #[error("unknown chain `{0}`: expected `bitcoin` or `qtum`")]
    UnknownChain(String),
    /// The network name is not one of `mainnet`, `testnet`, `signet`, `regtest`.
    #[error("unknown network `{0}`: expected `mainnet`, `testnet`, `signet` or `regtest`")]
    UnknownNetwork(String),
    /// The chain is known but this build cannot run on the given network of it.
    #[error("{chain} {network} is not supported by this version of xln")]
    NotSupported {
        /// The requested chain.
        chain: Chain,
        /// The requested network.
        network: Network,
    },
}

/// How the chain writes addresses: its bech32 human-readable part and base58 version bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressEncoding {
    /// Human-readable part of segwit (bech32/bech32m) addresses, e.g. `bc`, `bcrt`, `qc`.
    pub bech32_hrp: &'static str,
    /// Base58 version byte of pay-to-pubkey-hash addresses.
    pub p2pkh_prefix: u8,
    /// Base58 version byte of pay-to-script-hash addresses.
    pub p2sh_prefix: u8,
    /// Base58 version byte of WIF private keys.
    pub wif_prefix: u8,
}

/// The relay policy of the chain's reference node, which decides what transactions propagate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayPolicy {
    /// Below this feerate a transaction is not relayed (`-minrelaytxfee`).
    pub min_relay_feerate: FeeRate,
    /// The feerate that defines dust outputs (`-dustrelayfee`).
    pub dust_relay_feerate: FeeRate,
    /// The minimum feerate increase of a replacement (`-incrementalrelayfee`).
    pub incremental_relay_feerate: FeeRate,
}

/// Feerates used when the node has no estimate (a fresh regtest chain, an empty fee history).
///
/// Every value is raised to [`ChainParams::fee_floor`] before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackFeerates {
    /// For `ConfirmationTarget::MaximumFeeEstimate`: the most we expect to ever need.
    pub maximum: FeeRate,
    /// For transactions that must confirm soon (`UrgentOnChainSweep`).
    pub urgent: FeeRate,
    /// For ordinary transactions (`NonAnchorChannelFee`, `OutputSpendingFee`).
    pub normal: FeeRate,
    /// For transactions that may wait (`AnchorChannelFee`, `ChannelCloseMinimum`).
    pub background: FeeRate,
}

/// How low a feerate a channel peer may keep on a channel without anchors before LDK
/// force-closes it: what [`fees::finalize`](super::fees::finalize) answers for
/// `MinAllowedNonAnchorChannelRemoteFee` (an anchor channel's peer may always go down to the
/// relay floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinAllowedRemoteFeerate {
    /// A little below the node's current estimate (LDK Node's rule), or
    /// [`ChainParams::fee_floor`] when the node has no estimate.
    BelowEstimate,
    /// Always exactly [`ChainParams::fee_floor`], whatever the estimate: for chains whose fee market
    /// sits at the relay floor and whose blocks are so fast that LDK's 144-block window for a
    /// too-low peer feerate is short.
    Floor,
}

/// Every chain-dependent number and encoding xln needs. Build one with a constructor such as
/// [`ChainParams::bitcoin_regtest`] or [`ChainParams::for_chain`]; never fill it by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    /// The chain.
    pub chain: Chain,
    /// The network of that chain.
    pub network: Network,
    /// Hash of the genesis block as the node's RPC displays it.
    pub genesis_block_hash: BlockHash,
    /// The BOLT `chain_hash`: the genesis block hash in internal byte order.
    pub chain_hash: ChainHash,
    /// The `bitcoin::Network` LDK objects are built with. LDK only knows Bitcoin's networks; for
    /// other chains this is a stand-in whose chain hash is replaced by [`Self::chain_hash`].
    pub ldk_network: bitcoin::Network,
    /// Address encoding of the chain.
    pub address_encoding: AddressEncoding,
    /// Prefix of BOLT11 invoices on this chain and network (`lnbc`, `lntb`, `lntbs`, `lnbcrt`, ...).
    pub bolt11_prefix: &'static str,
    /// The chain's target time between blocks.
    pub target_block_interval: Duration,
    /// Confirmations a coinbase output needs before it can be spent.
    pub coinbase_maturity: u32,
    /// The relay policy of the chain's reference node.
    pub relay_policy: RelayPolicy,
    /// Feerates used when the node has no estimate.
    pub fallback_feerates: FallbackFeerates,
    /// The lowest feerate we let a channel peer keep (LDK's `MinAllowed*ChannelRemoteFee`).
    pub min_allowed_remote_feerate: MinAllowedRemoteFeerate,
    /// BIP32 coin type of the on-chain wallet's derivation path (`m/84'/coin'/0'`).
    pub bip32_coin_type: u32,
    /// Default RPC port of the chain's node on this network.
    pub default_node_rpc_port: u16,
    /// Default Lightning P2P port.
    pub default_lightning_port: u16,
}

/// The largest confirmation target Bitcoin Core (and Qtum Core, which inherits it) will estimate.
pub const MAX_CONFIRMATION_TARGET_BLOCKS: u32 = 1008;

/// The weight, in weight units, below which no transaction of ours falls: the lightest is a sweep
/// of one P2WPKH input to one output, about 440 WU; commitments and HTLC transactions are heavier.
pub const MIN_OWN_TX_WEIGHT: u64 = 400;

impl ChainParams {
    /// Parameters for `chain` on `network`, or an error for combinations this build cannot run.
    pub fn for_chain(chain: Chain, network: Network) -> Result<Self, UnsupportedChainError> {
        match (chain, network) {
            (Chain::Bitcoin, Network::Mainnet) => Ok(Self::bitcoin_mainnet()),
            (Chain::Bitcoin, Network::Testnet) => Ok(Self::bitcoin_testnet()),
            (Chain::Bitcoin, Network::Signet) => Ok(Self::bitcoin_signet()),
            (Chain::Bitcoin, Network::Regtest) => Ok(Self::bitcoin_regtest()),
            (Chain::Qtum, Network::Mainnet) => Ok(Self::qtum_mainnet()),
            (Chain::Qtum, Network::Testnet) => Ok(Self::qtum_testnet()),
            (Chain::Qtum, Network::Regtest) => Ok(Self::qtum_regtest()),
            // Qtum Core carries signet parameters (qtum: src/kernel/chainparams.cpp:479-481), but
            // there is no public Qtum signet to run on.
            (Chain::Qtum, network @ Network::Signet) => {
                Err(UnsupportedChainError::NotSupported { chain, network })
            }
        }
    }

    /// Bitcoin mainnet.
    pub fn bitcoin_mainnet() -> Self {
        Self::bitcoin(
            Network::Mainnet,
            bitcoin::Network::Bitcoin,
            AddressEncoding {
                bech32_hrp: "bc",
                p2pkh_prefix: 0,
                p2sh_prefix: 5,
                wif_prefix: 128,
            },
            "lnbc",
            0,
            8332,
        )
    }

    /// Bitcoin testnet3.
    pub fn bitcoin_testnet() -> Self {
        Self::bitcoin(
            Network::Testnet,
            bitcoin::Network::Testnet,
            Self::BITCOIN_TEST_ADDRESSES,
            "lntb",
            1,
            18332,
        )
    }

    /// Bitcoin signet (the default signet).
    pub fn bitcoin_signet() -> Self {
        Self::bitcoin(
            Network::Signet,
            bitcoin::Network::Signet,
            Self::BITCOIN_TEST_ADDRESSES,
            "lntbs",
            1,
            38332,
        )
    }

    /// Bitcoin regtest.
    pub fn bitcoin_regtest() -> Self {
        Self::bitcoin(
            Network::Regtest,
            bitcoin::Network::Regtest,
            AddressEncoding {
                bech32_hrp: "bcrt",
                ..Self::BITCOIN_TEST_ADDRESSES
            },
            "lnbcrt",
            1,
            18443,
        )
    }

    const BITCOIN_TEST_ADDRESSES: AddressEncoding = AddressEncoding {
        bech32_hrp: "tb",
        p2pkh_prefix: 111,
        p2sh_prefix: 196,
        wif_prefix: 239,
    };

    fn bitcoin(
        network: Network,
        ldk_network: bitcoin::Network,
        address_encoding: AddressEncoding,
        bolt11_prefix: &'static str,
        bip32_coin_type: u32,
        default_node_rpc_port: u16,
    ) -> Self {
        let genesis_block_hash = genesis_block(ldk_network).block_hash();
        Self {
            chain: Chain::Bitcoin,
            network,
            genesis_block_hash,
            chain_hash: ChainHash::using_genesis_block(ldk_network),
            ldk_network,
            address_encoding,
            bolt11_prefix,
            target_block_interval: Duration::from_secs(600),
            coinbase_maturity: 100,
            // Bitcoin Core's defaults: DEFAULT_MIN_RELAY_TX_FEE 1000 sat/kvB (Core 29 lowered it to
            // 100; we keep the older, stricter value so our transactions relay through old nodes
            // too), DUST_RELAY_TX_FEE 3000 sat/kvB, DEFAULT_INCREMENTAL_RELAY_FEE 1000 sat/kvB.
            relay_policy: RelayPolicy {
                min_relay_feerate: FeeRate::from_sat_per_vb_u32(1),
                dust_relay_feerate: FeeRate::from_sat_per_vb_u32(3),
                incremental_relay_feerate: FeeRate::from_sat_per_vb_u32(1),
            },
            // The fallbacks LDK Node uses on Bitcoin, in sat per 1000 weight units.
            fallback_feerates: FallbackFeerates {
                maximum: FeeRate::from_sat_per_kwu(8000),
                urgent: FeeRate::from_sat_per_kwu(5000),
                normal: FeeRate::from_sat_per_kwu(1000),
                background: FeeRate::from_sat_per_kwu(500),
            },
            min_allowed_remote_feerate: MinAllowedRemoteFeerate::BelowEstimate,
            bip32_coin_type,
            default_node_rpc_port,
            default_lightning_port: 9735,
        }
    }

    /// The chain's minimum relay feerate in sat per 1000 weight units (rounded up), and never below
    /// LDK's own floor of 253. A peer's commitment feerate at or above this still relays, so it is
    /// the lowest [`MinAllowedRemoteFeerate::Floor`] lets a channel peer keep.
    pub fn relay_feerate_floor(&self) -> FeeRate {
        let ldk_floor = FeeRate::from_sat_per_kwu(u64::from(FEERATE_FLOOR_SATS_PER_KW));
        // sat/kvB → sat/kW rounds down; round up so the floor itself relays at whole vbytes.
        let relay_sat_per_kvb = self.relay_policy.min_relay_feerate.to_sat_per_kwu() * 4;
        let relay_floor = FeeRate::from_sat_per_kwu(relay_sat_per_kvb.div_ceil(4));
        relay_floor.max(ldk_floor)
    }

    /// The lowest feerate any of our own transactions pays: [`Self::relay_feerate_floor`], raised
    /// so that every transaction of at least `MIN_OWN_TX_WEIGHT` (400 WU) relays.
    ///
    /// Lightning computes a fee as `floor(feerate × weight / 1000)`, but the chain's node charges
    /// the minimum relay feerate per *whole* virtual byte (`ceil(weight / 4)`). At exactly the
    /// relay feerate a transaction whose weight is not a multiple of 4 pays up to 3 weight units'
    /// fee too little: harmless at Bitcoin's 1 sat/vB (LDK's 253 sat/kW floor covers it), but a
    /// refused commitment or sweep at Qtum's 400 sat/vB. The worst case is the lightest
    /// transaction one weight unit past a whole vbyte.
    pub fn fee_floor(&self) -> FeeRate {
        let relay_sat_per_kvb = self.relay_policy.min_relay_feerate.to_sat_per_kwu() * 4;
        let worst_weight = MIN_OWN_TX_WEIGHT + 1;
        // What the node asks of that transaction, then the feerate whose rounded-down fee meets it.
        let required_fee_sat = relay_sat_per_kvb * worst_weight.div_ceil(4) / 1000;
        let covering = FeeRate::from_sat_per_kwu((required_fee_sat * 1000).div_ceil(worst_weight));
        covering.max(self.relay_feerate_floor())
    }

    /// The smallest value an output with this script may carry and still be relayed (Core's
    /// `GetDustThreshold` at the chain's dust relay feerate).
    pub fn dust_threshold(&self, script_pubkey: &Script) -> Amount {
        script_pubkey.minimal_non_dust_custom(self.relay_policy.dust_relay_feerate)
    }

    /// How many blocks the chain needs, on average, to cover `duration` (at least one).
    pub fn blocks_for(&self, duration: Duration) -> u32 {
        let interval_secs = self.target_block_interval.as_secs().max(1);
        let blocks = duration.as_secs().div_ceil(interval_secs).max(1);
        u32::try_from(blocks).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn bitcoin_regtest_has_core_genesis_and_bolt_chain_hash() {
        let params = ChainParams::bitcoin_regtest();
        assert_eq!(
            params.genesis_block_hash.to_string(),
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
        );
        // The BOLT chain_hash is the same 32 bytes in internal (reversed display) order.
        assert_eq!(
            params.chain_hash.as_bytes(),
            params.genesis_block_hash.as_byte_array()
        );
    }

    #[test]
    fn fee_floor_is_never_below_ldk_floor() {
        for params in [
            ChainParams::bitcoin_mainnet(),
            ChainParams::bitcoin_testnet(),
            ChainParams::bitcoin_signet(),
            ChainParams::bitcoin_regtest(),
        ] {
            assert_eq!(
                params.fee_floor().to_sat_per_kwu(),
                253,
                "{}",
                params.network
            );
        }
    }

    /// Whether a transaction of every weight from [`MIN_OWN_TX_WEIGHT`] to 400,000 WU, paying
    /// `rate` rounded down as BOLT 3 does, meets the node's minimum relay fee per whole vbyte.
    fn relays_at_every_weight(params: &ChainParams, rate: FeeRate) -> bool {
        let relay_sat_per_kvb = params.relay_policy.min_relay_feerate.to_sat_per_kwu() * 4;
        (MIN_OWN_TX_WEIGHT..400_000).all(|weight| {
            rate.to_sat_per_kwu() * weight / 1000 >= relay_sat_per_kvb * weight.div_ceil(4) / 1000
        })
    }

    #[test]
    fn fee_floor_relays_at_every_weight_and_is_the_lowest_that_does() {
        for params in [ChainParams::bitcoin_regtest(), ChainParams::qtum_regtest()] {
            let floor = params.fee_floor();
            assert!(relays_at_every_weight(&params, floor), "{}", params.chain);
            assert!(floor >= params.relay_feerate_floor());
        }
        let qtum = ChainParams::qtum_regtest();
        assert_eq!(qtum.fee_floor(), FeeRate::from_sat_per_kwu(100_749));
        assert!(!relays_at_every_weight(
            &qtum,
            FeeRate::from_sat_per_kwu(100_748)
        ));
        assert_eq!(
            qtum.relay_feerate_floor(),
            FeeRate::from_sat_per_kwu(100_000)
        );
    }

    #[test]
    fn bitcoin_dust_thresholds_match_bitcoin_core() {
        let params = ChainParams::bitcoin_mainnet();
        let p2wpkh = bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::all_zeros());
        let p2wsh = bitcoin::ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::all_zeros());
        let p2pkh = bitcoin::ScriptBuf::new_p2pkh(&bitcoin::PubkeyHash::all_zeros());
        assert_eq!(params.dust_threshold(&p2wpkh), Amount::from_sat(294));
        assert_eq!(params.dust_threshold(&p2wsh), Amount::from_sat(330));
        assert_eq!(params.dust_threshold(&p2pkh), Amount::from_sat(546));
    }

    #[test]
    fn blocks_for_rounds_up_to_whole_blocks() {
        let params = ChainParams::bitcoin_mainnet();
        assert_eq!(params.blocks_for(Duration::from_secs(3600)), 6);
        assert_eq!(params.blocks_for(Duration::from_secs(601)), 2);
        assert_eq!(params.blocks_for(Duration::ZERO), 1);
    }

    #[test]
    fn chain_and_network_names_round_trip() {
        for chain in [Chain::Bitcoin, Chain::Qtum] {
            assert_eq!(chain.as_str().parse::<Chain>(), Ok(chain));
        }
        for network in [
            Network::Mainnet,
            Network::Testnet,
            Network::Signet,
            Network::Regtest,
        ] {
            assert_eq!(network.as_str().parse::<Network>(), Ok(network));
        }
        assert!(matches!(
            "litecoin".parse::<Chain>(),
            Err(UnsupportedChainError::UnknownChain(_))
        ));
    }

    #[test]
    fn every_supported_chain_and_network_gets_its_own_params() {
        for chain in [Chain::Bitcoin, Chain::Qtum] {
            for network in [
                Network::Mainnet,
                Network::Testnet,
                Network::Signet,
                Network::Regtest,
            ] {
                if let Ok(params) = ChainParams::for_chain(chain, network) {
                    assert_eq!((params.chain, params.network), (chain, network));
                }
            }
        }
        assert!(ChainParams::for_chain(Chain::Qtum, Network::Regtest).is_ok());
    }

    #[test]
    fn qtum_signet_is_reported_as_not_supported() {
        let error = ChainParams::for_chain(Chain::Qtum, Network::Signet);
        assert_eq!(
            error,
            Err(UnsupportedChainError::NotSupported {
                chain: Chain::Qtum,
                network: Network::Signet
            })
        );
        let message = error.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            message,
            "qtum signet is not supported by this version of xln"
        );
    }
}
