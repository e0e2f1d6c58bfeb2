//! How fast each provider delivers fragments during one download, so the
//! download asks the fastest first and stops waiting for a stalled one.
//!
//! Sans-IO: the download reports each fragment's arrival time and each
//! stall, with the current instant; this decides whom to ask first and how
//! long to wait before turning to parity. A provider is "stalled" when it
//! delivered nothing within the hedge time: it is not asked for its own
//! fragments for [`STALL_PENALTY`] (its stripes are rebuilt from parity),
//! then tried again, so one that was only briefly slow comes back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use strand_contracts::AccountId;

/// Weight of the newest arrival in a provider's running average.
const AVERAGE_WEIGHT: f64 = 0.25;
/// A fragment taking this many times the typical provider's time is given up
/// on (parity asked instead)...
pub const HEDGE_FACTOR: f64 = 4.0;
/// ...but never sooner than this (loaded machines and small fragments make
/// short times noisy)...
pub const HEDGE_MIN: Duration = Duration::from_secs(1);
/// ...and never later than this; also the wait before anything is known.
pub const HEDGE_MAX: Duration = Duration::from_secs(10);
/// How long a stalled provider is passed over.
pub const STALL_PENALTY: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Default)]
struct Provider {
    /// Running average of seconds per fragment; `None` before the first.
    seconds: Option<f64>,
    /// Passed over until then.
    stalled_until: Option<Instant>,
}

/// Per-provider delivery times of one download.
#[derive(Clone, Debug, Default)]
pub struct Speeds {
    providers: HashMap<AccountId, Provider>,
}

impl Speeds {
    /// `provider` delivered a fragment in `elapsed`.
    pub fn arrived(&mut self, provider: AccountId, elapsed: Duration) {
        let entry = self.providers.entry(provider).or_default();
        let seconds = elapsed.as_secs_f64();
        entry.seconds = Some(entry.seconds.map_or(seconds, |average| average + AVERAGE_WEIGHT * (seconds - average)));
        entry.stalled_until = None;
    }

    /// `provider` delivered nothing within the hedge time.
    pub fn stalled(&mut self, provider: AccountId, now: Instant) {
        let entry = self.providers.entry(provider).or_default();
        entry.stalled_until = Some(now + STALL_PENALTY);
        // Count the wait, so it also ranks last among siblings.
        let waited = self.hedge_after().as_secs_f64();
        let entry = self.providers.entry(provider).or_default();
        entry.seconds = Some(entry.seconds.map_or(waited, |average| average.max(waited)));
    }

    /// Whether `provider` is being passed over at `now`.
    pub fn is_stalled(&self, provider: &AccountId, now: Instant) -> bool {
        self.providers.get(provider).and_then(|entry| entry.stalled_until).is_some_and(|until| now < until)
    }

    /// The typical provider's seconds per fragment (the median of the
    /// running averages of those not stalled), if any has delivered.
    fn typical_seconds(&self) -> Option<f64> {
        let mut seconds: Vec<f64> = self
            .providers
            .values()
            .filter(|entry| entry.stalled_until.is_none())
            .filter_map(|entry| entry.seconds)
            .collect();
        if seconds.is_empty() {
            return None;
        }
        seconds.sort_by(f64::total_cmp);
        Some(seconds[seconds.len() / 2])
    }

    /// How long to wait for one fragment before turning to another provider.
    pub fn hedge_after(&self) -> Duration {
        match self.typical_seconds() {
            Some(seconds) => Duration::from_secs_f64(seconds * HEDGE_FACTOR).clamp(HEDGE_MIN, HEDGE_MAX),
            None => HEDGE_MAX,
        }
    }

    /// Seconds `provider` is expected to take: its own average, else the
    /// typical provider's (so a provider not asked yet is neither preferred
    /// nor avoided); stalled ones last.
    pub fn expected_seconds(&self, provider: &AccountId, now: Instant) -> f64 {
        if self.is_stalled(provider, now) {
            return f64::INFINITY;
        }
        self.providers.get(provider).and_then(|entry| entry.seconds).or_else(|| self.typical_seconds()).unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(byte: u8) -> AccountId {
        AccountId([byte; 32])
    }

    #[test]
    fn the_hedge_follows_the_typical_provider_within_its_bounds() {
        let mut speeds = Speeds::default();
        assert_eq!(speeds.hedge_after(), HEDGE_MAX, "nothing known yet");
        for byte in 1..=5 {
            speeds.arrived(provider(byte), Duration::from_millis(500));
        }
        speeds.arrived(provider(6), Duration::from_secs(9));
        assert_eq!(speeds.hedge_after(), Duration::from_secs(2), "4 × the median, not the slow one's");
        let mut fast = Speeds::default();
        fast.arrived(provider(1), Duration::from_millis(5));
        assert_eq!(fast.hedge_after(), HEDGE_MIN);
        let mut slow = Speeds::default();
        slow.arrived(provider(1), Duration::from_secs(30));
        assert_eq!(slow.hedge_after(), HEDGE_MAX);
    }

    #[test]
    fn a_stalled_provider_ranks_last_until_its_penalty_ends_or_it_delivers() {
        let mut speeds = Speeds::default();
        let now = Instant::now();
        speeds.arrived(provider(1), Duration::from_millis(100));
        speeds.arrived(provider(2), Duration::from_millis(300));
        assert!(speeds.expected_seconds(&provider(1), now) < speeds.expected_seconds(&provider(2), now));
        assert_eq!(
            speeds.expected_seconds(&provider(3), now),
            speeds.expected_seconds(&provider(2), now),
            "an unknown provider is expected to be typical (the median of two is the slower)"
        );
        speeds.stalled(provider(1), now);
        assert!(speeds.is_stalled(&provider(1), now));
        assert_eq!(speeds.expected_seconds(&provider(1), now), f64::INFINITY);
        assert!(!speeds.is_stalled(&provider(1), now + STALL_PENALTY), "tried again after the penalty");
        assert!(
            speeds.expected_seconds(&provider(1), now + STALL_PENALTY)
                > speeds.expected_seconds(&provider(2), now + STALL_PENALTY),
            "but still ranked after those that delivered"
        );
        speeds.arrived(provider(1), Duration::from_millis(100));
        assert!(!speeds.is_stalled(&provider(1), now), "a delivery clears the stall");
    }

    #[test]
    fn the_average_moves_toward_new_arrivals() {
        let mut speeds = Speeds::default();
        let now = Instant::now();
        speeds.arrived(provider(1), Duration::from_secs(1));
        speeds.arrived(provider(1), Duration::from_secs(3));
        assert!((speeds.expected_seconds(&provider(1), now) - 1.5).abs() < 1e-9);
    }
}
