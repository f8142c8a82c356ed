//! The node's on-chain wallet, on `bdk_wallet`: receive addresses, balance, and the transactions
//! that pay out of it (payments, channel funding).
//!
//! Keys come from the node seed (BIP84 under the chain's coin type, see `descriptors`); bdk holds
//! only the public descriptors and the wallet signs with the seed's master key itself.
//!
//! The wallet learns the chain only from the chain poller, as a `chain::Listen` listener (see
//! `listen`). A new wallet knows just the genesis block, so on a new node it must be told where
//! the poller starts ([`OnchainWallet::start_at`]); on a restart the poller catches it up from
//! [`OnchainWallet::best_block`].
//!
//! Every mutation (revealed address, connected block, broadcast transaction) is written to the
//! store before the call returns (see `persist`).
//!
//! Coins are judged by the chain's own rules, not bdk's Bitcoin constants (see `standing` and
//! `coin_selection`): coinbase outputs mature after [`ChainParams::coinbase_maturity`] blocks,
//! change below [`ChainParams::dust_threshold`] goes to fees. Only confirmed coins and change of
//! our own unconfirmed transactions are spent. Addresses are shown and accepted only in the
//! chain's encoding ([`ChainParams::address_for_script`]).
//!
//! A built transaction's inputs stay reserved, in memory only, until it is marked broadcast or
//! cancelled, so two transactions built back to back (two channel fundings) never spend the same
//! coin. After a restart nothing is reserved: unbroadcast transactions are forgotten anyway.

mod anchor_source;
mod build;
mod coin_selection;
mod descriptors;
mod error;
mod listen;
mod persist;
mod standing;
#[cfg(test)]
mod tests;

pub use error::WalletError;

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bdk_wallet::chain::{BlockId, Merge};
use bdk_wallet::{KeychainKind, Update, Wallet};
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction};
use lightning::chain::BestBlock;

use crate::chain::ChainParams;
use crate::seed::NodeSeed;
use crate::store::SledStore;
use descriptors::WalletKeys;
use persist::ChangeSetLog;
use standing::Standing;

/// How much a payment sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAmount {
    /// Exactly this amount; fees and change come from the rest of the wallet.
    Exact(Amount),
    /// Everything the wallet can spend, less fees, in one output.
    All,
}

/// The wallet's balance, by how spendable it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalletBalance {
    /// Confirmed and spendable.
    pub confirmed_sat: u64,
    /// In unconfirmed transactions, ours (change) or received.
    pub unconfirmed_sat: u64,
    /// Mined coins that are not spendable yet ([`ChainParams::coinbase_maturity`]).
    pub immature_sat: u64,
}

/// One unspent output of the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletOutput {
    /// The output.
    pub outpoint: OutPoint,
    /// Its value.
    pub amount_sat: u64,
    /// The wallet address it pays, in the chain's encoding.
    pub address: String,
    /// Blocks confirming it, its own included; 0 while unconfirmed.
    pub confirmations: u32,
    /// Whether it is change of one of our transactions rather than a received payment.
    pub is_change: bool,
}

/// The wallet stored as `stored`, checked to be of `keys` on the chain of `params`.
fn load_stored(
    keys: &WalletKeys,
    params: &ChainParams,
    stored: bdk_wallet::ChangeSet,
) -> Result<Wallet, WalletError> {
    Wallet::load()
        .descriptor(KeychainKind::External, Some(keys.external.clone()))
        .descriptor(KeychainKind::Internal, Some(keys.internal.clone()))
        .check_network(params.ldk_network)
        .check_genesis_hash(params.genesis_block_hash)
        .load_wallet_no_persist(stored)
        .map_err(WalletError::from_load)?
        .ok_or_else(|| WalletError::Corrupt("no wallet in the stored data".to_owned()))
}

/// The node's on-chain wallet. All methods take `&self`: the bdk wallet is behind a mutex, which
/// is held while each change is persisted so the stored change sets keep their order.
pub struct OnchainWallet {
    state: Mutex<WalletState>,
    params: ChainParams,
    /// The descriptors, to reload the wallet with, and the master key, which signs for both and
    /// is never given to bdk.
    keys: WalletKeys,
}

/// What the mutex guards.
struct WalletState {
    wallet: Wallet,
    log: ChangeSetLog,
    /// Inputs of built transactions not yet marked broadcast or cancelled.
    reserved: HashSet<OutPoint>,
}

impl WalletState {
    /// Durably stores whatever bdk staged. On failure the changes stay staged, so the next
    /// successful persist still writes them.
    fn persist(&mut self) -> Result<(), WalletError> {
        if let Some(staged) = self.wallet.staged() {
            self.log.append(staged)?;
            self.wallet.take_staged();
        }
        Ok(())
    }
}

impl OnchainWallet {
    /// Loads the wallet persisted in `store`, or creates it there.
    ///
    /// The descriptors are `wpkh(<master>/84'/<coin type>'/0'/0/*)` (receive) and `.../1/*`
    /// (change), from `seed.wallet_master_key(params.ldk_network.into())`; the wallet's chain
    /// starts at `params.genesis_block_hash`. A stored wallet of another seed, coin type, network
    /// or genesis block is refused with [`WalletError::Mismatch`].
    pub fn load_or_create(
        seed: &NodeSeed,
        params: &ChainParams,
        store: &SledStore,
    ) -> Result<Self, WalletError> {
        let keys = WalletKeys::derive(seed, params)?;
        let (log, stored) = ChangeSetLog::open(store, persist::COMPACT_ABOVE_ENTRIES)?;
        let created = stored.is_empty();
        let wallet = if created {
            Wallet::create(keys.external.clone(), keys.internal.clone())
                .network(params.ldk_network)
                .genesis_hash(params.genesis_block_hash)
                .create_wallet_no_persist()
                .map_err(|e| WalletError::Descriptor(e.to_string()))?
        } else {
            load_stored(&keys, params, stored)?
        };
        let mut state = WalletState {
            wallet,
            log,
            reserved: HashSet::new(),
        };
        state.persist()?;
        let sync_height = state.wallet.latest_checkpoint().height();
        if created {
            tracing::info!("created the on-chain wallet");
        } else {
            tracing::info!(sync_height, "loaded the on-chain wallet");
        }
        Ok(Self {
            state: Mutex::new(state),
            params: params.clone(),
            keys,
        })
    }

    /// Reveals the next receive address, stores that it was given out, and returns it in the
    /// chain's encoding.
    pub fn new_address(&self) -> Result<String, WalletError> {
        let mut state = self.lock();
        let revealed = state.wallet.reveal_next_address(KeychainKind::External);
        state.persist()?;
        let address = self
            .params
            .address_for_script(&revealed.address.script_pubkey())?;
        tracing::debug!(index = revealed.index, %address, "revealed a receive address");
        Ok(address)
    }

    /// Reveals the next change script (a fresh one on every call) and stores that it was given
    /// out.
    pub fn new_change_script(&self) -> Result<ScriptBuf, WalletError> {
        let mut state = self.lock();
        let revealed = state.wallet.reveal_next_address(KeychainKind::Internal);
        state.persist()?;
        Ok(revealed.address.script_pubkey())
    }

    /// The wallet's balance at its latest synced block.
    pub fn balance(&self) -> WalletBalance {
        let state = self.lock();
        let mut balance = WalletBalance::default();
        for unspent in standing::unspent_outputs(&state.wallet, self.params.coinbase_maturity) {
            let value = unspent.output.txout.value.to_sat();
            let bucket = match unspent.standing {
                Standing::Immature => &mut balance.immature_sat,
                Standing::Confirmed => &mut balance.confirmed_sat,
                Standing::OwnUnconfirmed | Standing::ForeignUnconfirmed => {
                    &mut balance.unconfirmed_sat
                }
            };
            *bucket = bucket.saturating_add(value);
        }
        balance
    }

    /// The wallet's unspent outputs, immature and unconfirmed ones included.
    pub fn list_outputs(&self) -> Vec<WalletOutput> {
        let state = self.lock();
        standing::unspent_outputs(&state.wallet, self.params.coinbase_maturity)
            .into_iter()
            .map(|unspent| {
                let script = &unspent.output.txout.script_pubkey;
                let address = self.params.address_for_script(script).unwrap_or_else(|e| {
                    // Only a misconfigured chain encoding gets here; the coins must still show.
                    tracing::warn!(error = %e, "a wallet output has no address in the chain's encoding");
                    format!("script:{}", script.to_hex_string())
                });
                WalletOutput {
                    outpoint: unspent.output.outpoint,
                    amount_sat: unspent.output.txout.value.to_sat(),
                    address,
                    confirmations: unspent.confirmations,
                    is_change: unspent.output.keychain == KeychainKind::Internal,
                }
            })
            .collect()
    }

    /// Whether the wallet knows `txid` as a transaction that pays it and spends none of its
    /// outputs: a claim LDK made straight to a wallet address (an HTLC taken from the peer's
    /// commitment, a justice transaction), as opposed to one the wallet funded (a fee bump,
    /// whose change comes back) or a payment from someone else.
    pub fn is_claim_paying_wallet(&self, txid: bitcoin::Txid) -> bool {
        let state = self.lock();
        let Some(tx) = state.wallet.get_tx(txid) else {
            return false;
        };
        let (sent, received) = state.wallet.sent_and_received(&tx.tx_node.tx);
        sent == Amount::ZERO && received > Amount::ZERO
    }

    /// The height of the last block the wallet has seen.
    pub fn sync_height(&self) -> u32 {
        self.lock().wallet.latest_checkpoint().height()
    }

    /// The last block the wallet has seen: what the chain poller catches it up from on restart.
    pub fn best_block(&self) -> BestBlock {
        let tip = self.lock().wallet.latest_checkpoint();
        BestBlock::new(tip.hash(), tip.height())
    }

    /// Makes a new wallet follow the chain from `block` on (on a new node: the block the chain
    /// poller starts at), assuming nothing before it pays the wallet.
    ///
    /// A new wallet knows only the genesis block, and a block can be connected only onto one it
    /// knows. Calling this again with the same block does nothing; once the wallet has seen any
    /// other block it fails with [`WalletError::AlreadyStarted`].
    pub fn start_at(&self, block: BestBlock) -> Result<(), WalletError> {
        let mut state = self.lock();
        let tip = state.wallet.latest_checkpoint();
        let start = BlockId {
            height: block.height,
            hash: block.block_hash,
        };
        // The genesis block is where every wallet starts, under its real hash, whatever hash
        // the chain source gives LDK for it (a synthetic one on Qtum, see `connect_block`).
        if tip.block_id() == start || block.height == 0 {
            return Ok(());
        }
        if tip.height() != 0 {
            return Err(WalletError::AlreadyStarted {
                sync_height: tip.height(),
            });
        }
        let chain = tip.push(start).map_err(|_| {
            WalletError::Build("the starting block must be above the genesis block".to_owned())
        })?;
        state
            .wallet
            .apply_update(Update {
                chain: Some(chain),
                ..Update::default()
            })
            .map_err(|e| WalletError::Build(format!("setting the starting block: {e}")))?;
        state.persist()?;
        tracing::info!(height = block.height, block_hash = %block.block_hash, "on-chain wallet follows the chain from here");
        Ok(())
    }

    /// Records a transaction from [`Self::build_payment`] or [`Self::build_funding`] as
    /// broadcast: it enters the wallet unconfirmed (seen now), so the balance, the outputs and
    /// coin selection account for it, and it is stored before this returns.
    pub fn mark_broadcast(&self, tx: &Transaction) -> Result<(), WalletError> {
        let mut state = self.lock();
        let seen_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since_epoch| since_epoch.as_secs())
            .unwrap_or(0);
        state.wallet.apply_unconfirmed_txs([(tx.clone(), seen_at)]);
        for input in &tx.input {
            state.reserved.remove(&input.previous_output);
        }
        state.persist()?;
        tracing::info!(txid = %tx.compute_txid(), "wallet transaction broadcast");
        Ok(())
    }

    /// Forgets a built transaction that was never broadcast, or was rejected: its inputs can be
    /// spent again and its change address is the next one used for change.
    ///
    /// This is what bdk 2's `Wallet::cancel_tx` did (bdk 3 removed it).
    pub fn cancel(&self, tx: &Transaction) {
        build::release(&mut self.lock(), tx);
        tracing::debug!(txid = %tx.compute_txid(), "cancelled an unbroadcast wallet transaction");
    }

    /// Forgets the wallet's blocks above `fork_height` (the chain poller's fork point in a reorg),
    /// so that what only they confirmed is no longer counted as confirmed until the new branch
    /// confirms it again, and the next block connects onto the fork point.
    ///
    /// bdk's `Wallet` has no call that drops blocks, but its change sets do (a height mapped to no
    /// hash), so the removal is stored like every other change and the wallet is reloaded from the
    /// stored change sets. Reorgs are rare; the reload reads the wallet's log once.
    pub fn disconnect_above(&self, fork_height: u32) -> Result<(), WalletError> {
        let mut state = self.lock();
        let removed: std::collections::BTreeMap<_, _> = state
            .wallet
            .checkpoints()
            .take_while(|checkpoint| checkpoint.height() > fork_height)
            .map(|checkpoint| (checkpoint.height(), None))
            .collect();
        if removed.is_empty() {
            return Ok(());
        }
        state.persist()?;
        let removal = bdk_wallet::ChangeSet {
            local_chain: bdk_wallet::chain::local_chain::ChangeSet { blocks: removed },
            ..Default::default()
        };
        state.log.append(&removal)?;
        let stored = state.log.merged()?;
        state.wallet = load_stored(&self.keys, &self.params, stored)?;
        listen::forget_reorged_out_payments(&mut state.wallet);
        state.persist()?;
        tracing::info!(
            fork_height,
            sync_height = state.wallet.latest_checkpoint().height(),
            "on-chain wallet: blocks above the fork point disconnected"
        );
        Ok(())
    }

    /// The wallet state. Like the node's other locks, a poisoned one is recovered rather than
    /// taking the wallet down; the store only ever receives whole change sets.
    ///
    /// The lock is held while a change is made durable, so waiting for it may mean waiting for
    /// the disk: a contended wait is a blocking section (`outside_the_runtime`), which keeps an
    /// async caller from holding up the runtime's other tasks.
    fn lock(&self) -> MutexGuard<'_, WalletState> {
        match self.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => crate::store::outside_the_runtime(|| {
                self.state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            }),
        }
    }
}
