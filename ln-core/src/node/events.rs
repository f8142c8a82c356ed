//! The LDK event handler: acts on every event a node must act on and keeps the payment and
//! invoice records current.
//!
//! LDK persists unhandled events with the channel manager and replays them after a restart until
//! the handler returns `Ok`. So every branch here is idempotent (records are overwritten with the
//! same values, `claim_funds` of an already-claimed payment is a no-op), and a failure to record
//! returns [`ReplayEvent`] rather than losing the event.

use std::sync::Arc;

use lightning::chain::chaininterface::{ConfirmationTarget, FeeEstimator};
use lightning::events::{
    Event, HTLCHandlingFailureReason, HTLCHandlingFailureType, PathFailure, PaymentFailureReason,
    PaymentPurpose, ReplayEvent,
};
use lightning::ln::channelmanager::RecentPaymentDetails;
use lightning::sign::EntropySource;

use super::intercepts::Intercepted;
use super::journal::Flush;
use super::records::{
    unix_now, ForwardRecord, ForwardStatus, InvoiceRecord, InvoiceStatus, PaymentRecord,
    PaymentStatus,
};
use super::{NodeInner, OpenOutcome};

impl NodeInner {
    pub(crate) async fn handle_event(self: Arc<Self>, event: Event) -> Result<(), ReplayEvent> {
        match event {
            Event::FundingGenerationReady {
                temporary_channel_id,
                counterparty_node_id,
                channel_value_satoshis,
                output_script,
                user_channel_id,
            } => {
                let sat_per_kw = self
                    .fee_estimator
                    .get_est_sat_per_1000_weight(ConfirmationTarget::NonAnchorChannelFee);
                let fee_rate = bitcoin::FeeRate::from_sat_per_kwu(u64::from(sat_per_kw));
                // The reserve counts this channel (LDK lists it already, still unfunded).
                let built = self.wallet.build_funding(
                    output_script,
                    bitcoin::Amount::from_sat(channel_value_satoshis),
                    fee_rate,
                    self.anchor_reserve(0),
                );
                let failure = match built {
                    Ok(funding_tx) => {
                        match self.channel_manager.funding_transaction_generated(
                            temporary_channel_id,
                            counterparty_node_id,
                            funding_tx.clone(),
                        ) {
                            Ok(()) => {
                                // LDK broadcasts it once the peer signed; its inputs are spent
                                // from now on as far as the wallet is concerned.
                                if let Err(error) = self.wallet.mark_broadcast(&funding_tx) {
                                    tracing::error!(%error, "recording the funding transaction in the wallet failed");
                                }
                                None
                            }
                            Err(e) => {
                                self.wallet.cancel(&funding_tx);
                                Some(format!("{e:?}"))
                            }
                        }
                    }
                    Err(e) => {
                        let _ = self.channel_manager.force_close_broadcasting_latest_txn(
                            &temporary_channel_id,
                            &counterparty_node_id,
                            "funding failed".to_owned(),
                        );
                        Some(e.to_string())
                    }
                };
                if let Some(reason) = failure {
                    tracing::warn!(%counterparty_node_id, %reason, "channel funding failed");
                    self.record_open_outcome(user_channel_id, OpenOutcome::Failed(reason));
                }
            }
            Event::FundingTxBroadcastSafe { .. } => {}
            Event::ChannelPending {
                channel_id,
                user_channel_id,
                counterparty_node_id,
                funding_txo,
                ..
            } => {
                tracing::info!(%channel_id, peer = %counterparty_node_id, funding_txo = %funding_txo, "channel pending");
                self.journal_channel(
                    "pending",
                    &channel_id,
                    serde_json::json!({
                        "channel_id": channel_id.to_string(),
                        "peer_id": counterparty_node_id.to_string(),
                        "funding_txid": funding_txo.txid.to_string(),
                        "funding_output": funding_txo.vout,
                    }),
                )?;
                self.record_open_outcome(
                    user_channel_id,
                    OpenOutcome::Pending {
                        channel_id,
                        funding_txo,
                    },
                );
            }
            Event::ChannelReady {
                channel_id,
                counterparty_node_id,
                ..
            } => {
                tracing::info!(%channel_id, peer = %counterparty_node_id, "channel ready");
                self.journal_channel(
                    "ready",
                    &channel_id,
                    serde_json::json!({
                        "channel_id": channel_id.to_string(),
                        "peer_id": counterparty_node_id.to_string(),
                    }),
                )?;
                self.notifications.channels.notify_waiters();
            }
            Event::ChannelClosed {
                channel_id,
                user_channel_id,
                reason,
                counterparty_node_id,
                ..
            } => {
                tracing::info!(%channel_id, peer = ?counterparty_node_id, %reason, "channel closed");
                self.journal_channel(
                    "closed",
                    &channel_id,
                    serde_json::json!({
                        "channel_id": channel_id.to_string(),
                        "peer_id": counterparty_node_id.map(|id| id.to_string()),
                        "reason": reason.to_string(),
                    }),
                )?;
                self.record_open_outcome(
                    user_channel_id,
                    OpenOutcome::Failed(format!("channel closed: {reason}")),
                );
            }
            Event::DiscardFunding {
                channel_id,
                funding_info,
            } => {
                tracing::info!(%channel_id, "funding transaction discarded");
                if let lightning::events::FundingInfo::Tx { transaction } = funding_info {
                    self.wallet.cancel(&transaction);
                }
            }
            Event::OpenChannelRequest {
                temporary_channel_id,
                counterparty_node_id,
                funding_satoshis,
                channel_negotiation_type,
                channel_type,
                params,
                ..
            } => {
                let push_msat = match channel_negotiation_type {
                    lightning::events::InboundChannelFunds::PushMsat(push) => push,
                    lightning::events::InboundChannelFunds::DualFunded => 0,
                };
                match self
                    .policy
                    .check_inbound(funding_satoshis, push_msat, &channel_type, &params)
                {
                    Ok(()) => {
                        let user_channel_id =
                            u128::from_be_bytes(random_16(&self.keys.get_secure_random_bytes()));
                        if let Err(e) = self.channel_manager.accept_inbound_channel(
                            &temporary_channel_id,
                            &counterparty_node_id,
                            user_channel_id,
                            Some(self.policy.inbound_overrides(funding_satoshis)),
                        ) {
                            tracing::warn!(peer = %counterparty_node_id, error = ?e, "accepting inbound channel failed");
                        }
                    }
                    Err(reason) => {
                        tracing::info!(peer = %counterparty_node_id, %reason, "refusing inbound channel");
                        let _ = self.channel_manager.force_close_broadcasting_latest_txn(
                            &temporary_channel_id,
                            &counterparty_node_id,
                            reason,
                        );
                    }
                }
            }
            Event::PaymentClaimable {
                payment_hash,
                amount_msat,
                purpose,
                claim_deadline,
                ..
            } => {
                return self.on_payment_claimable(
                    payment_hash,
                    amount_msat,
                    purpose,
                    claim_deadline,
                )
            }
            Event::PaymentClaimed {
                payment_hash,
                amount_msat,
                purpose,
                ..
            } => {
                let hash = hex(&payment_hash.0);
                let mut record = match self.records.invoice(&hash) {
                    Ok(Some(record)) => record,
                    Ok(None) => keysend_record(&hash, &purpose),
                    Err(error) => {
                        tracing::error!(%error, "reading invoice record");
                        return Err(ReplayEvent());
                    }
                };
                record.status = InvoiceStatus::Paid;
                record.amount_received_msat = Some(amount_msat);
                record.paid_at.get_or_insert(unix_now());
                if let Err(error) = self.records.put_invoice(&record, Flush::Soon) {
                    tracing::error!(%error, "recording a received payment failed");
                    return Err(ReplayEvent());
                }
                tracing::info!(payment_hash = %hash, amount_msat, "payment received");
                if record.is_hold {
                    self.forget_settle_preimage(&hash);
                }
                self.notifications.invoices.notify_waiters();
            }
            Event::PaymentSent {
                payment_preimage,
                payment_hash,
                amount_msat,
                fee_paid_msat,
                ..
            } => {
                let hash = hex(&payment_hash.0);
                let update = |record: &mut PaymentRecord| {
                    record.status = PaymentStatus::Succeeded;
                    record.preimage = Some(hex(&payment_preimage.0));
                    record.fee_msat = fee_paid_msat.or(record.fee_msat);
                    if let Some(amount) = amount_msat {
                        record.amount_msat = amount;
                    }
                    record.failure_reason = None;
                    record.completed_at.get_or_insert(unix_now());
                };
                if !self.update_payment(&hash, update) {
                    return Err(ReplayEvent());
                }
                tracing::info!(payment_hash = %hash, fee_msat = ?fee_paid_msat, "payment succeeded");
            }
            Event::PaymentFailed {
                payment_hash,
                reason,
                ..
            } => {
                if let Some(payment_hash) = payment_hash {
                    let hash = hex(&payment_hash.0);
                    let mut reason_text = payment_failure(reason);
                    let update = |record: &mut PaymentRecord| {
                        if record.status != PaymentStatus::Succeeded {
                            if let Some(path) = &record.last_path_failure {
                                reason_text = format!("{reason_text}; last failure: {path}");
                            }
                            record.status = PaymentStatus::Failed;
                            record.failure_reason = Some(reason_text.clone());
                            record.completed_at.get_or_insert(unix_now());
                        }
                    };
                    if !self.update_payment(&hash, update) {
                        return Err(ReplayEvent());
                    }
                    tracing::info!(payment_hash = %hash, ?reason, "payment failed");
                }
            }
            Event::PaymentPathFailed {
                payment_hash,
                payment_failed_permanently,
                failure,
                path,
                short_channel_id,
                ..
            } => {
                let hash = hex(&payment_hash.0);
                let text = path_failure(
                    &self.node_id,
                    &path,
                    short_channel_id,
                    payment_failed_permanently,
                    &failure,
                );
                tracing::debug!(payment_hash = %hash, failure = %text, "a payment path failed");
                if !self.update_payment(&hash, |record| record.last_path_failure = Some(text)) {
                    return Err(ReplayEvent());
                }
            }
            Event::PaymentPathSuccessful { .. }
            | Event::ProbeSuccessful { .. }
            | Event::ProbeFailed { .. } => {}
            Event::PaymentForwarded {
                prev_channel_id,
                next_channel_id,
                total_fee_earned_msat,
                claim_from_onchain_tx,
                outbound_amount_forwarded_msat,
                ..
            } => {
                let record = ForwardRecord {
                    in_amount_msat: outbound_amount_forwarded_msat
                        .zip(total_fee_earned_msat)
                        .map(|(out, fee)| out.saturating_add(fee)),
                    in_channel_id: prev_channel_id.map(|c| c.to_string()),
                    out_channel_id: next_channel_id.map(|c| c.to_string()),
                    out_amount_msat: outbound_amount_forwarded_msat,
                    fee_msat: total_fee_earned_msat,
                    claimed_on_chain: claim_from_onchain_tx,
                    resolved_at: unix_now(),
                    status: ForwardStatus::Settled,
                    failure_reason: None,
                };
                if let Err(error) = self.records.add_forward(&record) {
                    tracing::error!(%error, "recording a forward failed");
                    return Err(ReplayEvent());
                }
                tracing::info!(in_channel_id = ?record.in_channel_id, out_channel_id = ?record.out_channel_id, fee_msat = ?total_fee_earned_msat, amount_msat = ?outbound_amount_forwarded_msat, "payment forwarded");
            }
            Event::HTLCHandlingFailed {
                prev_channel_id,
                failure_type,
                failure_reason,
            } => {
                tracing::debug!(%prev_channel_id, ?failure_type, ?failure_reason, "HTLC failed back");
                if let HTLCHandlingFailureType::Receive { payment_hash } = failure_type {
                    return self.on_receive_failed(payment_hash);
                }
                let (out_channel_id, why) = match failure_type {
                    HTLCHandlingFailureType::Forward { channel_id, .. } => (
                        Some(channel_id.to_string()),
                        "the next channel failed it".to_owned(),
                    ),
                    HTLCHandlingFailureType::UnknownNextHop {
                        requested_forward_scid,
                    } => (
                        None,
                        format!(
                            "no channel {}",
                            crate::node::format_short_channel_id(requested_forward_scid)
                        ),
                    ),
                    HTLCHandlingFailureType::InvalidForward {
                        requested_forward_scid,
                    } => (
                        None,
                        format!(
                            "invalid forward to {}",
                            crate::node::format_short_channel_id(requested_forward_scid)
                        ),
                    ),
                    HTLCHandlingFailureType::InvalidOnion => {
                        (None, "the onion was invalid".to_owned())
                    }
                    HTLCHandlingFailureType::Receive { .. } => return Ok(()),
                };
                let reason = match failure_reason {
                    Some(HTLCHandlingFailureReason::Local { reason }) => {
                        format!("{why}: {reason:?}")
                    }
                    Some(HTLCHandlingFailureReason::Downstream) => {
                        format!("{why}: a later hop failed it")
                    }
                    None => why,
                };
                let reason = match failure_type {
                    HTLCHandlingFailureType::InvalidForward {
                        requested_forward_scid,
                    } if self.on_intercept_failed_back(requested_forward_scid, &reason)? => {
                        format!("intercepted HTLC failed back ({reason})")
                    }
                    _ => reason,
                };
                let record = ForwardRecord {
                    in_channel_id: Some(prev_channel_id.to_string()),
                    out_channel_id,
                    in_amount_msat: None,
                    out_amount_msat: None,
                    fee_msat: None,
                    claimed_on_chain: false,
                    resolved_at: unix_now(),
                    status: ForwardStatus::Failed,
                    failure_reason: Some(reason),
                };
                if let Err(error) = self.records.add_forward(&record) {
                    tracing::error!(%error, "recording a failed forward failed");
                    return Err(ReplayEvent());
                }
            }
            Event::HTLCIntercepted {
                intercept_id,
                requested_next_hop_scid,
                payment_hash,
                inbound_amount_msat,
                expected_outbound_amount_msat,
            } => {
                return self.record_intercepted_htlc(Intercepted {
                    intercept_id,
                    requested_next_hop_scid,
                    payment_hash,
                    inbound_amount_msat,
                    expected_outbound_amount_msat,
                });
            }
            Event::SpendableOutputs {
                outputs,
                channel_id,
            } => {
                let outputs = self.not_taken_by_the_peer(outputs, channel_id).await;
                if outputs.is_empty() {
                    return Ok(());
                }
                if let Err(()) = self
                    .sweeper
                    .track_spendable_outputs(outputs, channel_id, true, None)
                {
                    tracing::error!(
                        ?channel_id,
                        "handing spendable outputs to the sweeper failed"
                    );
                    return Err(ReplayEvent());
                }
            }
            Event::BumpTransaction(bump) => {
                self.bump_handler.handle_event(&bump);
                self.publish_commitment_without_its_bump(&bump);
            }
            Event::ConnectionNeeded { node_id, addresses } => {
                let inner = Arc::clone(&self);
                tokio::spawn(async move {
                    for address in addresses {
                        let Some(socket) = super::api::resolve_socket_address(&address).await
                        else {
                            continue;
                        };
                        if super::api::connect_peer(&inner, node_id, socket)
                            .await
                            .is_ok()
                        {
                            return;
                        }
                    }
                });
            }
            other => {
                tracing::debug!(event = ?other, "event not acted on");
            }
        }
        Ok(())
    }

    /// Publishes our commitment alone when LDK could not publish it with a fee-bumping child.
    ///
    /// On an anchor channel LDK publishes a force close's commitment only together with a child
    /// that spends its anchor, unless the commitment's own feerate already meets the target. The
    /// child needs a confirmed coin of our wallet; with none (an emptied wallet, coins not
    /// confirmed yet), LDK logs "Failed bumping commitment transaction fee" and publishes
    /// nothing until a later block, however long that takes. The commitment pays the feerate
    /// agreed with the peer and usually relays alone: then it is in mempools at once, as a node
    /// without anchors would have it, and LDK's child can still raise it later.
    fn publish_commitment_without_its_bump(
        &self,
        bump: &lightning::events::bump_transaction::BumpTransactionEvent,
    ) {
        use lightning::chain::chaininterface::BroadcasterInterface;
        use lightning::events::bump_transaction::BumpTransactionEvent;
        let BumpTransactionEvent::ChannelClose {
            commitment_tx,
            channel_id,
            ..
        } = bump
        else {
            return;
        };
        let txid = commitment_tx.compute_txid();
        if self.broadcaster.was_handed_over(&txid) {
            return;
        }
        tracing::warn!(
            %channel_id,
            %txid,
            "our commitment could not be published with a fee-bumping child (has the wallet a \
             confirmed coin for it?); publishing it alone at its own feerate, and the child is \
             tried again at the next block"
        );
        self.broadcaster.broadcast_transactions(&[commitment_tx]);
    }

    /// `outputs` less those the peer already took on chain. Only the peer's revocation key can
    /// spend one of our outputs before we sweep it: the output is our balance in a commitment
    /// this node should never have published (it ran from an old backup), and the peer's justice
    /// transaction took it. LDK still hands it over once `to_self_delay` has passed; tracked, the
    /// sweeper would try to spend it for ever and `listfunds` would count it in
    /// `pending_sweep_sat` for ever. An output the sweeper already tracks (this event replayed
    /// after a restart) stays, whatever its state; so does any output whose state the chain node
    /// cannot tell now: better a sweep retried in vain at every block than an output of ours
    /// never swept.
    async fn not_taken_by_the_peer(
        &self,
        outputs: Vec<lightning::sign::SpendableOutputDescriptor>,
        channel_id: Option<lightning::ln::types::ChannelId>,
    ) -> Vec<lightning::sign::SpendableOutputDescriptor> {
        let tracked: Vec<bitcoin::OutPoint> = self
            .sweeper
            .tracked_spendable_outputs()
            .iter()
            .map(|output| {
                output
                    .descriptor
                    .spendable_outpoint()
                    .into_bitcoin_outpoint()
            })
            .collect();
        let mut kept = Vec::with_capacity(outputs.len());
        for descriptor in outputs {
            let outpoint = descriptor.spendable_outpoint().into_bitcoin_outpoint();
            if tracked.contains(&outpoint) {
                kept.push(descriptor);
                continue;
            }
            match self.source.unspent_output(&outpoint).await {
                Ok(None) => {
                    tracing::warn!(
                        %outpoint,
                        ?channel_id,
                        "an output of a closed channel is already spent by the peer, so it will not be swept: its justice transaction took this node's balance of a revoked commitment (was the node run from an old backup of its datadir?)"
                    );
                }
                Ok(Some(_)) => kept.push(descriptor),
                Err(error) => {
                    tracing::debug!(%outpoint, %error, "the chain node cannot tell whether an output to sweep is unspent; tracking it");
                    kept.push(descriptor);
                }
            }
        }
        kept
    }

    /// Marks unpaid invoices past their expiry as expired.
    pub(crate) fn expire_invoices(&self) {
        if let Err(error) = self.records.expire_invoices(unix_now()) {
            tracing::warn!(%error, "marking expired invoices failed");
        }
    }

    /// Writes a `channels` event once per channel and kind (LDK replays events after a crash).
    pub(crate) fn journal_channel(
        &self,
        kind: &str,
        channel_id: &lightning::ln::types::ChannelId,
        data: serde_json::Value,
    ) -> Result<(), ReplayEvent> {
        let key = format!("{kind}/{channel_id}");
        match self
            .records
            .journal()
            .append_once(super::journal::Stream::Channels, &key, kind, data)
        {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::error!(%error, %channel_id, kind, "recording a channel event failed");
                Err(ReplayEvent())
            }
        }
    }

    fn record_open_outcome(&self, user_channel_id: u128, outcome: OpenOutcome) {
        if let Ok(mut opens) = self.notifications.channel_opens.lock() {
            // Only an open some call waits for; the first outcome counts: a later close of a
            // pending channel is not an open failure.
            if let Some(slot) = opens.get_mut(&user_channel_id) {
                slot.get_or_insert(outcome);
            }
        }
        self.notifications.channels.notify_waiters();
    }

    /// Ends the payment records still pending that LDK does not know after a restart.
    ///
    /// A `pay`/`keysend` records its payment before handing it to LDK. If the process died in
    /// between, or before the `ChannelManager` that knew of it was written, LDK never committed
    /// an HTLC for it: an HTLC is committed only with a monitor update, and the monitor writer
    /// writes the manager before any monitor (see `monitor_writer`). So nothing is in flight and
    /// no event will ever end the record; without this it would stay pending forever. Payments
    /// LDK still tracks end through its events as usual.
    pub(crate) fn end_payments_lost_in_a_crash(&self) {
        let known: std::collections::HashSet<String> = self
            .channel_manager
            .list_recent_payments()
            .into_iter()
            .filter_map(|payment| match payment {
                RecentPaymentDetails::Pending { payment_hash, .. }
                | RecentPaymentDetails::Fulfilled {
                    payment_hash: Some(payment_hash),
                    ..
                }
                | RecentPaymentDetails::Abandoned { payment_hash, .. } => {
                    Some(hex(&payment_hash.0))
                }
                _ => None,
            })
            .collect();
        let pending = match self.records.payments() {
            Ok(payments) => payments
                .into_iter()
                .filter(|p| p.status == PaymentStatus::Pending && !known.contains(&p.payment_hash)),
            Err(error) => {
                tracing::error!(%error, "cannot read the payment records to end those lost in a crash");
                return;
            }
        };
        for record in pending {
            let hash = record.payment_hash.clone();
            self.update_payment(&hash, |record| {
                record.status = PaymentStatus::Failed;
                record.failure_reason = Some(
                    "never sent: xlnd stopped before the payment left the node; nothing was committed, pay again"
                        .to_owned(),
                );
                record.completed_at.get_or_insert(unix_now());
            });
            tracing::warn!(payment_hash = %hash, "a payment the node stopped before sending is marked failed");
        }
    }

    /// Drops what [`super::records::Records::put_settle_preimage`] kept for a payment LDK has
    /// finished with; one left behind only takes space.
    fn forget_settle_preimage(&self, hash: &str) {
        if let Err(error) = self.records.forget_settle_preimage(hash) {
            tracing::warn!(%error, payment_hash = hash, "cannot drop a settled hold invoice's preimage");
        }
    }

    /// Applies `update` to a stored outgoing payment; false if the store failed.
    fn update_payment(&self, hash: &str, update: impl FnOnce(&mut PaymentRecord)) -> bool {
        let result = match self.records.payment(hash) {
            Ok(Some(mut record)) => {
                update(&mut record);
                self.records.put_payment(&record, Flush::Soon)
            }
            // Not one of ours (sent by an earlier version, or its record write failed): ignore.
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        self.notifications.payments.notify(hash);
        match result {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, payment_hash = hash, "updating a payment record failed");
                false
            }
        }
    }

    /// LDK failed a payment to us back (a held payment reached its claim deadline, or it was
    /// cancelled): a held invoice is no longer held.
    fn on_receive_failed(
        &self,
        payment_hash: lightning::types::payment::PaymentHash,
    ) -> Result<(), ReplayEvent> {
        let hash = hex(&payment_hash.0);
        match self.records.invoice(&hash) {
            Ok(Some(mut record)) if record.status == InvoiceStatus::Held => {
                record.status = InvoiceStatus::Canceled;
                if let Err(error) = self.records.put_invoice(&record, Flush::Now) {
                    tracing::error!(%error, "recording a failed-back hold payment failed");
                    return Err(ReplayEvent());
                }
                tracing::warn!(payment_hash = %hash, "held payment failed back before settlement (deadline reached)");
                self.forget_settle_preimage(&hash);
                self.notifications.invoices.notify_waiters();
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::error!(%error, "reading invoice record");
                Err(ReplayEvent())
            }
        }
    }

    fn on_payment_claimable(
        &self,
        payment_hash: lightning::types::payment::PaymentHash,
        amount_msat: u64,
        purpose: PaymentPurpose,
        claim_deadline: Option<u32>,
    ) -> Result<(), ReplayEvent> {
        let hash = hex(&payment_hash.0);
        let record = match self.records.invoice(&hash) {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(%error, "reading invoice record");
                return Err(ReplayEvent());
            }
        };
        if let Some(mut record) = record {
            let now = unix_now();
            match record.status_at(now) {
                InvoiceStatus::Canceled => {
                    self.channel_manager.fail_htlc_backwards(&payment_hash);
                    return Ok(());
                }
                InvoiceStatus::Paid => {
                    // A replay after we claimed: claiming again is harmless and finishes the job.
                }
                _ if record.is_hold => {
                    let settled = match self.records.settle_preimage(&hash) {
                        Ok(settled) => settled,
                        Err(error) => {
                            tracing::error!(%error, "reading a settle preimage");
                            return Err(ReplayEvent());
                        }
                    };
                    if let Some(preimage) = settled {
                        // The operator settled it before LDK offered it (again, after a
                        // restart): claim it now instead of holding it a second time.
                        tracing::info!(payment_hash = %hash, "a settled hold invoice's payment was offered again; claiming it");
                        self.channel_manager
                            .claim_funds(lightning::types::payment::PaymentPreimage(preimage));
                        return Ok(());
                    }
                    record.status = InvoiceStatus::Held;
                    record.amount_received_msat = Some(amount_msat);
                    record.claim_deadline_height = claim_deadline;
                    if let Err(error) = self.records.put_invoice(&record, Flush::Now) {
                        tracing::error!(%error, "recording a held payment failed");
                        return Err(ReplayEvent());
                    }
                    tracing::info!(payment_hash = %hash, amount_msat, ?claim_deadline, "hold invoice payment held");
                    self.notifications.invoices.notify_waiters();
                    return Ok(());
                }
                _ => {}
            }
        }
        match purpose.preimage() {
            Some(preimage) => self.channel_manager.claim_funds(preimage),
            None => {
                tracing::warn!(payment_hash = %hash, "payment for an unknown hash without preimage; failing it back");
                self.channel_manager.fail_htlc_backwards(&payment_hash);
            }
        }
        Ok(())
    }
}

fn keysend_record(hash: &str, purpose: &PaymentPurpose) -> InvoiceRecord {
    let now = unix_now();
    let description = match purpose {
        PaymentPurpose::SpontaneousPayment(_) => "keysend",
        _ => "",
    };
    InvoiceRecord {
        payment_hash: hash.to_owned(),
        bolt11: None,
        description: description.to_owned(),
        status: InvoiceStatus::Paid,
        amount_msat: None,
        amount_received_msat: None,
        is_hold: false,
        created_at: now,
        expires_at: now,
        paid_at: Some(now),
        claim_deadline_height: None,
    }
}

fn random_16(bytes: &[u8; 32]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&bytes[..16]);
    out
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bitcoin::hex::DisplayHex::to_lower_hex_string(bytes)
}

/// What LDK's reason for giving a payment up means, for the record and the caller.
fn payment_failure(reason: Option<PaymentFailureReason>) -> String {
    match reason {
        Some(PaymentFailureReason::RecipientRejected) => {
            "the payee rejected it (unknown or already paid invoice, wrong amount, or too close to its CLTV expiry)".to_owned()
        }
        Some(PaymentFailureReason::UserAbandoned) => "abandoned".to_owned(),
        Some(PaymentFailureReason::RetriesExhausted) => {
            "every route tried failed, and LDK's 60 s for retrying other routes ran out".to_owned()
        }
        Some(PaymentFailureReason::PaymentExpired) => "the invoice expired while paying it".to_owned(),
        Some(PaymentFailureReason::RouteNotFound) => {
            "no route was left to try (the failed channels are avoided)".to_owned()
        }
        Some(PaymentFailureReason::UnknownRequiredFeatures) => {
            "the payee requires features this node does not support".to_owned()
        }
        Some(other) => format!("{other:?}"),
        None => "unknown (an event of an older LDK)".to_owned(),
    }
}

/// Which channel and node a failed path failed at, from the onion error LDK decoded.
fn path_failure(
    our_id: &bitcoin::secp256k1::PublicKey,
    path: &lightning::routing::router::Path,
    short_channel_id: Option<u64>,
    at_payee: bool,
    failure: &PathFailure,
) -> String {
    if at_payee {
        return "the payee refused it".to_owned();
    }
    let detail = match failure {
        PathFailure::InitialSend { err } => format!("could not be sent: {err:?}"),
        PathFailure::OnPath {
            network_update: Some(update),
        } => format!("{update:?}"),
        PathFailure::OnPath {
            network_update: None,
        } => "failed on the way".to_owned(),
    };
    let Some(scid) = short_channel_id else {
        return detail;
    };
    let position = path
        .hops
        .iter()
        .position(|hop| hop.short_channel_id == scid);
    let from = position
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| path.hops.get(i))
        .map(|hop| hop.pubkey)
        .unwrap_or(*our_id);
    let to = position
        .and_then(|i| path.hops.get(i))
        .map(|hop| hop.pubkey.to_string())
        .unwrap_or_else(|| "?".to_owned());
    format!(
        "channel {} from {from} to {to}: {detail}",
        crate::node::format_short_channel_id(scid)
    )
}
