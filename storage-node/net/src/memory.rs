//! Complete blobs held in memory, served over the iroh-blobs get protocol
//! without hashing or copying them again.
//!
//! The client's upload window holds each fragment only until its provider
//! has pulled it. iroh-blobs' in-memory store would hash every fragment
//! twice more (once to build its outboard on import, once more to validate
//! the bytes as it serves them) and copy every 16 KiB leaf into a fresh,
//! zeroed buffer on the way out. Here the caller hands in the bytes with
//! the outboard it computed when it named the fragment; a get answers with
//! the same wire encoding iroh-blobs' provider writes (the size, then the
//! BLAKE3 tree's parent pairs and leaves in pre-order for the requested
//! ranges), the leaves as slices of the caller's buffer. The remote still
//! verifies every byte against the hash as it streams: nothing is trusted
//! that was not before.
//!
//! Only single-blob gets are served; every other request (several blobs,
//! push, observe) is refused, and every get is put to the [`Gate`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::io::sync::Outboard as _;
use bao_tree::iter::BaoChunk;
use bao_tree::{ChunkNum, ChunkRanges};
use bytes::Bytes;
use iroh::Endpoint;
use iroh::endpoint::{Connection, RecvStream, SendStream};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh_blobs::protocol::{ERR_INTERNAL, ERR_PERMISSION, Request};
use iroh_blobs::{ALPN, Hash};

use crate::blobs::{Gate, Operation};

/// Bytes queued on the stream per write (leaves are 16 KiB each).
const WRITE_BYTES: usize = 256 << 10;

/// A complete blob: its bytes and the pre-order outboard of its BLAKE3 tree
/// at iroh's block size (whose root is the blob's hash).
struct Blob {
    data: Bytes,
    outboard: PreOrderMemOutboard,
}

#[derive(Default)]
struct Entries {
    /// Per hash: the blob and how many [`Held`] keep it.
    blobs: HashMap<Hash, (Arc<Blob>, usize)>,
}

/// Blobs in memory, each kept while a [`Held`] for it lives.
#[derive(Default)]
pub struct MemoryBlobs {
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for MemoryBlobs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("MemoryBlobs").field("blobs", &self.entries().blobs.len()).finish()
    }
}

/// Why a blob was not taken in.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// The outboard describes other bytes.
    #[error("the outboard describes {outboard} bytes, the blob has {data}")]
    SizeMismatch {
        /// Bytes the outboard's tree covers.
        outboard: u64,
        /// Bytes given.
        data: u64,
    },
    /// The outboard's pair data is not the size its tree needs.
    #[error("the outboard has {actual} bytes of hash pairs where its tree needs {expected}")]
    OutboardSize {
        /// What the tree needs.
        expected: u64,
        /// What was given.
        actual: u64,
    },
    /// The outboard was built with another block size than iroh's.
    #[error("the outboard uses another block size than iroh-blobs")]
    BlockSize,
}

/// Keeps one blob in its [`MemoryBlobs`]; the blob goes when the last
/// `Held` for its hash is dropped.
pub struct Held {
    blobs: Arc<MemoryBlobs>,
    hash: Hash,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Held").field("hash", &self.hash.fmt_short().to_string()).finish()
    }
}

impl Held {
    /// The blob's hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut entries = self.blobs.entries();
        if let Some((_, holders)) = entries.blobs.get_mut(&self.hash) {
            *holders -= 1;
            if *holders == 0 {
                entries.blobs.remove(&self.hash);
            }
        }
    }
}

impl MemoryBlobs {
    /// No blobs.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds `data` under `outboard.root`. The outboard must be the one of
    /// these bytes (`PreOrderMemOutboard::create(&data, IROH_BLOCK_SIZE)`):
    /// its shape is checked here, its hashes by every remote that fetches.
    pub fn insert(self: &Arc<Self>, data: Bytes, outboard: PreOrderMemOutboard) -> Result<Held, InsertError> {
        if outboard.tree.block_size() != iroh_blobs::store::IROH_BLOCK_SIZE {
            return Err(InsertError::BlockSize);
        }
        if outboard.tree.size() != data.len() as u64 {
            return Err(InsertError::SizeMismatch { outboard: outboard.tree.size(), data: data.len() as u64 });
        }
        if outboard.tree.outboard_size() != outboard.data.len() as u64 {
            return Err(InsertError::OutboardSize {
                expected: outboard.tree.outboard_size(),
                actual: outboard.data.len() as u64,
            });
        }
        let hash = Hash::from(outboard.root);
        let mut entries = self.entries();
        entries.blobs.entry(hash).or_insert_with(|| (Arc::new(Blob { data, outboard }), 0)).1 += 1;
        Ok(Held { blobs: Arc::clone(self), hash })
    }

    /// Blobs held now.
    pub fn len(&self) -> usize {
        self.entries().blobs.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, hash: &Hash) -> Option<Arc<Blob>> {
        self.entries().blobs.get(hash).map(|(blob, _)| Arc::clone(blob))
    }
}

/// Serves `blobs` on `endpoint` (iroh-blobs' ALPN), putting every get to
/// `gate`.
pub fn serve(endpoint: Endpoint, blobs: Arc<MemoryBlobs>, gate: Gate) -> Router {
    Router::builder(endpoint).accept(ALPN, MemoryServer { blobs, gate }).spawn()
}

#[derive(Clone)]
struct MemoryServer {
    blobs: Arc<MemoryBlobs>,
    gate: Gate,
}

impl std::fmt::Debug for MemoryServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("MemoryServer").field("blobs", &self.blobs).finish()
    }
}

impl ProtocolHandler for MemoryServer {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        let remote = *connection.remote_id().as_bytes();
        while let Ok((send, recv)) = connection.accept_bi().await {
            let server = self.clone();
            tokio::spawn(async move {
                if let Err(reason) = server.answer(remote, send, recv).await {
                    tracing::debug!(%reason, "blobs.memory request failed");
                }
            });
        }
        Ok(())
    }
}

impl MemoryServer {
    async fn answer(&self, remote: [u8; 32], mut send: SendStream, mut recv: RecvStream) -> Result<(), String> {
        // Bounded by iroh-blobs' own request size limit.
        let (request, _) = Request::read_async(&mut recv).await.map_err(|error| format!("bad request: {error}"))?;
        let get = match request {
            Request::Get(get) => get,
            _ => {
                send.reset(ERR_PERMISSION).ok();
                return Err("refused a request other than a single-blob get".into());
            }
        };
        let Some((0, ranges)) = get.ranges.as_single() else {
            send.reset(ERR_PERMISSION).ok();
            return Err("refused a get of several blobs".into());
        };
        let extent = crate::blobs::Extent::of(ranges);
        if let Err(reason) = (self.gate)(Operation::Get, remote, *get.hash.as_bytes(), extent) {
            send.reset(ERR_PERMISSION).ok();
            return Err(format!("refused a get of {}: {reason}", get.hash.fmt_short()));
        }
        let Some(blob) = self.blobs.get(&get.hash) else {
            send.reset(ERR_INTERNAL).ok();
            return Err(format!("blob {} is not held", get.hash.fmt_short()));
        };
        write_blob(&blob, ranges, &mut send).await?;
        send.finish().map_err(|error| error.to_string())
    }
}

/// Writes the iroh-blobs encoding of `ranges` of `blob`: its size (8 bytes,
/// little endian), then bao-tree's pre-order encoding of those ranges.
async fn write_blob(blob: &Blob, ranges: &ChunkRanges, send: &mut SendStream) -> Result<(), String> {
    let tree = blob.outboard.tree;
    let whole = ChunkRanges::from(ChunkNum(0)..tree.chunks());
    if !ranges.is_superset(&whole) {
        // Part of the blob (not what providers ask for): bao-tree encodes
        // it, hashing the leaves it cuts inside a chunk group.
        let mut encoded = tree.size().to_le_bytes().to_vec();
        bao_tree::io::sync::encode_ranges(blob.data.as_ref(), &blob.outboard, ranges, &mut encoded)
            .map_err(|error| error.to_string())?;
        return send.write_all(&encoded).await.map_err(|error| error.to_string());
    }
    // The whole blob: every leaf is a whole chunk group, sent as a slice of
    // the caller's buffer after the parent pairs that precede it.
    let mut queued: Vec<Bytes> = Vec::with_capacity(2 * WRITE_BYTES / iroh_blobs::store::IROH_BLOCK_SIZE.bytes() + 2);
    let mut queued_bytes = 0;
    let mut parents: Vec<u8> = tree.size().to_le_bytes().to_vec();
    for chunk in tree.ranges_pre_order_chunks_iter_ref(&whole, 0) {
        match chunk {
            BaoChunk::Parent { node, .. } => {
                let (left, right) = blob
                    .outboard
                    .load(node)
                    .map_err(|error| error.to_string())?
                    .ok_or_else(|| format!("the outboard lacks node {node:?}"))?;
                parents.extend_from_slice(left.as_bytes());
                parents.extend_from_slice(right.as_bytes());
            }
            BaoChunk::Leaf { start_chunk, size, .. } => {
                let start = usize::try_from(start_chunk.to_bytes()).map_err(|error| error.to_string())?;
                let leaf = blob.data.get(start..start + size).ok_or("a leaf beyond the blob")?;
                if !parents.is_empty() {
                    queued_bytes += parents.len();
                    queued.push(Bytes::from(std::mem::take(&mut parents)));
                }
                queued_bytes += size;
                queued.push(blob.data.slice_ref(leaf));
                if queued_bytes >= WRITE_BYTES {
                    send.write_all_chunks(&mut queued).await.map_err(|error| error.to_string())?;
                    queued.clear();
                    queued_bytes = 0;
                }
            }
        }
    }
    if !parents.is_empty() {
        queued.push(Bytes::from(parents));
    }
    send.write_all_chunks(&mut queued).await.map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs;

    fn outboard_of(data: &[u8]) -> PreOrderMemOutboard {
        PreOrderMemOutboard::create(data, iroh_blobs::store::IROH_BLOCK_SIZE)
    }

    fn bytes_of(length: usize, seed: u8) -> Vec<u8> {
        (0..length).map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// `length` bytes from `seed`, held in `blobs`.
    fn hold(blobs: &Arc<MemoryBlobs>, length: usize, seed: u8) -> (Vec<u8>, Held) {
        let data = bytes_of(length, seed);
        let held = blobs.insert(Bytes::from(data.clone()), outboard_of(&data)).expect("insert");
        (data, held)
    }

    async fn pair(gate: Gate, blobs: Arc<MemoryBlobs>) -> (Router, Endpoint, Connection) {
        let server = blobs::endpoint([7; 32], "127.0.0.1:0".parse().expect("address")).await.expect("server endpoint");
        let address = blobs::remote_address(*server.id().as_bytes(), &server.bound_sockets()).expect("address");
        let router = serve(server, blobs, gate);
        let client = blobs::endpoint([8; 32], "127.0.0.1:0".parse().expect("address")).await.expect("client endpoint");
        let connection = client.connect(address, ALPN).await.expect("connect");
        (router, client, connection)
    }

    /// Runs `request` with iroh-blobs' verifying client, returning the
    /// leaves it yielded by offset.
    async fn fetch_leaves(
        connection: &Connection,
        request: iroh_blobs::protocol::GetRequest,
    ) -> std::collections::BTreeMap<u64, Bytes> {
        use iroh_blobs::get::fsm::{self, BlobContentNext, ConnectedNext};
        let connected = fsm::start(connection.clone(), request, Default::default()).next().await.expect("request");
        let ConnectedNext::StartRoot(start) = connected.next().await.expect("answer") else { panic!("not a root") };
        let (mut content, _size) = start.next().next().await.expect("size");
        let mut leaves = std::collections::BTreeMap::new();
        loop {
            match content.next().await {
                BlobContentNext::More((next, item)) => {
                    if let bao_tree::io::BaoContentItem::Leaf(leaf) = item.expect("a verified item") {
                        leaves.insert(leaf.offset, leaf.data);
                    }
                    content = next;
                }
                BlobContentNext::Done(_) => break leaves,
            }
        }
    }

    fn allow_all() -> Gate {
        Arc::new(|_, _, _, _| Ok(()))
    }

    #[tokio::test]
    async fn iroh_blobs_fetches_and_verifies_every_size() {
        let blobs = MemoryBlobs::new();
        let sizes = [0usize, 1, 1023, 1024, 1025, 16383, 16384, 16385, 100_000, 1 << 20, (1 << 20) + 1];
        let held: Vec<Held> = sizes.iter().enumerate().map(|(seed, &size)| hold(&blobs, size, seed as u8).1).collect();
        let (router, _client, connection) = pair(allow_all(), Arc::clone(&blobs)).await;
        for (seed, &size) in sizes.iter().enumerate() {
            let data = bytes_of(size, seed as u8);
            let hash = blake3::hash(&data);
            // iroh-blobs' own client, which verifies as it streams.
            let fetched = iroh_blobs::get::request::get_blob(connection.clone(), hash.into())
                .bytes()
                .await
                .unwrap_or_else(|error| panic!("fetch of {size} bytes failed: {error}"));
            assert_eq!(fetched.as_ref(), data.as_slice(), "{size} bytes");
            let mut into = Vec::new();
            blobs::fetch_sized(
                &connection,
                *hash.as_bytes(),
                size as u64,
                std::time::Duration::from_secs(10),
                &mut into,
            )
            .await
            .unwrap_or_else(|error| panic!("sized fetch of {size} bytes failed: {error}"));
            assert_eq!(into, data, "{size} bytes, sized fetch");
        }
        drop(held);
        assert!(blobs.is_empty(), "dropping the holds empties the store");
        router.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn a_range_is_served_and_verifies() {
        let blobs = MemoryBlobs::new();
        let (data, _held) = hold(&blobs, 300_000, 3);
        let (router, _client, connection) = pair(allow_all(), Arc::clone(&blobs)).await;
        let hash = Hash::from(blake3::hash(&data));
        let request =
            iroh_blobs::protocol::GetRequest::builder().root(ChunkRanges::from(ChunkNum(40)..ChunkNum(90))).build(hash);
        let leaves = fetch_leaves(&connection, request).await;
        let first = *leaves.keys().next().expect("some leaves");
        assert!(first <= 40 * 1024, "the range's first byte is covered");
        for (offset, leaf) in &leaves {
            let offset = *offset as usize;
            assert_eq!(leaf.as_ref(), &data[offset..offset + leaf.len()]);
        }
        let last = leaves.iter().next_back().map(|(offset, leaf)| *offset as usize + leaf.len()).expect("last");
        assert!(last >= 90 * 1024, "the range's last byte is covered");
        router.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn refused_and_unknown_blobs_send_no_bytes() {
        let blobs = MemoryBlobs::new();
        let (data, _held) = hold(&blobs, 50_000, 9);
        let refuse: Gate = Arc::new(|_, _, _, _| Err("not_authorised"));
        let (router, _client, connection) = pair(refuse, Arc::clone(&blobs)).await;
        let hash = blake3::hash(&data);
        let mut into = Vec::new();
        let refused =
            blobs::fetch_sized(&connection, *hash.as_bytes(), 50_000, std::time::Duration::from_secs(5), &mut into)
                .await;
        assert!(refused.is_err(), "a refused get fails");
        assert!(into.is_empty(), "and receives no bytes");
        router.shutdown().await.expect("shutdown");

        let (router, _client, connection) = pair(allow_all(), Arc::clone(&blobs)).await;
        let unknown = blake3::hash(b"not held");
        let missing =
            blobs::fetch_sized(&connection, *unknown.as_bytes(), 8, std::time::Duration::from_secs(5), &mut into).await;
        assert!(missing.is_err(), "a blob not held fails");
        router.shutdown().await.expect("shutdown");
    }

    #[test]
    fn an_outboard_of_other_bytes_is_refused() {
        let blobs = MemoryBlobs::new();
        let data = bytes_of(40_000, 1);
        let other = outboard_of(&data[..30_000]);
        assert!(matches!(blobs.insert(Bytes::from(data), other), Err(InsertError::SizeMismatch { .. })));
        assert!(blobs.is_empty());
    }

    #[test]
    fn a_blob_held_twice_stays_until_both_holds_go() {
        let blobs = MemoryBlobs::new();
        let data = bytes_of(20_000, 2);
        let first = blobs.insert(Bytes::from(data.clone()), outboard_of(&data)).expect("insert");
        let second = blobs.insert(Bytes::from(data.clone()), outboard_of(&data)).expect("insert");
        assert_eq!(first.hash(), Hash::from(blake3::hash(&data)));
        drop(first);
        assert_eq!(blobs.len(), 1, "still held once");
        drop(second);
        assert!(blobs.is_empty());
    }
}
