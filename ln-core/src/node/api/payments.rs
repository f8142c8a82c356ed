//! Invoices (issue, hold, settle, cancel, list, wait, decode) and payments (BOLT11, keysend).

use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::PublicKey;
use lightning::ln::channelmanager::{
    Bolt11InvoiceParameters, PaymentId, RecipientOnionFields, Retry, RetryableSendFailure,
};
use lightning::routing::router::{PaymentParameters, RouteParameters};
use lightning::sign::EntropySource;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use lightning::types::string::PrintableString;
use lightning_invoice::{Bolt11InvoiceDescription, Description, RouteHint};

use crate::invoice::{ChainInvoice, InvoiceCodecError, InvoiceDescription};

use super::{blocking, parse_hex32, wait_until};
use crate::node::events::hex;
use crate::node::journal::{Flush, Stream};
use crate::node::records::{unix_now, InvoiceRecord, InvoiceStatus, PaymentRecord, PaymentStatus};
use crate::node::{Error, Node, NodeInner};

/// How long LDK keeps retrying a payment on other routes.
const PAYMENT_RETRY: Duration = Duration::from_secs(60);
/// Default wait for a payment's outcome.
pub const DEFAULT_PAYMENT_TIMEOUT: Duration = Duration::from_secs(90);
/// Default invoice expiry.
pub const DEFAULT_INVOICE_EXPIRY_SECS: u32 = 3600;
/// The largest final CLTV delta an invoice may ask for, blocks: payers (LDK by default) refuse
/// routes whose CLTV deltas add up to more than 1008 blocks, and hops need some of that.
pub const MAX_FINAL_CLTV_EXPIRY_DELTA: u16 = 800;

/// What an invoice is asked for (see [`Node::create_invoice_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceRequest {
    /// Amount, msat; none for an any-amount invoice.
    pub amount_msat: Option<u64>,
    /// Description shown to the payer.
    pub description: String,
    /// Seconds until it expires (default [`DEFAULT_INVOICE_EXPIRY_SECS`]).
    pub expiry_secs: Option<u32>,
    /// For a hold invoice: the payment hash whose preimage the operator holds.
    pub payment_hash: Option<[u8; 32]>,
    /// A route hint to put in besides those of our own channels, e.g. through an LSP's
    /// intercept SCID ([`super::parse_route_hint`]).
    pub route_hint: Option<RouteHint>,
    /// Blocks the HTLC must have left when it reaches us (default: the channel policy's, or
    /// about a day for a hold invoice). A client of an LSP that opens its channel just in time
    /// adds the LSP's confirmation blocks, plus 2.
    pub min_final_cltv_expiry_delta: Option<u16>,
}

/// A freshly issued invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedInvoice {
    /// The BOLT11 string.
    pub bolt11: String,
    /// Its payment hash, hex.
    pub payment_hash: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

/// A decoded BOLT11 invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedInvoice {
    /// Chain of the invoice (this node's; others are refused).
    pub chain: String,
    /// Network of the invoice.
    pub network: String,
    /// Payee node id.
    pub payee: PublicKey,
    /// Amount, msat (none for any-amount invoices).
    pub amount_msat: Option<u64>,
    /// Payment hash, hex.
    pub payment_hash: String,
    /// Description (or `hash:<hex>` for a description hash).
    pub description: String,
    /// Seconds after creation it expires.
    pub expiry_secs: u64,
    /// Final CLTV delta, blocks.
    pub min_final_cltv_expiry_delta: u64,
    /// Created, Unix seconds.
    pub created_at: u64,
}

impl Node {
    /// Issues a BOLT11 invoice. `amount_msat` none = any amount. With `payment_hash` it is a hold
    /// invoice: incoming HTLCs are held until [`Node::settle_invoice`] or [`Node::cancel_invoice`].
    pub fn create_invoice(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: Option<u32>,
        payment_hash: Option<[u8; 32]>,
    ) -> Result<CreatedInvoice, Error> {
        self.create_invoice_with(InvoiceRequest {
            amount_msat,
            description: description.to_owned(),
            expiry_secs,
            payment_hash,
            ..InvoiceRequest::default()
        })
    }

    /// Issues a BOLT11 invoice as `request` says: [`Node::create_invoice`] with a route hint of
    /// the caller's and a final CLTV delta of its choice.
    pub fn create_invoice_with(&self, request: InvoiceRequest) -> Result<CreatedInvoice, Error> {
        let InvoiceRequest {
            amount_msat,
            description,
            expiry_secs,
            payment_hash,
            route_hint,
            min_final_cltv_expiry_delta,
        } = request;
        let inner = &self.inner;
        if let Some(amount) = amount_msat {
            if amount == 0 {
                return Err(Error::InvalidParameter(
                    "amount_msat must be positive (or \"any\")".to_owned(),
                ));
            }
            check_htlc_minimum(inner, amount)?;
        }
        let expiry_secs = expiry_secs.unwrap_or(DEFAULT_INVOICE_EXPIRY_SECS);
        if expiry_secs == 0 {
            return Err(Error::InvalidParameter(
                "expiry_secs must be positive".to_owned(),
            ));
        }
        if let Some(hash) = payment_hash {
            if inner.records.invoice(&hex(&hash))?.is_some() {
                return Err(Error::InvalidParameter(format!(
                    "an invoice for payment hash {} already exists",
                    hex(&hash)
                )));
            }
        }
        if let Some(hint) = &route_hint {
            if hint.0.iter().any(|hop| hop.src_node_id == inner.node_id) {
                return Err(Error::InvalidParameter(
                    "route_hint starts at this node; give the hint of the node that forwards to us (the LSP's intercept_scid)".to_owned(),
                ));
            }
        }
        let minimum_final_cltv = inner.policy.min_final_cltv_expiry_delta;
        if let Some(delta) = min_final_cltv_expiry_delta {
            if !(minimum_final_cltv..=MAX_FINAL_CLTV_EXPIRY_DELTA).contains(&delta) {
                return Err(Error::InvalidParameter(format!(
                    "min_final_cltv_expiry_delta {delta} is outside {minimum_final_cltv}..={MAX_FINAL_CLTV_EXPIRY_DELTA} blocks"
                )));
            }
        }
        let description = Description::new(description).map_err(|e| {
            Error::InvalidParameter(format!("description: {e} (at most 639 bytes)"))
        })?;
        let is_hold = payment_hash.is_some();
        let final_cltv = match min_final_cltv_expiry_delta {
            Some(delta) => delta,
            None if is_hold => {
                // The hold window is about this delta minus LDK's 39-block fail-back buffer.
                let day = inner.params.blocks_for(Duration::from_secs(24 * 3600));
                u16::try_from(day.clamp(144, 500)).unwrap_or(500)
            }
            None => minimum_final_cltv,
        };
        let invoice = inner
            .channel_manager
            .create_bolt11_invoice(Bolt11InvoiceParameters {
                amount_msats: amount_msat,
                description: Bolt11InvoiceDescription::Direct(description.clone()),
                invoice_expiry_delta_secs: Some(expiry_secs),
                min_final_cltv_expiry_delta: Some(final_cltv),
                payment_hash: payment_hash.map(PaymentHash),
            })
            .map_err(|e| Error::InvoiceCreationFailed(format!("{e:?}")))?;
        // LDK writes the prefix of its `Network`; re-sign under this chain's own prefix.
        let bolt11 = crate::invoice::encode_with_route_hints(
            &inner.params,
            &invoice,
            route_hint.as_slice(),
            &inner.keys.node_secret_key(),
        )
        .map_err(|e| Error::InvoiceCreationFailed(e.to_string()))?;
        let created_at = invoice.duration_since_epoch().as_secs();
        let expires_at = created_at + u64::from(expiry_secs);
        let hash = hex(invoice.payment_hash().as_byte_array());
        let record = InvoiceRecord {
            payment_hash: hash.clone(),
            bolt11: Some(bolt11.clone()),
            description: description.to_string(),
            status: InvoiceStatus::Unpaid,
            amount_msat,
            amount_received_msat: None,
            is_hold,
            created_at,
            expires_at,
            paid_at: None,
            claim_deadline_height: None,
        };
        inner.records.put_invoice(&record, Flush::Now)?;
        tracing::info!(payment_hash = %hash, ?amount_msat, is_hold, final_cltv, has_route_hint = route_hint.is_some(), "invoice created");
        Ok(CreatedInvoice {
            bolt11,
            payment_hash: hash,
            expires_at,
        })
    }

    /// Settles a held hold-invoice payment with its preimage.
    pub fn settle_invoice(&self, preimage_hex: &str) -> Result<(), Error> {
        let preimage = parse_hex32("preimage", preimage_hex)?;
        let hash = sha256::Hash::hash(&preimage).to_byte_array();
        let record = self.invoice_record(&hex(&hash))?;
        if !record.is_hold {
            return Err(Error::InvoiceState(
                "not a hold invoice; it settles by itself".to_owned(),
            ));
        }
        if record.status != InvoiceStatus::Held {
            return Err(Error::InvoiceState(format!(
                "the invoice is {:?}, not held; settle only once its payment is held (see waitinvoice)",
                record.status_at(unix_now())
            ).to_lowercase()));
        }
        // Written before the claim: if LDK does not hold the payment as claimable right now (a
        // restart before it had written that it did), it offers the payment again, and the
        // event handler claims it with this preimage instead of holding it again.
        self.inner
            .records
            .put_settle_preimage(&record.payment_hash, &preimage)?;
        self.inner
            .channel_manager
            .claim_funds(PaymentPreimage(preimage));
        tracing::info!(payment_hash = %record.payment_hash, "hold invoice settled");
        Ok(())
    }

    /// Cancels an unpaid or held invoice; held HTLCs are failed back.
    pub fn cancel_invoice(&self, payment_hash_hex: &str) -> Result<(), Error> {
        let hash = parse_hex32("payment_hash", payment_hash_hex)?;
        let mut record = self.invoice_record(&hex(&hash))?;
        match record.status {
            InvoiceStatus::Paid => {
                return Err(Error::InvoiceState(
                    "the invoice is already paid".to_owned(),
                ))
            }
            InvoiceStatus::Canceled => return Ok(()),
            _ => {}
        }
        record.status = InvoiceStatus::Canceled;
        self.inner.records.put_invoice(&record, Flush::Now)?;
        self.inner
            .channel_manager
            .fail_htlc_backwards(&PaymentHash(hash));
        self.inner.notifications.invoices.notify_waiters();
        tracing::info!(payment_hash = %record.payment_hash, "invoice canceled");
        Ok(())
    }

    /// Invoices (and received keysends), oldest first; one if `payment_hash` is given.
    pub fn list_invoices(&self, payment_hash: Option<&str>) -> Result<Vec<InvoiceRecord>, Error> {
        let now = unix_now();
        let mut records = match payment_hash {
            Some(hash) => {
                let hash = parse_hex32("payment_hash", hash)?;
                self.inner
                    .records
                    .invoice(&hex(&hash))?
                    .into_iter()
                    .collect()
            }
            None => self.inner.records.invoices()?,
        };
        for record in &mut records {
            record.status = record.status_at(now);
        }
        Ok(records)
    }

    /// Waits until the invoice is held, paid, canceled or expired (at most `timeout`).
    pub async fn wait_invoice(
        &self,
        payment_hash: &str,
        timeout: Duration,
    ) -> Result<InvoiceRecord, Error> {
        let hash = hex(&parse_hex32("payment_hash", payment_hash)?);
        self.invoice_record(&hash)?;
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + timeout;
        let found = wait_until(inner, &inner.notifications.invoices, timeout, || async {
            let record = inner.records.invoice(&hash).ok().flatten()?;
            let status = record.status_at(unix_now());
            (status != InvoiceStatus::Unpaid).then_some(InvoiceRecord { status, ..record })
        })
        .await;
        let still_unpaid = || Error::Timeout(format!("invoice {hash} is still unpaid"));
        let found = found.ok_or_else(still_unpaid)?;
        on_disk_by(inner, deadline, Stream::Invoices, || {
            format!("invoice {hash} is no longer unpaid")
        })
        .await?;
        Ok(found)
    }

    /// Decodes an invoice of this node's chain.
    pub fn decode_invoice(&self, bolt11: &str) -> Result<DecodedInvoice, Error> {
        let invoice = parse_invoice(&self.inner, bolt11)?;
        let description = match &invoice.description {
            InvoiceDescription::Direct(text) => PrintableString(text).to_string(),
            InvoiceDescription::Hash(hash) => format!("hash:{}", hex(hash)),
        };
        Ok(DecodedInvoice {
            chain: self.inner.params.chain.to_string(),
            network: self.inner.params.network.to_string(),
            payee: invoice.payee,
            amount_msat: invoice.amount_msat,
            payment_hash: hex(&invoice.payment_hash),
            description,
            expiry_secs: invoice.expiry_secs,
            min_final_cltv_expiry_delta: invoice.min_final_cltv_expiry_delta,
            created_at: invoice.created_at,
        })
    }

    /// Pays a BOLT11 invoice and waits for the outcome (at most `timeout`). `amount_msat` only
    /// for any-amount invoices. The result has status `succeeded` or `failed`.
    pub async fn pay_invoice(
        &self,
        bolt11: &str,
        amount_msat: Option<u64>,
        max_fee_msat: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<PaymentRecord, Error> {
        let inner = &self.inner;
        let invoice = parse_invoice(inner, bolt11)?;
        if invoice.is_expired_at(unix_now()) {
            return Err(Error::InvoiceExpired {
                expired_at: invoice.expires_at(),
            });
        }
        let amount = invoice_amount(inner, &invoice, amount_msat)?;
        if invoice.payee == inner.node_id {
            return Err(Error::InvalidParameter("the invoice is our own".to_owned()));
        }
        let hash = hex(&invoice.payment_hash);
        let start = InvoicePayment {
            invoice,
            bolt11: bolt11.trim().to_owned(),
            amount_msat: amount,
            max_fee_msat,
        };
        let timeout = timeout.unwrap_or(DEFAULT_PAYMENT_TIMEOUT);
        let deadline = tokio::time::Instant::now() + timeout;
        let started = {
            let inner = Arc::clone(inner);
            blocking(move || start.begin(&inner)).await?
        };
        match started {
            Started::New(attempt) => {
                let number = attempt.number;
                attempt.send(inner, deadline).await?;
                tracing::info!(payment_hash = %hash, amount_msat = amount, attempt = number, "payment sent");
            }
            Started::InFlight => {
                tracing::info!(payment_hash = %hash, "the invoice is being paid already; waiting for that payment");
            }
            Started::AlreadySucceeded(record) => return Ok(record),
        }
        self.wait_payment(
            &hash,
            deadline.saturating_duration_since(tokio::time::Instant::now()),
        )
        .await
    }

    /// Sends `amount_msat` to `destination` without an invoice (keysend) and waits for the
    /// outcome.
    pub async fn keysend(
        &self,
        destination: PublicKey,
        amount_msat: u64,
        max_fee_msat: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<PaymentRecord, Error> {
        let inner = &self.inner;
        if amount_msat == 0 {
            return Err(Error::InvalidParameter(
                "amount_msat must be positive".to_owned(),
            ));
        }
        if destination == inner.node_id {
            return Err(Error::InvalidParameter(
                "cannot keysend to ourselves".to_owned(),
            ));
        }
        check_htlc_minimum(inner, amount_msat)?;
        let timeout = timeout.unwrap_or(DEFAULT_PAYMENT_TIMEOUT);
        let deadline = tokio::time::Instant::now() + timeout;
        let preimage = PaymentPreimage(inner.keys.get_secure_random_bytes());
        let hash_bytes = sha256::Hash::hash(&preimage.0).to_byte_array();
        let hash = hex(&hash_bytes);
        let final_cltv = u32::from(inner.policy.min_final_cltv_expiry_delta);
        let attempt = Attempt {
            hash: hash.clone(),
            payment_hash: PaymentHash(hash_bytes),
            payment_id: PaymentId(hash_bytes),
            number: 1,
            payee: destination,
            onion: RecipientOnionFields::spontaneous_empty(),
            route_params: route_params(
                PaymentParameters::for_keysend(destination, final_cltv, false),
                amount_msat,
                max_fee_msat,
            ),
            keysend_preimage: Some(preimage),
            invoice_expires_at: None,
        };
        let record = new_payment(&hash, amount_msat, destination, None);
        {
            let inner = Arc::clone(inner);
            blocking(move || inner.records.put_payment(&record, Flush::Now)).await?;
        }
        attempt.send(inner, deadline).await?;
        tracing::info!(payment_hash = %hash, amount_msat, %destination, "keysend sent");
        self.wait_payment(
            &hash,
            deadline.saturating_duration_since(tokio::time::Instant::now()),
        )
        .await
    }

    /// Outgoing payments, oldest first; one if `payment_hash` is given.
    pub fn list_payments(&self, payment_hash: Option<&str>) -> Result<Vec<PaymentRecord>, Error> {
        match payment_hash {
            Some(hash) => {
                let hash = parse_hex32("payment_hash", hash)?;
                Ok(self
                    .inner
                    .records
                    .payment(&hex(&hash))?
                    .into_iter()
                    .collect())
            }
            None => self.inner.records.payments(),
        }
    }

    /// Payments this node forwarded, oldest first.
    pub fn list_forwards(&self) -> Result<Vec<crate::node::ForwardRecord>, Error> {
        self.inner.records.forwards()
    }

    async fn wait_payment(&self, hash: &str, timeout: Duration) -> Result<PaymentRecord, Error> {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + timeout;
        let watch = inner.notifications.payments.watch(hash);
        let done = wait_until(inner, watch.notified(), timeout, || async {
            let record = inner.records.payment(hash).ok().flatten()?;
            (record.status != PaymentStatus::Pending).then_some(record)
        })
        .await;
        let still_pending = || {
            Error::Timeout(format!(
                "payment {hash} is still pending; its outcome will show in listpayments"
            ))
        };
        let done = done.ok_or_else(still_pending)?;
        on_disk_by(inner, deadline, Stream::Payments, || {
            format!("payment {hash} has ended")
        })
        .await?;
        Ok(done)
    }

    fn invoice_record(&self, hash: &str) -> Result<InvoiceRecord, Error> {
        self.inner
            .records
            .invoice(hash)?
            .ok_or_else(|| Error::NotFound(format!("no invoice with payment hash {hash}")))
    }
}

/// Waits, until `deadline`, for every event of `stream` stored so far to be durable. Outcomes
/// that LDK reports are recorded durable soon after (`journal::Flush::Soon`); a wait that saw one
/// answers only once it is, so that no crash takes back what the caller was told. If it is not
/// by then, the store is failing: the error says so, with `what` the wait saw.
async fn on_disk_by(
    inner: &NodeInner,
    deadline: tokio::time::Instant,
    stream: Stream,
    what: impl FnOnce() -> String,
) -> Result<(), Error> {
    let durable = inner.records.journal().durable(stream);
    tokio::time::timeout_at(deadline, durable)
        .await
        .map_err(|_| {
            Error::Timeout(format!(
            "{}, but that is not on disk yet: the node's store is failing to write (see xlnd's \
             log). The list methods show the outcome now, the event streams once a write succeeds",
            what()
        ))
        })
}

/// Parses an invoice and checks it is for this node's chain and network.
pub(crate) fn parse_invoice(inner: &NodeInner, bolt11: &str) -> Result<ChainInvoice, Error> {
    crate::invoice::parse(&inner.params, bolt11).map_err(|e| match e {
        InvoiceCodecError::WrongChain { expected, found } => Error::InvoiceWrongChain {
            expected: format!(
                "{} {} ({expected})",
                inner.params.chain, inner.params.network
            ),
            found,
        },
        other => Error::InvalidInvoice(other.to_string()),
    })
}

/// What paying `invoice` sends: its own amount, or `amount_msat` for an any-amount invoice.
pub(crate) fn invoice_amount(
    inner: &NodeInner,
    invoice: &ChainInvoice,
    amount_msat: Option<u64>,
) -> Result<u64, Error> {
    let amount = match (invoice.amount_msat, amount_msat) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidParameter(
                "the invoice has an amount; do not give amount_msat".to_owned(),
            ))
        }
        (None, None) => {
            return Err(Error::InvalidParameter(
                "the invoice has no amount; give amount_msat".to_owned(),
            ))
        }
        (Some(a), None) | (None, Some(a)) => a,
    };
    if amount == 0 {
        return Err(Error::InvalidParameter(
            "amount_msat must be positive".to_owned(),
        ));
    }
    check_htlc_minimum(inner, amount)?;
    Ok(amount)
}

pub(crate) fn check_htlc_minimum(inner: &NodeInner, amount_msat: u64) -> Result<(), Error> {
    let minimum_msat = inner.policy.htlc_minimum_msat;
    if amount_msat < minimum_msat {
        return Err(Error::AmountBelowHtlcMinimum {
            amount_msat,
            minimum_msat,
        });
    }
    Ok(())
}

/// A BOLT11 payment about to start.
struct InvoicePayment {
    invoice: ChainInvoice,
    bolt11: String,
    amount_msat: u64,
    max_fee_msat: Option<u64>,
}

/// What a `pay` call found or did.
enum Started {
    /// A new attempt, recorded as pending: this call sends it.
    New(Box<Attempt>),
    /// The same invoice is being paid by an earlier call: wait for that payment's outcome.
    InFlight,
    /// The invoice was paid already: that payment's record.
    AlreadySucceeded(PaymentRecord),
}

impl InvoicePayment {
    /// Decides, for all `pay` calls of one payment hash one at a time, whether this call makes a
    /// new attempt, joins the payment in flight, or finds it done; records a new attempt as
    /// pending. Blocking: store writes.
    ///
    /// Its LDK `PaymentId` is the payment hash (as in LDK Node), so LDK too refuses a second
    /// send; a new attempt after a failure gets an id derived from the hash and the attempt
    /// number, since LDK remembers failed ids for a while.
    fn begin(self, inner: &NodeInner) -> Result<Started, Error> {
        let hash = hex(&self.invoice.payment_hash);
        let _one_at_a_time = crate::store::lock_outside_the_runtime(&inner.payment_starts);
        let number = match inner.records.payment(&hash)? {
            Some(existing) if existing.status != PaymentStatus::Failed => {
                if existing.bolt11.as_deref() != Some(self.bolt11.as_str())
                    || existing.amount_msat != self.amount_msat
                {
                    return Err(Error::DuplicatePayment(format!(
                        "payment hash {hash} belongs to a payment of {} msat that is {}, of another invoice or amount; it is not paid again",
                        existing.amount_msat,
                        if existing.status == PaymentStatus::Pending { "in flight" } else { "done" },
                    )));
                }
                return Ok(match existing.status {
                    PaymentStatus::Succeeded => Started::AlreadySucceeded(existing),
                    _ => Started::InFlight,
                });
            }
            Some(failed) => failed.attempts.saturating_add(1),
            None => 1,
        };
        let mut record = new_payment(
            &hash,
            self.amount_msat,
            self.invoice.payee,
            Some(self.bolt11.clone()),
        );
        record.attempts = number;
        inner.records.put_payment(&record, Flush::Now)?;
        // What `pay_for_bolt11_invoice` does, from our own decoding, which also reads invoices
        // of chains lightning-invoice does not know.
        Ok(Started::New(Box::new(Attempt {
            hash,
            payment_hash: PaymentHash(self.invoice.payment_hash),
            payment_id: attempt_payment_id(&self.invoice.payment_hash, number),
            number,
            payee: self.invoice.payee,
            onion: crate::invoice::recipient_onion(&self.invoice),
            route_params: route_params(
                crate::invoice::payment_params(&self.invoice),
                self.amount_msat,
                self.max_fee_msat,
            ),
            keysend_preimage: None,
            invoice_expires_at: Some(self.invoice.expires_at()),
        })))
    }
}

/// One attempt to pay, recorded as pending, with everything LDK needs to send it.
struct Attempt {
    hash: String,
    payment_hash: PaymentHash,
    payment_id: PaymentId,
    /// 1 for the first attempt of a payment hash.
    number: u32,
    payee: PublicKey,
    onion: RecipientOnionFields,
    route_params: RouteParameters,
    /// For keysend: the preimage we chose.
    keysend_preimage: Option<PaymentPreimage>,
    /// For an invoice: when it expires, Unix seconds.
    invoice_expires_at: Option<u64>,
}

/// What one hand-over of an attempt to LDK came to.
enum SendNow {
    /// LDK took it.
    Sent,
    /// LDK found no route because our own HTLCs in flight hold the room the payment needs: it
    /// waits in the send queue.
    Held,
    /// LDK refused it for another reason.
    Refused(RetryableSendFailure),
}

/// How often a payment with no route looks again while gossip is still arriving.
const ROUTE_RETRY: Duration = Duration::from_millis(500);
/// How often the first payment in the send queue looks for room. Our HTLCs end at the pace of
/// monitor writes (a few milliseconds), and the look reads only our channels' limits.
const SEND_QUEUE_POLL: Duration = Duration::from_millis(2);

impl Attempt {
    /// Hands the attempt to LDK. When no route is found while gossip is still arriving (the
    /// node started, or a channel was announced, in the last minute) and our channels could
    /// carry the amount, or while HTLCs of our channels are being settled (a payment received a
    /// moment ago), looks again every half second until `deadline` instead of failing at once.
    /// When our own HTLCs in flight fill a channel (its HTLC slots or its in-flight value), or
    /// payments wait for that already, waits its turn in the send queue. When LDK cannot send
    /// it, ends the record as failed and returns why, naming the limiting fact.
    async fn send(
        self,
        inner: &Arc<NodeInner>,
        deadline: tokio::time::Instant,
    ) -> Result<(), Error> {
        let started = tokio::time::Instant::now();
        let attempt = Arc::new(self);
        let amount_msat = attempt.route_params.final_value_msat;
        loop {
            // First come, first served: while payments of ours wait for room, a new one that
            // needs room too waits behind them instead of taking the next free slot.
            let behind_others =
                inner.send_queue.waiting() > 0 && inner.own_htlcs_hold_capacity(amount_msat);
            let first_try = if behind_others {
                None
            } else {
                let (inner, attempt) = (Arc::clone(inner), Arc::clone(&attempt));
                Some(blocking(move || Ok(attempt.send_now(&inner))).await?)
            };
            let failure = match first_try {
                Some(SendNow::Sent) => return Ok(()),
                Some(SendNow::Refused(failure)) => failure,
                // Our own HTLCs hold the room it needs, or others wait for it already.
                Some(SendNow::Held) | None => match attempt.send_in_turn(inner, deadline).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(failure)) => failure,
                    Err(error) => return attempt.fail(inner, error).await,
                },
            };
            // A missing path can come with gossip (our own channels' limits cannot), and
            // balance with HTLCs being settled.
            let keep_waiting = matches!(failure, RetryableSendFailure::RouteNotFound)
                && ((inner.gossip_settling() && inner.could_leave_now(&attempt.route_params))
                    || inner.liquidity_settling())
                && tokio::time::Instant::now() + ROUTE_RETRY < deadline;
            if keep_waiting {
                tokio::time::sleep(ROUTE_RETRY).await;
                continue;
            }
            let waited = started.elapsed();
            let error = {
                // The explanation runs the router: off the runtime's threads.
                let (inner, attempt) = (Arc::clone(inner), Arc::clone(&attempt));
                blocking(move || Ok(attempt.failure(&inner, failure, waited))).await?
            };
            return attempt.fail(inner, error).await;
        }
    }

    /// Waits in the send queue until this payment is first in line and our own HTLCs leave
    /// room for it, then sends it. `Ok(Err(_))`: LDK refused it for another reason, which the
    /// caller reports; `Err(_)`: the queue was full or `deadline` came first, nothing sent.
    async fn send_in_turn(
        self: &Arc<Self>,
        inner: &Arc<NodeInner>,
        deadline: tokio::time::Instant,
    ) -> Result<Result<(), RetryableSendFailure>, Error> {
        let amount_msat = self.route_params.final_value_msat;
        let queued_at = tokio::time::Instant::now();
        let queue = &inner.send_queue;
        let Some(place) = queue.join() else {
            return Err(Error::SendQueue(format!(
                "{} payments of ours already wait for HTLC slots or in-flight value that our \
                 payments in flight hold; the payment was not sent, try again when some have ended",
                queue.limit()
            )));
        };
        let timed_out = |waiting: usize| {
            Error::SendQueue(format!(
                "the call's timeout came after {:.1} s in the send queue, waiting behind our own \
                 payments in flight for an HTLC slot or in-flight value ({waiting} payments were \
                 waiting); the payment was not sent",
                queued_at.elapsed().as_secs_f64()
            ))
        };
        let Some(_first) = place.first_in_line(deadline).await else {
            return Err(timed_out(queue.waiting()));
        };
        loop {
            if !inner.own_htlcs_hold_capacity(amount_msat) {
                let (inner, attempt) = (Arc::clone(inner), Arc::clone(self));
                match blocking(move || Ok(attempt.send_now(&inner))).await? {
                    SendNow::Sent => return Ok(Ok(())),
                    SendNow::Refused(failure) => return Ok(Err(failure)),
                    // A forward or LDK's retry took the room in between: wait on.
                    SendNow::Held => {}
                }
            }
            if tokio::time::Instant::now() + SEND_QUEUE_POLL >= deadline {
                return Err(timed_out(queue.waiting()));
            }
            tokio::time::sleep(SEND_QUEUE_POLL).await;
        }
    }

    /// Ends the payment's record as failed with `error`, and returns it.
    async fn fail(self: &Arc<Self>, inner: &Arc<NodeInner>, error: Error) -> Result<(), Error> {
        let (inner, attempt) = (Arc::clone(inner), Arc::clone(self));
        blocking(move || {
            if let Some(record) = inner.records.payment(&attempt.hash)? {
                fail_record(&inner, record, &error)?;
            }
            Err(error)
        })
        .await
    }

    /// Hands the attempt to LDK once, with our sends' lock held across a look at our
    /// channels, the send, and a second look when LDK found no route.
    fn send_now(&self, inner: &NodeInner) -> SendNow {
        let _one_at_a_time = inner.send_queue.one_send_at_a_time();
        let amount_msat = self.route_params.final_value_msat;
        // The first look must come after the lock: taken before it, it could see a free HTLC
        // slot that another send of ours took a moment later. LDK then found the channel full,
        // and when one of our HTLCs had ended by the second look, neither look saw our HTLCs
        // hold the room and the payment failed with "no route" instead of queueing (2 of 1,000
        // keysends at 400 in flight did). Under the lock only LDK adds HTLCs to our channels
        // (the HTLCs it forwards, its own retries), and the second look catches those.
        let held_before = inner.own_htlcs_hold_capacity(amount_msat);
        match self.try_send(inner) {
            Ok(()) => SendNow::Sent,
            Err(RetryableSendFailure::RouteNotFound)
                if held_before || inner.own_htlcs_hold_capacity(amount_msat) =>
            {
                SendNow::Held
            }
            Err(failure) => SendNow::Refused(failure),
        }
    }

    /// LDK's send; the caller holds the send queue's `one_send_at_a_time`.
    fn try_send(&self, inner: &NodeInner) -> Result<(), RetryableSendFailure> {
        // A `RouteNotFound` here is queued, retried or explained by the caller.
        let _no_route_handled = crate::logging::NoRouteHandled::scope();
        let retry = Retry::Timeout(PAYMENT_RETRY);
        match self.keysend_preimage {
            Some(preimage) => inner
                .channel_manager
                .send_spontaneous_payment(
                    Some(preimage),
                    self.onion.clone(),
                    self.payment_id,
                    self.route_params.clone(),
                    retry,
                )
                .map(drop),
            None => inner.channel_manager.send_payment(
                self.payment_hash,
                self.onion.clone(),
                self.payment_id,
                self.route_params.clone(),
                retry,
            ),
        }
    }

    /// Why LDK could not send it, in words an operator can act on.
    fn failure(&self, inner: &NodeInner, failure: RetryableSendFailure, waited: Duration) -> Error {
        match failure {
            RetryableSendFailure::RouteNotFound => {
                inner.log_no_route_diagnosis(&self.payee, &self.route_params);
                let why = inner.explain_no_route(&self.payee, &self.route_params);
                Error::RouteNotFound(if waited >= ROUTE_RETRY {
                    format!(
                        "{why} (waited {} s for gossip and settling HTLCs)",
                        waited.as_secs()
                    )
                } else {
                    why
                })
            }
            RetryableSendFailure::DuplicatePayment => Error::DuplicatePayment(format!(
                "a payment with hash {} was already sent or is in flight",
                self.hash
            )),
            RetryableSendFailure::PaymentExpired => Error::InvoiceExpired {
                expired_at: self.invoice_expires_at.unwrap_or_else(unix_now),
            },
            other => Error::PaymentFailed(format!("{other:?}")),
        }
    }
}

/// LDK's id of attempt `attempt` to pay `payment_hash`: the hash itself for the first, then
/// SHA256(hash || attempt).
fn attempt_payment_id(payment_hash: &[u8; 32], attempt: u32) -> PaymentId {
    if attempt <= 1 {
        return PaymentId(*payment_hash);
    }
    let mut engine = sha256::Hash::engine();
    bitcoin::hashes::HashEngine::input(&mut engine, payment_hash);
    bitcoin::hashes::HashEngine::input(&mut engine, &attempt.to_le_bytes());
    PaymentId(sha256::Hash::from_engine(engine).to_byte_array())
}

fn new_payment(
    hash: &str,
    amount_msat: u64,
    destination: PublicKey,
    bolt11: Option<String>,
) -> PaymentRecord {
    PaymentRecord {
        payment_hash: hash.to_owned(),
        status: PaymentStatus::Pending,
        amount_msat,
        fee_msat: None,
        preimage: None,
        destination: Some(destination.to_string()),
        bolt11,
        failure_reason: None,
        created_at: unix_now(),
        completed_at: None,
        last_path_failure: None,
        attempts: 1,
    }
}

fn fail_record(inner: &NodeInner, mut record: PaymentRecord, error: &Error) -> Result<(), Error> {
    record.status = PaymentStatus::Failed;
    record.failure_reason = Some(error.to_string());
    record.completed_at = Some(unix_now());
    inner.records.put_payment(&record, Flush::Now)
}

/// Route parameters for `amount_msat`, capping routing fees at `max_fee_msat` when given (LDK's
/// default cap otherwise).
pub(crate) fn route_params(
    payment_params: PaymentParameters,
    amount_msat: u64,
    max_fee_msat: Option<u64>,
) -> RouteParameters {
    let mut params = RouteParameters::from_payment_params_and_value(payment_params, amount_msat);
    if max_fee_msat.is_some() {
        params.max_total_routing_fee_msat = max_fee_msat;
    }
    params
}
