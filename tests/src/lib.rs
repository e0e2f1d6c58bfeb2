//! Helpers for end-to-end tests that drive the real binaries.
//!
//! The binaries live in other packages, so `CARGO_BIN_EXE_*` is not available
//! here; [`binary`] asks cargo to build the named binary (a no-op when it is
//! fresh) in the same profile as the running test and returns its path, so a
//! test can never run a stale binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// The path of binary `name` of package `package`, freshly built.
///
/// Builds the whole workspace's targets in one cargo call, the same set CI
/// builds first: building packages one by one would give each its own
/// feature set and rebuild the shared crates once per binary.
pub fn binary(package: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Option<HashMap<String, PathBuf>>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let binaries = built.get_or_insert_with(build_all);
    binaries.get(name).cloned().unwrap_or_else(|| panic!("the workspace has no binary {name} (package {package})"))
}

fn build_all() -> HashMap<String, PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--message-format=json", "--workspace", "--all-targets", "--locked"]);
    let release = std::env::current_exe().is_ok_and(|exe| exe.components().any(|part| part.as_os_str() == "release"));
    if release {
        command.arg("--release");
    }
    let output = command.output().expect("cannot run cargo to build the binaries under test");
    assert!(output.status.success(), "building the workspace failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
        })
        .filter(|message| message["profile"]["test"] == false)
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?.to_string();
            Some((name, PathBuf::from(message["executable"].as_str()?)))
        })
        .collect()
}

/// Runs `strand` with `arguments`, with `home` as its `STRAND_HOME`.
pub fn strand(home: &Path, arguments: &[&str]) -> Output {
    Command::new(binary("strand-client", "strand"))
        .args(arguments)
        .env("STRAND_HOME", home)
        .output()
        .expect("cannot start strand")
}

/// The exit code, standard output and standard error of `output`, for
/// assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Parses the JSON summary `strand --json` printed.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {}", describe(output)))
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so a
/// failing test never leaves a process behind.
pub struct ChildGuard {
    child: std::process::Child,
}

impl ChildGuard {
    /// Starts `command` with stdout piped and returns it with the first
    /// stdout line that contains `marker` (waiting at most `timeout`).
    pub fn spawn_and_wait_for(mut command: Command, marker: &str, timeout: std::time::Duration) -> (Self, String) {
        use std::io::BufRead;
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
        let mut child = command.spawn().expect("cannot start the process under test");
        let stdout = child.stdout.take().expect("piped stdout");
        let guard = Self { child };
        let (sender, receiver) = std::sync::mpsc::channel();
        let wanted = marker.to_string();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(&wanted) {
                    let _ = sender.send(line);
                }
            }
        });
        let line = receiver
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("the process did not print '{marker}' within {timeout:?}"));
        (guard, line)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET url` (`http://host:port/path`), if it answers: HTTP/1.0,
/// so the answer is never chunked.
pub fn http_get(url: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).ok()?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}
