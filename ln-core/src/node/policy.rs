//! The channel policy, computed from [`ChainParams`] alone.
//!
//! LDK fixes some output values (our 354-sat dust limit, 330-sat anchors). On a chain whose relay
//! policy makes such outputs standard (Bitcoin), LDK's defaults with anchors are right. On a chain
//! whose dust threshold is far higher (Qtum: ~44,000 sat for P2WSH at 400 sat/vB), every output of
//! every commitment, HTLC-stage and closing transaction must instead be kept either absent or above
//! that threshold: no anchors, a large HTLC minimum, a large reserve and slower timelocks (see
//! `docs/architecture.md`). The decision is made from the numbers, never from the chain's name.

use bitcoin::hashes::Hash;
use bitcoin::{Amount, ScriptBuf, WScriptHash};
use lightning::ln::channelmanager::MIN_CLTV_EXPIRY_DELTA;
use lightning::ln::msgs::ChannelParameters;
use lightning::routing::router::DEFAULT_MAX_TOTAL_CLTV_EXPIRY_DELTA;
use lightning::types::features::ChannelTypeFeatures;
use lightning::util::config::{ChannelConfigOverrides, ChannelHandshakeConfigUpdate, UserConfig};

use crate::chain::ChainParams;

/// LDK's fixed dust limit for our own outputs (`MIN_CHAN_DUST_LIMIT_SATOSHIS`).
const LDK_HOLDER_DUST_LIMIT_SAT: u64 = 354;
/// LDK's fixed anchor output value (`ANCHOR_OUTPUT_VALUE_SATOSHI`).
const LDK_ANCHOR_VALUE_SAT: u64 = 330;
/// Weight of an HTLC-success transaction (the heavier second stage), BOLT 3.
const HTLC_SUCCESS_WEIGHT: u64 = 703;
/// How far above the fee floor second-stage outputs must stay standard, in tenths.
const FEE_HEADROOM_TENTHS: u64 = 22;
/// LDK's largest `to_self_delay` it accepts from a peer (`MAX_LOCAL_BREAKDOWN_TIMEOUT`).
const LDK_MAX_TO_SELF_DELAY: u16 = 2016;

/// The channel parameters this node uses and requires on its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelPolicy {
    /// LDK's fixed output values are standard on this chain: use its defaults, with anchors.
    pub ldk_outputs_standard: bool,
    /// Anchor outputs (`option_anchors_zero_fee_htlc_tx`).
    pub anchors: bool,
    /// Smallest HTLC we accept and send, msat.
    pub htlc_minimum_msat: u64,
    /// Smallest reserve each side must keep, sat (0 = LDK's 1 % rule only).
    pub min_reserve_sat: u64,
    /// Our `to_self_delay`, blocks.
    pub to_self_delay: u16,
    /// Confirmations before a channel is usable.
    pub minimum_depth: u32,
    /// Our forwarding CLTV delta, blocks.
    pub cltv_expiry_delta: u16,
    /// Final CLTV delta put into our invoices, blocks.
    pub min_final_cltv_expiry_delta: u16,
    /// Largest channel we open or accept, sat.
    pub max_funding_sat: u64,
    /// Smallest channel we open or accept, sat.
    pub min_funding_sat: u64,
    /// How much of a channel the peer may have in HTLCs in flight towards us, in percent (1 to
    /// 100): an operator's choice, not the chain's, 100 by default.
    pub max_inbound_htlc_in_flight_percent: u8,
    /// How many HTLCs the peer may have in flight towards us at once (1 to 483, BOLT 2's
    /// most): 483 by default, as LND; LDK's default is 50. It is also the most a peer that
    /// uses our number can send us at once. Fixed per channel at its open.
    pub max_accepted_htlcs: u16,
    /// On-chain coins kept in the wallet per anchor channel (for at most
    /// [`ANCHOR_RESERVE_MAX_CHANNELS`] channels), so that a force close can always pay the child
    /// transaction that bumps its commitment's fee: an operator's choice, by default
    /// [`DEFAULT_ANCHOR_RESERVE_PER_CHANNEL_SAT`] where channels have anchors, else 0.
    pub anchor_reserve_per_channel_sat: u64,
}

/// BOLT 2's largest `max_accepted_htlcs`.
pub const MAX_ACCEPTED_HTLCS: u16 = 483;

/// What LND keeps in its wallet per anchor channel (`anchorChanReservedValue`) for fee bumps.
pub const DEFAULT_ANCHOR_RESERVE_PER_CHANNEL_SAT: u64 = 10_000;

/// The reserve grows with the anchor channels up to this many (LND: at most 100,000 sat, ten
/// channels' worth): force closes of more channels at once are rare, and one child's fee is
/// enough to get each commitment into a block one after the other.
pub const ANCHOR_RESERVE_MAX_CHANNELS: u64 = 10;

impl ChannelPolicy {
    /// The policy for `params`' chain.
    pub fn for_chain(params: &ChainParams) -> Self {
        let p2wsh = ScriptBuf::new_p2wsh(&WScriptHash::all_zeros());
        let dust_sat = params.dust_threshold(&p2wsh).to_sat();
        let ldk_outputs_standard = dust_sat <= LDK_HOLDER_DUST_LIMIT_SAT.min(LDK_ANCHOR_VALUE_SAT);
        if ldk_outputs_standard {
            let defaults = UserConfig::default();
            return Self {
                ldk_outputs_standard,
                anchors: true,
                htlc_minimum_msat: 1,
                min_reserve_sat: 0,
                to_self_delay: defaults.channel_handshake_config.our_to_self_delay,
                minimum_depth: defaults.channel_handshake_config.minimum_depth,
                cltv_expiry_delta: defaults.channel_config.cltv_expiry_delta,
                min_final_cltv_expiry_delta: 42 + 6,
                max_funding_sat: 100_000_000,
                min_funding_sat: 20_000,
                max_inbound_htlc_in_flight_percent: 100,
                max_accepted_htlcs: MAX_ACCEPTED_HTLCS,
                anchor_reserve_per_channel_sat: DEFAULT_ANCHOR_RESERVE_PER_CHANNEL_SAT,
            };
        }
        let floor_sat_per_kw = params.fee_floor().to_sat_per_kwu();
        let second_stage_fee_sat =
            HTLC_SUCCESS_WEIGHT * floor_sat_per_kw * FEE_HEADROOM_TENTHS / 10 / 1000;
        let htlc_minimum_sat = round_up(dust_sat + second_stage_fee_sat, 10_000);
        let min_reserve_sat = round_up(htlc_minimum_sat * 3 / 2, 10_000);
        let blocks = |minutes: u64| params.blocks_for(std::time::Duration::from_secs(minutes * 60));
        Self {
            ldk_outputs_standard,
            anchors: false,
            htlc_minimum_msat: htlc_minimum_sat * 1000,
            min_reserve_sat,
            to_self_delay: LDK_MAX_TO_SELF_DELAY,
            minimum_depth: blocks(15).max(6),
            cltv_expiry_delta: u16::try_from(blocks(77).clamp(72, 240)).unwrap_or(240),
            min_final_cltv_expiry_delta: u16::try_from(blocks(77).clamp(48, 240)).unwrap_or(240),
            max_funding_sat: 10_000_000_000,
            min_funding_sat: round_up(min_reserve_sat * 2 + 200_000, 1_000_000),
            max_inbound_htlc_in_flight_percent: 100,
            max_accepted_htlcs: MAX_ACCEPTED_HTLCS,
            // Without anchors a commitment pays its own fee; there is nothing to bump.
            anchor_reserve_per_channel_sat: 0,
        }
    }

    /// What the wallet keeps for the fee bumps of `anchor_channels` channels with anchors.
    pub fn anchor_reserve_sat(&self, anchor_channels: usize) -> u64 {
        let channels = u64::try_from(anchor_channels)
            .unwrap_or(u64::MAX)
            .min(ANCHOR_RESERVE_MAX_CHANNELS);
        self.anchor_reserve_per_channel_sat.saturating_mul(channels)
    }

    /// LDK's configuration for this policy.
    pub fn user_config(&self) -> UserConfig {
        // Inbound channels are checked against this policy (and anchor channels need it).
        let mut config = UserConfig {
            manually_accept_inbound_channels: true,
            // HTLCs to our intercept SCIDs (and only those) wait for `resolvehtlc`.
            accept_intercept_htlcs: true,
            ..UserConfig::default()
        };
        let handshake = &mut config.channel_handshake_config;
        handshake.negotiate_anchors_zero_fee_htlc_tx = self.anchors;
        handshake.our_htlc_minimum_msat = self.htlc_minimum_msat;
        handshake.our_to_self_delay = self.to_self_delay;
        handshake.minimum_depth = self.minimum_depth;
        // LDK's default lets a peer have only 10 % of the channel in flight towards us; LND and
        // Core Lightning allow the whole channel, and payments larger than a tenth are common.
        // An operator may choose less.
        handshake.max_inbound_htlc_value_in_flight_percent_of_channel =
            self.max_inbound_htlc_in_flight_percent.clamp(1, 100);
        // LDK's default of 50 fails the 51st payment in flight on a channel at once; the
        // protocol allows 483, which LND uses. Each HTLC makes every commitment (and the
        // monitor's record of it) larger, which the store's monitor writes are sized for.
        handshake.our_max_accepted_htlcs = self.max_accepted_htlcs.clamp(1, MAX_ACCEPTED_HTLCS);
        let limits = &mut config.channel_handshake_limits;
        limits.max_funding_satoshis = self.max_funding_sat;
        limits.min_funding_satoshis = self.min_funding_sat;
        limits.max_minimum_depth = limits.max_minimum_depth.max(self.minimum_depth * 10);
        // Accept public and private channels alike; the opener decides.
        limits.force_announced_channel_preference = false;
        config.channel_config.cltv_expiry_delta = self.cltv_expiry_delta;
        config
    }

    /// The reserve rate to ask of a peer for a channel of `value_sat`: LDK's 1 %, raised so the
    /// reserve is at least [`Self::min_reserve_sat`].
    pub fn reserve_proportional_millionths(&self, value_sat: u64) -> u32 {
        let required = if value_sat == 0 {
            1_000_000
        } else {
            self.min_reserve_sat
                .saturating_mul(1_000_000)
                .div_ceil(value_sat)
        };
        u32::try_from(required.clamp(10_000, 1_000_000)).unwrap_or(1_000_000)
    }

    /// Configuration for one channel we open.
    pub fn outbound_config(&self, value_sat: u64, announce: bool) -> UserConfig {
        let mut config = self.user_config();
        config
            .channel_handshake_config
            .their_channel_reserve_proportional_millionths =
            self.reserve_proportional_millionths(value_sat);
        config.channel_handshake_config.announce_for_forwarding = announce;
        config
    }

    /// Overrides for one inbound channel we accept.
    pub fn inbound_overrides(&self, value_sat: u64) -> ChannelConfigOverrides {
        ChannelConfigOverrides {
            handshake_overrides: Some(ChannelHandshakeConfigUpdate {
                channel_reserve_proportional_millionths: Some(
                    self.reserve_proportional_millionths(value_sat),
                ),
                ..Default::default()
            }),
            update_overrides: None,
        }
    }

    /// Checks an inbound channel request; the error says which rule it breaks.
    pub fn check_inbound(
        &self,
        funding_sat: u64,
        push_msat: u64,
        channel_type: &ChannelTypeFeatures,
        params: &ChannelParameters,
    ) -> Result<(), String> {
        if funding_sat < self.min_funding_sat || funding_sat > self.max_funding_sat {
            return Err(format!(
                "channel of {funding_sat} sat is outside {}..={} sat",
                self.min_funding_sat, self.max_funding_sat
            ));
        }
        if !self.anchors
            && (channel_type.supports_anchors_zero_fee_htlc_tx()
                || channel_type.supports_anchor_zero_fee_commitments())
        {
            return Err("anchor channels make non-standard outputs on this chain".to_owned());
        }
        if params.htlc_minimum_msat < self.htlc_minimum_msat {
            return Err(format!(
                "htlc_minimum_msat {} is below this chain's minimum of {}",
                params.htlc_minimum_msat, self.htlc_minimum_msat
            ));
        }
        let reserve_msat = self.min_reserve_sat * 1000;
        if push_msat > 0 && push_msat < reserve_msat {
            return Err(format!(
                "push of {push_msat} msat is below the reserve of {reserve_msat} msat"
            ));
        }
        Ok(())
    }

    /// The smallest payment this node can send or receive.
    pub fn min_payment(&self) -> Amount {
        Amount::from_sat(self.htlc_minimum_msat.div_ceil(1000))
    }

    /// The smallest forwarding CLTV delta an operator may set (`setchannel`), blocks.
    ///
    /// LDK refuses less than 48 blocks ([`MIN_CLTV_EXPIRY_DELTA`]), two thirds of its default of
    /// 72: eight hours on Bitcoin to get an HTLC claim confirmed, or to come back online for it.
    /// Where blocks come faster the chain's default delta is longer in blocks (see
    /// [`Self::for_chain`]), and the minimum stays two thirds of it, so that it is not a shorter
    /// time than the default's proportion allows: LDK's 48 on Bitcoin, 97 on Qtum.
    pub fn min_cltv_expiry_delta(&self) -> u16 {
        let ldk_default = UserConfig::default()
            .channel_config
            .cltv_expiry_delta
            .max(1);
        let scaled = u32::from(self.cltv_expiry_delta) * u32::from(MIN_CLTV_EXPIRY_DELTA);
        let scaled = u16::try_from(scaled.div_ceil(u32::from(ldk_default))).unwrap_or(u16::MAX);
        scaled.max(MIN_CLTV_EXPIRY_DELTA)
    }

    /// The largest forwarding CLTV delta an operator may set, blocks: what leaves room, within
    /// the 1008 blocks of total CLTV an LDK payer accepts for a whole route
    /// ([`DEFAULT_MAX_TOTAL_CLTV_EXPIRY_DELTA`]), for the final delta of a payee on this chain.
    /// A larger delta would make this node's channels unusable to such payers.
    pub fn max_cltv_expiry_delta(&self) -> u16 {
        let room = DEFAULT_MAX_TOTAL_CLTV_EXPIRY_DELTA
            .saturating_sub(u32::from(self.min_final_cltv_expiry_delta));
        u16::try_from(room).unwrap_or(u16::MAX)
    }
}

fn round_up(value: u64, step: u64) -> u64 {
    value.div_ceil(step) * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_reserve_grows_with_anchor_channels_up_to_ten_and_is_zero_without_anchors() {
        let bitcoin = ChannelPolicy::for_chain(&ChainParams::bitcoin_regtest());
        assert_eq!(bitcoin.anchor_reserve_sat(0), 0);
        assert_eq!(bitcoin.anchor_reserve_sat(2), 20_000);
        assert_eq!(bitcoin.anchor_reserve_sat(10), 100_000);
        assert_eq!(bitcoin.anchor_reserve_sat(usize::MAX), 100_000);
        let qtum = ChannelPolicy::for_chain(&ChainParams::qtum_regtest());
        assert!(!qtum.anchors);
        assert_eq!(qtum.anchor_reserve_sat(3), 0);
    }

    #[test]
    fn bitcoin_uses_ldk_defaults_with_anchors() {
        for params in [
            ChainParams::bitcoin_mainnet(),
            ChainParams::bitcoin_regtest(),
        ] {
            let policy = ChannelPolicy::for_chain(&params);
            assert!(policy.ldk_outputs_standard);
            assert!(policy.anchors);
            assert_eq!(policy.htlc_minimum_msat, 1);
            assert_eq!(policy.to_self_delay, 144);
            assert_eq!(policy.minimum_depth, 6);
            assert_eq!(policy.reserve_proportional_millionths(1_000_000), 10_000);
            assert_eq!(policy.min_cltv_expiry_delta(), MIN_CLTV_EXPIRY_DELTA);
            assert_eq!(policy.max_cltv_expiry_delta(), 960);
        }
    }

    #[test]
    fn peers_may_have_483_htlcs_in_flight_on_either_chain_or_what_the_operator_says() {
        for params in [ChainParams::bitcoin_regtest(), ChainParams::qtum_regtest()] {
            let policy = ChannelPolicy::for_chain(&params);
            let config = policy.user_config();
            assert_eq!(config.channel_handshake_config.our_max_accepted_htlcs, 483);
            let outbound = policy.outbound_config(1_000_000, true);
            assert_eq!(
                outbound.channel_handshake_config.our_max_accepted_htlcs,
                483
            );
            let fewer = ChannelPolicy {
                max_accepted_htlcs: 30,
                ..policy
            };
            assert_eq!(
                fewer
                    .user_config()
                    .channel_handshake_config
                    .our_max_accepted_htlcs,
                30
            );
        }
    }

    #[test]
    fn reserve_rate_rises_for_small_channels_when_a_minimum_reserve_applies() {
        let policy = ChannelPolicy {
            min_reserve_sat: 300_000,
            ..ChannelPolicy::for_chain(&ChainParams::bitcoin_regtest())
        };
        assert_eq!(policy.reserve_proportional_millionths(20_000_000), 15_000);
        assert_eq!(policy.reserve_proportional_millionths(100_000_000), 10_000);
    }

    #[test]
    fn qtum_policy_keeps_every_output_above_dust_with_slower_timelocks() {
        for params in [ChainParams::qtum_mainnet(), ChainParams::qtum_regtest()] {
            let policy = ChannelPolicy::for_chain(&params);
            assert!(!policy.ldk_outputs_standard);
            assert!(!policy.anchors);
            assert_eq!(policy.htlc_minimum_msat, 200_000_000);
            assert_eq!(policy.min_reserve_sat, 300_000);
            assert_eq!(policy.to_self_delay, 2016);
            // 15 minutes and 77 minutes of 32-second blocks.
            assert_eq!(policy.minimum_depth, 29);
            assert_eq!(policy.cltv_expiry_delta, 145);
            assert_eq!(policy.min_final_cltv_expiry_delta, 145);
            // Two thirds of the default, as LDK's 48 is of its 72: about 52 minutes.
            assert_eq!(policy.min_cltv_expiry_delta(), 97);
            assert_eq!(policy.max_cltv_expiry_delta(), 1008 - 145);
            assert_eq!(policy.min_funding_sat, 1_000_000);
            assert_eq!(policy.max_funding_sat, 10_000_000_000);
            // The smallest HTLC still leaves a standard output after its second-stage transaction
            // at twice the fee floor.
            let p2wsh = ScriptBuf::new_p2wsh(&WScriptHash::all_zeros());
            let dust_sat = params.dust_threshold(&p2wsh).to_sat();
            let second_stage_fee_sat =
                HTLC_SUCCESS_WEIGHT * 2 * params.fee_floor().to_sat_per_kwu() / 1000;
            assert!(policy.htlc_minimum_msat / 1000 >= dust_sat + second_stage_fee_sat);
            let config = policy.user_config();
            let handshake = &config.channel_handshake_config;
            assert!(!handshake.negotiate_anchors_zero_fee_htlc_tx);
            assert_eq!(handshake.our_htlc_minimum_msat, 200_000_000);
            assert_eq!(handshake.our_to_self_delay, 2016);
            assert_eq!(config.channel_config.cltv_expiry_delta, 145);
        }
    }

    #[test]
    fn qtum_inbound_channels_breaking_the_policy_are_refused() {
        let policy = ChannelPolicy::for_chain(&ChainParams::qtum_regtest());
        let params = |htlc_minimum_msat| ChannelParameters {
            dust_limit_satoshis: 354,
            max_htlc_value_in_flight_msat: u64::MAX,
            htlc_minimum_msat,
            commitment_feerate_sat_per_1000_weight: 100_000,
            to_self_delay: 2016,
            max_accepted_htlcs: 30,
        };
        let plain = ChannelTypeFeatures::only_static_remote_key();
        let mut anchors = ChannelTypeFeatures::only_static_remote_key();
        anchors.set_anchors_zero_fee_htlc_tx_required();
        let good = params(200_000_000);
        assert_eq!(policy.check_inbound(20_000_000, 0, &plain, &good), Ok(()));
        assert_eq!(
            policy.check_inbound(20_000_000, 1_000_000_000, &plain, &good),
            Ok(())
        );
        let refusals = [
            policy.check_inbound(500_000, 0, &plain, &good),
            policy.check_inbound(20_000_000, 0, &anchors, &good),
            policy.check_inbound(20_000_000, 0, &plain, &params(1_000)),
            policy.check_inbound(20_000_000, 1_000, &plain, &good),
        ];
        for refusal in refusals {
            assert!(refusal.is_err(), "{refusal:?}");
        }
    }
}
