//! Warm access tokens: what a long-lived process (the agent, the app) last handed out for
//! each account, so asking again for a token that is still valid costs no keychain round trip.
//!
//! Invariant: an entry is used only while `tessera.json` holds the very bytes it was read
//! under and the account's lock file the same revision (see [`Stamp`]), and every keychain
//! write of the account by this process retires it first (`txn`). Every change by another
//! process that could make a stored access token stale — refresh, sign-in, sign-out,
//! organization switch, a status change — bumps the account's revision before it writes the
//! keychain and rewrites `tessera.json` after, either of which retires the entry; the next
//! request reads the keychain again. The stamp is taken before the keychain is read (the
//! state's half from the same bytes as the account record), so an entry is never
//! newer-stamped than its token; after a refresh by this process, right after its own write
//! while the account's transaction still holds, so no other change to the account can come
//! between. Refreshes never use it: they re-read everything inside the account's transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

use crate::account::{DataDir, State};
use crate::error::Result;
use crate::fsutil::Revision;
use crate::secret::SecretString;

use super::types::IssuedToken;

/// What a read saw of an account: the SHA-256 of `tessera.json`'s bytes (`None` when there
/// was none, which never matches) and the revision of the account's lock. By content, not by
/// file metadata: a rewrite within one tick of the file system's clock, into a reused inode,
/// would look unchanged by size and times.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stamp {
    state: Option<[u8; 32]>,
    revision: Revision,
}

impl Stamp {
    /// A stamp nothing is kept under.
    pub fn none() -> Stamp {
        Stamp {
            state: None,
            revision: Revision::default(),
        }
    }

    /// The state as it is now, and the digest of the same bytes.
    pub fn read_state(data: &DataDir) -> Result<(Arc<State>, Option<[u8; 32]>)> {
        data.read_with_digest()
    }

    /// The stamp of account `id` for the state digest `state`: its lock's revision read now.
    pub fn of(data: &DataDir, state: Option<[u8; 32]>, id: &str) -> Stamp {
        let revision = Revision::of(&data.refresh_lock(id));
        Stamp { state, revision }
    }

    /// The stamp as it is now, given the revision of the account's lock read under the lock.
    pub fn now(data: &DataDir, revision: Revision) -> Result<Stamp> {
        let state = data.read_with_digest()?.1;
        Ok(Stamp { state, revision })
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
}

impl WarmTokens {
    /// The access token last handed out for `account`, if `stamp` is still the state it was
    /// read under and it is valid for `min_valid` more seconds at `now`.
    pub fn fresh(
        &self,
        account: &str,
        stamp: &Stamp,
        min_valid: u64,
        now: u64,
    ) -> Option<IssuedToken> {
        stamp.state?;
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(account).filter(|e| e.stamp == *stamp)?;
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

    /// The accounts that have an entry.
    pub fn accounts(&self) -> Vec<String> {
        self.entries
            .lock()
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Retires the entry of `account`.
    pub fn forget(&self, account: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(account);
        }
    }
}
