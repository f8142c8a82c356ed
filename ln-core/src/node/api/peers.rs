//! Peers: connect, disconnect, list. Addresses of peers we connected to are remembered so the
//! node reconnects to its channel peers after a restart.

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;

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
            None => known_peer_address(&self.inner, &node_id)?
                .or_else(|| self.gossip_address(&node_id))
                .ok_or_else(|| {
                    Error::InvalidParameter(format!(
                        "no address known for {node_id}; give one as {node_id}@host:port"
                    ))
                })?,
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

    fn gossip_address(&self, node_id: &PublicKey) -> Option<SocketAddr> {
        let graph = self.inner.graph.read_only();
        let node = graph.node(&lightning::routing::gossip::NodeId::from_pubkey(node_id))?;
        let announcement = node.announcement_info.as_ref()?;
        announcement
            .addresses()
            .iter()
            .find_map(|a| std::net::ToSocketAddrs::to_socket_addrs(a).ok()?.next())
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
        let connection =
            lightning_net_tokio::connect_outbound(inner.peer_manager.clone(), node_id, address)
                .await
                .ok_or_else(|| {
                    Error::ConnectionFailed(format!("no TCP connection to {node_id} at {address}"))
                })?;
        tokio::spawn(connection);
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
