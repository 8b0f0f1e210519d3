//! Who is calling: a bearer token, a UI session cookie, or nobody (auth off, loopback only).
//!
//! Tokens are looked up by the sha256 of the secret. A session cookie stands for the token that
//! logged in (revoking the token ends the session). Requests that change something and arrive with
//! a cookie must carry the session's CSRF token in `X-CSRF-Token` and, when the browser sends an
//! `Origin`, come from our own host; the cookie is also `SameSite=Strict`, so another site can
//! neither send it nor read the CSRF token. Bearer requests need neither: browsers never add them.
//!
//! Roles are ordered (viewer < operator < admin). A token with a `dir` prefix sees only workflows at
//! or below it; anything outside is answered 404, exactly as if it did not exist.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::store::{dir_in_scope, normalize_dir_prefix, TokenRole, TokenRow};
use crate::token::hash_secret;

pub(crate) const SESSION_COOKIE: &str = "akkaflow_session";
/// How long a UI login lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Auth is off: everyone is an admin.
    Open,
    Bearer,
    Session,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub name: String,
    pub role: TokenRole,
    pub dir: Option<String>,
    pub via: Via,
    /// The session's CSRF token (UI sessions only), for forms and scripts on our pages.
    pub csrf: Option<String>,
    /// The sha256 of the bearer secret or of the session cookie, so a long-lived stream can check
    /// that it still holds ([`still_valid`]).
    pub credential_hash: Option<String>,
    /// Definitions directories whose last rescan failed: the UI's banner (filled for UI pages only).
    pub definitions: Vec<crate::sync::DefinitionsProblem>,
}

impl Caller {
    fn from_token(t: TokenRow, via: Via, csrf: Option<String>, hash: String) -> Caller {
        Caller {
            name: t.name,
            role: t.role,
            dir: normalize_dir_prefix(t.dir_prefix.as_deref()),
            via,
            csrf,
            credential_hash: Some(hash),
            definitions: Vec::new(),
        }
    }

    pub fn open() -> Caller {
        Caller {
            name: "anonymous".into(),
            role: TokenRole::Admin,
            dir: None,
            via: Via::Open,
            csrf: None,
            credential_hash: None,
            definitions: Vec::new(),
        }
    }

    /// The `actor` of the event rows this caller's changes write.
    pub fn actor(&self) -> String {
        format!("api:{}", self.name)
    }

    pub fn can(&self, role: TokenRole) -> bool {
        self.role >= role
    }

    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: TokenRole) -> ApiResult<()> {
        if self.can(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {role} role; token `{}` is {}",
                self.name, self.role
            )))
        }
    }

    /// Whether a workflow in `dir` is visible to this caller.
    pub fn sees(&self, dir: &str) -> bool {
        dir_in_scope(dir, self.dir.as_deref())
    }

    /// The dir prefix a listing uses: the narrower of `requested` and the caller's scope;
    /// `None` when they do not overlap (the listing is empty).
    pub fn narrow(&self, requested: Option<&str>) -> Option<Option<String>> {
        let requested = normalize_dir_prefix(requested);
        match (&self.dir, requested) {
            (None, r) => Some(r),
            (Some(s), None) => Some(Some(s.clone())),
            (Some(s), Some(r)) if dir_in_scope(&r, Some(s)) => Some(Some(r)),
            (Some(s), Some(r)) if dir_in_scope(s, Some(&r)) => Some(Some(s.clone())),
            _ => None,
        }
    }
}

pub(super) fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| secret.trim())
}

/// The value of our session cookie, if the request has one.
pub(crate) fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Refuses a browser request whose `Origin` is another site (absent `Origin` passes: non-browser
/// clients and same-origin GETs send none). Our own origin is the request's `Host`, or one of the
/// server's names (a `public_url` behind a proxy that rewrites `Host`).
pub(crate) fn same_origin(state: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<()> {
    if headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| state.origins.origin_ok(o))
    {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, h)| h.trim_end_matches('/'))
        .unwrap_or("");
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "cross_origin",
            format!("cross-site request from `{origin}` refused"),
        ))
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Resolves the caller of a request, or 401.
pub(crate) async fn authenticate(state: &AppState, parts: &Parts) -> ApiResult<Caller> {
    if !state.auth {
        return Ok(Caller::open());
    }
    let store = &state.engine.store;
    if let Some(secret) = bearer(parts) {
        let hash = hash_secret(secret);
        return match store.token_get_by_hash(&hash).await? {
            Some(t) => Ok(Caller::from_token(t, Via::Bearer, None, hash)),
            None => Err(ApiError::unauthorized("unknown or revoked token")),
        };
    }
    if let Some(cookie) = session_cookie(&parts.headers) {
        let hash = hash_secret(&cookie);
        let Some(session) = store.session_get(&hash).await? else {
            return Err(ApiError::unauthorized(
                "your session has expired or its token was revoked: log in again",
            ));
        };
        if !is_safe(&parts.method) {
            same_origin(state, &parts.headers)?;
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if sent != session.csrf {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "csrf",
                    "missing or wrong X-CSRF-Token for this session",
                ));
            }
        }
        return Ok(Caller::from_token(
            session.token,
            Via::Session,
            Some(session.csrf),
            hash,
        ));
    }
    Err(ApiError::unauthorized(
        "missing credentials: send `Authorization: Bearer <token>` (create one with `akkaflow token create`)",
    ))
}

/// Whether the caller's credential still holds: its token not revoked, its session not ended
/// (always, with auth off). Long-lived streams ask this periodically.
pub(crate) async fn still_valid(state: &AppState, caller: &Caller) -> ApiResult<bool> {
    let store = &state.engine.store;
    Ok(match (caller.via, &caller.credential_hash) {
        (Via::Open, _) | (_, None) => true,
        (Via::Bearer, Some(h)) => store.token_get_by_hash(h).await?.is_some(),
        (Via::Session, Some(h)) => store.session_get(h).await?.is_some(),
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Caller> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let caller = authenticate(state, parts).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoped(dir: Option<&str>) -> Caller {
        Caller {
            dir: dir.map(str::to_string),
            ..Caller::open()
        }
    }

    #[test]
    fn listings_narrow_to_the_overlap_of_request_and_scope() {
        let dw = scoped(Some("/dw"));
        assert_eq!(dw.narrow(None), Some(Some("/dw".into())));
        assert_eq!(dw.narrow(Some("/dw/ods")), Some(Some("/dw/ods".into())));
        assert_eq!(dw.narrow(Some("/")), Some(Some("/dw".into())));
        assert_eq!(dw.narrow(Some("/other")), None);
        assert_eq!(scoped(None).narrow(Some("/x/")), Some(Some("/x".into())));
        assert!(dw.sees("/dw/ods") && !dw.sees("/dwh"));
    }
}
