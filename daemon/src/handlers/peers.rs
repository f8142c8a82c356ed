//! `connect`, `disconnect`, `listpeers`.

use std::sync::Arc;

use rpc_contract::peers::{ConnectParams, ConnectResult, DisconnectParams, ListPeersResult, Peer};
use rpc_contract::{Empty, NoParams};

use super::{invalid_param, node_error, public_key, Context, RpcResult};

/// `connect`: the peer's address from `id` (`node_id@host:port`), from `host` and `port`, or
/// (neither given) the one the node knows.
pub async fn connect(ctx: Arc<Context>, params: ConnectParams) -> RpcResult<ConnectResult> {
    let node = &ctx.node;
    public_key("id", params.id.node_id)?;
    let uri = match (&params.id.address, params.host) {
        (Some(_), Some(_)) => {
            return Err(invalid_param(
                "host",
                "give the address either in id or as host, not both",
            ))
        }
        (Some(_), None) => params.id.to_string(),
        (None, Some(host)) => {
            let port = params
                .port
                .map_or(node.chain_params().default_lightning_port, |p| {
                    p.get() as u16
                });
            format!("{}@{host}:{port}", params.id.node_id)
        }
        (None, None) if params.port.is_some() => {
            return Err(invalid_param(
                "port",
                "port needs host (or give id as node_id@host:port)",
            ))
        }
        (None, None) => params.id.to_string(),
    };
    let node_id = node.connect_uri(&uri).await.map_err(node_error)?;
    Ok(ConnectResult {
        id: node_id.to_string(),
    })
}

/// `disconnect`.
pub async fn disconnect(ctx: Arc<Context>, params: DisconnectParams) -> RpcResult<Empty> {
    let id = public_key("id", params.id)?;
    ctx.node.disconnect(id).map_err(node_error)?;
    Ok(Empty {})
}

/// `listpeers`.
pub async fn listpeers(ctx: Arc<Context>, _: NoParams) -> RpcResult<ListPeersResult> {
    Ok(ListPeersResult {
        peers: ctx
            .node
            .list_peers()
            .iter()
            .map(|p| Peer {
                id: p.node_id.to_string(),
                connected: p.connected,
                address: p.address.clone(),
            })
            .collect(),
    })
}
