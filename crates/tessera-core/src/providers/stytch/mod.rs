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
//! keychain, or the frontend SDK API with the public token. Errors are Stytch's
//! `error_type` ([`error`]).

mod api;
mod error;

use async_trait::async_trait;
use oauth2::PkceCodeChallenge;

use crate::error::{Error, Result};
use crate::flow::query_param;
use crate::http::HttpClient;
use crate::jwt::TokenKind;
use crate::provider::{ClientAuth, OrgModel, ProviderConfig, ProviderKind, ProviderMetadata};
use crate::providers::oidc::discovery::Discovery;
use crate::providers::spec::given;
use crate::providers::{
    Adapter, Context, EndedSession, Field, FieldSpec, Identity, LinkProof, OrgSession,
    OrgSessionSource, ProviderCheck, ProviderDraft, ProviderSpec, Redeemed, RedirectRule,
    SignInMethod, check_jwks,
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

/// Stytch's API for a project: live projects use the live host.
fn default_base(project: &str) -> &'static str {
    if project.starts_with("project-live-") {
        "https://api.stytch.com"
    } else {
        "https://test.stytch.com"
    }
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
                    "For Stytch's frontend SDK API (what a desktop app should use).",
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
                    "Empty: test.stytch.com or api.stytch.com, by the project id.",
                )
                .locates(),
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
