//! The wallet as LDK's coin source for anchor channels: when a commitment or HTLC transaction
//! needs fees added (CPFP through an anchor, or inputs added to a zero-fee HTLC transaction), LDK
//! selects confirmed wallet coins through this, and the wallet signs its own inputs.

use bdk_wallet::miniscript::psbt::PsbtExt;
use bdk_wallet::SignOptions;
use bitcoin::hashes::Hash;
use bitcoin::{Psbt, ScriptBuf, Transaction, WPubkeyHash};
use lightning::events::bump_transaction::sync::WalletSourceSync;
use lightning::events::bump_transaction::Utxo;

use super::standing::{self, Standing};
use super::OnchainWallet;

impl WalletSourceSync for OnchainWallet {
    fn list_confirmed_utxos(&self) -> Result<Vec<Utxo>, ()> {
        let state = self.lock();
        let utxos = standing::unspent_outputs(&state.wallet, self.params.coinbase_maturity)
            .into_iter()
            .filter(|u| u.standing == Standing::Confirmed)
            .filter(|u| !state.reserved.contains(&u.output.outpoint))
            .filter_map(|u| {
                let script = &u.output.txout.script_pubkey;
                // The wallet's descriptors are P2WPKH only: OP_0 <20-byte key hash>.
                let hash = WPubkeyHash::from_slice(script.as_bytes().get(2..22)?).ok()?;
                script
                    .is_p2wpkh()
                    .then(|| Utxo::new_v0_p2wpkh(u.output.outpoint, u.output.txout.value, &hash))
            })
            .collect();
        Ok(utxos)
    }

    fn get_change_script(&self) -> Result<ScriptBuf, ()> {
        self.new_change_script().map_err(|error| {
            tracing::error!(%error, "no change script for a fee bump");
        })
    }

    fn sign_psbt(&self, mut psbt: Psbt) -> Result<Transaction, ()> {
        let state = self.lock();
        let wallet = &state.wallet;
        let mut ours = Vec::new();
        for index in 0..psbt.inputs.len() {
            let Ok(utxo) = psbt.spend_utxo(index).cloned() else {
                continue;
            };
            let Some((keychain, child)) = wallet.derivation_of_spk(utxo.script_pubkey) else {
                continue;
            };
            let descriptor = wallet.public_descriptor(keychain);
            let Ok(derived) = descriptor.at_derivation_index(child) else {
                continue;
            };
            if psbt.update_input_with_descriptor(index, &derived).is_err() {
                tracing::error!(index, "describing a wallet input for signing failed");
                return Err(());
            }
            ours.push(index);
        }
        if let Err((_, errors)) = psbt.sign(&self.keys.master, wallet.secp_ctx()) {
            tracing::error!(?errors, "signing wallet inputs of a fee bump failed");
            return Err(());
        }
        let options = SignOptions {
            trust_witness_utxo: true,
            ..SignOptions::default()
        };
        // LDK's own inputs (the anchor, HTLC outputs) stay unfinalized here; LDK signs them.
        let _ = wallet.finalize_psbt(&mut psbt, options);
        let all_ours_signed = ours.iter().all(|i| {
            psbt.inputs
                .get(*i)
                .is_some_and(|input| input.final_script_witness.is_some())
        });
        if !all_ours_signed {
            tracing::error!("a wallet input of a fee bump could not be finalized");
            return Err(());
        }
        Ok(psbt.extract_tx_unchecked_fee_rate())
    }
}
