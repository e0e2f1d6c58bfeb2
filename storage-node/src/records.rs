//! The node's own records in redb: the agreements it made, and the access
//! receipts not yet on the ledger.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use strand_contracts::Digest;
use strand_contracts::encoding;
use strand_contracts::stripes::StripeMap;

use crate::core::holdings::Agreement;

const AGREEMENTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("agreements");
/// One entry, `pending`: the borsh encoding of the pending receipt batches.
const RECEIPTS: TableDefinition<&str, &[u8]> = TableDefinition::new("receipts");
const PENDING: &str = "pending";
/// Per contract held: the upload's stripe map (borsh), what a repairer asks
/// for.
const STRIPE_MAPS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("stripe_maps");

/// Pending access receipts as stored: per epoch, its batch.
pub type PendingReceipts = Vec<(u64, Vec<strand_contracts::transaction::AccessReceipt>)>;

/// The node's agreement records.
pub struct Records {
    database: Database,
}

fn db<E: Into<redb::Error>>(error: E) -> anyhow::Error {
    anyhow::Error::new(error.into()).context("node records database")
}

impl Records {
    /// Opens (or creates) the records at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let database = Database::create(path).map_err(db)?;
        let write = database.begin_write().map_err(db)?;
        write.open_table(AGREEMENTS).map_err(db)?;
        write.open_table(RECEIPTS).map_err(db)?;
        write.open_table(STRIPE_MAPS).map_err(db)?;
        write.commit().map_err(db)?;
        Ok(Self { database })
    }

    /// Every stored agreement.
    pub fn agreements(&self) -> anyhow::Result<Vec<Agreement>> {
        let read = self.database.begin_read().map_err(db)?;
        let table = read.open_table(AGREEMENTS).map_err(db)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db)? {
            let (_, value) = entry.map_err(db)?;
            out.push(encoding::decode(value.value(), usize::MAX)?);
        }
        Ok(out)
    }

    /// Stores or replaces an agreement (durably).
    pub fn put(&self, agreement: &Agreement) -> anyhow::Result<()> {
        let write = self.database.begin_write().map_err(db)?;
        write
            .open_table(AGREEMENTS)
            .map_err(db)?
            .insert(&agreement.terms.id().0, encoding::encode(agreement).as_slice())
            .map_err(db)?;
        write.commit().map_err(db)
    }

    /// The receipts pending at the last save (empty if none).
    pub fn pending_receipts(&self) -> anyhow::Result<PendingReceipts> {
        let read = self.database.begin_read().map_err(db)?;
        let table = read.open_table(RECEIPTS).map_err(db)?;
        match table.get(PENDING).map_err(db)? {
            Some(value) => encoding::decode(value.value(), usize::MAX).map_err(|error| {
                anyhow::anyhow!(
                    "the node's saved access receipts do not decode ({error}): this node.redb was written by \
                     an incompatible version of strand-node; submit them with that version, or start this one \
                     on a new data directory"
                )
            }),
            None => Ok(Vec::new()),
        }
    }

    /// Replaces the saved pending receipts (durably).
    pub fn save_receipts(&self, pending: &PendingReceipts) -> anyhow::Result<()> {
        let write = self.database.begin_write().map_err(db)?;
        write.open_table(RECEIPTS).map_err(db)?.insert(PENDING, encoding::encode(pending).as_slice()).map_err(db)?;
        write.commit().map_err(db)
    }

    /// Removes an agreement and its stripe map (durably).
    pub fn remove(&self, id: &Digest) -> anyhow::Result<()> {
        let write = self.database.begin_write().map_err(db)?;
        write.open_table(AGREEMENTS).map_err(db)?.remove(&id.0).map_err(db)?;
        write.open_table(STRIPE_MAPS).map_err(db)?.remove(&id.0).map_err(db)?;
        write.commit().map_err(db)
    }

    /// Stores the stripe map of contract `id`'s upload (durably).
    pub fn put_stripe_map(&self, id: &Digest, map: &StripeMap) -> anyhow::Result<()> {
        let write = self.database.begin_write().map_err(db)?;
        write.open_table(STRIPE_MAPS).map_err(db)?.insert(&id.0, encoding::encode(map).as_slice()).map_err(db)?;
        write.commit().map_err(db)
    }

    /// The stripe map stored with contract `id`.
    pub fn stripe_map(&self, id: &Digest) -> anyhow::Result<Option<StripeMap>> {
        let read = self.database.begin_read().map_err(db)?;
        let table = read.open_table(STRIPE_MAPS).map_err(db)?;
        match table.get(&id.0).map_err(db)? {
            Some(value) => Ok(Some(encoding::decode(value.value(), usize::MAX)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand_contracts::AccountId;
    use strand_contracts::transaction::AccessReceipt;

    #[test]
    fn pending_receipts_survive_a_reopen() {
        let directory = tempfile::tempdir().expect("directory");
        let path = directory.path().join("node.redb");
        let pending = vec![(
            4,
            vec![AccessReceipt {
                upload: [1; 16],
                authority: strand_contracts::transaction::ReadAuthority::Credential(Digest([2; 32])),
                requester: AccountId([3; 32]),
                fragments: 5,
                bytes: 500,
            }],
        )];
        {
            let records = Records::open(&path).expect("open");
            assert!(records.pending_receipts().expect("read").is_empty());
            records.save_receipts(&pending).expect("save");
        }
        let records = Records::open(&path).expect("reopen");
        assert_eq!(records.pending_receipts().expect("read"), pending);
    }

    #[test]
    fn a_stripe_map_lives_and_goes_with_its_agreement() {
        let directory = tempfile::tempdir().expect("directory");
        let path = directory.path().join("node.redb");
        let map = StripeMap { slots: vec![AccountId([1; 32])], stripes: vec![vec![([2; 32], 0)]] };
        let contract = Digest([3; 32]);
        {
            let records = Records::open(&path).expect("open");
            assert_eq!(records.stripe_map(&contract).expect("read"), None);
            records.put_stripe_map(&contract, &map).expect("put");
        }
        let records = Records::open(&path).expect("reopen");
        assert_eq!(records.stripe_map(&contract).expect("read"), Some(map));
        records.remove(&contract).expect("remove");
        assert_eq!(records.stripe_map(&contract).expect("read"), None);
    }
}
