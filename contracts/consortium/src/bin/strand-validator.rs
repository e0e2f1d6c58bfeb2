//! `strand-validator`: one organisation's validator in a consortium ledger.
//!
//! ```text
//! strand-validator key --key v.pem                      # the account to list in the genesis
//! strand-validator genesis new --out genesis.strand --name gene-banks --shares-dir shares \
//!     --validator <account>,<organisation>,<p2p host:port>,<ledger host:port>   (one per member, ≥ 4)
//!     # also deals the beacon key: shares/<account>.beacon-share, one per member, to hand over
//! strand-validator genesis sign --genesis genesis.strand --key v.pem   # each member, in turn
//! strand-validator genesis show --genesis genesis.strand
//! strand-validator run --genesis genesis.strand --data-dir v --key v.pem   # share in v/beacon.share
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use strand_consortium::app::BlockLimits;
use strand_consortium::engine::Timeouts;
use strand_consortium::validator::{ValidatorOptions, consortium_genesis, run_blocking};
use strand_contracts::AccountId;
use strand_contracts::block::{SignedGenesis, Validator};
use strand_core::{Identity, keyfile};

#[derive(Parser)]
#[command(
    name = "strand-validator",
    version,
    about = "Runs one organisation's validator of a Strand consortium ledger"
)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the validator until Ctrl-C or SIGTERM.
    Run {
        /// The signed genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// Data directory (ledger database, engine journals, and the key
        /// unless --key is given).
        #[arg(long)]
        data_dir: PathBuf,
        /// The validator's key [default: <data dir>/identity.pem].
        #[arg(long)]
        key: Option<PathBuf>,
        /// The validator's beacon share, from `genesis new` [default: <data dir>/beacon.share].
        #[arg(long)]
        beacon_share: Option<PathBuf>,
        /// Where to serve the ledger protocol [default: the genesis entry's ledger address].
        #[arg(long)]
        ledger_listen: Option<String>,
        /// Where to serve Prometheus metrics (`/metrics`).
        #[arg(long, default_value = "127.0.0.1:7401")]
        metrics_listen: String,
        /// Least milliseconds between a block and its parent.
        #[arg(long, default_value_t = 500)]
        block_interval_ms: u64,
        /// Milliseconds a validator waits for a view's leader before voting
        /// to skip it [default: the block interval + 1000].
        #[arg(long)]
        leader_timeout_ms: Option<u64>,
        /// Worker threads of the runtime.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Prints the account of a key (created if missing).
    Key {
        /// The key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Creates, signs and shows a consortium's genesis.
    #[command(subcommand)]
    Genesis(GenesisCommand),
}

#[derive(Subcommand)]
enum GenesisCommand {
    /// Writes a new, unsigned genesis.
    New {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// The chain's name.
        #[arg(long, default_value = "strand-consortium")]
        name: String,
        /// Blocks per ledger epoch.
        #[arg(long, default_value_t = 60)]
        epoch_blocks: u64,
        /// A member: `<account>,<organisation>,<p2p host:port>,<ledger host:port>` (at least 4).
        #[arg(long = "validator", required = true)]
        validators: Vec<String>,
        /// Where to write each member's beacon share (`<account>.beacon-share`): hand each to its
        /// member alone, then delete them (whoever holds a quorum of shares can compute every beacon).
        #[arg(long)]
        shares_dir: PathBuf,
    },
    /// Adds this key's signature (every validator must sign before any runs).
    Sign {
        /// The genesis file (rewritten with the signature).
        #[arg(long)]
        genesis: PathBuf,
        /// The validator's key.
        #[arg(long)]
        key: PathBuf,
    },
    /// Prints the chain id, validators and who has signed.
    Show {
        /// The genesis file.
        #[arg(long)]
        genesis: PathBuf,
    },
}

fn rng() -> impl rand_core::CryptoRng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn read_genesis(path: &Path) -> anyhow::Result<SignedGenesis> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    SignedGenesis::from_bytes(&bytes).with_context(|| format!("{} is not a Strand genesis file", path.display()))
}

fn write_genesis(path: &Path, genesis: &SignedGenesis) -> anyhow::Result<()> {
    std::fs::write(path, genesis.to_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

fn parse_validator(text: &str) -> anyhow::Result<Validator> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [account, organisation, p2p, ledger] = parts[..] else {
        anyhow::bail!("'{text}': expected <account>,<organisation>,<p2p host:port>,<ledger host:port>");
    };
    let account: AccountId =
        account.parse().map_err(|_| anyhow::anyhow!("'{account}' is not an account (64 hex digits)"))?;
    for address in [p2p, ledger] {
        address
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("'{address}' is not an IP address and port"))?;
    }
    Ok(Validator { account, organisation: organisation.into(), p2p: p2p.into(), ledger: ledger.into() })
}

fn load_key(path: &Path) -> anyhow::Result<Identity> {
    Ok(keyfile::load_or_create(path, &mut rng())?)
}

fn main() -> anyhow::Result<()> {
    strand_ledger_service::ordering::init_logging();
    match Arguments::parse().command {
        Command::Run {
            genesis,
            data_dir,
            key,
            beacon_share,
            ledger_listen,
            metrics_listen,
            block_interval_ms,
            leader_timeout_ms,
            threads,
        } => {
            let genesis = read_genesis(&genesis)?;
            std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
            let identity = load_key(&key.unwrap_or_else(|| data_dir.join("identity.pem")))?;
            let share_path = beacon_share.unwrap_or_else(|| data_dir.join("beacon.share"));
            let share_text = std::fs::read_to_string(&share_path).with_context(|| {
                format!("cannot read the beacon share {} (written by `genesis new --shares-dir`)", share_path.display())
            })?;
            let beacon_share = strand_consortium::beacon::decode_share(&share_text)
                .with_context(|| format!("{} is not a beacon share", share_path.display()))?;
            let interval = Duration::from_millis(block_interval_ms);
            let leader = Duration::from_millis(leader_timeout_ms.unwrap_or(block_interval_ms + 1000).max(50));
            anyhow::ensure!(leader > interval, "--leader-timeout-ms must exceed --block-interval-ms");
            let timeouts = Timeouts { leader, certification: leader * 2, retry: leader / 2 };
            let options = ValidatorOptions {
                data_dir,
                genesis,
                identity,
                beacon_share,
                ledger_listen,
                metrics_listen,
                timeouts,
                limits: BlockLimits { interval, ..BlockLimits::default() },
            };
            run_blocking(options, threads)
        }
        Command::Key { key } => {
            println!("{}", AccountId::of(&load_key(&key)?.public_key()));
            Ok(())
        }
        Command::Genesis(GenesisCommand::New { out, name, epoch_blocks, validators, shares_dir }) => {
            let validators = validators.iter().map(|text| parse_validator(text)).collect::<anyhow::Result<Vec<_>>>()?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64);
            let mut seed = [0u8; 32];
            rand_core::Rng::fill_bytes(&mut rng(), &mut seed);
            let (beacon_key, shares) = strand_contracts::beacon::deal(validators.len() as u32, seed);
            let genesis = consortium_genesis(&name, validators, epoch_blocks, now, beacon_key);
            if let Err(
                error @ (strand_contracts::block::GenesisError::Duplicate(_)
                | strand_contracts::block::GenesisError::TooFew(_)),
            ) = genesis.verify()
            {
                anyhow::bail!("{error}");
            }
            std::fs::create_dir_all(&shares_dir).with_context(|| format!("cannot create {}", shares_dir.display()))?;
            let paths: Vec<PathBuf> = genesis
                .genesis
                .validators
                .sorted()
                .iter()
                .map(|account| shares_dir.join(format!("{account}.beacon-share")))
                .collect();
            if let Some(existing) = paths.iter().find(|path| path.exists()) {
                anyhow::bail!(
                    "{} exists (a share of an earlier genesis?): give another --shares-dir, or remove it",
                    existing.display()
                );
            }
            for (path, share) in paths.iter().zip(&shares) {
                keyfile::write_secret(path, strand_contracts::beacon::share_file_text(share).as_bytes(), false)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            write_genesis(&out, &genesis)?;
            println!(
                "chain {} written to {}: each validator now signs it; beacon shares in {} (give each member its own \
                 as <data dir>/beacon.share, then delete them here)",
                genesis.genesis.chain(),
                out.display(),
                shares_dir.display()
            );
            Ok(())
        }
        Command::Genesis(GenesisCommand::Sign { genesis: path, key }) => {
            let mut genesis = read_genesis(&path)?;
            let identity = load_key(&key)?;
            let account = AccountId::of(&identity.public_key());
            anyhow::ensure!(
                genesis.genesis.validators.contains(&account),
                "key {account} is not one of this genesis's validators"
            );
            genesis.sign(&identity);
            write_genesis(&path, &genesis)?;
            println!("signed chain {} as {account}", genesis.genesis.chain());
            Ok(())
        }
        Command::Genesis(GenesisCommand::Show { genesis: path }) => {
            let genesis = read_genesis(&path)?;
            println!(
                "chain {} ({}), {} blocks per epoch",
                genesis.genesis.chain(),
                genesis.genesis.name,
                genesis.genesis.epoch_blocks
            );
            for validator in &genesis.genesis.validators.validators {
                let signed = genesis.signatures.iter().any(|(signer, _)| *signer == validator.account);
                println!(
                    "  {} {} p2p {} ledger {} {}",
                    validator.account,
                    validator.organisation,
                    validator.p2p,
                    validator.ledger,
                    if signed { "signed" } else { "NOT SIGNED" }
                );
            }
            match genesis.verify() {
                Ok(()) => println!("complete: every validator has signed"),
                Err(error) => println!("not ready: {error}"),
            }
            Ok(())
        }
    }
}
