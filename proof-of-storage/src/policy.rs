//! Detection policy: what a provider's epoch schedule ([`crate::schedule`])
//! guarantees, what it costs, and the limits that keep the cost bounded.
//!
//! # Per byte of the provider's data
//! Every epoch at least [`BYTE_CHALLENGES_MIN`] = 20 challenges are drawn
//! uniformly over *all* the chunks a provider holds under its contracts
//! (the schedule's byte part; with one contract its rotation challenge is
//! uniform over the same bytes). A provider that deleted, or cannot read, a
//! fraction `f` of its chunks passes an epoch with probability at most
//! `(1 - f)^20`, whichever contracts it cheated on.
//!
//! Requirement: deleting 1 % of one's data is caught within a day with at
//! least 99 % probability at production epoch lengths. With one-hour epochs
//! (24 a day): `0.99^(24·c) ≤ 0.01` ⇔ `c ≥ ln 0.01 / (24 · ln 0.99) = 19.1`,
//! so 20 byte challenges: `0.99^480 = 0.0080`, caught with 99.2 %
//! probability within a day (and 99.99 % within two).
//!
//! # Per contract
//! - **Rotation:** every contract is challenged at least once every
//!   `⌈n / min(n, 20)⌉` epochs for a roster of `n` contracts
//!   ([`rotation_period_epochs`]): every epoch for up to 20 contracts, 50
//!   epochs for 1,000, 500 epochs for 10,000. Contracts that join or leave
//!   the roster move others between slots; a moved contract waits at most
//!   one more period.
//! - **Sampling:** a contract holding a share `s` of the provider's bytes is
//!   hit by each byte challenge with probability `s`: deleting it whole is
//!   caught within an epoch with probability at least `1 - (1 - s)^20`.
//! - **Confirmation:** a contract whose check fails (wrong bytes, or no
//!   answer for it in the provider's submission) becomes a *suspect* and is
//!   re-checked every following epoch (up to 8 suspects per epoch, the rest
//!   queue), so `strikes_max` consecutive failures — three by default —
//!   declare it lost within `strikes_max` epochs of the first failure; a
//!   pass clears its strikes.
//! - **Liveness:** a provider that submits nothing for
//!   [`PROVIDER_MISSED_EPOCHS_MAX`] consecutive epochs is unresponsive and
//!   every contract it holds is declared lost, whatever their number (the
//!   ledger sweeps them at a bounded rate per epoch).
//!
//! # Cost
//! At most [`crate::schedule::CHALLENGES_PER_PROVIDER_MAX`] = 48 challenges
//! per provider per epoch. A challenge's answer is the 1 KiB chunk, its
//! BLAKE3 path (32 B per level, at most 17 levels for the largest fragment
//! the ledger accepts) and the fragment's inclusion proof in its contract (32
//! B per level, at most 20 levels): at most [`answer_bytes_max`] = 2.3 KiB,
//! so a provider submits at most about 108 KiB per epoch
//! ([`submission_bytes_max`]), whatever its number of contracts; at most 1.7
//! KiB per challenge (81 KiB per epoch) for the default 1 MiB fragments. It
//! reads one 16 KiB group and its outboard path per challenge: under 1 MiB
//! per epoch.

use crate::CHUNK_BYTES;
use crate::schedule::CHALLENGES_PER_PROVIDER_MAX;

/// Production epoch length the policy is chosen for.
pub const PRODUCTION_EPOCH_SECONDS: u64 = 3600;
/// Default challenges per epoch a contract asks for (its weight in its
/// provider's budget; a provider with one contract answers all of them).
pub const DEFAULT_CHALLENGES: u16 = 20;
/// Default consecutive failed checks before a contract's fragments count as
/// lost.
pub const DEFAULT_STRIKES_MAX: u16 = 3;
/// Consecutive epochs without any submission after which a provider is
/// unresponsive and all its contracts are lost: three hours of silence in
/// production.
pub const PROVIDER_MISSED_EPOCHS_MAX: u16 = 3;
/// Byte challenges per epoch whenever a provider holds a contract (see the
/// module documentation).
pub const BYTE_CHALLENGES_MIN: u32 = 20;

/// Largest fragment the ledger accepts in a contract: a 64 MiB chunk and its
/// 16-byte authentication tag.
pub const FRAGMENT_BYTES_MAX: u32 = (64 << 20) + 16;
/// Most fragments in one contract (a 20-level inclusion proof).
pub const FRAGMENTS_PER_CONTRACT_MAX: u32 = 1 << 20;

/// Probability that a provider missing a fraction `f` of its bytes passes
/// `epochs` epochs of `challenges` byte challenges each.
pub fn pass_probability(f: f64, challenges: u32, epochs: u32) -> f64 {
    (1.0 - f).powf(f64::from(challenges) * f64::from(epochs))
}

/// Fewest challenges per epoch so that missing a fraction `f` is caught
/// within `epochs` epochs with probability at least `confidence`.
pub fn challenges_needed(f: f64, epochs: u32, confidence: f64) -> u32 {
    let needed = (1.0 - confidence).ln() / (f64::from(epochs) * (1.0 - f).ln());
    needed.ceil().max(1.0) as u32
}

/// Epochs within which the rotation reaches every contract of a roster of
/// `contracts` (each asking at least one challenge).
pub fn rotation_period_epochs(contracts: u32) -> u32 {
    let step = crate::schedule::rotation_step(contracts, u64::from(contracts) * u64::from(DEFAULT_CHALLENGES));
    if step == 0 { 0 } else { contracts.div_ceil(step) }
}

/// Levels of a binary tree over `leaves` leaves (BLAKE3's over chunks,
/// rs_merkle's over fragment ids): the siblings a path carries.
fn levels(leaves: u64) -> u64 {
    u64::from(leaves.max(1).next_power_of_two().trailing_zeros())
}

/// Largest encoding of one challenge's answer for fragments of at most
/// `fragment_size` bytes and contracts of at most `fragment_count`
/// fragments: the contract's entry (id, answers length, version, list
/// lengths) and one listed fragment, its inclusion path, the chunk and its
/// BLAKE3 path.
pub fn answer_bytes_max(fragment_size: u32, fragment_count: u32) -> u64 {
    let chunk_levels = levels(u64::from(fragment_size).div_ceil(CHUNK_BYTES as u64));
    let inclusion_levels = levels(u64::from(fragment_count));
    let contract_entry = 32 + 4 + 1 + 4 + 4 + 4;
    let fragment_entry = 4 + 32;
    let chunk = 4 + CHUNK_BYTES as u64 + 4 + 32 * chunk_levels;
    contract_entry + fragment_entry + 32 * inclusion_levels + chunk
}

/// Largest submit-proofs transaction a provider sends in an epoch, however
/// many contracts it holds: the transaction's envelope (chain, sender,
/// nonce, kind, epoch, list length, signature) and every challenge answered
/// at [`answer_bytes_max`] for the ledger's largest fragments and contracts.
pub fn submission_bytes_max() -> u64 {
    let envelope = 32 + 32 + 8 + 1 + 8 + 4 + 64;
    envelope + u64::from(CHALLENGES_PER_PROVIDER_MAX) * answer_bytes_max(FRAGMENT_BYTES_MAX, FRAGMENTS_PER_CONTRACT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule;

    #[test]
    fn byte_challenges_meet_the_daily_requirement() {
        let epochs_per_day = (24 * 3600 / PRODUCTION_EPOCH_SECONDS) as u32;
        assert_eq!(challenges_needed(0.01, epochs_per_day, 0.99), BYTE_CHALLENGES_MIN);
        let survives = pass_probability(0.01, BYTE_CHALLENGES_MIN, epochs_per_day);
        assert!(survives <= 0.01, "{survives}");
        assert!((survives - 0.0080).abs() < 0.0001, "{survives}");
        // One fewer challenge would not do.
        assert!(pass_probability(0.01, BYTE_CHALLENGES_MIN - 1, epochs_per_day) > 0.01);
    }

    #[test]
    fn every_roster_gets_its_byte_challenges() {
        // One contract: 19 byte challenges plus its rotation challenge, all
        // uniform over the same bytes.
        let one = schedule::budget(1, u64::from(DEFAULT_CHALLENGES), 0);
        assert_eq!(one.bytes + one.rotation, BYTE_CHALLENGES_MIN);
        for contracts in [2u32, 10, 20, 21, 200, 1_000, 10_000, 100_000] {
            let demand = u64::from(contracts) * u64::from(DEFAULT_CHALLENGES);
            for suspects in [0, 8, 1_000] {
                let budget = schedule::budget(contracts, demand, suspects);
                assert!(budget.bytes >= BYTE_CHALLENGES_MIN, "{contracts} contracts: {budget:?}");
            }
        }
    }

    #[test]
    fn rotation_periods_are_as_documented() {
        assert_eq!(rotation_period_epochs(1), 1);
        assert_eq!(rotation_period_epochs(20), 1);
        assert_eq!(rotation_period_epochs(200), 10);
        assert_eq!(rotation_period_epochs(1_000), 50);
        assert_eq!(rotation_period_epochs(10_000), 500);
    }

    #[test]
    fn a_provider_submits_under_128_kib_per_epoch_whatever_it_holds() {
        // 2,301 bytes per challenge at the ledger's limits.
        assert_eq!(answer_bytes_max(FRAGMENT_BYTES_MAX, FRAGMENTS_PER_CONTRACT_MAX), 2_301);
        let bound = submission_bytes_max();
        assert!(bound <= 128 * 1024, "{bound}");
        assert_eq!(bound, 110_597);
        // The default 1 MiB fragments, 256 per contract: 1.7 KiB.
        assert_eq!(answer_bytes_max((1 << 20) + 16, 256), 1_725);
    }
}
