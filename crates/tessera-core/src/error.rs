//! The one error type of the core. Every variant has a stable machine code (`code()`) that
//! front ends show and script against, and a class (`kind()`) that the command line maps to
//! its exit status. Messages are one line, written for the person at the keyboard, and never
//! contain a secret.

use std::fmt;

/// What went wrong, in terms a front end can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("unknown provider \"{0}\" (see `tessera provider list`)")]
    UnknownProvider(String),
    #[error("a provider named \"{0}\" already exists")]
    ProviderExists(String),
    #[error("invalid provider configuration: {0}")]
    InvalidConfig(String),
    #[error("no account matches \"{0}\" (see `tessera accounts`)")]
    UnknownAccount(String),
    #[error("\"{query}\" matches several accounts ({candidates}); use the account id")]
    AmbiguousAccount { query: String, candidates: String },

    #[error("malformed callback: {0}")]
    MalformedCallback(String),
    #[error("the callback does not belong to any sign-in in progress (unknown state)")]
    UnknownState,
    #[error("this sign-in callback was already used (replayed state)")]
    StateReplayed,
    #[error(
        "this sign-in is no longer waiting (it expired, or Tessera restarted since it began); start it again"
    )]
    FlowExpired,
    #[error("the callback names issuer \"{got}\" but the sign-in went to \"{expected}\"")]
    IssuerMismatch { expected: String, got: String },
    #[error("the provider refused the sign-in: {error}{}", describe(.description))]
    AuthorizationDenied {
        error: String,
        description: Option<String>,
    },
    /// `hint`: what most likely kept the sign-in from completing, where the provider says.
    #[error("{what} was cancelled{}", describe(.hint))]
    Cancelled { what: String, hint: Option<String> },
    #[error("gave up waiting for {what}{}", describe(.hint))]
    Timeout { what: String, hint: Option<String> },
    #[error(
        "127.0.0.1:{port}, the port of the provider's registered redirect URL, is taken ({reason}); end whatever listens there (another sign-in waiting?) and try again"
    )]
    PortInUse { port: u16, reason: String },

    #[error("refusing {0}: only loopback addresses may use plain http")]
    InsecureUrl(String),
    #[error("cannot reach {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("{url} did not answer in time")]
    HttpTimeout { url: String },
    #[error("{url} answered HTTP {status}{}", describe(.snippet))]
    HttpStatus {
        url: String,
        status: u16,
        snippet: Option<String>,
    },
    #[error("{url} answered with content type \"{content_type}\", expected JSON")]
    UnexpectedContentType { url: String, content_type: String },
    #[error("the answer from {url} is larger than 1 MiB")]
    ResponseTooLarge { url: String },
    #[error("the answer from {url} is not the expected JSON: {reason}")]
    MalformedResponse { url: String, reason: String },
    #[error("the provider answered {error}{}", describe(.description))]
    Provider {
        error: String,
        description: Option<String>,
    },
    #[error("OpenID discovery failed: {0}")]
    Discovery(String),
    #[error("the provider does not offer {0}")]
    Unsupported(String),

    #[error("the {token} was rejected: {reason}")]
    TokenRejected { token: String, reason: String },
    #[error("{0} is not a JWT: {1}")]
    NotAJwt(String, String),
    #[error("account {0} must sign in again")]
    NeedsSignIn(String),
    #[error(
        "account {account} is not signed in to organization \"{org}\"; sign in to it first (tessera login PROVIDER --org {org})"
    )]
    OrgSignInRequired { account: String, org: String },

    #[error("keychain: {0}")]
    Keychain(String),
    /// The shelf's entry holds something that is not a shelf: what was on it is lost. Reads
    /// of it fail with this; a write replaces it.
    #[error(
        "keychain: the keychain entry of the shelf is damaged, so the token sets and client secrets on it are lost: sign in to those accounts again (add their providers again if they have a client secret), or sign out of them without revoking"
    )]
    ShelfDamaged,
    #[error("data directory: {0}")]
    Storage(String),
    #[error("could not open the browser: {0}")]
    Browser(String),
}

fn describe(detail: &Option<String>) -> String {
    match detail {
        Some(d) if !d.is_empty() => format!(" ({d})"),
        _ => String::new(),
    }
}

/// How a failure should be treated by a front end (the command line maps these to exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself was wrong: unknown names, bad configuration.
    Usage,
    /// The account's grant is gone; only a new sign-in helps.
    NeedsSignIn,
    /// The provider, the network or the sign-in callback failed.
    Provider,
    /// The OS keychain refused or is unavailable.
    Keychain,
    /// Local files or anything else.
    Local,
}

impl Error {
    /// A wait that ended without its answer, with no hint.
    pub fn timeout(what: &str) -> Error {
        Error::Timeout {
            what: what.into(),
            hint: None,
        }
    }

    pub fn cancelled(what: &str) -> Error {
        Error::Cancelled {
            what: what.into(),
            hint: None,
        }
    }

    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownProvider(_) => "unknown_provider",
            Error::ProviderExists(_) => "provider_exists",
            Error::InvalidConfig(_) => "invalid_config",
            Error::UnknownAccount(_) => "unknown_account",
            Error::AmbiguousAccount { .. } => "ambiguous_account",
            Error::MalformedCallback(_) => "malformed_callback",
            Error::UnknownState => "unknown_state",
            Error::StateReplayed => "state_replayed",
            Error::FlowExpired => "flow_expired",
            Error::IssuerMismatch { .. } => "issuer_mismatch",
            Error::AuthorizationDenied { .. } => "authorization_denied",
            Error::Cancelled { .. } => "cancelled",
            Error::Timeout { .. } => "timeout",
            Error::PortInUse { .. } => "port_in_use",
            Error::InsecureUrl(_) => "insecure_url",
            Error::Network { .. } => "network",
            Error::HttpTimeout { .. } => "http_timeout",
            Error::HttpStatus { .. } => "http_status",
            Error::UnexpectedContentType { .. } => "unexpected_content_type",
            Error::ResponseTooLarge { .. } => "response_too_large",
            Error::MalformedResponse { .. } => "malformed_response",
            Error::Provider { .. } => "provider_error",
            Error::Discovery(_) => "discovery_failed",
            Error::Unsupported(_) => "unsupported",
            Error::TokenRejected { .. } => "token_rejected",
            Error::NotAJwt(..) => "not_a_jwt",
            Error::NeedsSignIn(_) => "needs_sign_in",
            Error::OrgSignInRequired { .. } => "org_sign_in_required",
            Error::Keychain(_) | Error::ShelfDamaged => "keychain",
            Error::Storage(_) => "storage",
            Error::Browser(_) => "browser",
        }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnknownProvider(_)
            | Error::ProviderExists(_)
            | Error::InvalidConfig(_)
            | Error::UnknownAccount(_)
            | Error::AmbiguousAccount { .. }
            | Error::InsecureUrl(_) => ErrorKind::Usage,
            Error::NeedsSignIn(_) | Error::OrgSignInRequired { .. } => ErrorKind::NeedsSignIn,
            Error::Keychain(_) | Error::ShelfDamaged => ErrorKind::Keychain,
            Error::Storage(_) | Error::Browser(_) | Error::PortInUse { .. } => ErrorKind::Local,
            _ => ErrorKind::Provider,
        }
    }

    /// The OAuth error code the provider sent, if this is a provider error response.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Error::Provider { error, .. } | Error::AuthorizationDenied { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether the provider said the refresh token (or session) no longer exists, so only a
    /// new sign-in helps: OAuth `invalid_grant`, Stack Auth `REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED`.
    pub fn grant_is_gone(&self) -> bool {
        matches!(
            self.oauth_error(),
            Some("invalid_grant" | "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED" | "session_not_found")
        )
    }

    pub(crate) fn storage(context: &str, err: impl fmt::Display) -> Error {
        Error::Storage(format!("{context}: {err}"))
    }
}

/// Result with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
