//! Published figures the simulator is checked against (`sim/tests/
//! published.rs`), each with its source, and the formulas behind them.
//!
//! Source: Storj Labs, *Storj: A Decentralized Cloud Storage Network
//! Framework*, v3.0, 30 October 2018 (the `storj/whitepaper` repository,
//! commit `8fb03daa`, `storjv3.tex`; PDF pages as printed):
//! - §3.4 "Redundancy", pp. 20–21: durability per month of (k, n) codes at
//!   10 % monthly node churn, no repair, computed as "the CDF of the Poisson
//!   distribution with mean λ = pn … up to n − k":
//!   `P(D) = e^(−λ) Σ_{i=0}^{n−k} λ^i / i!`.
//! - §7.1 "Object repair costs", p. 65, after Giroire et al., *Peer-to-peer
//!   storage systems: a practical guideline to be lazy* (2010): with lazy
//!   repair at threshold m (rebuild when m pieces are left) and node failure
//!   rate α = 1/MTTF, the repair bandwidth per byte of data stored and unit
//!   of time is `B_R = α (n − m + k) / (k ln(n/m))`; Table 7.2 (p. 71) lists
//!   it for nine (MTTF, k, n, m).

/// The whitepaper's §3.4 tables at p = 10 %: `(k, n, durability in %)` as
/// printed (erasure codes, replication, then expansion factors).
#[allow(clippy::excessive_precision, reason = "the digits as printed")]
pub const STORJ_DURABILITY_AT_10_PERCENT: [(u16, u16, f64); 16] = [
    (2, 4, 99.207366813274616),
    (4, 8, 99.858868985411326),
    (8, 16, 99.995462406878260),
    (16, 32, 99.999994620652776),
    (20, 40, 99.999999807694154),
    (32, 64, 99.999999999990544),
    (1, 1, 90.483741803595962),
    (1, 2, 98.247690369357827),
    (1, 3, 99.640050681691051),
    (1, 10, 99.999988857452166),
    (1, 16, 99.999999998036174),
    (4, 6, 97.688471224736705),
    (4, 12, 99.999514117129605),
    (20, 30, 99.970766304935266),
    (20, 50, 99.999999999999548),
    (100, 150, 99.999999999973570),
];

/// The whitepaper's Table 7.2: `(MTTF in months, k, n, m, repair
/// bandwidth ratio per month)` as printed.
pub const STORJ_REPAIR_RATIOS: [(f64, u16, u16, u16, f64); 9] = [
    (1.0, 20, 40, 35, 9.36),
    (6.0, 20, 40, 30, 0.87),
    (12.0, 20, 40, 25, 0.31),
    (1.0, 30, 60, 35, 3.40),
    (6.0, 30, 70, 40, 0.60),
    (12.0, 30, 80, 45, 0.31),
    (1.0, 40, 80, 60, 5.21),
    (6.0, 40, 120, 50, 0.52),
    (12.0, 40, 120, 45, 0.24),
];

/// The whitepaper's durability: Poisson with mean `p n` pieces lost a
/// month, the file kept while at most `n − k` are.
pub fn storj_poisson_durability(p: f64, k: u16, n: u16) -> f64 {
    let lambda = p * f64::from(n);
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=u32::from(n - k) {
        term *= lambda / f64::from(i);
        sum += term;
    }
    (-lambda).exp() * sum
}

/// Durability when each of the n pieces is lost independently with
/// probability `p` (each on its own node, nodes leaving independently):
/// the binomial probability that at most `n − k` are.
pub fn binomial_durability(p: f64, k: u16, n: u16) -> f64 {
    let n32 = u32::from(n);
    let mut choose = 1.0;
    let mut sum = 0.0;
    for i in 0..=u32::from(n - k) {
        if i > 0 {
            choose *= f64::from(n32 - i + 1) / f64::from(i);
        }
        sum += choose * p.powi(i as i32) * (1.0 - p).powi((n32 - i) as i32);
    }
    sum
}

/// Giroire et al.'s lazy repair bandwidth, as the whitepaper quotes it:
/// bytes moved (k read, n − m written per rebuild) per byte of data and
/// month, for node failure rate `alpha` per month.
pub fn giroire_repair_ratio(alpha: f64, k: u16, n: u16, m: u16) -> f64 {
    alpha * f64::from(n - m + k) / (f64::from(k) * (f64::from(n) / f64::from(m)).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formulas_reproduce_the_printed_tables() {
        for (k, n, percent) in STORJ_DURABILITY_AT_10_PERCENT {
            let ours = 100.0 * storj_poisson_durability(0.1, k, n);
            assert!((ours - percent).abs() < 1e-11, "({k}, {n}): {ours} printed {percent}");
        }
        for (mttf, k, n, m, printed) in STORJ_REPAIR_RATIOS {
            let ours = giroire_repair_ratio(1.0 / mttf, k, n, m);
            assert!((ours - printed).abs() < 0.005 + 1e-9, "({mttf}, {k}, {n}, {m}): {ours} printed {printed}");
        }
        // Replication with one copy: both models give e^(-0.1) when the
        // monthly rate is the Poisson rate.
        assert!((binomial_durability(1.0 - (-0.1f64).exp(), 1, 1) - (-0.1f64).exp()).abs() < 1e-15);
        assert!((binomial_durability(0.1, 4, 6) - 0.98415).abs() < 1e-12);
    }
}
