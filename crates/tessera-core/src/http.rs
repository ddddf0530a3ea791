//! The one HTTP client of the core. Invariants it keeps for every request to a provider:
//! - only `https`, or plain `http` to a loopback address (RFC 8252 §8.3 for local providers);
//! - redirects are never followed (the token endpoint must not be bounced elsewhere);
//! - connect timeout 10 s, total 30 s (configurable for tests);
//! - bodies over 1 MiB are refused, and anything but JSON is refused where JSON is expected.
//!
//! The client is injected into the core so tests can shorten timeouts.

use std::net::IpAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, Result};

/// The largest response body the core reads.
pub const MAX_BODY: usize = 1024 * 1024;

/// Timeouts for [`HttpClient`].
#[derive(Debug, Clone, Copy)]
pub struct HttpConfig {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
        }
    }
}

/// A response that passed the size check.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub headers: http::HeaderMap,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    pub fn new(config: HttpConfig) -> Result<Self> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.total_timeout)
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Network {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(HttpClient { inner })
    }

    /// Sends a request (already checked by [`ensure_allowed`]) and reads at most [`MAX_BODY`].
    pub async fn send(&self, request: http::Request<Vec<u8>>) -> Result<Response> {
        let url = Url::parse(&request.uri().to_string())
            .map_err(|e| Error::InvalidConfig(format!("bad URL {}: {e}", request.uri())))?;
        ensure_allowed(&url)?;
        let shown = display_url(&url);
        let (parts, body) = request.into_parts();
        let mut builder = self
            .inner
            .request(parts.method, url.clone())
            .headers(parts.headers);
        if !body.is_empty() {
            builder = builder.body(body);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| transport_error(&shown, &e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(Error::ResponseTooLarge { url: shown });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(&shown, &e))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Error::ResponseTooLarge { url: shown });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            content_type,
            body,
            headers,
        })
    }

    /// Sends a request whose answer must be JSON (of any status); non-JSON answers become
    /// [`Error::HttpStatus`] (for error statuses, with a short excerpt) or
    /// [`Error::UnexpectedContentType`].
    pub async fn send_expecting_json(&self, request: http::Request<Vec<u8>>) -> Result<Response> {
        let url = request.uri().to_string();
        let response = self.send(request).await?;
        if is_json(&response.content_type) {
            return Ok(response);
        }
        if response.status >= 300 {
            return Err(Error::HttpStatus {
                url: strip_query(&url),
                status: response.status,
                snippet: excerpt(&response.body),
            });
        }
        Err(Error::UnexpectedContentType {
            url: strip_query(&url),
            content_type: response.content_type,
        })
    }

    /// GETs a JSON document and parses it into `T`. Any non-2xx status is an error.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T> {
        let request = http::Request::get(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let response = self.send_expecting_json(request).await?;
        if !(200..300).contains(&response.status) {
            return Err(oauth_error_or_status(url.as_str(), &response));
        }
        parse_json(url.as_str(), &response.body)
    }
}

/// Parses a JSON body, naming the URL on failure.
pub fn parse_json<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::MalformedResponse {
        url: strip_query(url),
        reason: e.to_string(),
    })
}

/// Turns an error response into the provider's OAuth error when it sent one, or a status error.
pub fn oauth_error_or_status(url: &str, response: &Response) -> Error {
    #[derive(serde::Deserialize)]
    struct OAuthError {
        error: String,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthError>(&response.body) {
        Ok(e) => Error::Provider {
            error: e.error,
            description: e.error_description,
        },
        Err(_) => Error::HttpStatus {
            url: strip_query(url),
            status: response.status,
            snippet: excerpt(&response.body),
        },
    }
}

/// Refuses any URL that is not https or loopback http.
pub fn ensure_allowed(url: &Url) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(Error::InsecureUrl(display_url(url))),
    }
}

/// Whether the URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

fn display_url(url: &Url) -> String {
    strip_query(url.as_str())
}

pub(crate) fn strip_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_string()
}

fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    let mut cut: String = text.chars().take(120).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    Some(cut)
}

fn transport_error(url: &str, err: &reqwest::Error) -> Error {
    if err.is_timeout() {
        return Error::HttpTimeout {
            url: url.to_string(),
        };
    }
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    Error::Network {
        url: url.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        let ok = [
            "https://idp.example.com/x",
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://[::1]:9/",
        ];
        for u in ok {
            assert!(ensure_allowed(&Url::parse(u).unwrap()).is_ok(), "{u}");
        }
        let bad = [
            "http://idp.example.com/",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
        ];
        for u in bad {
            assert_eq!(
                ensure_allowed(&Url::parse(u).unwrap()).unwrap_err().code(),
                "insecure_url",
                "{u}"
            );
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/jwk-set+json"));
        assert!(!is_json("text/html"));
        assert!(!is_json(""));
    }
}
