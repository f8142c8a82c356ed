//! The chain-independent Lightning core of xln.
//!
//! Everything that differs between the chains xln runs on (Bitcoin, Qtum) reaches this crate through
//! two doors only: [`ChainParams`], which holds every chain-dependent number and encoding, and the
//! async [`ChainSource`] trait, which a backend crate (`chain-bitcoin`, `chain-qtum`) implements over
//! its node's RPC. The Lightning logic built on top never asks which chain it is on.

pub mod chain;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod gossip_handler;
pub mod gossip_verifier;
pub mod invoice;
pub mod ldk_adapters;
pub mod logging;
pub mod node;
pub mod poller;
pub mod seed;
pub mod store;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod wallet;

pub use chain::{
    AddressEncoding, AddressError, BlockRef, Chain, ChainBlock, ChainParams, ChainSource,
    ChainSourceError, FallbackFeerates, MinAllowedRemoteFeerate, Network, RelayPolicy,
    ShortChannelIdOutput, UnsupportedChainError,
};
