//! A state table: a persistent ordered map (O(1) clone, so a block is applied
//! to a copy and kept only if it checks out) with a cached hash of every
//! entry, so the table's root costs 32 bytes of hashing per entry, not a
//! re-encoding of the state.

use borsh::{BorshDeserialize, BorshSerialize};
use imbl::OrdMap;

use crate::encoding;

/// One table of the ledger state.
#[derive(Clone, Debug)]
pub struct Table<K: Ord + Clone, V: Clone> {
    entries: OrdMap<K, (V, [u8; 32])>,
}

impl<K: Ord + Clone, V: Clone> Default for Table<K, V> {
    fn default() -> Self {
        Self { entries: OrdMap::new() }
    }
}

impl<K, V> Table<K, V>
where
    K: Ord + Clone + BorshSerialize + BorshDeserialize,
    V: Clone + BorshSerialize + BorshDeserialize,
{
    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: K, value: V) {
        let hash = *blake3::hash(&encoding::encode(&(&key, &value))).as_bytes();
        self.entries.insert(key, (value, hash));
    }

    /// Changes the value under `key` with `change`, if present.
    pub fn update(&mut self, key: &K, change: impl FnOnce(&mut V)) -> bool {
        let Some(mut value) = self.get(key).cloned() else { return false };
        change(&mut value);
        self.insert(key.clone(), value);
        true
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(value, _)| value)
    }

    /// Keys in `range`, at most `max`, in order (to remove them after).
    pub fn keys_in<R: std::ops::RangeBounds<K>>(&self, range: R, max: usize) -> Vec<K> {
        self.entries.range(range).take(max).map(|(key, _)| key.clone()).collect()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(key, (value, _))| (key, value))
    }

    /// Entries with keys in `range`, in order.
    pub fn range<R: std::ops::RangeBounds<K>>(&self, range: R) -> impl Iterator<Item = (&K, &V)> {
        self.entries.range(range).map(|(key, (value, _))| (key, value))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Commitment to every entry, in key order.
    pub fn root(&self, name: &str) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key("strand state table v1");
        hasher.update(name.as_bytes()).update(&(self.entries.len() as u64).to_le_bytes());
        for (_, (_, hash)) in self.entries.iter() {
            hasher.update(hash);
        }
        *hasher.finalize().as_bytes()
    }

    /// The entries, for a snapshot.
    pub fn to_entries(&self) -> Vec<(K, V)> {
        self.iter().map(|(key, value)| (key.clone(), value.clone())).collect()
    }

    /// A table from snapshot entries.
    pub fn from_entries(entries: Vec<(K, V)>) -> Self {
        let mut table = Self::default();
        for (key, value) in entries {
            table.insert(key, value);
        }
        table
    }
}
