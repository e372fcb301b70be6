//! A headless Chromium driven over WebDriver, for tests of the `/account/`
//! pages as a person sees them: layout at phone and desktop widths, the
//! no-JavaScript flows, and screenshots to look at when one fails.
//!
//! Each [`Browser`] runs its own Debian `chromedriver` on a free 127.0.0.1
//! port with a throwaway `HOME` and Chromium profile, so tests can run in
//! parallel and never touch the real user's profile. It must never leave a
//! chromedriver or Chromium running: both are killed when it is dropped.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`, installed by `scripts/test-env.sh`).
//! Only std, tokio, serde_json, tempfile, hyper-util and fantoccini: include
//! with `#[path = "common/browser.rs"] mod browser;`.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use serde_json::json;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver gets to answer `/status`; it is usually ready in
/// well under a second, but a loaded CI machine can be slow.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Another process can take the free port between our probe and
/// chromedriver's bind; a fresh port is tried this many times.
const START_ATTEMPTS: usize = 3;

pub struct Browser {
    pub client: fantoccini::Client,
    /// chromedriver, leader of its own process group so that Chromium and
    /// its helpers go with it.
    driver: Child,
    /// `HOME` for chromedriver and Chromium, the Chromium profile, and
    /// chromedriver's log.
    home: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free 127.0.0.1 port, waits until it answers
    /// `/status`, and opens a headless session with a 1280x900 viewport
    /// and no scrollbars.
    ///
    /// Panics, saying what to install, when Chromium or chromedriver is
    /// missing, and with chromedriver's log when it does not start.
    pub async fn start() -> Browser {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver (scripts/test-env.sh does)"
            );
        }
        let home = tempfile::Builder::new().prefix("davgate-browser-").tempdir().expect("temp dir for the browser");
        let profile = home.path().join("profile");
        std::fs::create_dir_all(&profile).expect("create the Chromium profile dir");
        let log = home.path().join("chromedriver.log");

        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut driver = spawn_driver(port, home.path(), &log);
            match wait_ready(port, &mut driver).await {
                Ok(()) => {
                    let client = match open_session(port, &profile).await {
                        Ok(client) => client,
                        Err(e) => {
                            kill_group(&mut driver);
                            panic!("chromedriver did not open a Chromium session: {e}\n{}", log_tail(&log));
                        }
                    };
                    let browser = Browser { client, driver, home };
                    // --window-size sizes the window; tests reason about the viewport.
                    browser.resize(1280, 900).await;
                    return browser;
                }
                // It exited, most likely because the port was taken: try another.
                Err(NotReady::Exited(why)) => {
                    kill_group(&mut driver);
                    last_failure = why;
                }
                Err(NotReady::TimedOut(why)) => {
                    kill_group(&mut driver);
                    panic!("chromedriver did not start ({why})\n{}", log_tail(&log));
                }
            }
        }
        panic!("chromedriver did not start ({last_failure})\n{}", log_tail(&log));
    }

    /// Resizes the window so that the page's viewport (`innerWidth` x
    /// `innerHeight`) is `width` x `height`, e.g. 360x800 for a phone or
    /// 1280x900 for a desktop. Headless Chromium counts some 140 px of
    /// absent browser chrome in the window's height, so the window is
    /// resized once more by whatever the viewport came out short.
    pub async fn resize(&self, width: u32, height: u32) {
        self.set_window(width, height).await;
        let Some((inner_w, inner_h)) = self.viewport().await else { return };
        if (inner_w, inner_h) != (width, height) {
            let w = (2 * width).saturating_sub(inner_w).max(1);
            let h = (2 * height).saturating_sub(inner_h).max(1);
            self.set_window(w, h).await;
        }
    }

    /// The page's `innerWidth` and `innerHeight`, when a script can run.
    pub async fn viewport(&self) -> Option<(u32, u32)> {
        let size = self.client.execute("return [window.innerWidth, window.innerHeight]", vec![]).await.ok()?;
        Some((size[0].as_u64()? as u32, size[1].as_u64()? as u32))
    }

    async fn set_window(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resize the browser window to {width}x{height}: {e}"));
    }

    /// Writes a PNG of the viewport to `<target>/browser-artifacts/<name>.png`
    /// (`<target>` is `$CARGO_TARGET_DIR`, else the crate's `target/`) and
    /// returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        assert!(!name.is_empty() && !name.contains(['/', '\\']), "screenshot name {name:?} must be a plain file name");
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Ends the session (Chromium quits), then stops chromedriver.
    pub async fn close(self) {
        // `Client` is a handle: closing a clone ends the one shared session.
        if let Err(e) = self.client.clone().close().await {
            eprintln!("closing the browser session: {e}");
        }
        // Drop kills chromedriver's process group.
    }

    /// chromedriver's log so far, to print when a test fails.
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// `$CARGO_TARGET_DIR/browser-artifacts`, else `<crate>/target/browser-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            // A relative target dir is relative to where cargo ran; tests run
            // in the crate root.
            if dir.is_absolute() { dir } else { Path::new(env!("CARGO_MANIFEST_DIR")).join(dir) }
        }
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    };
    target.join("browser-artifacts")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn spawn_driver(port: u16, home: &Path, log: &Path) -> Child {
    let out = File::options().create(true).append(true).open(log).expect("open the chromedriver log");
    let err = out.try_clone().expect("clone the log handle");
    Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: Drop kills Chromium and its renderers with
        // it, even when the session was never closed.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e}"))
}

enum NotReady {
    Exited(String),
    TimedOut(String),
}

/// Polls `GET /status` until chromedriver says it is ready.
async fn wait_ready(port: u16, driver: &mut Child) -> Result<(), NotReady> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match driver.try_wait() {
            Ok(Some(status)) => return Err(NotReady::Exited(format!("chromedriver exited: {status}"))),
            Ok(None) => {}
            Err(e) => return Err(NotReady::Exited(format!("chromedriver: {e}"))),
        }
        if status_ready(port).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(NotReady::TimedOut(format!("no ready /status on port {port} after {READY_TIMEOUT:?}")));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn status_ready(port: u16) -> bool {
    tokio::time::timeout(Duration::from_secs(2), status_body(port))
        .await
        .ok()
        .flatten()
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .is_some_and(|status| status["value"]["ready"] == true)
}

/// The body of a `GET /status`, read by its `Content-Length`: chromedriver
/// keeps the connection open despite `Connection: close`.
async fn status_body(port: u16) -> Option<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        response.extend_from_slice(&chunk[..n]);
        let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return None;
        }
        let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:"))?.trim().parse().ok()?;
        let body = &response[end + 4..];
        if body.len() >= length {
            return Some(body[..length].to_vec());
        }
    }
}

async fn open_session(port: u16, profile: &Path) -> Result<fantoccini::Client, fantoccini::error::NewSessionError> {
    let args = [
        "--headless=new".to_string(),
        "--no-sandbox".to_string(),
        "--disable-gpu".to_string(),
        "--disable-dev-shm-usage".to_string(),
        format!("--user-data-dir={}", profile.display()),
        "--window-size=1280,900".to_string(),
        // Overlay scrollbars, as on a phone: a classic one takes 15px of a
        // 360px viewport and so lays the page out narrower than any phone.
        "--hide-scrollbars".to_string(),
    ];
    let mut caps = Capabilities::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), json!({ "binary": CHROMIUM, "args": args }));
    // Plain HTTP to a local chromedriver: no TLS roots needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    fantoccini::ClientBuilder::new(connector).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")).await
}

/// SIGKILL to chromedriver's whole process group, then reap it.
fn kill_group(driver: &mut Child) {
    // The group outlives its leader while Chromium runs, so this is sent
    // even when chromedriver itself has already exited.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", driver.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(40);
    format!("chromedriver log ({}), last lines:\n{}", log.display(), lines[start..].join("\n"))
}
