//! The README's main command, run as a new user runs it: `strand devnet
//! --demo` starts a local network, uploads and downloads a sample and prints
//! the check; a node that dies is reported; Ctrl-C stops every process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strand_tests::binary;

/// Process ids whose command line mentions `directory`.
fn processes_under(directory: &Path) -> Vec<i32> {
    let needle = directory.to_string_lossy().into_owned();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let Ok(command_line) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if String::from_utf8_lossy(&command_line).contains(&needle) {
            found.push(pid);
        }
    }
    found
}

/// Waits (at most `limit`) for a line matching `wanted`, returning it and
/// every line seen before it.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    wanted: impl Fn(&str) -> bool,
    limit: Duration,
) -> (String, Vec<String>) {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return (line, seen),
            Ok(line) => seen.push(line),
            Err(_) => panic!("no such line within {limit:?}; the devnet printed:\n{}", seen.join("\n")),
        }
    }
}

/// `strand devnet ARGUMENTS` with `home` as its `STRAND_HOME`, and the lines
/// it prints.
fn devnet(home: &Path, arguments: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut devnet = Command::new(binary("strand-client", "strand"))
        .arg("devnet")
        .args(arguments)
        .env("STRAND_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("strand devnet starts");
    let stdout = devnet.stdout.take().expect("piped");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    (devnet, lines)
}

#[test]
fn devnet_demo_checks_reports_a_dead_node_and_stops_everything_on_ctrl_c() {
    let home = tempfile::tempdir().expect("home");
    let directory = home.path().join("devnet");
    let (mut devnet, lines) = devnet(home.path(), &["--demo", "--block-interval-ms", "200"]);

    let (check, before) = wait_for_line(&lines, |line| line.starts_with("check"), Duration::from_secs(180));
    assert!(before.iter().any(|line| line.contains("node-6") && line.contains("/metrics")), "{before:?}");
    let hashes: Vec<&str> = check.split_whitespace().filter(|word| word.len() == 16).collect();
    assert_eq!(hashes.len(), 2, "{check}");
    assert_eq!(hashes[0], hashes[1], "the demo's download equals its upload: {check}");
    assert!(check.contains("=="), "{check}");

    let all = processes_under(&directory);
    assert_eq!(all.len(), 7, "a sequencer and six nodes run under {}: {all:?}", directory.display());
    let node_two = processes_under(&directory.join("node-2.toml"));
    assert_eq!(node_two.len(), 1, "node-2 runs once");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(node_two[0]), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let (exited, _) = wait_for_line(&lines, |line| line.starts_with("node-2 exited"), Duration::from_secs(20));
    assert!(exited.contains("SIGKILL"), "{exited}");
    let log = exited.split("its log: ").nth(1).expect("the line names the log");
    assert!(Path::new(log).is_file(), "the named log exists: {exited}");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(devnet.id() as i32), nix::sys::signal::Signal::SIGINT)
        .expect("Ctrl-C");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = devnet.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            devnet.kill().ok();
            panic!("strand devnet did not stop within 60 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "Ctrl-C stops the devnet cleanly: {status}");
    let left = processes_under(&directory);
    assert!(left.is_empty(), "no process is left behind: {left:?}");
}

/// Waits (at most `limit`) for `child` to exit.
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_second_devnet_names_the_first_and_a_closed_pipe_stops_a_devnet_quietly() {
    let home = tempfile::tempdir().expect("home");
    let directory = home.path().join("devnet");
    let stderr = home.path().join("devnet-stderr.txt");
    let mut first = Command::new(binary("strand-client", "strand"))
        .args(["devnet", "--nodes", "2", "--block-interval-ms", "200"])
        .env("STRAND_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("strand devnet starts");
    let mut stdout = BufReader::new(first.stdout.take().expect("piped"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut line = String::new();
    while !line.contains("press Ctrl-C") {
        assert!(Instant::now() < deadline, "the devnet did not become ready");
        line.clear();
        assert!(stdout.read_line(&mut line).expect("read") > 0, "the devnet stopped early");
    }

    // A second devnet in the same directory says who holds it, at once.
    let started = Instant::now();
    let second = Command::new(binary("strand-client", "strand"))
        .args(["devnet", "--nodes", "2", "--dir", directory.to_str().expect("utf-8")])
        .env("STRAND_HOME", home.path())
        .output()
        .expect("a second strand devnet runs");
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(message.contains(&format!("is in use by process {}", first.id())), "{message}");
    assert!(started.elapsed() < Duration::from_secs(30), "refused at once, not after a readiness timeout");
    assert_eq!(processes_under(&directory).len(), 3, "the first devnet's processes are untouched");

    // Its reader goes away; the next line it prints (a node's exit) finds
    // the pipe closed: it stops every process and exits quietly.
    drop(stdout);
    let node_one = processes_under(&directory.join("node-1.toml"));
    assert_eq!(node_one.len(), 1);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(node_one[0]), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let status = wait_exit(&mut first, Duration::from_secs(60));
    let said = std::fs::read_to_string(&stderr).expect("stderr");
    assert!(status.success(), "{status}: {said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(processes_under(&directory).is_empty(), "no process is left behind");
}

#[test]
fn devnet_monitor_starts_prometheus_scraping_every_process_and_ctrl_c_stops_it_too() {
    let home = tempfile::tempdir().expect("home");
    let directory = home.path().join("devnet");
    // Without Prometheus on PATH: refused at once, naming the package,
    // before anything starts.
    let missing = Command::new(binary("strand-client", "strand"))
        .args(["devnet", "--nodes", "2", "--monitor"])
        .env("STRAND_HOME", home.path())
        .env("PATH", home.path())
        .output()
        .expect("strand runs");
    assert!(!missing.status.success());
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(message.contains("apt-get install prometheus") && message.contains("`prometheus` package"), "{message}");
    assert!(processes_under(&directory).is_empty(), "nothing started");

    let monitor = ["--nodes", "2", "--block-interval-ms", "200", "--monitor", "--prometheus-listen", "127.0.0.1:0"];
    let (mut devnet, lines) = devnet(home.path(), &[&monitor[..], &["--scrape-interval", "1"]].concat());
    let (line, _) = wait_for_line(&lines, |line| line.starts_with("prometheus http://"), Duration::from_secs(180));
    let url = line.split_whitespace().nth(1).expect("the URL").to_string();
    wait_for_line(&lines, |line| line.contains("press Ctrl-C"), Duration::from_secs(30));
    assert_eq!(processes_under(&directory).len(), 4, "a sequencer, two nodes and Prometheus");

    // It scrapes the ledger service and both nodes, with the rules loaded.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up =
            strand_tests::http_get(&format!("{url}/api/v1/query?query=sum%20by%20(job)%20(up)")).unwrap_or_default();
        let answer: serde_json::Value = serde_json::from_str(&up).unwrap_or_default();
        let by_job: Vec<(String, String)> = answer["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|series| {
                (
                    series["metric"]["job"].as_str().unwrap_or("").to_string(),
                    series["value"][1].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        if by_job.contains(&("strand-ledger".into(), "1".into()))
            && by_job.contains(&("strand-node".into(), "2".into()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus does not see every process up: {up}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let rules = strand_tests::http_get(&format!("{url}/api/v1/rules")).expect("rules");
    assert!(rules.contains("StrandNodeDown") && rules.contains("StrandProofsMissed"), "{rules}");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(devnet.id() as i32), nix::sys::signal::Signal::SIGINT)
        .expect("Ctrl-C");
    let status = wait_exit(&mut devnet, Duration::from_secs(60));
    assert!(status.success(), "{status}");
    let left = processes_under(&directory);
    assert!(left.is_empty(), "no process is left behind, Prometheus included: {left:?}");
}
