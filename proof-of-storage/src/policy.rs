//! Detection policy: how many challenges per epoch.
//!
//! A provider that deleted (or cannot read) a fraction `f` of a contract's
//! chunks answers one uniformly drawn challenge with probability `1 - f`, so
//! it passes an epoch of `c` independent challenges with probability
//! `(1 - f)^c` and survives `n` epochs with probability `(1 - f)^(c·n)`.
//!
//! Requirement: deleting 1 % of a contract is caught within a day with at
//! least 99 % probability at production epoch lengths. With one-hour epochs
//! (24 a day): `0.99^(24·c) ≤ 0.01` ⇔ `c ≥ ln 0.01 / (24 · ln 0.99) = 19.1`,
//! so the default is **c = 20**: `0.99^480 = 0.0080`, caught with 99.2 %
//! probability within a day (and 99.99 % within two). Cost: 20 proofs of
//! about 1.4 KiB per contract per hour, and 20 reads of one 16 KiB group.
//! Shorter epochs need fewer challenges per epoch for the same daily
//! guarantee ([`challenges_needed`]); the local network uses seconds-long
//! epochs with the same `c`.

/// Production epoch length the default is chosen for.
pub const PRODUCTION_EPOCH_SECONDS: u64 = 3600;
/// Default challenges per epoch (see the module documentation).
pub const DEFAULT_CHALLENGES: u16 = 20;
/// Default missed or failed epochs before a contract's fragments count as
/// lost: three in a row is three hours of silence in production.
pub const DEFAULT_STRIKES_MAX: u16 = 3;

/// Probability that a provider missing a fraction `f` passes `epochs`
/// epochs of `challenges` challenges each.
pub fn pass_probability(f: f64, challenges: u32, epochs: u32) -> f64 {
    (1.0 - f).powf(f64::from(challenges) * f64::from(epochs))
}

/// Fewest challenges per epoch so that missing a fraction `f` is caught
/// within `epochs` epochs with probability at least `confidence`.
pub fn challenges_needed(f: f64, epochs: u32, confidence: f64) -> u32 {
    let needed = (1.0 - confidence).ln() / (f64::from(epochs) * (1.0 - f).ln());
    needed.ceil().max(1.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_meets_the_daily_requirement() {
        let epochs_per_day = (24 * 3600 / PRODUCTION_EPOCH_SECONDS) as u32;
        assert_eq!(challenges_needed(0.01, epochs_per_day, 0.99), 20);
        let survives = pass_probability(0.01, u32::from(DEFAULT_CHALLENGES), epochs_per_day);
        assert!(survives <= 0.01, "{survives}");
        assert!((survives - 0.0080).abs() < 0.0001, "{survives}");
        // One fewer challenge would not do.
        assert!(pass_probability(0.01, u32::from(DEFAULT_CHALLENGES) - 1, epochs_per_day) > 0.01);
    }
}
