//! A test key that owns real coins: mined to its P2WPKH address and spent with real signatures.

use anyhow::{anyhow, ensure, Result};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Witness,
};
use ln_core::ChainSource;

use crate::Bitcoind;

/// A key whose P2WPKH output we fund by mining, to build real, signed transactions.
pub struct TestKey {
    secret_key: SecretKey,
    public_key: CompressedPublicKey,
    /// The P2WPKH script paying to this key.
    pub script_pubkey: ScriptBuf,
}

impl TestKey {
    /// A key made from 32 copies of `byte` (distinct bytes, distinct keys).
    pub fn new(byte: u8) -> Result<Self> {
        let secp = Secp256k1::new();
        let secret_key = SecretKey::from_slice(&[byte; 32])?;
        let public_key = CompressedPublicKey(secret_key.public_key(&secp));
        let script_pubkey = ScriptBuf::new_p2wpkh(&public_key.wpubkey_hash());
        Ok(Self {
            secret_key,
            public_key,
            script_pubkey,
        })
    }

    /// A signed transaction spending `previous` (paying `previous_value` to this key) to `outputs`.
    pub fn spend(
        &self,
        previous: OutPoint,
        previous_value: Amount,
        outputs: Vec<TxOut>,
    ) -> Result<Transaction> {
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: previous,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            }],
            output: outputs,
        };
        let sighash = SighashCache::new(&tx).p2wpkh_signature_hash(
            0,
            &self.script_pubkey,
            previous_value,
            EcdsaSighashType::All,
        )?;
        let message = Message::from_digest(sighash.to_byte_array());
        let signature = bitcoin::ecdsa::Signature {
            signature: Secp256k1::new().sign_ecdsa(&message, &self.secret_key),
            sighash_type: EcdsaSighashType::All,
        };
        let input = tx.input.first_mut().ok_or_else(|| anyhow!("no input"))?;
        input.witness = Witness::p2wpkh(&signature, &self.public_key.0);
        Ok(tx)
    }
}

/// Mines one block to `key` and then the chain's coinbase maturity, so that block's coinbase output
/// is spendable; returns
/// the coinbase outpoint and its value.
pub async fn fund(
    bitcoind: &Bitcoind,
    source: &dyn ChainSource,
    key: &TestKey,
) -> Result<(OutPoint, Amount)> {
    let address = source.params().address_for_script(&key.script_pubkey)?;
    ensure!(
        source.params().script_for_address(&address)? == key.script_pubkey,
        "the P2WPKH address {address} does not pay the test key"
    );
    let start = source.best_tip().await?.height;
    bitcoind.mine_to_address(1, &address)?;
    bitcoind.mine(source.params().coinbase_maturity)?;
    let block = source
        .block_at_height(start + 1)
        .await?
        .ok_or_else(|| anyhow!("funding block missing"))?;
    let coinbase = block
        .transactions
        .first()
        .ok_or_else(|| anyhow!("block without coinbase"))?;
    let vout = coinbase
        .output
        .iter()
        .position(|o| o.script_pubkey == key.script_pubkey)
        .ok_or_else(|| anyhow!("coinbase does not pay our key"))?;
    let value = coinbase
        .output
        .get(vout)
        .map(|o| o.value)
        .unwrap_or(Amount::ZERO);
    Ok((
        OutPoint {
            txid: coinbase.compute_txid(),
            vout: u32::try_from(vout)?,
        },
        value,
    ))
}
