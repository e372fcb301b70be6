//! Admin bearer tokens: `dgt_<id>_<secret>`, 256 random bits, stored as a
//! BLAKE3 hash and shown once. The id finds the record; the whole token is
//! compared by hash in constant time. A token never reaches a log: only
//! its id and name do.

use crate::secret::Secret;
use crate::store::model::{AdminToken, unix_now};
use crate::store::{Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

const PREFIX: &str = "dgt_";
const ID_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ID_LEN: usize = 10;
const MAX_NAME_CHARS: usize = 64;

/// A token as listed: never the token or its hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created: u64,
}

impl From<&AdminToken> for TokenView {
    fn from(t: &AdminToken) -> Self {
        Self { id: t.id.clone(), name: t.name.clone(), created: t.created }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Splits `dgt_<id>_<secret>`; `None` for anything else.
fn id_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == ID_LEN && !secret.is_empty()).then_some(id)
}

/// A fresh id and token (the thread RNG must not live across an await).
fn generate() -> (String, Secret<String>) {
    let mut rng = rand::rng();
    let id: String = (0..ID_LEN).map(|_| ID_CHARS[rng.random_range(0..ID_CHARS.len())] as char).collect();
    let mut secret: [u8; 32] = rng.random();
    let token = Secret::new(format!("{PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret)));
    zeroize::Zeroize::zeroize(&mut secret);
    (id, token)
}

pub async fn create(store: &dyn Store, name: &str) -> Result<(TokenView, Secret<String>), TokenError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(TokenError::Invalid(format!("name: 1 to {MAX_NAME_CHARS} characters, no control characters")));
    }
    loop {
        let (id, token) = generate();
        let record =
            AdminToken { id, name: name.to_string(), hash: Secret::new(hash(token.expose())), created: unix_now() };
        match store.insert_admin_token(&record).await {
            Err(StoreError::Conflict) => continue,
            other => other?,
        }
        return Ok((TokenView::from(&record), token));
    }
}

pub async fn list(store: &dyn Store) -> Result<Vec<TokenView>, StoreError> {
    let mut tokens: Vec<TokenView> = store.list_admin_tokens().await?.iter().map(TokenView::from).collect();
    tokens.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    Ok(tokens)
}

/// Removes a token; `None` when there is none with that id.
pub async fn revoke(store: &dyn Store, id: &str) -> Result<Option<TokenView>, StoreError> {
    let Some(record) = store.list_admin_tokens().await?.into_iter().find(|t| t.id == id) else {
        return Ok(None);
    };
    store.remove_admin_token(id).await?;
    Ok(Some(TokenView::from(&record)))
}

/// The token's record when `presented` is a live token.
pub async fn verify(store: &dyn Store, presented: &str) -> Result<Option<TokenView>, StoreError> {
    let Some(id) = id_of(presented) else { return Ok(None) };
    let Some(record) = store.list_admin_tokens().await?.into_iter().find(|t| t.id == id) else {
        return Ok(None);
    };
    let matches: bool = hash(presented).as_bytes().ct_eq(record.hash.expose().as_bytes()).into();
    Ok(matches.then(|| TokenView::from(&record)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_have_an_id() {
        assert_eq!(id_of("dgt_abcdefghij_secret"), Some("abcdefghij"));
        for bad in ["", "dgt_", "dgt_short_x", "dgt_abcdefghij_", "xyz_abcdefghij_secret", "dgt_abcdefghij"] {
            assert_eq!(id_of(bad), None, "{bad}");
        }
    }
}
