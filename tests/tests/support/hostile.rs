//! A hostile peer speaking the real protocols: libp2p request-response to
//! the nodes (well-formed requests, and raw frames that lie about their
//! length), iroh-blobs (gets, partial gets, pushes, get-many, observe,
//! floods of connections; sources that serve nothing, stall, or serve the
//! peer's own fragments) and the ledger service (raw frames and signed
//! transactions).

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use iroh_blobs::store::mem::MemStore;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use strand_contracts::stripes::StripeMap;
use strand_contracts::transaction::{Body, ContractTerms, ProofPolicy};
use strand_contracts::{AccountId, Digest, Transaction};
use strand_core::Identity;
use strand_net::p2p::{self, P2pConfig, P2pHandle};
use strand_wire::{FragmentSource, Proposal, Request, Response};

/// How long the hostile peer waits for any answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a node listens, as the hostile peer needs it.
#[derive(Clone, Debug)]
pub struct NodeAddress {
    pub account: AccountId,
    pub libp2p: Multiaddr,
    pub iroh: std::net::SocketAddr,
}

impl NodeAddress {
    pub fn peer(&self) -> PeerId {
        p2p::peer_id_of(&self.account.0).expect("an ed25519 account")
    }
}

/// One hostile key with its libp2p client and iroh endpoint.
pub struct Hostile {
    pub identity: Identity,
    pub account: AccountId,
    pub runtime: Arc<tokio::runtime::Runtime>,
    network: P2pHandle,
    network_task: tokio::task::JoinHandle<()>,
    endpoint: iroh::Endpoint,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.network_task.abort();
    }
}

impl Hostile {
    /// A fresh key (from `seed`) speaking to the network.
    pub fn new(runtime: &Arc<tokio::runtime::Runtime>, seed: u8) -> Self {
        let identity = Identity::from_secret_bytes(&[seed; 32]);
        let account = AccountId::of(&identity.public_key());
        let (network, network_task, endpoint) = runtime.block_on(async {
            let (network, _events, task) = p2p::start(P2pConfig {
                secret: *identity.secret_bytes(),
                listen: None,
                protocol: strand_wire::CONTRACT_PROTOCOL,
                message_bytes_max: strand_wire::MESSAGE_BYTES_MAX,
                request_timeout: Duration::from_secs(600),
                busy_response: Vec::new(),
            })
            .await
            .expect("libp2p client");
            let endpoint =
                strand_net::blobs::endpoint(*identity.secret_bytes(), "127.0.0.1:0".parse().expect("address"))
                    .await
                    .expect("iroh endpoint");
            (network, task, endpoint)
        });
        Self { identity, account, runtime: Arc::clone(runtime), network, network_task, endpoint }
    }

    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    /// Sends `request` to `node`; its decoded answer.
    pub fn ask(&self, node: &NodeAddress, request: &Request) -> Result<Response, String> {
        let answer = self.ask_bytes(node, strand_wire::encode(request))?;
        strand_wire::decode::<Response>(&answer).map_err(|error| error.to_string())
    }

    /// Sends raw request bytes (a well-formed frame) to `node`.
    pub fn ask_bytes(&self, node: &NodeAddress, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        self.block_on(async {
            tokio::time::timeout(ANSWER_TIMEOUT, self.network.request(node.peer(), Some(node.libp2p.clone()), bytes))
                .await
                .map_err(|_| "no answer in time".to_string())?
        })
    }

    /// Sends many requests at once; the answers that came within `wait`
    /// (the rest are still in flight).
    pub fn ask_many(
        &self,
        node: &NodeAddress,
        requests: Vec<Request>,
        wait: Duration,
    ) -> Vec<Result<Response, String>> {
        self.block_on(async {
            let mut pending = futures::stream::FuturesUnordered::new();
            for request in requests {
                let (network, peer, address) = (self.network.clone(), node.peer(), node.libp2p.clone());
                pending.push(async move {
                    let answer = network.request(peer, Some(address), strand_wire::encode(&request)).await?;
                    strand_wire::decode::<Response>(&answer).map_err(|error| error.to_string())
                });
            }
            let mut answers = Vec::new();
            let deadline = tokio::time::Instant::now() + wait;
            while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, pending.next()).await {
                answers.push(answer);
            }
            // What is still pending keeps running in the background.
            tokio::spawn(async move { while pending.next().await.is_some() {} });
            answers
        })
    }

    /// Fetches `fragment` from `node` over iroh-blobs: the bytes received
    /// (none when refused).
    pub fn get(&self, node: &NodeAddress, fragment: [u8; 32]) -> usize {
        self.block_on(async {
            let Ok(connection) = self.connect(node).await else { return 0 };
            strand_net::blobs::fetch_bytes(&connection, fragment, Duration::from_secs(10))
                .await
                .map(|bytes| bytes.len())
                .unwrap_or(0)
        })
    }

    /// Fetches a range of `fragment` into a store of the peer's own: the
    /// payload bytes received.
    pub fn get_range(&self, node: &NodeAddress, fragment: [u8; 32], chunks: std::ops::Range<u64>) -> u64 {
        self.block_on(async {
            let Ok(connection) = self.connect(node).await else { return 0 };
            let store = MemStore::new();
            let ranges = bao_tree::ChunkRanges::from(bao_tree::ChunkNum(chunks.start)..bao_tree::ChunkNum(chunks.end));
            let request =
                iroh_blobs::protocol::GetRequest::builder().root(ranges).build(iroh_blobs::Hash::from_bytes(fragment));
            let progress = store.remote().execute_get(connection, request);
            match tokio::time::timeout(Duration::from_secs(10), progress.complete()).await {
                Ok(Ok(stats)) => stats.payload_bytes_read,
                _ => 0,
            }
        })
    }

    /// Several blobs in one request: the payload bytes received.
    pub fn get_many(&self, node: &NodeAddress, fragments: &[[u8; 32]]) -> u64 {
        self.block_on(async {
            let Ok(connection) = self.connect(node).await else { return 0 };
            let store = MemStore::new();
            let request = fragments
                .iter()
                .fold(iroh_blobs::protocol::GetManyRequest::builder(), |builder, fragment| {
                    builder.hash(iroh_blobs::Hash::from_bytes(*fragment), bao_tree::ChunkRanges::all())
                })
                .build();
            let progress = store.remote().execute_get_many(connection, request);
            match tokio::time::timeout(Duration::from_secs(10), progress.complete()).await {
                Ok(Ok(stats)) => stats.payload_bytes_read,
                _ => 0,
            }
        })
    }

    /// Pushes a blob of the peer's own to `node`: whether the pushing side
    /// finished (iroh-blobs gives a pusher no acknowledgement: the node's
    /// refusal shows in its metrics, not here).
    pub fn push(&self, node: &NodeAddress, data: &[u8]) -> bool {
        self.block_on(async {
            let Ok(connection) = self.connect(node).await else { return false };
            let store = MemStore::new();
            let Ok(tag) = store.add_slice(data).await else { return false };
            let request =
                iroh_blobs::protocol::PushRequest::new(tag.hash, iroh_blobs::protocol::ChunkRangesSeq::root());
            let pushed = tokio::time::timeout(
                Duration::from_secs(10),
                store.remote().execute_push(connection.clone(), request).complete(),
            )
            .await;
            // Keep the connection until the node has read the request (it
            // answers nothing either way).
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(connection);
            matches!(pushed, Ok(Ok(_)))
        })
    }

    /// Opens `count` iroh connections to `node` at once: how many the node
    /// accepted and kept (each then asked for a blob it does not hold).
    pub fn connection_flood(&self, node: &NodeAddress, count: usize) -> usize {
        self.block_on(async {
            let attempts = (0..count).map(|_| async {
                let connection = self.connect(node).await.ok()?;
                // A refused connection is closed by the node on its first request.
                let answered =
                    strand_net::blobs::fetch_bytes(&connection, [0xee; 32], Duration::from_secs(5)).await.is_err();
                let open = connection.close_reason().is_none();
                Some((connection, answered && open))
            });
            let connections: Vec<_> = futures::future::join_all(attempts).await.into_iter().flatten().collect();
            connections.iter().filter(|(_, open)| *open).count()
        })
    }

    async fn connect(&self, node: &NodeAddress) -> Result<iroh::endpoint::Connection, String> {
        let remote = strand_net::blobs::remote_address(node.account.0, &[node.iroh]).map_err(|e| e.to_string())?;
        strand_net::blobs::connect(&self.endpoint, remote, Duration::from_secs(5)).await.map_err(|e| e.to_string())
    }

    /// Terms of this key for `provider`, over `fragment_ids` of `fragment_size`.
    pub fn terms(
        &self,
        provider: AccountId,
        upload: u8,
        fragment_ids: &[[u8; 32]],
        fragment_size: u32,
    ) -> ContractTerms {
        ContractTerms {
            upload: [upload; 16],
            owner: self.account,
            provider,
            fragment_root: Digest(strand_proof_of_storage::merkle::root(fragment_ids)),
            fragment_count: u32::try_from(fragment_ids.len()).expect("count"),
            fragment_size,
            data_shards: 4,
            parity_shards: 2,
            stripe_count: 1,
            stripes_root: Digest([0; 32]),
            term_epochs: 100,
            proof_policy: ProofPolicy { challenges_per_epoch: 20, strikes_max: 3 },
        }
    }

    /// A proposal of this key to `node`.
    pub fn proposal(
        &self,
        node: &NodeAddress,
        upload: u8,
        fragment_ids: &[[u8; 32]],
        size: u32,
        source: &Source,
    ) -> Request {
        let mut terms = self.terms(node.account, upload, fragment_ids, size);
        // One fragment per stripe of 1+1, the parity on another account.
        let stripe_map = StripeMap {
            slots: vec![node.account, AccountId([0xee; 32])],
            stripes: fragment_ids.iter().map(|id| vec![(*id, 0), ([0xee; 32], 1)]).collect(),
        };
        (terms.data_shards, terms.parity_shards, terms.stripe_count) = (1, 1, fragment_ids.len() as u64);
        terms.stripes_root = stripe_map.root();
        Request::Propose(Proposal {
            terms,
            fragment_ids: fragment_ids.to_vec(),
            source: source.address.clone(),
            stripe_map,
        })
    }

    /// A source of this key: `serving` blobs (none: a source that serves
    /// nothing), or one that never answers.
    pub fn source(&self, kind: SourceKind) -> Source {
        self.block_on(async {
            let secret = *self.identity.secret_bytes();
            let endpoint =
                strand_net::blobs::endpoint(secret, "127.0.0.1:0".parse().expect("address")).await.expect("endpoint");
            let address = FragmentSource {
                endpoint: *endpoint.id().as_bytes(),
                addresses: endpoint.bound_sockets().iter().map(ToString::to_string).collect(),
            };
            let store = MemStore::new();
            let mut ids = Vec::new();
            let router = match kind {
                SourceKind::Serving(blobs) => {
                    for blob in blobs {
                        ids.push(*store.add_slice(&blob).await.expect("stored").hash.as_bytes());
                    }
                    let gate: strand_net::blobs::Gate = Arc::new(|_, _, _, _| Ok(()));
                    strand_net::blobs::serve(endpoint, (*store).clone(), gate)
                }
                SourceKind::Stalling => {
                    iroh::protocol::Router::builder(endpoint).accept(iroh_blobs::ALPN, Stall).spawn()
                }
            };
            Source { address, ids, _router: router, _store: store }
        })
    }

    /// Signs `body` with this key's next nonce on the ledger at `address`,
    /// submits it and waits for its outcome.
    pub fn transact(
        &self,
        address: &str,
        chain: Digest,
        body: Body,
    ) -> strand_ledger_service::protocol::TransactionStatus {
        self.block_on(async {
            let mut client = strand_ledger_service::client::LedgerClient::connect(address).await.expect("ledger");
            let nonce = self.next_nonce(&mut client).await;
            let bytes = Transaction::sign(chain, &self.identity, nonce, body).to_bytes();
            submit_and_wait(&mut client, bytes).await
        })
    }

    async fn next_nonce(&self, client: &mut strand_ledger_service::client::LedgerClient) -> u64 {
        // The nonce from a fresh, checked replica of the chain.
        let genesis = client.genesis().await.expect("genesis");
        let replica = strand_contracts::Replica::new(&genesis);
        let mut follower = strand_ledger_service::follower::Follower::new(replica, None);
        follower.catch_up(client).await.expect("catch up");
        follower.replica().state().accounts.get(&self.account).map_or(0, |account| account.nonce) + 1
    }
}

/// Submits transaction bytes and waits (at most 20 blocks) for an outcome.
pub async fn submit_and_wait(
    client: &mut strand_ledger_service::client::LedgerClient,
    bytes: Vec<u8>,
) -> strand_ledger_service::protocol::TransactionStatus {
    use strand_ledger_service::protocol::TransactionStatus;
    let hash = match client.submit(bytes).await.expect("the service answers") {
        Ok(hash) => hash,
        Err(reason) => return TransactionStatus::Dropped(format!("not admitted: {reason}")),
    };
    for _ in 0..20 {
        let status = client.status().await.expect("status");
        client.wait_for_height(status.height + 1, Duration::from_secs(5)).await.expect("wait");
        match client.transaction(hash).await.expect("transaction") {
            TransactionStatus::Pending | TransactionStatus::Unknown => {}
            done => return done,
        }
    }
    panic!("transaction {hash} not finalised within 20 blocks")
}

/// What a hostile source does.
pub enum SourceKind {
    /// Serves these blobs to anyone.
    Serving(Vec<Vec<u8>>),
    /// Accepts connections and never answers.
    Stalling,
}

/// A running hostile source.
pub struct Source {
    pub address: FragmentSource,
    /// The ids of the blobs it serves.
    pub ids: Vec<[u8; 32]>,
    _router: iroh::protocol::Router,
    _store: MemStore,
}

#[derive(Debug, Clone)]
struct Stall;

impl iroh::protocol::ProtocolHandler for Stall {
    async fn accept(&self, connection: iroh::endpoint::Connection) -> Result<(), iroh::protocol::AcceptError> {
        tokio::time::sleep(Duration::from_secs(300)).await;
        drop(connection);
        Ok(())
    }
}

/// Sends `bytes` on one fresh libp2p stream of the contract protocol,
/// exactly as given (no length prefix added: the bytes may lie about their
/// length), then closes the stream for writing; the node's answer if any.
pub fn raw_frame(
    runtime: &tokio::runtime::Runtime,
    seed: u8,
    node: &NodeAddress,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, String> {
    runtime.block_on(async {
        let mut secret = [seed; 32];
        let key = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret).map_err(|e| e.to_string())?;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(libp2p::tcp::Config::default(), libp2p::noise::Config::new, libp2p::yamux::Config::default)
            .map_err(|e| e.to_string())?
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    RawCodec,
                    [(StreamProtocol::new(strand_wire::CONTRACT_PROTOCOL), ProtocolSupport::Outbound)],
                    request_response::Config::default().with_request_timeout(ANSWER_TIMEOUT),
                )
            })
            .map_err(|e| e.to_string())?
            .build();
        swarm.add_peer_address(node.peer(), node.libp2p.clone());
        swarm.behaviour_mut().send_request(&node.peer(), bytes);
        let outcome = tokio::time::timeout(ANSWER_TIMEOUT, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { response, .. },
                        ..
                    }) => return Ok(response),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                        return Err(error.to_string());
                    }
                    _ => {}
                }
            }
        })
        .await;
        outcome.unwrap_or_else(|_| Err("no answer in time".into()))
    })
}

/// Writes requests verbatim and reads whatever answer comes.
#[derive(Clone, Debug, Default)]
struct RawCodec;

/// Whatever the stream holds, up to 1 MiB.
async fn read_all<T: futures::AsyncRead + Unpin + Send>(io: &mut T) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io.take(1 << 20).read_to_end(&mut bytes).await?;
    Ok(bytes)
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_all(io).await
    }

    async fn read_response<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_all(io).await
    }

    async fn write_request<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&request).await?;
        io.close().await
    }

    async fn write_response<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&response).await
    }
}

/// Writes `bytes` to the ledger service at `address` over a fresh TCP
/// connection and reads one answer frame: `Ok(None)` when the service
/// closed the connection without answering.
pub fn raw_ledger(
    runtime: &tokio::runtime::Runtime,
    address: &str,
    bytes: &[u8],
    close_after: bool,
) -> Result<Option<strand_ledger_service::protocol::Response>, String> {
    use tokio::io::AsyncWriteExt as _;
    runtime.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(address).await.map_err(|e| e.to_string())?;
        stream.write_all(bytes).await.map_err(|e| e.to_string())?;
        if close_after {
            stream.shutdown().await.map_err(|e| e.to_string())?;
        }
        let answer = tokio::time::timeout(
            ANSWER_TIMEOUT,
            strand_ledger_service::protocol::read_frame::<strand_ledger_service::protocol::Response>(
                &mut stream,
                strand_ledger_service::protocol::FRAME_BYTES_MAX,
            ),
        )
        .await
        .map_err(|_| "no answer in time".to_string())?;
        match answer {
            Ok(response) => Ok(Some(response)),
            Err(strand_ledger_service::protocol::FrameError::Io(_)) => Ok(None),
            Err(error) => Err(error.to_string()),
        }
    })
}

/// A ledger frame header: version, then the payload length (both LE).
pub fn ledger_header(version: u16, length: u32) -> Vec<u8> {
    [&version.to_le_bytes()[..], &length.to_le_bytes()].concat()
}
