//! Network benchmark: a devnet of six nodes on this machine, a random file
//! uploaded and downloaded through the client library, and in the same run a
//! plain iroh-blobs transfer of the same bytes between two loopback
//! endpoints, for scale. Prints throughput and peak RSS (VmHWM) of the
//! client and of every node.
//!
//! `cargo build --release --workspace && cargo run --release -p strand-client --example network_bench -- [MiB] [rounds] [download threads]`

use std::path::Path;
use std::time::Instant;

use strand_client::devnet::{self, DevnetConfig};
use strand_client::network::{self, UploadOptions};
use strand_client::record::UploadRecord;
use strand_core::{CodecParams, Identity};

/// Starts this process's peak RSS afresh (Linux: `5` to clear_refs resets
/// VmHWM to the current RSS).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far, from
/// `/proc/PID/stat` (`self` for this process).
fn cpu_seconds(pid: &str) -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) start at
            // the state; utime and stime are the 12th and 13th of those.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
        })
        .map_or(0.0, |ticks| ticks / ticks_per_second)
}

/// CPU seconds of this process and of every node of `network`.
fn cpu_of(network: &devnet::Devnet) -> (f64, f64) {
    let nodes = network.processes[1..].iter().map(|process| cpu_seconds(&process.id().to_string())).sum();
    (cpu_seconds("self"), nodes)
}

fn write_random(path: &Path, bytes: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    let mut rng = rand::rng();
    let mut written = 0;
    while written < bytes {
        let length = (bytes - written).min(block.len() as u64) as usize;
        rand::Rng::fill_bytes(&mut rng, &mut block[..length]);
        file.write_all(&block[..length])?;
        written += length as u64;
    }
    file.flush()?;
    Ok(())
}

/// A plain iroh-blobs transfer of `file` from one loopback endpoint to
/// another's file store: the transport's own ceiling on this machine.
/// Returns the transfer's wall time and the CPU time it took (both ends).
/// `timed`: served as a node serves, with its get timer (iroh-blobs'
/// per-write transfer events, read until each get ends).
async fn plain_iroh(file: &Path, directory: &Path, timed: bool) -> anyhow::Result<(f64, f64)> {
    let server_store = iroh_blobs::store::fs::FsStore::load(directory.join("server")).await?;
    let hash = server_store.add_path(file).await?.hash;
    let server = strand_net::blobs::endpoint([1; 32], "127.0.0.1:0".parse()?).await?;
    let client_key = Identity::from_secret_bytes(&[2; 32]);
    let gate: strand_net::blobs::Gate = std::sync::Arc::new(|_, _, _, _| Ok(()));
    let router = if timed {
        // A few atomic adds per get, as a histogram's observe.
        let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let done: strand_net::blobs::GetDone = std::sync::Arc::new(move |elapsed, _| {
            total.fetch_add(elapsed.as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
        });
        strand_net::blobs::serve_timed(server.clone(), (*server_store).clone(), gate, done)
    } else {
        strand_net::blobs::serve(server.clone(), (*server_store).clone(), gate)
    };
    let client = strand_net::blobs::endpoint(*client_key.secret_bytes(), "127.0.0.1:0".parse()?).await?;
    let client_store = iroh_blobs::store::fs::FsStore::load(directory.join("client")).await?;
    let remote = strand_net::blobs::remote_address(*server.id().as_bytes(), &server.bound_sockets())?;
    let started = Instant::now();
    let cpu_before = cpu_seconds("self");
    let connection = strand_net::blobs::connect(&client, remote, std::time::Duration::from_secs(10)).await?;
    strand_net::blobs::fetch_into(&client_store, &connection, *hash.as_bytes(), std::time::Duration::from_secs(3600))
        .await?;
    client_store.sync_db().await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self") - cpu_before;
    router.shutdown().await?;
    client_store.shutdown().await?;
    server_store.shutdown().await?;
    Ok((seconds, cpu))
}

/// One round's figures.
struct Round {
    upload_seconds: f64,
    upload_phases: (f64, f64, f64),
    upload_cpu: (f64, f64),
    upload_rss_kib: u64,
    download_seconds: f64,
    download_cpu: (f64, f64),
    download_rss_kib: u64,
    plain_seconds: f64,
    plain_cpu: f64,
    timed_seconds: f64,
    timed_cpu: f64,
    identical: bool,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mebibytes: u64 = std::env::args().nth(1).and_then(|text| text.parse().ok()).unwrap_or(1024);
    let rounds: usize = std::env::args().nth(2).and_then(|text| text.parse().ok()).unwrap_or(3).max(1);
    // The CLI's default (`--threads`): fragments fetched at once.
    let download_threads: usize = std::env::args().nth(3).and_then(|text| text.parse().ok()).unwrap_or(8).max(1);
    let bytes = mebibytes << 20;
    let work = tempfile::Builder::new().prefix("strand-network-bench-").tempdir()?;
    let file = work.path().join("sample.bin");
    write_random(&file, bytes)?;
    let config = DevnetConfig {
        directory: work.path().join("devnet"),
        binaries: devnet::own_directory()?.parent().map(Path::to_path_buf).unwrap_or_default(),
        nodes: 6,
        block_interval_ms: 200,
        epoch_blocks: 600,
        validators: 0,
    };
    let network = devnet::start(&config)?;
    let owner = Identity::generate(&mut rand::rng());
    let home = work.path().join("home");
    let (mut client, genesis) = strand_client::ledger::connect(&network.ledger, &home).await?;
    let mut follower = strand_client::ledger::sync(&mut client, &genesis, &home).await?;
    let options = UploadOptions { params: CodecParams::default(), term_epochs: 1000, threads: 2 };
    let file_hash = strand_client::offline::hash_file(&file)?;
    let mut results = Vec::new();
    // Rounds interleave upload, download and the plain transfer, so a slow
    // spell of this shared machine touches all three alike.
    for round in 0..rounds {
        follower.catch_up(&mut client).await?;
        reset_peak_rss();
        let cpu_before_upload = cpu_of(&network);
        let started = Instant::now();
        let summary =
            network::upload(&file, &owner, &mut client, follower.replica().state(), &home, options, |_| {}).await?;
        let upload_seconds = started.elapsed().as_secs_f64();
        let cpu_after_upload = cpu_of(&network);
        let upload_rss_kib = peak_rss_kib("self");
        if std::env::var_os("STRAND_BENCH_UPLOAD_ONLY").is_some() {
            // For profiling the upload alone (`perf record -a`).
            println!("upload {:.0} MB/s", bytes as f64 / upload_seconds / 1e6);
            continue;
        }
        let record = UploadRecord::load(&home, &summary.upload_id, &owner)?;
        follower.catch_up(&mut client).await?;
        let copy = work.path().join("copy.bin");
        reset_peak_rss();
        let started = Instant::now();
        strand_client::download::download(
            &owner,
            record,
            follower.replica().state(),
            &copy,
            None,
            download_threads,
            |_| {},
        )
        .await?;
        let download_seconds = started.elapsed().as_secs_f64();
        let cpu_after_download = cpu_of(&network);
        let download_rss_kib = peak_rss_kib("self");
        let identical = strand_client::offline::hash_file(&copy)? == file_hash;
        std::fs::remove_file(&copy)?;
        let plain_directory = work.path().join(format!("plain-{round}"));
        let (plain_seconds, plain_cpu) = plain_iroh(&file, &plain_directory, false).await?;
        std::fs::remove_dir_all(&plain_directory)?;
        let (timed_seconds, timed_cpu) = plain_iroh(&file, &plain_directory, true).await?;
        std::fs::remove_dir_all(&plain_directory)?;
        let difference = |before: (f64, f64), after: (f64, f64)| (after.0 - before.0, after.1 - before.1);
        results.push(Round {
            upload_seconds,
            upload_phases: (summary.encode_seconds, summary.transfer_seconds, summary.ledger_seconds),
            upload_cpu: difference(cpu_before_upload, cpu_after_upload),
            upload_rss_kib,
            download_seconds,
            download_cpu: difference(cpu_after_upload, cpu_after_download),
            download_rss_kib,
            plain_seconds,
            plain_cpu,
            timed_seconds,
            timed_cpu,
            identical,
        });
    }
    if results.is_empty() {
        devnet::stop(network);
        return Ok(());
    }
    let node_rss: Vec<u64> =
        network.processes[1..].iter().map(|process| peak_rss_kib(&process.id().to_string())).collect();
    devnet::stop(network);

    let gib = bytes as f64 / f64::from(1u32 << 30);
    let rate = |seconds: f64| bytes as f64 / seconds / 1e6;
    println!(
        "file {mebibytes} MiB, RS(4+2), 1 MiB chunks, 6 nodes, {rounds} rounds; identical after every download: {}",
        results.iter().all(|round| round.identical)
    );
    for (number, round) in results.iter().enumerate() {
        let (encode, transfer, ledger) = round.upload_phases;
        println!(
            "round {number}: upload {:.0} MB/s ({:.2} s: encode+pull {encode:.2}, sign {transfer:.2}, ledger {ledger:.2}; \
             CPU {:.1} client + {:.1} nodes), download {:.0} MB/s ({:.2} s; CPU {:.1} + {:.1}), \
             plain iroh-blobs {:.0} MB/s ({:.2} s; CPU {:.1})",
            rate(round.upload_seconds),
            round.upload_seconds,
            round.upload_cpu.0,
            round.upload_cpu.1,
            rate(round.download_seconds),
            round.download_seconds,
            round.download_cpu.0,
            round.download_cpu.1,
            rate(round.plain_seconds),
            round.plain_seconds,
            round.plain_cpu,
        );
    }
    let upload = median(results.iter().map(|round| rate(round.upload_seconds)).collect());
    let download = median(results.iter().map(|round| rate(round.download_seconds)).collect());
    let plain = median(results.iter().map(|round| rate(round.plain_seconds)).collect());
    let cpu_per_gib = |cpu: (f64, f64), moved: f64| (cpu.0 + cpu.1) / moved;
    println!("median upload        {upload:.0} MB/s of file bytes = {:.2} x plain iroh-blobs", upload / plain);
    println!("median download      {download:.0} MB/s = {:.2} x plain iroh-blobs", download / plain);
    println!("median plain         {plain:.0} MB/s (iroh-blobs file store to file store, one connection)");
    let timed = median(results.iter().map(|round| rate(round.timed_seconds)).collect());
    println!(
        "median plain, timed  {timed:.0} MB/s = {:.3} x plain (served with the node's get timer); CPU per GiB {:.2} s vs {:.2} s",
        timed / plain,
        median(results.iter().map(|round| round.timed_cpu / gib).collect()),
        median(results.iter().map(|round| round.plain_cpu / gib).collect()),
    );
    println!(
        "median CPU per GiB moved: upload {:.2} s (1.5 GiB of fragments per GiB, encoding included), \
         download {:.2} s, plain {:.2} s",
        median(results.iter().map(|round| cpu_per_gib(round.upload_cpu, gib * 1.5)).collect()),
        median(results.iter().map(|round| cpu_per_gib(round.download_cpu, gib)).collect()),
        median(results.iter().map(|round| round.plain_cpu / gib).collect()),
    );
    println!(
        "client peak RSS      upload {} MiB, download {} MiB (largest of the rounds)",
        results.iter().map(|round| round.upload_rss_kib).max().unwrap_or(0) / 1024,
        results.iter().map(|round| round.download_rss_kib).max().unwrap_or(0) / 1024
    );
    println!("node peak RSS        {:?} MiB", node_rss.iter().map(|kib| kib / 1024).collect::<Vec<_>>());
    Ok(())
}
