//! What each of the wallet's unspent outputs counts as: immature, confirmed, or unconfirmed (ours
//! or someone else's), by the chain's own coinbase maturity rather than bdk's Bitcoin constant.

use bdk_wallet::chain::ChainPosition;
use bdk_wallet::{LocalOutput, Wallet};
use bitcoin::{OutPoint, Transaction};

/// Where an unspent output stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// A confirmed coinbase output the chain does not let us spend yet.
    Immature,
    /// Confirmed and spendable.
    Confirmed,
    /// Unconfirmed, from a transaction that spends only our own coins: we built it.
    OwnUnconfirmed,
    /// Unconfirmed, from someone else's transaction, which its sender could still double-spend.
    ForeignUnconfirmed,
}

impl Standing {
    /// Whether coin selection may spend the output. Someone else's unconfirmed coins are left
    /// out: a channel funding transaction built on them could be invalidated by their sender.
    pub(super) fn is_spendable(self) -> bool {
        matches!(self, Self::Confirmed | Self::OwnUnconfirmed)
    }
}

/// An unspent output of the wallet with where it stands.
pub(super) struct StandingOutput {
    pub(super) output: LocalOutput,
    /// Blocks confirming it, the one it is in included (0 while unconfirmed).
    pub(super) confirmations: u32,
    pub(super) standing: Standing,
}

/// Every unspent output of `wallet` as seen at its latest checkpoint.
pub(super) fn unspent_outputs(wallet: &Wallet, coinbase_maturity: u32) -> Vec<StandingOutput> {
    let tip_height = wallet.latest_checkpoint().height();
    wallet
        .list_unspent()
        .map(|output| {
            let (confirmations, standing) = match output.chain_position {
                ChainPosition::Confirmed { anchor, .. } => {
                    let height = anchor.block_id.height;
                    let confirmations = tip_height.saturating_sub(height).saturating_add(1);
                    let on_coinbase =
                        created_by(wallet, &output.outpoint).is_some_and(|tx| tx.is_coinbase());
                    let standing =
                        if on_coinbase && !is_mature(height, tip_height, coinbase_maturity) {
                            Standing::Immature
                        } else {
                            Standing::Confirmed
                        };
                    (confirmations, standing)
                }
                ChainPosition::Unconfirmed { .. } => {
                    let ours = created_by(wallet, &output.outpoint)
                        .is_some_and(|tx| spends_only_our_coins(wallet, &tx));
                    let standing = if ours {
                        Standing::OwnUnconfirmed
                    } else {
                        Standing::ForeignUnconfirmed
                    };
                    (0, standing)
                }
            };
            StandingOutput {
                output,
                confirmations,
                standing,
            }
        })
        .collect()
}

/// Whether a coinbase output confirmed at `height` may be spent with the chain at `tip_height`.
///
/// The rule of Bitcoin Core's (and Qtum's) wallet: mature once `coinbase_maturity` blocks are on
/// top of it (`tip >= height + maturity`). Consensus would already accept the spend one block
/// earlier, in the block at `height + maturity`; the wallets' extra block is kept so the balance
/// matches what operators see in their node's own wallet.
pub(super) fn is_mature(height: u32, tip_height: u32, coinbase_maturity: u32) -> bool {
    tip_height >= height.saturating_add(coinbase_maturity)
}

fn created_by(wallet: &Wallet, outpoint: &OutPoint) -> Option<std::sync::Arc<Transaction>> {
    wallet.tx_graph().get_tx(outpoint.txid)
}

fn spends_only_our_coins(wallet: &Wallet, tx: &Transaction) -> bool {
    !tx.input.is_empty()
        && tx.input.iter().all(|input| {
            wallet
                .tx_graph()
                .get_txout(input.previous_output)
                .is_some_and(|prevout| wallet.is_mine(prevout.script_pubkey.clone()))
        })
}
