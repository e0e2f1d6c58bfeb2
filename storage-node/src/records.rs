//! The node's own records in redb: the agreements it made.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use strand_contracts::Digest;
use strand_contracts::encoding;

use crate::core::holdings::Agreement;

const AGREEMENTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("agreements");

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

    /// Removes an agreement (durably).
    pub fn remove(&self, id: &Digest) -> anyhow::Result<()> {
        let write = self.database.begin_write().map_err(db)?;
        write.open_table(AGREEMENTS).map_err(db)?.remove(&id.0).map_err(db)?;
        write.commit().map_err(db)
    }
}
