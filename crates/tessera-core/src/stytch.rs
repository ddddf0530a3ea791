//! The Stytch B2B adapter: discovery magic links with organizations.
//!
//! The person types an e-mail in Tessera → `magic_links/email/discovery/send` with a PKCE
//! challenge and our redirect → they click the link in their mail → the redirect brings
//! `stytch_token_type=discovery&token=…` back → `magic_links/discovery/authenticate` gives an
//! intermediate session and the discovered organizations → the person picks → each pick is
//! exchanged for a member session (`discovery/intermediate_sessions/exchange` for the first,
//! `sessions/exchange` for the others). An organization's session is its own token slot: the
//! `session_token` is the long-lived secret (keychain), the 5-minute `session_jwt` the access
//! token, re-minted by `sessions/authenticate` (the session token never rotates).
//!
//! Two ways of calling Stytch: the backend API (`/v1`, Basic `project_id:secret`, the secret
//! in the keychain) when a secret is configured, else the frontend SDK API (`/sdk/v1`, Basic
//! `public_token:session_token`, answers wrapped in `data`). Errors are Stytch's
//! `error_type`, surfaced as [`Error::Provider`] with that code.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::account::Account;
use crate::error::{Error, Result};
use crate::flow::{FLOW_TTL, query_param};
use crate::http::{HttpClient, parse_json};
use crate::jwt::{Expectations, TokenKind, decode_unverified_for_display};
use crate::provider::{ProviderConfig, ProviderKind};
use crate::secret::SecretString;
use crate::tessera::Tessera;
use crate::vault::{Slot, TokenSet};

/// Requests to one Stytch project.
pub struct StytchApi<'a> {
    pub config: &'a ProviderConfig,
    pub http: &'a HttpClient,
    /// The project secret: present means the backend API, absent the SDK API.
    pub secret: Option<&'a SecretString>,
    pub now: u64,
}

/// An organization found by discovery, as a front end shows it for picking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveredOrg {
    pub id: String,
    pub name: String,
    pub slug: Option<String>,
    /// `active_member`, `pending_member`, `invited_member`, `eligible_to_join_by_email_domain`…
    pub membership: String,
}

/// A member session for one organization.
pub struct MemberSession {
    pub tokens: TokenSet,
    pub org: DiscoveredOrg,
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
            return Err(Error::Provider {
                error: value
                    .get("error_type")
                    .or_else(|| value.get("error"))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown_error")
                    .to_string(),
                description: value
                    .get("error_message")
                    .or_else(|| value.get("error_description"))
                    .and_then(Value::as_str)
                    .map(String::from),
            });
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
    pub async fn exchange_intermediate(
        &self,
        ist: &SecretString,
        org: &str,
    ) -> Result<MemberSession> {
        let body =
            json!({"intermediate_session_token": ist.expose_secret(), "organization_id": org});
        let v = self
            .call("discovery/intermediate_sessions/exchange", body, None)
            .await?;
        self.member_session(v, None)
    }

    /// Exchanges a member session for one in another organization (`sessions/exchange`).
    pub async fn exchange_session(
        &self,
        session: &SecretString,
        org: &str,
    ) -> Result<MemberSession> {
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
    pub async fn authenticate_session(&self, session: &SecretString) -> Result<MemberSession> {
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

    /// The organizations a member session can switch to.
    pub async fn organizations(&self, session: &SecretString) -> Result<Vec<DiscoveredOrg>> {
        let v = self
            .call("discovery/organizations", json!({}), Some(session))
            .await?;
        Ok(discovered(self.field(&v, "discovered_organizations")?))
    }

    fn member_session(&self, v: Value, kept: Option<&SecretString>) -> Result<MemberSession> {
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
        Ok(MemberSession {
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

/// E-mail sign-ins waiting for their link (by provider) and discoveries waiting for the
/// person to pick organizations (by flow id). Secrets stay in memory only.
#[derive(Default)]
pub struct EmailFlows {
    sent: Mutex<HashMap<String, SentLink>>,
    discovered: Mutex<HashMap<String, Discovered>>,
}

struct SentLink {
    email: String,
    verifier: PkceCodeVerifier,
    sent_at: u64,
}

struct Discovered {
    provider: String,
    email: String,
    ist: SecretString,
    orgs: Vec<DiscoveredOrg>,
    at: u64,
}

/// A mailed sign-in link on its way.
#[derive(Debug, Clone, Serialize)]
pub struct EmailSignInStart {
    pub provider: String,
    pub email: String,
    pub expires_at: u64,
}

/// The organizations a mailed link discovered, waiting for the person's pick.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    pub flow_id: String,
    pub provider: String,
    pub email: String,
    pub organizations: Vec<DiscoveredOrg>,
}

/// Whether a redirect URL is a Stytch discovery link coming back.
pub fn is_discovery_callback(url: &str) -> bool {
    query_param(url, "stytch_token_type").as_deref() == Some("discovery")
}

impl Tessera {
    pub(crate) fn stytch<'a>(
        &'a self,
        config: &'a ProviderConfig,
        secret: Option<&'a SecretString>,
    ) -> StytchApi<'a> {
        StytchApi {
            config,
            http: self.http(),
            secret,
            now: self.now(),
        }
    }

    async fn stytch_context(
        &self,
        provider: &str,
    ) -> Result<(ProviderConfig, Option<SecretString>)> {
        let (config, _, secret) = self.provider_context(provider).await?;
        if config.kind != ProviderKind::StytchB2b {
            return Err(Error::Unsupported(format!(
                "e-mail discovery sign-in at \"{provider}\""
            )));
        }
        Ok((config, secret))
    }

    /// Stytch B2B: mails a discovery link to `email` that comes back to `redirect_uri`.
    pub async fn start_email_sign_in(
        &self,
        provider: &str,
        email: &str,
        redirect_uri: &str,
    ) -> Result<EmailSignInStart> {
        let (config, secret) = self.stytch_context(provider).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        self.stytch(&config, secret.as_ref())
            .send_discovery(email, redirect_uri, &challenge)
            .await?;
        let now = self.now();
        if let Ok(mut sent) = self.email_flows.sent.lock() {
            sent.insert(
                config.name.clone(),
                SentLink {
                    email: email.to_string(),
                    verifier,
                    sent_at: now,
                },
            );
        }
        Ok(EmailSignInStart {
            provider: config.name,
            email: email.to_string(),
            expires_at: now + 3600,
        })
    }

    /// Stytch B2B: takes the link back (`…?stytch_token_type=discovery&token=…`) and lists the
    /// organizations found for the person.
    pub async fn complete_email_link(&self, callback_url: &str) -> Result<Discovery> {
        if !is_discovery_callback(callback_url) {
            return Err(Error::MalformedCallback(
                "it is not a Stytch discovery link".into(),
            ));
        }
        let token = query_param(callback_url, "token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::MalformedCallback("the link carries no token".into()))?;
        let (provider, link) = {
            let mut sent = self
                .email_flows
                .sent
                .lock()
                .map_err(|_| Error::UnknownState)?;
            let newest = sent
                .iter()
                .max_by_key(|(_, l)| l.sent_at)
                .map(|(p, _)| p.clone());
            let provider = newest.ok_or(Error::UnknownState)?;
            let link = sent.remove(&provider).ok_or(Error::UnknownState)?;
            (provider, link)
        };
        if self.now().saturating_sub(link.sent_at) > 3600 {
            return Err(Error::FlowExpired);
        }
        let (config, secret) = self.stytch_context(&provider).await?;
        let (ist, email, organizations) = self
            .stytch(&config, secret.as_ref())
            .authenticate_discovery(&token, &link.verifier)
            .await?;
        if !email.eq_ignore_ascii_case(&link.email) {
            return Err(Error::MalformedCallback(format!(
                "the link was for {email}, not {}",
                link.email
            )));
        }
        let flow_id = format!("disc-{}", crate::fsutil::short_hash(ist.expose_secret()));
        if let Ok(mut d) = self.email_flows.discovered.lock() {
            d.insert(
                flow_id.clone(),
                Discovered {
                    provider: provider.clone(),
                    email: email.clone(),
                    ist,
                    orgs: organizations.clone(),
                    at: self.now(),
                },
            );
        }
        Ok(Discovery {
            flow_id,
            provider,
            email,
            organizations,
        })
    }

    /// Stytch B2B: signs in to the picked organizations (ids or slugs), the first with the
    /// intermediate session, the others by exchanging that member session. Each organization
    /// is stored as it succeeds; one that demands MFA stops with a clear error.
    pub async fn choose_organizations(&self, flow_id: &str, picks: &[String]) -> Result<Account> {
        let found = {
            let mut d = self
                .email_flows
                .discovered
                .lock()
                .map_err(|_| Error::UnknownState)?;
            d.remove(flow_id).ok_or(Error::UnknownState)?
        };
        if self.now().saturating_sub(found.at) > FLOW_TTL {
            return Err(Error::FlowExpired);
        }
        if picks.is_empty() {
            return Err(Error::InvalidConfig(
                "pick at least one organization".into(),
            ));
        }
        let (config, secret) = self.stytch_context(&found.provider).await?;
        let api = self.stytch(&config, secret.as_ref());
        let mut account = None;
        let mut first_session: Option<SecretString> = None;
        for pick in picks {
            let org = found
                .orgs
                .iter()
                .find(|o| o.id == *pick || o.slug.as_deref() == Some(pick.as_str()))
                .map_or(pick.as_str(), |o| o.id.as_str());
            let session = match &first_session {
                None => api.exchange_intermediate(&found.ist, org).await?,
                Some(s) => api.exchange_session(s, org).await?,
            };
            if first_session.is_none() {
                first_session = session.tokens.refresh_token.clone();
            }
            account = Some(
                self.store_stytch_session(&config, &found.email, session, &found.orgs)
                    .await?,
            );
        }
        account.ok_or(Error::UnknownState)
    }

    async fn store_stytch_session(
        &self,
        config: &ProviderConfig,
        email: &str,
        session: MemberSession,
        known: &[DiscoveredOrg],
    ) -> Result<Account> {
        let metadata = crate::provider::ProviderMetadata::synthesized(config)?;
        let expect = Expectations {
            kind: TokenKind::AccessToken,
            issuer: &config.issuer,
            audience: config.audience.as_deref(),
            client_id: &config.client_id,
            nonce: None,
            access_token: None,
            now: self.now(),
        };
        let mut claims = self
            .verify(
                &metadata,
                session.tokens.access_token.expose_secret(),
                &expect,
            )
            .await?
            .into_result("session JWT")?;
        claims.payload.insert("email".into(), email.into());
        let org = session.org.clone();
        let account = self.store_account(
            config,
            &metadata,
            session.tokens,
            &claims,
            Slot::Org(org.id.clone()),
        )?;
        self.update_account(&account.id, |a| {
            a.email = Some(email.to_string());
            for o in known.iter().chain(std::iter::once(&org)) {
                if !a.orgs.contains(&o.id) && o.membership.ends_with("member") {
                    a.orgs.push(o.id.clone());
                }
                a.org_names.insert(o.id.clone(), o.name.clone());
            }
        })
    }

    /// Stytch B2B: a session for `org`, exchanged from the current one when missing.
    pub(crate) async fn stytch_org_session(&self, account: &Account, org: &str) -> Result<()> {
        if self
            .vault()
            .load_slot(&account.id, &Slot::Org(org.to_string()))?
            .is_some()
        {
            return Ok(());
        }
        let current = account
            .current_org
            .clone()
            .ok_or_else(|| Error::NeedsSignIn(account.id.clone()))?;
        let session = self
            .vault()
            .load_slot(&account.id, &Slot::Org(current))?
            .and_then(|t| t.refresh_token)
            .ok_or_else(|| Error::NeedsSignIn(account.id.clone()))?;
        let (config, secret) = self.stytch_context(&account.provider).await?;
        let exchanged = self
            .stytch(&config, secret.as_ref())
            .exchange_session(&session, org)
            .await?;
        let email = account
            .email
            .clone()
            .unwrap_or_else(|| account.subject.clone());
        self.store_stytch_session(&config, &email, exchanged, &[])
            .await?;
        Ok(())
    }

    /// Stytch B2B: revokes each organization's session. Sessions already gone count as ended.
    pub(crate) async fn stytch_sign_out(
        &self,
        sessions: &[SecretString],
        account: &Account,
    ) -> Result<bool> {
        let (config, secret) = self.stytch_context(&account.provider).await?;
        let api = self.stytch(&config, secret.as_ref());
        let mut revoked = false;
        for s in sessions {
            match api.revoke(s).await {
                Ok(()) => revoked = true,
                Err(e) if e.grant_is_gone() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(revoked)
    }
}
