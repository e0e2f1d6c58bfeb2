//! The operators' view, proven against a real Prometheus (Debian's
//! `prometheus` package; `.ci/run` installs it): the alert rules pass
//! `promtool`, with a test of every alert firing and not firing; the
//! dashboards follow the house rules; and a devnet scraped by Prometheus,
//! put through uploads, downloads, a refused grantee and a killed provider
//! (proofs missed, repair), answers every panel, variable and alert query
//! with data, exports exactly the metric families the dashboards use (or
//! lists as not shown), and fires the node-down and proofs-missed alerts and
//! no other.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use strand_client::devnet::{self, MonitorConfig};
use strand_tests::{describe, json};
use support::*;

/// The repository's `grafana/` directory.
fn grafana() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana")
}

/// `name` on PATH, or a failure saying how to install it.
fn tool(name: &str) -> PathBuf {
    devnet::on_path(name).unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: these tests need Debian's `prometheus` package (prometheus and promtool): \
             `sudo apt-get install --no-install-recommends prometheus` (.ci/run installs it)"
        )
    })
}

/// The alert names of the rule file, in order.
fn alert_names(rules: &str) -> Vec<String> {
    rules.lines().filter_map(|line| line.trim().strip_prefix("- alert: ")).map(str::to_string).collect()
}

#[test]
fn the_alert_rules_are_valid_and_every_alert_is_tested_firing_and_not_firing() {
    let promtool = tool("promtool");
    let alerts = grafana().join("alerts");
    let check = Command::new(&promtool).arg("check").arg("rules").arg("strand.rules.yml").current_dir(&alerts).output();
    let check = check.expect("promtool runs");
    assert!(check.status.success(), "promtool check rules: {}", describe(&check));
    let test = Command::new(&promtool).args(["test", "rules", "strand.test.yml"]).current_dir(&alerts).output();
    let test = test.expect("promtool runs");
    assert!(test.status.success(), "promtool test rules: {}", describe(&test));

    let rules = std::fs::read_to_string(alerts.join("strand.rules.yml")).expect("rules");
    let tests = std::fs::read_to_string(alerts.join("strand.test.yml")).expect("tests");
    let names = alert_names(&rules);
    assert!(names.len() >= 8, "{names:?}");
    let readme = std::fs::read_to_string(grafana().join("README.md")).expect("grafana/README.md");
    for name in &names {
        let cases: Vec<&str> =
            tests.split("alertname: ").skip(1).filter(|case| case.starts_with(&format!("{name}\n"))).collect();
        let quiet = cases.iter().filter(|case| case.lines().nth(1).is_some_and(|line| line.trim() == "exp_alerts: []"));
        let firing = cases.iter().filter(|case| case.lines().nth(1).is_some_and(|line| line.trim() == "exp_alerts:"));
        assert!(quiet.count() >= 1, "{name} has no test in which it does not fire");
        assert!(firing.count() >= 1, "{name} has no test in which it fires");
        // Its runbook section exists.
        let anchor = format!("grafana/README.md#{}", name.to_lowercase());
        assert!(rules.contains(&anchor), "{name} links to {anchor}");
        assert!(readme.contains(&format!("### {name}")), "grafana/README.md has no runbook section for {name}");
    }
}

/// Every dashboard: (file name, JSON).
fn dashboards() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(grafana().join("dashboards")).expect("grafana/dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|extension| extension == "json") {
            let text = std::fs::read_to_string(&path).expect("dashboard");
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            found.push((path.file_name().expect("name").to_string_lossy().into_owned(), value));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every panel of a dashboard, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel.clone());
        all.extend(panel["panels"].as_array().into_iter().flatten().cloned());
    }
    all
}

/// (dashboard, panel title, expression) of every panel query.
fn panel_queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    for (file, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default().to_string();
                queries.push((file.clone(), panel["title"].as_str().unwrap_or_default().to_string(), expr));
            }
        }
    }
    queries
}

/// (dashboard, variable name, query) of every query variable.
fn variable_queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    for (file, dashboard) in dashboards() {
        for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
            if variable["type"] == "query" {
                let query = match &variable["query"] {
                    Value::String(text) => text.clone(),
                    other => other["query"].as_str().unwrap_or_default().to_string(),
                };
                queries.push((file.clone(), variable["name"].as_str().unwrap_or_default().to_string(), query));
            }
        }
    }
    queries
}

#[test]
fn the_dashboards_have_a_datasource_variable_units_descriptions_and_rate_intervals() {
    let dashboards = dashboards();
    let names: Vec<&str> = dashboards.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.contains(&"strand-node.json") && names.contains(&"strand-network.json"), "{names:?}");
    for (file, dashboard) in &dashboards {
        let variables = dashboard["templating"]["list"].as_array().expect("template variables");
        assert!(
            variables.first().is_some_and(|first| first["type"] == "datasource" && first["query"] == "prometheus"),
            "{file}: the first variable chooses the Prometheus datasource"
        );
        for panel in panels(dashboard) {
            if panel["type"] == "row" {
                continue;
            }
            let title = panel["title"].as_str().unwrap_or_default();
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{file} / {title}: datasource variable");
            assert!(panel["fieldConfig"]["defaults"]["unit"].is_string(), "{file} / {title}: unit set");
            assert!(
                panel["description"].as_str().is_some_and(|text| text.len() > 10),
                "{file} / {title}: what it answers"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file} / {title}: queries");
            for target in targets {
                let expr = target["expr"].as_str().expect("expr");
                for function in ["rate(", "increase("] {
                    for (at, _) in expr.match_indices(function) {
                        let window = &expr[at..];
                        let window = &window[window.find('[').expect("a range")..];
                        assert!(
                            window.starts_with("[$__rate_interval]") || window.starts_with("[1h]"),
                            "{file} / {title}: {function} uses $__rate_interval: {expr}"
                        );
                    }
                }
            }
        }
    }
    let provisioning = grafana().join("provisioning");
    assert!(
        provisioning.join("datasources/strand.yml").is_file() && provisioning.join("dashboards/strand.yml").is_file()
    );
}

/// Grafana's macros and template variables, as a query would see them
/// with "All" chosen.
fn substitute(expr: &str, variables: &[String]) -> String {
    let mut expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$__range", "1h");
    for name in variables {
        for form in [format!("${{{name}:regex}}"), format!("${{{name}}}"), format!("[[{name}]]"), format!("${name}")] {
            expr = expr.replace(&form, ".+");
        }
    }
    expr
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `GET path` at Prometheus, parsed.
fn api(prometheus: &str, path: &str) -> Value {
    let body = strand_tests::http_get(&format!("{prometheus}{path}")).unwrap_or_else(|| panic!("no answer to {path}"));
    serde_json::from_str(&body)
        .unwrap_or_else(|error| panic!("Prometheus answered {path} with non-JSON ({error}): {body}"))
}

/// The result of an instant query.
fn query(prometheus: &str, expr: &str) -> Vec<Value> {
    let answer = api(prometheus, &format!("/api/v1/query?query={}", percent_encode(expr)));
    assert_eq!(answer["status"], "success", "{expr}: {answer}");
    answer["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Metric families a `/metrics` text declares.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The `strand_*` metric families an expression names (histogram series
/// named by their family).
fn names_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut at = 0;
    while let Some(found) = expr[at..].find("strand_") {
        let start = at + found;
        let end =
            start + expr[start..].bytes().take_while(|byte| byte.is_ascii_alphanumeric() || *byte == b'_').count();
        let preceded = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !preceded {
            let name = &expr[start..end];
            let family =
                ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name);
            names.insert(family.to_string());
        }
        at = end;
    }
    names
}

/// Every vector selector (`name{matchers}`) of an alert expression.
fn selectors(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    for name in names_in(expr).into_iter().chain(expr.contains("up{").then(|| "up".to_string())) {
        for (at, _) in expr.match_indices(&name) {
            let rest = &expr[at + name.len()..];
            let before = expr[..at].chars().last();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let matchers = if rest.starts_with('{') { &rest[..=rest.find('}').expect("closed matchers")] } else { "" };
            if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            found.push(format!("{name}{matchers}"));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Alerts Prometheus says are firing now.
fn firing(prometheus: &str) -> BTreeSet<String> {
    let answer = api(prometheus, "/api/v1/alerts");
    answer["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|alert| alert["state"] == "firing")
        .filter_map(|alert| alert["labels"]["alertname"].as_str().map(str::to_string))
        .collect()
}

fn keygen(network: &Network, home: &Path) -> String {
    let output = network.strand_in(home, &["keygen"]);
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).lines().next().expect("public key line").trim().to_string()
}

#[test]
fn a_monitored_devnet_answers_every_dashboard_query_and_fires_only_the_alerts_its_faults_cause() {
    tool("prometheus");
    let started = Instant::now();
    let mut network = Network::start_sized(8, 15);
    let nodes: Vec<(String, String)> = (0..8)
        .map(|index| {
            let line = &network.nodes[index].as_ref().expect("running").ready_line;
            (format!("node-{}", index + 1), devnet::metrics_url(line).expect("metrics URL"))
        })
        .collect();
    let ledger_metrics = devnet::metrics_url(&network.sequencer.ready_line).expect("ledger metrics URL");
    let monitor = MonitorConfig { listen: "127.0.0.1:0".into(), scrape_interval_s: 1 };
    let (prometheus_process, prometheus) =
        devnet::start_prometheus(&network.config.directory, &ledger_metrics, &nodes, &monitor)
            .expect("Prometheus starts");
    // Killed when dropped, at the end or on a failure.
    let _prometheus = prometheus_process;
    eprintln!("[{:?}] prometheus at {prometheus}", started.elapsed());

    // Uploads and downloads.
    let original = sample(&network.path("one-stripe.bin"), 200_000, 7);
    let upload = network.upload("one-stripe.bin", &["--chunk-size", "64KiB"]);
    let output = network.download(&upload, "copy.bin", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(std::fs::read(network.path("copy.bin")).expect("copy"), original);
    // A grantee reads, is revoked, and is refused.
    let grantee_home = tempfile::tempdir().expect("grantee home");
    let grantee = keygen(&network, grantee_home.path());
    let output = network.strand(&["grant", &upload, "--to", &grantee, "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let credential = json(&output)["credential"].as_str().expect("credential").to_string();
    let copy = grantee_home.path().join("granted.bin");
    let output = network.strand_in(
        grantee_home.path(),
        &["download", "--credential", &credential, "--out", copy.to_str().expect("utf-8")],
    );
    assert!(output.status.success(), "the grantee reads: {}", describe(&output));
    let output = network.strand(&["revoke", &credential, "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    std::thread::sleep(Duration::from_secs(2));
    let copy = grantee_home.path().join("revoked.bin");
    let output = network.strand_in(
        grantee_home.path(),
        &["download", "--credential", &credential, "--out", copy.to_str().expect("utf-8")],
    );
    assert!(!output.status.success() && describe(&output).contains("revoked"), "{}", describe(&output));
    eprintln!("[{:?}] uploaded, downloaded, granted, revoked", started.elapsed());

    // A provider dies: its proofs are missed, its contract is lost and
    // repaired onto a free node.
    let accounts: Vec<String> = (0..8).map(|index| hex::encode(network.node_account(index))).collect();
    let report = wait_for(&network, &upload, Duration::from_secs(60), "every contract to pass once", |report| {
        let providers = report["providers"].as_array().map(Vec::as_slice).unwrap_or_default();
        providers.len() == 6
            && providers.iter().all(|entry| entry["status"] == "Active" && entry["passed"].as_u64() >= Some(1))
    });
    let victim_account = report["providers"][0]["provider"].as_str().expect("provider").to_string();
    let victim = accounts.iter().position(|account| *account == victim_account).expect("a devnet node");
    network.kill(victim);
    let killed_at = Instant::now();
    eprintln!("[{:?}] killed node {victim}", started.elapsed());
    wait_for(&network, &upload, Duration::from_secs(120), "the lost contract to be repaired", |report| {
        let providers = report["providers"].as_array().map(Vec::as_slice).unwrap_or_default();
        providers.iter().all(|entry| entry["provider"] != victim_account.as_str() && entry["status"] == "Active")
    });
    eprintln!("[{:?}] repaired", started.elapsed());
    let output = network.download(&upload, "after.bin", &[]);
    assert!(output.status.success(), "{}", describe(&output));

    // The node-down alert needs the node down for a minute.
    let deadline = killed_at + Duration::from_secs(150);
    let wanted: BTreeSet<String> = ["StrandNodeDown", "StrandProofsMissed"].into_iter().map(str::to_string).collect();
    loop {
        let now = firing(&prometheus);
        if wanted.is_subset(&now) {
            break;
        }
        assert!(Instant::now() < deadline, "alerts firing {now:?}, waiting for {wanted:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!("[{:?}] node-down and proofs-missed firing", started.elapsed());

    // No other alert fired at any time of the run (ALERTS keeps every
    // firing alert's history).
    let ever: BTreeSet<String> =
        query(&prometheus, "count by (alertname) (max_over_time(ALERTS{alertstate=\"firing\"}[1h]))")
            .iter()
            .filter_map(|series| series["metric"]["alertname"].as_str().map(str::to_string))
            .collect();
    assert_eq!(ever, wanted, "the alerts that fired during the run; now: {:#}", api(&prometheus, "/api/v1/alerts"));
    let victim_name = format!("node-{}", victim + 1);
    let down = query(&prometheus, "ALERTS{alertname=\"StrandNodeDown\",alertstate=\"firing\"}");
    assert!(
        down.len() == 1 && down[0]["metric"]["name"] == victim_name.as_str(),
        "node-down names only the killed node: {down:?}"
    );
    let missed = query(&prometheus, "ALERTS{alertname=\"StrandProofsMissed\",alertstate=\"firing\"}");
    assert!(
        missed.iter().any(|series| series["metric"]["provider"] == victim_account.as_str()),
        "proofs-missed names the killed provider: {missed:?}"
    );

    // Every panel and variable query answers with data.
    let variables: Vec<String> = dashboards()
        .iter()
        .flat_map(|(_, dashboard)| dashboard["templating"]["list"].as_array().cloned().unwrap_or_default())
        .filter_map(|variable| variable["name"].as_str().map(str::to_string))
        .collect();
    let mut empty = Vec::new();
    let queries = panel_queries();
    for (file, title, expr) in &queries {
        let promql = substitute(expr, &variables);
        if query(&prometheus, &promql).is_empty() {
            empty.push(format!("{file} / {title}: {promql}"));
        }
    }
    for (file, name, definition) in variable_queries() {
        let inner = definition.trim().strip_prefix("label_values(").and_then(|rest| rest.strip_suffix(')'));
        let (selector, label) = inner.and_then(|inner| inner.rsplit_once(',')).expect("label_values(selector, label)");
        let label = label.trim();
        let values: BTreeSet<String> = query(&prometheus, selector.trim())
            .iter()
            .filter_map(|series| series["metric"][label].as_str().map(str::to_string))
            .collect();
        if values.is_empty() {
            empty.push(format!("{file} / variable {name}: {definition}"));
        }
    }
    // Every alert expression's selectors select series, and every rule
    // evaluates without error.
    let rules = std::fs::read_to_string(grafana().join("alerts/strand.rules.yml")).expect("rules");
    let mut alert_exprs: BTreeMap<String, String> = BTreeMap::new();
    let groups = api(&prometheus, "/api/v1/rules");
    for group in groups["data"]["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let name = rule["name"].as_str().unwrap_or_default().to_string();
            assert_eq!(rule["health"], "ok", "{name}: {rule}");
            alert_exprs.insert(name, rule["query"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(alert_exprs.keys().cloned().collect::<Vec<_>>(), {
        let mut names = alert_names(&rules);
        names.sort();
        names
    });
    for (name, expr) in &alert_exprs {
        for selector in selectors(expr) {
            if query(&prometheus, &selector).is_empty() {
                empty.push(format!("alert {name}: {selector}"));
            }
        }
    }
    assert!(empty.is_empty(), "{} queries returned no data:\n{}", empty.len(), empty.join("\n"));
    eprintln!("[{:?}] {} panel queries answered", started.elapsed(), queries.len());

    // Metric names: every one the dashboards and alerts use is exported;
    // every exported family is shown or listed as deliberately not shown.
    let survivor = (0..8).find(|index| network.nodes[*index].is_some()).expect("a node running");
    let exported: BTreeSet<String> =
        families(&network.metrics(survivor)).union(&families(&network.ledger_metrics())).cloned().collect();
    let used: BTreeSet<String> = queries
        .iter()
        .map(|(_, _, expr)| expr.as_str())
        .chain(alert_exprs.values().map(String::as_str))
        .flat_map(names_in)
        .collect();
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "dashboards or alerts use metrics no binary exports: {unknown:?}");
    let not_shown: BTreeSet<String> = std::fs::read_to_string(grafana().join("not-shown.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    let shown_on_dashboards: BTreeSet<String> = queries.iter().flat_map(|(_, _, expr)| names_in(expr)).collect();
    let hidden: Vec<&String> =
        exported.iter().filter(|name| !shown_on_dashboards.contains(*name) && !not_shown.contains(*name)).collect();
    assert!(hidden.is_empty(), "exported but on no dashboard and not in grafana/not-shown.txt: {hidden:?}");
    let stale: Vec<&String> = not_shown.difference(&exported).collect();
    assert!(stale.is_empty(), "grafana/not-shown.txt lists metrics no binary exports: {stale:?}");
    eprintln!("[{:?}] {} families exported, all accounted for", started.elapsed(), exported.len());
}

#[test]
fn a_nodes_ledger_silence_grows_while_the_ledger_is_unreachable_and_clears_when_it_returns() {
    let network = Network::start_sized(1, 600);
    let silent = || metric(&network.metrics(0), "strand_node_ledger_silent_seconds");
    assert!(silent() < 5.0, "following the ledger: {}", silent());
    let sequencer = nix::unistd::Pid::from_raw(network.sequencer.id() as i32);
    nix::sys::signal::kill(sequencer, nix::sys::signal::Signal::SIGSTOP).expect("freeze the sequencer");
    std::thread::sleep(Duration::from_secs(3));
    let first = silent();
    std::thread::sleep(Duration::from_secs(2));
    let second = silent();
    nix::sys::signal::kill(sequencer, nix::sys::signal::Signal::SIGCONT).expect("thaw the sequencer");
    assert!(first >= 2.0 && second >= first + 1.5, "silence grows while the ledger is frozen: {first} then {second}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while silent() > 2.0 {
        assert!(Instant::now() < deadline, "the silence clears once blocks arrive again: {}", silent());
        std::thread::sleep(Duration::from_millis(200));
    }
}
