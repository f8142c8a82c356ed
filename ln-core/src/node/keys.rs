//! The node's keys: LDK's `KeysManager` over the node seed, except that every script a closing
//! or claim transaction pays us to comes from the on-chain wallet. Cooperative-close outputs and
//! LDK's on-chain claims then land directly in the wallet (and are found again from the seed),
//! instead of in keys only LDK knows, as LDK Node does.

use std::sync::Arc;

use super::channel_signer::NodeChannelSigner;
use bitcoin::secp256k1::ecdh::SharedSecret;
use bitcoin::secp256k1::ecdsa::{RecoverableSignature, Signature};
use bitcoin::secp256k1::{schnorr, All, PublicKey, Scalar, Secp256k1};
use bitcoin::{absolute::LockTime, ScriptBuf, Transaction, TxOut};
use lightning::ln::inbound_payment::ExpandedKey;
use lightning::ln::msgs::UnsignedGossipMessage;
use lightning::ln::script::ShutdownScript;
use lightning::offers::invoice::UnsignedBolt12Invoice;
use lightning::sign::{
    EntropySource, KeysManager, NodeSigner, OutputSpender, PeerStorageKey, ReceiveAuthKey,
    Recipient, SignerProvider, SpendableOutputDescriptor,
};
use lightning_invoice::RawBolt11Invoice;

use crate::wallet::OnchainWallet;

/// `KeysManager` with the wallet as destination for everything paid to us on chain.
pub struct NodeKeys {
    inner: KeysManager,
    wallet: Arc<OnchainWallet>,
}

impl NodeKeys {
    /// Keys from LDK's manager, scripts from `wallet`.
    pub fn new(inner: KeysManager, wallet: Arc<OnchainWallet>) -> Self {
        Self { inner, wallet }
    }

    /// The node's secret key, for signing invoices under the chain's own BOLT11 prefix.
    pub(crate) fn node_secret_key(&self) -> bitcoin::secp256k1::SecretKey {
        self.inner.get_node_secret_key()
    }
}

impl EntropySource for NodeKeys {
    fn get_secure_random_bytes(&self) -> [u8; 32] {
        self.inner.get_secure_random_bytes()
    }
}

impl NodeSigner for NodeKeys {
    fn get_expanded_key(&self) -> ExpandedKey {
        self.inner.get_expanded_key()
    }
    fn get_peer_storage_key(&self) -> PeerStorageKey {
        self.inner.get_peer_storage_key()
    }
    fn get_receive_auth_key(&self) -> ReceiveAuthKey {
        self.inner.get_receive_auth_key()
    }
    fn get_node_id(&self, recipient: Recipient) -> Result<PublicKey, ()> {
        self.inner.get_node_id(recipient)
    }
    fn ecdh(
        &self,
        recipient: Recipient,
        other_key: &PublicKey,
        tweak: Option<&Scalar>,
    ) -> Result<SharedSecret, ()> {
        self.inner.ecdh(recipient, other_key, tweak)
    }
    fn sign_invoice(
        &self,
        invoice: &RawBolt11Invoice,
        recipient: Recipient,
    ) -> Result<RecoverableSignature, ()> {
        self.inner.sign_invoice(invoice, recipient)
    }
    fn sign_bolt12_invoice(
        &self,
        invoice: &UnsignedBolt12Invoice,
    ) -> Result<schnorr::Signature, ()> {
        self.inner.sign_bolt12_invoice(invoice)
    }
    fn sign_gossip_message(&self, msg: UnsignedGossipMessage) -> Result<Signature, ()> {
        self.inner.sign_gossip_message(msg)
    }
    fn sign_message(&self, msg: &[u8]) -> Result<String, ()> {
        self.inner.sign_message(msg)
    }
}

impl SignerProvider for NodeKeys {
    type EcdsaSigner = NodeChannelSigner;

    fn generate_channel_keys_id(&self, inbound: bool, user_channel_id: u128) -> [u8; 32] {
        self.inner
            .generate_channel_keys_id(inbound, user_channel_id)
    }

    fn derive_channel_signer(&self, channel_keys_id: [u8; 32]) -> NodeChannelSigner {
        NodeChannelSigner::new(self.inner.derive_channel_signer(channel_keys_id))
    }

    fn get_destination_script(&self, _channel_keys_id: [u8; 32]) -> Result<ScriptBuf, ()> {
        self.wallet.new_change_script().map_err(|error| {
            tracing::error!(%error, "no wallet script for a channel's claims");
        })
    }

    fn get_shutdown_scriptpubkey(&self) -> Result<ShutdownScript, ()> {
        let script = self.wallet.new_change_script().map_err(|error| {
            tracing::error!(%error, "no wallet script for a channel's close");
        })?;
        ShutdownScript::try_from(script).map_err(|_| {
            tracing::error!("the wallet's script is not a valid shutdown script");
        })
    }
}

impl OutputSpender for NodeKeys {
    fn spend_spendable_outputs(
        &self,
        descriptors: &[&SpendableOutputDescriptor],
        outputs: Vec<TxOut>,
        change_destination_script: ScriptBuf,
        feerate_sat_per_1000_weight: u32,
        locktime: Option<LockTime>,
        secp_ctx: &Secp256k1<All>,
    ) -> Result<Transaction, ()> {
        self.inner.spend_spendable_outputs(
            descriptors,
            outputs,
            change_destination_script,
            feerate_sat_per_1000_weight,
            locktime,
            secp_ctx,
        )
    }
}
