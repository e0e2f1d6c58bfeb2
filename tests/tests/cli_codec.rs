//! The offline `strand` commands, run as a user runs them.

use std::path::Path;

use rand::SeedableRng;
use strand_tests::{describe, json, strand};

const CHUNK: usize = 64 * 1024;

struct Workspace {
    directory: tempfile::TempDir,
}

impl Workspace {
    /// A fresh STRAND_HOME with an identity in it.
    fn new() -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let workspace = Self { directory };
        let output = workspace.strand(&["keygen"]);
        assert!(output.status.success(), "{}", describe(&output));
        workspace
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.directory.path().join(name)
    }

    fn strand(&self, arguments: &[&str]) -> std::process::Output {
        strand(self.directory.path(), arguments)
    }

    fn write_sample(&self, name: &str, length: usize, seed: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; length];
        rand::Rng::fill_bytes(&mut rand::rngs::StdRng::seed_from_u64(seed), &mut bytes);
        std::fs::write(self.path(name), &bytes).expect("write sample");
        bytes
    }

    /// Encodes `name` with 64 KiB chunks and RS(4+2); returns the summary.
    fn encode(&self, name: &str) -> serde_json::Value {
        let file = self.path(name);
        let fragments = self.path("fragments");
        let output = self.strand(&[
            "encode",
            file.to_str().expect("utf-8"),
            "--out",
            fragments.to_str().expect("utf-8"),
            "--chunk-size",
            "64KiB",
            "--json",
        ]);
        assert!(output.status.success(), "{}", describe(&output));
        json(&output)
    }

    fn decode(&self, summary: &serde_json::Value, out: &str, extra: &[&str]) -> std::process::Output {
        let out = self.path(out);
        let fragments = self.path("fragments");
        let mut arguments = vec![
            "decode",
            summary["index"].as_str().expect("index path"),
            "--fragments",
            fragments.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--json",
        ];
        arguments.extend_from_slice(extra);
        self.strand(&arguments)
    }
}

fn fragment_files(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(directory)
        .expect("fragment directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_none())
        .collect();
    files.sort();
    files
}

#[test]
fn keygen_writes_a_private_key_file_and_prints_the_public_key() {
    let workspace = Workspace::new();
    let key = workspace.path("identity.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let other = workspace.path("other.pem");
    let output = workspace.strand(&["keygen", "--out", other.to_str().expect("utf-8")]);
    let public_key = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert_eq!(public_key.len(), 64, "{}", describe(&output));
    assert!(public_key.chars().all(|c| c.is_ascii_hexdigit()));
    let again = workspace.strand(&["keygen", "--out", other.to_str().expect("utf-8")]);
    assert_eq!(again.status.code(), Some(5), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
}

#[test]
fn files_of_boundary_sizes_round_trip_byte_for_byte() {
    for length in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 4 * CHUNK * 3 + 17] {
        let workspace = Workspace::new();
        let original = workspace.write_sample("input.bin", length, length as u64);
        let summary = workspace.encode("input.bin");
        assert_eq!(summary["file_bytes"], length);
        let output = workspace.decode(&summary, "output.bin", &[]);
        assert!(output.status.success(), "length {length}: {}", describe(&output));
        assert_eq!(json(&output)["file_blake3_verified"], true);
        assert_eq!(std::fs::read(workspace.path("output.bin")).expect("output"), original, "length {length}");
    }
}

#[test]
fn a_range_decodes_to_exactly_that_slice() {
    let workspace = Workspace::new();
    let original = workspace.write_sample("input.bin", 10 * CHUNK + 5, 1);
    let summary = workspace.encode("input.bin");
    let output = workspace.decode(&summary, "slice.bin", &["--range", "100000..300001"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(std::fs::read(workspace.path("slice.bin")).expect("slice"), &original[100_000..300_001]);
    let beyond = workspace.decode(&summary, "beyond.bin", &["--range", "0..99999999"]);
    assert_eq!(beyond.status.code(), Some(2), "{}", describe(&beyond));
    assert!(!workspace.path("beyond.bin").exists());
}

#[test]
fn losses_up_to_parity_are_repaired_and_reported_beyond_it_fail_cleanly() {
    let workspace = Workspace::new();
    let original = workspace.write_sample("input.bin", 8 * CHUNK, 2);
    let summary = workspace.encode("input.bin");
    let files = fragment_files(&workspace.path("fragments"));
    assert_eq!(files.len(), 12, "two stripes of RS(4+2)");

    // Flip a bit in one fragment and delete another: at most 2 per stripe.
    let mut bytes = std::fs::read(&files[0]).expect("fragment");
    bytes[10] ^= 1;
    std::fs::write(&files[0], bytes).expect("tamper");
    std::fs::remove_file(&files[1]).expect("delete");
    let output = workspace.decode(&summary, "output.bin", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(std::fs::read(workspace.path("output.bin")).expect("output"), original);

    // Delete everything but three fragments: some stripe must fall below k.
    for file in &files[2..9] {
        std::fs::remove_file(file).expect("delete");
    }
    let failed = workspace.decode(&summary, "lost.bin", &[]);
    assert_eq!(failed.status.code(), Some(3), "{}", describe(&failed));
    let message = String::from_utf8_lossy(&failed.stderr);
    assert!(message.contains("cannot be recovered") && message.contains("stripe"), "{message}");
    assert!(!workspace.path("lost.bin").exists(), "no partial output is left behind");
}

#[test]
fn a_wrong_key_or_a_damaged_index_is_refused_with_its_own_exit_code() {
    let workspace = Workspace::new();
    workspace.write_sample("input.bin", 3 * CHUNK, 3);
    let summary = workspace.encode("input.bin");
    let index = summary["index"].as_str().expect("index").to_string();

    let stranger = workspace.path("stranger.pem");
    assert!(workspace.strand(&["keygen", "--out", stranger.to_str().expect("utf-8")]).status.success());
    let output = workspace.decode(&summary, "out.bin", &["--key", stranger.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not to yours"));

    let sealed = std::fs::read(&index).expect("index");
    std::fs::write(&index, &sealed[..sealed.len() - 7]).expect("truncate");
    let output = workspace.decode(&summary, "out.bin", &[]);
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("truncated"));

    let mut altered = sealed;
    let last = altered.len() - 1;
    altered[last] ^= 1;
    std::fs::write(&index, &altered).expect("alter");
    let output = workspace.decode(&summary, "out.bin", &[]);
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("altered"));
    assert!(!workspace.path("out.bin").exists());
}

#[test]
fn bad_input_gets_a_clear_error_and_usage_exit_code() {
    let workspace = Workspace::new();
    let directory = workspace.path("fragments");
    std::fs::create_dir_all(&directory).expect("directory");
    let output = workspace.strand(&["encode", directory.to_str().expect("utf-8"), "--out", "x"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a regular file"));

    workspace.write_sample("input.bin", 10, 4);
    let input = workspace.path("input.bin");
    let output = workspace.strand(&["encode", input.to_str().expect("utf-8"), "--out", "x", "--chunk-size", "1000"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("power of two"));
}

#[test]
fn demo_runs_end_to_end_and_reports_the_check() {
    let home = tempfile::tempdir().expect("temporary directory");
    let output = strand(home.path(), &["demo", "--size", "6MiB", "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let report = json(&output);
    assert_eq!(report["check"], true);
    assert_eq!(report["original_blake3"], report["decoded_blake3"]);
    // 6 chunks in two stripes: one loses two fragments, the other has one
    // flipped bit; both are rebuilt and reported.
    let degraded = report["decode"]["degraded_stripes"].as_array().map_or(0, Vec::len);
    assert_eq!(degraded, 2, "{}", describe(&output));
}

/// `strand demo | head -1`: the reader goes away after one line; the
/// command ends quietly instead of panicking on the closed pipe.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::io::BufRead as _;
    let home = tempfile::tempdir().expect("home");
    let mut demo = std::process::Command::new(strand_tests::binary("strand-client", "strand"))
        .args(["demo", "--size", "256KiB"])
        .env("STRAND_HOME", home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strand demo starts");
    let mut first = String::new();
    std::io::BufReader::new(demo.stdout.take().expect("piped")).read_line(&mut first).expect("a first line");
    assert!(first.starts_with("1. identity"), "{first}");
    // The reader is gone: every later line finds the pipe closed.
    let output = demo.wait_with_output().expect("the demo ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stderr}", output.status);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
}
