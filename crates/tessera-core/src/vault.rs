//! The secret side of Tessera. `SecretStore` is the injected keychain (the real OS keychain
//! through `keyring`, or memory in tests); `Vault` lays Tessera's secrets out in it:
//! one entry per account and [`Slot`] holding a whole token set (so a rotated refresh token
//! and the access token it came with are written in one step), and one per provider holding
//! its client secret or private key. Entries are namespaced by the data directory's random id,
//! so two data directories never share an entry.
//!
//! Invariant: refresh tokens, client secrets and private keys exist only here — never in a
//! file, a log line or a serialized view.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// The keychain service name of every entry Tessera writes.
pub const SERVICE: &str = "dev.tessera";

/// A place to keep secrets by key.
pub trait SecretStore: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<SecretString>>;
    fn set(&self, key: &str, value: &SecretString) -> Result<()>;
    /// Removes the entry; an absent entry is not an error.
    fn delete(&self, key: &str) -> Result<()>;
}

/// The OS keychain (Secret Service on Linux and the BSDs, Keychain on macOS, Credential
/// Manager on Windows). Clones share one Secret Service session (see [`crate::secret_service`]):
/// a process talks to the keychain daemon over a single connection, whatever the number of
/// entries it reads or writes.
#[derive(Debug, Clone)]
pub struct KeyringStore {
    service: String,
    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    session: Arc<crate::secret_service::Session>,
}

impl KeyringStore {
    pub fn new() -> Self {
        KeyringStore {
            service: SERVICE.to_string(),
            #[cfg(not(any(target_os = "macos", target_os = "windows")))]
            session: Arc::default(),
        }
    }
}

impl Default for KeyringStore {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(not(any(target_os = "macos", target_os = "windows")))]
impl SecretStore for KeyringStore {
    fn get(&self, key: &str) -> Result<Option<SecretString>> {
        let value = self
            .session
            .get(&self.service, key)
            .map_err(keychain_error)?;
        Ok(value.map(SecretString::new))
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        self.session
            .set(&self.service, key, value.expose_secret())
            .map_err(keychain_error)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.session
            .delete(&self.service, key)
            .map_err(keychain_error)
    }
}

#[cfg(not(any(target_os = "macos", target_os = "windows")))]
fn keychain_error(e: crate::secret_service::Failure) -> Error {
    use crate::secret_service::Failure;
    match e {
        Failure::NoAccess(inner) => Error::Keychain(format!(
            "the keychain is locked or no Secret Service is running ({inner})"
        )),
        Failure::Ambiguous(n) => Error::Keychain(format!(
            "{n} keychain entries claim the same name; remove the extra ones"
        )),
        Failure::Platform(inner) => Error::Keychain(format!("the keychain failed: {inner}")),
    }
}

#[cfg(any(target_os = "macos", target_os = "windows"))]
impl KeyringStore {
    fn entry(&self, key: &str) -> Result<keyring::Entry> {
        keyring::Entry::new(&self.service, key).map_err(keychain_error)
    }
}

#[cfg(any(target_os = "macos", target_os = "windows"))]
impl SecretStore for KeyringStore {
    fn get(&self, key: &str) -> Result<Option<SecretString>> {
        match self.entry(key)?.get_password() {
            Ok(value) => Ok(Some(SecretString::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keychain_error(e)),
        }
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        self.entry(key)?
            .set_password(value.expose_secret())
            .map_err(keychain_error)
    }

    fn delete(&self, key: &str) -> Result<()> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keychain_error(e)),
        }
    }
}

#[cfg(any(target_os = "macos", target_os = "windows"))]
fn keychain_error(e: keyring::Error) -> Error {
    match e {
        keyring::Error::NoStorageAccess(inner) => Error::Keychain(format!(
            "the keychain is locked or no Secret Service is running ({inner})"
        )),
        keyring::Error::PlatformFailure(inner) => {
            Error::Keychain(format!("the keychain failed: {inner}"))
        }
        other => Error::Keychain(other.to_string()),
    }
}

/// An in-memory store for tests; can be switched to fail like a locked keychain.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<String, String>>>,
    locked: Arc<AtomicBool>,
}

impl MemoryStore {
    /// From now on every call fails as a locked keychain would (or works again).
    pub fn set_locked(&self, locked: bool) {
        self.locked.store(locked, Ordering::SeqCst);
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, String>>> {
        if self.locked.load(Ordering::SeqCst) {
            return Err(Error::Keychain("the keychain is locked".into()));
        }
        self.entries
            .lock()
            .map_err(|_| Error::Keychain("memory store poisoned".into()))
    }
}

impl SecretStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<SecretString>> {
        Ok(self.check()?.get(key).map(SecretString::new))
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        self.check()?
            .insert(key.to_string(), value.expose_secret().to_string());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.check()?.remove(key);
        Ok(())
    }
}

/// Which token set of an account: the account's own, or one bound to an organization
/// (Auth0 org sign-ins, Logto organization tokens, Stytch org sessions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Slot {
    Main,
    Org(String),
}

impl Slot {
    pub fn org(org: Option<&str>) -> Slot {
        org.map_or(Slot::Main, |o| Slot::Org(o.to_string()))
    }
}

/// Everything the provider handed out for one account.
#[derive(Debug)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub token_type: String,
    /// Unix seconds; `None` when the provider did not say.
    pub expires_at: Option<u64>,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<SecretString>,
    pub scope: Option<String>,
    /// The nonce of the sign-in that produced the ID token (no longer secret once used).
    pub nonce: Option<String>,
    /// Whether `id_token` came in the same response as `access_token` (its `at_hash` applies).
    pub id_token_matches_access_token: bool,
    pub obtained_at: u64,
}

impl TokenSet {
    /// Seconds of validity left at `now` (0 when expired, `None` when unknown).
    pub fn remaining(&self, now: u64) -> Option<u64> {
        self.expires_at.map(|e| e.saturating_sub(now))
    }
}

/// The keychain layout, see the module docs.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn SecretStore>,
    namespace: String,
}

#[derive(Serialize, Deserialize)]
struct StoredTokens {
    v: u8,
    access_token: String,
    token_type: String,
    expires_at: Option<u64>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    scope: Option<String>,
    nonce: Option<String>,
    id_token_matches_access_token: bool,
    obtained_at: u64,
}

impl Vault {
    pub fn new(store: Arc<dyn SecretStore>, namespace: &str) -> Self {
        Vault {
            store,
            namespace: namespace.to_string(),
        }
    }

    /// The keychain account name of an account's main entry.
    pub fn account_key(&self, account_id: &str) -> String {
        format!("{}/account/{account_id}", self.namespace)
    }

    fn slot_key(&self, account_id: &str, slot: &Slot) -> String {
        match slot {
            Slot::Main => self.account_key(account_id),
            Slot::Org(org) => format!("{}/org/{org}", self.account_key(account_id)),
        }
    }

    fn provider_key(&self, provider: &str) -> String {
        format!("{}/provider/{provider}", self.namespace)
    }

    pub fn load_tokens(&self, account_id: &str) -> Result<Option<TokenSet>> {
        self.load_slot(account_id, &Slot::Main)
    }

    pub fn load_slot(&self, account_id: &str, slot: &Slot) -> Result<Option<TokenSet>> {
        let Some(raw) = self.store.get(&self.slot_key(account_id, slot))? else {
            return Ok(None);
        };
        let s: StoredTokens = serde_json::from_str(raw.expose_secret()).map_err(|_| {
            Error::Keychain(format!(
                "the keychain entry of account {account_id} is unreadable"
            ))
        })?;
        Ok(Some(TokenSet {
            access_token: SecretString::new(s.access_token),
            token_type: s.token_type,
            expires_at: s.expires_at,
            refresh_token: s.refresh_token.map(SecretString::new),
            id_token: s.id_token.map(SecretString::new),
            scope: s.scope,
            nonce: s.nonce,
            id_token_matches_access_token: s.id_token_matches_access_token,
            obtained_at: s.obtained_at,
        }))
    }

    pub fn save_tokens(&self, account_id: &str, tokens: &TokenSet) -> Result<()> {
        self.save_slot(account_id, &Slot::Main, tokens)
    }

    pub fn save_slot(&self, account_id: &str, slot: &Slot, tokens: &TokenSet) -> Result<()> {
        let stored = StoredTokens {
            v: 1,
            access_token: tokens.access_token.expose_secret().to_string(),
            token_type: tokens.token_type.clone(),
            expires_at: tokens.expires_at,
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            id_token: tokens
                .id_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            scope: tokens.scope.clone(),
            nonce: tokens.nonce.clone(),
            id_token_matches_access_token: tokens.id_token_matches_access_token,
            obtained_at: tokens.obtained_at,
        };
        let json = serde_json::to_string(&stored)
            .map_err(|e| Error::Keychain(format!("cannot encode the token set: {e}")))?;
        self.store
            .set(&self.slot_key(account_id, slot), &SecretString::new(json))
    }

    pub fn delete_tokens(&self, account_id: &str) -> Result<()> {
        self.delete_slot(account_id, &Slot::Main)
    }

    pub fn delete_slot(&self, account_id: &str, slot: &Slot) -> Result<()> {
        self.store.delete(&self.slot_key(account_id, slot))
    }

    /// The client secret or private key (PEM or JWK) of a provider.
    pub fn load_client_credential(&self, provider: &str) -> Result<Option<SecretString>> {
        self.store.get(&self.provider_key(provider))
    }

    pub fn save_client_credential(&self, provider: &str, credential: &SecretString) -> Result<()> {
        self.store.set(&self.provider_key(provider), credential)
    }

    pub fn delete_client_credential(&self, provider: &str) -> Result<()> {
        self.store.delete(&self.provider_key(provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: SecretString::new("at"),
            token_type: "Bearer".into(),
            expires_at: Some(100),
            refresh_token: Some(SecretString::new("rt")),
            id_token: None,
            scope: Some("openid".into()),
            nonce: Some("n".into()),
            id_token_matches_access_token: false,
            obtained_at: 40,
        }
    }

    #[test]
    fn token_set_round_trips_and_namespaces_apart() {
        let store = MemoryStore::default();
        let a = Vault::new(Arc::new(store.clone()), "ns-a");
        let b = Vault::new(Arc::new(store.clone()), "ns-b");
        a.save_tokens("acc", &tokens()).unwrap();
        let back = a.load_tokens("acc").unwrap().unwrap();
        assert_eq!(back.refresh_token.as_ref().unwrap().expose_secret(), "rt");
        assert_eq!(back.remaining(70), Some(30));
        assert!(b.load_tokens("acc").unwrap().is_none());
        a.delete_tokens("acc").unwrap();
        a.delete_tokens("acc").unwrap();
        assert!(store.is_empty());
    }

    #[test]
    fn locked_store_is_a_keychain_error() {
        let store = MemoryStore::default();
        store.set_locked(true);
        let v = Vault::new(Arc::new(store), "ns");
        assert_eq!(
            v.save_tokens("acc", &tokens()).unwrap_err().code(),
            "keychain"
        );
    }
}
