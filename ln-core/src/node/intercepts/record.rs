//! The durable record of one intercepted HTLC and the only ways its status may change.

use serde::{Deserialize, Serialize};

/// Where an intercepted HTLC stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterceptStatus {
    /// LDK holds it and waits for `resolvehtlc`.
    Pending,
    /// Handed to LDK to forward over the channel named in the record. Whether the next hop then
    /// settled it shows in `listforwards`.
    Forwarded,
    /// Failed back to the previous hop (by the operator, by the time limit, or by LDK near the
    /// HTLC's CLTV expiry); the record says why.
    Failed,
}

impl InterceptStatus {
    /// The status as the RPC writes it (`pending`, `forwarded`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            InterceptStatus::Pending => "pending",
            InterceptStatus::Forwarded => "forwarded",
            InterceptStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for InterceptStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pending" => Ok(InterceptStatus::Pending),
            "forwarded" => Ok(InterceptStatus::Forwarded),
            "failed" => Ok(InterceptStatus::Failed),
            other => Err(format!(
                "status {other:?} is not one of pending, forwarded, failed"
            )),
        }
    }
}

/// One HTLC LDK intercepted because its next hop was one of our intercept SCIDs.
///
/// Stored as JSON under its intercept id in the store namespace `intercepted_htlcs`; fields added
/// later default, so old records stay readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterceptedHtlcRecord {
    /// LDK's intercept id, hex (64 characters): what `resolvehtlc` names.
    pub intercept_id: String,
    /// The intercept SCID the payer's onion asked us to forward over.
    pub requested_next_hop_scid: u64,
    /// Payment hash, hex.
    pub payment_hash: String,
    /// What the previous hop's HTLC carries, msat.
    pub inbound_amount_msat: u64,
    /// What the onion asks us to forward, msat (the inbound amount less our route hint's fee).
    pub expected_outbound_amount_msat: u64,
    /// The channel the HTLC came in on, if exactly one of our channels holds an incoming HTLC of
    /// this payment hash and amount (LDK's event does not name it).
    #[serde(default)]
    pub incoming_channel_id: Option<String>,
    /// That incoming HTLC's CLTV expiry, block height.
    #[serde(default)]
    pub incoming_cltv_expiry: Option<u32>,
    /// When the node recorded it, Unix seconds.
    pub received_at: u64,
    /// Where it stands.
    pub status: InterceptStatus,
    /// When it was forwarded or failed, Unix seconds.
    #[serde(default)]
    pub resolved_at: Option<u64>,
    /// For a forwarded HTLC: the channel it went out on.
    #[serde(default)]
    pub outgoing_channel_id: Option<String>,
    /// For a forwarded HTLC: the amount sent on, msat.
    #[serde(default)]
    pub outbound_amount_msat: Option<u64>,
    /// For a failed HTLC: why.
    #[serde(default)]
    pub failure_reason: Option<String>,
}

/// A status change asked of a record that is no longer pending: nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("intercepted HTLC {intercept_id} is already {status}{}", .detail)]
pub struct NotPending {
    /// The record's intercept id.
    pub intercept_id: String,
    /// Its status (`forwarded` or `failed`).
    pub status: &'static str,
    /// What happened to it, e.g. ` (over channel …)` or ` (not resolved within 120 s)`.
    pub detail: String,
}

impl InterceptedHtlcRecord {
    /// A pending record of an HTLC just intercepted.
    pub fn new_pending(
        intercept_id: String,
        requested_next_hop_scid: u64,
        payment_hash: String,
        inbound_amount_msat: u64,
        expected_outbound_amount_msat: u64,
        received_at: u64,
    ) -> Self {
        Self {
            intercept_id,
            requested_next_hop_scid,
            payment_hash,
            inbound_amount_msat,
            expected_outbound_amount_msat,
            incoming_channel_id: None,
            incoming_cltv_expiry: None,
            received_at,
            status: InterceptStatus::Pending,
            resolved_at: None,
            outgoing_channel_id: None,
            outbound_amount_msat: None,
            failure_reason: None,
        }
    }

    /// Whether LDK still waits for a decision on it.
    pub fn is_pending(&self) -> bool {
        self.status == InterceptStatus::Pending
    }

    /// Why a pending-only change is refused, or `Ok` if the record is pending.
    pub fn check_pending(&self) -> Result<(), NotPending> {
        let detail = match self.status {
            InterceptStatus::Pending => return Ok(()),
            InterceptStatus::Forwarded => match &self.outgoing_channel_id {
                Some(channel_id) => format!(" (over channel {channel_id})"),
                None => String::new(),
            },
            InterceptStatus::Failed => match &self.failure_reason {
                Some(reason) => format!(" ({reason})"),
                None => String::new(),
            },
        };
        Err(NotPending {
            intercept_id: self.intercept_id.clone(),
            status: self.status.as_str(),
            detail,
        })
    }

    /// Marks a pending record forwarded over `channel_id` with `amount_msat` at `now`.
    pub fn mark_forwarded(
        &mut self,
        channel_id: String,
        amount_msat: u64,
        now: u64,
    ) -> Result<(), NotPending> {
        self.check_pending()?;
        self.status = InterceptStatus::Forwarded;
        self.outgoing_channel_id = Some(channel_id);
        self.outbound_amount_msat = Some(amount_msat);
        self.resolved_at = Some(now);
        Ok(())
    }

    /// Marks a pending record failed back for `reason` at `now`.
    pub fn mark_failed(&mut self, reason: String, now: u64) -> Result<(), NotPending> {
        self.check_pending()?;
        self.status = InterceptStatus::Failed;
        self.failure_reason = Some(reason);
        self.resolved_at = Some(now);
        Ok(())
    }

    /// Makes a resolved record pending again because LDK still holds its HTLC: the resolution
    /// never reached LDK's persisted state (xlnd stopped between the two). False if it was
    /// pending already.
    pub fn reopen(&mut self) -> bool {
        if self.is_pending() {
            return false;
        }
        self.status = InterceptStatus::Pending;
        self.resolved_at = None;
        self.outgoing_channel_id = None;
        self.outbound_amount_msat = None;
        self.failure_reason = None;
        true
    }

    /// When the time limit `timeout_secs` runs out for it, Unix seconds; the HTLC is failed back
    /// once the clock is past this second, never before.
    pub fn deadline(&self, timeout_secs: u64) -> u64 {
        self.received_at.saturating_add(timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> InterceptedHtlcRecord {
        InterceptedHtlcRecord::new_pending(
            "ab".repeat(32),
            (120 << 40) | (1 << 16),
            "cd".repeat(32),
            101_000,
            100_000,
            1_700_000_000,
        )
    }

    #[test]
    fn records_round_trip_through_json_with_lowercase_statuses() -> Result<(), serde_json::Error> {
        let mut record = pending();
        record.incoming_channel_id = Some("ef".repeat(32));
        record.incoming_cltv_expiry = Some(250);
        let json = serde_json::to_string(&record)?;
        assert!(json.contains(r#""status":"pending""#), "{json}");
        assert_eq!(
            serde_json::from_str::<InterceptedHtlcRecord>(&json)?,
            record
        );
        assert_eq!(record.mark_failed("no".to_owned(), 1_700_000_100), Ok(()));
        let json = serde_json::to_string(&record)?;
        assert!(json.contains(r#""status":"failed""#), "{json}");
        assert_eq!(
            serde_json::from_str::<InterceptedHtlcRecord>(&json)?,
            record
        );
        Ok(())
    }

    #[test]
    fn a_record_without_the_optional_fields_still_reads() -> Result<(), serde_json::Error> {
        let json = format!(
            r#"{{"intercept_id":"{}","requested_next_hop_scid":5,"payment_hash":"{}",
                "inbound_amount_msat":2,"expected_outbound_amount_msat":1,"received_at":3,
                "status":"forwarded"}}"#,
            "ab".repeat(32),
            "cd".repeat(32)
        );
        let record: InterceptedHtlcRecord = serde_json::from_str(&json)?;
        assert_eq!(record.status, InterceptStatus::Forwarded);
        assert_eq!(record.incoming_channel_id, None);
        assert_eq!(record.failure_reason, None);
        Ok(())
    }

    #[test]
    fn a_pending_record_is_forwarded_or_failed_once() {
        let mut forwarded = pending();
        assert_eq!(
            forwarded.mark_forwarded("11".repeat(32), 100_000, 10),
            Ok(())
        );
        assert_eq!(forwarded.status, InterceptStatus::Forwarded);
        assert_eq!(forwarded.resolved_at, Some(10));
        assert_eq!(forwarded.outbound_amount_msat, Some(100_000));
        let before = forwarded.clone();
        let again = forwarded.mark_failed("late".to_owned(), 11);
        assert!(again.is_err());
        assert_eq!(forwarded, before, "a refused change changes nothing");
        let message = again.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("already forwarded"), "{message}");
        assert!(message.contains(&"11".repeat(32)), "{message}");

        let mut failed = pending();
        assert_eq!(failed.mark_failed("timed out".to_owned(), 12), Ok(()));
        let before = failed.clone();
        assert!(failed.mark_forwarded("22".repeat(32), 1, 13).is_err());
        assert!(failed.mark_failed("twice".to_owned(), 13).is_err());
        assert_eq!(failed, before);
        let message = failed.check_pending().err().map(|e| e.to_string());
        assert_eq!(
            message,
            Some(format!(
                "intercepted HTLC {} is already failed (timed out)",
                "ab".repeat(32)
            ))
        );
    }

    #[test]
    fn reopening_clears_the_resolution_and_only_applies_to_resolved_records() {
        let mut record = pending();
        assert!(!record.reopen());
        let original = record.clone();
        assert_eq!(record.mark_forwarded("33".repeat(32), 5, 20), Ok(()));
        assert!(record.reopen());
        assert_eq!(record, original);
    }

    #[test]
    fn statuses_parse_from_their_names_only() {
        for status in [
            InterceptStatus::Pending,
            InterceptStatus::Forwarded,
            InterceptStatus::Failed,
        ] {
            assert_eq!(status.as_str().parse::<InterceptStatus>(), Ok(status));
        }
        assert!("settled".parse::<InterceptStatus>().is_err());
        assert!("Pending".parse::<InterceptStatus>().is_err());
    }

    #[test]
    fn the_deadline_is_the_time_limit_after_arrival() {
        assert_eq!(pending().deadline(120), 1_700_000_120);
        assert_eq!(pending().deadline(u64::MAX), u64::MAX);
    }
}
