//! Persistence of a ledger replica in redb: blocks, receipts, a transaction
//! index, periodic state snapshots and (for a sequencer) the mempool.
//!
//! Every block is committed in one redb write transaction together with its
//! receipts, its index entries, the removal of its transactions from the
//! stored mempool and, every [`SNAPSHOT_EVERY_BLOCKS`] blocks, a snapshot of
//! the state. redb commits are atomic and durable, so after a kill at any
//! moment the store holds whole blocks only, and reopening replays the blocks
//! after the last snapshot through the same checks a follower applies.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use strand_contracts::block::Genesis;
use strand_contracts::encoding::{self, EncodingError};
use strand_contracts::state::LedgerState;
use strand_contracts::{Block, BlockRejection, Digest, Receipt, Replica};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
const TRANSACTIONS: TableDefinition<&[u8; 32], (u64, u32)> = TableDefinition::new("transactions");
const MEMPOOL: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("mempool");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DROPPED: TableDefinition<&[u8; 32], &str> = TableDefinition::new("dropped");

/// How often a state snapshot is written with a block.
pub const SNAPSHOT_EVERY_BLOCKS: u64 = 64;

/// A store that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, full disk, corruption).
    #[error("ledger database: {0}")]
    Database(#[from] redb::Error),
    /// Stored bytes do not decode.
    #[error("ledger database holds undecodable {what}: {source}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// Why.
        source: EncodingError,
    },
    /// The store belongs to another chain.
    #[error("this data directory holds chain {stored}, not chain {expected}: use another directory")]
    OtherChain {
        /// Stored chain id.
        stored: Digest,
        /// Expected chain id.
        expected: Digest,
    },
    /// A stored block no longer applies (the store was tampered with).
    #[error("stored block {height} does not apply: {source}")]
    Replay {
        /// The block.
        height: u64,
        /// Why.
        source: BlockRejection,
    },
}

fn db<E: Into<redb::Error>>(error: E) -> StoreError {
    StoreError::Database(error.into())
}

/// Where a transaction ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionPlace {
    /// Height of its block.
    pub height: u64,
    /// Its index in the block.
    pub index: u32,
    /// Its receipt.
    pub receipt: Receipt,
}

/// A ledger replica's database.
pub struct LedgerStore {
    database: Database,
}

impl LedgerStore {
    /// Opens (or creates) the store at `path` for `genesis`, and the replica
    /// it holds.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<(Self, Replica), StoreError> {
        let database = Database::create(path).map_err(db)?;
        let store = Self { database };
        let chain = genesis.chain();
        let write = store.database.begin_write().map_err(db)?;
        {
            let mut meta = write.open_table(META).map_err(db)?;
            let stored = meta.get("chain").map_err(db)?.map(|value| value.value().to_vec());
            match stored {
                Some(bytes) if bytes != chain.0 => {
                    let stored = Digest(bytes.try_into().unwrap_or([0; 32]));
                    return Err(StoreError::OtherChain { stored, expected: chain });
                }
                Some(_) => {}
                None => {
                    meta.insert("chain", chain.0.as_slice()).map_err(db)?;
                    meta.insert("genesis", encoding::encode(genesis).as_slice()).map_err(db)?;
                    // Block 0 is derived, but stored like any other so that
                    // every snapshot, even one at height 0, has its block.
                    let (block, _) = genesis.block();
                    write.open_table(BLOCKS).map_err(db)?.insert(0, block.to_bytes().as_slice()).map_err(db)?;
                }
            }
            write.open_table(BLOCKS).map_err(db)?;
            write.open_table(RECEIPTS).map_err(db)?;
            write.open_table(TRANSACTIONS).map_err(db)?;
            write.open_table(MEMPOOL).map_err(db)?;
            write.open_table(DROPPED).map_err(db)?;
        }
        write.commit().map_err(db)?;
        let replica = store.load_replica(genesis)?;
        Ok((store, replica))
    }

    /// The replica: the last snapshot, then every later block re-applied.
    fn load_replica(&self, genesis: &Genesis) -> Result<Replica, StoreError> {
        let read = self.database.begin_read().map_err(db)?;
        let meta = read.open_table(META).map_err(db)?;
        // The snapshot is a cache of what the blocks say: one this build
        // cannot read (written by another version, or damaged) is set aside
        // and every block replayed from genesis, each checked against its
        // header's state root.
        let snapshot = meta.get("snapshot").map_err(db)?.map(|snapshot| self.resume(genesis, snapshot.value()));
        let mut replica = match snapshot {
            Some(Ok(replica)) => replica,
            Some(Err(error)) => {
                tracing::warn!(%error, "ledger.store the snapshot is unreadable; replaying every block from genesis");
                Replica::new(genesis)
            }
            None => Replica::new(genesis),
        };
        let blocks = read.open_table(BLOCKS).map_err(db)?;
        for entry in blocks.range(replica.height() + 1..).map_err(db)? {
            let (height, bytes) = entry.map_err(db)?;
            let block =
                Block::from_bytes(bytes.value()).map_err(|source| StoreError::Corrupt { what: "block", source })?;
            // Stored blocks were checked when committed; one final only
            // through a later block's certificate is re-executed without it.
            let applied = if block.finality == strand_contracts::block::Finality::Descendant {
                replica.apply_unfinalised(&block.header, &block.transactions)
            } else {
                replica.apply(&block)
            };
            applied.map_err(|source| StoreError::Replay { height: height.value(), source })?;
        }
        Ok(replica)
    }

    /// A replica resumed from `snapshot` and the block at its height.
    fn resume(&self, genesis: &Genesis, snapshot: &[u8]) -> Result<Replica, StoreError> {
        let state =
            LedgerState::from_snapshot(snapshot).map_err(|source| StoreError::Corrupt { what: "snapshot", source })?;
        let head = self.block(state.height)?.map(|block| block.header).ok_or_else(|| StoreError::Corrupt {
            what: "snapshot",
            source: EncodingError::Malformed(format!("no block at snapshot height {}", state.height)),
        })?;
        Ok(Replica::resume(genesis, state, head))
    }

    /// Commits a block with its receipts and the state after it.
    pub fn commit_block(&self, block: &Block, receipts: &[Receipt], state: &LedgerState) -> Result<(), StoreError> {
        let height = block.header.height;
        let write = self.database.begin_write().map_err(db)?;
        {
            write.open_table(BLOCKS).map_err(db)?.insert(height, block.to_bytes().as_slice()).map_err(db)?;
            let encoded = encoding::encode(&receipts.to_vec());
            write.open_table(RECEIPTS).map_err(db)?.insert(height, encoded.as_slice()).map_err(db)?;
            let mut transactions = write.open_table(TRANSACTIONS).map_err(db)?;
            let mut mempool = write.open_table(MEMPOOL).map_err(db)?;
            for (index, receipt) in receipts.iter().enumerate() {
                transactions.insert(&receipt.transaction.0, (height, index as u32)).map_err(db)?;
                mempool.remove(&receipt.transaction.0).map_err(db)?;
            }
            if height.is_multiple_of(SNAPSHOT_EVERY_BLOCKS) {
                write.open_table(META).map_err(db)?.insert("snapshot", state.to_snapshot().as_slice()).map_err(db)?;
            }
        }
        write.commit().map_err(db)
    }

    /// Writes a snapshot of `state` now (at a clean shutdown).
    pub fn snapshot(&self, state: &LedgerState) -> Result<(), StoreError> {
        let write = self.database.begin_write().map_err(db)?;
        write.open_table(META).map_err(db)?.insert("snapshot", state.to_snapshot().as_slice()).map_err(db)?;
        write.commit().map_err(db)
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let read = self.database.begin_read().map_err(db)?;
        let blocks = read.open_table(BLOCKS).map_err(db)?;
        let Some(bytes) = blocks.get(height).map_err(db)? else { return Ok(None) };
        Block::from_bytes(bytes.value()).map(Some).map_err(|source| StoreError::Corrupt { what: "block", source })
    }

    /// Encoded blocks from `from`, at most `count` of them and about
    /// `bytes_max` bytes (at least one if any).
    pub fn block_bytes_from(&self, from: u64, count: usize, bytes_max: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let read = self.database.begin_read().map_err(db)?;
        let blocks = read.open_table(BLOCKS).map_err(db)?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for entry in blocks.range(from..).map_err(db)?.take(count) {
            let (_, value) = entry.map_err(db)?;
            if !out.is_empty() && bytes + value.value().len() > bytes_max {
                break;
            }
            bytes += value.value().len();
            out.push(value.value().to_vec());
        }
        Ok(out)
    }

    /// Where transaction `hash` was finalised, if it was.
    pub fn transaction(&self, hash: &Digest) -> Result<Option<TransactionPlace>, StoreError> {
        let read = self.database.begin_read().map_err(db)?;
        let Some(place) = read.open_table(TRANSACTIONS).map_err(db)?.get(&hash.0).map_err(db)? else { return Ok(None) };
        let (height, index) = place.value();
        let receipts = read.open_table(RECEIPTS).map_err(db)?;
        let Some(bytes) = receipts.get(height).map_err(db)? else { return Ok(None) };
        let receipts: Vec<Receipt> = encoding::decode(bytes.value(), usize::MAX)
            .map_err(|source| StoreError::Corrupt { what: "receipts", source })?;
        Ok(receipts.into_iter().nth(index as usize).map(|receipt| TransactionPlace { height, index, receipt }))
    }

    /// Stores admitted mempool transactions (one durable commit for all).
    pub fn persist_mempool(&self, transactions: &[(Digest, Vec<u8>)]) -> Result<(), StoreError> {
        let write = self.database.begin_write().map_err(db)?;
        {
            let mut mempool = write.open_table(MEMPOOL).map_err(db)?;
            for (hash, bytes) in transactions {
                mempool.insert(&hash.0, bytes.as_slice()).map_err(db)?;
            }
        }
        write.commit().map_err(db)
    }

    /// Removes acknowledged transactions that can no longer be included
    /// from the stored mempool, recording why.
    pub fn drop_from_mempool(&self, dropped: &[(Digest, String)]) -> Result<(), StoreError> {
        if dropped.is_empty() {
            return Ok(());
        }
        let write = self.database.begin_write().map_err(db)?;
        {
            let mut mempool = write.open_table(MEMPOOL).map_err(db)?;
            let mut reasons = write.open_table(DROPPED).map_err(db)?;
            for (hash, reason) in dropped {
                mempool.remove(&hash.0).map_err(db)?;
                reasons.insert(&hash.0, reason.as_str()).map_err(db)?;
            }
        }
        write.commit().map_err(db)
    }

    /// Why an acknowledged transaction was dropped, if it was.
    pub fn dropped(&self, hash: &Digest) -> Result<Option<String>, StoreError> {
        let read = self.database.begin_read().map_err(db)?;
        let reasons = read.open_table(DROPPED).map_err(db)?;
        Ok(reasons.get(&hash.0).map_err(db)?.map(|reason| reason.value().to_string()))
    }

    /// Whether a transaction waits in the stored mempool.
    pub fn in_mempool(&self, hash: &Digest) -> Result<bool, StoreError> {
        let read = self.database.begin_read().map_err(db)?;
        Ok(read.open_table(MEMPOOL).map_err(db)?.get(&hash.0).map_err(db)?.is_some())
    }

    /// The stored mempool's transactions.
    pub fn mempool(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let read = self.database.begin_read().map_err(db)?;
        let mempool = read.open_table(MEMPOOL).map_err(db)?;
        let mut out = Vec::new();
        for entry in mempool.iter().map_err(db)? {
            out.push(entry.map_err(db)?.1.value().to_vec());
        }
        Ok(out)
    }

    /// The genesis stored at creation.
    pub fn genesis(path: &Path) -> Result<Option<Genesis>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let database = Database::create(path).map_err(db)?;
        let read = database.begin_read().map_err(db)?;
        let meta = match read.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(db(error)),
        };
        let Some(bytes) = meta.get("genesis").map_err(db)? else { return Ok(None) };
        encoding::decode(bytes.value(), usize::MAX)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { what: "genesis", source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand_contracts::block::ValidatorSet;
    use strand_contracts::transaction::{Body, FailureDomain, ProviderRegistration};
    use strand_contracts::{AccountId, Transaction};
    use strand_core::Identity;

    /// A snapshot this build cannot read (another version's, or damaged) is
    /// not the end of the ledger: the blocks are replayed from genesis.
    #[test]
    fn an_unreadable_snapshot_is_rebuilt_from_the_blocks() {
        let sequencer = Identity::from_secret_bytes(&[9; 32]);
        let genesis = Genesis {
            name: "store-test".into(),
            validators: ValidatorSet::sequencer(AccountId::of(&sequencer.public_key())),
            epoch_blocks: 5,
            timestamp_ms: 0,
        };
        let directory = tempfile::tempdir().expect("directory");
        let path = directory.path().join("ledger.redb");
        let (store, mut replica) = LedgerStore::open(&path, &genesis).expect("store");
        for height in 1..=3u64 {
            let provider = Identity::from_secret_bytes(&[height as u8; 32]);
            let body = Body::RegisterProvider(ProviderRegistration {
                endpoints: vec!["127.0.0.1:1".into()],
                capacity_bytes: 1 << 30,
                domain: FailureDomain { organisation: "o".into(), site: "s".into(), jurisdiction: "EU".into() },
            });
            let transaction = Transaction::sign(genesis.chain(), &provider, 1, body).to_bytes();
            let (block, receipts) = replica.propose(height * 1_000, vec![transaction], &sequencer);
            store.commit_block(&block, &receipts, replica.state()).expect("commit");
        }
        store.snapshot(replica.state()).expect("snapshot");
        let write = store.database.begin_write().expect("write");
        write.open_table(META).expect("meta").insert("snapshot", [253u8, 1, 2].as_slice()).expect("insert");
        write.commit().expect("commit");
        drop(store);
        let (_, reopened) = LedgerStore::open(&path, &genesis).expect("reopened from the blocks");
        assert_eq!((reopened.height(), reopened.state().root()), (3, replica.state().root()));
    }
}
