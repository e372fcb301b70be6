//! A throw-away PostgreSQL cluster for the store tests.
//!
//! `initdb` in a temp dir, then a server on a free 127.0.0.1 port with its
//! unix socket in the same dir, trust auth for the `postgres` role and no
//! fsync. The binaries come from `PATH`, else the newest
//! `/usr/lib/postgresql/*/bin/` (Debian's `postgresql` package, which
//! `scripts/test-env.sh` installs). PostgreSQL refuses to run as root, so
//! under uid 0 every server command runs as the `postgres` system user (the
//! package creates it) through `runuser`, in a dir that user owns.
//!
//! Each test takes a fresh database ([`PgCluster::create_database`]) on the
//! one cluster of its test binary ([`PgCluster::shared`]); a test that stops
//! the server starts a cluster of its own ([`PgCluster::start`]).
//!
//! Only std, `tempfile` and `tokio_postgres`: include with
//! `#[path = "common/postgres.rs"] mod postgres;` or through `common`.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;

/// Attempts at a free port before giving up (another process may take the
/// port between `free_port` and the server's bind).
const PORT_ATTEMPTS: usize = 3;

pub struct PgCluster {
    /// Holds the data dir, the socket and the log; `None` once dropped.
    dir: Option<TempDir>,
    port: u16,
    bin: PathBuf,
    /// uid and gid of `postgres` when the tests run as root.
    run_as: Option<(u32, u32)>,
    /// Serves TLS too (`ssl=on`).
    tls: bool,
    next_db: AtomicUsize,
    /// Cleans up after this process, should it exit without dropping us.
    reaper: Option<Child>,
}

impl PgCluster {
    /// A new cluster, running; stopped and deleted on drop, or by its
    /// reaper once this process exits, however it exits.
    pub fn start() -> PgCluster {
        Self::start_with(false)
    }

    /// A new cluster that also accepts TLS, with a self-signed certificate
    /// for `localhost` and `127.0.0.1` at [`PgCluster::cert_file`].
    pub fn start_tls() -> PgCluster {
        Self::start_with(true)
    }

    /// The PEM certificate the server presents (its own trust anchor).
    pub fn cert_file(&self) -> PathBuf {
        self.dir().join("server.crt")
    }

    fn start_with(tls: bool) -> PgCluster {
        let bin = bin_dir();
        let run_as = if current_uid() == 0 { Some(postgres_user()) } else { None };
        let dir = tempfile::Builder::new().prefix("davgate-pg-").tempdir().expect("create temp dir");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the cluster dir to postgres");
        }
        let mut cluster =
            PgCluster { dir: Some(dir), port: 0, bin, run_as, tls, next_db: AtomicUsize::new(0), reaper: None };
        if tls {
            cluster.write_certificate();
        }
        // Before anything runs: cleans up even if this process is killed.
        cluster.reaper = Some(cluster.spawn_reaper());
        let data = cluster.data_dir();
        let out = cluster
            .command("initdb")
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for _attempt in 0..PORT_ATTEMPTS {
            cluster.port = free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => return cluster,
                Err(log) if log.contains("Address already in use") => continue, // lost the race: another port
                Err(log) => panic!("PostgreSQL did not start on port {}:\n{log}", cluster.port),
            }
        }
        panic!("PostgreSQL found no free port in {PORT_ATTEMPTS} attempts");
    }

    /// The cluster of this test binary, started on first use. It outlives
    /// every test (statics are never dropped): its reaper stops and deletes
    /// it once the test process has exited.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(PgCluster::start)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database of its own for one test; returns its URL.
    /// Blocks (on a helper thread), so it works in and out of a runtime.
    pub fn create_database(&self) -> String {
        let name = format!("davgate_test_{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        let admin_url = self.url("postgres");
        let sql = format!("CREATE DATABASE {name}");
        std::thread::scope(|s| {
            s.spawn(|| {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("build a runtime");
                runtime.block_on(async {
                    let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
                        .await
                        .unwrap_or_else(|e| panic!("connect to {admin_url}: {e}"));
                    let connection = tokio::spawn(connection);
                    client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                    drop(client);
                    let _ = connection.await;
                })
            })
            .join()
            .expect("create the database")
        });
        self.url(&name)
    }

    /// Stops the server (`-m fast`: sessions are cut), as a database going down.
    pub fn stop(&self) {
        let out = self.command("pg_ctl").args(["stop", "-w", "-m", "fast", "-D"]).arg(self.data_dir()).output();
        let out = out.expect("run pg_ctl stop");
        assert!(out.status.success(), "pg_ctl stop failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts the server again after [`PgCluster::stop`], on the same port.
    pub fn start_again(&self) {
        if let Err(log) = self.pg_ctl_start() {
            panic!("PostgreSQL did not start again on port {}:\n{log}", self.port);
        }
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("cluster dir").path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("postgres.log")
    }

    /// The server's certificate and key, readable by the server only (it
    /// refuses a key others can read).
    fn write_certificate(&self) {
        use std::os::unix::fs::PermissionsExt;
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let key = self.dir().join("server.key");
        fs::write(self.cert_file(), cert.cert.pem()).unwrap();
        fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&key, Some(uid), Some(gid)).unwrap();
        }
    }

    /// `pg_ctl start`, waiting until the server accepts connections; the
    /// server log on failure.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off",
            self.port,
            shell_quote(self.dir())
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                shell_quote(&self.cert_file()),
                shell_quote(&self.dir().join("server.key"))
            ));
        }
        let out = self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "30", "-o", &options, "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .output()
            .expect("run pg_ctl start");
        if out.status.success() {
            return Ok(());
        }
        // pg_ctl -w gives up when the postmaster exits; make sure it is gone.
        let _ = self.command("pg_ctl").args(["stop", "-m", "immediate", "-D"]).arg(self.data_dir()).output();
        Err(format!(
            "{}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(self.log_path()).unwrap_or_default()
        ))
    }

    /// `bin/<program>`, as `postgres` when running as root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        // The postgres user may not be able to enter the caller's cwd.
        cmd.current_dir(self.dir()).stdin(Stdio::null());
        cmd
    }

    /// A shell command line for `bin/<program>`, as `command` builds it.
    fn shell_command(&self, program: &str) -> String {
        let path = shell_quote(&self.bin.join(program));
        match self.run_as {
            Some(_) => format!("runuser -u postgres -- {path}"),
            None => path,
        }
    }

    /// A shell in a process group of its own (so a Ctrl-C to the tests
    /// does not reach it) that waits for this process to exit, then stops
    /// the cluster and deletes its dir: the only cleanup of the shared
    /// cluster, and the one left when the tests are killed (for a dropped
    /// cluster there is nothing left to do by then).
    fn spawn_reaper(&self) -> Child {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {pg_ctl} stop -m immediate -D {data} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = self.shell_command("pg_ctl"),
            data = shell_quote(&self.data_dir()),
            dir = shell_quote(self.dir()),
        );
        Command::new("sh")
            .args(["-c", &script])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn the cluster reaper")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.dir.is_none() {
            return;
        }
        let _ = self.command("pg_ctl").args(["stop", "-w", "-m", "immediate", "-D"]).arg(self.data_dir()).output();
        // Root can delete what `postgres` wrote; otherwise the files are ours.
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
    }
}

/// A port that was free a moment ago (as in `backends.rs`).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// The dir holding `initdb`, `pg_ctl` and `postgres`: from `PATH`, else the
/// newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    let has_all = |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|p| dir.join(p).is_file());
    let from_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()).and_then(|dir| {
            // Follow a symlinked initdb to the dir of its siblings.
            let real = fs::canonicalize(dir.join("initdb")).ok()?;
            [real.parent()?.to_path_buf(), dir].into_iter().find(|d| has_all(d))
        })
    });
    if let Some(dir) = from_path {
        return dir;
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.split('.').map(|n| n.parse().ok()).collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_all(bin))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in PATH or /usr/lib/postgresql/*/bin: \
             run scripts/test-env.sh first"
        ),
    }
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("run id");
    assert!(out.status.success(), "id {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("id prints a number")
}

fn current_uid() -> u32 {
    id(&["-u"])
}

/// uid and gid of the `postgres` system user.
fn postgres_user() -> (u32, u32) {
    let exists = Command::new("id").arg("postgres").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        exists.is_ok_and(|s| s.success()),
        "running as root, and there is no `postgres` user to run PostgreSQL as: install Debian's `postgresql` \
         package (scripts/test-env.sh) or run the tests as another user"
    );
    (id(&["-u", "postgres"]), id(&["-g", "postgres"]))
}

/// `path` in single quotes for `sh`.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
