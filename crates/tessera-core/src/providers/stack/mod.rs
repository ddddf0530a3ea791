//! The Stack Auth adapter. Stack Auth is not OpenID Connect but a REST API (`/api/v1`, see
//! [`api`]) with an OAuth-shaped token endpoint and a per-project ES256 JWKS; its access token
//! (a JWT, `sub` the user) is what proves who signed in. Refresh returns only an access token
//! (refresh tokens never rotate). Ways in: OAuth through the browser (a social provider per
//! sign-in, back over loopback only: Stack accepts no custom scheme), e-mail and password, or
//! a mailed code whose link (or six typed characters) completes the nonce Stack issued for
//! that mail. Teams are the organizations; the selected team is a user attribute carried in
//! the access token (`selected_team_id`).

mod api;
mod error;

use async_trait::async_trait;
use oauth2::PkceCodeVerifier;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::flow::query_param;
use crate::http::HttpClient;
use crate::jwt::{DecodedJwt, TokenKind};
use crate::provider::{OrgModel, ProviderConfig, ProviderKind, ProviderMetadata};
use crate::providers::oidc::discovery::Discovery;
use crate::providers::spec::given;
use crate::providers::{
    Adapter, BrowserStart, Context, DiscoveredOrg, EndedSession, Field, FieldSpec, Identity,
    LinkProof, ProviderCheck, ProviderDraft, ProviderSpec, Redeemed, RedirectRule, SignInMethod,
    check_jwks,
};
use crate::secret::SecretString;
use crate::vault::TokenSet;
use api::StackApi;

/// The sign-in parameter naming the OAuth provider (`github`, `google`, …) of a browser
/// sign-in.
pub const OAUTH_PROVIDER_PARAM: &str = "oauth_provider";

/// Stack Auth's API when no base URL is given.
pub const STACK_DEFAULT_BASE: &str = "https://api.stack-auth.com";

/// The Stack Auth adapter.
pub struct StackAdapter;

fn api<'a>(ctx: &Context<'a>) -> StackApi<'a> {
    StackApi {
        config: ctx.config,
        http: ctx.http,
        now: ctx.now,
    }
}

/// The link's (or typed) code must end with the nonce Stack issued for the mail Tessera
/// asked for: a code from another mail (someone else's account) is refused before use.
fn bound_code(code: &str, proof: &LinkProof) -> Result<SecretString> {
    let LinkProof::Nonce(nonce) = proof else {
        return Err(Error::UnknownState);
    };
    let nonce = nonce.expose_secret();
    match code.strip_suffix(nonce) {
        Some(typed) if !typed.is_empty() => Ok(SecretString::new(code.to_string())),
        _ => Err(Error::MalformedCallback(
            "the sign-in link does not belong to the mail Tessera asked for".into(),
        )),
    }
}

#[async_trait]
impl Adapter for StackAdapter {
    fn spec(&self) -> ProviderSpec {
        ProviderSpec {
            kind: ProviderKind::StackAuth,
            label: "Stack Auth",
            blurb: "GitHub, Google or Microsoft through the browser, e-mail and password, or a mailed code; teams as organizations.",
            fields: vec![
                FieldSpec::new(
                    Field::ProjectId,
                    "Project id",
                    "The Stack Auth project's id.",
                )
                .required()
                .locates(),
                FieldSpec::new(
                    Field::ClientKey,
                    "Publishable client key",
                    "The project's publishable client key (pck_…).",
                )
                .required()
                .locates(),
                FieldSpec::new(
                    Field::BaseUrl,
                    "API base URL",
                    "Empty: https://api.stack-auth.com.",
                )
                .placeholder(STACK_DEFAULT_BASE)
                .locates(),
            ],
            check: ProviderCheck::SigningKeys,
            client_auths: Vec::new(),
            sign_in: vec![
                SignInMethod::OAuth,
                SignInMethod::Password,
                SignInMethod::MailedCode,
            ],
            redirect: RedirectRule::LoopbackOnly,
            org_model: OrgModel::CurrentOrg,
            org_sign_in_param: None,
            default_scopes: vec!["openid".into()],
            oauth_providers: vec!["github", "google", "microsoft"],
        }
    }

    fn configure(&self, draft: &ProviderDraft) -> Result<ProviderConfig> {
        let project = given(&draft.project_id).ok_or_else(|| {
            Error::InvalidConfig("a Stack Auth provider needs a project id (--project-id)".into())
        })?;
        let base = given(&draft.base_url)
            .unwrap_or_else(|| STACK_DEFAULT_BASE.into())
            .trim_end_matches('/')
            .to_string();
        let issuer = format!("{base}/api/v1/projects/{project}");
        let mut config = ProviderConfig::new(draft.name.trim(), &issuer, &project);
        config.kind = ProviderKind::StackAuth;
        config.scopes = vec!["openid".into()];
        config.audience = Some(project.clone());
        config.project_id = Some(project);
        config.client_key = given(&draft.client_key);
        config.api_base = Some(base);
        config.redirect_mode = crate::provider::RedirectMode::Loopback;
        self.validate(&config)?;
        Ok(config)
    }

    fn validate(&self, config: &ProviderConfig) -> Result<()> {
        config.validate_common(&config.issuer)?;
        synthesized(config).map(|_| ())
    }

    fn check_credential(
        &self,
        config: &ProviderConfig,
        credential: Option<&SecretString>,
    ) -> Result<()> {
        match credential {
            Some(_) => Err(Error::InvalidConfig(format!(
                "\"{}\": a Stack Auth client takes no secret (only its publishable key)",
                config.name
            ))),
            None => Ok(()),
        }
    }

    async fn metadata(
        &self,
        config: &ProviderConfig,
        _http: &HttpClient,
        _discovery: &Discovery,
        _now: u64,
    ) -> Result<ProviderMetadata> {
        synthesized(config)
    }

    async fn check(&self, config: &ProviderConfig, http: &HttpClient) -> Result<ProviderMetadata> {
        let metadata = synthesized(config)?;
        check_jwks(http, &metadata).await?;
        Ok(metadata)
    }

    fn identity(&self) -> Identity {
        Identity {
            token: TokenKind::AccessToken,
            label: "access token",
            subject_claim: "sub",
        }
    }

    fn grant_is_gone(&self, error: &Error) -> bool {
        error::grant_is_gone(error)
    }

    fn current_org(&self, access_token: &DecodedJwt) -> Option<Option<String>> {
        Some(access_token.claim_str("selected_team_id").map(String::from))
    }

    async fn authorization_url(
        &self,
        ctx: &Context<'_>,
        start: BrowserStart<'_>,
    ) -> Result<(String, bool)> {
        let url = api(ctx)
            .authorization_url(
                start.redirect_uri,
                start.state,
                start.challenge,
                start.params,
            )
            .await?;
        Ok((url.to_string(), false))
    }

    async fn exchange_code(
        &self,
        ctx: &Context<'_>,
        code: &str,
        verifier: PkceCodeVerifier,
        redirect_uri: &str,
    ) -> Result<TokenSet> {
        api(ctx).exchange_code(code, &verifier, redirect_uri).await
    }

    async fn refresh(
        &self,
        ctx: &Context<'_>,
        refresh_token: &SecretString,
        _extra: &[(String, String)],
    ) -> Result<TokenSet> {
        api(ctx).refresh(refresh_token).await
    }

    /// Ends the session at Stack (with a fresh access token when the stored one has
    /// expired). A session that is already gone counts as ended, not revoked.
    async fn end_session(&self, ctx: &Context<'_>, tokens: &[TokenSet]) -> Result<EndedSession> {
        let mut ended = EndedSession::default();
        let api = api(ctx);
        for set in tokens {
            let access = match (set.remaining(ctx.now), &set.refresh_token) {
                (Some(left), Some(rt)) if left < 30 => match api.refresh(rt).await {
                    Ok(fresh) => fresh.access_token,
                    Err(e) if error::grant_is_gone(&e) => continue,
                    Err(e) => return Err(e),
                },
                _ => set.access_token.clone(),
            };
            match api.sign_out(&access).await {
                Ok(()) => ended.revoked = true,
                Err(e) if error::grant_is_gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ended)
    }

    async fn userinfo(&self, ctx: &Context<'_>, access_token: &SecretString) -> Result<Value> {
        api(ctx).me(access_token).await
    }

    async fn password_sign_in(
        &self,
        ctx: &Context<'_>,
        email: &str,
        password: &SecretString,
    ) -> Result<TokenSet> {
        api(ctx).password_sign_in(email, password).await
    }

    async fn send_email_link(
        &self,
        ctx: &Context<'_>,
        email: &str,
        redirect_uri: &str,
    ) -> Result<LinkProof> {
        let nonce = api(ctx).send_sign_in_code(email, redirect_uri).await?;
        Ok(LinkProof::Nonce(nonce))
    }

    /// A mailed link carries a `code` and, unlike a browser sign-in's redirect, no `state`.
    fn is_email_link(&self, url: &str) -> bool {
        query_param(url, "code").is_some() && query_param(url, "state").is_none()
    }

    async fn redeem_email_link(
        &self,
        ctx: &Context<'_>,
        url: &str,
        proof: &LinkProof,
    ) -> Result<Redeemed> {
        let code = query_param(url, "code")
            .ok_or_else(|| Error::MalformedCallback("the sign-in link carried no code".into()))?;
        let code = bound_code(&code, proof)?;
        Ok(Redeemed::Tokens(api(ctx).code_sign_in(&code).await?))
    }

    async fn redeem_typed_code(
        &self,
        ctx: &Context<'_>,
        typed: &str,
        proof: &LinkProof,
    ) -> Result<Redeemed> {
        let typed = typed.trim().to_uppercase();
        if typed.len() != 6 || !typed.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::InvalidConfig(
                "the code from the mail has six letters and digits".into(),
            ));
        }
        let LinkProof::Nonce(nonce) = proof else {
            return Err(Error::UnknownState);
        };
        let code = SecretString::new(format!("{typed}{}", nonce.expose_secret()));
        Ok(Redeemed::Tokens(api(ctx).code_sign_in(&code).await?))
    }

    async fn list_orgs(
        &self,
        ctx: &Context<'_>,
        access_token: &SecretString,
    ) -> Result<Vec<DiscoveredOrg>> {
        let teams = api(ctx).teams(access_token).await?;
        Ok(teams
            .into_iter()
            .map(|t| DiscoveredOrg {
                name: t.display_name.unwrap_or_default(),
                id: t.id,
                slug: None,
                membership: "active_member".into(),
            })
            .collect())
    }

    async fn select_org(
        &self,
        ctx: &Context<'_>,
        access_token: &SecretString,
        org: &str,
    ) -> Result<()> {
        api(ctx).select_team(access_token, org).await
    }
}

/// The endpoints of a Stack project, which has no discovery document.
fn synthesized(config: &ProviderConfig) -> Result<ProviderMetadata> {
    let base = config.api_base.as_deref().unwrap_or(STACK_DEFAULT_BASE);
    let metadata = ProviderMetadata {
        issuer: config.issuer.clone(),
        authorization_endpoint: format!("{base}/api/v1/auth/oauth/authorize"),
        token_endpoint: format!("{base}/api/v1/auth/oauth/token"),
        jwks_uri: format!("{}/.well-known/jwks.json", config.issuer),
        userinfo_endpoint: Some(format!("{base}/api/v1/users/me")),
        revocation_endpoint: None,
        introspection_endpoint: None,
        end_session_endpoint: None,
        device_authorization_endpoint: None,
        authorization_response_iss_parameter_supported: false,
        code_challenge_methods_supported: None,
    };
    metadata.check(&config.issuer)?;
    Ok(metadata)
}
