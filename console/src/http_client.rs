//! A small HTTP/1.1 client for the identity provider's endpoints (discovery, keys, token):
//! HTTPS with the platform's roots (or a configured CA bundle), plain HTTP only when the issuer
//! is itself `http://` (a development provider on loopback); bounded in time and in what it
//! reads.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// The most an answer may be.
const MAX_BODY: usize = 1024 * 1024;
/// How long a whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why an exchange failed, in words for the log and the page.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct HttpError {
    pub url: String,
    pub reason: String,
}

/// The TLS client configuration for HTTPS endpoints: the roots of `ca_file`, or the web's.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<ClientConfig>, String> {
    let roots = match ca_file {
        Some(path) => chargemesh_kit::tls::root_store(path).map_err(|e| e.to_string())?,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Arc::new(roots)
        }
    };
    let config = ClientConfig::builder_with_provider(chargemesh_kit::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sends `method url` with `headers` and `body`; the status and the body.
pub async fn exchange(
    tls: &Arc<ClientConfig>,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(StatusCode, Bytes), HttpError> {
    let fail = |reason: String| HttpError {
        url: url.to_owned(),
        reason,
    };
    tokio::time::timeout(TIMEOUT, send(tls, method, url, headers, body))
        .await
        .map_err(|_| fail(format!("no answer within {} s", TIMEOUT.as_secs())))?
        .map_err(fail)
}

async fn send(
    tls: &Arc<ClientConfig>,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(StatusCode, Bytes), String> {
    let uri: hyper::Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
    let secure = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("neither http nor https".into()),
    };
    let host = uri.host().ok_or("no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let path = uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let mut request = Request::builder().method(method).uri(path).header(
        hyper::header::HOST,
        uri.authority().map_or(host.as_str(), |a| a.as_str()),
    );
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = if secure {
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
            .map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        round_trip(TokioIo::new(stream), request).await?
    } else {
        round_trip(TokioIo::new(tcp), request).await?
    };
    Ok(response)
}

async fn round_trip<I>(io: I, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driving = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driving.abort();
    Ok((status, body))
}
