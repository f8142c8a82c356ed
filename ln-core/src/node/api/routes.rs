//! Routes: what one HTLC can carry on each of our channels and why, why a payment cannot go now
//! (in words an operator can act on, with the largest amount that would go), and the route
//! query behind `getroute`.

use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use lightning::ln::channel_state::ChannelDetails;
use lightning::routing::gossip::NodeId;
use lightning::routing::router::{Payee, Route, RouteParameters, Router as _};
use lightning::routing::scoring::ProbabilisticScoringFeeParameters;

use super::channels::format_short_channel_id;
use super::payments::{check_htlc_minimum, invoice_amount, parse_invoice, route_params};
use crate::node::{Error, Node, NodeInner};
use lightning::routing::router::PaymentParameters;

/// How long after the node starts, or after a channel announcement entered our graph, a payment
/// with no route waits for more gossip instead of failing at once.
pub const GOSSIP_SETTLING: Duration = Duration::from_secs(60);

/// What the next HTLC we offer on a channel can carry, and what limits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtlcLimit {
    /// The largest HTLC we can add now, msat (LDK's `next_outbound_htlc_limit_msat`).
    pub limit_msat: u64,
    /// The smallest HTLC the peer accepts now, msat.
    pub minimum_msat: u64,
    /// The peer's cap on the value of HTLCs in flight towards it, msat (none until it told us).
    pub peer_in_flight_cap_msat: Option<u64>,
    /// HTLCs we have in flight on the channel now (each takes one of the peer's HTLC slots).
    pub htlcs_in_flight: usize,
    /// What limits `limit_msat`, in words.
    pub cause: String,
}

/// The limit of the next HTLC on `channel`, with its cause. LDK gives the limit; the cause is
/// the first of: our balance after the reserve the peer makes us keep, the commitment fee we
/// must keep as the channel's funder, the peer's cap on HTLC value in flight, its HTLC slots.
pub(crate) fn htlc_limit(channel: &ChannelDetails) -> HtlcLimit {
    let limit_msat = channel.next_outbound_htlc_limit_msat;
    let in_flight_msat: u64 = channel
        .pending_outbound_htlcs
        .iter()
        .map(|htlc| htlc.amount_msat)
        .sum();
    let htlcs_in_flight = channel.pending_outbound_htlcs.len();
    let cap = channel.counterparty.outbound_htlc_maximum_msat;
    let cap_room = cap.map(|cap| cap.saturating_sub(in_flight_msat));
    let reserve_sat = channel.counterparty.unspendable_punishment_reserve;
    let cause = if !channel.is_usable {
        "the channel is not usable now".to_owned()
    } else if channel.outbound_capacity_msat == 0 {
        format!(
            "our balance is within the {reserve_sat} sat reserve the peer makes us keep: nothing can leave until we receive more"
        )
    } else if limit_msat == 0 && channel.outbound_capacity_msat > 0 && cap_room != Some(0) {
        format!(
            "the peer accepts no more HTLCs now: {htlcs_in_flight} of ours are in flight and use its HTLC slots"
        )
    } else if cap_room
        .is_some_and(|room| room == limit_msat && room < channel.outbound_capacity_msat)
    {
        format!(
            "the peer's cap on HTLC value in flight: {} msat, {in_flight_msat} msat of it in use",
            cap.unwrap_or_default()
        )
    } else if limit_msat < channel.outbound_capacity_msat {
        format!(
            "our balance after the peer's reserve ({} msat) less the commitment fee we keep as the channel's funder",
            channel.outbound_capacity_msat
        )
    } else {
        format!(
            "our balance after the {reserve_sat} sat reserve the peer makes us keep ({} msat in HTLCs in flight)",
            in_flight_msat
        )
    };
    HtlcLimit {
        limit_msat,
        minimum_msat: channel.next_outbound_htlc_minimum_msat,
        peer_in_flight_cap_msat: cap,
        htlcs_in_flight,
        cause,
    }
}

impl NodeInner {
    /// Whether gossip may still be arriving: the node started, or a channel announcement
    /// entered our graph, less than [`GOSSIP_SETTLING`] ago.
    pub(crate) fn gossip_settling(&self) -> bool {
        self.started_at.elapsed() < GOSSIP_SETTLING
            || self
                .gossip_verifier
                .last_announcement_verified_at()
                .is_some_and(|at| at.elapsed() < GOSSIP_SETTLING)
    }

    /// Whether our usable channels could carry `route_params`' amount out of this node now (one
    /// HTLC, or all of them for a payee that takes multi-part payments): if so and no route is
    /// found, what is missing is in the graph, which gossip may still bring.
    pub(crate) fn could_leave_now(&self, route_params: &RouteParameters) -> bool {
        let limits = self
            .channel_manager
            .list_usable_channels()
            .iter()
            .map(|c| c.next_outbound_htlc_limit_msat)
            .collect::<Vec<_>>();
        let amount_msat = route_params.final_value_msat;
        if takes_multi_part(route_params) {
            limits.iter().sum::<u64>() >= amount_msat
        } else {
            limits.iter().any(|limit| *limit >= amount_msat)
        }
    }

    /// Whether HTLCs of our channels are being settled or failed right now: the balance they
    /// free (a payment just received, a payment that just failed) can be sent a moment later.
    pub(crate) fn liquidity_settling(&self) -> bool {
        use lightning::ln::channel_state::{InboundHTLCStateDetails, OutboundHTLCStateDetails};
        self.channel_manager.list_channels().iter().any(|channel| {
            channel.pending_inbound_htlcs.iter().any(|htlc| {
                htlc.state == Some(InboundHTLCStateDetails::AwaitingRemoteRevokeToRemoveFulfill)
            }) || channel.pending_outbound_htlcs.iter().any(|htlc| {
                htlc.state == Some(OutboundHTLCStateDetails::AwaitingRemoteRevokeToRemoveFailure)
            })
        })
    }

    /// Whether our own HTLCs in flight hold capacity a payment of `amount_msat` needs: a usable
    /// channel whose next HTLC cannot carry it (no HTLC slot left, or the value the peer lets us
    /// have in flight used up) while HTLCs of ours are in it. Those end, succeeded or failed,
    /// and give the capacity back; LND queues such payments too, where LDK fails them at once.
    pub(crate) fn own_htlcs_hold_capacity(&self, amount_msat: u64) -> bool {
        self.channel_manager
            .list_usable_channels()
            .iter()
            .any(|channel| {
                !channel.pending_outbound_htlcs.is_empty()
                    && channel.next_outbound_htlc_limit_msat < amount_msat
            })
    }

    /// A route for `route_params` from our usable channels and graph, as LDK would find it now.
    pub(crate) fn find_route(&self, route_params: &RouteParameters) -> Result<Route, &'static str> {
        let usable = self.channel_manager.list_usable_channels();
        let first_hops: Vec<&ChannelDetails> = usable.iter().collect();
        self.router.find_route(
            &self.node_id,
            route_params,
            Some(&first_hops),
            self.channel_manager.compute_inflight_htlcs(),
        )
    }

    /// Why no route for `route_params` (to `payee`) can be found now, naming the limiting fact
    /// and, where some amount would go, the largest one.
    pub(crate) fn explain_no_route(
        &self,
        payee: &PublicKey,
        route_params: &RouteParameters,
    ) -> String {
        let amount_msat = route_params.final_value_msat;
        let channels = self.channel_manager.list_channels();
        if channels.is_empty() {
            return "this node has no channels; open one with fundchannel".to_owned();
        }
        let usable: Vec<&ChannelDetails> = channels.iter().filter(|c| c.is_usable).collect();
        if usable.is_empty() {
            let states: Vec<String> = channels.iter().map(channel_state).collect();
            return format!("no usable channel: {}", states.join("; "));
        }
        let limits: Vec<(&ChannelDetails, HtlcLimit)> =
            usable.iter().map(|c| (*c, htlc_limit(c))).collect();
        let Some((widest, widest_limit)) = limits.iter().max_by_key(|(_, l)| l.limit_msat) else {
            return "no usable channel".to_owned();
        };
        let total_msat: u64 = limits.iter().map(|(_, l)| l.limit_msat).sum();
        let mpp = takes_multi_part(route_params);
        let largest = self.largest_routable_amount(route_params);
        let largest_text = match largest {
            Some(largest) => format!("; the largest amount that would go now is {largest} msat"),
            None => "; no amount would go now".to_owned(),
        };
        let reason = if (!mpp && amount_msat > widest_limit.limit_msat)
            || (mpp && amount_msat > total_msat)
        {
            format!(
                "{amount_msat} msat is more than {} can carry now: the most one HTLC can carry is {} msat, on channel {} to {} ({})",
                if mpp { "all our channels together" } else { "one HTLC" },
                widest_limit.limit_msat,
                widest.channel_id,
                widest.counterparty.node_id,
                widest_limit.cause
            )
        } else if limits.iter().all(|(_, l)| amount_msat < l.minimum_msat) {
            let smallest = limits
                .iter()
                .map(|(_, l)| l.minimum_msat)
                .min()
                .unwrap_or_default();
            format!(
                "{amount_msat} msat is below the smallest HTLC our peers accept ({smallest} msat)"
            )
        } else if !self.knows_payee(payee, route_params) {
            format!(
                "the payee {payee} is not in our network graph and the invoice has no route hints (gossip may still be arriving, or the payee has only private channels)"
            )
        } else {
            format!(
                "our network graph has no path to {payee} with enough capacity for {amount_msat} msat (in flight over our channels at most {} msat now)",
                if mpp { total_msat } else { widest_limit.limit_msat }
            )
        };
        format!("{reason}{largest_text}")
    }

    /// Whether `payee` is a peer we have a channel with, a node of our graph, or reachable
    /// through the invoice's route hints.
    fn knows_payee(&self, payee: &PublicKey, route_params: &RouteParameters) -> bool {
        let is_peer = self
            .channel_manager
            .list_channels()
            .iter()
            .any(|c| c.counterparty.node_id == *payee);
        let in_graph = self
            .graph
            .read_only()
            .node(&NodeId::from_pubkey(payee))
            .is_some();
        let has_hints = match &route_params.payment_params.payee {
            Payee::Clear { route_hints, .. } => !route_hints.is_empty(),
            Payee::Blinded { .. } => true,
        };
        is_peer || in_graph || has_hints
    }

    /// The largest amount below `route_params`' own for which a route exists now (binary search
    /// with the router), or `None` when not even the smallest HTLC would go.
    fn largest_routable_amount(&self, route_params: &RouteParameters) -> Option<u64> {
        let routable = |amount_msat: u64| {
            let mut params = route_params.clone();
            params.final_value_msat = amount_msat;
            self.find_route(&params).is_ok()
        };
        let mut low = self.policy.htlc_minimum_msat.max(1);
        if !routable(low) {
            return None;
        }
        let mut high = route_params.final_value_msat;
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if routable(middle) {
                low = middle;
            } else {
                high = middle;
            }
        }
        Some(low)
    }
}

/// Whether the payee takes multi-part payments (the invoice says so).
fn takes_multi_part(route_params: &RouteParameters) -> bool {
    match &route_params.payment_params.payee {
        Payee::Clear { features, .. } => features.as_ref().is_some_and(|f| f.supports_basic_mpp()),
        Payee::Blinded { features, .. } => {
            features.as_ref().is_some_and(|f| f.supports_basic_mpp())
        }
    }
}

/// One not-usable channel's state, for "no usable channel".
fn channel_state(channel: &ChannelDetails) -> String {
    let id = &channel.channel_id;
    let peer = channel.counterparty.node_id;
    if !channel.is_channel_ready {
        match (channel.confirmations, channel.confirmations_required) {
            (Some(have), Some(need)) if have < need => format!(
                "channel {id} to {peer} waits for {} more confirmations ({have} of {need})",
                need - have
            ),
            _ => format!(
                "channel {id} to {peer} is not ready yet (waiting for the peer's channel_ready)"
            ),
        }
    } else if channel
        .channel_shutdown_state
        .is_some_and(|s| s != lightning::ln::channel_state::ChannelShutdownState::NotShuttingDown)
    {
        format!("channel {id} to {peer} is closing")
    } else {
        format!("channel {id} to {peer} is inactive: the peer is not connected")
    }
}

/// One hop of a route, as `getroute` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteHopInfo {
    /// The node this hop reaches.
    pub node_id: PublicKey,
    /// The channel it goes over.
    pub short_channel_id: String,
    /// What it carries over that channel, msat (the payment plus the fees of later hops).
    pub amount_msat: u64,
    /// Fee this hop's node charges for forwarding to the next, msat (0 for the last hop).
    pub fee_msat: u64,
    /// CLTV delta the hop's node asks for, blocks (the payee's final delta for the last hop).
    pub cltv_expiry_delta: u32,
    /// The scorer's estimate that the channel can carry `amount_msat` (1 for our own channel).
    pub success_probability: f64,
}

/// A route `getroute` found.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteInfo {
    /// The hops, from our peer to the payee.
    pub hops: Vec<RouteHopInfo>,
    /// Amount the payee receives, msat.
    pub amount_msat: u64,
    /// Total routing fees, msat.
    pub total_fee_msat: u64,
    /// Total CLTV of the route, blocks (what the payment's first HTLC adds to the chain height).
    pub total_cltv_expiry_delta: u32,
    /// Product of the hops' success probabilities.
    pub success_probability: f64,
}

impl Node {
    /// The route a keysend of `amount_msat` to `destination` would take now, or why there is
    /// none (the same reasons a payment would fail with).
    pub fn route_to_node(
        &self,
        destination: PublicKey,
        amount_msat: u64,
    ) -> Result<RouteInfo, Error> {
        let inner = &self.inner;
        if destination == inner.node_id {
            return Err(Error::InvalidParameter("that is this node".to_owned()));
        }
        if amount_msat == 0 {
            return Err(Error::InvalidParameter(
                "amount_msat must be positive".to_owned(),
            ));
        }
        check_htlc_minimum(inner, amount_msat)?;
        let final_cltv = u32::from(inner.policy.min_final_cltv_expiry_delta);
        let params = route_params(
            PaymentParameters::for_keysend(destination, final_cltv, false),
            amount_msat,
            None,
        );
        self.route(destination, params)
    }

    /// The route paying `bolt11` would take now (`amount_msat` only for an any-amount
    /// invoice), or why there is none.
    pub fn route_for_invoice(
        &self,
        bolt11: &str,
        amount_msat: Option<u64>,
    ) -> Result<RouteInfo, Error> {
        let inner = &self.inner;
        let invoice = parse_invoice(inner, bolt11)?;
        let amount = invoice_amount(inner, &invoice, amount_msat)?;
        let params = route_params(crate::invoice::payment_params(&invoice), amount, None);
        self.route(invoice.payee, params)
    }

    /// The route a payment of `route_params` to `payee` would take now, or why there is none.
    fn route(&self, payee: PublicKey, route_params: RouteParameters) -> Result<RouteInfo, Error> {
        let inner = &self.inner;
        let route = inner.find_route(&route_params).map_err(|_| {
            inner.log_no_route_diagnosis(&payee, &route_params);
            Error::RouteNotFound(inner.explain_no_route(&payee, &route_params))
        })?;
        let path = route
            .paths
            .first()
            .ok_or_else(|| Error::RouteNotFound("the router found an empty route".to_owned()))?;
        let scorer = inner
            .scorer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fee_params = ProbabilisticScoringFeeParameters::default();
        let mut hops = Vec::with_capacity(path.hops.len());
        let mut success_probability = 1.0;
        for (index, hop) in path.hops.iter().enumerate() {
            let amount_msat: u64 = path.hops[index..].iter().map(|h| h.fee_msat).sum();
            let next_fee = path.hops.get(index + 1).map(|_| hop.fee_msat);
            let probability = if index == 0 {
                1.0
            } else {
                scorer
                    .historical_estimated_payment_success_probability(
                        hop.short_channel_id,
                        &NodeId::from_pubkey(&hop.pubkey),
                        amount_msat,
                        &fee_params,
                        true,
                    )
                    .unwrap_or(0.0)
            };
            success_probability *= probability;
            hops.push(RouteHopInfo {
                node_id: hop.pubkey,
                short_channel_id: format_short_channel_id(hop.short_channel_id),
                amount_msat,
                fee_msat: next_fee.unwrap_or(0),
                cltv_expiry_delta: hop.cltv_expiry_delta,
                success_probability: probability,
            });
        }
        Ok(RouteInfo {
            amount_msat: path.final_value_msat(),
            total_fee_msat: path.fee_msat(),
            total_cltv_expiry_delta: path.hops.iter().map(|h| h.cltv_expiry_delta).sum(),
            success_probability,
            hops,
        })
    }
}

/// How many of the router's own trace lines a "no route" diagnosis keeps: its first hops, the
/// graph's size and why it set candidate hops aside come first.
const ROUTER_TRACE_LINES: usize = 24;

/// How many of the payee's graph channels a "no route" diagnosis describes.
const PAYEE_CHANNELS_SHOWN: usize = 8;

/// An LDK logger that keeps the first [`ROUTER_TRACE_LINES`] lines it is given, at every level.
#[derive(Default)]
struct CapturedTrace(std::sync::Mutex<Vec<String>>);

impl lightning::util::logger::Logger for CapturedTrace {
    fn log(&self, record: lightning::util::logger::Record) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() < ROUTER_TRACE_LINES {
            lines.push(format!("router: {}", record.args));
        }
    }
}

impl NodeInner {
    /// Logs at `warn` what the router saw when it found no route for `route_params` to `payee`:
    /// our first hops, the payee's channels in our graph with their policies and the scorer's
    /// liquidity estimates, and LDK's own trace of the search (which candidate hops it set aside
    /// and why). A "no route" whose cause the operator cannot see otherwise is then in the log.
    pub(crate) fn log_no_route_diagnosis(&self, payee: &PublicKey, route_params: &RouteParameters) {
        let mut lines = self.graph_around(payee);
        lines.extend(self.router_trace(route_params));
        tracing::warn!(
            %payee,
            amount_msat = route_params.final_value_msat,
            "no route found; the router saw:\n  {}",
            lines.join("\n  ")
        );
    }

    /// Our usable first hops and the payee's channels as our graph and scorer know them.
    fn graph_around(&self, payee: &PublicKey) -> Vec<String> {
        let graph = self.graph.read_only();
        let mut lines = vec![format!(
            "graph: {} nodes, {} channels",
            graph.nodes().len(),
            graph.channels().len()
        )];
        let node_line = |id: &PublicKey, role: &str| match graph.node(&NodeId::from_pubkey(id)) {
            None => format!("{role} {id}: not in our graph"),
            Some(node) => {
                let announced = node.announcement_info.as_ref().map(|info| info.features());
                format!(
                    "{role} {id}: {} channels in our graph, {}",
                    node.channels.len(),
                    match announced {
                        None => "no node_announcement".to_owned(),
                        Some(features) if features.requires_unknown_bits() => {
                            format!("its node_announcement requires features we do not know ({features})")
                        }
                        Some(_) => "node_announcement known".to_owned(),
                    }
                )
            }
        };
        for hop in self.channel_manager.list_usable_channels() {
            let limit = htlc_limit(&hop);
            lines.push(format!(
                "first hop {} to {}: {}..{} msat ({})",
                hop.short_channel_id
                    .map(format_short_channel_id)
                    .unwrap_or_default(),
                hop.counterparty.node_id,
                limit.minimum_msat,
                limit.limit_msat,
                limit.cause
            ));
            lines.push(node_line(&hop.counterparty.node_id, "  peer"));
        }
        lines.push(node_line(payee, "payee"));
        let payee_id = NodeId::from_pubkey(payee);
        let Some(node) = graph.node(&payee_id) else {
            return lines;
        };
        let scorer = self.scorer.read().unwrap_or_else(|p| p.into_inner());
        let now = crate::node::records::unix_now();
        for scid in node.channels.iter().take(PAYEE_CHANNELS_SHOWN) {
            let Some(channel) = graph.channel(*scid) else {
                lines.push(format!(
                    "  channel {}: listed but not in the graph",
                    format_short_channel_id(*scid)
                ));
                continue;
            };
            let (towards_payee, source) = if channel.node_two == payee_id {
                (&channel.one_to_two, channel.node_one)
            } else {
                (&channel.two_to_one, channel.node_two)
            };
            let capacity = channel
                .capacity_sats
                .map_or("unknown capacity".to_owned(), |sat| format!("{sat} sat"));
            let policy = match towards_payee {
                None => format!("no channel_update from {source} yet"),
                Some(update) => format!(
                    "from {source} {}, fee {} msat + {} ppm, cltv_expiry_delta {}, htlc {}..{} msat, updated {} s ago",
                    if update.enabled { "enabled" } else { "disabled" },
                    update.fees.base_msat,
                    update.fees.proportional_millionths,
                    update.cltv_expiry_delta,
                    update.htlc_minimum_msat,
                    update.htlc_maximum_msat,
                    now.saturating_sub(u64::from(update.last_update)),
                ),
            };
            // LDK routes only over channels whose two ends have both sent a channel_update.
            let away = if channel.node_two == payee_id {
                &channel.two_to_one
            } else {
                &channel.one_to_two
            };
            let payee_side = if away.is_some() {
                "the payee's channel_update known"
            } else {
                "no channel_update from the payee yet: LDK does not route over a channel until both ends' are known"
            };
            let scored = scorer
                .estimated_channel_liquidity_range(*scid, &payee_id)
                .map_or("no liquidity estimate".to_owned(), |(low, high)| {
                    format!("liquidity estimate {low}..{high} msat")
                });
            lines.push(format!(
                "  channel {} ({capacity}): {policy}; {payee_side}; {scored}{}",
                format_short_channel_id(*scid),
                if channel.features.requires_unknown_bits() {
                    "; its announcement requires features we do not know"
                } else {
                    ""
                }
            ));
        }
        lines
    }

    /// LDK's trace of one route search for `route_params` over our graph, first hops, scorer and
    /// HTLCs in flight, as the payment's own search ran it.
    fn router_trace(&self, route_params: &RouteParameters) -> Vec<String> {
        use lightning::routing::router::{find_route, ScorerAccountingForInFlightHtlcs};
        use lightning::sign::EntropySource;
        let trace = CapturedTrace::default();
        let usable = self.channel_manager.list_usable_channels();
        let first_hops: Vec<&ChannelDetails> = usable.iter().collect();
        let in_flight = self.channel_manager.compute_inflight_htlcs();
        let scorer = self.scorer.read().unwrap_or_else(|p| p.into_inner());
        let result = find_route(
            &self.node_id,
            route_params,
            &self.graph,
            Some(&first_hops),
            &trace,
            &ScorerAccountingForInFlightHtlcs::new(&*scorer, &in_flight),
            &ProbabilisticScoringFeeParameters::default(),
            &self.keys.get_secure_random_bytes(),
        );
        let mut lines = trace.0.into_inner().unwrap_or_else(|p| p.into_inner());
        lines.push(match result {
            Ok(route) => format!(
                "router: this search found a route ({} paths): what was missing is back",
                route.paths.len()
            ),
            Err(error) => format!("router: {error}"),
        });
        lines
    }
}
