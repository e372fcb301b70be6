//! The committed `openapi.json` is exactly what the code generates, and it
//! documents every operation the API routes.

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
    ];
    assert_eq!(operations, expected);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}
