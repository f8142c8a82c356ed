//! Keeps the intercepted-HTLC records in step with what LDK holds: records each new one, loads
//! and reconciles them at start, ends those LDK failed back by itself, and fails back those left
//! unanswered past the time limit (checked every second).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lightning::events::ReplayEvent;
use lightning::ln::channelmanager::InterceptId;
use lightning::types::payment::PaymentHash;

use super::{InterceptedHtlcRecord, Pending};
use crate::node::api::{blocking, parse_hex32};
use crate::node::events::hex;
use crate::node::records::unix_now;
use crate::node::{Error, NodeInner};

/// How often pending HTLCs are checked against LDK and the time limit.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long a pending HTLC may be missing from LDK before its record is failed: after a restart
/// LDK takes HTLCs in again as it decodes them anew, or once their peer is back.
const MISSING_GRACE: Duration = Duration::from_secs(60);

/// Why a record is failed when LDK no longer holds its HTLC and did not say why.
const DROPPED_BY_LDK: &str =
    "LDK no longer holds it: failed back near its CLTV expiry, or its incoming channel closed";

/// What `Event::HTLCIntercepted` says.
pub(crate) struct Intercepted {
    pub(crate) intercept_id: InterceptId,
    pub(crate) requested_next_hop_scid: u64,
    pub(crate) payment_hash: PaymentHash,
    pub(crate) inbound_amount_msat: u64,
    pub(crate) expected_outbound_amount_msat: u64,
}

/// Checks the pending intercepted HTLCs every second until the node stops.
pub(crate) async fn intercept_loop(inner: Arc<NodeInner>) {
    let mut stop = inner.stop_sender.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        if inner.intercepts.lock().records.is_empty() {
            continue;
        }
        let checking = Arc::clone(&inner);
        let checked = blocking(move || {
            checking.check_intercepts();
            Ok(())
        })
        .await;
        if checked.is_err() {
            return;
        }
    }
}

impl NodeInner {
    /// Whether LDK still holds the intercepted HTLC `intercept_id` (hex).
    pub(crate) fn ldk_holds_intercept(&self, intercept_id: &str) -> bool {
        match parse_hex32("intercept id", intercept_id) {
            // LDK's own LSPS2 service (lightning-liquidity) asks the same way.
            Ok(id) => self
                .channel_manager
                .intercepted_htlc_inbound_amount_msat(InterceptId(id))
                .is_some(),
            Err(_) => false,
        }
    }

    /// The one place a newly intercepted HTLC is announced: after its record is stored, before
    /// anyone could have resolved it. Subscribers of `Node::subscribe_intercepted_htlcs` get it
    /// here; an RPC event stream hooks in here too.
    pub(crate) fn on_htlc_intercepted(&self, record: &InterceptedHtlcRecord) {
        tracing::info!(
            intercept_id = %record.intercept_id,
            payment_hash = %record.payment_hash,
            requested_scid = %crate::node::format_short_channel_id(record.requested_next_hop_scid),
            inbound_amount_msat = record.inbound_amount_msat,
            expected_outbound_amount_msat = record.expected_outbound_amount_msat,
            "HTLC intercepted; waiting for resolvehtlc"
        );
        // No subscriber is not an error.
        let _ = self.intercepts.arrivals.send(record.clone());
    }

    /// Records an HTLC LDK intercepted (`Event::HTLCIntercepted`). A replayed event (or an HTLC
    /// LDK took in again after a restart) of a known HTLC changes nothing, unless its record was
    /// resolved while LDK still holds it (the resolution was lost in a crash): then it is
    /// pending again.
    pub(crate) fn record_intercepted_htlc(&self, event: Intercepted) -> Result<(), ReplayEvent> {
        let id = hex(&event.intercept_id.0);
        let mut pending = self.intercepts.lock();
        let existing = match self.records.intercepted_htlc(&id) {
            Ok(existing) => existing,
            Err(error) => {
                tracing::error!(%error, intercept_id = %id, "reading an intercepted HTLC's record failed");
                return Err(ReplayEvent());
            }
        };
        let record = match existing {
            Some(known) if known.is_pending() => {
                pending.missing_since.remove(&id);
                pending.records.entry(id).or_insert(known);
                return Ok(());
            }
            Some(mut resolved) => {
                if !self.ldk_holds_intercept(&id) {
                    return Ok(());
                }
                tracing::warn!(intercept_id = %id, "LDK still holds an intercepted HTLC whose resolution was lost when xlnd stopped; it is pending again");
                resolved.reopen();
                resolved
            }
            None => self.new_intercept_record(id.clone(), &event),
        };
        if let Err(error) = self.records.put_intercepted_htlc(&record) {
            tracing::error!(%error, intercept_id = %id, "recording an intercepted HTLC failed");
            return Err(ReplayEvent());
        }
        pending.records.insert(id, record.clone());
        drop(pending);
        self.on_htlc_intercepted(&record);
        Ok(())
    }

    /// A pending record of `event`, with the incoming channel (if exactly one of our channels
    /// holds an incoming HTLC of this payment hash and amount) and its CLTV expiry (if exactly
    /// one HTLC matches).
    fn new_intercept_record(&self, id: String, event: &Intercepted) -> InterceptedHtlcRecord {
        let mut record = InterceptedHtlcRecord::new_pending(
            id,
            event.requested_next_hop_scid,
            hex(&event.payment_hash.0),
            event.inbound_amount_msat,
            event.expected_outbound_amount_msat,
            unix_now(),
        );
        let matches: Vec<(String, u32)> = self
            .channel_manager
            .list_channels()
            .iter()
            .flat_map(|channel| {
                channel
                    .pending_inbound_htlcs
                    .iter()
                    .filter(|htlc| {
                        htlc.payment_hash == event.payment_hash
                            && htlc.amount_msat == event.inbound_amount_msat
                    })
                    .map(|htlc| (channel.channel_id.to_string(), htlc.cltv_expiry))
            })
            .collect();
        let mut channels: Vec<&String> = matches.iter().map(|(channel_id, _)| channel_id).collect();
        channels.dedup();
        if let [channel_id] = channels.as_slice() {
            record.incoming_channel_id = Some((*channel_id).clone());
        }
        if let [(_, cltv_expiry)] = matches.as_slice() {
            record.incoming_cltv_expiry = Some(*cltv_expiry);
        }
        record
    }

    /// At start, before anything runs: tracks the pending records, and makes a resolved record
    /// whose HTLC LDK still holds pending again (its resolution was lost when xlnd stopped).
    /// Pending records LDK does not hold are left to [`intercept_loop`]'s grace period.
    pub(crate) fn load_intercepts(&self) {
        let records = match self.records.intercepted_htlcs() {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "cannot read the intercepted-HTLC records; pending ones are not tracked until the next start");
                return;
            }
        };
        let mut pending = self.intercepts.lock();
        for mut record in records {
            if !record.is_pending() && self.ldk_holds_intercept(&record.intercept_id) {
                tracing::warn!(intercept_id = %record.intercept_id, "LDK still holds an intercepted HTLC whose resolution was lost when xlnd stopped; it is pending again");
                record.reopen();
                if let Err(error) = self.records.put_intercepted_htlc(&record) {
                    tracing::error!(%error, intercept_id = %record.intercept_id, "updating an intercepted HTLC's record failed");
                    continue;
                }
            }
            if record.is_pending() {
                pending.records.insert(record.intercept_id.clone(), record);
            }
        }
        if !pending.records.is_empty() {
            tracing::info!(
                count = pending.records.len(),
                "intercepted HTLCs wait for resolvehtlc"
            );
        }
    }

    /// LDK failed back an HTLC it was asked to forward to `scid` (`HTLCHandlingFailed` with
    /// `InvalidForward`): pending records to `scid` whose HTLC LDK no longer holds end as failed
    /// for `reason`. Returns whether `scid` is one our intercepted HTLCs asked for.
    pub(crate) fn on_intercept_failed_back(
        &self,
        scid: u64,
        reason: &str,
    ) -> Result<bool, ReplayEvent> {
        let mut pending = self.intercepts.lock();
        let gone: Vec<String> = pending
            .records
            .values()
            .filter(|record| record.requested_next_hop_scid == scid)
            .filter(|record| !self.ldk_holds_intercept(&record.intercept_id))
            .map(|record| record.intercept_id.clone())
            .collect();
        for id in gone {
            let reason = format!("LDK failed it back: {reason}");
            if let Err(error) = end_pending(self, &mut pending, &id, |record, now| {
                record.mark_failed(reason, now)
            }) {
                tracing::error!(%error, intercept_id = %id, "recording an intercepted HTLC LDK failed back failed");
                return Err(ReplayEvent());
            }
        }
        let known = self
            .records
            .intercepted_htlcs()
            .map(|all| all.iter().any(|r| r.requested_next_hop_scid == scid))
            .unwrap_or(false);
        Ok(known)
    }

    /// Fails the records of pending HTLCs LDK has not held for [`MISSING_GRACE`], and fails back
    /// those older than the time limit. Blocking: LDK calls and store writes.
    fn check_intercepts(&self) {
        let mut pending = self.intercepts.lock();
        let now = unix_now();
        let ids: Vec<String> = pending.records.keys().cloned().collect();
        for id in ids {
            let outcome = if self.ldk_holds_intercept(&id) {
                pending.missing_since.remove(&id);
                match self.expired(&pending, &id, now) {
                    Some(timeout) => self.fail_unanswered(&mut pending, &id, timeout),
                    None => Ok(()),
                }
            } else {
                let missing_since = *pending
                    .missing_since
                    .entry(id.clone())
                    .or_insert_with(Instant::now);
                if missing_since.elapsed() < MISSING_GRACE {
                    continue;
                }
                end_pending(self, &mut pending, &id, |record, now| {
                    record.mark_failed(DROPPED_BY_LDK.to_owned(), now)
                })
                .map(drop)
            };
            if let Err(error) = outcome {
                tracing::error!(%error, intercept_id = %id, "updating an intercepted HTLC's record failed");
            }
        }
    }

    /// The time limit, if the pending record `id` has outlived it at `now`.
    ///
    /// Strictly past the deadline: arrival and `now` are whole seconds, so `now == deadline`
    /// can be up to a second before the limit has really run out, and an LSP must never see an
    /// HTLC failed back before the time it was promised.
    fn expired(&self, pending: &Pending, id: &str, now: u64) -> Option<Duration> {
        let timeout = self.intercepts.timeout?;
        let record = pending.records.get(id)?;
        (now > record.deadline(timeout.as_secs())).then_some(timeout)
    }

    /// Fails back the pending HTLC `id` (which LDK holds) that nobody answered within `timeout`.
    fn fail_unanswered(
        &self,
        pending: &mut Pending,
        id: &str,
        timeout: Duration,
    ) -> Result<(), Error> {
        let failed = parse_hex32("intercept id", id).map(|bytes| {
            self.channel_manager
                .fail_intercepted_htlc(InterceptId(bytes))
        });
        if !matches!(failed, Ok(Ok(()))) {
            // Gone between the two calls: the next check sees it missing.
            return Ok(());
        }
        tracing::warn!(intercept_id = %id, timeout_secs = timeout.as_secs(), "intercepted HTLC not resolved in time; failed back");
        let reason = format!(
            "not resolved within {} s (intercept_timeout_secs); failed back",
            timeout.as_secs()
        );
        end_pending(self, pending, id, |record, now| {
            record.mark_failed(reason, now)
        })
        .map(drop)
    }
}

/// Applies `resolve` to the pending record `id`, stores it and stops tracking it. On a store
/// failure the record stays pending in memory (and is reconciled again later).
pub(crate) fn end_pending(
    inner: &NodeInner,
    pending: &mut Pending,
    id: &str,
    resolve: impl FnOnce(&mut InterceptedHtlcRecord, u64) -> Result<(), super::NotPending>,
) -> Result<Option<InterceptedHtlcRecord>, Error> {
    let Some(mut record) = pending.records.get(id).cloned() else {
        return Ok(None);
    };
    if let Err(not_pending) = resolve(&mut record, unix_now()) {
        return Err(Error::HtlcNotPending(not_pending.to_string()));
    }
    inner.records.put_intercepted_htlc(&record)?;
    pending.records.remove(id);
    pending.missing_since.remove(id);
    Ok(Some(record))
}
