//! What a front end needs to know about a provider kind to draw it, validate it and offer the
//! right sign-ins, without branching on the kind: a [`ProviderSpec`] per kind (label, the add
//! form's fields and which are secret, sign-in methods, redirect rule, organization model,
//! default scopes), and the kind-neutral inputs front ends build from flags or forms
//! ([`ProviderDraft`], [`SignInRequest`]).
//!
//! Invariant: a spec is data. The rules it describes are enforced by the adapter that
//! publishes it ([`crate::providers::Adapter::configure`]), so a front end that ignores a hint
//! gets a typed error, never a wrong provider.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::provider::{ClientAuth, OrgModel, ProviderKind, RedirectMode};
use crate::secret::SecretString;

/// One input of the Add provider form (and its command-line flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Issuer,
    Domain,
    Endpoint,
    ClientId,
    ProjectId,
    ClientKey,
    BaseUrl,
    /// Client secret, private key, or project secret (see [`FieldSpec::secret`]).
    Secret,
    KeyId,
    Scopes,
    Audience,
    Resources,
}

/// How one field of the add form is shown and checked.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct FieldSpec {
    pub field: Field,
    pub label: &'static str,
    pub help: &'static str,
    pub placeholder: &'static str,
    /// Must be filled, unless `unless` is.
    pub required: bool,
    pub unless: Option<Field>,
    /// Typed into a password box, kept only in the keychain, never shown again.
    pub secret: bool,
    /// Part of where the provider lives: a check holds only while these are unchanged.
    pub locates: bool,
    /// Shown only with one of these client authentications (empty: always).
    pub with_auth: Vec<ClientAuth>,
    /// Several words (scopes, resources).
    pub list: bool,
}

/// A way into an account at a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// The system browser, authorization code + PKCE.
    Browser,
    /// The device grant (RFC 8628): a code to enter elsewhere.
    Device,
    /// The system browser through a social provider the project enables (`github`, …).
    #[serde(rename = "oauth")]
    OAuth,
    /// E-mail and password typed into Tessera.
    Password,
    /// A link mailed to the person; it comes back to Tessera, and may discover organizations.
    EmailLink,
    /// A link mailed to the person whose short code can also be typed into Tessera.
    MailedCode,
}

/// Where the provider may send the browser (or a mailed link) back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RedirectRule {
    /// The `dev.tessera:` deep link or a loopback address, as the provider is configured.
    DeepLinkOrLoopback,
    /// Only a loopback address (the provider accepts no custom scheme).
    LoopbackOnly,
}

impl RedirectRule {
    /// The redirect actually used for a provider configured with `configured`.
    pub fn apply(self, configured: RedirectMode) -> RedirectMode {
        match self {
            RedirectRule::DeepLinkOrLoopback => configured,
            RedirectRule::LoopbackOnly => RedirectMode::Loopback,
        }
    }
}

/// How a provider is checked before it is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ProviderCheck {
    /// Its OpenID discovery document (`/.well-known/openid-configuration`).
    DiscoveryDocument,
    /// The signing keys its API publishes for the project.
    SigningKeys,
}

/// Everything a front end renders about one provider kind.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    pub kind: ProviderKind,
    pub label: &'static str,
    pub blurb: &'static str,
    pub fields: Vec<FieldSpec>,
    pub check: ProviderCheck,
    /// The client authentications offered (empty: decided by the fields, see `Secret`).
    pub client_auths: Vec<ClientAuth>,
    pub sign_in: Vec<SignInMethod>,
    pub redirect: RedirectRule,
    pub org_model: OrgModel,
    /// The authorization parameter that signs in to one organization, if any.
    pub org_sign_in_param: Option<&'static str>,
    pub default_scopes: Vec<String>,
    /// Social providers to offer for [`SignInMethod::OAuth`].
    pub oauth_providers: Vec<&'static str>,
}

impl FieldSpec {
    pub(crate) fn new(field: Field, label: &'static str, help: &'static str) -> Self {
        FieldSpec {
            field,
            label,
            help,
            placeholder: "",
            required: false,
            unless: None,
            secret: false,
            locates: false,
            with_auth: Vec::new(),
            list: false,
        }
    }

    pub(crate) fn placeholder(mut self, text: &'static str) -> Self {
        self.placeholder = text;
        self
    }

    pub(crate) fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub(crate) fn unless(mut self, other: Field) -> Self {
        self.required = true;
        self.unless = Some(other);
        self
    }

    pub(crate) fn locates(mut self) -> Self {
        self.locates = true;
        self
    }

    pub(crate) fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    pub(crate) fn with_auth(mut self, auths: &[ClientAuth]) -> Self {
        self.with_auth = auths.to_vec();
        self
    }

    pub(crate) fn list(mut self) -> Self {
        self.list = true;
        self
    }
}

/// The secret a person hands over with a provider.
pub enum Credential {
    /// A client secret (or a Stytch project secret).
    Secret(SecretString),
    /// A private key (PEM or JWK) for `private_key_jwt`.
    PrivateKey(SecretString),
}

impl Credential {
    pub fn into_secret(self) -> SecretString {
        match self {
            Credential::Secret(s) | Credential::PrivateKey(s) => s,
        }
    }

    /// The client authentication this credential implies when none is chosen.
    pub fn default_auth(&self) -> ClientAuth {
        match self {
            Credential::Secret(_) => ClientAuth::ClientSecretBasic,
            Credential::PrivateKey(_) => ClientAuth::PrivateKeyJwt,
        }
    }
}

/// A provider as a person describes it, from command-line flags or the add form; the kind's
/// adapter turns it into a configuration. Blank strings count as absent.
#[derive(Default)]
pub struct ProviderDraft {
    pub kind: ProviderKind,
    pub name: String,
    pub issuer: Option<String>,
    pub domain: Option<String>,
    pub endpoint: Option<String>,
    pub client_id: Option<String>,
    pub project_id: Option<String>,
    pub client_key: Option<String>,
    pub base_url: Option<String>,
    pub client_auth: Option<ClientAuth>,
    pub credential: Option<Credential>,
    pub key_id: Option<String>,
    /// Empty: the kind's default scopes.
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    /// Added to the kind's default resources.
    pub resources: Vec<String>,
    pub params: Vec<(String, String)>,
    pub redirect_mode: Option<RedirectMode>,
}

/// A value of the draft, trimmed, `None` when blank.
pub(crate) fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

/// Non-blank words of a list field.
pub(crate) fn words(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split([' ', ',', '\n', '\t']))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect()
}

/// A sign-in as a person asks for it; the engine checks it against the provider's spec.
#[derive(Debug, Clone, Default)]
pub struct SignInRequest {
    pub provider: String,
    /// Sign in to this organization (where each organization is its own sign-in).
    pub org: Option<String>,
    /// Sign in through this social provider ([`SignInMethod::OAuth`]).
    pub oauth_provider: Option<String>,
    /// Force the provider's login screen, so someone else can sign in.
    pub someone_else: bool,
    /// Extra authorization parameters for this sign-in only.
    pub params: Vec<(String, String)>,
}

impl ProviderDraft {
    /// The configuration the kind's adapter makes of this draft.
    pub fn configure(&self) -> crate::error::Result<crate::provider::ProviderConfig> {
        self.kind.adapter().configure(self)
    }

    /// A draft from a form's values by field (blank ones count as absent); the secret field
    /// is a private key when the form chose `private_key_jwt`.
    pub fn from_form(
        kind: ProviderKind,
        name: &str,
        values: BTreeMap<Field, String>,
        client_auth: Option<ClientAuth>,
        redirect_mode: Option<RedirectMode>,
    ) -> ProviderDraft {
        let mut draft = ProviderDraft {
            kind,
            name: name.to_string(),
            client_auth,
            redirect_mode,
            ..ProviderDraft::default()
        };
        for (field, value) in values {
            let value = value.trim().to_string();
            if value.is_empty() {
                continue;
            }
            let slot = match field {
                Field::Issuer => &mut draft.issuer,
                Field::Domain => &mut draft.domain,
                Field::Endpoint => &mut draft.endpoint,
                Field::ClientId => &mut draft.client_id,
                Field::ProjectId => &mut draft.project_id,
                Field::ClientKey => &mut draft.client_key,
                Field::BaseUrl => &mut draft.base_url,
                Field::KeyId => &mut draft.key_id,
                Field::Audience => &mut draft.audience,
                Field::Scopes => {
                    draft.scopes = words(&[value]);
                    continue;
                }
                Field::Resources => {
                    draft.resources = words(&[value]);
                    continue;
                }
                Field::Secret => {
                    let secret = SecretString::new(value);
                    draft.credential = Some(if client_auth == Some(ClientAuth::PrivateKeyJwt) {
                        Credential::PrivateKey(secret)
                    } else {
                        Credential::Secret(secret)
                    });
                    continue;
                }
            };
            *slot = Some(value);
        }
        draft
    }

    /// Only where the provider lives, with stand-ins for what a check does not need.
    pub fn location_only(&self) -> ProviderDraft {
        ProviderDraft {
            kind: self.kind,
            name: "check".into(),
            issuer: self.issuer.clone(),
            domain: self.domain.clone(),
            endpoint: self.endpoint.clone(),
            client_id: Some("check".into()),
            project_id: self.project_id.clone(),
            client_key: self.client_key.clone(),
            base_url: self.base_url.clone(),
            ..ProviderDraft::default()
        }
    }
}
