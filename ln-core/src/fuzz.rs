//! Entry points for fuzzing what ln-core reads from outside: BOLT11 invoices, under every chain's
//! and network's prefix, as `decode` and `pay` read them ([`invoice::parse`]).
//!
//! Each function takes raw input, runs the real parser on it and checks what must hold of its
//! answer; a panic in one is a bug. The cargo-fuzz targets under `fuzz/` call them (feature
//! `fuzz`), and so do the bounded property tests in `cargo test -p ln-core fuzz`
//! (`XLN_PROPTEST_CASES` raises their number of cases). Never compiled into the node.

use std::time::Duration;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::Fe32;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use lightning::routing::router::RouteParameters;
use lightning::types::string::PrintableString;
use lightning_invoice::{Bolt11Bech32, Currency, InvoiceBuilder, PaymentSecret};

use crate::chain::ChainParams;
use crate::invoice::{self, ChainInvoice, InvoiceDescription};

/// The secret key [`signed_invoice`] and [`sample_invoices`] sign with.
const FUZZ_KEY: [u8; 32] = [0x42; 32];

/// Amounts (with multiplier) put after the prefix by [`signed_invoice`]: none, ordinary ones,
/// sub-millisatoshi ones, zero, and ones too large to count.
const AMOUNTS: &[&str] = &[
    "",
    "1",
    "10u",
    "2500u",
    "1n",
    "10p",
    "1p",
    "0",
    "0p",
    "20m",
    "18446744073709551615",
    "99999999999999999999m",
    "1844674407370955162p",
];

/// Every chain and network xln runs on: the invoice prefixes `lnbc`, `lntb`, `lntbs`, `lnbcrt`,
/// `lnqc`, `lntq` and `lnqcrt`.
pub fn all_chain_params() -> Vec<ChainParams> {
    vec![
        ChainParams::bitcoin_mainnet(),
        ChainParams::bitcoin_testnet(),
        ChainParams::bitcoin_signet(),
        ChainParams::bitcoin_regtest(),
        ChainParams::qtum_mainnet(),
        ChainParams::qtum_testnet(),
        ChainParams::qtum_regtest(),
    ]
}

/// Reads `text` as an invoice on every chain and network. At most one of them may accept it, and
/// an accepted invoice must carry its chain's prefix, read back the same from its own text, and
/// give LDK's payment parameters without a panic. Returns the invoice, if one chain accepted it.
pub fn invoice_text(text: &str) -> Option<ChainInvoice> {
    let mut accepted: Option<(&'static str, ChainInvoice)> = None;
    for params in all_chain_params() {
        match invoice::parse(&params, text) {
            Ok(parsed) => {
                check_accepted(&params, &parsed);
                if let Some((first, _)) = &accepted {
                    panic!(
                        "{text:?} is accepted under both {first} and {}",
                        params.bolt11_prefix
                    );
                }
                accepted = Some((params.bolt11_prefix, parsed));
            }
            // The message is what the RPC shows: building it must not panic either.
            Err(error) => drop(error.to_string()),
        }
    }
    accepted.map(|(_, parsed)| parsed)
}

/// What must hold of an invoice [`invoice::parse`] accepted under `params`.
fn check_accepted(params: &ChainParams, parsed: &ChainInvoice) {
    assert!(
        parsed
            .bolt11
            .to_ascii_lowercase()
            .starts_with(params.bolt11_prefix),
        "{} accepted under {}",
        parsed.bolt11,
        params.bolt11_prefix
    );
    assert_eq!(
        invoice::parse(params, &parsed.bolt11).as_ref(),
        Ok(parsed),
        "reading the invoice's own text again gives another answer"
    );
    assert!(parsed.payment_secret.is_some() && parsed.features.is_some());
    let _ = parsed.is_expired_at(u64::MAX);
    if let InvoiceDescription::Direct(text) = &parsed.description {
        let _ = PrintableString(text).to_string();
    }
    let payment_params = invoice::payment_params(parsed);
    let _ = invoice::recipient_onion(parsed);
    let amount_msat = parsed.amount_msat.unwrap_or(1);
    let _ = RouteParameters::from_payment_params_and_value(payment_params, amount_msat);
}

/// Signs `data` (five-bit values; each byte's low five bits) under the prefix of chain number
/// `chain_choice` (modulo the seven of [`all_chain_params`]) and amount number `amount_choice`
/// (of a fixed list) with a fixed key, then reads it as [`invoice_text`] does. Random data with a
/// valid signature reaches every field rule behind the signature check. An accepted invoice must
/// name the key that signed it.
pub fn signed_invoice(chain_choice: u8, amount_choice: u8, data: &[u8]) -> Option<ChainInvoice> {
    let chains = all_chain_params();
    let params = chains.get(usize::from(chain_choice) % chains.len())?;
    let amount = AMOUNTS.get(usize::from(amount_choice) % AMOUNTS.len())?;
    let fes: Vec<Fe32> = data
        .iter()
        .filter_map(|byte| Fe32::try_from(byte & 31).ok())
        .collect();
    let secret = fuzz_key();
    let hrp = format!("{}{amount}", params.bolt11_prefix);
    let text = invoice::write_signed(&hrp, fes, &secret).ok()?;
    let parsed = invoice_text(&text)?;
    assert_eq!(
        parsed.payee,
        PublicKey::from_secret_key(&Secp256k1::signing_only(), &secret),
        "{text} names a payee that did not sign it"
    );
    Some(parsed)
}

/// The data part of an invoice without its signature, as bytes of five-bit values: what
/// [`signed_invoice`] takes, for mutating valid invoices behind their signature.
pub fn invoice_data(text: &str) -> Option<Vec<u8>> {
    let checked = CheckedHrpstring::new::<Bolt11Bech32>(text).ok()?;
    let data: Vec<u8> = checked
        .fe32_iter::<&mut dyn Iterator<Item = u8>>()
        .map(|fe| fe.to_u8())
        .collect();
    let body = data.len().checked_sub(104)?;
    data.get(..body).map(<[u8]>::to_vec)
}

/// Valid invoices under every chain's prefix (with and without an amount), as LDK builds them and
/// [`invoice::encode`] writes them: a seed corpus and the bases for mutations.
pub fn sample_invoices() -> Vec<String> {
    let mut samples = Vec::new();
    for params in all_chain_params() {
        for amount_msat in [Some(2_500_000_000), None] {
            if let Some(text) = sample_invoice(&params, amount_msat) {
                samples.push(text);
            }
        }
    }
    samples
}

fn sample_invoice(params: &ChainParams, amount_msat: Option<u64>) -> Option<String> {
    let secret = fuzz_key();
    let builder = InvoiceBuilder::new(Currency::Regtest)
        .description("two coffees, no sugar".to_owned())
        .payment_hash(sha256::Hash::from_byte_array([0x5a; 32]))
        .payment_secret(PaymentSecret([0x7e; 32]))
        .duration_since_epoch(Duration::from_secs(1_700_000_000))
        .min_final_cltv_expiry_delta(144)
        .expiry_time(Duration::from_secs(7200))
        .basic_mpp()
        .payment_metadata(vec![0xde, 0xad, 0xbe, 0xef]);
    let builder = match amount_msat {
        Some(amount) => builder.amount_milli_satoshis(amount),
        None => builder,
    };
    let secp = Secp256k1::signing_only();
    let built = builder
        .build_signed(|hash| secp.sign_ecdsa_recoverable(hash, &secret))
        .ok()?;
    invoice::encode(params, &built, &secret).ok()
}

fn fuzz_key() -> SecretKey {
    // A constant in the curve's range; `from_slice` cannot fail on it.
    SecretKey::from_slice(&FUZZ_KEY).unwrap_or_else(|_| unreachable!("0x42.. is a valid key"))
}

#[cfg(test)]
mod tests;
