//! Valid invoices of every chain (`ln_core::fuzz::sample_invoices`) with characters replaced,
//! inserted or deleted: the first byte picks the invoice, the rest is an edit script.
#![no_main]

use std::sync::OnceLock;

const ALPHABET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7lQPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L1";

fn samples() -> &'static [String] {
    static SAMPLES: OnceLock<Vec<String>> = OnceLock::new();
    SAMPLES.get_or_init(ln_core::fuzz::sample_invoices)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, script)) = data.split_first() else {
        return;
    };
    let Some(sample) = samples().get(usize::from(pick) % samples().len().max(1)) else {
        return;
    };
    // The high bit of the pick chooses between bech32's alphabet and any byte.
    let edited = if pick & 0x80 == 0 {
        xln_fuzz::edit(sample.as_bytes().to_vec(), script, |c| {
            ALPHABET[usize::from(c) % ALPHABET.len()]
        })
    } else {
        xln_fuzz::edit(sample.as_bytes().to_vec(), script, |c| c)
    };
    ln_core::fuzz::invoice_text(&String::from_utf8_lossy(&edited));
});
