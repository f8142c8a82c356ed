//! Entry points for fuzzing what xlnd reads from its callers and its operator: the params of an
//! RPC call, checked against the method table ([`crate::methods`]) and read with [`Args`] by the
//! type the table gives each param, and the configuration (`xln.toml` text and command-line
//! flags, [`crate::config`]). Nothing here calls a node.
//!
//! A panic in one is a bug: every input must give a value or an error. xlnd is a binary crate, so
//! the cargo-fuzz targets under `fuzz/` compile this file together with `methods.rs` and
//! `config.rs` through `#[path]` modules; inside xlnd it is built for the bounded property tests
//! only (`cargo test -p xln-daemon fuzz`, `XLN_PROPTEST_CASES` raises their number of cases).

use std::path::PathBuf;

use clap::Parser;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde_json::{Map, Value};

use crate::config::{parse_file_config, Config, FileConfig, Flags};
use crate::methods::{invalid, named, spec, Args};

/// The data directory the configuration entry points resolve for; never created or read.
const FUZZ_DATADIR: &str = "/nonexistent/xln-fuzz";

/// Checks `params_json` (the `params` member of a JSON-RPC request; `None` when absent) as the
/// params of `method`, as xlnd does before it calls a handler, then reads every param with the
/// [`Args`] accessor for its type in the table. Returns the checked map, or the error the caller
/// gets. An accepted map names only the method's params, holds every required one, and no null.
pub fn rpc_params(
    method: &str,
    params_json: Option<&str>,
) -> Result<Map<String, Value>, ErrorObjectOwned> {
    let spec = spec(method).ok_or_else(|| invalid(format!("no method {method:?}")))?;
    let map = named(spec, &Params::new(params_json))?;
    for (name, value) in &map {
        assert!(spec.params.iter().any(|p| p.name == name), "{name} kept");
        assert!(!value.is_null(), "{name} kept as null");
    }
    let args = Args(map);
    for param in spec.params {
        let name = param.name;
        match param.kind {
            "string" if param.required => args.req_str(name).map(drop)?,
            "string" => args.str(name).map(drop)?,
            "integer" => args.uint(name, u64::MAX).map(drop)?,
            "boolean" => args.bool(name).map(drop)?,
            "integer|all" => args.uint_or(name, "all", u64::MAX).map(drop)?,
            "integer|any" => args.uint_or(name, "any", u64::MAX).map(drop)?,
            other => panic!("{method}.{name} has the unknown type {other}"),
        }
    }
    Ok(args.0)
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
