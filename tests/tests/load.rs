//! Load on a real network: `strand load` runs 32 clients at once against a
//! six-node devnet, each uploading random files and downloading them back
//! for a bounded time. No round may fail, every download must come back
//! byte-identical, and the report carries throughput and p50/p99 latency
//! (the figures themselves go to BENCHMARKS.md, from a release build).

mod support;

use support::*;

#[test]
fn thirty_two_clients_upload_and_download_at_once_without_an_error() {
    let network = Network::start();
    let directory = network.path("load");
    let output = network.strand(&[
        "load",
        "--clients",
        "32",
        "--seconds",
        "10",
        "--size",
        "48KiB",
        // Small chunks: the test is about 32 clients at once, not bytes (a
        // 48 KiB file in 1 MiB chunks is 6 MiB of fragments, which a debug
        // build on a busy 2-core machine moves too slowly).
        "--chunk-size",
        "16KiB",
        "--dir",
        directory.to_str().expect("utf-8"),
        "--json",
    ]);
    assert!(output.status.success(), "{}", strand_tests::describe(&output));
    let report = strand_tests::json(&output);
    eprintln!("{report:#}");
    assert_eq!(report["clients"], 32);
    assert_eq!(report["errors"].as_array().map(Vec::len), Some(0), "{report:#}");
    let uploads = report["upload"]["count"].as_u64().expect("count");
    let downloads = report["download"]["count"].as_u64().expect("count");
    assert!(uploads >= 32, "every client finished at least one round: {report:#}");
    assert_eq!((downloads, report["identical"].as_u64()), (uploads, Some(uploads)), "{report:#}");
    for operation in ["upload", "download"] {
        let (p50, p99) = (report[operation]["p50_ms"].as_f64(), report[operation]["p99_ms"].as_f64());
        assert!(p50.is_some_and(|p50| p50 > 0.0) && p99 >= p50, "{operation}: {report:#}");
    }
    let expected = (uploads * 2 * 48 * 1024) as f64 / report["seconds"].as_f64().expect("seconds");
    let throughput = report["throughput_bytes_per_s"].as_f64().expect("throughput");
    assert!((throughput / expected - 1.0).abs() < 1e-6, "{throughput} vs {expected}");
}

/// A load against no ledger fails with the reason, not a hang.
#[test]
fn a_load_without_a_ledger_fails_clearly() {
    let home = tempfile::tempdir().expect("home");
    let output = std::process::Command::new(strand_tests::binary("strand-client", "strand"))
        .args(["load", "--clients", "2", "--seconds", "1", "--ledger", "127.0.0.1:1", "--json"])
        .env("STRAND_HOME", home.path())
        .output()
        .expect("strand runs");
    assert!(!output.status.success());
    // The report, then the error as JSON.
    let mut documents = serde_json::Deserializer::from_slice(&output.stdout).into_iter::<serde_json::Value>();
    let report = documents.next().expect("a report").expect("JSON");
    let error = documents.next().expect("an error").expect("JSON");
    assert!(error.to_string().contains("2 of the load's rounds failed"), "{error}");
    let errors = report["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{report:#}");
    assert!(errors[0].as_str().is_some_and(|error| error.contains("127.0.0.1:1")), "{report:#}");
}
