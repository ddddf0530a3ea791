//! The claim dictionary: what each registered claim means, where it is defined, and how to
//! show its value (times as UTC dates with "in 5 min" / "3 h ago").

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::format_description;

/// A claim (or header parameter) ready to show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimRow {
    pub name: String,
    pub value: Value,
    /// The value in human terms, where that differs from the raw JSON (times).
    pub rendered: Option<String>,
    pub description: Option<String>,
    /// The specification that defines it.
    pub source: Option<String>,
}

const RFC7519: &str = "RFC 7519 (JWT)";
const OIDC: &str = "OpenID Connect Core 1.0";
const RFC9068: &str = "RFC 9068 (JWT access tokens)";
const RFC8693: &str = "RFC 8693 (token exchange)";
const RFC7515: &str = "RFC 7515 (JWS)";

/// Claims whose value is a Unix time.
const TIME_CLAIMS: [&str; 5] = ["exp", "nbf", "iat", "auth_time", "updated_at"];

fn describe(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "iss" => ("Issuer: who created and signed the token", RFC7519),
        "sub" => (
            "Subject: the provider's stable identifier for the person",
            RFC7519,
        ),
        "aud" => ("Audience: who the token is meant for", RFC7519),
        "exp" => ("Expiration time: not valid after this moment", RFC7519),
        "nbf" => ("Not before: not valid before this moment", RFC7519),
        "iat" => ("Issued at: when the token was created", RFC7519),
        "jti" => ("JWT ID: unique identifier of this token", RFC7519),
        "auth_time" => ("When the person actually authenticated", OIDC),
        "nonce" => (
            "Value from the sign-in request, binding the token to it (replay protection)",
            OIDC,
        ),
        "acr" => (
            "Authentication context class reference: how strongly the person authenticated",
            OIDC,
        ),
        "amr" => ("Authentication methods used (password, otp, mfa…)", OIDC),
        "azp" => ("Authorized party: the client the token was issued to", OIDC),
        "at_hash" => ("Hash of the access token issued with this ID token", OIDC),
        "c_hash" => (
            "Hash of the authorization code issued with this ID token",
            OIDC,
        ),
        "sid" => (
            "Session ID at the provider",
            "OpenID Connect Front/Back-Channel Logout",
        ),
        "name" => ("Full name", OIDC),
        "given_name" => ("Given name(s)", OIDC),
        "family_name" => ("Surname(s)", OIDC),
        "middle_name" => ("Middle name(s)", OIDC),
        "nickname" => ("Casual name", OIDC),
        "preferred_username" => ("Preferred username", OIDC),
        "profile" => ("Profile page URL", OIDC),
        "picture" => ("Profile picture URL", OIDC),
        "website" => ("Web page or blog URL", OIDC),
        "email" => ("Preferred e-mail address", OIDC),
        "email_verified" => ("Whether the provider verified the e-mail address", OIDC),
        "gender" => ("Gender", OIDC),
        "birthdate" => ("Birthday", OIDC),
        "zoneinfo" => ("Time zone", OIDC),
        "locale" => ("Locale", OIDC),
        "phone_number" => ("Preferred telephone number", OIDC),
        "phone_number_verified" => ("Whether the provider verified the phone number", OIDC),
        "address" => ("Postal address", OIDC),
        "updated_at" => ("When the person's information was last updated", OIDC),
        "client_id" => ("The client the access token was issued to", RFC9068),
        "scope" => ("Scopes granted to the access token", RFC9068),
        "groups" | "roles" | "entitlements" => ("Authorization attributes of the person", RFC9068),
        "act" => (
            "Actor: who is acting on behalf of the subject (delegation)",
            RFC8693,
        ),
        "may_act" => ("Who may act on behalf of the subject", RFC8693),
        "cnf" => (
            "Confirmation: key the token is bound to (proof of possession)",
            "RFC 7800",
        ),
        "organizations" => ("Organizations the person belongs to", "provider-specific"),
        "org_id" => ("Organization the token was issued in", "provider-specific"),
        "org_name" => (
            "Name of the organization the token was issued in",
            "provider-specific",
        ),
        _ => return None,
    })
}

fn describe_header(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "alg" => ("Signature algorithm", RFC7515),
        "kid" => (
            "Key ID: which of the provider's keys signed the token",
            RFC7515,
        ),
        "typ" => (
            "Token type (at+jwt marks an RFC 9068 access token)",
            RFC7515,
        ),
        "cty" => ("Content type", RFC7515),
        "jku" => (
            "JWK Set URL (ignored: keys come from the provider's discovery document)",
            RFC7515,
        ),
        "x5t" | "x5t#S256" => ("Certificate thumbprint", RFC7515),
        _ => return None,
    })
}

/// The rows of a JWT payload, in the order the token has them.
pub fn explain_claims(payload: &Map<String, Value>, now: u64) -> Vec<ClaimRow> {
    payload
        .iter()
        .map(|(k, v)| row(k, v, describe(k), now, TIME_CLAIMS.contains(&k.as_str())))
        .collect()
}

/// The rows of a JWT header.
pub fn explain_header(header: &Map<String, Value>) -> Vec<ClaimRow> {
    header
        .iter()
        .map(|(k, v)| row(k, v, describe_header(k), 0, false))
        .collect()
}

fn row(name: &str, value: &Value, info: Option<(&str, &str)>, now: u64, is_time: bool) -> ClaimRow {
    let rendered = match value.as_u64() {
        Some(t) if is_time => Some(format!("{} ({})", utc(t), relative(t, now))),
        _ => None,
    };
    ClaimRow {
        name: name.to_string(),
        value: value.clone(),
        rendered,
        description: info.map(|(d, _)| d.to_string()),
        source: info.map(|(_, s)| s.to_string()),
    }
}

/// A Unix time as `2026-11-22 10:04:05 UTC`.
pub fn utc(unix: u64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    OffsetDateTime::from_unix_timestamp(unix as i64)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `in 4 min`, `2 h ago`, `now`.
pub fn relative(t: u64, now: u64) -> String {
    let (d, future) = if t >= now {
        (t - now, true)
    } else {
        (now - t, false)
    };
    let amount = match d {
        0..=4 => return "now".to_string(),
        5..=119 => format!("{d} s"),
        120..=7199 => format!("{} min", d / 60),
        7200..=172_799 => format!("{} h", d / 3600),
        _ => format!("{} days", d / 86_400),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_registered_claims_and_renders_times() {
        let payload =
            serde_json::json!({"iss":"x","exp": 1_800_000_300u64,"act":{"sub":"admin"},"custom":1});
        let rows = explain_claims(payload.as_object().unwrap(), 1_800_000_000);
        let exp = rows.iter().find(|r| r.name == "exp").unwrap();
        assert_eq!(
            exp.rendered.as_deref(),
            Some("2027-01-15 08:05:00 UTC (in 5 min)")
        );
        assert_eq!(exp.source.as_deref(), Some(RFC7519));
        assert!(
            rows.iter()
                .find(|r| r.name == "act")
                .unwrap()
                .description
                .as_ref()
                .unwrap()
                .contains("Actor")
        );
        assert!(
            rows.iter()
                .find(|r| r.name == "custom")
                .unwrap()
                .description
                .is_none()
        );
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(100, 100), "now");
        assert_eq!(relative(100, 190), "90 s ago");
        assert_eq!(relative(4000, 100), "in 65 min");
        assert_eq!(relative(0, 200_000), "2 days ago");
    }
}
