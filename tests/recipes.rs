//! The deploy kit, exercised. Each backend recipe in `deploy/` that runs on
//! Debian starts from its committed file behind an in-process davgate; the
//! shipped davgate configs, the systemd unit, the compose file and the
//! deploy README are checked as files.

mod common;

use bytes::Bytes;
use common::backends::{self, litmus};
use common::client::{Reply, basic};
use common::recipes::{self, ApacheDav, RadicaleRecipe, WsgiDavRecipe, read_deploy, substitute};
use common::{Gate, Http, all, services};
use http::Request;
use http_body_util::Full;
use std::fs;
use std::path::Path;
use std::process::Command;

/// A client-chosen identity in both spellings WSGI servers merge into
/// `HTTP_X_REMOTE_USER`: davgate drops them before setting its own.
const SPOOFED: [(&str, &str); 2] = [("X-Remote-User", "bob"), ("X_Remote_User", "bob")];

async fn dav(http: &Http, method: &str, url: &str, auth: (&str, &str), headers: &[(&str, &str)], body: &str) -> Reply {
    let mut req = Request::builder().method(method).uri(url).header("authorization", basic(auth.0, auth.1));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    http.send(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await
}

/// A request without davgate credentials: unauthenticated to davgate, and
/// to a backend what anyone who bypasses davgate could send.
async fn bare(http: &Http, method: &str, url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    http.send(req.body(Full::new(Bytes::new())).unwrap()).await.status.as_u16()
}

const PROPFIND_DEPTH_1: [(&str, &str); 1] = [("depth", "1")];

#[tokio::test(flavor = "multi_thread")]
async fn apache_mod_dav_recipe_stores_files_as_the_authenticated_user_through_davgate() {
    let apache = ApacheDav::start();
    let gate = Gate::start(&apache.server.url).await;
    let pw = gate.password("alice", services(&["files"])).await;
    let (http, alice) = (Http::h1(), ("alice", pw.as_str()));

    let mkcol = dav(&http, "MKCOL", &gate.url("/files/alice/"), alice, &SPOOFED, "").await;
    assert_eq!(mkcol.status, 201, "{}", apache.logs());
    let put = dav(&http, "PUT", &gate.url("/files/alice/hello.txt"), alice, &SPOOFED, "hello").await;
    assert_eq!(put.status, 201, "{}", apache.logs());
    let get = dav(&http, "GET", &gate.url("/files/alice/hello.txt"), alice, &SPOOFED, "").await;
    assert_eq!((get.status.as_u16(), get.text()), (200, "hello".to_string()));
    let listing = dav(&http, "PROPFIND", &gate.url("/files/alice/"), alice, &PROPFIND_DEPTH_1, "").await;
    assert_eq!(listing.status, 207);
    assert!(listing.text().contains("/files/alice/hello.txt"), "{}", listing.text());

    let stored = fs::read_to_string(apache.root().join("alice/hello.txt")).expect("the file is in the DAV tree");
    assert_eq!(stored, "hello");
    let log = apache.access_log(4);
    assert_eq!(log.lines().count(), 4, "{log}");
    for line in log.lines() {
        assert!(line.contains("\"alice\"") && !line.contains("bob"), "Apache saw another identity: {line}");
    }
    let unauthenticated = bare(&http, "GET", &gate.url("/files/alice/hello.txt"), &[("X-Remote-User", "alice")]).await;
    assert_eq!(unauthenticated, 401, "the header alone gets nothing through davgate");
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apache_mod_dav_recipe_keeps_users_apart_even_for_unscoped_passwords() {
    let apache = ApacheDav::start();
    let gate = Gate::start(&apache.server.url).await;
    let (alice_pw, bob_pw) = (gate.password("alice", all()).await, gate.password("bob", all()).await);
    let (http, alice, bob) = (Http::h1(), ("alice", alice_pw.as_str()), ("bob", bob_pw.as_str()));
    assert_eq!(dav(&http, "MKCOL", &gate.url("/files/alice/"), alice, &[], "").await.status, 201);
    assert_eq!(dav(&http, "MKCOL", &gate.url("/files/bob/"), bob, &[], "").await.status, 201);
    assert_eq!(dav(&http, "PUT", &gate.url("/files/bob/secret.txt"), bob, &[], "bob's").await.status, 201);
    assert_eq!(dav(&http, "PUT", &gate.url("/files/alice/a.txt"), alice, &[], "a").await.status, 201);

    // davgate lets an `all` password through; the recipe's Require rules stop it.
    assert_eq!(dav(&http, "GET", &gate.url("/files/bob/secret.txt"), alice, &SPOOFED, "").await.status, 403);
    assert_eq!(dav(&http, "PUT", &gate.url("/files/bob/x.txt"), alice, &SPOOFED, "x").await.status, 403);
    assert_eq!(dav(&http, "PROPFIND", &gate.url("/files/"), alice, &PROPFIND_DEPTH_1, "").await.status, 403);
    // mod_dav does not authorize a Destination itself: the recipe does.
    for method in ["MOVE", "COPY"] {
        let into_bob = gate.url("/files/bob/a.txt");
        let res = dav(&http, method, &gate.url("/files/alice/a.txt"), alice, &[("destination", &into_bob)], "").await;
        assert_eq!(res.status, 403, "{method} into bob's folder");
    }
    assert!(!apache.root().join("bob/a.txt").exists() && !apache.root().join("bob/x.txt").exists());
    // Within her folder, with davgate's own address in the Destination.
    let dest = gate.url("/files/alice/b.txt");
    let moved = dav(&http, "MOVE", &gate.url("/files/alice/a.txt"), alice, &[("destination", &dest)], "").await;
    assert_eq!(moved.status, 201, "{}", apache.logs());
    assert_eq!(fs::read_to_string(apache.root().join("alice/b.txt")).unwrap(), "a");
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apache_mod_dav_recipe_alone_refuses_a_missing_identity_and_escaping_destinations() {
    let apache = ApacheDav::start();
    let http = Http::h1();
    let url = |path: &str| format!("{}{path}", apache.server.url);
    let alice = ("X-Remote-User", "alice");
    assert_eq!(bare(&http, "MKCOL", &url("/files/alice/"), &[alice]).await, 201, "{}", apache.logs());
    assert_eq!(bare(&http, "PUT", &url("/files/alice/a.txt"), &[alice]).await, 201);
    assert_eq!(bare(&http, "GET", &url("/files/alice/a.txt"), &[]).await, 403, "no header, no access");
    assert_eq!(bare(&http, "GET", &url("/files/alice/a.txt"), &[("X-Remote-User", "")]).await, 403);
    for dest in ["/files/alice/../bob/a.txt", "/files/alice/%2E%2e/bob/a.txt", "/files/alice/./../bob/a.txt"] {
        let dest = url(dest);
        let status = bare(&http, "MOVE", &url("/files/alice/a.txt"), &[alice, ("destination", &dest)]).await;
        assert_eq!(status, 403, "Destination {dest}");
    }
    assert!(apache.root().join("alice/a.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn litmus_passes_against_the_apache_mod_dav_recipe_through_davgate() {
    let apache = ApacheDav::start();
    let gate = Gate::start(&apache.server.url).await;
    let pw = gate.password("alice", services(&["files"])).await;
    assert_eq!(dav(&Http::h1(), "MKCOL", &gate.url("/files/alice/"), ("alice", &pw), &[], "").await.status, 201);
    let url = gate.url("/files/alice/");
    let r = tokio::task::spawn_blocking(move || litmus(&url, "alice", &pw)).await.unwrap();
    println!("litmus via the Apache recipe: {} passed, {} failed, {} aborted", r.passed, r.failed, r.aborted);
    assert!(r.failed == 0 && r.aborted == 0 && r.passed >= 104, "{}\n{}", r.output, apache.logs());
    assert_eq!(r.suites.len(), 5, "{}", r.output);
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn radicale_recipe_and_deploy_config_sync_calendars_and_contacts_through_davgate() {
    let radicale = RadicaleRecipe::start();
    let dir = tempfile::tempdir().unwrap();
    let config = recipes::deploy_config("davgate.toml", &radicale.server.url, dir.path());
    let gate = Gate::start_config(config, dir).await;
    let pw = gate.password("alice", services(&["caldav", "carddav"])).await;
    let out = backends::run_client("caldav_flow.py", vec![gate.url("/"), "alice".into(), pw.clone()]).await;
    backends::assert_client_ok(&out, &radicale.server.log());
    let out =
        backends::run_client("carddav_flow.py", vec![gate.url("/"), "alice".into(), pw, gate.url("/alice/contacts/")])
            .await;
    backends::assert_client_ok(&out, &radicale.server.log());
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn radicale_recipe_sees_the_authenticated_user_not_the_client_header() {
    let radicale = RadicaleRecipe::start();
    let gate = Gate::start(&radicale.server.url).await;
    let pw = gate.password("alice", all()).await;
    let (http, alice) = (Http::h1(), ("alice", pw.as_str()));
    let depth0 = [SPOOFED[0], SPOOFED[1], ("depth", "0")];
    assert_eq!(dav(&http, "PROPFIND", &gate.url("/alice/"), alice, &depth0, "").await.status, 207);
    // davgate forwards an `all` password anywhere; Radicale's owner_only
    // refuses because the header says alice, whatever the client sent.
    let res = dav(&http, "PROPFIND", &gate.url("/bob/"), alice, &depth0, "").await;
    assert_eq!(res.status, 403, "{}", radicale.server.log());
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wsgidav_recipe_stores_files_as_the_authenticated_user_through_davgate() {
    let wsgidav = WsgiDavRecipe::start();
    let gate = Gate::start(&wsgidav.server.url).await;
    let pw = gate.password("alice", services(&["files"])).await;
    let (http, alice) = (Http::h1(), ("alice", pw.as_str()));

    assert_eq!(dav(&http, "MKCOL", &gate.url("/files/alice/"), alice, &SPOOFED, "").await.status, 201);
    let put = dav(&http, "PUT", &gate.url("/files/alice/hello.txt"), alice, &SPOOFED, "hello").await;
    assert_eq!(put.status, 201, "{}", wsgidav.server.log());
    let get = dav(&http, "GET", &gate.url("/files/alice/hello.txt"), alice, &SPOOFED, "").await;
    assert_eq!((get.status.as_u16(), get.text()), (200, "hello".to_string()));
    let listing = dav(&http, "PROPFIND", &gate.url("/files/alice/"), alice, &PROPFIND_DEPTH_1, "").await;
    assert_eq!(listing.status, 207);
    assert!(listing.text().contains("hello.txt"), "{}", listing.text());
    assert_eq!(fs::read_to_string(wsgidav.root().join("alice/hello.txt")).unwrap(), "hello");

    let log = wsgidav.server.log();
    assert!(log.contains("- alice - ") && log.contains("\"PUT /alice/hello.txt\""), "{log}");
    assert!(!log.contains("bob"), "WsgiDAV saw the client's header: {log}");
    // WsgiDAV has no per-user rights: the `files` scope keeps alice out.
    assert_eq!(dav(&http, "PROPFIND", &gate.url("/files/bob/"), alice, &[], "").await.status, 403);
    gate.stop().await;
}

/// Where the shipped configs expect the certificate and key (`config check`
/// reads them).
const TLS_DIR: &str = "/etc/davgate/tls/";
/// Where compose-postgres.yaml mounts the database password secret
/// (`store.password_file`, which `config check` reads too).
const DB_PASSWORD: &str = "/run/secrets/davgate-db-password";

/// Stand-ins for the files the shipped configs name where they are
/// deployed: self-signed PEM files and a database password.
fn deployed_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    fs::write(dir.path().join("fullchain.pem"), certified.cert.pem()).unwrap();
    fs::write(dir.path().join("privkey.pem"), certified.key_pair.serialize_pem()).unwrap();
    fs::write(dir.path().join("db-password"), "not-the-real-one\n").unwrap();
    // As the compose header says: readable by davgate's user only.
    fs::set_permissions(dir.path().join("db-password"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    dir
}

#[test]
fn shipped_davgate_configs_pass_config_check() {
    let configs: [(&str, &[&str]); 3] = [
        ("davgate.toml", &[TLS_DIR]),
        ("compose/davgate.toml", &[TLS_DIR]),
        ("compose-postgres/davgate.toml", &[DB_PASSWORD]),
    ];
    for (rel, deployed) in configs {
        let dir = deployed_files();
        let stand_ins = [
            (TLS_DIR, format!("{}/", dir.path().display())),
            (DB_PASSWORD, dir.path().join("db-password").display().to_string()),
        ];
        let pairs: Vec<(&str, &str)> =
            stand_ins.iter().filter(|(from, _)| deployed.contains(from)).map(|(f, t)| (*f, t.as_str())).collect();
        let text = substitute(&read_deploy(rel), rel, &pairs);
        let config = dir.path().join("davgate.toml");
        fs::write(&config, text).unwrap();
        let out = common::binary::davgate().arg("--config").arg(&config).args(["config", "check"]).output().unwrap();
        assert!(out.status.success(), "deploy/{rel}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The lines of `service:` in a compose file (two-space indented services).
fn compose_service<'a>(compose: &'a str, service: &str) -> Vec<&'a str> {
    let header = format!("  {service}:");
    let mut lines = compose.lines().skip_while(|l| *l != header);
    assert!(lines.next().is_some(), "no service {service} in the compose file");
    lines.take_while(|l| l.is_empty() || l.starts_with("    ")).collect()
}

fn publishes(lines: &[&str]) -> bool {
    lines.iter().any(|l| l.trim_start().starts_with("ports:"))
}

/// The container hardening every davgate and Radicale service keeps.
fn assert_hardened(file: &str, service: &str, lines: &[&str]) {
    for line in ["    read_only: true", "    cap_drop: [ALL]", "    security_opt: [\"no-new-privileges:true\"]"] {
        assert!(lines.contains(&line), "deploy/{file}: {service} lost {line:?}");
    }
}

/// Radicale from the recipe file, on the internal `backend` network only,
/// never published: whoever reaches it can claim any identity.
fn assert_radicale_behind_davgate(file: &str, compose: &str) {
    let lines = compose_service(compose, "radicale");
    let radicale = lines.join("\n");
    assert!(!publishes(&lines), "deploy/{file}: Radicale must not be published:\n{radicale}");
    assert!(radicale.contains("networks: [backend]"), "deploy/{file}: {radicale}");
    assert!(
        radicale.contains("./radicale.conf:/etc/radicale/config:ro"),
        "deploy/{file}: the recipe file itself:\n{radicale}"
    );
    assert!(radicale.contains("--server-hosts=0.0.0.0:5232"), "deploy/{file}: {radicale}");
    assert!(compose.contains("  backend:\n    internal: true"), "deploy/{file}: the backend network has no way out");
    assert_hardened(file, "radicale", &lines);
}

/// A davgate service built from deploy/Dockerfile, with `config` mounted
/// where the image looks for it, hardened, stopped gracefully.
fn assert_davgate_service<'a>(file: &str, compose: &'a str, service: &str, config: &str) -> Vec<&'a str> {
    let lines = compose_service(compose, service);
    let davgate = lines.join("\n");
    assert!(davgate.contains(&format!("./{config}:/etc/davgate/davgate.toml:ro")), "deploy/{file}: {davgate}");
    assert!(davgate.contains("dockerfile: deploy/Dockerfile"), "deploy/{file}: {davgate}");
    assert!(davgate.contains("stop_grace_period: 45s"), "deploy/{file}: {davgate}");
    assert_hardened(file, service, &lines);
    lines
}

#[test]
fn compose_keeps_radicale_unpublished_behind_davgate_with_the_recipe_config() {
    let compose = read_deploy("compose.yaml");
    assert_radicale_behind_davgate("compose.yaml", &compose);
    assert_davgate_service("compose.yaml", &compose, "davgate", "compose/davgate.toml");
    assert!(read_deploy("compose/davgate.toml").contains("url = \"http://radicale:5232\""));
    assert!(read_deploy("Dockerfile").contains("EXPOSE 8443"));
    assert!(read_deploy("compose/davgate.toml").contains("listen = \"0.0.0.0:8443\""));
}

#[test]
fn compose_postgres_runs_identical_instances_on_one_database_behind_caddy_only() {
    let file = "compose-postgres.yaml";
    let compose = read_deploy(file);
    assert_radicale_behind_davgate(file, &compose);
    for network in ["front", "db"] {
        assert!(
            compose.contains(&format!("  {network}:\n    internal: true")),
            "deploy/{file}: {network} has a way out"
        );
    }
    // The same container twice: only comments may differ.
    let mut instances = Vec::new();
    for service in ["davgate-a", "davgate-b"] {
        let lines = assert_davgate_service(file, &compose, service, "compose-postgres/davgate.toml");
        let davgate = lines.join("\n");
        assert!(!publishes(&lines), "deploy/{file}: only Caddy is published:\n{davgate}");
        assert!(davgate.contains("secrets: [davgate-db-password]"), "deploy/{file}: {davgate}");
        assert!(davgate.contains("networks: [front, backend, db]"), "deploy/{file}: {davgate}");
        instances.push(lines.into_iter().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>());
    }
    assert_eq!(instances[0], instances[1], "deploy/{file}: davgate-a and davgate-b must run the same way");

    let postgres = compose_service(&compose, "postgres");
    let pg = postgres.join("\n");
    assert!(!publishes(&postgres) && pg.contains("networks: [db]"), "deploy/{file}: {pg}");
    assert!(pg.contains(&format!("POSTGRES_PASSWORD_FILE: {DB_PASSWORD}")), "deploy/{file}: {pg}");
    assert!(pg.contains("secrets: [davgate-db-password]"), "deploy/{file}: {pg}");
    assert!(compose.contains("  davgate-db-password:\n"), "deploy/{file}: the secret is declared");
    assert_eq!(compose.matches("\n    ports:").count(), 1, "deploy/{file}: only Caddy is published");
    let caddy = compose_service(&compose, "caddy");
    assert!(publishes(&caddy), "deploy/{file}: Caddy is the way in");
    assert!(caddy.contains(&"      - ./compose-postgres/Caddyfile:/etc/caddy/Caddyfile:ro"), "deploy/{file}");

    // The config names the database compose creates, the secret compose
    // mounts, and Caddy's fixed address as the only trusted proxy.
    let rel = "compose-postgres/davgate.toml";
    let config: toml::Table = read_deploy(rel).parse().unwrap_or_else(|e| panic!("deploy/{rel}: {e}"));
    let url = config["store"]["url"].as_str().expect("store.url");
    assert_eq!(url, "postgres://davgate@postgres:5432/davgate", "deploy/{rel}");
    assert!(pg.contains("POSTGRES_USER: davgate") && pg.contains("POSTGRES_DB: davgate"), "deploy/{file}: {pg}");
    assert_eq!(config["store"]["password_file"].as_str(), Some(DB_PASSWORD), "deploy/{rel}");
    assert_eq!(config["upstream"]["url"].as_str(), Some("http://radicale:5232"), "deploy/{rel}");
    assert_eq!(config["server"]["listen"].as_str(), Some("0.0.0.0:8080"), "deploy/{rel}");
    let caddy_ip = caddy
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("ipv4_address: "))
        .unwrap_or_else(|| panic!("deploy/{file}: Caddy has no fixed address"));
    let trusted = config["server"]["trusted_proxies"].as_array().expect("server.trusted_proxies");
    assert_eq!(trusted, &vec![toml::Value::from(format!("{caddy_ip}/32"))], "deploy/{rel}: Caddy, and only Caddy");
    // The header's copy goes to the config's own url, so it uses the
    // config's password_file.
    assert!(compose.contains(&format!("--to {url}\n")), "deploy/{file}: the store copy command names {url}");

    // Caddy: every page path and the login flow pinned to one instance
    // (their state is in its memory), everything else to either.
    let caddyfile = read_deploy("compose-postgres/Caddyfile");
    let (page, flow) = (davgate::config::WebConfig::default().path, davgate::web::LOGIN_FLOW_PREFIX);
    let matcher = format!("@page path {} {page}* {flow} {flow}/*", page.trim_end_matches('/'));
    assert!(caddyfile.contains(&matcher), "deploy/compose-postgres/Caddyfile lost {matcher:?}");
    let pinned = caddyfile.split("handle @page {").nth(1).and_then(|rest| rest.split("\n\t}\n").next());
    let pinned = pinned.expect("deploy/compose-postgres/Caddyfile: no `handle @page` block");
    assert!(pinned.contains("lb_policy first"), "deploy/compose-postgres/Caddyfile: the page is not pinned:\n{pinned}");
    assert_eq!(caddyfile.matches("reverse_proxy davgate-a:8080 davgate-b:8080 {").count(), 2);
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify_and_keeps_its_hardening() {
    let unit = read_deploy("davgate.service");
    for line in [
        "User=davgate",
        "ProtectSystem=strict",
        "StateDirectory=davgate",
        "RuntimeDirectory=davgate",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.lines().any(|l| l == line), "deploy/davgate.service lost {line:?}");
    }
    // verify wants the executables to exist: point them at the test build.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("davgate.service");
    let exe = env!("CARGO_BIN_EXE_davgate");
    fs::write(&path, substitute(&unit, "davgate.service", &[("/usr/local/bin/davgate", exe)])).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze ({e}): run scripts/test-env.sh first"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Other units on the machine may be noisy; ours must not be.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("davgate.service")).collect();
    assert!(out.status.success() && ours.is_empty(), "systemd-analyze verify:\n{stderr}");
}

#[test]
fn deploy_readme_names_every_file_in_deploy() {
    let readme = read_deploy("README.md");
    let mut missing = Vec::new();
    let mut stack = vec![recipes::deploy_path("")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(recipes::deploy_path("")).unwrap().to_string_lossy().into_owned();
            if rel != "README.md" && !readme.contains(&rel) {
                missing.push(rel);
            }
        }
    }
    assert!(missing.is_empty(), "deploy/README.md does not mention {missing:?}");
    assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore").exists());
}
