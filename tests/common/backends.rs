//! Real DAV servers and clients for integration tests.
//!
//! Radicale (CalDAV/CardDAV) and WsgiDAV (WebDAV) run from the project venv
//! that `scripts/test-env.sh` creates, each on a free 127.0.0.1 port with its
//! config, data and log in a temp dir. Both trust `X-Remote-User`, which is
//! what davgate sets after checking an app password. The python client flows
//! in `tests/clients/` and Debian's `litmus` then talk to them, directly or
//! through davgate.
//!
//! Only std and `tempfile`: include with `#[path = "common/backends.rs"] mod backends;`.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const START_TIMEOUT: Duration = Duration::from_secs(20);
const LITMUS_TIMEOUT: Duration = Duration::from_secs(120);

/// `$DAVGATE_TEST_VENV/bin/python`, else `<crate>/.venv/bin/python`.
pub fn venv_python() -> PathBuf {
    let venv = match std::env::var_os("DAVGATE_TEST_VENV") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"),
    };
    let python = venv.join("bin").join("python");
    if !python.exists() {
        panic!("{} is missing: run scripts/test-env.sh first", python.display());
    }
    python
}

/// A port that was free a moment ago. Another process may grab it before the
/// server binds it, so the `start` functions retry on "address in use".
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// Radicale 3 trusting `X-Remote-User` (it answers 403, never 401, without
/// it). Calendars and address books live under `/{user}/{collection}/`.
pub struct Radicale {
    pub port: u16,
    pub url: String,
    child: Child,
    dir: TempDir,
}

impl Radicale {
    pub fn start() -> Radicale {
        let dir = temp_dir("radicale");
        let (port, child) = spawn_with_retry(dir.path(), |port| {
            // `delay = 0`: the default 1 s delay slows every refusal.
            let config = format!(
                r#"[server]
hosts = 127.0.0.1:{port}

[auth]
type = http_x_remote_user
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = {}

[logging]
level = warning
"#,
                dir.path().join("collections").display()
            );
            let file = dir.path().join("radicale.conf");
            fs::write(&file, config).expect("write radicale.conf");
            let mut cmd = Command::new(venv_python());
            cmd.args(["-m", "radicale", "--config"]).arg(file);
            cmd
        });
        Radicale { port, url: format!("http://127.0.0.1:{port}"), child, dir }
    }

    /// Everything the server logged so far, for assertion messages.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// WsgiDAV 4 on cheroot serving a temp folder at `/`, with dead properties
/// and locks on so that litmus' props and locks suites can pass.
pub struct WsgiDav {
    pub port: u16,
    pub url: String,
    child: Child,
    dir: TempDir,
}

impl WsgiDav {
    /// Trusts `X-Remote-User` (the option names the WSGI environ key
    /// `HTTP_X_REMOTE_USER`, not the header); 401 without it.
    pub fn start() -> WsgiDav {
        // simple_dc refuses to start with an empty user_mapping; this user's
        // password is random so Basic auth can't get in by accident.
        let password = format!("{:016x}", RandomState::new().build_hasher().finish());
        Self::start_with(true, "unused-davgate-test", &password)
    }

    /// Plain Basic auth for `user`/`pass` and no trusted header: the baseline
    /// for running litmus (which only speaks Basic) directly against WsgiDAV.
    pub fn start_with_basic_user(user: &str, pass: &str) -> WsgiDav {
        Self::start_with(false, user, pass)
    }

    fn start_with(trust_header: bool, user: &str, pass: &str) -> WsgiDav {
        let dir = temp_dir("wsgidav");
        let root = dir.path().join("root");
        fs::create_dir(&root).expect("create wsgidav root");
        let trusted = if trust_header { "  trusted_auth_header: HTTP_X_REMOTE_USER\n" } else { "" };
        let (port, child) = spawn_with_retry(dir.path(), |port| {
            let config = format!(
                r#"host: 127.0.0.1
port: {port}
server: cheroot
verbose: 2
provider_mapping:
  "/": {root}
http_authenticator:
{trusted}  accept_basic: true
  accept_digest: false
  default_to_digest: false
simple_dc:
  user_mapping:
    "*":
      {user}:
        password: {pass}
property_manager: true
lock_storage: true
dir_browser:
  enable: false
"#,
                root = yaml_str(&root.to_string_lossy()),
                user = yaml_str(user),
                pass = yaml_str(pass),
            );
            let file = dir.path().join("wsgidav.yaml");
            fs::write(&file, config).expect("write wsgidav.yaml");
            // The package has no __main__; this is what the `wsgidav` script runs.
            let mut cmd = Command::new(venv_python());
            cmd.args(["-m", "wsgidav.server.server_cli", "--config"]).arg(file);
            cmd
        });
        WsgiDav { port, url: format!("http://127.0.0.1:{port}"), child, dir }
    }

    /// The folder served at `/`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }
}

impl Drop for WsgiDav {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Runs `<venv python> tests/clients/<script> args...` and returns its output.
pub fn run_python(script: &str, args: &[&str]) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(script);
    Command::new(venv_python())
        .arg(&path)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()))
}

/// [`run_python`] off the async runtime's threads.
pub async fn run_client(script: &'static str, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python(script, &args)
    })
    .await
    .unwrap()
}

/// Fails with the client's output and the backend's log.
pub fn assert_client_ok(out: &Output, backend_log: &str) {
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}\nbackend log:\n{backend_log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Debug)]
pub struct LitmusResult {
    pub passed: u32,
    pub failed: u32,
    /// Suites that stopped before their last test (`finish`), skipped all
    /// their tests, or printed no summary at all (crash or timeout).
    pub aborted: u32,
    /// (suite, passed, failed) in the order run.
    pub suites: Vec<(String, u32, u32)>,
    pub output: String,
}

/// Runs `litmus -k URL USER PASS` (all five suites, going on after a failing
/// one) with a 120 s limit and sums its per-suite summaries.
pub fn litmus(url: &str, user: &str, pass: &str) -> LitmusResult {
    // litmus writes debug.log and child.log into its working directory.
    let dir = temp_dir("litmus");
    let out_path = dir.path().join("output.txt");
    let out = File::create(&out_path).expect("create litmus output");
    let mut child = Command::new("litmus")
        .args(["-k", url, user, pass])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup litmus output"))
        .stderr(out)
        // Own process group: the `litmus` shell script runs each suite as a
        // child, and a timeout has to kill those too.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("run litmus ({e}): run scripts/test-env.sh first"));
    let deadline = Instant::now() + LITMUS_TIMEOUT;
    let mut timed_out = false;
    while child.try_wait().expect("wait for litmus").is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            timed_out = true;
            break;
        }
        sleep(Duration::from_millis(50));
    }
    let mut output = String::from_utf8_lossy(&fs::read(&out_path).unwrap_or_default()).into_owned();
    if timed_out {
        output.push_str(&format!("\n[litmus killed after {LITMUS_TIMEOUT:?}]\n"));
    }
    let mut result = parse_litmus(output);
    if result.failed > 0 || result.aborted > 0 {
        // The request/response trace is what explains a failure.
        let log = String::from_utf8_lossy(&fs::read(dir.path().join("debug.log")).unwrap_or_default()).into_owned();
        let mut start = log.len().saturating_sub(6000);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        let tail = &log[start..];
        result.output.push_str(&format!("\n--- tail of litmus debug.log ---\n{tail}"));
    }
    result
}

/// Parses litmus' output. Each test line is printed twice on one line,
/// separated by `\r` (start, then result); the part after the last `\r` is
/// the one that counts. Suites look like:
/// ```text
/// -> running `basic':
///  0. init.................. pass
/// 15. finish................ pass
/// <- summary for `basic': of 16 tests run: 16 passed, 0 failed. 100.0%
/// ```
pub fn parse_litmus(output: String) -> LitmusResult {
    let mut r = LitmusResult { passed: 0, failed: 0, aborted: 0, suites: Vec::new(), output: String::new() };
    // (suite name, last test name) of the suite that has not summarised yet
    let mut open: Option<(String, String)> = None;
    for raw in output.lines() {
        let line = raw.rsplit('\r').next().unwrap_or(raw).trim();
        if let Some(rest) = line.strip_prefix("-> running `") {
            if open.is_some() {
                r.aborted += 1; // previous suite never printed its summary
            }
            open = Some((rest.trim_end_matches("':").to_string(), String::new()));
        } else if let Some(rest) = line.strip_prefix("<- summary for `") {
            let (name, counts) = rest.split_once("':").unwrap_or((rest, ""));
            let passed = number_before(counts, " passed");
            let failed = number_before(counts, " failed");
            r.passed += passed;
            r.failed += failed;
            r.suites.push((name.to_string(), passed, failed));
            if open.take().is_some_and(|(_, last)| last != "finish") {
                r.aborted += 1; // a fatal failure or SKIPREST stopped the suite
            }
        } else if let Some(rest) = line.strip_prefix("<- all tests skipped for `") {
            r.suites.push((rest.trim_end_matches("'.").to_string(), 0, 0));
            r.aborted += 1;
            open = None;
        } else if let Some((num, rest)) = line.split_once(". ")
            && num.parse::<u32>().is_ok()
            && let Some(open) = open.as_mut()
        {
            // " 3. put_get............... pass": remember the test's name
            let name = rest.split(|c: char| c == '.' || c.is_whitespace()).next();
            open.1 = name.unwrap_or("").to_string();
        }
    }
    if open.is_some() {
        r.aborted += 1;
    }
    r.output = output;
    r
}

/// In "of 16 tests run: 15 passed, 1 failed.", the number before `word`.
fn number_before(text: &str, word: &str) -> u32 {
    text.split_once(word)
        .and_then(|(head, _)| head.rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn temp_dir(what: &str) -> TempDir {
    tempfile::Builder::new().prefix(&format!("davgate-{what}-")).tempdir().expect("create temp dir")
}

fn read_log(dir: &Path) -> String {
    String::from_utf8_lossy(&fs::read(dir.join("server.log")).unwrap_or_default()).into_owned()
}

/// A double-quoted YAML scalar (JSON escaping is valid YAML).
fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Starts the command `make(port)` builds, logging to `dir/server.log`, and
/// waits until the port accepts connections. Retries with a new port when the
/// server died because another process took the port first.
fn spawn_with_retry(dir: &Path, make: impl Fn(u16) -> Command) -> (u16, Child) {
    let log_path = dir.join("server.log");
    for _attempt in 0..3 {
        let port = free_port();
        let log = File::create(&log_path).expect("create server.log");
        let mut child = make(port)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup server.log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", venv_python().display()));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (port, child);
            }
            if let Some(status) = child.try_wait().expect("wait for server") {
                let log = read_log(dir);
                if log.contains("Address already in use") {
                    break; // lost the race for the port: try another
                }
                panic!("server exited with {status} before listening on {port}; log:\n{log}");
            }
            if Instant::now() > deadline {
                stop(&mut child);
                panic!("server not listening on {port} after {START_TIMEOUT:?}; log:\n{}", read_log(dir));
            }
            sleep(Duration::from_millis(20));
        }
    }
    panic!("no free port after 3 attempts; log:\n{}", read_log(dir));
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
