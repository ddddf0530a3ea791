//! Inspection: a token explained and verified (a JWT against the provider's JWKS, an opaque
//! token by introspection), and the provider's userinfo. Reads only; never contains the
//! token itself.

use serde_json::{Map, Value};

use crate::account::Account;
use crate::claims::{explain_claims, explain_header};
use crate::error::{Error, Result};
use crate::jwt::{Check, CheckStatus, Expectations, TokenKind, looks_like_jwt};
use crate::secret::SecretString;
use crate::vault::Slot;

use super::types::ClaimsReport;
use super::{Resolved, Tessera};

impl Tessera {
    /// The access or ID token explained and verified.
    pub async fn claims(&self, query: &str, kind: TokenKind) -> Result<ClaimsReport> {
        let account = self.account(query)?;
        let slot = self.default_plan(&account)?.at_slot;
        self.slot_claims(&account, &slot, kind, None).await
    }

    /// The token in `slot` explained and verified; `audience` overrides the access token's
    /// expected audience (an organization token's own).
    pub(crate) async fn slot_claims(
        &self,
        account: &Account,
        slot: &Slot,
        kind: TokenKind,
        audience: Option<&str>,
    ) -> Result<ClaimsReport> {
        let tokens = self.load_slot(account, slot)?;
        let p = self.resolve(&account.provider).await?;
        let now = self.now();
        let (name, token) = match kind {
            TokenKind::IdToken => (
                "id_token",
                tokens
                    .id_token
                    .as_ref()
                    .ok_or_else(|| Error::Unsupported("an ID token for this account".into()))?,
            ),
            TokenKind::AccessToken => ("access_token", &tokens.access_token),
        };
        if !looks_like_jwt(token.expose_secret()) {
            return self.opaque_report(account, &p, token).await;
        }
        let config = &p.config;
        let audience = match kind {
            TokenKind::IdToken => Some(config.client_id.as_str()),
            TokenKind::AccessToken => audience.or(config
                .audience
                .as_deref()
                .or(config.resources.first().map(String::as_str))),
        };
        let (issuer, audience) = p.expected_issuer(token.expose_secret(), audience);
        let expect = Expectations {
            kind,
            issuer: &issuer,
            audience: audience.as_deref(),
            client_id: &config.client_id,
            nonce: tokens.nonce.as_deref(),
            access_token: tokens
                .id_token_matches_access_token
                .then(|| tokens.access_token.expose_secret()),
            now,
        };
        let v = self
            .verify(&p.metadata, token.expose_secret(), &expect)
            .await?;
        Ok(ClaimsReport {
            account_id: account.id.clone(),
            token: name.into(),
            format: "jwt".into(),
            header: explain_header(&v.decoded.header),
            claims: explain_claims(&v.decoded.payload, now),
            verified: v.passed(),
            expires_at: v.decoded.claim_u64("exp"),
            checks: v.checks,
        })
    }

    async fn opaque_report(
        &self,
        account: &Account,
        p: &Resolved,
        token: &SecretString,
    ) -> Result<ClaimsReport> {
        let now = self.now();
        let (claims, checks, active) = match p.adapter.introspect(&self.context(p), token).await {
            Ok(Value::Object(map)) => {
                let active = map.get("active").and_then(Value::as_bool).unwrap_or(false);
                let check = Check {
                    name: "introspection",
                    status: if active {
                        CheckStatus::Pass
                    } else {
                        CheckStatus::Fail
                    },
                    detail: if active {
                        "the provider says the token is active"
                    } else {
                        "the provider says the token is not active"
                    }
                    .into(),
                };
                (map, vec![check], active)
            }
            Ok(_) => {
                return Err(Error::MalformedResponse {
                    url: "introspection".into(),
                    reason: "not an object".into(),
                });
            }
            Err(Error::Unsupported(_)) => (
                Map::new(),
                vec![Check {
                    name: "introspection",
                    status: CheckStatus::Skipped,
                    detail: "opaque token and the provider offers no introspection".into(),
                }],
                false,
            ),
            Err(e) => return Err(e),
        };
        Ok(ClaimsReport {
            account_id: account.id.clone(),
            token: "access_token".into(),
            format: "opaque".into(),
            header: Vec::new(),
            expires_at: claims
                .get("exp")
                .and_then(Value::as_u64)
                .or(account.access_expires_at),
            claims: explain_claims(&claims, now),
            checks,
            verified: active,
        })
    }

    /// The provider's userinfo for the account: a JSON object, and from an OpenID provider
    /// one about the account's own subject (OIDC Core 5.3.2: an answer naming another `sub`
    /// must not be used).
    pub async fn userinfo(&self, query: &str) -> Result<Value> {
        let account = self.account(query)?;
        let token = self.access_token(&account.id, 30, false).await?;
        let p = self.resolve(&account.provider).await?;
        let info = p.adapter.userinfo(&self.context(&p), &token.token).await?;
        let refuse = |reason: String| Error::MalformedResponse {
            url: "the userinfo endpoint".into(),
            reason,
        };
        if !info.is_object() {
            return Err(refuse("it is not a JSON object".into()));
        }
        if p.adapter.identity().token == TokenKind::IdToken {
            match info.get("sub").and_then(Value::as_str) {
                Some(sub) if sub == account.subject => {}
                Some(sub) => {
                    return Err(refuse(format!(
                        "it is about subject \"{sub}\", not the account's"
                    )));
                }
                None => return Err(refuse("it names no subject (sub)".into())),
            }
        }
        Ok(info)
    }

    /// RFC 7662 introspection of the account's access token.
    pub async fn introspect(&self, query: &str) -> Result<Value> {
        let account = self.account(query)?;
        let tokens = self.load_slot(&account, &self.default_plan(&account)?.at_slot)?;
        let p = self.resolve(&account.provider).await?;
        p.adapter
            .introspect(&self.context(&p), &tokens.access_token)
            .await
    }
}
