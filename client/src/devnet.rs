//! `strand devnet`: a whole local network in one command: a sequencer (or,
//! with `--validators N`, a consortium of N validators, one organisation
//! each) and N storage nodes as separate processes on loopback, each with
//! its own data directory; stopped cleanly (SIGTERM, then SIGKILL after a
//! grace period) on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use strand_contracts::block::{Genesis, SignedGenesis, Validator};
use strand_contracts::{AccountId, ValidatorSet};
use strand_core::keyfile;

/// How long a process may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long processes get to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running devnet process.
pub struct Process {
    /// What it is ("sequencer", "node-3").
    pub name: String,
    /// The line it printed when ready.
    pub ready_line: String,
    /// Where its standard error goes.
    pub log: PathBuf,
    child: Child,
}

/// The last error a process wrote to `log`: its `Error:` line and the
/// causes under it, without the backtrace; for a program that logs another
/// way (Prometheus), its last lines.
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().rposition(|line| line.starts_with("Error:")) else {
        let last: Vec<&str> = lines.iter().rev().filter(|line| !line.trim().is_empty()).take(3).copied().collect();
        return (!last.is_empty()).then(|| last.into_iter().rev().collect::<Vec<_>>().join(" | "));
    };
    let said: Vec<&str> = lines[start..]
        .iter()
        .take_while(|line| !line.starts_with("Stack backtrace:"))
        .map(|line| line.trim())
        .filter(|line| !line.is_empty())
        .take(12)
        .collect();
    Some(said.join(" "))
}

/// A process's log, appended to (a restarted process keeps its earlier log).
fn open_log(log: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))
}

impl Process {
    /// Starts `command`, logging its standard error to `log`, and waits for a
    /// standard-output line containing `marker`.
    pub fn start(name: &str, mut command: Command, marker: &str, log: &Path) -> anyhow::Result<Self> {
        let log_file = open_log(log)?;
        command.stdout(Stdio::piped()).stderr(Stdio::from(log_file)).stdin(Stdio::null());
        let mut child = command.spawn().with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (sender, receiver) = mpsc::channel();
        let wanted = marker.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(&wanted) {
                    let _ = sender.send(line);
                }
            }
        });
        match receiver.recv_timeout(READY_TIMEOUT) {
            Ok(ready_line) => Ok(Self { name: name.to_string(), ready_line, log: log.to_path_buf(), child }),
            // Its output closed: it exited without becoming ready.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map(|status| status.to_string()).unwrap_or_default();
                let said = last_error(log).unwrap_or_else(|| "no error in its log".into());
                bail!(
                    "{name} stopped before it was ready ({status}): {said}\nsee {} (a devnet directory written by \
                     another version of strand cannot be reopened: remove it, or pass --dir, to start a new devnet)",
                    log.display()
                )
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{name} did not become ready within {READY_TIMEOUT:?}; see {}", log.display())
            }
        }
    }

    /// Starts `command`, logging its standard output and error to `log`,
    /// and waits until `ready` answers true (polled every 200 ms).
    pub fn start_polled(
        name: &str,
        mut command: Command,
        log: &Path,
        ready: impl Fn() -> bool,
    ) -> anyhow::Result<Self> {
        let log_file = open_log(log)?;
        command.stdout(Stdio::from(log_file.try_clone()?)).stderr(Stdio::from(log_file)).stdin(Stdio::null());
        let mut child = command.spawn().with_context(|| format!("cannot start {name}"))?;
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            if ready() {
                return Ok(Self { name: name.to_string(), ready_line: String::new(), log: log.to_path_buf(), child });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let said = last_error(log).unwrap_or_else(|| "nothing in its log".into());
                bail!("{name} stopped before it was ready ({status}): {said}\nsee {}", log.display());
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{name} did not become ready within {READY_TIMEOUT:?}; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Asks the process to stop (SIGTERM).
    pub fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How it exited, if it has (reaping it, so no zombie is left).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit, killing it after `grace`.
    pub fn wait(mut self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    /// A process is never left behind, even when its owner panics.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A binary that ships beside this one.
pub fn sibling_binary(binaries: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = binaries.join(name);
    if !path.exists() {
        bail!("{} not found in {}: build it with `cargo build --release --workspace`", name, binaries.display());
    }
    Ok(path)
}

/// The directory of this program (where its sibling binaries are).
pub fn own_directory() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this program's path")?;
    Ok(me.parent().context("this program has no directory")?.to_path_buf())
}

/// The running network.
pub struct Devnet {
    /// The ledger service address.
    pub ledger: String,
    /// The ledger service's metrics URL.
    pub ledger_metrics: String,
    /// The sequencer, then the nodes.
    pub processes: Vec<Process>,
    /// The directory's lock, held while the devnet runs.
    _lock: std::fs::File,
}

impl Devnet {
    /// Every node's name and metrics URL.
    pub fn node_metrics(&self) -> Vec<(String, String)> {
        self.processes
            .iter()
            .filter(|process| process.name.starts_with("node-"))
            .filter_map(|process| Some((process.name.clone(), metrics_url(&process.ready_line)?)))
            .collect()
    }
}

/// The lock file of a devnet directory: locked while a devnet runs there,
/// holding that process's id.
const LOCK_FILE: &str = "devnet.lock";

/// Locks `directory` for this process, or says which process uses it.
fn lock(directory: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read as _, Seek as _, Write as _};
    let path = directory.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() { "another process".to_string() } else { format!("process {holder}") };
            bail!(
                "the devnet directory {} is in use by {who} (another `strand devnet`): stop it, or give this one \
                 another directory with --dir",
                directory.display()
            );
        }
        Err(std::fs::TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// How to start a devnet.
#[derive(Clone, Debug)]
pub struct DevnetConfig {
    /// Where data and logs go.
    pub directory: PathBuf,
    /// Where `strand-sequencer` and `strand-node` are.
    pub binaries: PathBuf,
    /// Storage nodes.
    pub nodes: usize,
    /// Milliseconds between blocks.
    pub block_interval_ms: u64,
    /// Blocks per epoch.
    pub epoch_blocks: u64,
    /// Consortium validators (one organisation each) instead of the single
    /// sequencer; 0 for the sequencer.
    pub validators: usize,
}

/// The consortium genesis of a devnet directory: the one already there (a
/// restarted devnet keeps its chain and addresses), or a new one with
/// `count` validators on free loopback ports (see [`new_consortium`]).
pub fn consortium_genesis(directory: &Path, count: usize, epoch_blocks: u64) -> anyhow::Result<SignedGenesis> {
    let path = directory.join(GENESIS_FILE);
    if let Ok(bytes) = std::fs::read(&path) {
        let genesis = SignedGenesis::from_bytes(&bytes).with_context(|| format!("{} is damaged", path.display()))?;
        ensure!(
            genesis.genesis.validators.validators.len() == count,
            "{} is a chain of {} validators, not {count}: give --validators {} or another --dir",
            directory.display(),
            genesis.genesis.validators.validators.len(),
            genesis.genesis.validators.validators.len()
        );
        return Ok(genesis);
    }
    ensure!(
        count >= 4,
        "a consortium tolerates a faulty validator only from 4 validators (3f+1): give --validators 4 or more"
    );
    let addresses = (0..count).map(|_| Ok((free_address()?, free_address()?))).collect::<anyhow::Result<Vec<_>>>()?;
    new_consortium(directory, &addresses, epoch_blocks)
}

/// A new consortium in `directory`: one validator per (p2p, ledger)
/// address pair, each with its key and beacon share in
/// `validator-<n>/` (n from 1), one organisation each; the genesis, signed
/// by every validator, in [`GENESIS_FILE`]. The devnet deals the beacon key
/// itself (a real consortium's organisations do it with `strand-validator
/// genesis new`).
pub fn new_consortium(
    directory: &Path,
    addresses: &[(String, String)],
    epoch_blocks: u64,
) -> anyhow::Result<SignedGenesis> {
    let mut identities = Vec::new();
    let mut validators = Vec::new();
    for (index, (p2p, ledger)) in (1..).zip(addresses) {
        let data_dir = directory.join(format!("validator-{index}"));
        std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let identity = keyfile::load_or_create(&data_dir.join("identity.pem"), &mut rand::rng())?;
        validators.push(Validator {
            account: AccountId::of(&identity.public_key()),
            organisation: format!("organisation-v{index}"),
            p2p: p2p.clone(),
            ledger: ledger.clone(),
        });
        identities.push(identity);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    let mut seed = [0u8; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut seed);
    let (beacon_key, shares) = strand_contracts::beacon::deal(addresses.len() as u32, seed);
    let mut genesis = SignedGenesis {
        genesis: Genesis {
            name: "strand-devnet-consortium".into(),
            validators: ValidatorSet::consortium(validators, beacon_key),
            epoch_blocks,
            timestamp_ms: now,
        },
        signatures: Vec::new(),
    };
    for identity in &identities {
        genesis.sign(identity);
    }
    genesis.verify()?;
    let sorted = genesis.genesis.validators.sorted();
    for (index, validator) in genesis.genesis.validators.validators.iter().enumerate() {
        let position = sorted.iter().position(|account| *account == validator.account).context("a validator")?;
        let share_path = directory.join(format!("validator-{}", index + 1)).join("beacon.share");
        let text = strand_contracts::beacon::share_file_text(&shares[position]);
        keyfile::write_secret(&share_path, text.as_bytes(), true)?;
    }
    let path = directory.join(GENESIS_FILE);
    std::fs::write(&path, genesis.to_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(genesis)
}

/// Where a devnet keeps its consortium's genesis.
pub const GENESIS_FILE: &str = "genesis.strand";

/// Starts (or restarts, with its data) validator `index` (from 1).
pub fn start_validator(config: &DevnetConfig, index: usize) -> anyhow::Result<Process> {
    start_validator_in(config, index, None)
}

/// Starts validator `index` (from 1) as [`start_validator`] does, inside
/// network namespace `netns` if given (`ip netns exec`, which becomes the
/// validator: stopping the process stops it).
pub fn start_validator_in(config: &DevnetConfig, index: usize, netns: Option<&str>) -> anyhow::Result<Process> {
    let directory = &config.directory;
    let binary = sibling_binary(&config.binaries, "strand-validator")?;
    let mut command = match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns]).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .arg("run")
        .arg("--genesis")
        .arg(directory.join(GENESIS_FILE))
        .arg("--data-dir")
        .arg(directory.join(format!("validator-{index}")))
        .args(["--metrics-listen", "127.0.0.1:0", "--block-interval-ms", &config.block_interval_ms.to_string()]);
    let name = format!("validator-{index}");
    Process::start(&name, command, "listening on", &directory.join(format!("{name}.log")))
}

/// Starts the ledger (a sequencer, or the validators) and the nodes.
pub fn start(config: &DevnetConfig) -> anyhow::Result<Devnet> {
    let directory = &config.directory;
    std::fs::create_dir_all(directory).with_context(|| format!("cannot create {}", directory.display()))?;
    let lock = lock(directory)?;
    if config.validators > 0 {
        let genesis = consortium_genesis(directory, config.validators, config.epoch_blocks)?;
        let ledger: Vec<String> = genesis.genesis.validators.validators.iter().map(|v| v.ledger.clone()).collect();
        let mut devnet =
            Devnet { ledger: ledger.join(","), ledger_metrics: String::new(), processes: Vec::new(), _lock: lock };
        for index in 1..=config.validators {
            match start_validator(config, index) {
                Ok(process) => devnet.processes.push(process),
                Err(error) => {
                    stop(devnet);
                    return Err(error);
                }
            }
        }
        devnet.ledger_metrics = metrics_url(&devnet.processes[0].ready_line).unwrap_or_default();
        return start_nodes(config, devnet);
    }
    let (block_interval_ms, epoch_blocks) = (config.block_interval_ms, config.epoch_blocks);
    let mut command = Command::new(sibling_binary(&config.binaries, "strand-sequencer")?);
    command
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--block-interval-ms", &block_interval_ms.to_string()])
        .args(["--epoch-blocks", &epoch_blocks.to_string(), "--data-dir"])
        .arg(directory.join("sequencer"));
    let sequencer = Process::start("sequencer", command, "listening on", &directory.join("sequencer.log"))?;
    let ledger =
        sequencer.ready_line.split_whitespace().nth(3).context("no address in the sequencer's ready line")?.to_string();
    let ledger_metrics = metrics_url(&sequencer.ready_line).context("no metrics URL in the sequencer's ready line")?;
    start_nodes(config, Devnet { ledger, ledger_metrics, processes: vec![sequencer], _lock: lock })
}

fn start_nodes(config: &DevnetConfig, mut devnet: Devnet) -> anyhow::Result<Devnet> {
    for index in 1..=config.nodes {
        match start_node(config, &devnet.ledger, index) {
            Ok(process) => devnet.processes.push(process),
            Err(error) => {
                stop(devnet);
                return Err(error);
            }
        }
    }
    Ok(devnet)
}

/// Starts (or restarts, with its data) node `index` following `ledger`.
pub fn start_node(config: &DevnetConfig, ledger: &str, index: usize) -> anyhow::Result<Process> {
    let directory = &config.directory;
    let node_binary = sibling_binary(&config.binaries, "strand-node")?;
    {
        let data_dir = directory.join(format!("node-{index}"));
        let config = directory.join(format!("node-{index}.toml"));
        let metrics = metrics_listen(&config)?;
        let text = format!(
            "data_dir = {data_dir:?}\nledger = {ledger:?}\np2p_listen = \"/ip4/127.0.0.1/tcp/0\"\nblobs_listen = \"127.0.0.1:0\"\n\
             metrics_listen = {metrics:?}\ncapacity = \"50GiB\"\n\n[domain]\norganisation = \"organisation-{index}\"\n\
             site = \"site-{index}\"\njurisdiction = \"EU\"\n"
        );
        std::fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
        let mut command = Command::new(&node_binary);
        command.arg("run").arg("--config").arg(&config);
        let log = directory.join(format!("node-{index}.log"));
        Process::start(&format!("node-{index}"), command, "strand-node ready", &log)
    }
}

/// The metrics address of the node configured in `config`: the one it had
/// (so Prometheus finds a restarted node where it was), or a free port.
fn metrics_listen(config: &Path) -> anyhow::Result<String> {
    let before = std::fs::read_to_string(config).unwrap_or_default();
    let kept = before
        .lines()
        .find_map(|line| line.strip_prefix("metrics_listen = "))
        .map(|value| value.trim().trim_matches('"').to_string())
        .filter(|address| !address.ends_with(":0"));
    match kept {
        Some(address) => Ok(address),
        None => free_address(),
    }
}

/// A loopback address with a port free now.
pub fn free_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.to_string())
}

/// The `http://.../metrics` URL at the end of a ready line.
pub fn metrics_url(ready_line: &str) -> Option<String> {
    ready_line.split_whitespace().skip_while(|word| *word != "metrics").nth(1).map(str::to_string)
}

/// The Prometheus alert rules shipped in `grafana/alerts`.
pub const ALERT_RULES: &str = include_str!("../../grafana/alerts/strand.rules.yml");

/// How `strand devnet --monitor` runs Prometheus.
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// Where Prometheus serves its UI and API (`127.0.0.1:0`: a free port).
    pub listen: String,
    /// Seconds between scrapes and rule evaluations.
    pub scrape_interval_s: u64,
}

/// Finds `name` on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
}

/// The Prometheus binary, or an error saying how to install it.
pub fn prometheus_binary() -> anyhow::Result<PathBuf> {
    on_path("prometheus").context(
        "--monitor needs Prometheus, and no `prometheus` program is on PATH: install Debian's `prometheus` package \
         (`sudo apt-get install prometheus`, which also brings `promtool`)",
    )
}

/// The Prometheus configuration scraping the ledger service and `nodes`
/// (name, metrics URL), with Strand's alert rules.
pub fn prometheus_config(ledger_metrics: &str, nodes: &[(String, String)], scrape_interval_s: u64) -> String {
    let target = |url: &str| url.trim_start_matches("http://").trim_end_matches("/metrics").to_string();
    let mut text = format!(
        "# Written by `strand devnet --monitor`.\nglobal:\n  scrape_interval: {scrape_interval_s}s\n  \
         evaluation_interval: {scrape_interval_s}s\nrule_files:\n  - strand.rules.yml\nscrape_configs:\n  \
         - job_name: strand-ledger\n    static_configs:\n      - targets: ['{}']\n        labels:\n          \
         name: sequencer\n  - job_name: strand-node\n    static_configs:\n",
        target(ledger_metrics)
    );
    for (name, url) in nodes {
        text.push_str(&format!("      - targets: ['{}']\n        labels:\n          name: {name}\n", target(url)));
    }
    text
}

/// Starts Prometheus in `directory/prometheus`, scraping the ledger
/// service's metrics at `ledger_metrics` and `nodes` (name, metrics URL),
/// with Strand's alert rules; ready once it answers `/-/ready`. Returns the
/// process and its URL.
pub fn start_prometheus(
    directory: &Path,
    ledger_metrics: &str,
    nodes: &[(String, String)],
    monitor: &MonitorConfig,
) -> anyhow::Result<(Process, String)> {
    let binary = prometheus_binary()?;
    let home = directory.join("prometheus");
    std::fs::create_dir_all(&home).with_context(|| format!("cannot create {}", home.display()))?;
    let config = home.join("prometheus.yml");
    std::fs::write(&config, prometheus_config(ledger_metrics, nodes, monitor.scrape_interval_s))
        .with_context(|| format!("cannot write {}", config.display()))?;
    std::fs::write(home.join("strand.rules.yml"), ALERT_RULES)?;
    let listen = if monitor.listen.ends_with(":0") { free_address()? } else { monitor.listen.clone() };
    let mut command = Command::new(binary);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", home.join("data").display()))
        .arg(format!("--web.listen-address={listen}"));
    let ready = || http_status(&listen, "/-/ready") == Some(200);
    let process =
        Process::start_polled("prometheus", command, &directory.join("prometheus.log"), ready).with_context(|| {
            format!("Prometheus did not start on {listen} (if the port is taken, pass --prometheus-listen)")
        })?;
    Ok((process, format!("http://{listen}")))
}

/// The status code of `GET path` at `address`, if it answers.
fn http_status(address: &str, path: &str) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let address: std::net::SocketAddr = address.parse().ok()?;
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Processes that exited since the last call (each reported once): name,
/// how it ended, its log.
pub fn newly_exited(
    devnet: &mut Devnet,
    reported: &mut std::collections::HashSet<String>,
) -> Vec<(String, String, PathBuf)> {
    let mut exited = Vec::new();
    for process in &mut devnet.processes {
        if reported.contains(&process.name) {
            continue;
        }
        if let Some(status) = process.exited() {
            reported.insert(process.name.clone());
            exited.push((process.name.clone(), describe_exit(status), process.log.clone()));
        }
    }
    exited
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("signal {signal} ({name})"),
            Err(_) => format!("signal {signal}"),
        },
        (None, None) => status.to_string(),
    }
}

/// Stops every process: SIGTERM to all, then wait (nodes first, the ledger
/// last).
pub fn stop(devnet: Devnet) {
    for process in devnet.processes.iter().rev() {
        process.terminate();
    }
    for process in devnet.processes.into_iter().rev() {
        process.wait(STOP_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that fails at start is reported at once, with what it said.
    #[test]
    fn a_process_that_stops_before_it_is_ready_is_reported_with_its_error() {
        let directory = tempfile::tempdir().expect("directory");
        let log = directory.path().join("p.log");
        let mut command = Command::new("sh");
        command.args(["-c", "echo starting; printf 'Error: cannot open the ledger\\n\\nCaused by:\\n    bad snapshot\\n\\nStack backtrace:\\n  0: x\\n' >&2; exit 1"]);
        let started = std::time::Instant::now();
        let error = Process::start("sequencer", command, "listening on", &log).map(|_| ()).expect_err("it stopped");
        let error = format!("{error:#}");
        assert!(started.elapsed() < READY_TIMEOUT / 2, "reported without waiting for the timeout");
        assert!(error.contains("stopped before it was ready"), "{error}");
        assert!(error.contains("Error: cannot open the ledger Caused by: bad snapshot"), "{error}");
        assert!(!error.contains("0: x"), "no backtrace: {error}");
    }

    #[test]
    fn the_prometheus_configuration_scrapes_the_ledger_and_every_node_with_the_rules() {
        let nodes = [("node-1".to_string(), "http://127.0.0.1:4001/metrics".to_string())];
        let text = prometheus_config("http://127.0.0.1:7401/metrics", &nodes, 2);
        assert!(text.contains("scrape_interval: 2s") && text.contains("rule_files:\n  - strand.rules.yml"), "{text}");
        assert!(text.contains("job_name: strand-ledger\n    static_configs:\n      - targets: ['127.0.0.1:7401']"));
        assert!(text.contains("- targets: ['127.0.0.1:4001']\n        labels:\n          name: node-1"), "{text}");
        assert!(ALERT_RULES.contains("groups:"), "the shipped rules are embedded");
    }

    #[test]
    fn a_node_keeps_its_metrics_port_across_restarts() {
        let directory = tempfile::tempdir().expect("directory");
        let config = directory.path().join("node-1.toml");
        let first = metrics_listen(&config).expect("a free port");
        assert!(first.starts_with("127.0.0.1:") && !first.ends_with(":0"), "{first}");
        std::fs::write(&config, format!("ledger = \"x\"\nmetrics_listen = {first:?}\n")).expect("write");
        assert_eq!(metrics_listen(&config).expect("kept"), first);
        assert_eq!(
            metrics_url("strand-node ready account a metrics http://127.0.0.1:9/metrics").as_deref(),
            Some("http://127.0.0.1:9/metrics")
        );
    }

    #[test]
    fn a_directory_in_use_names_the_process_that_uses_it() {
        let directory = tempfile::tempdir().expect("directory");
        let held = lock(directory.path()).expect("the first devnet locks it");
        let error = lock(directory.path()).expect_err("a second one is refused").to_string();
        assert!(error.contains(&format!("in use by process {}", std::process::id())), "{error}");
        drop(held);
        lock(directory.path()).expect("free again once the first stops");
    }
}
