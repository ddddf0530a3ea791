//! The dictionary itself: registered JWT, OpenID Connect, RFC 9068 and RFC 8693 claims and
//! JWS header parameters, the supported providers' own claims, and the explanations that
//! depend on a claim's value.

use std::borrow::Cow;

use serde_json::Value;

pub(super) const RFC7519: &str = "RFC 7519 (JWT)";
pub(super) const OIDC: &str = "OpenID Connect Core 1.0";
pub(super) const RFC9068: &str = "RFC 9068 (JWT access tokens)";
pub(super) const RFC8693: &str = "RFC 8693 (token exchange)";
pub(super) const RFC7515: &str = "RFC 7515 (JWS)";
pub(super) const PUBLIC_NAME: &str = "RFC 7519 §4.2 (public claim name)";
pub(super) const AUTH0: &str = "Auth0 Organizations";
pub(super) const LOGTO: &str = "Logto";
pub(super) const STYTCH: &str = "Stytch";
pub(super) const STYTCH_B2B: &str = "Stytch B2B";
pub(super) const STACK: &str = "Stack Auth";

pub(super) const STYTCH_SESSION: &str = "https://stytch.com/session";
pub(super) const STYTCH_ORGANIZATION: &str = "https://stytch.com/organization";
pub(super) const LOGTO_ORGANIZATION_AUDIENCE: &str = "urn:logto:organization:";

/// Claims whose value is a Unix time.
pub(super) const TIME_CLAIMS: [&str; 6] = [
    "exp",
    "nbf",
    "iat",
    "auth_time",
    "updated_at",
    "signed_up_at",
];

/// What a claim means and the specification (or provider) that defines it.
pub(super) type Explanation = (Cow<'static, str>, &'static str);

pub(super) fn describe(name: &str, value: &Value) -> Option<Explanation> {
    if let Some(e) = describe_value(name, value) {
        return Some(e);
    }
    if let Some((d, s)) = describe_name(name) {
        return Some((d.into(), s));
    }
    (name.starts_with("https://") || name.starts_with("http://")).then_some((
        "Custom claim with a URL as its name (a collision-resistant namespace) — in Auth0, one \
         added by the tenant's Actions or rules, which Auth0 asks to namespace this way"
            .into(),
        PUBLIC_NAME,
    ))
}

/// Explanations that depend on the value as well as the name.
fn describe_value(name: &str, value: &Value) -> Option<Explanation> {
    match (name, value) {
        ("aud", _) => logto_audience(single_string(value)?),
        ("scope", Value::Array(_)) => Some((
            "Scopes granted to the access token, as a list (RFC 9068 has one space-separated \
             string)"
                .into(),
            RFC9068,
        )),
        ("role", Value::String(r)) if r == "authenticated" => Some((
            "Role of the bearer: a signed-in user (the PostgREST/Supabase database role for \
             row-level security)"
                .into(),
            STACK,
        )),
        _ => None,
    }
}

fn logto_audience(aud: &str) -> Option<Explanation> {
    if aud == "urn:logto:resource:organizations" {
        return Some((
            "Audience: Logto's built-in organizations resource (organization permissions)".into(),
            LOGTO,
        ));
    }
    let org = aud.strip_prefix(LOGTO_ORGANIZATION_AUDIENCE)?;
    Some((
        format!("Audience: an organization token, for Logto organization {org}").into(),
        LOGTO,
    ))
}

/// A string, or an array holding exactly one string.
fn single_string(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(a) if a.len() == 1 => a[0].as_str(),
        _ => None,
    }
}

fn describe_name(name: &str) -> Option<(&'static str, &'static str)> {
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
        "scp" => (
            "Scopes granted to the access token (a list or a space-separated string: a \
             non-standard spelling of scope)",
            "Okta, Microsoft Entra ID",
        ),
        "org_id" => ("Organization the token was issued in (its id)", AUTH0),
        "org_name" => ("Name of the organization the token was issued in", AUTH0),
        "organizations" => ("Ids of the organizations the person belongs to", LOGTO),
        "organization_roles" => (
            "The person's organization roles, each as <organization id>:<role name>",
            LOGTO,
        ),
        "organization_id" => (
            "Organization the token was issued for (an organization-scoped token)",
            LOGTO,
        ),
        STYTCH_SESSION => (
            "Stytch session: its id, started_at, last_accessed_at, expires_at, attributes (the \
             client's IP address and user agent), authentication_factors (how the person \
             signed in) and, for B2B members, roles",
            STYTCH,
        ),
        STYTCH_ORGANIZATION => (
            "Organization of the member's session: organization_id and slug",
            STYTCH_B2B,
        ),
        "project_id" => ("Stack Auth project the user belongs to", STACK),
        "branch_id" => (
            "Branch of the project (main unless the project has others)",
            STACK,
        ),
        "refresh_token_id" => (
            "Session (refresh token) this access token was issued from: revoke it to end the \
             session",
            STACK,
        ),
        "selected_team_id" => ("Team currently selected for the user (null: none)", STACK),
        "signed_up_at" => ("When the user signed up", STACK),
        "is_anonymous" => ("Whether the user is an anonymous guest user", STACK),
        "is_restricted" => (
            "Whether the user is restricted until they finish signing up (anonymous, or e-mail \
             not verified when the project requires it)",
            STACK,
        ),
        "restricted_reason" => ("Why the user is restricted (null: not restricted)", STACK),
        "requires_totp_mfa" => (
            "Whether the user has TOTP multi-factor authentication turned on",
            STACK,
        ),
        _ => return None,
    })
}

pub(super) fn describe_header(name: &str) -> Option<(&'static str, &'static str)> {
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
