//! Access receipts: what the node released, to whom, under what (the
//! owner's read, a credential, or a repair order),
//! summed per epoch and submitted to the ledger once the epoch is over (one
//! batch per provider and epoch). Sans-IO: the daemon records every allowed
//! get and submits what [`Receipts::take_closed`] hands it.

use std::collections::BTreeMap;

use strand_contracts::AccountId;
use strand_contracts::apply::BATCH_ENTRIES_MAX;
use strand_contracts::transaction::{AccessReceipt, ReadAuthority};
use strand_contracts::types::UploadKey;

type Key = (UploadKey, ReadAuthority, AccountId);

/// Releases not yet on the ledger, per epoch.
#[derive(Clone, Debug, Default)]
pub struct Receipts {
    pending: BTreeMap<u64, BTreeMap<Key, (u32, u64)>>,
}

impl Receipts {
    /// Counts one released fragment of `bytes` in `epoch`; `false` when the
    /// epoch's batch is full (the ledger takes at most `BATCH_ENTRIES_MAX`
    /// entries) and the release could not be receipted.
    pub fn record(
        &mut self,
        epoch: u64,
        upload: UploadKey,
        authority: ReadAuthority,
        requester: AccountId,
        bytes: u64,
    ) -> bool {
        let batch = self.pending.entry(epoch).or_default();
        let key = (upload, authority, requester);
        if !batch.contains_key(&key) && batch.len() >= BATCH_ENTRIES_MAX {
            return false;
        }
        let entry = batch.entry(key).or_default();
        entry.0 = entry.0.saturating_add(1);
        entry.1 = entry.1.saturating_add(bytes);
        true
    }

    /// The batches of epochs before `current` (closed), oldest first,
    /// removed from the pending set.
    pub fn take_closed(&mut self, current: u64) -> Vec<(u64, Vec<AccessReceipt>)> {
        let open = self.pending.split_off(&current);
        let closed = std::mem::replace(&mut self.pending, open);
        closed
            .into_iter()
            .map(|(epoch, batch)| {
                let receipts = batch
                    .into_iter()
                    .map(|((upload, authority, requester), (fragments, bytes))| AccessReceipt {
                        upload,
                        authority,
                        requester,
                        fragments,
                        bytes,
                    })
                    .collect();
                (epoch, receipts)
            })
            .collect()
    }

    /// Every pending batch (to be saved), oldest first.
    pub fn snapshot(&self) -> Vec<(u64, Vec<AccessReceipt>)> {
        self.clone().take_closed(u64::MAX)
    }

    /// Whether anything is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Puts a batch back (its submission failed; retried while allowed).
    pub fn restore(&mut self, epoch: u64, receipts: Vec<AccessReceipt>) {
        let batch = self.pending.entry(epoch).or_default();
        for receipt in receipts {
            let entry = batch.entry((receipt.upload, receipt.authority, receipt.requester)).or_default();
            entry.0 = entry.0.saturating_add(receipt.fragments);
            entry.1 = entry.1.saturating_add(receipt.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand_contracts::Digest;

    #[test]
    fn releases_are_summed_per_epoch_reader_and_authority_and_handed_over_once_closed() {
        let mut receipts = Receipts::default();
        let (reader, owner) = (AccountId([1; 32]), AccountId([2; 32]));
        receipts.record(3, [5; 16], ReadAuthority::Credential(Digest([9; 32])), reader, 100);
        receipts.record(3, [5; 16], ReadAuthority::Credential(Digest([9; 32])), reader, 100);
        receipts.record(3, [5; 16], ReadAuthority::Owner, owner, 50);
        receipts.record(3, [5; 16], ReadAuthority::Repair(Digest([7; 32])), owner, 60);
        assert!(receipts.record(4, [5; 16], ReadAuthority::Credential(Digest([9; 32])), reader, 100));
        assert!(receipts.take_closed(3).is_empty(), "epoch 3 is still open");
        let closed = receipts.take_closed(4);
        assert_eq!(closed.len(), 1);
        let (epoch, batch) = &closed[0];
        assert_eq!(*epoch, 3);
        assert_eq!(batch.len(), 3, "the owner's own read and its repair read are separate lines");
        let repair = batch.iter().find(|r| r.authority == ReadAuthority::Repair(Digest([7; 32]))).expect("repair read");
        assert_eq!((repair.requester, repair.fragments, repair.bytes), (owner, 1, 60));
        let read = batch.iter().find(|r| r.requester == reader).expect("reader");
        assert_eq!((read.fragments, read.bytes, read.authority), (2, 200, ReadAuthority::Credential(Digest([9; 32]))));
        assert!(receipts.take_closed(4).is_empty(), "handed over once");
        // A full batch refuses new readers (and says so), not known ones.
        let mut full = Receipts::default();
        for index in 0..BATCH_ENTRIES_MAX {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(index as u64).to_le_bytes());
            assert!(full.record(1, [5; 16], ReadAuthority::Owner, AccountId(id), 1));
        }
        assert!(!full.record(1, [5; 16], ReadAuthority::Owner, AccountId([0xff; 32]), 1));
        assert!(full.record(1, [5; 16], ReadAuthority::Owner, AccountId([0; 32]), 1), "a known reader still counts");
        receipts.restore(3, batch.clone());
        assert_eq!(receipts.take_closed(5).len(), 2, "restored epoch 3 and epoch 4");
    }
}
