//! JSON Web Tokens: decoding for display, signature verification against the provider's
//! JWKS, and the per-check verification report.
//!
//! Policy (never relaxed): `alg: none` and every HMAC algorithm are refused; the algorithm
//! must fit the key the `kid` names (an RSA key only verifies RS*/PS*, a P-256 key ES256…),
//! and must equal the key's own `alg` when the JWKS states one. Time checks allow
//! [`CLOCK_SKEW`] seconds of skew and saturate: a hostile `exp` or `nbf` near `u64::MAX` is
//! judged, never overflowed.
//!
//! The JWKS cache ([`JwksCache`]) keeps each provider's key set for its `Cache-Control:
//! max-age` (default [`JWKS_DEFAULT_MAX_AGE`], bounded by [`JWKS_REFETCH_COOL_DOWN`] and
//! [`JWKS_MAX_MAX_AGE`]), so a key the provider removed stops being trusted once that age has
//! passed. A `kid` the cached set does not know refetches the set at most once per
//! [`JWKS_REFETCH_COOL_DOWN`] per JWKS URI, and concurrent fetches of one URI are one request.
//! Its time is the caller's (`Expectations::now`), never the wall clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};
use url::Url;

use crate::error::{Error, Result};
use crate::http::HttpClient;

/// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW: u64 = 60;

/// A JWT split into its parts. Nothing in it has been verified.
#[derive(Debug, Clone)]
pub struct DecodedJwt {
    pub header: Map<String, Value>,
    pub payload: Map<String, Value>,
    signing_input: String,
    signature: String,
}

impl DecodedJwt {
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.payload.get(name).and_then(Value::as_str)
    }

    pub fn claim_u64(&self, name: &str) -> Option<u64> {
        self.payload.get(name).and_then(Value::as_u64)
    }

    /// The `aud` claim as a list (it may be a string or an array).
    pub fn audiences(&self) -> Vec<String> {
        match self.payload.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Decodes a JWT's header and payload **without verifying anything**.
///
/// # Security Warning
/// The result is for display only. Nothing here may be trusted: use [`verify`] for any
/// decision.
pub fn decode_unverified_for_display(token: &str) -> Result<DecodedJwt> {
    let what = "the token";
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() == 5 {
        return Err(Error::NotAJwt(what.into(), "it is encrypted (JWE)".into()));
    }
    if parts.len() != 3 {
        return Err(Error::NotAJwt(
            what.into(),
            "it does not have three dot-separated parts".into(),
        ));
    }
    let object = |part: &str, name: &str| -> Result<Map<String, Value>> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| Error::NotAJwt(what.into(), format!("its {name} is not base64url")))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Error::NotAJwt(
                what.into(),
                format!("its {name} is not a JSON object"),
            )),
        }
    };
    Ok(DecodedJwt {
        header: object(parts[0], "header")?,
        payload: object(parts[1], "payload")?,
        signing_input: format!("{}.{}", parts[0], parts[1]),
        signature: parts[2].to_string(),
    })
}

/// Whether a token string looks like a JWS (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    decode_unverified_for_display(token).is_ok()
}

/// The outcome of one verification check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// Not applicable to this token (e.g. no `at_hash` claim).
    Skipped,
}

/// One line of a verification report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `signature`, `iss`, `aud`, `azp`, `exp`, `nbf`, `iat`, `nonce`, `at_hash`, `typ`.
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

fn check(name: &str, status: CheckStatus, detail: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        status,
        detail: detail.into(),
    }
}

/// Which kind of token is verified (the rules differ slightly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    IdToken,
    AccessToken,
}

/// What the token must satisfy.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub kind: TokenKind,
    pub issuer: &'a str,
    /// For an ID token: the client id. For an access token: the expected audience, if known.
    pub audience: Option<&'a str>,
    pub client_id: &'a str,
    /// The nonce sent with the authorization request, if any.
    pub nonce: Option<&'a str>,
    /// The access token issued with this ID token, for `at_hash`.
    pub access_token: Option<&'a str>,
    pub now: u64,
}

/// A token's verification report.
#[derive(Debug, Clone)]
pub struct Verification {
    pub decoded: DecodedJwt,
    pub checks: Vec<Check>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Fail)
    }

    /// The first failed check as an error, for paths that must reject the token.
    pub fn into_result(self, token: &str) -> Result<DecodedJwt> {
        match self.checks.iter().find(|c| c.status == CheckStatus::Fail) {
            Some(c) => Err(Error::TokenRejected {
                token: token.to_string(),
                reason: format!("{} check failed: {}", c.name, c.detail),
            }),
            None => Ok(self.decoded),
        }
    }
}

/// How long a key set is used when the provider does not say (`Cache-Control: max-age`).
pub const JWKS_DEFAULT_MAX_AGE: u64 = 3600;

/// The longest a key set is used, whatever the provider says.
pub const JWKS_MAX_MAX_AGE: u64 = 86_400;

/// The least time between two fetches of one JWKS that an unknown `kid` causes; also the
/// shortest max age honoured.
pub const JWKS_REFETCH_COOL_DOWN: u64 = 60;

/// Key sets by JWKS URI; see the module docs for when they are fetched.
#[derive(Debug, Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<JwksEntry>>>>,
}

/// One JWKS URI. Its async lock is held across a fetch, which is what coalesces fetches.
#[derive(Debug, Default)]
struct JwksEntry {
    set: Option<JwkSet>,
    /// When `set` was fetched, and for how many seconds it may be used.
    fetched_at: u64,
    max_age: u64,
    /// When an unknown `kid` last caused a fetch.
    kid_refetched_at: Option<u64>,
}

/// Whether `now` lies in the `seconds` after `since` (a clock set back is outside).
fn within(since: u64, seconds: u64, now: u64) -> bool {
    since <= now && now < since.saturating_add(seconds)
}

impl JwksCache {
    /// Finds the key for `kid` in the provider's JWKS at time `now`, fetching the set when it
    /// is missing or expired, or (once per cool-down) when it does not know `kid`.
    async fn key(
        &self,
        http: &HttpClient,
        jwks_uri: &str,
        kid: Option<&str>,
        now: u64,
    ) -> Result<Jwk> {
        let entry = self
            .entries
            .lock()
            .map_err(|_| Error::Storage("JWKS cache poisoned".into()))?
            .entry(jwks_uri.to_string())
            .or_default()
            .clone();
        let mut entry = entry.lock().await;
        let fresh = within(entry.fetched_at, entry.max_age, now);
        if let Some(set) = entry.set.as_ref().filter(|_| fresh) {
            if let Some(key) = pick(set, kid) {
                return Ok(key);
            }
            let cooling = entry
                .kid_refetched_at
                .is_some_and(|at| within(at, JWKS_REFETCH_COOL_DOWN, now));
            if cooling {
                return Err(no_key(kid));
            }
            entry.kid_refetched_at = Some(now);
        }
        let url =
            Url::parse(jwks_uri).map_err(|e| Error::Discovery(format!("bad jwks_uri: {e}")))?;
        let (set, headers) = http.get_json_with_headers::<JwkSet>(&url).await?;
        let key = pick(&set, kid);
        (entry.fetched_at, entry.max_age) = (now, max_age(&headers));
        entry.set = Some(set);
        key.ok_or_else(|| no_key(kid))
    }
}

fn no_key(kid: Option<&str>) -> Error {
    Error::TokenRejected {
        token: "token".into(),
        reason: match kid {
            Some(k) => format!("the provider's JWKS has no key \"{k}\""),
            None => "the token names no kid and the JWKS has no single usable key".into(),
        },
    }
}

/// The seconds a response may be cached by its `Cache-Control: max-age` (`no-cache` and
/// `no-store` count as 0), bounded to [`JWKS_REFETCH_COOL_DOWN`]..=[`JWKS_MAX_MAX_AGE`].
fn max_age(headers: &http::HeaderMap) -> u64 {
    let stated = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .find_map(|d| match d.as_str() {
            "no-cache" | "no-store" => Some(0),
            _ => d.strip_prefix("max-age=")?.trim_matches('"').parse().ok(),
        });
    stated
        .unwrap_or(JWKS_DEFAULT_MAX_AGE)
        .clamp(JWKS_REFETCH_COOL_DOWN, JWKS_MAX_MAX_AGE)
}

fn pick(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    // A signing key: not a shared secret, not marked for encryption only.
    let usable = |k: &&Jwk| {
        !matches!(k.algorithm, AlgorithmParameters::OctetKey(_))
            && matches!(
                k.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            )
            && k.common
                .key_operations
                .as_ref()
                .is_none_or(|ops| ops.contains(&KeyOperations::Verify))
    };
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(usable)
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned(),
        None => {
            let mut keys = set.keys.iter().filter(usable);
            match (keys.next(), keys.next()) {
                (Some(k), None) => Some(k.clone()),
                _ => None,
            }
        }
    }
}

/// The algorithms a public key may verify.
fn algorithms_for(key: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    match &key.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => vec![],
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => vec![EdDSA],
        _ => vec![],
    }
}

fn parse_alg(alg: &str) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match alg {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" => EdDSA,
        _ => return None,
    })
}

async fn check_signature(
    jwks: &JwksCache,
    http: &HttpClient,
    jwks_uri: &str,
    jwt: &DecodedJwt,
    now: u64,
) -> Check {
    let fail = |d: String| check("signature", CheckStatus::Fail, d);
    if let Some(crit) = jwt.header.get("crit") {
        return fail(format!(
            "the token marks {crit} as critical (crit), extensions Tessera does not understand"
        ));
    }
    let alg_name = jwt.alg().unwrap_or("");
    if alg_name.is_empty() || alg_name.eq_ignore_ascii_case("none") {
        return fail("unsigned token (alg \"none\") is never accepted".into());
    }
    if alg_name.starts_with("HS") {
        return fail(format!(
            "symmetric algorithm {alg_name} is refused: tokens are verified only with the provider's public keys"
        ));
    }
    let Some(alg) = parse_alg(alg_name) else {
        return fail(format!("algorithm \"{alg_name}\" is not supported"));
    };
    let key = match jwks.key(http, jwks_uri, jwt.kid(), now).await {
        Ok(k) => k,
        Err(Error::TokenRejected { reason, .. }) => return fail(reason),
        Err(e) => return fail(format!("cannot load the provider's keys: {e}")),
    };
    if !algorithms_for(&key).contains(&alg) {
        return fail(format!(
            "algorithm {alg_name} does not fit the {} key it names",
            key_type(&key)
        ));
    }
    if let Some(stated) = key.common.key_algorithm
        && format!("{stated:?}") != alg_name
    {
        return fail(format!(
            "the key is for {stated:?}, the token says {alg_name}"
        ));
    }
    let decoding = match DecodingKey::from_jwk(&key) {
        Ok(k) => k,
        Err(e) => return fail(format!("the provider's key is unusable: {e}")),
    };
    match jsonwebtoken::crypto::verify(&jwt.signature, jwt.signing_input.as_bytes(), &decoding, alg)
    {
        Ok(true) => check(
            "signature",
            CheckStatus::Pass,
            format!(
                "{alg_name} signature verified with key {}",
                jwt.kid().unwrap_or("(no kid)")
            ),
        ),
        Ok(false) | Err(_) => fail("the signature does not match the provider's key".into()),
    }
}

fn key_type(key: &Jwk) -> &'static str {
    match key.algorithm {
        AlgorithmParameters::RSA(_) => "RSA",
        AlgorithmParameters::EllipticCurve(_) => "EC",
        AlgorithmParameters::OctetKeyPair(_) => "OKP",
        AlgorithmParameters::OctetKey(_) => "symmetric",
    }
}

/// Verifies `token` and reports every check. Never fails for a bad token: bad tokens give
/// failed checks; only an unparsable token is an error.
pub async fn verify(
    jwks: &JwksCache,
    http: &HttpClient,
    jwks_uri: &str,
    token: &str,
    expect: &Expectations<'_>,
) -> Result<Verification> {
    let jwt = decode_unverified_for_display(token)?;
    let mut checks = vec![check_signature(jwks, http, jwks_uri, &jwt, expect.now).await];
    checks.extend(claim_checks(&jwt, expect));
    Ok(Verification {
        decoded: jwt,
        checks,
    })
}

fn claim_checks(jwt: &DecodedJwt, expect: &Expectations<'_>) -> Vec<Check> {
    use CheckStatus::*;
    let id_token = expect.kind == TokenKind::IdToken;
    let mut checks = Vec::new();

    checks.push(match jwt.claim_str("iss") {
        Some(iss) if iss == expect.issuer => check("iss", Pass, format!("issued by {iss}")),
        Some(iss) => check(
            "iss",
            Fail,
            format!("issuer \"{iss}\" is not \"{}\"", expect.issuer),
        ),
        None => check("iss", Fail, "the token has no issuer"),
    });

    let auds = jwt.audiences();
    checks.push(match expect.audience {
        Some(want) if auds.iter().any(|a| a == want) => {
            check("aud", Pass, format!("audience includes {want}"))
        }
        Some(want) => check(
            "aud",
            Fail,
            format!("audience {auds:?} does not include \"{want}\""),
        ),
        None => check("aud", Skipped, "no expected audience is configured"),
    });

    if id_token {
        checks.push(match jwt.claim_str("azp") {
            Some(azp) if azp == expect.client_id => {
                check("azp", Pass, "authorized party is this client")
            }
            Some(azp) => check(
                "azp",
                Fail,
                format!("authorized party \"{azp}\" is not this client"),
            ),
            None if auds.len() > 1 => check(
                "azp",
                Fail,
                "several audiences but no authorized party (azp)",
            ),
            None => check("azp", Skipped, "single audience, no azp needed"),
        });
    }

    let now = expect.now;
    checks.push(match jwt.claim_u64("exp") {
        Some(exp) if now < exp.saturating_add(CLOCK_SKEW) => check(
            "exp",
            Pass,
            format!("expires {}", crate::claims::relative(exp, now)),
        ),
        Some(exp) => check(
            "exp",
            Fail,
            format!("expired {}", crate::claims::relative(exp, now)),
        ),
        None if id_token => check("exp", Fail, "the ID token has no expiry"),
        None => check("exp", Skipped, "no expiry claim"),
    });
    checks.push(match jwt.claim_u64("nbf") {
        Some(nbf) if nbf <= now.saturating_add(CLOCK_SKEW) => check("nbf", Pass, "already valid"),
        Some(nbf) => check(
            "nbf",
            Fail,
            format!("not valid before {}", crate::claims::relative(nbf, now)),
        ),
        None => check("nbf", Skipped, "no not-before claim"),
    });
    checks.push(match jwt.claim_u64("iat") {
        Some(iat) if iat <= now.saturating_add(CLOCK_SKEW) => check(
            "iat",
            Pass,
            format!("issued {}", crate::claims::relative(iat, now)),
        ),
        Some(iat) => check(
            "iat",
            Fail,
            format!(
                "issued in the future ({})",
                crate::claims::relative(iat, now)
            ),
        ),
        None if id_token => check("iat", Fail, "the ID token has no issued-at time"),
        None => check("iat", Skipped, "no issued-at claim"),
    });

    if id_token {
        checks.push(match (expect.nonce, jwt.claim_str("nonce")) {
            (Some(want), Some(got)) if want == got => {
                check("nonce", Pass, "matches the sign-in request")
            }
            (Some(_), Some(_)) => check(
                "nonce",
                Fail,
                "does not match the sign-in request (replayed token?)",
            ),
            (Some(_), None) => check(
                "nonce",
                Fail,
                "the sign-in sent a nonce but the token has none",
            ),
            (None, _) => check(
                "nonce",
                Skipped,
                "no nonce to compare (token from a refresh)",
            ),
        });
        checks.push(match (jwt.claim_str("at_hash"), expect.access_token) {
            (Some(claimed), Some(at)) => match at_hash(jwt.alg().unwrap_or(""), at) {
                Some(h) if h == claimed => check("at_hash", Pass, "matches the access token"),
                Some(_) => check("at_hash", Fail, "does not match the access token"),
                None => check("at_hash", Fail, "cannot compute at_hash for this algorithm"),
            },
            (Some(_), None) => check(
                "at_hash",
                Skipped,
                "the ID token predates the current access token",
            ),
            (None, _) => check("at_hash", Skipped, "no at_hash claim"),
        });
    } else {
        let typ = jwt.header.get("typ").and_then(Value::as_str).unwrap_or("");
        checks.push(
            if typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
            {
                check("typ", Pass, "RFC 9068 access token (at+jwt)")
            } else {
                check(
                    "typ",
                    Skipped,
                    format!("type \"{typ}\" (not an RFC 9068 at+jwt)"),
                )
            },
        );
    }
    checks
}

/// OIDC Core 3.1.3.6: the left half of the hash of the access token, base64url.
fn at_hash(alg: &str, access_token: &str) -> Option<String> {
    let digest: Vec<u8> = match alg {
        "RS256" | "PS256" | "ES256" => Sha256::digest(access_token).to_vec(),
        "RS384" | "PS384" | "ES384" => Sha384::digest(access_token).to_vec(),
        "RS512" | "PS512" | "EdDSA" => Sha512::digest(access_token).to_vec(),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

    fn part(v: Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn decodes_for_display_and_rejects_garbage() {
        let t = format!(
            "{}.{}.sig",
            part(serde_json::json!({"alg":"RS256","kid":"k"})),
            part(serde_json::json!({"sub":"alice"}))
        );
        let d = decode_unverified_for_display(&t).unwrap();
        assert_eq!(d.kid(), Some("k"));
        assert_eq!(d.claim_str("sub"), Some("alice"));
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d.e",
            "!!.??.x",
            &format!("{}.bm90LWpzb24.x", part(serde_json::json!({}))),
        ] {
            let e = decode_unverified_for_display(bad).unwrap_err();
            assert_eq!(e.code(), "not_a_jwt", "{bad}");
        }
    }

    #[test]
    fn at_hash_matches_the_oidc_example() {
        // OpenID Connect Core, appendix A.3.
        let at = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(
            at_hash("RS256", at).as_deref(),
            Some("77QmUPtjPfzWtF2AnpK9RQ")
        );
    }

    /// The names of the claim checks `payload` fails.
    fn failed_checks(payload: Value, expect: &Expectations<'_>) -> Vec<String> {
        let jwt = DecodedJwt {
            header: Map::new(),
            payload: payload.as_object().unwrap().clone(),
            signing_input: String::new(),
            signature: String::new(),
        };
        claim_checks(&jwt, expect)
            .into_iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .map(|c| c.name)
            .collect()
    }

    fn id_token_expectations(now: u64) -> Expectations<'static> {
        Expectations {
            kind: TokenKind::IdToken,
            issuer: "https://idp",
            audience: Some("cli"),
            client_id: "cli",
            nonce: Some("n1"),
            access_token: None,
            now,
        }
    }

    /// A JWKS endpoint on loopback that counts its requests; its keys and `Cache-Control`
    /// can change between requests, and it answers after a short delay so concurrent requests
    /// overlap.
    struct JwksServer {
        uri: String,
        keys: Arc<std::sync::Mutex<Vec<&'static str>>>,
        cache_control: Arc<std::sync::Mutex<Option<&'static str>>>,
        hits: Arc<AtomicUsize>,
    }

    impl JwksServer {
        async fn start(keys: &[&'static str], cache_control: Option<&'static str>) -> Self {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .unwrap();
            let uri = format!("http://{}/jwks", listener.local_addr().unwrap());
            let server = JwksServer {
                uri,
                keys: Arc::new(std::sync::Mutex::new(keys.to_vec())),
                cache_control: Arc::new(std::sync::Mutex::new(cache_control)),
                hits: Arc::default(),
            };
            let (keys, cache_control, hits) = (
                server.keys.clone(),
                server.cache_control.clone(),
                server.hits.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (keys, cache_control, hits) =
                        (keys.clone(), cache_control.clone(), hits.clone());
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&chunk[..n]),
                            }
                        }
                        hits.fetch_add(1, AtomicOrdering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        let names = keys.lock().unwrap().clone();
                        let body = serde_json::json!({
                            "keys": names.iter().map(|n| public_jwk(n)).collect::<Vec<_>>()
                        })
                        .to_string();
                        let cache = cache_control
                            .lock()
                            .unwrap()
                            .map(|c| format!("Cache-Control: {c}\r\n"))
                            .unwrap_or_default();
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{cache}\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                    });
                }
            });
            server
        }

        fn serve(&self, keys: &[&'static str]) {
            *self.keys.lock().unwrap() = keys.to_vec();
        }

        fn hits(&self) -> usize {
            self.hits.load(AtomicOrdering::SeqCst)
        }
    }

    /// The public half of the test provider's signing key `name` ("a" or "b").
    fn public_jwk(name: &str) -> Value {
        let path = tessera_testkit::idp_dir().join(format!("keys/signing-{name}.json"));
        let mut jwk: Map<String, Value> =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        jwk.retain(|k, _| ["kty", "n", "e", "kid", "alg", "use"].contains(&k.as_str()));
        Value::Object(jwk)
    }

    const NOW: u64 = 1_800_000_000;

    /// A token signed with test key `key` ("a" or "b") that names `kid`.
    fn signed(key: &str, kid: &str) -> String {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(
            tessera_testkit::signing_key_pem(key).as_bytes(),
        )
        .unwrap();
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        let claims = serde_json::json!({"iss":"https://idp","aud":"cli","exp":NOW+86_400*3,"iat":NOW,"nonce":"n1"});
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    async fn signature_at(
        jwks: &JwksCache,
        http: &HttpClient,
        server: &JwksServer,
        token: &str,
        now: u64,
    ) -> CheckStatus {
        let v = verify(jwks, http, &server.uri, token, &id_token_expectations(now))
            .await
            .unwrap();
        v.checks[0].status
    }

    fn client() -> HttpClient {
        HttpClient::new(crate::http::HttpConfig::default()).unwrap()
    }

    #[test]
    fn cache_control_max_age_is_read_and_bounded() {
        let age = |values: &[&str]| {
            let mut headers = http::HeaderMap::new();
            for v in values {
                headers.append(http::header::CACHE_CONTROL, v.parse().unwrap());
            }
            max_age(&headers)
        };
        assert_eq!(age(&[]), JWKS_DEFAULT_MAX_AGE);
        assert_eq!(age(&["public, max-age=600, must-revalidate"]), 600);
        assert_eq!(age(&["public", "Max-Age=\"900\""]), 900);
        assert_eq!(age(&["s-maxage=900"]), JWKS_DEFAULT_MAX_AGE);
        assert_eq!(age(&["max-age=junk"]), JWKS_DEFAULT_MAX_AGE);
        assert_eq!(age(&["no-store"]), JWKS_REFETCH_COOL_DOWN);
        assert_eq!(age(&["max-age=0"]), JWKS_REFETCH_COOL_DOWN);
        assert_eq!(age(&["max-age=99999999999999999999"]), JWKS_DEFAULT_MAX_AGE);
        assert_eq!(age(&["max-age=31536000"]), JWKS_MAX_MAX_AGE);
    }

    #[tokio::test]
    async fn a_removed_key_is_distrusted_once_the_jwks_max_age_has_passed() {
        let server = JwksServer::start(&["a", "b"], Some("public, max-age=300")).await;
        let (jwks, http) = (JwksCache::default(), client());
        let token = signed("a", "key-a");
        assert_eq!(
            signature_at(&jwks, &http, &server, &token, NOW).await,
            CheckStatus::Pass
        );
        server.serve(&["b"]);
        assert_eq!(
            signature_at(&jwks, &http, &server, &token, NOW + 299).await,
            CheckStatus::Pass,
            "within max-age the cached set is used"
        );
        assert_eq!(server.hits(), 1);
        assert_eq!(
            signature_at(&jwks, &http, &server, &token, NOW + 300).await,
            CheckStatus::Fail,
            "after max-age the removed key is no longer trusted"
        );
        assert_eq!(server.hits(), 2);

        for (cache_control, age, why) in [
            (
                None,
                JWKS_DEFAULT_MAX_AGE,
                "without Cache-Control the default applies",
            ),
            (
                Some("max-age=31536000"),
                JWKS_MAX_MAX_AGE,
                "a provider's max-age is capped",
            ),
        ] {
            let server = JwksServer::start(&["a"], cache_control).await;
            let jwks = JwksCache::default();
            let at = |now| signature_at(&jwks, &http, &server, &token, now);
            assert_eq!(at(NOW).await, CheckStatus::Pass, "{why}");
            server.serve(&["b"]);
            assert_eq!(at(NOW + age - 1).await, CheckStatus::Pass, "{why}");
            assert_eq!(at(NOW + age).await, CheckStatus::Fail, "{why}");
        }
    }

    #[tokio::test]
    async fn a_flood_of_unknown_kids_refetches_at_most_once_per_cool_down() {
        let server = JwksServer::start(&["a"], None).await;
        let (jwks, http) = (JwksCache::default(), client());
        assert_eq!(
            signature_at(&jwks, &http, &server, &signed("a", "key-a"), NOW).await,
            CheckStatus::Pass
        );
        for i in 0..50 {
            let rogue = signed("a", &format!("rogue-{i}"));
            assert_eq!(
                signature_at(&jwks, &http, &server, &rogue, NOW + 1 + i / 2).await,
                CheckStatus::Fail
            );
        }
        assert_eq!(server.hits(), 2, "one refetch for the whole flood");
        let later = NOW + 1 + JWKS_REFETCH_COOL_DOWN;
        server.serve(&["a", "b"]);
        let rotated = signed("b", "key-b");
        assert_eq!(
            signature_at(&jwks, &http, &server, &rotated, later).await,
            CheckStatus::Pass,
            "after the cool-down a new key is found"
        );
        assert_eq!(server.hits(), 3);
        server.serve(&["a"]);
        assert_eq!(
            signature_at(&jwks, &http, &server, &rotated, NOW).await,
            CheckStatus::Fail,
            "a clock set back neither keeps a set fresh nor holds off a refetch"
        );
        assert_eq!(server.hits(), 4);
    }

    #[tokio::test]
    async fn concurrent_verifications_with_a_cold_cache_fetch_once() {
        let server = Arc::new(JwksServer::start(&["a"], None).await);
        let jwks = Arc::new(JwksCache::default());
        let http = client();
        let token = signed("a", "key-a");
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (server, jwks, http, token) =
                (server.clone(), jwks.clone(), http.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                signature_at(&jwks, &http, &server, &token, NOW).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), CheckStatus::Pass);
        }
        assert_eq!(
            server.hits(),
            1,
            "concurrent fetches of one JWKS are coalesced"
        );
    }

    #[test]
    fn extreme_times_saturate_instead_of_overflowing() {
        let far = u64::MAX;
        let token = |t: u64| serde_json::json!({"iss":"https://idp","aud":"cli","exp":t,"nbf":t,"iat":t,"nonce":"n1"});
        assert_eq!(
            failed_checks(token(far), &id_token_expectations(1_000_000)),
            ["nbf", "iat"],
            "a token from the end of time expires never but is not valid yet"
        );
        assert!(failed_checks(token(far), &id_token_expectations(far - 1)).is_empty());
        assert_eq!(
            failed_checks(token(0), &id_token_expectations(far)),
            ["exp"]
        );
    }

    #[test]
    fn claim_checks_fail_each_on_its_own() {
        let now = 1_000_000;
        let good = serde_json::json!({"iss":"https://idp","aud":"cli","exp":now+300,"iat":now,"nonce":"n1"});
        let expect = id_token_expectations(now);
        let run = |payload: Value| failed_checks(payload, &expect);
        assert!(run(good.clone()).is_empty());
        let with = |k: &str, v: Value| {
            let mut p = good.clone();
            p[k] = v;
            p
        };
        assert_eq!(run(with("iss", "https://evil".into())), ["iss"]);
        assert_eq!(run(with("aud", "other".into())), ["aud"]);
        assert_eq!(
            run(with("aud", serde_json::json!(["cli", "other"]))),
            ["azp"]
        );
        assert_eq!(run(with("exp", (now - CLOCK_SKEW - 1).into())), ["exp"]);
        assert!(
            run(with("exp", (now - 10).into())).is_empty(),
            "small skew is tolerated"
        );
        assert_eq!(run(with("nbf", (now + 3600).into())), ["nbf"]);
        assert_eq!(run(with("iat", (now + 3600).into())), ["iat"]);
        assert_eq!(run(with("nonce", "other".into())), ["nonce"]);
        assert_eq!(run(with("azp", "someone-else".into())), ["azp"]);
    }
}
