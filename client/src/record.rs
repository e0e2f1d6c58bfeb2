//! The upload record: what the owner keeps about an upload, sealed to the
//! owner: the recovery index and the placement (which provider holds each
//! fragment).
//!
//! # Format, version 1 (little endian)
//! ```text
//! magic           8   "STRNDUPL"
//! version         2   1
//! index length    4
//! index           recovery index v1 bytes
//! providers       2   count p, then p × 32-byte account keys
//! placement       one u16 provider index per fragment, in index order
//! ```

use std::path::{Path, PathBuf};

use strand_contracts::AccountId;
use strand_core::seal::{self, SealKind};
use strand_core::{Identity, RecoveryIndex};

const MAGIC: &[u8; 8] = b"STRNDUPL";
const VERSION: u16 = 1;

/// What the owner keeps about one upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRecord {
    /// The recovery index.
    pub index: RecoveryIndex,
    /// The providers.
    pub providers: Vec<AccountId>,
    /// For every fragment (in the index's order), its provider.
    pub placement: Vec<u16>,
}

/// Bytes that are not an upload record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Damaged or of another version.
    #[error("upload record is not readable: {0}")]
    Format(String),
    /// The seal failed (wrong key, altered).
    #[error(transparent)]
    Seal(#[from] strand_core::OpenError),
    /// Missing file.
    #[error("no upload {upload} in {directory}: was it uploaded with this STRAND_HOME?")]
    Missing {
        /// The upload id.
        upload: String,
        /// Where we looked.
        directory: PathBuf,
    },
    /// I/O.
    #[error("upload record {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl UploadRecord {
    /// The record of `index` placed by `placements` (per stripe, each
    /// shard's provider as an index into `accounts`): only the providers
    /// used are listed, in the order they are first used, so the record —
    /// and the key material a whole-upload credential seals — grows with
    /// the upload, not with the network.
    pub fn from_placement(
        index: RecoveryIndex,
        placements: &[Vec<usize>],
        accounts: &[AccountId],
    ) -> Result<Self, RecordError> {
        let mut slots: std::collections::HashMap<usize, u16> = std::collections::HashMap::new();
        let mut providers = Vec::new();
        let mut placement = Vec::with_capacity(placements.iter().map(Vec::len).sum());
        for &chosen in placements.iter().flatten() {
            let slot = match slots.get(&chosen) {
                Some(&slot) => slot,
                None => {
                    let slot = u16::try_from(providers.len())
                        .map_err(|_| RecordError::Format("an upload placed on more than 65,536 providers".into()))?;
                    let account = accounts
                        .get(chosen)
                        .ok_or_else(|| RecordError::Format("the placement names an unknown provider".into()))?;
                    providers.push(*account);
                    slots.insert(chosen, slot);
                    slot
                }
            };
            placement.push(slot);
        }
        Ok(Self { index, providers, placement })
    }

    /// The provider of fragment `(stripe, shard)`.
    pub fn provider_of(&self, stripe: u64, shard: usize) -> AccountId {
        let width = self.index.params().fragments_per_stripe();
        self.providers[self.placement[stripe as usize * width + shard] as usize]
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let index = self.index.to_bytes();
        let mut out = Vec::with_capacity(16 + index.len() + self.providers.len() * 32 + self.placement.len() * 2);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(index.len() as u32).to_le_bytes());
        out.extend_from_slice(&index);
        out.extend_from_slice(&(self.providers.len() as u16).to_le_bytes());
        for provider in &self.providers {
            out.extend_from_slice(&provider.0);
        }
        for slot in &self.placement {
            out.extend_from_slice(&slot.to_le_bytes());
        }
        out
    }

    /// Parses and checks bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let bad = |what: &str| RecordError::Format(what.to_string());
        let mut at = 0usize;
        let mut take = |length: usize| -> Result<&[u8], RecordError> {
            let slice = bytes.get(at..at + length).ok_or_else(|| bad("truncated"))?;
            at += length;
            Ok(slice)
        };
        if take(8)? != MAGIC {
            return Err(bad("bad magic bytes"));
        }
        let version = u16::from_le_bytes(take(2)?.try_into().expect("2 bytes"));
        if version != VERSION {
            return Err(RecordError::Format(format!(
                "version {version} is not supported (this build reads {VERSION})"
            )));
        }
        let index_length = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let index =
            RecoveryIndex::from_bytes(take(index_length)?).map_err(|error| RecordError::Format(error.to_string()))?;
        let count = u16::from_le_bytes(take(2)?.try_into().expect("2 bytes")) as usize;
        let mut providers = Vec::with_capacity(count);
        for _ in 0..count {
            providers.push(AccountId(take(32)?.try_into().expect("32 bytes")));
        }
        let fragments = index.fragment_ids().len();
        let mut placement = Vec::with_capacity(fragments);
        for _ in 0..fragments {
            let slot = u16::from_le_bytes(take(2)?.try_into().expect("2 bytes"));
            if slot as usize >= count {
                return Err(bad("placement names a provider that is not listed"));
            }
            placement.push(slot);
        }
        if at != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self { index, providers, placement })
    }

    /// Where the records of `home` live.
    pub fn directory(home: &Path) -> PathBuf {
        home.join("uploads")
    }

    /// Seals and writes the record.
    pub fn save(&self, home: &Path, owner: &Identity) -> Result<PathBuf, RecordError> {
        let path = Self::directory(home).join(format!("{}.upload", self.index.upload_id));
        let sealed = seal::seal(SealKind::UploadRecord, &self.to_bytes(), &owner.public_key(), &mut rand::rng());
        crate::offline::write_atomically(&path, &sealed)
            .map_err(|source| RecordError::Io { path: path.clone(), source })?;
        Ok(path)
    }

    /// Reads and opens the record of `upload`.
    pub fn load(home: &Path, upload: &str, owner: &Identity) -> Result<Self, RecordError> {
        let directory = Self::directory(home);
        let path = directory.join(format!("{upload}.upload"));
        let sealed = match std::fs::read(&path) {
            Ok(sealed) => sealed,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(RecordError::Missing { upload: upload.to_string(), directory });
            }
            Err(source) => return Err(RecordError::Io { path, source }),
        };
        let bytes = zeroize::Zeroizing::new(seal::open(SealKind::UploadRecord, &sealed, owner)?);
        Self::from_bytes(&bytes)
    }

    /// Every upload id with a record in `home`.
    pub fn list(home: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(Self::directory(home)) else { return Vec::new() };
        let mut uploads: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                entry.file_name().to_str().and_then(|name| name.strip_suffix(".upload")).map(str::to_string)
            })
            .collect();
        uploads.sort();
        uploads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand_core::params::{CodecParams, Layout};
    use strand_core::{FragmentId, UploadId, keys::MasterKey};

    fn record() -> UploadRecord {
        let params = CodecParams { chunk_size: 1024, data_shards: 2, parity_shards: 1 };
        let layout = Layout::new(params, 5000).expect("valid");
        let ids = (0..layout.fragment_count()).map(|i| FragmentId::from_bytes([i as u8; 32])).collect();
        let index = RecoveryIndex::new(
            UploadId::from_bytes([1; 16]),
            blake3::hash(b"x"),
            layout,
            MasterKey::from_bytes([2; 32]),
            ids,
        );
        let placement = (0..layout.fragment_count()).map(|i| (i % 3) as u16).collect();
        UploadRecord { index, providers: vec![AccountId([7; 32]), AccountId([8; 32]), AccountId([9; 32])], placement }
    }

    #[test]
    fn a_record_lists_only_the_providers_its_placement_uses() {
        let template = record();
        let accounts: Vec<AccountId> = (0..1_000u16).map(|i| AccountId([(i % 251) as u8; 32])).collect();
        // Two stripes of three over providers 900, 5, 900 and 7, 5, 42.
        let placements = vec![vec![900, 5, 900], vec![7, 5, 42]];
        let record = UploadRecord::from_placement(template.index.clone(), &placements, &accounts).expect("placed");
        assert_eq!(record.providers, vec![accounts[900], accounts[5], accounts[7], accounts[42]]);
        assert_eq!(record.provider_of(0, 2), accounts[900]);
        assert_eq!(record.provider_of(1, 2), accounts[42]);
        assert!(UploadRecord::from_placement(template.index, &[vec![1_000]], &accounts).is_err());
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let record = record();
        let bytes = record.to_bytes();
        assert_eq!(UploadRecord::from_bytes(&bytes).expect("parses"), record);
        assert!(UploadRecord::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut extended = bytes.clone();
        extended.push(0);
        assert!(UploadRecord::from_bytes(&extended).is_err());
        let mut bad_slot = bytes;
        let last = bad_slot.len() - 2;
        bad_slot[last] = 9;
        assert!(UploadRecord::from_bytes(&bad_slot).is_err());
        assert_eq!(record.provider_of(1, 0), AccountId([7; 32]), "fragment 3 sits with provider 0");
    }

    /// Fixed vector: the record's layout is a format.
    #[test]
    fn header_matches_fixed_vector() {
        let bytes = record().to_bytes();
        assert_eq!(hex::encode(&bytes[..14]), "5354524e4455504c0100b2010000");
    }

    #[test]
    fn saved_records_open_only_with_the_owners_key() {
        let home = tempfile::tempdir().expect("temporary directory");
        let owner = Identity::from_secret_bytes(&[1; 32]);
        let record = record();
        record.save(home.path(), &owner).expect("save");
        let upload = record.index.upload_id.to_string();
        assert_eq!(UploadRecord::list(home.path()), vec![upload.clone()]);
        assert_eq!(UploadRecord::load(home.path(), &upload, &owner).expect("load"), record);
        assert!(UploadRecord::load(home.path(), &upload, &Identity::from_secret_bytes(&[2; 32])).is_err());
        assert!(matches!(UploadRecord::load(home.path(), "00", &owner), Err(RecordError::Missing { .. })));
    }
}
