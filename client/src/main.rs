//! `strand`: the command-line client.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use strand_client::exit::ExitStatus;
use strand_client::offline;
use strand_client::progress::bytes_bar;
use strand_client::{keyfile, ledger, units};
use strand_core::{CodecParams, Identity};

#[macro_use]
mod output;
mod demo;
mod netcmd;

use output::{print, print_decode, print_encode, print_ledger, print_proofs};

const EXIT_CODES: &str = "Exit codes: 0 success, 1 failure, 2 usage error, 3 data unrecoverable \
(too many fragments of a stripe lost or damaged), 4 integrity failure (tampered data or mismatched \
index), 5 key or index unusable (wrong key, altered index, bad key file).";

/// Strand: encrypted, scrambled, erasure-coded storage for genome data.
#[derive(Parser)]
#[command(name = "strand", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Print a JSON summary on standard output instead of text (no progress bars).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an identity (ed25519 key file, mode 0600) and print its public key.
    Keygen {
        /// Where to write the key [default: $STRAND_HOME/identity.pem, or ~/.strand/identity.pem].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing key file (everything sealed to the old key becomes unreadable).
        #[arg(long)]
        force: bool,
    },
    /// Encode a file into fragment files named by id, plus its recovery index sealed to you.
    Encode {
        /// The file to encode (a regular file: encoding reads it in scrambled order).
        file: PathBuf,
        /// Directory for the fragments (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// Where to write the sealed index [default: <out>/<upload id>.index].
        #[arg(long)]
        index: Option<PathBuf>,
        #[command(flatten)]
        codec: CodecArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Restore a file (or a byte range of it) from a sealed index and fragment files.
    Decode {
        /// The sealed recovery index.
        index: PathBuf,
        /// Directory holding the fragments.
        #[arg(long)]
        fragments: PathBuf,
        /// Where to write the result (only created when the decode succeeds).
        #[arg(long)]
        out: PathBuf,
        /// Only bytes START..END of the file (END exclusive; sizes like 1MiB allowed).
        #[arg(long)]
        range: Option<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Upload a file to the network: encode, place on k+m providers per stripe, open contracts.
    Upload {
        /// The file.
        file: PathBuf,
        #[command(flatten)]
        network: NetworkArgs,
        #[command(flatten)]
        codec: CodecArgs,
        /// Contract term in epochs.
        #[arg(long, default_value_t = 1000)]
        term_epochs: u32,
    },
    /// Download an upload (or a byte range of it) from its providers.
    Download {
        /// The upload id (yours); or give --credential instead.
        #[arg(required_unless_present = "credential", conflicts_with = "credential")]
        upload: Option<String>,
        /// Read as a grantee under this credential id (needs only the ledger and your key).
        #[arg(long)]
        credential: Option<String>,
        /// Where to write it (only created when the download verified).
        #[arg(long)]
        out: PathBuf,
        /// Only bytes START..END.
        #[arg(long)]
        range: Option<String>,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Your uploads and their contracts.
    Ls {
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Health of every stripe of an upload, from the ledger and live probes.
    Status {
        /// The upload id.
        upload: String,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Let another key read the upload (or --range of it): the credential goes on the ledger, its key material sealed to the grantee.
    Grant {
        /// The upload id.
        upload: String,
        /// The grantee's public key (64 hex digits, as `strand keygen` prints it).
        #[arg(long)]
        to: String,
        /// Only bytes START..END (whole chunks): the grantee gets those chunks' keys, never the master key.
        #[arg(long)]
        range: Option<String>,
        /// Last height it is valid at: HEIGHT, or +BLOCKS from now.
        #[arg(long, default_value = "+100000")]
        expires: String,
        /// Why (shown in audits).
        #[arg(long, default_value = "")]
        purpose: String,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Revoke a credential: nodes refuse from the block that includes it.
    Revoke {
        /// The credential id.
        credential: String,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Who read what of an upload and when, from the ledger's access receipts.
    Audit {
        /// The upload id.
        upload: String,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// The credentials of an upload, from the ledger.
    Credentials {
        /// The upload id.
        upload: String,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Proof history of an upload from the ledger: per provider and epoch, passed, failed (why) or missed.
    Proofs {
        /// The upload id.
        upload: String,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Start a local network on loopback: a sequencer and N storage nodes (Ctrl-C stops it).
    Devnet {
        /// Storage nodes to start.
        #[arg(long, default_value_t = 6)]
        nodes: usize,
        /// Order the ledger by a consortium of this many validators (one organisation each, BFT: at least 4)
        /// instead of the single sequencer.
        #[arg(long, default_value_t = 0)]
        validators: usize,
        /// Where the processes keep their data and logs [default: $STRAND_HOME/devnet].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Milliseconds between blocks.
        #[arg(long, default_value_t = 1000)]
        block_interval_ms: u64,
        /// Blocks per epoch.
        #[arg(long, default_value_t = 60)]
        epoch_blocks: u64,
        /// Also upload and download a sample file and print the check.
        #[arg(long)]
        demo: bool,
        /// Size of the demo's sample file.
        #[arg(long, default_value = "16MiB")]
        demo_size: String,
        /// Also start Prometheus (Debian package `prometheus`) scraping the ledger service and every node,
        /// with Strand's alert rules; prints its URL and how to point Grafana at it.
        #[arg(long)]
        monitor: bool,
        /// Where Prometheus listens with --monitor (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:9090")]
        prometheus_listen: String,
        /// Seconds between Prometheus's scrapes and rule evaluations with --monitor.
        #[arg(long, default_value_t = 5)]
        scrape_interval: u64,
    },
    /// Load test: many clients at once upload random files and download them back, for a while.
    ///
    /// Each client has its own key and home under --dir; every download is compared byte for byte.
    /// Prints throughput and p50/p99 latency; exits 1 if any round failed.
    Load {
        /// Clients at once.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Seconds during which new rounds start.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Size of each file.
        #[arg(long, default_value = "256KiB")]
        size: String,
        /// Where the clients' homes go [default: a temporary directory, removed after].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The ledger service (a sequencer).
        #[arg(long, env = "STRAND_LEDGER", default_value = "127.0.0.1:7400")]
        ledger: String,
        #[command(flatten)]
        codec: CodecArgs,
    },
    /// Inspect the ledger: status, blocks, transactions, accounts.
    Ledger {
        /// The ledger service (a sequencer) to ask.
        #[arg(long, env = "STRAND_LEDGER", default_value = "127.0.0.1:7400")]
        ledger: String,
        #[command(subcommand)]
        query: LedgerQuery,
    },
    /// Show the codec end to end on a sample file: encode, lose and damage fragments, decode, check.
    Demo {
        /// Size of the sample file.
        #[arg(long, default_value = "64MiB")]
        size: String,
        /// Work directory [default: a temporary directory, removed afterwards].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct NetworkArgs {
    /// The ledger service (a sequencer).
    #[arg(long, env = "STRAND_LEDGER", default_value = "127.0.0.1:7400")]
    ledger: String,
    /// Your key file [default: $STRAND_HOME/identity.pem, or ~/.strand/identity.pem].
    #[arg(long)]
    key: Option<PathBuf>,
    /// Worker threads (fragments fetched or encoded at once).
    #[arg(long, default_value_t = 8)]
    threads: usize,
}

#[derive(Subcommand)]
enum LedgerQuery {
    /// Chain id, height, head, epoch, mempool.
    Status,
    /// One block and the outcome of each of its transactions.
    Block {
        /// Its height.
        height: u64,
    },
    /// What became of a transaction.
    Tx {
        /// Its hash (64 hex digits).
        hash: String,
    },
    /// An account's nonce, provider record, contracts and credentials, from
    /// your own verified replica of the ledger.
    Account {
        /// Its public key [default: yours].
        key: Option<String>,
        /// Your key file, when no key is given.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

#[derive(Args)]
struct CodecArgs {
    /// Chunk size: a power of two from 1KiB to 64MiB.
    #[arg(long, default_value = "1MiB")]
    chunk_size: String,
    /// k: data fragments per stripe (1 = plain replication).
    #[arg(short = 'k', long, default_value_t = 4)]
    data_shards: u16,
    /// m: parity fragments per stripe (any m may be lost).
    #[arg(short = 'm', long, default_value_t = 2)]
    parity_shards: u16,
}

#[derive(Args)]
struct CommonArgs {
    /// Your key file [default: $STRAND_HOME/identity.pem, or ~/.strand/identity.pem].
    #[arg(long)]
    key: Option<PathBuf>,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

impl CommonArgs {
    fn identity(&self) -> anyhow::Result<Identity> {
        Ok(keyfile::read(&self.key.clone().unwrap_or_else(keyfile::default_key_path))?)
    }

    fn threads(&self) -> usize {
        self.threads.unwrap_or_else(strand_core::pipeline::default_threads)
    }
}

impl CodecArgs {
    fn params(&self) -> anyhow::Result<CodecParams> {
        let chunk_size = units::parse_size(&self.chunk_size)?;
        let params = CodecParams {
            chunk_size: u32::try_from(chunk_size)
                .map_err(|_| strand_core::ParamsError::ChunkSize { chunk_size: u32::MAX })?,
            data_shards: self.data_shards,
            parity_shards: self.parity_shards,
        };
        params.validate()?;
        Ok(params)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`strand proofs UPLOAD | head`): nothing more
        // to say to anyone.
        Err(error) if output::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let status = ExitStatus::of(&error);
            let message = strand_client::exit::describe(&error);
            eprintln!("error: {message}");
            if json {
                let report = serde_json::json!({ "error": message, "exit_code": status as u8 });
                let _ = out!("{report}");
            }
            ExitCode::from(status as u8)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Keygen { out, force } => keygen(&out.unwrap_or_else(keyfile::default_key_path), force, json),
        Command::Encode { file, out, index, codec, common } => {
            let identity = common.identity()?;
            let length = std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?.len();
            let bar = bytes_bar(length, "encoding", json);
            let summary = offline::encode_file(
                &file,
                &out,
                index.as_deref(),
                &identity,
                codec.params()?,
                common.threads(),
                |done| bar.set_position(done),
            )?;
            bar.finish_and_clear();
            print(json, &summary, print_encode)
        }
        Command::Decode { index, fragments, out, range, common } => {
            let identity = common.identity()?;
            let index = offline::read_index(&index, &identity)?;
            let range = range.map(|text| units::parse_range(&text, index.layout.file_length)).transpose()?;
            let total = range.as_ref().map_or(index.layout.file_length, |range| range.end.saturating_sub(range.start));
            let bar = bytes_bar(total, "decoding", json);
            let summary =
                offline::decode_file(&index, &fragments, &out, range, common.threads(), |done| bar.set_position(done))?;
            bar.finish_and_clear();
            print(json, &summary, print_decode)
        }
        Command::Demo { size, dir } => demo::run(units::parse_size(&size)?, dir.as_deref(), json),
        Command::Upload { file, network, codec, term_epochs } => {
            let identity = netcmd::identity(&network.key)?;
            let params = codec.params()?;
            let home = keyfile::strand_home();
            let session = netcmd::Session { ledger: &network.ledger, identity: &identity, home: &home, json };
            let threads = network.threads.min(strand_core::pipeline::default_threads());
            let value = runtime()?.block_on(netcmd::upload(&session, &file, params, term_epochs, threads))?;
            print(json, &value, print_ledger)
        }
        Command::Download { upload, credential, out, range, network } => {
            let identity = netcmd::identity(&network.key)?;
            let home = keyfile::strand_home();
            let session = netcmd::Session { ledger: &network.ledger, identity: &identity, home: &home, json };
            let source = match (upload, credential) {
                (_, Some(credential)) => netcmd::DownloadSource::Credential(credential),
                (Some(upload), None) => netcmd::DownloadSource::Owner(upload),
                (None, None) => return Err(anyhow::anyhow!("give an upload id or --credential")),
            };
            let value = runtime()?.block_on(netcmd::download(&session, &source, &out, range, network.threads))?;
            print(json, &value, print_ledger)
        }
        Command::Grant { upload, to, range, expires, purpose, network } => {
            let identity = netcmd::identity(&network.key)?;
            let home = keyfile::strand_home();
            let session = netcmd::Session { ledger: &network.ledger, identity: &identity, home: &home, json };
            let value =
                runtime()?.block_on(netcmd::grant(&session, &upload, &to, range.as_deref(), &expires, &purpose))?;
            print(json, &value, print_ledger)
        }
        Command::Revoke { credential, network } => {
            let identity = netcmd::identity(&network.key)?;
            let home = keyfile::strand_home();
            let session = netcmd::Session { ledger: &network.ledger, identity: &identity, home: &home, json };
            let value = runtime()?.block_on(netcmd::revoke(&session, &credential))?;
            print(json, &value, print_ledger)
        }
        Command::Audit { upload, network } => {
            let value = runtime()?.block_on(netcmd::audit(&network.ledger, &upload))?;
            print(json, &value, print_ledger)
        }
        Command::Credentials { upload, network } => {
            let value = runtime()?.block_on(netcmd::list_credentials(&network.ledger, &upload))?;
            print(json, &value, print_ledger)
        }
        Command::Ls { network } => {
            let identity = netcmd::identity(&network.key)?;
            let value = runtime()?.block_on(netcmd::list(&network.ledger, &identity))?;
            print(json, &value, print_ledger)
        }
        Command::Status { upload, network } => {
            let identity = netcmd::identity(&network.key)?;
            let value = runtime()?.block_on(netcmd::status(&network.ledger, &identity, &upload))?;
            print(json, &value, print_ledger)
        }
        Command::Proofs { upload, network } => {
            let value = runtime()?.block_on(netcmd::proofs(&network.ledger, &upload))?;
            print(json, &value, print_proofs)
        }
        Command::Devnet {
            nodes,
            validators,
            dir,
            block_interval_ms,
            epoch_blocks,
            demo,
            demo_size,
            monitor,
            prometheus_listen,
            scrape_interval,
        } => {
            let directory = dir.unwrap_or_else(|| keyfile::strand_home().join("devnet"));
            let ledger = (validators, block_interval_ms, epoch_blocks);
            let monitor = monitor.then(|| strand_client::devnet::MonitorConfig {
                listen: prometheus_listen,
                scrape_interval_s: scrape_interval.max(1),
            });
            devnet_command(
                &directory,
                nodes,
                ledger,
                demo.then(|| units::parse_size(&demo_size)).transpose()?,
                monitor,
                json,
            )
        }
        Command::Ledger { ledger, query } => {
            let value = runtime()?.block_on(ledger_query(&ledger, query))?;
            print(json, &value, print_ledger)
        }
        Command::Load { clients, seconds, size, dir, ledger, codec } => {
            load_command(clients, seconds, &size, dir, ledger, codec.params()?, json)
        }
    }
}

fn load_command(
    clients: usize,
    seconds: u64,
    size: &str,
    dir: Option<PathBuf>,
    ledger: String,
    params: CodecParams,
    json: bool,
) -> anyhow::Result<()> {
    let size = units::parse_size(size)?;
    if clients == 0 || size == 0 {
        anyhow::bail!("--clients and --size must be at least 1");
    }
    let temporary = tempfile::Builder::new().prefix("strand-load-").tempdir()?;
    let directory = dir.unwrap_or_else(|| temporary.path().to_path_buf());
    let config = strand_client::load::LoadConfig {
        ledger,
        clients,
        duration: std::time::Duration::from_secs(seconds),
        size,
        params,
        term_epochs: 1000,
        directory,
    };
    if !json {
        eprintln!("{clients} clients, {seconds} s, {size} B files against {}", config.ledger);
    }
    let rounds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = rounds.clone();
    let report = runtime()?.block_on(strand_client::load::run(&config, move |_, _| {
        let done = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if !json && done.is_multiple_of(16) {
            eprintln!("{done} rounds done");
        }
    }));
    print(json, &report, output::print_load)?;
    if report.errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("{} of the load's rounds failed", report.errors.len()))
    }
}

fn devnet_command(
    directory: &Path,
    nodes: usize,
    (validators, block_interval_ms, epoch_blocks): (usize, u64, u64),
    demo: Option<u64>,
    monitor: Option<strand_client::devnet::MonitorConfig>,
    json: bool,
) -> anyhow::Result<()> {
    use strand_client::devnet;
    if monitor.is_some() {
        // Before anything starts: say at once what is missing.
        devnet::prometheus_binary()?;
    }
    let ledger = if validators > 0 { format!("{validators} validators") } else { "a sequencer".to_string() };
    eprintln!("starting {ledger} and {nodes} storage nodes in {} ...", directory.display());
    let config = devnet::DevnetConfig {
        directory: directory.to_path_buf(),
        binaries: devnet::own_directory()?,
        nodes,
        block_interval_ms,
        epoch_blocks,
        validators,
    };
    let mut network = devnet::start(&config)?;
    let mut prometheus = None;
    if let Some(monitor) = &monitor {
        match devnet::start_prometheus(directory, &network.ledger_metrics, &network.node_metrics(), monitor) {
            Ok((process, url)) => {
                network.processes.push(process);
                prometheus = Some(url);
            }
            Err(error) => {
                devnet::stop(network);
                return Err(error);
            }
        }
    }
    let outcome = devnet_running(&mut network, directory, demo, prometheus.as_deref(), json);
    eprintln!("stopping the devnet ...");
    devnet::stop(network);
    outcome
}

/// Says what the devnet is, runs the demo if asked, and waits for Ctrl-C.
fn devnet_running(
    network: &mut strand_client::devnet::Devnet,
    directory: &Path,
    demo: Option<u64>,
    prometheus: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let nodes_info: Vec<serde_json::Value> = network.processes[1..]
        .iter()
        .filter(|process| process.name.starts_with("node-"))
        .map(|process| {
            let words: Vec<&str> = process.ready_line.split_whitespace().collect();
            let field = |name: &str| {
                words.iter().position(|word| *word == name).and_then(|at| words.get(at + 1)).copied().unwrap_or("")
            };
            serde_json::json!({ "name": process.name, "account": field("account"), "metrics": field("metrics") })
        })
        .collect();
    let summary = serde_json::json!({
        "ledger": network.ledger,
        "ledger_metrics": network.ledger_metrics,
        "directory": directory,
        "nodes": nodes_info,
        "prometheus": prometheus,
    });
    if json {
        out!("{summary}")?;
    } else {
        out!(
            "devnet ready: ledger {} with {} storage nodes (logs and data in {})",
            network.ledger,
            nodes_info.len(),
            directory.display()
        )?;
        for node in &nodes_info {
            let account = node["account"].as_str().unwrap_or("");
            out!(
                "  {}  {}..  metrics {}",
                node["name"].as_str().unwrap_or(""),
                &account[..12.min(account.len())],
                node["metrics"].as_str().unwrap_or("")
            )?;
        }
        out!("  ledger metrics {}", network.ledger_metrics)?;
        if let Some(url) = prometheus {
            out!(
                "prometheus {url} scrapes the ledger service and every node, with Strand's alert rules ({url}/alerts)"
            )?;
            out!("  grafana: add a Prometheus data source at {url} and import grafana/dashboards/*.json, or start")?;
            out!("  grafana-server with grafana/provisioning (see grafana/README.md)")?;
        }
        out!("use it from another terminal:")?;
        out!("  export STRAND_LEDGER={}", network.ledger)?;
        out!("  strand keygen && strand upload FILE && strand ls && strand download UPLOAD_ID --out COPY")?;
    }
    if let Some(size) = demo {
        devnet_demo(&network.ledger, directory, size, json)?;
    }
    if !json {
        out!("press Ctrl-C to stop every process")?;
    }
    wait_for_ctrl_c(network, json)
}

/// Waits for Ctrl-C (or SIGTERM), saying meanwhile which devnet process
/// exited and how (a node killed by hand, or one that crashed).
fn wait_for_ctrl_c(network: &mut strand_client::devnet::Devnet, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut reported = std::collections::HashSet::new();
        let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
                _ = check.tick() => {
                    for (name, how, log) in strand_client::devnet::newly_exited(network, &mut reported) {
                        if json {
                            out!("{}", serde_json::json!({ "exited": name, "how": how, "log": log }))?;
                        } else {
                            out!("{name} exited ({how}); its log: {}", log.display())?;
                        }
                    }
                }
            }
        }
        Ok::<(), anyhow::Error>(())
    })
}

fn devnet_demo(ledger: &str, directory: &Path, size: u64, json: bool) -> anyhow::Result<()> {
    let home = directory.join("demo-client");
    let identity = Identity::generate(&mut rand::rng());
    keyfile::write(&home.join("identity.pem"), &identity, true)?;
    let sample = directory.join("demo-sample.bin");
    demo::write_random(&sample, size)?;
    let original = strand_client::offline::hash_file(&sample)?;
    let runtime = runtime()?;
    let params = CodecParams::default();
    let session = netcmd::Session { ledger, identity: &identity, home: &home, json };
    let threads = strand_core::pipeline::default_threads();
    let uploaded = runtime.block_on(netcmd::upload(&session, &sample, params, 1000, threads))?;
    let upload = uploaded["upload_id"].as_str().unwrap_or_default().to_string();
    let copy = directory.join("demo-copy.bin");
    let downloaded =
        runtime.block_on(netcmd::download(&session, &netcmd::DownloadSource::Owner(upload.clone()), &copy, None, 8))?;
    let restored = strand_client::offline::hash_file(&copy)?;
    let check = restored == original;
    let report = serde_json::json!({
        "upload": upload, "bytes": size,
        "upload_seconds": uploaded["seconds"], "download_seconds": downloaded["seconds"],
        "original_blake3": original.to_hex().to_string(), "downloaded_blake3": restored.to_hex().to_string(), "check": check,
    });
    if json {
        out!("{report}")?;
    } else {
        out!(
            "demo: uploaded {size} bytes as {upload} in {:.2} s, downloaded in {:.2} s",
            uploaded["seconds"].as_f64().unwrap_or(0.0),
            downloaded["seconds"].as_f64().unwrap_or(0.0)
        )?;
        out!(
            "check  original {} {} downloaded {}",
            &original.to_hex()[..16],
            if check { "==" } else { "!=" },
            &restored.to_hex()[..16]
        )?;
    }
    if !check {
        anyhow::bail!("the downloaded file differs from the original");
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

async fn ledger_query(address: &str, query: LedgerQuery) -> anyhow::Result<serde_json::Value> {
    let (mut client, genesis) = ledger::connect(address, &keyfile::strand_home()).await?;
    match query {
        LedgerQuery::Status => ledger::status(&mut client, &genesis, &keyfile::strand_home()).await,
        LedgerQuery::Block { height } => ledger::block(&mut client, height).await,
        LedgerQuery::Tx { hash } => ledger::transaction(&mut client, &hash).await,
        LedgerQuery::Account { key, key_file } => {
            let key = match key {
                Some(key) => key,
                None => keyfile::read(&key_file.unwrap_or_else(keyfile::default_key_path))?.public_key().to_string(),
            };
            let follower = ledger::sync(&mut client, &genesis, &keyfile::strand_home()).await?;
            ledger::account(&follower, &key)
        }
    }
}

fn keygen(path: &Path, force: bool, json: bool) -> anyhow::Result<()> {
    let identity = Identity::generate(&mut rand::rng());
    keyfile::write(path, &identity, force)?;
    #[derive(Serialize)]
    struct Keygen {
        public_key: String,
        key_file: PathBuf,
    }
    let summary = Keygen { public_key: identity.public_key().to_string(), key_file: path.to_path_buf() };
    print(json, &summary, |summary| {
        out!("{}", summary.public_key)?;
        eprintln!("identity written to {} (mode 0600); the line above is your public key", summary.key_file.display());
        Ok(())
    })
}
