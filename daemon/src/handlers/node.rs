//! `getinfo`, `help`, `rpc.discover`, `stop`.

use std::sync::Arc;

use bitcoin::hex::DisplayHex;
use jsonrpsee::types::ErrorObjectOwned;
use rpc_contract::node::{
    CheckMessageParams, CheckMessageResult, GetInfoResult, HelpParams, HelpResult, MethodHelp,
    SignMessageParams, SignMessageResult,
};
use rpc_contract::{Empty, NoParams};
use serde_json::{json, Value};

use super::{node_error, public_key, Context, RpcResult};

/// `getinfo`.
pub async fn getinfo(ctx: Arc<Context>, _: NoParams) -> RpcResult<GetInfoResult> {
    let info = ctx.node.info();
    Ok(GetInfoResult {
        id: info.node_id.to_string(),
        alias: info.alias,
        chain: info.chain,
        network: info.network,
        block_height: info.block_height,
        block_hash: info.block_hash.to_string(),
        synced_to_chain: info.synced_to_chain,
        num_peers: info.num_peers as u64,
        num_active_channels: info.num_active_channels as u64,
        num_pending_channels: info.num_pending_channels as u64,
        num_inactive_channels: info.num_inactive_channels as u64,
        p2p_addresses: info.p2p_addresses,
        version: info.version,
    })
}

/// `help`: the method table, generated from the contract.
pub async fn help(_: Arc<Context>, params: HelpParams) -> RpcResult<HelpResult> {
    let docs = rpc_contract::method_docs();
    let methods = match params.method {
        Some(name) => {
            let doc = docs.iter().find(|m| m.name == name).ok_or_else(|| {
                ErrorObjectOwned::owned(
                    -32601,
                    format!("no method {name:?}; see help"),
                    Some(json!({"kind": "method_not_found", "method": name})),
                )
            })?;
            vec![MethodHelp::from(doc)]
        }
        None => docs.iter().map(MethodHelp::from).collect(),
    };
    Ok(HelpResult { methods })
}

/// `rpc.discover`: the OpenRPC document.
pub async fn discover(_: Arc<Context>, _: NoParams) -> RpcResult<Value> {
    Ok(rpc_contract::describe::openrpc_document())
}

/// `stop`.
pub async fn stop(ctx: Arc<Context>, _: NoParams) -> RpcResult<Empty> {
    ctx.shutdown.send_replace(true);
    Ok(Empty {})
}

/// `signmessage`.
pub async fn signmessage(
    ctx: Arc<Context>,
    params: SignMessageParams,
) -> RpcResult<SignMessageResult> {
    let signed = ctx
        .node
        .sign_message(&params.message)
        .map_err(super::node_error_about("message"))?;
    Ok(SignMessageResult {
        zbase: signed.zbase,
        signature: signed.signature.to_lower_hex_string(),
        recid: [signed.recid].to_lower_hex_string(),
    })
}

/// `checkmessage`.
pub async fn checkmessage(
    ctx: Arc<Context>,
    params: CheckMessageParams,
) -> RpcResult<CheckMessageResult> {
    let pubkey = match params.pubkey {
        Some(node_id) => Some(public_key("pubkey", node_id)?),
        None => None,
    };
    let check = ctx
        .node
        .check_message(&params.message, &params.zbase, pubkey)
        .map_err(node_error)?;
    Ok(CheckMessageResult {
        pubkey: check.pubkey.map(|key| key.to_string()),
        verified: check.verified,
    })
}
