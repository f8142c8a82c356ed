//! Signed messages (`signmessage`, `checkmessage`) in the format LND and Core Lightning share:
//! `zbase32(header || r || s)` of an ECDSA signature by the node key over
//! `sha256d("Lightning Signed Message:" || message)`, the header byte being 31 plus the recovery
//! id. LDK's `message_signing` signs and recovers; this module adds the parts of the answer Core
//! Lightning gives (signature and recovery id apart) and tells a malformed signature from one
//! that recovers no key.

use bitcoin::secp256k1::PublicKey;
use lightning::routing::gossip::NodeId;
use lightning::util::message_signing;

use crate::node::{Error, Node};

/// The longest message signed or checked, bytes (Core Lightning's limit).
pub const MAX_MESSAGE_BYTES: usize = 65_535;

/// zbase32's alphabet (Zooko's human-oriented base 32).
const ZBASE32_ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// The header byte of a signature with recovery id 0 (27 + 4 for a compressed key).
const HEADER_BASE: u8 = 31;

/// A message signed with the node key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage {
    /// The signature, zbase32 as LND and Core Lightning write it.
    pub zbase: String,
    /// The compact signature, `r || s`.
    pub signature: [u8; 64],
    /// The recovery id, 0 to 3.
    pub recid: u8,
}

/// What a signature over a message says about its signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageCheck {
    /// The key that signed it (recovered from the signature); none if no key recovers.
    pub pubkey: Option<PublicKey>,
    /// With a key given: the signer is that key. Without: the signer is a node of our graph.
    pub verified: bool,
}

/// `message` signed with `secret_key` (LDK's `message_signing::sign`), split as Core Lightning
/// answers it.
pub fn sign_message(
    message: &str,
    secret_key: &bitcoin::secp256k1::SecretKey,
) -> Result<SignedMessage, Error> {
    check_length(message)?;
    let zbase = message_signing::sign(message.as_bytes(), secret_key);
    let (recid, signature) = decode_signature(&zbase)?;
    Ok(SignedMessage {
        zbase,
        signature,
        recid,
    })
}

/// The key that signed `message` with the zbase32 signature `zbase`: an error if `zbase` is not
/// a signature at all, none if it is one from which no key recovers.
pub fn recover_signer(message: &str, zbase: &str) -> Result<Option<PublicKey>, Error> {
    check_length(message)?;
    decode_signature(zbase)?;
    Ok(message_signing::recover_pk(message.as_bytes(), zbase).ok())
}

fn check_length(message: &str) -> Result<(), Error> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(Error::InvalidParameter(format!(
            "message is {} bytes; at most {MAX_MESSAGE_BYTES} can be signed",
            message.len()
        )));
    }
    Ok(())
}

/// The recovery id and compact signature in a zbase32 signature.
fn decode_signature(zbase: &str) -> Result<(u8, [u8; 64]), Error> {
    let bytes = decode_zbase32(zbase).ok_or_else(|| {
        Error::InvalidParameter(format!(
            "zbase is not zbase32 (letters of {})",
            String::from_utf8_lossy(ZBASE32_ALPHABET)
        ))
    })?;
    let (header, compact) = match bytes.split_first() {
        Some((header, compact)) if compact.len() == 64 => (*header, compact),
        _ => {
            return Err(Error::InvalidParameter(format!(
                "zbase is {} bytes; a signature is 65 (a header byte and 64 bytes of signature)",
                bytes.len()
            )))
        }
    };
    let recid = header
        .checked_sub(HEADER_BASE)
        .filter(|id| *id <= 3)
        .ok_or_else(|| {
            Error::InvalidParameter(format!(
                "zbase's header byte is {header}; a signature's is 31 to 34"
            ))
        })?;
    let mut signature = [0u8; 64];
    signature.copy_from_slice(compact);
    Ok((recid, signature))
}

/// Bytes of zbase32 text: 5 bits per letter, most significant first, trailing bits that do not
/// fill a byte dropped. `None` for a letter outside the alphabet.
fn decode_zbase32(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for letter in text.bytes() {
        let value = ZBASE32_ALPHABET.iter().position(|c| *c == letter)?;
        buffer = (buffer << 5) | u32::try_from(value).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(bytes)
}

impl Node {
    /// Signs `message` with the node key.
    pub fn sign_message(&self, message: &str) -> Result<SignedMessage, Error> {
        sign_message(message, &self.inner.keys.node_secret_key())
    }

    /// Checks the zbase32 signature `zbase` of `message`: against `pubkey` if given; else the
    /// signer must be a node of our gossip graph (Core Lightning's rule, after LND's: a key
    /// anyone can make up proves nothing, a node of the graph has channels).
    pub fn check_message(
        &self,
        message: &str,
        zbase: &str,
        pubkey: Option<PublicKey>,
    ) -> Result<MessageCheck, Error> {
        let signer = recover_signer(message, zbase)?;
        let verified = match (signer, pubkey) {
            (None, _) => false,
            (Some(signer), Some(pubkey)) => signer == pubkey,
            (Some(signer), None) => self
                .inner
                .graph
                .read_only()
                .node(&NodeId::from_pubkey(&signer))
                .is_some(),
        };
        Ok(MessageCheck {
            pubkey: signer,
            verified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    /// Messages signed by LND and Core Lightning nodes, with the signers' node ids: the corpus of
    /// Core Lightning's `tests/test_misc.py` (`test_signmessage`), which LDK checks too.
    const FOREIGN_SIGNATURES: [(&str, &str, &str); 3] = [
        (
            "is this compatible?",
            "rbgfioj114mh48d8egqx8o9qxqw4fmhe8jbeeabdioxnjk8z3t1ma1hu1fiswpakgucwwzwo6ofycffbsqusqdimugbh41n1g698hr9t",
            "02b80cabdf82638aac86948e4c06e82064f547768dcef977677b9ea931ea75bab5",
        ),
        (
            "hi",
            "rnrphcjswusbacjnmmmrynh9pqip7sy5cx695h6mfu64iac6qmcmsd8xnsyczwmpqp9shqkth3h4jmkgyqu5z47jfn1q7gpxtaqpx4xg",
            "02de60d194e1ca5947b59fe8e2efd6aadeabfb67f2e89e13ae1a799c1e08e4a43b",
        ),
        (
            "hi",
            "ry8bbsopmduhxy3dr5d9ekfeabdpimfx95kagdem7914wtca79jwamtbw4rxh69hg7n6x9ty8cqk33knbxaqftgxsfsaeprxkn1k48p3",
            "022b8ece90ee891cbcdac0c1cc6af46b73c47212d8defbce80265ac81a6b794931",
        ),
    ];

    fn key_one() -> Result<SecretKey, bitcoin::secp256k1::Error> {
        let mut one = [0u8; 32];
        one[31] = 1;
        SecretKey::from_slice(&one)
    }

    #[test]
    fn signatures_made_by_lnd_and_core_lightning_recover_their_node_ids() -> Result<(), Error> {
        for (message, zbase, node_id) in FOREIGN_SIGNATURES {
            let signer = recover_signer(message, zbase)?.map(|key| key.to_string());
            assert_eq!(signer.as_deref(), Some(node_id), "{message:?}");
            let other = recover_signer("another message", zbase)?.map(|key| key.to_string());
            assert_ne!(other.as_deref(), Some(node_id));
        }
        Ok(())
    }

    #[test]
    fn signing_gives_the_known_zbase_and_its_parts() -> Result<(), Box<dyn std::error::Error>> {
        // The signature of "test message" by the secret key 1 (RFC 6979 makes it deterministic).
        let signed = sign_message("test message", &key_one()?)?;
        assert_eq!(
            signed.zbase,
            "d9tibmnic9t5y41hg7hkakdcra94akas9ku3rmmj4ag9mritc8ok4p5qzefs78c9pqfhpuftqqzhydbdwfg7u6w6wdxcqpqn4sj4e73e"
        );
        let recoverable = bitcoin::secp256k1::ecdsa::RecoverableSignature::from_compact(
            &signed.signature,
            bitcoin::secp256k1::ecdsa::RecoveryId::from_i32(i32::from(signed.recid))?,
        )?;
        let digest = bitcoin::hashes::sha256d::Hash::hash(b"Lightning Signed Message:test message");
        let message = bitcoin::secp256k1::Message::from_digest(digest.to_byte_array());
        let public = PublicKey::from_secret_key(&Secp256k1::new(), &key_one()?);
        assert_eq!(
            Secp256k1::verification_only().recover_ecdsa(&message, &recoverable)?,
            public
        );
        assert_eq!(recover_signer("test message", &signed.zbase)?, Some(public));
        Ok(())
    }

    #[test]
    fn malformed_signatures_are_invalid_parameters() {
        let valid = FOREIGN_SIGNATURES[0].1;
        for zbase in [
            "",
            "not zbase32 at all!",
            &valid[..valid.len() - 8],
            &format!("{valid}yyyyyyyy"),
            // Header byte 0 (all 'y' letters are zero bits).
            &format!("yy{}", &valid[2..]),
        ] {
            assert!(
                matches!(
                    recover_signer("is this compatible?", zbase),
                    Err(Error::InvalidParameter(_))
                ),
                "{zbase:?}"
            );
        }
        let too_long = "x".repeat(MAX_MESSAGE_BYTES + 1);
        assert!(matches!(
            recover_signer(&too_long, valid),
            Err(Error::InvalidParameter(_))
        ));
    }

    #[test]
    fn zbase32_decodes_the_specifications_example() {
        // From the zbase32 specification: the bytes D4 7A 04 are "4t7ye".
        assert_eq!(decode_zbase32("4t7ye"), Some(vec![0xd4, 0x7a, 0x04]));
        assert_eq!(decode_zbase32("0"), None);
    }
}
