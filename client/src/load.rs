//! `strand load`: many clients at once against a network, for a bounded
//! time — each its own key and home, uploading a random file, downloading
//! it back and comparing it byte for byte, again and again until the time
//! is up. Reports operations, throughput and p50/p99 latency per
//! operation, and every error (a load run with errors fails).
//!
//! Cost: each client holds one file of `size` bytes twice (the original and
//! the copy) on disk and its ledger replica in memory; a round's work is
//! an upload and a download through the same code as `strand upload` and
//! `strand download`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use strand_core::{CodecParams, Identity};

use crate::network::{self, UploadOptions};
use crate::record::UploadRecord;

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The ledger service.
    pub ledger: String,
    /// Clients at once.
    pub clients: usize,
    /// New rounds start until this much time has passed (a round under way
    /// finishes).
    pub duration: Duration,
    /// Bytes per file.
    pub size: u64,
    /// The codec's parameters (chunk size, k, m).
    pub params: CodecParams,
    /// Contract term of the uploads.
    pub term_epochs: u32,
    /// Where the clients' homes and files go.
    pub directory: PathBuf,
}

/// Latency percentiles of one operation, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// How many completed.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    fn of(mut seconds: Vec<f64>) -> Self {
        seconds.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let last = seconds.len().saturating_sub(1);
            seconds.get(((last as f64) * q).round() as usize).copied().unwrap_or(0.0) * 1000.0
        };
        Self { count: seconds.len() as u64, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: at(1.0) }
    }
}

/// A load run's outcome.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Clients.
    pub clients: usize,
    /// Wall time, from the first round's start to the last round's end.
    pub seconds: f64,
    /// Uploads.
    pub upload: Latency,
    /// Downloads (each compared with its original).
    pub download: Latency,
    /// Bytes uploaded and downloaded, per second of wall time.
    pub throughput_bytes_per_s: f64,
    /// Downloads that came back byte-identical.
    pub identical: u64,
    /// Everything that went wrong, with the client and round.
    pub errors: Vec<String>,
}

/// One client's rounds.
#[derive(Default)]
struct ClientRun {
    uploads: Vec<f64>,
    downloads: Vec<f64>,
    identical: u64,
    bytes: u64,
    errors: Vec<String>,
}

/// Runs the load and reports; `progress` hears of each round done.
pub async fn run(config: &LoadConfig, progress: impl Fn(usize, usize) + Send + Sync + 'static) -> LoadReport {
    let started = Instant::now();
    let deadline = started + config.duration;
    let progress = std::sync::Arc::new(progress);
    let tasks: Vec<_> = (0..config.clients)
        .map(|client| {
            let config = config.clone();
            let progress = progress.clone();
            tokio::spawn(async move { run_client(&config, client, deadline, &*progress).await })
        })
        .collect();
    let mut runs = Vec::with_capacity(tasks.len());
    for (client, task) in tasks.into_iter().enumerate() {
        runs.push(task.await.unwrap_or_else(|error| ClientRun {
            errors: vec![format!("client {client}: its task failed: {error}")],
            ..ClientRun::default()
        }));
    }
    let seconds = started.elapsed().as_secs_f64();
    let bytes: u64 = runs.iter().map(|run| run.bytes).sum();
    LoadReport {
        clients: config.clients,
        seconds,
        upload: Latency::of(runs.iter().flat_map(|run| run.uploads.iter().copied()).collect()),
        download: Latency::of(runs.iter().flat_map(|run| run.downloads.iter().copied()).collect()),
        throughput_bytes_per_s: bytes as f64 / seconds.max(f64::EPSILON),
        identical: runs.iter().map(|run| run.identical).sum(),
        errors: runs.into_iter().flat_map(|run| run.errors).collect(),
    }
}

async fn run_client(
    config: &LoadConfig,
    client: usize,
    deadline: Instant,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> ClientRun {
    let mut run = ClientRun::default();
    let home = config.directory.join(format!("client-{client}"));
    let identity = Identity::generate(&mut rand::rng());
    // One ledger connection and replica per client, caught up each round.
    let connected = async {
        std::fs::create_dir_all(&home)?;
        let (mut ledger, genesis) = crate::ledger::connect(&config.ledger, &home).await?;
        let follower = crate::ledger::sync(&mut ledger, &genesis, &home).await?;
        anyhow::Ok((ledger, follower))
    };
    let (mut ledger, mut follower) = match connected.await {
        Ok(connected) => connected,
        Err(error) => {
            run.errors.push(format!("client {client}: {error:#}"));
            return run;
        }
    };
    let mut round = 0;
    // At least one round each, then rounds while time is left.
    while round == 0 || Instant::now() < deadline {
        let outcome = one_round(config, &home, &identity, &mut ledger, &mut follower, &mut run).await;
        if let Err(error) = outcome {
            run.errors.push(format!("client {client} round {round}: {error:#}"));
            break;
        }
        progress(client, round);
        round += 1;
    }
    run
}

/// Upload a fresh random file, download it, compare.
async fn one_round(
    config: &LoadConfig,
    home: &Path,
    identity: &Identity,
    ledger: &mut strand_ledger_service::client::LedgerClient,
    follower: &mut strand_ledger_service::follower::Follower,
    run: &mut ClientRun,
) -> anyhow::Result<()> {
    let file = home.join("original");
    let copy = home.join("copy");
    let mut bytes = vec![0u8; config.size as usize];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
    std::fs::write(&file, &bytes)?;
    follower.catch_up(ledger).await?;
    let options = UploadOptions { params: config.params, term_epochs: config.term_epochs, threads: 2 };
    let started = Instant::now();
    let summary = network::upload(&file, identity, ledger, follower.replica().state(), home, options, |_| {}).await?;
    run.uploads.push(started.elapsed().as_secs_f64());
    let record = UploadRecord::load(home, &summary.upload_id, identity)?;
    follower.catch_up(ledger).await?;
    let started = Instant::now();
    crate::download::download(identity, record, follower.replica().state(), &copy, None, 4, |_| {}).await?;
    run.downloads.push(started.elapsed().as_secs_f64());
    let back = std::fs::read(&copy)?;
    std::fs::remove_file(&copy)?;
    if back != bytes {
        anyhow::bail!("upload {} came back different ({} bytes for {})", summary.upload_id, back.len(), bytes.len());
    }
    run.identical += 1;
    run.bytes += 2 * config.size;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let latency = Latency::of((1..=100).map(|n| f64::from(n) / 1000.0).collect());
        assert_eq!(latency.count, 100);
        assert!((latency.p50_ms - 51.0).abs() < 1e-9 && (latency.p99_ms - 99.0).abs() < 1e-9, "{latency:?}");
        assert!((latency.max_ms - 100.0).abs() < 1e-9);
        assert_eq!(Latency::of(Vec::new()), Latency::default());
    }
}
