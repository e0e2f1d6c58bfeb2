//! What the ledger service's metrics cost at the scale of a national
//! network: 10,000 providers owing proofs, 1% of them missing the epoch and
//! 1% with a check record to look up. Measured: the work at an epoch's first block (proof
//! epochs per provider, providers by state, uploads by health), an ordinary
//! block's ledger-wide gauges, and one scrape's text (printed: series and
//! bytes).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use strand_contracts::state::{ChainParams, LedgerState, ProofRecord, ProofSlot, ProofStatus, Provider};
use strand_contracts::transaction::{FailureDomain, ProviderRegistration};
use strand_contracts::{AccountId, Digest};
use strand_ledger_service::metrics::{LedgerMetrics, Observer};

const PROVIDERS: u32 = 10_000;
const EPOCH_BLOCKS: u64 = 60;

/// A state at the first block of epoch `epoch + 1` in which every provider
/// owed proofs for `epoch`: 1% missed it, 1% have a check record (of a
/// contract the state does not hold: looked up, not counted), the rest passed.
fn state(epoch: u64) -> LedgerState {
    let mut state = LedgerState::new(ChainParams { chain: Digest([1; 32]), epoch_blocks: EPOCH_BLOCKS });
    state.height = (epoch + 1) * EPOCH_BLOCKS;
    for index in 0..PROVIDERS {
        let mut account = [0u8; 32];
        account[..4].copy_from_slice(&index.to_le_bytes());
        let account = AccountId(account);
        let registration = ProviderRegistration {
            endpoints: vec![format!("10.0.0.1:{index}")],
            capacity_bytes: 1 << 40,
            domain: FailureDomain {
                organisation: format!("organisation-{}", index % 50),
                site: "site".into(),
                jurisdiction: "EU".into(),
            },
        };
        let mut provider = Provider::registered(registration, 1, index);
        provider.roster.contracts = 10;
        provider.liveness.closed(epoch, index % 100 == 0);
        let slot = if index % 100 == 0 { ProofSlot::Missed } else { ProofSlot::Submitted(Digest([2; 32])) };
        state.proof_slots.insert((epoch, account), slot);
        if index % 100 == 1 {
            // A check record to look up.
            let contract = Digest([index as u8; 32]);
            state.proofs.insert(
                (epoch, contract),
                ProofRecord { transaction: None, at_height: state.height - 1, status: ProofStatus::Missed },
            );
        }
        state.providers.insert(account, provider);
    }
    state
}

fn metrics(c: &mut Criterion) {
    let mut group = c.benchmark_group("ledger_metrics");
    group.sample_size(20);
    let (first, second) = (state(10), state(11));
    group.bench_function(format!("epoch_close/providers={PROVIDERS}"), |bench| {
        bench.iter_batched(
            || {
                let metrics = LedgerMetrics::new();
                let mut observer = Observer::default();
                metrics.state(&mut observer, &first);
                (metrics, observer)
            },
            |(metrics, mut observer)| {
                metrics.state(&mut observer, black_box(&second));
                (metrics, observer)
            },
            criterion::BatchSize::LargeInput,
        );
    });
    let metrics = LedgerMetrics::new();
    let mut observer = Observer::default();
    metrics.state(&mut observer, &first);
    metrics.state(&mut observer, &second);
    let mut block = second.clone();
    block.height += 1;
    group.bench_function(format!("block/providers={PROVIDERS}"), |bench| {
        bench.iter(|| metrics.state(&mut observer, black_box(&block)));
    });
    let text = metrics.render();
    let series = text.lines().filter(|line| !line.starts_with('#')).count();
    eprintln!("one scrape at {PROVIDERS} providers: {series} series, {} bytes", text.len());
    group.bench_function(format!("render/providers={PROVIDERS}"), |bench| bench.iter(|| black_box(metrics.render())));
    group.finish();
}

criterion_group!(benches, metrics);
criterion_main!(benches);
