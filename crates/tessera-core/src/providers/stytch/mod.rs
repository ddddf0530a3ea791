//! The Stytch B2B adapter: discovery magic links with organizations.
//!
//! The person types an e-mail in Tessera → `magic_links/email/discovery/send` with a PKCE
//! challenge and our redirect → they click the link in their mail → the redirect brings
//! `stytch_token_type=discovery&token=…` back → `magic_links/discovery/authenticate` (with the
//! PKCE verifier, which binds the link to Tessera's request) gives an intermediate session and
//! the discovered organizations → the person picks → each pick is exchanged for a member
//! session (`discovery/intermediate_sessions/exchange` for the first, `sessions/exchange` for
//! the others). An organization's session is its own token slot: the `session_token` is the
//! long-lived secret (keychain), the 5-minute `session_jwt` the access token, re-minted by
//! `sessions/authenticate` (the session token never rotates). The session JWT's `sub` is the
//! member, which differs per organization, so the person is named by the e-mail address.
//!
//! Two ways of calling Stytch ([`api`]): the backend API with the project secret from the
//! keychain, or the frontend SDK API with the public token, as the official SDKs call it
//! (`X-SDK-Client` naming the app `dev.tessera`, which the project's SDK configuration must
//! authorize). Errors are Stytch's `error_type` ([`error`]).
//!
//! Stytch matches redirect URLs exactly, port included, so the mailed link comes back to
//! addresses a person registers once: `dev.tessera:/callback` (the app) and
//! `http://127.0.0.1:PORT/callback` on the provider's fixed port (the command line). A
//! project on its own domain (a CNAME as API base) signs session JWTs with that base URL as
//! issuer, which is accepted besides `stytch.com/{project}`; no other issuer is.

mod api;
mod error;

use async_trait::async_trait;
use oauth2::PkceCodeChallenge;

use crate::error::{Error, Result};
use crate::flow::{DEEP_LINK_REDIRECT, query_param};
use crate::http::HttpClient;
use crate::jwt::TokenKind;
use crate::provider::{ClientAuth, OrgModel, ProviderConfig, ProviderKind, ProviderMetadata};
use crate::providers::oidc::discovery::Discovery;
use crate::providers::spec::given;
use crate::providers::{
    Adapter, Context, EndedSession, Field, FieldSpec, Identity, LinkProof, OrgSession,
    OrgSessionSource, ProviderCheck, ProviderDraft, ProviderSpec, Redeemed, RedirectRule,
    SignInMethod, TokenIssuer, check_jwks,
};
use crate::secret::SecretString;
use crate::vault::TokenSet;
use api::StytchApi;

/// The Stytch B2B adapter.
pub struct StytchAdapter;

fn api<'a>(ctx: &Context<'a>) -> StytchApi<'a> {
    StytchApi {
        config: ctx.config,
        http: ctx.http,
        secret: ctx.credential,
        now: ctx.now,
    }
}

/// The loopback port of the command line's redirect when none is chosen.
pub const DEFAULT_LOOPBACK_PORT: u16 = 8714;

/// Stytch's own API hosts (live and test); any other API base is a project's custom domain.
const STYTCH_HOSTS: [&str; 2] = ["https://api.stytch.com", "https://test.stytch.com"];

/// Stytch's API for a project: live projects use the live host.
fn default_base(project: &str) -> &'static str {
    if project.starts_with("project-live-") {
        STYTCH_HOSTS[0]
    } else {
        STYTCH_HOSTS[1]
    }
}

/// The fixed loopback port a draft asks for: a number a user may listen on.
fn redirect_port(draft: &ProviderDraft) -> Result<u16> {
    let Some(text) = given(&draft.redirect_port) else {
        return Ok(DEFAULT_LOOPBACK_PORT);
    };
    text.parse::<u16>()
        .ok()
        .filter(|p| *p >= 1024)
        .ok_or_else(|| {
            Error::InvalidConfig(format!(
                "the redirect port must be a number from 1024 to 65535, not \"{text}\""
            ))
        })
}

#[async_trait]
impl Adapter for StytchAdapter {
    fn spec(&self) -> ProviderSpec {
        ProviderSpec {
            kind: ProviderKind::StytchB2b,
            label: "Stytch B2B",
            blurb: "Sign in with a mailed discovery link, then pick organizations.",
            fields: vec![
                FieldSpec::new(
                    Field::ProjectId,
                    "Project id",
                    "project-test-… or project-live-…",
                )
                .required()
                .locates(),
                FieldSpec::new(
                    Field::ClientKey,
                    "Public token",
                    "For Stytch's frontend SDK API (what a desktop app should use). In the \
                     project's SDK configuration, enable the Email Magic Links discovery flow \
                     and add dev.tessera as an authorized application (bundle id); Tessera \
                     sends no browser origin.",
                )
                .unless(Field::Secret)
                .locates(),
                FieldSpec::new(
                    Field::Secret,
                    "Project secret",
                    "Instead of the public token: Stytch's backend API. Kept only in the keychain.",
                )
                .secret(),
                FieldSpec::new(
                    Field::BaseUrl,
                    "API base URL",
                    "Empty: test.stytch.com or api.stytch.com, by the project id. A custom \
                     domain's session JWTs are accepted with that base URL as issuer.",
                )
                .locates(),
                FieldSpec::new(
                    Field::RedirectPort,
                    "Loopback redirect port",
                    "Stytch accepts only redirect URLs registered exactly, port included: \
                     register http://127.0.0.1:PORT/callback (the command line) and \
                     dev.tessera:/callback (the app) as discovery redirect URLs in the \
                     Stytch dashboard. Empty: 8714.",
                )
                .placeholder("8714"),
            ],
            check: ProviderCheck::SigningKeys,
            client_auths: Vec::new(),
            sign_in: vec![SignInMethod::EmailLink],
            redirect: RedirectRule::DeepLinkOrLoopback,
            org_model: OrgModel::SessionPerOrg,
            org_sign_in_param: None,
            default_scopes: Vec::new(),
            oauth_providers: Vec::new(),
        }
    }

    fn configure(&self, draft: &ProviderDraft) -> Result<ProviderConfig> {
        let project = given(&draft.project_id).ok_or_else(|| {
            Error::InvalidConfig("a Stytch provider needs a project id (--project-id)".into())
        })?;
        let base = given(&draft.base_url)
            .unwrap_or_else(|| default_base(&project).into())
            .trim_end_matches('/')
            .to_string();
        let mut config = ProviderConfig::new(draft.name.trim(), &base, &project);
        config.issuer = format!("stytch.com/{project}");
        config.kind = ProviderKind::StytchB2b;
        config.scopes = Vec::new();
        config.audience = Some(project.clone());
        config.project_id = Some(project);
        config.client_key = given(&draft.client_key);
        config.api_base = Some(base);
        config.loopback_port = Some(redirect_port(draft)?);
        config.redirect_mode = draft
            .redirect_mode
            .unwrap_or(crate::provider::RedirectMode::DeepLink);
        if draft.credential.is_some() {
            config.client_auth = ClientAuth::ClientSecretBasic;
        }
        self.validate(&config)?;
        Ok(config)
    }

    /// Stytch's JWT issuer is `stytch.com/<project>`, not a URL: the API base locates it.
    fn validate(&self, config: &ProviderConfig) -> Result<()> {
        config.validate_common(config.api_base.as_deref().unwrap_or_default())
    }

    fn check_credential(
        &self,
        config: &ProviderConfig,
        credential: Option<&SecretString>,
    ) -> Result<()> {
        match (config.client_auth, credential, &config.client_key) {
            (ClientAuth::ClientSecretBasic, Some(_), _) | (ClientAuth::None, None, Some(_)) => {
                Ok(())
            }
            _ => Err(Error::InvalidConfig(format!(
                "\"{}\" needs a public token (--public-token) or a project secret (--secret-stdin)",
                config.name
            ))),
        }
    }

    async fn metadata(
        &self,
        config: &ProviderConfig,
        _http: &HttpClient,
        _discovery: &Discovery,
        _now: u64,
    ) -> Result<ProviderMetadata> {
        Ok(synthesized(config))
    }

    async fn check(&self, config: &ProviderConfig, http: &HttpClient) -> Result<ProviderMetadata> {
        let metadata = synthesized(config);
        check_jwks(http, &metadata).await?;
        Ok(metadata)
    }

    fn identity(&self) -> Identity {
        Identity {
            token: TokenKind::AccessToken,
            label: "session JWT",
            subject_claim: "email",
        }
    }

    fn grant_is_gone(&self, error: &Error) -> bool {
        error::grant_is_gone(error)
    }

    /// On a custom domain, Stytch signs with the API base as issuer (stytch-node accepts
    /// `stytch.com/{project}` and the base URL, no trailing slash).
    fn other_issuers(&self, config: &ProviderConfig) -> Vec<TokenIssuer> {
        custom_domain_issuer(config)
            .map(|issuer| TokenIssuer {
                issuer,
                audience: config.audience.clone().unwrap_or_default(),
            })
            .into_iter()
            .collect()
    }

    fn loopback_port(&self, config: &ProviderConfig) -> Option<u16> {
        Some(config.loopback_port.unwrap_or(DEFAULT_LOOPBACK_PORT))
    }

    fn redirect_urls(&self, config: &ProviderConfig) -> Vec<String> {
        let port = self.loopback_port(config).unwrap_or(DEFAULT_LOOPBACK_PORT);
        vec![
            format!("http://127.0.0.1:{port}/callback"),
            DEEP_LINK_REDIRECT.to_string(),
        ]
    }

    async fn refresh(
        &self,
        ctx: &Context<'_>,
        refresh_token: &SecretString,
        _extra: &[(String, String)],
    ) -> Result<TokenSet> {
        Ok(api(ctx).authenticate_session(refresh_token).await?.tokens)
    }

    /// Revokes each organization's session; sessions already gone count as ended.
    async fn end_session(&self, ctx: &Context<'_>, tokens: &[TokenSet]) -> Result<EndedSession> {
        let api = api(ctx);
        let mut ended = EndedSession::default();
        for session in tokens.iter().filter_map(|t| t.refresh_token.as_ref()) {
            match api.revoke(session).await {
                Ok(()) => ended.revoked = true,
                Err(e) if error::grant_is_gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ended)
    }

    async fn send_email_link(
        &self,
        ctx: &Context<'_>,
        email: &str,
        redirect_uri: &str,
    ) -> Result<LinkProof> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        api(ctx)
            .send_discovery(email, redirect_uri, &challenge)
            .await?;
        Ok(LinkProof::Pkce(verifier))
    }

    fn is_email_link(&self, url: &str) -> bool {
        query_param(url, "stytch_token_type").as_deref() == Some("discovery")
    }

    async fn redeem_email_link(
        &self,
        ctx: &Context<'_>,
        url: &str,
        proof: &LinkProof,
    ) -> Result<Redeemed> {
        if !self.is_email_link(url) {
            return Err(Error::MalformedCallback(
                "it is not a Stytch discovery link".into(),
            ));
        }
        let token = query_param(url, "token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::MalformedCallback("the link carries no token".into()))?;
        let LinkProof::Pkce(verifier) = proof else {
            return Err(Error::UnknownState);
        };
        let (session, email, orgs) = api(ctx).authenticate_discovery(&token, verifier).await?;
        Ok(Redeemed::Organizations {
            session,
            email,
            orgs,
        })
    }

    async fn open_org_session(
        &self,
        ctx: &Context<'_>,
        from: OrgSessionSource<'_>,
        org: &str,
    ) -> Result<OrgSession> {
        match from {
            OrgSessionSource::Intermediate(ist) => api(ctx).exchange_intermediate(ist, org).await,
            OrgSessionSource::Member(session) => api(ctx).exchange_session(session, org).await,
        }
    }
}

/// The issuer of a project's session JWTs on its own domain: the API base when it is not
/// one of Stytch's hosts.
fn custom_domain_issuer(config: &ProviderConfig) -> Option<String> {
    let base = config.api_base.as_deref()?.trim_end_matches('/');
    (!STYTCH_HOSTS.contains(&base)).then(|| base.to_string())
}

/// The endpoints of a Stytch project (no discovery document; the issuer is not a URL).
fn synthesized(config: &ProviderConfig) -> ProviderMetadata {
    let base = config.api_base.as_deref().unwrap_or_default();
    let project = config.project_id.as_deref().unwrap_or_default();
    ProviderMetadata {
        issuer: config.issuer.clone(),
        authorization_endpoint: format!("{base}/v1/b2b/magic_links/email/discovery/send"),
        token_endpoint: format!("{base}/v1/b2b/sessions/authenticate"),
        jwks_uri: format!("{base}/v1/b2b/sessions/jwks/{project}"),
        userinfo_endpoint: None,
        revocation_endpoint: None,
        introspection_endpoint: None,
        end_session_endpoint: None,
        device_authorization_endpoint: None,
        authorization_response_iss_parameter_supported: false,
        code_challenge_methods_supported: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(base: Option<&str>, port: Option<&str>) -> ProviderDraft {
        ProviderDraft {
            kind: ProviderKind::StytchB2b,
            name: "s".into(),
            project_id: Some("project-test-1".into()),
            client_key: Some("public-token-test-1".into()),
            base_url: base.map(String::from),
            redirect_port: port.map(String::from),
            ..ProviderDraft::default()
        }
    }

    #[test]
    fn only_a_custom_domain_adds_its_base_url_as_issuer() {
        let own = draft(None, None).configure().unwrap();
        assert_eq!(own.api_base.as_deref(), Some("https://test.stytch.com"));
        assert!(StytchAdapter.other_issuers(&own).is_empty());
        let custom = draft(Some("https://login.example.com/"), None)
            .configure()
            .unwrap();
        assert_eq!(
            StytchAdapter.other_issuers(&custom),
            [TokenIssuer {
                issuer: "https://login.example.com".into(),
                audience: "project-test-1".into()
            }]
        );
    }

    #[test]
    fn the_redirect_port_is_fixed_and_shown_as_the_urls_to_register() {
        let default = draft(None, None).configure().unwrap();
        assert_eq!(default.loopback_port, Some(DEFAULT_LOOPBACK_PORT));
        let chosen = draft(None, Some(" 9123 ")).configure().unwrap();
        assert_eq!(StytchAdapter.loopback_port(&chosen), Some(9123));
        assert_eq!(
            StytchAdapter.redirect_urls(&chosen),
            ["http://127.0.0.1:9123/callback", "dev.tessera:/callback"]
        );
        let mut old = chosen;
        old.loopback_port = None;
        assert_eq!(
            StytchAdapter.loopback_port(&old),
            Some(DEFAULT_LOOPBACK_PORT),
            "a configuration from before fixed ports gets the default"
        );
        for bad in ["80", "65536", "port"] {
            let err = draft(None, Some(bad)).configure().unwrap_err();
            assert_eq!(err.code(), "invalid_config", "{bad}");
        }
    }
}
