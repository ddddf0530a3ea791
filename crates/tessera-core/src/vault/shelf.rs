//! The shelf: one keychain entry holding the token sets of many accounts' slots and the
//! credentials of their providers, so refreshing every account reads and writes the keychain
//! once instead of once per account (a Secret Service daemon such as gnome-keyring rewrites
//! its whole keyring file on every write, so per-account writes cost O(accounts²)).
//!
//! Which slots and credentials live here is recorded in `tessera.json`; the engine decides
//! (`engine::shelf`). This module only lays the entry out. Secrets in it are wiped when the
//! shelf is dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::{Slot, StoredTokens, TokenSet, Vault, secret_json};
use crate::error::{Error, Result};
use crate::secret::SecretString;

/// The layout this Tessera writes and reads.
const VERSION: u64 = 1;

/// See the module docs. Crate-private: it is serialized only into its own keychain entry.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Shelf {
    v: u64,
    /// Token sets by account id, then slot name ([`Slot::name`]).
    #[serde(default)]
    slots: BTreeMap<String, BTreeMap<String, StoredTokens>>,
    /// Client secrets and private keys by provider name.
    #[serde(default)]
    credentials: BTreeMap<String, ShelvedSecret>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
struct ShelvedSecret(String);

impl Drop for ShelvedSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Default for Shelf {
    fn default() -> Self {
        Shelf {
            v: VERSION,
            slots: BTreeMap::new(),
            credentials: BTreeMap::new(),
        }
    }
}

impl Shelf {
    pub fn slot(&self, account_id: &str, slot: &Slot) -> Option<TokenSet> {
        Some(
            self.slots
                .get(account_id)?
                .get(&slot.name())?
                .to_token_set(),
        )
    }

    pub fn has_slot(&self, account_id: &str, slot: &Slot) -> bool {
        self.slots
            .get(account_id)
            .is_some_and(|s| s.contains_key(&slot.name()))
    }

    pub fn put_slot(&mut self, account_id: &str, slot: &Slot, tokens: &TokenSet) {
        self.slots
            .entry(account_id.to_string())
            .or_default()
            .insert(slot.name(), StoredTokens::of(tokens));
    }

    /// Removes the slot; whether the shelf held it.
    pub fn remove_slot(&mut self, account_id: &str, slot: &Slot) -> bool {
        let Some(slots) = self.slots.get_mut(account_id) else {
            return false;
        };
        let held = slots.remove(&slot.name()).is_some();
        if slots.is_empty() {
            self.slots.remove(account_id);
        }
        held
    }

    pub fn credential(&self, provider: &str) -> Option<SecretString> {
        self.credentials
            .get(provider)
            .map(|c| SecretString::new(c.0.as_str()))
    }

    pub fn put_credential(&mut self, provider: &str, credential: &SecretString) {
        self.credentials.insert(
            provider.to_string(),
            ShelvedSecret(credential.expose_secret().to_string()),
        );
    }

    /// Removes every slot of the account; whether the shelf held any.
    pub fn remove_account(&mut self, account_id: &str) -> bool {
        self.slots.remove(account_id).is_some()
    }

    /// Removes the credential; whether the shelf held it.
    pub fn remove_credential(&mut self, provider: &str) -> bool {
        self.credentials.remove(provider).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.credentials.is_empty()
    }
}

impl Vault {
    fn shelf_key(&self) -> String {
        format!("{}/shelf", self.namespace)
    }

    /// The shelf as the keychain holds it (empty when there is none). One written by a newer
    /// Tessera is refused (never replaced); anything else that is not a shelf is
    /// [`Error::ShelfDamaged`].
    pub(crate) fn load_shelf(&self) -> Result<Shelf> {
        #[derive(Deserialize)]
        struct Version {
            v: u64,
        }
        let Some(raw) = self.read(&self.shelf_key())? else {
            return Ok(Shelf::default());
        };
        let raw = raw.expose_secret();
        match serde_json::from_str::<Version>(raw) {
            Ok(Version { v }) if v > VERSION => Err(Error::Keychain(format!(
                "the keychain entry of the shelf was written by a newer Tessera (layout {v}); this one reads layout {VERSION}"
            ))),
            Ok(Version { v: VERSION }) => {
                serde_json::from_str(raw).map_err(|_| Error::ShelfDamaged)
            }
            _ => Err(Error::ShelfDamaged),
        }
    }

    /// Writes the shelf whole; an empty one is removed.
    pub(crate) fn save_shelf(&self, shelf: &Shelf) -> Result<()> {
        if shelf.is_empty() {
            return self.remove(&self.shelf_key());
        }
        self.write(&self.shelf_key(), &secret_json(shelf)?)
    }

    /// Whether the shelf has an entry: the keychain is asked, the value is not read.
    pub(crate) fn holds_shelf(&self) -> Result<bool> {
        self.store.contains(&self.shelf_key())
    }
}
