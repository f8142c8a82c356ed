//! From LDK's `ConfirmationTarget` to a feerate, the same way on every chain.
//!
//! A target is first expressed as a wall-clock window ("within about an hour"), then turned into a
//! number of blocks with the chain's block interval. That keeps the meaning of a target the same on
//! a 10-minute chain and on a 32-second one, and keeps block counts out of the core.
//! [`ChainSource`](super::ChainSource) backends ask their node for an estimate at that many blocks
//! and pass the answer through [`finalize`], which applies the fallback and the chain's floor.

use std::time::Duration;

use bitcoin::FeeRate;
use lightning::chain::chaininterface::ConfirmationTarget;

use super::params::{ChainParams, MinAllowedRemoteFeerate, MAX_CONFIRMATION_TARGET_BLOCKS};

/// How the node should estimate: Bitcoin Core's `estimatesmartfee` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstimateMode {
    /// Reacts faster to rising fees; for transactions that must not be late.
    Conservative,
    /// Cheaper; for transactions that can wait or be bumped.
    Economical,
}

impl EstimateMode {
    /// The mode's name in `estimatesmartfee`.
    pub fn as_rpc_str(self) -> &'static str {
        match self {
            EstimateMode::Conservative => "CONSERVATIVE",
            EstimateMode::Economical => "ECONOMICAL",
        }
    }
}

/// What to ask the node for a given target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimateRequest {
    /// Confirmation target in blocks, between 1 and [`MAX_CONFIRMATION_TARGET_BLOCKS`].
    pub blocks: u32,
    /// Estimation mode.
    pub mode: EstimateMode,
}

/// Every `ConfirmationTarget` LDK asks for, for code that reports or tests all of them.
pub const ALL_CONFIRMATION_TARGETS: [ConfirmationTarget; 8] = [
    ConfirmationTarget::MaximumFeeEstimate,
    ConfirmationTarget::UrgentOnChainSweep,
    ConfirmationTarget::MinAllowedAnchorChannelRemoteFee,
    ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee,
    ConfirmationTarget::AnchorChannelFee,
    ConfirmationTarget::NonAnchorChannelFee,
    ConfirmationTarget::ChannelCloseMinimum,
    ConfirmationTarget::OutputSpendingFee,
];

/// A stable snake_case name for a target, for logs and JSON.
pub fn target_name(target: ConfirmationTarget) -> &'static str {
    match target {
        ConfirmationTarget::MaximumFeeEstimate => "maximum_fee_estimate",
        ConfirmationTarget::UrgentOnChainSweep => "urgent_on_chain_sweep",
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee => {
            "min_allowed_anchor_channel_remote_fee"
        }
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => {
            "min_allowed_non_anchor_channel_remote_fee"
        }
        ConfirmationTarget::AnchorChannelFee => "anchor_channel_fee",
        ConfirmationTarget::NonAnchorChannelFee => "non_anchor_channel_fee",
        ConfirmationTarget::ChannelCloseMinimum => "channel_close_minimum",
        ConfirmationTarget::OutputSpendingFee => "output_spending_fee",
    }
}

/// The wall-clock window within which a transaction of this kind should confirm. The windows are
/// those LDK Node uses on Bitcoin (1, 6, 12, 144 and 1008 blocks), stated in time.
fn confirmation_window(target: ConfirmationTarget) -> (Duration, EstimateMode) {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    let (secs, mode) = match target {
        ConfirmationTarget::MaximumFeeEstimate => (10 * MINUTE, EstimateMode::Conservative),
        ConfirmationTarget::UrgentOnChainSweep => (HOUR, EstimateMode::Conservative),
        ConfirmationTarget::NonAnchorChannelFee | ConfirmationTarget::OutputSpendingFee => {
            (2 * HOUR, EstimateMode::Economical)
        }
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee
        | ConfirmationTarget::ChannelCloseMinimum => (DAY, EstimateMode::Economical),
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee
        | ConfirmationTarget::AnchorChannelFee => (7 * DAY, EstimateMode::Economical),
    };
    (Duration::from_secs(secs), mode)
}

/// What to ask the chain's node for `target`.
pub fn estimate_request(params: &ChainParams, target: ConfirmationTarget) -> EstimateRequest {
    let (window, mode) = confirmation_window(target);
    EstimateRequest {
        blocks: params
            .blocks_for(window)
            .min(MAX_CONFIRMATION_TARGET_BLOCKS),
        mode,
    }
}

/// LDK force-closes channels whose peer-set feerate falls below the `MinAllowed*` targets; leave
/// some slack under the estimate so ordinary fee swings do not close channels (as LDK Node does).
const MIN_ALLOWED_REMOTE_FEE_SLACK_SAT_PER_KW: u64 = 250;

/// The lowest feerate `target` may have: [`ChainParams::fee_floor`] for fees we pay, and the
/// chain's relay floor ([`ChainParams::relay_feerate_floor`]) for the `MinAllowed*` targets, which
/// bound the peer's feerate rather than set ours.
pub fn floor(params: &ChainParams, target: ConfirmationTarget) -> FeeRate {
    match target {
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee
        | ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => params.relay_feerate_floor(),
        _ => params.fee_floor(),
    }
}

/// Whether `target`'s feerate moves with the chain node's estimate. Two do not:
/// `MinAllowedAnchorChannelRemoteFee`, always the relay floor (see [`finalize`]), and
/// `MinAllowedNonAnchorChannelRemoteFee` on a chain whose
/// [`ChainParams::min_allowed_remote_feerate`] is [`MinAllowedRemoteFeerate::Floor`]. A fee
/// spike moves estimates, never the relay floor.
pub fn follows_estimate(params: &ChainParams, target: ConfirmationTarget) -> bool {
    match target {
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee => false,
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => {
            params.min_allowed_remote_feerate == MinAllowedRemoteFeerate::BelowEstimate
        }
        _ => true,
    }
}

/// The feerate to use for `target`, given the node's estimate (`None` when it has none): the
/// estimate, or the chain's documented fallback, never below [`floor`].
///
/// `MinAllowedAnchorChannelRemoteFee` is the chain's relay floor whatever the estimate. LDK
/// force-closes a channel whose opener keeps its commitment feerate below the lowest value of
/// this target over the last 144 blocks; on an anchor channel the commitment only has to enter
/// the mempool, and its anchor pays for it to confirm (LDK's own advice for this target). Tying
/// it to the estimate, as LDK Node does, force-closes every channel opened by a peer whose
/// estimator lags ours through a day-long fee spike: LDK Node and LND peers at their usual
/// commitment feerates, for one. `MinAllowedNonAnchorChannelRemoteFee` follows
/// [`ChainParams::min_allowed_remote_feerate`]: without anchors the commitment's own fee is all
/// it will ever pay.
pub fn finalize(
    params: &ChainParams,
    target: ConfirmationTarget,
    estimate: Option<FeeRate>,
) -> FeeRate {
    let fallbacks = &params.fallback_feerates;
    let chosen = match target {
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee => params.relay_feerate_floor(),
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => {
            match params.min_allowed_remote_feerate {
                MinAllowedRemoteFeerate::BelowEstimate => estimate
                    .map(|rate| {
                        FeeRate::from_sat_per_kwu(
                            rate.to_sat_per_kwu()
                                .saturating_sub(MIN_ALLOWED_REMOTE_FEE_SLACK_SAT_PER_KW),
                        )
                    })
                    .unwrap_or(params.relay_feerate_floor()),
                MinAllowedRemoteFeerate::Floor => params.relay_feerate_floor(),
            }
        }
        ConfirmationTarget::MaximumFeeEstimate => estimate.unwrap_or(fallbacks.maximum),
        ConfirmationTarget::UrgentOnChainSweep => estimate.unwrap_or(fallbacks.urgent),
        ConfirmationTarget::NonAnchorChannelFee | ConfirmationTarget::OutputSpendingFee => {
            estimate.unwrap_or(fallbacks.normal)
        }
        ConfirmationTarget::AnchorChannelFee | ConfirmationTarget::ChannelCloseMinimum => {
            estimate.unwrap_or(fallbacks.background)
        }
    };
    chosen.max(floor(params, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcoin_targets_map_to_ldk_node_block_counts() {
        let params = ChainParams::bitcoin_mainnet();
        let blocks = |t| estimate_request(&params, t).blocks;
        assert_eq!(blocks(ConfirmationTarget::MaximumFeeEstimate), 1);
        assert_eq!(blocks(ConfirmationTarget::UrgentOnChainSweep), 6);
        assert_eq!(blocks(ConfirmationTarget::NonAnchorChannelFee), 12);
        assert_eq!(blocks(ConfirmationTarget::ChannelCloseMinimum), 144);
        assert_eq!(blocks(ConfirmationTarget::AnchorChannelFee), 1008);
    }

    #[test]
    fn no_target_is_ever_below_the_floor() {
        let params = ChainParams::bitcoin_regtest();
        for target in ALL_CONFIRMATION_TARGETS {
            for estimate in [
                None,
                Some(FeeRate::ZERO),
                Some(FeeRate::from_sat_per_kwu(100)),
            ] {
                assert!(
                    finalize(&params, target, estimate) >= params.fee_floor(),
                    "{target:?}"
                );
            }
        }
    }

    #[test]
    fn fallback_is_used_without_an_estimate_and_estimate_wins_when_present() {
        let params = ChainParams::bitcoin_regtest();
        let urgent = ConfirmationTarget::UrgentOnChainSweep;
        assert_eq!(
            finalize(&params, urgent, None),
            params.fallback_feerates.urgent
        );
        let estimate = FeeRate::from_sat_per_kwu(12_345);
        assert_eq!(finalize(&params, urgent, Some(estimate)), estimate);
    }

    #[test]
    fn min_allowed_remote_fee_leaves_slack_below_the_estimate() {
        let params = ChainParams::bitcoin_mainnet();
        let target = ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee;
        let rate = finalize(&params, target, Some(FeeRate::from_sat_per_kwu(2_000)));
        assert_eq!(rate, FeeRate::from_sat_per_kwu(1_750));
        assert_eq!(finalize(&params, target, None), params.fee_floor());
    }

    #[test]
    fn an_anchor_channel_peer_may_keep_any_feerate_that_relays() {
        for params in [
            ChainParams::bitcoin_mainnet(),
            ChainParams::bitcoin_regtest(),
        ] {
            let target = ConfirmationTarget::MinAllowedAnchorChannelRemoteFee;
            for estimate in [None, Some(FeeRate::from_sat_per_kwu(50_000))] {
                assert_eq!(
                    finalize(&params, target, estimate),
                    params.relay_feerate_floor()
                );
            }
            assert!(!follows_estimate(&params, target));
            assert!(follows_estimate(
                &params,
                ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee
            ));
            assert!(follows_estimate(
                &params,
                ConfirmationTarget::AnchorChannelFee
            ));
        }
        let qtum = ChainParams::qtum_regtest();
        assert!(!follows_estimate(
            &qtum,
            ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee
        ));
    }

    #[test]
    fn min_allowed_remote_fee_is_exactly_the_floor_when_the_chain_says_so() {
        let mut params = ChainParams::bitcoin_mainnet();
        params.min_allowed_remote_feerate = MinAllowedRemoteFeerate::Floor;
        let high = Some(FeeRate::from_sat_per_kwu(50_000));
        for target in [
            ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee,
            ConfirmationTarget::MinAllowedAnchorChannelRemoteFee,
        ] {
            assert_eq!(
                finalize(&params, target, high),
                params.relay_feerate_floor()
            );
            assert_eq!(
                finalize(&params, target, None),
                params.relay_feerate_floor()
            );
        }
        // The other targets still follow the estimate.
        let normal = ConfirmationTarget::NonAnchorChannelFee;
        assert_eq!(
            finalize(&params, normal, high),
            FeeRate::from_sat_per_kwu(50_000)
        );
    }

    #[test]
    fn qtum_fees_stay_at_or_above_100_000_sat_per_kw_and_remote_minimum_at_it() {
        let params = ChainParams::qtum_regtest();
        let floor = FeeRate::from_sat_per_kwu(100_000);
        for target in ALL_CONFIRMATION_TARGETS {
            for estimate in [None, Some(FeeRate::from_sat_per_kwu(250)), Some(floor)] {
                assert!(finalize(&params, target, estimate) >= floor, "{target:?}");
            }
        }
        let above_floor = Some(FeeRate::from_sat_per_kwu(180_000));
        let remote = ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee;
        assert_eq!(finalize(&params, remote, above_floor), floor);
        assert_eq!(finalize(&params, remote, None), floor);
        // What we pay ourselves covers whole vbytes at any weight (see `ChainParams::fee_floor`).
        let normal = ConfirmationTarget::NonAnchorChannelFee;
        assert_eq!(finalize(&params, normal, Some(floor)), params.fee_floor());
        let urgent = ConfirmationTarget::UrgentOnChainSweep;
        assert_eq!(
            finalize(&params, urgent, above_floor),
            FeeRate::from_sat_per_kwu(180_000)
        );
        assert_eq!(
            finalize(&params, urgent, None),
            params.fallback_feerates.urgent
        );
    }

    #[test]
    fn qtum_targets_span_the_same_wall_clock_windows_in_32_second_blocks() {
        let params = ChainParams::qtum_mainnet();
        let blocks = |t| estimate_request(&params, t).blocks;
        assert_eq!(blocks(ConfirmationTarget::MaximumFeeEstimate), 19);
        assert_eq!(blocks(ConfirmationTarget::UrgentOnChainSweep), 113);
        assert_eq!(blocks(ConfirmationTarget::NonAnchorChannelFee), 225);
        assert_eq!(blocks(ConfirmationTarget::ChannelCloseMinimum), 1008);
    }
}
