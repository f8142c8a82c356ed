//! BOLT11 invoices written and read under the chain's own prefix ([`ChainParams::bolt11_prefix`]).
//!
//! `lightning-invoice` knows Bitcoin's currencies only (`lnbc`, `lntb`, `lntbs`, `lnbcrt`), and its
//! signature hash is computed from that closed list, so no [`Bolt11Invoice`] value can hold an
//! `lnqc…`/`lntq…`/`lnqcrt…` invoice. The data part and the signature rules are the same on every
//! chain, though: this module re-signs an invoice LDK built under our prefix ([`encode`]) and reads
//! one back with its raw types ([`parse`]), verifying the recoverable signature over
//! sha256(our HRP || data) itself. [`payment_params`] and [`recipient_onion`] then give what
//! `ChannelManager::pay_for_bolt11_invoice` would derive from a [`Bolt11Invoice`], for
//! `ChannelManager::send_payment`. Nothing here asks which chain it is on: the prefix decides.
//!
//! Parsing never panics: every malformed input is an [`InvoiceCodecError`].

#![deny(clippy::indexing_slicing)]

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{ByteIterExt, Fe32, Fe32IterExt, Hrp};
use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, SecretKey};
use lightning::ln::channelmanager::RecipientOnionFields;
use lightning::routing::router::{Payee, PaymentParameters};
use lightning::types::features::Bolt11InvoiceFeatures;
use lightning::types::payment::PaymentSecret;
use lightning_invoice::{
    Bolt11Bech32, Bolt11Invoice, PrivateRoute, RawBolt11Invoice, RawHrp, RawTaggedField, RouteHint,
    TaggedField, DEFAULT_EXPIRY_TIME, DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
};

use crate::chain::ChainParams;

/// A recoverable signature is 65 bytes: 104 five-bit characters at the end of the data part.
const SIGNATURE_FES: usize = 104;

/// A prefix `lightning-invoice` knows, put in front of our amount only so that
/// [`RawBolt11Invoice::from_raw`] parses the tagged fields; the currency it implies is discarded.
const STAND_IN_PREFIX: &str = "lnbc";

/// URI scheme wallets put in front of invoices in QR codes and links (BOLT11, BIP21).
const LIGHTNING_URI_SCHEME: &str = "lightning:";

/// What an invoice says it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceDescription {
    /// The description itself (`d` field), as the payee wrote it. Untrusted: print it through
    /// `lightning::types::string::PrintableString`, which replaces control characters.
    Direct(String),
    /// The SHA-256 of a description given elsewhere (`h` field).
    Hash([u8; 32]),
}

/// A decoded, signature-verified BOLT11 invoice of this node's chain and network.
///
/// [`parse`] guarantees exactly one payment hash, one description and one payment secret, a
/// features field that LDK can pay, and an amount in whole millisatoshis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInvoice {
    /// The node to pay: the `n` field, or the key recovered from the signature.
    pub payee: PublicKey,
    /// The payment hash (`p`).
    pub payment_hash: [u8; 32],
    /// The payment secret (`s`); always present in an invoice [`parse`] accepted.
    pub payment_secret: Option<[u8; 32]>,
    /// The amount asked for; `None` for an any-amount invoice.
    pub amount_msat: Option<u64>,
    /// The description or its hash.
    pub description: InvoiceDescription,
    /// When the invoice was created, Unix seconds.
    pub created_at: u64,
    /// Seconds after [`Self::created_at`] the invoice expires (`x`; 3600 when absent).
    pub expiry_secs: u64,
    /// The CLTV delta the final hop needs, in blocks (`c`; 18 when absent, as BOLT11 says).
    pub min_final_cltv_expiry_delta: u64,
    /// Private routes to the payee (`r` fields), in the invoice's order.
    pub route_hints: Vec<RouteHint>,
    /// The payee's feature bits (`9`); always present in an invoice [`parse`] accepted.
    pub features: Option<Bolt11InvoiceFeatures>,
    /// Data the payee wants back in the onion (`m`).
    pub payment_metadata: Option<Vec<u8>>,
    /// The invoice as given, without surrounding whitespace or a `lightning:` scheme.
    pub bolt11: String,
}

impl ChainInvoice {
    /// When the invoice expires, Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.created_at.saturating_add(self.expiry_secs)
    }

    /// Whether the invoice has expired at `now_secs` (Unix seconds); at [`Self::expires_at`]
    /// itself it is still payable, as in LDK's `Bolt11Invoice::would_expire`.
    pub fn is_expired_at(&self, now_secs: u64) -> bool {
        now_secs > self.expires_at()
    }
}

/// Why a text is not an invoice this node can use, or an invoice could not be re-encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceCodecError {
    /// The invoice is for another chain or network: its prefix is not this node's.
    #[error(
        "the invoice is for another chain or network: it starts with `{found}`, \
         but this node takes `{expected}` invoices"
    )]
    WrongChain {
        /// This node's prefix ([`ChainParams::bolt11_prefix`]).
        expected: &'static str,
        /// The invoice's prefix: `ln` and the letters before its amount.
        found: String,
    },
    /// The text is not a well-formed BOLT11 invoice.
    #[error("not a valid BOLT11 invoice: {0}")]
    Malformed(String),
    /// The signature does not match the invoice's contents (or its `n` field).
    #[error("the invoice's signature does not match its contents: it was altered or corrupted")]
    BadSignature,
    /// A field every payable invoice carries is missing.
    #[error("the invoice has no {0}")]
    MissingField(&'static str),
    /// A field that must appear once appears more than once.
    #[error("the invoice has more than one {0}")]
    DuplicateField(&'static str),
    /// The invoice's feature bits ask for something this node cannot do.
    #[error("the invoice cannot be paid by this node: {0}")]
    UnsupportedFeatures(&'static str),
    /// [`encode`] was given a key that is not the invoice's payee.
    #[error("the invoice is payable to {payee}, not to the key it was to be signed with")]
    SignerIsNotPayee {
        /// The invoice's payee.
        payee: PublicKey,
    },
    /// The invoice could not be written under the chain's prefix.
    #[error("cannot write the invoice under this chain's prefix: {0}")]
    Encode(String),
}

/// Reads a BOLT11 invoice of this node's chain and network and verifies its signature.
///
/// Accepts upper or lower case and a `lightning:` scheme. The prefix (`ln` and the letters before
/// the amount) is checked first: an invoice of any other chain or network is
/// [`InvoiceCodecError::WrongChain`], whatever else is wrong with it.
pub fn parse(params: &ChainParams, text: &str) -> Result<ChainInvoice, InvoiceCodecError> {
    let text = strip_uri_scheme(text.trim());
    let (raw, payee) = decode_verified(params, text)?;
    ChainInvoice::from_verified(&raw, payee, text.to_owned())
}

/// Writes `invoice` (built by LDK for any currency) under [`ChainParams::bolt11_prefix`], keeping
/// its amount and every tagged field, signed anew with `node_secret` over the new prefix.
///
/// An invoice already under the chain's prefix is returned as LDK wrote it. `node_secret` must be
/// the invoice's payee's key: re-signing with another key would change whom payers pay.
pub fn encode(
    params: &ChainParams,
    invoice: &Bolt11Invoice,
    node_secret: &SecretKey,
) -> Result<String, InvoiceCodecError> {
    encode_with_route_hints(params, invoice, &[], node_secret)
}

/// [`encode`], with `route_hints` added as private routes (`r` fields) after the invoice's own:
/// LDK builds invoices with hints of our own channels only, and a client of an LSP needs one
/// through the LSP's intercept SCID.
pub fn encode_with_route_hints(
    params: &ChainParams,
    invoice: &Bolt11Invoice,
    route_hints: &[RouteHint],
    node_secret: &SecretKey,
) -> Result<String, InvoiceCodecError> {
    let secp = Secp256k1::signing_only();
    let signer = PublicKey::from_secret_key(&secp, node_secret);
    let payee = invoice.get_payee_pub_key();
    if payee != signer {
        return Err(InvoiceCodecError::SignerIsNotPayee { payee });
    }
    let (mut raw, _, _) = invoice.clone().into_signed_raw().into_parts();
    if route_hints.is_empty() && format!("ln{}", raw.hrp.currency) == params.bolt11_prefix {
        return Ok(invoice.to_string());
    }
    for hint in route_hints {
        let route = PrivateRoute::new(hint.clone())
            .map_err(|e| InvoiceCodecError::Encode(format!("route hint: {e}")))?;
        raw.data
            .tagged_fields
            .push(RawTaggedField::KnownSemantics(TaggedField::PrivateRoute(
                route,
            )));
    }
    let (_, data) = raw.to_raw();
    write_signed(&chain_hrp(params, &raw.hrp), data, node_secret)
}

/// What `ChannelManager::pay_for_bolt11_invoice` routes with, built from a [`ChainInvoice`]
/// (LDK's `PaymentParameters::from_bolt11_invoice`): the payee and final CLTV delta, the route
/// hints, the expiry time and the invoice's features.
///
/// To pay: `RouteParameters::from_payment_params_and_value(payment_params(&invoice), amount_msat)`
/// (LDK also applies the caller's `RouteParametersConfig` here), then `ChannelManager::send_payment`
/// with [`recipient_onion`] and the payment hash.
pub fn payment_params(invoice: &ChainInvoice) -> PaymentParameters {
    // LDK truncates with `as u32`; a delta that large cannot be routed either way.
    let final_cltv_expiry_delta =
        u32::try_from(invoice.min_final_cltv_expiry_delta).unwrap_or(u32::MAX);
    let mut params = PaymentParameters::from_node_id(invoice.payee, final_cltv_expiry_delta);
    params.payee = Payee::Clear {
        node_id: invoice.payee,
        route_hints: invoice.route_hints.clone(),
        features: invoice.features.clone(),
        final_cltv_expiry_delta,
    };
    // LDK leaves the expiry out when it overflows; so do we.
    if let Some(expires_at) = invoice.created_at.checked_add(invoice.expiry_secs) {
        params = params.with_expiry_time(expires_at);
    }
    params
}

/// The onion fields for the final hop that `ChannelManager::pay_for_bolt11_invoice` sends: the
/// payment secret and the payment metadata.
pub fn recipient_onion(invoice: &ChainInvoice) -> RecipientOnionFields {
    let mut fields = match invoice.payment_secret {
        Some(secret) => RecipientOnionFields::secret_only(PaymentSecret(secret)),
        None => RecipientOnionFields::spontaneous_empty(),
    };
    fields.payment_metadata = invoice.payment_metadata.clone();
    fields
}

impl ChainInvoice {
    /// The fields of an invoice whose signature checked out, after BOLT11's and LDK's rules.
    fn from_verified(
        raw: &RawBolt11Invoice,
        payee: PublicKey,
        bolt11: String,
    ) -> Result<Self, InvoiceCodecError> {
        let payment_hash = exactly_one(raw, "payment hash (`p` field)", |field| match field {
            TaggedField::PaymentHash(hash) => Some(hash.0.to_byte_array()),
            _ => None,
        })?;
        let description =
            exactly_one(raw, "description (`d` or `h` field)", |field| match field {
                TaggedField::Description(text) => {
                    Some(InvoiceDescription::Direct(text.as_inner().0.clone()))
                }
                TaggedField::DescriptionHash(hash) => {
                    Some(InvoiceDescription::Hash(hash.0.to_byte_array()))
                }
                _ => None,
            })?;
        let payment_secret = exactly_one(raw, "payment secret (`s` field)", |field| match field {
            TaggedField::PaymentSecret(secret) => Some(secret.0),
            _ => None,
        })?;
        let features = payable_features(raw)?;
        Ok(Self {
            payee,
            payment_hash,
            payment_secret: Some(payment_secret),
            amount_msat: amount_msat(raw)?,
            description,
            created_at: raw.data.timestamp.as_unix_timestamp(),
            expiry_secs: raw
                .expiry_time()
                .map_or(DEFAULT_EXPIRY_TIME, |expiry| expiry.as_seconds()),
            min_final_cltv_expiry_delta: raw
                .min_final_cltv_expiry_delta()
                .map_or(DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA, |delta| delta.0),
            route_hints: raw
                .private_routes()
                .into_iter()
                .map(|route| RouteHint::clone(route))
                .collect(),
            features: Some(features),
            payment_metadata: raw.payment_metadata().cloned(),
            bolt11,
        })
    }
}

fn malformed(reason: impl ToString) -> InvoiceCodecError {
    InvoiceCodecError::Malformed(reason.to_string())
}

/// Checks the prefix, the checksum and the signature of `text` (no scheme, no whitespace) and
/// returns its fields with the payee the signature names.
fn decode_verified(
    params: &ChainParams,
    text: &str,
) -> Result<(RawBolt11Invoice, PublicKey), InvoiceCodecError> {
    let hrp = text
        .rsplit_once('1')
        .map(|(hrp, _)| hrp.to_ascii_lowercase())
        .ok_or_else(|| malformed("no `1` separates the prefix from the data"))?;
    let amount = amount_part(params, &hrp)?;
    let checked = CheckedHrpstring::new::<Bolt11Bech32>(text).map_err(malformed)?;
    let data: Vec<Fe32> = checked
        .fe32_iter::<&mut dyn Iterator<Item = u8>>()
        .collect();
    let body_len = data
        .len()
        .checked_sub(SIGNATURE_FES)
        .ok_or_else(|| malformed("the data part is too short to hold a signature"))?;
    let (body, signature) = data.split_at(body_len);
    let raw = RawBolt11Invoice::from_raw(&format!("{STAND_IN_PREFIX}{amount}"), body)
        .map_err(malformed)?;
    let stated_payee = raw.payee_pub_key().map(|payee| payee.0);
    let payee = verify_signature(&hrp, body, signature, stated_payee)?;
    Ok((raw, payee))
}

/// `hrp` and `data` signed with `secret` over sha256(hrp || data), bech32-encoded.
pub(crate) fn write_signed(
    hrp: &str,
    data: Vec<Fe32>,
    secret: &SecretKey,
) -> Result<String, InvoiceCodecError> {
    let digest = signature_hash(hrp, &data);
    let signature =
        Secp256k1::signing_only().sign_ecdsa_recoverable(&Message::from_digest(digest), secret);
    let signature = signature_fes(&signature)?;
    let hrp = Hrp::parse(hrp).map_err(|e| InvoiceCodecError::Encode(e.to_string()))?;
    Ok(data
        .into_iter()
        .chain(signature)
        .with_checksum::<Bolt11Bech32>(&hrp)
        .chars()
        .collect())
}

fn strip_uri_scheme(text: &str) -> &str {
    match text.get(..LIGHTNING_URI_SCHEME.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(LIGHTNING_URI_SCHEME) => {
            text.get(LIGHTNING_URI_SCHEME.len()..).unwrap_or_default()
        }
        _ => text,
    }
}

/// Checks that the lower-case `hrp` starts with the chain's prefix and returns the rest: the
/// amount and its multiplier, or nothing.
fn amount_part<'h>(params: &ChainParams, hrp: &'h str) -> Result<&'h str, InvoiceCodecError> {
    let amount_at = hrp.find(|c: char| c.is_ascii_digit()).unwrap_or(hrp.len());
    let (prefix, amount) = hrp.split_at(amount_at);
    if !prefix.starts_with("ln") {
        return Err(malformed("a BOLT11 invoice starts with `ln`"));
    }
    if let Some(kind) = bolt12_kind(prefix) {
        return Err(malformed(format!(
            "this is a BOLT12 {kind}, not a BOLT11 invoice"
        )));
    }
    if prefix != params.bolt11_prefix {
        return Err(InvoiceCodecError::WrongChain {
            expected: params.bolt11_prefix,
            found: prefix.to_owned(),
        });
    }
    Ok(amount)
}

/// BOLT12 strings share the `ln` start; they deserve a clearer answer than "wrong chain".
fn bolt12_kind(prefix: &str) -> Option<&'static str> {
    match prefix {
        "lno" => Some("offer"),
        "lnr" => Some("invoice request"),
        "lni" => Some("invoice"),
        _ => None,
    }
}

/// The chain's prefix followed by the invoice's amount and multiplier.
fn chain_hrp(params: &ChainParams, hrp: &RawHrp) -> String {
    let amount = hrp.raw_amount.map(|a| a.to_string()).unwrap_or_default();
    let multiplier = hrp.si_prefix.map(|si| si.to_string()).unwrap_or_default();
    format!("{}{amount}{multiplier}", params.bolt11_prefix)
}

/// sha256(HRP bytes || data part padded to whole bytes): what the payee signs (BOLT11
/// "Requirements", lightning-invoice's private `hash_from_parts`).
fn signature_hash(hrp: &str, data: &[Fe32]) -> [u8; 32] {
    let mut padded = data.to_vec();
    let overhang = (data.len() * 5) % 8;
    if overhang > 0 {
        padded.push(Fe32::Q);
        if overhang < 3 {
            padded.push(Fe32::Q);
        }
    }
    let mut engine = sha256::Hash::engine();
    engine.input(hrp.as_bytes());
    let bytes: Vec<u8> = padded.into_iter().fes_to_bytes().collect();
    engine.input(&bytes);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// The 64-byte compact signature and its recovery id, as 104 five-bit characters.
fn signature_fes(signature: &RecoverableSignature) -> Result<Vec<Fe32>, InvoiceCodecError> {
    let (recovery_id, compact) = signature.serialize_compact();
    let recovery_id = u8::try_from(recovery_id.to_i32())
        .map_err(|_| InvoiceCodecError::Encode("recovery id out of range".to_owned()))?;
    Ok(compact
        .into_iter()
        .chain(std::iter::once(recovery_id))
        .bytes_to_fes()
        .collect())
}

/// Verifies the signature against the `n` field's key if there is one, else recovers the payee.
fn verify_signature(
    hrp: &str,
    body: &[Fe32],
    signature: &[Fe32],
    stated_payee: Option<PublicKey>,
) -> Result<PublicKey, InvoiceCodecError> {
    let bytes: Vec<u8> = signature.iter().copied().fes_to_bytes().collect();
    let (recovery_id, compact) = bytes.split_last().ok_or(InvoiceCodecError::BadSignature)?;
    let recovery_id = RecoveryId::from_i32(i32::from(*recovery_id))
        .map_err(|_| InvoiceCodecError::BadSignature)?;
    let signature = RecoverableSignature::from_compact(compact, recovery_id)
        .map_err(|_| InvoiceCodecError::BadSignature)?;
    let message = Message::from_digest(signature_hash(hrp, body));
    let secp = Secp256k1::verification_only();
    match stated_payee {
        Some(payee) => secp
            .verify_ecdsa(&message, &signature.to_standard(), &payee)
            .map(|()| payee)
            .map_err(|_| InvoiceCodecError::BadSignature),
        None => secp
            .recover_ecdsa(&message, &signature)
            .map_err(|_| InvoiceCodecError::BadSignature),
    }
}

/// The value of the one field `pick` selects; an error if there is none or more than one.
fn exactly_one<T>(
    raw: &RawBolt11Invoice,
    name: &'static str,
    pick: impl Fn(&TaggedField) -> Option<T>,
) -> Result<T, InvoiceCodecError> {
    let mut values = raw.known_tagged_fields().filter_map(pick);
    let value = values.next().ok_or(InvoiceCodecError::MissingField(name))?;
    match values.next() {
        Some(_) => Err(InvoiceCodecError::DuplicateField(name)),
        None => Ok(value),
    }
}

/// The features field, held to LDK's rule for invoices it pays (`Bolt11Invoice::from_signed`).
fn payable_features(raw: &RawBolt11Invoice) -> Result<Bolt11InvoiceFeatures, InvoiceCodecError> {
    let features = raw
        .features()
        .ok_or(InvoiceCodecError::MissingField("feature bits (`9` field)"))?;
    if features.requires_unknown_bits() {
        return Err(InvoiceCodecError::UnsupportedFeatures(
            "it requires features this node does not know",
        ));
    }
    if !features.supports_payment_secret() {
        return Err(InvoiceCodecError::UnsupportedFeatures(
            "it does not set the payment_secret feature",
        ));
    }
    Ok(features.clone())
}

/// The amount in millisatoshis: BOLT11 amounts below one millisatoshi, or too large to count,
/// are refused.
fn amount_msat(raw: &RawBolt11Invoice) -> Result<Option<u64>, InvoiceCodecError> {
    if raw.hrp.raw_amount.is_none() {
        return Ok(None);
    }
    let pico_btc = raw
        .amount_pico_btc()
        .ok_or_else(|| malformed("the amount is too large"))?;
    if pico_btc % 10 != 0 {
        return Err(malformed(
            "the amount is not a whole number of millisatoshis",
        ));
    }
    Ok(Some(pico_btc / 10))
}

#[cfg(test)]
mod tests;
