//! xln's [`ChainSource`](ln_core::ChainSource) over Qtum Core's (qtumd's) JSON-RPC.
//!
//! Qtum blocks are not Bitcoin blocks: the header carries Qtum's state roots, stake prevout and
//! block signature, and proof-of-stake blocks do not meet their `nBits`. [`block`] parses them;
//! [`synthetic`] gives LDK a stable 80-byte header per block, persisted in the node's store.
//! [`QtumdChainSource::connect`] checks that qtumd is reachable, accepts our credentials, is on
//! the chain and network of the given [`ChainParams`](ln_core::ChainParams) and has finished its
//! initial block download (on regtest that only warns); every failure is a
//! [`ChainSourceError`](ln_core::ChainSourceError)
//! that says what to fix. Only the fields we use are read from each RPC answer.

pub mod block;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
mod responses;
mod source;
pub mod synthetic;

pub use block::{BlockParseError, QtumBlock, QtumHeader};
/// How to authenticate to qtumd's RPC: the same as for bitcoind (cookie file or user/password).
pub use chain_bitcoin::BitcoindAuth as QtumdAuth;
/// What qtumd says about its chain: the same answer as bitcoind's, read by the same code.
pub use chain_bitcoin::NodeChainInfo;
pub use source::QtumdChainSource;
pub use synthetic::{RecordedHeader, SyntheticHeaders};
