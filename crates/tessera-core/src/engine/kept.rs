//! Secrets a process keeps in memory between requests, so a long-lived one (the agent, the
//! app) refreshes without reading the keychain first: the token sets of accounts' slots, the
//! credentials of providers, and the shelf (`vault::Shelf`).
//!
//! Invariant: a value is kept together with the [`Revision`] of the lock that guards it (the
//! account's, the provider's, the shelf's), read while that lock was held, or read before the
//! value was, and is used only while the lock file still holds that revision. Every keychain
//! write that changes a slot, a credential or the shelf, in this process or any other, bumps
//! the revision first while holding the lock (`txn`, `shelf`), so a kept value is never older
//! than the keychain, and checking the revision needs no lock. (Moving a value to the shelf
//! changes no value: the own entry it leaves is deleted without a bump.) Values live in memory
//! only and are wiped when dropped.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::fsutil::Revision;
use crate::secret::SecretString;
use crate::vault::{Shelf, Slot, TokenSet};

type SlotKey = (String, Slot);

#[derive(Default)]
pub(crate) struct Kept {
    token_sets: Mutex<HashMap<SlotKey, (Revision, Option<TokenSet>)>>,
    credentials: Mutex<HashMap<String, (Revision, Option<SecretString>)>>,
    shelf: Mutex<Option<(Revision, Shelf)>>,
}

impl Kept {
    /// The kept content of `slot` (`Some(None)`: known to be empty) if `revision` is still
    /// the one it was read under.
    pub fn token_set(
        &self,
        account: &str,
        slot: &Slot,
        revision: &Revision,
    ) -> Option<Option<TokenSet>> {
        let sets = self.token_sets.lock().ok()?;
        let (kept, tokens) = sets.get(&(account.to_string(), slot.clone()))?;
        (kept == revision).then(|| tokens.clone())
    }

    /// Keeps what `slot` holds under `revision`.
    pub fn keep_token_set(
        &self,
        account: &str,
        slot: &Slot,
        revision: Revision,
        tokens: Option<&TokenSet>,
    ) {
        if let Ok(mut sets) = self.token_sets.lock() {
            sets.insert(
                (account.to_string(), slot.clone()),
                (revision, tokens.cloned()),
            );
        }
    }

    /// Before this process writes `slot` of `account` under the new revision `after`: the
    /// account's other slots kept under `before` are still what the keychain holds, so they
    /// move to `after`; `slot` itself is dropped until the write is known to have landed.
    pub fn rebase(&self, account: &str, slot: &Slot, before: &Revision, after: &Revision) {
        if let Ok(mut sets) = self.token_sets.lock() {
            sets.remove(&(account.to_string(), slot.clone()));
            for ((id, _), (revision, _)) in sets.iter_mut() {
                if id == account && revision == before {
                    *revision = after.clone();
                }
            }
        }
    }

    /// The kept credential of provider `name` if `revision` is still the one it was read under.
    pub fn credential(&self, name: &str, revision: &Revision) -> Option<Option<SecretString>> {
        let credentials = self.credentials.lock().ok()?;
        let (kept, credential) = credentials.get(name)?;
        (kept == revision).then(|| credential.clone())
    }

    pub fn keep_credential(
        &self,
        name: &str,
        revision: Revision,
        credential: Option<&SecretString>,
    ) {
        if let Ok(mut credentials) = self.credentials.lock() {
            credentials.insert(name.to_string(), (revision, credential.cloned()));
        }
    }

    /// The kept shelf if `revision` (of the shelf's lock) is still the one it was read under.
    pub fn shelf(&self, revision: &Revision) -> Option<Shelf> {
        let shelf = self.shelf.lock().ok()?;
        let (kept, shelf) = shelf.as_ref()?;
        (kept == revision).then(|| shelf.clone())
    }

    pub fn keep_shelf(&self, revision: Revision, shelf: &Shelf) {
        if let Ok(mut kept) = self.shelf.lock() {
            *kept = Some((revision, shelf.clone()));
        }
    }
}
