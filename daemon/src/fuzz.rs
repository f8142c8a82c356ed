//! Entry points for fuzzing what xlnd reads from its callers and its operator: the params of an
//! RPC call, checked against the contract (`rpc_contract::params::check_call`, the same parsing
//! xlnd does before it calls a handler), and the configuration (`xln.toml` text and command-line
//! flags, [`crate::config`]). Nothing here calls a node.
//!
//! A panic in one is a bug: every input must give a value or an error. xlnd is a binary crate, so
//! the cargo-fuzz targets under `fuzz/` compile this file together with `config.rs` through
//! `#[path]` modules; inside xlnd it is built for the bounded property tests only
//! (`cargo test -p xln-daemon fuzz`, `XLN_PROPTEST_CASES` raises their number of cases).

use std::path::PathBuf;

use clap::Parser;
use rpc_contract::ParamError;
use serde_json::Value;

use crate::config::{parse_file_config, Config, FileConfig, Flags};

/// The data directory the configuration entry points resolve for; never created or read.
const FUZZ_DATADIR: &str = "/nonexistent/xln-fuzz";

/// Checks `params_json` (the `params` member of a JSON-RPC request; `None` when absent) as the
/// params of `method`, as xlnd does before it calls a handler. Returns the params as the method's
/// params struct writes them, or the error the caller gets. Accepted params are a fixed point:
/// what the struct writes is accepted again, as the same params.
pub fn rpc_params(method: &str, params_json: Option<&str>) -> Result<Value, ParamError> {
    let checked = rpc_contract::params::check_call(method, params_json)?;
    let again = rpc_contract::params::check_call(method, Some(&checked.to_string()));
    assert_eq!(
        again.as_ref(),
        Ok(&checked),
        "{method}: the params it accepted, written back, read differently"
    );
    Ok(checked)
}

/// Reads `text` as `xln.toml` and resolves it with no flags, as xlnd starts.
pub fn config_file(text: &str) -> anyhow::Result<Config> {
    let file = parse_file_config(text)?;
    let flags = Flags {
        datadir: Some(PathBuf::from(FUZZ_DATADIR)),
        ..Flags::default()
    };
    Config::from_sources(flags, PathBuf::from(FUZZ_DATADIR), file)
}

/// Reads `args` as xlnd's command line (after the program name) and resolves it with an empty
/// `xln.toml`.
pub fn command_line(args: &[String]) -> anyhow::Result<Config> {
    let program = std::iter::once("xlnd".to_owned());
    let flags = Flags::try_parse_from(program.chain(args.iter().cloned()))?;
    let datadir = flags
        .datadir
        .clone()
        .unwrap_or_else(|| PathBuf::from(FUZZ_DATADIR));
    Config::from_sources(flags, datadir, FileConfig::default())
}

#[cfg(test)]
mod tests;
