//! The node's own payment, invoice, forward and intercepted-HTLC history, kept in their own store
//! namespaces (`payments`, `invoices`, `forwards`, `intercepted_htlcs`) and updated by the event
//! handler.
//!
//! Records are JSON so an operator can read a dump of the store, and so fields can be added
//! without a migration (unknown fields default).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::intercepts::InterceptedHtlcRecord;
use super::journal::{Change, Flush, Journal, Stream};
use super::Error;
use crate::store::{Namespace, SledStore};

/// State of an outgoing payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// HTLCs are in flight.
    Pending,
    /// The payee released the preimage.
    Succeeded,
    /// The payment was abandoned; no HTLC is left in flight.
    Failed,
}

/// One outgoing payment (BOLT11 or keysend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// Payment hash, hex.
    pub payment_hash: String,
    /// State.
    pub status: PaymentStatus,
    /// Amount delivered to the payee, msat.
    pub amount_msat: u64,
    /// Routing fees paid, msat (known once succeeded).
    pub fee_msat: Option<u64>,
    /// Preimage, hex (known once succeeded).
    pub preimage: Option<String>,
    /// Payee node id, hex.
    pub destination: Option<String>,
    /// The invoice paid, if any (none for keysend).
    pub bolt11: Option<String>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// When it was started, Unix seconds.
    pub created_at: u64,
    /// When it succeeded or failed, Unix seconds.
    #[serde(default)]
    pub completed_at: Option<u64>,
    /// The last failure one of its paths met (the failing channel and node, from the onion
    /// error), while LDK may still retry other paths.
    #[serde(default)]
    pub last_path_failure: Option<String>,
    /// Which attempt this is: 1, then one more each time a failed payment of the same invoice
    /// is paid again (the record keeps the latest attempt).
    #[serde(default = "first_attempt")]
    pub attempts: u32,
}

fn first_attempt() -> u32 {
    1
}

/// State of an invoice (an incoming payment we asked for, or a keysend we received).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    /// Not paid yet.
    Unpaid,
    /// A hold invoice whose HTLCs arrived and wait for `settle` or `cancel`.
    Held,
    /// Paid and claimed.
    Paid,
    /// Cancelled by the operator; HTLCs were failed back.
    Canceled,
    /// Expired unpaid.
    Expired,
}

/// One invoice we issued, or one keysend payment we received (with no `bolt11`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRecord {
    /// Payment hash, hex.
    pub payment_hash: String,
    /// The invoice; none for a received keysend.
    pub bolt11: Option<String>,
    /// Description.
    pub description: String,
    /// State as stored; see [`InvoiceRecord::status_at`] for expiry.
    pub status: InvoiceStatus,
    /// Amount asked for, msat (none for any-amount invoices).
    pub amount_msat: Option<u64>,
    /// Amount received, msat (when held or paid).
    pub amount_received_msat: Option<u64>,
    /// A hold invoice: its preimage comes from the operator, not from the node.
    pub is_hold: bool,
    /// Created, Unix seconds.
    pub created_at: u64,
    /// Expires, Unix seconds.
    pub expires_at: u64,
    /// Paid, Unix seconds.
    pub paid_at: Option<u64>,
    /// For a held payment: the block height after which LDK fails it back by itself.
    #[serde(default)]
    pub claim_deadline_height: Option<u32>,
}

impl InvoiceRecord {
    /// The status at `now` (Unix seconds): an unpaid invoice past its expiry is `Expired`.
    pub fn status_at(&self, now: u64) -> InvoiceStatus {
        if self.status == InvoiceStatus::Unpaid && now >= self.expires_at {
            InvoiceStatus::Expired
        } else {
            self.status
        }
    }
}

/// One HTLC we forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRecord {
    /// Incoming channel id, hex.
    pub in_channel_id: Option<String>,
    /// Outgoing channel id, hex.
    pub out_channel_id: Option<String>,
    /// Amount that came in, msat: the amount forwarded out plus the fee (none in records written
    /// before it was kept; see [`ForwardRecord::in_msat`]).
    #[serde(default)]
    pub in_amount_msat: Option<u64>,
    /// Amount forwarded out, msat.
    pub out_amount_msat: Option<u64>,
    /// Fee earned, msat.
    pub fee_msat: Option<u64>,
    /// Settled on chain rather than off chain.
    pub claimed_on_chain: bool,
    /// When it was resolved, Unix seconds.
    pub resolved_at: u64,
    /// `settled` (the payment went through us) or `failed` (we failed it back).
    #[serde(default)]
    pub status: ForwardStatus,
    /// Why it failed, for a failed forward.
    #[serde(default)]
    pub failure_reason: Option<String>,
}

impl ForwardRecord {
    /// The amount that came in, msat, where known: as recorded, or for an older record the
    /// amount forwarded out plus the fee.
    pub fn in_msat(&self) -> Option<u64> {
        self.in_amount_msat.or_else(|| {
            self.out_amount_msat
                .zip(self.fee_msat)
                .map(|(out, fee)| out.saturating_add(fee))
        })
    }
}

/// How a forward ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardStatus {
    /// The payee claimed it; we earned the fee.
    #[default]
    Settled,
    /// We failed it back to the previous hop.
    Failed,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The three record namespaces, and the journal their changes are announced in.
pub(crate) struct Records {
    payments: Namespace,
    invoices: Namespace,
    forwards: Namespace,
    intercepted_htlcs: Namespace,
    /// The preimage of each held payment the operator settled, by payment hash, until LDK
    /// reports it claimed (see [`Records::put_settle_preimage`]).
    settled_holds: Namespace,
    forward_sequence: AtomicU64,
    journal: Arc<Journal>,
    /// No unpaid invoice expires before this (Unix seconds): the expiry check reads the
    /// invoices only once one may have expired. 0: not known yet.
    next_expiry: AtomicU64,
}

impl InvoiceStatus {
    /// The name of the event of reaching this status.
    fn event(self) -> &'static str {
        match self {
            InvoiceStatus::Unpaid => "created",
            InvoiceStatus::Held => "held",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Canceled => "canceled",
            InvoiceStatus::Expired => "expired",
        }
    }
}

impl PaymentStatus {
    /// The name of the event of reaching this status.
    fn event(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
        }
    }
}

impl Records {
    pub(crate) fn open(store: &SledStore) -> Result<Self, crate::store::StoreError> {
        let forwards = store.namespace("forwards")?;
        let next = match forwards.last()? {
            Some((key, _)) => key_to_u64(&key).saturating_add(1),
            None => 0,
        };
        Ok(Self {
            payments: store.namespace("payments")?,
            invoices: store.namespace("invoices")?,
            forwards,
            intercepted_htlcs: store.namespace("intercepted_htlcs")?,
            settled_holds: store.namespace("settled_holds")?,
            forward_sequence: AtomicU64::new(next),
            next_expiry: AtomicU64::new(0),
            journal: Arc::new(Journal::open(store)?),
        })
    }

    /// The journal the records' changes are announced in.
    pub(crate) fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    pub(crate) fn payment(&self, payment_hash: &str) -> Result<Option<PaymentRecord>, Error> {
        get_json(&self.payments, payment_hash)
    }

    /// Stores `record`; a new payment, a new attempt or a new status is a `payments` event.
    /// `flush` says when it is durable.
    pub(crate) fn put_payment(&self, record: &PaymentRecord, flush: Flush) -> Result<(), Error> {
        let kind_of = |stored: Option<&[u8]>| {
            let stored = stored.and_then(|s| serde_json::from_slice::<PaymentRecord>(s).ok());
            match stored {
                Some(stored)
                    if stored.status == record.status && stored.attempts == record.attempts =>
                {
                    Change::Quiet
                }
                _ => Change::Event(record.status.event()),
            }
        };
        self.journal.write_record(
            &self.payments,
            record.payment_hash.as_bytes(),
            record,
            Stream::Payments,
            kind_of,
            flush,
        )?;
        Ok(())
    }

    pub(crate) fn payments(&self) -> Result<Vec<PaymentRecord>, Error> {
        let mut all: Vec<PaymentRecord> = all_json(&self.payments)?;
        all.sort_by_key(|p| p.created_at);
        Ok(all)
    }

    /// Stores, durably, that the operator settled the held payment of `payment_hash` with
    /// `preimage`. Written before the claim: if LDK did not hold the payment as claimable at
    /// that moment (a restart before it had written that it held it), it offers the payment
    /// again, and the event handler claims it with this preimage instead of holding it again
    /// while the operator believes it settled.
    pub(crate) fn put_settle_preimage(
        &self,
        payment_hash: &str,
        preimage: &[u8; 32],
    ) -> Result<(), Error> {
        self.settled_holds.put(payment_hash.as_bytes(), preimage)?;
        Ok(())
    }

    /// The preimage the operator settled the held payment of `payment_hash` with, if any.
    pub(crate) fn settle_preimage(&self, payment_hash: &str) -> Result<Option<[u8; 32]>, Error> {
        let stored = self.settled_holds.get(payment_hash.as_bytes())?;
        Ok(stored.and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok()))
    }

    /// Forgets a settle preimage once LDK reports the payment claimed or failed back.
    pub(crate) fn forget_settle_preimage(&self, payment_hash: &str) -> Result<(), Error> {
        self.settled_holds.remove(payment_hash.as_bytes())?;
        Ok(())
    }

    pub(crate) fn invoice(&self, payment_hash: &str) -> Result<Option<InvoiceRecord>, Error> {
        get_json(&self.invoices, payment_hash)
    }

    /// Stores `record`; a new invoice or a new status is an `invoices` event.
    pub(crate) fn put_invoice(&self, record: &InvoiceRecord, flush: Flush) -> Result<(), Error> {
        if record.status == InvoiceStatus::Unpaid {
            self.next_expiry
                .fetch_min(record.expires_at, Ordering::SeqCst);
        }
        let kind_of = |stored: Option<&[u8]>| {
            let stored = stored.and_then(|s| serde_json::from_slice::<InvoiceRecord>(s).ok());
            match stored {
                Some(stored) if stored.status == record.status => Change::Quiet,
                _ => Change::Event(record.status.event()),
            }
        };
        self.journal.write_record(
            &self.invoices,
            record.payment_hash.as_bytes(),
            record,
            Stream::Invoices,
            kind_of,
            flush,
        )?;
        Ok(())
    }

    pub(crate) fn invoices(&self) -> Result<Vec<InvoiceRecord>, Error> {
        let mut all: Vec<InvoiceRecord> = all_json(&self.invoices)?;
        all.sort_by_key(|i| i.created_at);
        Ok(all)
    }

    /// Stores every unpaid invoice past its expiry as expired (an `expired` event each).
    pub(crate) fn expire_invoices(&self, now: u64) -> Result<(), Error> {
        let next = self.next_expiry.load(Ordering::SeqCst);
        if next != 0 && now < next {
            return Ok(());
        }
        // An invoice stored during the scan lowers the mark below what the scan finds, and
        // the mark it leaves is the smaller of the two.
        self.next_expiry.store(u64::MAX, Ordering::SeqCst);
        match self.expire_unpaid(now) {
            Ok(earliest) => {
                self.next_expiry.fetch_min(earliest, Ordering::SeqCst);
                Ok(())
            }
            Err(error) => {
                // Scan again next time.
                self.next_expiry.store(0, Ordering::SeqCst);
                Err(error)
            }
        }
    }

    /// Stores every unpaid invoice expired at `now` as expired; returns when the next one
    /// expires (`u64::MAX` if none is unpaid).
    fn expire_unpaid(&self, now: u64) -> Result<u64, Error> {
        let mut earliest = u64::MAX;
        for mut invoice in self.invoices()? {
            if invoice.status != InvoiceStatus::Unpaid {
                continue;
            }
            if now < invoice.expires_at {
                earliest = earliest.min(invoice.expires_at);
                continue;
            }
            invoice.status = InvoiceStatus::Expired;
            // Only an invoice still unpaid in the store: a payment may have arrived since.
            let still_unpaid = |stored: Option<&[u8]>| {
                let stored = stored.and_then(|s| serde_json::from_slice::<InvoiceRecord>(s).ok());
                match stored {
                    Some(stored) if stored.status == InvoiceStatus::Unpaid => {
                        Change::Event(InvoiceStatus::Expired.event())
                    }
                    _ => Change::Keep,
                }
            };
            self.journal.write_record(
                &self.invoices,
                invoice.payment_hash.as_bytes(),
                &invoice,
                Stream::Invoices,
                still_unpaid,
                Flush::Now,
            )?;
        }
        Ok(earliest)
    }

    pub(crate) fn add_forward(&self, record: &ForwardRecord) -> Result<(), Error> {
        let sequence = self.forward_sequence.fetch_add(1, Ordering::SeqCst);
        let kind = match record.status {
            ForwardStatus::Settled => "settled",
            ForwardStatus::Failed => "failed",
        };
        self.journal.write_record(
            &self.forwards,
            &sequence.to_be_bytes(),
            record,
            Stream::Htlcs,
            |_| Change::Event(kind),
            // A record of LDK's `PaymentForwarded` or `HTLCHandlingFailed`: the event handler
            // must not wait for its fsync (see `Flush::Soon`).
            Flush::Soon,
        )?;
        Ok(())
    }

    pub(crate) fn forwards(&self) -> Result<Vec<ForwardRecord>, Error> {
        all_json(&self.forwards)
    }

    /// The intercepted HTLC with LDK's intercept id `intercept_id` (hex).
    pub(crate) fn intercepted_htlc(
        &self,
        intercept_id: &str,
    ) -> Result<Option<InterceptedHtlcRecord>, Error> {
        get_json(&self.intercepted_htlcs, intercept_id)
    }

    /// Stores `record`; a new intercepted HTLC (`intercepted`) or a new status (`forwarded`,
    /// `failed`, or `pending` again after a restart) is an `intercepted_htlcs` event.
    pub(crate) fn put_intercepted_htlc(&self, record: &InterceptedHtlcRecord) -> Result<(), Error> {
        let change = |stored: Option<&[u8]>| {
            let stored =
                stored.and_then(|s| serde_json::from_slice::<InterceptedHtlcRecord>(s).ok());
            match stored {
                None => Change::Event("intercepted"),
                Some(stored) if stored.status == record.status => Change::Quiet,
                Some(_) => Change::Event(record.status.as_str()),
            }
        };
        self.journal.write_record(
            &self.intercepted_htlcs,
            record.intercept_id.as_bytes(),
            record,
            Stream::InterceptedHtlcs,
            change,
            Flush::Now,
        )?;
        Ok(())
    }

    /// Every intercepted HTLC, oldest first.
    pub(crate) fn intercepted_htlcs(&self) -> Result<Vec<InterceptedHtlcRecord>, Error> {
        let mut all: Vec<InterceptedHtlcRecord> = all_json(&self.intercepted_htlcs)?;
        all.sort_by_key(|record| record.received_at);
        Ok(all)
    }
}

fn key_to_u64(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    if key.len() == 8 {
        bytes.copy_from_slice(key);
    }
    u64::from_be_bytes(bytes)
}

fn get_json<T: for<'de> Deserialize<'de>>(ns: &Namespace, key: &str) -> Result<Option<T>, Error> {
    match ns.get(key.as_bytes())? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Store(format!("record {key} is unreadable: {e}"))),
        None => Ok(None),
    }
}

fn all_json<T: for<'de> Deserialize<'de>>(ns: &Namespace) -> Result<Vec<T>, Error> {
    ns.iter_prefix(b"")?
        .into_iter()
        .map(|(key, value)| {
            serde_json::from_slice(&value).map_err(|e| {
                Error::Store(format!(
                    "record {} is unreadable: {e}",
                    String::from_utf8_lossy(&key)
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_recorded_before_in_amounts_were_kept_still_reads_with_its_in_amount() {
        let old = r#"{"in_channel_id":"aa","out_channel_id":"bb","out_amount_msat":40000000,
            "fee_msat":1040,"claimed_on_chain":false,"resolved_at":1700000000,"status":"settled",
            "failure_reason":null}"#;
        let record: Result<ForwardRecord, _> = serde_json::from_str(old);
        let record = record.map_err(|e| e.to_string());
        assert_eq!(record.as_ref().map(|r| r.in_amount_msat), Ok(None));
        assert_eq!(record.map(|r| r.in_msat()), Ok(Some(40_001_040)));
        // The oldest records have no status (only settled forwards were recorded then).
        let oldest = r#"{"in_channel_id":"aa","out_channel_id":null,"out_amount_msat":null,
            "fee_msat":null,"claimed_on_chain":false,"resolved_at":1}"#;
        let oldest: Result<ForwardRecord, _> = serde_json::from_str(oldest);
        assert_eq!(
            oldest.map(|r| (r.in_msat(), r.status)).ok(),
            Some((None, ForwardStatus::Settled))
        );
    }

    #[test]
    fn a_settle_preimage_survives_a_reopen_until_forgotten() {
        let dir = tempfile::tempdir().expect("dir");
        let hash = "ab".repeat(32);
        {
            let store = SledStore::open(dir.path()).expect("store");
            let records = Records::open(&store).expect("records");
            assert_eq!(records.settle_preimage(&hash).expect("read"), None);
            records.put_settle_preimage(&hash, &[7; 32]).expect("write");
        }
        let store = SledStore::open(dir.path()).expect("store again");
        let records = Records::open(&store).expect("records again");
        assert_eq!(records.settle_preimage(&hash).expect("read"), Some([7; 32]));
        records.forget_settle_preimage(&hash).expect("forget");
        assert_eq!(records.settle_preimage(&hash).expect("read"), None);
    }

    fn unpaid(hash: &str, expires_at: u64) -> InvoiceRecord {
        InvoiceRecord {
            payment_hash: hash.to_owned(),
            bolt11: None,
            description: String::new(),
            status: InvoiceStatus::Unpaid,
            amount_msat: Some(1000),
            amount_received_msat: None,
            is_hold: false,
            created_at: 1,
            expires_at,
            paid_at: None,
            claim_deadline_height: None,
        }
    }

    #[test]
    fn invoices_expire_once_each_with_an_event_and_paid_ones_never() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SledStore::open(dir.path()).expect("store");
        let records = Records::open(&store).expect("records");
        records
            .put_invoice(&unpaid("early", 100), Flush::Now)
            .expect("put");
        records
            .put_invoice(&unpaid("late", 200), Flush::Now)
            .expect("put");
        let mut paid = unpaid("paid", 50);
        paid.status = InvoiceStatus::Paid;
        records.put_invoice(&paid, Flush::Now).expect("put");
        let kinds = |records: &Records| -> Vec<(String, String)> {
            let events = records
                .journal()
                .read(Stream::Invoices, 0, 100)
                .expect("read");
            events
                .into_iter()
                .map(|e| {
                    (
                        e.kind,
                        e.data["payment_hash"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        };
        records.expire_invoices(99).expect("nothing expired yet");
        assert_eq!(kinds(&records).len(), 3);
        records.expire_invoices(150).expect("early expires");
        records.expire_invoices(160).expect("nothing more");
        records.expire_invoices(250).expect("late expires");
        records.expire_invoices(300).expect("nothing more");
        let events = kinds(&records);
        let expired: Vec<&str> = events
            .iter()
            .filter(|(kind, _)| kind == "expired")
            .map(|(_, hash)| hash.as_str())
            .collect();
        assert_eq!(expired, vec!["early", "late"]);
        let stored = records.invoice("paid").expect("read").map(|i| i.status);
        assert_eq!(stored, Some(InvoiceStatus::Paid));
    }
}
