//! xln's [`ChainSource`](ln_core::ChainSource) over Qtum Core's (qtumd's) JSON-RPC.
//!
//! Qtum blocks are not Bitcoin blocks: the header carries Qtum's state roots, stake prevout and
//! block signature, and proof-of-stake blocks do not meet their `nBits`. [`block`] parses them;
//! [`synthetic`] gives LDK a stable 80-byte header per block, persisted in the node's store.

pub mod block;
pub mod synthetic;

pub use block::{BlockParseError, QtumBlock, QtumHeader};
pub use synthetic::{RecordedHeader, SyntheticHeaders};
