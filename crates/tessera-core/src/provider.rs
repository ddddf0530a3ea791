//! Provider configuration (what a person registers: kind, issuer, client, scopes…) and the
//! endpoints Tessera uses ([`ProviderMetadata`]). A configuration never holds a secret: client
//! secrets and private keys live in the keychain (see [`crate::vault`]). What differs by kind
//! lives in the kind's adapter ([`crate::providers`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::http::ensure_allowed;

/// Which adapter speaks to the provider (see [`crate::providers`]). Auth0, Logto and Stitch
/// are OpenID Connect flavours; Stytch B2B and Stack Auth have REST adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
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

/// Each kind with the name configurations, flags and the UI use for it.
const KIND_NAMES: [(ProviderKind, &str); 6] = [
    (ProviderKind::Oidc, "oidc"),
    (ProviderKind::Auth0, "auth0"),
    (ProviderKind::Logto, "logto"),
    (ProviderKind::Stitch, "stitch"),
    (ProviderKind::StytchB2b, "stytch_b2b"),
    (ProviderKind::StackAuth, "stack_auth"),
];

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Oidc,
        ProviderKind::Auth0,
        ProviderKind::Logto,
        ProviderKind::Stitch,
        ProviderKind::StytchB2b,
        ProviderKind::StackAuth,
    ];

    pub fn as_str(self) -> &'static str {
        KIND_NAMES
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("oidc", |(_, name)| name)
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        KIND_NAMES
            .iter()
            .find(|(_, name)| *name == value)
            .map(|(kind, _)| *kind)
            .ok_or_else(|| Error::InvalidConfig(format!("unknown provider kind \"{value}\"")))
    }
}

/// How the client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
        [
            ClientAuth::None,
            ClientAuth::ClientSecretBasic,
            ClientAuth::ClientSecretPost,
            ClientAuth::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|a| a.as_str() == value)
        .ok_or_else(|| Error::InvalidConfig(format!("unknown client authentication \"{value}\"")))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
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
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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

    /// Checks what can be checked without the network: the rules every kind shares, then
    /// the kind's own.
    pub fn validate(&self) -> Result<()> {
        self.kind.adapter().validate(self)
    }

    /// The rules every kind shares; `located` is the URL that says where the provider lives.
    pub(crate) fn validate_common(&self, located: &str) -> Result<()> {
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
    /// Checks the issuer and that every endpoint is https (or loopback http) and PKCE S256 is
    /// offered.
    pub(crate) fn check(&self, expected_issuer: &str) -> Result<()> {
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
