//! Finalised transactions per second and time to finality: a consortium of
//! four `strand-validator` processes against the single `strand-sequencer`,
//! measured in the same run on this machine (no storage nodes: the ledger
//! alone).
//!
//! `cargo run --release -p strand-client --example consortium_bench -- [TRANSACTIONS] [BLOCK_MS] [SAMPLES] [EPOCH_BLOCKS]`
//!
//! Throughput: TRANSACTIONS provider registrations from as many fresh
//! accounts (signed before the clock starts), submitted over 32 connections
//! spread across the ledger's addresses; the clock runs from the first
//! submission until a block holding the last of them is final. Finality:
//! SAMPLES single transactions on an idle chain, each from its submission
//! until the ledger reports it finalised (polled every 5 ms). Epoch
//! boundaries: the time between each block and its parent (header
//! timestamps) over the whole run, for the first block of an epoch (a
//! consortium starts a new engine instance there) and for the others.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use strand_client::devnet::{self, DevnetConfig};
use strand_contracts::transaction::{Body, FailureDomain, ProviderRegistration, transaction_hash};
use strand_contracts::{Block, Digest, Transaction};
use strand_core::Identity;
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::protocol::TransactionStatus;

const CONNECTIONS: usize = 32;

fn registration(chain: Digest, seed: u64) -> Vec<u8> {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&seed.to_le_bytes());
    secret[8] = 1;
    let who = Identity::from_secret_bytes(&secret);
    let body = Body::RegisterProvider(ProviderRegistration {
        endpoints: vec!["127.0.0.1:7000".into()],
        capacity_bytes: 1 << 40,
        domain: FailureDomain { organisation: format!("o{seed}"), site: "s".into(), jurisdiction: "EU".into() },
    });
    Transaction::sign(chain, &who, 1, body).to_bytes()
}

/// CPU seconds (user + system, all threads) the processes have used, from
/// `/proc/<pid>/stat` (USER_HZ is 100 on Linux).
fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .sum()
}

struct Figures {
    transactions_per_second: f64,
    /// CPU seconds the ledger processes spent per 1,000 finalised
    /// transactions, per process.
    cpu_per_thousand: f64,
    blocks: u64,
    finality_ms: Vec<f64>,
    /// Parent-to-block times of epochs' first blocks, and of the others.
    boundary_ms: Vec<f64>,
    inner_ms: Vec<f64>,
}

async fn measure(
    ledger: &str,
    pids: &[u32],
    transactions: u64,
    samples: usize,
    seed_base: u64,
    block_ms: u64,
    epoch_blocks: u64,
) -> anyhow::Result<Figures> {
    let addresses: Vec<String> = ledger.split(',').map(str::to_string).collect();
    let mut client = LedgerClient::connect(ledger).await?;
    let chain = client.genesis().await?.chain();
    let batch: Vec<Vec<u8>> = (0..transactions).map(|index| registration(chain, seed_base + index)).collect();
    let hashes: std::collections::HashSet<Digest> = batch.iter().map(|bytes| transaction_hash(bytes)).collect();
    let start_height = client.status().await?.height;

    // Throughput.
    let cpu_before = cpu_seconds(pids);
    let started = Instant::now();
    let chunks: Vec<Vec<Vec<u8>>> = batch.chunks(batch.len().div_ceil(CONNECTIONS)).map(<[Vec<u8>]>::to_vec).collect();
    let submitters = futures::stream::iter(chunks.into_iter().enumerate())
        .map(|(index, chunk)| {
            let address = addresses[index % addresses.len()].clone();
            async move {
                let mut client = LedgerClient::connect(&address).await?;
                for bytes in chunk {
                    loop {
                        match client.submit(bytes.clone()).await? {
                            Ok(_) => break,
                            Err(reason) if reason.contains("busy") || reason.contains("full") => {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(reason) => anyhow::bail!("refused: {reason}"),
                        }
                    }
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONNECTIONS)
        .collect::<Vec<_>>();
    let mut seen = 0usize;
    let mut next = start_height + 1;
    let (results, ()) = tokio::join!(submitters, async {
        while seen < hashes.len() && started.elapsed() < Duration::from_secs(600) {
            let Ok(blocks) = client.blocks(next, 64).await else { continue };
            if blocks.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            for bytes in &blocks {
                if let Ok(block) = Block::from_bytes(bytes) {
                    seen += block.transactions.iter().filter(|bytes| hashes.contains(&transaction_hash(bytes))).count();
                    next = block.header.height + 1;
                }
            }
        }
    });
    for result in results {
        result?;
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(seen == hashes.len(), "only {seen} of {} transactions were finalised", hashes.len());
    let transactions_per_second = hashes.len() as f64 / elapsed.as_secs_f64();
    let cpu_per_thousand = (cpu_seconds(pids) - cpu_before) / pids.len().max(1) as f64 / (hashes.len() as f64 / 1000.0);

    // Time to finality on an idle chain.
    let mut finality_ms = Vec::new();
    for sample in 0..samples {
        // A pause whose phase against the blocks spreads over a whole
        // interval (a fixed pause locks into step with the blocks when it
        // and the finality time add up to a multiple of the interval).
        let phase = (sample as u64).wrapping_mul(7_919) % block_ms.max(1);
        tokio::time::sleep(Duration::from_millis(100 + phase)).await;
        let bytes = registration(chain, seed_base + transactions + sample as u64);
        let hash = transaction_hash(&bytes);
        let submitted = Instant::now();
        client.submit(bytes).await?.map_err(|reason| anyhow::anyhow!("refused: {reason}"))?;
        loop {
            if let TransactionStatus::Finalised { .. } = client.transaction(hash).await? {
                break;
            }
            anyhow::ensure!(submitted.elapsed() < Duration::from_secs(60), "a transaction was not finalised in 60 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        finality_ms.push(submitted.elapsed().as_secs_f64() * 1000.0);
    }
    finality_ms.sort_by(f64::total_cmp);

    // Block intervals at epoch boundaries and inside epochs, from start.
    let head = client.status().await?.height;
    let (mut boundary_ms, mut inner_ms) = (Vec::new(), Vec::new());
    let mut parent: Option<u64> = None;
    let mut height = start_height.max(1);
    while height <= head {
        let blocks = client.blocks(height, 64).await?;
        anyhow::ensure!(!blocks.is_empty(), "the ledger serves no block at height {height}");
        for bytes in &blocks {
            let header = Block::from_bytes(bytes)?.header;
            if let Some(parent) = parent {
                let gap = header.timestamp_ms.saturating_sub(parent) as f64;
                if header.height % epoch_blocks == 0 { boundary_ms.push(gap) } else { inner_ms.push(gap) }
            }
            parent = Some(header.timestamp_ms);
            height = header.height + 1;
        }
    }
    boundary_ms.sort_by(f64::total_cmp);
    inner_ms.sort_by(f64::total_cmp);
    Ok(Figures {
        transactions_per_second,
        cpu_per_thousand,
        blocks: next - start_height - 1,
        finality_ms,
        boundary_ms,
        inner_ms,
    })
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let transactions: u64 = std::env::args().nth(1).and_then(|text| text.parse().ok()).unwrap_or(20_000);
    let block_ms: u64 = std::env::args().nth(2).and_then(|text| text.parse().ok()).unwrap_or(200);
    let samples: usize = std::env::args().nth(3).and_then(|text| text.parse().ok()).unwrap_or(20);
    let epoch_blocks: u64 = std::env::args().nth(4).and_then(|text| text.parse().ok()).unwrap_or(600).max(2);
    let work = tempfile::Builder::new().prefix("strand-consortium-bench-").tempdir()?;
    let mut rows = Vec::new();
    for (name, validators) in [("consortium of 4 validators", 4), ("single sequencer", 0)] {
        let config = DevnetConfig {
            directory: work.path().join(name.replace(' ', "-")),
            binaries: devnet::own_directory()?.parent().map(Path::to_path_buf).unwrap_or_default(),
            nodes: 0,
            block_interval_ms: block_ms,
            epoch_blocks,
            validators,
        };
        let network = devnet::start(&config)?;
        let pids: Vec<u32> = network.processes.iter().map(devnet::Process::id).collect();
        let seed_base = if validators > 0 { 1 << 32 } else { 2 << 32 };
        let figures = measure(&network.ledger, &pids, transactions, samples, seed_base, block_ms, epoch_blocks).await;
        devnet::stop(network);
        let figures = figures?;
        println!(
            "{name}: {:.0} tx/s finalised ({transactions} transactions in {} blocks, {:.2} CPU s per 1,000 per process); time to finality median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
            figures.transactions_per_second,
            figures.blocks,
            figures.cpu_per_thousand,
            percentile(&figures.finality_ms, 0.5),
            percentile(&figures.finality_ms, 0.9),
            figures.finality_ms.last().copied().unwrap_or(0.0)
        );
        if !figures.boundary_ms.is_empty() && !figures.inner_ms.is_empty() {
            println!(
                "{name}: block after its parent, median (max): {:.0} ms ({:.0}) at the {} epochs' first blocks, {:.0} ms ({:.0}) at the {} others",
                percentile(&figures.boundary_ms, 0.5),
                figures.boundary_ms.last().copied().unwrap_or(0.0),
                figures.boundary_ms.len(),
                percentile(&figures.inner_ms, 0.5),
                figures.inner_ms.last().copied().unwrap_or(0.0),
                figures.inner_ms.len()
            );
        }
        rows.push(figures);
    }
    println!(
        "ratio consortium / sequencer: throughput {:.2}, median finality {:.2}",
        rows[0].transactions_per_second / rows[1].transactions_per_second,
        percentile(&rows[0].finality_ms, 0.5) / percentile(&rows[1].finality_ms, 0.5)
    );
    Ok(())
}
