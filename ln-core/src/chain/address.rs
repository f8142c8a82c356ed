//! Addresses in the chain's own encoding, from [`ChainParams::address_encoding`].
//!
//! `bitcoin::Address` only knows Bitcoin's prefixes, so addresses are built and parsed here from
//! the same bech32 and base58check primitives rust-bitcoin uses, with the chain's prefixes. On
//! Bitcoin the results are byte-for-byte what `bitcoin::Address` produces (tested below).

use bitcoin::base58;
use bitcoin::bech32::{self, Hrp};
use bitcoin::hashes::Hash;
use bitcoin::script::{Script, ScriptBuf};
use bitcoin::{PubkeyHash, ScriptHash, WitnessProgram, WitnessVersion};

use super::params::ChainParams;

/// Why a string is not an address of this chain, or a script has no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The string is a valid address, but of another chain or network.
    #[error("`{address}` is an address of another chain or network (this node is on {expected})")]
    WrongNetwork {
        /// The address as given.
        address: String,
        /// `<chain> <network>` of this node.
        expected: String,
    },
    /// The string is not an address at all.
    #[error("`{address}` is not a valid address: {reason}")]
    Invalid {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The script is of a type that has no address form.
    #[error("script {0} has no standard address form")]
    NoAddressForm(String),
}

impl ChainParams {
    /// The address that pays to `script_pubkey`, in this chain's encoding.
    pub fn address_for_script(&self, script_pubkey: &Script) -> Result<String, AddressError> {
        let encoding = &self.address_encoding;
        let no_form = || AddressError::NoAddressForm(script_pubkey.to_hex_string());
        if let Some(version) = script_pubkey.witness_version() {
            let program = script_pubkey.as_bytes().get(2..).ok_or_else(no_form)?;
            let hrp = Hrp::parse(encoding.bech32_hrp).map_err(|_| no_form())?;
            return bech32::segwit::encode(hrp, version.into(), program).map_err(|_| no_form());
        }
        let (prefix, hash) = if script_pubkey.is_p2pkh() {
            (encoding.p2pkh_prefix, script_pubkey.as_bytes().get(3..23))
        } else if script_pubkey.is_p2sh() {
            (encoding.p2sh_prefix, script_pubkey.as_bytes().get(2..22))
        } else {
            return Err(no_form());
        };
        let hash = hash.ok_or_else(no_form)?;
        let mut payload = Vec::with_capacity(21);
        payload.push(prefix);
        payload.extend_from_slice(hash);
        Ok(base58::encode_check(&payload))
    }

    /// The script an address of this chain pays to. Addresses of other chains or networks are
    /// refused with [`AddressError::WrongNetwork`].
    pub fn script_for_address(&self, address: &str) -> Result<ScriptBuf, AddressError> {
        let encoding = &self.address_encoding;
        let invalid = |reason: String| AddressError::Invalid {
            address: address.to_owned(),
            reason,
        };
        let wrong_network = || AddressError::WrongNetwork {
            address: address.to_owned(),
            expected: format!("{} {}", self.chain, self.network),
        };

        if let Ok((hrp, version, program)) = bech32::segwit::decode(address) {
            if !hrp.as_str().eq_ignore_ascii_case(encoding.bech32_hrp) {
                return Err(wrong_network());
            }
            let version = WitnessVersion::try_from(version).map_err(|e| invalid(e.to_string()))?;
            let program =
                WitnessProgram::new(version, &program).map_err(|e| invalid(e.to_string()))?;
            return Ok(ScriptBuf::new_witness_program(&program));
        }

        let payload = base58::decode_check(address).map_err(|e| invalid(e.to_string()))?;
        let (prefix, hash) = match payload.split_first() {
            Some((prefix, hash)) if hash.len() == 20 => (*prefix, hash),
            _ => return Err(invalid("wrong payload length".to_owned())),
        };
        if prefix == encoding.p2pkh_prefix {
            let hash = PubkeyHash::from_slice(hash).map_err(|e| invalid(e.to_string()))?;
            Ok(ScriptBuf::new_p2pkh(&hash))
        } else if prefix == encoding.p2sh_prefix {
            let hash = ScriptHash::from_slice(hash).map_err(|e| invalid(e.to_string()))?;
            Ok(ScriptBuf::new_p2sh(&hash))
        } else {
            Err(wrong_network())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{Address, WPubkeyHash, WScriptHash};
    use std::str::FromStr;

    fn sample_scripts() -> Vec<ScriptBuf> {
        vec![
            ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([7; 20])),
            ScriptBuf::new_p2wsh(&WScriptHash::from_byte_array([9; 32])),
            ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array([3; 20])),
            ScriptBuf::new_p2sh(&ScriptHash::from_byte_array([4; 20])),
            // A taproot output (witness v1).
            ScriptBuf::from_hex(
                "51200101010101010101010101010101010101010101010101010101010101010101",
            )
            .unwrap_or_default(),
        ]
    }

    #[test]
    fn bitcoin_addresses_equal_rust_bitcoins_and_round_trip() {
        for params in [
            ChainParams::bitcoin_mainnet(),
            ChainParams::bitcoin_regtest(),
        ] {
            for script in sample_scripts() {
                let ours = params.address_for_script(&script).unwrap_or_default();
                let theirs = Address::from_script(&script, params.ldk_network)
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                assert_eq!(ours, theirs);
                assert_eq!(params.script_for_address(&ours), Ok(script));
            }
        }
    }

    #[test]
    fn address_of_another_network_is_refused() {
        let regtest = ChainParams::bitcoin_regtest();
        let mainnet_address = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
        assert!(Address::from_str(mainnet_address).is_ok());
        assert!(matches!(
            regtest.script_for_address(mainnet_address),
            Err(AddressError::WrongNetwork { .. })
        ));
        // A mainnet P2PKH address on regtest.
        assert!(matches!(
            regtest.script_for_address("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"),
            Err(AddressError::WrongNetwork { .. })
        ));
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        let params = ChainParams::bitcoin_regtest();
        for input in ["", "bcrt1", "not an address", "bcrt1qqqqqqqqq", "1111111"] {
            assert!(params.script_for_address(input).is_err(), "{input}");
        }
        assert!(matches!(
            params.address_for_script(&ScriptBuf::new_op_return([1, 2, 3])),
            Err(AddressError::NoAddressForm(_))
        ));
    }
}
