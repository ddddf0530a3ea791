//! Provider configuration (what a person registers: issuer, client, scopes…) and OpenID
//! Connect discovery with caching. A configuration never holds a secret: client secrets and
//! private keys live in the keychain (see [`crate::vault`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::http::{HttpClient, ensure_allowed};

/// Which adapter speaks to the provider. Auth0, Logto and Stitch are OpenID Connect with
/// their own parameters and organization rules; Stytch B2B and Stack Auth have REST adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderKind {
    #[default]
    Oidc,
    Auth0,
    Logto,
    Stitch,
    StytchB2b,
    StackAuth,
}

/// How a provider's organizations relate to tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgModel {
    /// No organizations.
    None,
    /// Each organization is its own sign-in with its own token set (Auth0 `organization=`).
    SignInPerOrg,
    /// Organization tokens come from the account's refresh token (Logto `organization_id`).
    TokenPerOrg,
    /// One session with a current organization chosen at the provider (Stack Auth teams).
    CurrentOrg,
    /// A session per organization, more obtained by exchanging one (Stytch B2B).
    SessionPerOrg,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Oidc,
        ProviderKind::Auth0,
        ProviderKind::Logto,
        ProviderKind::Stitch,
        ProviderKind::StytchB2b,
        ProviderKind::StackAuth,
    ];

    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == value)
            .ok_or_else(|| Error::InvalidConfig(format!("unknown provider kind \"{value}\"")))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "oidc",
            ProviderKind::Auth0 => "auth0",
            ProviderKind::Logto => "logto",
            ProviderKind::Stitch => "stitch",
            ProviderKind::StytchB2b => "stytch_b2b",
            ProviderKind::StackAuth => "stack_auth",
        }
    }

    /// Whether the provider is spoken to with OpenID Connect (discovery, code flow, ID token).
    pub fn is_oidc(self) -> bool {
        matches!(
            self,
            ProviderKind::Oidc | ProviderKind::Auth0 | ProviderKind::Logto | ProviderKind::Stitch
        )
    }

    pub fn org_model(self) -> OrgModel {
        match self {
            ProviderKind::Auth0 => OrgModel::SignInPerOrg,
            ProviderKind::Logto => OrgModel::TokenPerOrg,
            ProviderKind::StackAuth => OrgModel::CurrentOrg,
            ProviderKind::StytchB2b => OrgModel::SessionPerOrg,
            _ => OrgModel::None,
        }
    }

    /// The authorization parameter that asks for a sign-in into one organization (Auth0
    /// `organization`, Logto `organization_id`), where the kind has one.
    pub fn org_sign_in_param(self) -> Option<&'static str> {
        match self {
            ProviderKind::Auth0 => Some("organization"),
            ProviderKind::Logto => Some("organization_id"),
            _ => None,
        }
    }

    /// The scopes a new provider of this kind asks for by default.
    pub fn default_scopes(self) -> Vec<String> {
        let mut scopes: Vec<&str> = DEFAULT_SCOPES.to_vec();
        match self {
            ProviderKind::Logto => scopes.extend([
                "urn:logto:scope:organizations",
                "urn:logto:scope:organization_roles",
            ]),
            ProviderKind::Stitch => scopes = vec!["openid", "offline_access"],
            _ => {}
        }
        scopes.into_iter().map(String::from).collect()
    }
}

/// How the client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// A public client: PKCE is its only protection.
    #[default]
    None,
    ClientSecretBasic,
    ClientSecretPost,
    /// RFC 7523 client assertion signed with a private key held in the keychain.
    PrivateKeyJwt,
}

impl ClientAuth {
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "none" => Ok(ClientAuth::None),
            "client_secret_basic" => Ok(ClientAuth::ClientSecretBasic),
            "client_secret_post" => Ok(ClientAuth::ClientSecretPost),
            "private_key_jwt" => Ok(ClientAuth::PrivateKeyJwt),
            other => Err(Error::InvalidConfig(format!(
                "unknown client authentication \"{other}\""
            ))),
        }
    }

    pub fn needs_secret(self) -> bool {
        matches!(
            self,
            ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost
        )
    }
}

/// Where the provider sends the browser back after sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RedirectMode {
    /// `http://127.0.0.1:<random port>/callback`, served by the core (the command line).
    #[default]
    Loopback,
    /// The private-use scheme `dev.tessera:/callback` (the desktop app).
    DeepLink,
}

/// The scopes asked for when none are given.
pub const DEFAULT_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A registered provider. Contains no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub name: String,
    #[serde(default)]
    pub kind: ProviderKind,
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub extra_params: BTreeMap<String, String>,
    #[serde(default)]
    pub redirect_mode: RedirectMode,
    /// REST providers (Stack Auth, Stytch): the project id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// REST providers: the public client key (Stack publishable key, Stytch public token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// REST providers: the API base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    /// `private_key_jwt`: the `kid` to put in client assertions when the key itself has none
    /// (a PEM); Stitch requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Where a provider of a given kind lives, as people know it.
#[derive(Debug, Clone, Default)]
pub struct PresetInput {
    /// Auth0 tenant domain (`example.eu.auth0.com`).
    pub domain: Option<String>,
    /// Logto endpoint (`https://tenant.logto.app`).
    pub endpoint: Option<String>,
    /// An explicit issuer; overrides what `domain` or `endpoint` imply.
    pub issuer: Option<String>,
    /// REST providers: project id, public client key and API base URL.
    pub project_id: Option<String>,
    pub client_key: Option<String>,
    pub base_url: Option<String>,
}

/// Stack Auth's API when no base URL is given.
pub const STACK_DEFAULT_BASE: &str = "https://api.stack-auth.com";

impl ProviderConfig {
    /// A public OpenID Connect client with the default scopes.
    pub fn new(name: &str, issuer: &str, client_id: &str) -> Self {
        ProviderConfig {
            name: name.to_string(),
            kind: ProviderKind::Oidc,
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            client_auth: ClientAuth::None,
            scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            audience: None,
            resources: Vec::new(),
            extra_params: BTreeMap::new(),
            redirect_mode: RedirectMode::Loopback,
            project_id: None,
            client_key: None,
            api_base: None,
            key_id: None,
        }
    }

    /// A provider of `kind` with its usual issuer shape, scopes and resources.
    pub fn preset(
        kind: ProviderKind,
        name: &str,
        client_id: &str,
        input: &PresetInput,
    ) -> Result<Self> {
        if kind == ProviderKind::StackAuth {
            return stack_preset(name, input);
        }
        if kind == ProviderKind::StytchB2b {
            return stytch_preset(name, input);
        }
        if !kind.is_oidc() {
            return Err(Error::Unsupported(format!(
                "{} providers in this build",
                kind.as_str()
            )));
        }
        let issuer = match (&input.issuer, kind, &input.domain, &input.endpoint) {
            (Some(issuer), ..) => issuer.clone(),
            (None, ProviderKind::Auth0, Some(domain), _) => {
                let host = domain.trim_start_matches("https://").trim_end_matches('/');
                format!("https://{host}/")
            }
            (None, ProviderKind::Logto, _, Some(endpoint)) => {
                format!("{}/oidc", endpoint.trim_end_matches('/'))
            }
            (None, ProviderKind::Auth0, None, _) => {
                return Err(Error::InvalidConfig(
                    "an Auth0 provider needs --domain (or --issuer)".into(),
                ));
            }
            (None, ProviderKind::Logto, _, None) => {
                return Err(Error::InvalidConfig(
                    "a Logto provider needs --endpoint (or --issuer)".into(),
                ));
            }
            (None, ..) => return Err(Error::InvalidConfig("the provider needs --issuer".into())),
        };
        let mut config = ProviderConfig::new(name, &issuer, client_id);
        config.kind = kind;
        config.scopes = kind.default_scopes();
        if kind == ProviderKind::Logto {
            config
                .resources
                .push("urn:logto:resource:organizations".into());
        }
        Ok(config)
    }

    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<()> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_alphanumeric() || " -_.".contains(c));
        if !name_ok {
            return Err(Error::InvalidConfig(format!(
                "provider name \"{}\" must be 1-64 letters, digits, spaces, '-', '_' or '.'",
                self.name
            )));
        }
        // Stytch's JWT issuer is `stytch.com/<project>`, not a URL: check its API base instead.
        let located = match self.kind {
            ProviderKind::StytchB2b => self.api_base.as_deref().unwrap_or_default(),
            _ => &self.issuer,
        };
        let issuer = Url::parse(located)
            .map_err(|e| Error::InvalidConfig(format!("\"{located}\" is not a URL: {e}")))?;
        ensure_allowed(&issuer)?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(Error::InvalidConfig(
                "the issuer must not have a query or fragment".into(),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(Error::InvalidConfig("the client id is empty".into()));
        }
        if self.kind.is_oidc() && !self.scopes.iter().any(|s| s == "openid") {
            return Err(Error::InvalidConfig(
                "the scopes must include \"openid\"".into(),
            ));
        }
        for key in self.extra_params.keys() {
            if RESERVED_PARAMS.contains(&key.as_str()) {
                return Err(Error::InvalidConfig(format!(
                    "\"{key}\" is set by Tessera itself and cannot be an extra parameter"
                )));
            }
        }
        Ok(())
    }
}

/// Stytch's API for a project: live projects use the live host.
fn stytch_default_base(project: &str) -> &'static str {
    if project.starts_with("project-live-") {
        "https://api.stytch.com"
    } else {
        "https://test.stytch.com"
    }
}

fn stytch_preset(name: &str, input: &PresetInput) -> Result<ProviderConfig> {
    let project = input
        .project_id
        .clone()
        .ok_or_else(|| Error::InvalidConfig("a Stytch provider needs --project-id".into()))?;
    let base = input
        .base_url
        .as_deref()
        .unwrap_or(stytch_default_base(&project))
        .trim_end_matches('/')
        .to_string();
    ensure_allowed(
        &Url::parse(&base).map_err(|e| Error::InvalidConfig(format!("--base-url: {e}")))?,
    )?;
    let mut config = ProviderConfig::new(name, &base, &project);
    config.issuer = format!("stytch.com/{project}");
    config.kind = ProviderKind::StytchB2b;
    config.scopes = Vec::new();
    config.audience = Some(project.clone());
    config.project_id = Some(project);
    config.client_key = input.client_key.clone();
    config.api_base = Some(base);
    config.redirect_mode = RedirectMode::DeepLink;
    Ok(config)
}

fn stack_preset(name: &str, input: &PresetInput) -> Result<ProviderConfig> {
    let project = input
        .project_id
        .clone()
        .ok_or_else(|| Error::InvalidConfig("a Stack Auth provider needs --project-id".into()))?;
    let base = input
        .base_url
        .as_deref()
        .unwrap_or(STACK_DEFAULT_BASE)
        .trim_end_matches('/')
        .to_string();
    let mut config =
        ProviderConfig::new(name, &format!("{base}/api/v1/projects/{project}"), &project);
    config.kind = ProviderKind::StackAuth;
    config.scopes = vec!["openid".into()];
    config.audience = Some(project.clone());
    config.project_id = Some(project);
    config.client_key = input.client_key.clone();
    config.api_base = Some(base);
    Ok(config)
}

/// Authorization parameters Tessera sets itself; extra parameters may not override them.
pub const RESERVED_PARAMS: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "client_secret",
];

impl ProviderMetadata {
    /// The endpoints of a provider that has no discovery document (Stack Auth).
    pub fn synthesized(config: &ProviderConfig) -> Result<Self> {
        let base = config.api_base.as_deref().unwrap_or(STACK_DEFAULT_BASE);
        let project = config.project_id.as_deref().unwrap_or_default();
        let (authorization, token, jwks, userinfo) = match config.kind {
            ProviderKind::StytchB2b => (
                format!("{base}/v1/b2b/magic_links/email/discovery/send"),
                format!("{base}/v1/b2b/sessions/authenticate"),
                format!("{base}/v1/b2b/sessions/jwks/{project}"),
                None,
            ),
            _ => (
                format!("{base}/api/v1/auth/oauth/authorize"),
                format!("{base}/api/v1/auth/oauth/token"),
                format!("{}/.well-known/jwks.json", config.issuer),
                Some(format!("{base}/api/v1/users/me")),
            ),
        };
        let metadata = ProviderMetadata {
            issuer: config.issuer.clone(),
            authorization_endpoint: authorization,
            token_endpoint: token,
            jwks_uri: jwks,
            userinfo_endpoint: userinfo,
            revocation_endpoint: None,
            introspection_endpoint: None,
            end_session_endpoint: None,
            device_authorization_endpoint: None,
            authorization_response_iss_parameter_supported: false,
            code_challenge_methods_supported: None,
        };
        if config.kind != ProviderKind::StytchB2b {
            metadata.check(&config.issuer)?;
        }
        Ok(metadata)
    }
}

/// The parts of an OpenID Provider's discovery document Tessera uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

impl ProviderMetadata {
    fn check(&self, expected_issuer: &str) -> Result<()> {
        if self.issuer.trim_end_matches('/') != expected_issuer.trim_end_matches('/') {
            return Err(Error::Discovery(format!(
                "the document names issuer \"{}\", not \"{expected_issuer}\"",
                self.issuer
            )));
        }
        let required = [
            &self.authorization_endpoint,
            &self.token_endpoint,
            &self.jwks_uri,
        ];
        let optional = [
            &self.userinfo_endpoint,
            &self.revocation_endpoint,
            &self.introspection_endpoint,
            &self.end_session_endpoint,
            &self.device_authorization_endpoint,
        ];
        for endpoint in required.into_iter().chain(optional.into_iter().flatten()) {
            let url = Url::parse(endpoint)
                .map_err(|e| Error::Discovery(format!("bad endpoint URL \"{endpoint}\": {e}")))?;
            ensure_allowed(&url)?;
        }
        if let Some(methods) = &self.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(Error::Discovery(
                "the provider does not support PKCE S256".into(),
            ));
        }
        Ok(())
    }
}

/// How long a discovery document is trusted before it is fetched again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Serialize, Deserialize)]
struct CachedMetadata {
    fetched_at: u64,
    metadata: ProviderMetadata,
}

/// Discovery documents, cached in memory and under `<data dir>/cache/`.
#[derive(Debug)]
pub struct Discovery {
    dir: PathBuf,
    memory: Mutex<BTreeMap<String, ProviderMetadata>>,
}

impl Discovery {
    pub fn new(dir: PathBuf) -> Self {
        Discovery {
            dir,
            memory: Mutex::new(BTreeMap::new()),
        }
    }

    /// The metadata for `issuer`, from the cache when fresh, else fetched and checked.
    pub async fn metadata(
        &self,
        http: &HttpClient,
        issuer: &str,
        now: u64,
    ) -> Result<ProviderMetadata> {
        if let Some(m) = self.memory.lock().map_err(poisoned)?.get(issuer) {
            return Ok(m.clone());
        }
        let file = self.cache_file(issuer);
        if let Ok(bytes) = std::fs::read(&file)
            && let Ok(cached) = serde_json::from_slice::<CachedMetadata>(&bytes)
            && now.saturating_sub(cached.fetched_at) < DISCOVERY_TTL.as_secs()
            && cached.metadata.check(issuer).is_ok()
        {
            self.remember(issuer, &cached.metadata)?;
            return Ok(cached.metadata);
        }
        let metadata = fetch(http, issuer).await?;
        let cached = CachedMetadata {
            fetched_at: now,
            metadata: metadata.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec_pretty(&cached) {
            let _ = crate::fsutil::write_atomic(&file, &bytes);
        }
        self.remember(issuer, &metadata)?;
        Ok(metadata)
    }

    /// Forgets the cached document (after a provider is removed or changed).
    pub fn forget(&self, issuer: &str) {
        if let Ok(mut memory) = self.memory.lock() {
            memory.remove(issuer);
        }
        let _ = std::fs::remove_file(self.cache_file(issuer));
    }

    fn remember(&self, issuer: &str, metadata: &ProviderMetadata) -> Result<()> {
        self.memory
            .lock()
            .map_err(poisoned)?
            .insert(issuer.to_string(), metadata.clone());
        Ok(())
    }

    fn cache_file(&self, issuer: &str) -> PathBuf {
        self.dir.join(format!(
            "discovery-{}.json",
            crate::fsutil::short_hash(issuer)
        ))
    }
}

/// Fetches and checks `<issuer>/.well-known/openid-configuration`.
pub async fn fetch(http: &HttpClient, issuer: &str) -> Result<ProviderMetadata> {
    let url = Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .map_err(|e| Error::InvalidConfig(format!("issuer \"{issuer}\": {e}")))?;
    let metadata: ProviderMetadata = http.get_json(&url).await.map_err(|e| match e {
        Error::MalformedResponse { reason, .. } => {
            Error::Discovery(format!("{url} is not an OpenID configuration: {reason}"))
        }
        other => other,
    })?;
    metadata.check(issuer)?;
    Ok(metadata)
}

/// Checks a provider before it is saved, the way its kind allows: an OpenID provider's
/// discovery document, or a REST provider's signing keys (which proves the API base and the
/// project id). Returns the endpoints Tessera will use. Only where the provider lives matters
/// here; the name and client id are checked when it is saved.
pub async fn check(http: &HttpClient, config: &ProviderConfig) -> Result<ProviderMetadata> {
    if config.kind.is_oidc() {
        return fetch(http, &config.issuer).await;
    }
    let metadata = ProviderMetadata::synthesized(config)?;
    let url = Url::parse(&metadata.jwks_uri)
        .map_err(|e| Error::InvalidConfig(format!("\"{}\": {e}", metadata.jwks_uri)))?;
    let keys: serde_json::Value = http.get_json(&url).await?;
    if !keys.get("keys").is_some_and(serde_json::Value::is_array) {
        return Err(Error::Discovery(format!("{url} is not a JSON Web Key Set")));
    }
    Ok(metadata)
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> Error {
    Error::Storage("an internal lock was poisoned by an earlier failure".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let ok = ProviderConfig::new("Local demo", "http://127.0.0.1:9999", "tessera-public");
        ok.validate().unwrap();
        let mut bad = ok.clone();
        bad.issuer = "http://idp.example.com".into();
        assert_eq!(bad.validate().unwrap_err().code(), "insecure_url");
        let mut bad = ok.clone();
        bad.scopes = vec!["email".into()];
        assert!(bad.validate().unwrap_err().to_string().contains("openid"));
        let mut bad = ok.clone();
        bad.extra_params.insert("state".into(), "x".into());
        assert_eq!(bad.validate().unwrap_err().code(), "invalid_config");
        let mut bad = ok;
        bad.name = "a/b".into();
        assert_eq!(bad.validate().unwrap_err().code(), "invalid_config");
    }
}
