//! The node's own transactions (proofs and access receipts): one account,
//! one nonce sequence. Sans-IO: the daemon asks for the nonce of the next
//! transaction, says what the ledger service did with it, and shows the
//! ledger replica as it moves.
//!
//! A transaction the service *admitted* is durably queued and will end
//! finalised (accepted or rejected, using its nonce) or dropped with a
//! reason; so the next one may be signed with the following nonce at once,
//! without waiting for a block. Proofs therefore never wait behind receipts
//! (or the other way round), and two transactions never take one nonce. A
//! transaction that was not admitted used nothing: the next one reuses its
//! nonce. One that is dropped after admission (a sequencer that lost its
//! mempool) leaves a gap: it and every later pending one are forgotten, so
//! the next transaction fills the gap from the replica's nonce.

use std::collections::BTreeMap;

use strand_contracts::Digest;

/// What a transaction carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Proofs answering an epoch.
    Proofs(u64),
    /// Access receipts of an epoch.
    Receipts(u64),
    /// A repair report for an order.
    Repair(Digest),
    /// A report of a sibling contract that served bad bytes.
    Accusation(Digest),
}

/// A transaction admitted and not yet seen final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Its hash.
    pub hash: Digest,
    /// What it carries.
    pub purpose: Purpose,
}

/// The node's admitted, not yet final transactions, by nonce.
#[derive(Clone, Debug, Default)]
pub struct Submissions {
    pending: BTreeMap<u64, Pending>,
}

impl Submissions {
    /// Forgets what the replica shows final: every nonce up to
    /// `confirmed_nonce` (the account's last used nonce on the ledger).
    /// Returns those transactions, so the caller can see how each ended.
    pub fn confirm(&mut self, confirmed_nonce: u64) -> Vec<Pending> {
        let later = self.pending.split_off(&confirmed_nonce.saturating_add(1));
        std::mem::replace(&mut self.pending, later).into_values().collect()
    }

    /// The nonce for the next transaction.
    pub fn next_nonce(&self, confirmed_nonce: u64) -> u64 {
        self.pending.keys().next_back().copied().unwrap_or(0).max(confirmed_nonce).saturating_add(1)
    }

    /// The service admitted transaction `hash` with `nonce`.
    pub fn admitted(&mut self, nonce: u64, hash: Digest, purpose: Purpose) {
        self.pending.insert(nonce, Pending { hash, purpose });
    }

    /// The service dropped `hash` after admitting it: forget it and every
    /// later pending transaction (their nonces follow a gap now). Returns
    /// what was forgotten.
    pub fn dropped(&mut self, hash: &Digest) -> Vec<Pending> {
        let Some(nonce) = self.pending.iter().find(|(_, pending)| pending.hash == *hash).map(|(nonce, _)| *nonce)
        else {
            return Vec::new();
        };
        self.pending.split_off(&nonce).into_values().collect()
    }

    /// Whether a transaction for `purpose` is pending.
    pub fn is_pending(&self, purpose: Purpose) -> bool {
        self.pending.values().any(|pending| pending.purpose == purpose)
    }

    /// Every pending transaction, oldest nonce first.
    pub fn pending(&self) -> impl Iterator<Item = &Pending> {
        self.pending.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_to_back_transactions_take_consecutive_nonces() {
        let mut submissions = Submissions::default();
        // The ledger shows nonce 4 used: the next is 5.
        assert_eq!(submissions.next_nonce(4), 5);
        submissions.admitted(5, Digest([1; 32]), Purpose::Proofs(9));
        // Receipts right behind the proofs, before any block.
        assert_eq!(submissions.next_nonce(4), 6);
        submissions.admitted(6, Digest([2; 32]), Purpose::Receipts(8));
        assert!(submissions.is_pending(Purpose::Proofs(9)) && submissions.is_pending(Purpose::Receipts(8)));
        // A refused submission uses nothing: the next one takes nonce 7.
        assert_eq!(submissions.next_nonce(4), 7);
        // A block takes the proofs.
        let final_now = submissions.confirm(5);
        assert_eq!(final_now, vec![Pending { hash: Digest([1; 32]), purpose: Purpose::Proofs(9) }]);
        assert!(!submissions.is_pending(Purpose::Proofs(9)));
        assert_eq!(submissions.next_nonce(5), 7);
        submissions.confirm(6);
        assert_eq!(submissions.pending().count(), 0);
        assert_eq!(submissions.next_nonce(6), 7);
    }

    #[test]
    fn a_dropped_transaction_forgets_those_after_it() {
        let mut submissions = Submissions::default();
        for (nonce, byte) in [(3u64, 1u8), (4, 2), (5, 3)] {
            submissions.admitted(nonce, Digest([byte; 32]), Purpose::Receipts(u64::from(byte)));
        }
        let forgotten = submissions.dropped(&Digest([2; 32]));
        assert_eq!(forgotten.len(), 2);
        assert_eq!(submissions.next_nonce(2), 4, "the gap is filled first");
        assert!(submissions.dropped(&Digest([9; 32])).is_empty());
    }
}
