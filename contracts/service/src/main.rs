//! `strand-sequencer`: the embedded single-validator ordering service.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use strand_contracts::AccountId;
use strand_contracts::block::{Genesis, ValidatorSet};
use strand_core::keyfile;
use strand_ledger_service::metrics::{self, LedgerMetrics};
use strand_ledger_service::sequencer::{self, SequencerConfig};
use strand_ledger_service::server;
use strand_ledger_service::store::LedgerStore;

/// Runs the ledger's single sequencer: admits transactions, produces a signed
/// block every interval, serves blocks and receipts to followers.
#[derive(Parser)]
#[command(name = "strand-sequencer", version, about)]
struct Arguments {
    /// Data directory (ledger database and, unless --key is given, the key).
    #[arg(long, default_value = "sequencer")]
    data_dir: PathBuf,
    /// Address to serve the ledger protocol on.
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: String,
    /// The sequencer's key [default: <data dir>/identity.pem, created if missing].
    #[arg(long)]
    key: Option<PathBuf>,
    /// Milliseconds between blocks.
    #[arg(long, default_value_t = 1000)]
    block_interval_ms: u64,
    /// Blocks per epoch (used only when creating a new chain).
    #[arg(long, default_value_t = 10)]
    epoch_blocks: u64,
    /// Address to serve Prometheus metrics on (`/metrics`).
    #[arg(long, default_value = "127.0.0.1:7401")]
    metrics_listen: String,
    /// Chain name (used only when creating a new chain).
    #[arg(long, default_value = "strand-devnet")]
    name: String,
}

fn main() -> anyhow::Result<()> {
    strand_ledger_service::ordering::init_logging();
    let arguments = Arguments::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(arguments))
}

/// The operating system's randomness, through the ed25519 crate's own
/// generator interface.
fn rand_core_rng() -> impl rand_core::CryptoRng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

async fn run(arguments: Arguments) -> anyhow::Result<()> {
    std::fs::create_dir_all(&arguments.data_dir)
        .with_context(|| format!("cannot create {}", arguments.data_dir.display()))?;
    let key_path = arguments.key.clone().unwrap_or_else(|| arguments.data_dir.join("identity.pem"));
    let identity = keyfile::load_or_create(&key_path, &mut rand_core_rng())?;
    let database = arguments.data_dir.join("ledger.redb");
    let genesis = match LedgerStore::genesis(&database)? {
        Some(genesis) => genesis,
        None => Genesis {
            name: arguments.name.clone(),
            validators: ValidatorSet::sequencer(AccountId::of(&identity.public_key())),
            epoch_blocks: arguments.epoch_blocks,
            timestamp_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64),
        },
    };
    if !genesis.validators.contains(&AccountId::of(&identity.public_key())) {
        anyhow::bail!(
            "key {} is not this chain's sequencer: use the key the chain was created with",
            identity.public_key()
        );
    }
    let (store, replica) = LedgerStore::open(&database, &genesis)
        .with_context(|| format!("cannot open the ledger in {}", database.display()))?;
    let height = replica.height();
    let (shutdown_sender, shutdown) = tokio::sync::watch::channel(false);
    let config = SequencerConfig {
        block_interval: Duration::from_millis(arguments.block_interval_ms.max(10)),
        ..Default::default()
    };
    let metrics = LedgerMetrics::new();
    let metrics_listener = tokio::net::TcpListener::bind(&arguments.metrics_listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {}", arguments.metrics_listen))?;
    let metrics_address = metrics_listener.local_addr()?;
    let (handle, task) = sequencer::start(store, replica, identity, config, metrics.clone(), shutdown.clone())?;
    tokio::spawn(metrics::serve(metrics_listener, move || metrics.render()));
    let listener = tokio::net::TcpListener::bind(&arguments.listen)
        .await
        .with_context(|| format!("cannot listen on {}", arguments.listen))?;
    let address = listener.local_addr()?;
    // One line on stdout that scripts and tests wait for.
    println!(
        "strand-sequencer listening on {address} chain {} height {height} metrics http://{metrics_address}/metrics",
        genesis.chain()
    );
    let server = tokio::spawn(server::serve(listener, handle, genesis, shutdown));

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("ledger.sequencer stopping");
    let _ = shutdown_sender.send(true);
    let _ = task.await;
    let _ = server.await;
    Ok(())
}
