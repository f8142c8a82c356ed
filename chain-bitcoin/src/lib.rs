//! xln's [`ChainSource`](ln_core::ChainSource) over Bitcoin Core's JSON-RPC.
//!
//! [`BitcoindChainSource::connect`] checks that the node is reachable, accepts our credentials, is
//! on the chain and network of the given [`ChainParams`](ln_core::ChainParams) and has finished its
//! initial block download (on regtest that only warns: see [`core_rpc::CoreNode::check_usable`]);
//! every failure is a [`ChainSourceError`](ln_core::ChainSourceError) that
//! says what to fix. Only the fields we use are read from each RPC answer, so the backend keeps
//! working across Bitcoin Core versions (tested against Core 31).
//!
//! [`core_rpc`] holds what Bitcoin Core and its forks answer alike; `chain-qtum` builds on it.

pub mod core_rpc;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
mod rpc;
mod source;

pub use core_rpc::NodeChainInfo;
pub use rpc::BitcoindAuth;
pub use source::BitcoindChainSource;
