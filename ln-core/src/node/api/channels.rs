//! Channels: open (returns once the funding transaction is broadcast), list, close.

use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use lightning::ln::channel_state::ChannelDetails;
use lightning::sign::EntropySource;
use lightning::util::errors::APIError;

use super::wait_until;
use crate::ldk_adapters::BroadcastOutcome;
use crate::node::{Error, Node, NodeInner, OpenOutcome};

/// How long `open_channel` waits for the peer to sign the funding transaction.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);

/// A channel as `listchannels` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Channel id, hex.
    pub channel_id: String,
    /// Short channel id once confirmed.
    pub short_channel_id: Option<u64>,
    /// The peer.
    pub peer_id: PublicKey,
    /// `pending` (awaiting confirmations), `active`, `inactive` (peer offline) or `closing`.
    pub state: &'static str,
    /// Can send and receive payments now.
    pub is_usable: bool,
    /// Announced to the network.
    pub is_public: bool,
    /// We opened it.
    pub is_outbound: bool,
    /// Total capacity, sat.
    pub capacity_sat: u64,
    /// Our balance, msat (including our reserve, excluding HTLCs in flight).
    pub local_balance_msat: u64,
    /// What we can send now, msat.
    pub outbound_capacity_msat: u64,
    /// What we can receive now, msat.
    pub inbound_capacity_msat: u64,
    /// Funding outpoint.
    pub funding_txid: Option<bitcoin::Txid>,
    /// Funding output index.
    pub funding_output: Option<u32>,
    /// Confirmations of the funding transaction.
    pub confirmations: Option<u32>,
    /// Confirmations needed before use.
    pub confirmations_required: Option<u32>,
    /// HTLCs in flight.
    pub pending_htlcs: usize,
    /// The commitment transactions carry anchor outputs (`option_anchors_zero_fee_htlc_tx` or
    /// zero-fee commitments); false on chains whose dust threshold rules anchors out.
    pub has_anchors: bool,
    /// The feerate of the current commitment transactions, sat per 1000 weight units (none
    /// before the channel is accepted). The opener sets it and updates it as fees move.
    pub commitment_feerate_sat_per_kw: Option<u32>,
    /// The reserve the peer makes us keep, sat (none until the peer accepted the channel).
    pub reserve_sat: Option<u64>,
    /// The reserve we make the peer keep, sat.
    pub counterparty_reserve_sat: u64,
    /// The smallest HTLC we accept on this channel, msat.
    pub inbound_htlc_minimum_msat: Option<u64>,
    /// The smallest HTLC the peer accepts on this channel, msat (none until it told us).
    pub outbound_htlc_minimum_msat: Option<u64>,
    /// What the next HTLC we send on it can carry, and what limits that.
    pub next_outbound_htlc: super::HtlcLimit,
    /// Fee we charge per HTLC forwarded out over it, msat (none before LDK has its config).
    pub fee_base_msat: Option<u32>,
    /// Fee we charge per million msat forwarded out over it.
    pub fee_proportional_millionths: Option<u32>,
    /// CLTV delta we ask for forwarding out over it, blocks.
    pub cltv_expiry_delta: Option<u16>,
}

/// The result of `open_channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedChannel {
    /// The channel id.
    pub channel_id: String,
    /// The funding transaction (broadcast).
    pub funding_txid: bitcoin::Txid,
    /// Its channel output.
    pub funding_output: u32,
}

/// How a channel is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseType {
    /// Cooperatively, with the peer.
    Mutual,
    /// By broadcasting our commitment transaction.
    Unilateral,
}

/// The result of `close_channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedChannel {
    /// Mutual or unilateral.
    pub close_type: CloseType,
    /// The channel closed.
    pub channel_id: String,
    /// The closing transaction, when already known.
    pub txid: Option<bitcoin::Txid>,
}

/// How long `close` waits for our commitment transaction to reach the chain node.
const FORCE_CLOSE_BROADCAST_WAIT: Duration = Duration::from_secs(10);
/// How long `close` waits for the peer to agree on the closing transaction.
const MUTUAL_CLOSE_NEGOTIATION_WAIT: Duration = Duration::from_secs(30);
/// How long a cooperative close waits for the channel to be ready to start one (a monitor
/// update in flight, as right after a payment, makes LDK refuse for a few milliseconds).
const CLOSE_START_WAIT: Duration = Duration::from_secs(10);

impl Node {
    /// Opens a channel of `amount_sat` to a connected peer, pushing `push_msat` to it, announced
    /// to the network if `announce`. Returns once the funding transaction is broadcast.
    pub async fn open_channel(
        &self,
        node_id: PublicKey,
        amount_sat: u64,
        push_msat: u64,
        announce: bool,
    ) -> Result<OpenedChannel, Error> {
        let inner = &self.inner;
        let policy = &inner.policy;
        if amount_sat < policy.min_funding_sat || amount_sat > policy.max_funding_sat {
            return Err(Error::InvalidParameter(format!(
                "amount_sat must be between {} and {} on this chain",
                policy.min_funding_sat, policy.max_funding_sat
            )));
        }
        if push_msat > amount_sat.saturating_mul(1000) {
            return Err(Error::InvalidParameter(
                "push_msat exceeds the channel amount".to_owned(),
            ));
        }
        let reserve_msat = policy.min_reserve_sat * 1000;
        if push_msat > 0 && push_msat < reserve_msat {
            return Err(Error::InvalidParameter(format!(
                "push_msat must be 0 or at least the reserve of {reserve_msat} msat on this chain"
            )));
        }
        if inner.peer_manager.peer_by_node_id(&node_id).is_none() {
            return Err(Error::PeerNotConnected(node_id.to_string()));
        }
        let spendable_sat = inner.wallet.balance().confirmed_sat;
        let reserve_sat = inner.anchor_reserve(inner.new_anchor_channels()).to_sat();
        if spendable_sat < amount_sat.saturating_add(reserve_sat) {
            let kept = if reserve_sat > 0 {
                format!(
                    ", and {reserve_sat} sat stay in the wallet to pay the fee bumps of anchor \
                     channels' force closes (this one counted; see --anchor-reserve-per-channel-sat)"
                )
            } else {
                String::new()
            };
            return Err(Error::InsufficientFunds(format!(
                "the wallet has {spendable_sat} sat confirmed, the channel needs {amount_sat} sat plus fees{kept}"
            )));
        }
        let mut id_bytes = [0u8; 16];
        id_bytes.copy_from_slice(&inner.keys.get_secure_random_bytes()[..16]);
        let user_channel_id = u128::from_be_bytes(id_bytes);
        // The event handler reports this open's outcome only while someone waits for it.
        let _waiting = OpenWaiter::register(inner, user_channel_id);
        inner
            .channel_manager
            .create_channel(
                node_id,
                amount_sat,
                push_msat,
                user_channel_id,
                None,
                Some(policy.outbound_config(amount_sat, announce)),
            )
            .map_err(|e| Error::ChannelOpenFailed(api_error(e)))?;
        tracing::info!(peer = %node_id, amount_sat, push_msat, announce, "opening channel");
        let outcome = wait_until(
            inner,
            &inner.notifications.channels,
            OPEN_TIMEOUT,
            || async {
                inner
                    .notifications
                    .channel_opens
                    .lock()
                    .ok()
                    .and_then(|mut opens| opens.get_mut(&user_channel_id)?.take())
            },
        )
        .await;
        match outcome {
            Some(OpenOutcome::Pending {
                channel_id,
                funding_txo,
            }) => {
                // LDK hands the funding transaction to the broadcaster as it emits the event;
                // return only once the chain node has it.
                match inner
                    .broadcaster
                    .wait_for_broadcast(funding_txo.txid, Duration::from_secs(30))
                    .await
                {
                    Some(BroadcastOutcome::Accepted) => {}
                    Some(BroadcastOutcome::Rejected { reason }) => {
                        return Err(Error::ChannelOpenFailed(format!(
                            "the chain node refused the funding transaction {}: {reason}",
                            funding_txo.txid
                        )))
                    }
                    Some(BroadcastOutcome::NotSent { error }) => {
                        return Err(Error::ChannelOpenFailed(format!(
                            "the funding transaction {} could not be handed to the chain node: {error}",
                            funding_txo.txid
                        )))
                    }
                    None => {
                        return Err(Error::Timeout(format!(
                            "the funding transaction {} was not broadcast within 30 s; see listchannels",
                            funding_txo.txid
                        )))
                    }
                }
                Ok(OpenedChannel {
                    channel_id: channel_id.to_string(),
                    funding_txid: funding_txo.txid,
                    funding_output: funding_txo.vout,
                })
            }
            Some(OpenOutcome::Failed(reason)) => Err(Error::ChannelOpenFailed(reason)),
            None => Err(Error::Timeout(
                "the peer did not sign the funding transaction within 60 s; see listchannels"
                    .to_owned(),
            )),
        }
    }

    /// Every open (or opening, or closing) channel.
    pub fn list_channels(&self) -> Vec<ChannelInfo> {
        self.inner
            .channel_manager
            .list_channels()
            .iter()
            .map(|c| {
                let mut info = channel_info(c);
                info.local_balance_msat = self.local_balance_msat(c);
                info
            })
            .collect()
    }

    /// Our balance in the channel, less outbound HTLCs in flight (and, for the funder, the
    /// commitment fee): LDK's outbound capacity plus our reserve. Below the reserve LDK's
    /// outbound capacity is 0 whatever the balance, so there it is read from the channel
    /// monitor's current commitment (to the satoshi).
    fn local_balance_msat(&self, c: &ChannelDetails) -> u64 {
        let reserve_msat = c.unspendable_punishment_reserve.unwrap_or(0) * 1000;
        if c.outbound_capacity_msat > 0 || reserve_msat == 0 {
            return c.outbound_capacity_msat + reserve_msat;
        }
        let Ok(monitor) = self.inner.chain_monitor.get_monitor(c.channel_id) else {
            return 0;
        };
        let below_reserve_sat = monitor
            .get_claimable_balances()
            .into_iter()
            .find_map(|balance| match balance {
                lightning::chain::channelmonitor::Balance::ClaimableOnChannelClose {
                    balance_candidates,
                    confirmed_balance_candidate_index,
                    ..
                } => balance_candidates
                    .get(confirmed_balance_candidate_index)
                    .map(|candidate| candidate.amount_satoshis),
                _ => None,
            })
            .unwrap_or(0);
        (below_reserve_sat * 1000).min(reserve_msat)
    }

    /// Closes a channel named by channel id, short channel id (`BLOCKxTXxOUT`) or peer id (if it
    /// is the only channel with that peer): cooperatively, or by force. Returns once the closing
    /// (or commitment) transaction is with the chain node, with its id, or after a bounded wait
    /// without it.
    pub async fn close_channel(&self, id: &str, force: bool) -> Result<ClosedChannel, Error> {
        let channel = self.find_channel(id)?;
        let manager = &self.inner.channel_manager;
        let peer = channel.counterparty.node_id;
        if force {
            manager
                .force_close_broadcasting_latest_txn(
                    &channel.channel_id,
                    &peer,
                    "closed by the operator".to_owned(),
                )
                .map_err(|e| Error::ChannelCloseFailed(api_error(e)))?;
            tracing::info!(channel_id = %channel.channel_id, "channel force-closed");
            return Ok(ClosedChannel {
                close_type: CloseType::Unilateral,
                channel_id: channel.channel_id.to_string(),
                txid: self
                    .closing_txid(&channel, FORCE_CLOSE_BROADCAST_WAIT)
                    .await,
            });
        }
        if self.inner.peer_manager.peer_by_node_id(&peer).is_none() {
            return Err(Error::PeerNotConnected(format!(
                "{peer} (a cooperative close needs the peer online; use force to close alone)"
            )));
        }
        // LDK refuses to start a shutdown while a monitor update of the channel is being
        // written, as right after a payment; that lasts milliseconds, so wait it out.
        let deadline = tokio::time::Instant::now() + CLOSE_START_WAIT;
        loop {
            match manager.close_channel(&channel.channel_id, &peer) {
                Ok(()) => break,
                Err(lightning::util::errors::APIError::ChannelUnavailable { .. })
                    if tokio::time::Instant::now() < deadline
                        && self.inner.peer_manager.peer_by_node_id(&peer).is_some() =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(Error::ChannelCloseFailed(api_error(e))),
            }
        }
        tracing::info!(channel_id = %channel.channel_id, "cooperative close started");
        let closing = serde_json::json!({
            "channel_id": channel.channel_id.to_string(),
            "peer_id": peer.to_string(),
            "close_type": "mutual",
        });
        if self
            .inner
            .journal_channel("closing", &channel.channel_id, closing)
            .is_err()
        {
            tracing::warn!(channel_id = %channel.channel_id, "the closing event was not recorded");
        }
        Ok(ClosedChannel {
            close_type: CloseType::Mutual,
            channel_id: channel.channel_id.to_string(),
            txid: self
                .closing_txid(&channel, MUTUAL_CLOSE_NEGOTIATION_WAIT)
                .await,
        })
    }

    /// The transaction spending the channel's funding output once the chain node accepted it
    /// (none if that takes longer than `timeout`: the close goes on, `listfunds` shows the rest).
    async fn closing_txid(
        &self,
        channel: &ChannelDetails,
        timeout: Duration,
    ) -> Option<bitcoin::Txid> {
        let funding = channel.funding_txo?.into_bitcoin_outpoint();
        let txid = self
            .inner
            .broadcaster
            .wait_for_accepted_spend(funding, timeout)
            .await;
        if txid.is_none() {
            tracing::info!(channel_id = %channel.channel_id, "closing transaction not published yet");
        }
        txid
    }

    fn find_channel(&self, id: &str) -> Result<ChannelDetails, Error> {
        let channels = self.inner.channel_manager.list_channels();
        let scid = parse_short_channel_id(id);
        let by_id: Vec<&ChannelDetails> = channels
            .iter()
            .filter(|c| {
                c.channel_id.to_string() == id
                    || (scid.is_some() && c.short_channel_id == scid)
                    || c.counterparty.node_id.to_string() == id
            })
            .collect();
        match by_id.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NotFound(format!("no open channel {id}"))),
            _ => Err(Error::InvalidParameter(format!(
                "{id} has several channels; name one by channel id"
            ))),
        }
    }
}

/// An `open_channel` call waiting for its open's outcome: registered in the notifications'
/// map of opens while it waits, removed however the call ends, so the map holds nothing for
/// opens nobody waits for.
struct OpenWaiter<'a> {
    inner: &'a NodeInner,
    user_channel_id: u128,
}

impl<'a> OpenWaiter<'a> {
    fn register(inner: &'a NodeInner, user_channel_id: u128) -> Self {
        if let Ok(mut opens) = inner.notifications.channel_opens.lock() {
            opens.insert(user_channel_id, None);
        }
        Self {
            inner,
            user_channel_id,
        }
    }
}

impl Drop for OpenWaiter<'_> {
    fn drop(&mut self) {
        if let Ok(mut opens) = self.inner.notifications.channel_opens.lock() {
            opens.remove(&self.user_channel_id);
        }
    }
}

fn channel_info(c: &ChannelDetails) -> ChannelInfo {
    let state = if c
        .channel_shutdown_state
        .is_some_and(|s| s != lightning::ln::channel_state::ChannelShutdownState::NotShuttingDown)
    {
        "closing"
    } else if !c.is_channel_ready {
        "pending"
    } else if c.is_usable {
        "active"
    } else {
        "inactive"
    };
    let reserve_msat = c.unspendable_punishment_reserve.unwrap_or(0) * 1000;
    ChannelInfo {
        channel_id: c.channel_id.to_string(),
        short_channel_id: c.short_channel_id,
        peer_id: c.counterparty.node_id,
        state,
        is_usable: c.is_usable,
        is_public: c.is_announced,
        is_outbound: c.is_outbound,
        capacity_sat: c.channel_value_satoshis,
        local_balance_msat: c.outbound_capacity_msat + reserve_msat,
        outbound_capacity_msat: c.outbound_capacity_msat,
        inbound_capacity_msat: c.inbound_capacity_msat,
        funding_txid: c.funding_txo.map(|o| o.txid),
        funding_output: c.funding_txo.map(|o| u32::from(o.index)),
        confirmations: c.confirmations,
        confirmations_required: c.confirmations_required,
        pending_htlcs: c.pending_inbound_htlcs.len() + c.pending_outbound_htlcs.len(),
        has_anchors: c.channel_type.as_ref().is_some_and(|features| {
            features.supports_anchors_zero_fee_htlc_tx()
                || features.supports_anchor_zero_fee_commitments()
        }),
        commitment_feerate_sat_per_kw: c.feerate_sat_per_1000_weight,
        reserve_sat: c.unspendable_punishment_reserve,
        counterparty_reserve_sat: c.counterparty.unspendable_punishment_reserve,
        inbound_htlc_minimum_msat: c.inbound_htlc_minimum_msat,
        outbound_htlc_minimum_msat: c.counterparty.outbound_htlc_minimum_msat,
        next_outbound_htlc: super::routes::htlc_limit(c),
        fee_base_msat: c.config.map(|config| config.forwarding_fee_base_msat),
        fee_proportional_millionths: c
            .config
            .map(|config| config.forwarding_fee_proportional_millionths),
        cltv_expiry_delta: c.config.map(|config| config.cltv_expiry_delta),
    }
}

/// `BLOCKxTXxOUT` (or a plain number) as a short channel id.
pub(crate) fn parse_short_channel_id(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('x').collect();
    match parts.as_slice() {
        [block, tx, out] => {
            let block: u64 = block.parse().ok()?;
            let tx: u64 = tx.parse().ok()?;
            let out: u64 = out.parse().ok()?;
            (block < (1 << 24) && tx < (1 << 24) && out < (1 << 16))
                .then_some(block << 40 | tx << 16 | out)
        }
        [number]
            if number.len() < 20
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            number.parse().ok()
        }
        _ => None,
    }
}

/// `BLOCKxTXxOUT` form of a short channel id.
pub fn format_short_channel_id(scid: u64) -> String {
    format!(
        "{}x{}x{}",
        scid >> 40,
        (scid >> 16) & 0xff_ffff,
        scid & 0xffff
    )
}

fn api_error(e: APIError) -> String {
    match e {
        APIError::APIMisuseError { err }
        | APIError::FeeRateTooHigh { err, .. }
        | APIError::InvalidRoute { err }
        | APIError::ChannelUnavailable { err } => err,
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_channel_ids_round_trip() {
        let scid = parse_short_channel_id("103x1x0").unwrap_or_default();
        assert_eq!(scid, 103 << 40 | 1 << 16);
        assert_eq!(format_short_channel_id(scid), "103x1x0");
        assert_eq!(
            parse_short_channel_id("113249697726464"),
            Some(113249697726464)
        );
        assert_eq!(parse_short_channel_id("1x2"), None);
        assert_eq!(parse_short_channel_id("abc"), None);
    }
}
