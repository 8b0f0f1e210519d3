//! Typed HTTP errors: every failure leaves as `{"error": {"code", "message"}}` with a status that
//! says whose fault it is. User errors are 4xx with a message naming the thing; internal ones are a
//! bare 500 whose cause is logged once, by the `log_failures` middleware.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::definition::{Diagnostic, Severity};

/// What a failed request returns.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

/// The error body: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable code: `not_found`, `forbidden`, `invalid_definition`, ...
    pub code: String,
    pub message: String,
    /// For `invalid_definition`: the validator's diagnostics.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<DiagnosticView>>)]
    pub details: Option<serde_json::Value>,
}

/// One validator finding, with its position in the posted file.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub(crate) struct DiagnosticView {
    /// `error` or `warning`
    pub severity: String,
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub element: String,
    pub message: String,
}

impl From<&Diagnostic> for DiagnosticView {
    fn from(d: &Diagnostic) -> Self {
        DiagnosticView {
            severity: match d.severity {
                Severity::Error => "error".into(),
                Severity::Warning => "warning".into(),
            },
            file: d.file.display().to_string(),
            line: d.line,
            col: d.col,
            element: d.element.clone(),
            message: d.message.clone(),
        }
    }
}

/// The cause of a 500, carried to the logging middleware in the response's extensions.
#[derive(Clone, Debug)]
pub(crate) struct InternalCause(pub String);

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        // the message stays generic; the cause goes to the log only
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the cause",
        );
        e.details = Some(serde_json::Value::String(cause.to_string()));
        e
    }

    pub fn invalid(diags: &[Diagnostic]) -> Self {
        let errors = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let first = diags
            .iter()
            .find(|d| d.severity == Severity::Error)
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_definition",
            format!("{errors} error(s) in the definition{first}"),
        );
        let list: Vec<DiagnosticView> = diags.iter().map(DiagnosticView::from).collect();
        e.details = Some(serde_json::to_value(list).expect("diagnostics serialise"));
        e
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        use crate::Error;
        match e {
            Error::Invalid(diags) => ApiError::invalid(&diags),
            Error::Refused(m) => ApiError::conflict(m),
            Error::Conflict(m) => ApiError::new(
                StatusCode::CONFLICT,
                "concurrent_change",
                format!("concurrent change, try again: {m}"),
            ),
            Error::Store(s) if s.is_connection() => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unreachable; try again shortly",
                );
                e.details = Some(serde_json::Value::String(s.to_string()));
                e
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(crate::Error::Store(e))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "bad_json",
        };
        let status = if r.status() == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            r.status()
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_path", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let internal = self.status.is_server_error();
        let cause = if internal {
            self.details
                .as_ref()
                .and_then(|d| d.as_str().map(str::to_string))
        } else {
            None
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: if internal { None } else { self.details },
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(c) = cause {
            resp.extensions_mut().insert(InternalCause(c));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"akkaflow\""),
            );
        }
        resp
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
