//! Why an on-chain wallet operation failed.

use bdk_wallet::error::CreateTxError;
use bdk_wallet::{LoadError, LoadMismatch};

use crate::chain::AddressError;
use crate::store::StoreError;

/// Why the on-chain wallet could not load, persist, or build a transaction.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The wallet's spendable coins do not cover the amount plus fees.
    #[error(
        "insufficient funds: this needs {needed_sat} sat (amount plus fees) but the wallet can \
         spend {available_sat} sat; coins count once confirmed (mined coins once mature) or when \
         they are change of our own transactions: wait for confirmations, or send less"
    )]
    InsufficientFunds {
        /// What the transaction needs, fees included.
        needed_sat: u64,
        /// What the wallet could spend.
        available_sat: u64,
    },
    /// The transaction would leave less in the wallet than the reserve it keeps for fee-bumping
    /// the force closes of the node's anchor channels.
    #[error(
        "this would leave {left_sat} sat in the wallet, less than the {reserve_sat} sat it keeps \
         to pay the fee bumps of anchor channels' force closes (a child transaction needs a coin \
         of the wallet); send at most {can_send_sat} sat (`all` sends everything but the \
         reserve), or set --anchor-reserve-per-channel-sat lower"
    )]
    BelowReserve {
        /// What would be left.
        left_sat: u64,
        /// The reserve.
        reserve_sat: u64,
        /// About the most this transaction could send and keep the reserve.
        can_send_sat: u64,
    },
    /// The output would be below the chain's dust threshold, so nodes would not relay it.
    #[error(
        "{amount_sat} sat is below the dust threshold of {dust_sat} sat for this output, so the \
         network would not relay the transaction; send at least {dust_sat} sat"
    )]
    BelowDust {
        /// The output's value.
        amount_sat: u64,
        /// The smallest value an output with this script may carry.
        dust_sat: u64,
    },
    /// One of the wallet's scripts has no address in the chain's encoding (a misconfigured chain).
    #[error("cannot show a wallet address in this chain's encoding: {0}")]
    Address(#[from] AddressError),
    /// The store failed to read or durably write the wallet.
    #[error("on-chain wallet store: {0}")]
    Store(#[from] StoreError),
    /// A wallet change could not be encoded for the store.
    #[error("cannot encode the on-chain wallet's changes for the store: {0}")]
    Persist(String),
    /// The stored wallet cannot be decoded or is incomplete.
    #[error(
        "the stored on-chain wallet is damaged ({0}); restore the data directory from a backup, \
         or recover the wallet from the seed into a new data directory"
    )]
    Corrupt(String),
    /// The stored wallet was made from another seed, chain or network.
    #[error(
        "the on-chain wallet in this data directory does not belong to this node: {0}; start the \
         node with the seed and chain it was created with, or use a new data directory"
    )]
    Mismatch(String),
    /// The wallet's descriptors could not be derived from the seed.
    #[error("cannot derive the on-chain wallet's descriptors from the seed: {0}")]
    Descriptor(String),
    /// [`super::OnchainWallet::start_at`] on a wallet that already follows the chain.
    #[error(
        "the on-chain wallet already follows the chain (synced to height {sync_height}); a \
         starting block can only be set on a new wallet"
    )]
    AlreadyStarted {
        /// The wallet's current sync height.
        sync_height: u32,
    },
    /// The transaction could not be built.
    #[error("cannot build the transaction: {0}")]
    Build(String),
    /// The transaction could not be signed.
    #[error("cannot sign the transaction: {0}")]
    Sign(String),
}

impl WalletError {
    /// A failed bdk load: a mismatch says which part differs, anything else is damaged data.
    pub(super) fn from_load(error: LoadError) -> Self {
        match error {
            LoadError::Mismatch(LoadMismatch::Network { loaded, expected }) => Self::Mismatch(
                format!("it is a wallet for network {loaded}, this node runs on {expected}"),
            ),
            LoadError::Mismatch(LoadMismatch::Genesis { loaded, expected }) => {
                Self::Mismatch(format!(
                    "it is a wallet for the chain with genesis block {loaded}, this node runs on \
                     the chain with genesis block {expected}"
                ))
            }
            LoadError::Mismatch(LoadMismatch::Descriptor { keychain, .. }) => Self::Mismatch(
                format!("its {keychain} descriptor was derived from another seed or coin type"),
            ),
            other => Self::Corrupt(other.to_string()),
        }
    }

    /// A failed bdk build; coin selection shortfalls become [`WalletError::InsufficientFunds`].
    pub(super) fn from_create_tx(error: CreateTxError) -> Self {
        match error {
            CreateTxError::CoinSelection(shortfall) => Self::InsufficientFunds {
                needed_sat: shortfall.needed.to_sat(),
                available_sat: shortfall.available.to_sat(),
            },
            other => Self::Build(other.to_string()),
        }
    }
}
