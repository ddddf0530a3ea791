//! Provider adapters: everything specific to one family of providers lives in its folder —
//! its API client, its error mapping (which of its errors mean "the grant is gone"), its
//! sign-in methods and its organization model — behind the [`Adapter`] trait:
//!
//! - [`oidc`]: OpenID Connect, with Auth0, Logto and Stitch as small flavour hooks;
//! - [`stack`]: Stack Auth's REST API;
//! - [`stytch`]: Stytch B2B's REST API (discovery magic links, member sessions).
//!
//! Adapters know nothing of the engine ([`crate::Tessera`]): they get a narrow [`Context`]
//! (the provider's configuration and endpoints, its credential, the HTTP client and the time)
//! and return tokens and facts. Storing, verifying, locking and deciding stay in the engine, so
//! the cross-provider promises hold whatever the adapter. [`ProviderKind::adapter`] holds the
//! one `match` on the kind.

pub mod oidc;
pub mod spec;
pub mod stack;
pub mod stytch;

use async_trait::async_trait;
use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::jwt::TokenKind;
use crate::provider::{ProviderConfig, ProviderKind, ProviderMetadata};
use crate::secret::SecretString;
use crate::vault::TokenSet;
use oidc::discovery::Discovery;
pub use spec::{
    Credential, Field, FieldSpec, ProviderCheck, ProviderDraft, ProviderSpec, RedirectRule,
    SignInMethod, SignInRequest,
};

/// What an adapter may use: this provider's configuration, endpoints and credential (client
/// secret, private key or project secret from the keychain), the HTTP client and the time.
/// Deliberately not the vault, the data directory or other providers.
pub struct Context<'a> {
    pub config: &'a ProviderConfig,
    pub metadata: &'a ProviderMetadata,
    pub credential: Option<&'a SecretString>,
    pub http: &'a HttpClient,
    pub now: u64,
}

/// Which token proves who signed in, and which of its claims names the person.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    pub token: TokenKind,
    /// Names the token in errors ("ID token", "session JWT").
    pub label: &'static str,
    /// The claim the account's subject comes from (`sub`, or `email` where `sub` differs per
    /// organization).
    pub subject_claim: &'static str,
}

/// The secrets of one browser sign-in, created by the engine.
pub struct BrowserStart<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
    pub challenge: PkceCodeChallenge,
    pub params: &'a [(String, String)],
}

/// What ties a mailed link (or its typed code) to the request Tessera made.
pub enum LinkProof {
    /// The PKCE verifier of the request (Stytch discovery links).
    Pkce(PkceCodeVerifier),
    /// The nonce the provider issued for the mail; the link's code must end with it (Stack).
    Nonce(SecretString),
}

/// An organization found by a discovery, as a front end shows it for picking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DiscoveredOrg {
    pub id: String,
    pub name: String,
    pub slug: Option<String>,
    /// `active_member`, `pending_member`, `invited_member`, `eligible_to_join_by_email_domain`…
    pub membership: String,
}

/// What a mailed link gave.
pub enum Redeemed {
    /// A signed-in session.
    Tokens(TokenSet),
    /// An intermediate session and the organizations the person may enter with it.
    Organizations {
        session: SecretString,
        email: String,
        orgs: Vec<DiscoveredOrg>,
    },
}

/// A session in one organization, and that organization.
pub struct OrgSession {
    pub tokens: TokenSet,
    pub org: DiscoveredOrg,
}

/// The refresh parameters that buy an organization's token, and the audience it carries.
pub struct OrgTokenRequest {
    pub params: Vec<(String, String)>,
    pub audience: String,
}

/// The session an organization session is obtained from.
pub enum OrgSessionSource<'a> {
    /// The intermediate session of a discovery.
    Intermediate(&'a SecretString),
    /// A member session of another organization.
    Member(&'a SecretString),
}

/// What ending a session at the provider did.
#[derive(Debug, Default)]
pub struct EndedSession {
    pub revoked: bool,
    /// Open this to end the provider's browser session too, if offered.
    pub logout_url: Option<String>,
}

/// A device authorization in progress (RFC 8628).
pub use oidc::endpoint::DeviceAuthorization;

fn unsupported<T>(config: &ProviderConfig, what: &str) -> Result<T> {
    Err(Error::Unsupported(format!(
        "{what} at \"{}\" ({})",
        config.name,
        config.kind.as_str()
    )))
}

/// One family of providers. Methods a family does not offer keep the default, a typed
/// `unsupported` error; the engine only calls what the spec's methods promise.
#[async_trait]
pub trait Adapter: Send + Sync {
    fn spec(&self) -> ProviderSpec;

    /// The configuration a draft describes, checked without the network.
    fn configure(&self, draft: &ProviderDraft) -> Result<ProviderConfig>;

    /// The kind's rules for a configuration, besides those every kind shares
    /// ([`ProviderConfig::validate_common`]), which it must call.
    fn validate(&self, config: &ProviderConfig) -> Result<()>;

    /// Whether `credential` fits the configuration's client authentication.
    fn check_credential(
        &self,
        config: &ProviderConfig,
        credential: Option<&SecretString>,
    ) -> Result<()>;

    /// The endpoints Tessera uses (an OpenID provider's from its cached discovery document).
    async fn metadata(
        &self,
        config: &ProviderConfig,
        http: &HttpClient,
        discovery: &Discovery,
        now: u64,
    ) -> Result<ProviderMetadata>;

    /// Checks, over the network, that the provider is where the configuration says: an
    /// OpenID provider's discovery document, a REST provider's signing keys. Returns the
    /// endpoints, with the issuer as the provider spells it.
    async fn check(&self, config: &ProviderConfig, http: &HttpClient) -> Result<ProviderMetadata>;

    fn identity(&self) -> Identity;

    /// Whether the provider said the refresh token (session) no longer exists.
    fn grant_is_gone(&self, error: &Error) -> bool;

    /// Checks that the identity token of a sign-in into organization `requested` names it,
    /// and returns the organization's id.
    fn confirm_org(&self, claims: &crate::jwt::DecodedJwt, requested: &str) -> Result<String> {
        let _ = claims;
        Ok(requested.to_string())
    }

    /// The account's current organization as a token says it (Stack's selected team).
    fn current_org(&self, _access_token: &crate::jwt::DecodedJwt) -> Option<Option<String>> {
        None
    }

    /// The authorization URL of a browser sign-in, and whether the sign-in carries a nonce.
    async fn authorization_url(
        &self,
        ctx: &Context<'_>,
        start: BrowserStart<'_>,
    ) -> Result<(String, bool)> {
        let _ = start;
        unsupported(ctx.config, "a browser sign-in")
    }

    async fn exchange_code(
        &self,
        ctx: &Context<'_>,
        code: &str,
        verifier: PkceCodeVerifier,
        redirect_uri: &str,
    ) -> Result<TokenSet> {
        let _ = (code, verifier, redirect_uri);
        unsupported(ctx.config, "a browser sign-in")
    }

    /// A refresh with `extra` parameters (an organization token's); may rotate the token.
    async fn refresh(
        &self,
        ctx: &Context<'_>,
        refresh_token: &SecretString,
        extra: &[(String, String)],
    ) -> Result<TokenSet>;

    /// Ends the sessions these token sets belong to (revocation, sign-out).
    async fn end_session(&self, ctx: &Context<'_>, tokens: &[TokenSet]) -> Result<EndedSession>;

    async fn userinfo(&self, ctx: &Context<'_>, access_token: &SecretString) -> Result<Value> {
        let _ = access_token;
        unsupported(ctx.config, "userinfo")
    }

    async fn introspect(&self, ctx: &Context<'_>, token: &SecretString) -> Result<Value> {
        let _ = token;
        unsupported(ctx.config, "introspection")
    }

    async fn start_device(&self, ctx: &Context<'_>) -> Result<DeviceAuthorization> {
        unsupported(ctx.config, "the device sign-in")
    }

    async fn finish_device(
        &self,
        ctx: &Context<'_>,
        device: &DeviceAuthorization,
    ) -> Result<TokenSet> {
        let _ = device;
        unsupported(ctx.config, "the device sign-in")
    }

    async fn password_sign_in(
        &self,
        ctx: &Context<'_>,
        email: &str,
        password: &SecretString,
    ) -> Result<TokenSet> {
        let _ = (email, password);
        unsupported(ctx.config, "a password sign-in")
    }

    /// Mails a sign-in link that comes back to `redirect_uri`.
    async fn send_email_link(
        &self,
        ctx: &Context<'_>,
        email: &str,
        redirect_uri: &str,
    ) -> Result<LinkProof> {
        let _ = (email, redirect_uri);
        unsupported(ctx.config, "an e-mail sign-in")
    }

    /// Whether `url` looks like this family's mailed link coming back.
    fn is_email_link(&self, url: &str) -> bool {
        let _ = url;
        false
    }

    /// Redeems the mailed link, checked against the request's proof.
    async fn redeem_email_link(
        &self,
        ctx: &Context<'_>,
        url: &str,
        proof: &LinkProof,
    ) -> Result<Redeemed> {
        let _ = (url, proof);
        unsupported(ctx.config, "an e-mail sign-in")
    }

    /// Redeems the short code of the mail, typed by the person.
    async fn redeem_typed_code(
        &self,
        ctx: &Context<'_>,
        typed: &str,
        proof: &LinkProof,
    ) -> Result<Redeemed> {
        let _ = (typed, proof);
        unsupported(ctx.config, "a typed sign-in code")
    }

    /// A session in `org` (Stytch: exchanged from a discovery or another organization).
    async fn open_org_session(
        &self,
        ctx: &Context<'_>,
        from: OrgSessionSource<'_>,
        org: &str,
    ) -> Result<OrgSession> {
        let _ = (from, org);
        unsupported(ctx.config, "organization sessions")
    }

    /// How a refresh buys `org`'s token (Logto).
    fn org_token_request(&self, org: &str) -> Option<OrgTokenRequest> {
        let _ = org;
        None
    }

    /// The organizations the person belongs to, from the provider (Stack's teams).
    async fn list_orgs(
        &self,
        ctx: &Context<'_>,
        access_token: &SecretString,
    ) -> Result<Vec<DiscoveredOrg>> {
        let _ = access_token;
        unsupported(ctx.config, "listing organizations")
    }

    /// Makes `org` the session's current organization at the provider (Stack's team).
    async fn select_org(
        &self,
        ctx: &Context<'_>,
        access_token: &SecretString,
        org: &str,
    ) -> Result<()> {
        let _ = (access_token, org);
        unsupported(ctx.config, "a current organization")
    }
}

impl ProviderKind {
    /// The adapter that speaks to providers of this kind: the one place that matches on it.
    pub fn adapter(self) -> &'static dyn Adapter {
        match self {
            ProviderKind::Oidc => &oidc::GENERIC,
            ProviderKind::Auth0 => &oidc::AUTH0,
            ProviderKind::Logto => &oidc::LOGTO,
            ProviderKind::Stitch => &oidc::STITCH,
            ProviderKind::StytchB2b => &stytch::StytchAdapter,
            ProviderKind::StackAuth => &stack::StackAdapter,
        }
    }

    pub fn spec(self) -> ProviderSpec {
        self.adapter().spec()
    }
}

/// Checks that a REST provider's published signing keys are there (which proves the API base
/// and the project id).
pub(crate) async fn check_jwks(http: &HttpClient, metadata: &ProviderMetadata) -> Result<()> {
    let url = url::Url::parse(&metadata.jwks_uri)
        .map_err(|e| Error::InvalidConfig(format!("\"{}\": {e}", metadata.jwks_uri)))?;
    let keys: Value = http.get_json(&url).await?;
    if !keys.get("keys").is_some_and(Value::is_array) {
        return Err(Error::Discovery(format!("{url} is not a JSON Web Key Set")));
    }
    Ok(())
}

/// Every kind's spec, in the order front ends list them.
pub fn specs() -> Vec<ProviderSpec> {
    ProviderKind::ALL.iter().map(|k| k.spec()).collect()
}
