//! Network plumbing shared by storage nodes and clients.
//!
//! - [`blobs`]: the data plane. iroh endpoints bound to loopback or given
//!   addresses with no relays and no discovery (nothing leaves the hosts we
//!   name), blob serving where every connection, get and push is put to a
//!   [`blobs::Gate`], and verified fetches with timeouts.
//! - [`memory`]: complete blobs held in memory with their outboards,
//!   served to gated gets without hashing or copying them again (the
//!   client's upload window).
//! - [`p2p`]: the control plane. A libp2p swarm (identify, Kademlia,
//!   gossipsub, request-response with a bounded length-prefixed codec) owned
//!   by one task and driven through a command channel.
//! - [`recycle`]: fragment buffers lent to a store and taken back for reuse.
//!
//! One ed25519 key is the participant's ledger account, its iroh endpoint id
//! and its libp2p peer id.

pub mod blobs;
pub mod memory;
pub mod p2p;
pub mod recycle;

/// A provider's endpoints as registered on the ledger.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    /// libp2p multiaddress (with `/p2p/`).
    pub libp2p: Option<p2p::Multiaddr>,
    /// iroh sockets.
    pub iroh: Vec<std::net::SocketAddr>,
}

impl Endpoints {
    /// Parses `libp2p:<multiaddr>` and `iroh:<socket>` entries (others, and
    /// unparsable ones, are skipped).
    pub fn parse(entries: &[String]) -> Self {
        let mut endpoints = Self::default();
        for entry in entries {
            if let Some(address) = entry.strip_prefix("libp2p:") {
                endpoints.libp2p = address.parse().ok();
            } else if let Some(address) = entry.strip_prefix("iroh:") {
                endpoints.iroh.extend(address.parse::<std::net::SocketAddr>().ok());
            }
        }
        endpoints
    }
}
