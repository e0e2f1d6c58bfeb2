//! Proofs on a real network: a devnet of six release nodes (200 ms blocks,
//! 3-second epochs), small uploads until every provider holds N contracts,
//! then over E epochs, per provider and epoch, from the nodes' own metrics:
//! bytes of proof transactions submitted to the ledger
//! (`strand_node_proof_submission_bytes_total`), bytes read from the store to
//! answer (`strand_node_proof_bytes_read_total`), challenges answered, and
//! the ledger's verdicts.
//!
//! `cargo build --release --workspace && cargo run --release -p strand-client --example proof_network_bench -- [N] [E]`
//! (default N = 1000, E = 5). Each upload is one stripe of RS(4+2) with
//! 64 KiB chunks (fragments of 64 KiB + 16 B): one contract on every node.

use std::path::Path;
use std::time::{Duration, Instant};

use strand_client::devnet::{self, DevnetConfig};
use strand_client::network::UploadOptions;
use strand_core::{CodecParams, Identity};

const OWNERS: usize = 10;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn metrics(url: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("not an http url: {url}"))?;
    let (host, path) = rest.split_once('/').ok_or_else(|| anyhow::anyhow!("no path in {url}"))?;
    let mut stream = std::net::TcpStream::connect(host)?;
    write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

async fn epoch(ledger: &str) -> anyhow::Result<u64> {
    let mut client = strand_ledger_service::client::LedgerClient::connect(ledger).await?;
    Ok(client.status().await?.epoch)
}

async fn uploads(ledger: String, directory: std::path::PathBuf, owner: usize, count: usize) -> anyhow::Result<()> {
    let identity = Identity::generate(&mut rand::rng());
    let home = directory.join(format!("owner-{owner}"));
    std::fs::create_dir_all(&home)?;
    let params = CodecParams { chunk_size: 64 * 1024, ..CodecParams::default() };
    let options = UploadOptions { params, term_epochs: 100_000, threads: 1 };
    for upload in 0..count {
        let file = home.join(format!("sample-{upload}"));
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i ^ (owner * 7919 + upload) as u32) as u8).collect();
        std::fs::write(&file, bytes)?;
        let (mut client, genesis) = strand_client::ledger::connect(&ledger, &home).await?;
        let follower = strand_client::ledger::sync(&mut client, &genesis, &home).await?;
        let state = follower.replica().state().clone();
        drop(follower);
        strand_client::network::upload(&file, &identity, &mut client, &state, &home, options, |_| {}).await?;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let contracts: usize = std::env::args().nth(1).and_then(|text| text.parse().ok()).unwrap_or(1000);
    let epochs: u64 = std::env::args().nth(2).and_then(|text| text.parse().ok()).unwrap_or(5).max(1);
    let work = tempfile::Builder::new().prefix("strand-proof-bench-").tempdir()?;
    let config = DevnetConfig {
        directory: work.path().join("devnet"),
        binaries: devnet::own_directory()?.parent().map(Path::to_path_buf).unwrap_or_default(),
        nodes: 6,
        block_interval_ms: 200,
        epoch_blocks: 15,
        validators: 0,
    };
    let network = devnet::start(&config)?;
    let urls: Vec<String> = network.processes[1..]
        .iter()
        .map(|process| process.ready_line.split_whitespace().last().unwrap_or_default().to_string())
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = (0..OWNERS)
        .map(|owner| {
            let count = contracts / OWNERS + usize::from(owner < contracts % OWNERS);
            tokio::spawn(uploads(network.ledger.clone(), work.path().to_path_buf(), owner, count))
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    eprintln!("{contracts} uploads in {:.0} s", started.elapsed().as_secs_f64());
    // Every contract is in its roster from the epoch after it was opened:
    // start counting two epochs on.
    let from = epoch(&network.ledger).await? + 2;
    while epoch(&network.ledger).await? < from {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let names = [
        "strand_node_proof_submission_bytes_total",
        "strand_node_proof_bytes_read_total",
        "strand_node_proof_challenges_total",
        "strand_node_proofs_submitted_total",
        "strand_node_proof_verdicts_total{verdict=\"passed\"}",
        "strand_node_proof_verdicts_total{verdict=\"failed\"}",
        "strand_node_proof_verdicts_total{verdict=\"missed\"}",
        "strand_node_contracts_held",
    ];
    let read = |urls: &[String]| -> anyhow::Result<Vec<Vec<f64>>> {
        urls.iter()
            .map(|url| {
                let text = metrics(url)?;
                Ok(names.iter().map(|name| metric(&text, name)).collect())
            })
            .collect()
    };
    // Snapshots half an epoch after an epoch starts: by then every node has
    // submitted its answers for the epoch before (a snapshot at the very
    // start would count one submission too many).
    let half_epoch = Duration::from_millis(config.block_interval_ms * config.epoch_blocks / 2);
    tokio::time::sleep(half_epoch).await;
    let before = read(&urls)?;
    while epoch(&network.ledger).await? < from + epochs {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(half_epoch).await;
    let after = read(&urls)?;
    println!(
        "| node | contracts held | submission bytes per epoch | store bytes read per epoch | challenges per epoch | \
         contracts answered per epoch | verdicts passed / failed / missed |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (node, (before, after)) in before.iter().zip(&after).enumerate() {
        let per_epoch = |index: usize| (after[index] - before[index]) / epochs as f64;
        println!(
            "| node-{} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {} / {} / {} |",
            node + 1,
            after[7],
            per_epoch(0),
            per_epoch(1),
            per_epoch(2),
            per_epoch(3),
            after[4] - before[4],
            after[5] - before[5],
            after[6] - before[6],
        );
    }
    println!("({epochs} epochs of 3 s, from epoch {from}; {contracts} contracts per provider)");
    devnet::stop(network);
    Ok(())
}
