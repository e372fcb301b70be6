//! The real `davgate` binary: CLI runs and a `serve` process to kill.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn davgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_davgate"));
    c.env_remove("DAVGATE_CONFIG").env("DAVGATE_LOG", "warn").stdin(Stdio::null());
    c
}

/// A temp dir with a `davgate.toml` for `upstream` on a free port.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub port: u16,
}

impl Setup {
    pub fn new(upstream: &str) -> Setup {
        Self::with_sections(upstream, "")
    }

    pub fn with_sections(upstream: &str, sections: &str) -> Setup {
        Self::build(upstream, |dir| format!("[store]\npath = \"{}\"\n{sections}", dir.join("store").display()))
    }

    /// On the PostgreSQL store at `url`, with an admin socket of its own
    /// (at [`Setup::socket`]) and `admin` as further `[admin]` keys.
    pub fn postgres(upstream: &str, url: &str, admin: &str, sections: &str) -> Setup {
        Self::build(upstream, |dir| {
            let socket = dir.join("store.sock");
            format!("[store]\nurl = \"{url}\"\n[admin]\nsocket = \"{}\"\n{admin}\n{sections}", socket.display())
        })
    }

    /// A config with `[server]` and `[upstream]`, then what `rest` writes
    /// for the temp dir (from `[store]` on).
    fn build(upstream: &str, rest: impl FnOnce(&Path) -> String) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let port = super::backends::free_port();
        let config = dir.path().join("davgate.toml");
        let rest = rest(dir.path());
        let throttle = if rest.contains("[throttle]") { "" } else { super::gate::RELAXED_THROTTLE };
        let text =
            format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"{upstream}\"\n{rest}\n{throttle}");
        std::fs::write(&config, text).unwrap();
        Setup { dir, config, port }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("store.sock")
    }

    /// Runs `davgate --config <config> args...`.
    pub fn run(&self, args: &[&str]) -> Output {
        davgate().arg("--config").arg(&self.config).args(args).output().unwrap()
    }

    /// Runs with `input` on standard input.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = davgate()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "davgate {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs, requires exit code `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "davgate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stderr).unwrap()
    }

    /// `user add` (if new) and `password create --json`: returns (id, password).
    pub fn user_with_password(&self, user: &str) -> (String, String) {
        let _ = self.run(&["user", "add", user]);
        let out = self.ok(&["password", "create", user, "--name", "test client", "--json"]);
        let created: serde_json::Value = serde_json::from_str(&out).unwrap();
        (created["id"].as_str().unwrap().to_string(), created["password"].as_str().unwrap().to_string())
    }

    /// Starts `davgate serve`, logging at debug level to a file (a pipe
    /// nobody reads could fill up and stall the server).
    pub fn serve(&self) -> Server {
        self.serve_with_log("debug")
    }

    pub fn serve_with_log(&self, filter: &str) -> Server {
        let log = self.dir.path().join(format!("serve-{}.log", self.port));
        let child = davgate()
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("DAVGATE_LOG", filter)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = Server { child, port: self.port, log };
        wait_for(&self.socket(), self.port);
        server
    }
}

fn wait_for(socket: &Path, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if socket.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("davgate serve did not come up on port {port}");
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }

    /// SIGTERM, then wait for a clean exit; returns the log.
    pub fn terminate(mut self) -> String {
        self.sigterm();
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap();
        assert!(status.success(), "serve exited with {status}: {log}");
        log
    }

    /// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field).and_then(|r| r.trim_start_matches(':').trim().strip_suffix(" kB")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} not in /proc status"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
