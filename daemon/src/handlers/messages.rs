//! `signmessage` and `checkmessage`: typed params and results, one handler each.

use bitcoin::hex::DisplayHex;
use jsonrpsee::types::ErrorObjectOwned;
use ln_core::node::Node;
use serde::Serialize;
use serde_json::Value;

use super::{parse_node_id, rpc_error, to_json};
use crate::methods::Args;

/// The answer of `signmessage`, with Core Lightning's fields.
#[derive(Serialize)]
struct SignMessageResult {
    /// zbase32, as LND and Core Lightning give it out.
    zbase: String,
    /// `r || s`, hex.
    signature: String,
    /// The recovery id, one byte hex (`00` to `03`).
    recid: String,
}

/// `signmessage message`
pub fn signmessage(node: &Node, args: &Args) -> Result<Value, ErrorObjectOwned> {
    let signed = node
        .sign_message(&args.req_str("message")?)
        .map_err(rpc_error)?;
    to_json(&SignMessageResult {
        zbase: signed.zbase,
        signature: signed.signature.to_lower_hex_string(),
        recid: [signed.recid].to_lower_hex_string(),
    })
}

/// The answer of `checkmessage`.
#[derive(Serialize)]
struct CheckMessageResult {
    pubkey: Option<String>,
    verified: bool,
}

/// `checkmessage message zbase [pubkey]`
pub fn checkmessage(node: &Node, args: &Args) -> Result<Value, ErrorObjectOwned> {
    let pubkey = match args.str("pubkey")? {
        Some(pubkey) => Some(parse_node_id(&pubkey)?),
        None => None,
    };
    let check = node
        .check_message(&args.req_str("message")?, &args.req_str("zbase")?, pubkey)
        .map_err(rpc_error)?;
    to_json(&CheckMessageResult {
        pubkey: check.pubkey.map(|key| key.to_string()),
        verified: check.verified,
    })
}
