//! Forwarding: what this node charges to forward payments over each channel (`setchannel`, as
//! Core Lightning names it; LND's `updatechanpolicy`), and what it forwarded and earned
//! (`listforwards`).
//!
//! The fee and CLTV delta of a channel live in LDK's `ChannelConfig`, which the `ChannelManager`
//! persists; changing them makes LDK sign a new `channel_update` and broadcast it (or send it to
//! the peer alone, for an unannounced channel). The HTLC minimum and maximum LDK announces are
//! not settings: the minimum is the one the peer asked for when the channel opened, the maximum
//! LDK derives from the capacity and the peer's limit on HTLCs in flight.

use bitcoin::secp256k1::PublicKey;
use lightning::ln::channel_state::{ChannelDetails, ChannelShutdownState};
use lightning::ln::types::ChannelId;
use lightning::routing::gossip::NodeId;
use lightning::util::config::ChannelConfigUpdate;
use std::sync::Arc;

use super::channels::parse_short_channel_id;
use crate::node::records::{ForwardRecord, ForwardStatus};
use crate::node::{ChannelPolicy, Error, Node};

/// A change of the forwarding policy of channels: each field given changes, the others stay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardingPolicyUpdate {
    /// Fee charged for each HTLC forwarded, msat.
    pub fee_base_msat: Option<u32>,
    /// Fee charged per million msat forwarded (ppm).
    pub fee_proportional_millionths: Option<u32>,
    /// Blocks between the expiry of an HTLC we receive and the one we forward.
    pub cltv_expiry_delta: Option<u16>,
    /// Refused: LDK fixes the smallest HTLC when the channel opens.
    pub htlc_minimum_msat: Option<u64>,
    /// Refused: LDK derives the largest HTLC from the channel; it is not a setting.
    pub htlc_maximum_msat: Option<u64>,
}

impl ForwardingPolicyUpdate {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// LDK's update for these changes, or why they cannot be made under `policy`. Nothing has
    /// been changed when this fails.
    pub fn to_ldk(&self, policy: &ChannelPolicy) -> Result<ChannelConfigUpdate, Error> {
        if let Some(minimum_msat) = self.htlc_minimum_msat {
            return Err(Error::InvalidParameter(format!(
                "htlc_minimum_msat ({minimum_msat}) cannot be changed on an open channel: LDK fixes the smallest HTLC of a channel when it opens (this node asks {} msat on this chain; listchannels shows each channel's); nothing was changed",
                policy.htlc_minimum_msat
            )));
        }
        if let Some(maximum_msat) = self.htlc_maximum_msat {
            return Err(Error::InvalidParameter(format!(
                "htlc_maximum_msat ({maximum_msat}) cannot be set: LDK announces the smaller of 90 % of the capacity and the peer's limit on HTLCs in flight, and has no setting for it; nothing was changed"
            )));
        }
        if let Some(delta) = self.cltv_expiry_delta {
            let (min, max) = (
                policy.min_cltv_expiry_delta(),
                policy.max_cltv_expiry_delta(),
            );
            if delta < min || delta > max {
                return Err(Error::InvalidParameter(format!(
                    "cltv_expiry_delta {delta} is outside {min}..={max} blocks on this chain (below {min} LDK or this chain's timing gives too little time to claim an HTLC on chain; above {max} payers cannot route through this node); nothing was changed"
                )));
            }
        }
        Ok(ChannelConfigUpdate {
            forwarding_fee_base_msat: self.fee_base_msat,
            forwarding_fee_proportional_millionths: self.fee_proportional_millionths,
            cltv_expiry_delta: self.cltv_expiry_delta,
            ..ChannelConfigUpdate::default()
        })
    }
}

/// The forwarding policy of one of our channels: what we charge to forward a payment out over
/// it, as our `channel_update` for it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelForwardingPolicy {
    /// Channel id, hex.
    pub channel_id: String,
    /// Short channel id once confirmed.
    pub short_channel_id: Option<u64>,
    /// The peer.
    pub peer_id: PublicKey,
    /// Fee per HTLC forwarded, msat.
    pub fee_base_msat: u32,
    /// Fee per million msat forwarded.
    pub fee_proportional_millionths: u32,
    /// CLTV delta, blocks.
    pub cltv_expiry_delta: u16,
    /// The smallest HTLC the peer accepts, msat (fixed when the channel opened; none until the
    /// peer told us).
    pub htlc_minimum_msat: Option<u64>,
    /// The largest HTLC our last `channel_update` for it announced, msat (none for a channel
    /// not in our gossip graph: unannounced, or not announced yet).
    pub htlc_maximum_msat: Option<u64>,
}

/// Which forwards `listforwards` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardFilter {
    /// Only forwards that ended so.
    pub status: Option<ForwardStatus>,
    /// Only forwards resolved at or after this Unix time, seconds.
    pub since: Option<u64>,
    /// Only forwards resolved before this Unix time, seconds.
    pub until: Option<u64>,
}

impl ForwardFilter {
    /// Whether `record` passes.
    pub fn matches(&self, record: &ForwardRecord) -> bool {
        self.status.is_none_or(|status| record.status == status)
            && self.since.is_none_or(|since| record.resolved_at >= since)
            && self.until.is_none_or(|until| record.resolved_at < until)
    }
}

/// The forwards a filter selected, with their totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardHistory {
    /// The forwards, oldest first.
    pub forwards: Vec<ForwardRecord>,
    /// Fees earned by them, msat.
    pub total_fee_msat: u64,
    /// What they forwarded out, msat (settled forwards only: a failed one forwarded nothing).
    pub total_out_msat: u64,
}

impl ForwardHistory {
    /// The records of `all` that `filter` selects, and their totals.
    pub fn select(all: Vec<ForwardRecord>, filter: &ForwardFilter) -> Self {
        let forwards: Vec<ForwardRecord> = all.into_iter().filter(|r| filter.matches(r)).collect();
        let settled = || {
            forwards
                .iter()
                .filter(|r| r.status == ForwardStatus::Settled)
        };
        Self {
            total_fee_msat: settled().filter_map(|r| r.fee_msat).sum(),
            total_out_msat: settled().filter_map(|r| r.out_amount_msat).sum(),
            forwards,
        }
    }
}

impl Node {
    /// Changes the forwarding policy of the channels `id` names: a channel id, a short channel
    /// id (`BLOCKxTXxOUT`), a peer id (all channels with that peer) or `all` (every channel not
    /// closing). Everything is checked before anything changes. Returns each channel's policy
    /// after the change; LDK persists it and announces it with a new `channel_update`.
    pub fn set_forwarding_policy(
        &self,
        id: &str,
        update: &ForwardingPolicyUpdate,
    ) -> Result<Vec<ChannelForwardingPolicy>, Error> {
        let inner = &self.inner;
        let ldk_update = update.to_ldk(&inner.policy)?;
        let channels = self.channels_named(id)?;
        if !update.is_empty() {
            let mut by_peer: Vec<(PublicKey, Vec<ChannelId>)> = Vec::new();
            for channel in &channels {
                let peer = channel.counterparty.node_id;
                match by_peer.iter_mut().find(|(p, _)| *p == peer) {
                    Some((_, ids)) => ids.push(channel.channel_id),
                    None => by_peer.push((peer, vec![channel.channel_id])),
                }
            }
            for (peer, channel_ids) in &by_peer {
                inner
                    .channel_manager
                    .update_partial_channel_config(peer, channel_ids, &ldk_update)
                    .map_err(|e| {
                        Error::NotFound(format!(
                            "the policy of the channels with {peer} was not changed: {e:?}"
                        ))
                    })?;
            }
        }
        // The operator's change survives a crash from the moment the call returns: LDK keeps
        // channel configs in the ChannelManager, which the background processor would write
        // only at its next pass.
        let monitor_writer = Arc::clone(&inner.monitor_writer);
        crate::store::outside_the_runtime(move || monitor_writer.persist_manager())
            .map_err(|e| Error::Store(format!("the new policy was not saved: {e}")))?;
        let changed: Vec<ChannelId> = channels.iter().map(|c| c.channel_id).collect();
        let policies: Vec<ChannelForwardingPolicy> = inner
            .channel_manager
            .list_channels()
            .iter()
            .filter(|c| changed.contains(&c.channel_id))
            .filter_map(|c| self.forwarding_policy(c))
            .collect();
        for policy in &policies {
            tracing::info!(
                channel_id = %policy.channel_id,
                peer = %policy.peer_id,
                fee_base_msat = policy.fee_base_msat,
                fee_proportional_millionths = policy.fee_proportional_millionths,
                cltv_expiry_delta = policy.cltv_expiry_delta,
                "forwarding policy set"
            );
        }
        Ok(policies)
    }

    /// Forwards the filter selects, oldest first, with their totals.
    pub fn forward_history(&self, filter: &ForwardFilter) -> Result<ForwardHistory, Error> {
        if let (Some(since), Some(until)) = (filter.since, filter.until) {
            if since >= until {
                return Err(Error::InvalidParameter(format!(
                    "since ({since}) must be before until ({until})"
                )));
            }
        }
        Ok(ForwardHistory::select(
            self.inner.records.forwards()?,
            filter,
        ))
    }

    /// The channels `id` names, all open or opening: `all`, a channel id, a short channel id or a
    /// peer id.
    fn channels_named(&self, id: &str) -> Result<Vec<ChannelDetails>, Error> {
        let not_closing = |c: &ChannelDetails| {
            c.channel_shutdown_state
                .is_none_or(|s| s == ChannelShutdownState::NotShuttingDown)
        };
        let channels = self.inner.channel_manager.list_channels();
        if id == "all" {
            return Ok(channels.into_iter().filter(not_closing).collect());
        }
        let scid = parse_short_channel_id(id);
        let named: Vec<ChannelDetails> = channels
            .into_iter()
            .filter(|c| {
                c.channel_id.to_string() == id
                    || (scid.is_some() && c.short_channel_id == scid)
                    || c.counterparty.node_id.to_string() == id
            })
            .collect();
        if named.is_empty() {
            return Err(Error::NotFound(format!(
                "no channel {id} (give a channel id, a short channel id BLOCKxTXxOUT, a peer id or \"all\")"
            )));
        }
        if let Some(closing) = named.iter().find(|c| !not_closing(c)) {
            return Err(Error::InvalidParameter(format!(
                "channel {} is closing; its policy cannot change",
                closing.channel_id
            )));
        }
        Ok(named)
    }

    /// `channel`'s forwarding policy, with the HTLC maximum from our graph; none before LDK has
    /// a configuration for it (never, for a channel it lists).
    fn forwarding_policy(&self, channel: &ChannelDetails) -> Option<ChannelForwardingPolicy> {
        let config = channel.config?;
        let htlc_maximum_msat = channel.short_channel_id.and_then(|scid| {
            let graph = self.inner.graph.read_only();
            let info = graph.channel(scid)?;
            let ours = NodeId::from_pubkey(&self.inner.node_id);
            let direction = if info.node_one == ours {
                info.one_to_two.as_ref()
            } else {
                info.two_to_one.as_ref()
            };
            direction.map(|d| d.htlc_maximum_msat)
        });
        Some(ChannelForwardingPolicy {
            channel_id: channel.channel_id.to_string(),
            short_channel_id: channel.short_channel_id,
            peer_id: channel.counterparty.node_id,
            fee_base_msat: config.forwarding_fee_base_msat,
            fee_proportional_millionths: config.forwarding_fee_proportional_millionths,
            cltv_expiry_delta: config.cltv_expiry_delta,
            htlc_minimum_msat: channel.counterparty.outbound_htlc_minimum_msat,
            htlc_maximum_msat,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainParams;

    fn bitcoin() -> ChannelPolicy {
        ChannelPolicy::for_chain(&ChainParams::bitcoin_regtest())
    }

    fn qtum() -> ChannelPolicy {
        ChannelPolicy::for_chain(&ChainParams::qtum_regtest())
    }

    #[test]
    fn fee_and_cltv_changes_become_ldks_update_and_nothing_else_changes() {
        let update = ForwardingPolicyUpdate {
            fee_base_msat: Some(1_000),
            fee_proportional_millionths: Some(250),
            cltv_expiry_delta: Some(80),
            ..Default::default()
        };
        let ldk = update.to_ldk(&bitcoin());
        let ldk = ldk.map(|u| {
            (
                u.forwarding_fee_base_msat,
                u.forwarding_fee_proportional_millionths,
                u.cltv_expiry_delta,
                u.max_dust_htlc_exposure_msat.is_none()
                    && u.force_close_avoidance_max_fee_satoshis.is_none()
                    && u.accept_underpaying_htlcs.is_none(),
            )
        });
        assert_eq!(ldk, Ok((Some(1_000), Some(250), Some(80), true)));
        let only_fee = ForwardingPolicyUpdate {
            fee_base_msat: Some(0),
            ..Default::default()
        };
        assert_eq!(
            only_fee.to_ldk(&bitcoin()).map(|u| u.cltv_expiry_delta),
            Ok(None)
        );
        assert!(ForwardingPolicyUpdate::default().is_empty());
        assert!(!only_fee.is_empty());
    }

    #[test]
    fn htlc_minimum_and_maximum_are_refused_saying_ldk_fixes_them() {
        for update in [
            ForwardingPolicyUpdate {
                fee_base_msat: Some(1),
                htlc_minimum_msat: Some(1_000),
                ..Default::default()
            },
            ForwardingPolicyUpdate {
                htlc_maximum_msat: Some(1_000_000),
                ..Default::default()
            },
        ] {
            let error = update.to_ldk(&bitcoin()).map(|_| ());
            let message = match error {
                Err(Error::InvalidParameter(message)) => message,
                other => panic!("{other:?}"),
            };
            assert!(message.contains("LDK"), "{message}");
            assert!(message.contains("nothing was changed"), "{message}");
        }
    }

    #[test]
    fn cltv_expiry_delta_must_be_within_the_chains_range() {
        let delta = |policy: &ChannelPolicy, blocks: u16| {
            ForwardingPolicyUpdate {
                cltv_expiry_delta: Some(blocks),
                ..Default::default()
            }
            .to_ldk(policy)
            .is_ok()
        };
        // Bitcoin: LDK's own minimum of 48 blocks.
        assert!(!delta(&bitcoin(), 47));
        assert!(delta(&bitcoin(), 48));
        assert!(delta(&bitcoin(), 960));
        assert!(!delta(&bitcoin(), 961));
        // Qtum's 32-second blocks: 48 blocks are 26 minutes; 97 is the least.
        assert!(!delta(&qtum(), 48));
        assert!(!delta(&qtum(), 96));
        assert!(delta(&qtum(), 97));
        assert!(delta(&qtum(), qtum().cltv_expiry_delta));
    }

    fn forward(status: ForwardStatus, resolved_at: u64, fee_msat: Option<u64>) -> ForwardRecord {
        ForwardRecord {
            in_channel_id: Some("aa".to_owned()),
            out_channel_id: Some("bb".to_owned()),
            in_amount_msat: fee_msat.map(|fee| 1_000_000 + fee),
            out_amount_msat: fee_msat.map(|_| 1_000_000),
            fee_msat,
            claimed_on_chain: false,
            resolved_at,
            status,
            failure_reason: None,
        }
    }

    #[test]
    fn forward_history_filters_by_status_and_time_and_totals_settled_fees() {
        let all = vec![
            forward(ForwardStatus::Settled, 100, Some(10)),
            forward(ForwardStatus::Failed, 150, None),
            forward(ForwardStatus::Settled, 200, Some(20)),
            forward(ForwardStatus::Settled, 300, Some(40)),
        ];
        let everything = ForwardHistory::select(all.clone(), &ForwardFilter::default());
        assert_eq!(everything.forwards.len(), 4);
        assert_eq!(everything.total_fee_msat, 70);
        assert_eq!(everything.total_out_msat, 3_000_000);
        let window = ForwardHistory::select(
            all.clone(),
            &ForwardFilter {
                since: Some(150),
                until: Some(300),
                ..Default::default()
            },
        );
        let times: Vec<u64> = window.forwards.iter().map(|f| f.resolved_at).collect();
        assert_eq!(times, [150, 200], "since is inclusive, until exclusive");
        assert_eq!(window.total_fee_msat, 20);
        let failed = ForwardHistory::select(
            all,
            &ForwardFilter {
                status: Some(ForwardStatus::Failed),
                ..Default::default()
            },
        );
        assert_eq!(failed.forwards.len(), 1);
        assert_eq!((failed.total_fee_msat, failed.total_out_msat), (0, 0));
    }
}
