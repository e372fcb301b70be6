//! The CLI as a user runs it: config errors, account commands with and
//! without a running server, exit codes and messages.

mod common;

use common::binary::{Setup, davgate};
use common::{Http, Recorder};
use serde_json::Value;

const MINIMAL: &str = "[server]\nlisten = \"127.0.0.1:8080\"\n[upstream]\nurl = \"http://127.0.0.1:5232\"\n[store]\npath = \"./davgate-data\"\n";

fn check(dir: &std::path::Path, text: &str) -> std::process::Output {
    std::fs::write(dir.join("davgate.toml"), text).unwrap();
    davgate().current_dir(dir).args(["config", "check"]).output().unwrap()
}

#[test]
fn the_minimal_config_works_from_flag_env_and_default_location() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), MINIMAL);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let by_flag = davgate().args(["--config"]).arg(dir.path().join("davgate.toml")).args(["config", "check"]).output();
    assert!(by_flag.unwrap().status.success());
    let by_env = davgate().env("DAVGATE_CONFIG", dir.path().join("davgate.toml")).args(["config", "check"]).output();
    assert!(by_env.unwrap().status.success());
}

#[test]
fn config_errors_name_file_and_key_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (
            MINIMAL.replace("[store]", "[store]\npaht = \"x\""),
            "davgate.toml: store.paht: unknown field `paht`, expected one of `path`, `url`",
        ),
        (MINIMAL.replace("[store]", "[store]\nurl = \"postgres://u@db/d\""), "davgate.toml: store: set either path"),
        (
            MINIMAL.replace("[store]\npath", "[store]\nurl = \"postgres://u:secret@db/d\"\n#"),
            "davgate.toml: store.url: holds a password",
        ),
        (MINIMAL.replace("127.0.0.1:8080", "localhost"), "davgate.toml: server.listen:"),
        (MINIMAL.replace("http://127.0.0.1:5232", "ftp://x"), "davgate.toml: upstream.url:"),
        (MINIMAL.replace("127.0.0.1:8080", "0.0.0.0:8080"), "davgate.toml: server.listen: plain HTTP"),
        (format!("{MINIMAL}[hash]\nmemory_kib = 1024\n"), "davgate.toml: hash.memory_kib:"),
        ("[server]\nlisten = \"127.0.0.1:1\"\n".to_string(), "davgate.toml: missing field `upstream`"),
        ("not toml at all".to_string(), "davgate.toml:"),
    ] {
        let out = check(dir.path(), &text);
        assert_eq!(out.status.code(), Some(1), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "expected {expected:?} in {stderr}");
    }
    let missing = davgate().args(["--config", "/nonexistent/d.toml", "config", "check"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/d.toml: cannot read"));
    // A serve with a bad config never starts.
    std::fs::write(dir.path().join("davgate.toml"), MINIMAL.replace("[store]", "[store]\nx = 1")).unwrap();
    let serve = davgate().current_dir(dir.path()).arg("serve").output().unwrap();
    assert_eq!(serve.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2() {
    let setup = Setup::new("http://127.0.0.1:1");
    setup.fails(&["password", "create", "alice"], 2);
    setup.fails(&["user", "frobnicate"], 2);
    let stderr = setup.fails(&["password", "create", "alice", "--name", "x", "--from", "not-a-cidr"], 2);
    assert!(stderr.contains("--from"), "{stderr}");
}

#[test]
fn account_commands_work_on_the_store_directly_with_clear_errors() {
    let setup = Setup::new("http://127.0.0.1:1");
    setup.ok(&["user", "add", "alice"]);
    assert!(setup.fails(&["user", "add", "alice"], 1).contains("user \"alice\" already exists"));
    assert!(setup.fails(&["user", "add", "bad:name"], 1).contains("must not contain ':'"));
    assert!(setup.fails(&["password", "create", "bob", "--name", "x"], 1).contains("unknown user \"bob\""));
    let long = "n".repeat(65);
    assert!(setup.fails(&["password", "create", "alice", "--name", &long], 1).contains("at most 64"));
    assert!(
        setup
            .fails(&["password", "create", "alice", "--name", "x", "--expires", "2001-01-01"], 1)
            .contains("in the past")
    );
    assert!(setup.fails(&["password", "create", "alice", "--name", "x", "--expires", "soon"], 1).contains("\"soon\""));
    assert!(
        setup
            .fails(&["password", "create", "alice", "--name", "x", "--scope", "nope"], 1)
            .contains("unknown service \"nope\"")
    );

    let out = setup.ok(&[
        "password",
        "create",
        "alice",
        "--name",
        "Phone",
        "--scope",
        "caldav,carddav",
        "--read-only",
        "--expires",
        "90d",
        "--json",
    ]);
    let created: Value = serde_json::from_str(&out).unwrap();
    let password = created["password"].as_str().unwrap();
    assert!(davgate::password::parse(password).is_some(), "{password}");
    assert_eq!(created["user"], "alice");
    assert_eq!(created["name"], "Phone");
    assert_eq!(created["scope"]["services"], serde_json::json!(["caldav", "carddav"]));
    assert_eq!(created["scope"]["read_only"], true);
    let expires = created["expires"].as_u64().unwrap();
    let in_90_days = davgate::store::model::unix_now() + 90 * 86400;
    assert!(expires.abs_diff(in_90_days) < 60);
    let id = created["id"].as_str().unwrap().to_string();

    let human = setup.ok(&["password", "create", "alice", "--name", "Laptop"]);
    assert!(human.contains("shown once"), "{human}");
    let listing = setup.ok(&["password", "list", "alice", "--json"]);
    assert!(!listing.contains(password), "a listing never shows a password");
    assert!(!listing.contains("argon2"), "a listing never shows a hash");
    let listed: Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let table = setup.ok(&["password", "list", "alice"]);
    assert!(table.contains("Phone") && table.contains("caldav,carddav read-only"), "{table}");

    assert!(setup.fails(&["password", "revoke", "alice", "zzzzz"], 1).contains("no app password with id \"zzzzz\""));
    assert!(setup.fails(&["password", "revoke", "nobody", &id], 1).contains("unknown user"));
    setup.ok(&["password", "revoke", "alice", &id]);
    let listed: Value = serde_json::from_str(&setup.ok(&["password", "list", "alice", "--json"])).unwrap();
    let phone = listed.as_array().unwrap().iter().find(|p| p["id"] == id.as_str()).unwrap();
    assert_eq!(phone["status"], "revoked");
    assert!(setup.ok(&["password", "revoke-all", "alice"]).contains("revoked 1 app passwords"));
    setup.ok(&["user", "disable", "alice"]);
    let users: Value = serde_json::from_str(&setup.ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(users["users"][0]["state"], "disabled");
    assert_eq!(users["total"], 1);
    setup.ok(&["user", "enable", "alice"]);
    setup.ok(&["user", "remove", "alice"]);
    assert!(setup.fails(&["user", "remove", "alice"], 1).contains("unknown user"));
}

#[test]
fn the_active_password_limit_is_enforced() {
    let setup = Setup::with_sections("http://127.0.0.1:1", "[policy]\nmax_active_passwords = 3\n");
    setup.ok(&["user", "add", "alice"]);
    for i in 0..3 {
        setup.ok(&["password", "create", "alice", "--name", &format!("p{i}")]);
    }
    let err = setup.fails(&["password", "create", "alice", "--name", "one too many"], 1);
    assert!(err.contains("already has 3 active app passwords"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn while_serving_the_cli_goes_through_the_admin_socket_and_changes_apply_at_once() {
    let backend = Recorder::start().await;
    let setup = Setup::new(&backend.url());
    let server = setup.serve();
    let mode = std::fs::metadata(setup.socket()).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(mode.unwrap() & 0o777, 0o600, "the admin socket is private");
    setup.ok(&["user", "add", "alice"]);
    let created: Value =
        serde_json::from_str(&setup.ok(&["password", "create", "alice", "--name", "x", "--json"])).unwrap();
    let pw = created["password"].as_str().unwrap();
    let http = Http::h1();
    for _ in 0..3 {
        assert_eq!(http.get(&server.url("/alice/"), "alice", pw).await.status, 200);
    }
    let listing = setup.ok(&["password", "list", "alice"]);
    assert!(listing.contains("from 127.0.0.1"), "live activity shows before any flush: {listing}");
    setup.ok(&["password", "revoke", "alice", created["id"].as_str().unwrap()]);
    assert_eq!(http.get(&server.url("/alice/"), "alice", pw).await.status, 401, "the cached credential is gone");
    let stderr = server.terminate();
    assert!(!stderr.contains(pw), "the password never reaches a log");
    assert!(!setup.socket().exists(), "the socket is removed at shutdown");
    let listed: Value = serde_json::from_str(&setup.ok(&["password", "list", "alice", "--json"])).unwrap();
    assert!(listed[0]["last_activity"]["at"].is_u64(), "activity was flushed at shutdown");
}

/// Even a listener that would let davgate join it (`SO_REUSEPORT`, same
/// user) is refused: a second server on one port must not take a share of
/// the first one's connections.
#[tokio::test]
async fn serve_refuses_a_port_another_process_listens_on() {
    let setup = Setup::new("http://127.0.0.1:1");
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.set_reuseaddr(true).unwrap();
    held.set_reuseport(true).unwrap();
    held.bind(([127, 0, 0, 1], setup.port).into()).unwrap();
    let _held = held.listen(16).unwrap();
    let mut serve = davgate()
        .args(["--config", setup.config.to_str().unwrap(), "serve"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A serve that bound the port anyway would run on: stop it, and fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while serve.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            serve.kill().unwrap();
            panic!("serve started on a port another listener holds");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = serve.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("server.listen: cannot bind"), "{err}");
}

#[test]
fn the_shipped_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let out = davgate().args(["--config", example, "config", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Every API operation through the CLI, with `--json`, against a running
/// server (over the socket) and then on the store directly.
#[tokio::test(flavor = "multi_thread")]
async fn every_api_operation_has_a_cli_command_with_json_output() {
    let backend = Recorder::start().await;
    let setup = Setup::new(&backend.url());
    let json = |args: &[&str]| -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let out = setup.ok(&with_json);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    for serving in [true, false] {
        let server = serving.then(|| setup.serve());
        let health = json(&["health"]);
        assert_eq!(health["status"], "ok");
        assert!(setup.ok(&["health"]).contains(if serving { "server on" } else { "no server running" }));

        let alice = if serving { "alice" } else { "alice2" };
        assert_eq!(json(&["user", "add", alice])["name"], alice);
        assert_eq!(json(&["user", "show", alice])["app_access"], true);
        assert_eq!(json(&["user", "app-access", alice, "off"])["app_access"], false);
        assert_eq!(json(&["user", "app-access", alice, "on"])["app_access"], true);
        assert_eq!(json(&["user", "disable", alice])["state"], "disabled");
        assert_eq!(json(&["user", "list", "--state", "disabled"])["users"][0]["name"], alice);
        assert_eq!(json(&["user", "enable", alice])["state"], "active");
        assert_eq!(json(&["user", "list", "--filter", alice])["total"], 1);

        let set = setup.run_with_stdin(&["user", "set-password", alice, "--json"], "correct horse battery\n");
        assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
        assert_eq!(serde_json::from_slice::<Value>(&set.stdout).unwrap()["revoked"], 0);
        let short = setup.run_with_stdin(&["user", "set-password", alice], "short\n");
        assert_eq!(short.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&short.stderr).contains("10 to 256 characters"));
        let empty = setup.run_with_stdin(&["user", "set-password", alice], "");
        assert!(String::from_utf8_lossy(&empty.stderr).contains("no password on standard input"));
        assert_eq!(json(&["user", "reset-totp", alice])["removed"], false);
        let changed = json(&["events", alice, "--kind", "login-password-changed"]);
        assert_eq!(changed["events"].as_array().unwrap().len(), 1);

        let created = json(&["password", "create", alice, "--name", "phone", "--expires", "3d"]);
        let id = created["id"].as_str().unwrap();
        json(&["password", "create", alice, "--name", "laptop"]);
        assert_eq!(json(&["password", "show", alice, id])["name"], "phone");
        assert_eq!(json(&["password", "rename", alice, id, "old phone"])["name"], "old phone");
        let soon = json(&["password", "list", "--all", "--expiring-within", "7d"]);
        let soon: Vec<&str> = soon["passwords"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(soon, [id], "only the password expiring within 7 days");
        let table = setup.ok(&["password", "list", "--all"]);
        assert!(table.contains("USER") && table.contains("old phone") && table.contains("laptop"), "{table}");
        assert_eq!(json(&["password", "revoke", alice, id])["status"], "revoked");
        assert_eq!(json(&["password", "list", "--all", "--status", "revoked"])["total"], 1);
        assert_eq!(json(&["password", "list", "--all", "--user", alice])["total"], 2);
        assert_eq!(json(&["password", "list", "--all", "--user", "nobody"])["total"], 0);
        assert_eq!(json(&["password", "revoke-all", alice])["revoked"], 1);

        let history = json(&["events", alice, "--kind", "password-renamed,password-revoked"]);
        let kinds: Vec<&str> =
            history["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["password-revoked", "password-renamed"]);
        assert!(json(&["events", "--since", "1h", "--limit", "2"])["next_offset"].is_u64());
        assert_eq!(json(&["events", "--until", "2000-01-01"])["events"], serde_json::json!([]));
        assert!(setup.ok(&["events"]).contains("passwords-revoked-all"));

        let policy = json(&["policy"]);
        assert_eq!(policy["max_active_passwords"], 25);
        assert!(setup.ok(&["policy"]).contains("services: caldav, carddav, files"));

        let token = json(&["admin-token", "create", "--name", "ci"]);
        assert!(token["token"].as_str().unwrap().starts_with("dgt_"));
        let listed = json(&["admin-token", "list"]);
        assert!(!listed.to_string().contains(token["token"].as_str().unwrap()), "a listing never shows a token");
        let token_id = token["id"].as_str().unwrap();
        assert_eq!(json(&["admin-token", "revoke", token_id])["id"], token_id);
        assert!(setup.fails(&["admin-token", "revoke", token_id], 1).contains("no admin token"));
        assert_eq!(json(&["user", "remove", alice])["removed"], alice);
        if let Some(server) = server {
            server.terminate();
        }
    }
    setup.fails(&["password", "list"], 2);
    let stderr = setup.fails(&["password", "list", "alice", "--expiring-within", "7d"], 2);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    assert!(setup.fails(&["events", "--since", "whenever"], 2).contains("\"whenever\""));
}
