//! Several davgate instances on one PostgreSQL, as real processes: account
//! changes made through one instance reach another's cache within a second,
//! a lost change feed bounds cache age, a database outage keeps cached
//! clients working and fails everything else cleanly until it recovers, and
//! `store copy` / `store migrate` from the command line.

mod common;

use common::binary::{Server, Setup};
use common::postgres::PgCluster;
use common::{Http, Recorder};
use http::StatusCode;
use std::time::{Duration, Instant};

/// Within this of a change made through instance A, instance B refuses.
const PROPAGATION: Duration = Duration::from_secs(1);

/// One running instance on a shared database.
struct Instance {
    setup: Setup,
    server: Server,
    /// Its TCP admin listener, for `/metrics`.
    admin_port: u16,
}

/// An instance on `url` with an admin socket (the CLI goes through it).
fn instance(backend: &Recorder, url: &str, sections: &str) -> Instance {
    let admin_port = common::backends::free_port();
    let setup = Setup::postgres(&backend.url(), url, &format!("listen = \"127.0.0.1:{admin_port}\""), sections);
    let server = setup.serve();
    Instance { setup, server, admin_port }
}

impl Instance {
    /// The value of metric `name` (a full sample name) on the instance.
    async fn metric(&self, name: &str) -> f64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.admin_port);
        let body = Http::h1().call("GET", &url, None, &[]).await.text();
        let prefix = format!("{name} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in {body}"))
            .parse()
            .unwrap()
    }
}

/// Polls until a request with the credential gets `want`; returns how long it took.
async fn until_status(server: &Server, user: &str, password: &str, want: StatusCode, within: Duration) -> Duration {
    let (start, http) = (Instant::now(), Http::h1());
    loop {
        let status = http.get(&server.url("/"), user, password).await.status;
        if status == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "still {status} after {within:?}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn account_changes_through_one_instance_reach_the_other_within_a_second() {
    let backend = Recorder::start().await;
    let url = PgCluster::shared().create_database();
    let sections = "[policy]\nrevoke_on_password_change = true\n";
    let a = instance(&backend, &url, sections);
    let b = instance(&backend, &url, sections);
    let http = Http::h1();
    // Each change, made through instance A's admin socket, for a fresh user
    // whose credential instance B has verified and cached.
    let changes: [(&str, &[&str]); 5] = [
        ("revoke", &["password", "revoke", "{user}", "{id}"]),
        ("revoke-all", &["password", "revoke-all", "{user}"]),
        ("disable", &["user", "disable", "{user}"]),
        ("app-access-off", &["user", "app-access", "{user}", "off"]),
        ("login password change", &["user", "set-password", "{user}"]),
    ];
    for (i, (what, args)) in changes.iter().enumerate() {
        let user = format!("user{i}");
        let (id, password) = a.setup.user_with_password(&user);
        let hits = b.metric("davgate_verify_cache_hits_total").await;
        for _ in 0..2 {
            assert_eq!(http.get(&b.server.url("/"), &user, &password).await.status, StatusCode::OK, "{what}");
        }
        assert!(b.metric("davgate_verify_cache_hits_total").await > hits, "{what}: B answered from its cache");
        let args: Vec<String> = args.iter().map(|a| a.replace("{user}", &user).replace("{id}", &id)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = a.setup.run_with_stdin(&args, "a new login password 1\n");
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        let took = until_status(&b.server, &user, &password, StatusCode::UNAUTHORIZED, PROPAGATION).await;
        println!("{what}: instance B refused {took:?} after instance A acknowledged");
    }
    // Requests write nothing: activity waits for the batched flush.
    let (_, password) = a.setup.user_with_password("quiet");
    let writes = b.metric("davgate_store_writes").await;
    for _ in 0..50 {
        assert_eq!(http.get(&b.server.url("/"), "quiet", &password).await.status, StatusCode::OK);
    }
    assert_eq!(b.metric("davgate_store_writes").await, writes, "no store write on the request path");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_change_feed_bounds_how_long_a_cached_credential_lives() {
    let backend = Recorder::start().await;
    let url = PgCluster::shared().create_database();
    let staleness = Duration::from_secs(2);
    let Instance { setup: b, server: server_b, .. } = instance(&backend, &url, "[cache]\nmax_staleness = \"2s\"\n");
    let (id, password) = b.user_with_password("alice");
    let http = Http::h1();
    assert_eq!(http.get(&server_b.url("/"), "alice", &password).await.status, StatusCode::OK);
    let (db, _conn) = connect(&url).await;
    let name = url.rsplit('/').next().unwrap();
    // A database's connections are switched off from another database.
    let (admin, _admin_conn) = connect(&format!("{}/postgres", url.rsplit_once('/').unwrap().0)).await;
    // The feed's connection is cut and cannot come back; the pool keeps its
    // connections. The revocation is then written without a notification,
    // so only the age bound can catch it.
    admin.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await.unwrap();
    let cut = db
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
            &[&name],
        )
        .await
        .unwrap();
    assert_eq!(cut.len(), 1, "one feed connection");
    db.execute(
        r#"UPDATE passwords SET revoked = true, record = jsonb_set(record, '{revoked}', '{"at": 1, "by": "test"}')
           WHERE id = $1"#,
        &[&id],
    )
    .await
    .unwrap();
    let took = until_status(&server_b, "alice", &password, StatusCode::UNAUTHORIZED, staleness * 2).await;
    println!("refused {took:?} after the silent revocation (bound {staleness:?})");
    // Connections allowed again: the feed comes back by itself.
    admin.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&server_b.log).unwrap().matches("store change feed live").nth(1).is_none() {
        assert!(Instant::now() < deadline, "the feed did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_keeps_cached_clients_and_fails_the_rest_cleanly_until_it_recovers() {
    let backend = Recorder::start().await;
    let cluster = PgCluster::start();
    let url = cluster.create_database();
    let staleness = Duration::from_secs(3);
    let Instance { setup: b, server: server_b, .. } = instance(&backend, &url, "[cache]\nmax_staleness = \"3s\"\n");
    let (_, cached) = b.user_with_password("alice");
    let (_, cold) = b.user_with_password("bob");
    let http = Http::h1();
    assert_eq!(http.get(&server_b.url("/"), "alice", &cached).await.status, StatusCode::OK);
    let verified = Instant::now();

    cluster.stop();
    assert_eq!(http.get(&server_b.url("/"), "alice", &cached).await.status, StatusCode::OK, "cached: still works");
    let refused = http.get(&server_b.url("/"), "bob", &cold).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "cold: cannot be checked");
    assert!(refused.text().contains("could not be checked"), "a plain reason: {}", refused.text());
    // Writes fail with a clear error and leave nothing behind.
    let err = b.fails(&["user", "add", "carol"], 1);
    assert!(err.contains("store unavailable") || err.contains("503"), "{err}");
    let err = b.fails(&["password", "create", "alice", "--name", "during outage"], 1);
    assert!(err.contains("store unavailable") || err.contains("503"), "{err}");

    // Past max_staleness a cached credential needs its record read again,
    // which the database must answer (the documented bound).
    tokio::time::sleep(staleness.saturating_sub(verified.elapsed()) + Duration::from_millis(200)).await;
    let stale = http.get(&server_b.url("/"), "alice", &cached).await.status;
    assert_eq!(stale, StatusCode::SERVICE_UNAVAILABLE, "older than max_staleness, unconfirmed");

    cluster.start_again();
    until_status(&server_b, "bob", &cold, StatusCode::OK, Duration::from_secs(10)).await;
    until_status(&server_b, "alice", &cached, StatusCode::OK, Duration::from_secs(5)).await;
    let users = b.ok(&["user", "list", "--json"]);
    assert!(!users.contains("carol"), "the failed write left nothing: {users}");
    let passwords = b.ok(&["password", "list", "alice", "--json"]);
    assert!(!passwords.contains("during outage"), "{passwords}");
    b.ok(&["user", "add", "carol"]);

    // A failover drops every connection at once: the instance reconnects.
    let (db, _conn) = connect(&url).await;
    let name = url.rsplit('/').next().unwrap();
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'davgate'",
        &[&name],
    )
    .await
    .unwrap();
    let (_, fresh) = b.user_with_password("dave");
    until_status(&server_b, "dave", &fresh, StatusCode::OK, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_copy_moves_everything_both_ways_and_refuses_a_non_empty_destination() {
    let backend = Recorder::start().await;
    let sled = Setup::new(&backend.url());
    let (id, _) = sled.user_with_password("alice");
    sled.user_with_password("bob");
    sled.ok(&["password", "revoke", "alice", &id]);
    sled.run_with_stdin(&["user", "set-password", "bob"], "bob's login password\n");
    {
        let server = sled.serve();
        let (_, used) = sled.user_with_password("carol");
        assert_eq!(Http::h1().get(&server.url("/"), "carol", &used).await.status, StatusCode::OK);
        server.terminate(); // flushes activity
    }
    let store = sled.dir.path().join("store");
    let url = PgCluster::shared().create_database();
    let out = sled.ok(&["store", "copy", "--from", &format!("sled:{}", store.display()), "--to", &url, "--json"]);
    let counts: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(counts["users"], 3, "{out}");
    assert_eq!(counts["passwords"], 3, "{out}");
    assert_eq!(counts["logins"], 1, "{out}");
    assert_eq!(counts["activity"], 1, "{out}");
    assert!(counts["events"].as_u64().unwrap() >= 7, "{out}");

    // A second copy into the now full database changes nothing.
    let err = sled.fails(&["store", "copy", "--from", &format!("sled:{}", store.display()), "--to", &url], 1);
    assert!(err.contains("not empty"), "{err}");

    // And back into a new sled store: the same listings.
    let back = tempfile::tempdir().unwrap();
    let back_store = back.path().join("store");
    let out = sled.ok(&["store", "copy", "--from", &url, "--to", &format!("sled:{}", back_store.display()), "--json"]);
    let round_trip: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(round_trip, counts);
    let pg = Setup::postgres(&backend.url(), &url, "", "");
    let again = Setup::new(&backend.url());
    std::fs::remove_dir_all(again.dir.path().join("store")).ok();
    copy_dir(&back_store, &again.dir.path().join("store"));
    for args in [
        &["user", "list", "--json"][..],
        &["password", "list", "alice", "--json"],
        &["password", "list", "carol", "--json"],
        &["events", "--json"],
    ] {
        let original = sled.ok(args);
        assert_eq!(pg.ok(args), original, "{args:?} on PostgreSQL");
        assert_eq!(again.ok(args), original, "{args:?} after the round trip");
    }
}

#[tokio::test]
async fn store_migrate_applies_the_schema_once() {
    let url = PgCluster::shared().create_database();
    let backend = "http://127.0.0.1:9";
    let setup = Setup::postgres(backend, &url, "", "");
    let first: serde_json::Value = serde_json::from_str(&setup.ok(&["store", "migrate", "--json"])).unwrap();
    assert_eq!(first["applied"], serde_json::json!([1]), "{first}");
    let second: serde_json::Value = serde_json::from_str(&setup.ok(&["store", "migrate", "--json"])).unwrap();
    assert_eq!(second["applied"], serde_json::json!([]), "{second}");
    // The database answers, but no server does: not healthy.
    let err = setup.fails(&["health"], 1);
    assert!(err.contains("no server answers on admin.socket"), "{err}");
    let sled = Setup::new(backend);
    let err = sled.fails(&["store", "migrate"], 1);
    assert!(err.contains("sled") && err.contains("no migrations"), "{err}");
    let err = sled.fails(&["store", "copy", "--from", "mysql://x", "--to", &url], 1);
    assert!(err.contains("--from"), "{err}");
}

async fn connect(url: &str) -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    (
        client,
        tokio::spawn(async move {
            let _ = connection.await;
        }),
    )
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_to_the_database_when_asked_and_verified() {
    use davgate::config::StoreConfig;
    let cluster = PgCluster::start_tls();
    let url = format!("{}?sslmode=require", cluster.create_database());
    let mut config = StoreConfig::postgres(&url);
    config.ca_file = Some(cluster.cert_file());
    let store = davgate::store::open(&config).await.unwrap();
    store.ping().await.unwrap();
    let (db, _conn) = connect(&cluster.url("postgres")).await;
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = 'davgate'",
            &[],
        )
        .await
        .unwrap();
    let (encrypted, all): (i64, i64) = (row.get(0), row.get(1));
    assert!(all > 0 && encrypted == all, "{encrypted} of {all} davgate connections use TLS");
    // A certificate nobody vouches for is refused, with no fallback to plain.
    let err = davgate::store::open(&StoreConfig::postgres(&url)).await.err().expect("refused");
    assert!(err.to_string().contains("TLS"), "{err}");
}
