//! The storage network with real processes on 127.0.0.1: a sequencer and six
//! storage nodes, driven with the real `strand` command.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rand::SeedableRng;
use strand_client::devnet::{self, DevnetConfig, Process};
use strand_client::record::UploadRecord;
use strand_core::Identity;
use strand_tests::{binary, describe, json};

struct Network {
    config: DevnetConfig,
    ledger: String,
    sequencer: Process,
    nodes: Vec<Option<Process>>,
    home: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Network {
    fn start() -> Self {
        let strand = binary("strand-client", "strand");
        binary("strand-node", "strand-node");
        binary("strand-ledger-service", "strand-sequencer");
        let data = tempfile::tempdir().expect("temporary directory");
        let config = DevnetConfig {
            directory: data.path().to_path_buf(),
            binaries: strand.parent().expect("binary directory").to_path_buf(),
            nodes: 6,
            block_interval_ms: 200,
            epoch_blocks: 600,
        };
        let mut devnet = devnet::start(&config).expect("the devnet starts");
        let sequencer = devnet.processes.remove(0);
        let nodes = devnet.processes.into_iter().map(Some).collect();
        let network = Self {
            config,
            ledger: devnet.ledger,
            sequencer,
            nodes,
            home: tempfile::tempdir().expect("home"),
            _data: data,
        };
        let output = network.strand(&["keygen"]);
        assert!(output.status.success(), "{}", describe(&output));
        network
    }

    fn strand(&self, arguments: &[&str]) -> Output {
        Command::new(binary("strand-client", "strand"))
            .args(arguments)
            .env("STRAND_HOME", self.home.path())
            .env("STRAND_LEDGER", &self.ledger)
            .output()
            .expect("run strand")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn upload(&self, name: &str, extra: &[&str]) -> String {
        let file = self.path(name);
        let mut arguments = vec!["upload", file.to_str().expect("utf-8"), "--json"];
        arguments.extend_from_slice(extra);
        let output = self.strand(&arguments);
        assert!(output.status.success(), "upload of {name}: {}", describe(&output));
        json(&output)["upload_id"].as_str().expect("upload id").to_string()
    }

    fn download(&self, upload: &str, out: &str, extra: &[&str]) -> Output {
        let out = self.path(out);
        let mut arguments = vec!["download", upload, "--out", out.to_str().expect("utf-8"), "--json"];
        arguments.extend_from_slice(extra);
        self.strand(&arguments)
    }

    fn kill(&mut self, index: usize) {
        self.nodes[index].take().expect("node running").kill();
    }

    fn restart(&mut self, index: usize) {
        let process = devnet::start_node(&self.config, &self.ledger, index + 1).expect("node restarts");
        self.nodes[index] = Some(process);
    }

    fn metrics(&self, index: usize) -> String {
        let line = &self.nodes[index].as_ref().expect("node running").ready_line;
        let url = line.split_whitespace().last().expect("metrics url");
        http_get(url)
    }

    fn node_account(&self, index: usize) -> [u8; 32] {
        let line = &self.nodes[index].as_ref().expect("node running").ready_line;
        let account = line.split_whitespace().nth(3).expect("account");
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(account, &mut bytes).expect("hex account");
        bytes
    }

    fn node_iroh(&self, index: usize) -> std::net::SocketAddr {
        let line = &self.nodes[index].as_ref().expect("node running").ready_line;
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|word| *word == "iroh").expect("iroh address");
        words[at + 1].parse().expect("socket address")
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for node in self.nodes.iter().flatten() {
            node.terminate();
        }
        self.sequencer.terminate();
    }
}

fn http_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("path");
    let mut stream = std::net::TcpStream::connect(host).expect("connect to metrics");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn sample(path: &Path, length: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; length];
    rand::Rng::fill_bytes(&mut rand::rngs::StdRng::seed_from_u64(seed), &mut bytes);
    std::fs::write(path, &bytes).expect("write sample");
    bytes
}

#[test]
fn the_storage_network_end_to_end() {
    let mut network = Network::start();

    // Boundary sizes (64 KiB chunks) and a 64 MiB file (1 MiB chunks).
    let chunk = 64 * 1024;
    let mut uploads = Vec::new();
    for (index, length) in [0usize, 1, chunk - 1, chunk + 1].into_iter().enumerate() {
        let name = format!("small-{index}.bin");
        let original = sample(&network.path(&name), length, index as u64);
        let upload = network.upload(&name, &["--chunk-size", "64KiB"]);
        uploads.push((upload, original));
    }
    let big = sample(&network.path("big.bin"), 64 << 20, 99);
    let big_upload = network.upload("big.bin", &[]);
    for (index, (upload, original)) in uploads.iter().enumerate() {
        let output = network.download(upload, &format!("small-{index}.out"), &[]);
        assert!(output.status.success(), "{}", describe(&output));
        assert_eq!(
            &std::fs::read(network.path(&format!("small-{index}.out"))).expect("output"),
            original,
            "size {}",
            original.len()
        );
    }
    let output = network.download(&big_upload, "big.out", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(json(&output)["file_blake3_verified"], true);
    assert!(std::fs::read(network.path("big.out")).expect("output") == big, "64 MiB round trip");
    let output = network.download(&big_upload, "slice.out", &["--range", "10000000..30000001"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(std::fs::read(network.path("slice.out")).expect("slice") == big[10_000_000..30_000_001], "range");

    // A stranger is refused and the node releases nothing to it; an
    // unsolicited push is refused.
    let owner = strand_core::keyfile::read(&network.path("identity.pem")).expect("owner key");
    let record = UploadRecord::load(network.home.path(), &big_upload, &owner).expect("record");
    let holder = 3;
    let account = strand_contracts::AccountId(network.node_account(holder));
    let fragment = (0..record.index.layout.stripe_count)
        .flat_map(|stripe| (0..6).map(move |shard| (stripe, shard)))
        .find(|&(stripe, shard)| record.provider_of(stripe, shard) == account)
        .map(|(stripe, shard)| *record.index.stripe(stripe)[shard].as_bytes())
        .expect("node 4 holds a fragment");
    let released_before = metric(&network.metrics(holder), "strand_node_fragment_bytes_released_total");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let stranger = Identity::from_secret_bytes(&[66; 32]);
    let iroh = network.node_iroh(holder);
    runtime.block_on(async {
        let endpoint = strand_net::blobs::endpoint(*stranger.secret_bytes(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("endpoint");
        let remote = strand_net::blobs::remote_address(account.0, &[iroh]).expect("address");
        let connection = strand_net::blobs::connect(&endpoint, remote, Duration::from_secs(5)).await.expect("connects");
        let refused = strand_net::blobs::fetch_bytes(&connection, fragment, Duration::from_secs(10)).await;
        assert!(refused.is_err(), "a stranger must not get a fragment");
        let store = iroh_blobs::store::mem::MemStore::new();
        let planted = store.add_bytes(b"not agreed".to_vec()).await.expect("add").hash;
        let push = iroh_blobs::protocol::PushRequest::new(planted, iroh_blobs::protocol::ChunkRangesSeq::root());
        let _ = store.remote().execute_push(connection.clone(), push).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        endpoint.close().await;
    });
    let metrics = network.metrics(holder);
    assert_eq!(
        metric(&metrics, "strand_node_fragment_bytes_released_total"),
        released_before,
        "zero bytes released to the stranger"
    );
    assert!(metric(&metrics, "strand_node_requests_refused_total{operation=\"get\"") >= 1.0, "{metrics}");
    assert!(
        metric(&metrics, "strand_node_requests_refused_total{operation=\"push\",reason=\"not_agreed\"}") >= 1.0,
        "{metrics}"
    );

    // m = 2 nodes killed: still downloads, reporting the degraded stripes.
    network.kill(0);
    network.kill(1);
    let output = network.download(&big_upload, "degraded.out", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let summary = json(&output);
    assert!(summary["degraded_stripes"].as_array().is_some_and(|stripes| !stripes.is_empty()), "{summary}");
    assert!(std::fs::read(network.path("degraded.out")).expect("output") == big);

    // m + 1 killed: a clear failure naming what is unreachable, no output.
    network.kill(2);
    let output = network.download(&big_upload, "lost.out", &[]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("cannot be recovered") && message.contains("unreachable"), "{message}");
    assert!(!network.path("lost.out").exists());

    // A node restarted after SIGKILL serves every fragment it acknowledged:
    // with nodes 2 and 3 still down, node 1's fragments are needed.
    network.restart(0);
    let output = network.download(&big_upload, "after-restart.out", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(std::fs::read(network.path("after-restart.out")).expect("output") == big);
}
