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

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

mod jwks;
mod signature;

pub use jwks::{JWKS_DEFAULT_MAX_AGE, JWKS_MAX_MAX_AGE, JWKS_REFETCH_COOL_DOWN, JwksCache};

use crate::error::{Error, Result};
use crate::http::HttpClient;

/// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW: u64 = 60;

/// A JWT split into its parts. Nothing in it has been verified. Its `Debug` shows the header
/// and the claims, never the token itself (an access token is a bearer secret).
#[derive(Clone)]
pub struct DecodedJwt {
    pub header: Map<String, Value>,
    pub payload: Map<String, Value>,
    /// The token as given, trimmed: the signed part, a dot, the signature.
    compact: String,
    /// Where the signature starts in `compact`.
    signature_at: usize,
}

impl std::fmt::Debug for DecodedJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedJwt")
            .field("header", &self.header)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

impl DecodedJwt {
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    fn signing_input(&self) -> &[u8] {
        &self.compact.as_bytes()[..self.signature_at.saturating_sub(1)]
    }

    fn signature(&self) -> &str {
        &self.compact[self.signature_at..]
    }

    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.payload.get(name).and_then(Value::as_str)
    }

    pub fn claim_u64(&self, name: &str) -> Option<u64> {
        self.payload.get(name).and_then(Value::as_u64)
    }

    /// The `aud` claim as a list (it may be a string or an array).
    pub fn audiences(&self) -> Vec<&str> {
        match self.payload.get("aud") {
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
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
    let compact = token.trim();
    let mut parts = compact.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::NotAJwt(
            what.into(),
            match compact.split('.').count() {
                5 => "it is encrypted (JWE)",
                _ => "it does not have three dot-separated parts",
            }
            .into(),
        ));
    };
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
        header: object(header, "header")?,
        payload: object(payload, "payload")?,
        signature_at: compact.len() - signature.len(),
        compact: compact.to_string(),
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
    pub name: &'static str,
    pub status: CheckStatus,
    pub detail: String,
}

fn check(name: &'static str, status: CheckStatus, detail: impl Into<String>) -> Check {
    Check {
        name,
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

/// The algorithms a public key may verify.
fn algorithms_for(key: &Jwk) -> &'static [Algorithm] {
    use Algorithm::*;
    match &key.algorithm {
        AlgorithmParameters::RSA(_) => &[RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[ES256],
            EllipticCurve::P384 => &[ES384],
            _ => &[],
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => &[EdDSA],
        _ => &[],
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
    if !algorithms_for(&key.jwk).contains(&alg) {
        return fail(format!(
            "algorithm {alg_name} does not fit the {} key it names",
            key_type(&key.jwk)
        ));
    }
    if let Some(stated) = key.jwk.common.key_algorithm
        && alg_name.parse::<KeyAlgorithm>().ok() != Some(stated)
    {
        return fail(format!(
            "the key is for {stated:?}, the token says {alg_name}"
        ));
    }
    if let Some(why) = key.unusable() {
        return fail(format!("the provider's key is unusable: {why}"));
    }
    if jwks
        .checked
        .matches(alg, &key, jwt.signing_input(), jwt.signature())
    {
        check(
            "signature",
            CheckStatus::Pass,
            format!(
                "{alg_name} signature verified with key {}",
                jwt.kid().unwrap_or("(no kid)")
            ),
        )
    } else {
        fail("the signature does not match the provider's key".into())
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
    let mut checks = Vec::with_capacity(10);
    checks.push(check_signature(jwks, http, jwks_uri, &jwt, expect.now).await);
    claim_checks(&jwt, expect, &mut checks);
    Ok(Verification {
        decoded: jwt,
        checks,
    })
}

fn claim_checks(jwt: &DecodedJwt, expect: &Expectations<'_>, checks: &mut Vec<Check>) {
    use CheckStatus::*;
    let id_token = expect.kind == TokenKind::IdToken;

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
        Some(want) if auds.contains(&want) => {
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
mod tests;
