//! Which chunks a provider must show in an epoch: a bounded number of
//! challenges per provider, however many contracts it holds (specification
//! v2).
//!
//! A provider's contracts owing proofs form its *roster* (slots `0..len` in
//! a fixed order the ledger maintains). Each epoch the provider gets
//! `total = min(demand, CHALLENGES_PER_PROVIDER_MAX)` challenges, where
//! `demand` sums its contracts' `challenges_per_epoch`, drawn from the
//! provider's [`Stream`] in this order:
//!
//! 1. **Suspects** (`suspects = min(available, SUSPECTS_PER_EPOCH_MAX,
//!    total - rotation)`): contracts whose last check failed or was not
//!    answered, or that a repairer accused of serving bad bytes, in the
//!    roster's fixed suspect order; one uniformly drawn chunk each (of the
//!    accused fragment when a fragment is named), so a failure or an
//!    accusation is confirmed or cleared in the next epochs.
//! 2. **Rotation** (`rotation = min(len, ROTATION_PER_EPOCH_MAX, total)`):
//!    the slots `(cursor + j) mod len` for `j < rotation`; one uniformly
//!    drawn chunk each. The ledger advances the cursor by `rotation` every
//!    epoch, so every contract is reached within `⌈len / rotation⌉` epochs.
//! 3. **Bytes** (the rest): chunks drawn uniformly over *all* the chunks of
//!    the roster (a global index located through the roster's prefix sums),
//!    so a provider missing a fraction `f` of its bytes answers each with
//!    probability `1 - f`, whatever it did to which contract.
//!
//! The guarantees that follow are in [`crate::policy`].

use crate::challenge::{self, Challenge, Stream};

/// Most challenges one provider answers per epoch: its answers stay below
/// 128 KiB however many contracts it holds ([`crate::policy`]).
pub const CHALLENGES_PER_PROVIDER_MAX: u32 = 48;
/// Most rotation challenges per epoch (one contract each).
pub const ROTATION_PER_EPOCH_MAX: u32 = 20;
/// Most suspects re-checked per epoch.
pub const SUSPECTS_PER_EPOCH_MAX: u32 = 8;
/// Chunks of the group an accused chunk is challenged in (16 KiB, the
/// group iroh-blobs verifies as it streams: a repairer knows which group
/// failed, not which 1 KiB chunk of it).
pub const ACCUSED_GROUP_CHUNKS: u32 = 16;

/// A contract in a roster, as the schedule needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RosterContract {
    /// The contract id.
    pub contract: [u8; 32],
    /// Fragments its root commits to.
    pub fragment_count: u32,
    /// Bytes of each fragment.
    pub fragment_size: u32,
}

impl RosterContract {
    /// BLAKE3 chunks the contract holds.
    pub fn chunks(&self) -> u64 {
        challenge::contract_chunks(self.fragment_count, self.fragment_size)
    }
}

/// A provider's roster at the start of an epoch (the ledger keeps it fixed
/// for the whole epoch).
pub trait Roster {
    /// Contracts in the roster.
    fn len(&self) -> u32;
    /// Whether the roster is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Chunks of every contract in the roster.
    fn total_chunks(&self) -> u64;
    /// Sum of the contracts' `challenges_per_epoch`.
    fn demand(&self) -> u64;
    /// Where this epoch's rotation starts (any value; taken mod `len`).
    fn cursor(&self) -> u64;
    /// The contract in `slot`.
    fn at(&self, slot: u32) -> Option<RosterContract>;
    /// The slot holding the `chunk`-th chunk of the roster (counting slot by
    /// slot), and that chunk's index within the slot's contract.
    fn locate(&self, chunk: u64) -> Option<(u32, u64)>;
    /// At most `max` suspects, in the roster's fixed order.
    fn suspects(&self, max: u32) -> Vec<Suspect>;
}

/// A contract re-checked first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suspect {
    /// The contract.
    pub contract: RosterContract,
    /// Where the chunk is drawn, when a repairer accused the contract: the
    /// fragment (index in the contract's committed list) and a chunk of it;
    /// the challenge falls in that chunk's 16 KiB group (the unit a BLAKE3
    /// stream verifies). Any chunk of the contract otherwise.
    pub accused: Option<(u32, u32)>,
}

impl From<RosterContract> for Suspect {
    fn from(contract: RosterContract) -> Self {
        Self { contract, accused: None }
    }
}

/// Why a challenge was drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Re-checking a contract whose last check failed.
    Suspect,
    /// The rotation reaching every contract in turn.
    Rotation,
    /// Sampling the provider's bytes.
    Bytes,
}

/// One challenge of a provider's epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// The contract challenged.
    pub contract: [u8; 32],
    /// The chunk to show.
    pub challenge: Challenge,
    /// Why it was drawn.
    pub reason: Reason,
}

/// How an epoch's challenges are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// All challenges.
    pub total: u32,
    /// Suspects re-checked.
    pub suspects: u32,
    /// Rotation challenges.
    pub rotation: u32,
    /// Challenges over the provider's bytes.
    pub bytes: u32,
}

/// The split for a roster of `len` contracts with `demand` challenges asked
/// and `suspects` suspects waiting.
pub fn budget(len: u32, demand: u64, suspects: u32) -> Budget {
    if len == 0 {
        return Budget { total: 0, suspects: 0, rotation: 0, bytes: 0 };
    }
    let total = u32::try_from(demand.min(u64::from(CHALLENGES_PER_PROVIDER_MAX))).unwrap_or(0).max(1);
    let rotation = len.min(ROTATION_PER_EPOCH_MAX).min(total);
    let suspects = suspects.min(SUSPECTS_PER_EPOCH_MAX).min(total - rotation);
    Budget { total, suspects, rotation, bytes: total - rotation - suspects }
}

/// The rotation challenges a roster of `len` contracts asking `demand`
/// challenges gets per epoch: how far the ledger moves the cursor.
pub fn rotation_step(len: u32, demand: u64) -> u32 {
    budget(len, demand, 0).rotation
}

/// The challenges of `provider` for `epoch` under `beacon`, in order.
/// Deterministic; `len × log(len)` work at most for the bytes part.
pub fn derive(beacon: &[u8; 32], provider: &[u8; 32], epoch: u64, roster: &impl Roster) -> Vec<Scheduled> {
    let len = roster.len();
    if len == 0 {
        return Vec::new();
    }
    let suspects = roster.suspects(SUSPECTS_PER_EPOCH_MAX);
    let budget = budget(len, roster.demand(), u32::try_from(suspects.len()).unwrap_or(u32::MAX));
    let mut stream = Stream::new(beacon, provider, epoch);
    let mut scheduled = Vec::with_capacity(budget.total as usize);
    let one_chunk_of = |contract: RosterContract, reason: Reason, stream: &mut Stream| {
        let index = stream.below(contract.chunks());
        Scheduled { contract: contract.contract, challenge: challenge::at(index, contract.fragment_size), reason }
    };
    for suspect in suspects.into_iter().take(budget.suspects as usize) {
        let contract = suspect.contract;
        let chunks = challenge::chunks_in(contract.fragment_size);
        let accused =
            suspect.accused.filter(|(fragment, chunk)| *fragment < contract.fragment_count && *chunk < chunks);
        match accused {
            Some((fragment, chunk)) => {
                let first = chunk - chunk % ACCUSED_GROUP_CHUNKS;
                let width = ACCUSED_GROUP_CHUNKS.min(chunks - first);
                let chunk = first + u32::try_from(stream.below(u64::from(width))).unwrap_or(0);
                let challenge = Challenge { fragment, chunk };
                scheduled.push(Scheduled { contract: contract.contract, challenge, reason: Reason::Suspect });
            }
            None => scheduled.push(one_chunk_of(contract, Reason::Suspect, &mut stream)),
        }
    }
    let start = roster.cursor() % u64::from(len);
    for offset in 0..u64::from(budget.rotation) {
        let slot = u32::try_from((start + offset) % u64::from(len)).unwrap_or(0);
        if let Some(contract) = roster.at(slot) {
            scheduled.push(one_chunk_of(contract, Reason::Rotation, &mut stream));
        }
    }
    let total_chunks = roster.total_chunks();
    for _ in 0..budget.bytes {
        let global = stream.below(total_chunks);
        let Some((slot, index)) = roster.locate(global) else { continue };
        if let Some(contract) = roster.at(slot) {
            scheduled.push(Scheduled {
                contract: contract.contract,
                challenge: challenge::at(index, contract.fragment_size),
                reason: Reason::Bytes,
            });
        }
    }
    scheduled
}

/// A roster in memory (tests, benchmarks and the simulator): contracts in
/// slot order with a linear prefix sum, and suspects.
#[derive(Clone, Debug, Default)]
pub struct MemoryRoster {
    /// Contracts in slot order.
    pub contracts: Vec<RosterContract>,
    /// Challenges asked per epoch, per contract.
    pub demand_per_contract: u64,
    /// The rotation cursor.
    pub cursor: u64,
    /// Suspects, in order.
    pub suspects: Vec<Suspect>,
}

impl Roster for MemoryRoster {
    fn len(&self) -> u32 {
        u32::try_from(self.contracts.len()).unwrap_or(u32::MAX)
    }

    fn total_chunks(&self) -> u64 {
        self.contracts.iter().map(RosterContract::chunks).sum()
    }

    fn demand(&self) -> u64 {
        self.demand_per_contract * self.contracts.len() as u64
    }

    fn cursor(&self) -> u64 {
        self.cursor
    }

    fn at(&self, slot: u32) -> Option<RosterContract> {
        self.contracts.get(slot as usize).copied()
    }

    fn locate(&self, mut chunk: u64) -> Option<(u32, u64)> {
        for (slot, contract) in self.contracts.iter().enumerate() {
            if chunk < contract.chunks() {
                return Some((u32::try_from(slot).ok()?, chunk));
            }
            chunk -= contract.chunks();
        }
        None
    }

    fn suspects(&self, max: u32) -> Vec<Suspect> {
        self.suspects.iter().take(max as usize).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(seed: u32, fragment_count: u32, fragment_size: u32) -> RosterContract {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&seed.to_le_bytes());
        RosterContract { contract: id, fragment_count, fragment_size }
    }

    fn roster(count: u32, demand_per_contract: u64) -> MemoryRoster {
        MemoryRoster {
            contracts: (0..count).map(|seed| contract(seed, 8, (1 << 20) + 16)).collect(),
            demand_per_contract,
            ..Default::default()
        }
    }

    #[test]
    fn the_budget_is_bounded_whatever_the_roster() {
        assert_eq!(budget(0, 0, 0), Budget { total: 0, suspects: 0, rotation: 0, bytes: 0 });
        // One contract with the default 20 challenges: all 20 on it.
        assert_eq!(budget(1, 20, 0), Budget { total: 20, suspects: 0, rotation: 1, bytes: 19 });
        assert_eq!(budget(1, 20, 1), Budget { total: 20, suspects: 1, rotation: 1, bytes: 18 });
        assert_eq!(budget(2, 40, 0), Budget { total: 40, suspects: 0, rotation: 2, bytes: 38 });
        for contracts in [10u32, 1_000, 10_000, 1_000_000] {
            for suspects in [0u32, 3, 100] {
                let split = budget(contracts, 20 * u64::from(contracts), suspects);
                assert_eq!(split.total, CHALLENGES_PER_PROVIDER_MAX, "{contracts} contracts");
                assert_eq!(split.total, split.suspects + split.rotation + split.bytes);
                assert!(split.bytes >= 20, "{split:?}: at least 20 challenges over the provider's bytes");
            }
        }
        // Tiny demands are honoured, never zero.
        assert_eq!(budget(5, 0, 0).total, 1);
    }

    #[test]
    fn a_schedule_is_deterministic_in_range_and_follows_its_budget() {
        let mut roster = roster(1_000, 20);
        roster.suspects = vec![roster.contracts[7].into(), roster.contracts[900].into()];
        roster.cursor = 995;
        let schedule = derive(&[1; 32], &[2; 32], 40, &roster);
        assert_eq!(schedule, derive(&[1; 32], &[2; 32], 40, &roster));
        assert_eq!(schedule.len(), CHALLENGES_PER_PROVIDER_MAX as usize);
        let count = |reason| schedule.iter().filter(|s| s.reason == reason).count();
        assert_eq!((count(Reason::Suspect), count(Reason::Rotation), count(Reason::Bytes)), (2, 20, 26));
        // Rotation wraps around from the cursor.
        let rotated: Vec<[u8; 32]> =
            schedule.iter().filter(|s| s.reason == Reason::Rotation).map(|s| s.contract).collect();
        let expected: Vec<[u8; 32]> = (0..20).map(|j| roster.contracts[(995 + j) % 1_000].contract).collect();
        assert_eq!(rotated, expected);
        for scheduled in &schedule {
            assert!(scheduled.challenge.fragment < 8 && scheduled.challenge.chunk < 1025, "{scheduled:?}");
        }
        assert_ne!(schedule, derive(&[1; 32], &[2; 32], 41, &roster), "another epoch, other challenges");
        assert_ne!(schedule, derive(&[3; 32], &[2; 32], 40, &roster), "another beacon, other challenges");
        assert_ne!(schedule, derive(&[1; 32], &[4; 32], 40, &roster), "another provider, other challenges");
    }

    #[test]
    fn an_accused_fragment_is_the_one_challenged() {
        let mut roster = roster(10, 20);
        // Fragments of 1,025 chunks: groups of 16, the last of one chunk.
        roster.suspects =
            vec![Suspect { contract: roster.contracts[3], accused: Some((5, 37)) }, roster.contracts[4].into()];
        let mut drawn = std::collections::BTreeSet::new();
        for epoch in 0..200 {
            let schedule = derive(&[1; 32], &[2; 32], epoch, &roster);
            let suspects: Vec<&Scheduled> = schedule.iter().filter(|s| s.reason == Reason::Suspect).collect();
            assert_eq!(suspects.len(), 2);
            assert_eq!((suspects[0].contract, suspects[0].challenge.fragment), (roster.contracts[3].contract, 5));
            drawn.insert(suspects[0].challenge.chunk);
        }
        assert_eq!(drawn, (32..48).collect(), "every chunk of the accused group, none outside it");
        roster.suspects = vec![Suspect { contract: roster.contracts[3], accused: Some((5, 1024)) }];
        let schedule = derive(&[1; 32], &[2; 32], 7, &roster);
        let suspect = schedule.iter().find(|s| s.reason == Reason::Suspect).expect("suspect");
        assert_eq!((suspect.challenge.fragment, suspect.challenge.chunk), (5, 1024), "the short last group");
        // A fragment or chunk past the contract's end is not trusted: any
        // chunk of the contract.
        for accused in [(8, 0), (0, 1025)] {
            roster.suspects = vec![Suspect { contract: roster.contracts[3], accused: Some(accused) }];
            let schedule = derive(&[1; 32], &[2; 32], 7, &roster);
            let suspect = schedule.iter().find(|s| s.reason == Reason::Suspect).expect("suspect");
            assert!(suspect.challenge.fragment < 8 && suspect.challenge.chunk < 1025);
        }
    }

    #[test]
    fn the_rotation_reaches_every_contract_within_its_period() {
        for count in [1u32, 7, 20, 21, 333] {
            let mut roster = roster(count, 20);
            let mut seen = std::collections::HashSet::new();
            let period = count.div_ceil(rotation_step(count, roster.demand()));
            for epoch in 0..u64::from(period) {
                for scheduled in derive(&[5; 32], &[6; 32], epoch, &roster) {
                    if scheduled.reason == Reason::Rotation {
                        seen.insert(scheduled.contract);
                    }
                }
                roster.cursor += u64::from(rotation_step(count, roster.demand()));
            }
            assert_eq!(seen.len(), count as usize, "{count} contracts in {period} epochs");
        }
    }

    #[test]
    fn byte_challenges_follow_the_bytes_not_the_contracts() {
        // One contract holds 90 % of the bytes: it should take about 90 % of
        // the byte challenges (1,000 epochs × 28 draws).
        let mut roster = MemoryRoster { demand_per_contract: 20, ..Default::default() };
        roster.contracts.push(contract(0, 900, 1024));
        for seed in 1..=100 {
            roster.contracts.push(contract(seed, 1, 1024));
        }
        let (mut big, mut all) = (0usize, 0usize);
        for epoch in 0..1_000 {
            for scheduled in derive(&[8; 32], &[9; 32], epoch, &roster) {
                if scheduled.reason == Reason::Bytes {
                    all += 1;
                    big += usize::from(scheduled.contract == roster.contracts[0].contract);
                }
            }
        }
        let share = big as f64 / all as f64;
        assert!((share - 0.9).abs() < 0.01, "{share} of {all}");
    }
}
