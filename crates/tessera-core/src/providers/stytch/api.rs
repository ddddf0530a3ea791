//! Requests to one Stytch project: the backend API (`/v1`, Basic `project_id:secret`) when a
//! secret is configured, else the frontend SDK API (`/sdk/v1`, Basic
//! `public_token:session_token`, answers wrapped in `data`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::failure;
use crate::error::{Error, Result};
use crate::http::{HttpClient, parse_json};
use crate::jwt::decode_unverified_for_display;
use crate::provider::ProviderConfig;
use crate::providers::{DiscoveredOrg, OrgSession};
use crate::secret::SecretString;
use crate::vault::TokenSet;

/// Requests to one Stytch project.
pub(super) struct StytchApi<'a> {
    pub config: &'a ProviderConfig,
    pub http: &'a HttpClient,
    /// The project secret: present means the backend API, absent the SDK API.
    pub secret: Option<&'a SecretString>,
    pub now: u64,
}

#[derive(Deserialize)]
struct RawOrg {
    organization_id: String,
    organization_name: String,
    organization_slug: Option<String>,
}

#[derive(Deserialize)]
struct RawDiscovered {
    organization: RawOrg,
    membership: Option<RawMembership>,
}

#[derive(Deserialize)]
struct RawMembership {
    #[serde(rename = "type")]
    kind: String,
}

fn discovered(raw: Vec<RawDiscovered>) -> Vec<DiscoveredOrg> {
    raw.into_iter()
        .map(|d| DiscoveredOrg {
            id: d.organization.organization_id,
            name: d.organization.organization_name,
            slug: d.organization.organization_slug,
            membership: d.membership.map(|m| m.kind).unwrap_or_default(),
        })
        .collect()
}

impl StytchApi<'_> {
    fn base(&self) -> &str {
        self.config
            .api_base
            .as_deref()
            .unwrap_or("https://test.stytch.com")
    }

    fn project(&self) -> &str {
        self.config
            .project_id
            .as_deref()
            .unwrap_or(&self.config.client_id)
    }

    /// POSTs `body` to `b2b/<path>`. With the SDK API, `session` authenticates the call and
    /// session fields stay out of the body; with the backend API they go in the body.
    async fn call(
        &self,
        path: &str,
        mut body: Value,
        session: Option<&SecretString>,
    ) -> Result<Value> {
        let (url, user, password) = match self.secret {
            Some(secret) => {
                if let (Some(s), Some(map)) = (session, body.as_object_mut()) {
                    map.insert("session_token".into(), s.expose_secret().into());
                }
                (
                    format!("{}/v1/b2b/{path}", self.base()),
                    self.project(),
                    secret.expose_secret(),
                )
            }
            None => {
                let public = self.config.client_key.as_deref().ok_or_else(|| {
                    Error::InvalidConfig(format!(
                        "\"{}\" needs a public token (--public-token) or a project secret",
                        self.config.name
                    ))
                })?;
                let password = session.map_or(public, |s| s.expose_secret());
                (
                    format!("{}/sdk/v1/b2b/{path}", self.base()),
                    public,
                    password,
                )
            }
        };
        let basic = STANDARD.encode(format!("{user}:{password}"));
        let request = http::Request::post(&url)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("authorization", format!("Basic {basic}"))
            .body(body.to_string().into_bytes())
            .map_err(|e| Error::InvalidConfig(format!("bad Stytch URL {url}: {e}")))?;
        let response = self.http.send_expecting_json(request).await?;
        let value: Value = parse_json(&url, &response.body)?;
        if !(200..300).contains(&response.status) {
            return Err(failure(&value));
        }
        Ok(match (self.secret, value) {
            (None, Value::Object(mut map)) => map.remove("data").unwrap_or(Value::Null),
            (_, v) => v,
        })
    }

    fn field<T: for<'de> Deserialize<'de>>(&self, value: &Value, name: &str) -> Result<T> {
        serde_json::from_value(value.get(name).cloned().unwrap_or(Value::Null)).map_err(|e| {
            Error::MalformedResponse {
                url: self.base().to_string(),
                reason: format!("{name}: {e}"),
            }
        })
    }

    pub async fn send_discovery(
        &self,
        email: &str,
        redirect: &str,
        challenge: &PkceCodeChallenge,
    ) -> Result<()> {
        let body = json!({
            "email_address": email,
            "discovery_redirect_url": redirect,
            "pkce_code_challenge": challenge.as_str(),
        });
        self.call("magic_links/email/discovery/send", body, None)
            .await?;
        Ok(())
    }

    /// Authenticates the mailed token; returns the intermediate session and the organizations.
    pub async fn authenticate_discovery(
        &self,
        token: &str,
        verifier: &PkceCodeVerifier,
    ) -> Result<(SecretString, String, Vec<DiscoveredOrg>)> {
        let body =
            json!({"discovery_magic_links_token": token, "pkce_code_verifier": verifier.secret()});
        let v = self
            .call("magic_links/discovery/authenticate", body, None)
            .await?;
        let ist: String = self.field(&v, "intermediate_session_token")?;
        let email: String = self.field(&v, "email_address")?;
        let orgs: Vec<RawDiscovered> = self.field(&v, "discovered_organizations")?;
        Ok((SecretString::new(ist), email, discovered(orgs)))
    }

    /// Exchanges the intermediate session for a member session of `org`.
    pub async fn exchange_intermediate(&self, ist: &SecretString, org: &str) -> Result<OrgSession> {
        let body =
            json!({"intermediate_session_token": ist.expose_secret(), "organization_id": org});
        let v = self
            .call("discovery/intermediate_sessions/exchange", body, None)
            .await?;
        self.member_session(v, None)
    }

    /// Exchanges a member session for one in another organization (`sessions/exchange`).
    pub async fn exchange_session(&self, session: &SecretString, org: &str) -> Result<OrgSession> {
        let v = self
            .call(
                "sessions/exchange",
                json!({"organization_id": org}),
                Some(session),
            )
            .await?;
        self.member_session(v, None)
    }

    /// Re-mints the session JWT (`sessions/authenticate`); the session token stays.
    pub async fn authenticate_session(&self, session: &SecretString) -> Result<OrgSession> {
        let v = self
            .call("sessions/authenticate", json!({}), Some(session))
            .await?;
        self.member_session(v, Some(session))
    }

    pub async fn revoke(&self, session: &SecretString) -> Result<()> {
        self.call("sessions/revoke", json!({}), Some(session))
            .await?;
        Ok(())
    }

    fn member_session(&self, v: Value, kept: Option<&SecretString>) -> Result<OrgSession> {
        if v.get("member_authenticated") == Some(&Value::Bool(false)) {
            let org: Option<RawOrg> = self.field(&v, "organization").ok();
            let name = org.map(|o| o.organization_name).unwrap_or_default();
            let (error, needs) = if v.get("mfa_required").is_some_and(|m| !m.is_null()) {
                ("mfa_required", "multi-factor authentication")
            } else {
                ("primary_required", "another sign-in method")
            };
            return Err(Error::Provider {
                error: error.into(),
                description: Some(format!(
                    "organization \"{name}\" requires {needs}, which Tessera cannot complete yet; nothing was stored"
                )),
            });
        }
        let token: String = self.field(&v, "session_token")?;
        let jwt: String = self.field(&v, "session_jwt")?;
        let org: RawOrg = self.field(&v, "organization")?;
        let expires_at = decode_unverified_for_display(&jwt)
            .ok()
            .and_then(|d| d.claim_u64("exp"));
        Ok(OrgSession {
            tokens: TokenSet {
                access_token: SecretString::new(jwt),
                token_type: "Bearer".into(),
                expires_at,
                refresh_token: Some(kept.cloned().unwrap_or_else(|| SecretString::new(token))),
                id_token: None,
                scope: None,
                nonce: None,
                id_token_matches_access_token: false,
                obtained_at: self.now,
            },
            org: DiscoveredOrg {
                id: org.organization_id,
                name: org.organization_name,
                slug: org.organization_slug,
                membership: "active_member".into(),
            },
        })
    }
}
