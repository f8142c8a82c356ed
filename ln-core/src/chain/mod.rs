//! The chain abstraction: what a chain is ([`ChainParams`]) and how we talk to its node
//! ([`ChainSource`]).

mod address;
pub mod fees;
mod params;
mod qtum_params;
mod source;

pub use address::AddressError;
pub use params::{
    AddressEncoding, Chain, ChainParams, FallbackFeerates, MinAllowedRemoteFeerate, Network,
    RelayPolicy, UnsupportedChainError, MAX_CONFIRMATION_TARGET_BLOCKS,
};
pub use source::{BlockRef, ChainBlock, ChainSource, ChainSourceError, ShortChannelIdOutput};
