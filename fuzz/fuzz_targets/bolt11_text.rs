//! Any text as a BOLT11 invoice under every chain's prefix (`ln_core::fuzz::invoice_text`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ln_core::fuzz::invoice_text(&String::from_utf8_lossy(data));
});
