//! Browser sign-in flows (authorization code + PKCE S256 + state + nonce, RFC 8252 /
//! RFC 9700; Stack Auth's OAuth sign-in, which has no ID token, without the nonce): the
//! pending-flow table and callback parsing.
//!
//! Invariants: a pending flow is found only by its exact `state`; it is used at most once
//! (a second callback with the same state is `state_replayed`); it expires
//! [`FLOW_TTL`] seconds after it started; the PKCE verifier never leaves the core.
//!
//! The table itself lives in memory. A journal in the data directory remembers the hashes
//! of recently started states, so a callback that outlived its process (a deep link that
//! cold-starts the app after a restart) is told `flow_expired` rather than `unknown_state`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

use oauth2::{CsrfToken, PkceCodeChallenge, PkceCodeVerifier};
use url::Url;

use crate::error::{Error, Result};
use crate::fsutil::{FileLock, short_hash, write_atomic};

/// How long a sign-in may take from start to callback.
pub const FLOW_TTL: u64 = 600;

/// The desktop app's private-use redirect URI (RFC 8252 §7.1).
pub const DEEP_LINK_REDIRECT: &str = "dev.tessera:/callback";

/// A sign-in waiting for its callback. Deliberately neither `Clone` nor `Serialize`; its
/// `Debug` shows neither the PKCE verifier nor the nonce.
pub struct PendingFlow {
    pub provider: String,
    pub redirect_uri: String,
    pub created_at: u64,
    pub(crate) verifier: PkceCodeVerifier,
    /// The nonce the ID token must carry; none where the provider issues no ID token.
    pub(crate) nonce: Option<String>,
    /// The organization this sign-in is for, where that binds the tokens (Auth0).
    pub org: Option<String>,
}

impl fmt::Debug for PendingFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingFlow")
            .field("provider", &self.provider)
            .field("redirect_uri", &self.redirect_uri)
            .field("created_at", &self.created_at)
            .field("verifier", &REDACTED)
            .field("nonce", &self.nonce.as_ref().map(|_| REDACTED))
            .field("org", &self.org)
            .finish()
    }
}

/// What `Debug` shows instead of a secret.
const REDACTED: &str = "[redacted]";

/// The random values of a new flow.
pub(crate) struct FlowSecrets {
    pub state: String,
    pub nonce: String,
    pub challenge: PkceCodeChallenge,
    pub verifier: PkceCodeVerifier,
}

impl FlowSecrets {
    pub fn generate() -> Self {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        FlowSecrets {
            state: CsrfToken::new_random_len(32).into_secret(),
            nonce: CsrfToken::new_random_len(32).into_secret(),
            challenge,
            verifier,
        }
    }
}

/// Flows in progress, keyed by state, plus the states already used.
#[derive(Debug, Default)]
pub struct PendingFlows {
    inner: Mutex<Tables>,
    journal: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Tables {
    pending: HashMap<String, PendingFlow>,
    used: HashMap<String, u64>,
}

impl PendingFlows {
    /// A table that journals started states in `dir/flows.json`.
    pub fn with_journal(dir: PathBuf) -> Self {
        PendingFlows {
            inner: Mutex::default(),
            journal: Some(dir),
        }
    }

    fn journal_update(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, u64>),
    ) -> Option<BTreeMap<String, u64>> {
        let dir = self.journal.as_ref()?;
        let _lock = FileLock::acquire(&dir.join("flows.lock")).ok()?;
        let file = dir.join("flows.json");
        let mut entries: BTreeMap<String, u64> = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        change(&mut entries);
        let _ = serde_json::to_vec(&entries).map(|b| write_atomic(&file, &b));
        Some(entries)
    }

    /// Whether an earlier process started a flow with this state.
    fn journaled(&self, state: &str) -> bool {
        let key = short_hash(state);
        self.journal_update(|_| {})
            .is_some_and(|e| e.contains_key(&key))
    }

    pub(crate) fn insert(&self, state: String, flow: PendingFlow) {
        let now = flow.created_at;
        self.journal_update(|e| {
            e.retain(|_, at| now.saturating_sub(*at) <= 2 * FLOW_TTL);
            e.insert(short_hash(&state), now);
        });
        if let Ok(mut t) = self.inner.lock() {
            t.pending
                .retain(|_, f| now.saturating_sub(f.created_at) <= FLOW_TTL);
            t.used
                .retain(|_, at| now.saturating_sub(*at) <= 2 * FLOW_TTL);
            t.pending.insert(state, flow);
        }
    }

    /// Removes and returns the flow for `state`.
    pub(crate) fn take(&self, state: &str, now: u64) -> Result<PendingFlow> {
        let mut t = self
            .inner
            .lock()
            .map_err(|_| Error::Storage("flow table poisoned".into()))?;
        if t.used.contains_key(state) {
            return Err(Error::StateReplayed);
        }
        let Some(flow) = t.pending.remove(state) else {
            drop(t);
            return Err(if self.journaled(state) {
                Error::FlowExpired
            } else {
                Error::UnknownState
            });
        };
        t.used.insert(state.to_string(), now);
        if now.saturating_sub(flow.created_at) > FLOW_TTL {
            return Err(Error::FlowExpired);
        }
        Ok(flow)
    }

    /// Abandons a flow; its callback, should it still come, is then refused.
    pub fn cancel(&self, state: &str, now: u64) -> bool {
        match self.inner.lock() {
            Ok(mut t) => {
                let found = t.pending.remove(state).is_some();
                if found {
                    t.used.insert(state.to_string(), now);
                }
                found
            }
            Err(_) => false,
        }
    }

    /// Whether a flow with this state is waiting.
    pub fn is_pending(&self, state: &str) -> bool {
        self.inner
            .lock()
            .map(|t| t.pending.contains_key(state))
            .unwrap_or(false)
    }
}

/// The parameters of a redirect back from the provider. Its `Debug` shows neither the code
/// nor the URL that carries it.
pub struct Callback {
    pub url: Url,
    pub state: String,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("url", &REDACTED)
            .field("state", &self.state)
            .field("code", &self.code.as_ref().map(|_| REDACTED))
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .field("iss", &self.iss)
            .finish()
    }
}

/// Parses a callback URL (`dev.tessera:/callback?…` or `http://127.0.0.1:<port>/callback?…`).
/// Refuses URLs without state, with repeated parameters, or with neither code nor error.
pub fn parse_callback(raw: &str) -> Result<Callback> {
    let url =
        Url::parse(raw.trim()).map_err(|e| Error::MalformedCallback(format!("not a URL: {e}")))?;
    if url.path() != "/callback" {
        return Err(Error::MalformedCallback(format!(
            "unexpected path \"{}\"",
            url.path()
        )));
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    for (k, v) in url.query_pairs() {
        if seen.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::MalformedCallback(format!(
                "parameter \"{k}\" appears twice"
            )));
        }
    }
    let state = seen
        .remove("state")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::MalformedCallback("it has no state parameter".into()))?;
    let callback = Callback {
        state,
        code: seen.remove("code").filter(|s| !s.is_empty()),
        error: seen.remove("error").filter(|s| !s.is_empty()),
        error_description: seen.remove("error_description"),
        iss: seen.remove("iss"),
        url,
    };
    if callback.code.is_none() && callback.error.is_none() {
        return Err(Error::MalformedCallback(
            "it has neither a code nor an error".into(),
        ));
    }
    Ok(callback)
}

/// The value of query parameter `name` in `url`, if it appears exactly once.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    let mut values = url
        .query_pairs()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.to_string());
    match (values.next(), values.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// Whether the callback arrived at the redirect URI the flow registered (same scheme, host,
/// port and path).
pub(crate) fn same_redirect(callback: &Url, redirect_uri: &str) -> bool {
    match Url::parse(redirect_uri) {
        Ok(r) => {
            r.scheme() == callback.scheme()
                && r.host_str() == callback.host_str()
                && r.port_or_known_default() == callback.port_or_known_default()
                && r.path() == callback.path()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(at: u64) -> PendingFlow {
        let s = FlowSecrets::generate();
        PendingFlow {
            provider: "p".into(),
            redirect_uri: DEEP_LINK_REDIRECT.into(),
            created_at: at,
            verifier: s.verifier,
            nonce: Some(s.nonce),
            org: None,
        }
    }

    #[test]
    fn state_is_single_use_and_expires() {
        let flows = PendingFlows::default();
        flows.insert("s1".into(), flow(1000));
        assert_eq!(
            flows.take("nope", 1001).unwrap_err().code(),
            "unknown_state"
        );
        assert!(flows.take("s1", 1001).is_ok());
        assert_eq!(flows.take("s1", 1002).unwrap_err().code(), "state_replayed");
        flows.insert("s2".into(), flow(1000));
        assert_eq!(
            flows.take("s2", 1000 + FLOW_TTL + 1).unwrap_err().code(),
            "flow_expired"
        );
        flows.insert("s3".into(), flow(1000));
        assert!(flows.cancel("s3", 1001));
        assert_eq!(flows.take("s3", 1002).unwrap_err().code(), "state_replayed");
    }

    #[test]
    fn a_flow_from_an_earlier_process_is_reported_expired() {
        let dir = tempfile::tempdir().unwrap();
        let earlier = PendingFlows::with_journal(dir.path().to_path_buf());
        earlier.insert("s1".into(), flow(1000));
        drop(earlier);
        let now = PendingFlows::with_journal(dir.path().to_path_buf());
        assert_eq!(now.take("s1", 1001).unwrap_err().code(), "flow_expired");
        assert_eq!(now.take("other", 1001).unwrap_err().code(), "unknown_state");
        let text = std::fs::read_to_string(dir.path().join("flows.json")).unwrap();
        assert!(!text.contains("s1"), "only hashes of states are written");
    }

    #[cfg(unix)]
    #[test]
    fn the_journal_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        PendingFlows::with_journal(cache.clone()).insert("s1".into(), flow(1000));
        for (path, want) in [
            (cache.clone(), 0o700),
            (cache.join("flows.json"), 0o600),
            (cache.join("flows.lock"), 0o600),
        ] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "{}", path.display());
        }
    }

    #[test]
    fn secrets_are_long_enough_for_every_provider() {
        let s = FlowSecrets::generate();
        assert!(
            s.nonce.len() >= 32,
            "Stitch requires a nonce of 32-300 characters"
        );
        assert_ne!(s.state, s.nonce);
    }

    #[test]
    fn callback_parsing() {
        let c = parse_callback(
            "dev.tessera:/callback?code=abc&state=xyz&iss=http%3A%2F%2F127.0.0.1%3A1",
        )
        .unwrap();
        assert_eq!((c.code.as_deref(), c.state.as_str()), (Some("abc"), "xyz"));
        assert_eq!(c.iss.as_deref(), Some("http://127.0.0.1:1"));
        let e = parse_callback("dev.tessera:/callback?error=access_denied&state=s").unwrap();
        assert_eq!(e.error.as_deref(), Some("access_denied"));
        for bad in [
            "not a url",
            "dev.tessera:/callback?code=abc",
            "dev.tessera:/callback?state=s",
            "dev.tessera:/elsewhere?code=a&state=s",
            "dev.tessera:/callback?code=a&code=b&state=s",
        ] {
            assert_eq!(
                parse_callback(bad).unwrap_err().code(),
                "malformed_callback",
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_shows_no_code_verifier_or_nonce() {
        let c = parse_callback("dev.tessera:/callback?code=the-code-123&state=s1").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("the-code-123"), "{shown}");
        assert!(
            shown.contains("s1") && shown.contains("[redacted]"),
            "{shown}"
        );

        let pending = flow(1000);
        let nonce = pending.nonce.clone().unwrap();
        let verifier = pending.verifier.secret().clone();
        let shown = format!("{pending:?}");
        assert!(
            !shown.contains(&nonce) && !shown.contains(&verifier),
            "{shown}"
        );
        let flows = PendingFlows::default();
        flows.insert("s1".into(), pending);
        let shown = format!("{flows:?}");
        assert!(
            !shown.contains(&nonce) && !shown.contains(&verifier),
            "{shown}"
        );
    }

    #[test]
    fn redirect_comparison() {
        let cb = Url::parse("http://127.0.0.1:4000/callback?x").unwrap();
        assert!(same_redirect(&cb, "http://127.0.0.1:4000/callback"));
        assert!(!same_redirect(&cb, "http://127.0.0.1:4001/callback"));
        assert!(!same_redirect(&cb, DEEP_LINK_REDIRECT));
    }
}
