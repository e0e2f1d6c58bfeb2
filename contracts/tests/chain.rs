//! Blocks: followers refuse forged ones and keep their state; replicas that
//! apply the same blocks agree on every state root, across restarts.

mod support;

use proptest::prelude::*;
use strand_contracts::block::{BlockHeader, Finality, sign_block};
use strand_contracts::mempool::{AdmissionError, Mempool, MempoolLimits};
use strand_contracts::replica::BlockRejection;
use strand_contracts::state::LedgerState;
use strand_contracts::transaction::{Body, ContractProof};
use strand_contracts::{Block, Outcome, Rejection, Replica};
use support::*;

/// A chain with a few real transactions in its last block.
fn chain_with_activity() -> Chain {
    let mut chain = Chain::new();
    let (owner, provider) = (identity(1), identity(2));
    let register = chain.transaction(&provider, registration("a"));
    chain.block(vec![register]);
    let body = open_contract(&chain, terms(&owner, &provider, 1), &provider);
    let open = chain.transaction(&owner, body);
    let grant = chain.transaction(&owner, grant(1, &identity(3), 100));
    chain.block(vec![open, grant]);
    chain
}

/// A follower that has applied all but the last block of `chain`.
fn follower_one_behind(chain: &Chain) -> Replica {
    let mut follower = Replica::new(&chain.genesis);
    for block in &chain.blocks[..chain.blocks.len() - 1] {
        follower.apply(block).expect("honest block");
    }
    follower
}

fn resign(mut block: Block, signer: &strand_core::Identity) -> Block {
    block.finality = Finality::Signatures(vec![sign_block(&block.header.hash(), signer)]);
    block
}

fn assert_refused(follower: &mut Replica, block: &Block, check: impl Fn(&BlockRejection) -> bool) {
    let (height, root) = (follower.height(), follower.state().root());
    let error = follower.apply(block).expect_err("a forged block must be refused");
    assert!(check(&error), "unexpected reason: {error}");
    assert_eq!((follower.height(), follower.state().root()), (height, root), "state changed on a refused block");
    assert!(!error.to_string().is_empty());
}

#[test]
fn followers_refuse_forged_blocks_and_keep_their_state() {
    let chain = chain_with_activity();
    let honest = chain.blocks.last().expect("a block").clone();
    let mut follower = follower_one_behind(&chain);

    // Signed by a key that is not a validator.
    let stranger = resign(honest.clone(), &identity(99));
    assert_refused(&mut follower, &stranger, |e| matches!(e, BlockRejection::Finality(_)));
    // The right key, a damaged signature.
    let mut damaged = honest.clone();
    let Finality::Signatures(signatures) = &mut damaged.finality else { panic!("a sequencer's block") };
    signatures[0].1.0[3] ^= 1;
    assert_refused(&mut follower, &damaged, |e| matches!(e, BlockRejection::Finality(_)));
    // No signature at all.
    let mut unsigned = honest.clone();
    unsigned.finality = Finality::Signatures(Vec::new());
    assert_refused(&mut follower, &unsigned, |e| matches!(e, BlockRejection::Finality(_)));
    // A wrong parent, even validly signed by the sequencer.
    let mut orphan = honest.clone();
    orphan.header.parent = strand_contracts::Digest([1; 32]);
    let orphan = resign(orphan, &chain.sequencer);
    assert_refused(&mut follower, &orphan, |e| matches!(e, BlockRejection::WrongParent { .. }));
    // An altered transaction under the signed header.
    let mut altered = honest.clone();
    altered.transactions[1][40] ^= 1;
    assert_refused(&mut follower, &altered, |e| matches!(e, BlockRejection::TransactionsRoot));
    // A validly signed header that lies about the resulting state.
    let mut lying = honest.clone();
    lying.header.state_root = strand_contracts::Digest([2; 32]);
    let lying = resign(lying, &chain.sequencer);
    assert_refused(&mut follower, &lying, |e| matches!(e, BlockRejection::StateRoot { .. }));
    // ... or about the receipts.
    let mut lying = honest.clone();
    lying.header.receipts_root = strand_contracts::Digest([3; 32]);
    let lying = resign(lying, &chain.sequencer);
    assert_refused(&mut follower, &lying, |e| matches!(e, BlockRejection::ReceiptsRoot));
    // Transactions swapped in, with a matching root and a valid signature,
    // still give another state than the header claims.
    let mut swapped = honest.clone();
    swapped.transactions.reverse();
    swapped.header.transactions_root = strand_contracts::block::transactions_root(&swapped.transactions);
    let swapped = resign(swapped, &chain.sequencer);
    assert_refused(&mut follower, &swapped, |e| matches!(e, BlockRejection::StateRoot { .. }));
    // The wrong height.
    let old = chain.blocks[0].clone();
    assert_refused(&mut follower, &old, |e| matches!(e, BlockRejection::WrongHeight { .. }));

    // After all that, the honest block still applies.
    follower.apply(&honest).expect("honest block");
    assert_eq!(follower.state().root(), chain.replica.state().root());
}

#[derive(Clone, Debug)]
enum Op {
    Register(u8),
    Open { owner: u8, provider: u8, upload: u8 },
    Grant { owner: u8, upload: u8, grantee: u8 },
    Revoke { owner: u8, which: u8 },
    Proofs { provider: u8, which: u8 },
    HonestProofs(u8),
    Garbage(Vec<u8>),
    SkippedNonce(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let who = || 0u8..5;
    prop_oneof![
        who().prop_map(Op::Register),
        (who(), who(), 0u8..3).prop_map(|(owner, provider, upload)| Op::Open { owner, provider, upload }),
        (who(), 0u8..3, who()).prop_map(|(owner, upload, grantee)| Op::Grant { owner, upload, grantee }),
        (who(), any::<u8>()).prop_map(|(owner, which)| Op::Revoke { owner, which }),
        (who(), any::<u8>()).prop_map(|(provider, which)| Op::Proofs { provider, which }),
        who().prop_map(Op::HonestProofs),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Op::Garbage),
        who().prop_map(Op::SkippedNonce),
    ]
}

fn to_transaction(chain: &mut Chain, op: &Op) -> Vec<u8> {
    let person = |n: u8| identity(n + 1);
    match op {
        Op::Register(who) => chain.transaction(&person(*who), registration(&format!("org-{who}"))),
        Op::Open { owner, provider, upload } => {
            let body = open_contract(chain, terms(&person(*owner), &person(*provider), *upload), &person(*provider));
            chain.transaction(&person(*owner), body)
        }
        Op::Grant { owner, upload, grantee } => {
            chain.transaction(&person(*owner), grant(*upload, &person(*grantee), 1000))
        }
        Op::Revoke { owner, which } => {
            let ids: Vec<_> = chain.replica.state().credentials.iter().map(|(id, _)| *id).collect();
            let credential = ids.get(*which as usize % ids.len().max(1)).copied().unwrap_or_default();
            chain.transaction(&person(*owner), Body::RevokeCredential { credential })
        }
        Op::Proofs { provider, which } => {
            let ids: Vec<_> = chain.replica.state().contracts.iter().map(|(id, _)| *id).collect();
            let contract = ids.get(*which as usize % ids.len().max(1)).copied().unwrap_or_default();
            let epoch = chain.replica.state().params.epoch_of(chain.replica.height() + 1);
            let body = Body::SubmitProofs { epoch, proofs: vec![ContractProof { contract, answers: vec![*which] }] };
            chain.transaction(&person(*provider), body)
        }
        Op::HonestProofs(provider) => {
            let body = honest_submission(chain, &person(*provider));
            chain.transaction(&person(*provider), body)
        }
        Op::Garbage(bytes) => bytes.clone(),
        Op::SkippedNonce(who) => chain.transaction_with_nonce(&person(*who), 1000, registration("x")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Two replicas, one restarted from a snapshot midway, agree on every
    /// state root while applying random valid and invalid transactions.
    #[test]
    fn replicas_agree_on_every_state_root_across_a_restart(
        blocks in proptest::collection::vec(proptest::collection::vec(op(), 0..5), 1..24),
        restart_at in 0usize..24,
    ) {
        let mut chain = Chain::new();
        let mut follower = Replica::new(&chain.genesis);
        for (index, ops) in blocks.iter().enumerate() {
            let transactions: Vec<Vec<u8>> = ops.iter().map(|op| to_transaction(&mut chain, op)).collect();
            chain.block(transactions);
            if index == restart_at {
                let snapshot = follower.state().to_snapshot();
                let state = LedgerState::from_snapshot(&snapshot).expect("snapshot decodes");
                prop_assert_eq!(state.root(), follower.state().root());
                follower = Replica::resume(&chain.genesis, state, follower.head().clone());
            }
            let block = chain.blocks.last().expect("block");
            follower.apply(block).map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(follower.state().root(), chain.replica.state().root());
            prop_assert_eq!(follower.state().root(), block.header.state_root);
        }
    }

    /// Block decoding never panics on hostile bytes.
    #[test]
    fn block_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Block::from_bytes(&bytes);
        let _ = strand_contracts::Transaction::from_bytes(&bytes);
    }
}

#[test]
fn the_mempool_is_bounded_deduplicated_and_nonce_aware() {
    let mut chain = Chain::new();
    let limits =
        MempoolLimits { transactions_max: 5, bytes_max: 1 << 20, per_sender_max: 3, ..MempoolLimits::default() };
    let mut mempool = Mempool::new(limits);
    let state = chain.replica.state().clone();
    let (alice, bob) = (identity(1), identity(2));
    let a1 = chain.transaction(&alice, registration("a"));
    let a2 = chain.transaction(&alice, registration("a2"));
    let a3 = chain.transaction(&alice, registration("a3"));
    let hash = mempool.admit(&state, a2.clone()).expect("admitted ahead of nonce 1");
    assert_eq!(mempool.admit(&state, a2.clone()), Ok(hash), "resubmission is idempotent");
    assert_eq!(mempool.len(), 1);
    mempool.admit(&state, a1.clone()).expect("admitted");
    mempool.admit(&state, a3).expect("admitted");
    let too_far = chain.transaction_with_nonce(&alice, 4, registration("x"));
    assert!(matches!(mempool.admit(&state, too_far), Err(AdmissionError::Invalid(Rejection::NonceSkipped { .. }))));
    let other_a2 = chain.transaction_with_nonce(&alice, 2, registration("other"));
    assert_eq!(mempool.admit(&state, other_a2), Err(AdmissionError::NonceTaken(2)));
    assert!(matches!(mempool.admit(&state, vec![9, 9]), Err(AdmissionError::Invalid(Rejection::Encoding(_)))));
    let b1 = chain.transaction(&bob, registration("b"));
    let b2 = chain.transaction(&bob, registration("b2"));
    mempool.admit(&state, b1.clone()).expect("admitted");
    mempool.admit(&state, b2).expect("admitted");
    let b3 = chain.transaction(&bob, registration("b3"));
    assert!(matches!(mempool.admit(&state, b3), Err(AdmissionError::Full { .. })));

    // Fair, in nonce order: one per sender per round.
    let selected = mempool.select(&state, 3, 1 << 20);
    assert_eq!(selected, vec![a1.clone(), b1.clone(), a2.clone()]);
    let receipts = chain.block(selected);
    assert!(receipts.iter().all(|receipt| receipt.outcome == Outcome::Accepted));
    mempool.prune(chain.replica.state());
    assert_eq!(mempool.len(), 2, "the three included are gone");
    assert!(matches!(
        mempool.admit(chain.replica.state(), a1),
        Err(AdmissionError::Invalid(Rejection::NonceReused { .. }))
    ));
}

/// A burst of other traffic neither keeps a provider's proofs out of the
/// mempool nor out of the next block: they have a lane of their own.
#[test]
fn proofs_have_a_lane_no_burst_of_uploads_can_fill() {
    let mut chain = Chain::new();
    let limits = MempoolLimits {
        transactions_max: 4,
        bytes_max: 1 << 20,
        per_sender_max: 8,
        proofs_max: 2,
        proof_bytes_max: 1 << 20,
    };
    let mut mempool = Mempool::new(limits);
    let state = chain.replica.state().clone();
    let busy = identity(1);
    for n in 0..4 {
        mempool.admit(&state, chain.transaction(&busy, registration(&format!("r{n}")))).expect("admitted");
    }
    let more = chain.transaction(&busy, registration("r4"));
    assert!(matches!(mempool.admit(&state, more), Err(AdmissionError::Full { .. })), "ordinary traffic is full");
    let proofs = |epoch| Body::SubmitProofs { epoch, proofs: Vec::new() };
    let (p, q, r) = (identity(2), identity(3), identity(4));
    let from_p = chain.transaction(&p, proofs(0));
    let from_q = chain.transaction(&q, proofs(0));
    mempool.admit(&state, from_p.clone()).expect("a proof is admitted into a full mempool");
    mempool.admit(&state, from_q.clone()).expect("and another");
    let from_r = chain.transaction(&r, proofs(0));
    assert!(matches!(mempool.admit(&state, from_r), Err(AdmissionError::Full { .. })), "the lane has its own bound");
    // A block with room for two takes the proofs, though the busy sender
    // came first.
    assert_eq!(mempool.select(&state, 2, 1 << 20), vec![from_p, from_q]);
    assert_eq!(mempool.select(&state, 3, 1 << 20).len(), 3, "then the rest, as before");
}

/// Fixed vectors: regenerating them is an explicit approval of new formats.
#[test]
fn formats_match_fixed_vectors() {
    let chain = chain_with_activity();
    let genesis_block = chain.genesis.block().0;
    let header: &BlockHeader = &genesis_block.header;
    assert_eq!(chain.genesis.chain().to_string(), "08e1aa4cfb34117d325fb8d673a467912c400c016f2027b119bea99b593d9d44");
    assert_eq!(header.hash().to_string(), "808abd5fa7f994212371f0ef25f19fb5abb37b7c3caaf3d72028ca31774b310e");
    let transaction = strand_contracts::Transaction::sign(chain.chain_id(), &identity(1), 1, registration("a"));
    assert_eq!(
        hex::encode(transaction.to_bytes()),
        "08e1aa4cfb34117d325fb8d673a467912c400c016f2027b119bea99b593d9d448a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c010000000000000000010000000e0000003132372e302e302e313a373030300000000000010000010000006106000000736974652d3102000000455551f451a16f7b44d97ccfd095ec3714ac850bfb7e22ac3638c39aff2b1c4459b44fbf542cea3e8786e5723efcfabf71deb2c5dcd03202cdb4a8b1c073268ad30f"
    );
    assert_eq!(
        terms(&identity(1), &identity(2), 1).id().to_string(),
        "fe5909a96c22f694095c3c3b358750446480b5969327cce575f39669ec442fcb"
    );
}

/// A consortium's beacon: due from an epoch's first block, carried once by
/// a block, checked by every replica against the genesis's key; a forged
/// one, a second one, or one on a sequencer's chain makes the block
/// invalid; an epoch that closes without one owes no proofs.
#[test]
fn a_consortium_beacon_is_the_validators_threshold_signature_and_nothing_else() {
    use commonware_codec::{DecodeExt as _, Encode as _};
    use commonware_cryptography::bls12381::primitives::group::Share;
    use commonware_cryptography::bls12381::primitives::ops::threshold;
    use strand_contracts::beacon::{BEACON_NAMESPACE, BeaconError, BeaconSignature, Bls, beacon_of, deal, message};
    let validators: Vec<strand_core::Identity> = (1..=4).map(|seed| identity(100 + seed)).collect();
    let (key, shares) = deal(4, [3; 32]);
    let genesis = strand_contracts::Genesis {
        name: "consortium".into(),
        validators: consortium_set(&validators, key),
        epoch_blocks: 4,
        timestamp_ms: 1,
    };
    let chain = genesis.chain();
    let sharing = genesis.validators.beacon_key().expect("key").expect("consortium");
    let sign = |which: &[usize], epoch: u64, closing: &strand_contracts::Digest| {
        let partials: Vec<_> = which
            .iter()
            .map(|&i| {
                let share = Share::decode(shares[i].clone()).expect("share");
                threshold::sign_message::<Bls>(&share, BEACON_NAMESPACE, &message(&chain, epoch, closing))
            })
            .collect();
        let point = threshold::recover::<Bls, _>(&sharing, partials.iter(), &commonware_parallel::Sequential)
            .expect("recovers");
        BeaconSignature(point.encode().to_vec().try_into().expect("48 bytes"))
    };
    let proposer = account(&validators[0]);
    let mut replica = Replica::new(&genesis);
    for timestamp in 2..=4 {
        assert_eq!(replica.beacon_due(), None, "epoch 0 has the genesis's");
        replica.build(timestamp, &[], proposer, None);
    }
    // Height 3 closes epoch 0: the next block opens epoch 1, whose beacon
    // signs height 3's hash.
    let closing = replica.head().hash();
    assert_eq!(replica.beacon_due(), Some((1, closing)));
    let good = sign(&[0, 2, 3], 1, &closing);
    assert_eq!(sign(&[1, 2, 3], 1, &closing), good, "any quorum, one signature");
    let before = replica.clone();

    // A block that carries a forged beacon (signed for another closing
    // block, or by too few shares) is refused by a follower.
    let forged = sign(&[0, 1, 2], 1, &strand_contracts::Digest([9; 32]));
    let mut proposer_replica = before.clone();
    let (opening, _) = proposer_replica.build(5, &[], proposer, None);
    let mut follower = before.clone();
    let mut bad = opening.clone();
    bad.beacon = Some(forged);
    assert_eq!(
        follower.apply_unfinalised(&bad, &[]),
        Err(BlockRejection::Beacon(BeaconError::BadSignature { epoch: 1 }))
    );
    // `build` drops a beacon that does not check out instead of making an
    // invalid block.
    let mut builder = before.clone();
    assert_eq!(builder.build(5, &[], proposer, Some(forged)).0.beacon, None);

    // The opening block without it: still due; the epoch's first proofs
    // wait for it.
    follower.apply_unfinalised(&opening, &[]).expect("a block without the beacon is valid");
    assert_eq!(follower.beacon_due(), Some((1, closing)));
    assert!(follower.state().beacons.get(&1).is_none());
    // The next block carries it: applied, no longer due.
    let mut carrier = follower.clone();
    let (header, _) = carrier.build(6, &[], proposer, Some(good));
    assert_eq!(header.beacon, Some(good));
    follower.apply_unfinalised(&header, &[]).expect("the validators' signature is accepted");
    assert_eq!(follower.state().beacons.get(&1), Some(&beacon_of(&good)));
    assert_eq!(follower.beacon_due(), None);
    assert_eq!(follower.state().root(), carrier.state().root());
    // A second beacon in the same epoch is not due.
    let mut again = follower.clone();
    let (mut second, _) = again.build(7, &[], proposer, None);
    second.beacon = Some(good);
    assert_eq!(follower.clone().apply_unfinalised(&second, &[]), Err(BlockRejection::Beacon(BeaconError::NotDue)));

    // On a sequencer's chain a header beacon is refused; its beacon is
    // the closing block's hash, as before.
    let sequencer = strand_contracts::Genesis {
        validators: strand_contracts::ValidatorSet::sequencer(proposer),
        ..genesis.clone()
    };
    let mut replica = Replica::new(&sequencer);
    for timestamp in 2..=4 {
        replica.build(timestamp, &[], proposer, None);
    }
    assert_eq!(replica.beacon_due(), None);
    let closing = replica.head().hash();
    let (mut header, _) = replica.clone().build(5, &[], proposer, None);
    header.beacon = Some(good);
    assert_eq!(replica.clone().apply_unfinalised(&header, &[]), Err(BlockRejection::Beacon(BeaconError::NoKey)));
    replica.build(5, &[], proposer, None);
    assert_eq!(replica.state().beacons.get(&1), Some(&closing));
}

/// A consortium of four: the certificate a follower accepts is the quorum's
/// signatures over the engine's finalize message, signers by sorted index.
#[test]
fn consortium_certificates_are_checked_without_the_engine() {
    use strand_contracts::block::{Certificate, FinalityError, finalize_message};
    let validators: Vec<strand_core::Identity> = (1..=4).map(|seed| identity(100 + seed)).collect();
    let set = consortium_set(&validators, strand_contracts::beacon::deal(4, [1; 32]).0);
    assert_eq!(set.quorum, 3, "3 of 4");
    assert_eq!(
        strand_contracts::ValidatorSet::consortium(vec![set.validators[0].clone(); 7], Vec::new()).quorum,
        5,
        "5 of 7"
    );
    let genesis = strand_contracts::Genesis {
        name: "consortium".into(),
        validators: set.clone(),
        epoch_blocks: 4,
        timestamp_ms: 1,
    };
    let chain = genesis.chain();
    let mut proposer = Replica::new(&genesis);
    let (header, _) = proposer.build(2, &[], account(&validators[2]), None);
    let hash = header.hash();
    let sorted = set.sorted();
    let by_index = |index: u32| {
        // An index outside the set signs with the first key.
        let signer = sorted.get(index as usize).unwrap_or(&sorted[0]);
        validators.iter().find(|validator| account(validator) == *signer).expect("a validator")
    };
    let certify = |signers: &[u32], view: u64| {
        let message = finalize_message(&chain, 0, view, 0, &hash);
        Finality::Certificate(Certificate {
            epoch: 0,
            view,
            parent_view: 0,
            signers: signers.to_vec(),
            signatures: signers
                .iter()
                .map(|&index| strand_contracts::Signature(by_index(index).sign(&message)))
                .collect(),
        })
    };
    let block = |finality| Block { header: header.clone(), transactions: Vec::new(), finality };
    let mut follower = Replica::new(&genesis);

    let check = |follower: &mut Replica, finality, expected: FinalityError| {
        assert_refused(follower, &block(finality), |error| *error == BlockRejection::Finality(expected.clone()));
    };
    check(&mut follower, certify(&[0, 1], 3), FinalityError::NoQuorum { found: 2, quorum: 3 });
    check(&mut follower, certify(&[1, 0, 2], 3), FinalityError::Malformed("signers not strictly ascending"));
    check(&mut follower, certify(&[0, 0, 1], 3), FinalityError::Malformed("signers not strictly ascending"));
    check(&mut follower, certify(&[0, 1, 4], 3), FinalityError::Malformed("a signer outside the set"));
    // Signatures for another view, presented as this one's.
    let Finality::Certificate(mut moved) = certify(&[0, 1, 2], 3) else { unreachable!() };
    moved.view = 4;
    check(&mut follower, Finality::Certificate(moved), FinalityError::BadSignature(sorted[0]));
    // A sequencer's kind of evidence on a consortium chain.
    let signed = Finality::Signatures(vec![sign_block(&hash, &validators[0])]);
    check(&mut follower, signed, FinalityError::WrongKind(strand_contracts::block::Ordering::Simplex));

    follower.apply(&block(certify(&[0, 2, 3], 3))).expect("a quorum's certificate finalises the block");
    assert_eq!(follower.state().root(), proposer.state().root());
}
