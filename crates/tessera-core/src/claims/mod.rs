//! The claim dictionary: what each registered claim means, where it is defined, and how to
//! show its value (times as UTC dates with "in 5 min" / "3 h ago").
//!
//! Besides the registered claims it knows the supported providers' own: Auth0 organizations and
//! URL-namespaced custom claims, Logto organizations (and the `urn:logto:organization:<id>`
//! audience of an organization token), Stytch's session and organization objects, and the claims
//! of a Stack Auth access token. A few explanations depend on the value, not just the name.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

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

mod dictionary;

use dictionary::{Explanation, STYTCH_SESSION, TIME_CLAIMS, describe, describe_header};

/// The rows of a JWT payload, in the order the token has them.
pub fn explain_claims(payload: &Map<String, Value>, now: u64) -> Vec<ClaimRow> {
    payload
        .iter()
        .map(|(k, v)| row(k, v, describe(k, v), render(k, v, now)))
        .collect()
}

/// The rows of a JWT header.
pub fn explain_header(header: &Map<String, Value>) -> Vec<ClaimRow> {
    header
        .iter()
        .map(|(k, v)| row(k, v, describe_header(k).map(|(d, s)| (d.into(), s)), None))
        .collect()
}

fn row(name: &str, value: &Value, info: Option<Explanation>, rendered: Option<String>) -> ClaimRow {
    let (description, source) = info.map_or((None, None), |(d, s)| {
        (Some(d.into_owned()), Some(s.to_string()))
    });
    ClaimRow {
        name: name.to_string(),
        value: value.clone(),
        rendered,
        description,
        source,
    }
}

/// Times in human terms: Unix-time claims, and the RFC 3339 times inside a Stytch session.
fn render(name: &str, value: &Value, now: u64) -> Option<String> {
    if TIME_CLAIMS.contains(&name) {
        let t = value.as_u64()?;
        return Some(format!("{} ({})", utc(t), relative(t, now)));
    }
    if name != STYTCH_SESSION {
        return None;
    }
    let session = value.as_object()?;
    let parts: Vec<String> = [
        ("started_at", "started"),
        ("last_accessed_at", "last used"),
        ("expires_at", "expires"),
    ]
    .iter()
    .filter_map(|(key, label)| {
        let t = rfc3339_unix(session.get(*key)?.as_str()?)?;
        Some(format!("{label} {}", relative(t, now)))
    })
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// `2026-01-15T08:05:00.123Z` or `…+02:00` as a Unix time.
fn rfc3339_unix(s: &str) -> Option<u64> {
    let num = |range: std::ops::Range<usize>| s.get(range)?.parse::<u8>().ok();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let date = Date::from_calendar_date(
        s.get(0..4)?.parse().ok()?,
        Month::try_from(num(5..7)?).ok()?,
        num(8..10)?,
    )
    .ok()?;
    let time = Time::from_hms(num(11..13)?, num(14..16)?, num(17..19)?).ok()?;
    let mut rest = s.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        rest = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = i64::from(rest[1..3].parse::<u8>().ok()?) * 60
                + i64::from(rest[4..6].parse::<u8>().ok()?);
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let unix = PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp()
        - offset * 60;
    u64::try_from(unix).ok()
}

/// A Unix time as `2026-11-22 10:04:05 UTC`.
pub fn utc(unix: u64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    OffsetDateTime::from_unix_timestamp(unix as i64)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `in 4 min`, `2 h ago`, `now`: how far `t` lies from `now`, written where it is shown.
pub fn relative(t: u64, now: u64) -> Relative {
    Relative { t, now }
}

/// See [`relative`].
#[derive(Debug, Clone, Copy)]
pub struct Relative {
    t: u64,
    now: u64,
}

impl fmt::Display for Relative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, future) = if self.t >= self.now {
            (self.t - self.now, true)
        } else {
            (self.now - self.t, false)
        };
        let (amount, unit) = match d {
            0..=4 => return f.write_str("now"),
            5..=119 => (d, "s"),
            120..=7199 => (d / 60, "min"),
            7200..=172_799 => (d / 3600, "h"),
            _ => (d / 86_400, "days"),
        };
        if future {
            write!(f, "in {amount} {unit}")
        } else {
            write!(f, "{amount} {unit} ago")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dictionary::*;
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

    fn explained(payload: Value, now: u64) -> Vec<ClaimRow> {
        explain_claims(payload.as_object().unwrap(), now)
    }

    fn find<'a>(rows: &'a [ClaimRow], name: &str) -> &'a ClaimRow {
        rows.iter().find(|r| r.name == name).unwrap()
    }

    fn described(rows: &[ClaimRow], name: &str) -> (String, String) {
        let r = find(rows, name);
        match (&r.description, &r.source) {
            (Some(d), Some(s)) => (d.clone(), s.clone()),
            _ => panic!("{name} is not explained"),
        }
    }

    #[test]
    fn explains_auth0_organization_and_namespaced_custom_claims() {
        let rows = explained(
            serde_json::json!({
                "org_id": "org_acme",
                "org_name": "acme",
                "https://app.example.com/roles": ["admin"],
                "http://example.com/plan": "pro",
                "httpish": 1
            }),
            0,
        );
        assert_eq!(described(&rows, "org_id").1, AUTH0);
        assert!(
            described(&rows, "org_name")
                .0
                .contains("Name of the organization")
        );
        for name in ["https://app.example.com/roles", "http://example.com/plan"] {
            let (description, source) = described(&rows, name);
            assert!(description.contains("Auth0"), "{description}");
            assert_eq!(source, PUBLIC_NAME);
        }
        assert!(find(&rows, "httpish").description.is_none());
    }

    #[test]
    fn explains_logto_organization_claims_and_audiences() {
        let rows = explained(
            serde_json::json!({
                "organizations": ["acme", "globex"],
                "organization_roles": ["acme:admin", "globex:member"],
                "organization_id": "acme",
                "aud": "urn:logto:organization:acme"
            }),
            0,
        );
        assert_eq!(described(&rows, "organizations").1, LOGTO);
        assert!(
            described(&rows, "organization_roles")
                .0
                .contains("<organization id>:<role name>")
        );
        assert_eq!(described(&rows, "organization_id").1, LOGTO);
        assert_eq!(
            described(&rows, "aud"),
            (
                "Audience: an organization token, for Logto organization acme".to_string(),
                LOGTO.to_string()
            )
        );

        let aud = |aud: Value| described(&explained(serde_json::json!({ "aud": aud }), 0), "aud");
        assert!(
            aud(serde_json::json!(["urn:logto:organization:globex"]))
                .0
                .ends_with("globex")
        );
        assert!(
            aud(serde_json::json!("urn:logto:resource:organizations"))
                .0
                .contains("Logto")
        );
        for plain in [
            serde_json::json!("https://api.example.test"),
            serde_json::json!(["urn:logto:organization:acme", "https://api.example.test"]),
        ] {
            assert_eq!(
                aud(plain),
                (
                    "Audience: who the token is meant for".to_string(),
                    RFC7519.to_string()
                )
            );
        }
    }

    #[test]
    fn explains_stytch_session_and_organization_and_renders_session_times() {
        let now = 1_800_000_000;
        let rows = explained(
            serde_json::json!({
                "https://stytch.com/organization": {
                    "organization_id": "organization-test-1",
                    "slug": "acme"
                },
                "https://stytch.com/session": {
                    "id": "member-session-test-1",
                    "started_at": "2027-01-15T06:55:00.000Z",
                    "last_accessed_at": "2027-01-15T07:55:00Z",
                    "expires_at": "2027-01-22T08:00:00+00:00",
                    "attributes": {"ip_address": "", "user_agent": ""},
                    "authentication_factors": [],
                    "roles": ["stytch_member"]
                }
            }),
            now,
        );
        let (organization, source) = described(&rows, STYTCH_ORGANIZATION);
        assert!(organization.contains("slug"));
        assert_eq!(source, STYTCH_B2B);
        let (session, source) = described(&rows, STYTCH_SESSION);
        assert!(session.contains("authentication_factors"));
        assert_eq!(source, STYTCH);
        assert_eq!(
            find(&rows, STYTCH_SESSION).rendered.as_deref(),
            Some("started 65 min ago, last used 5 min ago, expires in 7 days")
        );
    }

    #[test]
    fn explains_stack_auth_access_token_claims() {
        let now = 1_800_000_000;
        let rows = explained(
            serde_json::json!({
                "sub": "a11ce000-0000-4000-8000-000000000001",
                "project_id": "11111111-2222-3333-4444-555555555555",
                "branch_id": "main",
                "refresh_token_id": "5e551011-0000-4000-8000-000000000001",
                "role": "authenticated",
                "selected_team_id": null,
                "signed_up_at": now - 3 * 86_400,
                "is_anonymous": false,
                "is_restricted": false,
                "restricted_reason": null,
                "requires_totp_mfa": false
            }),
            now,
        );
        for name in [
            "project_id",
            "branch_id",
            "refresh_token_id",
            "role",
            "selected_team_id",
            "signed_up_at",
            "is_anonymous",
            "is_restricted",
            "restricted_reason",
            "requires_totp_mfa",
        ] {
            assert_eq!(described(&rows, name).1, STACK, "{name}");
        }
        assert!(described(&rows, "selected_team_id").0.contains("null"));
        assert!(described(&rows, "is_anonymous").0.contains("anonymous"));
        assert!(described(&rows, "refresh_token_id").0.contains("revoke"));
        assert_eq!(
            find(&rows, "signed_up_at").rendered.as_deref(),
            Some("2027-01-12 08:00:00 UTC (3 days ago)")
        );

        let other_role = explained(serde_json::json!({"role": "admin"}), now);
        assert!(find(&other_role, "role").description.is_none());
    }

    #[test]
    fn explains_scopes_as_string_or_list_and_scp() {
        let rows = explained(
            serde_json::json!({"scope": ["openid", "accounts"], "scp": ["accounts"]}),
            0,
        );
        assert!(described(&rows, "scope").0.contains("as a list"));
        assert!(described(&rows, "scp").0.contains("Scopes granted"));
        let string = explained(serde_json::json!({"scope": "openid accounts"}), 0);
        assert_eq!(
            described(&string, "scope"),
            (
                "Scopes granted to the access token".to_string(),
                RFC9068.to_string()
            )
        );
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339_unix("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_unix("2027-01-15T08:05:00.123456Z"),
            Some(1_800_000_300)
        );
        assert_eq!(
            rfc3339_unix("2027-01-15T10:05:00+02:00"),
            Some(1_800_000_300)
        );
        assert_eq!(
            rfc3339_unix("2027-01-15T07:35:00-00:30"),
            Some(1_800_000_300)
        );
        for bad in [
            "2027-01-15",
            "2027-13-15T08:05:00Z",
            "2027-01-15T08:05:00",
            "2027-01-15T08:05:00+2",
        ] {
            assert_eq!(rfc3339_unix(bad), None, "{bad}");
        }
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(100, 100).to_string(), "now");
        assert_eq!(relative(100, 190).to_string(), "90 s ago");
        assert_eq!(relative(4000, 100).to_string(), "in 65 min");
        assert_eq!(relative(0, 200_000).to_string(), "2 days ago");
    }
}
