//! The proof rules: each provider's bounded schedule over its roster, its
//! one submission per epoch, checks and strikes, liveness, rosters changing
//! at epoch boundaries, and history pruned past its horizon.

mod support;

use strand_contracts::state::{ContractStatus, Fault, ProofSlot, ProofStatus};
use strand_contracts::transaction::{Body, ContractProof, ContractTerms};
use strand_contracts::{Digest, Outcome, Rejection};
use strand_core::Identity;
use strand_proof_of_storage::policy;
use strand_proof_of_storage::schedule::CHALLENGES_PER_PROVIDER_MAX;
use support::*;

/// Empty blocks until the current epoch is `epoch`.
fn enter_epoch(chain: &mut Chain, epoch: u64) {
    chain.advance_to_epoch(epoch);
    chain.block(Vec::new());
    assert_eq!(chain.replica.state().epoch(), epoch);
}

/// A chain with a registered provider and contracts for `uploads` (each
/// opened with [`terms`]) in epoch 0.
fn with_contracts(uploads: &[u8]) -> (Chain, Identity, Identity, Vec<Digest>) {
    let mut chain = Chain::new();
    let (owner, provider) = (identity(1), identity(2));
    assert_eq!(chain.submit(&provider, registration("gene-bank-a")), Outcome::Accepted);
    let mut ids = Vec::new();
    for upload in uploads {
        let terms = terms(&owner, &provider, *upload);
        ids.push(terms.id());
        let body = open_contract(&chain, terms, &provider);
        assert_eq!(chain.submit(&owner, body), Outcome::Accepted);
    }
    (chain, owner, provider, ids)
}

/// The check of `id` in `epoch`: a failure's record, or a pass in the
/// contract's tally.
fn record(chain: &Chain, epoch: u64, id: &Digest) -> Option<ProofStatus> {
    let state = chain.replica.state();
    if let Some(record) = state.proofs.get(&(epoch, *id)) {
        return Some(record.status);
    }
    state.contracts.get(id).filter(|contract| contract.proofs.passed_in(epoch)).map(|_| ProofStatus::Passed)
}

fn tally(chain: &Chain, id: &Digest) -> (u64, u64, u64, u64, u64) {
    let tally = chain.replica.state().contracts.get(id).expect("contract").proofs;
    (tally.submitted, tally.passed, tally.failed, tally.missed, tally.strikes)
}

fn status(chain: &Chain, id: &Digest) -> ContractStatus {
    chain.replica.state().contracts.get(id).expect("contract").status
}

/// Honest answers, with the answers of `id` replaced by `answers`.
fn submission_with(chain: &Chain, provider: &Identity, id: &Digest, answers: Vec<u8>) -> Body {
    let Body::SubmitProofs { epoch, mut proofs } = honest_submission(chain, provider) else { unreachable!() };
    proofs.iter_mut().filter(|proof| proof.contract == *id).for_each(|proof| proof.answers = answers.clone());
    Body::SubmitProofs { epoch, proofs }
}

#[test]
fn honest_proofs_pass_and_a_silent_epoch_is_the_providers_miss() {
    let (mut chain, _, provider, ids) = with_contracts(&[1]);
    let id = ids[0];
    enter_epoch(&mut chain, 1);
    assert_eq!(chain.submit(&provider, honest_submission(&chain, &provider)), Outcome::Accepted);
    assert_eq!(record(&chain, 1, &id), Some(ProofStatus::Passed));
    // Epoch 2 passes in silence: the provider's miss, recorded at epoch 3.
    enter_epoch(&mut chain, 3);
    let state = chain.replica.state();
    assert_eq!(state.proof_slots.get(&(2, account(&provider))), Some(&ProofSlot::Missed));
    assert_eq!(state.proof_slots.get(&(1, account(&provider))), None, "slots are kept for two epochs");
    let liveness = state.providers.get(&account(&provider)).expect("provider").liveness;
    assert!(liveness.missed_in(2) && !liveness.missed_in(1), "the last 64 epochs, in the provider's record");
    assert_eq!((liveness.submitted_epochs, liveness.missed_epochs, liveness.missed_in_row), (1, 1, 1));
    assert_eq!(tally(&chain, &id), (1, 1, 0, 0, 0), "the contract's own checks are untouched");
    // Answering again clears the run of misses.
    assert_eq!(chain.submit(&provider, honest_submission(&chain, &provider)), Outcome::Accepted);
    let liveness = chain.replica.state().providers.get(&account(&provider)).expect("provider").liveness;
    assert_eq!(liveness.missed_in_row, 0);
    assert_eq!(tally(&chain, &id), (2, 2, 0, 0, 0));
}

#[test]
fn three_silent_epochs_make_a_provider_unresponsive_and_every_contract_lost() {
    let (mut chain, _, provider, ids) = with_contracts(&[1, 2, 3]);
    enter_epoch(&mut chain, 3);
    for id in &ids {
        assert_eq!(status(&chain, id), ContractStatus::Active, "two misses are tolerated");
    }
    enter_epoch(&mut chain, 4);
    let state = chain.replica.state();
    for id in &ids {
        assert_eq!(status(&chain, id), ContractStatus::Lost { at_epoch: 4 });
    }
    let record = state.providers.get(&account(&provider)).expect("provider");
    assert_eq!(record.committed_bytes, 0, "lost contracts no longer take capacity");
    assert_eq!(record.roster.contracts, 0);
    assert_eq!(record.liveness.unresponsive_since, None, "swept: nothing left to declare lost");
    assert!(state.roster.is_empty());
}

#[test]
fn wrong_answers_fail_with_the_reason_are_rechecked_and_lost_at_the_limit() {
    let (mut chain, _, provider, ids) = with_contracts(&[1]);
    let id = ids[0];
    enter_epoch(&mut chain, 1);
    // Answers for the right challenges from a fragment whose bytes changed.
    let Body::SubmitProofs { proofs, .. } = honest_submission(&chain, &provider) else { unreachable!() };
    let mut answers =
        <strand_proof_of_storage::answers::Answers as borsh::BorshDeserialize>::try_from_slice(&proofs[0].answers)
            .expect("answers");
    answers.chunks[0].data[0] ^= 1;
    assert_eq!(chain.submit(&provider, submission_with(&chain, &provider, &id, answers.to_bytes())), Outcome::Accepted);
    assert!(matches!(record(&chain, 1, &id), Some(ProofStatus::Failed(Fault::ChunkMismatch { challenge: 0, .. }))));
    assert_eq!(tally(&chain, &id), (1, 0, 1, 0, 1));
    assert_eq!(chain.replica.state().suspects.get(&(account(&provider), id)).map(|suspect| suspect.since), Some(1));

    // Epoch 2: the suspect is re-checked (one challenge more for it), and
    // garbage answers are undecodable.
    enter_epoch(&mut chain, 2);
    let (_, scheduled) =
        strand_contracts::proofs::schedule(chain.replica.state(), &account(&provider), 2).expect("beacon");
    let suspects = scheduled.iter().filter(|s| s.reason == strand_proof_of_storage::schedule::Reason::Suspect).count();
    assert_eq!(suspects, 1);
    assert_eq!(chain.submit(&provider, submission_with(&chain, &provider, &id, vec![1, 2, 3])), Outcome::Accepted);
    assert_eq!(record(&chain, 2, &id), Some(ProofStatus::Failed(Fault::Undecodable)));

    // Epoch 3: answers from another upload's fragments are not in the
    // contract; the third consecutive failure declares it lost at once.
    enter_epoch(&mut chain, 3);
    let (epoch, proofs) = honest_submission_from(&chain, &provider, |_| fragments(9));
    assert_eq!(chain.submit(&provider, Body::SubmitProofs { epoch, proofs }), Outcome::Accepted);
    assert_eq!(record(&chain, 3, &id), Some(ProofStatus::Failed(Fault::NotInContract)));
    assert_eq!(status(&chain, &id), ContractStatus::Lost { at_epoch: 3 });
    let state = chain.replica.state();
    assert_eq!(state.providers.get(&account(&provider)).expect("provider").committed_bytes, 0);
    assert!(state.suspects.is_empty());
    // It leaves the roster at the next boundary.
    enter_epoch(&mut chain, 4);
    assert!(chain.replica.state().roster.is_empty());
}

#[test]
fn a_pass_clears_the_strikes_and_the_suspicion() {
    let (mut chain, _, provider, ids) = with_contracts(&[1]);
    let id = ids[0];
    enter_epoch(&mut chain, 1);
    assert_eq!(chain.submit(&provider, submission_with(&chain, &provider, &id, vec![0])), Outcome::Accepted);
    assert_eq!(tally(&chain, &id).4, 1);
    enter_epoch(&mut chain, 2);
    assert_eq!(chain.submit(&provider, honest_submission(&chain, &provider)), Outcome::Accepted);
    assert_eq!(tally(&chain, &id), (2, 1, 1, 0, 0));
    assert!(chain.replica.state().suspects.is_empty());
}

#[test]
fn a_contract_left_out_of_a_submission_is_missed_and_struck() {
    let (mut chain, _, provider, ids) = with_contracts(&[1, 2]);
    enter_epoch(&mut chain, 1);
    let Body::SubmitProofs { epoch, proofs } = honest_submission(&chain, &provider) else { unreachable!() };
    assert_eq!(proofs.len(), 2, "both contracts are challenged (rotation)");
    let kept: Vec<ContractProof> = proofs.into_iter().filter(|proof| proof.contract == ids[0]).collect();
    assert_eq!(chain.submit(&provider, Body::SubmitProofs { epoch, proofs: kept }), Outcome::Accepted);
    assert_eq!(record(&chain, 1, &ids[0]), Some(ProofStatus::Passed));
    assert_eq!(record(&chain, 1, &ids[1]), Some(ProofStatus::Missed));
    assert_eq!(tally(&chain, &ids[1]), (0, 0, 0, 1, 1));
    let liveness = chain.replica.state().providers.get(&account(&provider)).expect("provider").liveness;
    assert_eq!(liveness.missed_in_row, 0, "the provider itself answered");
}

#[test]
fn submissions_must_answer_the_providers_own_schedule_once() {
    let (mut chain, _, provider, ids) = with_contracts(&[1]);
    let id = ids[0];
    let (stranger, other) = (identity(9), identity(10));
    assert_eq!(chain.submit(&other, registration("b")), Outcome::Accepted);
    enter_epoch(&mut chain, 1);
    let body = |epoch| Body::SubmitProofs { epoch, proofs: vec![ContractProof { contract: id, answers: vec![] }] };
    let twice = Body::SubmitProofs {
        epoch: 1,
        proofs: vec![ContractProof { contract: id, answers: vec![] }, ContractProof { contract: id, answers: vec![] }],
    };
    let honest = honest_submission(&chain, &provider);
    // All in one block of epoch 1.
    let transactions = vec![
        chain.transaction(&stranger, body(1)),
        chain.transaction(&other, body(1)),
        chain.transaction(&provider, body(0)),
        chain.transaction(&provider, body(u64::MAX)),
        chain.transaction(&provider, twice),
        chain.transaction(&provider, honest.clone()),
        chain.transaction(&provider, honest),
    ];
    let outcomes: Vec<Outcome> = chain.block(transactions).into_iter().map(|receipt| receipt.outcome).collect();
    assert_eq!(chain.replica.state().epoch(), 1);
    assert_eq!(outcomes[0], Outcome::Rejected(Rejection::UnknownProvider(account(&stranger))));
    assert_eq!(outcomes[1], Outcome::Rejected(Rejection::ProofsNotDue(id)), "not in the other's schedule");
    assert_eq!(outcomes[2], Outcome::Rejected(Rejection::WrongEpoch { current: 1, found: 0 }));
    assert_eq!(outcomes[3], Outcome::Rejected(Rejection::WrongEpoch { current: 1, found: u64::MAX }));
    assert!(matches!(&outcomes[4], Outcome::Rejected(Rejection::InvalidField(_))), "{:?}", outcomes[4]);
    assert_eq!(outcomes[5], Outcome::Accepted);
    assert_eq!(outcomes[6], Outcome::Rejected(Rejection::DuplicateSubmission(1)));
}

#[test]
fn contracts_join_and_leave_rosters_only_at_epoch_boundaries() {
    let (mut chain, owner, provider, ids) = with_contracts(&[1]);
    let id = ids[0];
    let roster_len =
        |chain: &Chain| chain.replica.state().providers.get(&account(&provider)).expect("p").roster.contracts;
    assert_eq!(roster_len(&chain), 0, "opened in epoch 0: owes proofs from epoch 1");
    enter_epoch(&mut chain, 1);
    assert_eq!(roster_len(&chain), 1);
    // Closed during epoch 1: still in this epoch's schedule, but its check
    // is void; it leaves at epoch 2.
    assert_eq!(chain.replica.state().contracts_by_status(), [1, 0, 0, 0], "active, lost, closed, expired");
    assert_eq!(chain.submit(&owner, Body::CloseContract { contract: id }), Outcome::Accepted);
    assert_eq!(chain.replica.state().contracts_by_status(), [0, 0, 1, 0]);
    assert_eq!(roster_len(&chain), 1);
    assert_eq!(chain.submit(&provider, honest_submission(&chain, &provider)), Outcome::Accepted);
    assert_eq!(record(&chain, 1, &id), None, "no check of a closed contract");
    enter_epoch(&mut chain, 2);
    assert_eq!(roster_len(&chain), 0);
    assert!(chain.replica.state().roster.is_empty());
}

#[test]
fn terms_end_after_their_last_epoch() {
    // Opened in epoch 0 with a 3-epoch term: proofs owed for epochs 1..=3.
    let (mut chain, _, provider, ids) = with_contracts(&[1]);
    let id = ids[0];
    for epoch in 1..=3 {
        enter_epoch(&mut chain, epoch);
        assert_eq!(chain.submit(&provider, honest_submission(&chain, &provider)), Outcome::Accepted);
        assert_eq!(record(&chain, epoch, &id), Some(ProofStatus::Passed));
    }
    enter_epoch(&mut chain, 4);
    assert_eq!(status(&chain, &id), ContractStatus::Expired { at_epoch: 4 });
    let state = chain.replica.state();
    assert!(state.roster.is_empty() && state.expiries.is_empty());
    assert_eq!(state.providers.get(&account(&provider)).expect("provider").committed_bytes, 0);
    let (_, scheduled) = strand_contracts::proofs::schedule(state, &account(&provider), 4).expect("beacon");
    assert!(scheduled.is_empty());
}

/// Terms committing to one 4 KiB fragment made from `seed`, for a long term.
fn one_fragment_terms(owner: &Identity, provider: &Identity, seed: u32, term_epochs: u32) -> (ContractTerms, Vec<u8>) {
    let fragment: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) as u8).collect();
    let id = *blake3::hash(&fragment).as_bytes();
    let mut upload = [0u8; 16];
    upload[..4].copy_from_slice(&seed.to_le_bytes());
    let mut terms = terms(owner, provider, 1);
    terms.upload = upload;
    terms.fragment_root = Digest(strand_proof_of_storage::merkle::root(&[id]));
    terms.fragment_count = 1;
    terms.term_epochs = term_epochs;
    terms.proof_policy.challenges_per_epoch = policy::DEFAULT_CHALLENGES;
    (terms, fragment)
}

/// A provider holding `count` one-fragment contracts, opened in one block.
fn provider_with(count: u32, term_epochs: u32) -> (Chain, Identity, std::collections::HashMap<Digest, Vec<Vec<u8>>>) {
    let mut chain = Chain::new();
    let (owner, provider) = (identity(1), identity(2));
    assert_eq!(chain.submit(&provider, registration("gene-bank-a")), Outcome::Accepted);
    let mut stored = std::collections::HashMap::new();
    let mut transactions = Vec::new();
    for seed in 0..count {
        let (terms, fragment) = one_fragment_terms(&owner, &provider, seed, term_epochs);
        stored.insert(terms.id(), vec![fragment]);
        let body = open_contract(&chain, terms, &provider);
        transactions.push(chain.transaction(&owner, body));
    }
    let receipts = chain.block(transactions);
    assert!(receipts.iter().all(|receipt| receipt.outcome == Outcome::Accepted));
    (chain, provider, stored)
}

#[test]
fn a_provider_with_a_thousand_contracts_answers_48_challenges_and_the_rotation_reaches_all() {
    let count = 1_000;
    let (mut chain, provider, stored) = provider_with(count, 1_000);
    let period = policy::rotation_period_epochs(count);
    assert_eq!(period, 50);
    let mut largest = 0usize;
    for epoch in 1..=u64::from(period) {
        enter_epoch(&mut chain, epoch);
        let (epoch, proofs) = honest_submission_from(&chain, &provider, |id| stored[id].clone());
        let challenges: usize = proofs.len();
        assert!(challenges <= CHALLENGES_PER_PROVIDER_MAX as usize);
        let transaction = chain.transaction(&provider, Body::SubmitProofs { epoch, proofs });
        largest = largest.max(transaction.len());
        assert!(transaction.len() as u64 <= policy::submission_bytes_max(), "{} bytes", transaction.len());
        assert_eq!(chain.block(vec![transaction]).remove(0).outcome, Outcome::Accepted);
    }
    let state = chain.replica.state();
    let (_, scheduled) = strand_contracts::proofs::schedule(state, &account(&provider), u64::from(period)).expect("b");
    assert_eq!(scheduled.len(), CHALLENGES_PER_PROVIDER_MAX as usize);
    for id in stored.keys() {
        let tally = state.contracts.get(id).expect("contract").proofs;
        assert!(tally.passed >= 1, "every contract was reached within {period} epochs");
        assert_eq!((tally.failed, tally.missed, tally.strikes), (0, 0, 0));
    }
    assert!(largest <= 128 * 1024, "largest submission {largest} bytes");
    eprintln!("largest submission of a provider with {count} contracts: {largest} bytes");
}

#[test]
fn history_is_pruned_past_its_horizon_so_state_per_contract_stays_bounded() {
    use strand_contracts::state::ACCESS_HISTORY_EPOCHS;
    let (mut chain, provider, stored) = provider_with(2, 10_000);
    let owner = identity(1);
    let epochs = ACCESS_HISTORY_EPOCHS + 5;
    for epoch in 1..=epochs {
        enter_epoch(&mut chain, epoch);
        let (epoch, proofs) = honest_submission_from(&chain, &provider, |id| stored[id].clone());
        let receipts = Body::AccessReceipts {
            epoch: epoch - 1,
            receipts: vec![strand_contracts::transaction::AccessReceipt {
                upload: [0; 16],
                authority: strand_contracts::transaction::ReadAuthority::Owner,
                requester: account(&owner),
                fragments: 1,
                bytes: 4096,
            }],
        };
        let transactions = vec![
            chain.transaction(&provider, Body::SubmitProofs { epoch, proofs }),
            chain.transaction(&provider, receipts),
        ];
        assert!(chain.block(transactions).iter().all(|receipt| receipt.outcome == Outcome::Accepted));
    }
    let state = chain.replica.state();
    assert!(state.proofs.is_empty(), "passes live in the tallies: {} records", state.proofs.len());
    assert!(state.proof_slots.len() <= 2, "{} slots", state.proof_slots.len());
    for (_, contract) in state.contracts.iter() {
        assert!(contract.proofs.passed >= 1 && contract.proofs.passed_in(epochs));
    }
    assert!(state.beacons.len() <= 2);
    assert!(state.access.len() as u64 <= ACCESS_HISTORY_EPOCHS + 1);
    let total = state
        .access_totals
        .get(&([0; 16], account(&owner), strand_contracts::transaction::ReadAuthority::Owner))
        .expect("older reads summed");
    let kept: u64 = state.access.iter().map(|(_, batch)| batch.receipts.iter().map(|r| r.bytes).sum::<u64>()).sum();
    assert_eq!(total.bytes + kept, epochs * 4096, "no read is forgotten, only summed");
    assert_eq!(total.first_epoch, 0);
}
