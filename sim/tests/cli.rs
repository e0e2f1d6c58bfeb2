//! The `strand-sim` binary as a user runs it: a report, the files under
//! `--out`, and clear exits for a bad scenario.

use std::process::Command;

fn strand_sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strand-sim"))
}

#[test]
fn a_run_writes_its_report_timeline_and_plot() {
    let out = std::env::temp_dir().join(format!("strand-sim-cli-{}", std::process::id()));
    let scenario = format!("{}/scenarios/churn.toml", env!("CARGO_MANIFEST_DIR"));
    let run =
        strand_sim().args(["run", &scenario, "--seed", "3", "--out"]).arg(&out).output().expect("strand-sim runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("invariants   all held"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("timeline.csv")).expect("timeline.csv");
    let svg = std::fs::read_to_string(out.join("timeline.svg")).expect("timeline.svg");
    let json = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    std::fs::remove_dir_all(&out).ok();
    assert_eq!(csv.lines().count(), 38, "a header and 37 epochs:\n{csv}");
    assert!(svg.starts_with("<svg") && svg.matches("<polyline").count() >= 8, "two panels of four lines");
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(report["seed"], 3);
}

#[test]
fn a_bad_scenario_exits_2_naming_the_field() {
    let path = std::env::temp_dir().join(format!("strand-sim-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "nodes = 3\ndata_shards = 4\nparity_shards = 2\n").expect("written");
    let run = strand_sim().arg("run").arg(&path).output().expect("strand-sim runs");
    std::fs::remove_file(&path).ok();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nodes"), "{stderr}");
}
