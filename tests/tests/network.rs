//! The storage network with real processes on 127.0.0.1: a sequencer and six
//! storage nodes, driven with the real `strand` command.

mod support;

use std::time::Duration;

use strand_client::record::UploadRecord;
use strand_core::Identity;
use strand_tests::{describe, json};
use support::*;

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
