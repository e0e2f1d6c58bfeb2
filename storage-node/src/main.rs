//! `strand-node`: the storage node daemon.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use strand_node::config::{self, NodeConfig};

/// Strand storage node: holds encrypted genome fragments under contracts on
/// the ledger and releases them only to whom the ledger authorises.
#[derive(Parser)]
#[command(name = "strand-node", version, about)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a commented default configuration.
    Init {
        /// Where to write it.
        #[arg(long, default_value = "strand-node.toml")]
        config: PathBuf,
        /// The data directory it names.
        #[arg(long, default_value = "strand-node-data")]
        data_dir: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Run the node.
    Run {
        /// The configuration file.
        #[arg(long, default_value = "strand-node.toml")]
        config: PathBuf,
    },
    /// Leave the network gracefully: no new contracts; repair moves this
    /// node's contracts to other providers while it keeps running.
    Drain {
        /// The configuration file.
        #[arg(long, default_value = "strand-node.toml")]
        config: PathBuf,
        /// Follow until no contract is left (then the node can be stopped).
        #[arg(long)]
        wait: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,iroh=warn,iroh_blobs=warn,libp2p=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Arguments::parse().command {
        Command::Init { config, data_dir, force } => {
            if config.exists() && !force {
                anyhow::bail!("{} exists; use --force to replace it", config.display());
            }
            std::fs::write(&config, config::default_text(&data_dir))
                .with_context(|| format!("cannot write {}", config.display()))?;
            println!("wrote {}; edit it, then run `strand-node run --config {}`", config.display(), config.display());
            Ok(())
        }
        Command::Run { config } => {
            let config = NodeConfig::load(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(strand_node::run(config))
        }
        Command::Drain { config, wait } => {
            let config = NodeConfig::load(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(strand_node::drain::drain(&config, wait))
        }
    }
}
