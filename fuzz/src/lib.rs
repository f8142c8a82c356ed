//! Shared code of the fuzz targets: xlnd's configuration parser and its fuzz entry points,
//! compiled from the daemon's own files (xlnd is a binary crate, and these files need nothing
//! else of it; RPC params are parsed by the `rpc-contract` library), and the input editing the
//! structure-aware targets use.

#[allow(dead_code, missing_docs)]
#[path = "../../daemon/src/config.rs"]
pub mod config;

/// `daemon/src/fuzz.rs`: `rpc_params`, `config_file` and `command_line`.
#[path = "../../daemon/src/fuzz.rs"]
pub mod daemon;

/// Applies edits read from `script` to `base`: each edit is three bytes (kind, position, value),
/// replacing, inserting or deleting one byte, or cutting the rest off; positions wrap around.
/// `alphabet` maps an edit's value to the byte written.
pub fn edit(mut base: Vec<u8>, script: &[u8], alphabet: impl Fn(u8) -> u8) -> Vec<u8> {
    for step in script.chunks_exact(3) {
        let [kind, position, value] = [step[0], step[1], step[2]];
        let len = base.len();
        // Two position bytes would reach every byte of a block; one, combined with the kind's high
        // bits, reaches the first 16 KiB, which is every fixture.
        let at = usize::from(kind >> 2) << 8 | usize::from(position);
        match kind & 3 {
            0 if len > 0 => base[at % len] = alphabet(value),
            1 => base.insert(at % (len + 1), alphabet(value)),
            2 if len > 0 => {
                base.remove(at % len);
            }
            3 => base.truncate(at % (len + 1)),
            _ => {}
        }
    }
    base
}
