//! The OpenID Connect adapter: discovery, authorization code + PKCE + nonce, refresh, device
//! grant, revocation, introspection and userinfo ([`endpoint`]), for any provider with a
//! discovery document. Auth0, Logto and Stitch are [`Flavour`]s of it: data and small hooks
//! (where the issuer comes from, default scopes, the organization parameter and model, the
//! logout URL), in their own files.

mod assertion;
mod auth0;
pub mod discovery;
pub mod endpoint;
mod logto;
mod stitch;

use async_trait::async_trait;
use oauth2::PkceCodeVerifier;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::jwt::{DecodedJwt, TokenKind};
use crate::provider::{
    ClientAuth, DEFAULT_SCOPES, OrgModel, ProviderConfig, ProviderKind, ProviderMetadata,
    RedirectMode,
};
use crate::providers::spec::{given, words};
use crate::providers::{
    Adapter, BrowserStart, Context, DeviceAuthorization, EndedSession, Field, FieldSpec, Identity,
    OrgTokenRequest, ProviderCheck, ProviderDraft, ProviderSpec, RedirectRule, SignInMethod,
};
use crate::secret::SecretString;
use crate::vault::TokenSet;
use assertion::check_private_key;
use discovery::Discovery;
use endpoint::Endpoint;

/// What sets one OpenID provider apart from the generic one.
pub struct Flavour {
    pub kind: ProviderKind,
    pub label: &'static str,
    pub blurb: &'static str,
    /// The field that says where the provider lives, besides `issuer` (Auth0's domain,
    /// Logto's endpoint).
    pub location: Option<Location>,
    pub scopes: &'static [&'static str],
    pub resources: &'static [&'static str],
    pub client_auths: &'static [ClientAuth],
    pub org_model: OrgModel,
    pub org_sign_in_param: Option<&'static str>,
    /// Checks that the ID token of a sign-in into `requested` names that organization, and
    /// returns its id.
    pub confirm_org: fn(&DecodedJwt, &str) -> Result<String>,
    /// How a refresh buys an organization's token.
    pub org_token: Option<fn(&str) -> OrgTokenRequest>,
    /// Where to end the provider's browser session, if not the discovery's
    /// `end_session_endpoint`.
    pub logout_url: Option<fn(&ProviderMetadata) -> String>,
}

/// A form field that locates a provider, and how its value becomes the issuer.
pub struct Location {
    pub field: FieldSpec,
    pub issuer_of: fn(&str) -> String,
}

/// An OpenID Connect provider of one flavour.
pub struct OidcAdapter(pub &'static Flavour);

const ALL_AUTHS: &[ClientAuth] = &[
    ClientAuth::None,
    ClientAuth::ClientSecretBasic,
    ClientAuth::ClientSecretPost,
    ClientAuth::PrivateKeyJwt,
];

fn no_org(_: &DecodedJwt, requested: &str) -> Result<String> {
    Ok(requested.to_string())
}

pub static GENERIC: OidcAdapter = OidcAdapter(&Flavour {
    kind: ProviderKind::Oidc,
    label: "Generic OpenID Connect",
    blurb: "Any provider with a discovery document.",
    location: None,
    scopes: &DEFAULT_SCOPES,
    resources: &[],
    client_auths: ALL_AUTHS,
    org_model: OrgModel::None,
    org_sign_in_param: None,
    confirm_org: no_org,
    org_token: None,
    logout_url: None,
});
pub static AUTH0: OidcAdapter = OidcAdapter(&auth0::FLAVOUR);
pub static LOGTO: OidcAdapter = OidcAdapter(&logto::FLAVOUR);
pub static STITCH: OidcAdapter = OidcAdapter(&stitch::FLAVOUR);

impl OidcAdapter {
    fn fields(&self) -> Vec<FieldSpec> {
        let f = self.0;
        let issuer = FieldSpec::new(
            Field::Issuer,
            "Issuer",
            "The OpenID issuer URL (https, or http on 127.0.0.1 / localhost).",
        )
        .placeholder("https://id.example.com")
        .locates();
        let mut fields = match &f.location {
            Some(located) => vec![located.field.clone().unless(Field::Issuer), issuer],
            None => vec![issuer.required()],
        };
        let secret_auths = [
            ClientAuth::ClientSecretBasic,
            ClientAuth::ClientSecretPost,
            ClientAuth::PrivateKeyJwt,
        ];
        fields.extend([
            FieldSpec::new(Field::ClientId, "Client id", "The application's client id.")
                .required(),
            FieldSpec::new(
                Field::Secret,
                "Client secret or private key",
                "A client secret, or for private_key_jwt a private key (PEM or JWK). Kept only in the keychain.",
            )
            .secret()
            .required()
            .with_auth(&secret_auths),
            FieldSpec::new(
                Field::KeyId,
                "Key id",
                "The kid put in client assertions when the key (a PEM) has none.",
            )
            .with_auth(&[ClientAuth::PrivateKeyJwt]),
            FieldSpec::new(Field::Scopes, "Scopes", "Empty: the defaults shown.").list(),
            FieldSpec::new(
                Field::Audience,
                "Audience",
                "The API the access token is for.",
            ),
            FieldSpec::new(
                Field::Resources,
                "Resources",
                "RFC 8707 resource indicators.",
            )
            .list(),
        ]);
        fields
    }
}

#[async_trait]
impl Adapter for OidcAdapter {
    fn spec(&self) -> ProviderSpec {
        let f = self.0;
        ProviderSpec {
            kind: f.kind,
            label: f.label,
            blurb: f.blurb,
            fields: self.fields(),
            check: ProviderCheck::DiscoveryDocument,
            client_auths: f.client_auths.to_vec(),
            sign_in: vec![SignInMethod::Browser, SignInMethod::Device],
            redirect: RedirectRule::DeepLinkOrLoopback,
            org_model: f.org_model,
            org_sign_in_param: f.org_sign_in_param,
            default_scopes: f.scopes.iter().map(|s| s.to_string()).collect(),
            oauth_providers: Vec::new(),
        }
    }

    fn configure(&self, draft: &ProviderDraft) -> Result<ProviderConfig> {
        let f = self.0;
        let located = f
            .location
            .as_ref()
            .and_then(|l| draft_field(draft, l.field.field).map(|v| (l.issuer_of)(&v)));
        let issuer = given(&draft.issuer).or(located).ok_or_else(|| {
            Error::InvalidConfig(match &f.location {
                Some(l) => format!(
                    "{} needs its {} (or an issuer)",
                    f.label,
                    l.field.label.to_lowercase()
                ),
                None => "the provider needs an issuer".into(),
            })
        })?;
        let client_id = given(&draft.client_id)
            .ok_or_else(|| Error::InvalidConfig("the client id is empty".into()))?;
        let mut config = ProviderConfig::new(draft.name.trim(), &issuer, &client_id);
        config.kind = f.kind;
        let scopes = words(&draft.scopes);
        config.scopes = if scopes.is_empty() {
            f.scopes.iter().map(|s| s.to_string()).collect()
        } else {
            scopes
        };
        config.resources = f.resources.iter().map(|s| s.to_string()).collect();
        for r in words(&draft.resources) {
            if !config.resources.contains(&r) {
                config.resources.push(r);
            }
        }
        config.audience = given(&draft.audience);
        config.client_auth = draft
            .client_auth
            .or(draft.credential.as_ref().map(|c| c.default_auth()))
            .unwrap_or_default();
        config.key_id = given(&draft.key_id);
        config.extra_params = draft.params.iter().cloned().collect();
        config.redirect_mode = draft.redirect_mode.unwrap_or(RedirectMode::Loopback);
        self.validate(&config)?;
        Ok(config)
    }

    fn validate(&self, config: &ProviderConfig) -> Result<()> {
        config.validate_common(&config.issuer)?;
        if !config.scopes.iter().any(|s| s == "openid") {
            return Err(Error::InvalidConfig(
                "the scopes must include \"openid\"".into(),
            ));
        }
        if !self.0.client_auths.contains(&config.client_auth) {
            return Err(Error::InvalidConfig(format!(
                "{} clients authenticate with {}",
                self.0.label,
                self.0
                    .client_auths
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }

    fn check_credential(
        &self,
        config: &ProviderConfig,
        credential: Option<&SecretString>,
    ) -> Result<()> {
        match (config.client_auth, credential) {
            (auth, None) if auth.needs_secret() => Err(Error::InvalidConfig(format!(
                "{} needs a client secret (--client-secret-stdin)",
                auth.as_str()
            ))),
            (ClientAuth::PrivateKeyJwt, None) => Err(Error::InvalidConfig(
                "private_key_jwt needs a private key (--private-key-file)".into(),
            )),
            (ClientAuth::PrivateKeyJwt, Some(key)) => check_private_key(key),
            (ClientAuth::None, Some(_)) => Err(Error::InvalidConfig(
                "a public client (auth none) takes no secret".into(),
            )),
            _ => Ok(()),
        }
    }

    async fn metadata(
        &self,
        config: &ProviderConfig,
        http: &HttpClient,
        discovery: &Discovery,
        now: u64,
    ) -> Result<ProviderMetadata> {
        discovery.metadata(http, &config.issuer, now).await
    }

    async fn check(&self, config: &ProviderConfig, http: &HttpClient) -> Result<ProviderMetadata> {
        discovery::fetch(http, &config.issuer).await
    }

    fn identity(&self) -> Identity {
        Identity {
            token: TokenKind::IdToken,
            label: "ID token",
            subject_claim: "sub",
        }
    }

    fn grant_is_gone(&self, error: &Error) -> bool {
        error.oauth_error() == Some("invalid_grant")
    }

    fn confirm_org(&self, claims: &DecodedJwt, requested: &str) -> Result<String> {
        (self.0.confirm_org)(claims, requested)
    }

    fn org_token_request(&self, org: &str) -> Option<OrgTokenRequest> {
        self.0.org_token.map(|request| request(org))
    }

    async fn authorization_url(
        &self,
        ctx: &Context<'_>,
        start: BrowserStart<'_>,
    ) -> Result<(String, bool)> {
        let url = Endpoint::new(ctx).authorization_url(
            start.redirect_uri,
            start.state,
            start.nonce,
            start.challenge,
            start.params,
        )?;
        Ok((url.to_string(), true))
    }

    async fn exchange_code(
        &self,
        ctx: &Context<'_>,
        code: &str,
        verifier: PkceCodeVerifier,
        redirect_uri: &str,
    ) -> Result<TokenSet> {
        Endpoint::new(ctx)
            .exchange_code(code, verifier, redirect_uri)
            .await
    }

    async fn refresh(
        &self,
        ctx: &Context<'_>,
        refresh_token: &SecretString,
        extra: &[(String, String)],
    ) -> Result<TokenSet> {
        Endpoint::new(ctx).refresh(refresh_token, extra).await
    }

    async fn end_session(&self, ctx: &Context<'_>, tokens: &[TokenSet]) -> Result<EndedSession> {
        let endpoint = Endpoint::new(ctx);
        let mut ended = EndedSession::default();
        for rt in tokens.iter().filter_map(|t| t.refresh_token.as_ref()) {
            match endpoint.revoke(rt).await {
                Ok(()) => ended.revoked = true,
                Err(Error::Unsupported(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let base = match self.0.logout_url {
            Some(logout) => Some(logout(ctx.metadata)),
            None => ctx.metadata.end_session_endpoint.clone(),
        };
        ended.logout_url = base.and_then(|b| url::Url::parse(&b).ok()).map(|mut url| {
            url.query_pairs_mut()
                .append_pair("client_id", &ctx.config.client_id);
            url.to_string()
        });
        Ok(ended)
    }

    async fn userinfo(&self, ctx: &Context<'_>, access_token: &SecretString) -> Result<Value> {
        Endpoint::new(ctx).userinfo(access_token).await
    }

    async fn introspect(&self, ctx: &Context<'_>, token: &SecretString) -> Result<Value> {
        Endpoint::new(ctx).introspect(token, "access_token").await
    }

    async fn start_device(&self, ctx: &Context<'_>) -> Result<DeviceAuthorization> {
        Endpoint::new(ctx).start_device().await
    }

    async fn finish_device(
        &self,
        ctx: &Context<'_>,
        device: &DeviceAuthorization,
    ) -> Result<TokenSet> {
        Endpoint::new(ctx).finish_device(device).await
    }
}

/// The draft's value for `field`, where the field locates a provider.
fn draft_field(draft: &ProviderDraft, field: Field) -> Option<String> {
    given(match field {
        Field::Domain => &draft.domain,
        Field::Endpoint => &draft.endpoint,
        _ => &draft.issuer,
    })
}
