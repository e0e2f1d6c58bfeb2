//! Repair, the node's half (sans-IO): serving sibling fragments to a
//! repairer under a ledger repair order, and, as a repairer, planning which
//! siblings to read and rebuilding the lost shards.
//!
//! **Serving.** A repairer first asks with the order id
//! ([`check_request`]): the order must be on the ledger, name the requester
//! as its repairer, be within its deadline, and concern an upload this node
//! holds a contract of. The node answers with the upload's stripe map and
//! records a grant; from then on its gate releases each fragment of that
//! upload held here to the repairer at most once per order
//! ([`RepairReads::decide`]), while the order stays open. Grants and the
//! record of served fragments go when the order leaves the ledger.
//!
//! **Repairing.** [`plan`] turns an order, the contract's terms, a stripe
//! map checked against them, and the ledger into per-stripe work: the lost
//! shard (its index and id) and the siblings with the provider holding each
//! now. [`rebuild`] reconstructs exactly the lost shard from any k siblings
//! with reed-solomon-simd; the caller checks its BLAKE3 against the id.

use std::collections::HashMap;

use strand_contracts::state::{ContractStatus, LedgerState, RepairOrder};
use strand_contracts::stripes::StripeMap;
use strand_contracts::transaction::ContractTerms;
use strand_contracts::types::UploadKey;
use strand_contracts::{AccountId, Digest};
use strand_net::blobs::Extent;

use crate::core::holdings::{AgreementState, Holdings};

/// Why a repair read is refused (a stable code on the wire and in metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepairRefusal {
    /// No such order on the ledger.
    #[error("no such repair order on the ledger")]
    UnknownOrder,
    /// The order names another repairer.
    #[error("the order names another repairer")]
    NotTheRepairer,
    /// The order is past its deadline or already reported.
    #[error("the order is no longer open")]
    OrderClosed,
    /// This node holds nothing of the order's upload.
    #[error("this node holds no contract of the order's upload")]
    NothingHeld,
}

impl RepairRefusal {
    /// Every [`Self::label`].
    pub const LABELS: [&'static str; 4] = ["unknown_order", "not_the_repairer", "order_closed", "nothing_held"];

    /// A short fixed label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownOrder => "unknown_order",
            Self::NotTheRepairer => "not_the_repairer",
            Self::OrderClosed => "order_closed",
            Self::NothingHeld => "nothing_held",
        }
    }
}

/// Whether `order` is open for its repairer at the ledger's height.
fn open(ledger: &LedgerState, order: &RepairOrder) -> bool {
    !order.reported && ledger.epoch() <= order.deadline_epoch
}

/// Checks a repairer's request under order `id`; the contract held here
/// whose stripe map to send.
pub fn check_request(
    requester: &AccountId,
    id: &Digest,
    ledger: &LedgerState,
    holdings: &Holdings,
) -> Result<(Digest, RepairOrder), RepairRefusal> {
    let order = ledger.repair_orders.get(id).ok_or(RepairRefusal::UnknownOrder)?;
    if order.repairer != *requester {
        return Err(RepairRefusal::NotTheRepairer);
    }
    if !open(ledger, order) {
        return Err(RepairRefusal::OrderClosed);
    }
    let held = holdings
        .of_upload(&order.upload)
        .find(|(_, agreement)| matches!(agreement.state, AgreementState::Signed { .. }))
        .map(|(contract, _)| *contract)
        .ok_or(RepairRefusal::NothingHeld)?;
    Ok((held, order.clone()))
}

/// Requests a repairer may make per fragment and order: the whole
/// fragment, then ranges to locate the bad part of a sibling that stopped
/// mid-fragment (a bisection over its 16 KiB groups: 12 steps for the
/// largest fragments).
pub const REPAIR_READS_PER_FRAGMENT_MAX: u32 = 16;
/// Bytes released per fragment and order, as a multiple of the fragment:
/// one whole read and a bisection (half, quarter, ...).
pub const REPAIR_READ_BYTES_FACTOR: u64 = 2;

/// Open grants and what was served under them: per (order, fragment), the
/// requests and bytes released.
#[derive(Debug, Default)]
pub struct RepairReads {
    grants: HashMap<(AccountId, UploadKey), Digest>,
    served: HashMap<(Digest, [u8; 32]), (u32, u64)>,
}

impl RepairReads {
    /// Records a grant after [`check_request`].
    pub fn grant(&mut self, requester: AccountId, id: Digest, order: &RepairOrder) {
        self.grants.insert((requester, order.upload), id);
    }

    /// Whether `requester` may get `extent` of `fragment` now as a repair
    /// read: the order, and within the fragment's bounds (at most
    /// [`REPAIR_READS_PER_FRAGMENT_MAX`] requests and
    /// [`REPAIR_READ_BYTES_FACTOR`] times its bytes per order); the order,
    /// the upload and the bytes released.
    pub fn decide(
        &mut self,
        requester: &AccountId,
        fragment: &[u8; 32],
        extent: Extent,
        holdings: &Holdings,
        ledger: &LedgerState,
    ) -> Option<(Digest, UploadKey, u64)> {
        for (_, agreement) in holdings.holders(fragment) {
            let upload = agreement.terms.upload;
            let Some(id) = self.grants.get(&(*requester, upload)).copied() else { continue };
            let still_open =
                ledger.repair_orders.get(&id).is_some_and(|order| order.repairer == *requester && open(ledger, order));
            if !still_open {
                continue;
            }
            let size = u64::from(agreement.terms.fragment_size);
            let bytes = extent.bytes_of(size);
            let served = self.served.entry((id, *fragment)).or_default();
            if served.0 < REPAIR_READS_PER_FRAGMENT_MAX
                && served.1.saturating_add(bytes) <= size.saturating_mul(REPAIR_READ_BYTES_FACTOR)
            {
                served.0 += 1;
                served.1 += bytes;
                return Some((id, upload, bytes));
            }
        }
        None
    }

    /// Forgets grants of orders no longer on the ledger.
    pub fn prune(&mut self, ledger: &LedgerState) {
        self.grants.retain(|_, id| ledger.repair_orders.contains(id));
        self.served.retain(|(id, _), _| ledger.repair_orders.contains(id));
    }

    /// Open grants.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether no grant is open.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

/// A sibling of a lost shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    /// Its shard index in the stripe.
    pub shard: u16,
    /// Its fragment id.
    pub fragment: [u8; 32],
    /// The provider holding its contract now.
    pub holder: AccountId,
    /// That contract.
    pub contract: Digest,
    /// The fragment's index in that contract's committed list (what a
    /// bad-sibling report names).
    pub index: u32,
}

/// One lost shard to rebuild.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeWork {
    /// The stripe.
    pub stripe: u64,
    /// The lost shard's index.
    pub shard: u16,
    /// The lost fragment's id (what the rebuilt bytes must hash to).
    pub fragment: [u8; 32],
    /// The other shards whose contracts are active, with their holders.
    pub siblings: Vec<Sibling>,
}

/// Why an order cannot be planned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The map does not match the terms.
    #[error("the stripe map does not match the contract: {0}")]
    Map(String),
    /// The map's fragments for the contract are not the terms' root.
    #[error("the stripe map's fragments for the contract are not the ones its root commits to")]
    Fragments,
    /// A stripe has fewer than k siblings left on active contracts.
    #[error("stripe {stripe} has {available} siblings on active contracts, {needed} needed")]
    TooFewSiblings {
        /// The stripe.
        stripe: u64,
        /// Siblings available.
        available: usize,
        /// k.
        needed: usize,
    },
}

/// The provider holding the upload's contract named with `provider` in its
/// terms, if that contract is active (its bytes can be read).
fn current_holder(ledger: &LedgerState, upload: &UploadKey, provider: &AccountId) -> Option<(Digest, AccountId)> {
    let contracts = &ledger.uploads.get(upload)?.contracts;
    contracts.iter().find_map(|id| {
        let contract = ledger.contracts.get(id)?;
        (contract.terms.provider == *provider && contract.status == ContractStatus::Active)
            .then_some((*id, contract.holder))
    })
}

/// The work for contract `terms` (the order's) from its upload's `map`.
pub fn plan(terms: &ContractTerms, map: &StripeMap, ledger: &LedgerState) -> Result<Vec<StripeWork>, PlanError> {
    map.check(terms).map_err(|error| PlanError::Map(error.to_string()))?;
    let places = map.places_of(&terms.provider);
    let ids: Vec<[u8; 32]> = map.fragments_of(&terms.provider);
    if strand_proof_of_storage::merkle::root(&ids) != terms.fragment_root.0
        || ids.len() != terms.fragment_count as usize
    {
        return Err(PlanError::Fragments);
    }
    let mut holders: HashMap<u16, Option<(Digest, AccountId)>> = HashMap::new();
    // Per slot, fragments counted so far in stripe order: a fragment's index
    // in its contract's committed list.
    let mut counted: Vec<u32> = vec![0; map.slots.len()];
    let mut next_stripe = 0usize;
    let mut work = Vec::with_capacity(places.len());
    for ((stripe, shard), fragment) in places.into_iter().zip(ids) {
        for shards in &map.stripes[next_stripe..stripe as usize] {
            for (_, slot) in shards {
                counted[usize::from(*slot)] += 1;
            }
        }
        next_stripe = stripe as usize;
        let shards = &map.stripes[stripe as usize];
        let mut siblings = Vec::new();
        let mut seen_in_stripe: Vec<u32> = vec![0; map.slots.len()];
        for (index, (sibling, slot)) in shards.iter().enumerate() {
            let position = counted[usize::from(*slot)] + seen_in_stripe[usize::from(*slot)];
            seen_in_stripe[usize::from(*slot)] += 1;
            if index == usize::from(shard) || map.slots[usize::from(*slot)] == terms.provider {
                continue;
            }
            let holder = *holders
                .entry(*slot)
                .or_insert_with(|| current_holder(ledger, &terms.upload, &map.slots[usize::from(*slot)]));
            if let Some((contract, holder)) = holder {
                siblings.push(Sibling { shard: index as u16, fragment: *sibling, holder, contract, index: position });
            }
        }
        let needed = usize::from(terms.data_shards);
        if siblings.len() < needed {
            return Err(PlanError::TooFewSiblings { stripe, available: siblings.len(), needed });
        }
        work.push(StripeWork { stripe, shard, fragment, siblings });
    }
    Ok(work)
}

/// Why a shard cannot be rebuilt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RebuildError {
    /// Fewer than k shards, or shards of unequal or odd sizes.
    #[error("cannot rebuild: {0}")]
    Shards(String),
}

/// Rebuilds shard `lost` of a stripe of `k` data and `m` parity shards from
/// `shards` (at least k of the others, `(index, bytes)`, all of one size).
pub fn rebuild(k: u16, m: u16, lost: u16, shards: &[(u16, Vec<u8>)]) -> Result<Vec<u8>, RebuildError> {
    let (k_count, m_count) = (usize::from(k), usize::from(m));
    let size = shards.first().map(|(_, bytes)| bytes.len()).unwrap_or(0);
    if shards.len() < k_count
        || shards.iter().any(|(_, bytes)| bytes.len() != size)
        || size == 0
        || !size.is_multiple_of(2)
    {
        return Err(RebuildError::Shards(format!(
            "{} shards of sizes {size}.., {k} needed of one even size",
            shards.len()
        )));
    }
    if usize::from(lost) >= k_count + m_count || shards.iter().any(|(index, _)| *index == lost) {
        return Err(RebuildError::Shards(format!("shard {lost} is not a lost shard of {k}+{m}")));
    }
    let originals = shards
        .iter()
        .filter(|(index, _)| usize::from(*index) < k_count)
        .map(|(index, bytes)| (usize::from(*index), bytes));
    let recovery = shards
        .iter()
        .filter(|(index, _)| usize::from(*index) >= k_count)
        .map(|(index, bytes)| (usize::from(*index) - k_count, bytes));
    let have_all_originals = shards.iter().filter(|(index, _)| usize::from(*index) < k_count).count() == k_count;
    let mut data: Vec<Vec<u8>> = vec![Vec::new(); k_count];
    for (index, bytes) in shards.iter().filter(|(index, _)| usize::from(*index) < k_count) {
        data[usize::from(*index)] = bytes.clone();
    }
    if !have_all_originals {
        let restored = reed_solomon_simd::decode(k_count, m_count, originals, recovery)
            .map_err(|error| RebuildError::Shards(error.to_string()))?;
        for (index, bytes) in restored {
            data[index] = bytes;
        }
    }
    if usize::from(lost) < k_count {
        return Ok(std::mem::take(&mut data[usize::from(lost)]));
    }
    let parity =
        reed_solomon_simd::encode(k_count, m_count, &data).map_err(|error| RebuildError::Shards(error.to_string()))?;
    parity
        .into_iter()
        .nth(usize::from(lost) - k_count)
        .ok_or_else(|| RebuildError::Shards("no such parity shard".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::{empty_ledger, terms};
    use crate::core::holdings::Agreement;
    use strand_contracts::state::{Contract, RepairReason, Upload};

    const P: [AccountId; 4] = [AccountId([10; 32]), AccountId([11; 32]), AccountId([12; 32]), AccountId([13; 32])];

    /// Two stripes of 2+1 over providers P0..P2; contracts per provider in
    /// the ledger (P2's repaired onto P3); the terms of P1's contract.
    fn upload() -> (StripeMap, LedgerState, Vec<ContractTerms>) {
        let map = StripeMap {
            slots: P[..3].to_vec(),
            stripes: vec![
                vec![([1; 32], 0), ([2; 32], 1), ([3; 32], 2)],
                vec![([4; 32], 1), ([5; 32], 2), ([6; 32], 0)],
            ],
        };
        let mut ledger = empty_ledger();
        let mut all = Vec::new();
        for provider in &P[..3] {
            let mut terms = terms(AccountId([9; 32]), 1);
            terms.provider = *provider;
            terms.data_shards = 2;
            terms.parity_shards = 1;
            terms.stripe_count = 2;
            terms.stripes_root = map.root();
            let ids = map.fragments_of(provider);
            terms.fragment_count = ids.len() as u32;
            terms.fragment_root = Digest(strand_proof_of_storage::merkle::root(&ids));
            let mut contract = Contract::opened(terms.clone(), 1, 0);
            if *provider == P[2] {
                contract.holder = P[3];
            }
            ledger.contracts.insert(terms.id(), contract);
            all.push(terms);
        }
        let contracts = all.iter().map(ContractTerms::id).collect();
        ledger.uploads.insert([1; 16], Upload { owner: AccountId([9; 32]), contracts, lost: 0, queued: 0 });
        (map, ledger, all)
    }

    #[test]
    fn a_plan_names_each_lost_shard_and_its_siblings_current_holders() {
        let (map, mut ledger, terms) = upload();
        let work = plan(&terms[1], &map, &ledger).expect("plan");
        assert_eq!(work.len(), 2);
        assert_eq!((work[0].stripe, work[0].shard, work[0].fragment), (0, 1, [2; 32]));
        assert_eq!(
            work[0].siblings,
            vec![
                Sibling { shard: 0, fragment: [1; 32], holder: P[0], contract: terms[0].id(), index: 0 },
                Sibling { shard: 2, fragment: [3; 32], holder: P[3], contract: terms[2].id(), index: 0 }
            ]
        );
        assert_eq!((work[1].stripe, work[1].shard, work[1].fragment), (1, 0, [4; 32]));
        // Each sibling named by its place in its own contract's list.
        assert_eq!(
            work[1].siblings,
            vec![
                Sibling { shard: 1, fragment: [5; 32], holder: P[3], contract: terms[2].id(), index: 1 },
                Sibling { shard: 2, fragment: [6; 32], holder: P[0], contract: terms[0].id(), index: 1 }
            ]
        );
        for stripe in &work {
            for sibling in &stripe.siblings {
                let provider = ledger.contracts.get(&sibling.contract).expect("contract").terms.provider;
                assert_eq!(map.fragments_of(&provider)[sibling.index as usize], sibling.fragment);
            }
        }
        // A sibling contract that is lost is not a source: too few remain.
        ledger.contracts.update(&terms[0].id(), |contract| contract.status = ContractStatus::Lost { at_epoch: 1 });
        assert_eq!(
            plan(&terms[1], &map, &ledger),
            Err(PlanError::TooFewSiblings { stripe: 0, available: 1, needed: 2 })
        );
        // A map that is not the one committed is refused.
        let mut forged = map.clone();
        forged.stripes[0][0].0 = [7; 32];
        assert!(matches!(plan(&terms[1], &forged, &ledger), Err(PlanError::Map(_))));
    }

    #[test]
    fn a_repairer_reads_each_fragment_within_bounds_per_open_order_and_strangers_nothing() {
        let (_, mut ledger, terms) = upload();
        let repairer = AccountId([20; 32]);
        let order_id = Digest([30; 32]);
        let order = RepairOrder {
            contract: terms[1].id(),
            upload: [1; 16],
            repairer,
            previous: P[1],
            reason: RepairReason::Lost,
            issued_epoch: 0,
            deadline_epoch: 2,
            attempt: 0,
            reported: false,
        };
        let mut holdings = Holdings::default();
        holdings.insert(Agreement {
            terms: terms[0].clone(),
            fragment_ids: vec![[1; 32], [6; 32]],
            state: AgreementState::Signed { at_height: 1 },
        });
        assert_eq!(check_request(&repairer, &order_id, &ledger, &holdings), Err(RepairRefusal::UnknownOrder));
        ledger.repair_orders.insert(order_id, order.clone());
        assert_eq!(
            check_request(&AccountId([21; 32]), &order_id, &ledger, &holdings),
            Err(RepairRefusal::NotTheRepairer)
        );
        assert_eq!(check_request(&repairer, &order_id, &ledger, &Holdings::default()), Err(RepairRefusal::NothingHeld));
        let (held, _) = check_request(&repairer, &order_id, &ledger, &holdings).expect("granted");
        assert_eq!(held, terms[0].id());

        let size = u64::from(terms[0].fragment_size);
        let whole = Extent::Whole;
        let mut reads = RepairReads::default();
        assert_eq!(reads.decide(&repairer, &[1; 32], whole, &holdings, &ledger), None, "no grant yet");
        reads.grant(repairer, order_id, &order);
        assert_eq!(reads.decide(&AccountId([21; 32]), &[1; 32], whole, &holdings, &ledger), None, "a stranger");
        assert_eq!(reads.decide(&repairer, &[1; 32], whole, &holdings, &ledger), Some((order_id, [1; 16], size)));
        assert_eq!(reads.decide(&repairer, &[9; 32], whole, &holdings, &ledger), None, "not held here");
        // After the whole fragment, ranges to locate a bad part, up to
        // twice the fragment's bytes in all.
        let half = Extent::Chunks { start: 0, end: size.div_ceil(2 * 1024) };
        let half_bytes = half.bytes_of(size);
        assert_eq!(reads.decide(&repairer, &[1; 32], half, &holdings, &ledger), Some((order_id, [1; 16], half_bytes)));
        assert_eq!(reads.decide(&repairer, &[1; 32], whole, &holdings, &ledger), None, "at most twice its bytes");
        let mut released = size + half_bytes;
        let one = Extent::Chunks { start: 0, end: 1 };
        let mut requests = 2;
        while reads.decide(&repairer, &[1; 32], one, &holdings, &ledger).is_some() {
            released += one.bytes_of(size);
            requests += 1;
        }
        assert!(released <= 2 * size && requests <= REPAIR_READS_PER_FRAGMENT_MAX, "{released} B in {requests}");
        // Past the deadline, nothing more; gone from the ledger, forgotten.
        ledger.height = 3 * ledger.params.epoch_blocks;
        assert_eq!(reads.decide(&repairer, &[6; 32], whole, &holdings, &ledger), None);
        assert_eq!(check_request(&repairer, &order_id, &ledger, &holdings), Err(RepairRefusal::OrderClosed));
        ledger.repair_orders.remove(&order_id);
        reads.prune(&ledger);
        assert!(reads.is_empty());
    }

    fn stripe(k: usize, m: usize, size: usize) -> Vec<Vec<u8>> {
        let data: Vec<Vec<u8>> = (0..k).map(|i| (0..size).map(|b| (b * 7 + i * 13) as u8).collect()).collect();
        let parity = reed_solomon_simd::encode(k, m, &data).expect("encode");
        data.into_iter().chain(parity).collect()
    }

    #[test]
    fn any_k_siblings_rebuild_exactly_the_lost_shard_data_or_parity() {
        let shards = stripe(4, 2, 1024);
        for lost in 0..6u16 {
            // Every choice of 4 siblings among the other 5.
            for skip in 0..6u16 {
                if skip == lost {
                    continue;
                }
                let given: Vec<(u16, Vec<u8>)> = (0..6u16)
                    .filter(|index| *index != lost && *index != skip)
                    .map(|index| (index, shards[usize::from(index)].clone()))
                    .collect();
                assert_eq!(rebuild(4, 2, lost, &given).expect("rebuilt"), shards[usize::from(lost)], "lost {lost}");
            }
        }
    }

    #[test]
    fn too_few_or_mismatched_shards_are_an_error_not_a_panic() {
        let shards = stripe(4, 2, 64);
        let three: Vec<(u16, Vec<u8>)> = (1..4u16).map(|index| (index, shards[usize::from(index)].clone())).collect();
        assert!(rebuild(4, 2, 0, &three).is_err());
        let mut uneven: Vec<(u16, Vec<u8>)> =
            (1..6u16).map(|index| (index, shards[usize::from(index)].clone())).collect();
        uneven[0].1.pop();
        assert!(rebuild(4, 2, 0, &uneven).is_err());
        let given: Vec<(u16, Vec<u8>)> = (1..6u16).map(|index| (index, shards[usize::from(index)].clone())).collect();
        assert!(rebuild(4, 2, 9, &given).is_err(), "no shard 9 in 4+2");
        assert!(rebuild(4, 2, 1, &given).is_err(), "shard 1 is given, not lost");
    }
}
