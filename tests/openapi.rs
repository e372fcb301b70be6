//! The committed `openapi.json` is exactly what the code generates, and it
//! documents every operation the API routes.

mod common;

use serde_json::Value;
use std::path::Path;

const BLESS: &str = "DAVGATE_BLESS";

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let generated = davgate::admin::openapi::document();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os(BLESS).is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json differs from the code; regenerate it with `{BLESS}=1 cargo test --test openapi` and commit it"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_lists_every_operation() {
    let doc: Value = serde_json::from_str(&davgate::admin::openapi::document()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    let expected = [
        "DELETE /api/v1/admin-tokens/{id}",
        "DELETE /api/v1/users/{user}",
        "DELETE /api/v1/users/{user}/passwords/{id}",
        "DELETE /api/v1/users/{user}/totp",
        "GET /api/v1/admin-tokens",
        "GET /api/v1/events",
        "GET /api/v1/health",
        "GET /api/v1/passwords",
        "GET /api/v1/policy",
        "GET /api/v1/users",
        "GET /api/v1/users/{user}",
        "GET /api/v1/users/{user}/events",
        "GET /api/v1/users/{user}/passwords",
        "GET /api/v1/users/{user}/passwords/{id}",
        "PATCH /api/v1/users/{user}",
        "PATCH /api/v1/users/{user}/passwords/{id}",
        "POST /api/v1/admin-tokens",
        "POST /api/v1/users",
        "POST /api/v1/users/{user}/passwords",
        "POST /api/v1/users/{user}/passwords/revoke-all",
        "PUT /api/v1/users/{user}/login-password",
    ];
    assert_eq!(operations, expected);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

/// Checks that hold for every response, valid request or not.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,response_headers_conformance,unsupported_method";

/// Property-based: schemathesis generates requests from `openapi.json`
/// (valid and invalid, single calls and stateful sequences) against a live
/// server's TCP admin listener and finds no 5xx and no response that
/// breaks the document.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let schemathesis = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-schemathesis/bin/schemathesis");
    assert!(schemathesis.exists(), "{} is missing: run scripts/test-env.sh first", schemathesis.display());
    let backend = common::Recorder::start().await;
    let admin_port = common::backends::free_port();
    let setup = common::binary::Setup::with_sections(
        &backend.url(),
        &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"),
    );
    setup.user_with_password("alice");
    let created: Value =
        serde_json::from_str(&setup.ok(&["admin-token", "create", "--name", "schemathesis", "--json"])).unwrap();
    let server = setup.serve_with_log("warn");
    let report = setup.dir.path().join("schemathesis");
    let out = tokio::process::Command::new(&schemathesis)
        .arg("run")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json"))
        .args(["--url", &format!("http://127.0.0.1:{admin_port}")])
        .args(["--header", &format!("Authorization: Bearer {}", created["token"].as_str().unwrap())])
        .args(["--checks", CHECKS, "--max-examples", "25", "--max-time", "60", "--seed", "1"])
        .args(["--suppress-health-check", "all", "--workers", "2", "--no-color"])
        .arg("--report-dir")
        .arg(&report)
        .env("HOME", setup.dir.path())
        .current_dir(setup.dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis found problems:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Tested: 21"), "every operation was exercised:\n{stdout}");
    let log = server.terminate();
    assert!(!log.contains("panicked"), "{log}");
}
