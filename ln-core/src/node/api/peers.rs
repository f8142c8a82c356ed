//! Peers: connect, disconnect, list. Addresses of peers we connected to are remembered so the
//! node reconnects to its channel peers after a restart.

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::SocketAddress;

use super::parse_node_id;
use crate::node::{Error, Node, NodeInner};

/// A peer we are connected to or share a channel with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its node id.
    pub node_id: PublicKey,
    /// Connected right now.
    pub connected: bool,
    /// Its network address, if known.
    pub address: Option<String>,
}

impl Node {
    /// Connects to `node_id` at `address` (`host:port`; none = an address remembered from an
    /// earlier connection or learnt from gossip). Returns once the Lightning handshake is done.
    pub async fn connect(&self, node_id: PublicKey, address: Option<&str>) -> Result<(), Error> {
        let socket = match address {
            Some(address) => resolve(address).await?,
            None => {
                let known = match known_peer_address(&self.inner, &node_id)? {
                    Some(known) => Some(known),
                    None => self.gossip_address(&node_id).await,
                };
                known.ok_or_else(|| {
                    Error::InvalidParameter(format!(
                        "no address known for {node_id}; give one as {node_id}@host:port"
                    ))
                })?
            }
        };
        connect_peer(&self.inner, node_id, socket).await
    }

    /// Connects given `pubkey@host:port` (or a bare pubkey with a known address).
    pub async fn connect_uri(&self, uri: &str) -> Result<PublicKey, Error> {
        let (id, address) = match uri.split_once('@') {
            Some((id, address)) => (id, Some(address)),
            None => (uri, None),
        };
        let node_id = parse_node_id(id)?;
        self.connect(node_id, address).await?;
        Ok(node_id)
    }

    /// Disconnects from a peer. Channels stay open, and the node reconnects to peers it has
    /// channels with within seconds (as LND does for persistent peers).
    pub fn disconnect(&self, node_id: PublicKey) -> Result<(), Error> {
        if self.inner.peer_manager.peer_by_node_id(&node_id).is_none() {
            return Err(Error::PeerNotConnected(node_id.to_string()));
        }
        self.inner.peer_manager.disconnect_by_node_id(node_id);
        Ok(())
    }

    /// Connected peers and peers we have channels with.
    pub fn list_peers(&self) -> Vec<PeerInfo> {
        let inner = &self.inner;
        let mut peers: Vec<PeerInfo> = inner
            .peer_manager
            .list_peers()
            .into_iter()
            .map(|p| PeerInfo {
                node_id: p.counterparty_node_id,
                connected: true,
                address: p.socket_address.map(|a| a.to_string()),
            })
            .collect();
        for channel in inner.channel_manager.list_channels() {
            let id = channel.counterparty.node_id;
            if !peers.iter().any(|p| p.node_id == id) {
                peers.push(PeerInfo {
                    node_id: id,
                    connected: false,
                    address: known_peer_address(inner, &id)
                        .ok()
                        .flatten()
                        .map(|a| a.to_string()),
                });
            }
        }
        peers.sort_by_key(|p| p.node_id);
        peers
    }

    /// The first address of `node_id`'s announcement that resolves. The graph's lock is held
    /// only to copy the addresses: names are resolved after, without blocking the runtime.
    async fn gossip_address(&self, node_id: &PublicKey) -> Option<SocketAddr> {
        let addresses: Vec<SocketAddress> = {
            let graph = self.inner.graph.read_only();
            let node = graph.node(&lightning::routing::gossip::NodeId::from_pubkey(node_id))?;
            node.announcement_info.as_ref()?.addresses().to_vec()
        };
        for address in &addresses {
            if let Some(socket) = resolve_socket_address(address).await {
                return Some(socket);
            }
        }
        None
    }
}

/// A peer address LDK gives us (from gossip or `ConnectionNeeded`) as a socket address: IP
/// addresses as they are, host names through tokio's resolver (never `std`'s, which would block
/// a runtime thread); onion addresses are not reachable without Tor.
pub(crate) async fn resolve_socket_address(address: &SocketAddress) -> Option<SocketAddr> {
    match address {
        SocketAddress::TcpIpV4 { addr, port } => Some(SocketAddr::from((*addr, *port))),
        SocketAddress::TcpIpV6 { addr, port } => Some(SocketAddr::from((*addr, *port))),
        SocketAddress::Hostname { .. } => tokio::net::lookup_host(address.to_string())
            .await
            .ok()?
            .next(),
        SocketAddress::OnionV2(_) | SocketAddress::OnionV3 { .. } => None,
    }
}

async fn resolve(address: &str) -> Result<SocketAddr, Error> {
    let mut resolved = tokio::net::lookup_host(address).await.map_err(|e| {
        Error::InvalidParameter(format!("cannot resolve {address:?} as host:port: {e}"))
    })?;
    resolved
        .next()
        .ok_or_else(|| Error::InvalidParameter(format!("{address:?} resolves to no address")))
}

/// The address we last reached `node_id` at.
pub(crate) fn known_peer_address(
    inner: &NodeInner,
    node_id: &PublicKey,
) -> Result<Option<SocketAddr>, Error> {
    Ok(inner
        .known_peers
        .get(&node_id.serialize())?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| s.parse().ok()))
}

/// Connects and waits for the handshake; remembers the address on success.
pub(crate) async fn connect_peer(
    inner: &NodeInner,
    node_id: PublicKey,
    address: SocketAddr,
) -> Result<(), Error> {
    if node_id == inner.node_id {
        return Err(Error::InvalidParameter(
            "cannot connect to ourselves".to_owned(),
        ));
    }
    if inner.peer_manager.peer_by_node_id(&node_id).is_none() {
        let no_connection = |why: String| {
            Error::ConnectionFailed(format!(
                "no TCP connection to {node_id} at {address}: {why}"
            ))
        };
        // lightning-net-tokio's connect_outbound, but with Nagle's algorithm off (see
        // `crate::node::low_latency_stream`).
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(address),
        )
        .await
        .map_err(|_| no_connection("no answer within 10 s".to_owned()))?
        .map_err(|e| no_connection(e.to_string()))?;
        let stream =
            crate::node::low_latency_stream(stream).map_err(|e| no_connection(e.to_string()))?;
        tokio::spawn(lightning_net_tokio::setup_outbound(
            inner.peer_manager.clone(),
            node_id,
            stream,
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while inner.peer_manager.peer_by_node_id(&node_id).is_none() {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::ConnectionFailed(format!(
                    "{node_id} at {address} did not complete the Lightning handshake (wrong node id or chain?)"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    inner
        .known_peers
        .put(&node_id.serialize(), address.to_string().as_bytes())?;
    tracing::info!(peer = %node_id, %address, "peer connected");
    Ok(())
}
