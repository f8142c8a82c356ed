//! Building and signing the wallet's transactions: payments and channel fundings.

use bdk_wallet::error::CreateTxError;
use bdk_wallet::{KeychainKind, SignOptions, Wallet};
use bitcoin::{Amount, FeeRate, OutPoint, Psbt, Script, ScriptBuf, Transaction};

use super::coin_selection::ChainDustCoinSelection;
use super::{standing, OnchainWallet, SendAmount, WalletError, WalletState};

impl OnchainWallet {
    /// Builds and signs a transaction paying `amount` to `script_pubkey` at `fee_rate` (raised to
    /// the chain's [`fee floor`](crate::chain::ChainParams::fee_floor) if below it, since it
    /// would not relay), with change back to the wallet.
    ///
    /// An exact amount below the chain's dust threshold for `script_pubkey` is refused with
    /// [`WalletError::BelowDust`], as is [`SendAmount::All`] when all there is would be; a
    /// shortfall is [`WalletError::InsufficientFunds`]. The transaction is not broadcast and the
    /// wallet records nothing of it until [`Self::mark_broadcast`], but its inputs are reserved
    /// until then or [`Self::cancel`].
    ///
    /// At least `keep` stays in the wallet's spendable coins (the reserve for fee-bumping anchor
    /// channels' force closes): [`SendAmount::All`] sends everything but `keep`, which goes to a
    /// change output of its own, and an exact amount that would leave less is refused with
    /// [`WalletError::BelowReserve`].
    pub fn build_payment(
        &self,
        script_pubkey: ScriptBuf,
        amount: SendAmount,
        fee_rate: FeeRate,
        keep: Amount,
    ) -> Result<Transaction, WalletError> {
        if let SendAmount::Exact(value) = amount {
            let dust = self.params.dust_threshold(&script_pubkey);
            if value < dust {
                return Err(WalletError::BelowDust {
                    amount_sat: value.to_sat(),
                    dust_sat: dust.to_sat(),
                });
            }
        }
        self.build_and_sign(script_pubkey, amount, fee_rate, keep)
    }

    /// [`Self::build_payment`] of exactly `value` to a channel's funding script, leaving at least
    /// `keep` in the wallet: the transaction for LDK's `FundingGenerationReady` (every input is
    /// segwit, as LDK requires).
    pub fn build_funding(
        &self,
        output_script: ScriptBuf,
        value: Amount,
        fee_rate: FeeRate,
        keep: Amount,
    ) -> Result<Transaction, WalletError> {
        self.build_payment(output_script, SendAmount::Exact(value), fee_rate, keep)
    }

    fn build_and_sign(
        &self,
        recipient: ScriptBuf,
        amount: SendAmount,
        fee_rate: FeeRate,
        keep: Amount,
    ) -> Result<Transaction, WalletError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let (excluded, spendable) = self.coins_for_selection(state);
        let all_but_keep = amount == SendAmount::All && keep > Amount::ZERO;
        if all_but_keep && spendable <= keep {
            return Err(WalletError::BelowReserve {
                left_sat: spendable.to_sat(),
                reserve_sat: keep.to_sat(),
                can_send_sat: 0,
            });
        }
        // What `All` keeps goes to a change address of its own, revealed before bdk builds.
        let kept_output = all_but_keep.then(|| {
            state
                .wallet
                .reveal_next_address(KeychainKind::Internal)
                .address
                .script_pubkey()
        });
        let mut builder = state
            .wallet
            .build_tx()
            .coin_selection(ChainDustCoinSelection::new(&self.params));
        builder
            .fee_rate(fee_rate.max(self.params.fee_floor()))
            .unspendable(excluded)
            // The chain's dust threshold, checked above, applies rather than Bitcoin's.
            .allow_dust(true);
        match amount {
            SendAmount::Exact(value) => {
                builder.add_recipient(recipient.clone(), value);
            }
            SendAmount::All => {
                if let Some(script) = kept_output {
                    builder.add_recipient(script, keep);
                }
                builder.drain_wallet().drain_to(recipient.clone());
            }
        }
        let mut psbt = builder
            .finish()
            .map_err(|e| self.build_error(e, &recipient, amount))?;
        let fee = psbt.fee().unwrap_or(Amount::ZERO);
        let unsigned = psbt.unsigned_tx.clone();
        let signed = self.sign(&state.wallet, &mut psbt).and_then(|()| {
            psbt.extract_tx()
                .map_err(|e| WalletError::Build(e.to_string()))
        });
        let tx = match signed {
            Ok(tx) => tx,
            Err(e) => {
                release(state, &unsigned);
                return Err(e);
            }
        };
        if let SendAmount::Exact(value) = amount {
            let left = self.value_left_after(state, &tx, spendable);
            if left < keep {
                release(state, &tx);
                // Sending less by the shortfall leaves the reserve (the fee barely changes).
                let shortfall = keep - left;
                return Err(WalletError::BelowReserve {
                    left_sat: left.to_sat(),
                    reserve_sat: keep.to_sat(),
                    can_send_sat: value.to_sat().saturating_sub(shortfall.to_sat()),
                });
            }
        }
        // bdk staged the change address it revealed.
        if let Err(e) = state.persist() {
            release(state, &tx);
            return Err(e);
        }
        state
            .reserved
            .extend(tx.input.iter().map(|input| input.previous_output));
        tracing::info!(txid = %tx.compute_txid(), fee_sat = fee.to_sat(), inputs = tx.input.len(), "built a wallet transaction");
        Ok(tx)
    }

    /// The wallet's unspent outputs as coin selection sees them: those it must leave alone
    /// (immature, someone else's unconfirmed, reserved), and the value of all the others.
    fn coins_for_selection(&self, state: &WalletState) -> (Vec<OutPoint>, Amount) {
        let mut excluded = Vec::new();
        let mut spendable = Amount::ZERO;
        for unspent in standing::unspent_outputs(&state.wallet, self.params.coinbase_maturity) {
            let outpoint = unspent.output.outpoint;
            if unspent.standing.is_spendable() && !state.reserved.contains(&outpoint) {
                spendable += unspent.output.txout.value;
            } else {
                excluded.push(outpoint);
            }
        }
        (excluded, spendable)
    }

    /// What the wallet can still spend once `tx` is sent: `spendable` less `tx`'s inputs, plus
    /// its outputs back to the wallet (its change, then spendable as our own unconfirmed coin).
    fn value_left_after(&self, state: &WalletState, tx: &Transaction, spendable: Amount) -> Amount {
        let spent: Amount = tx
            .input
            .iter()
            .filter_map(|input| state.wallet.get_utxo(input.previous_output))
            .map(|utxo| utxo.txout.value)
            .sum();
        let returned: Amount = tx
            .output
            .iter()
            .filter(|output| state.wallet.is_mine(output.script_pubkey.clone()))
            .map(|output| output.value)
            .sum();
        (spendable + returned)
            .checked_sub(spent)
            .unwrap_or(Amount::ZERO)
    }

    /// Signs every input with the master key (bdk put each key's origin in the PSBT) and
    /// finalizes the witnesses.
    fn sign(&self, wallet: &Wallet, psbt: &mut Psbt) -> Result<(), WalletError> {
        psbt.sign(&self.keys.master, wallet.secp_ctx())
            .map_err(|(_, errors)| {
                let errors: Vec<String> = errors
                    .iter()
                    .map(|(input, error)| format!("input {input}: {error}"))
                    .collect();
                WalletError::Sign(errors.join(", "))
            })?;
        let finalized = wallet
            .finalize_psbt(psbt, SignOptions::default())
            .map_err(|e| WalletError::Sign(e.to_string()))?;
        if finalized {
            Ok(())
        } else {
            Err(WalletError::Sign(
                "an input could not be completed with the wallet's keys".to_owned(),
            ))
        }
    }

    /// A bdk build error as ours. When sending everything, a shortfall against the dust
    /// threshold (which the coin selection reports as needed) means what is left after fees is
    /// dust.
    fn build_error(
        &self,
        error: CreateTxError,
        recipient: &Script,
        amount: SendAmount,
    ) -> WalletError {
        let dust = self.params.dust_threshold(recipient);
        match (&error, amount) {
            (CreateTxError::CoinSelection(shortfall), SendAmount::All)
                if shortfall.needed == dust =>
            {
                WalletError::BelowDust {
                    amount_sat: shortfall.available.to_sat(),
                    dust_sat: dust.to_sat(),
                }
            }
            _ => WalletError::from_create_tx(error),
        }
    }
}

/// Undoes what building `tx` did to the wallet: releases its inputs and its change index.
pub(super) fn release(state: &mut WalletState, tx: &Transaction) {
    for input in &tx.input {
        state.reserved.remove(&input.previous_output);
    }
    for output in &tx.output {
        if let Some((KeychainKind::Internal, index)) =
            state.wallet.derivation_of_spk(output.script_pubkey.clone())
        {
            // Does nothing if a transaction the wallet knows already pays to it.
            state.wallet.unmark_used(KeychainKind::Internal, index);
        }
    }
}
