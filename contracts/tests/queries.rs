//! What nodes and clients ask their replica.

mod support;

use strand_contracts::apply::credential_id;
use strand_contracts::query::{self, DomainFilter, FragmentMembership, Refusal};
use strand_contracts::transaction::{Body, CredentialGrant, Scope, transaction_hash};
use strand_contracts::{Digest, Outcome};
use strand_proof_of_storage::merkle;
use support::*;

fn fragment_ids(seed: u8, count: usize) -> Vec<[u8; 32]> {
    (0..count).map(|index| *blake3::hash(&[seed, index as u8]).as_bytes()).collect()
}

#[test]
fn contracts_by_upload_and_by_fragment_membership() {
    let mut chain = Chain::new();
    let owner = identity(1);
    let (first, second) = (identity(2), identity(3));
    assert_eq!(chain.submit(&first, registration("a")), Outcome::Accepted);
    assert_eq!(chain.submit(&second, registration("b")), Outcome::Accepted);
    let ids = fragment_ids(1, 10);
    let mut first_terms = terms(&owner, &first, 1);
    first_terms.fragment_root = Digest(merkle::root(&ids));
    let mut second_terms = terms(&owner, &second, 1);
    second_terms.fragment_root = Digest(merkle::root(&fragment_ids(2, 10)));
    let (first_id, second_id) = (first_terms.id(), second_terms.id());
    let body = open_contract(&chain, first_terms, &first);
    assert_eq!(chain.submit(&owner, body), Outcome::Accepted);
    let body = open_contract(&chain, second_terms, &second);
    assert_eq!(chain.submit(&owner, body), Outcome::Accepted);

    let state = chain.replica.state();
    let of_upload: Vec<Digest> = query::contracts_of_upload(state, &[1; 16]).into_iter().map(|(id, _)| id).collect();
    assert_eq!(of_upload, vec![first_id, second_id]);
    assert!(query::contracts_of_upload(state, &[9; 16]).is_empty());

    let membership = FragmentMembership { index: 4, fragment: ids[4], proof: merkle::prove(&ids, &[4]) };
    assert_eq!(query::contract_holding(state, &account(&first), &membership), Some(first_id));
    assert_eq!(query::contract_holding(state, &account(&second), &membership), None, "not the second's fragment");
    let wrong_index = FragmentMembership { index: 5, ..membership };
    assert_eq!(query::contract_holding(state, &account(&first), &wrong_index), None);
}

#[test]
fn providers_by_failure_domain_with_most_free_capacity_first() {
    let mut chain = Chain::new();
    let owner = identity(1);
    for (seed, organisation) in [(2, "bank-a"), (3, "bank-a"), (4, "cloud-b")] {
        assert_eq!(chain.submit(&identity(seed), registration(organisation)), Outcome::Accepted);
    }
    // A contract takes 10 MiB of identity(3)'s capacity.
    let body = open_contract(&chain, terms(&owner, &identity(3), 1), &identity(3));
    assert_eq!(chain.submit(&owner, body), Outcome::Accepted);
    let state = chain.replica.state();
    let bank_a = DomainFilter { organisation: Some("bank-a".into()), ..Default::default() };
    let found: Vec<_> = query::providers_by_domain(state, &bank_a, 0).into_iter().map(|(id, _)| id).collect();
    assert_eq!(found, vec![account(&identity(2)), account(&identity(3))], "most free first");
    let everyone = query::providers_by_domain(state, &DomainFilter::default(), 0);
    assert_eq!(everyone.len(), 3);
    let roomy = query::providers_by_domain(state, &DomainFilter::default(), (1 << 40) - 1);
    assert_eq!(roomy.len(), 2, "the provider with a contract has less than 1 TiB free");
    let elsewhere = DomainFilter { jurisdiction: Some("US".into()), ..Default::default() };
    assert!(query::providers_by_domain(state, &elsewhere, 0).is_empty());
}

#[test]
fn credential_decisions_give_every_reason() {
    let mut chain = Chain::new();
    let (owner, provider, grantee, stranger) = (identity(1), identity(2), identity(5), identity(6));
    assert_eq!(chain.submit(&provider, registration("a")), Outcome::Accepted);
    for upload in [1, 2] {
        let body = open_contract(&chain, terms(&owner, &provider, upload), &provider);
        assert_eq!(chain.submit(&owner, body), Outcome::Accepted);
    }
    let grant_whole = chain.transaction(&owner, grant(1, &grantee, 20));
    let whole = credential_id(&transaction_hash(&grant_whole));
    let in_scope = fragment_ids(7, 6);
    let ranges = Body::GrantCredential(CredentialGrant {
        upload: [1; 16],
        grantee: account(&grantee),
        scope: Scope::Ranges {
            ranges: vec![(0, 4096)],
            fragments_root: Digest(merkle::root(&in_scope)),
            fragment_count: 6,
        },
        expires_at_height: 100,
        purpose: "region chr17".into(),
        sealed_key_material: vec![],
    });
    let grant_ranges = chain.transaction(&owner, ranges);
    let ranged = credential_id(&transaction_hash(&grant_ranges));
    assert!(chain.block(vec![grant_whole, grant_ranges]).iter().all(|receipt| receipt.outcome == Outcome::Accepted));

    let state = chain.replica.state().clone();
    let height = chain.replica.height();
    let decide = |credential: &Digest,
                  who: &strand_core::Identity,
                  upload: u8,
                  membership: Option<&FragmentMembership>,
                  at: u64| {
        query::credential_decision(&state, credential, &account(who), &[upload; 16], membership, at).map(|_| ())
    };
    assert_eq!(decide(&whole, &grantee, 1, None, height), Ok(()));
    assert_eq!(decide(&whole, &stranger, 1, None, height), Err(Refusal::NotGrantee));
    assert_eq!(decide(&whole, &grantee, 2, None, height), Err(Refusal::WrongUpload));
    assert_eq!(decide(&whole, &grantee, 1, None, 21), Err(Refusal::Expired(20)));
    let unknown = Digest([1; 32]);
    assert_eq!(decide(&unknown, &grantee, 1, None, height), Err(Refusal::NoCredential(unknown)));
    let inside = FragmentMembership { index: 2, fragment: in_scope[2], proof: merkle::prove(&in_scope, &[2]) };
    assert_eq!(decide(&ranged, &grantee, 1, Some(&inside), height), Ok(()));
    let outside_id = *blake3::hash(b"another fragment").as_bytes();
    let outside = FragmentMembership { index: 2, fragment: outside_id, proof: merkle::prove(&in_scope, &[2]) };
    assert_eq!(decide(&ranged, &grantee, 1, Some(&outside), height), Err(Refusal::OutOfScope));
    assert_eq!(decide(&ranged, &grantee, 1, None, height), Err(Refusal::OutOfScope));

    // Revocation refuses from the block that includes it, not before.
    assert_eq!(chain.submit(&owner, Body::RevokeCredential { credential: whole }), Outcome::Accepted);
    let revoked_at = chain.replica.height();
    let state = chain.replica.state();
    let at = |height| query::credential_decision(state, &whole, &account(&grantee), &[1; 16], None, height).map(|_| ());
    assert_eq!(at(revoked_at - 1), Ok(()));
    assert_eq!(at(revoked_at), Err(Refusal::Revoked(revoked_at)));
}

#[test]
fn the_schedule_follows_the_beacon_and_the_roster() {
    let mut chain = Chain::new();
    let (owner, provider) = (identity(1), identity(2));
    assert_eq!(chain.submit(&provider, registration("a")), Outcome::Accepted);
    let terms = terms(&owner, &provider, 1);
    let id = terms.id();
    let body = open_contract(&chain, terms, &provider);
    assert_eq!(chain.submit(&owner, body), Outcome::Accepted);
    let provider_account = account(&provider);
    let state = chain.replica.state();
    assert!(strand_contracts::proofs::schedule(state, &provider_account, 1).is_none(), "no beacon yet for epoch 1");
    assert!(
        strand_contracts::proofs::schedule(state, &provider_account, 0).is_none(),
        "epoch 0 has no beacon: nothing is owed before epoch 1"
    );
    chain.advance_to_epoch(1);
    chain.block(Vec::new());
    let (beacon, scheduled) =
        strand_contracts::proofs::schedule(chain.replica.state(), &provider_account, 1).expect("beacon");
    assert_eq!(scheduled.len(), 4, "the contract's four challenges");
    assert!(scheduled.iter().all(|challenge| challenge.contract == id.0));
    let closing_block = &chain.blocks[chain.blocks.len() - 2];
    assert_eq!(beacon, closing_block.header.hash(), "the beacon is the hash of the block that closed epoch 0");
}
