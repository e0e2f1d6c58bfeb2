//! The control plane: one task owns a libp2p swarm (identify, Kademlia,
//! gossipsub, request-response); the rest of the program talks to it through
//! [`P2pHandle`] and receives [`P2pEvent`]s. Every queue is bounded.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
pub use libp2p::{Multiaddr, PeerId};
use libp2p::{
    StreamProtocol, Swarm, SwarmBuilder, connection_limits, gossipsub, identify, identity, kad, noise, tcp, yamux,
};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// Identify's protocol version: peers announcing another are disconnected.
pub const PROTOCOL_VERSION: &str = "/strand/1";
/// Kademlia protocol name (never the public IPFS DHT's).
pub const KAD_PROTOCOL: &str = "/strand/kad/1";
/// Gossipsub topic of finalised ledger blocks.
pub const BLOCKS_TOPIC: &str = "strand/ledger/blocks/1";
/// Largest gossip message (a block).
pub const GOSSIP_BYTES_MAX: usize = 16 << 20;
/// Commands and events waiting at most.
const QUEUE_MAX: usize = 256;
/// Request-response streams open at once on one connection.
const STREAMS_PER_CONNECTION_MAX: usize = 16;
/// Connections one peer may hold with this one.
const CONNECTIONS_PER_PEER_MAX: u32 = 4;
/// Incoming connections established, and being set up, at once.
const INCOMING_CONNECTIONS_MAX: u32 = 1024;
const PENDING_INCOMING_MAX: u32 = 128;
/// Buffer reserved before a message's bytes arrive: larger messages grow as
/// their bytes come, so a length field alone never allocates.
const RESERVE_BYTES_MAX: usize = 64 * 1024;

/// Bytes of messages being read or waiting to be handled, all peers
/// together: a message takes its share before its body is read and keeps it
/// until the program is done with it, so many peers each sending large
/// messages on many streams cannot make the node hold more than this.
pub const INBOUND_BUDGET_BYTES: usize = 256 << 20;
/// The budget's unit.
const BUDGET_UNIT_BYTES: usize = 64 << 10;

/// Length-prefixed byte messages, with size limits enforced before reading
/// and a shared budget for what is read.
#[derive(Clone, Debug)]
pub struct BytesCodec {
    request_bytes_max: usize,
    response_bytes_max: usize,
    budget: Arc<Semaphore>,
}

/// A message read from a peer, holding its share of the inbound budget
/// until dropped.
#[derive(Debug)]
pub struct Inbound {
    /// The message.
    pub bytes: Vec<u8>,
    _budget: Option<OwnedSemaphorePermit>,
}

impl From<Vec<u8>> for Inbound {
    /// A message to send (outbound messages take no inbound budget).
    fn from(bytes: Vec<u8>) -> Self {
        Self { bytes, _budget: None }
    }
}

/// A fresh inbound budget of [`INBOUND_BUDGET_BYTES`].
fn budget() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(INBOUND_BUDGET_BYTES / BUDGET_UNIT_BYTES))
}

async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> io::Result<Inbound> {
    let mut length = [0u8; 4];
    io.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if length > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("message of {length} bytes exceeds {limit}")));
    }
    // Its share of the budget first, without waiting: over the budget the
    // stream is refused (the sender sees it fail) instead of queueing.
    let units = u32::try_from(length.div_ceil(BUDGET_UNIT_BYTES).max(1)).unwrap_or(u32::MAX);
    let permit = Arc::clone(budget)
        .try_acquire_many_owned(units)
        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "the inbound message budget is spent: try later"))?;
    let mut buffer = Vec::with_capacity(length.min(RESERVE_BYTES_MAX));
    let read = (&mut *io).take(length as u64).read_to_end(&mut buffer).await?;
    if read != length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("message ended after {read} of {length} bytes"),
        ));
    }
    Ok(Inbound { bytes: buffer, _budget: Some(permit) })
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, data: &[u8], limit: usize) -> io::Result<()> {
    let length = u32::try_from(data.len()).ok().filter(|length| *length as usize <= limit);
    let length = length.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(data).await?;
    io.flush().await
}

impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Inbound;
    type Response = Inbound;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Inbound> {
        read_frame(io, self.request_bytes_max, &self.budget).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Inbound> {
        read_frame(io, self.response_bytes_max, &self.budget).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Inbound,
    ) -> io::Result<()> {
        write_frame(io, &request.bytes, self.request_bytes_max).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Inbound,
    ) -> io::Result<()> {
        write_frame(io, &response.bytes, self.response_bytes_max).await
    }
}

/// The behaviours of a strand peer (private: the derive generates an
/// event enum that is an implementation detail).
#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    gossipsub: gossipsub::Behaviour,
    rpc: request_response::Behaviour<BytesCodec>,
}

/// How to start a peer.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// The 32-byte ed25519 secret (the same key as the ledger account).
    pub secret: [u8; 32],
    /// Where to listen (`/ip4/127.0.0.1/tcp/0`), or `None` for a client that only dials.
    pub listen: Option<Multiaddr>,
    /// The request-response protocol.
    pub protocol: &'static str,
    /// Largest request and response.
    pub message_bytes_max: usize,
    /// How long a request may take (a proposal includes the fragment pull).
    pub request_timeout: Duration,
    /// The answer given at once when requests arrive faster than the
    /// program takes them (its queue is full), instead of stalling the swarm.
    pub busy_response: Vec<u8>,
}

/// Something the swarm saw.
#[derive(Debug)]
pub enum P2pEvent {
    /// A peer asks something; answer with [`P2pHandle::respond`].
    Request {
        /// Who.
        peer: PeerId,
        /// The request, holding its share of the inbound budget until
        /// dropped (drop it when done with it).
        request: Inbound,
        /// Where the answer goes.
        channel: ResponseChannel<Inbound>,
    },
    /// A gossiped ledger block.
    Block(Vec<u8>),
    /// Number of connected peers changed.
    Peers(usize),
}

enum Command {
    Request {
        peer: PeerId,
        address: Option<Multiaddr>,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    },
    Respond {
        channel: ResponseChannel<Inbound>,
        bytes: Vec<u8>,
    },
    Publish {
        bytes: Vec<u8>,
    },
}

/// A handle on a running peer.
#[derive(Clone)]
pub struct P2pHandle {
    commands: mpsc::Sender<Command>,
    /// This peer's id.
    pub peer_id: PeerId,
    /// The address it listens on (with `/p2p/<id>`), if it listens.
    pub listen_address: Option<Multiaddr>,
}

/// The libp2p peer id of an ed25519 public key.
pub fn peer_id_of(public_key: &[u8; 32]) -> anyhow::Result<PeerId> {
    Ok(identity::PublicKey::from(identity::ed25519::PublicKey::try_from_bytes(public_key)?).to_peer_id())
}

/// The ed25519 key (ledger account) behind an ed25519 `PeerId`, whose
/// multihash inlines the key; `None` for any other kind of peer id.
pub fn account_of(peer: &PeerId) -> Option<[u8; 32]> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

impl P2pHandle {
    /// Sends a request to `peer` (dialing `address` if given) and waits for
    /// its response.
    pub async fn request(&self, peer: PeerId, address: Option<Multiaddr>, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request { peer, address, bytes, reply })
            .await
            .map_err(|_| "the network task stopped".to_string())?;
        answer.await.map_err(|_| "the network task stopped".to_string())?
    }

    /// Answers a request.
    pub async fn respond(&self, channel: ResponseChannel<Inbound>, bytes: Vec<u8>) {
        let _ = self.commands.send(Command::Respond { channel, bytes }).await;
    }

    /// Gossips a ledger block.
    pub async fn publish_block(&self, bytes: Vec<u8>) {
        let _ = self.commands.send(Command::Publish { bytes }).await;
    }
}

fn behaviour(
    key: &identity::Keypair,
    config: &P2pConfig,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let local = key.public().to_peer_id();
    let identify = identify::Behaviour::new(
        identify::Config::new(PROTOCOL_VERSION.to_string(), key.public())
            .with_agent_version(format!("strand/{}", env!("CARGO_PKG_VERSION"))),
    );
    let mut kad = kad::Behaviour::with_config(
        local,
        kad::store::MemoryStore::new(local),
        kad::Config::new(StreamProtocol::new(KAD_PROTOCOL)),
    );
    kad.set_mode(Some(kad::Mode::Server));
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        // Content-addressed ids: the same block from two peers is one message.
        .message_id_fn(|message: &gossipsub::Message| {
            gossipsub::MessageId::from(blake3::hash(&message.data).as_bytes().to_vec())
        })
        .mesh_outbound_min(1)
        .max_transmit_size(GOSSIP_BYTES_MAX)
        .build()?;
    let mut gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config)?;
    gossipsub.subscribe(&gossipsub::IdentTopic::new(BLOCKS_TOPIC))?;
    let rpc = request_response::Behaviour::with_codec(
        BytesCodec {
            request_bytes_max: config.message_bytes_max,
            response_bytes_max: config.message_bytes_max,
            budget: budget(),
        },
        [(StreamProtocol::new(config.protocol), ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            .with_max_concurrent_streams(STREAMS_PER_CONNECTION_MAX),
    );
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX))
            .with_max_established_incoming(Some(INCOMING_CONNECTIONS_MAX))
            .with_max_pending_incoming(Some(PENDING_INCOMING_MAX)),
    );
    Ok(Behaviour { limits, identify, kad, gossipsub, rpc })
}

/// Starts a peer; returns its handle, its events and its task.
pub async fn start(
    config: P2pConfig,
) -> anyhow::Result<(P2pHandle, mpsc::Receiver<P2pEvent>, tokio::task::JoinHandle<()>)> {
    let mut secret = config.secret;
    let key = identity::Keypair::ed25519_from_bytes(&mut secret)?;
    let peer_id = key.public().to_peer_id();
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key| behaviour(key, &config))
        .map_err(|error| anyhow::anyhow!("cannot build the libp2p behaviour: {error}"))?
        .with_swarm_config(|swarm| swarm.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    let mut listen_address = None;
    if let Some(listen) = config.listen.clone() {
        swarm.listen_on(listen)?;
        let address = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        listen_address = Some(address.with(libp2p::multiaddr::Protocol::P2p(peer_id)));
    }
    let (commands, incoming) = mpsc::channel(QUEUE_MAX);
    let (events, received) = mpsc::channel(QUEUE_MAX);
    let handle = P2pHandle { commands, peer_id, listen_address };
    let task = tokio::spawn(run(swarm, incoming, events, config.busy_response));
    Ok((handle, received, task))
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<P2pEvent>,
    busy: Vec<u8>,
) {
    let mut pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, String>>> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => on_command(&mut swarm, command, &mut pending),
                None => return,
            },
            event = swarm.select_next_some() => on_event(&mut swarm, event, &events, &mut pending, &busy),
        }
    }
}

fn on_command(
    swarm: &mut Swarm<Behaviour>,
    command: Command,
    pending: &mut HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, String>>>,
) {
    match command {
        Command::Request { peer, address, bytes, reply } => {
            if let Some(address) = address {
                swarm.add_peer_address(peer, address);
            }
            let id = swarm.behaviour_mut().rpc.send_request(&peer, Inbound::from(bytes));
            pending.insert(id, reply);
        }
        Command::Respond { channel, bytes } => {
            let _ = swarm.behaviour_mut().rpc.send_response(channel, Inbound::from(bytes));
        }
        Command::Publish { bytes } => {
            let topic = gossipsub::IdentTopic::new(BLOCKS_TOPIC);
            // No subscribed peer yet, or a duplicate: nothing to do.
            let _ = swarm.behaviour_mut().gossipsub.publish(topic, bytes);
        }
    }
}

fn on_event(
    swarm: &mut Swarm<Behaviour>,
    event: SwarmEvent<BehaviourEvent>,
    events: &mpsc::Sender<P2pEvent>,
    pending: &mut HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, String>>>,
    busy: &[u8],
) {
    use request_response::{Event as Rpc, Message};
    match event {
        SwarmEvent::Behaviour(BehaviourEvent::Rpc(Rpc::Message { peer, message, .. })) => match message {
            Message::Request { request, channel, .. } => {
                // Never wait on the program here: the swarm would stop for
                // everyone. A full queue is answered busy at once.
                if let Err(error) = events.try_send(P2pEvent::Request { peer, request, channel })
                    && let P2pEvent::Request { channel, .. } = error.into_inner()
                {
                    let _ = swarm.behaviour_mut().rpc.send_response(channel, Inbound::from(busy.to_vec()));
                }
            }
            Message::Response { request_id, response } => {
                if let Some(reply) = pending.remove(&request_id) {
                    let _ = reply.send(Ok(response.bytes));
                }
            }
        },
        SwarmEvent::Behaviour(BehaviourEvent::Rpc(Rpc::OutboundFailure { request_id, error, peer, .. })) => {
            if let Some(reply) = pending.remove(&request_id) {
                let _ = reply.send(Err(format!("request to {peer} failed: {error}")));
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
            let _ = events.try_send(P2pEvent::Block(message.data));
        }
        SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
            if info.protocol_version != PROTOCOL_VERSION {
                let _ = swarm.disconnect_peer_id(peer_id);
                return;
            }
            // Loopback and private addresses only matter here; the swarm
            // never listens beyond what its configuration names.
            for address in info.listen_addrs {
                swarm.behaviour_mut().kad.add_address(&peer_id, address);
            }
        }
        SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. } => {
            let _ = events.try_send(P2pEvent::Peers(swarm.connected_peers().count()));
        }
        SwarmEvent::IncomingConnectionError { error, send_back_addr, .. } => {
            tracing::info!(%error, from = %send_back_addr, "p2p.connection refused or failed (incoming)");
        }
        SwarmEvent::OutgoingConnectionError { error, peer_id, .. } => {
            tracing::info!(%error, peer = ?peer_id, "p2p.connection failed (outgoing)");
        }
        SwarmEvent::Behaviour(BehaviourEvent::Rpc(Rpc::InboundFailure { peer, error, .. })) => {
            tracing::debug!(%peer, %error, "p2p.request inbound failure");
        }
        _ => {}
    }
}

#[cfg(test)]
mod frame_tests {
    use super::*;

    async fn read(bytes: Vec<u8>, limit: usize) -> io::Result<Vec<u8>> {
        read_frame(&mut futures::io::Cursor::new(bytes), limit, &budget()).await.map(|inbound| inbound.bytes)
    }

    #[tokio::test]
    async fn messages_hold_their_share_of_the_budget_until_dropped() {
        async fn message(length: usize, budget: &Arc<Semaphore>) -> io::Result<Inbound> {
            let bytes = [&(length as u32).to_be_bytes()[..], &vec![7u8; length]].concat();
            read_frame(&mut futures::io::Cursor::new(bytes), 1 << 20, budget).await
        }
        let budget = Arc::new(Semaphore::new(4));
        let big = message(3 * BUDGET_UNIT_BYTES, &budget).await.expect("three units of four");
        let small = message(10, &budget).await.expect("the last unit");
        let refused = message(10, &budget).await.expect_err("the budget is spent");
        assert_eq!(refused.kind(), io::ErrorKind::OutOfMemory);
        drop(big);
        message(2 * BUDGET_UNIT_BYTES, &budget).await.expect("room again once the big one is done with");
        drop(small);
    }

    #[tokio::test]
    async fn hostile_frames_are_refused_without_allocating_their_length() {
        assert_eq!(read([&3u32.to_be_bytes()[..], b"abc"].concat(), 16).await.expect("a message"), b"abc");
        let huge = read(u32::MAX.to_be_bytes().to_vec(), 16 << 20).await;
        assert_eq!(huge.expect_err("refused").kind(), io::ErrorKind::InvalidData);
        let truncated = read([&(16u32 << 20).to_be_bytes()[..], b"abc"].concat(), 16 << 20).await;
        assert_eq!(truncated.expect_err("refused").kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(read(vec![0, 0], 16).await.expect_err("refused").kind(), io::ErrorKind::UnexpectedEof);
    }
}

#[cfg(test)]
mod account_tests {
    use super::*;

    #[test]
    fn a_peer_id_gives_back_its_account() {
        let key = [7u8; 32];
        let secret = identity::ed25519::SecretKey::try_from_bytes(key).expect("secret");
        let public = identity::ed25519::Keypair::from(secret).public().to_bytes();
        let peer = peer_id_of(&public).expect("peer id");
        assert_eq!(account_of(&peer), Some(public));
        assert_eq!(account_of(&PeerId::random()), None);
    }
}
