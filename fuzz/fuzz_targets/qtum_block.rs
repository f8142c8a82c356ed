//! Any bytes as a serialized Qtum block and header; as text, as `getblock`'s hex answer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    chain_qtum::fuzz::block_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        chain_qtum::fuzz::block_hex(text);
    }
});
