//! Any text as bitcoind's or qtumd's JSON answer to every call the chain sources read: the first
//! byte is the transaction index a short channel id look-up asks for, the rest the answer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&index, answer)) = data.split_first() else {
        return;
    };
    let answer = String::from_utf8_lossy(answer);
    chain_bitcoin::fuzz::rpc_answer(&answer, u32::from(index));
    chain_qtum::fuzz::header_answer(&answer);
});
