//! The node's own payment, invoice, forward and intercepted-HTLC history, kept in their own store
//! namespaces (`payments`, `invoices`, `forwards`, `intercepted_htlcs`) and updated by the event
//! handler.
//!
//! Records are JSON so an operator can read a dump of the store, and so fields can be added
//! without a migration (unknown fields default).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::intercepts::InterceptedHtlcRecord;
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

/// The record namespaces.
pub(crate) struct Records {
    payments: Namespace,
    invoices: Namespace,
    forwards: Namespace,
    intercepted_htlcs: Namespace,
    forward_sequence: AtomicU64,
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
            forward_sequence: AtomicU64::new(next),
        })
    }

    pub(crate) fn payment(&self, payment_hash: &str) -> Result<Option<PaymentRecord>, Error> {
        get_json(&self.payments, payment_hash)
    }

    pub(crate) fn put_payment(&self, record: &PaymentRecord) -> Result<(), Error> {
        put_json(&self.payments, &record.payment_hash, record)
    }

    pub(crate) fn payments(&self) -> Result<Vec<PaymentRecord>, Error> {
        let mut all: Vec<PaymentRecord> = all_json(&self.payments)?;
        all.sort_by_key(|p| p.created_at);
        Ok(all)
    }

    pub(crate) fn invoice(&self, payment_hash: &str) -> Result<Option<InvoiceRecord>, Error> {
        get_json(&self.invoices, payment_hash)
    }

    pub(crate) fn put_invoice(&self, record: &InvoiceRecord) -> Result<(), Error> {
        put_json(&self.invoices, &record.payment_hash, record)
    }

    pub(crate) fn invoices(&self) -> Result<Vec<InvoiceRecord>, Error> {
        let mut all: Vec<InvoiceRecord> = all_json(&self.invoices)?;
        all.sort_by_key(|i| i.created_at);
        Ok(all)
    }

    pub(crate) fn add_forward(&self, record: &ForwardRecord) -> Result<(), Error> {
        let sequence = self.forward_sequence.fetch_add(1, Ordering::SeqCst);
        let value = serde_json::to_vec(record).map_err(|e| Error::Store(e.to_string()))?;
        self.forwards.put(&sequence.to_be_bytes(), &value)?;
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

    pub(crate) fn put_intercepted_htlc(&self, record: &InterceptedHtlcRecord) -> Result<(), Error> {
        put_json(&self.intercepted_htlcs, &record.intercept_id, record)
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

fn put_json<T: Serialize>(ns: &Namespace, key: &str, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Store(e.to_string()))?;
    ns.put(key.as_bytes(), &bytes)?;
    Ok(())
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
