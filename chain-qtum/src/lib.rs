//! xln's [`ChainSource`](ln_core::ChainSource) over Qtum Core's (qtumd's) JSON-RPC.
//!
//! Qtum blocks are not Bitcoin blocks: the header carries Qtum's state roots, stake prevout and
//! block signature, and proof-of-stake blocks do not meet their `nBits`. [`block`] parses them.

pub mod block;

pub use block::{BlockParseError, QtumBlock, QtumHeader};
