//! One JSON POST over HTTP/1.1 (TLS by rustls with the webpki roots), for the chat channels.
//!
//! hyper, tokio-rustls and webpki-roots are already in the tree (axum, lettre), so a POST costs no
//! new crate. Errors never carry the URL: a robot's URL is its credential.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What the service answered.
pub(super) struct Answer {
    pub status: u16,
    pub body: String,
}

/// POSTs `body` as JSON to `url`; `Err` is a transport failure (worth retrying), described without
/// the URL.
pub(super) async fn post_json(
    url: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<Answer, String> {
    tokio::time::timeout(timeout, post(url, body.to_string()))
        .await
        .map_err(|_| format!("no answer within {}s", timeout.as_secs()))?
}

async fn post(url: &str, body: String) -> Result<Answer, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "the channel URL is not a URL".to_string())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the channel URL is neither http nor https".into()),
    };
    let host = uri
        .host()
        .ok_or("the channel URL has no host")?
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let authority = uri
        .authority()
        .map(|a| a.as_str())
        .unwrap_or("")
        .to_string();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .header(hyper::header::USER_AGENT, "akkaflow")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    if https {
        let tls = tls_connector()
            .connect(
                tokio_rustls::rustls::pki_types::ServerName::try_from(host)
                    .map_err(|_| "the channel URL's host is not a TLS name".to_string())?,
                tcp,
            )
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<IO>(io: IO, request: hyper::Request<Full<Bytes>>) -> Result<Answer, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    driver.abort();
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let roots = tokio_rustls::rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}
