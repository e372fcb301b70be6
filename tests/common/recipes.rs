//! The backend recipes in `deploy/`, run as committed: each server starts
//! from its recipe file with only the address and the data paths swapped
//! for a free 127.0.0.1 port and a temp dir.
//!
//! Apache comes from Debian's `apache2-bin` and Radicale and WsgiDAV from
//! the test venv, all installed by `scripts/test-env.sh`.

#![allow(dead_code)]

use std::fs::{self, File};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::backends::{free_port, venv_python};

const START_TIMEOUT: Duration = Duration::from_secs(20);
const APACHE: &str = "/usr/sbin/apache2";
const APACHE_MODULES: &str = "/usr/lib/apache2/modules";

/// `deploy/<rel>`.
pub fn deploy_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(rel)
}

pub fn read_deploy(rel: &str) -> String {
    fs::read_to_string(deploy_path(rel)).unwrap_or_else(|e| panic!("read deploy/{rel}: {e}"))
}

/// Replaces each `from` with its `to`. Every `from` must occur: when a
/// recipe changes, the test fails here instead of silently running
/// something other than what is committed.
pub fn substitute(text: &str, what: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        assert!(out.contains(from), "{what} no longer contains {from:?}: update tests/common/recipes.rs");
        out = out.replace(from, to);
    }
    out
}

/// A server started from a recipe; killed (and reaped) on drop.
pub struct Server {
    pub port: u16,
    pub url: String,
    pub dir: TempDir,
    child: Child,
}

impl Server {
    /// `dir/server.log`: the server's stdout and stderr.
    pub fn log(&self) -> String {
        read(&self.dir.path().join("server.log"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

fn temp_dir(what: &str) -> TempDir {
    let dir = tempfile::Builder::new().prefix(&format!("davgate-recipe-{what}-")).tempdir().expect("temp dir");
    // Apache's worker drops root for www-data, which must reach the DAV tree.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    dir
}

/// Starts `make(port)` in `dir` until it listens on 127.0.0.1:`port`; a new
/// port when another process took the first one. `logs` are read for
/// "Address already in use" besides `dir/server.log`.
fn spawn(dir: TempDir, logs: &[PathBuf], make: impl Fn(u16) -> Command) -> Server {
    let log_path = dir.path().join("server.log");
    let all_logs = || logs.iter().chain([&log_path]).map(|p| read(p)).collect::<Vec<_>>().join("\n");
    for _attempt in 0..3 {
        let port = free_port();
        let log = File::create(&log_path).expect("create server.log");
        let mut child = make(port)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup server.log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn server: {e}: run scripts/test-env.sh first"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server { port, url: format!("http://127.0.0.1:{port}"), dir, child };
            }
            if let Some(status) = child.try_wait().expect("wait for server") {
                let log = all_logs();
                if log.contains("Address already in use") {
                    break;
                }
                panic!("server exited with {status} before listening on {port}:\n{log}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server not listening on {port} after {START_TIMEOUT:?}:\n{}", all_logs());
            }
            sleep(Duration::from_millis(20));
        }
    }
    panic!("no free port after 3 attempts:\n{}", all_logs());
}

/// Apache 2.4 mod_dav from `deploy/backends/apache-mod_dav/davgate-dav.conf`,
/// included by a minimal main config (modules, pid file, logs in the temp
/// dir), as `apache2 -X`: one process, which dies with a single kill.
pub struct ApacheDav {
    pub server: Server,
}

impl ApacheDav {
    pub const RECIPE: &'static str = "backends/apache-mod_dav/davgate-dav.conf";

    pub fn start() -> ApacheDav {
        assert!(Path::new(APACHE).exists(), "{APACHE} is missing: run scripts/test-env.sh first");
        let dir = temp_dir("apache");
        let root = dir.path().join("dav");
        let lock = dir.path().join("lock");
        let logs = dir.path().join("logs");
        for d in [&root, &lock, &logs] {
            fs::create_dir(d).expect("create apache dir");
        }
        if is_root() {
            // As root Apache serves as www-data (User below), like the
            // Debian service: the tree and the lock DB must be its own.
            let status = Command::new("chown").arg("www-data:www-data").arg(&root).arg(&lock).status();
            assert!(status.is_ok_and(|s| s.success()), "chown www-data failed");
        }
        let recipe = read_deploy(Self::RECIPE);
        let base = dir.path().to_path_buf();
        let error_log = logs.join("error.log");
        let server = spawn(dir, &[error_log.clone(), logs.join("davgate-dav-error.log")], |port| {
            let site = substitute(
                &recipe,
                Self::RECIPE,
                &[
                    (
                        "Define DAVGATE_DAV_LISTEN 127.0.0.1:8081",
                        &format!("Define DAVGATE_DAV_LISTEN 127.0.0.1:{port}"),
                    ),
                    ("Define DAVGATE_DAV_ROOT /srv/dav", &format!("Define DAVGATE_DAV_ROOT {}", root.display())),
                    (
                        "Define DAVGATE_DAV_LOCKDB /var/lib/apache2/davgate-dav/lockdb",
                        &format!("Define DAVGATE_DAV_LOCKDB {}", lock.join("lockdb").display()),
                    ),
                ],
            );
            let site_path = base.join("davgate-dav.conf");
            fs::write(&site_path, site).expect("write site conf");
            let main = main_conf(&base, &error_log, &logs, &site_path);
            let main_path = base.join("apache2.conf");
            fs::write(&main_path, main).expect("write apache2.conf");
            let mut cmd = Command::new(APACHE);
            cmd.arg("-f").arg(&main_path).arg("-X");
            cmd
        });
        ApacheDav { server }
    }

    /// The folder served at `/files/`.
    pub fn root(&self) -> PathBuf {
        self.server.dir.path().join("dav")
    }

    /// The recipe's access log (`client "X-Remote-User" "request line"
    /// status bytes`) once it has `lines` lines: Apache writes a line only
    /// after the response went out, so the last one may still be coming.
    pub fn access_log(&self, lines: usize) -> String {
        let path = self.server.dir.path().join("logs/davgate-dav.log");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = read(&path);
            if log.lines().count() >= lines || Instant::now() > deadline {
                return log;
            }
            sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        let dir = self.server.dir.path();
        format!(
            "{}\n{}\n{}",
            self.server.log(),
            read(&dir.join("logs/error.log")),
            read(&dir.join("logs/davgate-dav-error.log"))
        )
    }
}

/// What Debian's apache2.conf and `a2enmod dav dav_fs headers` provide, cut
/// to what the recipe needs.
fn main_conf(base: &Path, error_log: &Path, logs: &Path, site: &Path) -> String {
    let modules = [
        ("mpm_event_module", "mod_mpm_event.so"),
        ("authz_core_module", "mod_authz_core.so"),
        ("alias_module", "mod_alias.so"),
        ("headers_module", "mod_headers.so"),
        ("dav_module", "mod_dav.so"),
        ("dav_fs_module", "mod_dav_fs.so"),
    ];
    let mut conf = format!("ServerRoot \"{}\"\n", base.display());
    for (name, file) in modules {
        conf.push_str(&format!("LoadModule {name} {APACHE_MODULES}/{file}\n"));
    }
    conf.push_str(&format!(
        "ServerName 127.0.0.1\nPidFile \"{base}/apache2.pid\"\nDefaultRuntimeDir \"{base}\"\nMutex file:{base} default\n\
         ErrorLog \"{error_log}\"\nLogLevel warn\nDefine APACHE_LOG_DIR {logs}\n",
        base = base.display(),
        error_log = error_log.display(),
        logs = logs.display(),
    ));
    if is_root() {
        conf.push_str("User www-data\nGroup www-data\n");
    }
    conf.push_str(&format!("Include \"{}\"\n", site.display()));
    conf
}

/// Whether the tests run as root (CI does): `/proc/self` belongs to the
/// effective user.
fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Radicale 3 from `deploy/radicale.conf`.
pub struct RadicaleRecipe {
    pub server: Server,
}

impl RadicaleRecipe {
    pub const RECIPE: &'static str = "radicale.conf";

    pub fn start() -> RadicaleRecipe {
        let dir = temp_dir("radicale");
        let recipe = read_deploy(Self::RECIPE);
        let base = dir.path().to_path_buf();
        let server = spawn(dir, &[], |port| {
            let conf = substitute(
                &recipe,
                Self::RECIPE,
                &[
                    ("hosts = 127.0.0.1:5232", &format!("hosts = 127.0.0.1:{port}")),
                    (
                        "filesystem_folder = /var/lib/radicale/collections",
                        &format!("filesystem_folder = {}", base.join("collections").display()),
                    ),
                ],
            );
            let path = base.join("radicale.conf");
            fs::write(&path, conf).expect("write radicale.conf");
            let mut cmd = Command::new(venv_python());
            cmd.args(["-m", "radicale", "--config"]).arg(path);
            cmd
        });
        RadicaleRecipe { server }
    }
}

/// WsgiDAV 4 from `deploy/backends/wsgidav/wsgidav.yaml`.
pub struct WsgiDavRecipe {
    pub server: Server,
}

impl WsgiDavRecipe {
    pub const RECIPE: &'static str = "backends/wsgidav/wsgidav.yaml";

    pub fn start() -> WsgiDavRecipe {
        let dir = temp_dir("wsgidav");
        let root = dir.path().join("dav");
        let state = dir.path().join("state");
        fs::create_dir(&root).expect("create wsgidav root");
        fs::create_dir(&state).expect("create wsgidav state");
        let recipe = read_deploy(Self::RECIPE);
        let base = dir.path().to_path_buf();
        let server = spawn(dir, &[], |port| {
            let conf = substitute(
                &recipe,
                Self::RECIPE,
                &[
                    ("port: 8082", &format!("port: {port}")),
                    ("\"/files\": \"/srv/dav\"", &format!("\"/files\": \"{}\"", root.display())),
                    ("/var/lib/wsgidav/", &format!("{}/", state.display())),
                ],
            );
            let path = base.join("wsgidav.yaml");
            fs::write(&path, conf).expect("write wsgidav.yaml");
            // The package has no __main__; this is what the `wsgidav` script runs.
            let mut cmd = Command::new(venv_python());
            cmd.args(["-m", "wsgidav.server.server_cli", "--config"]).arg(path);
            cmd
        });
        WsgiDavRecipe { server }
    }

    /// The folder served at `/files/`.
    pub fn root(&self) -> PathBuf {
        self.server.dir.path().join("dav")
    }
}

/// `deploy/<rel>` (a davgate TOML file) made runnable here: listening on
/// 127.0.0.1 without TLS, `upstream`, and the store and socket in `dir`.
/// Everything else (services, policy, ...) is as committed.
pub fn deploy_config(rel: &str, upstream: &str, dir: &Path) -> davgate::config::Config {
    let mut table: toml::Table = read_deploy(rel).parse().unwrap_or_else(|e| panic!("deploy/{rel}: {e}"));
    let section = |table: &mut toml::Table, name: &str| -> toml::Table {
        table.remove(name).and_then(|v| v.as_table().cloned()).unwrap_or_default()
    };
    let mut server = section(&mut table, "server");
    server.remove("tls");
    server.insert("listen".into(), "127.0.0.1:0".into());
    table.insert("server".into(), server.into());
    let mut upstream_table = section(&mut table, "upstream");
    upstream_table.insert("url".into(), upstream.into());
    table.insert("upstream".into(), upstream_table.into());
    let mut store = section(&mut table, "store");
    store.insert("path".into(), dir.join("store").display().to_string().into());
    table.insert("store".into(), store.into());
    let mut admin = section(&mut table, "admin");
    admin.insert("socket".into(), dir.join("admin.sock").display().to_string().into());
    table.insert("admin".into(), admin.into());
    let text = table.to_string();
    davgate::config::Config::parse(&text, rel).unwrap_or_else(|e| panic!("{e}\n{text}"))
}
