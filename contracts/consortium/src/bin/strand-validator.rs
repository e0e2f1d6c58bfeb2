//! `strand-validator`: one organisation's validator in a consortium ledger.
//!
//! ```text
//! strand-validator key --key v.pem                      # the account to list in the genesis
//! strand-validator genesis new --out genesis.strand --name gene-banks --shares-dir shares \
//!     --validator <account>,<organisation>,<p2p host:port>,<ledger host:port>   (one per member, ≥ 4)
//!     # also deals the beacon key: shares/<account>.beacon-share, one per member, to hand over
//! # or, without a dealer: the members make the beacon key together
//! strand-validator dkg new --dir ceremony --name gene-banks --member <account> ...   (one per member)
//! strand-validator dkg deal|ack|log --dir ceremony --key v.pem      # each member, step by step
//! strand-validator dkg finish --dir ceremony --key v.pem --share-out v/beacon.share
//! strand-validator genesis new ... --beacon-ceremony ceremony     # instead of --shares-dir
//! strand-validator genesis sign --genesis genesis.strand --key v.pem   # each member, in turn
//! strand-validator genesis show --genesis genesis.strand
//! strand-validator run --genesis genesis.strand --data-dir v --key v.pem   # share in v/beacon.share
//!
//! # Governance: change the validators from a stated epoch (> 2/3 of the current ones approve)
//! strand-validator governance propose --genesis genesis.strand --key v.pem --ledger 127.0.0.1:7100 \
//!     --effective-epoch 12 --shares-dir new-shares --validator <account>,<org>,<p2p>,<ledger> ...
//! strand-validator governance approve --genesis genesis.strand --key v2.pem --ledger ... --proposal <id>
//! strand-validator governance show --genesis genesis.strand --ledger 127.0.0.1:7100
//! # a joining organisation's validator follows the chain from the genesis until its epoch:
//! strand-validator run --genesis genesis.strand --data-dir v5 --key v5.pem \
//!     --p2p-listen 127.0.0.1:7005 --ledger-listen 127.0.0.1:7105 --beacon-share new-shares/<account>.beacon-share
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
        /// The validator's beacon shares: of the genesis's key (from `genesis new`) and of keys
        /// a change of validators brings (from `governance propose`); repeat for each
        /// [default: <data dir>/beacon.share, and every file in <data dir>/beacon-shares/].
        #[arg(long)]
        beacon_share: Vec<PathBuf>,
        /// Where to listen for the other validators [default: the genesis entry's p2p address;
        /// required for a validator that joins later, which is not in the genesis].
        #[arg(long)]
        p2p_listen: Option<String>,
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
    /// Changes the validators: a proposal effective at a stated epoch, approved by more than
    /// two thirds of the current validators.
    #[command(subcommand)]
    Governance(GovernanceCommand),
    /// Makes a beacon key among the members without a dealer (a distributed key generation
    /// over files in a directory they share): `new`, then each member `deal`, `ack`, `log`,
    /// `finish` in turn; `genesis new` or `governance propose` take `--beacon-ceremony <dir>`.
    #[command(subcommand)]
    Dkg(DkgCommand),
}

/// A member acting in a ceremony.
#[derive(clap::Args)]
struct CeremonyMember {
    /// The ceremony's directory.
    #[arg(long)]
    dir: PathBuf,
    /// This member's validator key.
    #[arg(long)]
    key: PathBuf,
}

#[derive(Subcommand)]
enum DkgCommand {
    /// Starts a ceremony among the members (every validator of the new genesis or set).
    New {
        /// The ceremony's directory, shared by the members (no secret is written there in clear).
        #[arg(long)]
        dir: PathBuf,
        /// The chain's name (or the change's purpose).
        #[arg(long)]
        name: String,
        /// 0 for a genesis; a governance change's effective epoch.
        #[arg(long, default_value_t = 0)]
        round: u64,
        /// A member's account (once per member, at least 4).
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Step 1: deals as this member (its evaluations, sealed to each member).
    Deal {
        #[command(flatten)]
        member: CeremonyMember,
        /// Where to keep this dealer's seed until `log` [default: beside the key].
        #[arg(long)]
        secrets: Option<PathBuf>,
    },
    /// Step 2: checks and acknowledges every member's dealing.
    Ack {
        #[command(flatten)]
        member: CeremonyMember,
    },
    /// Step 3: as dealer, takes the acknowledgements and writes the signed log.
    Log {
        #[command(flatten)]
        member: CeremonyMember,
        /// Where this dealer's seed was kept [default: beside the key].
        #[arg(long)]
        secrets: Option<PathBuf>,
    },
    /// Step 4: derives this member's share from the logs.
    Finish {
        #[command(flatten)]
        member: CeremonyMember,
        /// Where to write the share (mode 0600): the validator's <data dir>/beacon.share, or a
        /// file in <data dir>/beacon-shares/ for a change of validators.
        #[arg(long)]
        share_out: PathBuf,
    },
    /// Prints the fingerprint of the key the ceremony produced (anyone can, from the logs).
    Key {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Where a new set's beacon key comes from: the members' own ceremony
/// (`dkg`: nobody ever holds the key), or dealt here (this command sees
/// every share until it is deleted).
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct BeaconKeySource {
    /// The directory of the members' finished `dkg` ceremony.
    #[arg(long)]
    beacon_ceremony: Option<PathBuf>,
    /// Deal the key here instead, writing each member's share (`<account>.beacon-share`) to this
    /// directory: hand each to its member alone, then delete them (whoever holds a quorum of
    /// shares can compute every beacon).
    #[arg(long)]
    shares_dir: Option<PathBuf>,
}

/// Where a governance command reaches the ledger.
#[derive(clap::Args)]
struct LedgerArguments {
    /// The signed genesis file.
    #[arg(long)]
    genesis: PathBuf,
    /// Ledger addresses (`host:port`, comma-separated; tried in turn).
    #[arg(long)]
    ledger: String,
}

#[derive(Subcommand)]
enum GovernanceCommand {
    /// Proposes a new validator set (as one of the current validators; counts as its
    /// approval), and deals the new set's beacon key.
    Propose {
        #[command(flatten)]
        ledger: LedgerArguments,
        /// The proposing validator's key.
        #[arg(long)]
        key: PathBuf,
        /// The epoch whose first block the new set finalises (at least 2 after the current).
        #[arg(long)]
        effective_epoch: u64,
        /// A member of the new set: `<account>,<organisation>,<p2p host:port>,<ledger host:port>`
        /// (at least 4; list every member, staying or new).
        #[arg(long = "validator", required = true)]
        validators: Vec<String>,
        #[command(flatten)]
        beacon: BeaconKeySource,
    },
    /// Approves an open proposal (as one of the current validators).
    Approve {
        #[command(flatten)]
        ledger: LedgerArguments,
        /// The approving validator's key.
        #[arg(long)]
        key: PathBuf,
        /// The proposal's id (printed by `propose` and `show`).
        #[arg(long)]
        proposal: String,
    },
    /// Prints the current validators, the open proposals and a scheduled change.
    Show {
        #[command(flatten)]
        ledger: LedgerArguments,
    },
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
        #[command(flatten)]
        beacon: BeaconKeySource,
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
            p2p_listen,
            ledger_listen,
            metrics_listen,
            block_interval_ms,
            leader_timeout_ms,
            threads,
        } => {
            let genesis = read_genesis(&genesis)?;
            std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
            let identity = load_key(&key.unwrap_or_else(|| data_dir.join("identity.pem")))?;
            let account = AccountId::of(&identity.public_key());
            let in_genesis = genesis.genesis.validators.contains(&account);
            let mut share_paths = beacon_share;
            if share_paths.is_empty() {
                let default = data_dir.join("beacon.share");
                if in_genesis || default.exists() {
                    share_paths.push(default);
                }
                if let Ok(entries) = std::fs::read_dir(data_dir.join("beacon-shares")) {
                    let mut more: Vec<PathBuf> = entries.filter_map(|entry| Some(entry.ok()?.path())).collect();
                    more.sort();
                    share_paths.extend(more);
                }
            }
            let mut beacon_shares = Vec::new();
            for path in &share_paths {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "cannot read the beacon share {} (written by `genesis new` or `governance propose` with \
                         --shares-dir)",
                        path.display()
                    )
                })?;
                beacon_shares.push(
                    strand_consortium::beacon::decode_share(&text)
                        .with_context(|| format!("{} is not a beacon share", path.display()))?,
                );
            }
            let interval = Duration::from_millis(block_interval_ms);
            let leader = Duration::from_millis(leader_timeout_ms.unwrap_or(block_interval_ms + 1000).max(50));
            anyhow::ensure!(leader > interval, "--leader-timeout-ms must exceed --block-interval-ms");
            let timeouts = Timeouts { leader, certification: leader * 2, retry: leader / 2 };
            let options = ValidatorOptions {
                data_dir,
                genesis,
                identity,
                beacon_shares,
                p2p_listen,
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
        Command::Genesis(GenesisCommand::New { out, name, epoch_blocks, validators, beacon }) => {
            let validators = validators.iter().map(|text| parse_validator(text)).collect::<anyhow::Result<Vec<_>>>()?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64);
            let (beacon_key, dealt) = beacon_key(&beacon, &validators)?;
            let genesis = consortium_genesis(&name, validators, epoch_blocks, now, beacon_key);
            genesis.genesis.validators.check_consortium()?;
            anyhow::ensure!(epoch_blocks >= 2, "a consortium's epochs are at least 2 blocks long");
            if let Some((shares_dir, shares)) = &dealt {
                write_shares(shares_dir, &genesis.genesis.validators, shares)?;
            }
            write_genesis(&out, &genesis)?;
            println!("chain {} written to {}: each validator now signs it", genesis.genesis.chain(), out.display());
            if let Some((shares_dir, _)) = dealt {
                println!(
                    "beacon shares in {} (give each member its own as <data dir>/beacon.share, then delete them here)",
                    shares_dir.display()
                );
            }
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
        Command::Governance(command) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(governance(command))
        }
        Command::Dkg(command) => dkg(command),
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

/// The ledger's state, followed from the genesis (every block and
/// certificate checked), and a client to submit through.
async fn follow(
    arguments: &LedgerArguments,
) -> anyhow::Result<(SignedGenesis, strand_contracts::Replica, strand_ledger_service::client::LedgerClient)> {
    let genesis = read_genesis(&arguments.genesis)?;
    genesis.verify().context("the genesis file is not a consortium genesis every validator signed")?;
    let mut client = strand_ledger_service::client::LedgerClient::connect(&arguments.ledger)
        .await
        .with_context(|| format!("cannot reach the ledger at {}", arguments.ledger))?;
    let mut follower =
        strand_ledger_service::follower::Follower::new(strand_contracts::Replica::new(&genesis.genesis), None);
    follower.catch_up(&mut client).await.context("cannot follow the ledger")?;
    let replica = follower.replica().clone();
    Ok((genesis, replica, client))
}

/// Signs `body` as `identity` with its next nonce, submits it, and waits
/// (bounded) for its receipt.
async fn submit(
    replica: &strand_contracts::Replica,
    client: &mut strand_ledger_service::client::LedgerClient,
    identity: &Identity,
    body: strand_contracts::Body,
) -> anyhow::Result<()> {
    use strand_ledger_service::protocol::TransactionStatus;
    let state = replica.state();
    let account = AccountId::of(&identity.public_key());
    let nonce = state.accounts.get(&account).map_or(0, |account| account.nonce) + 1;
    let transaction = strand_contracts::Transaction::sign(state.params.chain, identity, nonce, body);
    let hash = match client.submit(transaction.to_bytes()).await? {
        Ok(hash) => hash,
        Err(reason) => anyhow::bail!("the ledger refused the transaction: {reason}"),
    };
    for _ in 0..120 {
        match client.transaction(hash).await? {
            TransactionStatus::Finalised { height, outcome: strand_contracts::Outcome::Accepted, .. } => {
                println!("accepted at height {height} (transaction {hash})");
                return Ok(());
            }
            TransactionStatus::Finalised { outcome: strand_contracts::Outcome::Rejected(reason), .. } => {
                anyhow::bail!("rejected: {reason}")
            }
            TransactionStatus::Dropped(reason) => anyhow::bail!("dropped: {reason}"),
            TransactionStatus::Unknown | TransactionStatus::Pending => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
        }
    }
    anyhow::bail!("transaction {hash} not finalised within a minute; see `governance show`")
}

async fn governance(command: GovernanceCommand) -> anyhow::Result<()> {
    match command {
        GovernanceCommand::Propose { ledger, key, effective_epoch, validators, beacon } => {
            let identity = load_key(&key)?;
            let validators = validators.iter().map(|text| parse_validator(text)).collect::<anyhow::Result<Vec<_>>>()?;
            let (_, replica, mut client) = follow(&ledger).await?;
            let (beacon_key, dealt) = beacon_key(&beacon, &validators)?;
            let set = strand_contracts::ValidatorSet::consortium(validators, beacon_key);
            set.check_consortium()?;
            let id = strand_contracts::governance::proposal_id(&set, effective_epoch);
            let paths = match &dealt {
                Some((shares_dir, shares)) => write_shares(shares_dir, &set, shares)?,
                None => Vec::new(),
            };
            println!("proposal {id}: {} validators from epoch {effective_epoch}", set.validators.len());
            let body = strand_contracts::Body::ProposeValidators { set, effective_epoch };
            if let Err(error) = submit(&replica, &mut client, &identity, body).await {
                for path in &paths {
                    let _ = std::fs::remove_file(path);
                }
                return Err(error);
            }
            if let Some((shares_dir, _)) = dealt {
                println!(
                    "beacon shares of the new set in {}: give each member its own (into <data dir>/beacon-shares/), \
                     then delete them",
                    shares_dir.display()
                );
            }
            Ok(())
        }
        GovernanceCommand::Approve { ledger, key, proposal } => {
            let identity = load_key(&key)?;
            let proposal: strand_contracts::Digest =
                proposal.parse().map_err(|_| anyhow::anyhow!("'{proposal}' is not a proposal id (64 hex digits)"))?;
            let (_, replica, mut client) = follow(&ledger).await?;
            submit(&replica, &mut client, &identity, strand_contracts::Body::ApproveValidators { proposal }).await
        }
        GovernanceCommand::Show { ledger } => {
            let (_, replica, _) = follow(&ledger).await?;
            let state = replica.state();
            println!("height {} epoch {}", replica.height(), state.epoch());
            let print = |set: &strand_contracts::ValidatorSet| {
                for validator in &set.validators {
                    println!(
                        "    {} {} p2p {} ledger {}",
                        validator.account, validator.organisation, validator.p2p, validator.ledger
                    );
                }
            };
            println!("validators ({}, quorum {}):", state.validators.validators.len(), state.validators.quorum);
            print(&state.validators);
            match &state.validator_change {
                Some(change) => {
                    println!("scheduled from epoch {} (proposal {}):", change.effective_epoch, change.proposal);
                    print(&change.set);
                }
                None => println!("no change scheduled"),
            }
            for (id, proposal) in state.validator_proposals.iter() {
                println!(
                    "open proposal {id} by {} for epoch {}, approved by {} of {}:",
                    proposal.proposer,
                    proposal.effective_epoch,
                    proposal.approvals.len(),
                    state.validators.validators.len()
                );
                print(&proposal.set);
            }
            Ok(())
        }
    }
}

/// Writes each member's beacon share as `<account>.beacon-share` (mode
/// 0600, never over an existing file).
fn write_shares(
    shares_dir: &Path,
    set: &strand_contracts::ValidatorSet,
    shares: &[Vec<u8>],
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(shares_dir).with_context(|| format!("cannot create {}", shares_dir.display()))?;
    let paths: Vec<PathBuf> =
        set.sorted().iter().map(|account| shares_dir.join(format!("{account}.beacon-share"))).collect();
    if let Some(existing) = paths.iter().find(|path| path.exists()) {
        anyhow::bail!(
            "{} exists (a share of an earlier key?): give another --shares-dir, or remove it",
            existing.display()
        );
    }
    for (path, share) in paths.iter().zip(shares) {
        keyfile::write_secret(path, strand_contracts::beacon::share_file_text(share).as_bytes(), false)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(paths)
}

/// The beacon key of a set of `validators`: the members' ceremony's (its
/// members must be exactly these validators), or dealt here (with the
/// shares and where to write them).
#[allow(clippy::type_complexity)]
fn beacon_key(
    source: &BeaconKeySource,
    validators: &[Validator],
) -> anyhow::Result<(Vec<u8>, Option<(PathBuf, Vec<Vec<u8>>)>)> {
    if let Some(directory) = &source.beacon_ceremony {
        let ceremony = strand_consortium::ceremony::Ceremony::read(directory)?;
        let mut accounts: Vec<AccountId> = validators.iter().map(|validator| validator.account).collect();
        accounts.sort();
        anyhow::ensure!(
            ceremony.members == accounts,
            "the ceremony in {} is among other members than these validators",
            directory.display()
        );
        let key = strand_consortium::ceremony::key(directory)
            .with_context(|| format!("the ceremony in {} has not produced a key", directory.display()))?;
        return Ok((key, None));
    }
    let shares_dir = source.shares_dir.clone().context("give --beacon-ceremony or --shares-dir")?;
    let mut seed = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut rng(), &mut seed);
    let (key, shares) = strand_contracts::beacon::deal(validators.len() as u32, seed);
    Ok((key, Some((shares_dir, shares))))
}

fn dkg(command: DkgCommand) -> anyhow::Result<()> {
    use strand_consortium::ceremony;
    match command {
        DkgCommand::New { dir, name, round, members } => {
            let members = members
                .iter()
                .map(|text| text.parse().map_err(|_| anyhow::anyhow!("'{text}' is not an account (64 hex digits)")))
                .collect::<anyhow::Result<Vec<AccountId>>>()?;
            let created = ceremony::Ceremony::create(&dir, &name, round, &members)?;
            println!(
                "ceremony '{}' round {} among {} members in {}: each member now runs `dkg deal`",
                created.name,
                created.round,
                created.members.len(),
                dir.display()
            );
        }
        DkgCommand::Deal { member: CeremonyMember { dir, key }, secrets } => {
            let secrets = secrets_dir(&key, secrets);
            ceremony::deal(&dir, &load_key(&key)?, &secrets)?;
            println!("dealt (seed kept in {}); when every member has dealt, each runs `dkg ack`", secrets.display());
        }
        DkgCommand::Ack { member: CeremonyMember { dir, key } } => {
            let refused = ceremony::ack(&dir, &load_key(&key)?)?;
            for (dealer, reason) in &refused {
                println!("refused dealer {dealer}: {reason}");
            }
            println!("acknowledged; when every member has, each runs `dkg log`");
        }
        DkgCommand::Log { member: CeremonyMember { dir, key }, secrets } => {
            let revealed = ceremony::log(&dir, &load_key(&key)?, &secrets_dir(&key, secrets))?;
            for player in &revealed {
                println!("no acknowledgement from {player}: its evaluation is revealed in the log");
            }
            println!("logged; when every member has, each runs `dkg finish`");
        }
        DkgCommand::Finish { member: CeremonyMember { dir, key }, share_out } => {
            let (share, beacon_key) = ceremony::finish(&dir, &load_key(&key)?)?;
            keyfile::write_secret(&share_out, strand_contracts::beacon::share_file_text(&share).as_bytes(), false)
                .with_context(|| format!("cannot write {}", share_out.display()))?;
            println!(
                "share written to {}; beacon key {}",
                share_out.display(),
                strand_contracts::Digest::of("strand beacon key", &[&beacon_key])
            );
        }
        DkgCommand::Key { dir } => {
            let beacon_key = ceremony::key(&dir)?;
            println!("beacon key {}", strand_contracts::Digest::of("strand beacon key", &[&beacon_key]));
        }
    }
    Ok(())
}

/// Where a member keeps its dealer's seed: `--secrets`, or beside its key.
fn secrets_dir(key: &Path, secrets: Option<PathBuf>) -> PathBuf {
    secrets.unwrap_or_else(|| key.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")))
}
