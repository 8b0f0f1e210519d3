//! The web UI: server-rendered HTML (maud), one stylesheet and one small script embedded in the
//! binary, no build step. Pages read through the same functions as the JSON API; buttons POST to
//! `/api/v1` with the session's CSRF token, so the UI can do nothing the API would refuse.
//!
//! Login exchanges a token for a session cookie (`HttpOnly; SameSite=Strict`; the secret itself is
//! never stored in the browser). A page without a valid session redirects to the login page.

mod backfill;
mod editor;
mod fleet;
mod pages;
pub(crate) mod svg;
mod versions;

pub(crate) use pages::dashboard;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use super::api::editor as api_editor;
use super::auth::{self, Caller, SESSION_COOKIE, SESSION_TTL};
use super::error::{ApiError, InternalCause};
use super::AppState;
use crate::store::NewSession;
use crate::token::{hash_secret, random_hex};

const CSS: &str = include_str!("app.css");
const JS: &str = include_str!("app.js");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/workflows", get(pages::workflows))
        .route("/workflows/{name}", get(pages::workflow))
        .route("/workflows/{name}/diff", get(versions::diff_page))
        .route("/instances", get(pages::instances))
        .route("/instances/{id}", get(pages::instance))
        .route("/cluster", get(fleet::cluster))
        .route("/editor", get(editor::new_workflow))
        .route("/editor/{name}", get(editor::edit_workflow))
        // the editor's JSON endpoints: the UI's own, outside the documented /api/v1
        .route("/editor/api/workflows/{name}", get(api_editor::open))
        .route("/editor/api/layout", post(api_editor::layout))
        .route("/editor/api/check", post(api_editor::check))
        .route("/editor/api/save", post(api_editor::save))
        .route("/editor/api/cron", get(api_editor::cron))
        .route("/assets/editor.js", get(editor::script))
        .route("/assets/editor.css", get(editor::style))
        .route("/alerts", get(fleet::alerts))
        .route("/pools", get(fleet::pools))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Characters left as they are in a path segment: RFC 3986 unreserved. Everything else, `/ ? # %`
/// and `.` runs included, is percent-encoded, so a name can never change which route a link or a
/// button reaches.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// One URL path segment built from a name (a workflow, a node): percent-encoded.
pub(crate) fn seg(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

/// A page's caller; without a session, the page redirects to the login page.
pub(crate) struct UiCaller(pub Caller);

/// What a page returns when it cannot render.
pub(crate) enum UiError {
    Login,
    Api(ApiError),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError::Api(e)
    }
}

impl From<crate::store::StoreError> for UiError {
    fn from(e: crate::store::StoreError) -> Self {
        UiError::Api(e.into())
    }
}

impl From<crate::Error> for UiError {
    fn from(e: crate::Error) -> Self {
        UiError::Api(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::Login => Redirect::to("/ui/login").into_response(),
            UiError::Api(e) => {
                let status = e.status;
                let title = status.canonical_reason().unwrap_or("Error").to_string();
                let cause = e
                    .details
                    .as_ref()
                    .and_then(|d| d.as_str().map(str::to_string));
                let message = if status.is_server_error() {
                    "Something went wrong on the server; its log has the cause.".to_string()
                } else {
                    e.message.clone()
                };
                let body = html! {
                    div.card style="max-width:640px" {
                        div.body {
                            h2 style="margin:4px 0 8px" { (status.as_u16()) " · " (title) }
                            p.muted { (message) }
                            a.btn href="/ui/" { "Back to the dashboard" }
                        }
                    }
                };
                let mut resp = (status, bare_page(&title, body)).into_response();
                if let (true, Some(c)) = (status.is_server_error(), cause) {
                    // logged once, by the log_failures middleware
                    resp.extensions_mut().insert(InternalCause(c));
                }
                resp
            }
        }
    }
}

pub(crate) type UiResult = Result<Markup, UiError>;

impl FromRequestParts<AppState> for UiCaller {
    type Rejection = UiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, UiError> {
        match Caller::from_request_parts(parts, state).await {
            Ok(mut c) => {
                // every page shows a failing definitions directory; a lost read only loses the banner
                c.definitions = crate::sync::definition_problems(&*state.engine.store)
                    .await
                    .unwrap_or_default();
                if c.dir.is_some() {
                    c.definitions.iter_mut().for_each(|d| d.errors.clear());
                }
                Ok(UiCaller(c))
            }
            Err(e) if e.status == StatusCode::UNAUTHORIZED => Err(UiError::Login),
            Err(e) => Err(UiError::Api(e)),
        }
    }
}

/// Which sidebar entry is lit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Dashboard,
    Workflows,
    Instances,
    Cluster,
    Alerts,
    Pools,
}

const LOGO: &str = r##"<svg viewBox="0 0 32 32" width="28" height="28"><defs><linearGradient id="lg" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#6366f1"/><stop offset="1" stop-color="#22d3ee"/></linearGradient></defs><rect width="32" height="32" rx="8" fill="url(#lg)"/><circle cx="9" cy="16" r="3" fill="#fff"/><circle cx="23" cy="9" r="3" fill="#fff"/><circle cx="23" cy="23" r="3" fill="#fff"/><path d="M12 15l8-5M12 17l8 5" stroke="#fff" stroke-width="2"/></svg>"##;

const ICON_DASH: &str = r#"<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><rect x="3" y="3" width="7" height="9" rx="1.5"/><rect x="14" y="3" width="7" height="5" rx="1.5"/><rect x="14" y="12" width="7" height="9" rx="1.5"/><rect x="3" y="16" width="7" height="5" rx="1.5"/></svg>"#;
const ICON_FLOW: &str = r#"<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><circle cx="5" cy="6" r="2.5"/><circle cx="5" cy="18" r="2.5"/><circle cx="19" cy="12" r="2.5"/><path d="M7.5 6h4a3 3 0 0 1 3 3v0M7.5 18h4a3 3 0 0 0 3-3v0M14.5 12h2"/></svg>"#;
const ICON_RUNS: &str = r#"<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M4 6h16M4 12h16M4 18h10"/></svg>"#;
const ICON_BELL: &str = r#"<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M6 16V11a6 6 0 0 1 12 0v5l2 2H4z"/><path d="M10 20a2 2 0 0 0 4 0"/></svg>"#;
const ICON_POOL: &str = r#"<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><ellipse cx="12" cy="6" rx="8" ry="3"/><path d="M4 6v6c0 1.7 3.6 3 8 3s8-1.3 8-3V6M4 12v6c0 1.7 3.6 3 8 3s8-1.3 8-3v-6"/></svg>"#;
const ICON_CLUSTER: &str = r#"<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><rect x="3" y="4" width="18" height="6" rx="1.5"/><rect x="3" y="14" width="18" height="6" rx="1.5"/><path d="M7 7h.01M7 17h.01"/></svg>"#;

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · akkaflow" }
        link rel="stylesheet" href="/ui/assets/app.css";
        link rel="icon" href="data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'><rect width='32' height='32' rx='8' fill='%234f46e5'/><path d='M9 22l7-12 7 12' stroke='white' stroke-width='3' fill='none'/></svg>";
    }
}

/// A page with the sidebar.
pub(crate) fn page(caller: &Caller, nav: Nav, title: &str, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, icon: &str, label: &str| {
        html! {
            a class=(if n == nav { "on" } else { "" }) href=(href) { (PreEscaped(icon.to_string())) (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head(title))
                @if let Some(csrf) = &caller.csrf { meta name="csrf" content=(csrf); }
            }
            body {
                aside.side {
                    div.brand { (PreEscaped(LOGO)) "akkaflow" }
                    nav.nav {
                        (item(Nav::Dashboard, "/ui/", ICON_DASH, "Dashboard"))
                        (item(Nav::Workflows, "/ui/workflows", ICON_FLOW, "Workflows"))
                        (item(Nav::Instances, "/ui/instances", ICON_RUNS, "Instances"))
                        (item(Nav::Cluster, "/ui/cluster", ICON_CLUSTER, "Cluster"))
                        (item(Nav::Alerts, "/ui/alerts", ICON_BELL, "Alerts"))
                        (item(Nav::Pools, "/ui/pools", ICON_POOL, "Pools"))
                    }
                    div.who {
                        b { (caller.name) }
                        (caller.role) @if let Some(d) = &caller.dir { " · " (d) }
                        @if caller.via == auth::Via::Session {
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(caller.csrf.clone().unwrap_or_default());
                                button type="submit" { "Log out" }
                            }
                        } @else if caller.via == auth::Via::Open {
                            div.muted { "auth off (loopback)" }
                        }
                    }
                }
                main {
                    @for d in &caller.definitions {
                        div.banner role="alert" {
                            b { (d.summary) } " " span.muted { "(" (d.source) ")" }
                            @if !d.errors.is_empty() {
                                ul { @for e in &d.errors { li.mono { (e) } } }
                            }
                            @if d.error_count > d.errors.len() as i64 && !d.errors.is_empty() {
                                div { "… and " (d.error_count - d.errors.len() as i64) " more" }
                            }
                            div { (crate::sync::HELD_BACK) }
                        }
                    }
                    (body)
                }
                div #toast .toast {}
                script src="/ui/assets/app.js" {}
            }
        }
    }
}

fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body style="align-items:center;justify-content:center;padding:24px" { (body) }
        }
    }
}

fn login_form(message: Option<&str>) -> Markup {
    bare_page(
        "Log in",
        html! {
            div.login {
                div.brand style="color:var(--ink);justify-content:center;padding-bottom:18px" { (PreEscaped(LOGO)) "akkaflow" }
                div.card {
                    h1 { "Log in" }
                    p { "Paste an API token. Create one with " code { (crate::token::FIRST_TOKEN_COMMAND) } " (it prints the secret once)." }
                    @if let Some(m) = message { div.msg { (m) } }
                    form method="post" action="/ui/login" {
                        label for="token" { b { "Token" } }
                        input #token type="password" name="token" autocomplete="off" autofocus placeholder="akf_…";
                        button.btn.primary type="submit" { "Log in" }
                    }
                }
            }
        },
    )
}

async fn login_page(State(state): State<AppState>) -> Response {
    if !state.auth {
        return Redirect::to("/ui/").into_response();
    }
    login_form(None).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// The session cookie; `Secure` when users reach us over https (`public_url`), so it never
/// travels in clear text.
fn cookie(state: &AppState, value: &str, max_age: u64) -> String {
    let secure = if state.secure_cookie { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, UiError> {
    auth::same_origin(&state, &headers)?;
    let store = &state.engine.store;
    let Some(token) = store
        .token_get_by_hash(&hash_secret(form.token.trim()))
        .await?
    else {
        return Ok((
            StatusCode::UNAUTHORIZED,
            login_form(Some("Unknown or revoked token.")),
        )
            .into_response());
    };
    let id = random_hex(32);
    store
        .session_create(&NewSession {
            id_hash: hash_secret(&id),
            token_id: token.id,
            csrf: random_hex(16),
            ttl: SESSION_TTL,
        })
        .await?;
    Ok((
        [(
            header::SET_COOKIE,
            cookie(&state, &id, SESSION_TTL.as_secs()),
        )],
        Redirect::to("/ui/"),
    )
        .into_response())
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Result<Response, UiError> {
    auth::same_origin(&state, &headers)?;
    if let Some(id) = auth::session_cookie(&headers) {
        let hash = hash_secret(&id);
        // only the session's own page can log it out (its CSRF token is on that page)
        if let Some(s) = state.engine.store.session_get(&hash).await? {
            if s.csrf == form.csrf {
                state.engine.store.session_delete(&hash).await?;
            }
        }
    }
    Ok((
        [(header::SET_COOKIE, cookie(&state, "", 0))],
        Redirect::to("/ui/login"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_in_links_are_one_encoded_segment() {
        assert_eq!(super::seg("daily_etl-2"), "daily_etl-2");
        assert_eq!(
            super::seg("../instances/4/kill?x="),
            "%2E%2E%2Finstances%2F4%2Fkill%3Fx%3D"
        );
        assert_eq!(super::seg("a#b c"), "a%23b%20c");
        assert_eq!(super::seg("日报"), "%E6%97%A5%E6%8A%A5");
    }
}
