//! Peers: `connect`, `disconnect`, `listpeers`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{NodeId, PeerUri, Uint};
use crate::{method, Empty, NoParams};

method!(
    /// `connect`.
    Connect = "connect", ConnectParams => ConnectResult,
    "Connect to a Lightning peer; returns once the Lightning handshake is done.

xlnd remembers the address and reconnects to peers it has channels with, also after a restart.
With a bare node id and no host, xlnd uses the address it last reached that node at, or one from
the node's gossip announcement.

Errors: -32602 (bad node id; an address both in `id` and in `host`; `port` without `host`; a host
that does not resolve; no known address; our own node id), 201 (no TCP connection, or no handshake
within 10 seconds: wrong node id, wrong chain, or the port is not a Lightning node), 701."
);

/// The params of `connect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectParams {
    /// Node id, or node_id@host:port.
    pub id: PeerUri,
    /// Host, if not in id.
    pub host: Option<String>,
    /// Port, if not in id (default: the chain's Lightning port, 9735 on Bitcoin). Only used with host.
    pub port: Option<Uint<65535>>,
}

/// The result of `connect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectResult {
    /// The peer's node id.
    pub id: String,
}

method!(
    /// `disconnect`.
    Disconnect = "disconnect", DisconnectParams => Empty,
    "Disconnect from a connected peer (channels stay open, and xlnd reconnects to channel peers within seconds).

Close the channels to part for good.

Errors: -32602 (bad node id), 200 (not connected to that peer). Nothing else: `disconnect` does not
touch the store."
);

/// The params of `disconnect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DisconnectParams {
    /// Node id.
    pub id: NodeId,
}

method!(
    /// `listpeers`.
    ListPeers = "listpeers", NoParams => ListPeersResult,
    "Connected peers and peers we have channels with.

Errors: none of its own."
);

/// The result of `listpeers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListPeersResult {
    /// The peers, sorted by node id.
    pub peers: Vec<Peer>,
}

/// One peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Peer {
    /// Its node id.
    pub id: String,
    /// Connected now.
    pub connected: bool,
    /// `host:port`, or `null` if unknown.
    pub address: Option<String>,
}
