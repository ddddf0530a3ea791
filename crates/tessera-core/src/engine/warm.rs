//! Warm secrets: what a long-lived process (the agent, the app) last handed out for each
//! account, and each provider's client credential, so asking again for a token that is still
//! valid, or refreshing one, costs no needless keychain round trip.
//!
//! Invariant: an entry is used only while `tessera.json` holds the very bytes it was read
//! under (see [`Stamp`]). Every
//! write that could make a stored access token stale — refresh, sign-in, sign-out, organization
//! switch, a status change — rewrites `tessera.json` in the same transaction, so any such write,
//! by this process or another, retires the entry; the next request reads the keychain again.
//! (A rewrite to identical bytes — a second refresh within the same second, with the same
//! lifetime — leaves the superseded token warm; it is still valid, as it was handed out.)
//! A provider's credential is written to the keychain before the provider enters
//! `tessera.json` and removed after it left, so the same rule covers it.
//! The stamp is taken *before* the keychain is read, so an entry is never newer-stamped than
//! its token; after a refresh by this process, right after its own write while the account's
//! transaction still holds, so no other change to the account can come between. Refreshes
//! never use it: they re-read everything inside the account's transaction.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::secret::SecretString;

use super::types::IssuedToken;

/// Which `tessera.json` a read saw: the SHA-256 of its bytes (`None` when it could not be
/// read, which never matches). By content, not by file metadata: a rewrite within one tick of
/// the file system's clock, into a reused inode, would look unchanged by size and times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(Option<[u8; 32]>);

impl Stamp {
    pub fn of(path: &std::path::Path) -> Stamp {
        use sha2::{Digest, Sha256};
        Stamp(
            std::fs::read(path)
                .ok()
                .map(|bytes| Sha256::digest(bytes).into()),
        )
    }
}

struct Entry {
    stamp: Stamp,
    token: SecretString,
    expires_at: Option<u64>,
}

#[derive(Default)]
pub(crate) struct WarmTokens {
    entries: Mutex<HashMap<String, Entry>>,
    /// Provider credentials by provider name (`None`: the keychain has none).
    credentials: Mutex<HashMap<String, (Stamp, Option<SecretString>)>>,
}

impl WarmTokens {
    /// The access token last handed out for `account`, if `stamp` is still the state it was
    /// read under and it is valid for `min_valid` more seconds at `now`.
    pub fn fresh(
        &self,
        account: &str,
        stamp: Stamp,
        min_valid: u64,
        now: u64,
    ) -> Option<IssuedToken> {
        stamp.0?;
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(account).filter(|e| e.stamp == stamp)?;
        let valid = entry
            .expires_at
            .is_some_and(|e| e > now.saturating_add(min_valid));
        valid.then(|| IssuedToken {
            token: entry.token.clone(),
            expires_at: entry.expires_at,
            refreshed: false,
        })
    }

    /// Remembers what was handed out for `account` under `stamp`.
    pub fn keep(&self, account: &str, stamp: Stamp, issued: &IssuedToken) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                account.to_string(),
                Entry {
                    stamp,
                    token: issued.token.clone(),
                    expires_at: issued.expires_at,
                },
            );
        }
    }

    /// The credential of `provider` read under `stamp`, if that is still the state.
    pub fn credential(&self, provider: &str, stamp: Stamp) -> Option<Option<SecretString>> {
        stamp.0?;
        let credentials = self.credentials.lock().ok()?;
        let (kept, credential) = credentials.get(provider)?;
        (*kept == stamp).then(|| credential.clone())
    }

    pub fn keep_credential(&self, provider: &str, stamp: Stamp, credential: Option<&SecretString>) {
        if let Ok(mut credentials) = self.credentials.lock() {
            credentials.insert(provider.to_string(), (stamp, credential.cloned()));
        }
    }
}
