//! Invoices (issue, hold, settle, cancel, list, wait, decode) and payments (BOLT11, keysend).

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
use lightning_invoice::{Bolt11InvoiceDescription, Description};

use crate::invoice::{ChainInvoice, InvoiceCodecError, InvoiceDescription};

use super::{parse_hex32, wait_until};
use crate::node::events::hex;
use crate::node::records::{unix_now, InvoiceRecord, InvoiceStatus, PaymentRecord, PaymentStatus};
use crate::node::{Error, Node, NodeInner};

/// How long LDK keeps retrying a payment on other routes.
const PAYMENT_RETRY: Duration = Duration::from_secs(60);
/// Default wait for a payment's outcome.
pub const DEFAULT_PAYMENT_TIMEOUT: Duration = Duration::from_secs(90);
/// Default invoice expiry.
pub const DEFAULT_INVOICE_EXPIRY_SECS: u32 = 3600;

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
        let description = Description::new(description.to_owned()).map_err(|e| {
            Error::InvalidParameter(format!("description: {e} (at most 639 bytes)"))
        })?;
        let is_hold = payment_hash.is_some();
        let final_cltv = if is_hold {
            // The hold window is about this delta minus LDK's 39-block fail-back buffer.
            let day = inner.params.blocks_for(Duration::from_secs(24 * 3600));
            u16::try_from(day.clamp(144, 500)).unwrap_or(500)
        } else {
            inner.policy.min_final_cltv_expiry_delta
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
        let bolt11 = crate::invoice::encode(&inner.params, &invoice, &inner.keys.node_secret_key())
            .map_err(|e| Error::InvoiceCreationFailed(e.to_string()))?;
        let created_at = invoice.duration_since_epoch().as_secs();
        let expires_at = created_at + u64::from(expiry_secs);
        let hash = hex(invoice.payment_hash().as_byte_array());
        inner.records.put_invoice(&InvoiceRecord {
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
        })?;
        tracing::info!(payment_hash = %hash, ?amount_msat, is_hold, "invoice created");
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
        self.inner.records.put_invoice(&record)?;
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
        let found = wait_until(inner, &inner.notifications.invoices, timeout, || async {
            let record = inner.records.invoice(&hash).ok().flatten()?;
            let status = record.status_at(unix_now());
            (status != InvoiceStatus::Unpaid).then_some(InvoiceRecord { status, ..record })
        })
        .await;
        found.ok_or_else(|| Error::Timeout(format!("invoice {hash} is still unpaid")))
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
        let payee = invoice.payee;
        if payee == inner.node_id {
            return Err(Error::InvalidParameter("the invoice is our own".to_owned()));
        }
        let hash = hex(&invoice.payment_hash);
        check_not_paid(inner, &hash)?;
        let record = new_payment(&hash, amount, payee, Some(bolt11.trim().to_owned()));
        inner.records.put_payment(&record)?;
        let payment_id = PaymentId(inner.keys.get_secure_random_bytes());
        // What `pay_for_bolt11_invoice` does, from our own decoding, which also reads invoices
        // of chains lightning-invoice does not know.
        let sent = inner.channel_manager.send_payment(
            PaymentHash(invoice.payment_hash),
            crate::invoice::recipient_onion(&invoice),
            payment_id,
            route_params(
                crate::invoice::payment_params(&invoice),
                amount,
                max_fee_msat,
            ),
            Retry::Timeout(PAYMENT_RETRY),
        );
        fail_if_refused(inner, record, &hash, sent)?;
        tracing::info!(payment_hash = %hash, amount_msat = amount, "payment sent");
        self.wait_payment(&hash, timeout.unwrap_or(DEFAULT_PAYMENT_TIMEOUT))
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
        let preimage = PaymentPreimage(inner.keys.get_secure_random_bytes());
        let hash_bytes = sha256::Hash::hash(&preimage.0).to_byte_array();
        let hash = hex(&hash_bytes);
        let record = new_payment(&hash, amount_msat, destination, None);
        inner.records.put_payment(&record)?;
        let final_cltv = u32::from(inner.policy.min_final_cltv_expiry_delta);
        let sent = inner.channel_manager.send_spontaneous_payment(
            Some(preimage),
            RecipientOnionFields::spontaneous_empty(),
            PaymentId(hash_bytes),
            route_params(
                PaymentParameters::for_keysend(destination, final_cltv, false),
                amount_msat,
                max_fee_msat,
            ),
            Retry::Timeout(PAYMENT_RETRY),
        );
        fail_if_refused(inner, record, &hash, sent)?;
        tracing::info!(payment_hash = %hash, amount_msat, %destination, "keysend sent");
        self.wait_payment(&hash, timeout.unwrap_or(DEFAULT_PAYMENT_TIMEOUT))
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
        let done = wait_until(inner, &inner.notifications.payments, timeout, || async {
            let record = inner.records.payment(hash).ok().flatten()?;
            (record.status != PaymentStatus::Pending).then_some(record)
        })
        .await;
        done.ok_or_else(|| {
            Error::Timeout(format!(
                "payment {hash} is still pending; its outcome will show in listpayments"
            ))
        })
    }

    fn invoice_record(&self, hash: &str) -> Result<InvoiceRecord, Error> {
        self.inner
            .records
            .invoice(hash)?
            .ok_or_else(|| Error::NotFound(format!("no invoice with payment hash {hash}")))
    }
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

fn check_htlc_minimum(inner: &NodeInner, amount_msat: u64) -> Result<(), Error> {
    let minimum_msat = inner.policy.htlc_minimum_msat;
    if amount_msat < minimum_msat {
        return Err(Error::AmountBelowHtlcMinimum {
            amount_msat,
            minimum_msat,
        });
    }
    Ok(())
}

fn check_not_paid(inner: &NodeInner, hash: &str) -> Result<(), Error> {
    match inner.records.payment(hash)? {
        Some(existing) if existing.status != PaymentStatus::Failed => {
            Err(Error::DuplicatePayment(hash.to_owned()))
        }
        _ => Ok(()),
    }
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
    }
}

fn fail_record(inner: &NodeInner, mut record: PaymentRecord, error: &Error) -> Result<(), Error> {
    record.status = PaymentStatus::Failed;
    record.failure_reason = Some(error.to_string());
    record.completed_at = Some(unix_now());
    inner.records.put_payment(&record)
}

/// Route parameters for `amount_msat`, capping routing fees at `max_fee_msat` when given (LDK's
/// default cap otherwise).
fn route_params(
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

/// When LDK refused to send at all, records the payment as failed and returns why.
fn fail_if_refused<T>(
    inner: &NodeInner,
    record: PaymentRecord,
    hash: &str,
    sent: Result<T, RetryableSendFailure>,
) -> Result<(), Error> {
    let Err(failure) = sent else {
        return Ok(());
    };
    let error = send_failure(failure, hash);
    fail_record(inner, record, &error)?;
    Err(error)
}

fn send_failure(failure: RetryableSendFailure, hash: &str) -> Error {
    match failure {
        RetryableSendFailure::RouteNotFound => {
            Error::RouteNotFound("no path with enough capacity to the payee".to_owned())
        }
        RetryableSendFailure::DuplicatePayment => Error::DuplicatePayment(hash.to_owned()),
        RetryableSendFailure::PaymentExpired => Error::InvoiceExpired { expired_at: 0 },
        other => Error::PaymentFailed(format!("{other:?}")),
    }
}
