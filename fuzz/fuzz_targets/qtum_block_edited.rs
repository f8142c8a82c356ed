//! The real Qtum blocks of `fixtures/` with bytes replaced, inserted, deleted or cut off: the first
//! byte picks the block, the rest is an edit script.
#![no_main]

use std::sync::OnceLock;

fn blocks() -> &'static [Vec<u8>] {
    static BLOCKS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BLOCKS.get_or_init(chain_qtum::fuzz::fixture_blocks)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, script)) = data.split_first() else {
        return;
    };
    if let Some(block) = blocks().get(usize::from(pick) % blocks().len().max(1)) {
        chain_qtum::fuzz::block_bytes(&xln_fuzz::edit(block.clone(), script, |b| b));
    }
});
