//! The token agent: one long-lived process per data directory that answers `tessera token`
//! (and `tessera refresh --all`) over a Unix socket, so a script's token costs a process start
//! and one round trip instead of a keychain session, a runtime and a TLS stack per call (the
//! design of ssh-agent, gpg-agent and oidc-agent).
//!
//! The agent is a [`crate::Tessera`] like any other: it takes the same per-account
//! transactions (so single-flight holds across it, the app and other `tessera` processes) and
//! persists a rotated refresh token before answering. It differs in living long: its keychain
//! connection, HTTP connections and caches stay warm, and it keeps the token sets and provider
//! credentials it read in memory while their locks' revisions hold (`engine::kept`). A forced
//! refresh is answered as soon as its token is verified (and any rotated refresh token
//! stored); the write of the new access token goes on after the answer, inside the
//! account's transaction (see [`crate::Handover`]).
//!
//! Trust: the socket is in a private directory (`$XDG_RUNTIME_DIR/dev.tessera`, 0700, the
//! socket 0600) and the agent answers only peers of its own user (checked with
//! `SO_PEERCRED`) — the same boundary as the Secret Service itself. It exits after
//! [`IDLE`] without requests, or when its data directory disappears.

mod client;
mod server;
#[cfg(target_os = "linux")]
mod watch;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use client::{ask, ask_within};
pub use server::serve;

/// The longest request an agent reads (a request is a few hundred bytes); a longer one is not
/// sent to it.
const MAX_REQUEST: usize = 64 * 1024;

/// How long an agent waits for requests before it exits.
pub const IDLE: Duration = Duration::from_secs(600);

/// What a client asks an agent: a token (the line `tessera token` sends), or to refresh every
/// account (`{"refresh_all": {"parallel": N}}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Request {
    Token(TokenRequest),
    RefreshAll { refresh_all: RefreshAllRequest },
}

/// `tessera refresh --all`: at most `parallel` refreshes at a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshAllRequest {
    pub parallel: usize,
}

/// One account's outcome of refreshing every account: refreshed (`failure` is `None`), or why
/// not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRow {
    pub account_id: String,
    pub rotated: bool,
    pub expires_at: Option<u64>,
    pub failure: Option<Failure>,
}

impl RefreshRow {
    pub fn of(account_id: &str, outcome: &crate::Result<crate::RefreshOutcome>) -> Self {
        match outcome {
            Ok(o) => RefreshRow {
                account_id: account_id.to_string(),
                rotated: o.rotated,
                expires_at: o.expires_at,
                failure: None,
            },
            Err(e) => RefreshRow {
                account_id: account_id.to_string(),
                rotated: false,
                expires_at: None,
                failure: Some(Failure::of(e)),
            },
        }
    }
}

/// An error as it crosses the socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
    /// The error's class: `usage`, `needs_sign_in`, `provider`, `keychain`, `local`.
    pub kind: String,
}

/// Error classes by their names on the wire.
const KINDS: [(crate::ErrorKind, &str); 5] = [
    (crate::ErrorKind::Usage, "usage"),
    (crate::ErrorKind::NeedsSignIn, "needs_sign_in"),
    (crate::ErrorKind::Provider, "provider"),
    (crate::ErrorKind::Keychain, "keychain"),
    (crate::ErrorKind::Local, "local"),
];

impl Failure {
    pub fn of(e: &crate::Error) -> Self {
        let kind = KINDS
            .iter()
            .find(|(k, _)| *k == e.kind())
            .map_or("local", |(_, name)| name);
        Failure {
            code: e.code().to_string(),
            message: e.to_string(),
            kind: kind.into(),
        }
    }

    /// The error class `kind` names (`local` for a name it does not know).
    pub fn kind(&self) -> crate::ErrorKind {
        KINDS
            .iter()
            .find(|(_, name)| *name == self.kind)
            .map_or(crate::ErrorKind::Local, |(k, _)| *k)
    }
}

/// A request for a token, as `tessera token` makes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRequest {
    pub account: String,
    pub org: Option<String>,
    pub min_valid: u64,
    pub force: bool,
    pub id_token: bool,
}

/// The answer to a [`TokenRequest`]. The token is the one secret that crosses the socket,
/// to the user who asked for it; both ends wipe their copies of the line and the token once
/// it is written or parsed (the client's token then lives in a `SecretString`).
#[derive(Serialize, Deserialize)]
pub enum Answer {
    Token {
        account_id: String,
        token: String,
        expires_at: Option<u64>,
        refreshed: bool,
    },
    Failed(Failure),
    /// Every account refreshed (or not), in the accounts' order.
    Refreshed {
        rows: Vec<RefreshRow>,
    },
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Token { account_id, .. } => write!(f, "Token({account_id}, [redacted])"),
            Answer::Failed(failure) => write!(f, "Failed({})", failure.code),
            Answer::Refreshed { rows } => write!(f, "Refreshed({} accounts)", rows.len()),
        }
    }
}

/// The agent's socket for a data directory: in `$XDG_RUNTIME_DIR/dev.tessera/` (private to the
/// user and cleared at logout), else in the data directory itself.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    let canonical = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    // `2`: the protocol with `Request::RefreshAll`; an older agent is not asked.
    let name = format!(
        "agent-2-{}.sock",
        crate::fsutil::short_hash(&canonical.to_string_lossy())
    );
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("dev.tessera").join(name),
        None => canonical.join(name),
    }
}
