//! Bounded property tests over the fuzz entry points: arbitrary text, valid invoices with
//! characters flipped, inserted or deleted, and random or mutated data signed under each prefix.
//! `XLN_PROPTEST_CASES=100000 cargo test -p ln-core fuzz` runs a longer search.

use proptest::prelude::*;

use super::*;

/// bech32's alphabet, the separator and a few characters that are not in it.
const INVOICE_CHARS: &[u8] =
    b"qpzry9x8gf2tvdw0s3jn54khce6mua7lQPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L1bio\xc3:";

/// Built once: signing them is most of a case's time otherwise.
fn samples() -> &'static [String] {
    static SAMPLES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(sample_invoices)
}

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("XLN_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
}

/// One edit of a text: replace, insert or delete at a position (taken modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, c)| Edit::Replace(at, c)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, c)| Edit::Insert(at, c)),
        any::<usize>().prop_map(Edit::Delete),
    ]
}

/// `bytes` with `edits` applied; `alphabet` maps an edit's byte to the byte written.
fn apply(mut bytes: Vec<u8>, edits: &[Edit], alphabet: impl Fn(u8) -> u8) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Edit::Replace(at, c) if len > 0 => {
                if let Some(slot) = bytes.get_mut(at % len) {
                    *slot = alphabet(c);
                }
            }
            Edit::Insert(at, c) => bytes.insert(at % (len + 1), alphabet(c)),
            Edit::Delete(at) if len > 0 => {
                bytes.remove(at % len);
            }
            _ => {}
        }
    }
    bytes
}

fn invoice_char(c: u8) -> u8 {
    INVOICE_CHARS
        .get(usize::from(c) % INVOICE_CHARS.len())
        .copied()
        .unwrap_or(b'q')
}

#[test]
fn every_sample_invoice_is_accepted_under_its_own_prefix_only() {
    let samples = sample_invoices();
    assert_eq!(samples.len(), 14);
    for sample in &samples {
        assert!(invoice_text(sample).is_some(), "{sample}");
        let data = invoice_data(sample).unwrap_or_default();
        assert!(!data.is_empty(), "{sample}");
    }
}

#[test]
fn resigning_a_sample_invoices_data_gives_it_back() {
    // Qtum regtest (chain 6), signed anew for 2500u = 250_000_000 msat (amount 3).
    let samples = sample_invoices();
    let qtum_regtest = samples.get(12).cloned().unwrap_or_default();
    let data = invoice_data(&qtum_regtest).unwrap_or_default();
    let parsed = signed_invoice(6, 3, &data);
    assert_eq!(parsed.and_then(|p| p.amount_msat), Some(250_000_000));
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn arbitrary_text_is_an_error_not_a_panic(text in ".{0,400}") {
        invoice_text(&text);
    }

    #[test]
    fn invoice_shaped_text_is_an_error_not_a_panic(
        prefix in prop::sample::select(vec!["ln", "lnbc", "lntbs", "lnbcrt", "lnqc", "lntq", "lnqcrt", "LNQCRT", "lightning:lnqc", "lno"]),
        amount in "[0-9]{0,25}[munp]?",
        data in prop::collection::vec(any::<u8>(), 0..700),
    ) {
        let data: String = data.into_iter().map(|c| char::from(invoice_char(c))).collect();
        invoice_text(&format!("{prefix}{amount}1{data}"));
    }

    #[test]
    fn edited_valid_invoices_are_errors_not_panics(
        sample in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..6),
        any_byte in any::<bool>(),
    ) {
        let text = sample.get(samples()).as_bytes().to_vec();
        let edited = if any_byte { apply(text, &edits, |c| c) } else { apply(text, &edits, invoice_char) };
        invoice_text(&String::from_utf8_lossy(&edited));
    }

    #[test]
    fn random_data_signed_under_each_prefix_is_an_error_or_names_its_signer(
        chain in any::<u8>(),
        amount in any::<u8>(),
        data in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        signed_invoice(chain, amount, &data);
    }

    #[test]
    fn edited_invoice_data_signed_anew_is_an_error_or_names_its_signer(
        sample in any::<prop::sample::Index>(),
        chain in any::<u8>(),
        amount in any::<u8>(),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let data = invoice_data(sample.get::<String>(samples())).unwrap_or_default();
        signed_invoice(chain, amount, &apply(data, &edits, |c| c & 31));
    }
}
