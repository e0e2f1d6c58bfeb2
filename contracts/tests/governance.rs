//! Changing a consortium's validators: a proposal by a current validator,
//! approvals by more than two thirds of them, effective at the stated
//! epoch's first block; followers check each block against the set of its
//! epoch, taken from the state before it.

mod support;

use strand_contracts::beacon::{BEACON_NAMESPACE, BeaconSignature, Bls, deal, message};
use strand_contracts::block::{Certificate, Finality, FinalityError, finalize_message};
use strand_contracts::governance::{LEAD_EPOCHS, proposal_id};
use strand_contracts::transaction::Body;
use strand_contracts::{Block, BlockRejection, Genesis, Outcome, Rejection, Replica, Transaction, ValidatorSet};
use strand_core::Identity;
use support::{account, identity};

const EPOCH_BLOCKS: u64 = 4;

fn set(validators: &[&Identity], beacon_key: Vec<u8>) -> ValidatorSet {
    support::consortium_set(validators.iter().copied(), beacon_key)
}

/// A consortium replica driven block by block, each block certified by the
/// set of its epoch (as the engine of that epoch would).
struct Consortium {
    genesis: Genesis,
    replica: Replica,
    follower: Replica,
    proposer: strand_contracts::AccountId,
    nonces: std::collections::HashMap<strand_contracts::AccountId, u64>,
    time: u64,
}

impl Consortium {
    /// A consortium of `validators` (the first proposes every block).
    fn new(validators: &[&Identity], beacon_key: Vec<u8>) -> Self {
        let genesis = Genesis {
            name: "governance".into(),
            validators: set(validators, beacon_key),
            epoch_blocks: EPOCH_BLOCKS,
            timestamp_ms: 1,
        };
        Self {
            replica: Replica::new(&genesis),
            follower: Replica::new(&genesis),
            genesis,
            proposer: account(validators[0]),
            nonces: Default::default(),
            time: 1,
        }
    }

    fn transaction(&mut self, sender: &Identity, body: Body) -> Vec<u8> {
        let nonce = self.nonces.entry(account(sender)).or_insert(0);
        *nonce += 1;
        Transaction::sign(self.genesis.chain(), sender, *nonce, body).to_bytes()
    }

    /// Certifies `header` with the signatures of `signers` (by key), in
    /// engine epoch `epoch`, against the sorted order of `set`.
    fn certify(
        &self,
        set: &ValidatorSet,
        signers: &[&Identity],
        epoch: u64,
        hash: &strand_contracts::Digest,
    ) -> Finality {
        let sorted = set.sorted();
        let message = finalize_message(&self.genesis.chain(), epoch, 1, 0, hash);
        let mut indexed: Vec<(u32, &Identity)> = signers
            .iter()
            .map(|signer| {
                let index = sorted.iter().position(|a| *a == account(signer)).unwrap_or(sorted.len());
                (index as u32, *signer)
            })
            .collect();
        indexed.sort_by_key(|(index, _)| *index);
        Finality::Certificate(Certificate {
            epoch,
            view: 1,
            parent_view: 0,
            signers: indexed.iter().map(|(index, _)| *index).collect(),
            signatures: indexed.iter().map(|(_, key)| strand_contracts::Signature(key.sign(&message))).collect(),
        })
    }

    /// Builds the next block over `transactions`, has it certified by
    /// `signers` of the set its epoch needs, and has the follower apply it.
    fn block(&mut self, transactions: &[Vec<u8>], signers: &[&Identity]) -> Vec<Outcome> {
        self.time += 1;
        let set = self.replica.validators_next().clone();
        let epoch = self.replica.state().params.epoch_of(self.replica.height() + 1);
        let (header, receipts) = self.replica.build(self.time, transactions, self.proposer, None);
        let finality = self.certify(&set, signers, epoch, &header.hash());
        let block = Block { header, transactions: transactions.to_vec(), finality };
        self.follower.apply(&block).expect("the follower accepts the block");
        receipts.into_iter().map(|receipt| receipt.outcome).collect()
    }
}

fn rejected(outcome: &Outcome) -> Option<&Rejection> {
    match outcome {
        Outcome::Rejected(rejection) => Some(rejection),
        Outcome::Accepted => None,
    }
}

#[test]
fn more_than_two_thirds_change_the_validators_at_the_stated_epoch() {
    let keys: Vec<Identity> = (1..=6).map(|seed| identity(150 + seed)).collect();
    let (a, b, c, d, e, outsider) = (&keys[0], &keys[1], &keys[2], &keys[3], &keys[4], &keys[5]);
    let (old_key, _) = deal(4, [1; 32]);
    let mut chain = Consortium::new(&[a, b, c, d], old_key);
    // d leaves, e joins, from epoch 2; e's beacon key is dealt to the new
    // set.
    let (new_key, new_shares) = deal(4, [2; 32]);
    let next = set(&[a, b, c, e], new_key);
    let effective = LEAD_EPOCHS;
    let id = proposal_id(&next, effective);

    // Refused: an outsider's proposal, an epoch too soon, a set that
    // cannot run a consortium, an approval of nothing.
    let too_small = ValidatorSet::consortium(next.validators[..3].to_vec(), next.beacon_key.clone().expect("a key"));
    let refused = [
        chain.transaction(outsider, Body::ProposeValidators { set: next.clone(), effective_epoch: effective }),
        chain.transaction(a, Body::ProposeValidators { set: next.clone(), effective_epoch: 1 }),
        chain.transaction(a, Body::ProposeValidators { set: too_small, effective_epoch: effective }),
        chain.transaction(b, Body::ApproveValidators { proposal: id }),
    ];
    let outcomes = chain.block(&refused, &[a, b, c]);
    assert_eq!(rejected(&outcomes[0]), Some(&Rejection::NotAValidator(account(outsider))));
    assert!(matches!(rejected(&outcomes[1]), Some(Rejection::EffectiveEpoch { found: 1, earliest: 2, .. })));
    assert!(
        matches!(rejected(&outcomes[2]), Some(Rejection::InvalidValidatorSet(reason)) if reason.contains("at least 4"))
    );
    assert_eq!(rejected(&outcomes[3]), Some(&Rejection::UnknownProposal(id)));

    // a proposes; b approves: 2 of 4 is not more than two thirds.
    let proposal = chain.transaction(a, Body::ProposeValidators { set: next.clone(), effective_epoch: effective });
    let approval = chain.transaction(b, Body::ApproveValidators { proposal: id });
    let twice = chain.transaction(b, Body::ApproveValidators { proposal: id });
    let outcomes = chain.block(&[proposal, approval, twice], &[a, b, c]);
    assert_eq!(outcomes[..2], [Outcome::Accepted, Outcome::Accepted]);
    assert_eq!(rejected(&outcomes[2]), Some(&Rejection::AlreadyApproved(id)));
    assert!(chain.replica.state().validator_change.is_none(), "2 of 4 approved: not yet");
    assert_eq!(chain.replica.state().validator_proposals.get(&id).expect("open").approvals.len(), 2);
    // An outsider cannot approve; c's approval makes 3 of 4.
    let outsider_approval = chain.transaction(outsider, Body::ApproveValidators { proposal: id });
    let approval = chain.transaction(c, Body::ApproveValidators { proposal: id });
    let outcomes = chain.block(&[outsider_approval, approval], &[a, b, c]);
    assert_eq!(rejected(&outcomes[0]), Some(&Rejection::NotAValidator(account(outsider))));
    assert_eq!(outcomes[1], Outcome::Accepted);
    let change = chain.replica.state().validator_change.clone().expect("scheduled");
    assert_eq!((change.effective_epoch, change.proposal), (effective, id));
    assert!(chain.replica.state().validator_proposals.is_empty(), "decided: no proposal stays open");
    // One change at a time.
    let another = chain.transaction(d, Body::ProposeValidators { set: next.clone(), effective_epoch: 5 });
    let outcomes = chain.block(&[another], &[a, b, c]);
    assert_eq!(rejected(&outcomes[0]), Some(&Rejection::ValidatorChangePending(effective)));

    // Until the effective epoch the old set finalises; d still signs.
    while chain.replica.state().params.epoch_of(chain.replica.height() + 1) < effective {
        assert_eq!(chain.replica.validators_next().sorted(), chain.genesis.validators.sorted());
        chain.block(&[], &[b, c, d]);
    }
    assert_eq!(chain.replica.validators_next().sorted(), next.sorted(), "the state before epoch 2 names the new set");

    // The first block of epoch 2: the old set's certificate, or the new
    // set's from another engine epoch, does not finalise it.
    let before = chain.replica.clone();
    let mut builder = before.clone();
    let (header, _) = builder.build(100, &[], account(a), None);
    let hash = header.hash();
    let with = |finality| Block { header: header.clone(), transactions: Vec::new(), finality };
    let mut follower = chain.follower.clone();
    let old = chain.genesis.validators.clone();
    // d's signature, under the index d had in the old order, is not the
    // key the new set has there.
    assert!(
        matches!(
            follower.apply(&with(chain.certify(&old, &[b, c, d], effective, &hash))),
            Err(BlockRejection::Finality(FinalityError::BadSignature(_) | FinalityError::Malformed(_)))
        ),
        "the old set no longer finalises blocks"
    );
    assert_eq!(
        follower.apply(&with(chain.certify(&next, &[a, b, e], effective - 1, &hash))),
        Err(BlockRejection::Finality(FinalityError::WrongEpoch { found: effective - 1, expected: effective }))
    );
    follower.apply(&with(chain.certify(&next, &[a, b, e], effective, &hash))).expect("the new set finalises it");
    assert_eq!(follower.validators().sorted(), next.sorted(), "in effect");
    assert!(follower.state().validator_change.is_none());
    chain.replica = builder;
    chain.follower = follower;

    // The epoch's beacon is the new set's: d's old key no longer makes it.
    let (due_epoch, closing) = chain.replica.beacon_due().expect("due");
    assert_eq!(due_epoch, effective);
    let sharing = next.beacon_key().expect("key").expect("consortium");
    use commonware_codec::{DecodeExt as _, Encode as _};
    use commonware_cryptography::bls12381::primitives::group::Share;
    use commonware_cryptography::bls12381::primitives::ops::threshold;
    let partials: Vec<_> = new_shares[..3]
        .iter()
        .map(|share| {
            let share = Share::decode(share.clone()).expect("share");
            threshold::sign_message::<Bls>(
                &share,
                BEACON_NAMESPACE,
                &message(&chain.genesis.chain(), due_epoch, &closing),
            )
        })
        .collect();
    let point =
        threshold::recover::<Bls, _>(&sharing, partials.iter(), &commonware_parallel::Sequential).expect("3 of 4");
    let beacon = BeaconSignature(point.encode().to_vec().try_into().expect("48 bytes"));
    let (header, _) = chain.replica.build(101, &[], account(a), Some(beacon));
    assert_eq!(header.beacon, Some(beacon), "the new set's beacon checks out");

    // d, no longer a validator, cannot propose.
    let late = chain.transaction(d, Body::ProposeValidators { set: next.clone(), effective_epoch: effective + 3 });
    let mut replica = chain.replica.clone();
    let (_, receipts) = replica.build(102, &[late], account(a), None);
    assert_eq!(rejected(&receipts[0].outcome), Some(&Rejection::NotAValidator(account(d))));
}

#[test]
fn proposals_are_bounded_and_expire_and_sequencer_chains_have_none() {
    let keys: Vec<Identity> = (1..=5).map(|seed| identity(170 + seed)).collect();
    let (a, b, c, d, e) = (&keys[0], &keys[1], &keys[2], &keys[3], &keys[4]);
    let mut chain = Consortium::new(&[a, b, c, d], deal(4, [1; 32]).0);
    let first = set(&[a, b, c, e], deal(4, [2; 32]).0);
    let second = set(&[a, b, d, e], deal(4, [3; 32]).0);
    // a's second proposal replaces its first: one open proposal each.
    let one = chain.transaction(a, Body::ProposeValidators { set: first.clone(), effective_epoch: 2 });
    let two = chain.transaction(a, Body::ProposeValidators { set: second.clone(), effective_epoch: 3 });
    chain.block(&[one, two], &[a, b, c]);
    let proposals = &chain.replica.state().validator_proposals;
    assert_eq!(proposals.len(), 1);
    assert!(proposals.contains(&proposal_id(&second, 3)) && !proposals.contains(&proposal_id(&first, 2)));
    // At epoch 2's first block, a change effective at 3 can no longer be
    // final two epochs ahead: dropped.
    while chain.replica.state().epoch() < 1 {
        chain.block(&[], &[a, b, c]);
    }
    assert_eq!(chain.replica.state().validator_proposals.len(), 1, "epoch 1: 3 is still 2 ahead");
    while chain.replica.state().epoch() < 2 {
        chain.block(&[], &[a, b, c]);
    }
    assert!(chain.replica.state().validator_proposals.is_empty(), "too late to take effect: dropped");
    let approval = chain.transaction(b, Body::ApproveValidators { proposal: proposal_id(&second, 3) });
    let outcomes = chain.block(&[approval], &[a, b, c]);
    assert_eq!(rejected(&outcomes[0]), Some(&Rejection::UnknownProposal(proposal_id(&second, 3))));
    assert_eq!(chain.replica.state().root(), chain.follower.state().root());

    // A sequencer's chain: no governance.
    let sequencer = support::genesis(a);
    let mut replica = Replica::new(&sequencer);
    let proposal =
        Transaction::sign(sequencer.chain(), a, 1, Body::ProposeValidators { set: first, effective_epoch: 2 });
    let (_, receipts) = replica.build(2, &[proposal.to_bytes()], account(a), None);
    assert_eq!(rejected(&receipts[0].outcome), Some(&Rejection::NoGovernance));
}
