//! The mempool: transactions waiting for a block. Bounded (in count, bytes
//! and per sender), deduplicated by hash, nonce-aware (a sender's
//! transactions leave in nonce order, only from its next nonce on), and fair
//! (a block takes one transaction per sender per round).
//!
//! Proof submissions have a lane of their own: they are admitted within a
//! reserve of their own however full the mempool is with other traffic,
//! and a block takes every sender's waiting proof submission (when it is
//! that sender's next transaction) before anything else. A provider's
//! proofs for an epoch count only inside that epoch, so a burst of uploads
//! (the simulator's 2,000 uploads at once on 1,000 nodes) must not push them
//! out of it: missed epochs would declare healthy contracts lost.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::encoding::TRANSACTION_BYTES_MAX;
use crate::rejection::Rejection;
use crate::state::LedgerState;
use crate::transaction::{Transaction, transaction_hash};
use crate::types::{AccountId, Digest};

/// Bounds of a mempool.
#[derive(Clone, Copy, Debug)]
pub struct MempoolLimits {
    /// Most transactions held.
    pub transactions_max: usize,
    /// Most bytes held.
    pub bytes_max: usize,
    /// Most transactions held per sender (so also how far ahead of its
    /// next nonce a sender may queue).
    pub per_sender_max: u64,
    /// Proof submissions held beyond the limits above (their lane).
    pub proofs_max: usize,
    /// Bytes of proof submissions held beyond `bytes_max`.
    pub proof_bytes_max: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        Self {
            transactions_max: 20_000,
            bytes_max: 64 << 20,
            per_sender_max: 256,
            proofs_max: 10_000,
            proof_bytes_max: 256 << 20,
        }
    }
}

/// Why a transaction was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// It could never be valid as it stands.
    #[error(transparent)]
    Invalid(#[from] Rejection),
    /// Another transaction with this sender and nonce is already waiting.
    #[error("another transaction with nonce {0} from this sender is already waiting")]
    NonceTaken(u64),
    /// The mempool is full: try again later.
    #[error("the mempool is full ({transactions} transactions, {bytes} bytes): retry later")]
    Full {
        /// Held.
        transactions: usize,
        /// Held bytes.
        bytes: usize,
    },
}

impl AdmissionError {
    /// A short fixed name of the reason, for metrics: a rejection's own
    /// label, `nonce_taken` or `mempool_full`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Invalid(rejection) => rejection.label(),
            Self::NonceTaken(_) => "nonce_taken",
            Self::Full { .. } => "mempool_full",
        }
    }
}

struct Pending {
    bytes: Vec<u8>,
    hash: Digest,
    /// A proof submission (its own lane).
    proof: bool,
}

/// Transactions waiting for a block.
pub struct Mempool {
    limits: MempoolLimits,
    by_sender: BTreeMap<AccountId, BTreeMap<u64, Pending>>,
    by_hash: HashMap<Digest, (AccountId, u64)>,
    /// Senders in order of first arrival, for fair selection.
    arrival: VecDeque<AccountId>,
    bytes: usize,
    /// Proof submissions held, and their bytes (counted apart).
    proofs: usize,
    proof_bytes: usize,
}

impl Mempool {
    /// An empty mempool.
    pub fn new(limits: MempoolLimits) -> Self {
        Self {
            limits,
            by_sender: BTreeMap::new(),
            by_hash: HashMap::new(),
            arrival: VecDeque::new(),
            bytes: 0,
            proofs: 0,
            proof_bytes: 0,
        }
    }

    /// Number of waiting transactions.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Bytes of waiting transactions.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Checks `bytes` against `state` and queues them. A transaction already
    /// waiting is admitted again without change (idempotent resubmission).
    pub fn admit(&mut self, state: &LedgerState, bytes: Vec<u8>) -> Result<Digest, AdmissionError> {
        let hash = transaction_hash(&bytes);
        if self.by_hash.contains_key(&hash) {
            return Ok(hash);
        }
        let transaction = Transaction::from_bytes(&bytes).map_err(Rejection::Encoding)?;
        if transaction.chain != state.params.chain {
            return Err(Rejection::WrongChain { expected: state.params.chain, found: transaction.chain }.into());
        }
        if !transaction.signature_valid() {
            return Err(Rejection::BadSignature.into());
        }
        let next = state.accounts.get(&transaction.sender).map_or(0, |account| account.nonce) + 1;
        if transaction.nonce < next {
            return Err(Rejection::NonceReused { expected: next, found: transaction.nonce }.into());
        }
        if transaction.nonce >= next + self.limits.per_sender_max {
            return Err(Rejection::NonceSkipped { expected: next, found: transaction.nonce }.into());
        }
        let queue = self.by_sender.entry(transaction.sender).or_default();
        if queue.contains_key(&transaction.nonce) {
            return Err(AdmissionError::NonceTaken(transaction.nonce));
        }
        let proof = matches!(transaction.body, crate::transaction::Body::SubmitProofs { .. });
        let full = if proof {
            self.proofs >= self.limits.proofs_max || self.proof_bytes + bytes.len() > self.limits.proof_bytes_max
        } else {
            self.by_hash.len() - self.proofs >= self.limits.transactions_max
                || self.bytes - self.proof_bytes + bytes.len() > self.limits.bytes_max
        };
        if full {
            return Err(AdmissionError::Full { transactions: self.by_hash.len(), bytes: self.bytes });
        }
        if queue.is_empty() {
            self.arrival.push_back(transaction.sender);
        }
        self.bytes += bytes.len();
        if proof {
            self.proofs += 1;
            self.proof_bytes += bytes.len();
        }
        queue.insert(transaction.nonce, Pending { bytes, hash, proof });
        self.by_hash.insert(hash, (transaction.sender, transaction.nonce));
        Ok(hash)
    }

    /// Transactions for the next block: per sender, consecutive nonces from
    /// its next one; first every sender's proof submission that is next,
    /// then one per sender per round; within the limits.
    pub fn select(&self, state: &LedgerState, transactions_max: usize, bytes_max: usize) -> Vec<Vec<u8>> {
        let mut cursors: Vec<(AccountId, u64)> = self
            .arrival
            .iter()
            .map(|sender| (*sender, state.accounts.get(sender).map_or(0, |account| account.nonce) + 1))
            .collect();
        let (mut chosen, mut bytes) = (Vec::new(), 0usize);
        let block_bytes = bytes_max.min(TRANSACTION_BYTES_MAX * 16);
        for (sender, nonce) in &mut cursors {
            let Some(pending) = self.by_sender.get(sender).and_then(|queue| queue.get(nonce)) else { continue };
            if pending.proof && chosen.len() < transactions_max && bytes + pending.bytes.len() <= block_bytes {
                bytes += pending.bytes.len();
                chosen.push(pending.bytes.clone());
                *nonce += 1;
            }
        }
        while !cursors.is_empty() && chosen.len() < transactions_max {
            cursors.retain_mut(|(sender, nonce)| {
                let Some(pending) = self.by_sender.get(sender).and_then(|queue| queue.get(nonce)) else { return false };
                if chosen.len() >= transactions_max || bytes + pending.bytes.len() > block_bytes {
                    return false;
                }
                bytes += pending.bytes.len();
                chosen.push(pending.bytes.clone());
                *nonce += 1;
                true
            });
        }
        chosen
    }

    /// Drops what `state` has made stale (transactions whose nonce is used)
    /// and returns their hashes.
    pub fn prune(&mut self, state: &LedgerState) -> Vec<Digest> {
        let mut removed = Vec::new();
        let mut emptied = Vec::new();
        for (sender, queue) in &mut self.by_sender {
            let used = state.accounts.get(sender).map_or(0, |account| account.nonce);
            let stale: Vec<u64> = queue.range(..=used).map(|(nonce, _)| *nonce).collect();
            for nonce in stale {
                if let Some(pending) = queue.remove(&nonce) {
                    self.bytes -= pending.bytes.len();
                    if pending.proof {
                        self.proofs -= 1;
                        self.proof_bytes -= pending.bytes.len();
                    }
                    self.by_hash.remove(&pending.hash);
                    removed.push(pending.hash);
                }
            }
            if queue.is_empty() {
                emptied.push(*sender);
            }
        }
        for sender in emptied {
            self.by_sender.remove(&sender);
        }
        let by_sender = &self.by_sender;
        self.arrival.retain(|sender| by_sender.contains_key(sender));
        removed
    }

    /// Every transaction held, by sender then nonce.
    pub fn transactions(&self) -> impl Iterator<Item = &[u8]> {
        self.by_sender.values().flat_map(|queue| queue.values().map(|pending| pending.bytes.as_slice()))
    }

    /// Removes the transactions with these hashes.
    pub fn remove(&mut self, hashes: &[Digest]) {
        for hash in hashes {
            let Some((sender, nonce)) = self.by_hash.remove(hash) else { continue };
            if let Some(queue) = self.by_sender.get_mut(&sender) {
                if let Some(pending) = queue.remove(&nonce) {
                    self.bytes -= pending.bytes.len();
                    if pending.proof {
                        self.proofs -= 1;
                        self.proof_bytes -= pending.bytes.len();
                    }
                }
                if queue.is_empty() {
                    self.by_sender.remove(&sender);
                    self.arrival.retain(|waiting| *waiting != sender);
                }
            }
        }
    }
}
