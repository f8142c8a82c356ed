//! The params of every RPC method: the first byte picks the method (or none that exists), the
//! rest is the `params` JSON text, or no params at all when empty.
#![no_main]

use xln_fuzz::methods::METHODS;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, params)) = data.split_first() else {
        return;
    };
    let method = METHODS
        .get(usize::from(pick) % (METHODS.len() + 1))
        .map_or("nosuchmethod", |m| m.name);
    let params = String::from_utf8_lossy(params);
    let params = (!params.is_empty()).then_some(params.as_ref());
    let _ = xln_fuzz::daemon::rpc_params(method, params);
});
