//! The one error type of the [`Node`](super::Node) API. Every variant has a stable numeric code
//! ([`Error::code`]) that the daemon's JSON-RPC errors carry, so programs can branch on the kind
//! of failure without parsing messages.

/// Why a [`Node`](super::Node) call failed. The message says what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A parameter was malformed or out of range; nothing was changed.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The channel, peer, invoice or payment named does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The call needs a connection to this peer; connect first.
    #[error("peer {0} is not connected; connect to it first")]
    PeerNotConnected(String),
    /// Connecting to a peer failed.
    #[error("could not connect: {0}")]
    ConnectionFailed(String),
    /// The on-chain wallet cannot pay for this.
    #[error("insufficient funds: {0}")]
    InsufficientFunds(String),
    /// Opening a channel failed.
    #[error("channel open failed: {0}")]
    ChannelOpenFailed(String),
    /// Closing a channel failed.
    #[error("channel close failed: {0}")]
    ChannelCloseFailed(String),
    /// The channel exists but cannot carry this HTLC now (not ready, peer offline, too little
    /// outbound capacity).
    #[error("channel not usable: {0}")]
    ChannelNotUsable(String),
    /// The invoice could not be parsed or is not a valid BOLT11 invoice.
    #[error("invalid invoice: {0}")]
    InvalidInvoice(String),
    /// The invoice is for another chain or network than this node's.
    #[error("the invoice is for {found}, but this node runs on {expected}")]
    InvoiceWrongChain {
        /// The chain/network this node runs on (its invoice prefix).
        expected: String,
        /// The chain/network of the invoice (its prefix).
        found: String,
    },
    /// The invoice has expired; ask the payee for a new one.
    #[error("the invoice expired at {expired_at} (unix time); ask the payee for a new one")]
    InvoiceExpired {
        /// Expiry time, seconds since the Unix epoch.
        expired_at: u64,
    },
    /// Creating an invoice failed.
    #[error("invoice creation failed: {0}")]
    InvoiceCreationFailed(String),
    /// The invoice is not in a state that allows this (e.g. settling one that holds no payment).
    #[error("invoice state: {0}")]
    InvoiceState(String),
    /// Another payment with this payment hash was already made or is in flight.
    #[error("duplicate payment: {0}")]
    DuplicatePayment(String),
    /// No route to the destination with enough capacity.
    #[error("no route found: {0}")]
    RouteNotFound(String),
    /// The payment failed.
    #[error("payment failed: {0}")]
    PaymentFailed(String),
    /// The intercepted HTLC was already forwarded or failed back; nothing was changed.
    #[error("not pending: {0}")]
    HtlcNotPending(String),
    /// The payment waited behind our own payments in flight for an HTLC slot (or in-flight
    /// value) and the send queue was full, or the call's timeout came first; nothing was sent.
    #[error("send queue: {0}")]
    SendQueue(String),
    /// The amount is below the smallest HTLC the chain's channel policy allows.
    #[error(
        "amount {amount_msat} msat is below the minimum HTLC of {minimum_msat} msat on this chain"
    )]
    AmountBelowHtlcMinimum {
        /// The amount asked for.
        amount_msat: u64,
        /// The minimum.
        minimum_msat: u64,
    },
    /// The on-chain wallet failed.
    #[error("wallet: {0}")]
    Wallet(String),
    /// The chain node (bitcoind/qtumd) failed.
    #[error("chain node: {0}")]
    ChainSource(String),
    /// The store failed; the node should be stopped and its disk checked.
    #[error("store: {0}")]
    Store(String),
    /// The node is stopping or stopped.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The call timed out; it may still complete (check again with the matching list call).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The node cannot do this at all (a limit of LDK or of xln); the message says what to do
    /// instead.
    #[error("not supported: {0}")]
    Unsupported(String),
}

impl Error {
    /// The stable numeric code of this kind of error (documented in `docs/rpc.md`).
    ///
    /// Invalid parameters use JSON-RPC's own `-32602`; every other kind has a positive code,
    /// grouped by area as Core Lightning does: 1xx generic, 2xx peers, 3xx channels and funds,
    /// 4xx invoices, 5xx payments, 6xx–7xx wallet, chain and node.
    pub fn code(&self) -> i32 {
        match self {
            Error::InvalidParameter(_) => -32602,
            Error::NotFound(_) => 100,
            Error::Timeout(_) => 101,
            Error::Unsupported(_) => 102,
            Error::PeerNotConnected(_) => 200,
            Error::ConnectionFailed(_) => 201,
            Error::InsufficientFunds(_) => 300,
            Error::ChannelOpenFailed(_) => 301,
            Error::ChannelCloseFailed(_) => 302,
            Error::ChannelNotUsable(_) => 303,
            Error::InvalidInvoice(_) => 400,
            Error::InvoiceWrongChain { .. } => 401,
            Error::InvoiceExpired { .. } => 402,
            Error::InvoiceCreationFailed(_) => 403,
            Error::InvoiceState(_) => 404,
            Error::DuplicatePayment(_) => 500,
            Error::RouteNotFound(_) => 501,
            Error::PaymentFailed(_) => 502,
            Error::AmountBelowHtlcMinimum { .. } => 503,
            Error::HtlcNotPending(_) => 504,
            Error::SendQueue(_) => 505,
            Error::Wallet(_) => 600,
            Error::ChainSource(_) => 700,
            Error::Store(_) => 701,
            Error::ShuttingDown => 702,
        }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        Error::Store(e.to_string())
    }
}

impl From<crate::wallet::WalletError> for Error {
    fn from(e: crate::wallet::WalletError) -> Self {
        match e {
            crate::wallet::WalletError::InsufficientFunds { .. }
            | crate::wallet::WalletError::BelowReserve { .. } => {
                Error::InsufficientFunds(e.to_string())
            }
            crate::wallet::WalletError::BelowDust { .. } => Error::InvalidParameter(e.to_string()),
            other => Error::Wallet(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            Error::InvalidParameter(String::new()),
            Error::NotFound(String::new()),
            Error::Timeout(String::new()),
            Error::Unsupported(String::new()),
            Error::PeerNotConnected(String::new()),
            Error::ConnectionFailed(String::new()),
            Error::InsufficientFunds(String::new()),
            Error::ChannelOpenFailed(String::new()),
            Error::ChannelCloseFailed(String::new()),
            Error::ChannelNotUsable(String::new()),
            Error::InvalidInvoice(String::new()),
            Error::InvoiceWrongChain {
                expected: String::new(),
                found: String::new(),
            },
            Error::InvoiceExpired { expired_at: 0 },
            Error::InvoiceCreationFailed(String::new()),
            Error::InvoiceState(String::new()),
            Error::DuplicatePayment(String::new()),
            Error::RouteNotFound(String::new()),
            Error::PaymentFailed(String::new()),
            Error::HtlcNotPending(String::new()),
            Error::SendQueue(String::new()),
            Error::AmountBelowHtlcMinimum {
                amount_msat: 0,
                minimum_msat: 0,
            },
            Error::Wallet(String::new()),
            Error::ChainSource(String::new()),
            Error::Store(String::new()),
            Error::ShuttingDown,
        ];
        let mut codes: Vec<i32> = all.iter().map(Error::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
