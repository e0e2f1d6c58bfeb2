//! Every rejection reason of the state machine, and what accepted
//! transactions record.

mod support;

use strand_contracts::apply::credential_id;
use strand_contracts::encoding::{EncodingError, TRANSACTION_BYTES_MAX};
use strand_contracts::transaction::{Body, transaction_hash};
use strand_contracts::{Outcome, Rejection, Signature, Transaction};
use support::*;

/// A chain with a registered provider and one open contract for upload 1.
fn with_contract() -> (Chain, strand_core::Identity, strand_core::Identity, strand_contracts::Digest) {
    let mut chain = Chain::new();
    let (owner, provider) = (identity(1), identity(2));
    assert_eq!(chain.submit(&provider, registration("gene-bank-a")), Outcome::Accepted);
    let terms = terms(&owner, &provider, 1);
    let id = terms.id();
    let body = open_contract(&chain, terms, &provider);
    assert_eq!(chain.submit(&owner, body), Outcome::Accepted);
    (chain, owner, provider, id)
}

#[test]
fn bad_signature_is_rejected_and_does_not_use_the_nonce() {
    let mut chain = Chain::new();
    let provider = identity(2);
    let mut transaction = Transaction::sign(chain.chain_id(), &provider, 1, registration("a"));
    transaction.signature.0[0] ^= 1;
    let receipts = chain.block(vec![transaction.to_bytes()]);
    assert_eq!(receipts[0].outcome, Outcome::Rejected(Rejection::BadSignature));
    // Nonce 1 is still free.
    assert_eq!(chain.submit(&provider, registration("a")), Outcome::Accepted);
}

#[test]
fn reused_and_skipped_nonces_are_rejected() {
    let mut chain = Chain::new();
    let provider = identity(2);
    assert_eq!(chain.submit(&provider, registration("a")), Outcome::Accepted);
    let replay = chain.transaction_with_nonce(&provider, 1, registration("b"));
    assert_eq!(
        chain.block(vec![replay])[0].outcome,
        Outcome::Rejected(Rejection::NonceReused { expected: 2, found: 1 })
    );
    let skip = chain.transaction_with_nonce(&provider, 5, registration("b"));
    assert_eq!(
        chain.block(vec![skip])[0].outcome,
        Outcome::Rejected(Rejection::NonceSkipped { expected: 2, found: 5 })
    );
    // The exact bytes of an accepted transaction, replayed.
    let first = chain.blocks[0].transactions[0].clone();
    assert!(matches!(rejected(chain.block(vec![first]).remove(0).outcome), Rejection::NonceReused { .. }));
}

#[test]
fn a_transaction_for_another_chain_is_rejected() {
    let mut chain = Chain::new();
    let foreign = Transaction::sign(strand_contracts::Digest([9; 32]), &identity(2), 1, registration("a"));
    assert!(matches!(rejected(chain.block(vec![foreign.to_bytes()]).remove(0).outcome), Rejection::WrongChain { .. }));
}

#[test]
fn malformed_and_oversized_encodings_are_rejected() {
    let mut chain = Chain::new();
    let receipts = chain.block(vec![vec![1, 2, 3], vec![0; TRANSACTION_BYTES_MAX + 1], Vec::new()]);
    assert!(matches!(&receipts[0].outcome, Outcome::Rejected(Rejection::Encoding(EncodingError::Malformed(_)))));
    assert!(matches!(&receipts[1].outcome, Outcome::Rejected(Rejection::Encoding(EncodingError::Oversized { .. }))));
    assert!(matches!(&receipts[2].outcome, Outcome::Rejected(Rejection::Encoding(EncodingError::Malformed(_)))));
    // A valid transaction with a byte appended is malformed (trailing bytes).
    let mut trailing = chain.transaction(&identity(2), registration("a"));
    trailing.push(0);
    assert!(matches!(rejected(chain.block(vec![trailing]).remove(0).outcome), Rejection::Encoding(_)));
}

#[test]
fn a_contract_with_an_unregistered_provider_is_rejected() {
    let mut chain = Chain::new();
    let (owner, provider) = (identity(1), identity(2));
    let body = open_contract(&chain, terms(&owner, &provider, 1), &provider);
    assert_eq!(rejected(chain.submit(&owner, body)), Rejection::UnknownProvider(account(&provider)));
}

#[test]
fn a_contract_signed_by_one_party_only_is_rejected() {
    let mut chain = Chain::new();
    let (owner, provider) = (identity(1), identity(2));
    assert_eq!(chain.submit(&provider, registration("a")), Outcome::Accepted);
    // The owner signs in the provider's place.
    let body = open_contract(&chain, terms(&owner, &provider, 1), &owner);
    assert_eq!(rejected(chain.submit(&owner, body)), Rejection::ProviderSignatureInvalid(account(&provider)));
    // A countersignature on other terms does not carry over.
    let signed = terms(&owner, &provider, 1);
    let mut changed = signed.clone();
    changed.fragment_count += 1;
    let signature = Signature(provider.sign(&signed.signing_message(&chain.chain_id())));
    let body = Body::OpenContract { terms: changed, provider_signature: signature };
    assert!(matches!(rejected(chain.submit(&owner, body)), Rejection::ProviderSignatureInvalid(_)));
    // Opened by someone who is not the owner named in the terms.
    let body = open_contract(&chain, terms(&owner, &provider, 1), &provider);
    assert_eq!(rejected(chain.submit(&identity(3), body)), Rejection::OwnerMismatch);
}

#[test]
fn a_contract_with_no_term_or_no_capacity_is_rejected() {
    let mut chain = Chain::new();
    let (owner, provider) = (identity(1), identity(2));
    assert_eq!(chain.submit(&provider, registration("a")), Outcome::Accepted);
    let mut no_term = terms(&owner, &provider, 1);
    no_term.term_epochs = 0;
    let body = open_contract(&chain, no_term, &provider);
    assert!(matches!(rejected(chain.submit(&owner, body)), Rejection::InvalidField(_)));
    // 64 TiB, within the ledger's bounds on terms, beyond the provider's 1 TiB.
    let mut huge = terms(&owner, &provider, 1);
    huge.fragment_count = strand_proof_of_storage::policy::FRAGMENTS_PER_CONTRACT_MAX;
    huge.fragment_size = 64 << 20;
    let body = open_contract(&chain, huge, &provider);
    assert!(matches!(rejected(chain.submit(&owner, body)), Rejection::InsufficientCapacity { .. }));
    // Beyond the ledger's bounds on terms, whatever the capacity.
    for (count, size) in [(u32::MAX, 1024), (1, u32::MAX), (0, 1024), (1, 0)] {
        let mut outside = terms(&owner, &provider, 1);
        (outside.fragment_count, outside.fragment_size) = (count, size);
        let body = open_contract(&chain, outside, &provider);
        assert!(matches!(rejected(chain.submit(&owner, body)), Rejection::InvalidField(_)), "{count} × {size}");
    }
    for (challenges, strikes) in [(0, 3), (49, 3), (20, 0), (20, 101)] {
        let mut outside = terms(&owner, &provider, 1);
        outside.proof_policy =
            strand_contracts::transaction::ProofPolicy { challenges_per_epoch: challenges, strikes_max: strikes };
        let body = open_contract(&chain, outside, &provider);
        assert!(matches!(rejected(chain.submit(&owner, body)), Rejection::InvalidField(_)), "{challenges}, {strikes}");
    }
}

#[test]
fn grant_and_revoke_by_a_non_owner_are_rejected() {
    let (mut chain, owner, _, _) = with_contract();
    let (grantee, stranger) = (identity(5), identity(6));
    assert_eq!(
        rejected(chain.submit(&stranger, grant(1, &grantee, 100))),
        Rejection::NotUploadOwner { owner: account(&owner) }
    );
    let transaction = chain.transaction(&owner, grant(1, &grantee, 100));
    let credential = credential_id(&transaction_hash(&transaction));
    assert_eq!(chain.block(vec![transaction])[0].outcome, Outcome::Accepted);
    let revoke = Body::RevokeCredential { credential };
    assert_eq!(rejected(chain.submit(&stranger, revoke.clone())), Rejection::NotUploadOwner { owner: account(&owner) });
    assert_eq!(rejected(chain.submit(&grantee, revoke.clone())), Rejection::NotUploadOwner { owner: account(&owner) });
    assert_eq!(chain.submit(&owner, revoke.clone()), Outcome::Accepted);
    let revoked_at = chain.replica.height();
    assert_eq!(chain.replica.state().credentials.get(&credential).and_then(|c| c.revoked_at_height), Some(revoked_at));
    assert_eq!(rejected(chain.submit(&owner, revoke)), Rejection::AlreadyRevoked(credential));
}

#[test]
fn revoking_an_unknown_credential_and_granting_on_an_unknown_upload_are_rejected() {
    let (mut chain, owner, _, _) = with_contract();
    let unknown = strand_contracts::Digest([42; 32]);
    assert_eq!(
        rejected(chain.submit(&owner, Body::RevokeCredential { credential: unknown })),
        Rejection::UnknownCredential(unknown)
    );
    assert!(matches!(rejected(chain.submit(&owner, grant(9, &identity(5), 100))), Rejection::UnknownUpload(_)));
    let height = chain.replica.height();
    assert!(matches!(rejected(chain.submit(&owner, grant(1, &identity(5), height))), Rejection::ExpiryInPast { .. }));
}

#[test]
fn a_rejected_body_still_uses_the_nonce_so_it_cannot_be_replayed_later() {
    let (mut chain, owner, _, _) = with_contract();
    let unknown = strand_contracts::Digest([42; 32]);
    let early = chain.transaction(&owner, Body::RevokeCredential { credential: unknown });
    assert!(matches!(rejected(chain.block(vec![early.clone()]).remove(0).outcome), Rejection::UnknownCredential(_)));
    assert!(matches!(rejected(chain.block(vec![early]).remove(0).outcome), Rejection::NonceReused { .. }));
}

#[test]
fn repair_reports_need_an_order() {
    let (mut chain, _, provider, id) = with_contract();
    let order = strand_contracts::Digest([3; 32]);
    let body = Body::RecordRepair { order, contract: id };
    assert_eq!(rejected(chain.submit(&provider, body)), Rejection::UnknownRepairOrder(order));
}

#[test]
fn access_receipts_take_one_slot_per_provider_and_epoch() {
    let (mut chain, owner, provider, _) = with_contract();
    let receipts = |epoch| Body::AccessReceipts {
        epoch,
        receipts: vec![strand_contracts::transaction::AccessReceipt {
            upload: [1; 16],
            authority: strand_contracts::transaction::ReadAuthority::Owner,
            requester: account(&owner),
            fragments: 6,
            bytes: 6 << 20,
        }],
    };
    assert_eq!(chain.submit(&provider, receipts(0)), Outcome::Accepted);
    assert_eq!(rejected(chain.submit(&provider, receipts(0))), Rejection::DuplicateSubmission(0));
    assert!(matches!(rejected(chain.submit(&provider, receipts(7))), Rejection::WrongEpoch { .. }));
    // Decoded numbers are checked, not trusted: the last epoch there is.
    assert!(matches!(rejected(chain.submit(&provider, receipts(u64::MAX))), Rejection::WrongEpoch { .. }));
    let batch = chain.replica.state().access.get(&(0, account(&provider))).expect("recorded").clone();
    assert_eq!(batch.receipts[0].bytes, 6 << 20);
}
