//! The wallet's keys: BIP84 native-segwit descriptors from the node seed, with the chain's own
//! BIP32 coin type.
//!
//! bdk gets only the *public* descriptors (`wpkh([fingerprint/84'/coin'/0']xpub/0/*)` and `/1/*`);
//! the master private key stays with [`super::OnchainWallet`], which signs with it directly.
//! bdk's own BIP84 templates are not used because they hard-code Bitcoin's coin types (0 and 1).

use bitcoin::bip32::{ChildNumber, DerivationPath, Xpriv, Xpub};
use bitcoin::secp256k1::{Secp256k1, Signing};

use super::WalletError;
use crate::chain::ChainParams;
use crate::seed::NodeSeed;

/// BIP84: pay-to-witness-public-key-hash.
const BIP84_PURPOSE: u32 = 84;

/// The wallet's master key and its two public descriptors.
pub(super) struct WalletKeys {
    /// The seed's BIP32 master key, for signing.
    pub(super) master: Xpriv,
    /// Receive addresses: `.../0/*`.
    pub(super) external: String,
    /// Change: `.../1/*`.
    pub(super) internal: String,
}

impl WalletKeys {
    /// The keys of the wallet of `seed` on the chain of `params`: account 0 under
    /// `m/84'/<coin type>'/0'`, as the seed's docs require (nothing under `m/0'`..`m/8'`).
    pub(super) fn derive(seed: &NodeSeed, params: &ChainParams) -> Result<Self, WalletError> {
        let secp = Secp256k1::signing_only();
        let master = seed
            .wallet_master_key(params.ldk_network.into())
            .map_err(|e| WalletError::Descriptor(e.to_string()))?;
        let account_xpub = account_xpub(&secp, &master, params.bip32_coin_type)?;
        let origin = format!(
            "[{}/{BIP84_PURPOSE}'/{}'/0']",
            master.fingerprint(&secp),
            params.bip32_coin_type
        );
        Ok(Self {
            master,
            external: format!("wpkh({origin}{account_xpub}/0/*)"),
            internal: format!("wpkh({origin}{account_xpub}/1/*)"),
        })
    }
}

fn account_xpub<C: Signing>(
    secp: &Secp256k1<C>,
    master: &Xpriv,
    coin_type: u32,
) -> Result<Xpub, WalletError> {
    let hardened = |index| {
        ChildNumber::from_hardened_idx(index).map_err(|e| WalletError::Descriptor(e.to_string()))
    };
    let path = DerivationPath::from(vec![
        hardened(BIP84_PURPOSE)?,
        hardened(coin_type)?,
        hardened(0)?,
    ]);
    let account = master
        .derive_priv(secp, &path)
        .map_err(|e| WalletError::Descriptor(e.to_string()))?;
    Ok(Xpub::from_priv(secp, &account))
}
