//! How the wallet follows the chain and serves LDK: `chain::Listen` for the chain poller, and
//! `ChangeDestinationSourceSync` for the outputs LDK sweeps to the wallet.
//!
//! Neither trait can return an error, so failures are logged with `tracing::error!`. A block that
//! could not be applied or stored is not lost for good: the poller persists its own position
//! first, and on restart catches the wallet up from [`OnchainWallet::best_block`].

use bdk_wallet::chain::{BlockId, ChainPosition};
use bdk_wallet::Wallet;
use bitcoin::block::Header;
use bitcoin::{Amount, Block, ScriptBuf, Txid};
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};
use lightning::sign::ChangeDestinationSourceSync;

use super::OnchainWallet;

impl OnchainWallet {
    /// Applies `block` at `height` onto the block its header names as parent, as LDK Node does.
    ///
    /// Connecting onto the parent rather than onto our tip is also how reorgs are handled: when
    /// the parent is below our tip, bdk replaces our blocks above it by this one, and the
    /// transactions only they confirmed are no longer confirmed.
    fn connect_block(&self, block: &Block, height: u32) {
        let block_hash = block.block_hash();
        let connected_to = match height.checked_sub(1) {
            Some(parent_height) => BlockId {
                height: parent_height,
                hash: block.header.prev_blockhash,
            },
            None => BlockId {
                height,
                hash: block_hash,
            },
        };
        let mut state = self.lock();
        let tip = state.wallet.latest_checkpoint().block_id();
        if tip != connected_to {
            tracing::debug!(height, %block_hash, tip_height = tip.height, "block does not extend the wallet's tip: reorg");
        }
        if let Err(e) = state
            .wallet
            .apply_block_connected_to(block, height, connected_to)
        {
            tracing::error!(height, %block_hash, tip_height = tip.height, error = %e, "the on-chain wallet cannot connect this block; it will be caught up on restart");
            return;
        }
        if tip != connected_to {
            forget_reorged_out_payments(&mut state.wallet);
        }
        if let Err(e) = state.persist() {
            tracing::error!(height, %block_hash, error = %e, "could not store the on-chain wallet's new block; it is retried with the next change");
        }
    }
}

/// Stops counting payments to us that only a reorged-out block confirmed.
///
/// bdk keeps such a transaction as unconfirmed, assuming it went back to the mempool. This wallet
/// sees no mempool, and the sender may have double-spent it in the new branch (the reason to
/// reorg), in a transaction that does not concern us and that we would never see: the payment
/// would stay in the balance for good. So it is evicted (at time 0, so that any later sighting
/// outranks the eviction); if the new branch confirms it, it counts again. Transactions spending
/// our coins are kept: they are ours, and forgetting them would let coin selection double-spend
/// their inputs.
fn forget_reorged_out_payments(wallet: &mut Wallet) {
    let reorged_out: Vec<Txid> = wallet
        .transactions()
        .filter(|tx| {
            // Never seen unconfirmed, and not in a block of the chain: only in stale blocks.
            matches!(
                tx.chain_position,
                ChainPosition::Unconfirmed {
                    last_seen: None,
                    ..
                }
            )
        })
        .filter(|tx| wallet.sent_and_received(&tx.tx_node.tx).0 == Amount::ZERO)
        .map(|tx| tx.tx_node.txid)
        .collect();
    for txid in &reorged_out {
        tracing::info!(%txid, "a payment to the wallet was confirmed only in a reorged-out block");
    }
    wallet.apply_evicted_txs(reorged_out.into_iter().map(|txid| (txid, 0)));
}

impl Listen for OnchainWallet {
    fn filtered_block_connected(&self, header: &Header, txdata: &TransactionData, height: u32) {
        let block = Block {
            header: *header,
            txdata: txdata.iter().map(|(_, tx)| (*tx).clone()).collect(),
        };
        self.connect_block(&block, height);
    }

    fn block_connected(&self, block: &Block, height: u32) {
        self.connect_block(block, height);
    }

    /// Nothing to do: the new branch's first block replaces ours above the fork point (see
    /// `connect_block`), and until it arrives our stale blocks cost nothing but a moment of
    /// out-of-date balance. bdk offers no way to drop blocks from a wallet either.
    fn blocks_disconnected(&self, fork_point: BestBlock) {
        tracing::debug!(
            fork_height = fork_point.height,
            fork_hash = %fork_point.block_hash,
            "on-chain wallet: blocks disconnected; waiting for the new branch"
        );
    }
}

impl ChangeDestinationSourceSync for OnchainWallet {
    /// A fresh change script of the wallet, for outputs LDK sweeps to us.
    fn get_change_destination_script(&self) -> Result<ScriptBuf, ()> {
        self.new_change_script().map_err(|e| {
            tracing::error!(error = %e, "cannot give LDK a change script of the on-chain wallet");
        })
    }
}
