//! The prover's decisions, free of I/O: whether an epoch is due, which
//! contracts of its schedule the node answers and with which fragments,
//! and the answers once the challenged chunks are read. The daemon
//! (`daemon::proofs`) reads the chunk groups from its iroh store
//! asynchronously; the simulator reads them from memory through
//! [`FragmentStore`]. Both submit the same [`Body::SubmitProofs`].

use strand_contracts::proofs;
use strand_contracts::state::LedgerState;
use strand_contracts::transaction::{Body, ContractProof};
use strand_contracts::{AccountId, Digest};
use strand_proof_of_storage::answers::{self, Commitment};
use strand_proof_of_storage::challenge::Challenge;
use strand_proof_of_storage::chunk::ChunkProof;

use crate::core::holdings::Holdings;

/// One contract to answer: its commitment, fragments and challenges.
#[derive(Clone, Debug)]
pub struct ContractDuty {
    /// The contract.
    pub contract: Digest,
    /// What the answers are checked against.
    pub commitment: Commitment,
    /// Its fragment ids, in root order.
    pub fragment_ids: Vec<[u8; 32]>,
    /// This epoch's challenges on it.
    pub challenges: Vec<Challenge>,
}

impl ContractDuty {
    /// The `(fragment id, chunk)` to read per challenge, in order; `None`
    /// for a challenge naming a fragment outside the agreement.
    pub fn reads(&self) -> Vec<Option<([u8; 32], u64)>> {
        self.challenges
            .iter()
            .map(|challenge| {
                self.fragment_ids.get(challenge.fragment as usize).map(|id| (*id, u64::from(challenge.chunk)))
            })
            .collect()
    }

    /// The answers from one chunk proof per challenge (in order).
    pub fn answer(&self, chunks: Vec<ChunkProof>) -> ContractProof {
        let answers = answers::build(&self.fragment_ids, &self.challenges, chunks).to_bytes();
        ContractProof { contract: self.contract, answers }
    }
}

/// An epoch to answer.
#[derive(Clone, Debug)]
pub struct EpochDuty {
    /// The epoch.
    pub epoch: u64,
    /// Its beacon.
    pub beacon: Digest,
    /// Challenges scheduled in all.
    pub challenges: usize,
    /// Every contract the schedule challenged (its verdicts are counted
    /// once the epoch closes).
    pub challenged: Vec<Digest>,
    /// Contracts owing proofs this epoch that the node holds.
    pub contracts: Vec<ContractDuty>,
    /// Contracts owing proofs the node holds no agreement for.
    pub unanswerable: Vec<Digest>,
}

impl EpochDuty {
    /// The transaction, from the answered contracts (a contract whose
    /// chunks could not be read is left out: the ledger records a miss).
    pub fn submission(&self, answered: Vec<ContractProof>) -> Body {
        Body::SubmitProofs { epoch: self.epoch, proofs: answered }
    }
}

/// The current epoch's duty for `me`, unless nothing is scheduled, it is
/// already submitted on the ledger, or `pending` (a submission of it is in
/// flight).
pub fn due(state: &LedgerState, me: &AccountId, holdings: &Holdings, pending: bool) -> Option<EpochDuty> {
    let epoch = state.epoch();
    if pending || proofs::submitted(state, me, epoch) {
        return None;
    }
    let (beacon, scheduled) = proofs::schedule(state, me, epoch)?;
    if scheduled.is_empty() {
        return None;
    }
    let by_contract = proofs::by_contract(&scheduled);
    let challenged = by_contract.keys().copied().collect();
    let (mut contracts, mut unanswerable) = (Vec::new(), Vec::new());
    for (id, challenges) in by_contract {
        let Some(contract) = state.contracts.get(&id) else { continue };
        if !contract.owes_proofs_for(epoch) {
            continue;
        }
        match holdings.agreement(&id) {
            Some(agreement) => contracts.push(ContractDuty {
                contract: id,
                commitment: proofs::commitment_of(&id, &contract.terms),
                fragment_ids: agreement.fragment_ids.clone(),
                challenges,
            }),
            None => unanswerable.push(id),
        }
    }
    Some(EpochDuty { epoch, beacon, challenges: scheduled.len(), challenged, contracts, unanswerable })
}

/// A store a prover can read synchronously (the simulator's memory).
pub trait FragmentStore {
    /// The proof of `chunk` of fragment `id` (of `size` bytes), from the
    /// bytes held — damaged bytes answered as held; `None` if the fragment
    /// is not there at all.
    fn prove_chunk(&self, id: &[u8; 32], size: u64, chunk: u64) -> Option<ChunkProof>;
}

/// The epoch's submission from a synchronous store: every contract whose
/// challenged fragments are all there.
pub fn answer_from(duty: &EpochDuty, store: &impl FragmentStore) -> Body {
    let answered = duty
        .contracts
        .iter()
        .filter_map(|contract| {
            let size = u64::from(contract.commitment.fragment_size);
            let chunks: Option<Vec<ChunkProof>> = contract
                .reads()
                .into_iter()
                .map(|read| read.and_then(|(id, chunk)| store.prove_chunk(&id, size, chunk)))
                .collect();
            chunks.map(|chunks| contract.answer(chunks))
        })
        .collect();
    duty.submission(answered)
}
