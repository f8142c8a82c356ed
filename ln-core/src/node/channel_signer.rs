//! The node's channel signer: LDK's [`InMemorySigner`], except that it signs the HTLC
//! transactions of a counterparty's commitment at half the cost.
//!
//! Every commitment we send carries our signature for each of its HTLCs, and at 400 payments in
//! flight a commitment holds hundreds of them: signing them was a quarter of a node's CPU, on
//! the path every payment waits on (`xln-bench` under `perf`). `InMemorySigner` spends most of
//! that twice over:
//!
//! - it derives the same HTLC key (a point multiplication and a hash) once per HTLC, though it
//!   depends only on the commitment's per-commitment point; here it is derived once;
//! - with the `grind_signatures` feature (on in our build, through `lightning-net-tokio`) it
//!   signs until the signature's R is low, two tries on average, to save one byte of witness in
//!   half of the cases. These signatures are for transactions only the counterparty may
//!   broadcast, whose weight BOLT 3 fixes assuming full-length signatures; here each is signed
//!   once.
//!
//! The commitment's own signature is made the same way, once per commitment on the path of every
//! payment (twice per payment and node over one channel):
//!
//! - `InMemorySigner` computes our funding public key from its secret (a point multiplication)
//!   for every signature; here it is taken from the channel's parameters, where LDK keeps the one
//!   it built the funding output with;
//! - it grinds this signature for a low R as well, though the transaction is again the peer's and
//!   BOLT 3 fixes its weight (and so its fee) assuming full-length signatures.
//!
//! Signing a commitment without HTLCs thus takes 58 µs instead of 159, one with an HTLC 95
//! instead of 223 (release build, one of our 2-core machines, 3,000 of each).
//!
//! The signatures are the ones BOLT 3 asks for: the peer checks the commitment's against our
//! funding key and each HTLC's against our HTLC key. Everything else is delegated.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::{self, Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{Transaction, Txid};
use lightning::ln::chan_utils::{
    self, ChannelPublicKeys, ChannelTransactionParameters, ClosingTransaction,
    CommitmentTransaction, HTLCOutputInCommitment, HolderCommitmentTransaction,
};
use lightning::ln::msgs::UnsignedChannelAnnouncement;
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::sign::{ChannelSigner, HTLCDescriptor, InMemorySigner};
use lightning::types::payment::PaymentPreimage;

/// A channel's signer (see the module documentation).
#[derive(Clone, PartialEq)]
pub struct NodeChannelSigner(InMemorySigner);

impl NodeChannelSigner {
    /// Wraps LDK's signer for one channel.
    pub fn new(inner: InMemorySigner) -> Self {
        Self(inner)
    }

    /// Our signatures for the HTLC transactions of the counterparty's `commitment_tx`, in the
    /// order of its non-dust HTLCs.
    fn sign_counterparty_htlcs(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        commitment_tx: &CommitmentTransaction,
        commitment_txid: &Txid,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<Vec<Signature>, ()> {
        let trusted_tx = commitment_tx.trust();
        let keys = trusted_tx.keys();
        let channel_type = &channel_parameters.channel_type_features;
        let sighash_type = if channel_type.supports_anchors_zero_fee_htlc_tx()
            || channel_type.supports_anchor_zero_fee_commitments()
        {
            EcdsaSighashType::SinglePlusAnyoneCanPay
        } else {
            EcdsaSighashType::All
        };
        let htlc_key = chan_utils::derive_private_key(
            secp_ctx,
            &keys.per_commitment_point,
            &self.0.htlc_base_key,
        );
        commitment_tx
            .nondust_htlcs()
            .iter()
            .map(|htlc| {
                let htlc_tx = chan_utils::build_htlc_transaction(
                    commitment_txid,
                    commitment_tx.negotiated_feerate_per_kw(),
                    channel_parameters.holder_selected_contest_delay,
                    htlc,
                    channel_type,
                    &keys.broadcaster_delayed_payment_key,
                    &keys.revocation_key,
                );
                let script = chan_utils::get_htlc_redeemscript(htlc, channel_type, keys);
                let sighash = SighashCache::new(&htlc_tx)
                    .p2wsh_signature_hash(0, &script, htlc.to_bitcoin_amount(), sighash_type)
                    .map_err(|error| {
                        tracing::error!(%error, "no sighash for a counterparty HTLC transaction");
                    })?;
                let message = Message::from_digest(sighash.to_byte_array());
                Ok(secp_ctx.sign_ecdsa(&message, &htlc_key))
            })
            .collect()
    }
}

impl ChannelSigner for NodeChannelSigner {
    fn get_per_commitment_point(
        &self,
        idx: u64,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<PublicKey, ()> {
        self.0.get_per_commitment_point(idx, secp_ctx)
    }

    fn release_commitment_secret(&self, idx: u64) -> Result<[u8; 32], ()> {
        self.0.release_commitment_secret(idx)
    }

    fn validate_holder_commitment(
        &self,
        holder_tx: &HolderCommitmentTransaction,
        outbound_htlc_preimages: Vec<PaymentPreimage>,
    ) -> Result<(), ()> {
        self.0
            .validate_holder_commitment(holder_tx, outbound_htlc_preimages)
    }

    fn validate_counterparty_revocation(&self, idx: u64, secret: &SecretKey) -> Result<(), ()> {
        self.0.validate_counterparty_revocation(idx, secret)
    }

    fn pubkeys(&self, secp_ctx: &Secp256k1<secp256k1::All>) -> ChannelPublicKeys {
        self.0.pubkeys(secp_ctx)
    }

    fn new_funding_pubkey(
        &self,
        splice_parent_funding_txid: Txid,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> PublicKey {
        self.0
            .new_funding_pubkey(splice_parent_funding_txid, secp_ctx)
    }

    fn channel_keys_id(&self) -> [u8; 32] {
        self.0.channel_keys_id()
    }
}

impl EcdsaChannelSigner for NodeChannelSigner {
    fn sign_counterparty_commitment(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        commitment_tx: &CommitmentTransaction,
        inbound_htlc_preimages: Vec<PaymentPreimage>,
        outbound_htlc_preimages: Vec<PaymentPreimage>,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<(Signature, Vec<Signature>), ()> {
        let Some(counterparty_keys) = channel_parameters
            .counterparty_pubkeys()
            .filter(|_| channel_parameters.is_populated())
        else {
            // LDK's signer refuses these parameters (it asserts); let it say so.
            return self.0.sign_counterparty_commitment(
                channel_parameters,
                commitment_tx,
                inbound_htlc_preimages,
                outbound_htlc_preimages,
                secp_ctx,
            );
        };
        let funding_key = self
            .0
            .funding_key(channel_parameters.splice_parent_funding_txid);
        // The script LDK built the funding output from (`make_funding_redeemscript` of these
        // parameters), so the peer checks the signature against it.
        let funding_script = chan_utils::make_funding_redeemscript(
            &channel_parameters.holder_pubkeys.funding_pubkey,
            &counterparty_keys.funding_pubkey,
        );
        let trusted_tx = commitment_tx.trust();
        let built_tx = trusted_tx.built_transaction();
        let commitment_message =
            built_tx.get_sighash_all(&funding_script, channel_parameters.channel_value_satoshis);
        let commitment_sig = secp_ctx.sign_ecdsa(&commitment_message, &funding_key);
        let htlc_sigs = self.sign_counterparty_htlcs(
            channel_parameters,
            commitment_tx,
            &built_tx.txid,
            secp_ctx,
        )?;
        Ok((commitment_sig, htlc_sigs))
    }

    fn sign_holder_commitment(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        commitment_tx: &HolderCommitmentTransaction,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<Signature, ()> {
        self.0
            .sign_holder_commitment(channel_parameters, commitment_tx, secp_ctx)
    }

    fn sign_justice_revoked_output(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        justice_tx: &Transaction,
        input: usize,
        amount: u64,
        per_commitment_key: &SecretKey,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<Signature, ()> {
        self.0.sign_justice_revoked_output(
            channel_parameters,
            justice_tx,
            input,
            amount,
            per_commitment_key,
            secp_ctx,
        )
    }

    fn sign_justice_revoked_htlc(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        justice_tx: &Transaction,
        input: usize,
        amount: u64,
        per_commitment_key: &SecretKey,
        htlc: &HTLCOutputInCommitment,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<Signature, ()> {
        self.0.sign_justice_revoked_htlc(
            channel_parameters,
            justice_tx,
            input,
            amount,
            per_commitment_key,
            htlc,
            secp_ctx,
        )
    }

    fn sign_holder_htlc_transaction(
        &self,
        htlc_tx: &Transaction,
        input: usize,
        htlc_descriptor: &HTLCDescriptor,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<Signature, ()> {
        self.0
            .sign_holder_htlc_transaction(htlc_tx, input, htlc_descriptor, secp_ctx)
    }

    fn sign_counterparty_htlc_transaction(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        htlc_tx: &Transaction,
        input: usize,
        amount: u64,
        per_commitment_point: &PublicKey,
        htlc: &HTLCOutputInCommitment,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<Signature, ()> {
        self.0.sign_counterparty_htlc_transaction(
            channel_parameters,
            htlc_tx,
            input,
            amount,
            per_commitment_point,
            htlc,
            secp_ctx,
        )
    }

    fn sign_closing_transaction(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        closing_tx: &ClosingTransaction,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<Signature, ()> {
        self.0
            .sign_closing_transaction(channel_parameters, closing_tx, secp_ctx)
    }

    fn sign_holder_keyed_anchor_input(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        anchor_tx: &Transaction,
        input: usize,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<Signature, ()> {
        self.0
            .sign_holder_keyed_anchor_input(channel_parameters, anchor_tx, input, secp_ctx)
    }

    fn sign_channel_announcement_with_funding_key(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        msg: &UnsignedChannelAnnouncement,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Result<Signature, ()> {
        self.0
            .sign_channel_announcement_with_funding_key(channel_parameters, msg, secp_ctx)
    }

    fn sign_splice_shared_input(
        &self,
        channel_parameters: &ChannelTransactionParameters,
        tx: &Transaction,
        input_index: usize,
        secp_ctx: &Secp256k1<secp256k1::All>,
    ) -> Signature {
        self.0
            .sign_splice_shared_input(channel_parameters, tx, input_index, secp_ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightning::chain::transaction::OutPoint;
    use lightning::ln::chan_utils::CounterpartyChannelTransactionParameters;
    use lightning::sign::{KeysManager, SignerProvider};
    use lightning::types::features::ChannelTypeFeatures;
    use lightning::types::payment::PaymentHash;

    fn signer(seed: u8) -> InMemorySigner {
        KeysManager::new(&[seed; 32], 1, 0, true).derive_channel_signer([seed; 32])
    }

    /// The message of the HTLC transaction for `htlc` of the counterparty's `commitment`, built
    /// from LDK's parts as BOLT 3 has it.
    fn htlc_message(
        parameters: &ChannelTransactionParameters,
        commitment: &CommitmentTransaction,
        htlc: &HTLCOutputInCommitment,
        sighash_type: EcdsaSighashType,
    ) -> Message {
        let trusted = commitment.trust();
        let keys = trusted.keys();
        let channel_type = &parameters.channel_type_features;
        let tx = chan_utils::build_htlc_transaction(
            &trusted.built_transaction().txid,
            commitment.negotiated_feerate_per_kw(),
            parameters.holder_selected_contest_delay,
            htlc,
            channel_type,
            &keys.broadcaster_delayed_payment_key,
            &keys.revocation_key,
        );
        let script = chan_utils::get_htlc_redeemscript(htlc, channel_type, keys);
        let sighash = SighashCache::new(&tx)
            .p2wsh_signature_hash(0, &script, htlc.to_bitcoin_amount(), sighash_type)
            .expect("sighash");
        Message::from_digest(sighash.to_byte_array())
    }

    fn signs_as_ldk_does(channel_type: ChannelTypeFeatures, sighash_type: EcdsaSighashType) {
        let secp = Secp256k1::new();
        let ours = NodeChannelSigner::new(signer(1));
        let theirs = signer(2);
        let parameters = ChannelTransactionParameters {
            holder_pubkeys: ours.pubkeys(&secp),
            holder_selected_contest_delay: 144,
            is_outbound_from_holder: true,
            counterparty_parameters: Some(CounterpartyChannelTransactionParameters {
                pubkeys: theirs.pubkeys(&secp),
                selected_contest_delay: 144,
            }),
            funding_outpoint: Some(OutPoint {
                txid: Txid::from_byte_array([7; 32]),
                index: 0,
            }),
            splice_parent_funding_txid: None,
            channel_type_features: channel_type,
            channel_value_satoshis: 1_000_000,
        };
        let index = (1 << 48) - 5;
        let point = theirs
            .get_per_commitment_point(index, &secp)
            .expect("point");
        let htlcs = (0..12u8)
            .map(|i| HTLCOutputInCommitment {
                offered: i % 3 == 0,
                amount_msat: 5_000_000 + u64::from(i) * 1_000,
                cltv_expiry: 500 + u32::from(i),
                payment_hash: PaymentHash([i; 32]),
                transaction_output_index: None,
            })
            .collect();
        let commitment = CommitmentTransaction::new(
            index,
            &point,
            400_000,
            500_000,
            253,
            htlcs,
            &parameters.as_counterparty_broadcastable(),
            &secp,
        );

        let (commitment_sig, htlc_sigs) = ours
            .sign_counterparty_commitment(&parameters, &commitment, vec![], vec![], &secp)
            .expect("ours");
        let (ldk_commitment_sig, ldk_htlc_sigs) = ours
            .0
            .sign_counterparty_commitment(&parameters, &commitment, vec![], vec![], &secp)
            .expect("LDK's");

        // Both commitment signatures check out against the funding output's script; LDK's may
        // differ, ground for a low R.
        let our_funding_key = parameters.holder_pubkeys.funding_pubkey;
        let funding_script = chan_utils::make_funding_redeemscript(
            &our_funding_key,
            &theirs.pubkeys(&secp).funding_pubkey,
        );
        let commitment_message = commitment
            .trust()
            .built_transaction()
            .get_sighash_all(&funding_script, parameters.channel_value_satoshis);
        secp.verify_ecdsa(&commitment_message, &ldk_commitment_sig, &our_funding_key)
            .expect("LDK's commitment signature");
        secp.verify_ecdsa(&commitment_message, &commitment_sig, &our_funding_key)
            .expect("our commitment signature");
        assert_eq!(commitment.nondust_htlcs().len(), 12);
        assert_eq!(htlc_sigs.len(), ldk_htlc_sigs.len());
        let our_htlc_key = commitment
            .trust()
            .keys()
            .countersignatory_htlc_key
            .to_public_key();
        for ((htlc, sig), ldk_sig) in commitment
            .nondust_htlcs()
            .iter()
            .zip(&htlc_sigs)
            .zip(&ldk_htlc_sigs)
        {
            let message = htlc_message(&parameters, &commitment, htlc, sighash_type);
            // LDK's signature checks out against this message, so the message is the one the
            // peer checks; ours must too.
            secp.verify_ecdsa(&message, ldk_sig, &our_htlc_key)
                .expect("LDK's HTLC signature");
            secp.verify_ecdsa(&message, sig, &our_htlc_key)
                .expect("our HTLC signature");
        }
    }

    #[test]
    fn counterparty_htlc_signatures_verify_as_ldks_do_without_anchors() {
        signs_as_ldk_does(
            ChannelTypeFeatures::only_static_remote_key(),
            EcdsaSighashType::All,
        );
    }

    #[test]
    fn counterparty_htlc_signatures_verify_as_ldks_do_with_anchors() {
        signs_as_ldk_does(
            ChannelTypeFeatures::anchors_zero_htlc_fee_and_dependencies(),
            EcdsaSighashType::SinglePlusAnyoneCanPay,
        );
    }
}
