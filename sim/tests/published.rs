//! The simulator against published numbers (sources in
//! `strand_sim::published`): the Storj v3 whitepaper's durability table
//! (§3.4, 10 % monthly churn, no repair) and its quotation of Giroire et
//! al.'s lazy repair bandwidth (§7.1, Table 7.2). The proof-detection
//! check `∏(1 − f)` of our own policy is in `scenarios.rs`.

use strand_sim::published::{
    STORJ_DURABILITY_AT_10_PERCENT, STORJ_REPAIR_RATIOS, binomial_durability, giroire_repair_ratio,
    storj_poisson_durability,
};
use strand_sim::{Engine, RepairPolicy, Scenario, run};

/// Model scenario: `k`+`m`, one stripe per upload.
fn model(name: &str, k: u16, n: u16) -> Scenario {
    Scenario {
        name: name.into(),
        engine: Engine::Model,
        data_shards: k,
        parity_shards: n - k,
        stripes: 1,
        fragment_bytes: 1 << 20,
        transient_loss_per_epoch: 0.0,
        ..Scenario::default()
    }
}

/// One month at 10 % monthly churn without repair, for three rows of the
/// whitepaper's table. Nodes leave independently, so the simulated loss
/// must be the binomial tail, within its noise (the stripes' own, and the
/// network's: how many of the nodes happened to leave). The whitepaper's
/// Poisson figure is that model's approximation, with a heavier tail: the
/// simulated durability is at least the printed one, and we print by how
/// much.
#[test]
fn a_month_of_churn_without_repair_follows_the_whitepapers_durability_model() {
    let rows = [(4u16, 6u16), (2, 4), (4, 8)];
    for (k, n) in rows {
        let printed = STORJ_DURABILITY_AT_10_PERCENT
            .iter()
            .find(|row| (row.0, row.1) == (k, n))
            .map(|row| row.2 / 100.0)
            .expect("a printed row");
        assert!((storj_poisson_durability(0.1, k, n) - printed).abs() < 1e-13);
        let mut scenario = model(&format!("storj-{k}-{n}"), k, n);
        scenario.nodes = 100_000;
        scenario.organisations = 100;
        scenario.uploads = 300_000;
        scenario.epochs_per_month = 30;
        scenario.fault_epochs = 30;
        scenario.liveness_epochs = 0;
        scenario.permanent_loss_per_month = Some(0.1);
        scenario.repair = RepairPolicy::None;
        let report = run(&scenario, u64::from(k) * 100 + u64::from(n));
        assert!(report.violations.is_empty(), "{}", report.text());
        let stripes = report.stripes as f64;
        let simulated = report.stripes_lost as f64 / stripes;
        let exact = 1.0 - binomial_durability(0.1, k, n);
        let whitepaper = 1.0 - printed;
        // Noise: binomial over stripes, plus the tail's sensitivity to the
        // network's realised churn (about (n−k+1)/p times its relative
        // spread, sqrt((1−p)/(p·nodes))).
        let sampling = (exact * (1.0 - exact) / stripes).sqrt();
        let churn_spread = (0.9 / (0.1 * f64::from(scenario.nodes))).sqrt();
        let network = exact * f64::from(n - k + 1) * churn_spread;
        let sigma = (sampling * sampling + network * network).sqrt();
        eprintln!(
            "({k}, {n}): simulated loss {simulated:.6} over {stripes} stripes; binomial {exact:.6} (sigma {sigma:.6}); \
             whitepaper {whitepaper:.6} ({:.2} x the simulated)",
            whitepaper / simulated
        );
        assert!(
            (simulated - exact).abs() <= 4.0 * sigma,
            "({k}, {n}): simulated {simulated} against the binomial {exact} ± 4 × {sigma}"
        );
        assert!(
            simulated < whitepaper && 1.0 - simulated >= printed,
            "({k}, {n}): the whitepaper's Poisson tail bounds the loss: {simulated} vs {whitepaper}"
        );
        assert!(report.nodes_lost as f64 > 0.09 * f64::from(scenario.nodes), "churn happened");
    }
}

/// Lazy repair at threshold m, nodes failing at α = 1/MTTF and replaced:
/// the repair bandwidth per byte stored and month is Giroire et al.'s
/// `α (n − m + k) / (k ln(n/m))` within 5 %, for three rows of the
/// whitepaper's Table 7.2 — measured over the second half of a long run,
/// once the stripes' cycles have spread out.
#[test]
fn lazy_repair_bandwidth_follows_giroires_formula() {
    let rows = [(6.0, 20u16, 40u16, 30u16), (12.0, 20, 40, 25), (12.0, 30, 80, 45)];
    for (mttf, k, n, m) in rows {
        let printed = STORJ_REPAIR_RATIOS
            .iter()
            .find(|row| (row.0, row.1, row.2, row.3) == (mttf, k, n, m))
            .map(|row| row.4)
            .expect("a printed row");
        let formula = giroire_repair_ratio(1.0 / mttf, k, n, m);
        assert!((formula - printed).abs() < 0.005, "the formula gives the printed {printed}");
        let mut scenario = model(&format!("giroire-{k}-{n}-{m}"), k, n);
        let months = 480u64;
        scenario.nodes = 2_000;
        scenario.organisations = 20;
        scenario.uploads = 2_000;
        scenario.epochs_per_month = 240;
        scenario.fault_epochs = months * 240;
        scenario.liveness_epochs = 0;
        scenario.strikes_max = 1;
        scenario.permanent_loss_per_month = Some(1.0 - (-1.0 / mttf).exp());
        scenario.replace_lost_nodes = true;
        scenario.repair = RepairPolicy::Lazy;
        scenario.repair_threshold = Some(m);
        let report = run(&scenario, u64::from(m));
        assert!(report.violations.is_empty(), "{}", report.text());
        assert_eq!(report.stripes_lost, 0, "{}", report.text());
        let half = report.timeline.len() / 2;
        let (start, end) = (report.timeline[half], *report.timeline.last().expect("samples"));
        let moved =
            (end.repair_read_bytes + end.repair_written_bytes) - (start.repair_read_bytes + start.repair_written_bytes);
        let per_month = moved as f64 / report.stored_bytes as f64 / ((end.epoch - start.epoch) as f64 / 240.0);
        eprintln!(
            "MTTF {mttf} months, ({k}, {n}, m = {m}): simulated {per_month:.4} per month, formula {formula:.4} \
             (printed {printed}): {:+.2} %",
            100.0 * (per_month / formula - 1.0)
        );
        assert!((per_month / formula - 1.0).abs() <= 0.05, "{per_month} against {formula}");
    }
}
