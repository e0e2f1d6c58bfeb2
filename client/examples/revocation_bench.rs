//! Revocation latency on a local devnet: from submitting a revoke to the
//! first refusal of a get by the grantee at a node, for a grantee that had
//! presented the credential (and was being served) before.
//!
//! `cargo run --release -p strand-client --example revocation_bench -- [ROUNDS] [BLOCK_MS] [VALIDATORS]`
//!
//! VALIDATORS 0 (the default) orders the ledger with the single sequencer,
//! 4 or more with a consortium of that many validators.

use std::path::Path;
use std::time::{Duration, Instant};

use strand_client::credentials;
use strand_client::devnet::{self, DevnetConfig};
use strand_client::network::{self, UploadOptions};
use strand_client::record::UploadRecord;
use strand_contracts::transaction::Body;
use strand_contracts::{AccountId, Transaction};
use strand_core::{CodecParams, Identity};

/// Bytes of the one fragment `holder` releases to `who` (0 when refused).
async fn get(who: &Identity, holder: [u8; 32], sockets: &[std::net::SocketAddr], fragment: [u8; 32]) -> usize {
    let Ok(endpoint) = strand_net::blobs::endpoint(*who.secret_bytes(), "127.0.0.1:0".parse().expect("addr")).await
    else {
        return 0;
    };
    let mut got = 0;
    if let Ok(remote) = strand_net::blobs::remote_address(holder, sockets)
        && let Ok(connection) = strand_net::blobs::connect(&endpoint, remote, Duration::from_secs(5)).await
    {
        got =
            strand_net::blobs::fetch_bytes(&connection, fragment, Duration::from_secs(5)).await.map_or(0, |b| b.len());
    }
    endpoint.close().await;
    got
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).and_then(|text| text.parse().ok()).unwrap_or(10);
    let block_ms: u64 = std::env::args().nth(2).and_then(|text| text.parse().ok()).unwrap_or(200);
    let validators: usize = std::env::args().nth(3).and_then(|text| text.parse().ok()).unwrap_or(0);
    let work = tempfile::Builder::new().prefix("strand-revocation-bench-").tempdir()?;
    let file = work.path().join("sample.bin");
    std::fs::write(&file, vec![7u8; 300_000])?;
    let config = DevnetConfig {
        directory: work.path().join("devnet"),
        binaries: devnet::own_directory()?.parent().map(Path::to_path_buf).unwrap_or_default(),
        nodes: 6,
        block_interval_ms: block_ms,
        epoch_blocks: 600,
        validators,
    };
    let network = devnet::start(&config)?;
    let (owner, grantee) = (Identity::generate(&mut rand::rng()), Identity::generate(&mut rand::rng()));
    let home = work.path().join("home");
    let (mut client, genesis) = strand_client::ledger::connect(&network.ledger, &home).await?;
    let mut follower = strand_client::ledger::sync(&mut client, &genesis, &home).await?;
    let params = CodecParams { chunk_size: 64 * 1024, ..CodecParams::default() };
    let options = UploadOptions { params, term_epochs: 1000, threads: 2 };
    let summary =
        network::upload(&file, &owner, &mut client, follower.replica().state(), &home, options, |_| {}).await?;
    let record = UploadRecord::load(&home, &summary.upload_id, &owner)?;
    let holder = record.provider_of(0, 0);
    let fragment = *record.index.stripe(0)[0].as_bytes();
    let mut latencies = Vec::new();
    for _ in 0..rounds {
        follower.catch_up(&mut client).await?;
        let state = follower.replica().state().clone();
        let expiry = state.height + 100_000;
        let (credential, _) =
            credentials::grant(&owner, &mut client, &state, &record, &grantee.public_key(), expiry, "bench").await?;
        follower.catch_up(&mut client).await?;
        let state = follower.replica().state().clone();
        // The nodes learn of the grant from their own replicas: present
        // until the holder has applied it.
        let presented = Instant::now();
        while !credentials::present(&grantee, &record, &state, &credential)
            .await?
            .iter()
            .any(|(provider, outcome)| *provider == holder && outcome.is_ok())
        {
            anyhow::ensure!(presented.elapsed() < Duration::from_secs(30), "the holder never accepted the grant");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sockets = state.providers.get(&holder).map(|p| network::endpoints_of(p).iroh).unwrap_or_default();
        anyhow::ensure!(
            get(&grantee, holder.0, &sockets, fragment).await > 0,
            "the grantee is served before the revoke"
        );
        let nonce = state.accounts.get(&AccountId::of(&owner.public_key())).map_or(0, |a| a.nonce) + 1;
        let revoke = Transaction::sign(state.params.chain, &owner, nonce, Body::RevokeCredential { credential });
        let started = Instant::now();
        client.submit(revoke.to_bytes()).await?.map_err(|reason| anyhow::anyhow!("{reason}"))?;
        loop {
            if get(&grantee, holder.0, &sockets, fragment).await == 0 {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "no refusal within 30 s");
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    devnet::stop(network);
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    let ledger = if validators > 0 { format!("{validators} validators") } else { "the sequencer".into() };
    println!("revocation latency over {rounds} rounds, {block_ms} ms blocks, 6 nodes, ordered by {ledger}:");
    println!(
        "  median {median:.0} ms = {:.2} block intervals; max {max:.0} ms = {:.2} block intervals",
        median / block_ms as f64,
        max / block_ms as f64
    );
    println!("  all: {latencies:.0?}");
    Ok(())
}
