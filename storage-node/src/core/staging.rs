//! Staging: fragments a node pulls for an upload before the contract's
//! terms exist. The owner cannot name the terms' roots until it has encoded
//! the whole file, but it can name each fragment as soon as it is encoded;
//! pulling them right away lets the transfer run while the owner encodes,
//! and lets the owner keep only a bounded window of fragments in memory.
//!
//! The first [`Stage`] of an (owner, upload) reserves `fragment_count ×
//! fragment_size` of the node's free capacity; later ones must repeat the
//! same header and may name at most `fragment_count` fragments in all. The
//! owner's proposal takes the reservation (its fragments are then found
//! already held); a reservation idle for [`STAGING_IDLE_MAX`] is released,
//! and so is every one at the node's next start (they live in memory only).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use strand_contracts::AccountId;
use strand_contracts::types::UploadKey;
use strand_wire::{FragmentSource, Refusal, STAGED_FRAGMENTS_MAX, Stage};

use super::proposal::AcceptancePolicy;

/// A reservation with no request for this long is released.
pub const STAGING_IDLE_MAX: Duration = Duration::from_secs(120);
/// Most reservations held at once.
pub const RESERVATIONS_MAX: usize = 64;
/// Most reservations one owner holds at once (uploads staging in parallel),
/// so one key cannot take every place. Keys are free to make, so this slows
/// a hostile owner rather than stopping one; reservations also expire.
pub const RESERVATIONS_PER_OWNER_MAX: usize = 4;

/// What every request of one reservation repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Fragments the proposal will ask for.
    pub fragment_count: u32,
    /// Size of each.
    pub fragment_size: u32,
    /// Where they are pulled from.
    pub source: FragmentSource,
}

impl Header {
    fn of(stage: &Stage) -> Self {
        Self { fragment_count: stage.fragment_count, fragment_size: stage.fragment_size, source: stage.source.clone() }
    }

    fn bytes(&self) -> u64 {
        u64::from(self.fragment_count) * u64::from(self.fragment_size)
    }
}

/// One owner's reservation for one upload.
#[derive(Clone, Debug)]
pub struct Reservation {
    /// The header its requests repeat.
    pub header: Header,
    /// Fragments named so far (being pulled or held).
    pub named: HashSet<[u8; 32]>,
    /// Fragments pulled, verified and held.
    pub held: HashSet<[u8; 32]>,
    last_active: Instant,
}

/// Who staged what for which upload.
pub type Key = (AccountId, UploadKey);

/// The node's reservations.
#[derive(Debug, Default)]
pub struct Staging {
    reservations: HashMap<Key, Reservation>,
}

impl Staging {
    /// Capacity held by reservations.
    pub fn reserved_bytes(&self) -> u64 {
        self.reservations.values().map(|reservation| reservation.header.bytes()).sum()
    }

    /// Reservations held.
    pub fn len(&self) -> usize {
        self.reservations.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.reservations.is_empty()
    }

    /// Admits `stage` from `owner` when the node has `free_bytes` outside
    /// every reservation's share; returns the fragments to pull now (those
    /// not named before).
    pub fn admit(
        &mut self,
        owner: AccountId,
        stage: &Stage,
        free_bytes: u64,
        policy: &AcceptancePolicy,
        now: Instant,
    ) -> Result<Vec<[u8; 32]>, Refusal> {
        if stage.fragment_ids.len() > STAGED_FRAGMENTS_MAX {
            return Err(Refusal::Terms(format!("at most {STAGED_FRAGMENTS_MAX} fragments per staging request")));
        }
        let header = Header::of(stage);
        let key = (owner, stage.upload);
        if !self.reservations.contains_key(&key) {
            if header.fragment_size == 0 || header.fragment_size > policy.fragment_bytes_max {
                return Err(Refusal::Terms(format!("fragment size must be 1..={} bytes", policy.fragment_bytes_max)));
            }
            if header.fragment_count == 0 || header.fragment_count > policy.fragments_per_contract_max {
                return Err(Refusal::Terms(format!(
                    "fragment count must be 1..={}",
                    policy.fragments_per_contract_max
                )));
            }
            if self.reservations.len() >= RESERVATIONS_MAX {
                return Err(Refusal::NotReady(format!("busy: {RESERVATIONS_MAX} uploads are staging here")));
            }
            if self.reservations.keys().filter(|(holder, _)| *holder == owner).count() >= RESERVATIONS_PER_OWNER_MAX {
                return Err(Refusal::NotReady(format!(
                    "busy: this owner already stages {RESERVATIONS_PER_OWNER_MAX} uploads here"
                )));
            }
            let free_bytes = free_bytes.saturating_sub(self.reserved_bytes());
            if header.bytes() > free_bytes {
                return Err(Refusal::NoCapacity { free_bytes, needed_bytes: header.bytes() });
            }
            let reservation =
                Reservation { header: header.clone(), named: HashSet::new(), held: HashSet::new(), last_active: now };
            self.reservations.insert(key, reservation);
        }
        let reservation = self.reservations.get_mut(&key).expect("inserted above");
        if reservation.header != header {
            return Err(Refusal::Terms("a staging request must repeat its reservation's header".into()));
        }
        // In the request's order, each once.
        let mut seen = HashSet::new();
        let fresh: Vec<[u8; 32]> = stage
            .fragment_ids
            .iter()
            .copied()
            .filter(|fragment| !reservation.named.contains(fragment) && seen.insert(*fragment))
            .collect();
        if reservation.named.len() + fresh.len() > header.fragment_count as usize {
            return Err(Refusal::FragmentsMismatch);
        }
        reservation.named.extend(fresh.iter().copied());
        reservation.last_active = now;
        Ok(fresh)
    }

    /// The owner of another reservation naming `fragment`, if one does.
    pub fn named_by_another(&self, owner: &AccountId, fragment: &[u8; 32]) -> Option<AccountId> {
        self.reservations
            .iter()
            .find(|((holder, _), reservation)| holder != owner && reservation.named.contains(fragment))
            .map(|((holder, _), _)| *holder)
    }

    /// Whether `owner`'s reservation `key` holds `fragment` (pulled from
    /// the owner and verified).
    pub fn holds(&self, key: &Key, fragment: &[u8; 32]) -> bool {
        self.reservations.get(key).is_some_and(|reservation| reservation.held.contains(fragment))
    }

    /// Records `fragments` as pulled and held; returns how many fragments
    /// of the reservation are held, `None` if it ended meanwhile.
    pub fn held(&mut self, key: &Key, fragments: &[[u8; 32]], now: Instant) -> Option<usize> {
        let reservation = self.reservations.get_mut(key)?;
        reservation.held.extend(fragments.iter().copied().filter(|fragment| reservation.named.contains(fragment)));
        reservation.last_active = now;
        Some(reservation.held.len())
    }

    /// Forgets `fragments` after a failed pull, so a retry may name them
    /// again.
    pub fn unname(&mut self, key: &Key, fragments: &[[u8; 32]]) {
        if let Some(reservation) = self.reservations.get_mut(key) {
            for fragment in fragments {
                if !reservation.held.contains(fragment) {
                    reservation.named.remove(fragment);
                }
            }
        }
    }

    /// Takes the reservation (its owner's proposal has come).
    pub fn take(&mut self, key: &Key) -> Option<Reservation> {
        self.reservations.remove(key)
    }

    /// Removes and returns the reservations idle for [`STAGING_IDLE_MAX`],
    /// in key order (the caller releases what each held).
    pub fn expire(&mut self, now: Instant) -> Vec<(Key, Reservation)> {
        let mut idle: Vec<Key> = self
            .reservations
            .iter()
            .filter(|(_, reservation)| now.saturating_duration_since(reservation.last_active) >= STAGING_IDLE_MAX)
            .map(|(key, _)| *key)
            .collect();
        idle.sort_unstable();
        idle.into_iter()
            .filter_map(|key| self.reservations.remove(&key).map(|reservation| (key, reservation)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u32 = 1 << 20;

    fn stage(upload: u8, count: u32, ids: &[u8]) -> Stage {
        Stage {
            upload: [upload; 16],
            fragment_count: count,
            fragment_size: MIB,
            source: FragmentSource { endpoint: [9; 32], addresses: vec!["127.0.0.1:1".into()] },
            fragment_ids: ids.iter().map(|byte| [*byte; 32]).collect(),
        }
    }

    fn owner() -> AccountId {
        AccountId([1; 32])
    }

    #[test]
    fn admits_each_fragment_once_up_to_the_count() {
        let (mut staging, now, policy) = (Staging::default(), Instant::now(), AcceptancePolicy::default());
        let free = 10 * u64::from(MIB);
        let first = staging.admit(owner(), &stage(7, 4, &[1, 2, 2]), free, &policy, now).expect("admitted");
        assert_eq!(first.len(), 2, "a repeated id is pulled once");
        assert_eq!(staging.reserved_bytes(), 4 * u64::from(MIB));
        let again = staging.admit(owner(), &stage(7, 4, &[2, 3]), free, &policy, now).expect("admitted");
        assert_eq!(again, vec![[3; 32]], "only fragments not named before are pulled");
        assert_eq!(
            staging.admit(owner(), &stage(7, 4, &[4, 5]), free, &policy, now),
            Err(Refusal::FragmentsMismatch),
            "more fragments than reserved"
        );
        let key = (owner(), [7; 16]);
        assert_eq!(staging.held(&key, &[[1; 32], [2; 32], [8; 32]], now), Some(2), "an unnamed fragment is not held");
        let reservation = staging.take(&key).expect("reserved");
        assert_eq!(reservation.named.len(), 3);
        assert!(staging.is_empty());
        assert_eq!(staging.held(&key, &[[3; 32]], now), None, "the reservation ended");
        assert_eq!(staging.reserved_bytes(), 0);
    }

    #[test]
    fn refuses_a_changed_header_and_bad_sizes() {
        let (mut staging, now, policy) = (Staging::default(), Instant::now(), AcceptancePolicy::default());
        let free = 100 * u64::from(MIB);
        staging.admit(owner(), &stage(7, 4, &[1]), free, &policy, now).expect("admitted");
        assert!(matches!(staging.admit(owner(), &stage(7, 5, &[2]), free, &policy, now), Err(Refusal::Terms(_))));
        let mut other_source = stage(7, 4, &[2]);
        other_source.source.endpoint = [8; 32];
        assert!(matches!(staging.admit(owner(), &other_source, free, &policy, now), Err(Refusal::Terms(_))));
        assert!(matches!(staging.admit(owner(), &stage(8, 0, &[1]), free, &policy, now), Err(Refusal::Terms(_))));
        let mut huge = stage(8, 1, &[1]);
        huge.fragment_size = policy.fragment_bytes_max + 1;
        assert!(matches!(staging.admit(owner(), &huge, free, &policy, now), Err(Refusal::Terms(_))));
        let mut many = stage(8, 5000, &[]);
        many.fragment_ids = (0..=STAGED_FRAGMENTS_MAX as u32).map(|n| [n as u8; 32]).collect();
        assert!(matches!(staging.admit(owner(), &many, u64::MAX, &policy, now), Err(Refusal::Terms(_))));
        assert_eq!(staging.len(), 1, "refused requests reserve nothing");
    }

    #[test]
    fn reservations_share_the_free_capacity_and_are_bounded() {
        let (mut staging, now, policy) = (Staging::default(), Instant::now(), AcceptancePolicy::default());
        let free = 6 * u64::from(MIB);
        staging.admit(owner(), &stage(1, 4, &[1]), free, &policy, now).expect("admitted");
        let refused = staging.admit(AccountId([2; 32]), &stage(1, 4, &[1]), free, &policy, now);
        assert_eq!(
            refused,
            Err(Refusal::NoCapacity { free_bytes: 2 * u64::from(MIB), needed_bytes: 4 * u64::from(MIB) })
        );
        staging.admit(AccountId([2; 32]), &stage(1, 2, &[1]), free, &policy, now).expect("admitted");
        let mut staging = Staging::default();
        for upload in 0..RESERVATIONS_PER_OWNER_MAX {
            staging.admit(owner(), &stage(upload as u8, 1, &[1]), u64::MAX, &policy, now).expect("admitted");
        }
        let refused = staging.admit(owner(), &stage(100, 1, &[1]), u64::MAX, &policy, now);
        assert!(matches!(refused, Err(Refusal::NotReady(_))), "one owner's share is full");
        for upload in RESERVATIONS_PER_OWNER_MAX..RESERVATIONS_MAX {
            let other = AccountId([upload as u8; 32]);
            staging.admit(other, &stage(upload as u8, 1, &[1]), u64::MAX, &policy, now).expect("admitted");
        }
        let refused = staging.admit(AccountId([255; 32]), &stage(200, 1, &[1]), u64::MAX, &policy, now);
        assert!(matches!(refused, Err(Refusal::NotReady(_))), "every place is taken");
    }

    #[test]
    fn a_failed_pull_can_be_retried_and_idle_reservations_expire() {
        let (mut staging, start, policy) = (Staging::default(), Instant::now(), AcceptancePolicy::default());
        let key = (owner(), [7; 16]);
        staging.admit(owner(), &stage(7, 2, &[1, 2]), u64::MAX, &policy, start).expect("admitted");
        staging.held(&key, &[[1; 32]], start);
        staging.unname(&key, &[[1; 32], [2; 32]]);
        let retried = staging.admit(owner(), &stage(7, 2, &[1, 2]), u64::MAX, &policy, start).expect("admitted");
        assert_eq!(retried, vec![[2; 32]], "a held fragment stays named; the failed one is pulled again");
        staging.admit(owner(), &stage(8, 1, &[1]), u64::MAX, &policy, start + STAGING_IDLE_MAX / 2).expect("admitted");
        assert!(staging.expire(start + STAGING_IDLE_MAX / 2).is_empty());
        let expired: Vec<Key> = staging.expire(start + STAGING_IDLE_MAX).into_iter().map(|(key, _)| key).collect();
        assert_eq!(expired, vec![key]);
        assert_eq!(staging.len(), 1, "the reservation active later is kept");
    }
}
