//! Invoice data signed under a chain's prefix (`ln_core::fuzz::signed_invoice`), so that every
//! field rule behind the signature check runs. First byte: the chain; second: the amount; third:
//! below 128, the rest is the data itself, else the rest edits a valid invoice's data.
#![no_main]

use std::sync::OnceLock;

fn sample_data() -> &'static [Vec<u8>] {
    static DATA: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    DATA.get_or_init(|| {
        ln_core::fuzz::sample_invoices()
            .iter()
            .filter_map(|text| ln_core::fuzz::invoice_data(text))
            .collect()
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [chain, amount, mode, rest @ ..] = data else {
        return;
    };
    if *mode < 128 {
        ln_core::fuzz::signed_invoice(*chain, *amount, rest);
    } else if let Some(base) = sample_data().get(usize::from(*mode) % sample_data().len().max(1)) {
        let edited = xln_fuzz::edit(base.clone(), rest, |c| c & 31);
        ln_core::fuzz::signed_invoice(*chain, *amount, &edited);
    }
});
