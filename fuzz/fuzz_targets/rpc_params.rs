//! The params of every RPC method: the first byte picks the method (or none that exists), the
//! rest is the `params` JSON text, or no params at all when empty.
#![no_main]


libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, params)) = data.split_first() else {
        return;
    };
    let methods = rpc_contract::method_docs();
    let method = methods
        .get(usize::from(pick) % (methods.len() + 1))
        .map_or("nosuchmethod", |m| m.name.as_str());
    let params = String::from_utf8_lossy(params);
    let params = (!params.is_empty()).then_some(params.as_ref());
    let _ = xln_fuzz::daemon::rpc_params(method, params);
});
