//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers'
//! annotations (`utoipa`). `openapi.json` at the repository root is this
//! document; a test fails when the two disagree, so the committed file is
//! always what the code serves.

use super::api::{ErrorBody, events, logins, passwords, system, tokens, users};
use crate::accounts::PasswordView;
use crate::gateway::scope::Scope;
use crate::store::model::{Activity, Event, EventKind, Revocation, User, UserState};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "davgate admin API",
        description = "Users, app passwords and their history. Served on the admin Unix socket \
            (no token: the file mode is the access control) and, with `[admin] listen`, on TCP with \
            `Authorization: Bearer <token>` (`davgate admin-token create`). Errors are \
            `{\"error\": \"<code>\", \"message\": \"<one line>\"}`.",
        license(name = "AGPL-3.0-or-later"),
    ),
    paths(
        system::health, system::policy,
        users::list, users::create, users::get, users::update, users::remove,
        logins::set_password, logins::reset_totp,
        passwords::list, passwords::create, passwords::get, passwords::rename, passwords::revoke,
        passwords::revoke_all, passwords::list_all,
        events::list_for_user, events::list,
        tokens::list, tokens::create, tokens::revoke,
    ),
    components(schemas(
        ErrorBody, User, UserState, PasswordView, Scope, Activity, Revocation, Event, EventKind,
        passwords::StatusFilter,
    )),
    modifiers(&BearerAuth, &CommonErrors),
    security(("bearer" = [])),
    tags(
        (name = "users"), (name = "passwords"), (name = "events"), (name = "system"),
        (name = "admin-tokens", description = "Local callers only (socket, CLI): a token cannot manage tokens."),
    ),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Answers every operation can give: no or a bad token (TCP listener),
/// and a store that cannot be reached.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = |description: &str| {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            ResponseBuilder::new().description(description).content("application/json", content).build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete, &mut item.put];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses
                    .entry("401".into())
                    .or_insert_with(|| error("No valid bearer token (TCP admin listener only)").into());
                responses.entry("503".into()).or_insert_with(|| error("The store cannot be reached").into());
            }
        }
    }
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut text = doc.to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
