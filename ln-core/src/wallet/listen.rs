//! How the wallet follows the chain and serves LDK: `chain::Listen` for the chain poller, and
//! `ChangeDestinationSourceSync` for the outputs LDK sweeps to the wallet.
//!
//! Neither trait can return an error, so failures are logged with `tracing::error!`. A block that
//! could not be applied or stored is not lost for good: the poller persists its own position
//! first, and on restart catches the wallet up from [`OnchainWallet::best_block`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bdk_wallet::chain::{
    BlockId, ChainPosition, CheckPoint, ConfirmationBlockTime, Indexer, TxUpdate,
};
use bdk_wallet::{Update, Wallet};
use bitcoin::block::Header;
use bitcoin::{Amount, Block, OutPoint, ScriptBuf, Txid};
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};
use lightning::sign::ChangeDestinationSourceSync;

use super::OnchainWallet;

impl OnchainWallet {
    /// Applies `block` at `height`: its transactions that concern the wallet, and the block
    /// itself as the wallet's new tip.
    ///
    /// Blocks arrive in chain order (the chain poller's and LDK's `Listen` contract), so a block
    /// above our tip is connected onto our tip. The parent its header names is not checked
    /// against our tip, and bdk's own block API (which inserts that parent) is not used, because
    /// on a chain whose headers LDK cannot read (Qtum) the header is synthetic and its parent
    /// hash is not always the one the wallet knows: block 1 names the genesis block by its
    /// synthetic hash while the wallet knows it by its real one (which bdk checks on every
    /// load), and a block at the synthetic chain's anchor, or below it while a restored wallet
    /// rescans, names its parent's real hash.
    ///
    /// A block at or below our tip is a reorg whose disconnection we missed (see
    /// `blocks_disconnected`): it is connected onto the parent its header names, and bdk drops our
    /// blocks above that parent, so the transactions only they confirmed are no longer confirmed.
    fn connect_block(&self, block: &Block, height: u32) {
        let block_id = BlockId {
            height,
            hash: block.block_hash(),
        };
        let mut state = self.lock();
        let tip = state.wallet.latest_checkpoint().block_id();
        let connected_to = match height.checked_sub(1) {
            // Genesis is where every wallet starts; nobody connects it.
            None => return,
            Some(_) if tip.height < height => tip,
            Some(0) => BlockId {
                height: 0,
                hash: state.wallet.local_chain().genesis_hash(),
            },
            Some(parent_height) => BlockId {
                height: parent_height,
                hash: block.header.prev_blockhash,
            },
        };
        let is_reorg = connected_to != tip;
        if is_reorg {
            tracing::debug!(height, block_hash = %block_id.hash, tip_height = tip.height, "block does not extend the wallet's tip: reorg");
        }
        let update = Update {
            last_active_indices: BTreeMap::new(),
            tx_update: relevant_transactions(&state.wallet, block, block_id),
            chain: CheckPoint::from_block_ids([connected_to, block_id]).ok(),
        };
        if let Err(e) = state.wallet.apply_update(update) {
            tracing::error!(height, block_hash = %block_id.hash, tip_height = tip.height, error = %e, "the on-chain wallet cannot connect this block; it will be caught up on restart");
            return;
        }
        if is_reorg {
            forget_reorged_out_payments(&mut state.wallet);
        }
        if let Err(e) = state.persist() {
            tracing::error!(height, block_hash = %block_id.hash, error = %e, "could not store the on-chain wallet's new block; it is retried with the next change");
        }
    }
}

/// The transactions of `block` the wallet keeps, confirmed in `block_id`: those that pay or
/// spend its scripts, spend such an output made earlier in the same block, or conflict with one
/// of its transactions. These are the ones bdk's `apply_block_relevant` keeps.
fn relevant_transactions(
    wallet: &Wallet,
    block: &Block,
    block_id: BlockId,
) -> TxUpdate<ConfirmationBlockTime> {
    let index = wallet.spk_index();
    let graph = wallet.tx_graph();
    let anchor = ConfirmationBlockTime {
        block_id,
        confirmation_time: u64::from(block.header.time),
    };
    let mut update = TxUpdate::default();
    // Our outputs made in this block, which the index learns of only once the update is applied.
    let mut ours_in_block = HashSet::new();
    for tx in &block.txdata {
        let relevant = tx
            .input
            .iter()
            .any(|input| ours_in_block.contains(&input.previous_output))
            || index.is_tx_relevant(tx)
            || graph
                .direct_conflicts(tx)
                .filter_map(|(_, txid)| graph.get_tx(txid))
                .any(|ours| index.is_tx_relevant(&ours));
        if !relevant {
            continue;
        }
        let txid = tx.compute_txid();
        for (vout, output) in (0u32..).zip(&tx.output) {
            if index.index_of_spk(output.script_pubkey.clone()).is_some() {
                ours_in_block.insert(OutPoint::new(txid, vout));
            }
        }
        update.txs.push(Arc::new(tx.clone()));
        update.anchors.insert((anchor, txid));
    }
    update
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
pub(super) fn forget_reorged_out_payments(wallet: &mut Wallet) {
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

    /// Drops our blocks above the fork point ([`OnchainWallet::disconnect_above`]): until the
    /// new branch confirms them again, transactions only those blocks confirmed are not counted
    /// as confirmed, however long the new branch takes.
    fn blocks_disconnected(&self, fork_point: BestBlock) {
        if let Err(e) = self.disconnect_above(fork_point.height) {
            tracing::error!(
                fork_height = fork_point.height,
                error = %e,
                "the on-chain wallet could not drop the reorged-out blocks; the new branch's first block replaces them"
            );
        }
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
