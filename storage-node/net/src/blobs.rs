//! The data plane: iroh + iroh-blobs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bao_tree::{ChunkNum, ChunkRanges};
use iroh::endpoint::{Connection, PortmapperConfig, presets};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, EndpointAddr, EndpointId, RelayMode, SecretKey};
use iroh_blobs::api::Store;
use iroh_blobs::provider::events::{
    AbortReason, ConnectMode, EventMask, EventSender, ObserveMode, ProviderMessage, RequestMode, RequestUpdate,
    ThrottleMode,
};
use iroh_blobs::{ALPN, Hash};

/// What a remote asks of the blob server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Read a blob.
    Get,
    /// Hand the server a blob.
    Push,
}

/// What part of a blob a request asks for, in 1 KiB chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// All of it.
    Whole,
    /// Chunks `start..end` at most (`end` is `u64::MAX` when open; several
    /// disjoint ranges are counted as their span).
    Chunks {
        /// First chunk.
        start: u64,
        /// One past the last.
        end: u64,
    },
}

impl Extent {
    pub(crate) fn of(ranges: &ChunkRanges) -> Self {
        if ranges.is_all() {
            return Self::Whole;
        }
        let boundaries = ranges.boundaries();
        let start = boundaries.first().map_or(0, |chunk| chunk.0);
        let end =
            if boundaries.len().is_multiple_of(2) { boundaries.last().map_or(0, |chunk| chunk.0) } else { u64::MAX };
        Self::Chunks { start, end }
    }

    /// Bytes it asks of a blob of `size` bytes.
    pub fn bytes_of(&self, size: u64) -> u64 {
        match *self {
            Self::Whole => size,
            Self::Chunks { start, end } => {
                let chunk = CHUNK_BYTES;
                end.saturating_mul(chunk).min(size).saturating_sub(start.saturating_mul(chunk).min(size))
            }
        }
    }
}

/// Decides every request: `Ok` serves it, `Err(label)` refuses it (the label
/// names the reason in metrics and logs).
pub type Gate = Arc<dyn Fn(Operation, [u8; 32], [u8; 32], Extent) -> Result<(), &'static str> + Send + Sync>;

/// Told of every get the gate allowed once its transfer ends: how long it
/// took from the request and whether it completed.
pub type GetDone = Arc<dyn Fn(std::time::Duration, bool) + Send + Sync>;

/// An iroh endpoint for `secret`, bound to `bind` (port 0 for any), with no
/// relay, no address lookup, no port mapping and no internet probes.
pub async fn endpoint(secret: [u8; 32], bind: SocketAddr) -> anyhow::Result<Endpoint> {
    let endpoint = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&secret))
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .clear_ip_transports()
        .bind_addr(bind)?
        .portmapper_config(PortmapperConfig::Disabled)
        .net_report_config(iroh::NetReportConfig::minimal())
        .bind()
        .await?;
    Ok(endpoint)
}

/// Bytes of a BLAKE3 chunk.
pub const CHUNK_BYTES: u64 = 1024;

/// Connections one remote key may hold with a server at once.
pub const CONNECTIONS_PER_REMOTE_MAX: usize = 16;
/// Connections a server holds at once, all remotes together.
pub const CONNECTIONS_MAX: usize = 1024;

/// Open connections by remote key, bounded per remote and in all.
#[derive(Debug, Default)]
struct Connections {
    remotes: HashMap<u64, [u8; 32]>,
    per_remote: HashMap<[u8; 32], usize>,
}

impl Connections {
    /// Admits connection `id` from `remote` if both limits allow.
    fn admit(&mut self, id: u64, remote: [u8; 32]) -> bool {
        let mine = self.per_remote.get(&remote).copied().unwrap_or(0);
        if self.remotes.len() >= CONNECTIONS_MAX || mine >= CONNECTIONS_PER_REMOTE_MAX {
            return false;
        }
        self.remotes.insert(id, remote);
        self.per_remote.insert(remote, mine + 1);
        true
    }

    fn closed(&mut self, id: u64) {
        let Some(remote) = self.remotes.remove(&id) else { return };
        if let Some(count) = self.per_remote.get_mut(&remote) {
            *count -= 1;
            if *count == 0 {
                self.per_remote.remove(&remote);
            }
        }
    }

    fn remote(&self, id: u64) -> Option<[u8; 32]> {
        self.remotes.get(&id).copied()
    }
}

/// Serves `store` on `endpoint`, putting every connection, get and push to
/// `gate`. Pushes are only served when the gate allows them. Connections are
/// bounded per remote key ([`CONNECTIONS_PER_REMOTE_MAX`]) and in all
/// ([`CONNECTIONS_MAX`]).
pub fn serve(endpoint: Endpoint, store: Store, gate: Gate) -> Router {
    serve_with(endpoint, store, gate, None)
}

/// [`serve`], telling `done` how long each allowed get took to transfer.
/// The cost: iroh-blobs then sends a progress event per payload write of
/// every get, which a task per get reads until the transfer ends.
pub fn serve_timed(endpoint: Endpoint, store: Store, gate: Gate, done: GetDone) -> Router {
    serve_with(endpoint, store, gate, Some(done))
}

fn serve_with(endpoint: Endpoint, store: Store, gate: Gate, done: Option<GetDone>) -> Router {
    let mask = EventMask {
        connected: ConnectMode::Intercept,
        // Transfer events only when someone times the gets.
        get: if done.is_some() { RequestMode::InterceptLog } else { RequestMode::Intercept },
        get_many: RequestMode::Intercept,
        push: RequestMode::Intercept,
        observe: ObserveMode::Intercept,
        throttle: ThrottleMode::None,
    };
    let (events, mut messages) = EventSender::channel(256, mask);
    tokio::spawn(async move {
        // Request events carry only a connection id; the connection event,
        // decided before any request on it, carries the remote's key.
        let mut connections = Connections::default();
        while let Some(message) = messages.recv().await {
            match message {
                ProviderMessage::ClientConnected(message) => {
                    let admitted =
                        message.endpoint_id.is_some_and(|id| connections.admit(message.connection_id, *id.as_bytes()));
                    let decision = if admitted { Ok(()) } else { Err(AbortReason::RateLimited) };
                    message.tx.send(decision).await.ok();
                }
                ProviderMessage::ConnectionClosed(message) => {
                    connections.closed(message.connection_id);
                }
                ProviderMessage::GetRequestReceived(message) => {
                    let started = std::time::Instant::now();
                    let remote = connections.remote(message.connection_id);
                    let extent = message.request.ranges.as_single().map(|(_, ranges)| Extent::of(ranges));
                    let allowed = message.request.ranges.is_blob()
                        && remote.zip(extent).is_some_and(|(remote, extent)| {
                            decide(&gate, Operation::Get, remote, message.request.hash, extent)
                        });
                    message.tx.send(if allowed { Ok(()) } else { Err(AbortReason::Permission) }).await.ok();
                    if let (true, Some(done)) = (allowed, &done) {
                        // The transfer's end, timed without holding up the
                        // next decision.
                        let (mut updates, done) = (message.rx, Arc::clone(done));
                        tokio::spawn(async move {
                            while let Ok(Some(update)) = updates.recv().await {
                                match update {
                                    RequestUpdate::Completed(_) => return done(started.elapsed(), true),
                                    RequestUpdate::Aborted(_) => return done(started.elapsed(), false),
                                    _ => {}
                                }
                            }
                            done(started.elapsed(), false);
                        });
                    }
                }
                ProviderMessage::PushRequestReceived(message) => {
                    let remote = connections.remote(message.connection_id);
                    let extent = message.request.ranges.as_single().map(|(_, ranges)| Extent::of(ranges));
                    let allowed = message.request.ranges.is_blob()
                        && remote.zip(extent).is_some_and(|(remote, extent)| {
                            decide(&gate, Operation::Push, remote, message.request.hash, extent)
                        });
                    message.tx.send(if allowed { Ok(()) } else { Err(AbortReason::Permission) }).await.ok();
                }
                // Several blobs per request and observation are not part of
                // strand's protocol: refuse them.
                ProviderMessage::GetManyRequestReceived(message) => {
                    message.tx.send(Err(AbortReason::Permission)).await.ok();
                }
                ProviderMessage::ObserveRequestReceived(message) => {
                    message.tx.send(Err(AbortReason::Permission)).await.ok();
                }
                _ => {}
            }
        }
    });
    Router::builder(endpoint).accept(ALPN, BlobServer { store, events }).spawn()
}

fn decide(gate: &Gate, operation: Operation, remote: [u8; 32], hash: Hash, extent: Extent) -> bool {
    match gate(operation, remote, *hash.as_bytes(), extent) {
        Ok(()) => true,
        Err(reason) => {
            tracing::debug!(?operation, remote = %hex_short(&remote), blob = %hash.fmt_short(), reason, "blobs.gate refused");
            false
        }
    }
}

fn hex_short(bytes: &[u8; 32]) -> String {
    bytes[..5].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Serves blobs without owning the store: shutting the router down leaves
/// the store usable (iroh-blobs' own protocol handler shuts it down).
#[derive(Debug, Clone)]
struct BlobServer {
    store: Store,
    events: EventSender,
}

impl ProtocolHandler for BlobServer {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        iroh_blobs::provider::handle_connection(connection, self.store.clone(), self.events.clone()).await;
        Ok(())
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Could not connect.
    #[error("cannot connect to {remote}: {reason}")]
    Connect {
        /// Short id of the remote.
        remote: String,
        /// Why.
        reason: String,
    },
    /// Refused, missing, or the stream broke (iroh-blobs does not tell
    /// "refused" from "not found" on the wire).
    #[error("{remote} did not deliver blob {blob}: {reason}")]
    Transfer {
        /// Short id of the remote.
        remote: String,
        /// Short hash.
        blob: String,
        /// Why.
        reason: String,
    },
    /// The remote sent bytes that do not verify against the blob's BLAKE3
    /// tree, or stopped in the middle of a blob it had begun to send (an
    /// iroh-blobs provider stops where its own copy fails validation).
    #[error("{remote} served blob {blob} corrupt: {reason}")]
    Corrupt {
        /// Short id of the remote.
        remote: String,
        /// Short hash.
        blob: String,
        /// Which part failed.
        reason: String,
        /// Bytes that arrived and verified before the failure (from the
        /// first byte asked for).
        verified: u64,
        /// Whether the bad part begins right there (bytes that failed the
        /// tree); otherwise somewhere after (the remote reset the stream
        /// and the bytes in flight were lost).
        located: bool,
    },
    /// No answer in time.
    #[error("{remote} did not answer within {timeout:?}")]
    Timeout {
        /// Short id of the remote.
        remote: String,
        /// The limit.
        timeout: Duration,
    },
}

/// The address of a remote endpoint from its key and socket addresses.
pub fn remote_address(key: [u8; 32], sockets: &[SocketAddr]) -> anyhow::Result<EndpointAddr> {
    let id = EndpointId::from_bytes(&key)?;
    Ok(sockets.iter().fold(EndpointAddr::new(id), |address, socket| address.with_ip_addr(*socket)))
}

/// Connects to a remote blob server.
pub async fn connect(endpoint: &Endpoint, remote: EndpointAddr, timeout: Duration) -> Result<Connection, FetchError> {
    let name = remote.id.fmt_short().to_string();
    match tokio::time::timeout(timeout, endpoint.connect(remote, ALPN)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(FetchError::Connect { remote: name, reason: error.to_string() }),
        Err(_) => Err(FetchError::Timeout { remote: name, timeout }),
    }
}

/// Fetches blob `hash` over `connection` into memory, verified against the
/// hash as it streams. Takes whatever size the remote announces: for tests
/// and tools probing the project's own nodes (is anything released at all?).
/// Code that reads from untrusted peers uses [`fetch_sized`], which bounds
/// memory by the size it expects.
pub async fn fetch_bytes(
    connection: &Connection,
    hash: [u8; 32],
    timeout: Duration,
) -> Result<bytes::Bytes, FetchError> {
    let remote = connection.remote_id().fmt_short().to_string();
    let hash = Hash::from_bytes(hash);
    let request = iroh_blobs::get::request::get_blob(connection.clone(), hash).bytes();
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            Err(FetchError::Transfer { remote, blob: hash.fmt_short().to_string(), reason: error.to_string() })
        }
        Err(_) => Err(FetchError::Timeout { remote, timeout }),
    }
}

/// Fetches blob `hash`, which must be exactly `size` bytes, over
/// `connection` into `into` (cleared first), verified against the hash as it
/// streams. A remote announcing any other size is refused before any
/// content is read, so memory stays bounded by `size` whatever it sends.
pub async fn fetch_sized(
    connection: &Connection,
    hash: [u8; 32],
    size: u64,
    timeout: Duration,
    into: &mut Vec<u8>,
) -> Result<(), FetchError> {
    fetch_extent(connection, hash, size, Extent::Whole, timeout, into).await
}

/// Fetches chunks `start..end` of blob `hash` (exactly `size` bytes) into
/// `into`, verified; a [`FetchError::Corrupt`] counts `verified` from the
/// range's first byte.
pub async fn fetch_extent(
    connection: &Connection,
    hash: [u8; 32],
    size: u64,
    extent: Extent,
    timeout: Duration,
    into: &mut Vec<u8>,
) -> Result<(), FetchError> {
    let remote = connection.remote_id().fmt_short().to_string();
    let hash = Hash::from_bytes(hash);
    let blob = hash.fmt_short().to_string();
    match tokio::time::timeout(timeout, read_sized(connection, hash, size, extent, into)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Failed::Transfer(reason))) => Err(FetchError::Transfer { remote, blob, reason }),
        Ok(Err(Failed::Corrupt { reason, located })) => {
            Err(FetchError::Corrupt { remote, blob, reason, verified: into.len() as u64, located })
        }
        Err(_) => Err(FetchError::Timeout { remote, timeout }),
    }
}

/// How reading a blob failed: the transfer, or the bytes (`located`: the
/// bad part begins where the verified bytes end).
enum Failed {
    Transfer(String),
    Corrupt { reason: String, located: bool },
}

fn corrupt(reason: impl Into<String>) -> Failed {
    Failed::Corrupt { reason: reason.into(), located: true }
}

impl From<String> for Failed {
    fn from(reason: String) -> Self {
        Self::Transfer(reason)
    }
}

impl From<&str> for Failed {
    fn from(reason: &str) -> Self {
        Self::Transfer(reason.into())
    }
}

/// Sorts a content error: bytes that fail the BLAKE3 tree, or a blob begun
/// and then ended or reset by the remote (an iroh-blobs provider resets the
/// stream where its own copy fails validation), are the remote's
/// corruption; a lost connection is transfer.
fn content_error(error: iroh_blobs::get::fsm::DecodeError) -> Failed {
    use iroh_blobs::get::fsm::DecodeError;
    match &error {
        DecodeError::LeafHashMismatch { .. }
        | DecodeError::ParentHashMismatch { .. }
        | DecodeError::LeafNotFound { .. }
        | DecodeError::ParentNotFound { .. } => corrupt(error.to_string()),
        DecodeError::Read { source, .. } if reset_by_remote_failure(source) => own_copy_failed(&error),
        _ => stage(error),
    }
}

/// Sorts an error before or between the content's items: the remote
/// resetting the stream because its own store failed (`ERR_INTERNAL`, after
/// it accepted the request) is corruption whose place is unknown (bytes in
/// flight are discarded with the reset: the bad part is somewhere after
/// what arrived); anything else is transfer.
fn stage<E: std::error::Error + 'static>(error: E) -> Failed {
    if reset_by_remote_failure(&error) { own_copy_failed(&error) } else { Failed::Transfer(error.to_string()) }
}

/// The remote reset the stream because it could not read its own copy.
fn own_copy_failed(error: &dyn std::fmt::Display) -> Failed {
    Failed::Corrupt {
        reason: format!("the remote failed to read its own copy and reset the stream: {error}"),
        located: false,
    }
}

/// Whether `error` or one of its causes is a stream reset with iroh-blobs'
/// `ERR_INTERNAL` (a refusal by the remote's gate is `ERR_PERMISSION`).
fn reset_by_remote_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    use iroh::endpoint::ReadError;
    let mut current = Some(error);
    for _ in 0..16 {
        let Some(error) = current else { break };
        let read = error.downcast_ref::<ReadError>().or_else(|| {
            error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref())
        });
        if let Some(ReadError::Reset(code)) = read {
            return *code == iroh_blobs::protocol::ERR_INTERNAL;
        }
        current = error.source();
    }
    false
}

async fn read_sized(
    connection: &Connection,
    hash: Hash,
    size: u64,
    extent: Extent,
    into: &mut Vec<u8>,
) -> Result<(), Failed> {
    use iroh_blobs::get::fsm::{self, BlobContentNext, ConnectedNext, EndBlobNext};
    let (request, first, expected) = match extent {
        Extent::Whole => (iroh_blobs::protocol::GetRequest::blob(hash), 0, size),
        Extent::Chunks { start, end } => {
            let ranges = ChunkRanges::from(ChunkNum(start)..ChunkNum(end));
            let first = start.saturating_mul(CHUNK_BYTES).min(size);
            (iroh_blobs::protocol::GetRequest::blob_ranges(hash, ranges), first, extent.bytes_of(size))
        }
    };
    let connected = fsm::start(connection.clone(), request, Default::default()).next().await.map_err(stage)?;
    let ConnectedNext::StartRoot(start) = connected.next().await.map_err(stage)? else {
        return Err("the remote answered a single-blob request with several".into());
    };
    let (mut content, announced) = start.next().next().await.map_err(|error| match &error {
        fsm::AtBlobHeaderNextError::Read { source, .. } if reset_by_remote_failure(source) => own_copy_failed(&error),
        _ => stage(error),
    })?;
    if announced != size {
        return Err(corrupt(format!("the remote announced {announced} bytes where {size} were expected")));
    }
    into.clear();
    into.reserve(usize::try_from(expected).map_err(|_| "the blob is larger than this machine's memory")?);
    let end = loop {
        match content.next().await {
            BlobContentNext::More((next, item)) => {
                if let bao_tree::io::BaoContentItem::Leaf(leaf) = item.map_err(content_error)? {
                    // A request for one range streams its leaves in order.
                    if leaf.offset != first + into.len() as u64 || (into.len() + leaf.data.len()) as u64 > expected {
                        let reason = format!(
                            "a leaf arrived at offset {} instead of {}",
                            leaf.offset,
                            first + into.len() as u64
                        );
                        return Err(corrupt(reason));
                    }
                    into.extend_from_slice(&leaf.data);
                }
                content = next;
            }
            BlobContentNext::Done(end) => break end,
        }
    };
    if into.len() as u64 != expected {
        return Err(corrupt(format!("the remote sent {} of {expected} bytes", into.len())));
    }
    match end.next() {
        EndBlobNext::Closing(closing) => {
            closing.next().await.map(|_| ()).map_err(|error| Failed::Transfer(error.to_string()))
        }
        EndBlobNext::MoreChildren(_) => Err("the remote sent more than the blob".into()),
    }
}

/// Fetches blob `hash` over `connection` into `store`, verified.
pub async fn fetch_into(
    store: &Store,
    connection: &Connection,
    hash: [u8; 32],
    timeout: Duration,
) -> Result<u64, FetchError> {
    let remote = connection.remote_id().fmt_short().to_string();
    let hash = Hash::from_bytes(hash);
    match tokio::time::timeout(timeout, store.remote().fetch(connection.clone(), hash)).await {
        Ok(Ok(stats)) => Ok(stats.payload_bytes_read),
        Ok(Err(error)) => {
            Err(FetchError::Transfer { remote, blob: hash.fmt_short().to_string(), reason: error.to_string() })
        }
        Err(_) => Err(FetchError::Timeout { remote, timeout }),
    }
}

#[cfg(test)]
mod connection_tests {
    use super::*;

    #[test]
    fn one_remote_cannot_take_every_connection() {
        let mut connections = Connections::default();
        for id in 0..CONNECTIONS_PER_REMOTE_MAX as u64 {
            assert!(connections.admit(id, [1; 32]));
        }
        assert!(!connections.admit(100, [1; 32]), "over its own limit");
        assert!(connections.admit(101, [2; 32]), "another remote still connects");
        connections.closed(0);
        assert!(connections.admit(102, [1; 32]), "a closed connection frees its place");
        connections.closed(12345);
        let mut full = Connections::default();
        let admitted = (0..CONNECTIONS_MAX as u64 + 10)
            .filter(|id| {
                let mut remote = [0u8; 32];
                remote[..8].copy_from_slice(&id.to_le_bytes());
                full.admit(*id, remote)
            })
            .count();
        assert_eq!(admitted, CONNECTIONS_MAX);
    }
}
