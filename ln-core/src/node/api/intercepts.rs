//! HTLC interception for LSPs and gateways: intercept SCIDs to put in a client's route hint, the
//! HTLCs LDK intercepted for them, and their resolution (forward or fail).

use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use lightning::ln::channel_state::ChannelDetails;
use lightning::ln::channelmanager::InterceptId;
use lightning::util::errors::APIError;
use lightning_invoice::{RouteHint, RouteHintHop, RoutingFees};
use tokio::sync::broadcast;

use super::channels::{format_short_channel_id, parse_short_channel_id};
use super::{blocking, parse_hex32, parse_node_id};
use crate::node::events::hex;
use crate::node::intercepts::{InterceptStatus, InterceptedHtlcRecord};
use crate::node::{Error, Node, NodeInner};

/// A fresh intercept SCID and what a route hint through it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterceptScid {
    /// The fake short channel id; HTLCs to it are held for `resolve_intercepted_htlc`.
    pub short_channel_id: u64,
    /// Our node id: the hint's source node.
    pub node_id: PublicKey,
    /// The hint's base fee, msat: our forwarding fee (LDK does not enforce it for intercepted
    /// HTLCs; it is what payers add for us).
    pub fee_base_msat: u32,
    /// The hint's proportional fee, millionths.
    pub fee_proportional_millionths: u32,
    /// The hint's CLTV delta, blocks: our forwarding delta (LDK needs at least 48).
    pub cltv_expiry_delta: u16,
    /// Confirmations a channel this node opens needs before it can carry an HTLC: a client whose
    /// channel is opened just in time must add this many blocks, plus 2, to its invoice's
    /// `min_final_cltv_expiry_delta`.
    pub confirmation_blocks: u32,
}

impl InterceptScid {
    /// The route hint as `invoice`'s `route_hint` parameter takes it:
    /// `node_id:short_channel_id:fee_base_msat:fee_proportional_millionths:cltv_expiry_delta`.
    pub fn route_hint(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.node_id,
            format_short_channel_id(self.short_channel_id),
            self.fee_base_msat,
            self.fee_proportional_millionths,
            self.cltv_expiry_delta
        )
    }
}

/// Reads a one-hop route hint written as [`InterceptScid::route_hint`] writes it.
pub fn parse_route_hint(text: &str) -> Result<RouteHint, Error> {
    let format = "node_id:short_channel_id:fee_base_msat:fee_proportional_millionths:cltv_expiry_delta (as intercept_scid's route_hint)";
    let parts: Vec<&str> = text.trim().split(':').collect();
    let [node_id, scid, fee_base, fee_ppm, cltv] = parts.as_slice() else {
        return Err(Error::InvalidParameter(format!(
            "route_hint {text:?} is not {format}"
        )));
    };
    let number = |what: &str, value: &str| -> Result<u32, Error> {
        value.parse().map_err(|_| {
            Error::InvalidParameter(format!(
                "route_hint: {what} {value:?} is not a whole number; the format is {format}"
            ))
        })
    };
    let short_channel_id = parse_short_channel_id(scid).ok_or_else(|| {
        Error::InvalidParameter(format!(
            "route_hint: {scid:?} is not a short channel id (BLOCKxTXxOUT)"
        ))
    })?;
    let cltv_expiry_delta = u16::try_from(number("cltv_expiry_delta", cltv)?).map_err(|_| {
        Error::InvalidParameter(format!("route_hint: cltv_expiry_delta {cltv} is too large"))
    })?;
    Ok(RouteHint(vec![RouteHintHop {
        src_node_id: parse_node_id(node_id)?,
        short_channel_id,
        fees: RoutingFees {
            base_msat: number("fee_base_msat", fee_base)?,
            proportional_millionths: number("fee_proportional_millionths", fee_ppm)?,
        },
        cltv_expiry_delta,
        htlc_minimum_msat: None,
        htlc_maximum_msat: None,
    }]))
}

/// Where `forward` sends an intercepted HTLC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// This channel (channel id, hex).
    Channel(String),
    /// The usable channel with this peer that can carry the most.
    Peer(PublicKey),
}

/// What to do with an intercepted HTLC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Forward it to `next_hop`, sending `amount_msat` (default: what the onion asks for).
    Forward {
        /// The channel or peer.
        next_hop: NextHop,
        /// What to send on, msat; at most what came in.
        amount_msat: Option<u64>,
    },
    /// Fail it back to the previous hop (with `unknown_next_peer`, as LDK does).
    Fail {
        /// Why, for our record only: the onion error carries no text.
        reason: Option<String>,
    },
    /// Claim it with a preimage: LDK 0.2.7 cannot, so this is always refused.
    Settle {
        /// The preimage, hex.
        preimage: String,
    },
}

impl Node {
    /// A fresh intercept SCID and what a client's route hint through it needs. Every call gives
    /// a new one; HTLCs to any of them are held until [`Node::resolve_intercepted_htlc`], the
    /// node's time limit, or LDK's fail-back near their CLTV expiry.
    pub fn intercept_scid(&self) -> InterceptScid {
        let inner = &self.inner;
        let forwarding = inner.channel_manager.get_current_config().channel_config;
        InterceptScid {
            short_channel_id: inner.channel_manager.get_intercept_scid(),
            node_id: inner.node_id,
            fee_base_msat: forwarding.forwarding_fee_base_msat,
            fee_proportional_millionths: forwarding.forwarding_fee_proportional_millionths,
            cltv_expiry_delta: inner.policy.cltv_expiry_delta,
            confirmation_blocks: inner.policy.minimum_depth,
        }
    }

    /// How long an intercepted HTLC may wait for a decision before it is failed back; none: no
    /// time limit.
    pub fn intercept_timeout(&self) -> Option<std::time::Duration> {
        self.inner.intercepts.timeout
    }

    /// Intercepted HTLCs, oldest first; only those with `status` if given.
    pub fn list_intercepted_htlcs(
        &self,
        status: Option<InterceptStatus>,
    ) -> Result<Vec<InterceptedHtlcRecord>, Error> {
        let mut records = self.inner.records.intercepted_htlcs()?;
        if let Some(status) = status {
            records.retain(|record| record.status == status);
        }
        Ok(records)
    }

    /// Every HTLC intercepted from now on, as soon as it is recorded. A receiver that falls more
    /// than 256 behind gets `RecvError::Lagged` and should read [`Self::list_intercepted_htlcs`].
    pub fn subscribe_intercepted_htlcs(&self) -> broadcast::Receiver<InterceptedHtlcRecord> {
        self.inner.intercepts.arrivals.subscribe()
    }

    /// Forwards or fails the pending intercepted HTLC `intercept_id` (hex); returns its record.
    /// Every refusal changes nothing.
    pub async fn resolve_intercepted_htlc(
        &self,
        intercept_id: &str,
        resolution: Resolution,
    ) -> Result<InterceptedHtlcRecord, Error> {
        let id = hex(&parse_hex32("id", intercept_id)?);
        match &resolution {
            Resolution::Forward {
                amount_msat: Some(0),
                ..
            } => {
                return Err(Error::InvalidParameter(
                    "amount_msat must be positive".to_owned(),
                ))
            }
            Resolution::Settle { preimage } => {
                parse_hex32("preimage", preimage)?;
            }
            _ => {}
        }
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.resolve_intercept(&id, resolution)).await
    }
}

impl NodeInner {
    /// [`Node::resolve_intercepted_htlc`] on the blocking pool, with the pending records locked.
    fn resolve_intercept(
        &self,
        id: &str,
        resolution: Resolution,
    ) -> Result<InterceptedHtlcRecord, Error> {
        use crate::node::intercepts::end_pending;
        let mut pending = self.intercepts.lock();
        let Some(record) = pending.records.get(id).cloned() else {
            return Err(match self.records.intercepted_htlc(id)? {
                Some(resolved) => match resolved.check_pending() {
                    Err(not_pending) => Error::HtlcNotPending(not_pending.to_string()),
                    // Pending in the store but not tracked: its start-up reconciliation failed.
                    Ok(()) => Error::Store(format!(
                        "intercepted HTLC {id} is pending in the store but not tracked; restart xlnd"
                    )),
                },
                None => Error::NotFound(format!("no intercepted HTLC with id {id}")),
            });
        };
        if let Resolution::Settle { .. } = resolution {
            return Err(Error::Unsupported(
                "LDK 0.2.7 cannot claim an intercepted HTLC with a preimage: it can only forward or fail it. \
                 To settle payments yourself (a gateway), issue a hold invoice (invoice <amount_msat> <description> payment_hash=<hash>) \
                 and settle it with settleinvoice <preimage>".to_owned(),
            ));
        }
        if !self.ldk_holds_intercept(id) {
            return Err(Error::HtlcNotPending(format!(
                "LDK does not hold intercepted HTLC {id} now: it was failed back (its record ends as failed within a minute), \
                 or xlnd restarted a moment ago and LDK has not taken it in again yet (it stays pending; try again)"
            )));
        }
        let intercept_id = InterceptId(parse_hex32("id", id)?);
        let resolved = match resolution {
            Resolution::Forward {
                next_hop,
                amount_msat,
            } => {
                let amount_msat = amount_msat.unwrap_or(record.expected_outbound_amount_msat);
                if amount_msat > record.inbound_amount_msat {
                    return Err(Error::InvalidParameter(format!(
                        "amount_msat {amount_msat} is more than the {} msat the HTLC brought in",
                        record.inbound_amount_msat
                    )));
                }
                let channel = self.next_hop_channel(&next_hop, amount_msat)?;
                self.channel_manager
                    .forward_intercepted_htlc(
                        intercept_id,
                        &channel.channel_id,
                        channel.counterparty.node_id,
                        amount_msat,
                    )
                    .map_err(|e| self.ldk_refusal(id, e))?;
                let channel_id = channel.channel_id.to_string();
                tracing::info!(intercept_id = %id, %channel_id, amount_msat, "intercepted HTLC forwarded");
                end_pending(self, &mut pending, id, |record, now| {
                    record.mark_forwarded(channel_id, amount_msat, now)
                })?
            }
            Resolution::Fail { reason } => {
                self.channel_manager
                    .fail_intercepted_htlc(intercept_id)
                    .map_err(|e| self.ldk_refusal(id, e))?;
                let reason = reason.unwrap_or_else(|| "failed by the operator".to_owned());
                tracing::info!(intercept_id = %id, %reason, "intercepted HTLC failed back");
                end_pending(self, &mut pending, id, |record, now| {
                    record.mark_failed(reason, now)
                })?
            }
            Resolution::Settle { .. } => None,
        };
        resolved.ok_or_else(|| Error::NotFound(format!("no intercepted HTLC with id {id}")))
    }

    /// The channel `next_hop` names that can carry an HTLC of `amount_msat` now.
    fn next_hop_channel(
        &self,
        next_hop: &NextHop,
        amount_msat: u64,
    ) -> Result<ChannelDetails, Error> {
        let channels = self.channel_manager.list_channels();
        let (named, what): (Vec<ChannelDetails>, String) = match next_hop {
            NextHop::Channel(channel_id) => {
                let channel_id = hex(&parse_hex32("channel_id", channel_id)?);
                let named = channels
                    .into_iter()
                    .filter(|c| c.channel_id.to_string() == channel_id)
                    .collect();
                (named, format!("channel {channel_id}"))
            }
            NextHop::Peer(peer_id) => {
                let named = channels
                    .into_iter()
                    .filter(|c| c.counterparty.node_id == *peer_id)
                    .collect();
                (named, format!("the channels with peer {peer_id}"))
            }
        };
        if named.is_empty() {
            return Err(Error::NotFound(match next_hop {
                NextHop::Channel(_) => format!("no open {what}"),
                NextHop::Peer(peer_id) => format!("no open channel with peer {peer_id}"),
            }));
        }
        let usable: Vec<&ChannelDetails> = named.iter().filter(|c| c.is_usable).collect();
        if usable.is_empty() {
            return Err(Error::ChannelNotUsable(format!(
                "{what}: {}",
                named
                    .iter()
                    .map(why_not_usable)
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        usable
            .iter()
            .filter(|c| {
                c.next_outbound_htlc_minimum_msat <= amount_msat
                    && amount_msat <= c.next_outbound_htlc_limit_msat
            })
            .max_by_key(|c| c.next_outbound_htlc_limit_msat)
            .map(|c| (*c).clone())
            .ok_or_else(|| {
                Error::ChannelNotUsable(format!(
                    "{what} cannot carry an HTLC of {amount_msat} msat now: {}",
                    usable
                        .iter()
                        .map(|c| format!(
                            "channel {} takes {} to {} msat",
                            c.channel_id,
                            c.next_outbound_htlc_minimum_msat,
                            c.next_outbound_htlc_limit_msat
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
            })
    }

    /// LDK's refusal to forward or fail `id`, as our error. LDK changed nothing; if it no longer
    /// holds the HTLC, the next check marks the record failed.
    fn ldk_refusal(&self, id: &str, error: APIError) -> Error {
        match error {
            APIError::ChannelUnavailable { err } => Error::ChannelNotUsable(err),
            APIError::APIMisuseError { err } if !self.ldk_holds_intercept(id) => {
                Error::HtlcNotPending(format!("intercepted HTLC {id}: {err}"))
            }
            other => Error::PaymentFailed(format!("{other:?}")),
        }
    }
}

/// Why a channel cannot carry an HTLC, in words.
fn why_not_usable(channel: &ChannelDetails) -> String {
    let why = if !channel.is_channel_ready {
        match (channel.confirmations, channel.confirmations_required) {
            (Some(have), Some(need)) if have < need => {
                format!("waiting for confirmations ({have} of {need})")
            }
            _ => "not ready yet".to_owned(),
        }
    } else if channel
        .channel_shutdown_state
        .is_some_and(|s| s != lightning::ln::channel_state::ChannelShutdownState::NotShuttingDown)
    {
        "closing".to_owned()
    } else {
        "the peer is not connected".to_owned()
    };
    format!("channel {} is not usable ({why})", channel.channel_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_hints_round_trip_through_their_text() -> Result<(), Error> {
        let node_id =
            parse_node_id("02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5")?;
        let scid = InterceptScid {
            short_channel_id: (230 << 40) | (5 << 16) | 1,
            node_id,
            fee_base_msat: 1000,
            fee_proportional_millionths: 10,
            cltv_expiry_delta: 72,
            confirmation_blocks: 6,
        };
        let text = scid.route_hint();
        assert_eq!(text, format!("{node_id}:230x5x1:1000:10:72"));
        let RouteHint(hops) = parse_route_hint(&text)?;
        assert_eq!(hops.len(), 1);
        let hop = &hops[0];
        assert_eq!(hop.src_node_id, node_id);
        assert_eq!(hop.short_channel_id, scid.short_channel_id);
        assert_eq!(hop.fees.base_msat, 1000);
        assert_eq!(hop.fees.proportional_millionths, 10);
        assert_eq!(hop.cltv_expiry_delta, 72);
        Ok(())
    }

    #[test]
    fn malformed_route_hints_are_invalid_parameters() {
        let node = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";
        for text in [
            String::new(),
            format!("{node}:1x2x3:1000:0"),
            format!("{node}:1x2:1000:0:72"),
            format!("{node}:1x2x3:-1:0:72"),
            format!("{node}:1x2x3:1000:0:70000"),
            "02zz:1x2x3:1000:0:72".to_owned(),
        ] {
            let error = parse_route_hint(&text);
            assert!(
                matches!(error, Err(Error::InvalidParameter(_))),
                "{text}: {error:?}"
            );
        }
    }
}
