//! Extractors that turn malformed requests into our error shape instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body that must be present.
pub(crate) struct ApiJson<T>(pub T);

/// A JSON body that may be left out (empty body = defaults).
pub(crate) struct OptJson<T>(pub T);

/// Query parameters.
pub(crate) struct ApiQuery<T>(pub T);

/// Path parameters.
pub(crate) struct ApiPath<T>(pub T);

/// A definition file: UTF-8 XML sent as `application/xml` or `text/xml`, within the body limit.
/// Other types are refused: `text/plain` and form bodies are what another website can make a
/// browser send without asking, and a definition runs commands.
pub(crate) struct XmlBody(pub String);

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<(bool, Bytes), ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let v = v.to_ascii_lowercase();
            v.starts_with("application/json") || v.contains("+json")
        });
    let bytes = Bytes::from_request(req, state).await.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "payload_too_large", "request body over the limit")
        } else {
            ApiError::new(status, "bad_body", r.body_text())
        }
    })?;
    // no Content-Type is accepted as JSON (curl -d sends form type, which we refuse)
    Ok((is_json.unwrap_or(true), bytes))
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("bad JSON body: {e}"),
        )
    })
}

fn unsupported() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as application/json",
    )
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (is_json, bytes) = body_bytes(req, state).await?;
        if !is_json {
            return Err(unsupported());
        }
        Ok(ApiJson(parse(&bytes)?))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (is_json, bytes) = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptJson(T::default()));
        }
        if !is_json {
            return Err(unsupported());
        }
        Ok(OptJson(parse(&bytes)?))
    }
}

/// Whether a `Content-Type` names XML: `application/xml`, `text/xml`, `application/*+xml`.
fn is_xml(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/xml"
        || essence == "text/xml"
        || (essence.starts_with("application/") && essence.ends_with("+xml"))
}

impl<S: Send + Sync> FromRequest<S> for XmlBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let xml = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_xml);
        if !xml {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the definition as Content-Type: application/xml (or text/xml)",
            ));
        }
        let (_, bytes) = body_bytes(req, state).await?;
        String::from_utf8(bytes.to_vec()).map(XmlBody).map_err(|_| {
            ApiError::bad_request("the body is not UTF-8 text: save the file as UTF-8")
        })
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(ApiError::from)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(ApiError::from)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_xml_types_carry_definitions() {
        for ok in [
            "application/xml",
            "text/xml; charset=utf-8",
            "Application/XML",
            "application/atom+xml",
        ] {
            assert!(super::is_xml(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "",
            "text/xmlx",
            "application/json",
        ] {
            assert!(!super::is_xml(bad), "{bad}");
        }
    }
}
