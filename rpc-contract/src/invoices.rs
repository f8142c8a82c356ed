//! Invoices: `invoice`, `settleinvoice`, `cancelinvoice`, `listinvoices`, `waitinvoice`, `decode`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{Hash32, MsatOrAny, Uint, MAX_WAIT_SECS};
use crate::{method, Empty};

method!(
    /// `invoice`.
    InvoiceMethod = "invoice", InvoiceParams => InvoiceResult,
    "Create a BOLT11 invoice. With payment_hash it is a hold invoice: payments are held until settleinvoice or cancelinvoice.

A held payment cannot wait forever: its HTLC has a deadline in blocks. Hold invoices ask the payer
for a final CLTV delta of one day of blocks (144 on Bitcoin), and LDK fails the payment back about
39 blocks before the deadline. So settle within about 105 blocks (some 17 hours on Bitcoin). If the
deadline passes, the invoice becomes `canceled`.

Errors: -32602 (amount 0 or not an integer; description too long; `expiry_secs` 0; bad
`payment_hash`; an invoice with this payment hash exists already; a malformed `route_hint` or one
that starts at this node; `min_final_cltv_expiry_delta` out of range), 503 (amount below the chain's
smallest HTLC; 1 msat on Bitcoin), 403 (LDK could not create it), 701."
);

/// The params of `invoice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceParams {
    /// Amount in millisatoshis, or "any" to let the payer choose.
    pub amount_msat: MsatOrAny,
    /// Description shown to the payer, at most 639 bytes.
    pub description: String,
    /// Seconds until the invoice expires (default 3600).
    pub expiry_secs: Option<Uint<{ u32::MAX as u64 }>>,
    /// Hex payment hash (the SHA-256 of a preimage only you know) for a hold invoice.
    pub payment_hash: Option<Hash32>,
    /// A route hint to add to those of our own channels, as `intercept_scid` gives it: `node_id:short_channel_id:fee_base_msat:fee_proportional_millionths:cltv_expiry_delta` (the short channel id as `BLOCKxTXxOUT` or a number). For a client of an LSP: see lsp.md.
    pub route_hint: Option<String>,
    /// Blocks the payment's HTLC must still have before its expiry when it reaches us, from the policy's (48 on Bitcoin, 145 on Qtum; the default, or about a day for a hold invoice) to 800. The invoice says 3 more, as LDK writes it. A client whose LSP opens its channel just in time adds the LSP's `confirmation_blocks` plus 2.
    pub min_final_cltv_expiry_delta: Option<Uint<{ u16::MAX as u64 }>>,
}

/// The result of `invoice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceResult {
    /// The invoice.
    pub bolt11: String,
    /// Its payment hash.
    pub payment_hash: String,
    /// When it expires.
    pub expires_at: u64,
}

method!(
    /// `settleinvoice`.
    SettleInvoice = "settleinvoice", SettleInvoiceParams => Empty,
    "Settle a held hold-invoice payment with its preimage.

The node then claims the payment; the invoice becomes `paid` a moment later. The preimage is
stored before the claim: if xlnd restarted before it had written the payment as held, the payment
is claimed as soon as it arrives again, not held a second time.

Errors: -32602 (not 64 hex characters), 100 (no invoice with the preimage's hash), 404 (not a hold
invoice, or its payment is not held yet: wait with `waitinvoice`), 701."
);

/// The params of `settleinvoice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SettleInvoiceParams {
    /// Hex preimage of the invoice's payment hash (64 hex characters).
    pub preimage: Hash32,
}

method!(
    /// `cancelinvoice`.
    CancelInvoice = "cancelinvoice", CancelInvoiceParams => Empty,
    "Cancel an unpaid or held invoice; held payments are failed back.

Canceling an invoice that is already canceled succeeds.

Errors: -32602 (bad hash), 100 (no such invoice), 404 (already paid), 701."
);

/// The params of `cancelinvoice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CancelInvoiceParams {
    /// Hex payment hash (64 hex characters).
    pub payment_hash: Hash32,
}

method!(
    /// `listinvoices`.
    ListInvoices = "listinvoices", ListInvoicesParams => ListInvoicesResult,
    "Invoices issued and keysend payments received.

Oldest first.

Errors: -32602 (bad hash), 701."
);

/// The params of `listinvoices`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListInvoicesParams {
    /// Only this one (hex payment hash). An unknown hash gives an empty list.
    pub payment_hash: Option<Hash32>,
}

/// The result of `listinvoices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListInvoicesResult {
    /// The invoices, oldest first.
    pub invoices: Vec<Invoice>,
}

/// State of an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    /// Not paid yet.
    Unpaid,
    /// A hold invoice with a payment waiting for settleinvoice or cancelinvoice.
    Held,
    /// Paid.
    Paid,
    /// Canceled.
    Canceled,
    /// Expired unpaid.
    Expired,
}

/// One invoice we issued, or one keysend payment we received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Invoice {
    /// Payment hash.
    pub payment_hash: String,
    /// The invoice; `null` for a received keysend.
    pub bolt11: Option<String>,
    /// Description; `keysend` for a received keysend.
    pub description: String,
    /// `unpaid`, `held` (hold invoice with a payment waiting), `paid`, `canceled` or `expired`.
    pub status: InvoiceStatus,
    /// Amount asked for; `null` for "any" invoices and keysends.
    pub amount_msat: Option<u64>,
    /// Amount received, once held or paid.
    pub amount_received_msat: Option<u64>,
    /// A hold invoice.
    pub is_hold: bool,
    /// When it was created.
    pub created_at: u64,
    /// When it expires.
    pub expires_at: u64,
    /// When it was paid.
    pub paid_at: Option<u64>,
}

method!(
    /// `waitinvoice`.
    WaitInvoice = "waitinvoice", WaitInvoiceParams => Invoice,
    "Wait until an invoice is held, paid, canceled or expired.

Returns the invoice, with the fields of one `listinvoices` entry (not wrapped in a list); at once if
it already is.

Errors: -32602 (bad hash or timeout), 100 (no such invoice), 101 (still unpaid when the time ran
out), 701."
);

/// The params of `waitinvoice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitInvoiceParams {
    /// Hex payment hash (64 hex characters).
    pub payment_hash: Hash32,
    /// Give up after this many seconds (default 600, at most 86,400).
    pub timeout_secs: Option<Uint<MAX_WAIT_SECS>>,
}

method!(
    /// `decode`.
    Decode = "decode", DecodeParams => DecodeResult,
    "Decode a BOLT11 invoice of this node's chain.

Errors: 400 (not a valid invoice), 401 (invoice for another chain or network)."
);

/// The params of `decode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DecodeParams {
    /// The invoice.
    pub bolt11: String,
}

/// The result of `decode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DecodeResult {
    /// The invoice's chain (always this node's; others are refused).
    pub chain: String,
    /// The invoice's network.
    pub network: String,
    /// Payee node id.
    pub payee: String,
    /// Amount; `null` for an any-amount invoice.
    pub amount_msat: Option<u64>,
    /// Payment hash.
    pub payment_hash: String,
    /// Description, or `hash:<hex>` for an invoice with a description hash.
    pub description: String,
    /// Seconds after `created_at` that it expires.
    pub expiry_secs: u64,
    /// Final CLTV delta, in blocks.
    pub min_final_cltv_expiry_delta: u64,
    /// Creation time.
    pub created_at: u64,
}
