//! API tokens: creation (a random secret shown once, stored only as its sha256), revocation, and
//! the scope rules every HTTP request is checked against.
//!
//! Used by `akkaflow token ...` and by the HTTP API's `/api/v1/tokens`, so both write the same rows
//! and the same `event` rows. Never logs or stores a secret.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::{normalize_dir_prefix, NewEvent, NewToken, Store, TokenRole, TokenRow};

/// The whole command a new user runs to get in: the login page, the server's start message and the
/// README all quote it, so they cannot drift apart (a test runs it).
pub const FIRST_TOKEN_COMMAND: &str = "akkaflow token create --name admin --role admin";

/// What the caller shows once: the stored row and the secret itself.
#[derive(Clone, Debug)]
pub struct CreatedToken {
    pub token: TokenRow,
    pub secret: String,
}

/// The sha256 (hex) under which a secret is stored.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// `n` bytes from the operating system's CSPRNG, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).expect("the operating system's random source is available");
    hex(&buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a token name: 1..=64 characters of letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::refused(format!(
            "bad token name `{name}`: use 1 to 64 letters, digits, `.`, `_` or `-`"
        )))
    }
}

/// A token's dir prefix: absolute, with no empty, `.` or `..` segment. Scopes compare as text, so
/// `/a/../b` would be a scope that is neither `/a` nor `/b`: it is refused, not normalised.
pub fn check_dir(d: &str) -> Result<()> {
    let bad = |why: &str| Error::refused(format!("bad dir prefix `{d}`: {why}"));
    if !d.starts_with('/') {
        return Err(bad("it starts with `/`, like the workflows' dir attribute"));
    }
    let body = d.trim_end_matches('/');
    if body
        .split('/')
        .skip(1)
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(bad(
            "no empty, `.` or `..` segment (write the dir as it is, e.g. /dw/ods)",
        ));
    }
    Ok(())
}

/// Creates a token; the name must be new (a revoked token keeps its name, so history stays readable).
pub async fn create(
    store: &Arc<dyn Store>,
    name: &str,
    role: TokenRole,
    dir_prefix: Option<&str>,
    actor: &str,
) -> Result<CreatedToken> {
    check_name(name)?;
    if let Some(d) = dir_prefix {
        check_dir(d)?;
    }
    let dir_prefix = normalize_dir_prefix(dir_prefix);
    let secret = format!("akf_{}", random_hex(32));
    let mut tx = store.begin().await?;
    let token = tx
        .token_create(&NewToken {
            name: name.to_string(),
            role,
            dir_prefix: dir_prefix.clone(),
            secret_hash: hash_secret(&secret),
            created_by: actor.to_string(),
        })
        .await?
        .ok_or_else(|| {
            Error::refused(format!(
                "a token named `{name}` already exists (revoked tokens keep their name)"
            ))
        })?;
    tx.event_insert_many(&[NewEvent {
        kind: "token_created",
        message: format!(
            "token `{name}` ({role}, scope {})",
            dir_prefix.as_deref().unwrap_or("/")
        ),
        actor: actor.to_string(),
        ..Default::default()
    }])
    .await?;
    tx.commit().await?;
    Ok(CreatedToken { token, secret })
}

/// Revokes a live token; its sessions end with it.
pub async fn revoke(store: &Arc<dyn Store>, name: &str, actor: &str) -> Result<()> {
    let mut tx = store.begin().await?;
    if !tx.token_revoke(name).await?.applied() {
        return Err(Error::refused(format!(
            "no live token named `{name}` (unknown or already revoked)"
        )));
    }
    tx.event_insert_many(&[NewEvent {
        kind: "token_revoked",
        message: format!("token `{name}` revoked"),
        actor: actor.to_string(),
        ..Default::default()
    }])
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hash_to_hex() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32));
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn token_names_are_checked() {
        assert!(check_name("ci-deploy_1.x").is_ok());
        for bad in ["", "has space", "slash/", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
