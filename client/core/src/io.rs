//! The narrow I/O boundary of the codec: where file bytes come from and where
//! fragments go to and come back from. Memory and directory implementations
//! live here; the network ones (iroh-blobs) live in the node and client.

use std::collections::HashMap;
#[cfg(feature = "fs")]
use std::fs::File;
use std::io;
#[cfg(feature = "fs")]
use std::io::{Read, Write};
#[cfg(feature = "fs")]
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::ids::FragmentId;

/// Random-access file bytes for the encoder, which reads chunks in scrambled
/// order from several threads.
pub trait ChunkSource: Sync {
    /// Total length in bytes.
    fn length(&self) -> u64;
    /// Fills `buffer` with the bytes at `offset`; all of them or an error.
    fn read_exact_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<()>;
}

impl ChunkSource for [u8] {
    fn length(&self) -> u64 {
        self.len() as u64
    }

    fn read_exact_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let bytes = self.get(start..start.saturating_add(buffer.len())).ok_or(io::ErrorKind::UnexpectedEof)?;
        buffer.copy_from_slice(bytes);
        Ok(())
    }
}

#[cfg(feature = "fs")]
/// A regular file as a [`ChunkSource`]; its length is taken once at open.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    length: u64,
}

#[cfg(feature = "fs")]
impl FileSource {
    /// Opens `path`, which must be a regular file (the encoder needs random
    /// access; a pipe cannot be scrambled in bounded memory).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file (strand needs random access to the input)", path.display()),
            ));
        }
        Ok(Self { file, length: metadata.len() })
    }
}

#[cfg(feature = "fs")]
impl ChunkSource for FileSource {
    fn length(&self) -> u64 {
        self.length
    }

    #[cfg(unix)]
    fn read_exact_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buffer, offset)
    }

    #[cfg(windows)]
    fn read_exact_at(&self, offset: u64, mut buffer: &mut [u8]) -> io::Result<()> {
        let mut offset = offset;
        while !buffer.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(&self.file, buffer, offset)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                read => {
                    buffer = &mut buffer[read..];
                    offset += read as u64;
                }
            }
        }
        Ok(())
    }
}

/// How the encoder's workers name each fragment: its id, and whatever else
/// the sink wants computed from the same bytes in the same pass (for the
/// network upload, the outboard of the fragment's BLAKE3 tree, whose root
/// is the id), handed to [`FragmentSink::put_named`].
pub trait Naming: Sync {
    /// What comes with the id.
    type Named: Send;
    /// Names `fragment`. The id must be its BLAKE3 hash ([`FragmentId::of`]).
    fn name(&self, fragment: &[u8]) -> (FragmentId, Self::Named);
}

/// Plain ids, nothing more.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainIds;

impl Naming for PlainIds {
    type Named = ();

    fn name(&self, fragment: &[u8]) -> (FragmentId, ()) {
        (FragmentId::of(fragment), ())
    }
}

/// Where the encoder puts fragments, stripe by stripe, from one thread.
/// `N` is what comes with each id (see [`Naming`]).
pub trait FragmentSink<N = ()> {
    /// Stores one fragment under its id.
    fn put(&mut self, id: &FragmentId, fragment: &[u8]) -> io::Result<()>;

    /// Stores one fragment, taking its buffer, and gives the encoder a
    /// buffer to reuse: the same one, another the sink is done with, or
    /// none (the encoder then allocates). A sink that keeps fragments in
    /// memory overrides this to keep the buffer instead of copying it. The
    /// default stores a copy and hands the buffer straight back.
    fn put_owned(&mut self, id: &FragmentId, fragment: Vec<u8>) -> io::Result<Option<Vec<u8>>> {
        self.put(id, &fragment)?;
        Ok(Some(fragment))
    }

    /// [`FragmentSink::put_owned`] with what the naming computed alongside
    /// the id; the default ignores it.
    fn put_named(&mut self, id: &FragmentId, fragment: Vec<u8>, named: N) -> io::Result<Option<Vec<u8>>> {
        drop(named);
        self.put_owned(id, fragment)
    }
}

/// Where a fragment sits in its upload. With `k = 1` every fragment of a
/// stripe is the same replica under the same id, so the id alone does not say
/// which copy (which provider) to ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragmentLocation {
    /// The stripe.
    pub stripe: u64,
    /// Index in the stripe: `0..k` data, `k..k+m` parity.
    pub shard: usize,
}

/// Where the decoder gets fragments, from several threads.
pub trait FragmentSource: Sync {
    /// Replaces `into` with the bytes of fragment `id` at `location`, reading
    /// at most `length_max + 1` bytes (a longer fragment is wrong anyway and
    /// must not cost memory). Returns `false` when there is no such fragment.
    fn fetch(
        &self,
        location: FragmentLocation,
        id: &FragmentId,
        length_max: usize,
        into: &mut Vec<u8>,
    ) -> io::Result<bool>;

    /// Fetches fragments that can stand in for one another (a stripe's
    /// siblings, any `needed` of which rebuild the stripe) until `needed`
    /// have arrived, trying `candidates` in the order given, with
    /// `buffers[i]` receiving `candidates[i]`. Returns one outcome per
    /// candidate, `None` for those not asked, or given up on once enough had
    /// arrived. The decoder checks what arrived and asks again for the rest
    /// if some were bad.
    ///
    /// This default asks one after another. A source that can fetch several
    /// at once (a network) overrides it to ask `needed` at a time and race
    /// them, starting the next candidate whenever one fails or is slow.
    fn fetch_any(
        &self,
        candidates: &[(FragmentLocation, FragmentId)],
        needed: usize,
        length_max: usize,
        buffers: &mut [Vec<u8>],
    ) -> Vec<Option<io::Result<bool>>> {
        let mut outcomes: Vec<Option<io::Result<bool>>> = candidates.iter().map(|_| None).collect();
        let mut arrived = 0;
        for (outcome, ((location, id), buffer)) in outcomes.iter_mut().zip(candidates.iter().zip(buffers.iter_mut())) {
            if arrived >= needed {
                break;
            }
            let fetched = self.fetch(*location, id, length_max, buffer);
            arrived += usize::from(matches!(fetched, Ok(true)));
            *outcome = Some(fetched);
        }
        outcomes
    }

    /// Whether every fragment this source returns has already been checked
    /// against its id (a network source verifying BLAKE3 as bytes stream
    /// in), so the decoder need not hash it again. Default: no.
    fn verifies_ids(&self) -> bool {
        false
    }

    /// Orders `candidates` (fragments that can stand in for one another) by
    /// how soon each is likely to arrive, fastest first. The default keeps
    /// the order given (data shards first, which decode cheapest).
    fn rank(&self, _candidates: &mut [(FragmentLocation, FragmentId)]) {}
}

/// Fragments in memory, for tests, benchmarks and the simulator.
#[derive(Debug, Default)]
pub struct MemoryStore {
    fragments: Mutex<HashMap<FragmentId, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn fragments(&self) -> std::sync::MutexGuard<'_, HashMap<FragmentId, Vec<u8>>> {
        // The map stays consistent whatever a panicking holder did: every
        // operation on it is a single insert, remove or read.
        self.fragments.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `bytes` under `id` (tests use it to plant damaged fragments).
    pub fn insert(&self, id: FragmentId, bytes: Vec<u8>) {
        self.fragments().insert(id, bytes);
    }

    /// Removes a fragment, returning its bytes.
    pub fn remove(&self, id: &FragmentId) -> Option<Vec<u8>> {
        self.fragments().remove(id)
    }

    /// A copy of a fragment's bytes.
    pub fn get(&self, id: &FragmentId) -> Option<Vec<u8>> {
        self.fragments().get(id).cloned()
    }

    /// Every stored id.
    pub fn ids(&self) -> Vec<FragmentId> {
        self.fragments().keys().copied().collect()
    }

    /// Number of stored fragments.
    pub fn len(&self) -> usize {
        self.fragments().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FragmentSink for MemoryStore {
    fn put(&mut self, id: &FragmentId, fragment: &[u8]) -> io::Result<()> {
        self.insert(*id, fragment.to_vec());
        Ok(())
    }
}

impl FragmentSource for MemoryStore {
    fn fetch(&self, _: FragmentLocation, id: &FragmentId, length_max: usize, into: &mut Vec<u8>) -> io::Result<bool> {
        let fragments = self.fragments();
        let Some(bytes) = fragments.get(id) else { return Ok(false) };
        into.clear();
        into.extend_from_slice(&bytes[..bytes.len().min(length_max + 1)]);
        Ok(true)
    }
}

/// What a [`FaultyStore`] does to a fragment at a faulty location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The fragment is gone (a provider that is offline or deleted it).
    Missing,
    /// One bit of the fragment is flipped (a provider with rotting disks or
    /// one that lies).
    FlipBit,
}

/// A fault-injecting [`FragmentSource`] over another: fragments at chosen
/// locations are missing or damaged, and every location asked for is
/// recorded. For tests, benchmarks and the simulator.
#[derive(Debug)]
pub struct FaultyStore<'a, S: ?Sized> {
    inner: &'a S,
    faults: HashMap<FragmentLocation, Fault>,
    asked: Mutex<Vec<FragmentLocation>>,
}

impl<'a, S: FragmentSource + ?Sized> FaultyStore<'a, S> {
    /// Wraps `inner` with no faults.
    pub fn new(inner: &'a S) -> Self {
        Self { inner, faults: HashMap::new(), asked: Mutex::new(Vec::new()) }
    }

    /// Makes the fragment at `location` fail with `fault`.
    pub fn inject(&mut self, location: FragmentLocation, fault: Fault) {
        self.faults.insert(location, fault);
    }

    /// Every location asked for so far, in order.
    pub fn asked(&self) -> Vec<FragmentLocation> {
        self.asked.lock().map(|asked| asked.clone()).unwrap_or_default()
    }
}

impl<S: FragmentSource + ?Sized> FragmentSource for FaultyStore<'_, S> {
    fn fetch(
        &self,
        location: FragmentLocation,
        id: &FragmentId,
        length_max: usize,
        into: &mut Vec<u8>,
    ) -> io::Result<bool> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(location);
        }
        match self.faults.get(&location) {
            None => self.inner.fetch(location, id, length_max, into),
            Some(Fault::Missing) => Ok(false),
            Some(Fault::FlipBit) => {
                let found = self.inner.fetch(location, id, length_max, into)?;
                let middle = into.len() / 2;
                if let Some(byte) = into.get_mut(middle) {
                    *byte ^= 0x01;
                }
                Ok(found)
            }
        }
    }
}

/// Fragments as files named by their hex id in one directory.
#[cfg(feature = "fs")]
#[derive(Debug, Clone)]
pub struct DirectoryStore {
    directory: PathBuf,
}

#[cfg(feature = "fs")]
impl DirectoryStore {
    /// Uses `directory`, creating it if needed.
    pub fn create(directory: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(directory)?;
        Ok(Self { directory: directory.to_path_buf() })
    }

    /// Uses an existing `directory`.
    pub fn open(directory: &Path) -> io::Result<Self> {
        if !directory.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("fragment directory {} does not exist", directory.display()),
            ));
        }
        Ok(Self { directory: directory.to_path_buf() })
    }

    /// The file holding fragment `id`.
    pub fn path_of(&self, id: &FragmentId) -> PathBuf {
        self.directory.join(id.to_string())
    }
}

#[cfg(feature = "fs")]
impl FragmentSink for DirectoryStore {
    /// Writes to a temporary name, then renames, so a crash never leaves a
    /// half-written file under a fragment's name.
    fn put(&mut self, id: &FragmentId, fragment: &[u8]) -> io::Result<()> {
        let path = self.path_of(id);
        let temporary = path.with_extension("partial");
        let mut file = File::create(&temporary)?;
        file.write_all(fragment)?;
        drop(file);
        std::fs::rename(&temporary, &path)
    }
}

#[cfg(feature = "fs")]
impl FragmentSource for DirectoryStore {
    fn fetch(&self, _: FragmentLocation, id: &FragmentId, length_max: usize, into: &mut Vec<u8>) -> io::Result<bool> {
        let file = match File::open(self.path_of(id)) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        };
        into.clear();
        file.take(length_max as u64 + 1).read_to_end(into)?;
        Ok(true)
    }
}

/// Reusable fragment-sized buffers, so a stream of stripes does not allocate
/// (and page-fault) fresh megabytes for every stripe. Holds at most what was
/// in flight at once.
#[derive(Debug)]
pub(crate) struct BufferPool {
    length: usize,
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    pub(crate) fn new(length: usize) -> Self {
        Self { length, buffers: Mutex::new(Vec::new()) }
    }

    /// A buffer of exactly the pool's length (contents unspecified).
    pub(crate) fn take(&self) -> Vec<u8> {
        let reused = self.buffers.lock().ok().and_then(|mut buffers| buffers.pop());
        let mut buffer = reused.unwrap_or_default();
        buffer.resize(self.length, 0);
        buffer
    }

    pub(crate) fn give_back(&self, buffer: Vec<u8>) {
        if let Ok(mut buffers) = self.buffers.lock() {
            buffers.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "fs")]
    #[test]
    fn directory_store_round_trips_and_bounds_reads() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut store = DirectoryStore::create(directory.path()).expect("create");
        let id = FragmentId::of(b"fragment");
        store.put(&id, b"fragment").expect("put");
        let mut buffer = Vec::new();
        let here = FragmentLocation { stripe: 0, shard: 0 };
        assert!(store.fetch(here, &id, 100, &mut buffer).expect("fetch"));
        assert_eq!(buffer, b"fragment");
        assert!(store.fetch(here, &id, 3, &mut buffer).expect("fetch"));
        assert_eq!(buffer.len(), 4, "reads stop one byte past the limit");
        assert!(!store.fetch(here, &FragmentId::of(b"other"), 100, &mut buffer).expect("fetch"));
    }

    #[test]
    fn slices_are_chunk_sources() {
        let bytes: &[u8] = b"0123456789";
        let mut buffer = [0u8; 3];
        bytes.read_exact_at(7, &mut buffer).expect("in range");
        assert_eq!(&buffer, b"789");
        assert!(bytes.read_exact_at(8, &mut buffer).is_err());
        assert!(bytes.read_exact_at(u64::MAX, &mut buffer).is_err());
    }
}
