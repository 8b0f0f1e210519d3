//! The HTTP role: the REST API under `/api/v1`, the original akkaflow's routes under `/akkaflow`,
//! the OpenAPI document at `/api/openapi.json`, and the server-rendered web UI under `/ui`.
//!
//! Owns: routing, authentication and scoping, turning rows into JSON and HTML. Never writes SQL and
//! never changes run state itself: reads go through [`crate::store::Store`], every change through
//! the same [`Engine`] operation, `sync` or `token` function the CLI calls, with the actor
//! `api:<token name>`. Stateless: any number of `akkaflow http` processes may serve one database.
//!
//! ```text
//! request ─> log_failures ─> body limit ─> router ─┬─ /api/v1/*   (api/)       Caller: bearer | session+CSRF
//!                                                  ├─ /akkaflow/* (legacy.rs)  Caller: bearer only
//!                                                  ├─ /api/openapi.json (openapi.rs)
//!                                                  └─ /ui/*       (ui/)        session cookie, login page
//! ```

mod api;
mod auth;
mod dag;
mod error;
mod extract;
mod legacy;
mod metrics;
mod openapi;
pub mod origin;
mod ui;

use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// Largest request body accepted (JSON or a definition file): 1 MiB.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// How the HTTP role runs, resolved from the flags.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Whether requests must authenticate; off only on a loopback address with `--no-auth`.
    pub auth: bool,
    /// The address users reach this server at (`public_url`), when it is not the listening one:
    /// its name is accepted as `Host` and `Origin`, and an https one makes the session cookie
    /// `Secure`.
    pub public_url: Option<origin::PublicUrl>,
    /// Whether `GET /metrics` answers without a token (`--metrics-public`).
    pub metrics_public: bool,
}

impl HttpConfig {
    /// Parses the address and applies the rule: auth is on unless `--no-auth` is given, and
    /// `--no-auth` is refused on anything but a loopback address.
    pub fn resolve(listen: &str, no_auth: bool, public_url: Option<&str>) -> Result<HttpConfig> {
        let addr: SocketAddr = listen.parse().map_err(|_| {
            Error::Config(format!(
                "bad --listen address `{listen}`: expected IP:PORT, e.g. 127.0.0.1:8090"
            ))
        })?;
        if no_auth && !addr.ip().is_loopback() {
            return Err(Error::Config(format!(
                "--no-auth is allowed only on a loopback address, not {addr}: create a token with \
                 `akkaflow token create` and drop --no-auth"
            )));
        }
        Ok(HttpConfig {
            listen: addr,
            auth: !no_auth,
            public_url: public_url.map(origin::parse_public_url).transpose()?,
            metrics_public: false,
        })
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Engine,
    pub auth: bool,
    /// Cancelled at shutdown: long-lived streams (log follow) end with it.
    pub stop: CancellationToken,
    /// The names this server answers to (checked when auth is off) and its own origins.
    pub origins: std::sync::Arc<origin::Origins>,
    /// Whether the session cookie gets `Secure` (an https `public_url`).
    pub secure_cookie: bool,
    /// `GET /metrics` without a token.
    pub metrics_public: bool,
}

/// Binds the listening socket (so a taken port fails at start, with its address in the message).
pub async fn bind(cfg: &HttpConfig) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| Error::Io {
            context: format!("listening on {}", cfg.listen),
            source: e,
        })
}

/// Binds and serves until `stop` is cancelled.
pub async fn serve(engine: Engine, cfg: HttpConfig, stop: CancellationToken) -> Result<()> {
    let listener = bind(&cfg).await?;
    serve_on(engine, cfg, listener, stop).await
}

/// Serves on an already bound listener until `stop` is cancelled.
pub async fn serve_on(
    engine: Engine,
    cfg: HttpConfig,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> Result<()> {
    let bound = listener.local_addr().unwrap_or(cfg.listen);
    let addr = bound.to_string();
    if cfg.auth {
        let tokens = engine.store.token_list().await?;
        if tokens.iter().all(|t| t.revoked_at.is_some()) {
            tracing::warn!(
                "no API token exists yet: create one with `{}` and log in with its secret",
                crate::token::FIRST_TOKEN_COMMAND
            );
        }
        tracing::info!(listen = %addr, "http: serving /api/v1, /akkaflow and the UI at http://{addr}/ui/ (auth on)");
    } else {
        tracing::warn!(listen = %addr, "http: serving at http://{addr}/ui/ with auth OFF (--no-auth on a loopback address): every request acts as an admin");
    }
    let state = AppState {
        engine,
        auth: cfg.auth,
        stop: stop.clone(),
        origins: std::sync::Arc::new(origin::Origins::new(bound, cfg.public_url.as_ref())),
        secure_cookie: cfg.public_url.as_ref().is_some_and(|u| u.https),
        metrics_public: cfg.metrics_public,
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .map_err(|e| Error::Io {
            context: format!("serving HTTP on {addr}"),
            source: e,
        })
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/api/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1", api::routes())
        .nest("/akkaflow", legacy::routes())
        // `/ui/` itself: a nested router's "/" only matches `/ui`
        .route("/ui/", get(ui::dashboard))
        .nest("/ui", ui::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(refuse_oversized))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            origin::guard,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(log_failures))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error::ApiError::not_found(format!("no route {}", uri.path())).into_response()
}

/// Refuses a body whose announced length is over the limit before reading any of it (a body
/// without a length is cut off by `DefaultBodyLimit` as it streams in).
async fn refuse_oversized(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > BODY_LIMIT as u64) {
        return error::ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body over the limit of {BODY_LIMIT} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

/// What a browser may do with our pages: scripts and styles from this server only (inline `style`
/// attributes are used by the pages; no inline script is), no framing (clickjacking a Kill
/// button), no type sniffing, and no URL (with instance ids and names) leaked to other sites.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Adds the browser-hardening headers to every response (JSON included: it costs nothing and an
/// API answer opened in a tab is then treated the same way).
async fn security_headers(req: Request, next: Next) -> Response {
    use axum::http::{header, HeaderValue};
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// Logs each 5xx once, with the cause its handler attached; clients only see a bare message.
async fn log_failures(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    if resp.status().is_server_error() {
        let cause = resp
            .extensions()
            .get::<error::InternalCause>()
            .map(|c| c.0.as_str())
            .unwrap_or("-");
        tracing::error!(%method, %path, status = resp.status().as_u16(), cause, "request failed");
    }
    resp
}
